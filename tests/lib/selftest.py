#!/usr/bin/env python3
"""Self-test of the harness (ferryvm.py), independent of ferry itself.

    python3 tests/lib/selftest.py            fake guest only (a few seconds)
    python3 tests/lib/selftest.py --qemu     also boot build/guest under
                                             qemu-system-riscv64 (TCG)

Not part of `make test`: it checks the test driver, not ferry.
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from ferryvm import ConsoleProcess, ExpectEOF, ExpectTimeout, CommandFailed  # noqa: E402

HERE = Path(__file__).resolve().parent
FAKE = [sys.executable, str(HERE / "fakeguest.py"), "run"]


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def t_fake_pty():
    with ConsoleProcess(FAKE + ["--stats"], name="fake") as vm:
        secs = vm.boot(timeout=20)
        check(secs < 10, f"boot took {secs}")
        check(vm.run("uname -s") == os.uname().sysname, "uname")
        out = vm.run("echo $((6*7))")
        check(out == "42", f"arith: {out!r}")
        st, out = vm.run_status("printf 'a\\nb\\n'; false")
        check((st, out) == (1, "a\nb"), f"status/multiline: {(st, out)!r}")
        try:
            vm.run("exit_with_3() { return 3; }; exit_with_3")
            raise AssertionError("CommandFailed not raised")
        except CommandFailed as e:
            check(e.status == 3, f"status {e.status}")
        # a command whose output looks like the marker's echo
        out = vm.run("echo '__END_99_$?__'")
        check(out == "__END_99_$?__", f"marker-like output: {out!r}")
        # large output must not deadlock (reader thread drains the pty)
        out = vm.run("seq 1 20000", timeout=30)
        check(out.split("\n")[-1] == "20000" and len(out.split("\n")) == 20000, "seq")
        # timeout raises with a transcript
        t = time.monotonic()
        try:
            vm.expect("never-printed", timeout=0.5)
            raise AssertionError("no timeout")
        except ExpectTimeout as e:
            check("console (end)" in str(e) and "seq" not in str(e)[:0] and
                  time.monotonic() - t < 5, "timeout message")
        vm.sendline("poweroff")
        rc = vm.wait_exit(10)
        check(rc == 0, f"rc {rc}")
        st = vm.stderr()
        check("ferry: stats: instructions=" in st, f"stats: {st!r}")


def t_fake_socket():
    d = Path(__import__("tempfile").mkdtemp(prefix="fst-"))
    sock = d / "c.sock"
    try:
        vm = ConsoleProcess(FAKE + ["--console", f"socket:{sock}"], console=f"socket:{sock}", name="fake")
        with vm:
            vm.connect(10)
            vm.wait_prompt(20)
            check(vm.run("echo hi") == "hi", "socket run")
            vm.sendline("poweroff")
            check(vm.wait_exit(10) == 0, "socket exit")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def t_eof():
    with ConsoleProcess([sys.executable, "-c", "print('bye'); import sys; sys.exit(3)"], name="short") as vm:
        try:
            vm.expect("prompt", timeout=20)
            raise AssertionError("no EOF")
        except ExpectEOF as e:
            check("exited with status 3" in str(e) or "running" in str(e), str(e))


def t_group_kill():
    # a child that spawns a grandchild; close() must kill both
    code = "import subprocess,time; p=subprocess.Popen(['sleep','100']); print(p.pid, flush=True); time.sleep(100)"
    vm = ConsoleProcess([sys.executable, "-c", code], name="grp")
    vm.start()
    m = vm.expect(r"(\d+)\r?\n", 10)
    gpid = int(m.group(1))
    vm.close()
    vm.cleanup_files()
    time.sleep(0.2)
    try:
        with open(f"/proc/{gpid}/stat") as f:
            state = f.read().split(") ")[1].split()[0]
        check(state == "Z", f"grandchild {gpid} still alive (state {state})")
    except FileNotFoundError:
        pass


def t_sanitizer_detect():
    with ConsoleProcess([sys.executable, "-c",
                         "import sys; sys.stderr.write('==1==ERROR: AddressSanitizer: x\\n')"],
                        name="asan") as vm:
        vm.wait_exit(10)
        try:
            vm.check_stderr()
            raise AssertionError("sanitizer text not detected")
        except AssertionError as e:
            check("sanitizer report" in str(e), str(e))
        vm.close()
        # __exit__ would raise again; neutralise by clearing the file
        open(vm.stderr_path, "w").close()


def t_qemu():
    g = harness.guest_dir(str(harness.BUILD / "ferry"))
    if g is None:
        raise harness.Skip("no build/guest")
    qemu = shutil.which("qemu-system-riscv64")
    if not qemu:
        raise harness.Skip("no qemu-system-riscv64")
    argv = [qemu, "-M", "virt", "-bios", "default", "-nographic", "-smp", "2", "-m", "256M",
            "-kernel", g / "Image", "-initrd", g / "initramfs.cpio",
            "-append", "console=ttyS0 quiet"]
    with ConsoleProcess(argv, name="qemu") as vm:
        secs = vm.boot(timeout=120)
        print(f"    qemu boot to prompt: {secs:.2f} s")
        check(vm.run("uname -m") == "riscv64", "uname -m")
        check(vm.run("echo $((6*7))") == "42", "arith")
        check(vm.run("grep -c ^processor /proc/cpuinfo") == "2", "cpus")
        long = "x" * 150 + "y" * 100
        out = vm.run(f"echo {long} | wc -c; echo {long}")
        check(out == f"251\n{long}", f"long line: {out!r}")
        st, out = vm.run_status("printf abc; false")
        check((st, out) == (1, "abc"), f"no newline: {(st, out)!r}")
        print("    " + vm.run("cat /sys/devices/system/cpu/online"))
        out = vm.run("fpthreads", timeout=120)
        print("    " + out.replace("\n", "\n    "))
        vm.sendline("poweroff")
        rc = vm.wait_exit(60)
        check(rc == 0, f"qemu rc {rc}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", action="store_true")
    a = ap.parse_args()
    tests = [t_fake_pty, t_fake_socket, t_eof, t_group_kill, t_sanitizer_detect]
    if a.qemu:
        tests.append(t_qemu)
    bad = 0
    for t in tests:
        start = time.monotonic()
        try:
            t()
            print(f"PASS {t.__name__} ({time.monotonic() - start:.1f}s)")
        except harness.Skip as e:
            print(f"SKIP {t.__name__}: {e}")
        except Exception as e:  # noqa: BLE001
            bad += 1
            print(f"FAIL {t.__name__}: {type(e).__name__}: {e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
