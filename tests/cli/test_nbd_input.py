"""--drive nbd://... that cannot work: a malformed URL, nothing listening,
an export the server refuses, a server that never answers or is not an NBD
server. ferry must print exactly one line `ferry: ...` on stderr naming
the problem and exit non-zero by itself: no signal, no sanitizer report, no
hang. Only 127.0.0.1 is ever contacted.
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import assert_no_sanitizer, fake_riscv_image, run_ferry, scaled  # noqa: E402
from nbdserver import FakeNbd, NbdServer, closed_port  # noqa: E402

_tmp = None


def tmpdir():
    global _tmp
    if _tmp is None:
        _tmp = Path(tempfile.mkdtemp(prefix="ferry-nbd-cli-"))
    return _tmp


def boot_args():
    """--kernel and --initrd that ferry accepts, so the test fails on the
    drive and not on a missing guest."""
    k = tmpdir() / "fake-Image"
    if not k.exists():
        k.write_bytes(fake_riscv_image())
    i = tmpdir() / "initrd.bin"
    if not i.exists():
        i.write_bytes(b"\0" * 4096)
    return ["--kernel", str(k), "--initrd", str(i)]


def expect_drive_error(spec, mentions, timeout=30):
    """ferry run --drive SPEC must fail with one `ferry: ` line mentioning
    all of `mentions`. Returns (line, seconds)."""
    r = run_ferry(["run", *boot_args(), "--drive", spec], timeout=timeout)
    assert_no_sanitizer(r.stdout + r.stderr, "ferry output")
    if r.rc < 0:
        raise AssertionError(f"ferry crashed\n{r.describe()}")
    if r.rc == 0:
        raise AssertionError(f"ferry exited 0 on a bad drive\n{r.describe()}")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    if len(lines) != 1:
        raise AssertionError(f"expected exactly one line on stderr, got {len(lines)}\n{r.describe()}")
    line = lines[0]
    if not line.startswith("ferry: "):
        raise AssertionError(f"error line does not start with 'ferry: '\n{r.describe()}")
    for m in [mentions] if isinstance(mentions, str) else mentions:
        if m not in line:
            raise AssertionError(f"error line should mention {m!r}: {line!r}")
    print(f"rc {r.rc} after {r.seconds:.1f} s: {line}")
    return line, r.seconds


# -- malformed URLs ------------------------------------------------------------

def test_url_empty():
    expect_drive_error("nbd://", ["nbd://", "no host"])


def test_url_no_port():
    expect_drive_error("nbd://host", ["nbd://host", "port"])


def test_url_port_too_big():
    expect_drive_error("nbd://1.2.3.4:99999/x", ["99999", "1 to 65535"])


def test_url_port_zero():
    expect_drive_error("nbd://127.0.0.1:0/x", ["1 to 65535"])


def test_url_port_not_number():
    expect_drive_error("nbd://127.0.0.1:http/x", ["1 to 65535"])


def test_url_no_host():
    expect_drive_error("nbd://:10809/x", "no host")


def test_url_bad_ipv6():
    expect_drive_error("nbd://[::1/x", "[")


def test_url_unknown_option():
    expect_drive_error(f"nbd://127.0.0.1:{closed_port()}/x,cache=on", "cache=on")


def test_host_does_not_resolve():
    # .invalid never resolves (RFC 2606); no packet leaves the machine
    # beyond, at most, a resolver query.
    expect_drive_error("nbd://no-such-host.invalid:10809/x", "no-such-host.invalid")


# -- servers that do not cooperate --------------------------------------------

def test_nothing_listening():
    port = closed_port()
    _, secs = expect_drive_error(f"nbd://127.0.0.1:{port}/data",
                                 [f"127.0.0.1:{port}", "cannot connect"])
    assert secs < scaled(10), f"refused connection took {secs:.1f} s"


def test_export_refused_fake():
    with FakeNbd("refuse") as srv:
        expect_drive_error(srv.url("nosuch"),
                           ["server refused export 'nosuch'", "no export of that name here"])


def test_export_refused_qemu_nbd():
    img = tmpdir() / "disk.img"
    with open(img, "wb") as f:
        f.truncate(1 << 20)
    with NbdServer(img, export="data") as srv:
        expect_drive_error(f"nbd://127.0.0.1:{srv.port}/nosuch",
                           "server refused export 'nosuch'")


def test_server_silent():
    # Connects, then the server says nothing: the handshake times out.
    with FakeNbd("silent") as srv:
        t0 = time.monotonic()
        expect_drive_error(srv.url(), ["no answer", srv.url()], timeout=60)
        assert time.monotonic() - t0 < scaled(30), "handshake timeout too long"


def test_not_an_nbd_server():
    with FakeNbd("garbage") as srv:
        expect_drive_error(srv.url(), "not an NBD server")
