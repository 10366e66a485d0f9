"""The guest's disk on a real NBD server (qemu-nbd from qemu-utils):
ferry run --drive nbd://127.0.0.1:PORT/data.

  mount_read_write   mount an ext4 image from the server, read known files,
                     write one, unmount, power off; the write is checked on
                     the host with debugfs after the server is stopped
  server_stalled     qemu-nbd is stopped (SIGSTOP) with the connection open:
                     the request times out, the guest gets an I/O error
                     instead of hanging, and the VM keeps answering meanwhile
  readonly           a server exporting read-only (qemu-nbd --read-only)
                     gives the guest a read-only disk
  server_killed      qemu-nbd is killed with SIGKILL while the guest reads
                     the disk in a loop: the guest sees I/O errors, stays
                     responsive, and ferry reports the lost connection once

Skipped when the guest is not built or qemu-nbd / mkfs.ext4 / debugfs are
missing. Servers listen on 127.0.0.1 only and are stopped even when a test
fails.
"""

import hashlib
import os
import signal
import time
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import Skip, require_guest, timeout  # noqa: E402
from ferryvm import FerryVM  # noqa: E402
from nbdserver import NbdServer, require_qemu_nbd  # noqa: E402

BOOT_TIMEOUT = 120  # seconds, before FERRY_TEST_TIMEOUT_SCALE

HELLO = "hello from an NBD disk\n"


def tool(name):
    for d in (None, "/usr/sbin", "/sbin"):
        p = shutil.which(name) if d is None else os.path.join(d, name)
        if p and os.access(p, os.X_OK):
            return p
    raise Skip(f"{name} not installed (e2fsprogs)")


def lines(text):
    return [line.strip() for line in text.splitlines()]


def make_ext4(workdir):
    """A 64 MiB ext4 image holding hello.txt and a 3 MiB pseudo-random file
    (bigger than one NBD request chunk). Returns (image, md5 of big.bin)."""
    mkfs = tool("mkfs.ext4")
    src = Path(workdir) / "src"
    src.mkdir()
    (src / "hello.txt").write_text(HELLO)
    big = bytes((i * 131 + (i >> 12)) & 0xFF for i in range(3 << 20))
    (src / "big.bin").write_bytes(big)
    img = Path(workdir) / "data.ext4"
    subprocess.run([mkfs, "-F", "-q", "-d", str(src), str(img), "64M"], check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return img, hashlib.md5(big).hexdigest()


def debugfs_cat(img, path):
    r = subprocess.run([tool("debugfs"), "-R", f"cat {path}", str(img)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return r.stdout.decode("utf-8", "replace")


@timeout(400)
def test_mount_read_write():
    require_guest()
    require_qemu_nbd()
    work = tempfile.mkdtemp(prefix="ferry-nbd-")
    try:
        img, big_md5 = make_ext4(work)
        with NbdServer(img, export="data") as srv:
            with FerryVM(["--drive", srv.url]) as v:
                v.boot(BOOT_TIMEOUT)
                v.run("mkdir -p /mnt/nbd && mount -t ext4 /dev/vda /mnt/nbd")
                out = v.run("cat /mnt/nbd/hello.txt")
                assert HELLO.strip() in lines(out), f"hello.txt read as {out!r}"
                out = v.run("md5sum /mnt/nbd/big.bin", timeout=120)
                assert big_md5 in out, f"big.bin md5 {out!r}, want {big_md5}"
                v.run("echo written by the guest > /mnt/nbd/written.txt && sync")
                v.run("umount /mnt/nbd")
                v.sendline("poweroff")
                rc = v.wait_exit(60)
                assert rc == 0, f"ferry exited with {rc} after poweroff\n{v.stderr()}"
                assert "connection lost" not in v.stderr(), v.stderr()
        # The server is stopped: the image is quiescent.
        got = debugfs_cat(img, "/written.txt")
        assert "written by the guest" in got, f"debugfs cat /written.txt: {got!r}"
        assert HELLO in debugfs_cat(img, "/hello.txt")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@timeout(400)
def test_server_killed():
    require_guest()
    require_qemu_nbd()
    work = tempfile.mkdtemp(prefix="ferry-nbd-")
    try:
        img = Path(work) / "raw.img"
        with open(img, "wb") as f:
            f.write(os.urandom(16 << 20))
        with NbdServer(img, export="data") as srv:
            with FerryVM(["--drive", srv.url]) as v:
                v.boot(BOOT_TIMEOUT)
                # Console stays quiet: kernel errors go to the log only.
                v.run("dmesg -n 1")
                rd = ("echo 3 > /proc/sys/vm/drop_caches; "
                      "dd if=/dev/vda of=/dev/null bs=64k count=16")
                v.run(rd, timeout=120)   # works while the server is up
                v.run(f"(while true; do {rd}; done) > /tmp/dd.log 2>&1 & echo $! > /tmp/dd.pid")
                v.run("sleep 1")
                srv.kill9()
                # A fresh read of a block not yet cached must fail.
                status, out = v.run_status(rd, timeout=120)
                assert status != 0, f"dd after the server died exited 0:\n{out}"
                # The VM still answers promptly.
                out = v.run("echo $((40+2))", timeout=30)
                assert "42" in lines(out), out
                out = v.run("dmesg | grep -i 'error' | tail -5")
                assert "vda" in out, f"no I/O error for vda in dmesg:\n{out}"
                v.run("kill $(cat /tmp/dd.pid)")
                status, out = v.run_status("tail -3 /tmp/dd.log")
                print(f"guest dd log (end):\n{out}")
                err = v.stderr()
                lost = [ln for ln in err.splitlines() if "connection lost" in ln]
                assert len(lost) == 1, f"want one 'connection lost' line on stderr:\n{err}"
                assert lost[0].startswith(f"ferry: {srv.url}: connection lost: "), lost[0]
                print(lost[0])
                v.sendline("poweroff")
                rc = v.wait_exit(60)
                assert rc == 0, f"ferry exited with {rc} after poweroff\n{v.stderr()}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@timeout(300)
def test_readonly():
    require_guest()
    require_qemu_nbd()
    work = tempfile.mkdtemp(prefix="ferry-nbd-")
    try:
        img, _ = make_ext4(work)
        with NbdServer(img, export="data", readonly=True) as srv:
            with FerryVM(["--drive", srv.url]) as v:
                v.boot(BOOT_TIMEOUT)
                out = v.run("cat /sys/block/vda/ro")
                assert "1" in lines(out), f"/sys/block/vda/ro is {out!r} for a read-only export"
                v.run("mkdir -p /mnt/nbd && mount -t ext4 -o ro /dev/vda /mnt/nbd")
                out = v.run("cat /mnt/nbd/hello.txt")
                assert HELLO.strip() in lines(out), f"hello.txt read as {out!r}"
                v.run("umount /mnt/nbd")
                v.sendline("poweroff")
                rc = v.wait_exit(60)
                assert rc == 0, f"ferry exited with {rc} after poweroff\n{v.stderr()}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@timeout(400)
def test_server_stalled():
    require_guest()
    require_qemu_nbd()
    work = tempfile.mkdtemp(prefix="ferry-nbd-")
    try:
        img = Path(work) / "raw.img"
        with open(img, "wb") as f:
            f.write(os.urandom(8 << 20))
        with NbdServer(img, export="data") as srv:
            with FerryVM(["--drive", srv.url]) as v:
                v.boot(BOOT_TIMEOUT)
                v.run("dmesg -n 1")
                v.run("dd if=/dev/vda of=/dev/null bs=64k count=4", timeout=120)
                os.kill(srv.proc.pid, signal.SIGSTOP)
                try:
                    v.run("(dd if=/dev/vda of=/dev/null bs=64k skip=64 count=4; "
                          "echo dd-status=$? > /tmp/dd.done) > /tmp/dd.log 2>&1 & true")
                    # While the request waits on the server, the VM answers.
                    out = v.run("echo $((40+2))", timeout=5)
                    assert "42" in lines(out), out
                    t0 = time.monotonic()
                    out = v.run("while [ ! -e /tmp/dd.done ]; do sleep 0.5; done; "
                                "cat /tmp/dd.done", timeout=90)
                    waited = time.monotonic() - t0
                    print(f"dd gave up after ~{waited:.1f} s: {out.strip()}")
                    assert "dd-status=0" not in out, f"dd succeeded against a stopped server: {out}"
                finally:
                    srv.kill9()
                err = v.stderr()
                lost = [ln for ln in err.splitlines() if "connection lost" in ln]
                assert len(lost) == 1, f"want one 'connection lost' line on stderr:\n{err}"
                assert "no answer" in lost[0], lost[0]
                print(lost[0])
                v.sendline("poweroff")
                rc = v.wait_exit(60)
                assert rc == 0, f"ferry exited with {rc} after poweroff\n{v.stderr()}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
