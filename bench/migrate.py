#!/usr/bin/env python3
"""Live-migration downtime, total time and bytes on the wire of ferry, next
to QEMU (TCG) on the same kernel and initramfs, in one run.

    bench/migrate.py [--ferry build/ferry] [--guest build/guest]
                     [--qemu qemu-system-riscv64 | --no-qemu] [--no-ferry]
                     [--runs 5 | --quick] [--cases idle-256M,dirty-64,...]
                     [--max-downtime 5] [--qemu-converge-timeout 20]
                     [--out bench/out] [--json FILE] [--no-plot]

Cases (all -smp 1, everything on 127.0.0.1):
  idle-256M   idle guest at its shell prompt, 256 MiB RAM
  idle-1G     the same with 1 GiB RAM
  dirty-R     256 MiB RAM, the guest runs `memdirty 64 R` (a 64 MiB working
              set rewritten at R MB/s) for R = 16, 64, 256
  capped-R    the same for R = 64, 128 over a link capped at 32 MB/s
              (capped-64-link8: 8 MB/s, which ferry's slower guest also
              outruns) (ferry
              `--bandwidth 32M`, auto-converge on by default; QEMU
              max-bandwidth 32 MB/s with the auto-converge capability, and
              "qemu-postcopy": postcopy-ram, max-postcopy-bandwidth 32 MB/s,
              migrate-start-postcopy after the first full pass). The guest
              also runs stallmon (its longest gap between two clock readings
              during the migration is "guest stall"). ferry runs twice:
              "ferry" with auto-converge, "ferry-postcopy" with
              `--postcopy-after 1` (post-copy after the first full pass, as
              QEMU's), reporting the post-copy fault latency (fault to page
              installed, measured on the destination).

Each run (`--runs` times per case and machine, ferry and QEMU alternating
which goes first) boots a fresh source and starts a fresh destination
waiting for the stream: nothing is reused between runs. With memdirty, the
migration starts once the whole working set was written at least once and
two progress reports were printed after that (the achieved dirty rate is
measured from those reports, on the guest's clock). After the move the
destination's guest must answer at its prompt and, with memdirty, print
one more progress report with errors=0 (memdirty verifies every page it
rewrites).

ferry   source `ferry run --mem M --control PATH`, destination
        `ferry run --incoming tcp:127.0.0.1:PORT`, moved with
        `ferry migrate PATH URI --max-downtime 5ms --json`. Downtime is
        ferry's measured one (docs/migration-stream.md): source pause to
        destination resume from the spans each side measured plus half a
        round trip, no shared clock assumed. "pause->dst running" checks it
        with timestamps: the source's paused_at_monotonic_ns (report) to
        the destination's resumed_at_monotonic_ns (status), both this
        host's CLOCK_MONOTONIC: the same span as QEMU's STOP->RESUME.
        "handover" (JSON only): pause to the source hearing RUNNING.
QEMU    qemu-system-riscv64 -M virt -bios default -nographic -smp 1 -m M,
        QMP on a unix socket, destination with -incoming tcp:127.0.0.1:PORT.
        Before `migrate`: migrate-set-parameters max-bandwidth=10 GiB/s (the
        default 128 MiB/s cap would dominate) and downtime-limit=<target>
        ms (QEMU accepts 0..2000000 ms, integer). query-migrate is polled
        every 20 ms (as ferry migrate polls its VM) until completed.
        "downtime" is QEMU's own figure (source: stop the VM to the end of
        the final send; the destination's load and start are not in it);
        "pause->dst running" is measured from QMP event timestamps: the
        source's STOP to the destination's RESUME (same host clock), which
        is what ferry's downtime measures. Bytes are ram.transferred (page
        data and page headers; the small device state is not counted).
        QEMU keeps iterating forever when it cannot meet downtime-limit: after
        --qemu-converge-timeout seconds the limit is raised to QEMU's default
        300 ms (the run counts as not converged), and after twice that the
        migration is cancelled (a failed run).

Outputs: a table on stdout, progress on stderr, raw results as JSON
(OUT/migrate.json) and a plot (OUT/migrate.png: downtime per case, log
scale, median with min-max bars; made by bench/plot_migrate.gp with gnuplot).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import harness  # noqa: E402  (path set up by benchlib)
from ferryvm import ConsoleProcess, clean  # noqa: E402
from migration import IncomingVM, Memdirty, SourceVM, free_port  # noqa: E402

# A case may also give "smp" (vCPUs; QEMU then runs multi-threaded TCG)
# and "threads" (memdirty writer threads): bench/smp.py adds such a case.
CASES = {
    "idle-256M": {"mem": "256M", "rate": None},
    "idle-1G": {"mem": "1G", "rate": None},
    "dirty-16": {"mem": "256M", "rate": 16},
    "dirty-64": {"mem": "256M", "rate": 64},
    "dirty-256": {"mem": "256M", "rate": 256},
    "capped-64": {"mem": "256M", "rate": 64, "link_mb_s": 32},
    "capped-128": {"mem": "256M", "rate": 128, "link_mb_s": 32},
    # ferry's interpreter does not reach 64 MB/s of dirtying on this host:
    # a slower link so that its guest, too, outruns the link.
    "capped-64-link8": {"mem": "256M", "rate": 64, "link_mb_s": 8},
}
STALL_LOG = "/tmp/stall.log"
WORKING_SET_MIB = 64
MD_LOG = "/tmp/md.log"
# Cases where ferry's median downtime must meet the target.
DOWNTIME_TARGET_CASES = ("idle-256M", "idle-1G", "dirty-64")
HONOURED_TARGET_PCT = 95.0
QEMU_RATIO_TARGET = 10.0
QEMU_DEFAULT_DOWNTIME_MS = 300
BOOT_TIMEOUT = 300
MIGRATE_TIMEOUT = 180
POLL_S = 0.02
POST_CHECK_S = 10   # memdirty reports once a second
PLOT_FLOOR_MS = 0.05   # log scale: a 0 ms QEMU figure is drawn here


# --------------------------------------------------------------------------
# QMP
# --------------------------------------------------------------------------

class QMP:
    """A minimal QMP client on a unix socket; events are kept in .events."""

    def __init__(self, path, proc, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if proc.poll() is not None:
                    raise RuntimeError(f"QEMU exited ({proc.returncode}) before its QMP socket answered")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"QMP socket {path} did not appear within {timeout} s")
                time.sleep(0.05)
        s.settimeout(60)
        self.sock = s
        self.f = s.makefile("rwb")
        self.events = []
        greeting = self._read()
        if "QMP" not in greeting:
            raise RuntimeError(f"unexpected QMP greeting {greeting}")
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise RuntimeError(f"QMP {name} {arguments}: {r['error']}")
            return r.get("return")

    def event(self, name, timeout=30):
        """The first event `name` seen (waiting up to timeout for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e.get("event") == name:
                    return e
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no QMP {name} event within {timeout} s")
            self.sock.settimeout(left)
            try:
                r = self._read()
            except socket.timeout:
                continue
            finally:
                self.sock.settimeout(60)
            if "event" in r:
                self.events.append(r)

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


def event_time(e):
    ts = e["timestamp"]
    return ts["seconds"] + ts["microseconds"] / 1e6


# --------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------

def start_workload(vm, rate, threads=1):
    """Start memdirty (with `threads` writers) and wait until the working
    set is fully written and two reports followed; returns (Memdirty,
    reports, achieved MB/s)."""
    vm.run(f": >{MD_LOG}")   # exists before the background job opens it
    md = Memdirty(vm, mib=WORKING_SET_MIB, rate=rate, log=MD_LOG, threads=threads)
    deadline = time.monotonic() + harness.scaled(120)
    while True:
        reps = md.snapshot(vm)
        steady = [r for r in reps if r[0] >= 2]
        if len(steady) >= 2:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{vm.name}: memdirty did not reach its second sweep in time: {reps}")
        time.sleep(0.3)
    # verified counts rewritten pages; reports come once a guest second.
    achieved = (steady[-1][1] - steady[0][1]) * 4096 / 1e6 / (len(steady) - 1)
    return md, reps, achieved


def start_stallmon(vm):
    """stallmon in the background (its log travels with the guest); returns
    how many report lines it had before the migration."""
    vm.run(f"stallmon </dev/null >{STALL_LOG} 2>&1 & sleep 2")
    return len(vm.run(f"cat {STALL_LOG}", timeout=60).splitlines())


def guest_stall_ms(vm, lines_before):
    """The longest gap stallmon saw in the lines written since the
    migration began (one a guest second), in ms; None if unreadable."""
    try:
        text = vm.run(f"cat {STALL_LOG}", timeout=60)
    except Exception:  # noqa: BLE001
        return None
    gaps = [int(m.group(1)) for m in
            (re.match(r"stallmon: max_gap_us=(\d+)", ln.strip())
             for ln in text.splitlines()[max(lines_before - 1, 0):]) if m]
    return max(gaps) / 1e3 if gaps else None


def check_destination(dst, md, before):
    """The guest answers on the destination; memdirty goes on without error.
    Returns None if all is well, else what went wrong. The migration's
    figures stay valid either way; this is reported next to them."""
    try:
        dst.wait_prompt(timeout=60)
        if md is None:
            dst.run("usleep 100000", timeout=20)   # guest timers still fire
        else:
            now = md.snapshot(dst)
            if now[:len(before)] != before:
                raise RuntimeError(f"memdirty's log lost lines over the move:\n{before}\n{now}")
            # One more report written on the destination (memdirty verifies
            # every page it rewrites), errors=0, still running.
            md.check_continues(dst, now, more=1, timeout=POST_CHECK_S)
        trouble = None
    except Exception as e:  # noqa: BLE001
        trouble = f"{type(e).__name__}: {e}"
    text = clean(dst.transcript)
    for m in dst.KERNEL_TROUBLE:
        at = text.find(m)
        if at >= 0:
            trouble = (f"kernel trouble on the destination ({m.strip()!r}):\n"
                       f"{text[max(at - 200, 0):at + 2500]}\n" + (trouble or ""))
            break
    # Reported here; the VM's own exit check would turn it into a failed run.
    dst.check_kernel = False
    return trouble


# --------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------

def run_ferry(ferry, guest, case, target_ms, postcopy=False):
    spec = CASES[case]
    env = {"FERRY_GUEST_DIR": str(guest)}
    rec = {}
    smp = ["--smp", str(spec.get("smp", 1))]
    with SourceVM(["--mem", spec["mem"], *smp], ferry=ferry, env=env) as src, \
            IncomingVM(smp, ferry=ferry, env=env) as dst:
        src.boot(BOOT_TIMEOUT)
        md = before = None
        if spec["rate"] is not None:
            md, before, rec["dirty_rate_mb_s"] = start_workload(src, spec["rate"],
                                                                spec.get("threads", 1))
        else:
            src.run("true")
        link = ["--bandwidth", f"{spec['link_mb_s']}M"] if spec.get("link_mb_s") else []
        stall_lines = start_stallmon(src) if link else None
        if postcopy:
            link += ["--postcopy-after", "1"]
        dst.wait_listening()
        res = harness.run_cmd([ferry, "migrate", src.control, dst.uri, *link,
                               "--max-downtime", f"{target_ms:g}ms", "--json"],
                              timeout=MIGRATE_TIMEOUT * (3 if link else 1))
        try:
            rep = json.loads(res.stdout)
        except ValueError:
            rep = None
        if res.rc != 0 or not rep or rep.get("state") != "completed":
            raise RuntimeError(f"ferry migrate failed\n{res.describe()}\n"
                               f"--- source stderr ---\n{harness.tail(src.stderr(), 20)}\n"
                               f"--- destination stderr ---\n{harness.tail(dst.stderr(), 20)}")
        rec.update(downtime_ms=rep["downtime_ms"],
                   total_ms=rep["total_ms"], wire_bytes=rep["wire_bytes"],
                   rounds=rep.get("rounds"), converged=bool(rep.get("converged")),
                   predicted_downtime_ms=rep.get("predicted_downtime_ms"),
                   max_downtime_ms=rep.get("max_downtime_ms"),
                   throttle_max_percent=rep.get("throttle_max_percent"), report=rep)
        pc = rep.get("postcopy_stats")
        if pc:
            rec.update(postcopy_ms=pc["time_ms"], fault_pages=pc["on_demand_pages"],
                       fault_median_ms=pc["fault_median_ms"], fault_p99_ms=pc["fault_p99_ms"],
                       fault_max_ms=pc["fault_max_ms"])
        dst.wait_resumed(60)
        # Both VMs run on this host: the source's pause and the
        # destination's resume on one CLOCK_MONOTONIC, as QEMU's events.
        resumed = dst.status().get("resumed_at_monotonic_ns")
        paused = rep.get("paused_at_monotonic_ns")
        if not resumed or not paused:
            raise RuntimeError(f"no pause/resume timestamps (source {paused}, destination {resumed})")
        rec["dst_running_ms"] = (resumed - paused) / 1e6
        rec["guest_error"] = check_destination(dst, md, before)
        if stall_lines is not None:
            rec["guest_stall_ms"] = guest_stall_ms(dst, stall_lines)
        rc = src.wait_exit(60)
        if rc != 0:
            raise RuntimeError(f"ferry source exited {rc} after migrating:\n{src.stderr()}")
    return rec


def run_qemu(qemu, guest, case, target_ms, converge_timeout, postcopy=False):
    spec = CASES[case]
    link = spec.get("link_mb_s")
    tmp = tempfile.mkdtemp(prefix="fqmp-")
    port = free_port()
    uri = f"tcp:127.0.0.1:{port}"
    s_qmp, d_qmp = os.path.join(tmp, "src.qmp"), os.path.join(tmp, "dst.qmp")
    smp = spec.get("smp", 1)
    # More than one vCPU: multi-threaded TCG, a host thread per vCPU.
    accel = ["-accel", "tcg,thread=multi"] if smp > 1 else []
    src = ConsoleProcess(bl.qemu_argv(qemu, guest, smp=smp, mem=spec["mem"], extra=accel +
                                      ["-qmp", f"unix:{s_qmp},server=on,wait=off"]),
                         name="qemu-source")
    dst = ConsoleProcess(bl.qemu_argv(qemu, guest, smp=smp, mem=spec["mem"], extra=accel +
                                      ["-qmp", f"unix:{d_qmp},server=on,wait=off",
                                       "-incoming", uri]),
                         name="qemu-destination")
    qs = qd = None
    rec = {}
    try:
        with src, dst:
            qs, qd = QMP(s_qmp, src.proc), QMP(d_qmp, dst.proc)
            src.boot(BOOT_TIMEOUT)
            md = before = None
            if spec["rate"] is not None:
                md, before, rec["dirty_rate_mb_s"] = start_workload(src, spec["rate"],
                                                                    spec.get("threads", 1))
            else:
                src.run("true")
            stall_lines = start_stallmon(src) if link else None
            limit = max(0, int(round(target_ms)))
            bw = int(link * 1e6) if link else 10 << 30
            params = {"max-bandwidth": bw, "downtime-limit": limit}
            if link:
                caps = [{"capability": "auto-converge", "state": not postcopy}]
                if postcopy:
                    caps.append({"capability": "postcopy-ram", "state": True})
                    qd.cmd("migrate-set-capabilities",
                           capabilities=[{"capability": "postcopy-ram", "state": True}])
                    params["max-postcopy-bandwidth"] = bw
                qs.cmd("migrate-set-capabilities", capabilities=caps)
            qs.cmd("migrate-set-parameters", **params)
            t0 = time.monotonic()
            qs.cmd("migrate", uri=uri)
            escalated_at = None
            postcopy_at = None
            throttle = 0
            while True:
                st = qs.cmd("query-migrate")
                status = st.get("status")
                throttle = max(throttle, st.get("cpu-throttle-percentage") or 0)
                if (postcopy and postcopy_at is None and status == "active"
                        and (st.get("ram") or {}).get("dirty-sync-count", 0) >= 2):
                    # After the first full pass, as ferry's policy would.
                    qs.cmd("migrate-start-postcopy")
                    postcopy_at = time.monotonic() - t0
                if status == "completed":
                    break
                if status in ("failed", "cancelled"):
                    raise RuntimeError(f"QEMU migration {status}: {st}")
                el = time.monotonic() - t0
                if escalated_at is None and el > converge_timeout:
                    bl.log(f"    qemu: not converged after {el:.0f} s at downtime-limit {limit} ms; "
                           f"raising it to {QEMU_DEFAULT_DOWNTIME_MS} ms")
                    qs.cmd("migrate-set-parameters", **{"downtime-limit": QEMU_DEFAULT_DOWNTIME_MS})
                    escalated_at = el
                elif el > 2 * converge_timeout:
                    qs.cmd("migrate_cancel")
                    raise RuntimeError(f"QEMU migration did not complete within {el:.0f} s: {st}")
                time.sleep(POLL_S)
            stop = qs.event("STOP")
            resume = qd.event("RESUME", 60)
            ram = st.get("ram", {})
            rec.update(downtime_ms=float(st["downtime"]),
                       dst_running_ms=(event_time(resume) - event_time(stop)) * 1e3,
                       total_ms=float(st["total-time"]), wire_bytes=ram.get("transferred"),
                       rounds=ram.get("dirty-sync-count"), converged=escalated_at is None,
                       escalated_after_s=escalated_at, max_downtime_ms=limit, report=st,
                       throttle_max_percent=throttle, postcopy_after_s=postcopy_at,
                       postcopy_requests=ram.get("postcopy-requests"))
            rec["guest_error"] = check_destination(dst, md, before)
            if stall_lines is not None:
                rec["guest_stall_ms"] = guest_stall_ms(dst, stall_lines)
    finally:
        for q in (qs, qd):
            if q:
                q.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rec


# --------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------

def ok_runs(results, case, vmm):
    return [r for r in results["runs"] if r["case"] == case and r["vmm"] == vmm and r["ok"]]


def all_runs(results, case, vmm):
    return [r for r in results["runs"] if r["case"] == case and r["vmm"] == vmm]


def summ(runs, key, scale=1.0):
    return bl.Summary([r[key] / scale if r.get(key) is not None else None for r in runs])


def honoured_pct(runs, target):
    """Share of completed runs whose downtime met the target."""
    if not runs:
        return None
    return 100.0 * sum(1 for r in runs if r["downtime_ms"] <= target) / len(runs)


def verdict(v):
    return "n/a" if v is None else ("yes" if v else "NO")


def report(results, args):
    target = args.max_downtime
    rows = []
    for case in results["cases"]:
        for vmm in machines_for(case, results["machines"]):
            runs = ok_runs(results, case, vmm)
            n_all = len(all_runs(results, case, vmm))
            hon = honoured_pct(runs, target)
            conv = sum(1 for r in runs if r.get("converged"))
            rate = summ(runs, "dirty_rate_mb_s")
            rows.append([
                case if vmm == results["machines"][0] else "",
                vmm,
                summ(runs, "downtime_ms").fmt(2),
                summ(runs, "dst_running_ms").fmt(2),
                summ(runs, "total_ms").fmt(0),
                summ(runs, "wire_bytes", 1 << 20).fmt(1),
                summ(runs, "rounds").fmt(0),
                f"{conv}/{len(runs)}",
                f"{hon:.0f} %" if hon is not None else "n/a",
                rate.fmt(0) if rate else "-",
                f"{len(runs)}/{n_all}",
                f"{sum(1 for r in runs if not r.get('guest_error'))}/{len(runs)}",
            ])
    header = ["case", "vmm", "downtime ms", "pause->dst running ms", "total ms", "wire MiB",
              "rounds", "converged", f"<= {target:g} ms", "dirty MB/s", "migrated", "guest ok after"]
    notes = [
        f"median [min-max] over completed runs ({args.runs} per case and machine); host: {results['host']}",
        f"load average at start {results['loadavg_start']}, at end {results.get('loadavg_end')}: the host "
        "has 2 cores shared with other work, so times are noisy.",
        "downtime: ferry's measured (source pause -> destination resume, no shared clock assumed); QEMU's "
        "reported query-migrate 'downtime' (source side only, 1 ms resolution).",
        "pause->dst running: ferry = source pause to destination resume (CLOCK_MONOTONIC timestamps of "
        "both VMs); QEMU = QMP STOP (source) to RESUME (destination) event timestamps.",
        "wire MiB: ferry wire_bytes (whole stream); QEMU ram.transferred (pages + headers, not device "
        "state). rounds: ferry pre-copy rounds; QEMU dirty-sync-count.",
        f"converged: ferry pre-copy met the target; QEMU completed without raising downtime-limit from "
        f"{int(round(target))} to {QEMU_DEFAULT_DOWNTIME_MS} ms (after {args.qemu_converge_timeout:g} s).",
        "dirty MB/s: memdirty's achieved rewrite rate before the migration (guest clock).",
        "migrated: runs that completed the migration (their figures are above) / runs; guest ok after: "
        "the guest then answered on the destination and memdirty went on with errors=0, no kernel "
        "oops/panic.",
    ]
    if any(r["vmm"] == "qemu" and r["ok"] and r.get("guest_error") for r in results["runs"]):
        notes.append("QEMU guest not ok after the move: see 'failed runs' below. Seen with Debian's QEMU 7.2: "
                     "memdirty never wakes from nanosleep on the destination (a guest timer pending at the "
                     "pause is lost; later timers are never programmed), sometimes a kernel oops.")
    bl.print_table("ferry live migration vs QEMU (TCG)", header, rows, notes)
    capped_report(results, args)

    # Targets.
    trows = []
    all_ferry = []
    for case in results["cases"]:
        fr = ok_runs(results, case, "ferry")
        qr = ok_runs(results, case, "qemu")
        all_ferry += fr
        fd = summ(fr, "downtime_ms").median
        qd = summ(qr, "downtime_ms").median
        fs = summ(fr, "dst_running_ms").median
        qs = summ(qr, "dst_running_ms").median
        fb = summ(fr, "wire_bytes").median
        qb = summ(qr, "wire_bytes").median
        hon = honoured_pct(fr, target)
        if case in DOWNTIME_TARGET_CASES:
            t1 = f"{fd:.2f} ms: {verdict(fd <= target)}" if fd is not None else "n/a"
        else:
            t1 = f"({fd:.2f} ms, no target)" if fd is not None else "-"
        if fd is not None and qd is not None:
            # QEMU reports whole milliseconds: 0 means < 1 ms.
            t2 = f"{fd:.2f} vs {qd:.0f}/{QEMU_RATIO_TARGET:g}: {verdict(fd <= qd / QEMU_RATIO_TARGET)}"
        else:
            t2 = "n/a"
        if fs is not None and qs is not None:
            t2b = f"{fs:.2f} vs {qs:.2f}/{QEMU_RATIO_TARGET:g}: {verdict(fs <= qs / QEMU_RATIO_TARGET)}"
        else:
            t2b = "n/a"
        if fb is not None and qb is not None:
            t3 = f"{fb / 2**20:.1f} vs {qb / 2**20:.1f} MiB: {verdict(fb <= qb)}"
        else:
            t3 = "n/a"
        t4 = f"{hon:.0f} %: {verdict(hon >= HONOURED_TARGET_PCT)}" if hon is not None else "n/a"
        failed = len(all_runs(results, case, "ferry")) - len(fr) + sum(1 for r in fr if r.get("guest_error"))
        trows.append([case, t1, t2, t2b, t3, t4, str(failed)])
    hon_all = honoured_pct(all_ferry, target)
    trows.append(["all cases", "", "", "", "",
                  f"{hon_all:.0f} %: {verdict(hon_all >= HONOURED_TARGET_PCT)}" if hon_all is not None else "n/a",
                  str(sum(1 for r in results["runs"]
                          if r["vmm"] == "ferry" and (not r["ok"] or r.get("guest_error"))))])
    theader = ["case", f"ferry median downtime <= {target:g} ms",
               f"downtime: ferry <= QEMU reported/{QEMU_RATIO_TARGET:g}",
               f"pause->dst running: ferry <= QEMU/{QEMU_RATIO_TARGET:g}",
               "ferry bytes <= QEMU", f"target honoured >= {HONOURED_TARGET_PCT:g} %",
               "ferry failed runs (migration or guest after)"]
    tnotes = [f"downtime target applies to {', '.join(DOWNTIME_TARGET_CASES)}; "
              "the QEMU comparisons use the same run: QEMU's reported downtime (whole ms, source side "
              "only) against ferry's downtime, and the same span on both (source pause to destination "
              "resume, one host clock)."]
    bl.print_table("targets (ferry)", theader, trows, tnotes)
    failures = [r for r in results["runs"] if not r["ok"] or r.get("guest_error")]
    if failures:
        print()
        print("failed runs (details in the JSON file):")
        for r in failures:
            what = "migration failed" if not r["ok"] else "guest broken after the migration"
            lines = (r.get("error") or r.get("guest_error") or "").strip().splitlines()
            detail = next((ln for ln in lines if "kernel trouble" in ln or "Oops" in ln), None)
            print(f"  {r['vmm']} {r['case']} run {r['run']}: {what}: "
                  f"{(detail or (lines[0] if lines else '?'))[:200]}")


def capped_report(results, args):
    """The capped-link cases: whether the cap held, at what throttle, and
    what the guest itself saw."""
    target = args.max_downtime
    rows = []
    for case in results["cases"]:
        if not CASES[case].get("link_mb_s"):
            continue
        for vmm in machines_for(case, results["machines"]):
            runs = ok_runs(results, case, vmm)
            n_all = len(all_runs(results, case, vmm))
            hon = honoured_pct(runs, target)
            rows.append([case, vmm, summ(runs, "downtime_ms").fmt(2),
                         summ(runs, "total_ms").fmt(0), summ(runs, "wire_bytes", 1 << 20).fmt(1),
                         summ(runs, "throttle_max_percent").fmt(0),
                         summ(runs, "guest_stall_ms").fmt(1),
                         fault_cell(runs),
                         f"{hon:.0f} %" if hon is not None else "n/a",
                         f"{len(runs)}/{n_all}"])
    if not rows:
        return
    header = ["case", "vmm", "downtime ms", "total ms", "wire MiB", "throttle %",
              "guest stall ms", "fault ms med/p99/max", f"<= {target:g} ms", "completed"]
    notes = ["link capped at 32 MB/s (capped-64-link8: 8 MB/s) on both (ferry --bandwidth, QEMU max-bandwidth and "
             "max-postcopy-bandwidth); ferry: auto-converge; ferry-postcopy: --postcopy-after 1; "
             "qemu: auto-converge capability; qemu-postcopy: postcopy-ram, switched after the "
             "first full pass.",
             "guest stall: stallmon's longest gap between two CLOCK_MONOTONIC readings in the guest "
             "during the migration (throttle sleeps, post-copy faults, host scheduling; the final "
             "pause itself is invisible to the guest clock on both VMMs).",
             "post-copy fault latency (ferry-postcopy): the median over runs of each run's median, "
             "p99 and max, from the fault to the page installed on the destination (loopback); "
             "QEMU 7.2 reports only a request count."]
    bl.print_table("capped link: the downtime cap under a guest that dirties faster than the link",
                   header, rows, notes)


def fault_cell(runs):
    """Post-copy fault latency: medians over runs of median/p99/max."""
    runs = [r for r in runs if r.get("fault_median_ms") is not None]
    if not runs:
        return "-"
    return "/".join(summ(runs, k).fmt(3) for k in ("fault_median_ms", "fault_p99_ms",
                                                   "fault_max_ms"))


def plot(results, args, out_dir):
    gp = shutil.which("gnuplot")
    if not gp:
        bl.log("bench: gnuplot not found; no plot")
        return None
    dat = out_dir / "migrate.dat"
    png = out_dir / "migrate.png"

    def trio(runs, key):
        s = summ(runs, key)
        if not s:
            return ["NaN"] * 3
        return [f"{max(v, PLOT_FLOOR_MS):.4f}" for v in (s.median, s.min, s.max)]

    with open(dat, "w") as f:
        f.write("# case  ferry(med min max)  qemu-reported(med min max)  qemu-pause-to-dst-running(med min max)\n")
        for case in results["cases"]:
            cols = trio(ok_runs(results, case, "ferry"), "downtime_ms")
            cols += trio(ok_runs(results, case, "qemu"), "downtime_ms")
            cols += trio(ok_runs(results, case, "qemu"), "dst_running_ms")
            f.write(f'"{case}" ' + " ".join(cols) + "\n")
    script = Path(__file__).resolve().parent / "plot_migrate.gp"
    title = (f"live-migration downtime, median and min-max of {args.runs} runs "
             f"(target {args.max_downtime:g} ms; noisy shared 2-core host)")
    res = subprocess.run([gp, "-e", f"datafile='{dat}'; outfile='{png}'; target={args.max_downtime}; "
                          f"plottitle='{title}'", str(script)],
                         capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        bl.log(f"bench: gnuplot failed:\n{res.stderr}")
        return None
    bl.log(f"bench: plot written to {png}")
    return png


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferry", default=str(bl.REPO / "build" / "ferry"))
    ap.add_argument("--guest", default=str(bl.REPO / "build" / "guest"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--no-ferry", action="store_true", help="QEMU only (to check the bench)")
    ap.add_argument("--runs", type=int, default=5, help="runs per case and machine (default 5)")
    ap.add_argument("--quick", action="store_true", help="2 runs per case and machine")
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma-separated subset of {', '.join(CASES)}")
    ap.add_argument("--max-downtime", type=float, default=5.0, help="downtime target in ms (default 5)")
    ap.add_argument("--qemu-converge-timeout", type=float, default=20.0,
                    help="seconds before QEMU's downtime-limit is raised to 300 ms (default 20)")
    ap.add_argument("--out", default=str(bl.REPO / "bench" / "out"), help="directory for JSON and plot")
    ap.add_argument("--json", help="raw results file (default OUT/migrate.json)")
    ap.add_argument("--no-plot", action="store_true")
    args, unknown = ap.parse_known_args()
    if unknown:
        # bench/run-all.sh passes its arguments to every bench.
        bl.log(f"bench: migrate.py ignores {' '.join(unknown)}")
    if args.quick:
        args.runs = 2
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r} (known: {', '.join(CASES)})")

    # Cleanup on SIGTERM/SIGHUP as on Ctrl-C: the with-blocks kill the VMs.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, f: sys.exit(128 + n))

    guest = bl.find_guest(args.guest)
    ferry = None if args.no_ferry else bl.find_ferry(args.ferry)
    qemu = None if args.no_qemu else bl.find_qemu(args.qemu)
    if not args.no_qemu and not qemu:
        bl.log(f"bench: {args.qemu} not found; QEMU column skipped")
    pin_dir = None
    if ferry:
        pin_dir = tempfile.mkdtemp(prefix="fbench-")
        ferry = bl.pin_ferry(ferry, pin_dir)
    try:
        return measure_all(args, guest, ferry, qemu, cases)
    finally:
        if pin_dir:
            shutil.rmtree(pin_dir, ignore_errors=True)


def machines_for(case, machines):
    """The capped cases also run ferry and QEMU with post-copy."""
    out = list(machines)
    if CASES[case].get("link_mb_s") and "ferry" in machines:
        out.append("ferry-postcopy")
    if CASES[case].get("link_mb_s") and "qemu" in machines:
        out.append("qemu-postcopy")
    return out


def measure_all(args, guest, ferry, qemu, cases):
    machines = [m for m, p in (("ferry", ferry), ("qemu", qemu)) if p]
    if not machines:
        sys.exit("bench: nothing to run")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = Path(args.json) if args.json else out_dir / "migrate.json"

    results = {"host": bl.host_description(), "guest": str(guest), "ferry": ferry, "qemu": qemu,
               "runs_per_case": args.runs, "max_downtime_ms": args.max_downtime,
               "qemu_converge_timeout_s": args.qemu_converge_timeout,
               "cases": cases, "machines": machines, "loadavg_start": bl.loadavg(),
               "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": []}
    t_start = time.monotonic()
    total = sum(len(machines_for(c, machines)) for c in cases) * args.runs
    n = 0
    for case in cases:
        for i in range(args.runs):
            # Alternate which machine goes first, so drift in the host's load
            # does not always favour the same one.
            here = machines_for(case, machines)
            order = here if i % 2 == 0 else here[::-1]
            for vmm in order:
                n += 1
                bl.log(f"[{n}/{total}] {case} {vmm} run {i + 1}/{args.runs} "
                       f"({time.monotonic() - t_start:.0f} s elapsed, load {bl.loadavg()})")
                t0 = time.monotonic()
                rec = {"case": case, "vmm": vmm, "run": i + 1, "ok": False}
                try:
                    if vmm in ("ferry", "ferry-postcopy"):
                        rec.update(run_ferry(ferry, guest, case, args.max_downtime,
                                             postcopy=vmm == "ferry-postcopy"))
                    else:
                        rec.update(run_qemu(qemu, guest, case, args.max_downtime,
                                            args.qemu_converge_timeout,
                                            postcopy=vmm == "qemu-postcopy"))
                    rec["ok"] = True
                    bl.log(f"    downtime {rec['downtime_ms']:.2f} ms"
                           f" (pause->dst running {rec['dst_running_ms']:.2f} ms), total "
                           f"{rec['total_ms']:.0f} ms, {rec['wire_bytes'] / 2**20:.1f} MiB, "
                           f"rounds {rec['rounds']}, converged {rec['converged']}"
                           + (f", dirty {rec['dirty_rate_mb_s']:.0f} MB/s"
                              if rec.get("dirty_rate_mb_s") is not None else ""))
                    if rec.get("guest_error"):
                        bl.log(f"    GUEST BROKEN on the destination: {rec['guest_error'][:1500]}")
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
    if not args.no_plot:
        results["plot"] = str(plot(results, args, out_dir))
    report(results, args)
    return 0 if all(r["ok"] for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
