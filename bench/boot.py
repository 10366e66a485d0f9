#!/usr/bin/env python3
"""Boot time, CPU speed and idle cost of ferry, next to QEMU (TCG) on the
same kernel and initramfs.

    bench/boot.py [--ferry build/ferry] [--guest build/guest] [--runs 5]
                  [--qemu qemu-system-riscv64 | --no-qemu] [--scale S]
                  [--idle-seconds 10] [--cpu jit|interp|both] [--json FILE]

Per machine, `--runs` times each:
  boot     process start -> first `ferry:/# ` prompt (host wall clock)
  cpubench boot, run `cpubench [S]` in the guest, poweroff; the guest's own
           per-phase and total milliseconds, plus the host-measured time of
           the command
  plain    (ferry only) boot, poweroff: the instruction count of a run
           without cpubench, from --stats
  idle     boot, then 10 s at the prompt: CPU time of the VMM process over
           that window (from /proc/PID/stat), as percent of one core; then,
           in the same VM, `memdirty 64 0 6`: a 64 MiB working set rewritten
           and verified as fast as the guest can, its achievable dirty rate
           (pages it verified between its once-a-second reports after the
           first sweep, guest clock)

ferry's MIPS = (instructions of a cpubench run - median of plain runs)
               / cpubench seconds
With --cpu both (the default) ferry is measured with each engine, the
translating CPU and the interpreter, next to QEMU in one table; under jit
the table also shows the host time spent translating during a plain boot
(--stats translate_seconds).
QEMU's MIPS is an estimate: the same instruction difference / QEMU's
cpubench seconds (QEMU counts nothing; both run the same binary).

Under QEMU the kernel is started by OpenSBI (-bios default, kernel at
0x80200000); ferry loads the kernel itself and provides the SBI calls.
Progress goes to stderr, the table to stdout.
"""

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

# Absolute targets; with a QEMU column, boot, each cpubench phase and the
# dirty rate are also judged against QEMU's median in the same run.
TARGETS = {"boot": 2.0, "mips": 250.0, "idle": 5.0}
MEMDIRTY = "memdirty 64 0 6"
MEMDIRTY_REPORT = re.compile(r"memdirty: gen=(\d+) verified=(\d+) errors=(\d+)")


def memdirty_rate(out):
    """MB/s (10^6 bytes) memdirty rewrote between its periodic reports
    after the first sweep; raises if it reported an error."""
    reps = [tuple(map(int, m.groups())) for m in MEMDIRTY_REPORT.finditer(out)]
    if any(r[2] for r in reps):
        raise RuntimeError(f"memdirty reported errors:\n{out}")
    periodic = reps[:-1]            # the last line is printed at exit, off the beat
    steady = [r for r in periodic if r[0] >= 2]
    if len(steady) < 2:
        return None
    return (steady[-1][1] - steady[0][1]) * 4096 / 1e6 / (len(steady) - 1)


def one_cpubench(make_vm, scale, want_stats):
    """boot -> cpubench -> poweroff. Returns a dict of measurements."""
    cmd = "cpubench" + (f" {scale}" if scale else "")
    with make_vm() as vm:
        boot = vm.boot(timeout=300)
        t0 = time.monotonic()
        out = vm.run(cmd, timeout=3600)
        wall = time.monotonic() - t0
        phases = bl.parse_cpubench(out)
        vm.sendline("poweroff")
        rc = vm.wait_exit(120)
        if rc != 0:
            raise RuntimeError(f"{vm.name} exited {rc} after poweroff:\n{vm.stderr()}")
        stats = vm.stats() if want_stats else None
    return {"boot": boot, "wall": wall, "phases": phases, "stats": stats}


def one_plain(make_vm):
    with make_vm() as vm:
        boot = vm.boot(timeout=300)
        vm.sendline("poweroff")
        rc = vm.wait_exit(120)
        if rc != 0:
            raise RuntimeError(f"{vm.name} exited {rc} after poweroff:\n{vm.stderr()}")
        return {"boot": boot, "stats": vm.stats()}


def one_idle(make_vm, seconds):
    with make_vm() as vm:
        vm.boot(timeout=300)
        vm.run("true")      # make sure the shell is idle at its prompt
        time.sleep(1.0)     # let late boot work (e.g. deferred init) finish
        pid = vm.proc.pid
        c0, t0 = bl.cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = bl.cpu_seconds(pid), time.monotonic()
        dirty = memdirty_rate(vm.run(MEMDIRTY, timeout=120))
        return 100.0 * (c1 - c0) / (t1 - t0), dirty


def measure(label, make_vm, args, is_ferry):
    res = {"cpubench": [], "plain": [], "idle": [], "memdirty_mb_s": []}
    for i in range(args.runs):
        bl.log(f"[{label}] cpubench run {i + 1}/{args.runs}")
        r = one_cpubench(make_vm, args.scale, is_ferry)
        bl.log(f"    boot {r['boot']:.2f} s, cpubench total {r['phases']['total'][1]:.0f} ms"
               + (f", {r['stats']['instructions']} instructions" if r.get("stats") else ""))
        res["cpubench"].append(r)
    if is_ferry:
        for i in range(args.runs):
            bl.log(f"[{label}] plain run {i + 1}/{args.runs}")
            res["plain"].append(one_plain(make_vm))
    for i in range(args.runs):
        bl.log(f"[{label}] idle run {i + 1}/{args.runs} ({args.idle_seconds:g} s)")
        idle, dirty = one_idle(make_vm, args.idle_seconds)
        res["idle"].append(idle)
        res["memdirty_mb_s"].append(dirty)
        bl.log(f"    {idle:.2f} % of one core; memdirty "
               + (f"{dirty:.0f} MB/s" if dirty is not None else "gave too few reports"))
    return res


def cpubench_instructions(fres):
    """Per cpubench run: instructions attributable to cpubench."""
    plain = bl.Summary([p["stats"]["instructions"] for p in fres["plain"] if p.get("stats")])
    if not plain:
        return []
    out = []
    for r in fres["cpubench"]:
        st = r.get("stats")
        out.append(st["instructions"] - plain.median if st else None)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferry", default=str(bl.REPO / "build" / "ferry"))
    ap.add_argument("--guest", default=str(bl.REPO / "build" / "guest"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--no-ferry", action="store_true", help="QEMU only (to check the bench)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", default="", help="argument passed to cpubench")
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--cpu", choices=("jit", "interp", "both"), default="both",
                    help="ferry's engine(s) (ferry run --cpu)")
    ap.add_argument("--json", help="write the raw measurements here")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")

    guest = bl.find_guest(args.guest)
    ferry = None if args.no_ferry else bl.find_ferry(args.ferry)
    qemu = None if args.no_qemu else bl.find_qemu(args.qemu)
    if not args.no_qemu and not qemu:
        bl.log(f"bench: {args.qemu} not found; QEMU column skipped")

    results = {"host": bl.host_description(), "guest": str(guest), "ferry": ferry,
               "qemu": qemu, "runs": args.runs}
    engines = ("jit", "interp") if args.cpu == "both" else (args.cpu,)
    results["ferry_results"] = {}
    for cpu in engines if ferry else ():
        results["ferry_results"][cpu] = measure(
            f"ferry {cpu}",
            lambda cpu=cpu: bl.ferry_vm(ferry, guest, ["--smp", "1", "--mem", "256M", "--stats",
                                                       "--cpu", cpu]),
            args, True)
    if qemu:
        results["qemu_results"] = measure("qemu", lambda: bl.qemu_vm(qemu, guest), args, False)
    if args.json:
        bl.save_json(args.json, results)
    report(results, args)
    return 0


def report(results, args):
    ferries = list((results.get("ferry_results") or {}).items())   # [(engine, res)]
    qr = results.get("qemu_results")
    cols = [res for _, res in ferries] + [qr]

    def col(res, fn, digits=2):
        return bl.Summary([fn(r) for r in res["cpubench"]]).fmt(digits) if res else "-"

    def row(label, fn, digits=2, target="", ok=""):
        return [label] + [col(res, fn, digits) for res in cols] + [target, ok]

    phases = []
    for res in cols:
        if res:
            for p in res["cpubench"][0]["phases"]:
                if p != "total" and p not in phases:
                    phases.append(p)

    first = ferries[0][1] if ferries else None   # the verdicts judge the first engine
    rows = []
    def median(res, fn):
        return bl.Summary([fn(r) for r in res["cpubench"]]).median if res else None

    def against_qemu(fn, lower_is_better, f=None, q=None):
        """(target, verdict) of the first engine's median against QEMU's
        (of cpubench records through fn, or the medians given)."""
        if fn:
            f, q = median(first, fn), median(qr, fn)
        if f is None or q is None:
            return "", "n/a"
        ratio = q / f if lower_is_better else f / q
        return (("<= QEMU" if lower_is_better else ">= QEMU") + f" ({ratio:.2f}x)",
                "yes" if ratio >= 1.0 else "NO")

    boot_f = bl.Summary([r["boot"] for r in first["cpubench"]]) if first else bl.Summary([])
    if qr:
        rows.append(row("boot to prompt (s)", lambda r: r["boot"], 2,
                        *against_qemu(lambda r: r["boot"], True)))
    else:
        rows.append(row("boot to prompt (s)", lambda r: r["boot"], 2, f"<= {TARGETS['boot']:g} s",
                        verdict(boot_f.median, lambda v: v <= TARGETS["boot"])))
    rows.append(row("cpubench total (ms, guest clock)", lambda r: r["phases"]["total"][1], 0))
    for p in phases:
        fn = (lambda r, p=p: r["phases"].get(p, (0, None))[1])
        rows.append(row(f"  {p} (ms)", fn, 0, *(against_qemu(fn, True) if qr else ("", ""))))
    dirty = [bl.Summary(res.get("memdirty_mb_s", [])) if res else bl.Summary([]) for res in cols]
    rows.append([f"memdirty achievable rate (MB/s, `{MEMDIRTY}`)"] + [d.fmt(0) for d in dirty]
                + list(against_qemu(None, False, dirty[0].median, dirty[-1].median)
                       if qr and first else ("", "")))
    rows.append(row("cpubench command (s, host clock)", lambda r: r["wall"]))

    notes = []
    mips = {}
    med_insns = None
    for engine, res in ferries:
        insns = cpubench_instructions(res)
        mips[engine] = bl.Summary([i / (r["phases"]["total"][1] / 1000) / 1e6
                                   for i, r in zip(insns, res["cpubench"]) if i is not None])
        med_insns = med_insns or bl.Summary(insns).median
        if not mips[engine]:
            notes.append(f"MIPS ({engine}): ferry printed no 'ferry: stats:' line (--stats).")
    if ferries:
        rows.append(["cpubench instructions (M)"]
                    + [f"{bl.Summary(cpubench_instructions(res)).median / 1e6:.0f}"
                       if bl.Summary(cpubench_instructions(res)) else "n/a" for _, res in ferries]
                    + ["", "", ""])
        mips_q = bl.Summary([med_insns / (r["phases"]["total"][1] / 1000) / 1e6
                             for r in qr["cpubench"]]) if qr and med_insns else bl.Summary([])
        first_mips = mips[ferries[0][0]]
        rows.append(["MIPS on cpubench"] + [mips[e].fmt(0) for e, _ in ferries]
                    + [(mips_q.fmt(0) + " (estimate)") if mips_q else "-",
                       f">= {TARGETS['mips']:g}", verdict(first_mips.median, lambda v: v >= TARGETS["mips"])])
        rows.append(["  MIPS, whole run (--stats)"]
                    + [bl.Summary([r["stats"].get("mips") for r in res["cpubench"] if r.get("stats")]).fmt(0)
                       for _, res in ferries] + ["", "", ""])
        rows.append(["translating during a plain boot (s)"]
                    + [bl.Summary([p["stats"]["translate_seconds"] for p in res["plain"]
                                   if p.get("stats") and "translate_seconds" in p["stats"]]).fmt(3)
                       if engine == "jit" else "-" for engine, res in ferries] + ["-", "", ""])
    idle_f = bl.Summary(first["idle"]) if first else bl.Summary([])
    rows.append([f"idle CPU, {args.idle_seconds:g} s at the prompt (% of a core)"]
                + [bl.Summary(res["idle"]).fmt() if res else "-" for res in cols]
                + [f"< {TARGETS['idle']:g} %", verdict(idle_f.median, lambda v: v < TARGETS["idle"])])

    # Same binary, same input: the checksums must agree between machines
    # and between runs.
    if ferries and qr:
        bad = []
        for p in phases:
            cq = {str(r["phases"].get(p, (None,))[0]) for r in qr["cpubench"]}
            for engine, res in ferries:
                cf = {str(r["phases"].get(p, (None,))[0]) for r in res["cpubench"]}
                if cf != cq or len(cf) != 1:
                    bad.append(f"{p}({engine})")
                    notes.append(f"CHECKSUM MISMATCH in cpubench phase {p}: ferry {engine} "
                                 f"{sorted(cf)} qemu {sorted(cq)}")
        rows.append(["cpubench checksums, ferry vs qemu", "MISMATCH: " + " ".join(bad) if bad else "match"]
                    + [""] * len(ferries) + ["", "NO" if bad else "yes"])
    notes += [
        f"median [min-max] of {args.runs} runs; host: {results['host']}",
        "QEMU: qemu-system-riscv64 -M virt -bios default (OpenSBI), TCG, -smp 1 -m 256M, "
        f"append '{bl.QEMU_APPEND}'; ferry: --smp 1 --mem 256M --cpu ENGINE, default append",
        "QEMU MIPS = ferry's cpubench instruction count / QEMU's cpubench time (an estimate).",
        "target / ferry ok? judge the first ferry column; (Nx) is how many times QEMU's median "
        "(time: QEMU / ferry, rate: ferry / QEMU).",
        "memdirty rate: pages it rewrote and verified between its once-a-second reports after "
        "the first sweep x 4 KiB (guest clock).",
    ]
    print_cols = (["metric"] + [f"ferry ({e})" for e, _ in ferries] + ["qemu (TCG)", "target", "ferry ok?"])
    bl.print_table("ferry boot / cpu / idle benchmark", print_cols, rows, notes)


def verdict(value, ok):
    if value is None:
        return "n/a"
    return "yes" if ok(value) else "NO"


if __name__ == "__main__":
    sys.exit(main())
