#!/usr/bin/env bash
# Build the ferry guest kernel Image (riscv64, Linux 6.1 from Debian's
# linux-source-6.1) from `tinyconfig` plus the fragment guest/kernel.config.
#
# Usage: build-kernel.sh FRAGMENT DESTDIR WORKDIR
#   FRAGMENT  the kernel.config fragment
#   DESTDIR   empty directory that receives Image, config and System.map
#   WORKDIR   scratch directory (created here, deleted on exit) for the
#             unpacked source tree, ~1.5 GB while building
#
# Normally run by guest/build.sh, which decides whether a rebuild is needed:
# the cache key covers this file, so any change here forces a rebuild.
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 FRAGMENT DESTDIR WORKDIR" >&2
    exit 2
fi
fragment=$(realpath "$1")
dest=$(realpath "$2")
work=$3

tarball=/usr/src/linux-source-6.1.tar.xz
[[ -r $tarball ]] || { echo "missing $tarball (package linux-source-6.1)" >&2; exit 1; }

# The source tree is only needed while building; remove it whatever happens
# so a failed build does not leave 1.5 GB behind in the cache.
rm -rf "$work"
mkdir -p "$work"
work=$(realpath "$work")
trap 'rm -rf "$work"' EXIT

echo "== unpacking $tarball"
tar -xJf "$tarball" -C "$work" --strip-components=1
cd "$work"

# Common make arguments. The KBUILD_BUILD_* values make `uname -v` and the
# banner independent of the build machine and time, so identical inputs give
# an identical Image.
mk=(make ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu-
    KBUILD_BUILD_USER=ferry KBUILD_BUILD_HOST=ferry
    "KBUILD_BUILD_TIMESTAMP=Thu Jan  1 00:00:00 UTC 1970")

echo "== tinyconfig"
"${mk[@]}" tinyconfig

echo "== merging $fragment"
# merge_config.sh -m only merges the files into .config (it warns about
# overridden or unknown values); olddefconfig then resolves dependencies.
ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu- \
    scripts/kconfig/merge_config.sh -m .config "$fragment"
"${mk[@]}" olddefconfig

echo "== verifying that the fragment survived olddefconfig"
# Kconfig silently drops a requested value when a dependency is missing, so
# check every CONFIG_ line of the fragment against the resolved .config:
#   CONFIG_X=v            must appear verbatim
#   # CONFIG_X is not set  CONFIG_X must not be set to anything
# (an option whose dependencies are off is simply absent, which counts as off).
missing=()
while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
        grep -qxF -- "$line" .config || missing+=("$line   (got: $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" .config || echo absent))")
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
        if grep -qE "^${BASH_REMATCH[1]}=" .config; then
            missing+=("$line   (got: $(grep -E "^${BASH_REMATCH[1]}=" .config))")
        fi
    fi
done < "$fragment"
if ((${#missing[@]})); then
    echo "ERROR: these fragment lines did not survive into .config:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi
echo "all fragment lines present"

echo "== building Image with $(nproc) jobs"
"${mk[@]}" -j"$(nproc)" Image

# Keep only what is useful: the Image to boot, the resolved .config for
# reference, and System.map to symbolise guest PCs while debugging ferry.
cp arch/riscv/boot/Image "$dest/Image"
cp .config "$dest/config"
cp System.map "$dest/System.map"
echo "== done: $(stat -c %s "$dest/Image") bytes"
