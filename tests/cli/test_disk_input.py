"""Bad --drive arguments and images: ferry must print exactly one line on
stderr, starting with `ferry: ` and naming the culprit, and exit non-zero
by itself: no signal, no sanitizer report, no hang.

The kernel is a fake RISC-V Image: disks are opened before anything runs.
Scratch files go to $TMPDIR (tests/run.py removes it after each test).
"""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import assert_no_sanitizer, fake_riscv_image, run_ferry  # noqa: E402

_tmp = None


def tmpdir():
    global _tmp
    if _tmp is None:
        _tmp = Path(tempfile.mkdtemp(prefix="ferry-disk-cli-"))
    return _tmp


def write(name, data):
    p = tmpdir() / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(p)


def boot_args():
    return ["--kernel", write("fake-Image", fake_riscv_image()),
            "--initrd", write("initrd.bin", b"\0" * 4096)]


def expect_error(drive_args, mentions):
    r = run_ferry(["run", *boot_args(), *drive_args], timeout=30)
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
    ms = [mentions] if isinstance(mentions, str) else list(mentions)
    if not any(m in lines[0] for m in ms):
        raise AssertionError(f"error line should mention {' or '.join(map(repr, ms))}: {lines[0]!r}")
    print(f"rc {r.rc}: {lines[0]}")
    return lines[0]


def test_image_missing():
    p = str(tmpdir() / "no-such-disk.img")
    expect_error(["--drive", f"file={p}"], p)


def test_image_missing_readonly():
    p = str(tmpdir() / "no-such-disk.img")
    expect_error(["--drive", f"file={p},readonly=on"], p)


def test_image_is_directory():
    d = tmpdir() / "a-directory"
    d.mkdir(exist_ok=True)
    expect_error(["--drive", f"file={d}"], str(d))


def test_image_is_directory_readonly():
    d = tmpdir() / "a-directory"
    d.mkdir(exist_ok=True)
    expect_error(["--drive", f"file={d},readonly=on"], str(d))


def test_image_is_fifo_readonly():
    p = tmpdir() / "a-fifo"
    os.mkfifo(p)
    expect_error(["--drive", f"file={p},readonly=on"], str(p))


def test_image_is_char_device():
    expect_error(["--drive", "file=/dev/null"], "/dev/null")


def test_image_empty():
    p = write("empty.img", b"")
    expect_error(["--drive", f"file={p}"], p)


def test_image_smaller_than_a_sector():
    p = write("tiny.img", b"x" * 100)
    expect_error(["--drive", f"file={p}"], p)


def test_image_not_readable():
    if os.geteuid() == 0:
        # root reads anything; use a path under a regular file instead.
        p = write("plain-file", b"x" * 512) + "/disk.img"
    else:
        p = write("noperm.img", b"\0" * 4096)
        os.chmod(p, 0)
    expect_error(["--drive", f"file={p}"], p)


def test_bogus_option():
    expect_error(["--drive", "bogus=1"], ["bogus", "--drive"])


def test_bogus_second_option():
    p = write("ok.img", b"\0" * 4096)
    expect_error(["--drive", f"file={p},cache=none"], ["cache=none"])


def test_empty_file_path():
    expect_error(["--drive", "file="], ["--drive", "file="])


def test_missing_argument():
    r = run_ferry(["run", *boot_args(), "--drive"], timeout=30)
    assert_no_sanitizer(r.stdout + r.stderr, "ferry output")
    assert r.rc > 0, f"ferry exited {r.rc}\n{r.describe()}"
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ferry: ") and "--drive" in lines[0], r.describe()
