"""Replication with an arbiter (docs/replication.md, "Arbitration"): a
3-member etcd cluster started by the test on addresses inside the
namespaces (tests/lib/etcdcluster.py), primary and standby both given
`--arbiter etcd://.../KEY --lease-ttl 2`.

- the primary hung (SIGSTOP) past the lease's TTL: the standby takes the key
  (a higher revision: the fencing token) and takes over; the old primary,
  continued, releases not one frame on its tap, says it lost the lease and
  stays paused; the client sees one guest and its log is whole;
- the primary cut off from etcd (not from the standby): the same;
- one etcd member killed: nothing changes; a second one stopped: the
  primary stops releasing output within the TTL and pauses, and nobody
  takes over without a quorum; with the quorum back exactly one guest runs.

Needs root (namespaces) and etcd (./setup); skipped otherwise.
"""

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
import netns  # noqa: E402
from etcdcluster import EtcdCluster, TapWatch  # noqa: E402
from harness import timeout  # noqa: E402
from migration import wait_for  # noqa: E402
from replication import (REPL_PORT, ControlledStandby, PrimaryVM, RequestClient,  # noqa: E402
                         check_request_log, read_request_log, replicate, shared_disk,
                         start_reqlog, wait_protected)

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]
INTERVAL = "25ms"
TTL_S = 2
HEARTBEAT_MS = 500
GUEST_MAC = "52:54:00:12:34:56"
KEY = "ferry-vm1"


def _vm(stack, vm):
    stack.callback(vm.cleanup_files)
    stack.callback(vm.close)
    vm.start()
    return vm


class Arbitrated:
    """Topology, etcd cluster, primary (holding KEY) with reqlog, standby,
    replication protected, a request client."""

    def __init__(self, stack):
        harness.require_guest()
        netns.require()
        tmp = tempfile.mkdtemp(prefix="frepa-")
        stack.callback(shutil.rmtree, tmp, True)
        self.topo = netns.Topology()
        stack.callback(self.topo.down)
        self.topo.up()
        self.etcd = stack.enter_context(EtcdCluster(self.topo))
        arb = ["--arbiter", self.etcd.url(KEY), "--lease-ttl", str(TTL_S)]
        disk = shared_disk(tmp)
        drive = ["--drive", f"file={disk}"]
        self.primary = _vm(stack, PrimaryVM([*MEM, *drive, *arb, "--append",
                                             self.topo.guest_append()], topo=self.topo))
        self.primary.boot(BOOT_TIMEOUT)
        self.primary.wait_control()
        a = self.primary.status()["arbiter"]
        assert a["state"] == "holding" and a["fencing_token"] > 0, a
        self.token = a["fencing_token"]
        start_reqlog(self.primary)
        uri = f"tcp:{self.topo.HOST_B_IP}:{REPL_PORT}"
        self.standby = _vm(stack, ControlledStandby(uri, [*drive, *arb], topo=self.topo,
                                                    heartbeat=f"{HEARTBEAT_MS}ms"))
        self.standby.wait_listening()
        self.standby.wait_control()
        replicate(self.primary.control, uri, INTERVAL, topo=self.topo)
        wait_protected(self.primary)
        self.client = RequestClient(self.topo)
        stack.callback(self.client.close)
        self.client.wait_connected()
        self.client.wait_acked(10)
        stack.callback(self._dump)

    def _dump(self):
        print(f"--- primary stderr ---\n{harness.tail(self.primary.stderr(), 12)}\n"
              f"--- standby stderr ---\n{harness.tail(self.standby.stderr(), 12)}", flush=True)

    def tap_watch(self, stack):
        w = TapWatch(self.topo, self.topo.host_a, GUEST_MAC)
        stack.callback(w.close)
        return w

    def check_new_primary(self, old_token):
        """The standby took over holding the key at a higher revision, the
        client goes on, its log is whole."""
        s = self.standby
        kind, epoch = s.wait_takeover(timeout=60)
        err = s.stderr()
        assert kind == "failover", err
        assert "took " + KEY + " at revision" in err, err
        assert err.index("took " + KEY) < err.index("failing over"), err
        a = wait_for(lambda: (lambda x: x.get("arbiter") if x.get("state") == "running" else None)(
            s.status()), 30, "the new primary's status")
        assert a["state"] == "holding" and a["fencing_token"] > old_token, a
        value = self.etcd.get(KEY)
        assert value and value[0].startswith("standby pid"), value
        return a["fencing_token"]

    def check_old_primary_silent(self, watch, base, states=("lost",)):
        """After `base` frames seen on host-a's tap, the old primary
        releases none: it says it lost (or cannot renew) the lease and
        stays paused."""
        p = self.primary

        def paused():
            st = p.status()
            a = st.get("arbiter") or {}
            return st if a.get("state") in states and "arbiter" in st["paused_by"] else None
        st = wait_for(paused, TTL_S * 3 + 10, "the old primary to say it lost the lease")
        time.sleep(2.0)
        st = p.status()
        assert st["state"] == "paused" and "arbiter" in st["paused_by"], st
        frames = watch.count() - base
        assert frames == 0, f"the old primary released {frames} frames after losing the lease"
        assert "the arbiter's lease is not" in p.stderr() or "lost the arbiter's lease" in p.stderr()
        assert "UNPROTECTED" not in p.stderr(), p.stderr()
        return st

    def check_client(self):
        c = self.client
        at = len(c.acked)
        c.wait_acked(at + 10, timeout=60, what="no ACKs from the new primary")
        c.stop()
        self.standby.wait_prompt()
        check_request_log(read_request_log(self.standby), c.sent, c.acked,
                          "the new primary's /mnt/log")


@timeout(300)
def test_arbiter_primary_hung_past_ttl():
    with contextlib.ExitStack() as stack:
        h = Arbitrated(stack)
        p = h.primary
        watch = h.tap_watch(stack)
        os.kill(p.proc.pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        # What it released before it froze (and is still on its way) counts
        # in the baseline, not against it.
        time.sleep(0.3)
        base = watch.count()
        try:
            h.check_new_primary(h.token)
        finally:
            n_stopped = watch.count() - base
            os.kill(p.proc.pid, signal.SIGCONT)
        print(f"standby took over {time.monotonic() - t_stop:.1f} s after the SIGSTOP; frames "
              f"from the old host while stopped: {n_stopped}", flush=True)
        assert n_stopped == 0, f"{n_stopped} frames came out of a stopped process"
        st = h.check_old_primary_silent(watch, base)
        print(f"old primary: {st['arbiter']}", flush=True)
        assert "lost the arbiter's lease" in p.stderr(), p.stderr()
        h.check_client()


@timeout(300)
def test_arbiter_primary_cut_from_etcd():
    with contextlib.ExitStack() as stack:
        h = Arbitrated(stack)
        p = h.primary
        h.etcd.cut(h.topo.host_a)
        # Within the TTL the primary can no longer show its lease valid.
        wait_for(lambda: p.status()["arbiter"]["state"] in ("suspended", "lost"), TTL_S + 10,
                 "the cut-off primary to suspend")
        watch = h.tap_watch(stack)
        time.sleep(0.3)
        base = watch.count()
        h.check_new_primary(h.token)
        st = h.check_old_primary_silent(watch, base, states=("suspended", "lost"))
        print(f"old primary: {st['arbiter']}", flush=True)
        h.check_client()


@timeout(300)
def test_arbiter_quorum():
    with contextlib.ExitStack() as stack:
        h = Arbitrated(stack)
        p, s, c = h.primary, h.standby, h.client
        # One member down: nothing changes.
        h.etcd.kill_member(2)
        a0 = p.status()["arbiter"]
        time.sleep(TTL_S * 2)
        a1 = p.status()["arbiter"]
        assert a1["state"] == "holding" and a1["renewals"] > a0["renewals"], (a0, a1)
        assert p.replication()["state"] == "protected" and s.takeover() is None
        at = len(c.acked)
        c.wait_acked(at + 5, timeout=30, what="no ACKs with one etcd member down")
        # A second one stopped: no quorum. The primary stops releasing
        # output within the TTL and pauses; nobody takes over.
        h.etcd.stop_member(1)
        t_cut = time.monotonic()
        wait_for(lambda: p.status()["arbiter"]["state"] in ("suspended", "lost"), TTL_S + 10,
                 "the primary to suspend without a quorum")
        t_susp = time.monotonic()
        acked_at = len(c.acked)
        time.sleep(TTL_S * 2)
        assert len(c.acked) <= acked_at + 1, (
            f"{len(c.acked) - acked_at} ACKs released without a quorum")
        assert s.takeover() is None, s.stderr()
        st = s.status()
        print(f"suspended {t_susp - t_cut:.1f} s after losing the quorum; standby: {st}",
              flush=True)
        assert "guest resumed" not in s.stderr(), s.stderr()
        # The quorum comes back: exactly one guest runs on.
        h.etcd.cont_member(1)

        def one_runs():
            a = p.status().get("arbiter", {})
            if a.get("state") == "holding" and p.status()["state"] == "running":
                return "primary"
            if s.takeover():
                return "standby"
            return None
        who = wait_for(one_runs, TTL_S * 5 + 20, "one side to run after the quorum returned")
        time.sleep(1.0)
        if who == "primary":
            assert s.takeover() is None, s.stderr()
            # The standby waits for a key the live primary keeps: the
            # operator may give that up.
            st = s.status()
            assert st["state"] == "taking-over" and st["arbiter"]["state"] == "acquiring", st
            from migration import ctl_request
            r = ctl_request(s.control, {"cmd": "quit"})
            assert r == {"ok": True}, r
            rc = s.wait_exit(30)
            assert rc != 0 and s.takeover() is None and "guest resumed" not in s.stderr(), (
                rc, s.stderr())
        else:
            assert p.status()["state"] == "paused", p.status()
        value = h.etcd.get(KEY)
        print(f"after the quorum returned the {who} runs; the key: {value}", flush=True)
        assert value and value[0].startswith(who + " pid"), value
        at = len(c.acked)
        c.wait_acked(at + 5, timeout=60, what=f"no ACKs from the {who} after the quorum returned")
        c.stop()
        vm = p if who == "primary" else s
        if who == "standby":
            vm.wait_prompt()
        check_request_log(read_request_log(vm), c.sent, c.acked, f"the {who}'s /mnt/log")


@timeout(300)
def test_arbiter_switchover():
    with contextlib.ExitStack() as stack:
        h = Arbitrated(stack)
        p, s = h.primary, h.standby
        from replication import switchover
        res, downtime = switchover(p.control, topo=h.topo)
        print(res.stdout.strip(), flush=True)
        # The primary gave the key up (revoked its lease) before GO; the
        # standby took it at once, then ran the guest.
        kind, epoch = s.wait_takeover(timeout=30)
        assert kind == "switchover", s.stderr()
        assert "released " + KEY + " (lease revoked)" in p.stderr(), p.stderr()
        err = s.stderr()
        assert "took " + KEY + " at revision" in err and "is held" not in err, err
        assert p.wait_exit(30) == 0, p.stderr()
        a = wait_for(lambda: (lambda x: x.get("arbiter") if x.get("state") == "running" else None)(
            s.status()), 30, "the new primary's status")
        assert a["state"] == "holding" and a["fencing_token"] > h.token, a
        h.check_client()
