"""A storage copy's destination against a hostile or broken source
(docs/migration-stream.md, "Storage"): every slot, size, offset and length
in the STORAGE and BLOCKS records is checked before anything is written,
and a refused stream leaves at most IMAGE.partial, never IMAGE; a BLOCKS_Z
record must inflate to a BLOCKS body, which is then checked the same way.
Also: `ferry
run` refuses an image named *.partial. No guest build needed: the source is
played here in Python.
"""

import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from hostile import (RAM_BASE, REC_ERROR, VIRTIO_SLOTS, connect, header, incoming,  # noqa: E402
                     read_record)
from migration import fake_kernel, record  # noqa: E402

REC_MACHINE = 1
REC_STORAGE = 13
REC_BLOCKS = 14
REC_DISK_VERIFY = 15
MDESC_STORAGE = 4
VIRTIO_ID_BLOCK = 2
BLOCK = 64 << 10
DISK = 1 << 20   # 16 blocks


def machine(flags=MDESC_STORAGE):
    """A bare machine (no SBI, so no entropy device) with a disk in slot 0."""
    body = struct.pack("<QQIIQI", RAM_BASE, 16 << 20, 1, flags, 0, VIRTIO_SLOTS)
    body += struct.pack("<I", VIRTIO_ID_BLOCK) + b"\0" * (4 * (VIRTIO_SLOTS - 1))
    return record(REC_MACHINE, body)


def storage(*disks):
    """disks: (slot, block size, disk size)."""
    return record(REC_STORAGE, struct.pack("<I", len(disks)) +
                  b"".join(struct.pack("<IIQ", *d) for d in disks))


def blocks(slot, entries, data=b""):
    return record(REC_BLOCKS, struct.pack("<II", slot, len(entries)) +
                  b"".join(struct.pack("<Q", e) for e in entries) + data)


def refused(records, want, drive=None, expect_partial=True):
    """Sends header + records to a destination with `--drive file=IMG` (or
    `drive`); it must exit 1 naming `want`, tell the source, and leave no
    IMG (and IMG.partial only if expect_partial)."""
    tmp = tempfile.mkdtemp(prefix="fstorage-in-")
    try:
        img = os.path.join(tmp, "disk.img")
        f, port = incoming("--drive", drive or f"file={img}")
        with f:
            s = connect(port)
            s.sendall(header(3) + b"".join(records))
            rc, _ = f.exit_within(10 * harness.scale())
            err = f.stderr()
            f.check_clean()
            assert rc == 1 and want in err, f"want exit 1 naming {want!r}\n{f.describe()}"
            reply = read_record(s)
            assert reply and reply[0] == REC_ERROR and want.encode() in reply[1], reply
            s.close()
        assert not os.path.exists(img), f"{img} exists after a refused storage copy"
        assert os.path.exists(img + ".partial") == expect_partial, os.listdir(tmp)
        if expect_partial:
            assert os.path.getsize(img + ".partial") == DISK
        print(f"refused: {err.strip().splitlines()[-1]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_block_outside_the_disk_refused():
    refused([machine(), storage((0, BLOCK, DISK)),
             blocks(0, [DISK], b"\1" * BLOCK)], "outside the 1048576-byte disk")


def test_block_data_length_mismatch_refused():
    refused([machine(), storage((0, BLOCK, DISK)),
             blocks(0, [0, BLOCK], b"\1" * BLOCK)], "its entries need")


def test_block_misaligned_offset_refused():
    # 512 in the low bits is a flag bit that does not exist, not an offset.
    refused([machine(), storage((0, BLOCK, DISK)),
             blocks(0, [512], b"\1" * BLOCK)], "unknown flags")


def test_blocks_for_an_undeclared_slot_refused():
    refused([machine(), storage((0, BLOCK, DISK)), blocks(3, [0 | 1])],
            "did not declare")


def test_storage_for_a_slot_without_drive_refused():
    refused([machine(), storage((2, BLOCK, DISK))], "has 1 --drive", expect_partial=False)


def test_storage_of_absurd_size_refused():
    refused([machine(), storage((0, BLOCK, 1 << 50))], "is not accepted", expect_partial=False)


def test_storage_bad_block_size_refused():
    refused([machine(), storage((0, 3000, DISK))], "block size 3000", expect_partial=False)


def test_blocks_without_storage_refused():
    # No MACHINE flag, no STORAGE: the destination opens its own image, so
    # it must exist; a BLOCKS record is refused.
    tmp = tempfile.mkdtemp(prefix="fstorage-in-")
    try:
        img = os.path.join(tmp, "own.img")
        with open(img, "wb") as fh:
            fh.truncate(DISK)
        f, port = incoming("--drive", f"file={img}")
        with f:
            s = connect(port)
            s.sendall(header(3) + machine(flags=0) + blocks(0, [0 | 1]))
            rc, _ = f.exit_within(10 * harness.scale())
            f.check_clean()
            assert rc == 1 and "declared no storage copy" in f.stderr(), f.describe()
        assert os.path.getsize(img) == DISK and not os.path.exists(img + ".partial")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_storage_into_a_network_drive_refused():
    refused([machine(), storage((0, BLOCK, DISK))], "not a network disk",
            drive="nbd://127.0.0.1:1/x", expect_partial=False)


def test_run_refuses_a_partial_image():
    tmp = tempfile.mkdtemp(prefix="fstorage-in-")
    try:
        img = os.path.join(tmp, "disk.img.partial")
        with open(img, "wb") as fh:
            fh.truncate(DISK)
        r = harness.run_ferry(["run", "--kernel", fake_kernel(tmp), "--mem", "16M",
                               "--console", "none", "--drive", f"file={img}"], timeout=30)
        assert r.rc != 0 and "incomplete storage copy" in r.stderr, r.describe()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


REC_BLOCKS_Z = 0x21


def zstd_raw_frame(data):
    """A zstd frame holding data in raw (uncompressed) blocks."""
    out = struct.pack("<I", 0xFD2FB528) + bytes([0xA0]) + struct.pack("<I", len(data))
    chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)] or [b""]
    for i, c in enumerate(chunks):
        out += struct.pack("<I", (1 if i == len(chunks) - 1 else 0) | (len(c) << 3))[:3] + c
    return out


def blocks_z(body):
    return record(REC_BLOCKS_Z, struct.pack("<I", len(body)) + zstd_raw_frame(body))


def test_compressed_blocks_garbage_refused():
    refused([machine(), storage((0, BLOCK, DISK)),
             record(REC_BLOCKS_Z, struct.pack("<I", 4096) + bytes(range(256)) * 4)],
            "compressed")


def test_compressed_blocks_checked_as_blocks():
    # What comes out of the frame is checked as any BLOCKS record is.
    body = struct.pack("<IIQ", 0, 1, DISK) + b"\1" * BLOCK
    refused([machine(), storage((0, BLOCK, DISK)), blocks_z(body)],
            "outside the 1048576-byte disk")
