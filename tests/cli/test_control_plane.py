"""The control plane under concurrent requests (issue 9): run state and
pause holds, one job per VM, and what a standby does with a bad checkpoint.

Each test races or interleaves control requests against VMs running a fake
kernel (an endless loop, so no guest build is needed) on loopback:

- migrate (and save) while replicating are refused;
- a replication epoch's pause and resume never end an operator's pause;
- `resume` during a migration's final copy is refused and the migration
  still completes with --verify;
- save and migrate issued at once from two clients: the VM never crashes,
  a refusal names the job that runs, and save reports its own file;
- switchover racing replicate-stop: exactly one wins, and what it says is
  what happened;
- a checkpoint with a DISK_WRITE outside the disk is refused whole: the
  standby acknowledges nothing, and a later takeover runs the previous
  checkpoint (its RAM and disk untouched by the refused one).
"""

import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from harness import run_ferry  # noqa: E402
from migration import (LOCALHOST, REC_CLOCK, REC_DEVICE, REC_END, REC_ERROR, REC_GO,  # noqa: E402
                       REC_MACHINE, REC_PAGES, REC_RUNNING, STREAM_HEADER_SIZE, Background,
                       StreamProxy, crc32c, ctl_request, fake_kernel, free_port, record,
                       records, wait_for, wait_migration)

REC_CHECKPOINT = 7
REC_DISK_WRITE = 10
REC_ACK = 0x104
PAGE = 4096


def _tmp():
    return Path(tempfile.mkdtemp(prefix="fcp-"))


class FakeVM:
    """`ferry run` of a fake kernel with a control socket."""

    def __init__(self, *extra, mem="16M"):
        self.dir = _tmp()
        self.control = str(self.dir / "ctl.sock")
        self.bg = Background([harness.ferry(), "run", "--kernel", fake_kernel(str(self.dir)),
                              "--mem", mem, "--console", "none", "--control", self.control,
                              *extra])

    def __enter__(self):
        def up():
            if not self.bg.running():
                raise AssertionError(f"VM exited early\n{self.bg.finish(5).describe()}")
            return os.path.exists(self.control)
        wait_for(up, 30, "the VM's control socket")
        return self

    def request(self, obj, timeout=30):
        return ctl_request(self.control, obj, timeout=timeout)

    def check_alive(self):
        """Still running (no crash, no sanitizer report) and answering."""
        err = self.bg.stderr_so_far()
        harness.assert_no_sanitizer(err, "VM stderr")
        assert self.bg.running(), f"the VM exited:\n{err}"
        st = self.request({"cmd": "status"})
        assert st["ok"], st
        return st

    def replication_state(self):
        rs = self.request({"cmd": "replication-status"}).get("replication") or {}
        return rs.get("state")

    def __exit__(self, *exc):
        self.bg.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


class Receiver:
    """`ferry run --standby` or `--incoming` on a free loopback port."""

    def __init__(self, mode, *extra):
        self.port = free_port()
        self.uri = f"tcp:{LOCALHOST}:{self.port}"
        self.bg = Background([harness.ferry(), "run", f"--{mode}", self.uri, "--console", "none",
                              *extra])

    def __enter__(self):
        def listening():
            if "waiting for a" in self.bg.stderr_so_far():
                return True
            if not self.bg.running():
                raise AssertionError(f"receiver exited\n{self.bg.finish(5).describe()}")
            return False
        wait_for(listening, 30, "the receiver to listen")
        return self

    def stderr(self):
        return self.bg.stderr_so_far()

    def wait_stderr(self, text, timeout=60):
        return wait_for(lambda: text in self.stderr(), timeout, f"{text!r} from the receiver")

    def __exit__(self, *exc):
        self.bg.kill()
        return False


class Sink:
    """A TCP server that accepts one connection and reads it slowly,
    answering nothing: a migration to it stays in its first round."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((LOCALHOST, 0))
        self.listener.listen(4)
        self.uri = f"tcp:{LOCALHOST}:{self.listener.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        self.listener.settimeout(0.1)
        conns = []
        while not self._stop.is_set():
            try:
                c, _ = self.listener.accept()
                c.settimeout(0.1)
                conns.append(c)
                self.connections += 1
            except OSError:
                pass
            for c in conns:
                try:
                    c.recv(65536)
                except OSError:
                    pass
        for c in conns:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        self.listener.close()
        return False


def race(vm, *requests, timeout=120):
    """Sends the requests from separate clients at the same moment; returns
    their responses in order."""
    barrier = threading.Barrier(len(requests))
    out = [None] * len(requests)

    def one(i, req):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(harness.scaled(timeout))
        try:
            s.connect(vm.control)
            barrier.wait()
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            out[i] = json.loads(buf) if buf else {"ok": False, "error": "<closed>"}
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            out[i] = {"ok": False, "error": f"<client error {type(e).__name__}: {e}>"}
        finally:
            s.close()
    threads = [threading.Thread(target=one, args=(i, r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(harness.scaled(timeout) + 10)
    return out


class Client:
    """One connection to a control socket, kept open: a VM whose guest
    moved away waits (a few seconds) for connected clients before it
    removes its socket, so this one can still read the final report."""

    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(harness.scaled(timeout))
        self.s.connect(path)
        self.buf = b""

    def request(self, obj):
        self.s.sendall(json.dumps(obj).encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            assert chunk, f"control socket closed without answering {obj}"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def wait_migration(self, states, timeout=60):
        def reached():
            mig = self.request({"cmd": "migrate-status"}).get("migration") or {}
            return mig if mig.get("state") in states else None
        return wait_for(reached, timeout, f"migration state {'/'.join(states)}")

    def close(self):
        self.s.close()


def start_replication(vm, sb, interval_ms=50):
    r = vm.request({"cmd": "replicate", "uri": sb.uri, "interval_ms": interval_ms})
    assert r["ok"], f"replicate failed: {r}"
    wait_for(lambda: vm.replication_state() == "protected", 60, "replication to protect the VM")


# --------------------------------------------------------------------------

def test_migrate_while_replicating_refused():
    with FakeVM() as vm, Receiver("standby") as sb, Sink() as sink:
        start_replication(vm, sb)
        r = vm.request({"cmd": "migrate", "uri": sink.uri})
        assert not r["ok"], f"migrate while replicating was accepted: {r}"
        assert "replication" in r["error"], f"the refusal does not name the replication: {r}"
        r = vm.request({"cmd": "save", "file": str(vm.dir / "s.ferrysave"), "keep_running": True})
        assert not r["ok"], f"save while replicating was accepted: {r}"
        assert "replication" in r["error"], r
        time.sleep(0.3)
        assert sink.connections == 0, "a refused migration connected to its destination"
        assert vm.replication_state() == "protected", "the refusals disturbed the replication"
        st = vm.check_alive()
        assert st.get("job") == "replication", st
        r = vm.request({"cmd": "replicate-stop"}, timeout=60)
        assert r["ok"], r
        assert vm.check_alive()["state"] == "running"


def test_operator_pause_survives_replication_epochs():
    # Each epoch pauses the guest briefly and lets it go: that must not end
    # a pause the operator asked for.
    with FakeVM() as vm, Receiver("standby") as sb:
        start_replication(vm, sb, interval_ms=20)
        assert vm.request({"cmd": "pause"})["ok"]
        st0 = vm.request({"cmd": "status"})
        epoch0 = vm.request({"cmd": "replication-status"})["replication"]["epoch"]
        time.sleep(1.0)
        st1 = vm.request({"cmd": "status"})
        rs = vm.request({"cmd": "replication-status"})["replication"]
        assert rs["state"] == "protected" and rs["epoch"] > epoch0 + 5, \
            f"replication did not go on while paused: {rs}"
        assert st1["state"] == "paused" and st1["paused_by"] == ["operator"], st1
        assert st1["instructions"] == st0["instructions"], \
            f"the guest ran while the operator had it paused: {st0['instructions']} -> " \
            f"{st1['instructions']} instructions"
        assert vm.request({"cmd": "resume"})["ok"]
        wait_for(lambda: vm.request({"cmd": "status"})["instructions"] > st1["instructions"],
                 10, "the guest to run after resume")
        assert vm.request({"cmd": "replicate-stop"}, timeout=60)["ok"]
        vm.check_alive()


def test_resume_refused_during_final_copy():
    # A non-live migration through a slow relay: the guest stays paused in
    # the final copy for seconds, long enough for a resume to try its luck.
    with FakeVM() as vm, Receiver("incoming") as dst, StreamProxy(dst.port, rate=12000) as proxy:
        c = Client(vm.control)
        r = c.request({"cmd": "migrate", "uri": proxy.uri, "live": False, "verify": True})
        assert r["ok"], r
        c.wait_migration(("completing",), 30)
        wait_for(lambda: c.request({"cmd": "status"})["state"] == "completing", 30,
                 "the run state to be completing")
        r = c.request({"cmd": "resume"})
        assert not r["ok"], f"resume during the final copy was accepted: {r}"
        assert "refused" in r["error"] and "migration" in r["error"], r
        st = c.request({"cmd": "status"})
        assert st["state"] == "completing" and "migration" in st["paused_by"], st
        r = c.request({"cmd": "pause"})  # an operator hold on top is harmless
        assert r["ok"], r
        mig = c.wait_migration(("completed", "failed", "cancelled"), 120)
        c.close()
        assert mig["state"] == "completed" and mig["verified"], f"migration: {mig}"
        dst.wait_stderr("guest resumed from")
        assert "verified" in dst.stderr(), dst.stderr()
        res = vm.bg.finish(30)
        assert res.rc == 0, res.describe()


def test_save_and_migrate_concurrently():
    with FakeVM() as vm:
        refusals = 0
        for i in range(6):
            path = str(vm.dir / f"race{i}.ferrysave")
            with Sink() as sink:
                save_r, mig_r = race(vm, {"cmd": "save", "file": path, "keep_running": True},
                                     {"cmd": "migrate", "uri": sink.uri})
                for name, r in (("save", save_r), ("migrate", mig_r)):
                    if not r["ok"]:
                        refusals += 1
                        assert "already running" in r["error"], f"{name} failed, not refused: {r}"
                assert save_r["ok"] or mig_r["ok"], f"both refused: {save_r} {mig_r}"
                if save_r["ok"]:
                    # save answers with its own job's report, whatever ran after it.
                    rep = save_r.get("migration") or {}
                    assert rep.get("uri") == f"file:{path}" and rep.get("state") == "completed", \
                        f"save answered with another job's report: {save_r}"
                    assert os.path.getsize(path) > STREAM_HEADER_SIZE
                if mig_r["ok"]:
                    vm.request({"cmd": "migrate-cancel"})
                    wait_migration(vm.control, ("cancelled", "failed"), 60)
                assert vm.check_alive()["state"] == "running"
        # And when the migration surely runs, a save is refused.
        with Sink() as sink:
            assert vm.request({"cmd": "migrate", "uri": sink.uri})["ok"]
            wait_migration(vm.control, ("active",), 30)
            r = vm.request({"cmd": "save", "file": str(vm.dir / "late.ferrysave")})
            assert not r["ok"] and "migration" in r["error"], r
            vm.request({"cmd": "migrate-cancel"})
            wait_migration(vm.control, ("cancelled", "failed"), 60)
        assert refusals >= 1
        vm.check_alive()


def test_switchover_races_replicate_stop():
    with FakeVM() as vm, Receiver("standby") as sb:
        # Long epochs: both requests land while the job waits for the next.
        start_replication(vm, sb, interval_ms=1500)
        sw, stop = race(vm, {"cmd": "switchover"}, {"cmd": "replicate-stop"})
        assert sw["ok"] != stop["ok"], f"exactly one must win:\nswitchover: {sw}\nstop: {stop}"
        if sw["ok"]:
            assert sw["replication"]["state"] == "switched", sw
            assert "switchover" in stop["error"], stop
            res = vm.bg.finish(30)
            assert res.rc == 0 and "switched over" in res.stderr, res.describe()
            sb.wait_stderr("switchover: taking over")
            sb.wait_stderr("guest resumed from")
        else:
            assert "stop" in sw["error"] or "not running" in sw["error"], sw
            assert vm.replication_state() == "stopped"
            assert vm.check_alive()["state"] == "running"
            res = sb.bg.finish(30)
            assert "stopped replication" in res.stderr and "guest resumed" not in res.stderr, \
                res.describe()


# --------------------------------------------------------------------------
# A standby fed by hand

def _read_record(s):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            assert chunk, "the standby closed the connection"
            buf += chunk
        return buf
    head = exact(8)
    rtype, rlen = struct.unpack("<II", head)
    rest = exact(rlen + 4)
    assert struct.unpack("<I", rest[rlen:])[0] == crc32c(head + rest[:rlen]), "bad CRC"
    return rtype, rest[:rlen]


def _page_record(offset, data):
    return record(REC_PAGES, struct.pack("<II", 1, 0) + struct.pack("<Q", offset) + data)


def _page_in(data, offset):
    """The content of the page at `offset` in a stream's PAGES records (the
    last one wins), or None if the stream never sent it."""
    found = None
    for off, rtype, rlen in records(data):
        if rtype != REC_PAGES:
            continue
        body = data[off + 8:off + 8 + rlen]
        n = struct.unpack_from("<I", body)[0]
        pos = 8 + 8 * n
        for i in range(n):
            e = struct.unpack_from("<Q", body, 8 + 8 * i)[0]
            if e & 1:
                content = bytes(PAGE)
            else:
                content, pos = body[pos:pos + PAGE], pos + PAGE
            if e & ~0xfff == offset:
                found = content
    return found


def test_standby_refuses_checkpoint_with_bad_disk_range():
    tmp = _tmp()
    disk = tmp / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    # The state to replicate: a save of a fake-kernel VM with that disk.
    save_path = tmp / "base.ferrysave"
    with FakeVM("--drive", f"file={disk}") as vm:
        r = vm.request({"cmd": "save", "file": str(save_path)}, timeout=60)
        assert r["ok"], r
    base = save_path.read_bytes()
    recs = records(base)
    header = base[:STREAM_HEADER_SIZE]

    def raw(i):
        off, _, rlen = recs[i]
        return base[off:off + rlen + 12]
    machine = next(raw(i) for i, r in enumerate(recs) if r[1] == REC_MACHINE)
    pages = b"".join(raw(i) for i, r in enumerate(recs) if r[1] == REC_PAGES)
    devices = b"".join(raw(i) for i, r in enumerate(recs) if r[1] in (REC_DEVICE, REC_CLOCK))
    marked = 8 << 20  # a page in the middle of RAM the guest never wrote
    before = _page_in(base, marked)
    assert before in (None, bytes(PAGE)), "the test page is not blank in the base state"

    control = str(tmp / "standby.sock")
    with Receiver("standby", "--drive", f"file={disk}", "--control", control) as sb:
        s = socket.create_connection((LOCALHOST, sb.port), timeout=harness.scaled(30))
        try:
            s.sendall(header + machine)
            s.sendall(record(REC_CHECKPOINT, struct.pack("<QQ", 1, 0)) + pages + devices +
                      record(REC_END))
            rtype, body = _read_record(s)
            assert rtype == REC_ACK and body == struct.pack("<Q", 1), (rtype, body)
            # Checkpoint 2: a page written, then a disk write past the end
            # of the 1 MiB disk. Refused whole, nothing of it applied.
            bad_write = struct.pack("<IQ", 0, 1 << 20) + b"\xee" * 512
            s.sendall(record(REC_CHECKPOINT, struct.pack("<QQ", 2, 0)) +
                      _page_record(marked, b"\xab" * PAGE) + devices +
                      record(REC_DISK_WRITE, bad_write) + record(REC_END))
            rtype, body = _read_record(s)
            assert rtype == REC_ERROR, f"checkpoint 2 not refused: {rtype:#x} {body!r}"
            why = body.decode("utf-8", "replace")
            assert "outside the disk" in why and "checkpoint 1" in why, why
            # The standby still holds checkpoint 1: handed over now, it runs that.
            s.sendall(record(REC_GO))
            rtype, body = _read_record(s)
            assert rtype == REC_RUNNING, f"{rtype:#x} {body!r}"
        finally:
            s.close()
        sb.wait_stderr("taking over from checkpoint 1")
        wait_for(lambda: os.path.exists(control), 30, "the standby's control socket")
        after_path = tmp / "after.ferrysave"
        r = ctl_request(control, {"cmd": "save", "file": str(after_path)}, timeout=60)
        assert r["ok"], r
        harness.assert_no_sanitizer(sb.stderr(), "standby stderr")
    after = _page_in(after_path.read_bytes(), marked)
    assert after in (None, bytes(PAGE)), "the refused checkpoint's page reached the standby's RAM"
    assert disk.read_bytes() == bytes(1 << 20), "the refused checkpoint wrote the disk"
    shutil.rmtree(tmp, ignore_errors=True)
