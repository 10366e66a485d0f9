#!/usr/bin/env python3
"""A `ferry run` look-alike that runs the guest under qemu-system-riscv64
(TCG) instead. It checks the tests, not ferry: with it, the Linux-guest
tests can be run against a reference machine,

    FERRY_GUEST_DIR=build/guest tests/run.py --ferry tests/lib/qemuferry.py --filter linux/

Understood: run [--kernel K] [--initrd I] [--append A] [--mem M] [--smp N]
[--console stdio|socket:PATH|none] [--stats (ignored)]. The guest comes
from $FERRY_GUEST_DIR, else build/guest. Errors follow ferry's style.
"""

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def die(msg):
    print(f"ferry: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    args = sys.argv[1:]
    if not args or args[0] != "run":
        die("usage: qemuferry.py run [options]")
    args = args[1:]
    gdir = Path(os.environ.get("FERRY_GUEST_DIR") or REPO / "build" / "guest")
    opt = {"kernel": str(gdir / "Image"), "initrd": str(gdir / "initramfs.cpio"),
           "append": "console=ttyS0 quiet", "mem": "256M", "smp": "1", "console": "stdio"}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--stats":
            i += 1
            continue
        if not a.startswith("--") or a[2:] not in opt:
            die(f"unknown option {a}")
        if i + 1 >= len(args):
            die(f"option {a} needs an argument")
        opt[a[2:]] = args[i + 1]
        i += 2
    qemu = shutil.which("qemu-system-riscv64") or die("qemu-system-riscv64 not found")
    argv = [qemu, "-M", "virt", "-bios", "default", "-smp", opt["smp"], "-m", opt["mem"],
            "-kernel", opt["kernel"], "-initrd", opt["initrd"], "-append", opt["append"]]
    con = opt["console"]
    if con == "stdio":
        argv += ["-nographic"]
    elif con.startswith("socket:"):
        argv += ["-display", "none", "-monitor", "none",
                 "-serial", f"unix:{con[len('socket:'):]},server=on,wait=off"]
    elif con == "none":
        argv += ["-display", "none", "-monitor", "none", "-serial", "null"]
    else:
        die(f"bad --console {con}")
    os.execv(qemu, argv)


if __name__ == "__main__":
    main()
