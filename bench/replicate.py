#!/usr/bin/env python3
"""Continuous replication (Remus-style) of ferry: checkpoint rate, what
replication costs the guest, failover and switchover times, in one run.

    bench/replicate.py [--ferry build/ferry] [--guest build/guest] [--quick]
                       [--window 5] [--intervals 10,25,100,200]
                       [--interval 25] [--heartbeat-timeout 200]
                       [--switchovers 3] [--failovers 3] [--crashes 3]
                       [--parts throughput,rates,moves] [--no-cpubench]
                       [--out bench/out] [--json FILE]

Needs root (network namespaces): everything runs on the "two hosts on one
machine" LAN of tests/lib/netns.py (scripts/netns.sh): the guest is
10.77.0.10 on host-a or host-b (tap0 bridged to the LAN), the client runs in
the client namespace (10.77.0.100). The guest's data disk is a copy of
build/guest/data.ext4 that both hosts use (shared storage), mounted on /mnt.

One guest is booted once, on host-a (`ferry run --net tap=tap0 --drive
file=DISK --control SOCK`, 256 MiB, 1 hart). In it, 8 instances of the
request service reqlog listen on ports 7000..7007 (each appends every
request line to /mnt/reqN.log and fsyncs it before it answers ACK). Then:

 1. unreplicated: request service and memory-bound workloads (below);
 2. replicated at --interval (default 25 ms) to a standby on host-b
    (`ferry run --standby tcp:10.77.0.2:PORT --drive file=DISK --net ...`,
    `ferry replicate SOCK tcp:10.77.0.2:PORT --interval 25ms`): the same;
 3. checkpoint rate: with `memdirty 16 16` running in the guest (16 MiB
    rewritten at 16 MB/s), replication at each of --intervals to a fresh
    standby, measured over --window seconds (epochs counted through the
    control socket's replication-status, host clock), then
    `ferry replicate --stop`;
 4. switchovers (--switchovers), failovers (--failovers) and crashes
    (--crashes), each moving the guest to the other host: a fresh standby
    there (with --heartbeat-timeout), replication at --interval, a client
    that keeps sending requests (one at a time, on one TCP connection, port
    7000) and ICMP echo requests (every 5 ms), then `ferry switchover SOCK`
    (switchover), kill -9 of the primary's ferry process (failover: the
    kernel closes its connection, so the standby notices at once), or
    SIGSTOP of it (crash: no FIN, no heartbeat, as when the primary's host
    dies; the standby must wait for its heartbeat timeout; the frozen
    process is killed once the standby took over).

If a part fails (e.g. replication stalls), it is reported and the next part
starts from a freshly booted guest.

Workloads (each over --window seconds, host clock):
  request service  the client sends "N tag\\n" and waits for "ACK N\\n"
                   before sending the next: 1 connection (requests/s and the
                   latency of every request: median, p99), and 8 connections
                   to the 8 instances at once (one outstanding request each)
  memory-bound     `memdirty 16 0 W` in the foreground (16 MiB rewritten as
                   fast as the guest can, every page verified before it is
                   rewritten): verified pages per host second; and
                   `cpubench`'s mem phase (random read-modify-write walk over
                   32 MiB; guest-clock milliseconds; the guest clock stops
                   while a checkpoint pauses the guest, so the command's host
                   time is reported too)

Failover time: kill -9 of the primary -> first reply from the standby's
guest seen by the client: an ICMP echo reply, and an ACK of the request
service (which also waits for TCP retransmission timers: the request or the
reply in flight at the kill was held by output commit and is lost). The
standby's own "failing over" line is timed too (stderr polled every 2 ms).
After each failover, the new primary's /mnt/req0.log must hold every request
the client saw acknowledged (output commit + disk write re-application).
Switchover downtime: `ferry switchover`'s reported figure and, as seen by
the client, the longest gap between replies (ICMP, and request ACKs)
around it.

Outputs: tables on stdout, progress on stderr, raw results as JSON
(OUT/replicate.json). Every VM, client and namespace is removed at the end,
also on failure or Ctrl-C; every wait has a time limit.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import replicate_clients  # noqa: E402
import harness  # noqa: E402  (path set up by benchlib)
import netns  # noqa: E402
from ferryvm import clean  # noqa: E402
from migration import SourceVM, ctl_request, wait_for  # noqa: E402

T = netns.Topology
GUEST_IP = T.GUEST_IP
HOST_IP = {"a": T.HOST_A_IP, "b": T.HOST_B_IP}
OTHER = {"a": "b", "b": "a"}
REQ_PORT = 7000
NREQ = 8                     # reqlog instances (ports 7000..7007)
MEM = "256M"
MEMDIRTY_SWEEP = (16, 16)    # checkpoint-rate workload: MiB, MB/s
MEMDIRTY_BOUND_MIB = 16      # memory-bound workload: memdirty 16 0 W
PING_MS = 5
BOOT_TIMEOUT = 300
TARGETS = {"cps": 40.0, "mem_ratio": 75.0, "failover_slack_ms": 50.0, "switchover_ms": 10.0}

# --------------------------------------------------------------------------
# The client, run inside the client namespace (python3 -c CLIENT MODE ...).
# Times are CLOCK_MONOTONIC, which the namespaces share with the bench.
#
#   req ADDR PORTS SECONDS TAG      PORTS comma-separated: one connection per
#        port, one outstanding request each, for SECONDS; prints one JSON line
#   watch ADDR PORT TAG LIMIT       one connection, requests one at a time,
#        plus ICMP echo requests every PING_MS ms, until stdin is closed (or
#        LIMIT s); prints {"event": "ready"} once the first reply came, then a
#        final JSON line with the time of every reply
# --------------------------------------------------------------------------
CLIENT = r"""
import json, os, select, socket, struct, sys, threading, time
now = time.monotonic

def say(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()

def connect(addr, port, limit=30):
    deadline = now() + limit
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=2)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError:
            if now() > deadline:
                raise
            time.sleep(0.1)

def req(addr, ports, seconds, tag):
    conns = []
    for p in ports:
        s = connect(addr, p)
        s.setblocking(False)
        conns.append({"s": s, "n": 0, "sent": None, "buf": b""})
    lat, errors = [], []
    def send(c):
        c["sent"] = now()
        c["s"].sendall(b"%d %s\n" % (c["n"], tag.encode()))
    t0 = now()
    deadline = t0 + seconds
    for c in conns:
        send(c)
    by_fd = {c["s"].fileno(): c for c in conns}
    done = 0
    while by_fd and now() < deadline + 10:
        r, _, _ = select.select(list(by_fd), [], [], 0.5)
        for fd in r:
            c = by_fd[fd]
            try:
                data = c["s"].recv(4096)
            except OSError as e:
                errors.append(str(e)); del by_fd[fd]; continue
            if not data:
                errors.append("connection closed"); del by_fd[fd]; continue
            c["buf"] += data
            while b"\n" in c["buf"]:
                line, c["buf"] = c["buf"].split(b"\n", 1)
                t = now()
                if line != b"ACK %d" % c["n"]:
                    errors.append("bad reply %r to %d" % (line[:40], c["n"]))
                    continue
                if t <= deadline:
                    lat.append((t - c["sent"]) * 1000)
                    done += 1
                c["n"] += 1
                if t < deadline:
                    send(c)
                else:
                    by_fd.pop(fd, None)
                    break
    say(count=done, seconds=seconds, connections=len(ports), lat_ms=lat, errors=errors[:10])

def watch(addr, port, tag, limit):
    stop = threading.Event()
    tcp, pings, errors = [], [], []
    acked = [-1]
    def tcp_loop():
        s = connect(addr, port)
        s.settimeout(0.05)
        n, buf = 0, b""
        s.sendall(b"%d %s\n" % (n, tag.encode()))
        while not stop.is_set():
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            except OSError as e:
                errors.append("tcp: %s" % e)
                return
            if not data:
                errors.append("tcp: connection closed by the guest")
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line != b"ACK %d" % n:
                    errors.append("tcp: bad reply %r to %d" % (line[:40], n))
                    return
                tcp.append(now())
                acked[0] = n
                n += 1
                s.sendall(b"%d %s\n" % (n, tag.encode()))
    def csum(b):
        if len(b) % 2:
            b += b"\0"
        v = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        v = (v >> 16) + (v & 0xFFFF)
        v += v >> 16
        return ~v & 0xFFFF
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    sent = [0]
    def ping_send():
        seq = 0
        nxt = now()
        while not stop.is_set():
            seq = (seq + 1) & 0xFFFF
            body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ferry-bench"
            body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
            try:
                icmp.sendto(body, (addr, 0))
                sent[0] += 1
            except OSError:
                pass
            nxt += PING_S
            time.sleep(max(0.0, nxt - now()))
    def ping_recv():
        icmp.settimeout(0.1)
        while not stop.is_set():
            try:
                data, src = icmp.recvfrom(2048)
            except socket.timeout:
                continue
            ihl = (data[0] & 0xF) * 4
            typ, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if src[0] == addr and typ == 0 and rid == ident:
                pings.append(now())
    ths = [threading.Thread(target=f, daemon=True) for f in (tcp_loop, ping_send, ping_recv)]
    for t in ths:
        t.start()
    t0 = now()
    while not tcp and not errors and now() - t0 < 30:
        time.sleep(0.01)
    say(event="ready", t=now(), errors=errors)
    def watch_stdin():
        sys.stdin.buffer.read()
        stop.set()
    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait(limit)
    stop.set()
    for t in ths:
        t.join(2)
    say(event="final", t=now(), tcp=tcp, pings=pings, pings_sent=sent[0], acked=acked[0],
        errors=errors)

mode = sys.argv[1]
PING_S = float(os.environ.get("PING_MS", "5")) / 1000
if mode == "req":
    req(sys.argv[2], [int(p) for p in sys.argv[3].split(",")], float(sys.argv[4]), sys.argv[5])
elif mode == "watch":
    watch(sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
"""


class BenchError(Exception):
    pass


def pct(values, p):
    """The p-th percentile (nearest rank) of values, or None."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def fmt(v, digits=1, unit=""):
    return "n/a" if v is None else f"{v:.{digits}f}{unit}"


# --------------------------------------------------------------------------
# VMs
# --------------------------------------------------------------------------

class Bench:
    def __init__(self, args, ferry, guest, workdir):
        self.args = args
        self.ferry = ferry
        self.guest = guest
        self.workdir = workdir
        self.env = {"FERRY_GUEST_DIR": str(guest)}
        self.topo = None
        self.disk = os.path.join(workdir, "shared-disk.ext4")
        self.vms = []          # every VM started (closed at the end)
        self.primary = None    # the VM running the guest now
        self.where = None      # "a" or "b"
        self.port = 4440       # standby ports: a new one for each standby
        self.tag_n = 0
        self.outside_kills = []   # VMs killed by someone else, kernel trouble
        self.primary_extra = []   # more `ferry run` arguments for the primary (--arbiter)

    # -- VMs -------------------------------------------------------------------

    def _vm(self, host, args, name):
        vm = SourceVM([*args, "--net", f"tap={T.TAP}", "--drive", f"file={self.disk}"],
                      ferry=self.ferry, env=self.env, name=name,
                      log=os.path.join(self.workdir, f"{name}-console.log"))
        vm.argv = ["ip", "netns", "exec", self.topo.host_ns(host), *vm.argv]
        self.vms.append(vm)
        return vm

    def boot_primary(self):
        vm = self._vm("a", ["--mem", MEM, "--append", self.topo.guest_append(),
                            *self.primary_extra], "primary-a")
        vm.start()
        boot = vm.boot(timeout=BOOT_TIMEOUT)
        vm.wait_control(timeout=30)
        bl.log(f"    guest booted on host-a in {boot:.1f} s")
        vm.run("mount /dev/vda /mnt")
        # Short command lines: a long typed line can lose characters.
        vm.run("cd /mnt")
        vm.run(f"for i in $(seq 0 {NREQ - 1}); do reqlog $(({REQ_PORT}+i)) req$i.log </dev/null "
               f">/dev/null 2>&1 & done")
        wait_for(lambda: int(vm.run("netstat -ltn | grep -c ':70[0-9][0-9] '", check=False).split()[-1])
                 >= NREQ, 30, "the reqlog instances to listen", interval=0.3)
        self.primary, self.where = vm, "a"
        return boot

    def standby(self, host, extra=()):
        """A standby on `host` (not on the primary's); returns (vm, uri)."""
        self.port += 1
        uri = f"tcp:{HOST_IP[host]}:{self.port}"
        vm = self._vm(host, ["--standby", uri, *extra], f"standby{len(self.vms)}-{host}")
        vm.start()
        wait_for(lambda: self._listening(vm), 30, f"{vm.name} to listen on {uri}")
        return vm, uri

    @staticmethod
    def _listening(vm):
        if "waiting for a primary to replicate" in vm.stderr():
            return True
        if vm.proc.poll() is not None:
            raise BenchError(f"{vm.name} exited ({vm.proc.returncode}) before listening:\n"
                             f"{vm.stderr()}")
        return False

    def replicate(self, uri, interval_ms):
        t0 = time.monotonic()
        res = harness.run_cmd([self.ferry, "replicate", self.primary.control, uri,
                               "--interval", f"{interval_ms:g}ms"], timeout=120)
        if res.rc != 0:
            raise BenchError(f"ferry replicate failed\n{res.describe()}\n--- primary stderr ---\n"
                             f"{harness.tail(self.primary.stderr(), 20)}")
        return time.monotonic() - t0

    def repl_status(self, vm=None):
        r = ctl_request((vm or self.primary).control, {"cmd": "replication-status"})
        if not r.get("ok"):
            raise BenchError(f"replication-status: {r}")
        return r["replication"]

    def stop_replication(self, standby):
        res = harness.run_cmd([self.ferry, "replicate", self.primary.control, "--stop"], timeout=60)
        if res.rc != 0:
            raise BenchError(f"ferry replicate --stop failed\n{res.describe()}")
        rc = standby.wait_exit(30)
        standby.close()
        return rc

    def reset(self):
        """Every VM gone; a fresh shared disk and a fresh guest on host-a."""
        self.close_all()
        self.vms = []
        shutil.copyfile(self.guest / "data.ext4", self.disk)
        return self.boot_primary()

    def close_all(self):
        for vm in self.vms:
            try:
                vm.close()
            finally:
                vm.cleanup_files()
            rc = vm.returncode
            if rc in (128 + signal.SIGHUP, 128 + signal.SIGINT, 128 + signal.SIGTERM):
                msg = (f"{vm.name} (pid {vm.proc.pid}) exited with status {rc}: it received "
                       f"{signal.Signals(rc - 128).name} from outside the bench")
                self.outside_kills.append(msg)
                bl.log(f"bench: note: {msg}")
            trouble = [m.strip() for m in vm.KERNEL_TROUBLE if m in clean(vm.transcript)]
            if trouble:
                self.outside_kills.append(f"{vm.name}: kernel trouble on the console: {trouble}")

    # -- client ----------------------------------------------------------------

    def tag(self, what):
        self.tag_n += 1
        return f"{what}{self.tag_n}"

    def client_req(self, nconn, seconds, what):
        ports = ",".join(str(REQ_PORT + i) for i in range(nconn))
        r = self.topo.run(self.topo.client, [sys.executable, "-c", CLIENT, "req", GUEST_IP, ports,
                                             f"{seconds:g}", self.tag(what)],
                          timeout=seconds + 90, check=False)
        try:
            out = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise BenchError(f"request client ({nconn} connections) exited {r.returncode} without a "
                             f"report:\n{harness.tail(r.stderr, 8)}") from None
        if out["errors"]:
            raise BenchError(f"request client ({nconn} connections): {out['errors']}")
        lat = out.pop("lat_ms")
        out.update(req_per_s=out["count"] / seconds, lat_median_ms=pct(lat, 50),
                   lat_p99_ms=pct(lat, 99), lat_max_ms=max(lat) if lat else None,
                   lat_mean_ms=statistics.mean(lat) if lat else None)
        return out

    def start_watch(self, what, limit=120):
        errlog = open(os.path.join(self.workdir, f"watch-{what}.stderr"), "wb")
        tag = self.tag(what)
        p = self.topo.popen(self.topo.client,
                            [sys.executable, "-c", CLIENT, "watch", GUEST_IP, REQ_PORT, tag, limit],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog,
                            process_group=0, env=dict(os.environ, PING_MS=str(PING_MS)))
        p.errlog = errlog
        p.tag = tag
        line = p.stdout.readline()
        try:
            ready = json.loads(line)
        except ValueError:
            ready = None
        if not ready or ready.get("errors"):
            self.end_watch(p)
            raise BenchError(f"watch client did not start: {line!r} "
                             f"{open(errlog.name).read()[-2000:]}")
        return p

    @staticmethod
    def end_watch(p, timeout=20):
        out = None
        try:
            data, _ = p.communicate(input=b"", timeout=timeout)   # EOF on stdin: stop
            for line in data.decode(errors="replace").splitlines():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("event") == "final":
                    out = msg
        except subprocess.TimeoutExpired:
            pass
        harness.kill_group(p.pid)
        p.wait(5)
        p.errlog.close()
        if out is None:
            raise BenchError("the watch client gave no final report")
        return out

    # -- guest workloads -------------------------------------------------------

    def memdirty_bound(self, seconds):
        """memdirty 16 0 W in the foreground: verified pages per host second."""
        vm = self.primary
        t0 = time.monotonic()
        out = vm.run(f"memdirty {MEMDIRTY_BOUND_MIB} 0 {int(seconds)}", timeout=seconds * 20 + 60)
        wall = time.monotonic() - t0
        reps = re.findall(r"memdirty: gen=(\d+) verified=(\d+) errors=(\d+)", out)
        if not reps:
            raise BenchError(f"memdirty printed no report:\n{out}")
        gen, verified, errors = map(int, reps[-1])
        if errors:
            raise BenchError(f"memdirty found errors:\n{out}")
        return {"host_seconds": wall, "verified": verified, "gen": gen,
                "pages_per_s": verified / wall, "mb_per_s": verified * 4096 / wall / 1e6}

    def cpubench(self):
        t0 = time.monotonic()
        out = self.primary.run("cpubench", timeout=1200)
        wall = time.monotonic() - t0
        ph = bl.parse_cpubench(out)
        return {"host_seconds": wall, "phases": {k: v[1] for k, v in ph.items()},
                "checksums": {k: v[0] for k, v in ph.items()}}


class Sampler:
    """Polls replication-status every 100 ms in a thread: the per-checkpoint
    pause and size (last_pause_ms, last_checkpoint_bytes) over a window."""

    def __init__(self, bench):
        self.bench = bench
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop.wait(0.1):
            try:
                st = self.bench.repl_status()
            except Exception:  # noqa: BLE001
                continue
            self.samples.append((time.monotonic(), st))

    def __enter__(self):
        self.t0 = time.monotonic()
        self.st0 = self.bench.repl_status()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(2)
        self.t1 = time.monotonic()
        self.st1 = self.bench.repl_status()
        return False

    def result(self):
        if self.st1["state"] != "protected":
            raise BenchError(f"replication is {self.st1['state']}, not protected, at the end of the "
                             f"window: {self.st1.get('error')}")
        de = self.st1["epoch"] - self.st0["epoch"]
        dt = self.t1 - self.t0
        if de == 0:
            raise BenchError(f"replication stalled: epoch stuck at {self.st1['epoch']} for {dt:.1f} s "
                             f"while the state says protected (no checkpoint, no heartbeat: the "
                             f"standby fails over after its heartbeat timeout)")
        seen = {}
        for _, st in self.samples:
            seen[st["epoch"]] = st      # one sample per checkpoint seen
        pauses = [s["last_pause_ms"] for s in seen.values()]
        sizes = [s["last_checkpoint_bytes"] for s in seen.values()]
        return {"checkpoints": de, "seconds": dt, "checkpoints_per_s": de / dt,
                "state_end": self.st1["state"], "error": self.st1.get("error"),
                "pause_median_ms": pct(pauses, 50), "pause_p99_ms": pct(pauses, 99),
                "pause_max_sampled_ms": max(pauses) if pauses else None,
                "max_pause_ms_since_start": self.st1["max_pause_ms"],
                "checkpoint_bytes_median": pct(sizes, 50),
                "checkpoint_bytes_max_sampled": max(sizes) if sizes else None,
                "reported_checkpoints_per_s": self.st1["checkpoints_per_s"],
                "reported_achieved_interval_ms": self.st1["achieved_interval_ms"]}


# --------------------------------------------------------------------------
# The phases
# --------------------------------------------------------------------------

def workloads(b, label, results, replicated):
    W = b.args.window
    res = {}
    for nconn in (1, NREQ):
        bl.log(f"[{label}] request service, {nconn} connection(s), {W:g} s")
        if replicated:
            with Sampler(b) as s:
                r = b.client_req(nconn, W, f"r{nconn}")
            r["replication"] = s.result()
        else:
            r = b.client_req(nconn, W, f"u{nconn}")
        bl.log(f"    {r['req_per_s']:.1f} requests/s, latency median {fmt(r['lat_median_ms'], 2)} ms, "
               f"p99 {fmt(r['lat_p99_ms'], 2)} ms"
               + (f"; {r['replication']['checkpoints_per_s']:.1f} checkpoints/s" if replicated else ""))
        res[f"req{nconn}"] = r
    bl.log(f"[{label}] memdirty {MEMDIRTY_BOUND_MIB} 0 {int(W)} (memory-bound, as fast as it can)")
    if replicated:
        with Sampler(b) as s:
            r = b.memdirty_bound(W)
        r["replication"] = s.result()
    else:
        r = b.memdirty_bound(W)
    bl.log(f"    {r['pages_per_s']:.0f} verified pages/s ({r['mb_per_s']:.0f} MB/s) over "
           f"{r['host_seconds']:.1f} s"
           + (f"; {r['replication']['checkpoints_per_s']:.1f} checkpoints/s, pause median "
              f"{fmt(r['replication']['pause_median_ms'], 2)} ms, checkpoint median "
              f"{(r['replication']['checkpoint_bytes_median'] or 0) / 2**20:.1f} MiB" if replicated else ""))
    res["memdirty"] = r
    if not b.args.no_cpubench:
        bl.log(f"[{label}] cpubench")
        if replicated:
            with Sampler(b) as s:
                r = b.cpubench()
            r["replication"] = s.result()
        else:
            r = b.cpubench()
        bl.log(f"    mem phase {r['phases'].get('mem')} ms (guest clock), command {r['host_seconds']:.1f} s"
               + (f"; {r['replication']['checkpoints_per_s']:.1f} checkpoints/s" if replicated else ""))
        res["cpubench"] = r
    results[label] = res


def checkpoint_rates(b, results):
    W = b.args.window
    vm = b.primary
    vm.run(f"memdirty {MEMDIRTY_SWEEP[0]} {MEMDIRTY_SWEEP[1]} </dev/null >/tmp/sweep.log 2>&1 & "
           f"echo started")
    try:
        time.sleep(2)
        for iv in b.args.intervals:
            sb, uri = b.standby(OTHER[b.where])
            t_sync = b.replicate(uri, iv)
            time.sleep(1.0)
            with Sampler(b) as s:
                time.sleep(W)
            r = s.result()
            r.update(interval_ms=iv, initial_sync_s=t_sync)
            bl.log(f"[rate] interval {iv:g} ms: {r['checkpoints_per_s']:.1f} checkpoints/s "
                   f"(ideal {1000 / iv:.1f}), pause median {fmt(r['pause_median_ms'], 2)} ms, "
                   f"max {fmt(r['pause_max_sampled_ms'], 2)} ms, checkpoint median "
                   f"{(r['checkpoint_bytes_median'] or 0) / 1024:.0f} KiB; initial sync {t_sync:.1f} s")
            results["rates"].append(r)
            rc = b.stop_replication(sb)
            if rc != 0:
                bl.log(f"    note: the stopped standby exited with status {rc}")
    finally:
        out = vm.run("kill $(pidof memdirty); usleep 300000; cat /tmp/sweep.log")
        if "CORRUPTION" in out or re.search(r"errors=[1-9]", out):
            raise BenchError(f"memdirty found errors during the checkpoint-rate runs:\n{out}")


def gap_around(times, t_event, t_end):
    """Longest gap between consecutive replies that overlaps [t_event, t_end],
    and the first reply after t_event."""
    times = sorted(times)
    best = None
    for x, y in zip(times, times[1:]):
        if y >= t_event and x <= t_end:
            if best is None or y - x > best[1] - best[0]:
                best = (x, y)
    first = next((t for t in times if t > t_event), None)
    return best, first


def move(b, kind, results, n):
    """One switchover or failover of the guest to the other host."""
    args = b.args
    src, dst_host = b.primary, OTHER[b.where]
    hb = f"{args.heartbeat_timeout:g}ms"
    sb, uri = b.standby(dst_host, ["--heartbeat-timeout", hb])
    b.replicate(uri, args.interval)
    time.sleep(1.0)
    watch = b.start_watch(f"{kind}{n}")
    rec = {"kind": kind, "n": n, "from": b.where, "to": dst_host, "interval_ms": args.interval,
           "heartbeat_timeout_ms": args.heartbeat_timeout}
    try:
        st0 = b.repl_status()
        time.sleep(1.5)
        st = b.repl_status()
        rec["checkpoints_per_s_before"] = st["checkpoints_per_s"]
        if st["epoch"] == st0["epoch"] or st["state"] != "protected":
            raise BenchError(f"replication {st['state']}, stalled at epoch {st['epoch']} before the "
                             f"{kind} (no checkpoint in 1.5 s); standby stderr:\n{sb.stderr()}")
        if kind == "switchover":
            t_event = time.monotonic()
            res = harness.run_cmd([b.ferry, "switchover", src.control], timeout=60)
            t_done = time.monotonic()
            if res.rc != 0:
                raise BenchError(f"ferry switchover failed\n{res.describe()}")
            m = re.search(r"downtime (?:at most )?([\d.]+) ms \([^)]*one checkpoint of (\d+) bytes\)",
                          res.stdout)
            rec.update(reported_downtime_ms=float(m.group(1)) if m else None,
                       last_checkpoint_bytes=int(m.group(2)) if m else None,
                       command_ms=(t_done - t_event) * 1000, output=res.stdout.strip())
            rc = src.wait_exit(30)
            if rc != 0:
                bl.log(f"    note: the old primary exited with status {rc}")
            wait_for(lambda: "guest resumed from" in sb.stderr(), 30, "the standby to resume")
        else:
            # failover: kill -9; the kernel then closes the primary's
            # connection, which the standby notices at once. crash: the
            # primary freezes (SIGSTOP: no FIN, no heartbeat, as if its host
            # died), the standby must notice the silence (heartbeat
            # timeout); the frozen process is killed after the takeover.
            t_event = time.monotonic()
            os.kill(src.proc.pid, signal.SIGKILL if kind == "failover" else signal.SIGSTOP)
            t_takeover = None
            deadline = t_event + 30
            while time.monotonic() < deadline:
                if "failing over" in sb.stderr():
                    t_takeover = time.monotonic()
                    break
                if sb.proc.poll() is not None:
                    raise BenchError(f"standby exited ({sb.proc.returncode}) instead of failing "
                                     f"over:\n{sb.stderr()}")
                time.sleep(0.002)
            if t_takeover is None:
                raise BenchError(f"the standby did not fail over within 30 s:\n{sb.stderr()}")
            if kind == "crash":
                os.kill(src.proc.pid, signal.SIGKILL)
            src.wait_exit(10)
            t_done = t_takeover
            rec["takeover_ms"] = (t_takeover - t_event) * 1000
        time.sleep(3.0)
    finally:
        final = b.end_watch(watch)
    rec["client_errors"] = final["errors"]
    rec["acked"] = final["acked"]
    for key, times in (("ping", final["pings"]), ("tcp", final["tcp"])):
        gap, first = gap_around(times, t_event, t_done)
        rec[f"{key}_gap_ms"] = (gap[1] - gap[0]) * 1000 if gap else None
        rec[f"{key}_first_after_ms"] = (first - t_event) * 1000 if first else None
        rec[f"{key}_replies_after"] = sum(1 for t in times if t > t_done)
        # The longest gap in normal replicated operation (the second before
        # the event): output commit releases replies once per checkpoint.
        before = sorted(t for t in times if t_event - 1.0 <= t < t_event)
        rec[f"{key}_normal_gap_ms"] = (max(y - x for x, y in zip(before, before[1:])) * 1000
                                       if len(before) > 1 else None)
    rec["pings_sent"] = final["pings_sent"]
    rec["pings_answered"] = len(final["pings"])
    b.primary, b.where = sb, dst_host
    b.primary.wait_control(30)
    # The guest goes on: its shell answers, and (failover) every request the
    # client saw acknowledged is in the log on the shared disk.
    sb.wait_prompt(timeout=60)
    out = sb.run(f"awk '$2==\"{watch.tag}\" {{print $1}}' /mnt/req0.log | sort -n | uniq | "
                 f"awk 'BEGIN{{n=0; m=-1}} {{n++; if ($1>m) m=$1}} END{{print n, m}}'")
    cnt, mx = map(int, out.split()[-2:])
    rec["log_count"], rec["log_max"] = cnt, mx
    rec["log_ok"] = final["acked"] < 0 or (cnt == mx + 1 and mx >= final["acked"])
    if not rec["log_ok"]:
        bl.log(f"    LOG CHECK FAILED: client saw ACK up to {final['acked']}, the log holds "
               f"{cnt} distinct numbers up to {mx}")
    if sb.proc.poll() is not None:
        raise BenchError(f"the new primary exited:\n{sb.stderr()}")
    results["moves"].append(rec)
    desc = (f"reported downtime {fmt(rec.get('reported_downtime_ms'), 2)} ms"
            if kind == "switchover" else f"standby took over after {rec['takeover_ms']:.0f} ms")
    desc += (f"; normal gaps ping {fmt(rec['ping_normal_gap_ms'], 1)} ms, requests "
             f"{fmt(rec['tcp_normal_gap_ms'], 1)} ms")
    bl.log(f"[{kind} {n}] host-{rec['from']} -> host-{rec['to']}: {desc}; client: first ping reply "
           f"{fmt(rec['ping_first_after_ms'], 1)} ms, first request ACK "
           f"{fmt(rec['tcp_first_after_ms'], 1)} ms after; longest gap ping "
           f"{fmt(rec['ping_gap_ms'], 1)} ms, requests {fmt(rec['tcp_gap_ms'], 1)} ms; "
           f"log {'ok' if rec['log_ok'] else 'BAD'}"
           + (f"; client errors {rec['client_errors']}" if rec["client_errors"] else ""))


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def verdict(ok):
    return "n/a" if ok is None else ("yes" if ok else "NO")


def report(results, args):
    notes_common = [
        f"host: {results['host']}; load average at start {results['loadavg_start']}, "
        f"at end {results.get('loadavg_end')}; ferry binary {results['ferry']}.",
        "The host has 2 cores shared with other work: the primary's vCPU and replication "
        "threads, the standby and the client all compete for them, so figures are noisy.",
    ]
    rows = []
    for r in results["rates"]:
        rows.append([f"{r['interval_ms']:g}", f"{1000 / r['interval_ms']:.1f}",
                     f"{r['checkpoints_per_s']:.1f}", f"{1000 / r['checkpoints_per_s']:.1f}"
                     if r["checkpoints_per_s"] else "n/a",
                     fmt(r["pause_median_ms"], 2), fmt(r["pause_p99_ms"], 2),
                     fmt(r["pause_max_sampled_ms"], 2),
                     fmt((r["checkpoint_bytes_median"] or 0) / 1024, 0),
                     f"{r['initial_sync_s']:.1f}"])
    if rows:
        bl.print_table(
            f"checkpoint rate, guest running memdirty {MEMDIRTY_SWEEP[0]} {MEMDIRTY_SWEEP[1]}, "
            f"{args.window:g} s per interval",
            ["interval ms", "ideal /s", "achieved /s", "achieved interval ms", "pause median ms",
             "pause p99 ms", "pause max ms", "checkpoint KiB (median)", "initial sync s"], rows,
            ["achieved: checkpoints counted through replication-status over the window (host clock); "
             "pause and size: sampled every 100 ms (one sample per checkpoint seen).",
             "initial sync: `ferry replicate` until the first checkpoint was acknowledged "
             "(3 pre-copy rounds of all 256 MiB)."])

    u, r = results.get("unreplicated"), results.get("replicated")
    trows = []
    if u and r:
        def row(name, key, field, digits=1, higher_better=True):
            a, c = u[key][field], r[key][field]
            ratio = (c / a * 100 if higher_better else a / c * 100) if a and c else None
            return [name, fmt(a, digits), fmt(c, digits), fmt(ratio, 0, " %")]
        trows.append(row("requests/s, 1 connection", "req1", "req_per_s"))
        trows.append(row(f"requests/s, {NREQ} connections", f"req{NREQ}", "req_per_s"))
        trows.append(row("request latency median ms (1 conn.)", "req1", "lat_median_ms", 2, False))
        trows.append(row("request latency p99 ms (1 conn.)", "req1", "lat_p99_ms", 2, False))
        trows.append(row(f"request latency median ms ({NREQ} conn.)", f"req{NREQ}", "lat_median_ms", 2,
                         False))
        trows.append(row(f"request latency p99 ms ({NREQ} conn.)", f"req{NREQ}", "lat_p99_ms", 2, False))
        trows.append(row("memdirty verified pages/s", "memdirty", "pages_per_s", 0))
        trows.append(row("memdirty MB/s (rewrite+verify)", "memdirty", "mb_per_s", 0))
        if "cpubench" in u and "cpubench" in r:
            ua, ra = u["cpubench"], r["cpubench"]
            for ph in ("int", "mem", "fp", "total"):
                a, c = ua["phases"].get(ph), ra["phases"].get(ph)
                trows.append([f"cpubench {ph} ms (guest clock)", fmt(a, 0), fmt(c, 0),
                              fmt(a / c * 100 if a and c else None, 0, " %")])
            trows.append(["cpubench command s (host clock)", fmt(ua["host_seconds"], 2),
                          fmt(ra["host_seconds"], 2),
                          fmt(ua["host_seconds"] / ra["host_seconds"] * 100, 0, " %")])
        cps = [f"{r[k]['replication']['checkpoints_per_s']:.1f}" for k in ("req1", f"req{NREQ}", "memdirty",
                                                                         "cpubench") if k in r]
        bl.print_table(
            f"guest throughput and request latency: unreplicated vs replicated every {args.interval:g} ms",
            ["metric", "unreplicated", "replicated", "replicated / unreplicated"], trows,
            [f"checkpoints/s achieved during those replicated runs: {', '.join(cps)} "
             "(request 1 conn., 8 conn., memdirty, cpubench).",
             f"request service: reqlog in the guest (append + fsync on the shared ext4 disk, then ACK); "
             f"the client in the client namespace, one outstanding request per connection, "
             f"{args.window:g} s. For latencies the % column is unreplicated / replicated.",
             f"memdirty {MEMDIRTY_BOUND_MIB} 0 {int(args.window)}: verified pages (each checked, then "
             "rewritten) / host seconds of the command; MB/s = pages x 4096 / s.",
             "cpubench phases use the guest clock, which stops while a checkpoint pauses the guest; "
             "the command's host time includes the pauses."])

    mv = results["moves"]
    fo = [m for m in mv if m["kind"] in ("failover", "crash")]
    so = [m for m in mv if m["kind"] == "switchover"]
    mrows = []
    for m in mv:
        mrows.append([f"{m['kind']} {m['n']}", f"{m['from']}->{m['to']}",
                      fmt(m.get("reported_downtime_ms"), 2) if m["kind"] == "switchover"
                      else fmt(m.get("takeover_ms"), 0),
                      fmt(m["ping_first_after_ms"], 1),
                      f"{fmt(m['ping_gap_ms'], 1)} ({fmt(m.get('ping_normal_gap_ms'), 1)})",
                      fmt(m["tcp_first_after_ms"], 1),
                      f"{fmt(m['tcp_gap_ms'], 1)} ({fmt(m.get('tcp_normal_gap_ms'), 1)})",
                      "ok" if m["log_ok"] else "LOST",
                      "; ".join(m["client_errors"])[:60] or "-"])
    if mrows:
        bl.print_table(
            f"switchover and failover (replication every {args.interval:g} ms, standby "
            f"--heartbeat-timeout {args.heartbeat_timeout:g}ms)",
            ["event", "hosts", "downtime / takeover ms", "ping: 1st reply ms", "ping: gap (normal) ms",
             "request: 1st ACK ms", "request: gap (normal) ms", "acked requests in log",
             "client errors"],
            mrows,
            ["switchover: `ferry switchover`; failover: kill -9 of the primary (the kernel closes its "
             "connection: the standby notices at once); crash: SIGSTOP of the primary (silence: the "
             "standby must wait for its heartbeat timeout), kill -9 after the takeover.",
             "downtime / takeover: switchover = ferry switchover's reported downtime (final "
             "checkpoint's pause to RUNNING from the standby); failover, crash = the signal to the "
             "standby's 'failing over' line (its stderr polled every 2 ms).",
             f"1st reply: ms from the event (switchover command start / signal) to the first reply "
             f"after it. gap: longest time between two consecutive replies around the event; "
             f"(normal): the longest in the second before it, replicated (output commit releases "
             f"replies once per checkpoint). The client sends an ICMP echo every {PING_MS} ms, and "
             f"requests to reqlog one at a time on one TCP connection (a request or reply lost with "
             f"the primary waits for a TCP retransmission: >= 200 ms, Linux's minimum RTO).",
             "acked requests in log: every request the client saw ACKed is in /mnt/req0.log on the "
             "new primary (no acknowledged request lost)."])

    # Targets.
    rows = []
    mem_r = None
    if u and r:
        ua, ra = u["memdirty"], r["memdirty"]
        mem_r = ra["pages_per_s"] / ua["pages_per_s"] * 100
        cps_md = ra["replication"]["checkpoints_per_s"]
        rows.append([f"{TARGETS['cps']:g} checkpoints/s sustained with the memory-bound program "
                     f"keeping >= {TARGETS['mem_ratio']:g} % throughput",
                     f"{cps_md:.1f} checkpoints/s, memdirty at {mem_r:.0f} % of unreplicated",
                     verdict(cps_md >= TARGETS["cps"] * 0.95 and mem_r >= TARGETS["mem_ratio"])])
        if "cpubench" in u and "cpubench" in r:
            cb_r = u["cpubench"]["host_seconds"] / r["cpubench"]["host_seconds"] * 100
            cps_cb = r["cpubench"]["replication"]["checkpoints_per_s"]
            mem_ph = u["cpubench"]["phases"]["mem"] / r["cpubench"]["phases"]["mem"] * 100
            rows.append(["  (same, with cpubench's mem phase)",
                         f"{cps_cb:.1f} checkpoints/s, mem phase at {mem_ph:.0f} % (guest clock; "
                         f"whole command at {cb_r:.0f} %, host clock)",
                         verdict(cps_cb >= TARGETS["cps"] * 0.95 and mem_ph >= TARGETS["mem_ratio"])])
    lim = args.heartbeat_timeout + TARGETS["failover_slack_ms"]
    if fo:
        for key, what in (("ping", "first ICMP reply"), ("tcp", "first request ACK")):
            vals = [m[f"{key}_first_after_ms"] for m in fo]
            ok = all(v is not None and v <= lim for v in vals)
            rows.append([f"failover within heartbeat timeout + {TARGETS['failover_slack_ms']:g} ms "
                         f"= {lim:g} ms ({what})",
                         ", ".join(fmt(v, 0) for v in vals) + " ms", verdict(ok)])
        vals = [m["takeover_ms"] for m in fo]
        rows.append(["  (signal to the standby's takeover line)", ", ".join(fmt(v, 0) for v in vals)
                     + " ms", verdict(all(v <= lim for v in vals))])
        rows.append(["  (events, in order)", ", ".join(m["kind"] for m in fo), ""])
    if so:
        vals = [m["reported_downtime_ms"] for m in so]
        rows.append([f"switchover downtime <= {TARGETS['switchover_ms']:g} ms (ferry switchover)",
                     ", ".join(fmt(v, 2) for v in vals) + " ms",
                     verdict(all(v is not None and v <= TARGETS["switchover_ms"] for v in vals))])
        for key, what in (("ping", "ICMP"), ("tcp", "requests")):
            extra = [m[f"{key}_gap_ms"] - m[f"{key}_normal_gap_ms"]
                     if m[f"{key}_gap_ms"] is not None and m.get(f"{key}_normal_gap_ms") is not None
                     else None for m in so]
            rows.append([f"  as seen by the client: longest gap minus the normal one ({what})",
                         ", ".join(f"{fmt(m[f'{key}_gap_ms'], 1)}-{fmt(m.get(f'{key}_normal_gap_ms'), 1)}"
                                   for m in so) + " ms",
                         verdict(all(v is not None and v <= TARGETS["switchover_ms"] for v in extra))])
    if mv:
        rows.append(["no acknowledged request lost (switchover and failover)",
                     f"{sum(1 for m in mv if m['log_ok'])}/{len(mv)} moves",
                     verdict(all(m["log_ok"] for m in mv))])
    bl.print_table("targets", ["target", "result", "met?"], rows, notes_common)
    if results.get("failures"):
        print()
        print("failures (details in the JSON file):")
        for f in results["failures"]:
            print(f"  {f.splitlines()[0][:300]}")


# --------------------------------------------------------------------------

def run(b, results):
    args = b.args
    b.topo = netns.Topology()
    b.topo.up()
    bl.log("[setup] namespaces up; booting the guest on host-a")
    b.reset()

    def save():
        with open(results["_json"], "w") as f:
            json.dump({k: v for k, v in results.items() if not k.startswith("_")}, f, indent=2,
                      default=str)

    def throughput():
        workloads(b, "unreplicated", results, False)
        save()
        sb, uri = b.standby(OTHER[b.where])
        t_sync = b.replicate(uri, args.interval)
        results["initial_sync_s"] = t_sync
        bl.log(f"[replicated] protected after {t_sync:.1f} s (standby on host-{OTHER[b.where]}), "
               f"every {args.interval:g} ms")
        time.sleep(1.0)
        workloads(b, "replicated", results, True)
        st = b.repl_status()
        results["replicated"]["status_end"] = st
        if st["state"] != "protected":
            raise BenchError(f"replication is {st['state']} after the workloads: {st.get('error')}")
        b.stop_replication(sb)

    def moves():
        kinds = (["switchover"] * args.switchovers + ["failover"] * args.failovers
                 + ["crash"] * args.crashes)
        for i, kind in enumerate(kinds):
            n = sum(1 for k in kinds[:i + 1] if k == kind)
            move(b, kind, results, n)
            save()

    parts = [("throughput", throughput), ("rates", lambda: checkpoint_rates(b, results)),
             ("moves", moves), ("clients", lambda: replicate_clients.run(b, results, args, BenchError))]
    for name, fn in parts:
        if name not in args.parts:
            continue
        try:
            fn()
        except (BenchError, AssertionError) as e:
            # One broken part must not cost the others: start afresh.
            results["failures"].append(f"{name}: {type(e).__name__}: {e}")
            bl.log(f"[{name}] FAILED: {str(e)[:3000]}")
            bl.log("[setup] stopping every VM, booting a fresh guest on host-a")
            b.reset()
        save()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferry", default=str(bl.REPO / "build" / "ferry"))
    ap.add_argument("--guest", default=str(bl.REPO / "build" / "guest"))
    ap.add_argument("--quick", action="store_true",
                    help="3 s windows, 1 switchover, 1 failover, 1 crash")
    ap.add_argument("--window", type=float, default=5.0, help="seconds per measurement (default 5)")
    ap.add_argument("--intervals", default="10,25,100,200",
                    help="checkpoint intervals (ms) for the rate table")
    ap.add_argument("--interval", type=float, default=25.0,
                    help="checkpoint interval (ms) for throughput, switchover and failover (default 25)")
    ap.add_argument("--heartbeat-timeout", type=float, default=200.0,
                    help="standby --heartbeat-timeout in ms for switchover/failover (default 200)")
    ap.add_argument("--switchovers", type=int, default=3)
    ap.add_argument("--failovers", type=int, default=3, help="failovers after kill -9 of the primary")
    ap.add_argument("--crashes", type=int, default=3,
                    help="failovers after the primary froze (SIGSTOP, then kill -9 once the standby "
                         "took over): the heartbeat-timeout path")
    ap.add_argument("--no-cpubench", action="store_true")
    ap.add_argument("--parts", default="throughput,rates,moves,clients",
                    help="what to measure: a comma-separated subset of throughput (unreplicated vs "
                         "replicated), rates (checkpoint rate per interval), moves (switchovers, "
                         "failovers), clients (10 TCP clients: stall at switchover and failover, "
                         "latency added by output commit, etcd lease renewal; "
                         "bench/replicate_clients.py)")
    ap.add_argument("--out", default=str(bl.REPO / "bench" / "out"), help="directory for the JSON")
    ap.add_argument("--json", help="raw results file (default OUT/replicate.json)")
    args, unknown = ap.parse_known_args()
    if unknown:
        # bench/run-all.sh passes its arguments to every bench.
        bl.log(f"bench: replicate.py ignores {' '.join(unknown)}")
    if args.quick:
        args.window = min(args.window, 3.0)
        args.switchovers = min(args.switchovers, 1)
        args.failovers = min(args.failovers, 1)
        args.crashes = min(args.crashes, 1)
    args.intervals = [float(x) for x in args.intervals.split(",") if x.strip()]
    args.parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    if not args.parts <= {"throughput", "rates", "moves", "clients"}:
        ap.error(f"unknown --parts {args.parts}")

    why = netns.available()
    if why:
        bl.log(f"bench: replicate.py skipped: {why}")
        return 0 if os.geteuid() != 0 else 1
    guest = bl.find_guest(args.guest)
    if not (guest / "data.ext4").is_file():
        sys.exit(f"bench: no data.ext4 in {guest} (run make guest)")
    ferry = bl.find_ferry(args.ferry)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = Path(args.json) if args.json else out_dir / "replicate.json"

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, f: sys.exit(128 + n))
    workdir = tempfile.mkdtemp(prefix="ferry-repl-")
    # If we are killed outright, a watchdog removes the temp directory (the
    # namespaces have a watchdog of their own: tests/lib/netns.py).
    subprocess.Popen(["sh", "-c", 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; rm -rf "$2"',
                      "ferry-repl-reaper", str(os.getpid()), workdir],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, close_fds=True)
    results = {"host": bl.host_description(), "guest": str(guest), "ferry": ferry,
               "window_s": args.window, "interval_ms": args.interval,
               "intervals_ms": args.intervals, "heartbeat_timeout_ms": args.heartbeat_timeout,
               "loadavg_start": bl.loadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "targets": TARGETS, "rates": [], "moves": [], "failures": [],
               "_json": str(json_path)}
    b = Bench(args, ferry, guest, workdir)
    t0 = time.monotonic()
    status = 0
    try:
        run(b, results)
    except (BenchError, AssertionError, OSError, subprocess.SubprocessError, ValueError) as e:
        results["failures"].append(f"{type(e).__name__}: {e}")
        bl.log(f"bench: FAILED: {str(e)[:4000]}")
        status = 1
    finally:
        b.close_all()
        results["failures"] += b.outside_kills
        if b.topo:
            b.topo.down()
        shutil.rmtree(workdir, ignore_errors=True)
    if results["failures"]:
        status = 1
    results["loadavg_end"] = bl.loadavg()
    results["seconds"] = time.monotonic() - t0
    results.pop("_json")
    bl.save_json(json_path, results)
    report(results, args)
    replicate_clients.report(results)
    return status


if __name__ == "__main__":
    sys.exit(main())
