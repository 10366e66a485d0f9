"""Compressed and delta-encoded pages from a peer (src/migrate/pagecodec.c):
a PAGES_Z record is a PAGES body in a zstd frame; a PAGES entry with the
DELTA flag carries an XOR run-length delta against the page's current
content. The receiver checks them like everything else from a peer.

Stream files are made from tests/fixtures/counter-v1.ferrysave (no guest
build needed). The zstd frames are built here by hand from raw blocks (RFC
8878), so the test needs no zstd module; ferry decodes them with libzstd.
"""

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import assert_no_sanitizer, run_ferry  # noqa: E402
from migration import REC_PAGES, record, records  # noqa: E402
from test_migrate_input import fixture, restore_error, tmpdir, write  # noqa: E402

REC_PAGES_Z = 0x20
PAGE_ENTRY_DELTA = 2


def zstd_raw_frame(data, content_size=None):
    """A zstd frame holding data in raw blocks; content_size overrides the
    size its header declares."""
    size = len(data) if content_size is None else content_size
    out = struct.pack("<I", 0xFD2FB528) + bytes([0xA0]) + struct.pack("<I", size)
    blocks = [data[i:i + 65536] for i in range(0, len(data), 65536)] or [b""]
    for i, b in enumerate(blocks):
        last = 1 if i == len(blocks) - 1 else 0
        out += struct.pack("<I", last | (0 << 1) | (len(b) << 3))[:3] + b
    return out


def pages_z(body, content_size=None, claimed=None):
    raw_len = len(body) if claimed is None else claimed
    return record(REC_PAGES_Z, struct.pack("<I", raw_len) + zstd_raw_frame(body, content_size))


def first_pages(data):
    """(offset, body) of the fixture's first PAGES record with page data."""
    for off, rtype, rlen in records(data):
        if rtype != REC_PAGES:
            continue
        body = data[off + 8:off + 8 + rlen]
        n = struct.unpack_from("<I", body, 0)[0]
        if len(body) > 8 + 8 * n:
            return off, rlen, body
    raise AssertionError("the fixture has no PAGES record with data")


def replace(data, off, rlen, new_record):
    return data[:off] + new_record + data[off + rlen + 12:]


def restore_ok(data, name):
    path = write(name, data)
    stdin = tmpdir() / "g"
    stdin.write_bytes(b"g")
    with open(stdin, "rb") as f:
        r = run_ferry(["run", "--restore", path], timeout=60, stdin=f)
    assert_no_sanitizer(r.stdout + r.stderr)
    assert r.rc == 42 and "counter: ok" in r.stdout, r.describe()


def test_compressed_pages_restore():
    # The control: a well-formed PAGES_Z carrying the same pages works.
    data = fixture()
    off, rlen, body = first_pages(data)
    restore_ok(replace(data, off, rlen, pages_z(body)), "z.ferrysave")


def test_compressed_pages_size_mismatch_refused():
    data = fixture()
    off, rlen, body = first_pages(data)
    restore_error(replace(data, off, rlen, pages_z(body, content_size=len(body) + 1)),
                  ["compressed pages record"])
    restore_error(replace(data, off, rlen, pages_z(body, claimed=len(body) - 4096,
                                                   content_size=len(body) - 4096)),
                  ["compressed pages record"])


def test_compressed_pages_truncated_frame_refused():
    data = fixture()
    off, rlen, body = first_pages(data)
    rec = pages_z(body)
    inner = rec[8:-4]
    cut = inner[:len(inner) // 2]  # a raw block that claims more than is there
    restore_error(replace(data, off, rlen, record(REC_PAGES_Z, cut)), ["compressed pages record"])


def test_compressed_pages_garbage_refused():
    data = fixture()
    off, rlen, body = first_pages(data)
    junk = struct.pack("<I", len(body)) + bytes(range(256)) * 4
    restore_error(replace(data, off, rlen, record(REC_PAGES_Z, junk)), ["compressed pages record"])
    restore_error(replace(data, off, rlen, record(REC_PAGES_Z, b"\x01\x02")),
                  ["compressed pages record"])
    huge = struct.pack("<I", 1 << 30) + zstd_raw_frame(b"x" * 16)
    restore_error(replace(data, off, rlen, record(REC_PAGES_Z, huge)), ["compressed pages record"])


def test_compressed_pages_bad_content_refused():
    # What comes out of the frame is checked as any PAGES record is.
    data = fixture()
    off, rlen, body = first_pages(data)
    bad = bytearray(body)
    struct.pack_into("<Q", bad, 8, (1 << 40) | 1)
    restore_error(replace(data, off, rlen, pages_z(bytes(bad))), ["invalid", "entry"])


def _with_delta(body, delta):
    """body's first page with data turned into a DELTA entry carrying delta."""
    n = struct.unpack_from("<I", body, 0)[0]
    entries = [struct.unpack_from("<Q", body, 8 + 8 * i)[0] for i in range(n)]
    first = next(i for i, e in enumerate(entries) if not e & 1)
    entries[first] |= PAGE_ENTRY_DELTA
    data = body[8 + 8 * n:]
    # Data is in entry order: the first data page is the first non-zero entry's.
    new_data = struct.pack("<I", len(delta)) + delta + data[4096:]
    return body[:8] + b"".join(struct.pack("<Q", e) for e in entries) + new_data


def test_delta_page_bad_runs_refused():
    data = fixture()
    off, rlen, body = first_pages(data)
    # 4096 unchanged bytes, then one changed byte: past the page.
    restore_error(replace(data, off, rlen, record(REC_PAGES, _with_delta(body, b"\x80\x20\x01\xaa"))),
                  ["delta"])
    # A changed run longer than the data that follows.
    restore_error(replace(data, off, rlen, record(REC_PAGES, _with_delta(body, b"\x00\x10\x01"))),
                  ["delta"])


def test_delta_page_length_out_of_bounds_refused():
    data = fixture()
    off, rlen, body = first_pages(data)
    good = _with_delta(body, b"")
    n = struct.unpack_from("<I", good, 0)[0]
    bad = bytearray(good)
    struct.pack_into("<I", bad, 8 + 8 * n, 1 << 20)
    restore_error(replace(data, off, rlen, record(REC_PAGES, bytes(bad))), ["delta"])


def test_delta_page_applies():
    # The control for the two above: a well-formed delta loads. An empty
    # delta leaves the page as it was before, i.e. zero at restore: the
    # counter program's first data page then differs, so a delta that
    # rewrites it completely (XOR with its content) is used instead.
    data = fixture()
    off, rlen, body = first_pages(data)
    n = struct.unpack_from("<I", body, 0)[0]
    page = body[8 + 8 * n:8 + 8 * n + 4096]
    delta = bytearray()
    # Runs of at most 127 changed bytes (one-byte varints), unchanged 0.
    pos = 0
    while pos < 4096:
        k = min(127, 4096 - pos)
        delta += bytes([0, k]) + page[pos:pos + k]
        pos += k
    restore_ok(replace(data, off, rlen, record(REC_PAGES, _with_delta(body, bytes(delta)))),
               "delta.ferrysave")
