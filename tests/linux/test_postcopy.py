"""Post-copy: when pre-copy cannot meet the downtime cap, the guest moves at
once and the destination fetches the pages it lacks on demand
(userfaultfd) while the source pushes the rest; a broken connection pauses
both sides (postcopy-paused) until `ferry migrate --resume`; a destination
killed during post-copy leaves the source refusing to run the guest.

The guest runs memdirty (tests/lib/migration.py's Memdirty: a self-checking
writer with a counter) at full speed over a working set it dirties faster
than `--bandwidth` carries it, so pre-copy alone cannot converge. As in
test_migrate_converge.py the caps are larger than 5 ms: --verify hashes RAM
during the pause and the host is shared; bench/migrate.py measures the
5 ms figure without --verify.

Skipped when the guest has not been built or userfaultfd is not allowed.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from harness import require_guest, timeout  # noqa: E402
from migration import (IncomingVM, Memdirty, SourceVM, StreamProxy, ctl_request,  # noqa: E402
                       migrate, poweroff, probe_drive, report_of, start_migrate, wait_for)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_migrate import _hash_lines, _make_disk  # noqa: E402

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]
WORKING_SET = 8
LINK = "4M"
CAP_MS = 1000
CAP = f"{CAP_MS}ms"


def require_userfaultfd():
    if os.geteuid() != 0:
        try:
            if Path("/proc/sys/vm/unprivileged_userfaultfd").read_text().strip() != "1":
                raise harness.Skip("userfaultfd needs root or vm.unprivileged_userfaultfd=1")
        except OSError:
            raise harness.Skip("no userfaultfd on this kernel")


def source(args=()):
    require_guest()
    require_userfaultfd()
    return SourceVM([*MEM, *args])


def start_dirtier(src):
    src.boot(BOOT_TIMEOUT)
    md = Memdirty(src, WORKING_SET, 0)
    md.wait_reports(src, 2)
    return md


def check_postcopy_report(rep, res):
    """Completed through post-copy within the cap, with its figures."""
    assert rep and rep.get("state") == "completed", f"not completed\n{res.describe()}"
    assert rep.get("postcopy") is True, f"did not switch to post-copy: {rep}"
    pc = rep["postcopy_stats"]
    assert pc["pages"] > 0 and pc["sent"] == pc["pages"], f"post-copy pages: {pc}"
    assert pc["time_ms"] > 0, f"post-copy time: {pc}"
    assert pc["fault_median_ms"] <= pc["fault_p99_ms"] <= pc["fault_max_ms"], pc
    if pc["on_demand_pages"]:
        assert pc["fault_max_ms"] > 0, pc
    assert 0 < rep["downtime_ms"] <= CAP_MS, f"downtime {rep['downtime_ms']} ms over the cap"
    return pc


@timeout(900)
def test_postcopy_completes_within_the_cap():
    # No auto-converge: pre-copy stalls and, instead of failing, switches to
    # post-copy; memdirty (which faults on the pages it had dirtied) goes on
    # on the destination with nothing lost; --verify compares the state.
    with source() as src, IncomingVM() as dst:
        md = start_dirtier(src)
        dst.wait_listening()
        before = md.snapshot(src)
        res = harness.run_ferry(["migrate", src.control, dst.uri, "--bandwidth", LINK,
                                 "--max-downtime", CAP, "--no-auto-converge", "--postcopy",
                                 "--verify", "--progress-json"], timeout=700)
        harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry migrate output")
        lines = [json.loads(ln) for ln in res.stdout.splitlines() if ln.strip()]
        assert res.rc == 0 and lines and lines[-1].get("type") == "report", res.describe()
        rep = lines[-1]["migration"]
        pc = check_postcopy_report(rep, res)
        # Progress during post-copy: "post-copy Y % received", Y growing.
        got = [int(m.group(1)) for ln in lines if ln.get("type") == "progress"
               for m in [re.fullmatch(r"post-copy (\d+) % received", ln.get("phase", ""))] if m]
        assert got and got == sorted(got), f"post-copy progress: {got}\n{res.stdout[-3000:]}"
        assert rep["verified"] is True, f"not verified: {rep}"
        assert rep["throttle_max_percent"] == 0, rep
        assert pc["on_demand_pages"] > 0, f"memdirty faulted on no page: {pc}"
        dst.wait_resumed()
        assert src.wait_exit(60) == 0, src.stderr()
        assert "post-copy state verified" in dst.stderr(), dst.stderr()
        wait_for(lambda: dst.status().get("state") == "running", 60, "post-copy to end")
        dst.wait_prompt(30)
        md.check_continues(dst, before, more=2)
        poweroff(dst)



@timeout(900)
def test_postcopy_after_auto_converge():
    # The escalation order: auto-converge first (here allowed only up to
    # 20 %, which is not enough), then post-copy instead of failing.
    with source() as src, IncomingVM() as dst:
        md = start_dirtier(src)
        dst.wait_listening()
        before = md.snapshot(src)
        res, rep = migrate(src.control, dst.uri, "--bandwidth", LINK, "--max-downtime", CAP,
                           "--max-throttle", "20%", "--postcopy", "--verify", timeout=700)
        check_postcopy_report(rep, res)
        assert rep["throttle_max_percent"] == 20 and rep["verified"] is True, rep
        dst.wait_resumed()
        assert src.wait_exit(60) == 0, src.stderr()
        wait_for(lambda: dst.status().get("state") == "running", 60, "post-copy to end")
        dst.wait_prompt(30)
        md.check_continues(dst, before, more=2)
        poweroff(dst)

@timeout(900)
def test_postcopy_with_disk_busy():
    # Device DMA into pages the destination has not received yet: the guest
    # re-reads a file from virtio-blk (dropping its page cache each time, so
    # the reads land in freshly allocated, often missing, pages) while
    # memdirty runs; post-copy right after round 1. Every hash of the file
    # is right, memdirty finds no corruption and its counter has no gap.
    require_guest()
    require_userfaultfd()
    tmp = tempfile.mkdtemp(prefix="fpcdisk-")
    try:
        img, want = _make_disk(tmp)
        why = probe_drive(["--drive", f"file={img}"])
        if why:
            raise harness.Skip(f"no virtio-blk file backend: {why}")
        drive = ["--drive", f"file={img}"]
        with source(drive) as src, IncomingVM(drive) as dst:
            md = start_dirtier(src)
            src.run("mkdir -p /mnt && mount -o ro /dev/vda /mnt")
            src.run("(while :; do echo 3 > /proc/sys/vm/drop_caches; sha256sum /mnt/blob.bin; "
                    "done) </dev/null >/tmp/hash.log 2>&1 & echo loop started")
            wait_for(lambda: len(_hash_lines(src, want)) >= 2, 120, "two hashes on the source")
            hashes = len(_hash_lines(src, want))
            dst.wait_listening()
            before = md.snapshot(src)
            res, rep = migrate(src.control, dst.uri, "--bandwidth", LINK, "--max-downtime", CAP,
                               "--postcopy-after", "1", "--verify", timeout=700)
            pc = check_postcopy_report(rep, res)
            assert rep["verified"] is True and rep["rounds"] == 1, rep
            assert pc["on_demand_pages"] > 0, pc
            dst.wait_resumed()
            assert src.wait_exit(60) == 0, src.stderr()
            wait_for(lambda: dst.status().get("state") == "running", 60, "post-copy to end")
            dst.wait_prompt(30)
            wait_for(lambda: len(_hash_lines(dst, want)) >= hashes + 3, 120,
                     "three more hashes on the destination")
            md.check_continues(dst, before, more=2)
            dst.run("kill %1 2>/dev/null; umount /mnt || true", check=False)
            poweroff(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def migration_of(control):
    return ctl_request(control, {"cmd": "migrate-status"}, timeout=10).get("migration") or {}


def wait_postcopy_percent(control, pct, timeout_s=300):
    """Until the source's post-copy has sent pct % of the missing pages."""
    def reached():
        mig = migration_of(control)
        # "none": ferry migrate has not started the job yet.
        if mig.get("state") not in ("none", "setup", "active", "completing", "postcopy-active"):
            raise AssertionError(f"the migration ended before {pct} % of post-copy: {mig}")
        pc = mig.get("postcopy_stats")
        return mig.get("state") == "postcopy-active" and pc and pc["received_percent"] >= pct
    wait_for(reached, timeout_s, f"post-copy to reach {pct} %", interval=0.02)


def check_paused_both(src, dst):
    """Both sides say postcopy-paused; the source refuses to run the guest."""
    wait_for(lambda: src.status().get("state") == "postcopy-paused", 60, "source postcopy-paused")
    wait_for(lambda: dst.status().get("state") == "postcopy-paused", 60,
             "destination postcopy-paused")
    r = ctl_request(src.control, {"cmd": "resume"})
    assert not r.get("ok") and "split" in r.get("error", ""), f"source resume: {r}"
    assert src.proc.poll() is None and dst.proc.poll() is None, "a side exited"


def recovery_at(pct):
    # Post-copy after round 1 over a slow link; the proxy between the two
    # cuts the connection when pct % of the missing pages were sent. Both
    # sides pause and keep what they have; the destination listens again on
    # its --incoming address; --resume finishes with nothing lost.
    with source() as src, IncomingVM() as dst:
        md = start_dirtier(src)
        dst.wait_listening()
        before = md.snapshot(src)
        with StreamProxy(dst.port) as proxy:
            mig = start_migrate(src.control, proxy.uri, "--bandwidth", "2M", "--max-downtime",
                                CAP, "--postcopy-after", "1", "--verify")
            wait_postcopy_percent(src.control, pct)
            proxy.close()
            res = mig.finish(120)
        rep = report_of(res)
        assert res.rc == 1 and rep and rep["state"] == "postcopy-paused", res.describe()
        assert re.search(r"split.*keeps its pages.*will not run the guest.*--resume",
                         rep.get("error", "")), rep
        assert 0 < rep["downtime_ms"] <= CAP_MS, rep
        dst.wait_resumed()
        check_paused_both(src, dst)
        assert "post-copy interrupted" in dst.stderr(), dst.stderr()
        # Still paused a while later: nothing runs on by itself.
        time.sleep(1)
        assert dst.status().get("state") == "postcopy-paused"
        res, rep = migrate("--resume", src.control, dst.uri, timeout=300)
        pc = check_postcopy_report(rep, res)
        assert pc["recoveries"] >= 1 and rep["verified"] is True, rep
        assert src.wait_exit(60) == 0, src.stderr()
        wait_for(lambda: dst.status().get("state") == "running", 60, "post-copy to end")
        dst.wait_prompt(30)
        md.check_continues(dst, before, more=2)
        poweroff(dst)


@timeout(900)
def test_recovery_cut_at_10_percent():
    recovery_at(10)


@timeout(900)
def test_recovery_cut_at_50_percent():
    recovery_at(50)


@timeout(900)
def test_recovery_cut_at_90_percent():
    recovery_at(90)


@timeout(900)
def test_destination_killed_during_postcopy():
    # The destination ran the guest and dies with pages only the source
    # has: the source says the state is split, keeps its pages, and refuses
    # to run the guest (an operator's resume included).
    with source() as src, IncomingVM() as dst:
        start_dirtier(src)
        dst.wait_listening()
        mig = start_migrate(src.control, dst.uri, "--bandwidth", "2M", "--max-downtime", CAP,
                            "--postcopy-after", "1")
        wait_postcopy_percent(src.control, 30)
        dst.proc.kill()
        res = mig.finish(120)
        rep = report_of(res)
        assert res.rc == 1 and rep and rep["state"] == "postcopy-paused", res.describe()
        assert re.search(r"split.*keeps its pages.*will not run the guest", rep["error"]), rep
        assert 0 < rep["downtime_ms"] <= CAP_MS, rep
        wait_for(lambda: src.status().get("state") == "postcopy-paused", 60, "postcopy-paused")
        st = src.status()
        assert "migration" in st["paused_by"], st
        r = ctl_request(src.control, {"cmd": "resume"})
        assert not r.get("ok") and "split" in r.get("error", ""), f"resume: {r}"
        time.sleep(1)
        assert src.status().get("state") == "postcopy-paused" and src.proc.poll() is None
        # A second migration is refused too: the job still holds the VM.
        r = ctl_request(src.control, {"cmd": "migrate", "uri": dst.uri})
        assert not r.get("ok"), f"a new migration was accepted: {r}"
