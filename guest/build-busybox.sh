#!/usr/bin/env bash
# Fetch and build a static riscv64 busybox from Debian's busybox source
# package. Normally run by guest/build.sh; the busybox cache key covers this
# file, so any change here forces a rebuild.
#
# Usage:
#   build-busybox.sh fetch SRCROOT
#       Download the newest bookworm busybox source package into
#       SRCROOT/busybox-<version> (':' of the epoch replaced by '_') and write
#       the version to SRCROOT/busybox.version. The system's apt configuration
#       is not touched: a private sources directory, list directory and apt
#       cache live under SRCROOT/apt.
#   build-busybox.sh build SRCDIR FRAGMENT DESTDIR WORKDIR
#       Unpack the .dsc in SRCDIR into WORKDIR (deleted on exit), configure
#       `make defconfig` + FRAGMENT, build, and put busybox, busybox.links
#       (the applet install paths) and config into DESTDIR.
set -euo pipefail

# Options that point apt at the private state under $1; used by every apt call.
apt_opts() {
    local a=$1
    printf '%s\n' \
        -o "Dir::Etc::SourceList=/dev/null" \
        -o "Dir::Etc::SourceParts=$a/sources" \
        -o "Dir::State::Lists=$a/lists" \
        -o "Dir::Cache=$a/cache"
}

fetch() {
    local root=$1
    mkdir -p "$root"
    root=$(realpath "$root")
    local a=$root/apt
    mkdir -p "$a/sources" "$a/lists/partial" "$a/cache/archives/partial"
    # deb822 entry for bookworm main sources only; signed by the Debian
    # archive key that every Debian system carries.
    cat > "$a/sources/ferry-debian-src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    local opts
    mapfile -t opts < <(apt_opts "$a")

    echo "== apt-get update (private lists in $a/lists)"
    apt-get "${opts[@]}" update

    # Pick the highest version on offer (normally exactly one).
    local ver="" v
    while read -r v; do
        if [[ -z $ver ]] || dpkg --compare-versions "$v" gt "$ver"; then ver=$v; fi
    done < <(apt-cache "${opts[@]}" showsrc busybox | awk '$1 == "Version:" {print $2}')
    [[ -n $ver ]] || { echo "no busybox source package found" >&2; exit 1; }
    echo "== busybox source version $ver"

    local dir=$root/busybox-${ver//:/_}
    if ! compgen -G "$dir/*.dsc" > /dev/null; then
        rm -rf "$dir.tmp"
        mkdir -p "$dir.tmp"
        # apt verifies the downloaded files against the signed Sources index.
        # The download runs as root because the _apt sandbox user cannot
        # write into our root-owned cache directory.
        (cd "$dir.tmp" && apt-get "${opts[@]}" -o APT::Sandbox::User=root \
            source --download-only "busybox=$ver")
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    ls -l "$dir"
    echo "$ver" > "$root/busybox.version"
}

build() {
    # `work` is global on purpose: the EXIT trap runs after this function
    # has returned, when its locals are gone.
    local srcdir fragment dest
    srcdir=$(realpath "$1")
    fragment=$(realpath "$2")
    dest=$(realpath "$3")
    work=$4
    rm -rf "$work"
    mkdir -p "$work"
    work=$(realpath "$work")
    trap 'rm -rf "$work"' EXIT

    local dsc=("$srcdir"/*.dsc)
    [[ -f ${dsc[0]} ]] || { echo "no .dsc in $srcdir" >&2; exit 1; }
    echo "== dpkg-source -x ${dsc[0]}"
    # Applies Debian's patches; we then build upstream's Makefile directly
    # (Debian's own rules build several flavours we do not need).
    dpkg-source -x "${dsc[0]}" "$work/busybox"
    cd "$work/busybox"

    # The version banner embeds the configuration time; pin it to the source
    # package's changelog date so identical inputs give an identical binary.
    SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l debian/changelog -S Timestamp)
    export SOURCE_DATE_EPOCH
    local mk=(make CROSS_COMPILE=riscv64-linux-gnu- ARCH=riscv)
    echo "== defconfig + $fragment"
    "${mk[@]}" defconfig
    # busybox has no merge_config.sh: for each symbol in the fragment drop
    # its current line and append the fragment's line, then let oldconfig
    # resolve dependencies (answering any question with its default).
    local line sym
    while IFS= read -r line; do
        if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)= || $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            sym=${BASH_REMATCH[1]}
            sed -i -e "/^${sym}=/d" -e "/^# ${sym} is not set\$/d" .config
            echo "$line" >> .config
        fi
    done < "$fragment"
    # `yes` dies of SIGPIPE when oldconfig stops reading; with pipefail that
    # would fail the pipeline, hence the `|| true` on the producer side only.
    { yes "" || true; } | "${mk[@]}" oldconfig > /dev/null

    echo "== verifying that the fragment survived oldconfig"
    local missing=()
    while IFS= read -r line; do
        if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)= ]]; then
            grep -qxF -- "$line" .config || missing+=("$line")
        elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            if grep -qE "^${BASH_REMATCH[1]}=" .config; then missing+=("$line"); fi
        fi
    done < "$fragment"
    if ((${#missing[@]})); then
        echo "ERROR: these fragment lines did not survive into .config:" >&2
        printf '  %s\n' "${missing[@]}" >&2
        exit 1
    fi

    echo "== building with $(nproc) jobs"
    "${mk[@]}" -j"$(nproc)" busybox busybox.links

    # A dynamic binary would not run in the initramfs (there is no libc).
    if riscv64-linux-gnu-readelf -l busybox | grep -q INTERP; then
        echo "ERROR: busybox is not static" >&2
        exit 1
    fi
    cp busybox busybox.links "$dest/"
    cp .config "$dest/config"
    echo "== done: $(stat -c %s busybox) bytes, $(wc -l < busybox.links) applets"
}

case ${1:-} in
    fetch) shift; [[ $# -eq 1 ]] || { echo "usage: $0 fetch SRCROOT" >&2; exit 2; }; fetch "$@" ;;
    build) shift; [[ $# -eq 4 ]] || { echo "usage: $0 build SRCDIR FRAGMENT DESTDIR WORKDIR" >&2; exit 2; }; build "$@" ;;
    *) echo "usage: $0 fetch SRCROOT | build SRCDIR FRAGMENT DESTDIR WORKDIR" >&2; exit 2 ;;
esac
