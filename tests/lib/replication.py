"""Helpers for ferry's continuous-replication tests (tests/linux/test_replicate.py).

    from replication import (PrimaryVM, StandbyVM, RequestClient, replicate, ...)

    with netns.Topology() as t:
        disk = shared_disk(tmp)
        primary = PrimaryVM(topo=t, args=["--drive", f"file={disk}"])
        primary.start(); primary.boot()
        start_reqlog(primary)
        standby = StandbyVM(f"tcp:{t.HOST_B_IP}:5555", topo=t,
                            args=["--drive", f"file={disk}"])
        standby.start(); standby.wait_listening()
        replicate(primary.control, standby.uri, topo=t)
        client = RequestClient(t)
        client.wait_acked(20)
        primary.kill9()
        kind, epoch = standby.wait_takeover()
        ...
        check_request_log(standby.run("sync; cat /mnt/log"), client.sent, client.acked)

PrimaryVM        `ferry run ... --control PATH` (a migration.SourceVM), optionally
                 inside host-a's namespace with --net tap=tap0
StandbyVM        `ferry run --standby tcp:ADDR:PORT ...` on a pty (inside
                 host-b's namespace or on loopback); wait_listening(),
                 wait_takeover() (-> ("failover"|"switchover", epoch)),
                 wait_refused() (exits non-zero without running the guest)
ControlledStandby
                 a StandbyVM with --control SOCK: status(), wait_control()
replicate()      `ferry replicate SOCK URI --interval 25ms` (waits for protected)
switchover()     `ferry switchover SOCK` (-> (Result, downtime_ms))
RequestClient    the numbered-request client of the guest's reqlog service,
                 running in the client namespace; records what was sent and
                 what was acknowledged
check_request_log()
                 the reqlog file read in the guest holds every acknowledged
                 request, in order, each at most once, nothing never sent
CheckpointProxy  a relay between primary and standby (on 127.0.0.1) that
                 understands the replication stream's epochs and, once armed,
                 flips a byte in (or cuts the connection in the middle of) a
                 later checkpoint
GuestCounter     a guest loop appending an increasing counter to /tmp (guest
                 RAM) every 100 ms

Every timeout is scaled by FERRY_TEST_TIMEOUT_SCALE. Standard library only.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import harness
from ferryvm import FerryVM, VMError
from migration import (LOCALHOST, REC_END, REC_PAGES, STREAM_HEADER_SIZE, RecordRelay, SourceVM,
                       ctl_request, wait_for)

SERVICE_PORT = 7000
REPL_PORT = 5555
LOG = "/mnt/log"

REC_CHECKPOINT = 7
REC_ACK = 0x104


def _ns_prefix(topo, host):
    return ["ip", "netns", "exec", topo.host_ns(host)] if topo else []


def shared_disk(dirpath):
    """A copy of build/guest/data.ext4 at dirpath/shared.ext4: the shared
    storage both hosts use. Skip when the guest's data disk was not built."""
    gd = harness.require_guest()
    src = gd / "data.ext4"
    if not src.exists():
        raise harness.Skip(f"no {src} (run make guest)")
    dst = os.path.join(dirpath, "shared.ext4")
    shutil.copyfile(src, dst)
    return dst


def read_disk_file(image, path):
    """The contents of `path` in the ext4 image (debugfs), or None when
    debugfs is not installed."""
    debugfs = shutil.which("debugfs") or shutil.which("debugfs", path="/usr/sbin:/sbin")
    if not debugfs:
        return None
    r = subprocess.run([debugfs, "-R", f"cat {path}", image], capture_output=True, timeout=60)
    return r.stdout.decode("utf-8", "replace")


# --------------------------------------------------------------------------
# VMs
# --------------------------------------------------------------------------

class PrimaryVM(SourceVM):
    """`ferry run ARGS... --control PATH` (inside host-a's namespace with
    --net tap=tap0 when topo is given)."""

    def __init__(self, args=(), topo=None, host="a", name="primary", **kw):
        net = ["--net", f"tap={topo.TAP}"] if topo else []
        super().__init__([*net, *args], name=name, **kw)
        self.argv = [*_ns_prefix(topo, host), *self.argv]

    def replication(self, timeout=10):
        """The control socket's "replication" object (or None)."""
        return ctl_request(self.control, {"cmd": "replication-status"}, timeout=timeout).get("replication")

    def kill9(self):
        """SIGKILL the ferry process (a crash of the primary's host)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        rc = self.proc.wait(timeout=10)
        self.returncode = rc
        return rc


class StandbyVM(FerryVM):
    """`ferry run --standby URI ARGS...` (with --fence CMD and
    --heartbeat-timeout T when given), inside host-b's namespace with
    --net tap=tap0 when topo is given. Its console is a pty: after the
    takeover, wait_prompt() gives the guest's shell."""

    def __init__(self, uri, args=(), topo=None, host="b", fence=None, heartbeat=None,
                 name="standby", **kw):
        self.uri = uri
        net = ["--net", f"tap={topo.TAP}"] if topo else []
        extra = []
        if fence is not None:
            extra += ["--fence", fence]
        if heartbeat is not None:
            extra += ["--heartbeat-timeout", heartbeat]
        super().__init__(["--standby", uri, *net, *extra, *args], **kw)
        self.name = name
        self.argv = [*_ns_prefix(topo, host), *self.argv]

    def wait_listening(self, timeout=30):
        def ready():
            if "waiting for a" in self.stderr():
                return True
            if self.proc.poll() is not None:
                raise self._error(VMError, "exited before listening for the primary")
            return False
        wait_for(ready, timeout, f"{self.name} to listen on {self.uri}")
        return self

    _TAKEOVER = re.compile(r"standby: (primary lost: failing over|switchover: taking over) "
                           r"from checkpoint (\d+)")

    def takeover(self):
        """("failover" | "switchover", epoch) once stderr says so, else None."""
        m = self._TAKEOVER.search(self.stderr())
        if not m:
            return None
        return ("failover" if "failing over" in m.group(1) else "switchover", int(m.group(2)))

    def wait_takeover(self, timeout=60):
        """Wait until the standby took over and resumed the guest; returns
        takeover()."""
        def ready():
            t = self.takeover()
            if t and "guest resumed from" in self.stderr():
                return t
            if self.proc.poll() is not None:
                raise self._error(VMError, "exited instead of taking over")
            return None
        return wait_for(ready, timeout, f"{self.name} to take over")

    def wait_refused(self, timeout=60):
        """The standby must exit with a status > 0 without ever running the
        guest; returns its stderr."""
        rc = self.wait_exit(timeout)
        err = self.stderr()
        harness.assert_no_sanitizer(err, f"{self.name} stderr")
        if rc <= 0:
            raise self._error(VMError, f"standby exited with {rc}, expected a failure status > 0")
        if "guest resumed from" in err or self.takeover():
            raise self._error(VMError, "standby ran the guest although it must not take over")
        return err


class ControlledStandby(StandbyVM):
    """A StandbyVM with --control SOCK (in a private temp dir)."""

    def __init__(self, uri, args=(), **kw):
        self.ctl_dir = tempfile.mkdtemp(prefix="fsby-")
        self.control = os.path.join(self.ctl_dir, "ctl.sock")
        super().__init__(uri, [*args, "--control", self.control], **kw)

    def status(self):
        return ctl_request(self.control, {"cmd": "status"})

    def wait_control(self, timeout=30):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"standby exited before its control socket answered\n"
                                     f"{self.stderr()}")
            try:
                return self.status().get("ok")
            except (OSError, ValueError, AssertionError):
                return False
        wait_for(ready, timeout, f"control socket {self.control}")

    def cleanup_files(self):
        super().cleanup_files()
        shutil.rmtree(self.ctl_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# ferry replicate / switchover
# --------------------------------------------------------------------------

def replicate(control, uri, interval="25ms", topo=None, timeout=180, opts=()):
    """`ferry replicate CONTROL URI --interval I OPTS...` (inside host-a's
    namespace with topo); it returns once the standby holds a first
    checkpoint. Raises unless it exits 0 saying `protected`."""
    argv = [*_ns_prefix(topo, "a"), harness.ferry(), "replicate", control, uri,
            "--interval", interval, *opts]
    res = harness.run_cmd(argv, timeout=timeout)
    harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry replicate output")
    if res.rc != 0 or "protected" not in res.stdout:
        raise AssertionError(f"ferry replicate did not protect the VM\n{res.describe()}")
    return res


def replication_status_cli(control):
    """`ferry replicate CONTROL --status` parsed."""
    res = harness.run_ferry(["replicate", control, "--status"], timeout=30)
    harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry replicate --status output")
    if res.rc != 0:
        raise AssertionError(f"ferry replicate --status failed\n{res.describe()}")
    try:
        return json.loads(res.stdout)
    except ValueError:
        raise AssertionError(f"ferry replicate --status printed no JSON\n{res.describe()}")


def switchover(control, topo=None, timeout=120):
    """`ferry switchover CONTROL`; returns (Result, downtime in ms)."""
    argv = [*_ns_prefix(topo, "a"), harness.ferry(), "switchover", control]
    res = harness.run_cmd(argv, timeout=timeout)
    harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry switchover output")
    m = re.search(r"downtime (?:at most )?([\d.]+) ms", res.stdout)
    if res.rc != 0 or not m:
        raise AssertionError(f"ferry switchover failed\n{res.describe()}")
    return res, float(m.group(1))


def wait_protected(vm, epochs_after=None, timeout=60):
    """Wait until the primary's replication is protected (and, with
    epochs_after, acked_epoch > epochs_after); returns the object."""
    def ok():
        r = vm.replication()
        if r and r.get("state") == "protected" and (
                epochs_after is None or r.get("acked_epoch", 0) > epochs_after):
            return r
        return None
    return wait_for(ok, timeout, f"{vm.name} to be protected")


# --------------------------------------------------------------------------
# The guest's request log service and its client
# --------------------------------------------------------------------------

def start_reqlog(vm, port=SERVICE_PORT, log=LOG, mount=True):
    """Mount the shared disk at /mnt (read-write) and start `reqlog PORT
    LOG` in the background; wait until it listens."""
    if mount:
        vm.run("mkdir -p /mnt && mount /dev/vda /mnt && rm -f " + log)
    vm.run(f"reqlog {port} {log} </dev/null >/tmp/reqlog.out 2>&1 & echo reqlog started")
    vm.run(f"for i in $(seq 30); do netstat -ltn | grep -q ':{port} ' && break; sleep 0.5; done; "
           f"netstat -ltn | grep -q ':{port} '", timeout=60)


def payload(n):
    """The payload of request n (checked in the log)."""
    return "req%d-%08x" % (n, (n * 2654435761) % (1 << 32))


# Part of the client scripts (CLIENT here, multiclient.CLIENT), which run
# as `python -c`: waits on socket s (with a short timeout set) for the line
# "ACK n", buf holding the bytes already received; returns (buf, error),
# error None once it came, else why not (a wrong answer, no ACK within
# req_timeout of t0, the connection lost or closed).
AWAIT_ACK = r"""
def await_ack(s, n, buf, t0, req_timeout):
    while True:
        if b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line == b"ACK %d" % n:
                return buf, None
            return buf, "request %d: unexpected answer %r" % (n, line[:80])
        if time.monotonic() - t0 > req_timeout:
            return buf, "request %d: no ACK within %.0f s" % (n, req_timeout)
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            continue
        except OSError as e:
            return buf, "request %d: connection error: %s" % (n, e)
        if not chunk:
            return buf, "request %d: the guest closed the connection" % n
        buf += chunk
"""

# The client: argv = addr port connect_timeout request_timeout. Sends
# "N PAYLOAD\n" for N = 1, 2, ... one after another, each after the ACK of
# the previous one. Prints JSON lines: {"event": "connected"},
# {"event": "sent", "n": N}, {"event": "ack", "n": N}, and {"event": "final",
# ...} when told to stop (a line on stdin or its end: it finishes the
# request in flight first) or on an error (connection lost, wrong answer,
# no ACK within request_timeout). Times are CLOCK_MONOTONIC.
CLIENT = AWAIT_ACK + r"""
import json, socket, sys, threading, time
addr, port, limit, req_timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
def say(**kw):
    kw["t"] = time.monotonic()
    print(json.dumps(kw), flush=True)
def payload(n):
    return "req%d-%08x" % (n, (n * 2654435761) % (1 << 32))
deadline = time.monotonic() + limit
while True:
    try:
        s = socket.create_connection((addr, port), timeout=2)
        break
    except OSError as e:
        if time.monotonic() > deadline:
            say(event="final", error="cannot connect to %s:%d: %s" % (addr, port, e), sent=0, acked=0)
            sys.exit(1)
        time.sleep(0.2)
s.settimeout(0.2)
say(event="connected")
stop = threading.Event()
def watch_stdin():
    sys.stdin.readline()
    stop.set()
threading.Thread(target=watch_stdin, daemon=True).start()
n = acked = 0
buf = b""
error = None
max_rtt = 0.0
while not stop.is_set() and error is None:
    n += 1
    s.sendall(("%d %s\n" % (n, payload(n))).encode())
    say(event="sent", n=n)
    t0 = time.monotonic()
    buf, error = await_ack(s, n, buf, t0, req_timeout)
    if error is None:
        acked = n
        rtt = time.monotonic() - t0
        max_rtt = max(max_rtt, rtt)
        say(event="ack", n=n, rtt=rtt)
say(event="final", error=error, sent=n, acked=acked, max_rtt=max_rtt)
"""


class RequestClient:
    """The request client running in namespace ns (the topology's client
    namespace) or, with topo=None, on this host."""

    def __init__(self, topo=None, addr=None, port=SERVICE_PORT, connect_timeout=60,
                 request_timeout=60):
        addr = addr or topo.GUEST_IP
        argv = [*(_ns_prefix(topo, topo.client) if topo else []), sys.executable, "-c", CLIENT,
                addr, str(port), str(harness.scaled(connect_timeout)),
                str(harness.scaled(request_timeout))]
        self.sent = []
        self.acked = []
        self.ack_times = []
        self.final = None
        self.connected = threading.Event()
        self.done = threading.Event()
        self._errf = open(os.devnull, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, process_group=0)
        self.stderr_text = ""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.err_thread = threading.Thread(target=self._read_err, daemon=True)
        self.err_thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            ev = msg.get("event")
            if ev == "connected":
                self.connected.set()
            elif ev == "sent":
                self.sent.append(msg["n"])
            elif ev == "ack":
                self.acked.append(msg["n"])
                self.ack_times.append(msg["t"])
            elif ev == "final":
                self.final = msg
        self.done.set()

    def _read_err(self):
        for raw in self.proc.stderr:
            self.stderr_text += raw.decode("utf-8", "replace")

    def trouble(self):
        if self.final and self.final.get("error"):
            return self.final["error"]
        if self.done.is_set() and not self.final:
            return f"the client exited without a report: {self.stderr_text[-2000:]}"
        return None

    def describe(self):
        return (f"client: sent {len(self.sent)} (last {self.sent[-1:]}), acked {len(self.acked)} "
                f"(last {self.acked[-1:]}), final {self.final}")

    def wait_connected(self, timeout=60):
        deadline = time.monotonic() + harness.scaled(timeout)
        while not self.connected.wait(0.2):
            if self.trouble() or time.monotonic() > deadline:
                raise AssertionError(f"client did not connect: {self.trouble()}\n{self.describe()}")

    def wait_acked(self, n, timeout=60, what=None):
        """Wait until at least n requests were acknowledged in all."""
        deadline = time.monotonic() + harness.scaled(timeout)
        while len(self.acked) < n:
            if self.trouble():
                raise AssertionError(f"client: {self.trouble()}\n{self.describe()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"client: {what or 'requests are not acknowledged'}: "
                                     f"waited {harness.scaled(timeout):.0f} s for {n} ACKs\n"
                                     f"{self.describe()}")
            time.sleep(0.05)
        return len(self.acked)

    def stop(self, timeout=60):
        """Let the client finish its request in flight and stop; returns the
        final report (raises if it reports an error)."""
        try:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.flush()
        except OSError:
            pass
        self.done.wait(harness.scaled(timeout))
        if not self.final:
            raise AssertionError(f"client did not report after being told to stop\n"
                                 f"{self.describe()}\n{self.stderr_text[-2000:]}")
        if self.final.get("error"):
            raise AssertionError(f"client: {self.final['error']}\n{self.describe()}")
        return self.final

    def close(self):
        harness.kill_group(self.proc.pid)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self._errf):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


_LOG_LINE = re.compile(r"^(\d+) (\S+)$")


def check_request_log(text, sent, acked, where="the guest's log"):
    """The request log's text must hold every acknowledged request, in the
    order sent, no request twice, nothing that was never sent, every line
    intact. Returns the numbers in the log."""
    nums, bad = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _LOG_LINE.match(line)
        if not m or m.group(2) != payload(int(m.group(1))):
            bad.append(line)
            continue
        nums.append(int(m.group(1)))
    summary = (f"{where}: {len(nums)} entries ({nums[:3]} ... {nums[-3:]}); client sent "
               f"{len(sent)}, acked {len(acked)} (last {acked[-1:]})")
    assert not bad, f"{summary}; malformed lines: {bad[:5]}"
    seen, dups = set(), []
    for n in nums:
        if n in seen:
            dups.append(n)
        seen.add(n)
    assert not dups, f"{summary}; requests logged twice: {dups[:10]}"
    missing = [n for n in acked if n not in seen]
    assert not missing, f"{summary}; acknowledged requests missing: {missing[:10]}"
    sent_set = set(sent)
    never = [n for n in nums if n not in sent_set]
    assert not never, f"{summary}; logged requests the client never sent: {never[:10]}"
    assert nums == sorted(nums), f"{summary}; requests logged out of order: {nums}"
    # Requests go one after another, each after the previous ACK: the log
    # is 1..K with K the last ACK, or the request in flight at the end.
    extra = [n for n in nums if n > (acked[-1] if acked else 0)]
    assert len(extra) <= 1, f"{summary}; unacknowledged requests logged: {extra}"
    return nums


def read_request_log(vm, log=LOG):
    return vm.run(f"sync; cat {log}", timeout=120)


# --------------------------------------------------------------------------
# A guest-visible counter
# --------------------------------------------------------------------------

class GuestCounter:
    """A guest loop appending `N UPTIME` to /tmp/ctr.log every 100 ms
    (tmpfs: guest RAM, so it travels with checkpoints)."""

    LOG = "/tmp/ctr.log"

    def __init__(self, vm):
        vm.run("(i=0; while :; do i=$((i+1)); echo \"$i $(cut -d' ' -f1 /proc/uptime)\" >> "
               f"{self.LOG}; sleep 0.1; done) </dev/null >/dev/null 2>&1 & echo counter started")

    def lines(self, vm):
        """[(n, uptime string)] read through vm's shell; checks they count
        1, 2, 3 ... with no gap (the last line may be half written)."""
        text = vm.run(f"cat {self.LOG}")
        out = []
        rows = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for i, ln in enumerate(rows):
            m = re.match(r"^(\d+) (\d+\.\d+)$", ln)
            if not m:
                if i == len(rows) - 1:
                    break
                raise AssertionError(f"{vm.name}: counter log line {ln!r} is malformed:\n"
                                     f"{harness.tail(text, 20)}")
            out.append((int(m.group(1)), m.group(2)))
        nums = [n for n, _ in out]
        assert nums == list(range(1, len(nums) + 1)), (
            f"{vm.name}: counter log does not count 1, 2, 3...: {nums[:5]} ... {nums[-5:]} "
            f"(gaps at {[b for a, b in zip(nums, nums[1:]) if b != a + 1][:5]})")
        return out

    def value(self, vm):
        rows = self.lines(vm)
        return rows[-1][0] if rows else 0


# --------------------------------------------------------------------------
# A man in the middle of the replication stream
# --------------------------------------------------------------------------

class CheckpointProxy(RecordRelay):
    """Relays one replication connection from 127.0.0.1:.port (give .uri to
    ferry replicate) to the standby on 127.0.0.1:dest_port. It follows the
    stream's records and epochs (CHECKPOINT e ... END); .complete lists the
    epochs whose END it forwarded, .acks the ACKs the standby sent back.

    arm(mode, skip=2) picks the (skip+1)-th checkpoint that starts after the
    call as the target (.target_epoch) and then
      mode="flip"  forwards its CHECKPOINT record intact, flips one bit in
                   the body of the next record (pages or device state),
                   and relays the rest unchanged;
      mode="cut"   forwards its CHECKPOINT record and half of the next
                   record, then closes both connections.
    .hit is set when that happened; .events describes everything, .max_gap
    is the longest time the primary sent nothing (the standby's heartbeat
    timeout must never see such a silence while the primary lives)."""

    BACK_JOIN_S = 60

    def __init__(self, dest_port):
        super().__init__(dest_port)
        self.complete = []
        self.acks = []
        self.hit = threading.Event()
        self.target_epoch = None
        self.mode = None
        self._skip = None
        # The longest silence of the primary: (seconds, type of the record
        # that ended it, the epoch relayed before it).
        self.max_gap = (0.0, None, None)
        self.t_last = time.monotonic()   # when the last record went by
        self.start()

    def arm(self, mode, skip=2):
        assert mode in ("flip", "cut")
        with self._lock:
            self.mode = mode
            self._skip = skip
        self._event(f"armed: {mode} the checkpoint after the next {skip}")

    def _send(self, dst, data):
        dst.sendall(data)
        self.forwarded += len(data)

    def _pump_forward(self, src, dst):
        head = self._recv_exact(src, STREAM_HEADER_SIZE)
        if len(head) < STREAM_HEADER_SIZE:
            self._event("primary closed before the header")
            return
        self._send(dst, head)
        epoch = None        # the checkpoint being relayed
        in_target = False   # inside the target checkpoint, before the damage
        t_last = time.monotonic()
        while True:
            rh = self._recv_exact(src, 8)
            now = time.monotonic()
            if len(rh) == 8:
                gap = now - t_last
                if gap > self.max_gap[0]:
                    self.max_gap = (gap, struct.unpack_from("<I", rh)[0], epoch)
            if len(rh) < 8:
                self._event(f"primary closed the stream after {self.forwarded} bytes")
                if rh:
                    self._send(dst, rh)
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            rtype, rlen = struct.unpack("<II", rh)
            rest = self._recv_exact(src, rlen + 4)
            rec = bytearray(rh + rest)
            if len(rest) < rlen + 4:
                self._event(f"primary closed in the middle of record {rtype:#x}")
                self._send(dst, bytes(rec))
                return
            if rtype == REC_CHECKPOINT and rlen >= 8:
                epoch = struct.unpack_from("<Q", rec, 8)[0]
                with self._lock:
                    if self._skip is not None and self.target_epoch is None:
                        if self._skip == 0:
                            self.target_epoch = epoch
                            in_target = True
                            self._event(f"checkpoint {epoch} is the target ({self.mode})")
                        else:
                            self._skip -= 1
            elif in_target and rlen > 0:
                # The first record with a body after the target's CHECKPOINT.
                in_target = False
                if self.mode == "flip":
                    at = 8 + rlen // 2
                    if rtype == REC_PAGES and rlen >= 8:
                        n = struct.unpack_from("<I", rec, 8)[0]
                        if rlen - (8 + 8 * n) >= 4096:
                            at = 8 + 8 + 8 * n + 2048  # the middle of the first page with data
                    rec[at] ^= 0x40
                    self._event(f"flipped bit 6 of byte {at} of record {rtype:#x} ({rlen} bytes) "
                                f"in checkpoint {epoch}")
                    self._send(dst, bytes(rec))
                    self.hit.set()
                    continue
                half = len(rec) // 2
                self._send(dst, bytes(rec[:half]))
                self._event(f"cut checkpoint {epoch} after {half} of the {len(rec)} bytes of "
                            f"record {rtype:#x}")
                self.hit.set()
                self.close()
                return
            self._send(dst, bytes(rec))
            t_last = self.t_last = time.monotonic()
            if rtype == REC_END and epoch is not None:
                self.complete.append(epoch)

    def _pump_back(self, src, dst):
        """Standby -> primary: records, no header."""
        try:
            while True:
                rh = self._recv_exact(src, 8)
                if len(rh) < 8:
                    self._event(f"standby closed its side (the primary had sent nothing for "
                                f"{(time.monotonic() - self.t_last) * 1000:.0f} ms)")
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                rtype, rlen = struct.unpack("<II", rh)
                rest = self._recv_exact(src, rlen + 4)
                if rtype == REC_ACK and rlen == 8 and len(rest) >= 8:
                    self.acks.append(struct.unpack_from("<Q", rest, 0)[0])
                elif rtype != REC_ACK:
                    self._event(f"standby sent record {rtype:#x} (the primary had sent nothing "
                                f"for {(time.monotonic() - self.t_last) * 1000:.0f} ms)")
                dst.sendall(rh + rest)
        except OSError as e:
            self._event(f"return path: {e}")

    def describe(self):
        ev = self.events[-30:]
        gap, gtype, gepoch = self.max_gap
        return (f"proxy: target {self.target_epoch}, complete checkpoints {self.complete[-5:]}, "
                f"acks {self.acks[-5:]}; longest silence of the primary {gap * 1000:.0f} ms "
                f"(after checkpoint {gepoch}, ended by record {gtype if gtype is None else hex(gtype)}); "
                f"events:\n  " + "\n  ".join(ev or ["(none)"]))
