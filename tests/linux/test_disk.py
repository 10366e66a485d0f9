"""virtio-blk with the raw-file backend, seen from the guest.

Each test copies the cached ext4 data disk (build/guest/data.ext4, made by
guest/build-datadisk.sh) into its own temp directory, boots the guest with
`--drive file=COPY[,readonly=on]`, uses /dev/vda, powers off, and then
checks the image on the host with e2fsprogs (debugfs, e2fsck). The cached
image itself is never attached.

Known contents of the data disk: /hello.txt and /seq.txt (see
guest/build-datadisk.sh).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from harness import Skip, require_guest, timeout  # noqa: E402
from ferryvm import FerryVM  # noqa: E402

BOOT_TIMEOUT = 120  # seconds, before FERRY_TEST_TIMEOUT_SCALE
HELLO = "hello from the ferry data disk"
SEQ_SHA256 = hashlib.sha256("".join(f"{i}\n" for i in range(1, 200001)).encode()).hexdigest()
SECTORS = 64 * 1024 * 1024 // 512
SBIN = ["/usr/sbin", "/sbin"]


def tool(name):
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))
    if not path:
        raise Skip(f"{name} not found on the host (install e2fsprogs)")
    return path


def disk_copy(name="disk.ext4"):
    """A private copy of the data disk; Skip when the guest has none."""
    src = require_guest() / "data.ext4"
    if not src.is_file():
        raise Skip(f"no {src} (run make guest)")
    dst = Path(tempfile.mkdtemp(prefix="ferry-disk-")) / name
    # Sparse copy: the image is mostly holes.
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)
    return dst


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def debugfs_cat(image, path):
    r = subprocess.run([tool("debugfs"), "-R", f"cat {path}", str(image)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"debugfs cat {path} failed:\n{r.stderr}"
    return r.stdout


def fsck_clean(image):
    r = subprocess.run([tool("e2fsck"), "-fn", str(image)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"e2fsck -fn reports problems (status {r.returncode}):\n{r.stdout}{r.stderr}"


def lines(text):
    return [line.strip() for line in text.splitlines()]


def sha_of(out):
    """The hash from `sha256sum FILE` output."""
    for line in lines(out):
        parts = line.split()
        if parts and len(parts[0]) == 64:
            return parts[0]
    return None


@timeout(400)
def test_read_write():
    tool("debugfs")
    img = disk_copy()
    with FerryVM(["--drive", f"file={img}"]) as v:
        v.boot(BOOT_TIMEOUT)
        out = v.run("cat /sys/block/vda/size /sys/block/vda/ro /sys/block/vda/serial")
        assert lines(out) == [str(SECTORS), "0", img.name], f"/sys/block/vda: {out!r}"
        v.run("mount /dev/vda /mnt")
        out = v.run("cat /mnt/hello.txt")
        assert HELLO in lines(out), f"/mnt/hello.txt: {out!r}"
        out = v.run("sha256sum /mnt/seq.txt", timeout=120)
        assert sha_of(out) == SEQ_SHA256, f"seq.txt read back wrong: {out!r}"
        # A small file and a larger one (many requests, multi-segment).
        v.run("echo written by the ferry guest > /mnt/newfile.txt")
        v.run("seq 100000 -1 1 > /mnt/rev.txt", timeout=120)
        v.run("sync", timeout=120)
        # Dropping the page cache and reading back goes to the device again.
        v.run("echo 3 > /proc/sys/vm/drop_caches")
        out = v.run("cat /mnt/newfile.txt")
        assert "written by the ferry guest" in lines(out), f"read back: {out!r}"
        v.run("umount /mnt", timeout=120)
        rc = v.poweroff(60)
        assert rc == 0, f"ferry exited {rc} after poweroff\n{v.stderr()}"
    assert debugfs_cat(img, "/newfile.txt") == "written by the ferry guest\n"
    rev = debugfs_cat(img, "/rev.txt")
    want = "".join(f"{i}\n" for i in range(100000, 0, -1))
    assert rev == want, f"/rev.txt on the host: {len(rev)} bytes, want {len(want)}"
    assert debugfs_cat(img, "/hello.txt") == HELLO + "\n"
    fsck_clean(img)
    shutil.rmtree(img.parent, ignore_errors=True)


@timeout(300)
def test_readonly():
    img = disk_copy()
    before = sha256_file(img)
    with FerryVM(["--drive", f"file={img},readonly=on"]) as v:
        v.boot(BOOT_TIMEOUT)
        out = v.run("cat /sys/block/vda/ro")
        assert lines(out) == ["1"], f"/sys/block/vda/ro: {out!r}"
        v.run("mount -o ro /dev/vda /mnt")
        out = v.run("cat /mnt/hello.txt")
        assert HELLO in lines(out), f"/mnt/hello.txt: {out!r}"
        status, out = v.run_status("echo x > /mnt/newfile.txt")
        assert status != 0, f"writing to a read-only mount succeeded: {out!r}"
        # Remounting read-write must not give a writable filesystem (busybox
        # mount may fall back to read-only instead of failing).
        v.run_status("mount -o remount,rw /mnt")
        out = v.run("grep ' /mnt ' /proc/mounts")
        assert " ro," in out or " ro " in out, f"/mnt is not read-only: {out!r}"
        status, out = v.run_status("echo x > /mnt/newfile.txt")
        assert status != 0, f"writing after remount,rw succeeded: {out!r}"
        v.run("umount /mnt")
        # A plain (read-write) mount attempt: refused, or read-only.
        status, out = v.run_status("mount /dev/vda /mnt")
        if status == 0:
            out = v.run("grep ' /mnt ' /proc/mounts")
            assert " ro," in out or " ro " in out, f"read-write mount succeeded: {out!r}"
            status, out = v.run_status("echo x > /mnt/newfile.txt")
            assert status != 0, f"writing to the disk succeeded: {out!r}"
            v.run("umount /mnt")
        # Raw writes to the device are refused too.
        status, out = v.run_status("dd if=/dev/zero of=/dev/vda bs=512 count=1 seek=100 conv=fsync")
        assert status != 0, f"dd to a read-only disk succeeded: {out!r}"
        rc = v.poweroff(60)
        assert rc == 0, f"ferry exited {rc} after poweroff\n{v.stderr()}"
    assert sha256_file(img) == before, "the read-only image changed"
    shutil.rmtree(img.parent, ignore_errors=True)


@timeout(300)
def test_raw_device_io():
    """Raw reads and writes of /dev/vda, no filesystem: a known sector
    pattern written at the end of the disk reaches the file at the right
    offset, and a read past the end returns nothing."""
    img = disk_copy()
    with FerryVM(["--drive", f"file={img}"]) as v:
        v.boot(BOOT_TIMEOUT)
        # The last 8 sectors: "FERRY<n>" padded by dd's conv=sync.
        v.run(f"ok=0; for i in 0 1 2 3 4 5 6 7; do echo FERRY$i | "
              f"dd of=/dev/vda bs=512 count=1 seek=$(({SECTORS} - 8 + i)) conv=sync,fsync "
              f"2>/dev/null || ok=1; done; [ $ok = 0 ]")
        out = v.run(f"dd if=/dev/vda bs=512 skip={SECTORS - 8} count=8 2>/dev/null | "
                    f"tr -d '\\000'")
        assert lines(out)[:8] == [f"FERRY{i}" for i in range(8)], f"read back: {out!r}"
        out = v.run(f"dd if=/dev/vda bs=512 skip={SECTORS} count=1 2>/dev/null | wc -c")
        assert "0" in lines(out), f"read past the end returned {out!r} bytes"
        rc = v.poweroff(60)
        assert rc == 0, f"ferry exited {rc} after poweroff\n{v.stderr()}"
    with open(img, "rb") as f:
        f.seek((SECTORS - 8) * 512)
        tail = f.read(8 * 512)
    for i in range(8):
        sector = tail[i * 512:(i + 1) * 512]
        want = f"FERRY{i}\n".encode()
        assert sector == want + b"\0" * (512 - len(want)), f"sector {SECTORS - 8 + i}: {sector[:16]!r}"
    shutil.rmtree(img.parent, ignore_errors=True)
