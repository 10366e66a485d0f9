/* The supervisor timer with SBI in the emulator: SBI set_timer (the TIME
 * extension and the legacy call) writes stimecmp and is counted in
 * hart.sbi_set_timer_calls (what `ferry run --stats` reports); a direct
 * stimecmp write (Sstc) is not counted; STIP follows time >= stimecmp in
 * both cases (hart_timer_update), and the timer's deadline is stimecmp. */
#include <stdio.h>
#include <string.h>

#include "cpu/hart.h"
#include "machine/machine.h"
#include "check.h"

#define ECALL 0x00000073u
#define CSRW_STIMECMP_A0 0x14d51073u /* csrw stimecmp, a0 */
#define JAL_SELF 0x0000006fu
enum { A0 = 10, A6 = 16, A7 = 17 };

static struct machine m;

/* Runs `insn; jal x0, 0` in S-mode with a0 = arg, a6 = fid, a7 = ext. */
static void run_s(uint32_t insn, uint64_t arg, uint64_t ext, uint64_t fid)
{
    const uint32_t code[] = {insn, JAL_SELF};
    memcpy(m.bus.ram.host, code, sizeof code);
    machine_fence_i(&m);
    struct hart *h = &m.harts[0];
    h->priv = PRIV_S;
    h->pc = m.bus.ram.base;
    h->x[A0] = arg;
    h->x[A6] = fid;
    h->x[A7] = ext;
    hart_run(h, 100);
}

static bool stip(void) { return (m.harts[0].mip & MIP_STIP) != 0; }

int main(void)
{
    struct error err;
    if (ram_init(&m.bus.ram, MEMMAP_RAM_BASE, 1 << 20, &err) < 0) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    m.nharts = 1;
    m.sbi = true;
    vclock_init(&m.clock);
    struct hart *h = &m.harts[0];
    hart_init(h, 0, &m, &m.bus);
    h->mcounteren = 7;
    hart_firmware_envcfg(h);
    uint64_t now = machine_time_ticks(&m);

    /* SBI TIME set_timer, in the future: counted, stimecmp set, STIP low. */
    run_s(ECALL, now + 1000000000, 0x54494D45, 0);
    CHECK(h->sbi_set_timer_calls == 1, "TIME set_timer counted %llu times",
          (unsigned long long)h->sbi_set_timer_calls);
    CHECK(h->stimecmp == now + 1000000000, "set_timer did not write stimecmp");
    CHECK(!stip(), "STIP raised for a future deadline");
    CHECK(hart_timer_deadline(h) == now + 1000000000, "deadline is not stimecmp");

    /* Legacy set_timer in the past: counted again, STIP at once. */
    run_s(ECALL, 0, 0, 0);
    CHECK(h->sbi_set_timer_calls == 2, "legacy set_timer not counted");
    CHECK(stip(), "STIP not raised for a past deadline");

    /* Sstc: the kernel writes stimecmp itself: not an SBI call. */
    run_s(CSRW_STIMECMP_A0, UINT64_MAX, 0, 0);
    CHECK(h->sbi_set_timer_calls == 2, "a stimecmp write was counted as an SBI call");
    CHECK(h->stimecmp == UINT64_MAX && !stip(), "stimecmp write did not lower STIP");

    /* Time passing raises it through the machine's update. */
    run_s(CSRW_STIMECMP_A0, machine_time_ticks(&m) + 1, 0, 0);
    hart_timer_update(h, machine_time_ticks(&m) + 2);
    CHECK(stip(), "hart_timer_update did not raise STIP once time passed stimecmp");

    /* Without SBI and without STCE, STIP is software's: the timer leaves it. */
    m.sbi = false;
    h->menvcfg = 0;
    h->mip &= ~MIP_STIP;
    h->stimecmp = 0;
    hart_timer_update(h, machine_time_ticks(&m));
    CHECK(!stip(), "the timer drove STIP with neither SBI nor STCE");
    CHECK(hart_timer_deadline(h) == UINT64_MAX, "a deadline without SBI or STCE");

    ram_destroy(&m.bus.ram);
    if (failures) {
        printf("test_sbi_timer: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_sbi_timer: %d checks passed\n", checks);
    return 0;
}
