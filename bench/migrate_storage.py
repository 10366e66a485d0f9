#!/usr/bin/env python3
"""Storage migration: a VM with a local 1 GiB disk and a writer in the guest
moves to a destination without shared storage. ferry `--copy-storage` next
to QEMU's blockdev-mirror to an NBD export on the destination followed by
`migrate`, in one run.

    bench/migrate_storage.py [--ferry build/ferry] [--guest build/guest]
                             [--qemu qemu-system-riscv64 | --no-qemu]
                             [--runs 3] [--disk-mib 1024] [--data-mib 256]
                             [--json FILE]

The disk: an ext4 image of --disk-mib MiB (sparse) made by mke2fs -d from a
directory holding --data-mib MiB of random files, the same image for both
machines. The guest (256 MiB RAM, -smp 1) mounts it and runs a writer:
copy a 4 MiB random file from its tmpfs to one of 8 files on the disk, then
`sync`, in a loop. The migration starts once the writer has made 3 rounds.
After the move the destination's guest must answer and its writer make one
more round, and the destination image must fsck clean after poweroff.

ferry   source `ferry run --mem 256M --drive file=SRC --control PATH`,
        destination `ferry run --incoming tcp:127.0.0.1:PORT --drive
        file=DST` where DST does not exist; `ferry migrate PATH URI
        --copy-storage --max-downtime 5ms --json`. Total time and bytes are
        the report's (pages and blocks); downtime is ferry's measured one;
        "pause->dst running" is the source's paused_at to the destination's
        resumed_at on this host's CLOCK_MONOTONIC.
QEMU    the same guest with -blockdev file+raw and virtio-blk-device. The
        destination (-incoming tcp:...) opens DST (a sparse file of the
        right size: QEMU needs it to exist) and exports it over NBD
        (nbd-server-start, block-export-add writable); the source
        blockdev-adds the export and runs blockdev-mirror sync=full; at
        BLOCK_JOB_READY it migrates with pause-before-switchover (libvirt's
        way: the mirror must be complete before the destination runs);
        at pre-switchover, block-job-cancel (a ready mirror completes in
        sync), BLOCK_JOB_COMPLETED, migrate-continue; the destination,
        started with -S, then stops its NBD server (its export holds the
        disk's write permission) and gets `cont`. max-bandwidth 10 GiB/s,
        downtime-limit 5 ms. Total time: blockdev-mirror to the
        destination's RESUME;
        bytes: the mirror job's offset + ram.transferred (the offset is the
        job's progress: it counts ranges sent as NBD write-zeroes without
        data too, so it is an upper bound of the disk bytes on the wire);
        downtime: QEMU's figure; "pause->dst running": the source's STOP to
        the destination's RESUME (QMP event timestamps, the same host clock).

Everything runs on 127.0.0.1 on this host (2 cores shared by both VMs and
the copy). Progress on stderr, the table on stdout, raw results as JSON.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import harness  # noqa: E402
from ferryvm import ConsoleProcess, clean  # noqa: E402
from migration import IncomingVM, SourceVM, free_port  # noqa: E402

import migrate as mb  # noqa: E402  (bench/migrate.py: QMP, event_time)

MEM = "256M"
BOOT_TIMEOUT = 300
MIGRATE_TIMEOUT = 600
TARGET_MS = 5
WRITER_LOG = "/tmp/writer.log"
# The writer: 4 MiB of random data from tmpfs to the disk, sync, forever.
WRITER = ("dd if=/dev/urandom of=/tmp/r bs=1M count=4 2>/dev/null; i=0; "
          "while [ ! -e /tmp/wstop ]; do i=$((i+1)); cp /tmp/r /mnt/w$((i % 8)) && sync && "
          f"echo $i >> {WRITER_LOG}; done")


def tool(name):
    for p in (shutil.which(name), f"/usr/sbin/{name}", f"/sbin/{name}"):
        if p and os.access(p, os.X_OK):
            return p
    sys.exit(f"bench: {name} not installed (e2fsprogs)")


def make_image(path, disk_mib, data_mib, tmp):
    """ext4 of disk_mib MiB holding data_mib MiB of random files."""
    d = os.path.join(tmp, "content")
    os.makedirs(d, exist_ok=True)
    for i in range(max(1, data_mib // 32)):
        with open(os.path.join(d, f"data{i}"), "wb") as f:
            f.write(os.urandom(min(32, data_mib) << 20))
    r = subprocess.run([tool("mke2fs"), "-q", "-F", "-t", "ext4", "-d", d, path, f"{disk_mib}M"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"mke2fs: {r.stderr}")
    shutil.rmtree(d)


def writer_rounds(vm):
    out = vm.run(f"wc -l < {WRITER_LOG}", timeout=60).strip()
    return int(out.split()[-1]) if out else 0


def start_writer(vm):
    vm.run("mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo mounted", timeout=60)
    vm.run(f": > {WRITER_LOG}; ( {WRITER} ) </dev/null >/dev/null 2>&1 & echo started")
    deadline = time.monotonic() + 180
    while writer_rounds(vm) < 3:
        if time.monotonic() > deadline:
            raise RuntimeError("the guest's writer did not make 3 rounds in 180 s")
        time.sleep(0.5)
    t0, n0 = time.monotonic(), writer_rounds(vm)
    time.sleep(3)
    n1 = writer_rounds(vm)
    return (n1 - n0) * 4 / (time.monotonic() - t0)


def check_after(dst, img):
    """The writer goes on at the destination; after poweroff the image
    fscks clean. None when all is well, else what went wrong (reported
    next to the figures, which stay valid: the VM's own exit check would
    turn kernel trouble into a failed run)."""
    dst.check_kernel = False
    trouble = guest_trouble(dst)
    if trouble:
        return trouble
    try:
        dst.wait_prompt(timeout=60)
        n = writer_rounds(dst)
        deadline = time.monotonic() + 60
        while writer_rounds(dst) <= n:
            if time.monotonic() > deadline:
                return "the writer made no round on the destination within 60 s"
            time.sleep(0.5)
        dst.run("touch /tmp/wstop; sleep 3; umount /mnt; echo done", timeout=120)
        trouble = guest_trouble(dst)
        if trouble:
            return trouble
        if hasattr(dst, "poweroff"):
            dst.poweroff(timeout=60)
        else:
            dst.close()   # QEMU: the guest unmounted (and flushed) the disk
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    r = subprocess.run([tool("e2fsck"), "-fn", img], capture_output=True, text=True)
    if r.returncode != 0:
        return f"e2fsck -fn on the destination image: {r.returncode}\n{r.stdout[-2000:]}"
    return None


def guest_trouble(vm):
    text = clean(vm.transcript)
    for m in vm.KERNEL_TROUBLE:
        at = text.find(m)
        if at >= 0:
            return f"kernel trouble on the destination ({m.strip()!r}):\n{text[at:at + 600]}"
    return None


def run_ferry(ferry, guest, base_img, tmp):
    src_img, dst_img = os.path.join(tmp, "src.img"), os.path.join(tmp, "dst", "disk.img")
    os.makedirs(os.path.dirname(dst_img), exist_ok=True)
    subprocess.run(["cp", "--sparse=always", base_img, src_img], check=True)
    os.sync()   # no writeback of the copy competes with the migration's
    env = {"FERRY_GUEST_DIR": str(guest)}
    trace = bool(os.environ.get("FERRY_MIGRATION_TRACE"))
    if trace:
        env["FERRY_MIGRATION_TRACE"] = "1"
    rec = {}
    with SourceVM(["--mem", MEM, "--drive", f"file={src_img}"], ferry=ferry, env=env) as src, \
            IncomingVM(["--drive", f"file={dst_img}"], ferry=ferry, env=env) as dst:
        src.boot(BOOT_TIMEOUT)
        rec["writer_mb_s"] = start_writer(src)
        dst.wait_listening()
        res = harness.run_cmd([ferry, "migrate", src.control, dst.uri, "--copy-storage",
                               "--max-downtime", f"{TARGET_MS}ms", "--json"],
                              timeout=MIGRATE_TIMEOUT)
        try:
            rep = json.loads(res.stdout)
        except ValueError:
            rep = None
        if res.rc != 0 or not rep or rep.get("state") != "completed":
            raise RuntimeError(f"ferry migrate failed\n{res.describe()}\n"
                               f"--- destination ---\n{harness.tail(dst.stderr(), 20)}")
        dst.wait_resumed(60)
        resumed = dst.status().get("resumed_at_monotonic_ns")
        st = rep.get("storage") or {}
        rec.update(total_ms=rep["total_ms"], downtime_ms=rep["downtime_ms"],
                   dst_running_ms=(resumed - rep["paused_at_monotonic_ns"]) / 1e6,
                   wire_bytes=rep["wire_bytes"], disk_bytes=st.get("bytes"),
                   rounds=rep.get("rounds"), report=rep)
        if src.wait_exit(60) != 0:
            raise RuntimeError(f"ferry source did not exit cleanly:\n{src.stderr()}")
        if trace:
            rec["trace"] = [ln for ln in (src.stderr() + dst.stderr()).splitlines()
                            if "migration:" in ln]
            bl.log("\n".join(rec["trace"]))
        rec["guest_error"] = check_after(dst, dst_img)
    return rec


def qemu_disk_args(img, qmp, extra=()):
    return ["-blockdev", f"driver=file,filename={img},node-name=f0",
            "-blockdev", "driver=raw,file=f0,node-name=d0",
            "-device", "virtio-blk-device,drive=d0",
            "-qmp", f"unix:{qmp},server=on,wait=off", *extra]


def qmp_raw(q, name, arguments):
    """A QMP command whose arguments include "name" (QMP.cmd's own)."""
    q.f.write(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
    q.f.flush()
    while True:
        r = q._read()
        if "event" in r:
            q.events.append(r)
        elif "error" in r:
            raise RuntimeError(f"QMP {name} {arguments}: {r['error']}")
        else:
            return r.get("return")


def run_qemu(qemu, guest, base_img, tmp):
    src_img, dst_img = os.path.join(tmp, "src.img"), os.path.join(tmp, "dst.img")
    subprocess.run(["cp", "--sparse=always", base_img, src_img], check=True)
    with open(dst_img, "wb") as f:
        f.truncate(os.path.getsize(base_img))
    os.sync()
    s_qmp, d_qmp = os.path.join(tmp, "src.qmp"), os.path.join(tmp, "dst.qmp")
    mport, nport = free_port(), free_port()
    uri = f"tcp:127.0.0.1:{mport}"
    src = ConsoleProcess(bl.qemu_argv(qemu, guest, mem=MEM, extra=qemu_disk_args(src_img, s_qmp)),
                         name="qemu-source")
    dst = ConsoleProcess(bl.qemu_argv(qemu, guest, mem=MEM,
                                      extra=qemu_disk_args(dst_img, d_qmp,
                                                           ["-S", "-incoming", uri])),
                         name="qemu-destination")
    rec = {}
    qs = qd = None
    try:
        with src, dst:
            qs, qd = mb.QMP(s_qmp, src.proc), mb.QMP(d_qmp, dst.proc)
            src.boot(BOOT_TIMEOUT)
            rec["writer_mb_s"] = start_writer(src)
            qd.cmd("nbd-server-start",
                   addr={"type": "inet", "data": {"host": "127.0.0.1", "port": str(nport)}})
            qmp_raw(qd, "block-export-add", {"type": "nbd", "id": "exp0", "node-name": "d0",
                                             "name": "d0", "writable": True})
            qs.cmd("migrate-set-capabilities",
                   capabilities=[{"capability": "pause-before-switchover", "state": True}])
            qs.cmd("migrate-set-parameters", **{"max-bandwidth": 10 << 30,
                                                "downtime-limit": TARGET_MS})
            t0 = time.monotonic()
            qs.cmd("blockdev-add", driver="nbd", **{"node-name": "tgt"},
                   server={"type": "inet", "host": "127.0.0.1", "port": str(nport)},
                   export="d0")
            qs.cmd("blockdev-mirror", **{"job-id": "m0"}, device="d0", target="tgt",
                   sync="full")
            qs.event("BLOCK_JOB_READY", timeout=MIGRATE_TIMEOUT)
            rec["mirror_ready_ms"] = (time.monotonic() - t0) * 1e3
            qs.cmd("migrate", uri=uri)
            deadline = time.monotonic() + MIGRATE_TIMEOUT
            mirror_bytes, continued = 0, False
            while True:
                st = qs.cmd("query-migrate")
                status = st.get("status")
                if status == "pre-switchover" and not continued:
                    continued = True
                    jobs = qs.cmd("query-block-jobs")
                    qs.cmd("block-job-cancel", device="m0")
                    done = qs.event("BLOCK_JOB_COMPLETED", timeout=120)
                    mirror_bytes = done["data"].get("offset") or (jobs[0]["offset"] if jobs else 0)
                    qs.cmd("migrate-continue", state="pre-switchover")
                elif status == "completed":
                    break
                elif status in ("failed", "cancelled"):
                    raise RuntimeError(f"QEMU migration {status}: {st}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"QEMU migration did not complete: {st}")
                time.sleep(0.005 if status == "device" else mb.POLL_S)
            # The destination (-S) waits: its NBD export must go before the
            # guest's disk may be written by the guest (libvirt's order).
            while (qd.cmd("query-migrate") or {}).get("status") != "completed":
                if time.monotonic() > deadline:
                    raise RuntimeError("the QEMU destination did not complete the migration")
                time.sleep(0.001)
            qd.cmd("nbd-server-stop")
            qd.cmd("cont")
            resume = qd.event("RESUME", 60)
            t_done = time.monotonic()
            stop = qs.event("STOP")
            ram = st.get("ram", {})
            rec.update(total_ms=(t_done - t0) * 1e3, downtime_ms=float(st["downtime"]),
                       dst_running_ms=(mb.event_time(resume) - mb.event_time(stop)) * 1e3,
                       wire_bytes=(ram.get("transferred") or 0) + mirror_bytes,
                       disk_bytes=mirror_bytes, rounds=ram.get("dirty-sync-count"), report=st)
            rec["guest_error"] = check_after(dst, dst_img)
    finally:
        for q in (qs, qd):
            if q:
                q.close()
    return rec


def med(runs, key, scale=1.0):
    vals = [r[key] * scale for r in runs if r.get(key) is not None]
    if not vals:
        return "-"
    vals.sort()
    m = vals[len(vals) // 2] if len(vals) % 2 else (vals[len(vals) // 2 - 1] + vals[len(vals) // 2]) / 2
    return f"{m:.1f} ({vals[0]:.1f}-{vals[-1]:.1f})" if len(vals) > 1 else f"{m:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ferry", default=str(bl.REPO / "build" / "ferry"))
    ap.add_argument("--guest", default=str(bl.REPO / "build" / "guest"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--no-ferry", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--disk-mib", type=int, default=1024)
    ap.add_argument("--data-mib", type=int, default=256)
    ap.add_argument("--json", default=str(bl.REPO / "bench" / "out" / "migrate_storage.json"))
    args, unknown = ap.parse_known_args()
    if unknown:
        bl.log(f"bench: migrate_storage.py ignores {' '.join(unknown)}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, f: sys.exit(128 + n))
    guest = bl.find_guest(args.guest)
    qemu = None if args.no_qemu else bl.find_qemu(args.qemu)
    machines = ([] if args.no_ferry else ["ferry"]) + (["qemu"] if qemu else [])
    tmp = tempfile.mkdtemp(prefix="fbench-storage-")
    results = {"host": bl.host_description(), "disk_mib": args.disk_mib,
               "data_mib": args.data_mib, "runs": []}
    try:
        ferry = None if args.no_ferry else bl.pin_ferry(bl.find_ferry(args.ferry), tmp)
        base = os.path.join(tmp, "base.img")
        make_image(base, args.disk_mib, args.data_mib, tmp)
        for i in range(args.runs):
            order = machines if i % 2 == 0 else machines[::-1]
            for vmm in order:
                bl.log(f"run {i + 1}/{args.runs} {vmm} (load {bl.loadavg()})")
                work = tempfile.mkdtemp(prefix=f"{vmm}-", dir=tmp)
                rec = {"vmm": vmm, "run": i + 1, "ok": False}
                try:
                    rec.update(run_ferry(ferry, guest, base, work) if vmm == "ferry"
                               else run_qemu(qemu, guest, base, work))
                    rec["ok"] = True
                    bl.log(f"    total {rec['total_ms']:.0f} ms, downtime {rec['downtime_ms']:.2f} ms, "
                           f"pause->dst running {rec['dst_running_ms']:.2f} ms, "
                           f"{rec['wire_bytes'] / 1048576:.1f} MiB; guest: "
                           f"{rec['guest_error'] or 'ok'}")
                except Exception as e:  # noqa: BLE001
                    rec["error"] = f"{type(e).__name__}: {e}"
                    bl.log(f"    FAILED: {rec['error']}")
                results["runs"].append(rec)
                shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for vmm in machines:
        ok = [r for r in results["runs"] if r["vmm"] == vmm and r["ok"]]
        n = len([r for r in results["runs"] if r["vmm"] == vmm])
        rows.append([vmm, f"{len(ok)}/{n}", med(ok, "total_ms"), med(ok, "downtime_ms"),
                     med(ok, "dst_running_ms"), med(ok, "wire_bytes", 1 / 1048576),
                     med(ok, "disk_bytes", 1 / 1048576), med(ok, "writer_mb_s"),
                     sum(1 for r in ok if r.get("guest_error"))])
    bl.print_table(
        f"Storage migration: {args.disk_mib} MiB ext4 disk ({args.data_mib} MiB of data), "
        f"writer in the guest, 256 MiB RAM, 127.0.0.1; median (min-max) of {args.runs} runs",
        ["vmm", "ok", "total ms", "downtime ms", "pause->dst running ms", "MiB sent",
         "disk MiB", "writer MB/s", "guest errors"], rows,
        notes=["ferry: --copy-storage (blocks in the migration stream); QEMU: blockdev-mirror to "
               "the destination's NBD export, then migrate with pause-before-switchover.",
               "downtime: each VMM's own figure; pause->dst running: source pause to destination "
               "resume on this host's clock (comparable between the two).",
               "QEMU's disk MiB is its mirror's progress, zero ranges (sent as NBD write-zeroes, "
               "without data) included; ferry's is the block data it sent.",
               "guest errors: the destination's guest did not pass the check after the move "
               "(answers, writer goes on, clean fsck); details in the JSON."])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    bl.save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
