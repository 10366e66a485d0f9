"""SMP guests (issue 9): what a multi-hart guest relies on, checked with
guest programs that know the exact answer.

- smphammer: 4 threads pinned to 4 vCPUs hammer LR/SC counters, AMOs, an
  AMO spinlock and a shared multi-producer multi-consumer ring; every total
  must come out exact, and an SC after another hart stored to the reserved
  word (even the same value) must fail.
- smphammer again while the VM live-migrates under it (--verify): the
  totals are still exact on the destination.
- xfencei: code written and fenced on CPU 0 runs on CPU 1 after CPU 1's
  own fence.i, rewritten 200 times in changing shapes.
- timehammer: 4 threads, one per vCPU, read the clocks in a tight loop:
  no thread's clock goes backwards and no reader dies (the 6.1 vDSO bug
  that CONFIG_JUMP_LABEL avoids, see guest/kernel.config).
- memdirty with 4 writer threads (one per vCPU) while the VM live-migrates
  with --verify 20 times in a row: the state hash matches every time and
  memdirty's own page checks never fail.

`--smp 4` booting with all CPUs online is tests/linux/test_boot.py's
test_smp_4. These tests hold on the round-robin CPU loop as on a thread
per hart: they check results, not speed. Skipped when the guest has not
been built.
"""

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from harness import require_guest, timeout  # noqa: E402
from ferryvm import FerryVM  # noqa: E402
from migration import IncomingVM, Memdirty, SourceVM, migrate  # noqa: E402

BOOT_TIMEOUT = 180
SMP4 = ["--smp", "4", "--mem", "128M"]


def cpu_busy_ticks(vm, n):
    """Per-CPU busy ticks (user + nice + system) from the guest's /proc/stat."""
    out = vm.run("cat /proc/stat")
    ticks = {}
    for line in out.splitlines():
        m = re.match(r"^cpu(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", line)
        if m:
            ticks[int(m.group(1))] = sum(int(x) for x in m.groups()[1:])
    assert sorted(ticks) == list(range(n)), f"/proc/stat lists CPUs {sorted(ticks)}, want 0..{n - 1}"
    return ticks


def assert_all_cpus_worked(before, after, what):
    idle = [c for c in before if after[c] <= before[c]]
    assert not idle, f"CPUs {idle} did no work during {what}: {before} -> {after}"


def check_lines(out, prefix):
    """Every `PREFIX: NAME got=G want=W` line agrees; returns how many."""
    pairs = re.findall(rf"^{prefix}: (\S+) got=(\d+) want=(\d+)", out, re.M)
    bad = [p for p in pairs if p[1] != p[2]]
    assert not bad, f"{prefix} totals differ: {bad}\n{out}"
    return len(pairs)


@timeout(600)
def test_smphammer_smp4():
    require_guest()
    with FerryVM(SMP4) as vm:
        vm.boot(BOOT_TIMEOUT)
        before = cpu_busy_ticks(vm, 4)
        status, out = vm.run_status("smphammer 4 200000", timeout=900)
        after = cpu_busy_ticks(vm, 4)
        assert check_lines(out, "smphammer") == 13, f"smphammer printed:\n{out}"
        assert "smphammer: OK" in out and status == 0, f"smphammer exited {status}:\n{out}"
        assert_all_cpus_worked(before, after, "smphammer")
        assert vm.poweroff() == 0


@timeout(600)
def test_smphammer_more_threads_than_cpus():
    # 6 threads on 2 vCPUs: the guest kernel preempts threads inside LR/SC
    # sequences and critical sections, and migrates none (they are pinned).
    require_guest()
    with FerryVM(["--smp", "2", "--mem", "128M"]) as vm:
        vm.boot(BOOT_TIMEOUT)
        status, out = vm.run_status("smphammer 6 100000", timeout=900)
        assert check_lines(out, "smphammer") == 13, f"smphammer printed:\n{out}"
        assert "smphammer: OK" in out and status == 0, f"smphammer exited {status}:\n{out}"
        assert vm.poweroff() == 0


@timeout(600)
def test_fence_i_across_harts():
    require_guest()
    with FerryVM(SMP4) as vm:
        vm.boot(BOOT_TIMEOUT)
        status, out = vm.run_status("xfencei 200", timeout=900)
        assert "xfencei: OK rounds=200" in out and status == 0, (
            f"xfencei exited {status}:\n{out}")
        assert vm.poweroff() == 0


@timeout(600)
def test_clock_reads_on_every_hart():
    require_guest()
    with FerryVM(SMP4) as vm:
        vm.boot(BOOT_TIMEOUT)
        status, out = vm.run_status("timehammer 4 20", timeout=600)
        assert "timehammer: OK threads=4" in out and status == 0, (
            f"timehammer exited {status}:\n{out}")
        cpus = re.findall(r"^timehammer: thread=\d+ cpu=(\d+) reads=[1-9]", out, re.M)
        assert sorted(cpus) == ["0", "1", "2", "3"], f"want one reader on each CPU:\n{out}"
        assert vm.poweroff() == 0


@timeout(900)
def test_smphammer_across_live_migration():
    # The hammer runs while the VM moves: reservations, AMOs in flight and
    # the ring's state travel with the harts; the totals stay exact.
    require_guest()
    vms = []
    try:
        src = SourceVM(SMP4, name="source")
        vms.append(src)
        src.start()
        src.boot(BOOT_TIMEOUT)
        src.run("smphammer 4 400000 </dev/null >/tmp/hammer.log 2>&1 & echo started")
        time.sleep(2)
        assert "smphammer:" not in src.run("cat /tmp/hammer.log"), (
            "smphammer finished before the migration: make it run longer")
        dst = IncomingVM(SMP4, name="destination")
        vms.append(dst)
        dst.start()
        dst.wait_listening()
        _, rep = migrate(src.control, dst.uri, "--verify")
        assert rep["verified"] is True, rep
        dst.wait_resumed()
        assert src.wait_exit(60) == 0, src.stderr()
        dst.wait_prompt()
        status, out = dst.run_status("wait; cat /tmp/hammer.log", timeout=900)
        assert check_lines(out, "smphammer") == 13, f"smphammer printed:\n{out}"
        assert "smphammer: OK" in out, f"smphammer after the migration:\n{out}"
        assert dst.poweroff() == 0
        for v in vms:
            v.close()
            v.check_stderr()
    finally:
        for v in vms:
            v.close()
            v.cleanup_files()


MIGRATIONS = 20


def stop_memdirty(vm, md):
    """SIGTERM memdirty and collect its exit status (0: no page it checked
    was ever wrong) and its last report."""
    out = vm.run(f"p=$(pidof memdirty); kill $p; wait $p; echo memdirty_status=$?", timeout=120)
    m = re.search(r"memdirty_status=(\d+)", out)
    assert m, f"{vm.name}: no exit status for memdirty: {out!r}"
    reps = md.snapshot(vm)
    assert m.group(1) == "0", f"{vm.name}: memdirty exited {m.group(1)}:\n{md.read(vm)}"
    return reps


def wait_verifying(vm, md, timeout=180):
    """Wait until memdirty has swept its working set once and now verifies
    every page before rewriting it; returns its reports."""
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        reps = md.snapshot(vm)
        if reps and reps[-1][1] > 0:
            return reps
        assert time.monotonic() < deadline, f"memdirty verified nothing in {timeout} s: {reps}"
        time.sleep(1)


@timeout(1200)
def test_live_migrate_smp4_dirtying_20_times():
    # One VM, 4 vCPUs, 4 memdirty threads (one pinned to each vCPU), moved
    # from process to process 20 times with --verify. Each hop: the hash of
    # RAM and device state matches on arrival, memdirty's log (in the
    # guest's tmpfs) carries on from where it was with no page mismatch.
    require_guest()
    vms = []

    def start(cls, name):
        v = cls(SMP4, name=name)
        vms.append(v)
        return v.start()

    try:
        vm = start(SourceVM, "hop0")
        vm.boot(BOOT_TIMEOUT)
        md = Memdirty(vm, mib=8, rate=8, threads=4)
        before_ticks = cpu_busy_ticks(vm, 4)
        before = wait_verifying(vm, md)
        assert_all_cpus_worked(before_ticks, cpu_busy_ticks(vm, 4), "memdirty with 4 threads")
        first = before
        for hop in range(1, MIGRATIONS + 1):
            dst = start(IncomingVM, f"hop{hop}")
            dst.wait_listening()
            # What this test checks is the dirty log's exactness, not the
            # pause: a 50 ms cap keeps a loaded CI host from failing a hop
            # cleanly (auto-converge still throttles if rounds do not shrink).
            _, rep = migrate(vm.control, dst.uri, "--verify", "--max-downtime", "50ms")
            assert rep["verified"] is True and rep["live"] is True, f"hop {hop}: {rep}"
            dst.wait_resumed()
            rc = vm.wait_exit(60)
            assert rc == 0, f"hop {hop}: source exited {rc}\n{vm.stderr()}"
            vm.close()
            vm.check_stderr()
            vm = dst
            vm.wait_prompt()
            before = md.check_continues(vm, before, more=1)
        final = stop_memdirty(vm, md)
        assert final[-1][2] == 0 and final[-1][1] > first[-1][1], f"memdirty's reports: {final}"
        assert vm.poweroff() == 0
        vm.close()
        vm.check_stderr()
    finally:
        for v in vms:
            v.close()
            v.cleanup_files()
