#!/usr/bin/env python3
"""SMP scaling and SMP migration downtime of ferry, next to QEMU (TCG,
multi-threaded) on the same kernel and initramfs, in one run.

    bench/smp.py [--ferry build/ferry] [--guest build/guest]
                 [--qemu qemu-system-riscv64 | --no-qemu] [--no-ferry]
                 [--runs 5] [--scale 16] [--migrations 5] [--max-downtime 5]
                 [--no-migration] [--json FILE]

Scaling: one VM per machine with 2 vCPUs (ferry `--smp 2 --mem 256M`;
QEMU `-smp 2 -m 256M -accel tcg,thread=multi`, i.e. MTTCG: a host thread
per vCPU). In it, `--runs` times each, alternating: `parbench 1 S` and
`parbench 2 S` (guest/programs/parbench.c: a fixed amount of CPU-bound
integer work, cut into 8 shares, run by 1 thread or by 2 threads pinned to
CPU 0 and 1; the guest's CLOCK_MONOTONIC time from start to the last
share done). Speed-up = 1-thread time / 2-thread time of the same run
pair (target >= 1.7x with 2 host cores). ferry/QEMU = ratio of the
medians. "host cores busy" is the VMM process's CPU time during the
command over its wall time, "host CPU time" that CPU time itself. Checksums must agree between thread
counts, runs and machines (same binary, same work).

Migration downtime with 2 vCPUs: bench/migrate.py's live migration with
a case of 256 MiB RAM, `--smp 2` (QEMU: `-smp 2`, MTTCG) and `memdirty 64
64 0 2` (a 64 MiB working set rewritten at 64 MB/s by 2 threads, one per
vCPU), `--migrations` runs per machine, fresh source and destination each
time; ferry's downtime is its measured one (source pause to destination
resume), QEMU's its reported one, and "pause->dst running" the same span
for both from host-clock timestamps (see bench/migrate.py). Target: ferry's
median downtime <= --max-downtime ms.

Progress goes to stderr, the tables to stdout. The host has 2 cores
shared with other work: figures are noisy; the load average is printed.
"""

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import migrate as mig  # noqa: E402  (bench/migrate.py)

SPEEDUP_TARGET = 1.7
BOOT_TIMEOUT = 300
SMP = 2
MIG_CASE = "smp2-dirty-64"
mig.CASES[MIG_CASE] = {"mem": "256M", "rate": 64, "smp": SMP, "threads": SMP}

PARBENCH = re.compile(r"^parbench: threads=(\d+) scale=(\d+) shares=\d+ ms=([\d.]+) checksum=(\S+)",
                      re.M)


def parbench(vm, threads, scale):
    """Runs parbench in the guest; returns (guest ms, checksum, host cores
    busy during the command, host CPU seconds of the command)."""
    pid = vm.proc.pid
    c0, t0 = bl.cpu_seconds(pid), time.monotonic()
    out = vm.run(f"parbench {threads} {scale}", timeout=3600)
    c1, t1 = bl.cpu_seconds(pid), time.monotonic()
    m = PARBENCH.search(out)
    if not m or int(m.group(1)) != threads:
        raise RuntimeError(f"{vm.name}: parbench printed:\n{out}")
    return float(m.group(3)), m.group(4), (c1 - c0) / (t1 - t0), c1 - c0


def measure_scaling(label, vm, args):
    runs = []
    with vm:
        vm.boot(BOOT_TIMEOUT)
        ncpu = vm.run("grep -c ^processor /proc/cpuinfo").strip().splitlines()[-1]
        if ncpu.strip() != str(SMP):
            raise RuntimeError(f"{label}: the guest sees {ncpu} CPUs, want {SMP}")
        for i in range(args.runs):
            # Alternate which goes first, so a drift in host load hits both.
            order = (1, 2) if i % 2 == 0 else (2, 1)
            r = {}
            for t in order:
                r[t] = parbench(vm, t, args.scale)
            bl.log(f"[{label}] run {i + 1}/{args.runs}: 1 thread {r[1][0]:.0f} ms, "
                   f"2 threads {r[2][0]:.0f} ms (x{r[1][0] / r[2][0]:.2f}), "
                   f"{r[2][2]:.2f} host cores busy")
            runs.append({"t1_ms": r[1][0], "t2_ms": r[2][0], "sum1": r[1][1], "sum2": r[2][1],
                         "cores1": r[1][2], "cores2": r[2][2], "cpu1_s": r[1][3],
                         "cpu2_s": r[2][3]})
        vm.sendline("poweroff")
        vm.wait_exit(120)
    return runs


def measure_migration(label, fn, args):
    runs = []
    for i in range(args.migrations):
        bl.log(f"[{label}] migration {i + 1}/{args.migrations} ({MIG_CASE})")
        try:
            rec = fn()
            rec["ok"] = True
            bl.log(f"    downtime {rec['downtime_ms']:.2f} ms, pause->dst running "
                   f"{rec['dst_running_ms']:.2f} ms, {rec.get('dirty_rate_mb_s', 0):.0f} MB/s dirtied"
                   + (f"; guest trouble after: {rec['guest_error']}" if rec.get("guest_error") else ""))
        except Exception as e:  # noqa: BLE001 - a failed run is reported, the bench goes on
            rec = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            bl.log(f"    FAILED: {rec['error']}")
        runs.append(rec)
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferry", default=str(bl.REPO / "build" / "ferry"))
    ap.add_argument("--guest", default=str(bl.REPO / "build" / "guest"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--no-ferry", action="store_true", help="QEMU only (to check the bench)")
    ap.add_argument("--runs", type=int, default=5, help="parbench run pairs per machine")
    ap.add_argument("--scale", type=int, default=16, help="parbench work scale")
    ap.add_argument("--migrations", type=int, default=5, help="migrations per machine")
    ap.add_argument("--max-downtime", type=float, default=5.0, help="downtime target, ms")
    ap.add_argument("--qemu-converge-timeout", type=float, default=20.0)
    ap.add_argument("--no-migration", action="store_true", help="scaling only")
    ap.add_argument("--json", help="write the raw measurements here")
    args = ap.parse_args()
    if args.runs < 1 or args.scale < 1 or args.migrations < 1:
        ap.error("--runs, --scale and --migrations must be >= 1")

    guest = bl.find_guest(args.guest)
    qemu = None if args.no_qemu else bl.find_qemu(args.qemu)
    if not args.no_qemu and not qemu:
        bl.log(f"bench: {args.qemu} not found; QEMU column skipped")
    results = {"host": bl.host_description(), "loadavg_start": bl.loadavg(), "guest": str(guest),
               "qemu": qemu, "runs": args.runs, "scale": args.scale, "scaling": {}, "migration": {}}
    with tempfile.TemporaryDirectory(prefix="fbench-smp-") as tmp:
        ferry = None if args.no_ferry else bl.pin_ferry(bl.find_ferry(args.ferry), tmp)
        results["ferry"] = ferry
        machines = []
        if ferry:
            machines.append(("ferry", lambda: bl.ferry_vm(ferry, guest, ["--smp", str(SMP), "--mem", "256M"]),
                             lambda: mig.run_ferry(ferry, guest, MIG_CASE, args.max_downtime)))
        if qemu:
            machines.append(("qemu", lambda: bl.qemu_vm(qemu, guest, smp=SMP,
                                                         extra=["-accel", "tcg,thread=multi"]),
                             lambda: mig.run_qemu(qemu, guest, MIG_CASE, args.max_downtime,
                                                  args.qemu_converge_timeout)))
        for label, make_vm, _ in machines:
            results["scaling"][label] = measure_scaling(label, make_vm(), args)
        if not args.no_migration:
            for label, _, migrate_once in machines:
                results["migration"][label] = measure_migration(label, migrate_once, args)
    results["loadavg_end"] = bl.loadavg()
    if args.json:
        bl.save_json(args.json, results)
    report(results, args)
    return 0


def verdict(value, ok):
    if value is None:
        return "n/a"
    return "yes" if ok(value) else "NO"


def report(results, args):
    sc = results["scaling"]
    fr, qr = sc.get("ferry"), sc.get("qemu")

    def col(runs, key, digits=0):
        return bl.Summary([r[key] for r in runs]).fmt(digits) if runs else "-"

    def speedups(runs):
        return bl.Summary([r["t1_ms"] / r["t2_ms"] for r in runs]) if runs else bl.Summary([])

    sp_f, sp_q = speedups(fr), speedups(qr)
    rows = [
        ["parbench, 1 thread (ms, guest clock)", col(fr, "t1_ms"), col(qr, "t1_ms"), "", ""],
        ["parbench, 2 threads (ms, guest clock)", col(fr, "t2_ms"), col(qr, "t2_ms"), "", ""],
        ["speed-up, 2 threads over 1", sp_f.fmt(2) if fr else "-", sp_q.fmt(2) if qr else "-",
         f">= {SPEEDUP_TARGET:g}", verdict(sp_f.median, lambda v: v >= SPEEDUP_TARGET)],
        ["host cores busy, 1 thread", col(fr, "cores1", 2), col(qr, "cores1", 2), "", ""],
        ["host cores busy, 2 threads", col(fr, "cores2", 2), col(qr, "cores2", 2), "", ""],
        ["host CPU time, 1 thread (s)", col(fr, "cpu1_s", 2), col(qr, "cpu1_s", 2), "", ""],
        ["host CPU time, 2 threads (s)", col(fr, "cpu2_s", 2), col(qr, "cpu2_s", 2), "", ""],
    ]
    if fr and qr:
        for key, what in (("t1_ms", "time, 1 thread"), ("t2_ms", "time, 2 threads"),
                          ("cpu1_s", "host CPU time, 1 thread"),
                          ("cpu2_s", "host CPU time, 2 threads")):
            ratio = bl.Summary([r[key] for r in fr]).median / bl.Summary([r[key] for r in qr]).median
            rows.append([f"ferry / QEMU, {what}", f"{ratio:.2f}", "", "", ""])
    sums = {(label, r["sum1"]) for label, runs in sc.items() for r in runs} | \
           {(label, r["sum2"]) for label, runs in sc.items() for r in runs}
    distinct = {s for _, s in sums}
    if sums:
        rows.append(["parbench checksums (threads, runs, machines)",
                     "match" if len(distinct) == 1 else f"MISMATCH: {sorted(sums)}", "", "",
                     "yes" if len(distinct) == 1 else "NO"])
    notes = [
        f"median [min-max] of {args.runs} run pairs, parbench scale {args.scale}; host: {results['host']}",
        f"load average at start {results['loadavg_start']}, at end {results['loadavg_end']}: 2 host "
        "cores shared with other work, so a 2-thread run competes with everything else; host CPU "
        "time (the VMM's user+system time during the command) is what load distorts least.",
        f"ferry: --smp {SMP} --mem 256M; QEMU: -M virt -bios default -smp {SMP} -m 256M "
        "-accel tcg,thread=multi (MTTCG).",
    ]
    bl.print_table("SMP scaling: ferry vs QEMU (TCG, multi-threaded)",
                   ["metric", "ferry", "qemu (MTTCG)", "target", "ferry ok?"], rows, notes)

    mg = results["migration"]
    if not mg:
        return
    rows = []
    target = args.max_downtime
    for label, runs in mg.items():
        ok = [r for r in runs if r["ok"]]
        down = bl.Summary([r["downtime_ms"] for r in ok])
        rows.append([label, down.fmt(2), bl.Summary([r["dst_running_ms"] for r in ok]).fmt(2),
                     bl.Summary([r["total_ms"] for r in ok]).fmt(0),
                     bl.Summary([r.get("dirty_rate_mb_s") for r in ok]).fmt(0),
                     f"{len(ok)}/{len(runs)}",
                     f"{sum(1 for r in ok if not r.get('guest_error'))}/{len(ok)}",
                     f"<= {target:g} ms" if label == "ferry" else "",
                     verdict(down.median, lambda v: v <= target) if label == "ferry" else ""])
    notes = [
        f"{MIG_CASE}: 256 MiB RAM, {SMP} vCPUs, memdirty {mig.WORKING_SET_MIB} MiB at 64 MB/s by "
        f"{SMP} threads (one per vCPU); median [min-max] of completed runs.",
        "downtime: ferry's measured (source pause -> destination resume); QEMU's query-migrate "
        "'downtime' (source side only). pause->dst running: host-clock timestamps for both "
        "(bench/migrate.py).",
        "guest ok after: the guest answered on the destination and memdirty went on with errors=0.",
    ]
    for label, runs in mg.items():
        for i, r in enumerate(runs):
            if not r["ok"]:
                notes.append(f"{label} run {i + 1} failed: {r['error'][:300]}")
            elif r.get("guest_error"):
                notes.append(f"{label} run {i + 1} guest trouble: {r['guest_error'][:300]}")
    bl.print_table(f"Live migration with --smp {SMP} and {SMP} dirtying threads",
                   ["vmm", "downtime ms", "pause->dst running ms", "total ms", "dirty MB/s",
                    "migrated", "guest ok after", "target", "ferry ok?"], rows, notes)


if __name__ == "__main__":
    sys.exit(main())
