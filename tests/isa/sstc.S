/*
 * sstc - the Sstc extension: the stimecmp CSR and the supervisor timer
 * interrupt it drives. M-mode always reaches stimecmp; S-mode only with
 * menvcfg.STCE and mcounteren.TM, U-mode never. With STCE set, mip.STIP
 * is read-only and follows time >= stimecmp (also right after a write);
 * with STCE clear it is M-mode's to write again. The timer wakes WFI and,
 * delegated, interrupts S-mode, whose handler clears it by writing
 * stimecmp. Passes on QEMU 7.2 too (sstc is on by default there).
 */
#include "common.h"

#define CSR_STIMECMP 0x14d
#define CSR_MENVCFG  0x30a
#define MENVCFG_STCE (1 << 63)
#define COUNTEREN_TM 2
#define TICKS_1S     10000000   /* timebase 10 MHz */

/* fail unless mip.STIP == \val (0 or 1) */
.macro ASSERT_STIP val
  csrr t5, mip
  andi t5, t5, MIP_STIP
  li t6, (\val) * MIP_STIP
  beq t5, t6, .Lok\@
  j fail
.Lok\@:
.endm

/* stimecmp = time + \ticks (clobbers t0, t1) */
.macro ARM_TIMER ticks
  rdtime t0
  li t1, \ticks
  add t0, t0, t1
  csrw CSR_STIMECMP, t0
.endm

  .text
  .globl test_main
test_main:
  mv s11, ra
  la t0, s_handler
  csrw stvec, t0

  /* ---------------- the CSR itself ---------------- */
  CHKNUM 1                     /* M-mode reads back what it writes, STCE or not */
  li a1, 0x123456789
  csrw CSR_STIMECMP, a1
  csrr a0, CSR_STIMECMP
  ASSERT_REQ a0, a1
  CHKNUM 2                     /* menvcfg.STCE is writable */
  li t0, MENVCFG_STCE
  csrs CSR_MENVCFG, t0
  csrr a0, CSR_MENVCFG
  ASSERT_MASKED a0, MENVCFG_STCE, MENVCFG_STCE

  /* ---------------- STIP follows stimecmp (STCE = 1) ---------------- */
  CHKNUM 3                     /* stimecmp in the future: STIP clear */
  li t0, -1
  csrw CSR_STIMECMP, t0
  ASSERT_STIP 0
  CHKNUM 4                     /* stimecmp = 0 is past: STIP set at once */
  csrw CSR_STIMECMP, zero
  ASSERT_STIP 1
  CHKNUM 5                     /* mip.STIP is read-only: clearing it does nothing */
  li t0, MIP_STIP
  csrc mip, t0
  ASSERT_STIP 1
  CHKNUM 6                     /* a later stimecmp clears it at once */
  li t0, -1
  csrw CSR_STIMECMP, t0
  ASSERT_STIP 0
  CHKNUM 7                     /* ... and setting it through mip does nothing either */
  li t0, MIP_STIP
  csrs mip, t0
  ASSERT_STIP 0
  CHKNUM 8                     /* stimecmp = now + 1 ms: clear now, set within 1 s, not before time */
  ARM_TIMER 10000
  mv s1, t0                    /* the deadline */
  ASSERT_STIP 0
  li s2, TICKS_1S
  add s2, s2, s1
1:
  csrr t0, mip
  andi t0, t0, MIP_STIP
  bnez t0, 2f
  rdtime t0
  bltu t0, s2, 1b
  j fail                       /* no STIP within a second of the deadline */
2:
  rdtime t0
  bltu t0, s1, fail            /* raised before its time */

  /* ---------------- WFI ---------------- */
  CHKNUM 9                     /* WFI wakes on the timer (STIE enabled, not taken in M with MIE = 0) */
  li t0, MIP_STIP
  csrw mie, t0
  ARM_TIMER 20000
  mv s1, t0
  li s2, TICKS_1S
  add s2, s2, s1
1:
  wfi
  csrr t0, mip
  andi t0, t0, MIP_STIP
  bnez t0, 2f
  rdtime t0
  bltu t0, s2, 1b
  j fail
2:
  rdtime t0
  bltu t0, s1, fail
  csrw mie, zero
  li t0, -1
  csrw CSR_STIMECMP, t0

  /* ---------------- access from S and U ---------------- */
  CHKNUM 10                    /* S with STCE and TM: read and write */
  li t0, COUNTEREN_TM
  csrs mcounteren, t0
  ENTER_MODE PRV_S, 1f
1:
  li a1, 0x7777777777
  csrw CSR_STIMECMP, a1
  csrr a0, CSR_STIMECMP
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_REQ a0, a1
  CHKNUM 11                    /* S without mcounteren.TM: illegal */
  li t0, COUNTEREN_TM
  csrc mcounteren, t0
  ENTER_MODE PRV_S, 1f
1:
  EXPECT_TRAP
  csrr a0, CSR_STIMECMP
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  EXPECT_TRAP
  csrw CSR_STIMECMP, zero
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ECALL_TO_M 2f
2:
  CHKNUM 12                    /* S without menvcfg.STCE: illegal */
  li t0, COUNTEREN_TM
  csrs mcounteren, t0
  li t0, MENVCFG_STCE
  csrc CSR_MENVCFG, t0
  ENTER_MODE PRV_S, 1f
1:
  EXPECT_TRAP
  csrr a0, CSR_STIMECMP
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ECALL_TO_M 2f
2:
  CHKNUM 13                    /* U: illegal even with STCE and TM */
  li t0, MENVCFG_STCE
  csrs CSR_MENVCFG, t0
  csrwi scounteren, COUNTEREN_TM
  ENTER_MODE PRV_U, 1f
1:
  EXPECT_TRAP
  csrr a0, CSR_STIMECMP
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ECALL_TO_M 2f
2:

  /* ---------------- the interrupt, delegated to S ---------------- */
  CHKNUM 14                    /* S arms stimecmp, takes the interrupt (scause 5), clears it by writing stimecmp */
  li t0, -1
  csrw CSR_STIMECMP, t0
  li t0, MIP_STIP
  csrw mideleg, t0
  csrw mie, t0
  la t0, s_cause
  sd zero, 0(t0)
  ENTER_MODE PRV_S, 1f
1:
  csrsi sstatus, MSTATUS_SIE
  rdtime s1
  li t0, 20000
  add s1, s1, t0
  csrw CSR_STIMECMP, s1
  li s2, TICKS_1S
  add s2, s2, s1
3:
  la t0, s_cause
  ld t0, 0(t0)
  bnez t0, 4f
  rdtime t0
  bltu t0, s2, 3b
4:
  csrci sstatus, MSTATUS_SIE
  ECALL_TO_M 2f
2:
  la t0, s_cause
  ld a0, 0(t0)
  ASSERT_EQ a0, CAUSE_INTR | IRQ_S_TIMER
  CHKNUM 15                    /* taken no earlier than the deadline, and the handler's write cleared STIP */
  la t0, s_time
  ld a0, 0(t0)
  bltu a0, s1, fail
  ASSERT_STIP 0
  csrw mie, zero
  csrw mideleg, zero

  /* ---------------- STCE = 0: STIP belongs to M-mode software ---------------- */
  CHKNUM 16                    /* M sets and clears STIP through mip; stimecmp does not drive it */
  li t0, MENVCFG_STCE
  csrc CSR_MENVCFG, t0
  li t0, MIP_STIP
  csrs mip, t0
  ASSERT_STIP 1
  li t0, MIP_STIP
  csrc mip, t0
  ASSERT_STIP 0
#ifndef QEMU_REF  /* QEMU 7.2 lets stimecmp raise STIP even with STCE clear */
  CHKNUM 17
  csrw CSR_STIMECMP, zero
  ASSERT_STIP 0
  li t0, -1
  csrw CSR_STIMECMP, t0
#endif

  mv ra, s11
  ret

/* S-mode handler: only the expected timer interrupt comes here. Records
 * scause and the time, clears the interrupt by pushing stimecmp out, and
 * preserves every register (the interrupted loop uses t0). */
  .align 2
s_handler:
  csrw sscratch, t0
  la t0, s_save
  sd t1, 0(t0)
  csrr t1, scause
  sd t1, 8(t0)
  rdtime t1
  sd t1, 16(t0)
  li t1, -1
  csrw CSR_STIMECMP, t1
  ld t1, 0(t0)
  csrr t0, sscratch
  sret

  .data
  .align 3
s_save:  .dword 0
s_cause: .dword 0              /* s_save + 8 */
s_time:  .dword 0              /* s_save + 16 */
