"""A standby's control socket (docs/replication.md, "Asking the standby"):
`ferry run --standby URI --control SOCK` answers status from the start,
before and during replication; `takeover` is a manual failover (fenced like
an automatic one); `quit` ends the standby without running the guest.

Primary and standby run on 127.0.0.1 (no namespaces needed); the guest
workload is a counter in guest RAM (GuestCounter).
"""

import contextlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from harness import timeout  # noqa: E402
from migration import ctl, ctl_request, free_port, wait_for  # noqa: E402
from replication import (ControlledStandby, GuestCounter, PrimaryVM, replicate,  # noqa: E402
                         wait_protected)

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]
INTERVAL = "25ms"
HEARTBEAT_MS = 500


def _vm(stack, vm):
    stack.callback(vm.cleanup_files)
    stack.callback(vm.close)
    vm.start()
    return vm


def _pair(stack, fence=None):
    """A booted primary with a guest counter, and a listening standby with
    a control socket (not yet replicating)."""
    harness.require_guest()
    p = _vm(stack, PrimaryVM(MEM))
    p.boot(BOOT_TIMEOUT)
    p.wait_control()
    counter = GuestCounter(p)
    port = free_port()
    s = _vm(stack, ControlledStandby(f"tcp:127.0.0.1:{port}", fence=fence,
                                     heartbeat=f"{HEARTBEAT_MS}ms"))
    s.wait_listening()
    s.wait_control()
    return p, s, counter


def _check_standby_status(st, **want):
    assert st.get("ok") is True and st.get("role") == "standby", st
    for k, v in want.items():
        assert st.get(k) == v, f"standby status {k}={st.get(k)!r}, expected {v!r}: {st}"


@timeout(300)
def test_standby_status_and_quit():
    with contextlib.ExitStack() as stack:
        p, s, counter = _pair(stack)
        # Before replication: it listens, holds nothing, knows no primary.
        st = s.status()
        _check_standby_status(st, state="waiting", epoch=0, primary=None, epoch_age_ms=None,
                              checkpoint_bytes=0, heartbeat_timeout_ms=HEARTBEAT_MS)
        # Anything but status, takeover and quit is refused with a reason.
        r = ctl_request(s.control, {"cmd": "pause"})
        assert r["ok"] is False and "standby" in r["error"], r
        r = ctl_request(s.control, {"cmd": "takeover"})
        assert r["ok"] is False and "nothing to take over" in r["error"], r
        replicate(p.control, s.uri, INTERVAL)
        rep = wait_protected(p, epochs_after=5)
        # During replication: the epoch it holds (at least the one the
        # primary had acknowledged before we asked), young; the primary's
        # address; a recent heartbeat.
        st = s.status()
        print(f"standby status during replication: {st}", flush=True)
        _check_standby_status(st, state="protecting")
        assert st["epoch"] >= rep["acked_epoch"], (st, rep)
        assert st["checkpoint_bytes"] > 0 and st["received_bytes"] > st["checkpoint_bytes"], st
        assert st["primary"].startswith("127.0.0.1:"), st
        assert 0 <= st["heartbeat_age_ms"] < HEARTBEAT_MS, st
        assert 0 <= st["epoch_age_ms"] < harness.scaled(5000), st
        later = wait_for(lambda: (lambda x: x if x["epoch"] > st["epoch"] else None)(s.status()),
                         30, "the standby's epoch to advance")
        assert later["role"] == "standby", later
        # ferry ctl works on it too.
        out = ctl(s.control, "status")
        assert out["role"] == "standby" and out["epoch"] >= later["epoch"], out
        # quit: the standby ends without running the guest; the primary
        # notices and runs on, unprotected.
        r = ctl_request(s.control, {"cmd": "quit"})
        assert r == {"ok": True}, r
        rc = s.wait_exit(30)
        err = s.stderr()
        assert rc == 0, f"standby exited with {rc} after quit\n{err}"
        assert "asked the standby to quit" in err and s.takeover() is None, err
        assert "guest resumed" not in err, err
        wait_for(lambda: "UNPROTECTED" in p.stderr(), 30, "UNPROTECTED on the primary's stderr")
        c = counter.value(p)
        wait_for(lambda: counter.value(p) > c + 3, 30, "the primary's counter to go on")
        p.check_stderr()


@timeout(300)
def test_standby_quit_before_primary():
    harness.require_guest()
    with contextlib.ExitStack() as stack:
        port = free_port()
        s = _vm(stack, ControlledStandby(f"tcp:127.0.0.1:{port}"))
        s.wait_listening()
        s.wait_control()
        _check_standby_status(s.status(), state="waiting", epoch=0)
        r = ctl_request(s.control, {"cmd": "quit"})
        assert r == {"ok": True}, r
        rc = s.wait_exit(30)
        assert rc != -9 and s.takeover() is None, (rc, s.stderr())
        assert not os.path.exists(s.control), "the control socket outlived the standby"


@timeout(300)
def test_standby_takeover_via_ctl():
    with contextlib.ExitStack() as stack:
        harness.require_guest()
        p = _vm(stack, PrimaryVM(MEM))
        p.boot(BOOT_TIMEOUT)
        p.wait_control()
        counter = GuestCounter(p)
        port = free_port()
        # Fenced like an automatic failover: the fencing command kills the
        # old primary, so only one guest runs afterwards.
        fence = f"kill -9 {p.proc.pid}"
        s = _vm(stack, ControlledStandby(f"tcp:127.0.0.1:{port}", fence=fence))
        s.wait_listening()
        s.wait_control()
        replicate(p.control, s.uri, INTERVAL)
        wait_protected(p, epochs_after=5)
        c_before = counter.value(p)
        st = s.status()
        _check_standby_status(st, state="protecting")
        r = ctl_request(s.control, {"cmd": "takeover"})
        assert r == {"ok": True}, r
        kind, epoch = s.wait_takeover(timeout=30)
        err = s.stderr()
        print(f"standby status before: epoch {st['epoch']}; took over from {epoch}", flush=True)
        assert kind == "failover" and epoch >= st["epoch"], err
        assert "the operator asked for a takeover" in err, err
        assert f"fencing the primary: {fence}" in err, err
        assert err.index("fencing the primary") < err.index("failing over"), err
        rc = p.wait_exit(30)
        assert rc == -9 or rc == 137, f"the fencing command did not kill the primary ({rc})"
        # The same control socket now serves the running VM.
        def running():
            x = s.status()
            return x if x.get("state") == "running" else None
        now = wait_for(running, 30, "the new primary's status to say running")
        assert "role" not in now, now
        s.wait_prompt()
        assert counter.value(s) >= c_before, "the new primary's counter went back before the takeover"
        out = s.run("echo alive-$((6*7))")
        assert out.strip() == "alive-42", out
        time.sleep(0.2)
        s.check_stderr()
