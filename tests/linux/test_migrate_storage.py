"""Storage migration (`ferry migrate --copy-storage`): the guest's local
disk travels in the migration stream, so the destination needs no shared
storage.

  test_copy_storage_between_hosts
      host-a runs a VM on a local 256 MiB ext4 image; host-b has no image
      at all. While the guest writes, fsyncs and reads back checksummed
      files (test_migrate_hosts' disk loop) and a client in namespace
      client streams checked lines from a service in the guest, the VM
      moves with --copy-storage --verify. On host-b: the image exists
      under its --drive name (no .partial left), its SHA-256 before the
      guest ran there (ferry's verify line) equals the SHA-256 of the
      source image after the source stopped (the image at the pause), the
      client's stream survives, the disk loop goes on with correct hashes,
      and after poweroff the image fscks clean and holds the last file.
  test_copy_storage_connection_cut
      the connection is cut in the middle of the disk copy (a relay cuts
      inside a BLOCKS record): the source keeps running the guest, the
      destination fails, leaves only IMAGE.partial, and `ferry run` refuses
      that file.
  test_copy_storage_destination_disk_full
      the destination's image lives on a 16 MiB tmpfs and the guest's disk
      holds 32 MiB of data: the copy fails with "No space left", the source
      keeps running, the destination leaves only IMAGE.partial.

  test_copy_storage_with_readonly_disk
      a read-only disk shared by both sides next to a writable local one:
      only the writable one is copied (the report says 1 disk), both read
      back right on the destination.

  test_copy_storage_compressed
      with --compress zstd the blocks go as BLOCKS_Z records where that
      pays; --verify's image hash matches the source image's.

Skipped without the guest, e2fsprogs (mke2fs, e2fsck, debugfs), root for
the namespaces / tmpfs mount.
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
from migration import (REC_BLOCKS, REC_BLOCKS_Z, IncomingVM, SourceVM, StreamProxy,  # noqa: E402
                       assert_source_alive, migrate, probe_drive)


def _load_hosts():
    """tests/linux/test_migrate_hosts.py as a module: its disk loop,
    checks and the demo service/client."""
    path = Path(__file__).resolve().parent / "test_migrate_hosts.py"
    spec = importlib.util.spec_from_file_location("ferry_hosts", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


hosts = _load_hosts()

BOOT_TIMEOUT = 120
MIGRATION_PORT = 4445
DISK_MIB = 256
VERIFY_LINE = re.compile(r"incoming disk in slot 0 verified \(sha256 ([0-9a-f]{64})\)")


def make_image(path, mib=DISK_MIB):
    """A fresh ext4 filesystem in a sparse image of mib MiB."""
    r = subprocess.run([hosts.tool("mke2fs"), "-q", "-F", "-t", "ext4", str(path), f"{mib}M"],
                       capture_output=True, text=True, timeout=harness.scaled(60))
    assert r.returncode == 0, f"mke2fs: {r.stdout}{r.stderr}"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_left_incomplete(img):
    """A failed copy leaves IMAGE.partial and no IMAGE; ferry run refuses
    the .partial file."""
    partial = img + ".partial"
    assert not os.path.exists(img), f"{img} exists after a failed storage copy"
    assert os.path.exists(partial), f"no {partial} after a failed storage copy"
    why = probe_drive(["--drive", f"file={partial}"])
    assert why and "incomplete storage copy" in why, (
        f"ferry run accepted the incomplete image {partial}: {why!r}")


# --------------------------------------------------------------------------
# Between two hosts
# --------------------------------------------------------------------------

@timeout(500)
def test_copy_storage_between_hosts():
    netns.require()
    require_guest()
    for t in ("mke2fs", "e2fsck", "debugfs"):
        hosts.tool(t)
    with contextlib.ExitStack() as stack:
        workdir = tempfile.mkdtemp(prefix="fstorage-")
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        os.makedirs(os.path.join(workdir, "a"))
        os.makedirs(os.path.join(workdir, "b"))
        src_img = os.path.join(workdir, "a", "disk.ext4")
        dst_img = os.path.join(workdir, "b", "disk.ext4")
        make_image(src_img)

        topo = stack.enter_context(netns.Topology())
        src = SourceVM(["--net", f"tap={topo.TAP}", "--drive", f"file={src_img}",
                        "--append", topo.guest_append()], name="source",
                       log=os.path.join(workdir, "source-console.log"))
        src.argv = ["ip", "netns", "exec", topo.host_a, *src.argv]
        stack.enter_context(src)
        src.boot(BOOT_TIMEOUT)
        src.wait_control(timeout=10)

        # Some data on the disk beyond the filesystem's metadata, then the
        # disk loop (write, sync, drop caches, read back, log the hash).
        src.run("mkdir -p /mnt/data && mount -t ext4 /dev/vda /mnt/data")
        src.run("dd if=/dev/urandom of=/mnt/data/random bs=1M count=4 2>/dev/null && sync && "
                "sha256sum /mnt/data/random > /tmp/random.sum && echo ok", timeout=120)
        src.run(f"( {hosts.DISK_LOOP} ) </dev/null >{hosts.DISK_LOG} 2>&1 & echo disk loop started")
        client = hosts.start_service_and_client(src, topo, workdir, stack)

        # host-b: no image yet, only the name for it.
        assert not os.path.exists(dst_img)
        dst = IncomingVM(["--net", f"tap={topo.TAP}", "--drive", f"file={dst_img}"],
                         port=MIGRATION_PORT, host=topo.HOST_B_IP, name="destination",
                         log=os.path.join(workdir, "destination-console.log"))
        dst.argv = ["ip", "netns", "exec", topo.host_b, *dst.argv]
        stack.enter_context(dst)
        dst.wait_listening(timeout=30)

        hosts.wait_disk_reports(src, hosts.HASHES_BEFORE)
        assert not client.trouble(), f"client, before the migration: {client.trouble()}"
        argv = ["ip", "netns", "exec", topo.host_a, harness.ferry(), "migrate", src.control,
                dst.uri, "--copy-storage", "--verify", "--json"]
        t0 = time.monotonic()
        res = harness.run_cmd(argv, timeout=300)
        t1 = time.monotonic()
        harness.assert_no_sanitizer(res.stdout + res.stderr, "ferry migrate output")
        try:
            report = json.loads(res.stdout)
        except ValueError:
            report = {}
        assert res.rc == 0 and report.get("state") == "completed", (
            f"the migration did not complete\n{res.describe()}")
        storage = report.get("storage") or {}
        print(f"migration: {t1 - t0:.1f} s, downtime {report.get('downtime_ms')} ms, "
              f"{report.get('wire_bytes')} bytes, storage {storage}")
        assert storage.get("disks") == 1 and storage.get("blocks", 0) >= DISK_MIB * 16, (
            f"the report does not show the whole disk sent: {storage}")
        dst.wait_resumed(timeout=30)
        rc = src.wait_exit(timeout=30)
        assert rc == 0, f"source exited with {rc} after the migration\n{src.stderr()}"

        # The image at the pause (the source never wrote after it) is what
        # host-b had before its guest ran.
        m = VERIFY_LINE.search(dst.stderr())
        assert m, f"destination did not verify the disk:\n{harness.tail(dst.stderr(), 20)}"
        src_hash = sha256_file(src_img)
        assert m.group(1) == src_hash, (
            f"destination's image before it ran: sha256 {m.group(1)}; source image at the "
            f"pause: {src_hash}")
        assert os.path.exists(dst_img) and not os.path.exists(dst_img + ".partial"), (
            os.listdir(os.path.dirname(dst_img)))
        st = os.stat(dst_img)
        assert st.st_size == DISK_MIB << 20, st
        print(f"destination image: {st.st_size} bytes, {st.st_blocks * 512} allocated")
        assert st.st_blocks * 512 < st.st_size, "the destination image is not sparse"

        # On host-b: the stream goes on, the disk loop too.
        lines_at_switch = client.lines()
        client.wait_lines(lines_at_switch + 1, timeout=harness.scaled(30),
                          what="the stream did not continue after the migration")
        dst.wait_prompt(timeout=30)
        before = hosts.disk_reports(dst)
        hosts.wait_disk_reports(dst, len(before) + hosts.HASHES_AFTER, timeout=90)
        dst.run("echo 3 > /proc/sys/vm/drop_caches; sha256sum -c /tmp/random.sum", timeout=120)
        final = client.stop(timeout=harness.scaled(10))
        problems = []
        if final.get("error"):
            problems.append(f"client: {final['error']}")
        if final["gaps"] or final["missing"] or final["corrupt"] or final["duplicates"]:
            problems.append(f"client: gaps={final['gaps']} missing={final['missing']} "
                            f"corrupt={final['corrupt']} duplicates={final['duplicates']}")
        if final["lines"] <= lines_at_switch:
            problems.append("client received nothing after the migration")
        assert not problems, "; ".join(problems)

        dst.run("touch /tmp/disk.stop")
        dst.run(f"for i in $(seq 30); do grep -q disk-done {hosts.DISK_LOG} && break; "
                f"sleep 1; done; grep -q disk-done {hosts.DISK_LOG}", timeout=60)
        last_i = hosts.disk_reports(dst)[-1]
        dst.run("umount /mnt/data")
        rc = dst.poweroff(timeout=60)
        assert rc == 0, f"destination exited with {rc} at poweroff\n{dst.stderr()}"
        hosts.check_image(dst_img, last_i)


# --------------------------------------------------------------------------
# Failures (one host: loopback)
# --------------------------------------------------------------------------

def storage_failure(make_dst_dir, proxy_kw, want_error, data_mib):
    require_guest()
    hosts.tool("mke2fs")
    with contextlib.ExitStack() as stack:
        workdir = tempfile.mkdtemp(prefix="fstorage-")
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        src_img = os.path.join(workdir, "disk.ext4")
        make_image(src_img)
        dst_dir = make_dst_dir(stack, workdir)
        dst_img = os.path.join(dst_dir, "disk.ext4")
        src = stack.enter_context(SourceVM(["--mem", "128M", "--drive", f"file={src_img}"]))
        src.boot(BOOT_TIMEOUT)
        src.run("mkdir -p /mnt/data && mount -t ext4 /dev/vda /mnt/data")
        src.run(f"dd if=/dev/urandom of=/mnt/data/random bs=1M count={data_mib} 2>/dev/null && "
                "sync && echo ok", timeout=180)
        src.run(f"( {hosts.DISK_LOOP} ) </dev/null >{hosts.DISK_LOG} 2>&1 & echo started")
        hosts.wait_disk_reports(src, 1)
        dst = stack.enter_context(IncomingVM(["--drive", f"file={dst_img}"]))
        dst.wait_listening()
        target = dst.uri
        proxy = None
        if proxy_kw:
            proxy = stack.enter_context(StreamProxy(dst.port, **proxy_kw))
            target = proxy.uri
        res, report = migrate(src.control, target, "--copy-storage", expect_ok=False)
        described = res.describe() + (proxy.describe() if proxy else "")
        assert res.rc == 1 and report and report.get("state") == "failed", described
        assert "keeps running here" in (report.get("error") or ""), described
        why = dst.wait_failed(60)
        assert re.search(want_error, why), f"destination said {why!r}\n{described}"
        # The source goes on: the guest runs, the disk loop makes rounds.
        assert_source_alive(src)
        src.wait_prompt(30)
        n = len(hosts.disk_reports(src))
        hosts.wait_disk_reports(src, n + 2, timeout=60)
        check_left_incomplete(dst_img)
        src.run("touch /tmp/disk.stop; sleep 2; umount /mnt/data || true", timeout=60)
        assert src.poweroff(timeout=60) == 0


@timeout(400)
def test_copy_storage_connection_cut():
    # A 256 MiB disk is 128 BLOCKS records of 32 blocks (holes included):
    # the cut comes in the 21st, with 16 MiB of data among them.
    def own_dir(stack, workdir):
        d = os.path.join(workdir, "dst")
        os.makedirs(d)
        return d

    storage_failure(own_dir, {"cut_in": (REC_BLOCKS, 20)},
                    r"truncated|connection|closed", data_mib=16)


@timeout(400)
def test_copy_storage_destination_disk_full():
    if os.geteuid() != 0:
        raise Skip("mounting a tmpfs needs root")

    def small_tmpfs(stack, workdir):
        d = os.path.join(workdir, "small")
        os.makedirs(d)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", d],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
        stack.callback(subprocess.run, ["umount", "-l", d], capture_output=True)
        return d

    storage_failure(small_tmpfs, None, r"No space left", data_mib=32)


@timeout(400)
def test_copy_storage_with_readonly_disk():
    # A read-only disk (shared: the same image on both sides) next to a
    # local writable one: only the writable one is copied.
    require_guest()
    hosts.tool("mke2fs")
    data = harness.BUILD / "guest" / "data.ext4"
    if not data.is_file():
        raise Skip("no build/guest/data.ext4 (run make guest)")
    with contextlib.ExitStack() as stack:
        workdir = tempfile.mkdtemp(prefix="fstorage-")
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        ro_img = os.path.join(workdir, "ro.ext4")
        shutil.copyfile(data, ro_img)
        src_img = os.path.join(workdir, "rw.ext4")
        make_image(src_img, 64)
        os.makedirs(os.path.join(workdir, "dst"))
        dst_img = os.path.join(workdir, "dst", "rw.ext4")
        src = stack.enter_context(SourceVM(["--mem", "128M", "--drive",
                                            f"file={ro_img},readonly=on",
                                            "--drive", f"file={src_img}"]))
        src.boot(BOOT_TIMEOUT)
        src.run("mkdir -p /mnt/ro /mnt/rw && mount -o ro -t ext4 /dev/vda /mnt/ro && "
                "mount -t ext4 /dev/vdb /mnt/rw && echo ok")
        src.run("dd if=/dev/urandom of=/mnt/rw/f bs=1M count=2 2>/dev/null && sync && "
                "sha256sum /mnt/rw/f > /tmp/f.sum && ls /mnt/ro > /tmp/ro.ls && echo ok",
                timeout=120)
        dst = stack.enter_context(IncomingVM(["--drive", f"file={ro_img},readonly=on",
                                              "--drive", f"file={dst_img}"]))
        dst.wait_listening()
        _, report = migrate(src.control, dst.uri, "--copy-storage")
        assert (report.get("storage") or {}).get("disks") == 1, report.get("storage")
        dst.wait_resumed()
        assert src.wait_exit(60) == 0, src.stderr()
        assert os.path.exists(dst_img) and not os.path.exists(dst_img + ".partial")
        assert not os.path.exists(ro_img + ".partial")
        dst.wait_prompt()
        dst.run("echo 3 > /proc/sys/vm/drop_caches; sha256sum -c /tmp/f.sum && "
                "ls /mnt/ro | cmp - /tmp/ro.ls && echo ok", timeout=120)
        dst.run("umount /mnt/rw; umount /mnt/ro; echo ok")
        assert dst.poweroff(timeout=60) == 0


@timeout(400)
def test_copy_storage_compressed():
    # --compress zstd sends compressible blocks as BLOCKS_Z; --verify then
    # compares the destination's image with the source's (SHA-256).
    require_guest()
    hosts.tool("mke2fs")
    with contextlib.ExitStack() as stack:
        workdir = tempfile.mkdtemp(prefix="fstorage-")
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        src_img = os.path.join(workdir, "rw.ext4")
        make_image(src_img, 64)
        os.makedirs(os.path.join(workdir, "dst"))
        dst_img = os.path.join(workdir, "dst", "rw.ext4")
        src = stack.enter_context(SourceVM(["--mem", "128M", "--drive", f"file={src_img}"]))
        src.boot(BOOT_TIMEOUT)
        src.run("mkdir -p /mnt/rw && mount -t ext4 /dev/vda /mnt/rw && echo ok")
        src.run("yes 'a compressible line of text' | head -c 8388608 > /mnt/rw/text && "
                "dd if=/dev/urandom of=/mnt/rw/rand bs=1M count=1 2>/dev/null && sync && "
                "sha256sum /mnt/rw/text /mnt/rw/rand > /tmp/f.sum && echo ok", timeout=180)
        dst = stack.enter_context(IncomingVM(["--drive", f"file={dst_img}"]))
        dst.wait_listening()
        proxy = stack.enter_context(StreamProxy(dst.port))
        _, report = migrate(src.control, proxy.uri, "--copy-storage", "--compress", "zstd",
                            "--verify")
        z = report.get("compress") or {}
        print(f"compress: {z}; storage: {report.get('storage')}; records: {proxy.types}")
        assert proxy.types.get(REC_BLOCKS_Z, 0) > 0, f"no BLOCKS_Z record: {proxy.types}"
        assert report.get("verified"), report
        dst.wait_resumed()
        assert src.wait_exit(60) == 0, src.stderr()
        m = VERIFY_LINE.search(dst.stderr())
        assert m and m.group(1) == sha256_file(src_img), (
            f"{m and m.group(1)} != {sha256_file(src_img)}\n{harness.tail(dst.stderr(), 10)}")
        dst.wait_prompt()
        dst.run("echo 3 > /proc/sys/vm/drop_caches; sha256sum -c /tmp/f.sum && "
                "umount /mnt/rw && echo ok", timeout=120)
        assert dst.poweroff(timeout=60) == 0
