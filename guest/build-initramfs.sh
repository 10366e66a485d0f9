#!/usr/bin/env bash
# Assemble the ferry guest initramfs: busybox + guest/rootfs + the test
# programs from guest/programs, packed as an uncompressed newc cpio owned by root.
# Normally run by guest/build.sh; the initramfs cache key covers this file.
#
# Usage: build-initramfs.sh BUSYBOXDIR GUESTDIR DESTDIR WORKDIR
#   BUSYBOXDIR  holds busybox (static riscv64) and busybox.links
#   GUESTDIR    the repository's guest/ directory (rootfs/, programs/)
#   DESTDIR     receives initramfs.cpio, its file listing and the
#               program binaries (bin/) for reference
#   WORKDIR     scratch staging directory (created here, deleted on exit)
#
# Must run as root: the archive needs real /dev/console and /dev/null nodes
# (the kernel opens /dev/console for init before anything can mount devtmpfs).
set -euo pipefail

if [[ $# -ne 4 ]]; then
    echo "usage: $0 BUSYBOXDIR GUESTDIR DESTDIR WORKDIR" >&2
    exit 2
fi
bbdir=$(realpath "$1")
guest=$(realpath "$2")
dest=$(realpath "$3")
work=$4
((EUID == 0)) || { echo "must run as root (mknod)" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
work=$(realpath "$work")
trap 'rm -rf "$work"' EXIT
root=$work/root

echo "== skeleton"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,mnt,run,var/log,var/www}
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3

echo "== busybox"
install -m 755 "$bbdir/busybox" "$root/bin/busybox"
# busybox.links lists every applet's install path (/bin/ls, /sbin/init...);
# make each a relative symlink to /bin/busybox, as `make install` would.
while IFS= read -r applet; do
    [[ $applet == /bin/busybox ]] && continue
    rel=$(realpath -m --relative-to="$root$(dirname "$applet")" "$root/bin/busybox")
    ln -sfn "$rel" "$root$applet"
done < "$bbdir/busybox.links"
# The kernel runs /init from an initramfs; busybox picks the applet from the
# name, so this starts busybox init (which then reads /etc/inittab).
ln -s bin/busybox "$root/init"

echo "== rootfs overlay from $guest/rootfs"
cp -a "$guest/rootfs/." "$root/"
# Git keeps only the executable bit; make sure the boot script has it.
chmod 755 "$root/etc/init.d/rcS"

echo "== programs"
mkdir -p "$dest/bin"
shopt -s nullglob
for src in "$guest"/programs/*.c; do
    name=$(basename "$src" .c)
    echo "-- $name"
    # Static: the initramfs has no dynamic loader or libc. No FP contraction:
    # fpthreads' expected values assume a*b+c is rounded twice unless the
    # source asks for fma() explicitly.
    riscv64-linux-gnu-gcc -O2 -static -pthread -ffp-contract=off -Wall -Wextra \
        -o "$dest/bin/$name" "$src" -lm
    install -m 755 "$dest/bin/$name" "$root/usr/bin/$name"
done

echo "== packing"
# Fixed timestamps, sorted names, root ownership and --reproducible (no
# device/inode numbers) make the archive depend only on its contents.
# It stays uncompressed: unpacking a gzip'd initramfs is most of an
# emulated kernel's boot time, and the bytes cost nothing in host RAM.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc -R 0:0 --reproducible --quiet) > "$dest/initramfs.cpio"
(cd "$root" && find . | LC_ALL=C sort) > "$dest/files.txt"
echo "== done: $(stat -c %s "$dest/initramfs.cpio") bytes, $(wc -l < "$dest/files.txt") entries"
