/*
 * smc: self-modifying code from user space, for the translating CPU.
 *
 * Usage: smc [rounds]
 *
 * Maps a page read-write-execute, writes a function `li a0, N; ret` into
 * it, runs it often enough to be hot (translated, chained), rewrites the
 * immediate, flushes the instruction cache as the ISA requires
 * (__builtin___clear_cache: the riscv_flush_icache system call, i.e.
 * FENCE.I on every hart that runs this process), runs it again and checks
 * it returns the new value; `rounds` times (default 2000). Then the same
 * through a second mapping that is made executable only after the code is
 * written (mprotect), as a loader does.
 *
 * Prints "smc: ok rounds=<n>" and exits 0, or "smc: FAIL ..." and exits 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef long (*fn_t)(void);

static void write_fn(uint32_t *code, long value)
{
    code[0] = (uint32_t)(value & 0x7ff) << 20 | 10u << 7 | 0x13; /* addi a0, zero, value */
    code[1] = 0x00008067;                                        /* ret */
    __builtin___clear_cache((char *)code, (char *)(code + 2));
}

static int check(fn_t f, long want, const char *what, long round)
{
    long got = 0;
    for (int i = 0; i < 200; i++)
        got = f();
    if (got != want) {
        printf("smc: FAIL %s round %ld: got %ld want %ld\n", what, round, got, want);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 2000;
    uint32_t *rwx = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *late = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rwx == MAP_FAILED || late == MAP_FAILED) {
        perror("smc: mmap");
        return 1;
    }
    for (long r = 0; r < rounds; r++) {
        long v = (r * 7 + 1) % 2000;
        write_fn(rwx, v);
        if (check((fn_t)(uintptr_t)rwx, v, "rwx page", r))
            return 1;
        if (r % 100 == 0) {
            /* A loader's sequence: writable, write, executable, run. */
            if (mprotect(late, 4096, PROT_READ | PROT_WRITE) != 0) {
                perror("smc: mprotect");
                return 1;
            }
            write_fn(late, v + 3);
            if (mprotect(late, 4096, PROT_READ | PROT_EXEC) != 0) {
                perror("smc: mprotect");
                return 1;
            }
            if (check((fn_t)(uintptr_t)late, v + 3, "mprotect page", r))
                return 1;
        }
    }
    printf("smc: ok rounds=%ld\n", rounds);
    return 0;
}
