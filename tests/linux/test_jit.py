"""The translating CPU (`ferry run --cpu jit`) on the built-in guest.

Whatever engine the rest of the suite runs with (tests/run.py --cpu), these
tests choose theirs: a user program that rewrites code it has run must see
the new code under both engines, and live migration with --verify of a
guest dirtying memory from translated code must never mismatch (the dirty
log stays exact with the translator's inline stores).

Skipped when the guest has not been built.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import require_guest, timeout  # noqa: E402
from ferryvm import FerryVM  # noqa: E402
from migration import IncomingVM, Memdirty, SourceVM, migrate, poweroff  # noqa: E402

BOOT_TIMEOUT = 120
MEM = ["--mem", "128M"]


@timeout(300)
def test_self_modifying_user_code_both_engines():
    require_guest()
    for engine in ("interp", "jit"):
        with FerryVM([*MEM, "--cpu", engine]) as vm:
            vm.boot(BOOT_TIMEOUT)
            out = vm.run("smc 300", timeout=120)
            assert "smc: ok rounds=300" in out, f"--cpu {engine}: smc printed {out!r}"
            poweroff(vm)


@timeout(600)
def test_live_migration_verified_from_translated_code():
    # Every ferry this test starts (source and destinations) uses the
    # translator: tests run in a process of their own.
    require_guest()
    os.environ["FERRY_CPU"] = "jit"
    for attempt in range(3):
        with SourceVM(MEM) as src, IncomingVM() as dst:
            src.boot(BOOT_TIMEOUT)
            md = Memdirty(src, 32, 0)  # as fast as the guest can dirty
            md.wait_reports(src, 2)
            dst.wait_listening()
            before = md.snapshot(src)
            _, rep = migrate(src.control, dst.uri, "--verify")
            assert rep["verified"] is True, f"attempt {attempt}: report: {rep}"
            assert not rep.get("error"), f"attempt {attempt}: report: {rep}"
            dst.wait_resumed()
            dst.wait_prompt()
            reps = md.check_continues(dst, before, more=2)
            final = md.stop(dst)
            assert final[-1][2] == 0, f"attempt {attempt}: memdirty's last report: {final[-1]}"
            assert reps[-1][0] > before[-1][0], f"attempt {attempt}: memdirty stalled: {reps}"
            poweroff(dst)
            time.sleep(0.1)
