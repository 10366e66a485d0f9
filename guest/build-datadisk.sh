#!/usr/bin/env bash
# Build (or fetch from the cache) the guest's data disk: a small ext4 image
# the block-device tests attach with --drive. Called by guest/build.sh.
#
# Usage: guest/build-datadisk.sh CACHE GUESTDIR
#   CACHE     the guest cache root ($FERRY_CACHE); the image goes to
#             CACHE/datadisk/KEY/data.ext4, KEY a hash of this script and
#             the mke2fs version
#   GUESTDIR  the guest directory; GUESTDIR/data.ext4 becomes a relative
#             symlink to the cached image
#
# Contents (the tests rely on them):
#   /hello.txt   "hello from the ferry data disk" and a newline
#   /seq.txt     the output of `seq 1 200000` (1288895 bytes; every line
#                differs, so a misplaced sector changes its checksum)
# The image is made without mounting (mkfs.ext4 -d) with a fixed UUID and
# fully initialised inode tables and journal, so the guest kernel has no
# lazy-init work to do. Tests must copy it before use: never modify it.
set -euo pipefail

cache=${1:?usage: build-datadisk.sh CACHE GUESTDIR}
gdir=${2:?usage: build-datadisk.sh CACHE GUESTDIR}
PATH=$PATH:/usr/sbin:/sbin

say() { echo "ferry-guest: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found (install e2fsprogs)"

key=$({ echo "--- build-datadisk.sh"; cat "${BASH_SOURCE[0]}"
        mkfs.ext4 -V 2>&1 | sed -n 1p; } | sha256sum | cut -c1-16)
ddir=$cache/datadisk/$key
if [[ -f $ddir/data.ext4 ]]; then
    say "data disk: cached $ddir"
else
    say "data disk: building $ddir/data.ext4"
    rm -rf "$ddir.tmp"
    mkdir -p "$ddir.tmp/root"
    printf 'hello from the ferry data disk\n' > "$ddir.tmp/root/hello.txt"
    seq 1 200000 > "$ddir.tmp/root/seq.txt"
    truncate -s 64M "$ddir.tmp/data.ext4"
    E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -F -q -L ferry-data \
        -U 5e1f0c2a-6b7d-4e38-9a41-0f2d3c4b5a69 -E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 \
        -d "$ddir.tmp/root" "$ddir.tmp/data.ext4" >"$ddir.tmp/mkfs.log" 2>&1 ||
        { cat "$ddir.tmp/mkfs.log" >&2; die "mkfs.ext4 failed"; }
    rm -rf "$ddir.tmp/root"
    rm -rf "$ddir"
    mv "$ddir.tmp" "$ddir"
fi

# Point GUESTDIR/data.ext4 at it, replacing an older link atomically.
target=../../datadisk/$key/data.ext4
if [[ $(readlink "$gdir/data.ext4" 2>/dev/null) != "$target" ]]; then
    ln -sfn "$target" "$gdir/data.ext4.tmp"
    mv -T "$gdir/data.ext4.tmp" "$gdir/data.ext4"
fi
