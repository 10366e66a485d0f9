"""Continuous replication (docs/replication.md): failover, switchover, a
vanishing standby, corrupted checkpoints, fencing.

Most tests use the "two hosts on one machine" topology (tests/lib/netns.py):
the primary runs on host-a with `--net tap=tap0 --drive file=DISK --control
SOCK`, the standby on host-b with `--standby tcp:10.77.0.2:5555 --net
tap=tap0 --drive file=DISK`, DISK being one copy of build/guest/data.ext4
both hosts use (shared storage). The workload is the guest's reqlog service
(port 7000, appending each request line to /mnt/log on the shared disk with
fsync before answering "ACK N"), driven by a client in the client namespace
that sends numbered requests one after another on one TCP connection and
records which were acknowledged. Whatever happens to the primary, the log
must hold every acknowledged request, in order, none twice.

The corrupted/truncated checkpoint tests run on 127.0.0.1 with a relay
between primary and standby (replication.CheckpointProxy) and a guest
counter in /tmp instead of the network workload.

Needs root (network namespaces) for the two-host tests; skipped when the
guest has not been built. Random choices (when to crash) are printed with
their seed: FERRY_TEST_SEED=N repeats them.
"""

import contextlib
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
import netns  # noqa: E402
from harness import timeout  # noqa: E402
from migration import Memdirty, ctl, free_port, wait_for  # noqa: E402
from replication import (REPL_PORT, CheckpointProxy, GuestCounter, PrimaryVM,  # noqa: E402
                         RequestClient, StandbyVM, check_request_log, read_disk_file,
                         read_request_log, replicate, replication_status_cli, shared_disk,
                         start_reqlog, switchover, wait_protected)

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]
INTERVAL = "25ms"


def _rng():
    seed = int(os.environ.get("FERRY_TEST_SEED") or random.randrange(1 << 30))
    print(f"random seed {seed} (FERRY_TEST_SEED={seed} repeats this run)", flush=True)
    return random.Random(seed)


def _vm(stack, vm):
    """Start vm, and have it closed (and its files removed) by stack."""
    stack.callback(vm.cleanup_files)
    stack.callback(vm.close)
    vm.start()
    return vm


def _check_clean(*vms):
    for vm in vms:
        vm.check_stderr()


@contextlib.contextmanager
def _diagnose(*vms):
    """On an AssertionError, add the end of every VM's stderr (the standby's
    view of the primary is often the explanation)."""
    try:
        yield
    except AssertionError as e:
        extra = "".join(f"\n--- {vm.name} stderr (end) ---\n{harness.tail(vm.stderr(), 15)}"
                        if hasattr(vm, "stderr") else f"\n{vm.describe()}" for vm in vms)
        raise type(e)(f"{e}{extra}") from None


class TwoHosts:
    """The topology, the shared disk, the primary on host-a (booted, reqlog
    running), the standby on host-b (listening), replication protected."""

    def __init__(self, stack, fence=None, heartbeat=None, reqlog=True):
        harness.require_guest()
        netns.require()
        self.tmp = tempfile.mkdtemp(prefix="frepl-")
        stack.callback(shutil.rmtree, self.tmp, True)
        self.topo = netns.Topology()
        stack.callback(self.topo.down)
        self.topo.up()
        self.disk = shared_disk(self.tmp)
        drive = ["--drive", f"file={self.disk}"]
        self.primary = _vm(stack, PrimaryVM(
            [*MEM, *drive, "--append", self.topo.guest_append()], topo=self.topo))
        self.primary.boot(BOOT_TIMEOUT)
        self.primary.wait_control()
        if reqlog:
            start_reqlog(self.primary)
        self.uri = f"tcp:{self.topo.HOST_B_IP}:{REPL_PORT}"
        self.standby = _vm(stack, StandbyVM(self.uri, drive, topo=self.topo, fence=fence,
                                            heartbeat=heartbeat))
        self.standby.wait_listening()
        stack.enter_context(_diagnose(self.primary, self.standby))
        res = replicate(self.primary.control, self.uri, INTERVAL, topo=self.topo)
        print(res.stdout.strip(), flush=True)
        rep = wait_protected(self.primary)
        assert rep["interval_ms"] == 25, rep

    def client(self, stack):
        c = RequestClient(self.topo)
        stack.callback(c.close)
        c.wait_connected()
        return c


def _check_disk_log(vm, disk, client, who):
    """Unmount the shared disk in vm's guest and power it off, then read the
    log from the disk image itself: it must hold the same as the guest saw."""
    vm.run("kill $(pidof reqlog); while pidof reqlog >/dev/null; do sleep 0.1; done; umount /mnt",
           timeout=60)
    rc = vm.poweroff(timeout=60)
    assert rc == 0, f"{who} exited with {rc} at poweroff\n{vm.stderr()}"
    text = read_disk_file(disk, "/log")
    if text is None:
        print("debugfs not found: the disk image itself was not checked", flush=True)
        return
    check_request_log(text, client.sent, client.acked, f"/log on the shared disk image after {who}")


# --------------------------------------------------------------------------
# 1. Failover
# --------------------------------------------------------------------------

def _failover(fence):
    rng = _rng()
    with contextlib.ExitStack() as stack:
        h = TwoHosts(stack, fence=fence)
        p, s = h.primary, h.standby
        client = h.client(stack)
        n_kill = rng.randint(15, 40)
        delay = rng.uniform(0, 0.3)
        print(f"killing the primary after {n_kill} ACKs + {delay:.3f} s", flush=True)
        client.wait_acked(n_kill)
        time.sleep(delay)
        rep = p.replication()
        assert rep["state"] == "protected", f"not protected before the crash: {rep}"
        rc = p.kill9()
        acked_at_kill = len(client.acked)
        print(f"primary killed (status {rc}) at {acked_at_kill} ACKs, {len(client.sent)} sent; "
              f"its last status: epoch {rep['epoch']} acked {rep['acked_epoch']}", flush=True)
        kind, epoch = s.wait_takeover(timeout=30)
        err = s.stderr()
        print(f"standby: {kind} from checkpoint {epoch}", flush=True)
        assert kind == "failover" and "failing over" in err, err
        assert epoch >= rep["acked_epoch"], (
            f"standby failed over from checkpoint {epoch}, older than the one the primary had "
            f"acknowledged ({rep['acked_epoch']})\n{err}")
        if fence:
            assert f"fencing the primary: {fence}" in err, f"fencing command not run:\n{err}"
            assert err.index("fencing the primary") < err.index("failing over"), err
        else:
            assert "fencing" not in err, err
        # The client's connection goes on: the standby's guest answers.
        client.wait_acked(acked_at_kill + 15, timeout=60,
                          what="no ACKs from the standby after the failover")
        client.stop()
        print(f"client: {len(client.acked)} requests acknowledged, "
              f"{len(client.acked) - acked_at_kill} after the crash", flush=True)
        s.wait_prompt()
        nums = check_request_log(read_request_log(s), client.sent, client.acked,
                                 "the standby's /mnt/log")
        print(f"standby's /mnt/log: {len(nums)} requests, all acknowledged ones, in order, "
              f"none twice", flush=True)
        _check_disk_log(s, h.disk, client, "the failover")
        _check_clean(p, s)


@timeout(300)
def test_failover():
    _failover(None)


@timeout(300)
def test_failover_fenced():
    _failover("true")


# --------------------------------------------------------------------------
# 2. Switchover
# --------------------------------------------------------------------------

@timeout(300)
def test_switchover():
    rng = _rng()
    with contextlib.ExitStack() as stack:
        h = TwoHosts(stack)
        p, s = h.primary, h.standby
        client = h.client(stack)
        client.wait_acked(rng.randint(15, 40))
        res, downtime = switchover(p.control, topo=h.topo)
        acked_at_switch = len(client.acked)
        print(res.stdout.strip(), flush=True)
        assert 0 < downtime < harness.scaled(2000), f"switchover downtime {downtime} ms"
        # The standby reports GO -> resumed: the downtime is measured, and
        # the report says so; only an unreliable estimate (a late wakeup on
        # a loaded host) makes it the handover time, said as a bound.
        assert "ms (measured;" in res.stdout or re.search(
            r"downtime at most [\d.]+ ms \(an upper bound: \S", res.stdout), res.stdout
        kind, epoch = s.wait_takeover(timeout=30)
        assert kind == "switchover", s.stderr()
        assert "failing over" not in s.stderr() and "fencing" not in s.stderr(), s.stderr()
        rc = p.wait_exit(30)
        assert rc == 0, f"old primary exited with {rc}\n{p.stderr()}"
        assert "switched over to its standby" in p.stderr(), p.stderr()
        assert "UNPROTECTED" not in p.stderr(), p.stderr()
        client.wait_acked(acked_at_switch + 15, timeout=60,
                          what="no ACKs from the new primary after the switchover")
        client.stop()
        s.wait_prompt()
        check_request_log(read_request_log(s), client.sent, client.acked,
                          "the new primary's /mnt/log")
        _check_disk_log(s, h.disk, client, "the switchover")
        _check_clean(p, s)


# --------------------------------------------------------------------------
# 3. The standby dies
# --------------------------------------------------------------------------

@timeout(300)
def test_standby_killed():
    rng = _rng()
    with contextlib.ExitStack() as stack:
        h = TwoHosts(stack)
        p, s = h.primary, h.standby
        md = Memdirty(p, 16, 16)
        client = h.client(stack)
        client.wait_acked(10)
        before = md.wait_reports(p, 1)
        wait_protected(p)
        time.sleep(rng.uniform(0, 0.5))
        os.kill(s.proc.pid, 9)
        s.wait_exit(10)
        acked_at_kill = len(client.acked)
        wait_for(lambda: "UNPROTECTED" in p.stderr(), 30, "UNPROTECTED on the primary's stderr")
        assert p.proc.poll() is None, f"primary exited after losing its standby\n{p.stderr()}"
        st = ctl(p.control, "status")
        rep = st.get("replication")
        assert rep and rep["state"] == "unprotected" and rep.get("error"), (
            f"ferry ctl status after the standby died: {st}")
        assert st["state"] == "running", st
        print(f"primary: unprotected: {rep['error']}", flush=True)
        cli_rep = replication_status_cli(p.control)
        assert cli_rep["state"] == "unprotected" and cli_rep["protected"] is False, cli_rep
        out = p.run("echo alive-$((6*7))")
        assert out.strip() == "alive-42", out
        client.wait_acked(acked_at_kill + 15, timeout=60,
                          what="requests not acknowledged after the standby died")
        rep = p.replication()
        assert rep["held_frames"] == 0, f"frames still held while unprotected: {rep}"
        client.stop()
        check_request_log(read_request_log(p), client.sent, client.acked, "the primary's /mnt/log")
        md.check_continues(p, before, more=1)
        _check_disk_log(p, h.disk, client, "the primary lost its standby")
        _check_clean(p)


# --------------------------------------------------------------------------
# 4. A corrupted or truncated checkpoint is never applied
# --------------------------------------------------------------------------

def _bad_checkpoint(mode):
    harness.require_guest()
    with contextlib.ExitStack() as stack:
        p = _vm(stack, PrimaryVM(MEM))
        p.boot(BOOT_TIMEOUT)
        p.wait_control()
        md = Memdirty(p, 16, 16)
        counter = GuestCounter(p)
        port = free_port()
        s = _vm(stack, StandbyVM(f"tcp:127.0.0.1:{port}"))
        s.wait_listening()
        proxy = stack.enter_context(CheckpointProxy(port))
        stack.enter_context(_diagnose(p, s, proxy))
        replicate(p.control, proxy.uri, INTERVAL)
        wait_protected(p, epochs_after=5)
        before = md.wait_reports(p, 2)
        c_before = counter.value(p)
        # The standby's last good checkpoint is captured after this point.
        proxy.arm(mode)
        assert proxy.hit.wait(harness.scaled(30)), f"the proxy never hit\n{proxy.describe()}"
        target = proxy.target_epoch
        kind, epoch = s.wait_takeover(timeout=30)
        err = s.stderr()
        print(f"{proxy.describe()}\nstandby: {kind} from checkpoint {epoch}", flush=True)
        want = "failed its CRC check" if mode == "flip" else "truncated"
        assert want in err, f"standby's stderr does not say '{want}':\n{err}\n{proxy.describe()}"
        assert kind == "failover", err
        assert epoch == target - 1, (
            f"standby failed over from checkpoint {epoch}; the damaged one was {target}, the last "
            f"good one {target - 1}\n{err}\n{proxy.describe()}")
        assert target - 1 in proxy.complete, proxy.describe()
        # The primary notices and runs on, unprotected.
        wait_for(lambda: "UNPROTECTED" in p.stderr(), 30, "UNPROTECTED on the primary's stderr")
        rep = p.replication()
        assert rep["state"] == "unprotected" and rep.get("error"), rep
        assert rep["acked_epoch"] == target - 1, (
            f"primary's acked epoch {rep['acked_epoch']}, the damaged checkpoint was {target}: {rep}")
        c_primary = counter.value(p)
        # The standby's guest runs on from the last good checkpoint.
        s.wait_prompt()
        s_rows = counter.lines(s)
        p_rows = counter.lines(p)
        common = 0
        for a, b in zip(s_rows, p_rows):
            if a != b:
                break
            common += 1
        print(f"counter: primary {c_before} when armed, {c_primary} after the failover, "
              f"{p_rows[-1][0]} now; standby shares the primary's first {common} entries, "
              f"has {s_rows[-1][0]}", flush=True)
        assert common >= c_before, (
            f"the standby's counter log shares only {common} entries with the primary's, but "
            f"the primary had {c_before} before the last good checkpoint")
        assert common <= c_primary, (
            f"the standby's counter log shares {common} entries with the primary's, more than the "
            f"primary had ({c_primary}) after the damaged checkpoint")
        wait_for(lambda: counter.value(s) > s_rows[-1][0] + 5, 30, "the standby's counter to go on")
        md.check_continues(s, before, more=1)
        out = s.run("echo alive-$((6*7))")
        assert out.strip() == "alive-42", out
        final = md.stop(s)
        assert final[-1][2] == 0, final
        assert p.proc.poll() is None, p.stderr()
        _check_clean(p, s)


@timeout(300)
def test_corrupted_checkpoint():
    _bad_checkpoint("flip")


@timeout(300)
def test_truncated_checkpoint():
    _bad_checkpoint("cut")


# --------------------------------------------------------------------------
# 5. Fencing
# --------------------------------------------------------------------------

@timeout(300)
def test_fence_fails():
    with contextlib.ExitStack() as stack:
        h = TwoHosts(stack, fence="false", reqlog=False)
        p, s = h.primary, h.standby
        wait_protected(p, epochs_after=p.replication()["acked_epoch"] + 3)
        p.kill9()
        err = s.wait_refused(timeout=30)
        line = [ln for ln in err.splitlines() if "fencing" in ln and "failed" in ln]
        assert line, f"standby's stderr does not say fencing failed:\n{err}"
        assert "failing over" not in err, err
        print(f"standby: {line[-1]}", flush=True)
        _check_clean(s)


# --------------------------------------------------------------------------
# 6. No failover while the primary lives
# --------------------------------------------------------------------------

@timeout(300)
def test_no_false_failover_under_disk_load():
    # The primary must send a checkpoint or a heartbeat at least every 50 ms
    # (docs/replication.md), also while it commits an epoch's disk writes
    # (fdatasync) for a guest that writes and syncs all the time: a silence
    # longer than the standby's heartbeat timeout (default 500 ms) makes the
    # standby take over while the primary lives (split brain).
    harness.require_guest()
    with contextlib.ExitStack() as stack:
        tmp = tempfile.mkdtemp(prefix="frepl-")
        stack.callback(shutil.rmtree, tmp, True)
        disk = shared_disk(tmp)
        drive = ["--drive", f"file={disk}"]
        p = _vm(stack, PrimaryVM([*MEM, *drive]))
        p.boot(BOOT_TIMEOUT)
        p.wait_control()
        p.run("mkdir -p /mnt && mount /dev/vda /mnt")
        p.run("(while :; do dd if=/dev/zero of=/mnt/big bs=64k count=64 conv=fsync 2>/dev/null; "
              "done) </dev/null >/dev/null 2>&1 & echo writer started")
        port = free_port()
        s = _vm(stack, StandbyVM(f"tcp:127.0.0.1:{port}", drive))
        s.wait_listening()
        proxy = stack.enter_context(CheckpointProxy(port))
        stack.enter_context(_diagnose(p, s, proxy))
        replicate(p.control, proxy.uri, INTERVAL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert s.takeover() is None and s.proc.poll() is None, (
                "the standby took over (or exited) while the primary runs and the link works")
            rep = p.replication()
            assert rep["state"] == "protected", f"primary no longer protected: {rep}"
            time.sleep(0.2)
        print(f"{proxy.describe()}\nprimary: {rep}", flush=True)
        assert len(proxy.complete) >= 20, f"only {len(proxy.complete)} checkpoints in 10 s"
        p.run("kill %1; sync", check=False)
        _check_clean(p, s)
