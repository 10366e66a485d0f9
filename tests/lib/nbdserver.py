"""Run a real NBD server (qemu-nbd, from the qemu-utils package) for tests.

    from nbdserver import NbdServer
    with NbdServer(image, export="data") as srv:
        ... ferry --drive srv.url ...
        srv.kill9()            # simulate a crash (optional)

The server listens on 127.0.0.1 only, on a free port picked at start, and
runs in the foreground as our child (no --fork), so it stays in the test's
session: tests/run.py kills it even if the test itself dies. Leaving the
`with` block stops it. Skips the test (harness.Skip) when qemu-nbd is not
installed. Standard library only.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness


def qemu_nbd():
    """Path of qemu-nbd, or None."""
    found = shutil.which("qemu-nbd")
    if found:
        return found
    for d in ("/usr/bin", "/usr/sbin", "/usr/local/bin"):
        p = os.path.join(d, "qemu-nbd")
        if os.access(p, os.X_OK):
            return p
    return None


def require_qemu_nbd():
    p = qemu_nbd()
    if not p:
        raise harness.Skip("qemu-nbd not installed (package qemu-utils; run ./setup)")
    return p


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A port on 127.0.0.1 where (very likely) nothing listens."""
    return free_port()


def nbd_greets(port, timeout=1.0):
    """True if something on 127.0.0.1:port sends the NBD greeting."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while len(data) < 8:
                chunk = s.recv(8 - len(data))
                if not chunk:
                    break
                data += chunk
            return data == b"NBDMAGIC"
    except OSError:
        return False


class NbdServer:
    """qemu-nbd exporting `image` (raw) as `export` on 127.0.0.1."""

    def __init__(self, image, export="data", readonly=False, extra=()):
        self.image = str(image)
        self.export = export
        self.readonly = readonly
        self.extra = list(extra)
        self.port = None
        self.proc = None
        self.logdir = tempfile.mkdtemp(prefix="nbdsrv-")
        self.log_path = os.path.join(self.logdir, "qemu-nbd.log")

    @property
    def url(self):
        return f"nbd://127.0.0.1:{self.port}/{self.export}"

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self, timeout=15):
        exe = require_qemu_nbd()
        last = ""
        for _ in range(5):
            port = free_port()
            argv = [exe, "--persistent", "--shared=8", "--bind=127.0.0.1", f"--port={port}",
                    f"--export-name={self.export}", "--format=raw", *self.extra]
            if self.readonly:
                argv.append("--read-only")
            argv.append(self.image)
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT)
            self.port = port
            deadline = time.monotonic() + harness.scaled(timeout)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if nbd_greets(port):
                    return self
                time.sleep(0.05)
            last = self.log()
            self.stop()
            if "in use" not in last:
                break
        raise AssertionError(f"qemu-nbd did not start on 127.0.0.1:{self.port}:\n{harness.tail(last)}")

    def kill9(self):
        """SIGKILL the server (a crash, as far as its clients can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        """Stop the server (SIGTERM, then SIGKILL). Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.logdir, ignore_errors=True)
        return False


class FakeNbd:
    """A minimal NBD server in a thread, for failure cases real servers do
    not produce on demand. mode:
      "refuse"  fixed newstyle greeting, then NBD_REP_ERR_UNKNOWN (with a
                message) for every NBD_OPT_GO / NBD_OPT_INFO
      "silent"  accepts connections and never sends a byte
      "garbage" sends a non-NBD greeting
    Listens on 127.0.0.1, a free port (self.port)."""

    def __init__(self, mode="refuse"):
        import threading
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def url(self, export="data"):
        return f"nbd://127.0.0.1:{self.port}/{export}"

    def _loop(self):
        import struct
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            try:
                c.settimeout(10)
                if self.mode == "silent":
                    continue
                if self.mode == "garbage":
                    c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                    continue
                c.sendall(b"NBDMAGIC" + b"IHAVEOPT" + struct.pack(">H", 3))
                self._recv(c, 4)
                while True:
                    magic, opt, length = struct.unpack(">QII", self._recv(c, 16))
                    self._recv(c, length)
                    if opt in (6, 7):
                        msg = b"no export of that name here"
                        c.sendall(struct.pack(">QIII", 0x3e889045565a9, opt, 0x80000006, len(msg)) + msg)
                    elif opt == 2:   # NBD_OPT_ABORT
                        break
                    else:
                        c.sendall(struct.pack(">QIII", 0x3e889045565a9, opt, 0x80000001, 0))
            except (OSError, EOFError):
                pass

    @staticmethod
    def _recv(c, n):
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def close(self):
        self._stop = True
        self.thread.join(timeout=2)
        for c in self.conns:
            c.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
