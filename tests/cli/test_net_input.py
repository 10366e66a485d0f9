"""Bad --net specs and taps that cannot be opened: ferry must print exactly
one line on stderr, starting with `ferry: ` and naming the problem, and
exit non-zero by itself (no signal, no sanitizer report, no hang).

The spec errors need nothing special. The cases that really try to open a
tap (an interface that is not a tap, a tap already in use, no permission)
run inside a throwaway network namespace, so nothing is created on the
host; they are skipped without root / `ip netns` / /dev/net/tun.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import (Skip, assert_no_sanitizer, fake_riscv_image, ferry,  # noqa: E402
                     run_cmd)
import netns  # noqa: E402

_tmp = None


def boot_args():
    """--kernel/--initrd ferry accepts (a fake Image), world-readable so the
    unprivileged case fails on the tap and not on the files."""
    global _tmp
    if _tmp is None:
        _tmp = Path(tempfile.mkdtemp(prefix="ferry-net-"))
        os.chmod(_tmp, 0o755)
        (_tmp / "Image").write_bytes(fake_riscv_image())
        (_tmp / "initrd").write_bytes(b"\0" * 4096)
        for f in ("Image", "initrd"):
            os.chmod(_tmp / f, 0o644)
    return ["--kernel", str(_tmp / "Image"), "--initrd", str(_tmp / "initrd")]


def expect_error(argv, mentions, timeout=30):
    """Run argv (a full command line ending in ferry's), check the one-line
    error; mentions: strings one of which the line must contain."""
    r = run_cmd(argv, timeout=timeout)
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


def net_error(spec, mentions, *more):
    return expect_error([ferry(), "run", *boot_args(), "--net", spec, *more], mentions)


# -- spec errors (no tap is opened) -------------------------------------------

def test_empty_spec():
    net_error("", "--net")


def test_empty_tap_name():
    net_error("tap=", "interface name")


def test_tap_name_too_long():
    name = "t" * 16
    net_error(f"tap={name}", name)


def test_tap_name_very_long():
    net_error("tap=" + "x" * 5000, "longer than 15")


def test_tap_name_with_slash():
    net_error("tap=a/b", "a/b")


def test_bogus_option():
    net_error("bogus", "bogus")


def test_unknown_key():
    net_error("tap=tap0,speed=fast", "speed=fast")


def test_no_tap_key():
    net_error("mac=52:54:00:12:34:56", "tap")


def test_tap_twice():
    net_error("tap=a,tap=b", "tap=")


def test_bad_mac():
    for mac in ("52:54:00:12:34", "52:54:00:12:34:56:78", "52:54:00:12:34:zz", "5254.0012.3456",
                "52:54:00:12:34:5", "52:54:00:12:34:+5", ""):
        net_error(f"tap=tap0,mac={mac}", "MAC")


def test_multicast_mac():
    net_error("tap=tap0,mac=01:00:5e:00:00:01", "multicast")


def test_zero_mac():
    net_error("tap=tap0,mac=00:00:00:00:00:00", "zero")


# -- opening the tap fails (inside a throwaway namespace) ----------------------

@contextlib.contextmanager
def scratch_netns():
    netns.require()
    name = f"f{os.getpid()}-probe"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        raise Skip(f"ip netns add: {r.stderr.strip()}")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_not_a_tap():
    # `lo` exists in every namespace and is no tap.
    with scratch_netns() as ns:
        expect_error(["ip", "netns", "exec", ns, ferry(), "run", *boot_args(), "--net", "tap=lo"],
                     "lo")


def test_tap_in_use():
    # The second card cannot attach to the tap the first one holds; the
    # first one (already running its I/O thread) is torn down cleanly.
    with scratch_netns() as ns:
        expect_error(["ip", "netns", "exec", ns, ferry(), "run", *boot_args(),
                      "--net", "tap=ftap0", "--net", "tap=ftap0"], ["ftap0", "busy"])


def test_no_permission():
    with scratch_netns() as ns:
        argv = ["ip", "netns", "exec", ns, "setpriv", "--reuid=65534", "--regid=65534",
                "--clear-groups", "--inh-caps=-all", ferry(), "run", *boot_args(),
                "--net", "tap=ftap0"]
        if subprocess.run(["setpriv", "--version"], capture_output=True).returncode != 0:
            raise Skip("no setpriv")
        expect_error(argv, ["ftap0", "not permitted"])
