#!/usr/bin/env python3
"""Boot the ferry guest in qemu-system-riscv64 and check it non-interactively.

Usage: guest/qemu-smoke.py [GUESTDIR]   (default: build/guest in the repo)

Reference run on QEMU's `virt` machine (OpenSBI via -bios default), used to
validate guest/build.sh's kernel and initramfs independently of ferry. It
drives the serial console through pipes, with a timeout on every step, and
exercises: the ready line and prompt, uname, CPU count, fpthreads, cpubench,
memdirty (stopped with Ctrl-C), Ctrl-C of a sleep, networking configured from
ferry.ip/ferry.gw (virtio-net, user-mode networking), virtio-blk with an ext4
image, virtio-rng, httpd+wget over loopback, and finally poweroff (qemu must
exit). Prints a transcript and a summary; exit status 0 only if all passed.
"""
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

PROMPT = "ferry:/# "


class Console:
    def __init__(self, argv):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.buf = ""
        self.pos = 0          # consumed up to here by expect()
        self.lock = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            data = os.read(self.p.stdout.fileno(), 4096)
            with self.lock:
                if not data:
                    self.lock.notify_all()
                    return
                text = data.decode("utf-8", "replace").replace("\r", "")
                self.buf += text
                sys.stdout.write(text)
                sys.stdout.flush()
                self.lock.notify_all()

    def send(self, s):
        self.p.stdin.write(s.encode())
        self.p.stdin.flush()

    def expect(self, pattern, timeout):
        """Wait for regex after the last match; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    raise TimeoutError(f"timeout waiting for {pattern!r}")
                self.lock.wait(min(left, 0.2))

    def run(self, cmd, timeout=60):
        """Type a command, wait for the next prompt, return its output."""
        start = len(self.buf)
        self.send(cmd + "\n")
        self.expect(re.escape(PROMPT), timeout)
        out = self.buf[start:self.pos]
        # drop the echoed command line and the trailing prompt
        lines = out.split("\n")[1:]
        return "\n".join(lines).rsplit(PROMPT, 1)[0]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    gdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "build", "guest")
    kernel = os.path.join(gdir, "Image")
    initrd = os.path.join(gdir, "initramfs.cpio")

    tmp = tempfile.mkdtemp(prefix="ferry-smoke-")
    # small ext4 disk built from a directory, no mounting needed on the host
    src = os.path.join(tmp, "disk")
    os.mkdir(src)
    with open(os.path.join(src, "hello.txt"), "w") as f:
        f.write("hello from virtio-blk\n")
    disk = os.path.join(tmp, "disk.img")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", src, disk, "8M"], check=True)

    argv = ["qemu-system-riscv64", "-M", "virt", "-smp", "2", "-m", "256M", "-nographic",
            "-bios", "default", "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 quiet ferry.ip=10.0.2.15/24 ferry.gw=10.0.2.2",
            "-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0",
            "-drive", f"file={disk},if=none,format=raw,id=d0", "-device", "virtio-blk-device,drive=d0",
            "-device", "virtio-rng-device", "-no-reboot"]
    print("+", " ".join(argv), flush=True)
    c = Console(argv)
    results = []

    def check(name, ok, detail=""):
        results.append((name, ok, detail))

    try:
        c.expect(r"ferry-guest: ready", 180)
        t_ready = time.monotonic() - c.t0
        c.expect(re.escape(PROMPT), 30)
        t_prompt = time.monotonic() - c.t0
        check("ready line + prompt", True, f"ready {t_ready:.2f} s, prompt {t_prompt:.2f} s after qemu start")
        # wide terminal so long command lines are echoed without wrapping
        c.run("stty cols 250")
        out = c.run("cut -d' ' -f1 /proc/uptime; dmesg | grep -E 'Freeing unused kernel|Run /init' | tail -n 1")
        check("guest uptime at prompt", True, out.strip().replace("\n", " | "))

        out = c.run("uname -m")
        check("uname -m", out.strip() == "riscv64", out.strip())
        out = c.run("grep -c ^processor /proc/cpuinfo")
        check("cpu count", out.strip() == "2", out.strip())
        t = time.monotonic()
        out = c.run("fpthreads", 300)
        check("fpthreads", out.strip() == "fpthreads: OK", f"{out.strip()} ({time.monotonic() - t:.1f} s)")
        out = c.run("fpthreads -v | grep -c ' ok$'")
        check("fpthreads -v checks", out.strip().isdigit() and int(out) > 400, out.strip() + " checks ok")
        t = time.monotonic()
        out = c.run("cpubench", 300)
        check(f"cpubench ({time.monotonic() - t:.1f} s)", len(re.findall(r"^cpubench: (int|mem|fp) [0-9a-f]{16} \d+$", out, re.M)) == 3
              and re.search(r"^cpubench: total \d+$", out, re.M) is not None, out.strip())

        # memdirty without a time limit, stopped with Ctrl-C after 3 reports
        start = len(c.buf)
        c.send("memdirty 8 0\n")
        for _ in range(3):
            c.expect(r"memdirty: gen=\d+ verified=\d+ errors=\d+\n", 30)
        c.send("\x03")
        c.expect(re.escape(PROMPT), 10)
        out = c.buf[start:c.pos]
        stats = re.findall(r"errors=(\d+)", out)
        check("memdirty 8 0 + Ctrl-C", stats and all(e == "0" for e in stats) and "CORRUPTION" not in out,
              f"{len(stats)} status lines, last: " + out.strip().split("\n")[-2])
        out = c.run("memdirty 4 20 2; echo rc=$?")
        check("memdirty rate-limited", "errors=0" in out and "rc=0" in out, out.strip().replace("\n", " | "))

        # Ctrl-C must reach a foreground job (controlling tty works)
        t = time.monotonic()
        c.send("sleep 100\n")
        time.sleep(1)
        c.send("\x03")
        c.expect(re.escape(PROMPT), 10)
        check("Ctrl-C interrupts sleep", time.monotonic() - t < 10, f"{time.monotonic() - t:.1f} s")

        out = c.run("hostname")
        check("hostname", out.strip() == "ferry", out.strip())
        out = c.run("ip -4 addr show eth0 | grep inet; ip route | grep default")
        check("eth0 from ferry.ip/ferry.gw", "10.0.2.15/24" in out and "via 10.0.2.2" in out,
              out.strip().replace("\n", " | "))
        out = c.run("ping -c 1 -W 5 10.0.2.2 >/dev/null && echo ping-ok")
        check("ping gateway", "ping-ok" in out, out.strip())
        out = c.run("mkdir -p /mnt/d && mount -t ext4 /dev/vda /mnt/d && cat /mnt/d/hello.txt && umount /mnt/d")
        check("virtio-blk ext4", "hello from virtio-blk" in out, out.strip())
        out = c.run("cat /sys/class/misc/hw_random/rng_current; dd if=/dev/hwrng bs=16 count=1 2>/dev/null | md5sum")
        check("virtio-rng", "virtio_rng" in out, out.strip().replace("\n", " | "))
        out = c.run("echo served > /tmp/index.html; httpd -p 8080 -h /tmp; wget -q -O - http://127.0.0.1:8080/index.html")
        check("httpd + wget", "served" in out, out.strip())
        out = c.run("(nc -l -p 9000 > /tmp/nc.out &); sleep 1; echo via-nc | nc 127.0.0.1 9000; sleep 1; cat /tmp/nc.out")
        check("nc -l", "via-nc" in out, out.strip().replace("\n", " | "))

        t = time.monotonic()
        c.send("poweroff\n")
        c.p.wait(timeout=60)
        check("poweroff exits qemu", True, f"exit status {c.p.returncode} after {time.monotonic() - t:.1f} s")
    except Exception as e:  # report what we have, then fail
        check("exception", False, repr(e))
    finally:
        if c.p.poll() is None:
            c.p.kill()
        subprocess.run(["rm", "-rf", tmp])

    print("\n==== summary")
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    return 0 if results and all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
