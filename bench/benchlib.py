"""Helpers shared by ferry's benchmarks (bench/*.py): starting ferry and
QEMU on the same guest, measuring, summarising, printing tables.

Standard library only; the VM driver is tests/lib/ferryvm.py.
"""

import json
import os
import platform
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))
import harness  # noqa: E402
from ferryvm import ConsoleProcess, FerryVM  # noqa: E402,F401

CLK_TCK = os.sysconf("SC_CLK_TCK")
QEMU_APPEND = "console=ttyS0 quiet"


def log(msg):
    """Progress goes to stderr; stdout holds only the tables."""
    print(msg, file=sys.stderr, flush=True)


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    rest = stat[stat.rfind(b")") + 2:].split()
    # utime and stime are fields 14 and 15 of stat; rest starts at field 3.
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def loadavg():
    """The 1, 5 and 15 minute load averages, as text."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def pin_ferry(ferry, directory):
    """Copies the ferry binary into directory and returns the copy: others
    may rebuild build/ferry during a long run, and a bench measures one
    binary."""
    pinned = os.path.join(directory, "ferry")
    shutil.copy2(ferry, pinned)
    log(f"bench: measuring a copy of {ferry} ({pinned})")
    return pinned


def host_description():
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}"


class Summary:
    """median, min, max of a list of numbers (None-safe)."""

    def __init__(self, values):
        self.values = [v for v in values if v is not None]

    def __bool__(self):
        return bool(self.values)

    @property
    def median(self):
        return statistics.median(self.values) if self.values else None

    @property
    def min(self):
        return min(self.values) if self.values else None

    @property
    def max(self):
        return max(self.values) if self.values else None

    def fmt(self, digits=2):
        if not self.values:
            return "n/a"
        if len(self.values) == 1:
            return f"{self.median:.{digits}f}"
        return f"{self.median:.{digits}f} [{self.min:.{digits}f}-{self.max:.{digits}f}]"


def print_table(title, header, rows, notes=()):
    """A plain fixed-width table on stdout."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print()
    print(title)
    print(line)
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print(line)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print(line)
    for n in notes:
        print(n)
    sys.stdout.flush()


def find_ferry(path):
    p = Path(path)
    if not (p.is_file() and os.access(p, os.X_OK)):
        sys.exit(f"bench: ferry binary {p} not found (run make)")
    if harness.binary_is_sanitized(p):
        log(f"bench: WARNING: {p} is a sanitized build; numbers will be meaningless")
    return str(p.resolve())


def find_guest(path):
    g = Path(path)
    if not ((g / "Image").is_file() and (g / "initramfs.cpio").is_file()):
        sys.exit(f"bench: no guest in {g} (run make guest)")
    return g.resolve()


def find_qemu(path):
    return shutil.which(path) if path else None


def qemu_argv(qemu, guest, smp=1, mem="256M", extra=()):
    return [qemu, "-M", "virt", "-bios", "default", "-nographic", "-smp", str(smp), "-m", mem,
            "-kernel", str(guest / "Image"), "-initrd", str(guest / "initramfs.cpio"),
            "-append", QEMU_APPEND, *extra]


def ferry_vm(ferry, guest, args=(), **kw):
    """A FerryVM on the guest in `guest` (via FERRY_GUEST_DIR)."""
    env = dict(kw.pop("env", None) or {})
    env["FERRY_GUEST_DIR"] = str(guest)
    return FerryVM(list(args), ferry=ferry, env=env, **kw)


def qemu_vm(qemu, guest, **kw):
    return ConsoleProcess(qemu_argv(qemu, guest, **kw), name="qemu")


def save_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
    log(f"bench: raw results written to {path}")


CPUBENCH_LINE = re.compile(r"^cpubench: (\S+) (?:(\S+) )?(\d+(?:\.\d+)?)\s*$", re.M)


def parse_cpubench(out):
    """{'int': (checksum, ms), ..., 'total': (None, ms)} from cpubench's output."""
    res = {}
    for m in CPUBENCH_LINE.finditer(out):
        res[m.group(1)] = (m.group(2), float(m.group(3)))
    if "total" not in res:
        raise RuntimeError(f"cpubench printed no total line:\n{out}")
    return res


def now():
    return time.monotonic()
