#!/bin/sh
# Run every ISA test ELF on QEMU and print PASS/FAIL per test.
#   tests/isa/run-qemu.sh [BUILD_DIR] [NAME...]
# MACHINE=virt (default) is the platform ferry models: RAM at 0x80000000,
# CLINT at 0x2000000, UART at 0x10000000, test/syscon at 0x100000; there
# the tests end through the syscon (crt.S writes tohost first, then the
# syscon).  MACHINE=spike ends through HTIF tohost, but its CPU has no
# time CSR (rdtime traps), so csr fails there.
# BUILD_DIR defaults to build/isa of the repository.  Exit status: number
# of failed tests.  QEMU exits with the failure code & 0xff;
# for a failure the test is run again with CPU-state logging to report the
# full check number (register gp) and the last trap (mcause/mepc/mtval).
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build/isa}
[ $# -gt 0 ] && shift
QEMU=${QEMU:-qemu-system-riscv64}
MACHINE=${MACHINE:-virt}
TIMEOUT=${TIMEOUT:-20}
if [ $# -eq 0 ]; then
    set --
    for f in "$build"/*.elf; do set -- "$@" "$(basename "$f" .elf)"; done
fi
failed=0
for name in "$@"; do
    elf=$build/$name.elf
    if [ ! -f "$elf" ]; then
        echo "FAIL $name (no $elf)"; failed=$((failed + 1)); continue
    fi
    timeout "$TIMEOUT" "$QEMU" -M "$MACHINE" -smp 1 -m 64M -nographic \
        -bios none -kernel "$elf" </dev/null >/dev/null 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "PASS $name"
    elif [ $rc -eq 124 ]; then
        echo "FAIL $name (timeout)"; failed=$((failed + 1))
    else
        log=$(mktemp)
        timeout "$TIMEOUT" "$QEMU" -M "$MACHINE" -smp 1 -m 64M -nographic \
            -bios none -kernel "$elf" -d cpu,nochain -D "$log" \
            </dev/null >/dev/null 2>&1
        gp=$(grep -o 'x3/gp *[0-9a-f]*' "$log" | tail -1 | awk '{print $2}')
        trap=$(grep -E '^ (mcause|mepc|mtval) ' "$log" | tail -3 | awk '{printf "%s=%s ", $1, $2}')
        rm -f "$log"
        echo "FAIL $name (code $rc, check $((0x${gp:-0})); last trap: $trap)"
        failed=$((failed + 1))
    fi
done
exit $failed
