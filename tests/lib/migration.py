"""Helpers for ferry's migration tests (tests/linux/test_migrate*.py,
tests/cli/test_migrate_input.py).

    from migration import SourceVM, IncomingVM, migrate, start_memdirty, ...

    with SourceVM(["--mem", "128M"]) as src, IncomingVM() as dst:
        src.boot()
        md = start_memdirty(src)
        dst.wait_listening()
        res, report = migrate(src.control, dst.uri, "--verify")
        dst.wait_resumed()
        dst.wait_prompt()
        md.check_continues(dst)

SourceVM     `ferry run ... --control PATH` (a FerryVM with a control socket)
IncomingVM   `ferry run --incoming tcp:127.0.0.1:PORT ...` on a pty: no boot
             banner; wait_listening() / wait_resumed() / wait_failed()
RestoredVM   `ferry run --restore FILE ...` on a pty
StreamProxy  a TCP relay between source and destination that can throttle,
             cut the connection, flip a byte of a record, or drop READY/GO
Memdirty     the guest's memdirty running in the background, logging to a
             file in the guest's tmpfs (which travels with the guest)

Every timeout is scaled by FERRY_TEST_TIMEOUT_SCALE. Standard library only.
"""

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import harness
from ferryvm import FerryVM, VMError

LOCALHOST = "127.0.0.1"

# Record types of the migration stream (src/migrate/stream.h).
REC_MACHINE = 1
REC_PAGES = 2
REC_DEVICE = 3
REC_CLOCK = 4
REC_VERIFY = 5
REC_END = 6
REC_BLOCKS = 14
REC_BLOCKS_Z = 0x21
REC_READY = 0x100
REC_GO = 0x101
REC_RUNNING = 0x102
REC_ERROR = 0x103
STREAM_HEADER_SIZE = 16
STREAM_MAGIC = b"FERRYMIG"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_for(cond, timeout, what, interval=0.05):
    """Poll cond() until it returns something true; return that. Raises
    AssertionError naming `what` after `timeout` (scaled) seconds."""
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {harness.scaled(timeout):.0f} s waiting for {what}")
        time.sleep(interval)


def first_error_line(text):
    """The first `ferry: ...` line of stderr text (or '')."""
    for line in text.splitlines():
        if line.startswith("ferry: "):
            return line
    return ""


# --------------------------------------------------------------------------
# Stream files
# --------------------------------------------------------------------------

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli), as src/base/crc32c.c computes it."""
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def record(rtype, body=b""):
    """One stream record: u32 type, u32 length, body, u32 CRC-32C of all
    that precedes it."""
    head = struct.pack("<II", rtype, len(body)) + body
    return head + struct.pack("<I", crc32c(head))


def records(data, offset=STREAM_HEADER_SIZE):
    """[(offset, type, body length)] of the records in a stream's bytes
    (after the header, or from `offset`), up to the last complete one."""
    out = []
    while offset + 8 <= len(data):
        rtype, rlen = struct.unpack_from("<II", data, offset)
        if offset + 8 + rlen + 4 > len(data):
            break
        out.append((offset, rtype, rlen))
        offset += 8 + rlen + 4
    return out


# --------------------------------------------------------------------------
# Control socket
# --------------------------------------------------------------------------

def ctl(path, *words, timeout=30, check=True):
    """`ferry ctl PATH WORDS...`; returns the parsed JSON response. With
    check, a non-zero exit raises AssertionError."""
    res = harness.run_ferry(["ctl", path, *words], timeout=timeout)
    harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry ctl output")
    if check and res.rc != 0:
        raise AssertionError(f"ferry ctl {' '.join(words)} failed\n{res.describe()}")
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        if check:
            raise AssertionError(f"ferry ctl {' '.join(words)}: no JSON response\n{res.describe()}")
        return None


def ctl_request(path, obj, timeout=10):
    """Send one JSON request straight to the control socket (no ferry ctl
    process); returns the parsed response."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(harness.scaled(timeout))
    try:
        s.connect(path)
        s.sendall(json.dumps(obj).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError(f"control socket {path} closed without an answer to {obj}")
            buf += chunk
        return json.loads(buf)
    finally:
        s.close()


def migration_state(path):
    """The control socket's migrate-status "migration" object (or None when
    the socket does not answer)."""
    try:
        return ctl_request(path, {"cmd": "migrate-status"}).get("migration")
    except (OSError, ValueError, AssertionError):
        return None


# --------------------------------------------------------------------------
# VMs
# --------------------------------------------------------------------------

class SourceVM(FerryVM):
    """`ferry run ARGS... --control PATH`: a VM that can be migrated.
    .control is the socket path (in a private temp dir, removed on close)."""

    def __init__(self, args=(), name="source", **kw):
        self.ctl_dir = tempfile.mkdtemp(prefix="fmig-")
        self.control = os.path.join(self.ctl_dir, "ctl.sock")
        super().__init__([*args, "--control", self.control], **kw)
        self.name = name

    def ctl(self, *words, **kw):
        return ctl(self.control, *words, **kw)

    def status(self):
        return ctl_request(self.control, {"cmd": "status"})

    def wait_control(self, timeout=30):
        """Wait until the control socket answers (ferry creates it after
        building the machine)."""
        def ready():
            if self.proc.poll() is not None:
                raise self._error(VMError, "exited before its control socket answered")
            try:
                return self.status().get("ok")
            except (OSError, ValueError, AssertionError):
                return False
        wait_for(ready, timeout, f"control socket {self.control}")

    def cleanup_files(self):
        super().cleanup_files()
        shutil.rmtree(self.ctl_dir, ignore_errors=True)


class IncomingVM(SourceVM):
    """`ferry run --incoming tcp:127.0.0.1:PORT ARGS...` (with a control
    socket of its own, so it can be migrated again). Its console is a pty
    like FerryVM's, but there is no boot: after wait_resumed() press Enter
    (wait_prompt) to get the guest's shell."""

    def __init__(self, args=(), port=None, host=LOCALHOST, name="destination", **kw):
        self.port = port or free_port()
        self.uri = f"tcp:{host}:{self.port}"
        super().__init__(["--incoming", self.uri, *args], name=name, **kw)

    def wait_listening(self, timeout=30):
        """Wait for `waiting for a migration stream` on stderr."""
        def ready():
            if "waiting for a migration stream" in self.stderr():
                return True
            if self.proc.poll() is not None:
                raise self._error(VMError, "exited before listening for the stream")
            return False
        wait_for(ready, timeout, f"{self.name} to listen on {self.uri}")
        return self

    def wait_resumed(self, timeout=60):
        """Wait for `guest resumed from` on stderr (the guest runs here)."""
        def ready():
            if "guest resumed from" in self.stderr():
                return True
            if self.proc.poll() is not None:
                raise self._error(VMError, "exited instead of resuming the guest")
            return False
        wait_for(ready, timeout, f"{self.name} to resume the guest")
        return self

    def wait_failed(self, timeout=60):
        """Wait for the destination to give up; it must exit with a status
        > 0 (not a signal) and say why in a `ferry: ` line on stderr, and
        must not have resumed the guest. Returns that line."""
        rc = self.wait_exit(timeout)
        err = self.stderr()
        harness.assert_no_sanitizer(err, f"{self.name} stderr")
        if rc <= 0:
            raise self._error(VMError, f"destination exited with {rc}, expected a failure status > 0")
        if "guest resumed from" in err:
            raise self._error(VMError, "destination resumed the guest although the migration failed")
        lines = [ln for ln in err.splitlines() if ln.startswith("ferry: ")
                 and "waiting for a migration stream" not in ln and "note:" not in ln]
        if not lines:
            raise self._error(VMError, "destination failed without a reason on stderr")
        return lines[-1]


class RestoredVM(SourceVM):
    """`ferry run --restore FILE ARGS...` (with a control socket)."""

    def __init__(self, file, args=(), name="restored", **kw):
        super().__init__(["--restore", str(file), *args], name=name, **kw)

    wait_resumed = IncomingVM.wait_resumed


# --------------------------------------------------------------------------
# ferry migrate / save
# --------------------------------------------------------------------------

def migrate(control, uri, *opts, timeout=180, expect_ok=True):
    """`ferry migrate CONTROL URI OPTS... --json`. Returns (Result, report
    dict or None). With expect_ok, anything but exit 0 with state
    "completed" raises AssertionError with the output."""
    res = harness.run_ferry(["migrate", control, uri, *opts, "--json"], timeout=timeout)
    harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry migrate output")
    report = None
    try:
        report = json.loads(res.stdout)
    except ValueError:
        pass
    if expect_ok and (res.rc != 0 or not report or report.get("state") != "completed"):
        raise AssertionError(f"migration did not complete\n{res.describe()}")
    return res, report


class Background:
    """A command running in the background in its own process group, with
    stdout/stderr to files; .finish() waits and returns harness.Result."""

    def __init__(self, argv):
        self.argv = [str(a) for a in argv]
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.start = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=self.err, process_group=0)

    def running(self):
        return self.proc.poll() is None

    def stderr_so_far(self):
        """What the command wrote on stderr until now (it may still run)."""
        self.err.flush()
        with open(self.err.fileno(), "rb", closefd=False) as f:
            return os.pread(f.fileno(), 1 << 24, 0).decode("utf-8", "replace")

    def finish(self, timeout=120):
        try:
            rc = self.proc.wait(timeout=harness.scaled(timeout))
        except subprocess.TimeoutExpired:
            rc = None
        self.kill()
        self.out.seek(0)
        self.err.seek(0)
        res = harness.Result(self.argv, rc, self.out.read().decode("utf-8", "replace"),
                             self.err.read().decode("utf-8", "replace"),
                             time.monotonic() - self.start)
        self.out.close()
        self.err.close()
        if rc is None:
            raise AssertionError(f"did not finish within {harness.scaled(timeout):.0f} s\n"
                                 f"{res.describe()}")
        harness.assert_no_sanitizer(res.stdout + res.stderr, f"{self.argv[1]} output")
        return res

    def kill(self):
        harness.kill_group(self.proc.pid)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


def start_migrate(control, uri, *opts):
    """`ferry migrate ... --json` in the background (Background)."""
    return Background([harness.ferry(), "migrate", control, uri, *opts, "--json"])


def report_of(res):
    try:
        return json.loads(res.stdout)
    except ValueError:
        return None


def wait_migration(control, states, timeout=60):
    """Wait until the source's migration state is one of `states`
    (e.g. ("active",)); returns the migration object. A control socket
    that accepts but does not answer within 10 s fails the wait at once."""
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        try:
            mig = ctl_request(control, {"cmd": "migrate-status"}, timeout=10).get("migration")
        except socket.timeout:
            raise AssertionError(f"the control socket {control} accepted the connection but did "
                                 f"not answer migrate-status within {harness.scaled(10):.0f} s "
                                 f"(does it serve only one client at a time, and ferry migrate "
                                 f"holds it?)")
        if mig and mig.get("state") in states:
            return mig
        if time.monotonic() > deadline:
            raise AssertionError(f"migration state is {mig and mig.get('state')!r}, waited "
                                 f"{harness.scaled(timeout):.0f} s for {'/'.join(states)}: {mig}")
        time.sleep(0.05)


def save(control, file, *opts, timeout=120):
    """`ferry save CONTROL FILE OPTS...`; raises unless it exits 0."""
    res = harness.run_ferry(["save", control, str(file), *opts], timeout=timeout)
    harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry save output")
    if res.rc != 0:
        raise AssertionError(f"ferry save failed\n{res.describe()}")
    return res


def stream_version(path):
    """The version field of a saved stream's header."""
    with open(path, "rb") as f:
        head = f.read(STREAM_HEADER_SIZE)
    assert head[:8] == STREAM_MAGIC, f"{path} is not a ferry stream (header {head!r})"
    return struct.unpack_from("<I", head, 8)[0]


def assert_source_alive(src):
    """The source process still runs and its control socket says the guest
    is running (not paused, not stopped)."""
    if src.proc.poll() is not None:
        raise src._error(VMError, "source exited although the migration failed")
    st = src.status()
    assert st.get("state") == "running", f"source guest is {st.get('state')!r} after a failed migration: {st}"
    return st


# --------------------------------------------------------------------------
# memdirty in the guest
# --------------------------------------------------------------------------

_MD_LINE = re.compile(r"^memdirty: gen=(\d+) verified=(\d+) errors=(\d+)\s*$")


class Memdirty:
    """The guest's memdirty MiB MB_per_s (with `threads` writer threads),
    started in the background with its output going to `log` in the
    guest's /tmp (tmpfs: it lives in guest RAM and so travels with the
    guest).

    snapshot(vm)          the log's report lines, as read through vm's shell
    wait_reports(vm, n)   wait until the log has at least n report lines
    check_continues(vm, before, more=2)
                          the log read on vm (possibly another host) starts
                          with the `before` snapshot, then has `more` new
                          reports, all with errors=0, gen and verified never
                          decreasing, verified growing after `before`
    """

    def __init__(self, vm, mib=32, rate=16, log="/tmp/memdirty.log", threads=1):
        self.mib, self.rate, self.log, self.threads = mib, rate, log, threads
        args = f"{mib} {rate}" + (f" 0 {threads}" if threads != 1 else "")
        vm.run(f"memdirty {args} </dev/null >{log} 2>&1 & echo memdirty started")

    def read(self, vm):
        return vm.run(f"cat {self.log}", timeout=60)

    def snapshot(self, vm):
        text = self.read(vm)
        self.check_text(text, vm)
        return self.reports(text)

    @staticmethod
    def reports(text):
        out = []
        for line in text.splitlines():
            m = _MD_LINE.match(line.strip())
            if m:
                out.append(tuple(int(x) for x in m.groups()))
        return out

    def check_text(self, text, vm):
        if "CORRUPTION" in text:
            raise AssertionError(f"{vm.name}: memdirty found corrupted memory:\n{harness.tail(text, 30)}")
        bad = [ln for ln in text.splitlines() if ln.strip() and not _MD_LINE.match(ln.strip())]
        if bad:
            raise AssertionError(f"{vm.name}: unexpected memdirty output: {bad[:5]}")
        for gen, verified, errors in self.reports(text):
            if errors:
                raise AssertionError(f"{vm.name}: memdirty reports errors={errors}:\n"
                                     f"{harness.tail(text, 30)}")

    def wait_reports(self, vm, n, timeout=60):
        """Wait until at least n report lines; returns them."""
        deadline = time.monotonic() + harness.scaled(timeout)
        while True:
            reps = self.snapshot(vm)
            if len(reps) >= n:
                return reps
            if time.monotonic() > deadline:
                raise AssertionError(f"{vm.name}: memdirty printed {len(reps)} reports, "
                                     f"waited for {n}:\n{self.read(vm)}")
            time.sleep(0.5)

    def check_continues(self, vm, before, more=2, timeout=90):
        """See the class doc. Returns the reports read."""
        # A loaded host (tests running side by side) slows the guest: wait,
        # within the time limit, for the first pass that verifies pages
        # rather than for a fixed number of once-a-second reports.
        deadline = time.monotonic() + harness.scaled(timeout)
        want = len(before) + more
        while True:
            reps = self.wait_reports(vm, want, timeout)
            if not before or reps[-1][1] > before[-1][1] or time.monotonic() > deadline:
                break
            want = len(reps) + 1
        assert reps[:len(before)] == before, (
            f"{vm.name}: memdirty's log does not start with what it held before "
            f"(a lost or stale page of the guest's tmpfs?):\nbefore: {before}\nnow: {reps}")
        for (g0, v0, _), (g1, v1, _) in zip(reps, reps[1:]):
            assert g1 >= g0 and v1 >= v0, f"{vm.name}: memdirty went backwards: {reps}"
        if before:
            assert reps[-1][1] > before[-1][1], (
                f"{vm.name}: memdirty verified no more pages since {before[-1]}: {reps}")
        # Is it still running (not exited with an error status)?
        out = vm.run("pidof memdirty || echo none")
        assert "none" not in out, f"{vm.name}: memdirty is no longer running:\n{self.read(vm)}"
        return reps

    def stop(self, vm):
        """SIGTERM memdirty; it prints a last report and exits 0 if it never
        saw an error."""
        vm.run("kill $(pidof memdirty); sleep 1; cat " + self.log)
        text = self.read(vm)
        self.check_text(text, vm)
        return self.reports(text)


def poweroff(vm, timeout=60):
    """Type poweroff; the VM must exit 0."""
    rc = vm.poweroff(timeout)
    if rc != 0:
        raise vm._error(VMError, f"exited with status {rc} after poweroff")


def guest_uptime(vm):
    """The guest's /proc/uptime (seconds)."""
    out = vm.run("cat /proc/uptime")
    m = re.search(r"^(\d+\.\d+) ", out, re.M)
    assert m, f"{vm.name}: /proc/uptime printed {out!r}"
    return float(m.group(1))


# --------------------------------------------------------------------------
# Feature probes
# --------------------------------------------------------------------------

def fake_kernel(dirpath):
    """Write harness.fake_riscv_image() (an endless loop) to dirpath; a VM
    booting it runs forever doing nothing, cheaply."""
    p = os.path.join(dirpath, "fake-Image")
    with open(p, "wb") as f:
        f.write(harness.fake_riscv_image())
    return p


def probe_drive(spec_args, wait=3.0):
    """None if `ferry run` accepts these --drive/--net arguments (a VM with
    a fake kernel keeps running with them for `wait` s), else the reason
    ferry gave (its `ferry: ` error line), for a Skip. An exit without an
    error line (e.g. killed from outside) is retried, then taken as
    support: a real problem then fails the test instead of skipping it."""
    tmp = tempfile.mkdtemp(prefix="fprobe-")
    try:
        argv = [harness.ferry(), "run", "--kernel", fake_kernel(tmp), "--mem", "16M",
                "--console", "none", *spec_args]
        for _ in range(2):
            with tempfile.TemporaryFile() as err:
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err, process_group=0)
                try:
                    rc = p.wait(timeout=harness.scaled(wait))
                except subprocess.TimeoutExpired:
                    rc = None
                harness.kill_group(p.pid)
                p.wait()
                err.seek(0)
                text = err.read().decode("utf-8", "replace")
            if rc is None:
                return None
            harness.assert_no_sanitizer(text, "ferry run (feature probe)")
            line = first_error_line(text)
            if rc > 0 and line:
                return line
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# A man in the middle
# --------------------------------------------------------------------------

class RecordRelay:
    """One TCP connection relayed from 127.0.0.1:.port (give .uri to the
    sender) to 127.0.0.1:dest_port, for proxies that follow a ferry stream
    record by record: a subclass gives _pump_forward(src, dst) and
    _pump_back(src, dst), run on two threads once both sides are connected.

    .forwarded counts bytes relayed towards dest_port (the subclass's
    _send adds them), .events describes what happened (for assertion
    messages), .done is set when the relay ended."""

    BACK_JOIN_S = 120  # how long the end of the relay waits for _pump_back

    def __init__(self, dest_port):
        self.dest_port = dest_port
        self.forwarded = 0
        self.events = []
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._socks = []
        self._closed = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((LOCALHOST, 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.uri = f"tcp:{LOCALHOST}:{self.port}"

    def start(self):
        """Call at the end of the subclass's __init__."""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _event(self, msg):
        self.events.append(f"{time.monotonic():.3f} {msg}")

    def _serve(self):
        try:
            self.listener.settimeout(harness.scaled(300))
            try:
                a, _ = self.listener.accept()
            except OSError as e:
                self._event(f"accept failed: {e}")
                return
            self.listener.close()
            b = socket.create_connection((LOCALHOST, self.dest_port), timeout=harness.scaled(30))
            b.settimeout(None)
            a.settimeout(None)
            with self._lock:
                self._socks = [a, b]
            self._event("connected")
            back = threading.Thread(target=self._pump_back, args=(b, a), daemon=True)
            back.start()
            self._pump_forward(a, b)
            back.join(harness.scaled(self.BACK_JOIN_S))
        except Exception as e:  # noqa: BLE001 - recorded for the test's message
            self._event(f"relay error: {type(e).__name__}: {e}")
        finally:
            self.close()
            self.done.set()

    def close(self):
        """Shut both connections down (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        try:
            self.listener.close()
        except OSError:
            pass

    @staticmethod
    def _recv_exact(sock, n):
        """n bytes, or fewer (maybe none) when the peer closed first."""
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                break
            buf += chunk
        return bytes(buf)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class StreamProxy(RecordRelay):
    """Relays one migration connection from 127.0.0.1:.port (give .uri to
    ferry migrate) to the destination on 127.0.0.1:dest_port, understanding
    the stream's records so it can misbehave at a precise point
    (RecordRelay has the plumbing):

      rate=B          forward at most B bytes/s source -> destination
      cut_after=N     after N bytes source -> destination, close both sides
      corrupt=TYPE    flip one byte in the body of the first record of TYPE
                      (REC_PAGES with data: a page; REC_DEVICE: the final
                      device state) on its way to the destination
      drop="ready"    when the destination says READY, close both sides
                      instead of passing it on (the source never hears it)
      drop="go"       pass READY on, but when the source sends GO, close
                      both sides instead (the destination never hears it)
      on_bytes=(N, f) call f() (in the relay thread) once N bytes went by
      cut_in=(TYPE, N) pass N records of TYPE on, then cut in the middle of
                      the next one (e.g. REC_BLOCKS: during a disk copy)

    .forwarded counts bytes relayed to the destination, .events describes
    what happened (for assertion messages), .done is set when it ended."""

    def __init__(self, dest_port, rate=None, cut_after=None, corrupt=None, drop=None,
                 on_bytes=None, cut_in=None):
        super().__init__(dest_port)
        self.cut_in, self._cut_seen = cut_in, 0
        self.types = {}   # record type -> how many were relayed to the destination
        self.rate, self.cut_after, self.corrupt, self.drop = rate, cut_after, corrupt, drop
        self.on_bytes = on_bytes
        self.corrupted = False
        self._ready_passed = False
        self.start()

    def _send(self, dst, data):
        """Forward data source -> destination, honouring rate/cut_after/on_bytes.
        Returns False once the connection was cut."""
        start = getattr(self, "_t0", None)
        if start is None:
            start = self._t0 = time.monotonic()
        pos = 0
        while pos < len(data):
            chunk = data[pos:pos + 65536]
            if self.cut_after is not None and self.forwarded + len(chunk) >= self.cut_after:
                chunk = chunk[:max(self.cut_after - self.forwarded, 0)]
                dst.sendall(chunk)
                self.forwarded += len(chunk)
                self._event(f"cut after {self.forwarded} bytes")
                self.close()
                return False
            dst.sendall(chunk)
            self.forwarded += len(chunk)
            pos += len(chunk)
            if self.on_bytes and self.forwarded >= self.on_bytes[0]:
                f = self.on_bytes[1]
                self.on_bytes = None
                self._event(f"on_bytes at {self.forwarded}")
                f()
            if self.rate:
                due = start + self.forwarded / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        return True

    def _pump_forward(self, src, dst):
        head = self._recv_exact(src, STREAM_HEADER_SIZE)
        if not head:
            self._event("source closed before the header")
            return
        if not self._send(dst, head):
            return
        while True:
            rh = self._recv_exact(src, 8)
            if not rh or len(rh) < 8:
                self._event(f"source closed the stream after {self.forwarded} bytes")
                if rh:
                    self._send(dst, rh)
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            rtype, rlen = struct.unpack("<II", rh)
            rest = self._recv_exact(src, rlen + 4) or b""
            rec = bytearray(rh + rest)
            self.types[rtype] = self.types.get(rtype, 0) + 1
            if self.cut_in and rtype == self.cut_in[0]:
                self._cut_seen += 1
                if self._cut_seen > self.cut_in[1]:
                    half = bytes(rec[:len(rec) // 2])
                    self._event(f"cutting in record {self._cut_seen} of type {rtype:#x} "
                                f"after {self.forwarded + len(half)} bytes")
                    self._send(dst, half)
                    self.close()
                    return
            if rtype == REC_GO:
                self._event("source sent GO")
                if self.drop == "go":
                    self._event("dropping GO: closing both sides")
                    self.close()
                    return
            if (self.corrupt is not None and not self.corrupted and rtype == self.corrupt
                    and len(rest) == rlen + 4):
                at = None
                if rtype == REC_PAGES and rlen >= 8:
                    n = struct.unpack_from("<I", rec, 8)[0]
                    data_off = 8 + 8 + 8 * n
                    if rlen - (8 + 8 * n) >= 4096:
                        at = data_off + 2048  # the middle of the first page with data
                elif rlen > 0:
                    at = 8 + rlen // 2
                if at is not None:
                    rec[at] ^= 0x40
                    self.corrupted = True
                    self._event(f"flipped bit 6 of stream byte {self.forwarded + at} "
                                f"(record type {rtype:#x}, {rlen} bytes)")
            if not self._send(dst, bytes(rec)):
                return

    def _pump_back(self, src, dst):
        """Destination -> source: records, no header."""
        try:
            while True:
                rh = self._recv_exact(src, 8)
                if not rh or len(rh) < 8:
                    self._event("destination closed its side")
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                rtype, rlen = struct.unpack("<II", rh)
                rest = self._recv_exact(src, rlen + 4) or b""
                name = {REC_READY: "READY", REC_RUNNING: "RUNNING",
                        REC_ERROR: "ERROR"}.get(rtype, hex(rtype))
                detail = f": {rest[:rlen].decode('utf-8', 'replace')}" if rtype == REC_ERROR else ""
                self._event(f"destination sent {name}{detail}")
                if rtype == REC_READY and self.drop == "ready":
                    self._event("dropping READY: closing both sides")
                    self.close()
                    return
                dst.sendall(rh + rest)
        except OSError as e:
            self._event(f"return path: {e}")

    def describe(self):
        return "proxy events:\n  " + "\n  ".join(self.events or ["(none)"])
