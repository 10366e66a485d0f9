"""Shared helpers for ferry's Python tests (tests/cli, tests/linux) and benches.

Standard library only. Test modules do

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    from harness import Skip, ferry, require_guest, run_ferry, ...

Environment (set by tests/run.py for the test processes it starts; each has
a sensible default so a test module can also be imported on its own):
    FERRY                      path of the ferry binary under test
    FERRY_TEST_TIMEOUT_SCALE   factor applied to every timeout (ASan is slow)
    FERRY_GUEST_DIR            directory with Image and initramfs.cpio
"""

import os
import signal
import struct
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"

# Text that must never appear in ferry's output: a sanitizer report means
# memory corruption or undefined behaviour, whatever the exit status says.
SANITIZER_MARKERS = (
    "AddressSanitizer",
    "LeakSanitizer",
    "UndefinedBehaviorSanitizer",
    "ThreadSanitizer",
    "MemorySanitizer",
    "runtime error:",
)


class Skip(Exception):
    """Raise from a test to skip it; the message is the reason."""


def timeout(seconds):
    """Decorator: per-test time limit in seconds, before scaling."""
    def wrap(fn):
        fn.timeout = seconds
        return fn
    return wrap


def exclusive(fn):
    """Decorator: the runner runs this test alone, never next to another one
    (`tests/run.py --jobs N`). For tests whose assertions depend on timing
    that a second busy guest on the same cores would distort."""
    fn.exclusive = True
    return fn


# --------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------

def binary_is_sanitized(path):
    """True if the executable at path was built with ASan/UBSan or TSan."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data or b"__tsan_init" in data


def default_scale(ferry_path):
    """The timeout scale to use when FERRY_TEST_TIMEOUT_SCALE is not set."""
    return 3.0 if binary_is_sanitized(ferry_path) else 1.0


def scale():
    """Factor for all timeouts, from FERRY_TEST_TIMEOUT_SCALE (default 1)."""
    raw = os.environ.get("FERRY_TEST_TIMEOUT_SCALE", "")
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"FERRY_TEST_TIMEOUT_SCALE={raw!r} is not a number")
    if not value > 0:
        raise ValueError(f"FERRY_TEST_TIMEOUT_SCALE={raw!r} must be > 0")
    return value


def scaled(seconds):
    return seconds * scale()


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------

def ferry():
    """Absolute path of the ferry binary under test (Skip if there is none)."""
    env = os.environ.get("FERRY")
    candidates = [Path(env)] if env else [BUILD / "asan" / "ferry", BUILD / "ferry"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c.resolve())
    raise Skip(f"no ferry binary ({', '.join(map(str, candidates))}); run make")


def guest_dir(ferry_path=None):
    """The directory ferry takes its default guest from, or None.

    Same order as ferry itself: $FERRY_GUEST_DIR, <dir of binary>/guest,
    <dir of binary>/../guest. A directory counts when it has both files.
    """
    cands = []
    if os.environ.get("FERRY_GUEST_DIR"):
        cands.append(Path(os.environ["FERRY_GUEST_DIR"]))
    else:
        if ferry_path is None:
            try:
                ferry_path = ferry()
            except Skip:
                ferry_path = str(BUILD / "ferry")
        # ferry is expected to look next to its own binary, not its realpath
        # target, so do not resolve symlinks here.
        bindir = Path(os.path.abspath(ferry_path)).parent
        cands += [bindir / "guest", bindir.parent / "guest"]
    for c in cands:
        if (c / "Image").is_file() and (c / "initramfs.cpio").is_file():
            return c
    return None


def require_guest(ferry_path=None):
    """The guest directory; Skip when the guest has not been built."""
    d = guest_dir(ferry_path)
    if d is None:
        raise Skip("guest not built (no build/guest/Image + initramfs.cpio; run make guest)")
    return d


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

class Result:
    def __init__(self, argv, rc, stdout, stderr, seconds):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds

    def describe(self):
        """Multi-line summary for assertion messages."""
        if self.rc is None:
            status = "did not exit"
        elif self.rc < 0:
            status = f"killed by signal {-self.rc} ({_signame(-self.rc)})"
        else:
            status = f"exit status {self.rc}"
        return (f"command: {' '.join(map(str, self.argv))}\n{status}\n"
                f"--- stdout ---\n{tail(self.stdout)}\n--- stderr ---\n{tail(self.stderr)}")


def _signame(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return "?"


def tail(text, lines=40, chars=4000):
    """The end of text, at most `lines` lines and `chars` characters."""
    text = text[-chars:]
    return "\n".join(text.splitlines()[-lines:])


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_cmd(argv, timeout=30, env=None, cwd=None, stdin=subprocess.DEVNULL):
    """Run argv in its own process group with stdin /dev/null (so nothing
    ever sees our terminal), capturing stdout and stderr. The whole group is
    killed when it ends or times out. `timeout` is scaled. Returns Result;
    a timeout raises AssertionError with the output so far."""
    limit = scaled(timeout)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        p = subprocess.Popen([str(a) for a in argv], stdin=stdin, stdout=out, stderr=err,
                             env=full_env, cwd=cwd, process_group=0)
        try:
            rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            kill_group(p.pid)
            p.wait()
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        res = Result(argv, rc, out.read().decode("utf-8", "replace"),
                     err.read().decode("utf-8", "replace"), seconds)
    if rc is None:
        raise AssertionError(f"timed out after {limit:.0f} s\n{res.describe()}")
    return res


def run_ferry(args, timeout=30, **kw):
    """run_cmd([ferry, *args])."""
    return run_cmd([ferry(), *args], timeout=timeout, **kw)


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def sanitizer_reports(text):
    """The sanitizer markers found in text (empty list if clean)."""
    return [m for m in SANITIZER_MARKERS if m in text]


def assert_no_sanitizer(text, what="output"):
    found = sanitizer_reports(text)
    if found:
        raise AssertionError(f"sanitizer report in {what} ({', '.join(found)}):\n{tail(text, 60, 8000)}")


# --------------------------------------------------------------------------
# Synthetic inputs
# --------------------------------------------------------------------------

def fake_riscv_image(image_size=2 << 20, file_size=None):
    """Bytes of a syntactically valid RISC-V Linux Image whose code is an
    endless loop (`j .`). Enough for ferry to accept it as a kernel when a
    test only needs argument parsing or loading to get past the kernel.
    Header layout: Documentation/riscv/boot-image-header.rst."""
    j_self = 0x0000006F  # jal x0, 0
    header = struct.pack(
        "<IIQQQIIQ8s4sI",
        j_self,            # code0
        j_self,            # code1
        0x200000,          # text_offset
        image_size,        # image_size (memory footprint)
        0,                 # flags (little endian)
        0x2,               # version 0.2
        0,                 # res1
        0,                 # res2
        b"RISCV\0\0\0",    # magic (deprecated)
        b"RSC\x05",        # magic2
        0,                 # res3
    )
    assert len(header) == 64
    body = header + b"\0" * (4096 - len(header))
    if file_size is not None and file_size > len(body):
        body += b"\0" * (file_size - len(body))
    return body


def elf64_header(machine=243, etype=2, phoff=64, phnum=1, entry=0x80000000, ei_class=2):
    """A bare ELF header (64 bytes) with the given fields; used to build
    broken or foreign ELF files. machine 243 = EM_RISCV, etype 2 = ET_EXEC."""
    ident = b"\x7fELF" + bytes([ei_class, 1, 1, 0]) + b"\0" * 8
    return ident + struct.pack("<HHIQQQIHHHHHH", etype, machine, 1, entry, phoff, 0,
                               0, 64, 56, phnum, 64, 0, 0)
