"""Drive a ferry VM (or any program with a serial-console-like stdio) from
Python: start it with its console on a pty or a unix socket, wait for text,
type commands and collect their output.

    from ferryvm import FerryVM
    with FerryVM(["--smp", "2"]) as vm:
        vm.boot()                          # up to the first shell prompt
        out = vm.run("uname -m")           # output, exit status checked
        vm.sendline("poweroff")
        assert vm.wait_exit() == 0

Every timeout given here is multiplied by FERRY_TEST_TIMEOUT_SCALE.
Output is read continuously by a background thread, so the program never
blocks on a full pty while the test is busy elsewhere.

Standard library only.
"""

import codecs
import errno
import fcntl
import itertools
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tty

import harness

# The guest's shell prompt: `ferry:/# ` with the working directory in it.
PROMPT = r"ferry:[^\r\n#]*# "
READY = r"ferry-guest: ready"

# Escape sequences a line editor or terminal may emit (CSI ..., ESC x).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def clean(text):
    """Terminal output → plain text: no escape sequences, \\n line ends."""
    text = _ANSI.sub("", text)
    text = re.sub(r"\r+\n", "\n", text)
    # A lone \r (line editor redraw) returns to the start of the line: keep
    # what follows it, which is what a terminal would show.
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            parts = [p for p in line.split("\r") if p]
            line = parts[-1] if parts else ""
        lines.append(line)
    return "\n".join(lines)


class VMError(AssertionError):
    """A VM did not do what a test expected. The message carries the end of
    the console transcript and of ferry's stderr."""


class ExpectTimeout(VMError):
    pass


class ExpectEOF(VMError):
    pass


class CommandFailed(VMError):
    def __init__(self, msg, status, output):
        super().__init__(msg)
        self.status = status
        self.output = output


class _Reader:
    """Collects everything readable from one fd in a background thread."""

    def __init__(self, fd, log=None):
        self.fd = fd
        self.log = log
        self.cond = threading.Condition()
        self.chunks = []
        self._text = None
        self.eof = False
        self._stop = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop:
            try:
                r, _, _ = select.select([self.fd], [], [], 0.1)
            except (OSError, ValueError):
                break
            if not r:
                continue
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            except OSError as e:
                # EIO: every holder of the pty slave has closed it.
                if e.errno not in (errno.EIO, errno.EBADF, errno.ECONNRESET):
                    raise
                data = b""
            if not data:
                break
            text = self._decoder.decode(data)
            if self.log:
                try:
                    self.log.write(data)
                    self.log.flush()
                except (OSError, ValueError):
                    pass
            with self.cond:
                self.chunks.append(text)
                self._text = None
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    @property
    def text(self):
        """All output so far (call with or without the lock held)."""
        with self.cond:
            if self._text is None:
                self._text = "".join(self.chunks)
                self.chunks = [self._text]
            return self._text

    def stop(self):
        self._stop = True
        self.thread.join(timeout=2)


class ConsoleProcess:
    """A program whose console we read and type into.

    argv      the command line
    console   "pty": stdin and stdout are a pty slave (raw mode, like a
              terminal ferry switched to raw); "socket:PATH": the console is
              a unix socket the program listens on, we connect to it after
              start (stdin is /dev/null, stdout goes to a file)
    log       optional path: the raw console bytes are also written there
    """

    prompt = PROMPT

    def __init__(self, argv, console="pty", env=None, cwd=None, log=None, name=None):
        self.argv = [str(a) for a in argv]
        self.console_kind = console
        self.env = env
        self.cwd = cwd
        self.name = name or os.path.basename(self.argv[0])
        self.workdir = tempfile.mkdtemp(prefix="ferryvm-")
        self.stderr_path = os.path.join(self.workdir, "stderr")
        self.stdout_path = os.path.join(self.workdir, "stdout")
        self.log_path = log
        self.proc = None
        self.fd = None          # console fd we read and write
        self.sock = None
        self.reader = None
        self.pos = 0            # transcript offset consumed by expect()
        self.returncode = None
        self.start_time = None
        self._log = None
        self._counter = itertools.count(1)
        # Makes run()'s markers unlike anything a command prints.
        self._token = "".join(random.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(4))
        self.last_status = None

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        self._errf = open(self.stderr_path, "wb")
        if self.log_path:
            self._log = open(self.log_path, "wb")
        if self.console_kind == "pty":
            master, slave = os.openpty()
            # Raw: no echo, no CR/LF translation, no signals from ^C, exactly
            # what the program sees from a terminal in raw mode. A program
            # that sets raw mode itself finds nothing to change.
            tty.setraw(slave)
            try:
                self.start_time = time.monotonic()
                self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave,
                                             stderr=self._errf, env=env, cwd=self.cwd,
                                             process_group=0, close_fds=True)
            finally:
                os.close(slave)
            fl = fcntl.fcntl(master, fcntl.F_GETFL)
            fcntl.fcntl(master, fcntl.F_SETFL, fl | os.O_NONBLOCK)
            self.fd = master
            self.reader = _Reader(master, self._log)
        elif self.console_kind.startswith("socket:"):
            self._outf = open(self.stdout_path, "wb")
            self.start_time = time.monotonic()
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._outf,
                                         stderr=self._errf, env=env, cwd=self.cwd,
                                         process_group=0, close_fds=True)
        else:
            raise ValueError(f"unknown console kind {self.console_kind!r}")
        return self

    def connect(self, timeout=30):
        """Socket console: connect once the program has created the socket."""
        path = self.console_kind[len("socket:"):]
        deadline = time.monotonic() + harness.scaled(timeout)
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self._error(ExpectEOF, f"exited (status {self.proc.returncode}) before "
                                  f"the console socket {path} accepted a connection")
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
            except OSError as e:
                last = e
                s.close()
                time.sleep(0.05)
                continue
            s.setblocking(False)
            self.sock = s
            self.fd = s.fileno()
            self.reader = _Reader(self.fd, self._log)
            self.pos = 0
            return self
        raise self._error(ExpectTimeout, f"could not connect to console socket {path}: {last}")

    def close(self):
        """Kill the whole process group and release everything. Idempotent."""
        if self.proc is not None:
            harness.kill_group(self.proc.pid)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if self.returncode is None:
                self.returncode = self.proc.returncode
        if self.reader is not None:
            self.reader.stop()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        elif self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None
        for f in ("_errf", "_outf", "_log"):
            h = getattr(self, f, None)
            if h:
                h.close()
                setattr(self, f, None)

    def cleanup_files(self):
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        if self.proc is None:
            try:
                self.start()
            except BaseException:
                self.close()
                self.cleanup_files()
                raise
        return self

    def __exit__(self, etype, exc, tb):
        self.close()
        try:
            if etype is None:
                self.check_stderr()
        finally:
            self.cleanup_files()
        return False

    # -- output --------------------------------------------------------------

    @property
    def transcript(self):
        """Everything read from the console so far (raw)."""
        return self.reader.text if self.reader else ""

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # Kernel messages that mean the guest (or our emulation of it) broke.
    # Set check_kernel = False for a test that provokes them on purpose.
    KERNEL_TROUBLE = ("Kernel panic", "Oops", "Unable to handle kernel", "BUG: ",
                      "WARNING: CPU: ", "rcu_sched self-detected stall", "detected stalls on CPU",
                      "soft lockup", "blocked for more than")
    check_kernel = True

    def check_stderr(self):
        """Raise if stderr or the console holds a sanitizer report, or the
        console a kernel panic, oops, BUG, WARNING or stall report."""
        harness.assert_no_sanitizer(self.stderr(), f"{self.name} stderr")
        harness.assert_no_sanitizer(self.transcript, f"{self.name} console")
        if self.check_kernel:
            text = clean(self.transcript)
            for m in self.KERNEL_TROUBLE:
                at = text.find(m)
                if at >= 0:
                    raise VMError(f"{self.name}: kernel reported trouble ({m.strip()!r}):\n"
                                  f"{text[max(at - 1500, 0):at + 2500]}")

    def _status(self):
        if self.proc is None:
            return "not started"
        rc = self.proc.poll()
        if rc is None:
            return f"running (pid {self.proc.pid})"
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exited with status {rc}"

    def _error(self, cls, msg):
        elapsed = time.monotonic() - self.start_time if self.start_time else 0
        shown = clean(self.transcript[-4000:])
        return cls(f"{self.name}: {msg}\n"
                   f"[{self._status()}, {elapsed:.1f} s since start; command: {' '.join(self.argv)}]\n"
                   f"--- console (end) ---\n{harness.tail(shown, 50)}\n"
                   f"--- stderr (end) ---\n{harness.tail(self.stderr(), 20)}")

    def expect(self, pattern, timeout=30):
        """Wait until `pattern` (regex, or a list of them) matches the output
        after the previous match; return the re.Match (for a list, its
        .index attribute is not set: use .re.pattern). Raises ExpectTimeout
        or, when the program exits first, ExpectEOF."""
        pats = pattern if isinstance(pattern, (list, tuple)) else [pattern]
        regs = [re.compile(p) if isinstance(p, str) else p for p in pats]
        deadline = time.monotonic() + harness.scaled(timeout)
        cond = self.reader.cond
        with cond:
            while True:
                text = self.reader.text
                best = None
                for r in regs:
                    m = r.search(text, self.pos)
                    if m and (best is None or m.start() < best.start()):
                        best = m
                if best:
                    self.pos = best.end()
                    return best
                if self.reader.eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._error(ExpectTimeout, f"timed out after {harness.scaled(timeout):.0f} s "
                                      f"waiting for {' | '.join(r.pattern for r in regs)!r}")
                cond.wait(min(left, 0.5))
        # EOF: give the process a moment so the message shows its status.
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        raise self._error(ExpectEOF, f"console closed while waiting for "
                          f"{' | '.join(r.pattern for r in regs)!r}")

    def output_since(self, pos):
        return self.reader.text[pos:]

    # -- input ---------------------------------------------------------------

    def send(self, data, timeout=30):
        """Write bytes or str to the console, waiting while it is full."""
        if isinstance(data, str):
            data = data.encode()
        deadline = time.monotonic() + harness.scaled(timeout)
        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._error(ExpectTimeout, "console input not accepted (program not reading)")
            _, w, _ = select.select([], [self.fd], [], min(left, 0.5))
            if not w:
                continue
            try:
                n = os.write(self.fd, data)
            except BlockingIOError:
                continue
            except OSError as e:
                raise self._error(ExpectEOF, f"console write failed: {e}")
            data = data[n:]

    def sendline(self, line=""):
        """Type a line and press Enter (a carriage return, as a terminal
        in raw mode sends)."""
        self.send(line + "\r")

    # -- shell ---------------------------------------------------------------

    def boot(self, timeout=120, ready=READY):
        """Wait for the guest's ready line, then for the shell prompt.
        Returns the seconds from process start to the prompt."""
        t0 = time.monotonic()
        if ready:
            self.expect(ready, timeout)
        spent = (time.monotonic() - t0) / harness.scale()
        self.expect(self.prompt, max(timeout - spent, 10))
        return time.monotonic() - self.start_time

    def wait_prompt(self, timeout=60, poke_every=2.0):
        """Press Enter every `poke_every` s until a prompt shows (e.g. on a
        console socket connected after the prompt was printed)."""
        deadline = time.monotonic() + harness.scaled(timeout)
        while True:
            self.sendline()
            try:
                return self.expect(self.prompt, poke_every / harness.scale())
            except ExpectTimeout:
                if time.monotonic() >= deadline:
                    raise

    def run_status(self, cmd, timeout=60):
        """Type `cmd`, wait for it to finish; return (exit status, output).

        The typed line is `echo =B<tag>'='; CMD; echo =E<tag>=$?=`. The
        shell prints `=B<tag>=` and `=E<tag>=<status>=`, which the echo of
        the typed line (quote, `$?`) can never match, however a line editor
        wraps or redraws it. The output is what came between the two
        markers, without escape sequences and \r. CMD must be a command
        list that can be followed by `;` (no trailing `&` or comment)."""
        tag = f"{self._token}{next(self._counter)}"
        self.sendline(f"echo =B{tag}'='; {cmd}; echo =E{tag}=$?=")
        begin = self.expect(rf"=B{tag}=\r*\n", timeout)
        end = self.expect(rf"=E{tag}=(\d+)=", timeout)
        status = int(end.group(1))
        out = clean(self.reader.text[begin.end():end.start()])
        if out.endswith("\n"):
            out = out[:-1]
        self.expect(self.prompt, timeout)
        self.last_status = status
        return status, out

    def run(self, cmd, timeout=60, check=True):
        """Like run_status() but returns only the output; with check (the
        default) a non-zero exit status raises CommandFailed."""
        status, out = self.run_status(cmd, timeout)
        if check and status != 0:
            raise CommandFailed(f"{self.name}: command {cmd!r} exited with status {status}:\n{out}",
                                status, out)
        return out

    def wait_exit(self, timeout=60):
        """Wait for the program to exit; return its exit status (negative:
        killed by that signal)."""
        try:
            rc = self.proc.wait(timeout=harness.scaled(timeout))
        except subprocess.TimeoutExpired:
            raise self._error(ExpectTimeout, f"did not exit within {harness.scaled(timeout):.0f} s")
        self.returncode = rc
        # Let the reader pick up the last output.
        if self.reader:
            self.reader.thread.join(timeout=1)
        return rc


class FerryVM(ConsoleProcess):
    """`ferry run ARGS...` with its console on a pty (default) or a unix
    socket (console="socket": adds --console socket:PATH in a temp dir).

    ferry: path of the binary (default: harness.ferry(), i.e. $FERRY)."""

    def __init__(self, args=(), ferry=None, console="pty", env=None, log=None, subcommand="run"):
        ferry = ferry or harness.ferry()
        args = [str(a) for a in args]
        self.socket_path = None
        kind = "pty"
        workdir_tmp = None
        if console == "socket":
            # Short path: unix socket paths are limited to ~107 bytes.
            workdir_tmp = tempfile.mkdtemp(prefix="fcon-")
            self.socket_path = os.path.join(workdir_tmp, "console.sock")
            args += ["--console", f"socket:{self.socket_path}"]
            kind = f"socket:{self.socket_path}"
        elif console != "pty":
            raise ValueError("console must be 'pty' or 'socket'")
        super().__init__([ferry, subcommand, *args], console=kind, env=env, log=log, name="ferry")
        self._sockdir = workdir_tmp

    def start(self):
        super().start()
        if self.socket_path:
            self.connect()
        return self

    def cleanup_files(self):
        super().cleanup_files()
        if self._sockdir:
            shutil.rmtree(self._sockdir, ignore_errors=True)

    def stats(self):
        """The --stats line parsed into a dict (instructions, seconds, mips),
        or None if stderr has none."""
        lines = re.findall(r"^ferry: stats: (.*)$", self.stderr(), re.M)
        if not lines:
            return None
        out = {}
        for kv in " ".join(lines).split():   # the jit's own line too (translate_seconds)
            if "=" not in kv:
                continue
            k, _, v = kv.partition("=")
            try:
                out[k] = float(v) if "." in v or "e" in v else int(v)
            except ValueError:
                out[k] = v
        return out

    def poweroff(self, timeout=60):
        """Type poweroff and wait for ferry to exit; return its status."""
        self.sendline("poweroff")
        return self.wait_exit(timeout)
