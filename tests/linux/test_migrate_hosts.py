"""Live migration between two "hosts" (network namespaces host-a and
host-b, tests/lib/netns.py) while the guest is busy on every front:

  - a TCP service in the guest streams numbered, checksummed lines
    (`N CHECK`, CHECK = N*2654435761 mod 2^32) to a client in namespace
    client, which checks every line: the connection must survive the move,
    with no line lost, duplicated or corrupted, and go on after it;
  - memdirty rewrites and verifies 32 MiB of guest memory: it must keep
    reporting errors=0 on host-b;
  - a loop writes a file to the guest's disk every second, drops the page
    cache and reads the file's sha256 back (logged to the guest's tmpfs,
    which travels with the guest); every hash, before and after the move,
    must be the one of what was written, and the file the loop wrote last
    (on host-b) must be on the disk image afterwards, with a clean fsck.

  shared_disk   the disk is a copy of build/guest/data.ext4 that both hosts
                open by the same path (shared storage): --drive file=PATH
  nbd_disk      the disk is served by qemu-nbd running in namespace client
                on its LAN address: --drive nbd://10.77.0.100:10809/data on
                both hosts

This is scripts/demo.py as a test: the service, the client program and its
reader come from there. `ferry migrate` runs inside host-a, so the stream
crosses the LAN to host-b.

Skipped without root / network namespaces / /dev/net/tun, without the
guest (build/guest: Image, initramfs.cpio, data.ext4), without qemu-nbd
(nbd_disk) or e2fsprogs. Everything the tests start is stopped and the
namespaces removed, also on failure.
"""

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import harness  # noqa: E402
from harness import Skip, require_guest, timeout  # noqa: E402
import netns  # noqa: E402
from migration import IncomingVM, Memdirty, SourceVM  # noqa: E402
from nbdserver import require_qemu_nbd  # noqa: E402


def _load_demo():
    """scripts/demo.py as a module (its service, client and client reader)."""
    path = harness.REPO / "scripts" / "demo.py"
    spec = importlib.util.spec_from_file_location("ferry_demo", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


demo = _load_demo()

BOOT_TIMEOUT = 120          # seconds; every timeout here is scaled (ASan)
MIGRATION_PORT = 4444
NBD_PORT = 10809
MEMDIRTY = demo.MEMDIRTY    # (MiB, MB/s)
DISK_LINES = 5000           # the file the disk loop writes: `seq i i+4999`
HASHES_BEFORE = 3           # disk loop reports wanted before migrating
HASHES_AFTER = 3            # ... and after it, on host-b
STREAM_BEFORE_S = 3.0       # client streaming before the migration

# The disk loop: write a file whose content depends on i, push it to the
# disk, drop the page cache so the read-back comes from the disk, log
# `disk i SHA256  -`. /tmp/disk.stop ends it after a complete round.
DISK_LOG = "/tmp/disk.log"
DISK_LOOP = (
    "i=0; while [ ! -e /tmp/disk.stop ]; do i=$((i+1)); "
    f"seq $i $((i+{DISK_LINES - 1})) > /mnt/data/rw.txt && sync && "
    "echo 3 > /proc/sys/vm/drop_caches && "
    "echo \"disk $i $(sha256sum < /mnt/data/rw.txt)\"; sleep 0.2; done; echo disk-done")
_DISK_LINE = re.compile(r"^disk (\d+) ([0-9a-f]{64})  -$")


def disk_content(i):
    return "".join(f"{k}\n" for k in range(i, i + DISK_LINES)).encode()


def disk_hash(i):
    return hashlib.sha256(disk_content(i)).hexdigest()


def tool(name):
    for p in (shutil.which(name), f"/usr/sbin/{name}", f"/sbin/{name}"):
        if p and os.access(p, os.X_OK):
            return p
    raise Skip(f"{name} not installed (e2fsprogs)")


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def disk_reports(vm):
    """The disk loop's log read through vm's shell: [i, ...], checked. Every
    line must be a report with the right hash for its i, the i's counting
    1, 2, 3, ... (a missing i is a failed write or read)."""
    out = vm.run(f"cat {DISK_LOG}", timeout=60)
    seen = []
    for line in (ln.strip() for ln in out.splitlines()):
        if not line or line == "disk-done":
            continue
        m = _DISK_LINE.match(line)
        assert m, f"{vm.name}: disk loop printed {line!r}:\n{harness.tail(out, 20)}"
        i, got = int(m.group(1)), m.group(2)
        assert i == len(seen) + 1, (f"{vm.name}: disk loop report {i} after "
                                    f"{len(seen)} (a round failed):\n{harness.tail(out, 20)}")
        assert got == disk_hash(i), (f"{vm.name}: the file written in round {i} read back "
                                     f"with sha256 {got}, want {disk_hash(i)}")
        seen.append(i)
    return seen


def wait_disk_reports(vm, n, timeout=60):
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        seen = disk_reports(vm)
        if len(seen) >= n:
            return seen
        assert time.monotonic() < deadline, (
            f"{vm.name}: the disk loop made {len(seen)} rounds, waited for {n}")
        time.sleep(1)


def check_image(img, last_i):
    """After the guest is gone: the image's filesystem is clean and holds
    the file of the disk loop's last round."""
    r = subprocess.run([tool("e2fsck"), "-fn", str(img)], capture_output=True, text=True,
                       timeout=harness.scaled(60))
    assert r.returncode == 0, f"e2fsck -fn on the disk image: status {r.returncode}\n{r.stdout}{r.stderr}"
    r = subprocess.run([tool("debugfs"), "-R", "cat /rw.txt", str(img)], capture_output=True,
                       timeout=harness.scaled(60))
    got = hashlib.sha256(r.stdout).hexdigest()
    assert got == disk_hash(last_i), (
        f"/rw.txt on the disk image has sha256 {got} ({len(r.stdout)} bytes); want the file of "
        f"the last round, {last_i} ({disk_hash(last_i)})")


# --------------------------------------------------------------------------
# The NBD server, in namespace client
# --------------------------------------------------------------------------

_NBD_GREETS = r"""
import socket, sys, time
addr, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        with socket.create_connection((addr, port), timeout=2) as s:
            s.settimeout(2)
            if s.recv(8) == b"NBDMAGIC":
                print("greeting")
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
"""


class LanNbdServer:
    """qemu-nbd exporting image as "data" on CLIENT_IP:NBD_PORT, running in
    the client namespace (our child, in a process group of its own)."""

    def __init__(self, topo, image, workdir):
        self.topo, self.image = topo, str(image)
        self.url = f"nbd://{topo.CLIENT_IP}:{NBD_PORT}/data"
        self.log_path = os.path.join(workdir, "qemu-nbd.log")
        self.proc = None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def start(self):
        argv = [require_qemu_nbd(), "--persistent", "--shared=8", f"--bind={self.topo.CLIENT_IP}",
                f"--port={NBD_PORT}", "--export-name=data", "--format=raw", self.image]
        with open(self.log_path, "ab") as log:
            self.proc = self.topo.popen(self.topo.client, argv, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, process_group=0)
        # Reachable from the hosts over the LAN?
        r = self.topo.python(self.topo.host_a, _NBD_GREETS, self.topo.CLIENT_IP, str(NBD_PORT),
                             str(harness.scaled(15)), timeout=30, check=False)
        if "greeting" not in r.stdout:
            raise AssertionError(f"qemu-nbd in {self.topo.client} does not answer on "
                                 f"{self.topo.CLIENT_IP}:{NBD_PORT} from host-a "
                                 f"({'running' if self.proc.poll() is None else 'exited'}):\n"
                                 f"{harness.tail(self.log())}")
        return self

    def stop(self):
        """SIGTERM (qemu-nbd flushes the image and exits), then SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=harness.scaled(10))
            except subprocess.TimeoutExpired:
                harness.kill_group(self.proc.pid)
                self.proc.wait(timeout=10)
        self.proc = None


# --------------------------------------------------------------------------
# The scenario
# --------------------------------------------------------------------------

def start_service_and_client(vm, topo, workdir, stack):
    """Starts the demo's request service in the guest and its client in the
    client namespace (closed with `stack`); returns the client once it is
    connected and has its first answer."""
    vm.run(f"( {demo.SERVICE} ) </dev/null >/dev/null 2>&1 & echo service started")
    port = demo.SERVICE_PORT
    vm.run(f"for i in $(seq 20); do netstat -ltn | grep -q ':{port} ' && break; "
           f"sleep 1; done; netstat -ltn | grep -q ':{port} '", timeout=40)
    client = demo.Client(topo, workdir)
    stack.callback(client.close)
    deadline = time.monotonic() + harness.scaled(40)
    while not client.connected.wait(0.2):
        assert not client.done.is_set() and time.monotonic() < deadline, (
            f"client: {client.trouble() or 'could not connect'}")
    client.wait_lines(1, timeout=harness.scaled(20))
    return client


def migrate_between_hosts(storage):
    """storage: "file" (shared image path) or "nbd" (qemu-nbd in client)."""
    netns.require()
    require_guest()
    data = harness.BUILD / "guest" / "data.ext4"
    if not data.is_file():
        raise Skip("no build/guest/data.ext4 (run make guest)")
    tool("e2fsck")
    tool("debugfs")
    if storage == "nbd":
        require_qemu_nbd()

    with contextlib.ExitStack() as stack:
        workdir = tempfile.mkdtemp(prefix="fhosts-")
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        img = os.path.join(workdir, "disk.ext4")
        shutil.copyfile(data, img)

        topo = stack.enter_context(netns.Topology())
        if storage == "nbd":
            nbd = LanNbdServer(topo, img, workdir)
            stack.callback(nbd.stop)
            nbd.start()
            drive = nbd.url
        else:
            nbd = None
            drive = f"file={img}"

        # Source on host-a. (Leaving the stack closes the VMs; on success
        # that also checks their stderr and consoles for sanitizer reports
        # and kernel trouble.)
        src = SourceVM(["--net", f"tap={topo.TAP}", "--drive", drive,
                        "--append", topo.guest_append()], name="source",
                       log=os.path.join(workdir, "source-console.log"))
        src.argv = ["ip", "netns", "exec", topo.host_a, *src.argv]
        stack.enter_context(src)
        src.boot(BOOT_TIMEOUT)
        src.wait_control(timeout=10)

        # The workloads.
        md = Memdirty(src, *MEMDIRTY)
        src.run("mkdir -p /mnt/data && mount -t ext4 /dev/vda /mnt/data")
        src.run(f"( {DISK_LOOP} ) </dev/null >{DISK_LOG} 2>&1 & echo disk loop started")
        client = start_service_and_client(src, topo, workdir, stack)

        # Destination on host-b, same disk.
        dst = IncomingVM(["--net", f"tap={topo.TAP}", "--drive", drive],
                         port=MIGRATION_PORT, host=topo.HOST_B_IP, name="destination",
                         log=os.path.join(workdir, "destination-console.log"))
        dst.argv = ["ip", "netns", "exec", topo.host_b, *dst.argv]
        stack.enter_context(dst)
        dst.wait_listening(timeout=30)

        # Migrate once memdirty verifies pages, the disk loop has made a few
        # rounds and the client has streamed for a while.
        t_ready = time.monotonic() + STREAM_BEFORE_S
        deadline = time.monotonic() + harness.scaled(60)
        while True:
            md_before = md.snapshot(src)
            if md_before and md_before[-1][1] > 0:
                break
            assert time.monotonic() < deadline, f"memdirty did not get to verifying pages: {md_before}"
            time.sleep(0.5)
        wait_disk_reports(src, HASHES_BEFORE)
        time.sleep(max(0.0, t_ready - time.monotonic()))
        assert not client.trouble(), f"client, before the migration: {client.trouble()}"
        lines_before = client.lines()

        argv = ["ip", "netns", "exec", topo.host_a, harness.ferry(), "migrate", src.control,
                dst.uri, "--json"]
        t_mig0 = time.monotonic()
        res = harness.run_cmd(argv, timeout=180)
        t_mig1 = time.monotonic()
        harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry migrate output")
        try:
            report = json.loads(res.stdout)
        except ValueError:
            report = {}
        assert res.rc == 0 and report.get("state") == "completed", (
            f"the migration did not complete\n{res.describe()}")
        print(f"migration: {t_mig1 - t_mig0:.1f} s, report: {json.dumps(report)}")
        dst.wait_resumed(timeout=30)
        rc = src.wait_exit(timeout=30)
        assert rc == 0, f"source exited with {rc} after the migration\n{src.stderr()}"

        # On host-b: the stream goes on, the disk loop and memdirty too.
        lines_at_switch = client.lines()
        client.wait_lines(lines_at_switch + 1, timeout=harness.scaled(30),
                          what="the stream did not continue after the migration")
        dst.wait_prompt(timeout=30)
        disk_before = disk_reports(dst)
        assert len(disk_before) >= HASHES_BEFORE, disk_before
        disk_after = wait_disk_reports(dst, len(disk_before) + HASHES_AFTER, timeout=90)
        md_after = md.check_continues(dst, md_before, more=2, timeout=90)
        final = client.stop(timeout=harness.scaled(10))

        problems = []
        if final.get("error"):
            problems.append(f"client: {final['error']}")
        if final["gaps"] or final["missing"] or final["corrupt"] or final["duplicates"]:
            problems.append(f"client: gaps={final['gaps']} missing={final['missing']} "
                            f"corrupt={final['corrupt']} duplicates={final['duplicates']}; "
                            f"first: {final['first_problem']}")
        if final["partial_line"] > 100:
            problems.append(f"client: {final['partial_line']} bytes without a newline at the end")
        after = final["lines"] - lines_at_switch
        if after <= 0:
            problems.append("client received nothing after the migration")
        during = [(b - a) * 1000 for a, b in final["stalls"] if b >= t_mig0 and a <= t_mig1 + 1]
        print(f"client: {final['lines']} lines ({lines_before} before the migration, {after} after "
              f"it), longest pause around the migration "
              f"{max(during) if during else 0:.0f} ms; disk loop rounds "
              f"{len(disk_before)} -> {len(disk_after)}; memdirty {md_before[-1]} -> {md_after[-1]}")
        assert not problems, "; ".join(problems)

        # Stop the disk loop after a complete round, unmount, power off.
        dst.run("touch /tmp/disk.stop")
        dst.run(f"for i in $(seq 30); do grep -q disk-done {DISK_LOG} && break; sleep 1; done; "
                f"grep -q disk-done {DISK_LOG}", timeout=60)
        last_i = disk_reports(dst)[-1]
        dst.run("umount /mnt/data")
        md.stop(dst)
        rc = dst.poweroff(timeout=60)
        assert rc == 0, f"destination exited with {rc} at poweroff\n{dst.stderr()}"
        if nbd:
            nbd.stop()
        check_image(img, last_i)


@timeout(400)
def test_shared_disk():
    migrate_between_hosts("file")


@timeout(400)
def test_nbd_disk():
    migrate_between_hosts("nbd")
