#!/usr/bin/env python3
"""What the channel costs: live migration over plain TCP, TLS 1.3 and TLS 1.3
with compression, ferry next to QEMU (TCG) in the same run.

    bench/migrate_channel.py [--ferry build/ferry] [--guest build/guest]
                             [--qemu qemu-system-riscv64 | --no-qemu]
                             [--runs 3 | --quick] [--cases idle-1G,dirty-64]
                             [--variants plain,tls,tls-zstd]
                             [--bandwidth 32M] [--json FILE]

Cases and the way a run is done are bench/migrate.py's (a fresh source and
destination per run, memdirty for dirty-R, the guest checked on the
destination afterwards). Variants:

  plain     ferry: tcp:                        QEMU: tcp:
  tls       ferry: tls: with certificates      QEMU: tls-creds-x509 (both ways verified)
  tls-zstd  ferry: tls: + --compress zstd      QEMU: tls-creds-x509 + multifd, zstd
  tls-auto  ferry: tls: + --compress auto      (QEMU has no adaptive mode: not run)

Certificates (one CA, one certificate per side for 127.0.0.1) are made with
the openssl command for the run. ferry's channel line says where the
encryption runs (kTLS or user space). --bandwidth caps both (ferry
--bandwidth, QEMU max-bandwidth); with a cap, compression's effect on
total time shows.

Outputs a table (median of the runs: total time, downtime, MiB on the wire,
and for TLS the time against plain), and the raw results as JSON
(bench/out/migrate_channel.json by default).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import harness  # noqa: E402
from ferryvm import ConsoleProcess  # noqa: E402
from migrate import (BOOT_TIMEOUT, CASES, MIGRATE_TIMEOUT, POLL_S, QMP,  # noqa: E402
                     check_destination, event_time, start_workload)
from migration import SourceVM, free_port  # noqa: E402

VARIANTS = ("plain", "tls", "tls-zstd", "tls-auto")
DEFAULT_VARIANTS = ("plain", "tls", "tls-zstd")


def make_certs(d):
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bench ca",
            "-keyout", "ca-key.pem", "-out", "ca-cert.pem")
    for side in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=127.0.0.1",
                "-keyout", f"{side}-key.pem", "-out", f"{side}.csr")
        with open(os.path.join(d, f"{side}.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        openssl("x509", "-req", "-in", f"{side}.csr", "-CA", "ca-cert.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-days", "2", "-extfile", f"{side}.ext",
                "-out", f"{side}-cert.pem")


def ferry_creds(d, side):
    return ["--tls-cert", f"{d}/{side}-cert.pem", "--tls-key", f"{d}/{side}-key.pem",
            "--tls-ca", f"{d}/ca-cert.pem"]


def run_ferry(ferry, guest, case, variant, certs, bandwidth):
    spec = CASES[case]
    env = {"FERRY_GUEST_DIR": str(guest)}
    port = free_port()
    scheme = "tcp" if variant == "plain" else "tls"
    uri = f"{scheme}:127.0.0.1:{port}"
    dst_args = ["--incoming", uri] + ([] if variant == "plain" else ferry_creds(certs, "server"))
    opts = [] if variant == "plain" else ferry_creds(certs, "client")
    if variant in ("tls-zstd", "tls-auto"):
        opts += ["--compress", variant[4:]]
    if bandwidth:
        opts += ["--bandwidth", bandwidth]
    rec = {}
    with SourceVM(["--mem", spec["mem"]], ferry=ferry, env=env) as src, \
            SourceVM(dst_args, ferry=ferry, env=env, name="destination") as dst:
        src.boot(BOOT_TIMEOUT)
        md = before = None
        if spec["rate"] is not None:
            md, before, rec["dirty_rate_mb_s"] = start_workload(src, spec["rate"])
        else:
            src.run("true")
        t_wait = time.monotonic()
        while "waiting for a migration stream" not in dst.stderr():
            if time.monotonic() - t_wait > 30:
                raise RuntimeError("destination did not listen")
            time.sleep(0.05)
        cpu0 = bl.cpu_seconds(src.proc.pid)
        res = harness.run_cmd([ferry, "migrate", src.control, uri, "--max-downtime", "5ms",
                               "--json", *opts], timeout=MIGRATE_TIMEOUT)
        rep = json.loads(res.stdout) if res.stdout.strip().startswith("{") else None
        if res.rc != 0 or not rep or rep.get("state") != "completed":
            raise RuntimeError(f"ferry migrate failed\n{res.describe()}\n{dst.stderr()[-2000:]}")
        rec.update(total_ms=rep["total_ms"], downtime_ms=rep["downtime_ms"],
                   wire_bytes=rep["wire_bytes"], channel=rep.get("channel", "plain TCP"),
                   compress=rep.get("compress"), source_cpu_s=bl.cpu_seconds(src.proc.pid) - cpu0)
        t_res = time.monotonic()
        while "guest resumed from" not in dst.stderr():
            if time.monotonic() - t_res > 60:
                raise RuntimeError("destination did not resume")
            time.sleep(0.05)
        rec["guest_error"] = check_destination(dst, md, before)
    return rec


def qemu_tls_object(certs, endpoint):
    return ["-object", f"tls-creds-x509,id=tls0,dir={certs},endpoint={endpoint},verify-peer=on"]


def run_qemu(qemu, guest, case, variant, certs, bandwidth_bytes):
    spec = CASES[case]
    tmp = tempfile.mkdtemp(prefix="fqch-")
    port = free_port()
    uri = f"tcp:127.0.0.1:{port}"
    s_qmp, d_qmp = os.path.join(tmp, "src.qmp"), os.path.join(tmp, "dst.qmp")
    tls = variant != "plain"
    src = ConsoleProcess(bl.qemu_argv(qemu, guest, mem=spec["mem"], extra=[
        "-qmp", f"unix:{s_qmp},server=on,wait=off",
        *(qemu_tls_object(certs, "client") if tls else [])]), name="qemu-source")
    dst = ConsoleProcess(bl.qemu_argv(qemu, guest, mem=spec["mem"], extra=[
        "-qmp", f"unix:{d_qmp},server=on,wait=off", "-incoming", "defer",
        *(qemu_tls_object(certs, "server") if tls else [])]), name="qemu-destination")
    qs = qd = None
    rec = {}
    try:
        with src, dst:
            qs, qd = QMP(s_qmp, src.proc), QMP(d_qmp, dst.proc)
            params = {}
            if tls:
                params["tls-creds"] = "tls0"
            if variant == "tls-zstd":
                for q in (qs, qd):
                    q.cmd("migrate-set-capabilities",
                          capabilities=[{"capability": "multifd", "state": True}])
                params["multifd-compression"] = "zstd"
            if params:
                qd.cmd("migrate-set-parameters", **params)
            qd.cmd("migrate-incoming", uri=uri)
            src.boot(BOOT_TIMEOUT)
            md = before = None
            if spec["rate"] is not None:
                md, before, rec["dirty_rate_mb_s"] = start_workload(src, spec["rate"])
            else:
                src.run("true")
            qs.cmd("migrate-set-parameters", **{
                "max-bandwidth": bandwidth_bytes or (10 << 30), "downtime-limit": 5,
                **params, **({"tls-hostname": "127.0.0.1"} if tls else {})})
            cpu0 = bl.cpu_seconds(src.proc.pid)
            t0 = time.monotonic()
            qs.cmd("migrate", uri=uri)
            escalated = False
            while True:
                st = qs.cmd("query-migrate")
                if st.get("status") == "completed":
                    break
                if st.get("status") in ("failed", "cancelled"):
                    raise RuntimeError(f"QEMU migration {st.get('status')}: {st}")
                el = time.monotonic() - t0
                if not escalated and el > 20:
                    qs.cmd("migrate-set-parameters", **{"downtime-limit": 300})
                    escalated = True
                elif el > MIGRATE_TIMEOUT:
                    qs.cmd("migrate_cancel")
                    raise RuntimeError(f"QEMU migration did not complete: {st}")
                time.sleep(POLL_S)
            stop, resume = qs.event("STOP"), qd.event("RESUME", 60)
            ram = st.get("ram", {})
            rec.update(total_ms=float(st["total-time"]), downtime_ms=float(st["downtime"]),
                       dst_running_ms=(event_time(resume) - event_time(stop)) * 1e3,
                       wire_bytes=ram.get("transferred"), converged=not escalated,
                       source_cpu_s=bl.cpu_seconds(src.proc.pid) - cpu0,
                       channel="TLS (GnuTLS, user space)" if tls else "plain TCP")
            rec["guest_error"] = check_destination(dst, md, before)
    finally:
        for q in (qs, qd):
            if q:
                q.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rec


def med(runs, key):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None


def report(results, cases, variants, machines):
    rows = []
    for case in cases:
        for vmm in machines:
            base = None
            for var in variants:
                runs = [r for r in results["runs"] if r["ok"] and r["case"] == case
                        and r["vmm"] == vmm and r["variant"] == var]
                nall = len([r for r in results["runs"] if r["case"] == case and r["vmm"] == vmm
                            and r["variant"] == var])
                if not nall:
                    continue
                if not runs:
                    rows.append([case, vmm, var, "-", "-", "-", "-", "-", f"0/{nall}", "-"])
                    continue
                guest_ok = sum(1 for r in runs if not r.get("guest_error"))
                total, down = med(runs, "total_ms"), med(runs, "downtime_ms")
                mib = med(runs, "wire_bytes") / 2**20 if med(runs, "wire_bytes") else None
                cpu = med(runs, "source_cpu_s")
                if var == "plain":
                    base = total
                vs = f"{(total / base - 1) * 100:+.0f} %" if base and var != "plain" else ""
                rows.append([case, vmm, var, f"{total:.0f}", f"{down:.2f}",
                             f"{mib:.1f}" if mib is not None else "-", vs,
                             f"{cpu:.2f}" if cpu is not None else "-", f"{len(runs)}/{nall}",
                             f"{guest_ok}/{len(runs)}"])
    bl.print_table("Migration channel: plain, TLS 1.3, TLS 1.3 + zstd (medians)",
                   ["case", "vmm", "variant", "total ms", "downtime ms", "MiB wire",
                    "vs plain", "src CPU s", "ok", "guest ok"], rows,
                   notes=[f"ferry's channel: {results.get('ferry_channel', '?')}",
                          "QEMU: tls-creds-x509 (GnuTLS); tls-zstd adds multifd with zstd",
                          "QEMU's downtime is its own figure (source stop to end of send)",
                          f"bandwidth cap: {results.get('bandwidth') or 'none'}",
                          "guest ok: the guest answered (and memdirty reported, error-free) on "
                          "the destination within the bench's wait"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferry", default=str(bl.REPO / "build" / "ferry"))
    ap.add_argument("--guest", default=str(bl.REPO / "build" / "guest"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 run per cell")
    ap.add_argument("--cases", default="idle-1G,dirty-64")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help=f"some of {','.join(VARIANTS)}")
    ap.add_argument("--bandwidth", help="cap for both, e.g. 32M (bytes/s)")
    ap.add_argument("--json", default=str(bl.REPO / "bench" / "out" / "migrate_channel.json"))
    ap.add_argument("--report", metavar="JSON", help="print the table of an earlier run's results")
    args, unknown = ap.parse_known_args()
    if args.report:
        with open(args.report) as f:
            old = json.load(f)
        for r in old["runs"]:
            r["ok"] = "total_ms" in r
        cases = list(dict.fromkeys(r["case"] for r in old["runs"]))
        variants = list(dict.fromkeys(r["variant"] for r in old["runs"]))
        machines = list(dict.fromkeys(r["vmm"] for r in old["runs"]))
        report(old, cases, variants, machines)
        return 0
    if unknown:
        bl.log(f"bench: migrate_channel.py ignores {' '.join(unknown)}")
    runs = 1 if args.quick else args.runs
    cases = [c for c in args.cases.split(",") if c]
    variants = [v for v in args.variants.split(",") if v]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c}")
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v}")
    if not shutil.which("openssl"):
        sys.exit("bench: needs the openssl command (./setup)")
    guest = bl.find_guest(args.guest)
    ferry = bl.find_ferry(args.ferry)
    qemu = None if args.no_qemu else bl.find_qemu(args.qemu)
    bw_bytes = None
    if args.bandwidth:
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        bw_bytes = int(float(args.bandwidth.rstrip("KMG")) * mult.get(args.bandwidth[-1], 1))
    machines = ["ferry"] + (["qemu"] if qemu else [])
    certs = tempfile.mkdtemp(prefix="fch-certs-")
    pin_dir = tempfile.mkdtemp(prefix="fbench-")
    ferry = bl.pin_ferry(ferry, pin_dir)
    results = {"host": bl.host_description(), "ferry": ferry, "qemu": qemu, "runs": [],
               "bandwidth": args.bandwidth, "loadavg_start": bl.loadavg()}
    try:
        make_certs(certs)
        for case in cases:
            for i in range(runs):
                for var in variants:
                    for vmm in (machines if i % 2 == 0 else machines[::-1]):
                        if vmm == "qemu" and var == "tls-auto":
                            continue
                        bl.log(f"{case} {var} {vmm} run {i + 1}/{runs} (load {bl.loadavg()})")
                        rec = {"case": case, "vmm": vmm, "variant": var, "run": i + 1, "ok": False}
                        try:
                            if vmm == "ferry":
                                rec.update(run_ferry(ferry, guest, case, var, certs, args.bandwidth))
                                if var != "plain":
                                    results["ferry_channel"] = rec["channel"]
                            else:
                                rec.update(run_qemu(qemu, guest, case, var, certs, bw_bytes))
                            # The figures stand; a guest that did not answer in
                            # time afterwards (a loaded host) is counted apart.
                            rec["ok"] = True
                            bl.log(f"    total {rec['total_ms']:.0f} ms, downtime "
                                   f"{rec['downtime_ms']:.2f} ms, {rec['wire_bytes'] / 2**20:.1f} MiB"
                                   + (f", GUEST BROKEN: {rec['guest_error'][:300]}"
                                      if rec.get("guest_error") else ""))
                        except Exception as e:  # noqa: BLE001
                            rec["error"] = f"{type(e).__name__}: {e}"
                            bl.log(f"    FAILED: {rec['error'][:2000]}")
                        results["runs"].append(rec)
        results["loadavg_end"] = bl.loadavg()
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        bl.save_json(args.json, results)
        report(results, cases, variants, machines)
    finally:
        shutil.rmtree(certs, ignore_errors=True)
        shutil.rmtree(pin_dir, ignore_errors=True)
    return 0 if all(r["ok"] for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
