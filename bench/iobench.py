#!/usr/bin/env python3
"""Disk and network I/O of ferry's virtio-blk and virtio-net, next to QEMU
(TCG) on the same kernel, initramfs, disk image and tap setup, in one run.

    bench/iobench.py [--ferry build/ferry] [--guest build/guest]
                [--qemu qemu-system-riscv64 | --no-qemu] [--no-ferry]
                [--runs 3 | --quick] [--disk-mib 256] [--net-mib 256]
                [--requests 300] [--qemu-no-offload]
                [--out bench/out] [--json FILE]

Each run (`--runs` per machine, ferry and QEMU alternating which goes first)
creates a fresh sparse raw image of 300 MiB, builds nothing else: the
"two hosts on one machine" topology (scripts/netns.sh, tests/lib/netns.py)
is set up once for the whole bench, and every VM runs inside host-a on
tap0 with `ferry.ip=10.77.0.10/24`, reached from the client namespace
(10.77.0.100) over the LAN bridge. Both machines get -smp 1, 256 MiB RAM,
one virtio-blk disk (the image) and one virtio-net card (tap0, MAC
52:54:00:12:34:56). Per VM, after boot:

  disk write  dd if=/dev/zero of=/dev/vda bs=1M count=256 oflag=direct conv=fsync
              (O_DIRECT, so no guest page cache; conv=fsync adds a virtio
              FLUSH at the end, inside dd's timing)
  disk read   dd if=/dev/vda of=/dev/null bs=1M count=256 iflag=direct
              MiB/s = bytes / seconds from busybox dd's own summary line
              (guest clock; both VMMs' guest clocks follow the host's
              monotonic clock). The host-side time of the whole command is
              kept in the JSON as a cross-check.
  net guest->client  the guest runs `netblast source 5001 BYTES`
              (guest/programs/netblast.c: accept one connection, send BYTES
              zeros in 256 KiB writes); a Python client in the client
              namespace connects, reads it all and checks it is all zeros.
              MiB/s from connect to last byte (client clock).
  net client->guest  the guest runs `netblast sink 5000` (read to EOF in
              256 KiB reads, answer the byte count); the client connects,
              sends 256 MiB, half-closes and waits for the count (so the time
              covers every byte consumed in the guest). MiB/s from connect
              to the count (client clock).
              Not busybox nc and wc: with `nc -l -p 5000 -e wc -c` the guest
              spent ~80 % of its time in wc's per-character loop (perf on
              ferry), and nc sends a file in small writes, so both measured
              instruction emulation rather than the virtual NIC.
  latency     the guest runs `reqlog 7000 /tmp/log` (guest/programs/reqlog.c:
              append the request line, fsync - cheap on tmpfs - answer
              "ACK n"); the client sends 20 warm-up requests then --requests
              more on one TCP connection (TCP_NODELAY), one at a time, and
              times each request to its ACK: median, p99, min, max (ms).

QEMU: qemu-system-riscv64 -M virt -bios default -nographic -smp 1 -m 256M
-kernel Image -initrd initramfs.cpio -append "console=ttyS0 quiet
ferry.ip=10.77.0.10/24" -drive file=IMG,format=raw,if=none,id=d0 -device
virtio-blk-device,drive=d0 -netdev tap,id=n0,ifname=tap0,script=no,
downscript=no -device virtio-net-device,netdev=n0,mac=52:54:00:12:34:56
(default cache=writeback, no vhost; ferry's disk backend also writes
through the host page cache and flushes on FLUSH).

--qemu-no-offload adds a third machine, "qemu nooff": QEMU with its
virtio-net offloads (checksum, TSO/GSO, merged RX buffers) turned off, i.e.
the feature set ferry's virtio-net offers (MAC, STATUS), to tell a device
feature gap from emulation speed.

Targets: ferry's median disk (write and read) and network (both ways)
throughput at least QEMU's. Latency is reported without a target.

Needs root (network namespaces), iproute2, /dev/net/tun; without them the
network part is skipped and only the disk is measured. Every wait has a
time limit; namespaces, VMs, client processes and images are removed on
exit, also on failure, Ctrl-C or SIGTERM.

Outputs: a table on stdout, progress on stderr, raw results as JSON
(OUT/io.json).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import harness  # noqa: E402  (path set up by benchlib)
import netns  # noqa: E402
from ferryvm import ConsoleProcess  # noqa: E402

IMAGE_MIB = 300
MAC = "52:54:00:12:34:56"
BOOT_TIMEOUT = 300
DISK_TIMEOUT = 600       # per dd command
NET_TIMEOUT = 600        # per transfer
LAT_TIMEOUT = 300
WARMUP_REQUESTS = 20
TX_PORT = 5001           # guest -> client
RX_PORT = 5000           # client -> guest
REQ_PORT = 7000
# --qemu-no-offload: QEMU's virtio-net with the feature set ferry offers
# (MAC and STATUS only: no checksum offload, TSO/GSO or merged RX buffers).
NO_OFFLOAD = ",".join(f"{o}=off" for o in (
    "csum", "guest_csum", "gso", "host_tso4", "host_tso6", "host_ecn", "host_ufo",
    "guest_tso4", "guest_tso6", "guest_ecn", "guest_ufo", "mrg_rxbuf"))
# Targets: ferry / QEMU median ratio must be >= this.
THROUGHPUT_RATIO_TARGET = 1.0

DD_LINE = re.compile(r"(\d+) bytes \([^)]*\) copied, ([\d.]+) seconds")


# --------------------------------------------------------------------------
# Client side, run inside the client namespace (python3 -c). Each prints one
# JSON line. Connecting is retried until the guest listens (it is started
# in parallel with the guest's command).
# --------------------------------------------------------------------------

_CONNECT = r"""
import json, socket, sys, time
def connect(addr, port, limit):
    deadline = time.monotonic() + limit
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
"""

# argv: addr port want_bytes limit. Reads until want bytes or EOF.
_RECV = _CONNECT + r"""
addr, port, want, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = connect(addr, port, limit)
t0 = time.monotonic()
s.settimeout(limit)
got = 0
nonzero = 0
buf = bytearray(1 << 20)
view = memoryview(buf)
while got < want:
    n = s.recv_into(view, min(len(buf), want - got))
    if n == 0:
        break
    if buf.count(0, 0, n) != n:
        nonzero += 1
    got += n
t1 = time.monotonic()
s.close()
print(json.dumps({"bytes": got, "seconds": t1 - t0, "nonzero_chunks": nonzero}))
"""

# argv: addr port nbytes limit. Sends nbytes of zeros, half-closes, waits
# for the guest's byte count (netblast sink).
_SEND = _CONNECT + r"""
addr, port, nbytes, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = connect(addr, port, limit)
s.settimeout(limit)
chunk = bytes(1 << 20)
t0 = time.monotonic()
left = nbytes
while left:
    n = min(left, len(chunk))
    s.sendall(chunk[:n] if n < len(chunk) else chunk)
    left -= n
s.shutdown(socket.SHUT_WR)
answer = b""
while True:
    d = s.recv(4096)
    if not d:
        break
    answer += d
t1 = time.monotonic()
s.close()
print(json.dumps({"bytes": nbytes, "seconds": t1 - t0, "answer": answer.decode(errors="replace").strip()}))
"""

# argv: addr port warmup count limit. One request at a time on one connection.
_REQS = _CONNECT + r"""
addr, port, warm, count, limit = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                  int(sys.argv[4]), float(sys.argv[5]))
s = connect(addr, port, limit)
s.settimeout(min(limit, 30))
deadline = time.monotonic() + limit
f = s.makefile("rb")
times = []
for i in range(warm + count):
    if time.monotonic() > deadline:
        break
    t0 = time.perf_counter()
    s.sendall(b"%d bench-request-payload-0123456789\n" % i)
    line = f.readline()
    t1 = time.perf_counter()
    if line.strip() != b"ACK %d" % i:
        print(json.dumps({"error": "request %d: answer %r" % (i, line), "times_ms": times}))
        sys.exit(1)
    if i >= warm:
        times.append((t1 - t0) * 1e3)
s.close()
print(json.dumps({"times_ms": times}))
"""


class ClientJob:
    """A client script running in the client namespace, in a thread."""

    def __init__(self, topo, code, args, timeout):
        self.box = {}
        self.timeout = timeout

        def run():
            try:
                self.box["res"] = topo.python(topo.client, code, *map(str, args),
                                              timeout=timeout, check=False)
            except BaseException as e:  # noqa: BLE001 - reported by result()
                self.box["error"] = e
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, wait=30):
        self.thread.join(harness.scaled(wait))
        if self.thread.is_alive():
            raise RuntimeError("the client did not finish after the guest's command did")
        if "error" in self.box:
            raise self.box["error"]
        r = self.box["res"]
        line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        try:
            out = json.loads(line)
        except ValueError:
            raise RuntimeError(f"client exited {r.returncode} without a result:\n{r.stdout}{r.stderr}")
        if r.returncode != 0 or out.get("error"):
            raise RuntimeError(f"client failed (status {r.returncode}): {out.get('error')}\n{r.stderr}")
        return out


# --------------------------------------------------------------------------
# VMs
# --------------------------------------------------------------------------

def make_ferry(ferry, guest, image, topo):
    args = ["--smp", "1", "--mem", "256M", "--drive", f"file={image}"]
    env = {"FERRY_GUEST_DIR": str(guest)}
    if topo:
        return topo.ferry("a", [*args, "--append", topo.guest_append()], mac=MAC, ferry=ferry, env=env)
    return bl.ferry_vm(ferry, guest, args)


def make_qemu(qemu, guest, image, topo, no_offload=False):
    extra = ["-drive", f"file={image},format=raw,if=none,id=d0",
             "-device", "virtio-blk-device,drive=d0"]
    if topo:
        extra += ["-netdev", f"tap,id=n0,ifname={topo.TAP},script=no,downscript=no",
                  "-device", f"virtio-net-device,netdev=n0,mac={MAC}"
                  + ("," + NO_OFFLOAD if no_offload else "")]
    argv = bl.qemu_argv(qemu, guest, smp=1, mem="256M", extra=extra)
    if topo:
        argv[argv.index("-append") + 1] = topo.guest_append()
        argv = ["ip", "netns", "exec", topo.host_a, *argv]
    return ConsoleProcess(argv, name="qemu")


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------

def dd(vm, cmd):
    t0 = time.monotonic()
    out = vm.run(cmd + " 2>&1", timeout=DISK_TIMEOUT)
    wall = time.monotonic() - t0
    m = DD_LINE.search(out)
    if not m:
        raise RuntimeError(f"{vm.name}: no dd summary in {out!r}")
    nbytes, secs = int(m.group(1)), float(m.group(2))
    return {"bytes": nbytes, "seconds": secs, "mib_s": nbytes / 2**20 / secs if secs > 0 else None,
            "host_seconds": wall, "output": out}


def measure_disk(vm, mib):
    size = int(vm.run("cat /sys/block/vda/size").strip()) * 512
    if size < mib << 20:
        raise RuntimeError(f"{vm.name}: /dev/vda has {size} bytes, need {mib} MiB")
    w = dd(vm, f"dd if=/dev/zero of=/dev/vda bs=1M count={mib} oflag=direct conv=fsync")
    r = dd(vm, f"dd if=/dev/vda of=/dev/null bs=1M count={mib} iflag=direct")
    for what, x in (("write", w), ("read", r)):
        if x["bytes"] != mib << 20:
            raise RuntimeError(f"{vm.name}: dd {what} moved {x['bytes']} bytes, want {mib} MiB")
    return w, r


def measure_net(vm, topo, mib):
    nbytes = mib << 20
    ip = topo.GUEST_IP
    # guest -> client
    job = ClientJob(topo, _RECV, [ip, TX_PORT, nbytes, NET_TIMEOUT], NET_TIMEOUT + 30)
    t0 = time.monotonic()
    vm.run(f"netblast source {TX_PORT} {nbytes}", timeout=NET_TIMEOUT)
    tx = job.result()
    tx["host_seconds"] = time.monotonic() - t0
    if tx["bytes"] != nbytes or tx["nonzero_chunks"]:
        raise RuntimeError(f"guest->client: got {tx['bytes']} bytes (want {nbytes}), "
                           f"{tx['nonzero_chunks']} chunks not all zeros")
    tx["mib_s"] = nbytes / 2**20 / tx["seconds"]

    # client -> guest
    job = ClientJob(topo, _SEND, [ip, RX_PORT, nbytes, NET_TIMEOUT], NET_TIMEOUT + 30)
    vm.run(f"netblast sink {RX_PORT}", timeout=NET_TIMEOUT)
    rx = job.result()
    if rx["answer"] != str(nbytes):
        raise RuntimeError(f"client->guest: the guest counted {rx['answer']!r} bytes, want {nbytes}")
    rx["mib_s"] = nbytes / 2**20 / rx["seconds"]
    return tx, rx


def measure_latency(vm, topo, count):
    vm.run(f"{{ reqlog {REQ_PORT} /tmp/reqlog.log >/dev/null 2>&1 & }}")
    job = ClientJob(topo, _REQS, [topo.GUEST_IP, REQ_PORT, WARMUP_REQUESTS, count, LAT_TIMEOUT],
                    LAT_TIMEOUT + 30)
    out = job.result(LAT_TIMEOUT + 60)
    times = out["times_ms"]
    if len(times) != count:
        raise RuntimeError(f"latency: {len(times)} of {count} requests answered")
    logged = int(vm.run("wc -l < /tmp/reqlog.log").strip())
    if logged != WARMUP_REQUESTS + count:
        raise RuntimeError(f"latency: reqlog logged {logged} lines, want {WARMUP_REQUESTS + count}")
    vm.run("kill $! 2>/dev/null; true")
    return {"median_ms": statistics.median(times), "p99_ms": percentile(times, 99),
            "min_ms": min(times), "max_ms": max(times), "times_ms": times}


def percentile(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def one_run(vmm, make_vm, args, topo, tmp):
    image = os.path.join(tmp, "disk.img")
    if os.path.exists(image):
        os.unlink(image)
    with open(image, "wb") as f:     # sparse
        f.truncate(IMAGE_MIB << 20)
    rec = {}
    try:
        with make_vm(image) as vm:
            rec["boot_s"] = vm.boot(BOOT_TIMEOUT)
            vm.run("true")
            w, r = measure_disk(vm, args.disk_mib)
            rec["disk_write"], rec["disk_read"] = w, r
            bl.log(f"    disk write {w['mib_s']:.1f} MiB/s ({w['seconds']:.2f} s), "
                   f"read {r['mib_s']:.1f} MiB/s ({r['seconds']:.2f} s)")
            if topo:
                tx, rx = measure_net(vm, topo, args.net_mib)
                rec["net_tx"], rec["net_rx"] = tx, rx
                bl.log(f"    net guest->client {tx['mib_s']:.1f} MiB/s ({tx['seconds']:.2f} s), "
                       f"client->guest {rx['mib_s']:.1f} MiB/s ({rx['seconds']:.2f} s)")
                lat = measure_latency(vm, topo, args.requests)
                rec["latency"] = lat
                bl.log(f"    request latency median {lat['median_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms")
            vm.sendline("poweroff")
            rc = vm.wait_exit(120)
            if rc != 0:
                raise RuntimeError(f"{vmm} exited {rc} after poweroff:\n{harness.tail(vm.stderr(), 20)}")
    finally:
        if os.path.exists(image):
            os.unlink(image)
    return rec


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

METRICS = [
    # key, label, extractor, higher is better, has target
    ("disk_write", "disk write (MiB/s, dd oflag=direct conv=fsync)", lambda r: r["disk_write"]["mib_s"], True, True),
    ("disk_read", "disk read (MiB/s, dd iflag=direct)", lambda r: r["disk_read"]["mib_s"], True, True),
    ("net_tx", "net guest->client (MiB/s)", lambda r: r["net_tx"]["mib_s"], True, True),
    ("net_rx", "net client->guest (MiB/s)", lambda r: r["net_rx"]["mib_s"], True, True),
    ("lat_median", "request latency, median (ms)", lambda r: r["latency"]["median_ms"], False, False),
    ("lat_p99", "request latency, p99 (ms)", lambda r: r["latency"]["p99_ms"], False, False),
    ("boot", "boot to prompt (s)", lambda r: r["boot_s"], False, False),
]


def values(results, vmm, fn):
    out = []
    for r in results["runs"]:
        if r["vmm"] == vmm and r["ok"]:
            try:
                out.append(fn(r))
            except (KeyError, TypeError):
                pass
    return bl.Summary(out)


def report(results, args):
    machines = results["machines"]
    nooff = "qemu-nooff" in machines
    rows = []
    for key, label, fn, higher, has_target in METRICS:
        f = values(results, "ferry", fn) if "ferry" in machines else bl.Summary([])
        q = values(results, "qemu", fn) if "qemu" in machines else bl.Summary([])
        q0 = values(results, "qemu-nooff", fn) if nooff else bl.Summary([])
        if not f and not q:
            continue
        digits = 3 if key.startswith("lat") else (2 if key == "boot" else 1)
        extra = [q0.fmt(digits) if q0 else "-"] if nooff else []
        ratio = ""
        if f and q and q.median:
            ratio = f"{f.median / q.median:.2f}x"
        target = verdict = ""
        if has_target:
            target = ">= QEMU"
            if f and q:
                verdict = "yes" if f.median >= THROUGHPUT_RATIO_TARGET * q.median else "NO"
            else:
                verdict = "n/a"
        rows.append([label, f.fmt(digits) if f else "-", q.fmt(digits) if q else "-", *extra,
                     ratio, target, verdict])
    notes = [
        f"median [min-max] over completed runs ({args.runs} per machine); host: {results['host']}",
        f"load average at start {results['loadavg_start']}, at end {results.get('loadavg_end')}: the host has "
        "2 cores shared with other work, so the numbers are noisy (a VM's vCPU thread competes with the "
        "client and whatever else runs).",
        f"disk: {args.disk_mib} MiB on a fresh sparse {IMAGE_MIB} MiB raw image per run, busybox dd's own "
        "timing (guest clock); MiB = 2^20 bytes.",
        f"net: {args.net_mib} MiB of zeros over TCP between the client namespace and the guest on tap0 "
        "(veth + bridges), netblast in the guest, timed by the client from connect to last byte "
        "(guest->client) or to the guest's byte count (client->guest).",
        f"latency: {args.requests} requests after {WARMUP_REQUESTS} warm-up ones, one at a time on one "
        "connection, to reqlog (write + fsync on tmpfs + ACK); p99 is nearest-rank.",
        "ferry/qemu: ratio of medians (for latency and boot, lower is better).",
    ]
    if nooff:
        notes.append("qemu nooff: QEMU with virtio-net " + NO_OFFLOAD.replace(",", " ")
                     + " (ferry's virtio-net offers MAC and STATUS only); ratio and target use "
                     "the default QEMU column.")
    if not results.get("network"):
        notes.append(f"network not measured: {results.get('network_skipped')}")
    bl.print_table("ferry disk / network I/O vs QEMU (TCG)",
                   ["metric", "ferry", "qemu (TCG)", *(["qemu nooff"] if nooff else []),
                    "ferry/qemu", "target", "ferry ok?"], rows, notes)
    failures = [r for r in results["runs"] if not r["ok"]]
    if failures:
        print()
        print("failed runs (details in the JSON file):")
        for r in failures:
            first = (r.get("error") or "?").strip().splitlines()
            print(f"  {r['vmm']} run {r['run']}: {first[0][:300] if first else '?'}")


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferry", default=str(bl.REPO / "build" / "ferry"))
    ap.add_argument("--guest", default=str(bl.REPO / "build" / "guest"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--no-ferry", action="store_true", help="QEMU only (to check the bench)")
    ap.add_argument("--runs", type=int, default=3, help="runs per machine (default 3)")
    ap.add_argument("--quick", action="store_true", help="1 run per machine")
    ap.add_argument("--disk-mib", type=int, default=256, help="MiB written and read by dd (default 256)")
    ap.add_argument("--net-mib", type=int, default=256, help="MiB sent each way (default 256)")
    ap.add_argument("--requests", type=int, default=300, help="timed requests (default 300)")
    ap.add_argument("--qemu-no-offload", action="store_true",
                    help="also run QEMU with virtio-net offloads off (ferry's feature set), "
                         "column 'qemu-nooff'")
    ap.add_argument("--out", default=str(bl.REPO / "bench" / "out"), help="directory for the JSON")
    ap.add_argument("--json", help="raw results file (default OUT/io.json)")
    args, unknown = ap.parse_known_args()
    if unknown:
        # bench/run-all.sh passes its arguments to every bench.
        bl.log(f"bench: iobench.py ignores {' '.join(unknown)}")
    if args.quick:
        args.runs = 1
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if not 1 <= args.disk_mib <= IMAGE_MIB:
        ap.error(f"--disk-mib must be 1..{IMAGE_MIB}")
    if not 1 <= args.net_mib <= 4096:
        ap.error("--net-mib must be 1..4096")
    if args.requests < 1:
        ap.error("--requests must be >= 1")

    # Cleanup on SIGTERM/SIGHUP as on Ctrl-C: the with-blocks kill the VMs
    # and remove the namespaces.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, f: sys.exit(128 + n))

    guest = bl.find_guest(args.guest)
    ferry = None if args.no_ferry else bl.find_ferry(args.ferry)
    qemu = None if args.no_qemu else bl.find_qemu(args.qemu)
    if not args.no_qemu and not qemu:
        bl.log(f"bench: {args.qemu} not found; QEMU column skipped")
    tmp = tempfile.mkdtemp(prefix="fbench-io-")
    try:
        if ferry:
            ferry = bl.pin_ferry(ferry, tmp)
        why = netns.available()
        if why:
            bl.log(f"bench: network part skipped: {why}")
            return measure_all(args, guest, ferry, qemu, None, why, tmp)
        with netns.Topology() as topo:
            return measure_all(args, guest, ferry, qemu, topo, None, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure_all(args, guest, ferry, qemu, topo, net_skipped, tmp):
    makers = {}
    if ferry:
        makers["ferry"] = lambda img: make_ferry(ferry, guest, img, topo)
    if qemu:
        makers["qemu"] = lambda img: make_qemu(qemu, guest, img, topo)
        if args.qemu_no_offload and topo:
            makers["qemu-nooff"] = lambda img: make_qemu(qemu, guest, img, topo, no_offload=True)
    machines = list(makers)
    if not machines:
        sys.exit("bench: nothing to run")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = Path(args.json) if args.json else out_dir / "io.json"
    results = {"host": bl.host_description(), "guest": str(guest), "ferry": ferry, "qemu": qemu,
               "runs_per_machine": args.runs, "disk_mib": args.disk_mib, "image_mib": IMAGE_MIB,
               "net_mib": args.net_mib, "requests": args.requests, "warmup_requests": WARMUP_REQUESTS,
               "network": topo is not None, "network_skipped": net_skipped,
               "machines": machines, "loadavg_start": bl.loadavg(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": []}
    t_start = time.monotonic()
    total = args.runs * len(machines)
    n = 0
    for i in range(args.runs):
        order = machines if i % 2 == 0 else machines[::-1]
        for vmm in order:
            n += 1
            bl.log(f"[{n}/{total}] {vmm} run {i + 1}/{args.runs} "
                   f"({time.monotonic() - t_start:.0f} s elapsed, load {bl.loadavg()})")
            t0 = time.monotonic()
            rec = {"vmm": vmm, "run": i + 1, "ok": False, "loadavg": bl.loadavg()}
            try:
                rec.update(one_run(vmm, makers[vmm], args, topo, tmp))
                rec["ok"] = True
            except Exception as e:  # noqa: BLE001 - one bad run must not end the bench
                rec["error"] = f"{type(e).__name__}: {e}"
                bl.log(f"    FAILED: {rec['error'][:3000]}")
            rec["seconds"] = time.monotonic() - t0
            results["runs"].append(rec)
            with open(json_path, "w") as f:   # partial results survive a crash
                json.dump(results, f, indent=2, default=str)
    results["loadavg_end"] = bl.loadavg()
    results["seconds"] = time.monotonic() - t_start
    bl.save_json(json_path, results)
    report(results, args)
    return 0 if all(r["ok"] for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
