"""Boot the built-in guest (Linux 6.1 + busybox) under ferry and use it.

Every test boots its own VM with ferry's defaults (kernel and initramfs
found next to the binary), its console on a pty like a terminal. Skipped
when the guest has not been built. Leaving a `with FerryVM(...)` block
without an error also checks ferry's stderr and the console for sanitizer
reports and kernel panics, oopses, warnings and stalls.
"""

import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import require_guest, timeout  # noqa: E402
from ferryvm import FerryVM  # noqa: E402

BOOT_TIMEOUT = 120  # seconds, before FERRY_TEST_TIMEOUT_SCALE

# If the default boot fails, tests/run.py skips the others here rather
# than letting each wait for its own boot timeout.
GATE = "test_default_boot"


def vm(*args, **kw):
    require_guest()
    return FerryVM(args, **kw)


def lines(text):
    return [line.strip() for line in text.splitlines()]


def test_default_boot():
    with vm() as v:
        v.boot(BOOT_TIMEOUT)
        out = v.run("uname -m")
        assert "riscv64" in lines(out), f"uname -m printed {out!r}"


def test_shell_commands():
    with vm() as v:
        v.boot(BOOT_TIMEOUT)
        out = v.run("echo $((6*7))")
        assert "42" in lines(out), f"echo $((6*7)) printed {out!r}"
        out = v.run("echo hello | wc -c")
        assert "6" in lines(out), f"echo hello | wc -c printed {out!r}"
        status, _ = v.run_status("false")
        assert status == 1, f"false exited {status}"
        out = v.run("cd /proc && pwd")
        assert "/proc" in lines(out), f"pwd printed {out!r}"
        v.run("cd /")


def test_long_command_line():
    # 250+ characters typed at once: more than the UART's receive FIFO and
    # than one terminal line, so input flow control and the line editor's
    # wrapping are exercised.
    word = "ferry" * 40
    with vm() as v:
        v.boot(BOOT_TIMEOUT)
        out = v.run(f"echo {word} | wc -c; echo {word}")
        assert lines(out) == [str(len(word) + 1), word], f"got {out!r}"


def test_typing_while_devices_wake_the_vcpu():
    # Device completions end the vCPU's slice early (hart.kick), also in the
    # middle of the guest draining the UART: input must then be read only
    # as far as the FIFO has room, or characters are lost to an overrun.
    with tempfile.TemporaryDirectory(prefix="ferry-typing-") as d:
        img = os.path.join(d, "disk.img")
        with open(img, "wb") as f:
            f.truncate(8 << 20)
        with vm("--drive", f"file={img}") as v:
            v.boot(BOOT_TIMEOUT)
            # Small direct reads: thousands of completions a second.
            v.run("{ while :; do dd if=/dev/vda of=/dev/null bs=512 count=2000 iflag=direct "
                  "2>/dev/null; done & } ; echo disk load started")
            for i in range(150):
                word = f"{i:02d}" + "abcdefghij" * 30
                out = v.run(f"echo {word}")
                assert word in lines(out), f"line {i} arrived as {out!r}"
            v.run("kill %1 2>/dev/null; true")


def _check_smp(n):
    with vm("--smp", str(n)) as v:
        v.boot(BOOT_TIMEOUT)
        out = v.run("grep -c ^processor /proc/cpuinfo")
        assert str(n) in lines(out), f"--smp {n}: /proc/cpuinfo lists {out!r} processors"
        out = v.run("cat /sys/devices/system/cpu/online")
        want = "0" if n == 1 else f"0-{n - 1}"
        assert want in lines(out), f"--smp {n}: cpu/online is {out!r}, want {want}"


@timeout(300)
def test_smp_1():
    _check_smp(1)


@timeout(300)
def test_smp_2():
    _check_smp(2)


@timeout(400)
def test_smp_4():
    _check_smp(4)


@timeout(400)
def test_fpthreads_smp2():
    with vm("--smp", "2") as v:
        v.boot(BOOT_TIMEOUT)
        status, out = v.run_status("fpthreads", timeout=200)
        assert "fpthreads: OK" in out, f"fpthreads printed:\n{out}"
        assert status == 0, f"fpthreads exited {status}:\n{out}"


def test_poweroff_exits_0():
    with vm() as v:
        v.boot(BOOT_TIMEOUT)
        v.sendline("poweroff")
        rc = v.wait_exit(60)
        assert rc == 0, f"ferry exited with {rc} after poweroff\n{v.stderr()}"


def test_meminfo_128M():
    with vm("--mem", "128M") as v:
        v.boot(BOOT_TIMEOUT)
        out = v.run("cat /proc/meminfo")
        m = re.search(r"MemTotal:\s+(\d+) kB", out)
        assert m, f"no MemTotal in {out!r}"
        kb = int(m.group(1))
        assert 100000 <= kb <= 131072, f"--mem 128M gives MemTotal {kb} kB"


def test_meminfo_512M():
    with vm("--mem", "512M") as v:
        v.boot(BOOT_TIMEOUT)
        out = v.run("cat /proc/meminfo")
        m = re.search(r"MemTotal:\s+(\d+) kB", out)
        assert m, f"no MemTotal in {out!r}"
        kb = int(m.group(1))
        assert 450000 <= kb <= 524288, f"--mem 512M gives MemTotal {kb} kB"


def test_console_socket():
    with vm(console="socket") as v:
        # ready/prompt may have been printed before we connected: press
        # Enter until a prompt shows.
        v.wait_prompt(BOOT_TIMEOUT)
        out = v.run("echo $((6*7))")
        assert "42" in lines(out), f"echo $((6*7)) printed {out!r}"
        v.sendline("poweroff")
        rc = v.wait_exit(60)
        assert rc == 0, f"ferry exited with {rc} after poweroff"


def test_stats_line():
    with vm("--stats") as v:
        v.boot(BOOT_TIMEOUT)
        v.sendline("poweroff")
        rc = v.wait_exit(60)
        assert rc == 0, f"ferry exited with {rc} after poweroff"
        st = v.stats()
        assert st is not None, f"no 'ferry: stats:' line on stderr:\n{v.stderr()}"
        assert isinstance(st.get("instructions"), int) and st["instructions"] > 1_000_000, st
        assert float(st.get("seconds", 0)) > 0 and float(st.get("mips", 0)) > 0, st


def test_ctrl_a_x_quits():
    with vm() as v:
        v.boot(BOOT_TIMEOUT)
        v.send(b"\x01x")
        rc = v.wait_exit(30)
        assert rc >= 0, f"ferry was killed by signal {-rc} on Ctrl-A x"


def _interrupt_count(out, name):
    """Sum over CPUs of the /proc/interrupts line whose description has name."""
    for line in out.splitlines():
        if name in line:
            fields = line.split()
            return sum(int(f) for f in fields[1:] if f.isdigit())
    return None


def test_sstc_timer_without_sbi_calls():
    # The device tree advertises Sstc, so Linux 6.1 programs its timer by
    # writing stimecmp instead of calling SBI set_timer: timer interrupts
    # keep coming (sleep works, the timer's /proc/interrupts count grows)
    # while --stats counts no set_timer call at all. Two harts: the second,
    # started through SBI HSM, must have Sstc enabled too.
    with vm("--stats", "--smp", "2") as v:
        v.boot(BOOT_TIMEOUT)
        cpuinfo = v.run("grep -m1 ^isa /proc/cpuinfo")
        m = re.search(r"isa\s*:\s*(\S+)", cpuinfo)
        assert m, f"no isa line in /proc/cpuinfo: {cpuinfo!r}"
        # Linux 6.1 prints the letters, then the multi-letter extensions
        # it knows (of ours: sstc and zicbom).
        assert m.group(1).startswith("rv64imafdc") and "_sstc" in m.group(1) \
            and "_zicbom" in m.group(1), f"isa line {m.group(1)!r}"
        dmesg = v.run("dmesg | grep -i sstc")
        assert "sstc" in dmesg.lower(), f"the kernel did not report Sstc: {dmesg!r}"
        before = _interrupt_count(v.run("cat /proc/interrupts"), "riscv-timer")
        assert before is not None and before > 0, "no riscv-timer line in /proc/interrupts"
        status, _ = v.run_status("sleep 0.5")
        assert status == 0, f"sleep 0.5 exited {status}"
        after = _interrupt_count(v.run("cat /proc/interrupts"), "riscv-timer")
        assert after > before, f"timer interrupts did not advance: {before} -> {after}"
        v.sendline("poweroff")
        rc = v.wait_exit(60)
        assert rc == 0, f"ferry exited with {rc} after poweroff"
        st = v.stats()
        assert st is not None, f"no 'ferry: stats:' line on stderr:\n{v.stderr()}"
        assert st.get("sbi_set_timer_calls") == 0, \
            f"the guest called SBI set_timer {st.get('sbi_set_timer_calls')} times: {st}"
