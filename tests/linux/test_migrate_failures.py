"""Migrations that fail: the guest must go on running on the source with
nothing lost, and the destination must give up with a reason.

The guest runs memdirty (a self-checking memory writer, see
tests/lib/migration.py's Memdirty) while a migration is broken at some
point: the destination killed during pre-copy or during a non-live copy,
the connection cut before the final state or between the destination's
READY and the source's GO, one flipped bit in a page or in the final device
state, a cancel, nobody listening, an operator's resume during the final
copy (refused; that migration then completes). The breakage is staged by StreamProxy, a
record-aware TCP relay between `ferry migrate` and the destination. After
each failure memdirty must still pass on the source (errors=0, counter
advancing) and, where the destination saw the failure, it must exit with a
non-zero status and a `ferry: ...` reason on stderr.

Skipped when the guest has not been built.
"""

import json
import re
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from harness import require_guest, timeout  # noqa: E402
from migration import (REC_DEVICE, REC_PAGES, Background, IncomingVM, Memdirty,  # noqa: E402
                       SourceVM, StreamProxy, assert_source_alive, ctl, free_port, migrate,
                       poweroff, report_of, start_migrate, wait_migration)

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]
# Slow enough that the first pre-copy round of a 128 MiB guest running
# memdirty 32 (~45 MB of non-zero pages) takes about 10 s.
SLOW = "4M"


def source():
    require_guest()
    return SourceVM(MEM)


def start(src):
    """Boot, start memdirty, wait for its first reports."""
    src.boot(BOOT_TIMEOUT)
    md = Memdirty(src, 32, 16)
    md.wait_reports(src, 2)
    return md


def check_failed_report(res, want_state="failed", want_error=None):
    """ferry migrate exited 1 with a report in that state; returns it."""
    rep = report_of(res)
    assert res.rc == 1, f"ferry migrate should exit 1 on a failed migration\n{res.describe()}"
    assert rep and rep.get("state") == want_state, f"want state {want_state}\n{res.describe()}"
    err = rep.get("error") or ""
    assert err, f"failed migration without an error message\n{res.describe()}"
    if want_error:
        assert re.search(want_error, err), f"error {err!r} does not match {want_error!r}"
    return rep


def check_source_survived(src, md, before):
    """The source still runs the guest; memdirty continues without errors."""
    assert_source_alive(src)
    src.wait_prompt(30)
    return md.check_continues(src, before, more=2)


def migrate_again(src, md, before):
    """After a failure, a new migration to a fresh destination succeeds and
    the guest continues there."""
    with IncomingVM(name="retry") as dst:
        dst.wait_listening()
        before = md.snapshot(src)
        migrate(src.control, dst.uri, "--verify")
        dst.wait_resumed()
        assert src.wait_exit(60) == 0, src.stderr()
        dst.wait_prompt()
        md.check_continues(dst, before, more=2)
        poweroff(dst)


@timeout(400)
def test_destination_killed_during_precopy():
    # --bandwidth stretches the first round to ~10 s; the relay kills the
    # destination once 2 MiB went by.
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        kill = (2 << 20, lambda: dst.proc.send_signal(signal.SIGKILL))
        with StreamProxy(dst.port, on_bytes=kill) as proxy:
            with start_migrate(src.control, proxy.uri, "--bandwidth", SLOW) as mig:
                res = mig.finish(120)
            assert dst.wait_exit(10) == -signal.SIGKILL, proxy.describe()
        rep = check_failed_report(res, want_error="keeps running here")
        assert rep["rounds"] <= 1 and not rep["converged"], f"killed too late: {rep}"
        check_source_survived(src, md, before)
        poweroff(src)


@timeout(400)
def test_destination_killed_during_non_live_copy():
    # Non-live: the guest is paused on the source while the copy runs; the
    # relay slows the copy down and kills the destination half-way. The
    # source must resume the guest.
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        kill = (4 << 20, lambda: dst.proc.send_signal(signal.SIGKILL))
        with StreamProxy(dst.port, rate=8 << 20, on_bytes=kill) as proxy:
            with start_migrate(src.control, proxy.uri, "--non-live") as mig:
                res = mig.finish(120)
            assert dst.wait_exit(10) == -signal.SIGKILL, proxy.describe()
            check_failed_report(res, want_error="keeps running here")
        check_source_survived(src, md, before)
        poweroff(src)


@timeout(500)
def test_connection_cut_during_precopy():
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        with StreamProxy(dst.port, cut_after=3 << 20) as proxy:
            res, _ = migrate(src.control, proxy.uri, expect_ok=False)
            check_failed_report(res, want_error="keeps running here")
            why = dst.wait_failed(60)
            assert re.search(r"truncated|connection", why), f"{why}\n{proxy.describe()}"
        before = check_source_survived(src, md, before)
        migrate_again(src, md, before)


@timeout(400)
def test_connection_cut_before_ready_reaches_source():
    # The destination holds the complete, verified state and says READY,
    # but the source never hears it: the source keeps the guest, the
    # destination must not run it.
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        with StreamProxy(dst.port, drop="ready") as proxy:
            res, _ = migrate(src.control, proxy.uri, "--verify", expect_ok=False)
            check_failed_report(res, want_error="keeps running here")
            why = dst.wait_failed(60)
            assert "GO" in why, f"destination's reason: {why}\n{proxy.describe()}"
            assert any("READY" in e for e in proxy.events), proxy.describe()
        check_source_survived(src, md, before)
        poweroff(src)


@timeout(400)
def test_connection_cut_between_ready_and_go():
    # The source heard READY (commit point) but GO never reaches the
    # destination. Nobody may run the guest on its own: the destination
    # gives up, the source keeps it paused and says the handover is
    # uncertain. The operator then resumes it on the source.
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        with StreamProxy(dst.port, drop="go") as proxy:
            res, _ = migrate(src.control, proxy.uri, expect_ok=False)
            check_failed_report(res, want_error="handover uncertain")
            why = dst.wait_failed(60)
            assert "GO" in why, f"destination's reason: {why}\n{proxy.describe()}"
            assert any("GO" in e for e in proxy.events), proxy.describe()
        assert src.proc.poll() is None, "source exited"
        st = src.status()
        assert st["state"] == "paused", f"source guest should stay paused: {st}"
        ctl(src.control, "resume")
        check_source_survived(src, md, before)
        poweroff(src)


def _corrupt(rtype):
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        with StreamProxy(dst.port, corrupt=rtype) as proxy:
            res, _ = migrate(src.control, proxy.uri, "--verify", expect_ok=False)
            assert proxy.corrupted, proxy.describe()
            check_failed_report(res, want_error="keeps running here")
            why = dst.wait_failed(60)
            assert "CRC" in why, f"destination's reason: {why}\n{proxy.describe()}"
        check_source_survived(src, md, before)
        poweroff(src)


@timeout(400)
def test_flipped_bit_in_a_page():
    _corrupt(REC_PAGES)


@timeout(400)
def test_flipped_bit_in_final_device_state():
    # The final state travels while the guest is paused on the source.
    _corrupt(REC_DEVICE)


def _ctl_within(control, request, seconds=10):
    """`ferry ctl CONTROL REQUEST...` that must answer within `seconds`."""
    with Background([harness.ferry(), "ctl", control, *request]) as c:
        try:
            res = c.finish(seconds / harness.scale())
        except AssertionError as e:
            raise AssertionError(f"ferry ctl {' '.join(request)} got no answer within {seconds} s "
                                 f"while ferry migrate was running (the control socket serves one "
                                 f"client at a time?)\n{e}") from None
    assert res.rc == 0, res.describe()
    return json.loads(res.stdout)


@timeout(400)
def test_control_socket_answers_during_ferry_migrate():
    # ferry migrate keeps a control connection open for its progress
    # display; other clients (status, migrate-cancel) must still be served.
    with source() as src, IncomingVM() as dst:
        start(src)
        dst.wait_listening()
        going = threading.Event()
        with StreamProxy(dst.port, on_bytes=(1 << 20, going.set)) as proxy:
            with start_migrate(src.control, proxy.uri, "--bandwidth", SLOW) as mig:
                assert going.wait(harness.scaled(60)), proxy.describe()
                st = _ctl_within(src.control, ["status"])
                assert st.get("migration", {}).get("state") == "active", st
                mig.kill()


@timeout(500)
def test_cancel_during_ferry_migrate():
    # The operator's way: ferry migrate runs (slowly), ferry ctl cancels.
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        going = threading.Event()
        with StreamProxy(dst.port, on_bytes=(1 << 20, going.set)) as proxy:
            with start_migrate(src.control, proxy.uri, "--bandwidth", SLOW) as mig:
                assert going.wait(harness.scaled(60)), proxy.describe()
                r = _ctl_within(src.control, ["migrate-cancel"])
                assert r.get("ok") is True, r
                res = mig.finish(60)
        check_failed_report(res, want_state="cancelled")
        why = dst.wait_failed(60)
        assert re.search(r"cancel|gave up|truncated|connection", why), why
        before = check_source_survived(src, md, before)
        migrate_again(src, md, before)


@timeout(500)
def test_cancel_migration_started_by_ctl():
    # Both steps through `ferry ctl` (no client holds the socket between).
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        r = ctl(src.control, "migrate", f"uri={dst.uri}", "bandwidth=4000000")
        assert r.get("ok") is True, r
        wait_migration(src.control, ("active",))
        time.sleep(1)
        r = ctl(src.control, "migrate-cancel")
        assert r.get("ok") is True, r
        mig = wait_migration(src.control, ("cancelled", "failed", "completed"))
        assert mig["state"] == "cancelled", mig
        assert "keeps running here" in mig.get("error", ""), mig
        why = dst.wait_failed(60)
        assert re.search(r"cancel|gave up|truncated|connection", why), why
        before = check_source_survived(src, md, before)
        migrate_again(src, md, before)


def test_nothing_listening():
    with source() as src:
        md = start(src)
        before = md.snapshot(src)
        port = free_port()
        t0 = time.monotonic()
        res, _ = migrate(src.control, f"tcp:127.0.0.1:{port}", expect_ok=False)
        took = time.monotonic() - t0
        rep = check_failed_report(res, want_error="keeps running here")
        assert re.search(r"(?i)connection refused", rep["error"]), rep["error"]
        assert f"{port}" in rep["error"], rep["error"]
        assert took < harness.scaled(15), f"took {took:.1f} s to notice nobody listens"
        check_source_survived(src, md, before)
        poweroff(src)


def test_migrate_while_migrating_is_refused():
    # A second migrate request while one runs is refused; the first one
    # is not disturbed.
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        r = ctl(src.control, "migrate", f"uri={dst.uri}", "bandwidth=20000000")
        assert r.get("ok") is True, r
        wait_migration(src.control, ("active",))
        res = harness.run_ferry(["migrate", src.control, f"tcp:127.0.0.1:{free_port()}"],
                                timeout=30)
        first = res.stderr.strip().splitlines()[:1]
        assert res.rc == 1 and first and re.match(r"ferry: .*already", first[0]), res.describe()
        dst.wait_resumed(120)
        assert src.wait_exit(60) == 0, src.stderr()
        dst.wait_prompt()
        md.check_continues(dst, before, more=2)
        poweroff(dst)


@timeout(400)
def test_resume_refused_during_final_copy():
    # A non-live migration through a slow relay keeps the guest paused in
    # the final copy for seconds. An operator's resume meanwhile must be
    # refused (the guest would run here while the destination loads it),
    # and the migration must still complete, verified.
    with source() as src, IncomingVM() as dst:
        md = start(src)
        dst.wait_listening()
        before = md.snapshot(src)
        with StreamProxy(dst.port, rate=8 << 20) as proxy:
            with start_migrate(src.control, proxy.uri, "--non-live", "--verify") as mig:
                wait_migration(src.control, ("completing",), 60)
                r = ctl(src.control, "resume", check=False)
                assert r and r.get("ok") is False and "refused" in r.get("error", ""), \
                    f"resume during the final copy: {r}\n{proxy.describe()}"
                res = mig.finish(180)
        rep = report_of(res)
        assert res.rc == 0 and rep and rep.get("state") == "completed" and rep.get("verified"), \
            res.describe()
        dst.wait_resumed()
        assert src.wait_exit(60) == 0, src.stderr()
        dst.wait_prompt()
        md.check_continues(dst, before, more=2)
        poweroff(dst)
