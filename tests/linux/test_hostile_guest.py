"""SIGTERM with the real guest (issue 13): a paused VM, a migration source
in the middle of its copy (the destination must then exit without running
the guest), and a standby protecting a running primary each end within
1 s (scaled for the sanitized build). The fake-kernel versions and the
hostile peers are tests/cli/test_hostile.py."""

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from harness import require_guest, timeout  # noqa: E402
from migration import IncomingVM, Memdirty, SourceVM, ctl, free_port, wait_for  # noqa: E402
from replication import PrimaryVM, StandbyVM, replicate, wait_protected  # noqa: E402

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]
BOUND_S = 1.0


def _term_within(vm, what):
    """SIGTERM vm's ferry; it must exit 143 within the bound. Returns the
    seconds it took."""
    t0 = time.monotonic()
    os.kill(vm.proc.pid, signal.SIGTERM)
    bound = BOUND_S * harness.scale()
    try:
        rc = vm.proc.wait(timeout=bound)
    except Exception:
        raise AssertionError(f"{what} still runs {bound:.1f} s after SIGTERM\n{vm.stderr()}")
    took = time.monotonic() - t0
    vm.returncode = rc
    harness.assert_no_sanitizer(vm.stderr(), f"{what} stderr")
    print(f"{what}: exit {rc} after {took * 1000:.0f} ms", flush=True)
    assert rc == 143, f"{what} exited {rc}\n{vm.stderr()}"
    return took


@timeout(300)
def test_sigterm_paused_guest():
    require_guest()
    with SourceVM(MEM) as vm:
        vm.boot(BOOT_TIMEOUT)
        vm.wait_control()
        assert ctl(vm.control, "pause")["ok"]
        assert ctl(vm.control, "status")["state"] == "paused"
        _term_within(vm, "paused VM")


@timeout(400)
def test_sigterm_source_mid_copy():
    require_guest()
    with SourceVM(MEM) as src, IncomingVM() as dst:
        src.boot(BOOT_TIMEOUT)
        src.wait_control()
        md = Memdirty(src, 32, 16)
        md.wait_reports(src, 2)
        dst.wait_listening()
        r = ctl(src.control, "migrate", f"uri={dst.uri}", "bandwidth=4000000")
        assert r["ok"], r
        wait_for(lambda: ctl(src.control, "migrate-status")["migration"]["state"] == "active",
                 60, "the migration to be active")
        time.sleep(1)
        _term_within(src, "migration source")
        why = dst.wait_failed(30)
        print(f"destination: {why}", flush=True)


@timeout(400)
def test_sigterm_standby_of_running_primary():
    require_guest()
    with contextlib.ExitStack() as stack:
        p = PrimaryVM(MEM)
        stack.callback(p.cleanup_files)
        stack.callback(p.close)
        p.start()
        p.boot(BOOT_TIMEOUT)
        p.wait_control()
        port = free_port()
        s = StandbyVM(f"tcp:127.0.0.1:{port}")
        stack.callback(s.cleanup_files)
        stack.callback(s.close)
        s.start()
        s.wait_listening()
        replicate(p.control, s.uri, "25ms")
        wait_protected(p, epochs_after=3)
        _term_within(s, "standby")
        assert "guest resumed" not in s.stderr(), s.stderr()
        wait_for(lambda: "UNPROTECTED" in p.stderr(), 30, "UNPROTECTED on the primary's stderr")
        assert ctl(p.control, "status")["state"] == "running"
