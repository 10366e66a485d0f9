"""Replication where the standby keeps its own disk (`ferry replicate
--copy-storage`): no shared storage. The primary on host-a runs on its
image; the standby on host-b is given `--drive file=PATH` where nothing
exists yet. The disk is copied in the initial copy, and each epoch's disk
writes are applied to the standby's image with that epoch's checkpoint
(fsynced before the ACK), so a failover sees disk and memory from the same
epoch.

  test_failover_own_disk
      reqlog (tests/lib/replication.py: each request appended to /mnt/log
      with fsync before its ACK) under a client in namespace client; the
      primary is killed with SIGKILL at a random point; the standby takes
      over, its image is renamed from PATH.partial to PATH, the client's
      connection goes on, and every acknowledged request is in the log, in
      order, none twice: in the guest and in the standby's image itself
      after poweroff. The primary's image is never written by the standby.
  test_switchover_own_disk
      the same, moved by a switchover: the old primary exits cleanly and
      the new one's own image holds every acknowledged request.
  test_switchover_own_disk
      the same, moved by a switchover: the old primary exits cleanly and
      the new one's own image holds every acknowledged request.

Needs root (network namespaces); skipped without the guest.
"""

import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
import netns  # noqa: E402
from harness import timeout  # noqa: E402
from replication import (REPL_PORT, PrimaryVM, RequestClient, StandbyVM,  # noqa: E402
                         check_request_log, read_request_log, replicate, shared_disk, start_reqlog,
                         switchover, wait_protected)


def _load_replicate_tests():
    path = Path(__file__).resolve().parent / "test_replicate.py"
    spec = importlib.util.spec_from_file_location("ferry_replicate_tests", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rt = _load_replicate_tests()

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]
INTERVAL = "25ms"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()



class OwnDisks:
    """host-a's primary on its own image (booted, reqlog running), host-b's
    standby given a --drive path where nothing exists, replication with
    --copy-storage protected, a request client connected."""

    def __init__(self, stack):
        harness.require_guest()
        netns.require()
        tmp = tempfile.mkdtemp(prefix="frepl-own-")
        stack.callback(shutil.rmtree, tmp, True)
        os.makedirs(os.path.join(tmp, "b"))
        self.primary_disk = shared_disk(tmp)        # host-a's own image
        self.standby_disk = os.path.join(tmp, "b", "standby.ext4")
        self.topo = topo = netns.Topology()
        stack.callback(topo.down)
        topo.up()
        self.p = p = rt._vm(stack, PrimaryVM([*MEM, "--drive", f"file={self.primary_disk}",
                                              "--append", topo.guest_append()], topo=topo))
        p.boot(BOOT_TIMEOUT)
        p.wait_control()
        start_reqlog(p)
        uri = f"tcp:{topo.HOST_B_IP}:{REPL_PORT}"
        self.s = s = rt._vm(stack, StandbyVM(uri, ["--drive", f"file={self.standby_disk}"],
                                             topo=topo))
        s.wait_listening()
        stack.enter_context(rt._diagnose(p, s))
        res = replicate(p.control, uri, INTERVAL, topo=topo, opts=["--copy-storage"])
        print(res.stdout.strip(), flush=True)
        wait_protected(p)
        # Until it takes over, the standby's image is marked incomplete.
        self.check_incomplete()
        self.client = RequestClient(topo)
        stack.callback(self.client.close)
        self.client.wait_connected()

    def check_incomplete(self):
        d = self.standby_disk
        assert os.path.exists(d + ".partial") and not os.path.exists(d), (
            os.listdir(os.path.dirname(d)))

    def check_in_place(self):
        d = self.standby_disk
        assert os.path.exists(d) and not os.path.exists(d + ".partial"), (
            os.listdir(os.path.dirname(d)))

    def check_log(self, acked_before, what):
        """The client goes on with the new primary; every acknowledged
        request is in its log, in the guest and in its own image."""
        client, s = self.client, self.s
        client.wait_acked(acked_before + 15, timeout=60,
                          what=f"no ACKs from the standby after the {what}")
        client.stop()
        s.wait_prompt()
        nums = check_request_log(read_request_log(s), client.sent, client.acked,
                                 "the standby's /mnt/log")
        print(f"standby's /mnt/log: {len(nums)} requests, every acknowledged one, in order",
              flush=True)
        rt._check_disk_log(s, self.standby_disk, client, f"the {what} onto the standby's own disk")


@timeout(400)
def test_failover_own_disk():
    rng = rt._rng()
    with contextlib.ExitStack() as stack:
        h = OwnDisks(stack)
        p, s, client = h.p, h.s, h.client
        n_kill = rng.randint(15, 40)
        delay = rng.uniform(0, 0.3)
        print(f"killing the primary after {n_kill} ACKs + {delay:.3f} s", flush=True)
        client.wait_acked(n_kill)
        time.sleep(delay)
        rep = p.replication()
        assert rep["state"] == "protected", f"not protected before the crash: {rep}"
        rc = p.kill9()
        primary_hash = sha256_file(h.primary_disk)
        acked_at_kill = len(client.acked)
        print(f"primary killed (status {rc}) at {acked_at_kill} ACKs, {len(client.sent)} sent; "
              f"epoch {rep['epoch']} acked {rep['acked_epoch']}", flush=True)
        kind, epoch = s.wait_takeover(timeout=30)
        assert kind == "failover", s.stderr()
        assert epoch >= rep["acked_epoch"], s.stderr()
        h.check_in_place()
        h.check_log(acked_at_kill, "failover")
        assert sha256_file(h.primary_disk) == primary_hash, "the primary's image changed after it died"
        rt._check_clean(p, s)


@timeout(400)
def test_switchover_own_disk():
    rng = rt._rng()
    with contextlib.ExitStack() as stack:
        h = OwnDisks(stack)
        p, s, client = h.p, h.s, h.client
        client.wait_acked(rng.randint(15, 40))
        res, _ = switchover(p.control, topo=h.topo)
        acked_at_switch = len(client.acked)
        print(res.stdout.strip(), flush=True)
        kind, _ = s.wait_takeover(timeout=30)
        assert kind == "switchover", s.stderr()
        rc = p.wait_exit(30)
        assert rc == 0, f"old primary exited with {rc}\n{p.stderr()}"
        h.check_in_place()
        h.check_log(acked_at_switch, "switchover")
        rt._check_clean(p, s)
