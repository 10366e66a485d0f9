#!/usr/bin/env bash
# Build (or fetch from the cache) the ferry guest: a riscv64 Linux kernel
# Image and a busybox initramfs with our test programs.
#
# Usage: guest/build.sh [OUTDIR_LINK]
#   OUTDIR_LINK  symlink to create, pointing at a directory holding `Image`
#                and `initramfs.cpio` (default: build/guest, relative to
#                the repository root; relative paths are taken from there).
#
# Outputs are cached outside the checkout in ${FERRY_CACHE:-/var/cache/ferry},
# keyed by a hash of their inputs, so an unchanged tree only costs the hashing.
# Progress lines and errors go to stderr; the only stdout line is the final
# directory path, so `dir=$(guest/build.sh)` works.
#
# Environment:
#   FERRY_CACHE             cache root (default /var/cache/ferry)
#   FERRY_REFRESH_SOURCES=1 re-run `apt-get update` for the private deb-src
#                           list and pick up a newer busybox source package
#                           (otherwise the version fetched first is kept, so
#                           the cache key does not change under our feet)
set -euo pipefail

guest=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$guest")
cache=${FERRY_CACHE:-/var/cache/ferry}
link=${1:-build/guest}
[[ $link = /* ]] || link=$repo/$link

say() { echo "ferry-guest: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# run_step DESCRIPTION LOGFILE COMMAND...
# Runs one build step with all output in LOGFILE, keeping the terminal quiet;
# on failure shows the end of the log and stops the whole build.
run_step() {
    local desc=$1 logf=$2
    shift 2
    say "$desc (log: $logf)"
    local start=$SECONDS
    if ! "$@" >"$logf" 2>&1; then
        say "FAILED: $desc; last lines of $logf:"
        tail -n 40 "$logf" >&2
        exit 1
    fi
    say "  done in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------------------
# 1. Host packages. One dpkg-query call for all of them keeps the cached path
#    fast; apt runs only when something is missing (fresh machine).
# ---------------------------------------------------------------------------
packages=(
    make gcc libc6-dev bc flex bison libssl-dev libelf-dev   # kernel build
    gcc-riscv64-linux-gnu libc6-dev-riscv64-cross            # cross toolchain
    linux-source-6.1                                         # kernel source
    xz-utils bzip2 dpkg-dev patch debian-archive-keyring     # source packages
    cpio gzip                                                # initramfs
    e2fsprogs                                                # data disk, debugfs in tests
)
# A single dpkg-query for all packages (one process per package costs about
# a second on a loaded machine). It exits non-zero when some package is
# unknown to dpkg, but still lists the others; absent ones count as missing.
declare -A pkg_state=()
while read -r pkg status; do
    pkg_state[$pkg]=$status
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do
    [[ ${pkg_state[$p]:-} == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    ((EUID == 0)) || die "need root to install: ${missing[*]}"
    mkdir -p "$cache"
    say "installing ${missing[*]}"
    run_step "apt-get update" "$cache/apt-update.log" \
        env DEBIAN_FRONTEND=noninteractive apt-get update -q
    run_step "apt-get install" "$cache/apt-install.log" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

mkdir -p "$cache"/{kernel,busybox,initramfs,guest,src,work} || die "cannot create $cache"
# Serialise concurrent invocations: two builds of the same key would race on
# the rename into place, and each kernel build needs a lot of disk.
exec 9>"$cache/.lock"
flock 9

# Toolchain identity goes into every key: a compiler update rebuilds all.
toolchain=$(riscv64-linux-gnu-gcc --version | sed -n 1p; riscv64-linux-gnu-ld --version | sed -n 1p;
            dpkg-query -W -f='${Package} ${Version}\n' libc6-dev-riscv64-cross)

# key_of: short content hash of stdin; 16 hex digits are plenty to tell
# builds apart and keep paths readable.
key_of() { sha256sum | cut -c1-16; }

# publish TMPDIR FINALDIR: move a finished build into place atomically, so an
# interrupted build never looks like a cached one.
publish() { rm -rf "$2"; mv "$1" "$2"; }

# ---------------------------------------------------------------------------
# 2. Kernel: key = linux-source version + fragment + build-kernel.sh + toolchain
# ---------------------------------------------------------------------------
kver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
kkey=$({ echo "linux-source-6.1 $kver"; echo "$toolchain"
         echo "--- kernel.config"; cat "$guest/kernel.config"
         echo "--- build-kernel.sh"; cat "$guest/build-kernel.sh"; } | key_of)
kdir=$cache/kernel/$kkey
if [[ -f $kdir/Image ]]; then
    say "kernel: cached $kdir"
else
    rm -rf "$kdir.tmp"
    mkdir -p "$kdir.tmp"
    run_step "kernel: building Linux $kver (several minutes)" "$kdir.tmp/build.log" \
        bash "$guest/build-kernel.sh" "$guest/kernel.config" "$kdir.tmp" "$cache/work/kernel-$kkey"
    publish "$kdir.tmp" "$kdir"
fi

# ---------------------------------------------------------------------------
# 3. Busybox: key = source package version + fragment + build-busybox.sh +
#    toolchain. The source is fetched once into $cache/src and its version
#    recorded; FERRY_REFRESH_SOURCES=1 looks for a newer one.
# ---------------------------------------------------------------------------
bbverfile=$cache/src/busybox.version
if [[ ! -s $bbverfile || ${FERRY_REFRESH_SOURCES:-0} == 1 ]]; then
    run_step "busybox: fetching Debian source package" "$cache/src/fetch.log" \
        bash "$guest/build-busybox.sh" fetch "$cache/src"
fi
bbver=$(<"$bbverfile")
bbsrc=$cache/src/busybox-${bbver//:/_}
[[ -d $bbsrc ]] || die "busybox source $bbsrc missing; rerun with FERRY_REFRESH_SOURCES=1"
bkey=$({ echo "busybox source $bbver"; echo "$toolchain"
         echo "--- busybox.config"; cat "$guest/busybox.config"
         echo "--- build-busybox.sh"; cat "$guest/build-busybox.sh"; } | key_of)
bdir=$cache/busybox/$bkey
if [[ -f $bdir/busybox ]]; then
    say "busybox: cached $bdir"
else
    rm -rf "$bdir.tmp"
    mkdir -p "$bdir.tmp"
    run_step "busybox: building $bbver (static riscv64)" "$bdir.tmp/build.log" \
        bash "$guest/build-busybox.sh" build "$bbsrc" "$guest/busybox.config" "$bdir.tmp" "$cache/work/busybox-$bkey"
    publish "$bdir.tmp" "$bdir"
fi

# ---------------------------------------------------------------------------
# 4. Initramfs: key = busybox key + every file under rootfs/ and programs/
#    (path, permission bits, content or link target) + build-initramfs.sh.
# ---------------------------------------------------------------------------
tree_manifest() {
    # Few processes on purpose (this runs on every invocation): one listing
    # of names, types, permission bits and link targets, one sha256sum run.
    (cd "$1" && find . \( -type f -o -type l \) -printf '%p %y %m %l\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
}
ikey=$({ echo "busybox $bkey"; echo "$toolchain"
         echo "--- rootfs"; tree_manifest "$guest/rootfs"
         echo "--- programs"; tree_manifest "$guest/programs"
         echo "--- build-initramfs.sh"; cat "$guest/build-initramfs.sh"; } | key_of)
idir=$cache/initramfs/$ikey
if [[ -f $idir/initramfs.cpio ]]; then
    say "initramfs: cached $idir"
else
    rm -rf "$idir.tmp"
    mkdir -p "$idir.tmp"
    run_step "initramfs: building programs and packing rootfs" "$idir.tmp/build.log" \
        bash "$guest/build-initramfs.sh" "$bdir" "$guest" "$idir.tmp" "$cache/work/initramfs-$ikey"
    publish "$idir.tmp" "$idir"
fi

# ---------------------------------------------------------------------------
# 5. One directory per (kernel, initramfs) pair with relative symlinks to the
#    cached artifacts, and the requested link pointing at it.
# ---------------------------------------------------------------------------
gdir=$cache/guest/$kkey-$ikey
if [[ ! -e $gdir/Image || ! -e $gdir/initramfs.cpio ]]; then
    rm -rf "$gdir.tmp"
    mkdir -p "$gdir.tmp"
    ln -s "../../kernel/$kkey/Image" "$gdir.tmp/Image"
    ln -s "../../kernel/$kkey/System.map" "$gdir.tmp/System.map"
    ln -s "../../initramfs/$ikey/initramfs.cpio" "$gdir.tmp/initramfs.cpio"
    publish "$gdir.tmp" "$gdir"
fi

# The ext4 data disk for the block device tests: GUESTDIR/data.ext4.
bash "$guest/build-datadisk.sh" "$cache" "$gdir"

# Refuse to replace a real directory: ln -sfn would put the link inside it.
if [[ -e $link && ! -L $link ]]; then
    die "$link exists and is not a symlink; remove it first"
fi
mkdir -p "$(dirname "$link")"
ln -sfn "$gdir" "$link"
say "guest ready: $link -> $gdir"
echo "$gdir"
