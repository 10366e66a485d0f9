"""Bad command lines and bad input files: ferry must print exactly one
non-empty line on stderr, starting with `ferry: `, and exit non-zero by
itself: no signal, no sanitizer report, no hang.

Where the error is about a file or a value, the line must name it, so the
user can tell which of several inputs was wrong.

Scratch files go to $TMPDIR, which tests/run.py points at a directory it
removes after each test.
"""

import os
import struct
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import (Skip, assert_no_sanitizer, elf64_header, fake_riscv_image,  # noqa: E402
                     guest_dir, run_ferry)

_tmp = None


def tmpdir():
    global _tmp
    if _tmp is None:
        _tmp = Path(tempfile.mkdtemp(prefix="ferry-cli-"))
    return _tmp


def write(name, data):
    p = tmpdir() / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(p)


def small_initrd():
    return write("initrd.bin", b"\0" * 4096)


def kernel_ok():
    """A kernel ferry should accept: the real guest's, else a fake Image."""
    g = guest_dir()
    if g:
        return str(g / "Image")
    return write("fake-Image", fake_riscv_image())


def expect_error(args, mentions=None, timeout=30):
    """Run ferry ARGS, check the one-line error. mentions: a string or list
    of strings, one of which the error line must contain."""
    r = run_ferry(args, timeout=timeout)
    assert_no_sanitizer(r.stdout + r.stderr, "ferry output")
    if r.rc < 0:
        raise AssertionError(f"ferry crashed\n{r.describe()}")
    if r.rc == 0:
        raise AssertionError(f"ferry exited 0 on bad input\n{r.describe()}")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    if len(lines) != 1:
        raise AssertionError(f"expected exactly one line on stderr, got {len(lines)}\n{r.describe()}")
    if not lines[0].startswith("ferry: "):
        raise AssertionError(f"error line does not start with 'ferry: '\n{r.describe()}")
    if mentions:
        ms = [mentions] if isinstance(mentions, str) else list(mentions)
        if not any(m in lines[0] for m in ms):
            raise AssertionError(f"error line should mention {' or '.join(map(repr, ms))}: {lines[0]!r}")
    print(f"rc {r.rc}: {lines[0]}")
    return lines[0]


def boot_args():
    """--kernel and --initrd that ferry accepts, so that an option test
    fails on that option and not on a missing guest."""
    return ["--kernel", write("fake-Image", fake_riscv_image()), "--initrd", small_initrd()]


# -- kernel ------------------------------------------------------------------

def test_kernel_missing():
    p = str(tmpdir() / "no-such-Image")
    expect_error(["run", "--kernel", p, "--initrd", small_initrd()], p)


def test_kernel_text_file():
    p = write("text-Image", "this is not a kernel\n" * 200)
    expect_error(["run", "--kernel", p, "--initrd", small_initrd()], p)


def test_kernel_x86_elf():
    if not os.path.exists("/bin/true"):
        raise Skip("no /bin/true")
    expect_error(["run", "--kernel", "/bin/true", "--initrd", small_initrd()], "/bin/true")


def test_kernel_empty():
    p = write("empty-Image", b"")
    expect_error(["run", "--kernel", p, "--initrd", small_initrd()], p)


def test_kernel_truncated_header():
    p = write("short-Image", fake_riscv_image()[:40])
    expect_error(["run", "--kernel", p, "--initrd", small_initrd()], p)


def test_kernel_is_directory():
    d = str(tmpdir())
    expect_error(["run", "--kernel", d, "--initrd", small_initrd()], d)


# -- initrd -------------------------------------------------------------------

def test_initrd_missing():
    p = str(tmpdir() / "no-such-initrd")
    expect_error(["run", "--kernel", kernel_ok(), "--initrd", p], p)


# -- memory size ----------------------------------------------------------------

def test_mem_too_small_for_guest():
    g = guest_dir()
    if g is None:
        raise Skip("guest not built")
    expect_error(["run", "--kernel", g / "Image", "--initrd", g / "initramfs.cpio", "--mem", "4M"])


def test_mem_too_small_for_initrd():
    # A kernel that fits, a 24 MiB initrd that cannot fit in 16 MiB of RAM
    # (16 MiB: ferry's smallest accepted size, so the size check passes).
    big = write("big-initrd", os.urandom(1 << 16) * 384)
    expect_error(["run", "--kernel", write("fake-Image", fake_riscv_image()), "--initrd", big,
                  "--mem", "16M"])


def test_mem_too_small_4M():
    expect_error(["run", *boot_args(), "--mem", "4M"])


def test_mem_garbage():
    expect_error(["run", *boot_args(), "--mem", "lots"], ["lots", "--mem"])


def test_mem_zero():
    expect_error(["run", *boot_args(), "--mem", "0"], ["--mem", "0"])


def test_mem_bad_suffix():
    expect_error(["run", *boot_args(), "--mem", "12Q"], ["12Q", "--mem"])


def test_mem_huge():
    # 1 EiB: must be refused (or fail to allocate) cleanly.
    expect_error(["run", *boot_args(), "--mem", "1048576T"], ["1048576T", "--mem", "memory", "RAM"])


# -- smp ----------------------------------------------------------------------

def test_smp_zero():
    expect_error(["run", *boot_args(), "--smp", "0"], ["--smp", "0"])


def test_smp_nine():
    expect_error(["run", *boot_args(), "--smp", "9"], ["--smp", "9"])


def test_smp_not_a_number():
    expect_error(["run", *boot_args(), "--smp", "x"], ["--smp", "x"])


def test_smp_negative():
    expect_error(["run", *boot_args(), "--smp", "-1"], ["--smp", "-1"])


# -- command line -------------------------------------------------------------

def test_unknown_flag():
    expect_error(["run", "--frobnicate"], "--frobnicate")


def test_unknown_subcommand():
    expect_error(["frobnicate"], "frobnicate")


def test_missing_flag_argument():
    expect_error(["run", "--kernel"], "--kernel")


def test_missing_flag_argument_mem():
    expect_error(["run", "--mem"], "--mem")


def test_bad_console_spec():
    expect_error(["run", *boot_args(), "--console", "bogus"], ["bogus", "--console"])


# -- bios (bare-metal ELF) -----------------------------------------------------

def test_bios_missing():
    p = str(tmpdir() / "no-such.elf")
    expect_error(["run", "--bios", p], p)


def test_bios_not_elf():
    p = write("not-an-elf", "hello, I am text\n" * 100)
    expect_error(["run", "--bios", p], p)


def test_bios_wrong_arch():
    if not os.path.exists("/bin/true"):
        raise Skip("no /bin/true")
    expect_error(["run", "--bios", "/bin/true"], "/bin/true")


def test_bios_elf32():
    p = write("elf32", elf64_header(ei_class=1) + b"\0" * 256)
    expect_error(["run", "--bios", p], p)


def test_bios_truncated_program_headers():
    # A RISC-V ELF64 header whose program header table lies past the end.
    p = write("trunc.elf", elf64_header(phoff=4096, phnum=4))
    expect_error(["run", "--bios", p], p)


def _elf_with_segment(paddr, offset, filesz, memsz):
    phdr = struct.pack("<IIQQQQQQ", 1, 7, offset, paddr, paddr, filesz, memsz, 4)
    data = elf64_header(phoff=64, phnum=1, entry=paddr) + phdr
    return data + b"\x6f\x00\x00\x00" * 64  # j . padding


def test_bios_segment_past_end_of_file():
    p = write("seg-eof.elf", _elf_with_segment(0x80000000, 120, 1 << 20, 1 << 20))
    expect_error(["run", "--bios", p], p)


def test_bios_segment_outside_ram():
    p = write("seg-ram.elf", _elf_with_segment(0x1000, 120, 64, 64))
    expect_error(["run", "--bios", p], p)


def test_bios_segment_wraps_address_space():
    p = write("seg-wrap.elf", _elf_with_segment(0xFFFFFFFFFFFFF000, 120, 64, 0x2000))
    expect_error(["run", "--bios", p], p)

