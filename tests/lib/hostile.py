"""Helpers for the hostile-peer tests (tests/cli/test_hostile*.py): fake
sources, primaries and destinations speaking just enough of the migration
stream (docs/migration-stream.md), ferry processes watched for how fast they
exit and how much memory they hold.

    from hostile import Ferry, header, machine_record, ...

Every timeout is scaled by FERRY_TEST_TIMEOUT_SCALE. Standard library only.
"""

import os
import signal
import socket
import struct
import subprocess
import tempfile
import time

import harness
from migration import LOCALHOST, crc32c, free_port, record, wait_for

REC_MACHINE = 1
REC_PAGES = 2
REC_CLOCK = 4
REC_END = 6
REC_CHECKPOINT = 7
REC_HEARTBEAT = 0x80000009
REC_PING = 12
REC_READY = 0x100
REC_GO = 0x101
REC_RUNNING = 0x102
REC_ERROR = 0x103
REC_ACK = 0x104
REC_PONG = 0x105
REC_NAMES = {1: "MACHINE", 2: "PAGES", 3: "DEVICE", 4: "CLOCK", 5: "VERIFY", 6: "END",
             7: "CHECKPOINT", 0x80000008: "ROUND", 0x80000009: "HEARTBEAT", 12: "PING",
             0x100: "READY", 0x101: "GO", 0x102: "RUNNING", 0x103: "ERROR", 0x104: "ACK",
             0x105: "PONG"}
RAM_BASE = 0x80000000
VIRTIO_SLOTS = 8


def header(version=2):
    return b"FERRYMIG" + struct.pack("<II", version, 0)


def machine_record(ram=16 << 20, harts=1, flags=0):
    """A MACHINE record for a bare machine (no SBI: no entropy device, all
    virtio slots empty), which a destination with no --drive/--net takes."""
    body = struct.pack("<QQIIQI", RAM_BASE, ram, harts, flags, 0, VIRTIO_SLOTS)
    body += b"\0" * (4 * VIRTIO_SLOTS)
    return record(REC_MACHINE, body)


def clock_record(ns=1_000_000):
    return record(REC_CLOCK, struct.pack("<Q", ns))


def read_record(sock):
    """(type, body) of the next record from sock; None at EOF."""
    head = _recv_exact(sock, 8)
    if len(head) < 8:
        return None
    rtype, rlen = struct.unpack("<II", head)
    rest = _recv_exact(sock, rlen + 4)
    if len(rest) < rlen + 4:
        return None
    crc = struct.unpack("<I", rest[rlen:])[0]
    assert crc == crc32c(head + rest[:rlen]), f"bad CRC on record {rtype:#x} from ferry"
    return rtype, rest[:rlen]


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def connect(port, timeout=30):
    """A connection to 127.0.0.1:port once something listens there."""
    def attempt():
        try:
            return socket.create_connection((LOCALHOST, port), timeout=1)
        except OSError:
            return None
    s = wait_for(attempt, timeout, f"a listener on port {port}")
    s.settimeout(harness.scaled(30))
    return s


def rss_kib(pid, field="VmRSS"):
    """VmRSS (or VmHWM) of pid in KiB, None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Ferry:
    """`ferry ARGS...` in its own process group, console none, stderr to a
    file; .stderr() reads it so far; .wait_stderr(text); .signal(sig) and
    .exit_within(seconds) to time how fast it ends."""

    def __init__(self, args, umask=None, stdin=subprocess.DEVNULL):
        self.errf = tempfile.NamedTemporaryFile(prefix="ferry-err-", delete=False)
        self.outf = tempfile.NamedTemporaryFile(prefix="ferry-out-", delete=False)
        self.argv = [harness.ferry(), *map(str, args)]
        pre = (lambda: os.umask(umask)) if umask is not None else None
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=self.outf, stderr=self.errf,
                                     process_group=0, preexec_fn=pre)
        self.pid = self.proc.pid
        self.maxrss_kib = None

    def stderr(self):
        with open(self.errf.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def running(self):
        return self.proc.poll() is None

    def wait_stderr(self, text, timeout=30):
        def seen():
            if text in self.stderr():
                return True
            if not self.running():
                raise AssertionError(f"ferry exited ({self.proc.returncode}) before printing "
                                     f"{text!r}\n{self.describe()}")
            return False
        wait_for(seen, timeout, f"{text!r} on ferry's stderr")

    def wait_path(self, path, timeout=30):
        def there():
            if not self.running():
                raise AssertionError(f"ferry exited before creating {path}\n{self.describe()}")
            return os.path.exists(path)
        wait_for(there, timeout, path)

    def signal(self, sig=signal.SIGTERM):
        os.kill(self.pid, sig)
        return time.monotonic()

    def wait(self, timeout):
        """Exit status within timeout (unscaled seconds), else None."""
        try:
            _, status, ru = os.wait4(self.pid, 0) if timeout is None else _wait4(self.pid, timeout)
        except ChildProcessError:
            return self.proc.returncode
        if status is None:
            return None
        self.maxrss_kib = ru.ru_maxrss
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode

    def exit_within(self, seconds, since=None):
        """Waits up to `seconds` (unscaled: the bound under test) from
        `since` for the exit; returns (status, seconds taken)."""
        start = since if since is not None else time.monotonic()
        rc = self.wait(max(0.0, start + seconds - time.monotonic()))
        took = time.monotonic() - start
        if rc is None:
            raise AssertionError(f"ferry still runs {took:.2f} s later (bound {seconds} s)\n"
                                 f"{self.describe()}")
        return rc, took

    def describe(self):
        return (f"command: {' '.join(self.argv)}\nstatus: {self.proc.returncode}\n"
                f"--- stderr ---\n{harness.tail(self.stderr())}")

    def check_clean(self):
        harness.assert_no_sanitizer(self.stderr(), "ferry's stderr")

    def kill(self):
        harness.kill_group(self.pid)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close(self):
        self.kill()
        for f in (self.errf, self.outf):
            f.close()
            try:
                os.unlink(f.name)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _wait4(pid, timeout):
    deadline = time.monotonic() + timeout
    while True:
        wpid, status, ru = os.wait4(pid, os.WNOHANG)
        if wpid == pid:
            return wpid, status, ru
        if time.monotonic() >= deadline:
            return pid, None, None
        time.sleep(0.01)


def incoming(*extra, port=None):
    """A destination waiting on a free port: (Ferry, port)."""
    port = port or free_port()
    f = Ferry(["run", "--incoming", f"tcp:{LOCALHOST}:{port}", "--console", "none", *extra])
    f.wait_stderr("waiting for a migration stream")
    return f, port


def standby(*extra, port=None):
    port = port or free_port()
    f = Ferry(["run", "--standby", f"tcp:{LOCALHOST}:{port}", "--console", "none", *extra])
    f.wait_stderr("waiting for a primary")
    return f, port
