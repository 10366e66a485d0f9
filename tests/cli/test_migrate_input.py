"""Bad input to the migration commands: `ferry run --incoming/--restore`,
`ferry migrate`, `ferry save`. Every case must end with a one-line
`ferry: ...` error naming what was wrong and a non-zero exit status: no
signal, no sanitizer report, no hang. (A destination listening on TCP
first prints its `waiting for a migration stream` line; that one and
`note:` lines are allowed before the error.)

Broken stream files are made from tests/fixtures/counter-v1.ferrysave (a
small bare-metal VM saved by stream version 1, see tests/fixtures/README.md)
and from a fresh save of a VM running a fake kernel (an endless loop), so
no guest build is needed. Scratch files go to $TMPDIR (removed by
tests/run.py after each test).
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from harness import Skip, assert_no_sanitizer, run_ferry  # noqa: E402
from migration import (REC_CLOCK, REC_DEVICE, REC_END, REC_GO, REC_MACHINE, REC_PAGES,  # noqa: E402
                       REC_READY, REC_RUNNING, STREAM_HEADER_SIZE, Background, crc32c,
                       fake_kernel, free_port, probe_drive, record, records, wait_for)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "counter-v1.ferrysave"
INFO = ("waiting for a migration stream", "note:")

_tmp = None


def tmpdir():
    global _tmp
    if _tmp is None:
        _tmp = Path(tempfile.mkdtemp(prefix="ferry-mig-"))
    return _tmp


def write(name, data):
    p = tmpdir() / name
    p.write_bytes(data)
    return str(p)


def fixture():
    return FIXTURE.read_bytes()


def check_one_error(r, mentions=None, what="ferry"):
    """r (harness.Result) failed cleanly with one `ferry: ` error line."""
    assert_no_sanitizer(r.stdout + r.stderr, f"{what} output")
    if r.rc is None or r.rc < 0:
        raise AssertionError(f"{what} crashed or hung\n{r.describe()}")
    if r.rc == 0:
        raise AssertionError(f"{what} exited 0 on bad input\n{r.describe()}")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not any(i in ln for i in INFO)]
    if len(lines) != 1:
        raise AssertionError(f"expected exactly one error line on stderr, got {len(lines)}\n{r.describe()}")
    line = lines[0]
    if not line.startswith("ferry: ") or len(line) <= len("ferry: "):
        raise AssertionError(f"error line does not start with 'ferry: '\n{r.describe()}")
    if mentions:
        alts = [mentions] if isinstance(mentions, str) else list(mentions)
        if not any(m.lower() in line.lower() for m in alts):
            raise AssertionError(f"error line {line!r} mentions none of {alts}\n{r.describe()}")
    return line


def expect_error(args, mentions=None, timeout=30, **kw):
    r = run_ferry(args, timeout=timeout, **kw)
    return check_one_error(r, mentions, f"ferry {' '.join(map(str, args[:2]))}")


def expect_usage_error(args, mentions=None):
    r = run_ferry(args, timeout=30)
    line = check_one_error(r, mentions)
    assert r.rc == 2, f"a usage error should exit 2\n{r.describe()}"
    return line


def restore_error(data, mentions, name="state.ferrysave", extra=()):
    return expect_error(["run", "--restore", write(name, data), *extra], mentions)


# --------------------------------------------------------------------------
# A VM to talk to: a fake kernel spinning forever, with a control socket
# --------------------------------------------------------------------------

class FakeVM:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="fvm-")
        self.control = os.path.join(self.dir, "ctl.sock")
        self.bg = Background([harness.ferry(), "run", "--kernel", fake_kernel(self.dir), "--mem", "16M",
                              "--console", "none", "--control", self.control, *extra])

    def __enter__(self):
        def up():
            if not self.bg.running():
                raise AssertionError(f"VM exited early\n{self.bg.finish(5).describe()}")
            return os.path.exists(self.control)
        wait_for(up, 30, "the VM's control socket")
        return self

    def status(self):
        r = run_ferry(["ctl", self.control, "status"], timeout=30)
        assert r.rc == 0, r.describe()
        return r.stdout

    def __exit__(self, *exc):
        self.bg.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def fresh_save(*extra):
    """Bytes of a current-version save of a FakeVM."""
    path = str(tmpdir() / "fresh.ferrysave")
    with FakeVM(*extra) as vm:
        r = run_ferry(["save", vm.control, path], timeout=60)
        assert r.rc == 0, r.describe()
    return Path(path).read_bytes()


# --------------------------------------------------------------------------
# ferry run --incoming
# --------------------------------------------------------------------------

def test_incoming_bogus():
    expect_usage_error(["run", "--incoming", "bogus"], "bogus")


def test_incoming_port_zero():
    expect_error(["run", "--incoming", "tcp:1.2.3.4:0"], ["port", "tcp:1.2.3.4:0"])


def test_incoming_no_port():
    expect_error(["run", "--incoming", "tcp:127.0.0.1"], "tcp:127.0.0.1")


def test_incoming_port_out_of_range():
    expect_error(["run", "--incoming", "tcp:127.0.0.1:70000"], ["port", "70000"])


def test_incoming_address_not_local():
    expect_error(["run", "--incoming", "tcp:1.2.3.4:4444"], "1.2.3.4")


def test_incoming_port_in_use():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        expect_error(["run", "--incoming", f"tcp:127.0.0.1:{port}"], ["in use", str(port)])
    finally:
        s.close()


def test_incoming_and_restore_together():
    expect_usage_error(["run", "--incoming", "tcp:127.0.0.1:4444", "--restore", str(FIXTURE)])


def _send_to_destination(dst, port, send):
    """Wait until the destination dst listens on port, connect, call
    send(sock), close."""
    def listening():
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if not dst.running():
                raise AssertionError(f"destination exited\n{dst.finish(5).describe()}")
            return None
    s = wait_for(listening, 30, "the destination to listen")
    try:
        send(s)
    finally:
        s.close()


def _destination(port):
    return Background([harness.ferry(), "run", "--incoming", f"tcp:127.0.0.1:{port}",
                       "--console", "none"])


def _incoming_peer(send):
    """Start a destination, connect to it, call send(sock), return the
    destination's result."""
    port = free_port()
    with _destination(port) as dst:
        _send_to_destination(dst, port, send)
        return dst.finish(60)


def _incoming_stray(send, why):
    """A connection that never presents a stream header is logged (with
    why) and dropped; the destination keeps waiting for the real source
    (issue 13: strays must not end the wait)."""
    port = free_port()
    with _destination(port) as dst:
        _send_to_destination(dst, port, send)

        def logged():
            dst.err.seek(0)
            return why in dst.err.read().decode("utf-8", "replace")
        wait_for(logged, 30, f"the destination to log {why!r}")
        time.sleep(0.3)
        assert dst.running(), "the destination stopped waiting after a stray connection"


def test_incoming_garbage_over_tcp():
    _incoming_stray(lambda s: s.sendall(b"GET / HTTP/1.0\r\n\r\n" * 4),
                    "not a ferry migration stream; still waiting")


def test_incoming_connection_closed_at_once():
    _incoming_stray(lambda s: None, "closed before sending a stream header; still waiting")


def test_incoming_connection_closed_mid_stream():
    data = fixture()
    r = _incoming_peer(lambda s: s.sendall(data[:len(data) // 2]))
    check_one_error(r, "truncated", "destination")


def test_incoming_v1_stream_over_tcp():
    # Play the source by hand: send the version-1 fixture, expect READY,
    # say GO, expect RUNNING; then the program finishes on the destination.
    port = free_port()
    p = subprocess.Popen([harness.ferry(), "run", "--incoming", f"tcp:127.0.0.1:{port}"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         process_group=0)
    try:
        def listening():
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=1)
            except OSError:
                assert p.poll() is None, f"destination exited with {p.returncode}"
                return None
        s = wait_for(listening, 30, "the destination to listen")
        s.settimeout(harness.scaled(30))
        s.sendall(fixture())

        def read_record():
            buf = b""
            while len(buf) < 8:
                chunk = s.recv(8 - len(buf))
                assert chunk, "destination closed the connection"
                buf += chunk
            rtype, rlen = struct.unpack("<II", buf)
            rest = b""
            while len(rest) < rlen + 4:
                chunk = s.recv(rlen + 4 - len(rest))
                assert chunk, "destination closed the connection mid-record"
                rest += chunk
            crc = struct.unpack("<I", rest[rlen:])[0]
            assert crc == crc32c(buf + rest[:rlen]), "bad CRC from the destination"
            return rtype, rest[:rlen]

        rtype, body = read_record()
        assert rtype == REC_READY, f"destination sent {rtype:#x} {body!r} instead of READY"
        s.sendall(record(REC_GO))
        rtype, body = read_record()
        assert rtype == REC_RUNNING, f"destination sent {rtype:#x} {body!r} instead of RUNNING"
        s.close()
        out, err = p.communicate(b"g", timeout=harness.scaled(60))
    finally:
        harness.kill_group(p.pid)
        p.wait()
    text = out.decode("utf-8", "replace") + err.decode("utf-8", "replace")
    assert_no_sanitizer(text, "destination output")
    assert "counter: ok" in text, f"program output: {text!r}"
    assert p.returncode == 42, f"destination exited with {p.returncode}, expected 42\n{text}"


# --------------------------------------------------------------------------
# ferry migrate / save
# --------------------------------------------------------------------------

def test_migrate_no_arguments():
    expect_usage_error(["migrate"], "usage")


def test_migrate_only_socket():
    expect_usage_error(["migrate", "/tmp/x.sock"], "usage")


def test_migrate_missing_socket():
    path = str(tmpdir() / "no-such.sock")
    expect_error(["migrate", path, "tcp:127.0.0.1:4444"], path)


def test_migrate_socket_is_a_regular_file():
    path = write("not-a-socket", b"hello\n")
    expect_error(["migrate", path, "tcp:127.0.0.1:4444"], path)


def test_migrate_bad_max_downtime():
    for v in ("5", "fast", "-5ms", "0ms", "5 ms", "5min", ""):
        expect_usage_error(["migrate", "/tmp/x.sock", "tcp:127.0.0.1:4444", "--max-downtime", v],
                           ["--max-downtime", v or "''"])


def test_migrate_max_downtime_missing_value():
    expect_usage_error(["migrate", "/tmp/x.sock", "tcp:127.0.0.1:4444", "--max-downtime"],
                       "--max-downtime")


def test_migrate_bad_bandwidth():
    for v in ("fast", "0", "-1M", "10X", "1.5G", ""):
        expect_usage_error(["migrate", "/tmp/x.sock", "tcp:127.0.0.1:4444", "--bandwidth", v],
                           ["--bandwidth"])


def test_migrate_bad_max_throttle():
    for v in ("0", "0%", "100%", "150", "-5%", "fast", "50%%", "5 0", ""):
        expect_usage_error(["migrate", "/tmp/x.sock", "tcp:127.0.0.1:4444", "--max-throttle", v],
                           ["--max-throttle"])


def test_migrate_ctl_bad_auto_converge_fields():
    # The control socket checks them too (other clients than ferry migrate).
    with FakeVM() as vm:
        for words, mention in ((["max_throttle=100"], "max_throttle"),
                               (["max_throttle=0"], "max_throttle"),
                               (["max_throttle=half"], "max_throttle"),
                               (["auto_converge=maybe"], "auto_converge")):
            r = run_ferry(["ctl", vm.control, "migrate", "uri=tcp:127.0.0.1:4444", *words],
                          timeout=30)
            assert_no_sanitizer(r.stdout + r.stderr, "ferry ctl output")
            assert mention in r.stdout + r.stderr and '"ok":false' in r.stdout.replace(" ", ""), (
                f"{words}: want a refusal naming {mention}\n{r.describe()}")
        assert '"state":"running"' in vm.status().replace(" ", "")


def test_migrate_bad_destination_syntax():
    for uri in ("127.0.0.1:4444", "udp:127.0.0.1:4444", "file:/tmp/vm.save", "tcp", ""):
        expect_usage_error(["migrate", "/tmp/x.sock", uri], uri or "destination")


def test_migrate_unknown_option():
    expect_usage_error(["migrate", "/tmp/x.sock", "tcp:127.0.0.1:4444", "--fast"], "--fast")


def _migrate_fails_on_vm(uri, mentions):
    """ferry migrate to a URI the CLI accepts but the VM cannot use: exit 1,
    the reason in the output, the VM still running."""
    with FakeVM() as vm:
        r = run_ferry(["migrate", vm.control, uri], timeout=60)
        assert_no_sanitizer(r.stdout + r.stderr, "ferry migrate output")
        assert r.rc == 1, f"want exit 1\n{r.describe()}"
        text = r.stdout + r.stderr
        assert any(m in text for m in mentions), f"no reason given ({mentions})\n{r.describe()}"
        assert '"state":"running"' in vm.status().replace(" ", "")


def test_migrate_destination_without_port():
    _migrate_fails_on_vm("tcp:127.0.0.1", ["tcp:HOST:PORT", "port"])


def test_migrate_destination_port_out_of_range():
    _migrate_fails_on_vm("tcp:127.0.0.1:70000", ["65535", "port"])


def test_migrate_failure_reported_on_stderr():
    # Scripts read stderr: a failed migration must say why there, in one
    # `ferry: ` line, not only in the report on stdout.
    with FakeVM() as vm:
        r = run_ferry(["migrate", vm.control, f"tcp:127.0.0.1:{free_port()}"], timeout=60)
        check_one_error(r, ["refused", "connect"], "ferry migrate")


def test_save_missing_socket():
    path = str(tmpdir() / "no-such.sock")
    expect_error(["save", path, str(tmpdir() / "out.save")], path)


def test_save_unsupported_stream_version():
    with FakeVM() as vm:
        expect_error(["save", vm.control, str(tmpdir() / "out.save"), "--stream-version", "4"],
                     ["version 4", "4"])
        assert '"state":"running"' in vm.status().replace(" ", "")


def test_save_stream_version_not_a_number():
    with FakeVM() as vm:
        out = tmpdir() / "out.save"
        expect_usage_error(["save", vm.control, str(out), "--stream-version", "abc"], "abc")


def test_save_to_unwritable_path():
    with FakeVM() as vm:
        path = str(tmpdir() / "no-such-dir" / "out.save")
        expect_error(["save", vm.control, path], path)
        assert '"state":"running"' in vm.status().replace(" ", "")


# --------------------------------------------------------------------------
# ferry run --restore: files that are not (good) streams
# --------------------------------------------------------------------------

def test_restore_missing_file():
    path = str(tmpdir() / "missing.ferrysave")
    expect_error(["run", "--restore", path], path)


def test_restore_not_a_stream():
    expect_error(["run", "--restore", "/etc/passwd"], "not a ferry migration stream")


def test_restore_empty_file():
    restore_error(b"", ["truncated", "header"])


def test_restore_directory():
    expect_error(["run", "--restore", str(tmpdir())], [str(tmpdir()), "directory"])


def _cut_points(data):
    recs = records(data)
    cuts = {8, STREAM_HEADER_SIZE, STREAM_HEADER_SIZE + 5, len(data) - 1, len(data) - 12}
    for off, rtype, rlen in recs:
        cuts.add(off + 8 + rlen // 2)          # mid-body
        cuts.add(off + 8 + rlen + 2)           # mid-CRC
    # Every record present but not END.
    last_off, last_type, _ = recs[-1]
    assert last_type == REC_END
    cuts.add(last_off)
    return sorted(c for c in cuts if 0 < c < len(data))


def test_restore_truncated_v1_fixture():
    data = fixture()
    for cut in _cut_points(data):
        restore_error(data[:cut], ["truncated", "ended"], name=f"cut{cut}.ferrysave")


def test_restore_truncated_fresh_save():
    data = fresh_save()
    cuts = _cut_points(data)
    # Fewer points than the fixture (each is a process): header, records.
    for cut in cuts[:3] + cuts[-4:]:
        restore_error(data[:cut], ["truncated", "ended"], name=f"cut{cut}.ferrysave")


def test_restore_flipped_byte():
    data = bytearray(fixture())
    off, rtype, rlen = next(r for r in records(data) if r[1] == REC_PAGES and r[2] > 4096)
    data[off + 8 + rlen - 100] ^= 0x01
    restore_error(bytes(data), "CRC")


def test_restore_flipped_length():
    # A corrupted length field: the record claims to be huge.
    data = bytearray(fixture())
    off, _, _ = records(data)[1]
    data[off + 7] = 0x7f
    restore_error(bytes(data), ["corrupt", "truncated", "bytes"])


def test_restore_future_stream_version():
    data = bytearray(fixture())
    struct.pack_into("<I", data, 8, 99)
    restore_error(bytes(data), ["version 99", "99"])


def test_restore_stream_version_zero():
    data = bytearray(fixture())
    struct.pack_into("<I", data, 8, 0)
    restore_error(bytes(data), ["version 0"])


def test_restore_header_flags():
    data = bytearray(fixture())
    struct.pack_into("<I", data, 12, 1)
    restore_error(bytes(data), "flags")


def test_restore_unknown_mandatory_record():
    data = fixture()
    off, _, rlen = records(data)[0]
    end = off + 8 + rlen + 4
    bad = data[:end] + record(0x77, b"future") + data[end:]
    restore_error(bad, "0x77")


def test_restore_skips_unknown_optional_record():
    # Bit 31 marks a record an older reader may skip: the restore works.
    data = fixture()
    off, _, rlen = records(data)[0]
    end = off + 8 + rlen + 4
    extended = data[:end] + record(0x80000077, b"skip me") + data[end:]
    path = write("optional.ferrysave", extended)
    stdin = tmpdir() / "g"
    stdin.write_bytes(b"g")
    with open(stdin, "rb") as f:
        r = run_ferry(["run", "--restore", path], timeout=60, stdin=f)
    assert_no_sanitizer(r.stdout + r.stderr)
    assert r.rc == 42 and "counter: ok" in r.stdout, r.describe()


def test_restore_first_record_not_machine():
    data = fixture()
    recs = records(data)
    off0, _, len0 = recs[0]
    off1, _, len1 = recs[1]
    # Swap the machine record and the first pages record.
    first = data[off0:off0 + len0 + 12]
    second = data[off1:off1 + len1 + 12]
    swapped = data[:off0] + second + first + data[off1 + len1 + 12:]
    restore_error(swapped, "machine description")


def test_restore_machine_with_absurd_ram():
    data = fixture()
    off, rtype, rlen = records(data)[0]
    assert rtype == REC_MACHINE
    body = bytearray(data[off + 8:off + 8 + rlen])
    struct.pack_into("<Q", body, 8, 1 << 50)  # 1 PiB of RAM
    bad = data[:off] + record(REC_MACHINE, bytes(body)) + data[off + rlen + 12:]
    restore_error(bad, ["RAM"])


def test_restore_page_beyond_ram():
    data = fixture()
    off, rtype, rlen = next(r for r in records(data) if r[1] == REC_PAGES)
    body = bytearray(data[off + 8:off + 8 + rlen])
    struct.pack_into("<Q", body, 8, (1 << 40) | 1)  # first entry: a zero page far away
    bad = data[:off] + record(REC_PAGES, bytes(body)) + data[off + rlen + 12:]
    restore_error(bad, ["invalid", "entry", "RAM"])


def test_restore_without_final_state():
    # Everything up to the pages, then END: no device state, no clock.
    data = fixture()
    recs = records(data)
    last_pages = max(i for i, r in enumerate(recs) if r[1] == REC_PAGES)
    off, _, rlen = recs[last_pages]
    bad = data[:off + rlen + 12] + record(REC_END)
    restore_error(bad, ["final", "device"])


def _device_name(data, rec):
    off, _, _ = rec
    n = data[off + 8]
    return data[off + 9:off + 9 + n].decode()


def _rebuild(data, order):
    """The stream's header followed by its records in `order` (indexes)."""
    recs = records(data)
    out = data[:STREAM_HEADER_SIZE]
    for i in order:
        off, _, rlen = recs[i]
        out += data[off:off + rlen + 12]
    return out


def test_restore_without_cpu_record():
    # Every hart needs its state: without it the hart would start at reset.
    data = fixture()
    recs = records(data)
    keep = [i for i, r in enumerate(recs) if not (r[1] == REC_DEVICE and _device_name(data, r) == "cpu")]
    assert len(keep) < len(recs), "the fixture has no cpu record"
    restore_error(_rebuild(data, keep), ["'cpu' instance 0"])


def test_restore_device_record_twice():
    data = fixture()
    recs = records(data)
    dev = next(i for i, r in enumerate(recs) if r[1] == REC_DEVICE)
    order = list(range(len(recs)))
    order.insert(dev, dev)
    restore_error(_rebuild(data, order), ["twice"])


def test_restore_clock_before_devices():
    data = fixture()
    recs = records(data)
    clock = next(i for i, r in enumerate(recs) if r[1] == REC_CLOCK)
    first_dev = next(i for i, r in enumerate(recs) if r[1] == REC_DEVICE)
    order = [i for i in range(len(recs)) if i != clock]
    order.insert(order.index(first_dev), clock)
    restore_error(_rebuild(data, order), ["no state for", "out of order"])


def test_restore_machine_record_twice():
    data = fixture()
    recs = records(data)
    order = list(range(len(recs)))
    order.insert(2, 0)  # the MACHINE record again after the first pages
    restore_error(_rebuild(data, order), ["second machine record"])


def test_restore_pages_after_devices():
    data = fixture()
    recs = records(data)
    pages = next(i for i, r in enumerate(recs) if r[1] == REC_PAGES)
    clock = next(i for i, r in enumerate(recs) if r[1] == REC_CLOCK)
    order = [i for i in range(len(recs)) if i != pages]
    order.insert(order.index(clock), pages)  # among the device records
    restore_error(_rebuild(data, order), ["pages record out of order"])


def test_restore_mem_contradicts_stream():
    # The stream says 16 MiB; a --mem that disagrees must be refused, not
    # silently ignored. (Given 'g' on stdin, a restored fixture would exit 42.)
    stdin = tmpdir() / "g"
    stdin.write_bytes(b"g")
    with open(stdin, "rb") as f:
        r = run_ferry(["run", "--restore", str(FIXTURE), "--mem", "64M"], timeout=30, stdin=f)
    check_one_error(r, ["RAM", "--mem", "MiB"])


def test_restore_without_builtin_guest():
    # A destination host needs no kernel: restoring must work with no
    # built-in guest anywhere (binary copied to an empty directory).
    d = tmpdir() / "lonely"
    d.mkdir()
    exe = d / "ferry"
    shutil.copy2(harness.ferry(), exe)
    stdin = tmpdir() / "g"
    stdin.write_bytes(b"g")
    env = dict(os.environ)
    env.pop("FERRY_GUEST_DIR", None)
    with open(stdin, "rb") as f:
        p = subprocess.run([str(exe), "run", "--restore", str(FIXTURE)], stdin=f, capture_output=True,
                           env=env, timeout=harness.scaled(60))
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    assert_no_sanitizer(out + err)
    assert p.returncode == 42 and "counter: ok" in out, (
        f"restore on a host without the built-in guest: exit {p.returncode}\n{out}\n{err}")


# --------------------------------------------------------------------------
# A stream from a differently configured machine
# --------------------------------------------------------------------------

def _disk(name="disk.img"):
    p = tmpdir() / name
    with open(p, "wb") as f:
        f.truncate(1 << 20)
    return str(p)


def test_restore_with_drive_the_stream_lacks():
    img = _disk()
    why = probe_drive(["--drive", f"file={img}"])
    if why:
        raise Skip(f"no virtio-blk file backend: {why}")
    restore_error(fixture(), ["virtio-blk", "drive", "slot"], extra=["--drive", f"file={img}"])


def test_restore_without_the_streams_drive():
    img = _disk()
    why = probe_drive(["--drive", f"file={img}"])
    if why:
        raise Skip(f"no virtio-blk file backend: {why}")
    data = fresh_save("--drive", f"file={img}")
    restore_error(data, ["--drive", "virtio-blk"])


def test_incoming_with_drive_the_stream_lacks():
    img = _disk()
    why = probe_drive(["--drive", f"file={img}"])
    if why:
        raise Skip(f"no virtio-blk file backend: {why}")
    port = free_port()
    data = fixture()
    with Background([harness.ferry(), "run", "--incoming", f"tcp:127.0.0.1:{port}",
                     "--drive", f"file={img}", "--console", "none"]) as dst:
        s = wait_for(lambda: _try_connect(port, dst), 30, "the destination to listen")
        try:
            s.sendall(data[:4096])
            time.sleep(0.2)
        except OSError:
            pass
        finally:
            s.close()
        r = dst.finish(60)
    check_one_error(r, ["virtio-blk", "drive", "slot"], "destination")


def _try_connect(port, bg):
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        if not bg.running():
            raise AssertionError(f"destination exited\n{bg.finish(5).describe()}")
        return None
