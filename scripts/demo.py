#!/usr/bin/env python3
"""ferry's main demo: live-migrate a running Linux VM from one host to
another while a client on the LAN keeps a TCP session to it open.

    make demo            (= make all guest, then scripts/demo.py; as root)

What it does, step by step (each step is printed as it happens):

 1. builds the "two hosts on one machine" network (scripts/netns.sh, see
    docs/two-hosts.md): namespaces host-a, host-b and client on one LAN,
    and copies the guest's data disk to a temp file both hosts use (shared
    storage);
 2. boots the default guest on host-a (`ferry run --net tap=tap0 --drive
    file=DISK --control SOCK`), guest address 10.77.0.10;
 3. starts three workloads in the guest: memdirty (rewrites and verifies
    32 MiB of memory at 16 MB/s), stallmon (the guest's own view of how
    long it was kept from running: the longest gap between two clock
    readings, shown for before and from the migration on) and a TCP service
    on port 7000 that streams numbered lines `N CHECK` forever,
    CHECK = N*2654435761 mod 2^32;
 4. connects a client (in namespace client) that reads the stream and
    checks every line: consecutive numbers, correct check values; it also
    measures the longest pause between two arrivals of data;
 5. starts the destination on host-b: `ferry run --incoming tcp:10.77.0.2:4444`;
 6. runs `ferry migrate SOCK tcp:10.77.0.2:4444 --verify` from host-a, so the
    migration stream crosses the LAN, and prints its report;
 7. lets the client read on for a few seconds (now served by host-b) and
    checks memdirty's log on the destination's console;
 8. powers the guest off and removes everything it made.

Exit status 0 only if the migration completed, the client's TCP session
survived it with no lost, duplicated or corrupted line, and memdirty found
no error on the destination. Every wait has a time limit and the whole demo
is bounded (FERRY_DEMO_TIMEOUT seconds, default 180). Whatever happens
(failure, Ctrl-C, SIGTERM) the namespaces, processes and temp files go away.

Environment: FERRY (ferry binary, default build/ferry), FERRY_DEMO_KEEP=1
keeps the temp directory (console logs) for a look after a failure.
Needs root (network namespaces), iproute2 and /dev/net/tun.
"""

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
os.environ.setdefault("FERRY", str(BUILD / "ferry"))
sys.path.insert(0, str(REPO / "tests" / "lib"))

import harness  # noqa: E402
import netns  # noqa: E402
from ferryvm import clean  # noqa: E402
from migration import IncomingVM, Memdirty, SourceVM  # noqa: E402

GUEST_IP = netns.Topology.GUEST_IP
MIGRATION_PORT = 4444
SERVICE_PORT = 7000
STALL_LOG = "/tmp/stallmon.log"
MEMDIRTY = (32, 16)            # MiB, MB/s
BEFORE_S = 3.0                 # client streaming before the migration
AFTER_S = 3.0                  # ... and after it
MIGRATE_OPTS = []   # add "--verify" to compare a hash of all RAM and device state (adds the hashing to the downtime)
TOTAL_TIMEOUT = float(os.environ.get("FERRY_DEMO_TIMEOUT", "180"))

# The guest's TCP service: busybox ash computes the check value with 64-bit
# arithmetic; busybox nc serves one connection, the pipe gives backpressure.
SERVICE = ("i=0; while :; do echo \"$i $(( (i*2654435761) % 4294967296 ))\"; i=$((i+1)); done"
           f" | nc -l -p {SERVICE_PORT}")

# The client, run inside the client namespace. argv: addr port connect_timeout.
# Prints JSON lines: {"event": "connected"}, a "progress" line every 0.5 s,
# and a "final" line when its stdin is closed (the demo's signal to stop) or
# the connection ends. Times are CLOCK_MONOTONIC, shared with the demo.
CLIENT = r"""
import json, socket, sys, threading, time
addr, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def say(**kw):
    print(json.dumps(kw), flush=True)
deadline = time.monotonic() + limit
while True:
    try:
        s = socket.create_connection((addr, port), timeout=2)
        break
    except OSError as e:
        if time.monotonic() > deadline:
            say(event="final", error="cannot connect to %s:%d: %s" % (addr, port, e))
            sys.exit(1)
        time.sleep(0.2)
s.settimeout(0.1)
say(event="connected", t=time.monotonic())
stop = threading.Event()
def watch_stdin():
    sys.stdin.buffer.read()
    stop.set()
threading.Thread(target=watch_stdin, daemon=True).start()

st = dict(lines=0, bytes=0, gaps=0, missing=0, corrupt=0, duplicates=0, first_problem=None,
          error=None, last_n=None)
stalls = []     # [from, to] of every pause over 20 ms
want = 0
buf = b""
t_last = time.monotonic()
t_report = t_last
def problem(kind, text):
    if st["first_problem"] is None:
        st["first_problem"] = "%s at line %d: %r" % (kind, st["lines"], text[:80])
while not stop.is_set():
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        chunk = None
    except OSError as e:
        st["error"] = "connection error: %s" % e
        break
    now = time.monotonic()
    if chunk == b"":
        st["error"] = "the guest closed the connection"
        break
    if chunk:
        if (now - t_last) * 1000 > 20 and len(stalls) < 1000:
            stalls.append([t_last, now])
        t_last = now
        st["bytes"] += len(chunk)
        buf += chunk
        *complete, buf = buf.split(b"\n")
        for line in complete:
            st["lines"] += 1
            parts = line.split(b" ")
            if len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit():
                st["corrupt"] += 1
                problem("malformed line", line)
                continue
            n, check = int(parts[0]), int(parts[1])
            if check != (n * 2654435761) % 4294967296:
                st["corrupt"] += 1
                problem("wrong check value", line)
            if n > want:
                st["gaps"] += 1
                st["missing"] += n - want
                problem("gap (%d..%d missing)" % (want, n - 1), line)
            elif n < want:
                st["duplicates"] += 1
                problem("line number went back (%d after %d)" % (n, want - 1), line)
            want = n + 1
            st["last_n"] = n
    if now - t_report >= 0.5:
        t_report = now
        say(event="progress", t=now, **st)
now = time.monotonic()
if (now - t_last) * 1000 > 20:      # still waiting at the end
    stalls.append([t_last, now])
st["partial_line"] = len(buf)
say(event="final", t=now, stalls=stalls, **st)
"""


VMS = []    # the ferry processes started, for failure messages


def killed_from_outside():
    """Say so when a VM failed because something outside the demo sent its
    ferry a termination signal (ferry then exits with 128 + the signal)."""
    for vm in VMS:
        rc = vm.proc.poll() if vm.proc else None
        if rc in (128 + signal.SIGHUP, 128 + signal.SIGINT, 128 + signal.SIGTERM):
            name = signal.Signals(rc - 128).name
            print(f"note: the {vm.name} ferry (pid {vm.proc.pid}) exited with status {rc}: it "
                  f"received {name} from outside the demo", file=sys.stderr, flush=True)


class DemoFailed(Exception):
    pass


class Interrupted(BaseException):
    pass


def step(msg):
    print(f"\n==> {msg}", flush=True)


def info(msg):
    print(f"    {msg}", flush=True)


def indent(text, prefix="    | "):
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


def shown(argv):
    """A command line for display: ferry as build/ferry, quoted like a shell."""
    ferry = os.environ["FERRY"]
    return shlex.join("build/ferry" if a == ferry and ferry == str(BUILD / "ferry") else a
                      for a in argv)


def on_signal(signum, frame):
    if signum == signal.SIGALRM:
        raise DemoFailed(f"the demo did not finish within {TOTAL_TIMEOUT:.0f} s")
    raise Interrupted(signal.Signals(signum).name)


class Client:
    """The client reader running in the client namespace."""

    def __init__(self, topo, workdir):
        self.latest = {}
        self.final = None
        self.connected = threading.Event()
        self.done = threading.Event()
        self.errlog = open(os.path.join(workdir, "client.stderr"), "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", topo.client, sys.executable, "-c", CLIENT, GUEST_IP,
             str(SERVICE_PORT), "30"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errlog,
            process_group=0)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if msg["event"] == "connected":
                self.connected.set()
            elif msg["event"] == "progress":
                self.latest = msg
            elif msg["event"] == "final":
                self.final = msg
        self.done.set()

    def lines(self):
        return self.latest.get("lines", 0)

    def trouble(self):
        """A problem the client already saw, or None."""
        if self.done.is_set() and not self.final:
            return "the client exited without a report"
        st = self.final or self.latest
        if st.get("error"):
            return st["error"]
        if st.get("first_problem"):
            return st["first_problem"]
        return None

    def wait_lines(self, n, timeout, what="the stream did not start"):
        deadline = time.monotonic() + timeout
        while self.lines() < n:
            if self.trouble():
                raise DemoFailed(f"client: {self.trouble()}")
            if time.monotonic() > deadline:
                raise DemoFailed(f"client: {what} (received {self.lines()} lines, waited "
                                 f"{timeout:.0f} s for line {n})")
            time.sleep(0.1)

    def stop(self, timeout=10):
        """Tell the client to finish; return its final report."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.done.wait(timeout)
        if not self.final:
            raise DemoFailed("the client did not report after being told to stop")
        return self.final

    def close(self):
        harness.kill_group(self.proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.errlog.close()


def parse_report(text):
    """The numbers of `ferry migrate`'s report (src/cli/migrate.c)."""
    out = {"verified": "state hash matched" in text,
           "rounds": len(re.findall(r"^ +\d+ +\d+ +\d+ +\d+ +[\d.]+ ", text, re.M))}
    for key, pat in (("state", r"^migration (\w+):"), ("mode", r"^ +mode +(.*\S)"),
                     ("total_ms", r"total time +([\d.]+) ms"),
                     ("downtime_ms", r"downtime +([\d.]+) ms measured"),
                     ("wire_bytes", r"bytes on the wire +(\d+)")):
        m = re.search(pat, text, re.M)
        if m:
            out[key] = m.group(1) if key in ("state", "mode") else float(m.group(1))
    return out


def stallmon_gaps(vm):
    """stallmon's per-second longest gaps so far (us), from its log in the
    guest's tmpfs (which travels with the guest)."""
    text = vm.run(f"cat {STALL_LOG}", timeout=30)
    return [int(g) for g in re.findall(r"^stallmon: max_gap_us=(\d+)", text, re.M)]


def kernel_trouble(vm):
    text = clean(vm.transcript)
    return [m.strip() for m in vm.KERNEL_TROUBLE if m in text]


def preflight():
    problems = []
    if os.geteuid() != 0:
        problems.append("run as root: the demo creates network namespaces")
    ferry = Path(os.environ["FERRY"])
    if not os.access(ferry, os.X_OK):
        problems.append(f"no ferry binary at {ferry} (run make)")
    for f in ("Image", "initramfs.cpio", "data.ext4"):
        if not (BUILD / "guest" / f).is_file():
            problems.append(f"no build/guest/{f} (run make guest)")
    if not problems:
        why = netns.available()
        if why:
            problems.append(f"network namespaces unavailable: {why}")
    if problems:
        raise DemoFailed("; ".join(problems))


def demo(stack, workdir):
    t_start = time.monotonic()
    preflight()

    step("1. two hosts and a client on one LAN (network namespaces)")
    topo = netns.Topology()
    stack.callback(topo.down)
    topo.up()
    info(f"{topo.host_a} 10.77.0.1, {topo.host_b} 10.77.0.2, {topo.client} 10.77.0.100; "
         f"guest will be {GUEST_IP}")
    disk = os.path.join(workdir, "shared-disk.ext4")
    shutil.copyfile(BUILD / "guest" / "data.ext4", disk)
    info(f"shared disk: {disk} (a copy of build/guest/data.ext4, seen by both hosts)")

    step("2. booting the guest on host-a ...")
    append = topo.guest_append()
    src = SourceVM(["--net", f"tap={topo.TAP}", "--drive", f"file={disk}", "--append", append],
                   name="source", log=os.path.join(workdir, "source-console.log"))
    src.argv = ["ip", "netns", "exec", topo.host_a, *src.argv]
    stack.callback(src.cleanup_files)
    stack.callback(src.close)
    VMS.append(src)
    info("$ " + shown(src.argv[4:]))
    src.start()
    boot_s = src.boot(timeout=120)
    info(f"guest is up after {boot_s:.1f} s: {src.run('uname -sr').strip()}")
    src.wait_control(timeout=10)

    step("3. starting the workloads in the guest")
    md = Memdirty(src, *MEMDIRTY)
    info(f"memdirty {MEMDIRTY[0]} {MEMDIRTY[1]} &   (rewrites and verifies {MEMDIRTY[0]} MiB "
         f"at {MEMDIRTY[1]} MB/s, log in /tmp/memdirty.log)")
    src.run(f"stallmon </dev/null >{STALL_LOG} 2>&1 & echo stallmon started")
    info(f"stallmon &   (the guest's own view: longest gap between two clock readings, "
         f"log in {STALL_LOG})")
    src.run(f"( {SERVICE} ) </dev/null >/dev/null 2>&1 & echo service started")
    info(f"TCP service on port {SERVICE_PORT}: {SERVICE}")
    src.run(f"for i in $(seq 20); do netstat -ltn | grep -q ':{SERVICE_PORT} ' && break; "
            f"sleep 1; done; netstat -ltn | grep -q ':{SERVICE_PORT} '", timeout=40)

    step(f"4. client connecting to {GUEST_IP}:{SERVICE_PORT} from namespace client ...")
    client = Client(topo, workdir)
    stack.callback(client.close)
    deadline = time.monotonic() + 40
    while not client.connected.wait(0.2):
        if client.done.is_set() or time.monotonic() > deadline:
            raise DemoFailed(f"client: {client.trouble() or 'could not connect'}")
    client.wait_lines(1, timeout=20)
    info("client connected; it reads the stream and checks every line")

    step("5. starting the destination on host-b (waiting for a migration stream)")
    dst = IncomingVM(["--net", f"tap={topo.TAP}", "--drive", f"file={disk}"],
                     port=MIGRATION_PORT, host=topo.HOST_B_IP, name="destination",
                     log=os.path.join(workdir, "destination-console.log"))
    dst.argv = ["ip", "netns", "exec", topo.host_b, *dst.argv]
    stack.callback(dst.cleanup_files)
    stack.callback(dst.close)
    VMS.append(dst)
    info("$ " + shown(a for a in dst.argv[4:] if a != "--control" and a != dst.control))
    dst.start()
    dst.wait_listening(timeout=30)
    info(f"listening on {dst.uri}")

    # Migrate once memdirty has verified pages (its second sweep) and the
    # client has streamed for a while.
    t_ready = time.monotonic() + BEFORE_S
    deadline = time.monotonic() + 40
    while True:
        md_before = md.snapshot(src)
        if md_before and md_before[-1][1] > 0:
            break
        if time.monotonic() > deadline:
            raise DemoFailed(f"memdirty did not get to verifying pages: {md_before}")
        time.sleep(0.5)
    time.sleep(max(0.0, t_ready - time.monotonic()))
    info(f"client has {client.lines()} lines so far; memdirty at gen={md_before[-1][0]}, "
         f"{md_before[-1][1]} pages verified, errors=0")

    uri = f"tcp:{topo.HOST_B_IP}:{MIGRATION_PORT}"
    step("6. migrating the running guest from host-a to host-b over the LAN ...")
    argv = ["ip", "netns", "exec", topo.host_a, os.environ["FERRY"], "migrate", src.control,
            uri, *MIGRATE_OPTS]
    info("$ " + shown(argv[4:]))
    lines_at_start = client.lines()
    stall_before = stallmon_gaps(src)
    t_mig0 = time.monotonic()
    res = harness.run_cmd(argv, timeout=120)
    t_mig1 = time.monotonic()
    print(indent(res.stdout + res.stderr), flush=True)
    report = parse_report(res.stdout)
    if res.rc != 0 or report.get("state") != "completed":
        raise DemoFailed(f"ferry migrate exited with status {res.rc}")
    dst.wait_resumed(timeout=30)
    src_rc = src.wait_exit(timeout=30)
    info(f"the source ferry exited (status {src_rc}); the guest runs on host-b now")

    step("7. the client keeps reading, now from the guest on host-b ...")
    lines_at_switch = client.lines()
    time.sleep(AFTER_S)
    client.wait_lines(lines_at_switch + 1, timeout=20,
                      what="the stream did not continue after the migration")
    final = client.stop()
    info(f"client stopped reading: {final['lines']} lines, "
         f"{final['bytes'] / 1e6:.1f} MB received")

    info("destination console: checking memdirty's log ...")
    dst.wait_prompt(timeout=30)
    md_after = md.check_continues(dst, md_before, more=2, timeout=30)
    gens = (f"gen {md_before[-1][0]} -> {md_after[-1][0]}, pages verified "
            f"{md_before[-1][1]} -> {md_after[-1][1]}")
    info(f"memdirty on host-b: still running, errors=0, {gens}")
    stall_all = stallmon_gaps(dst)
    if len(stall_all) <= len(stall_before):
        raise DemoFailed("stallmon wrote nothing on host-b")
    guest_gap_mig = max(stall_all[len(stall_before):]) / 1000
    guest_gap_before = max(stall_before, default=0) / 1000

    step("8. powering the guest off on host-b")
    rc = dst.poweroff(timeout=60)
    info(f"destination ferry exited with status {rc}")

    # -- the summary ----------------------------------------------------------
    problems = []
    if final.get("error"):
        problems.append(f"client: {final['error']}")
    if final["gaps"] or final["missing"] or final["corrupt"] or final["duplicates"]:
        problems.append(f"client: {final['first_problem']}")
    if final["lines"] <= lines_at_switch:
        problems.append("client received nothing after the migration")
    for vm in (src, dst):
        trouble = kernel_trouble(vm)
        if trouble:
            problems.append(f"{vm.name} console shows kernel trouble: {', '.join(trouble)}")
    if rc != 0:
        problems.append(f"the destination exited with status {rc} at poweroff")

    # Pauses in the stream while the guest moved (up to 1 s after, for TCP
    # retransmissions), and elsewhere (a busy host also pauses the guest).
    during = [(b - a) * 1000 for a, b in final["stalls"] if b >= t_mig0 and a <= t_mig1 + 1]
    other = [(b - a) * 1000 for a, b in final["stalls"] if not (b >= t_mig0 and a <= t_mig1 + 1)]
    stall_mig = f"{max(during):.0f} ms" if during else "none over 20 ms"
    stall_other = f"{max(other):.0f} ms" if other else "none over 20 ms"

    step("summary")
    nan = float("nan")
    rows = [
        ("migration", f"{report.get('state')}, {report.get('mode')}"
                      f"{', state hash verified' if report.get('verified') else ''}"),
        ("  downtime", f"{report.get('downtime_ms', nan):.2f} ms (guest paused" +
                       ("; mostly --verify hashing all RAM on both hosts)" if report.get("verified")
                        else ")")),
        ("  total time", f"{report.get('total_ms', nan):.0f} ms, {report.get('rounds')} rounds"),
        ("  on the wire", f"{report.get('wire_bytes', 0) / 1048576:.1f} MiB"),
        ("client (TCP session)", "survived" if not final.get("error") else final["error"]),
        ("  lines received", f"{final['lines']} ({lines_at_start} before the migration started, "
                             f"{final['lines'] - lines_at_switch} after it ended)"),
        ("  lost/corrupt", f"gaps={final['gaps']} missing={final['missing']} "
                           f"corrupt={final['corrupt']} duplicates={final['duplicates']}"),
        ("  longest pause", f"{stall_mig} while the guest moved; "
                            f"{stall_other} at other times"),
        ("  guest's own view", f"longest gap {guest_gap_mig:.1f} ms from the migration's start "
                               f"on (stallmon; {guest_gap_before:.1f} ms before it: the guest "
                               f"clock stops during the pause, so this is time taken from a "
                               f"running guest)"),
        ("memdirty on host-b", f"errors=0, {gens}, still running"),
        ("demo time", f"{time.monotonic() - t_start:.0f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"    {k:<{width}}  {v}")
    if problems:
        raise DemoFailed("; ".join(problems))
    print("\nPASS: the guest moved from host-a to host-b while the client kept its TCP "
          "session, with no lost or corrupted data.", flush=True)


def main():
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.alarm(int(TOTAL_TIMEOUT))
    workdir = tempfile.mkdtemp(prefix="ferry-demo-")
    # Every temp file and directory (the VMs' control sockets and logs too)
    # goes under workdir; if we are killed outright (SIGKILL, no clean-up),
    # a watchdog outside our process group removes it once we are gone (the
    # network namespaces have a watchdog of their own: tests/lib/netns.py).
    tempfile.tempdir = workdir
    if not os.environ.get("FERRY_DEMO_KEEP"):
        subprocess.Popen(["sh", "-c", 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; '
                          'rm -rf "$2"', "ferry-demo-reaper", str(os.getpid()), workdir],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    status = 1
    stack = contextlib.ExitStack()
    try:
        with stack:
            try:
                demo(stack, workdir)
                status = 0
            except BaseException as e:
                # Stop further signals from interrupting the clean-up.
                signal.alarm(0)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_IGN)
                if isinstance(e, Interrupted):
                    print(f"\ninterrupted ({e}); cleaning up ...", file=sys.stderr, flush=True)
                    status = 130
                elif isinstance(e, (DemoFailed, AssertionError, harness.Skip)):
                    print(f"\nFAIL: {e}", file=sys.stderr, flush=True)
                    killed_from_outside()
                else:
                    raise
            finally:
                signal.alarm(0)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_IGN)
    finally:
        if os.environ.get("FERRY_DEMO_KEEP"):
            print(f"(kept {workdir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
