"""`ferry --help` and `ferry run --help`: exit 0, usage on stdout."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import assert_no_sanitizer, run_ferry  # noqa: E402


def _help(args, must_mention):
    r = run_ferry(args)
    assert_no_sanitizer(r.stdout + r.stderr, "ferry output")
    if r.rc != 0:
        raise AssertionError(f"{' '.join(args)} should exit 0\n{r.describe()}")
    if "usage" not in r.stdout.lower():
        raise AssertionError(f"no usage text on stdout\n{r.describe()}")
    missing = [m for m in must_mention if m not in r.stdout]
    if missing:
        raise AssertionError(f"usage does not mention {missing}\n{r.describe()}")


def test_help():
    _help(["--help"], ["run"])


def test_run_help():
    _help(["run", "--help"], ["--kernel", "--initrd", "--append", "--mem", "--smp", "--bios",
                              "--console", "--stats"])
