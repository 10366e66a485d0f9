#!/usr/bin/env python3
"""ferry's test runner.

    tests/run.py [--ferry build/asan/ferry] [--filter SUBSTR] [--jobs N] [-v] [--list]
                 [--variant FERRY=SUBSTR[,SUBSTR...]]
                 [--cpu interp|jit]

Runs, in this order, one line per test:
  unit/NAME         every executable build/unit/NAME (exit 0 = pass)
  isa/NAME          every build/isa/NAME.elf via `ferry run --bios --cpu interp`
                    (exit 0 = pass)
  isa-jit/NAME      the same with `--cpu jit` (both engines, whatever the default)
  cli/MOD/CASE      function test_CASE of tests/cli/test_MOD.py
  linux/MOD/CASE    function test_CASE of tests/linux/test_MOD.py

With --jobs N (default: FERRY_TEST_JOBS, else 1) up to N tests run at
once, in the order above; a test marked @harness.exclusive runs alone, and
a test whose module names a GATE waits until the gate has finished. Lines
are printed as tests finish.

Each test runs in a session of its own with a time limit; when it ends,
every process left in that session (ferry, the guest's helpers, ...) is
killed. A Python test passes when its function returns, skips when it
raises harness.Skip, fails on any other exception.

--variant runs, after those, the tests whose names contain one of the
SUBSTRs again with another ferry binary (unit tests from the unit/ next to
that binary), named DIR:TEST after the binary's directory: `make test` runs
the thread-heavy tests under ThreadSanitizer this way (tsan:unit/...).

--cpu sets FERRY_CPU, the engine `ferry run` uses when not given --cpu
(without it: jit on x86-64 hosts, interp elsewhere).

The last line is `N passed, N failed, N skipped`; the exit status is 1 if
any test failed, else 0.

Timeouts are multiplied by FERRY_TEST_TIMEOUT_SCALE; when that is unset
and the ferry binary is sanitized (ASan/UBSan), the scale is 3.
"""

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "lib"))
import harness  # noqa: E402

# Base time limits in seconds, before scaling.
UNIT_TIMEOUT = 120
ISA_TIMEOUT = 60
PY_TIMEOUT = {"cli": 60, "linux": 300}


# --------------------------------------------------------------------------
# Process cleanup
# --------------------------------------------------------------------------

def session_members(sid):
    """PIDs of the processes whose session id is sid."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command name "(...)": state ppid pgrp session ...
        rest = stat[stat.rfind(b")") + 2:].split()
        if len(rest) > 3 and int(rest[3]) == sid:
            pids.append(int(entry))
    return pids


def kill_session(sid):
    """SIGKILL every process in session sid, until none is left (1 s max)."""
    deadline = time.monotonic() + 1.0
    killed = 0
    while True:
        pids = [p for p in session_members(sid) if p != os.getpid()]
        alive = []
        for p in pids:
            try:
                with open(f"/proc/{p}/stat", "rb") as f:
                    st = f.read()
                if st[st.rfind(b")") + 2:st.rfind(b")") + 3] == b"Z":
                    continue  # zombie: already dead, waiting for its parent
            except OSError:
                continue
            alive.append(p)
            try:
                os.kill(p, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        if not alive or time.monotonic() > deadline:
            return killed
        time.sleep(0.02)


# --------------------------------------------------------------------------
# Running one test
# --------------------------------------------------------------------------

class Outcome:
    def __init__(self, status, reason="", output="", seconds=0.0):
        self.status = status      # "pass" | "fail" | "skip"
        self.reason = reason
        self.output = output
        self.seconds = seconds


# Sessions of the tests running now, so an interrupted run can end them all
# (with --jobs, tests run on worker threads the signal never reaches).
_live_sessions = set()
_live_lock = threading.Lock()


def kill_live_sessions():
    with _live_lock:
        sids = list(_live_sessions)
    for sid in sids:
        kill_session(sid)


def run_isolated(argv, timeout, env=None):
    """Run argv in a new session with stdin /dev/null and stdout+stderr to
    a file; kill the whole session when it ends or times out.
    Returns (returncode or None on timeout, output, seconds)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, env=full_env, cwd=REPO,
                             start_new_session=True)
        with _live_lock:
            _live_sessions.add(p.pid)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        except KeyboardInterrupt:
            kill_session(p.pid)
            p.wait()
            raise
        kill_session(p.pid)
        p.wait()
        with _live_lock:
            _live_sessions.discard(p.pid)
        seconds = time.monotonic() - start
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return rc, text, seconds


def describe_rc(rc):
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def run_binary(argv, timeout):
    rc, out, secs = run_isolated(argv, timeout)
    if rc is None:
        return Outcome("fail", f"timed out after {timeout:.0f} s", out, secs)
    found = harness.sanitizer_reports(out)
    if found:
        return Outcome("fail", f"sanitizer report ({', '.join(found)}), {describe_rc(rc)}", out, secs)
    if rc != 0:
        return Outcome("fail", describe_rc(rc), out, secs)
    return Outcome("pass", "", out, secs)


def run_python_test(path, func, timeout, variant_env=None):
    with tempfile.TemporaryDirectory(prefix="ferry-test-") as tmp:
        result = Path(tmp) / "result.json"
        argv = [sys.executable, "-X", "faulthandler", str(Path(__file__).resolve()), "--child",
                str(path), func, str(result)]
        # Dump Python stacks shortly before the hard limit, so a hung test
        # shows where it hung.
        env = {"FERRY_TEST_CHILD_DEADLINE": str(max(timeout - 5, 1)),
               "TMPDIR": tmp}
        env.update(variant_env or {})
        rc, out, secs = run_isolated(argv, timeout, env)
        try:
            res = json.loads(result.read_text())
        except (OSError, ValueError):
            res = None
    if rc is None:
        return Outcome("fail", f"timed out after {timeout:.0f} s", out, secs)
    if res is None:
        return Outcome("fail", f"test process ended without a result ({describe_rc(rc)})", out, secs)
    return Outcome(res["status"], res.get("reason", ""), out, secs)


def child_main(path, func, result_file):
    """Runs in the test's own process: import the module, call the function,
    record the outcome."""
    deadline = float(os.environ.get("FERRY_TEST_CHILD_DEADLINE", "0"))
    if deadline > 0:
        import faulthandler
        faulthandler.dump_traceback_later(deadline, exit=False)
    status, reason = "fail", ""
    try:
        mod = load_module(Path(path))
        getattr(mod, func)()
        status = "pass"
    except harness.Skip as e:
        status, reason = "skip", str(e) or "skipped"
    except BaseException as e:  # noqa: BLE001 - report everything, incl. SystemExit
        traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        reason = f"{type(e).__name__}: {first}" if first else type(e).__name__
    with open(result_file, "w") as f:
        json.dump({"status": status, "reason": reason}, f)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def load_module(path):
    name = f"ferrytest_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------

class Test:
    def __init__(self, name, kind, run, needs_ferry=False, gate=None, exclusive=False):
        self.name = name
        self.kind = kind
        self.run = run               # () -> Outcome
        self.needs_ferry = needs_ferry
        self.gate = gate             # name of a test that must not have failed
        self.exclusive = exclusive   # runs with no other test beside it
        self.ferry = None            # the binary of a --variant test (None: --ferry)


def discover(ferry, scale, build, variant_env=None):
    """The tests, run with `ferry`; variant_env (FERRY and the timeout scale
    of another binary) goes to the Python tests' environment."""
    tests = []

    unit_dir = build / "unit"
    if unit_dir.is_dir():
        for p in sorted(unit_dir.iterdir()):
            if p.is_file() and os.access(p, os.X_OK) and p.suffix not in (".d", ".o"):
                tests.append(Test(f"unit/{p.name}", "unit",
                                  lambda p=p: run_binary([p], UNIT_TIMEOUT * scale)))

    isa_dir = build / "isa"
    if isa_dir.is_dir():
        for p in sorted(isa_dir.glob("*.elf")):
            tests.append(Test(f"isa/{p.stem}", "isa",
                              lambda p=p: run_binary([ferry, "run", "--bios", p, "--cpu", "interp"],
                                                     ISA_TIMEOUT * scale),
                              needs_ferry=True))
        # The same programs under the other engine (the translating CPU must
        # agree with the interpreter; see --cpu).
        for p in sorted(isa_dir.glob("*.elf")):
            tests.append(Test(f"isa-jit/{p.stem}", "isa",
                              lambda p=p: run_binary([ferry, "run", "--bios", p, "--cpu", "jit"],
                                                     ISA_TIMEOUT * scale),
                              needs_ferry=True))

    for kind in ("cli", "linux"):
        for path in sorted((HERE / kind).glob("test_*.py")):
            short = path.stem[len("test_"):]
            try:
                mod = load_module(path)
            except BaseException as e:  # noqa: BLE001
                err = "".join(traceback.format_exception(e))
                tests.append(Test(f"{kind}/{short}", kind,
                                  lambda err=err, e=e: Outcome("fail", f"cannot import: {type(e).__name__}: {e}", err)))
                continue
            # A module may name a GATE test: when it fails, the module's
            # other tests are skipped instead of each waiting for its own
            # timeout (e.g. no guest test can pass if the guest cannot boot).
            gate_attr = getattr(mod, "GATE", None)
            gate = f"{kind}/{short}/{gate_attr[len('test_'):]}" if gate_attr else None
            for attr, fn in list(vars(mod).items()):
                if not attr.startswith("test_") or not callable(fn):
                    continue
                name = f"{kind}/{short}/{attr[len('test_'):]}"
                limit = getattr(fn, "timeout", PY_TIMEOUT[kind]) * scale
                tests.append(Test(name, kind,
                                  lambda path=path, attr=attr, limit=limit:
                                  run_python_test(path, attr, limit, variant_env),
                                  needs_ferry=True, gate=gate if gate != name else None,
                                  exclusive=getattr(fn, "exclusive", False)))
    return tests


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def run_one(t):
    try:
        return t.run()
    except Exception as e:  # noqa: BLE001 - a runner bug must not hide the summary
        return Outcome("fail", f"runner error: {type(e).__name__}: {e}", traceback.format_exc())


def run_scheduled(tests, jobs, has_ferry, status_of, report):
    """Runs the tests, up to `jobs` at once, in discovery order as far as
    gates and exclusive tests allow. Returns True when interrupted."""
    pending = list(tests)
    running = {}  # future -> Test
    names_left = {t.name for t in tests}

    def start_what_can_start(pool):
        i = 0
        while i < len(pending) and len(running) < jobs:
            if any(r.exclusive for r in running.values()):
                return
            t = pending[i]
            if t.needs_ferry and not has_ferry(t):
                pending.pop(i)
                names_left.discard(t.name)
                report(t.name, Outcome("skip", "no ferry binary"))
                continue
            if t.gate and t.gate in names_left:
                i += 1  # its gate has not finished yet
                continue
            if t.gate and status_of.get(t.gate) == "fail":
                pending.pop(i)
                names_left.discard(t.name)
                report(t.name, Outcome("skip", f"{t.gate} failed"))
                continue
            if t.exclusive and running:
                return  # let the others drain; nothing overtakes it
            pending.pop(i)
            running[pool.submit(run_one, t)] = t
            if t.exclusive:
                return

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            while pending or running:
                start_what_can_start(pool)
                if not running:
                    continue  # everything left was skipped just now
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for f in done:
                    t = running.pop(f)
                    names_left.discard(t.name)
                    report(t.name, f.result())
        except KeyboardInterrupt:
            for t in running.values():
                report(t.name, Outcome("fail", "interrupted"))
            kill_live_sessions()
            for f in running:
                f.cancel()
            return True
    return False


def indent(text, lines=30):
    body = harness.tail(text, lines, 6000).rstrip()
    return "\n".join("    " + line for line in body.splitlines())


def main():
    ap = argparse.ArgumentParser(description="Run ferry's tests.")
    ap.add_argument("--ferry", default=str(REPO / "build" / "asan" / "ferry"),
                    help="ferry binary under test (default build/asan/ferry)")
    ap.add_argument("--filter", action="append", default=[], metavar="SUBSTR",
                    help="only tests whose name contains SUBSTR (repeatable: any)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="show the output of every test, not only of failures")
    ap.add_argument("--build", default=str(REPO / "build"),
                    help="where unit/ and isa/ binaries are (default build/)")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("FERRY_TEST_JOBS", "1")),
                    help="run up to N tests at once (default FERRY_TEST_JOBS or 1)")
    ap.add_argument("--variant", action="append", default=[], metavar="FERRY=SUBSTR[,SUBSTR...]",
                    help="also run the tests matching a SUBSTR with this ferry binary "
                         "(unit tests from its directory's unit/), named DIR:TEST")
    ap.add_argument("--cpu", choices=("interp", "jit"),
                    help="engine for every `ferry run` the tests start (sets FERRY_CPU)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        child_main(*a.child)
        return 0

    # SIGTERM/SIGHUP (a CI timeout, a closed terminal) end the run like
    # Ctrl-C: the current test's processes are killed, the summary printed.
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)

    ferry = os.path.abspath(a.ferry)
    scale_given = bool(os.environ.get("FERRY_TEST_TIMEOUT_SCALE"))
    if not scale_given:
        os.environ["FERRY_TEST_TIMEOUT_SCALE"] = str(harness.default_scale(ferry))
    try:
        scale = harness.scale()
    except ValueError as e:
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    os.environ["FERRY"] = ferry
    if a.cpu:
        os.environ["FERRY_CPU"] = a.cpu
    # Tests must never talk to the user's terminal or inherit odd settings.
    os.environ.pop("FERRY_TEST_CHILD_DEADLINE", None)

    tests = discover(ferry, scale, Path(a.build).resolve())
    for spec in a.variant:
        vferry, _, subs = spec.partition("=")
        vferry = os.path.abspath(vferry)
        wanted = [x for x in subs.split(",") if x]
        if not wanted:
            print(f"run.py: --variant {spec!r}: want FERRY=SUBSTR[,SUBSTR...]", file=sys.stderr)
            return 2
        vscale = scale if scale_given else harness.default_scale(vferry)
        prefix = Path(vferry).parent.name + ":"
        env = {"FERRY": vferry, "FERRY_TEST_TIMEOUT_SCALE": str(vscale)}
        for t in discover(vferry, vscale, Path(vferry).parent, env):
            if not any(w in t.name for w in wanted) or t.kind == "isa":
                continue
            t.name = prefix + t.name
            t.gate = prefix + t.gate if t.gate else None
            t.ferry = vferry
            tests.append(t)
    if a.filter:
        tests = [t for t in tests if any(f in t.name for f in a.filter)]
    if a.list:
        for t in tests:
            print(t.name)
        return 0

    def is_binary(path):
        return os.path.isfile(path) and os.access(path, os.X_OK)
    counts = {"pass": 0, "fail": 0, "skip": 0}
    status_of = {}

    def report(name, o):
        counts[o.status] += 1
        status_of[name] = o.status
        if o.status == "pass":
            print(f"PASS {name} ({o.seconds:.1f}s)", flush=True)
            if a.verbose and o.output.strip():
                print(indent(o.output, 200))
        elif o.status == "skip":
            print(f"SKIP {name}: {o.reason}", flush=True)
            if a.verbose and o.output.strip():
                print(indent(o.output, 200))
        else:
            print(f"FAIL {name}: {o.reason} ({o.seconds:.1f}s)", flush=True)
            if o.output.strip():
                print(indent(o.output, 200 if a.verbose else 80), flush=True)

    if a.verbose:
        print(f"ferry: {ferry}; timeout scale {scale:g}; {len(tests)} tests", flush=True)
    for binary in sorted({(t.ferry or ferry) for t in tests if t.needs_ferry}):
        if not is_binary(binary):
            report("ferry-binary", Outcome("fail", f"{binary} not found or not executable "
                                                    "(make / make asan / make tsan)"))

    interrupted = run_scheduled(tests, a.jobs, lambda t: is_binary(t.ferry or ferry),
                                status_of, report)

    if interrupted:
        print("interrupted", flush=True)
    print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped", flush=True)
    return 1 if counts["fail"] or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
