/*
 * csr_ext - machine CSRs that M-mode software probes: the debug trigger
 * CSRs (tselect, tdata1-3, tinfo) read as "no triggers" instead of
 * trapping; a CSR write to minstret/mcycle replaces the counter and the
 * writing instruction does not count itself; 16 PMP entries (pmpcfg0,
 * pmpcfg2, pmpaddr0..15) read back what M-mode wrote, with the WARL rules
 * (54-bit pmpaddr, reserved cfg bits, locked entries), pmpcfg1/3 do not
 * exist on RV64 and entries 16..63 are read-only zero.
 */
#include "common.h"

#define CSR_TSELECT 0x7a0
#define CSR_TDATA1  0x7a1
#define CSR_TDATA2  0x7a2
#define CSR_TDATA3  0x7a3
#define CSR_TINFO   0x7a4

  .text
  .globl test_main
test_main:
  mv s11, ra

  /* ---------------- triggers ---------------- */
  CHKNUM 1                     /* tselect is accessible and 0 reads back */
  CLEAR_TRAP
  csrw CSR_TSELECT, zero
  csrr a0, CSR_TSELECT
  ASSERT_NO_TRAP
  ASSERT_EQ a0, 0
  CHKNUM 2                     /* tdata1/2/3 are accessible */
  csrr a0, CSR_TDATA1
  csrr a1, CSR_TDATA2
  csrr a2, CSR_TDATA3
  ASSERT_NO_TRAP
#ifndef QEMU_REF  /* QEMU 7.2 implements two triggers */
  CHKNUM 3                     /* no trigger at index 0: tdata1.type = 0, tdata2/3 read 0 */
  srli t0, a0, 60
  ASSERT_EQ t0, 0
  ASSERT_EQ a1, 0
  ASSERT_EQ a2, 0
  CHKNUM 4                     /* tinfo = 1: only type 0 ("no trigger") at this index */
  csrr a0, CSR_TINFO
  ASSERT_EQ a0, 1
  CHKNUM 5                     /* an mcontrol written to tdata1 does not stick: nothing to arm */
  li t0, (2 << 60) | (1 << 6) | (1 << 2)   /* type 2, M-mode, execute */
  csrw CSR_TDATA1, t0
  csrr a0, CSR_TDATA1
  srli a0, a0, 60
  ASSERT_EQ a0, 0
  CHKNUM 6                     /* tselect = 1 selects no further trigger: reads back 0 */
  li t0, 1
  csrw CSR_TSELECT, t0
  csrr a0, CSR_TSELECT
  ASSERT_EQ a0, 0
#endif

  /* ---------------- minstret / mcycle writes ---------------- */
#ifndef QEMU_REF  /* QEMU 7.2 without icount counts host ticks */
  CHKNUM 7                     /* the write does not count itself; the read counts what retired before it */
  li a1, 1000
  csrw minstret, a1
  csrr a0, minstret
  ASSERT_EQ a0, 1000
  CHKNUM 8                     /* two instructions later: +2 */
  csrw minstret, a1
  nop
  nop
  csrr a0, minstret
  ASSERT_EQ a0, 1002
  CHKNUM 9                     /* csrrw returns the old value; the new one has no extra count */
  li a1, 5000
  csrw minstret, zero
  csrrw a0, minstret, a1
  csrr a2, minstret
  ASSERT_EQ a0, 0
  ASSERT_EQ a2, 5000
  CHKNUM 10                    /* instret (the user view) reads the same counter */
  csrw minstret, a1
  csrr a0, instret
  ASSERT_EQ a0, 5000
  CHKNUM 11                    /* csrs/csrc on minstret also replace it without the increment */
  li a1, 0x100
  csrw minstret, zero
  csrs minstret, a1
  csrr a0, minstret
  ASSERT_EQ a0, 0x100
#endif
  CHKNUM 12                    /* mcycle: a written value, then counting on from it */
  li a1, 0x10000000
  csrw mcycle, a1
  csrr a0, mcycle
  bltu a0, a1, fail
  li t0, 0x10000000 + 100000
  bgeu a0, t0, fail

  /* ---------------- PMP ---------------- */
  CHKNUM 13                    /* pmpaddr1..15 hold distinct values */
  li a1, 0x111111
  csrw pmpaddr1, a1
  slli a2, a1, 1
  csrw pmpaddr2, a2
  slli a3, a1, 2
  csrw pmpaddr3, a3
  slli a4, a1, 3
  csrw pmpaddr15, a4
  li a5, 0x20000000
  csrw pmpaddr8, a5
  csrr t0, pmpaddr1
  ASSERT_REQ t0, a1
  csrr t0, pmpaddr2
  ASSERT_REQ t0, a2
  csrr t0, pmpaddr3
  ASSERT_REQ t0, a3
  csrr t0, pmpaddr15
  ASSERT_REQ t0, a4
  csrr t0, pmpaddr8
  ASSERT_REQ t0, a5
  CHKNUM 14                    /* pmpcfg0 (entries 0..7) reads back; entry 0 stays crt's RWX NAPOT */
  li a1, 0x0f0d0b091f170b1f    /* TOR/NA4/NAPOT with R, RW, RX, RWX */
  csrw pmpcfg0, a1
  csrr a0, pmpcfg0
  ASSERT_REQ a0, a1
  CHKNUM 15                    /* pmpcfg2 (entries 8..15) reads back */
  li a1, 0x090b0d0f11131719
  csrw pmpcfg2, a1
  csrr a0, pmpcfg2
  ASSERT_REQ a0, a1
  CHKNUM 16                    /* pmpcfg1 and pmpcfg3 do not exist on RV64 */
  EXPECT_TRAP
  csrr a0, pmpcfg1
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  EXPECT_TRAP
  csrw pmpcfg3, zero
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  CHKNUM 17                    /* PMP CSRs are M-only */
  ENTER_MODE PRV_S, 1f
1:
  EXPECT_TRAP
  csrr a0, pmpaddr1
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ECALL_TO_M 2f
2:
#ifndef QEMU_REF  /* QEMU 7.2 keeps every bit written, and has no CSRs past entry 15 */
  CHKNUM 18                    /* pmpaddr is 54 bits wide */
  li a1, -1
  csrw pmpaddr5, a1
  csrr a0, pmpaddr5
  ASSERT_EQ a0, 0x003fffffffffffff
  CHKNUM 19                    /* cfg bits 5 and 6 are reserved (read 0); R = 0, W = 1 reads as W = 0 */
  li a1, 0x1e0b0b0b0b0b6b1f    /* entry 1: TOR RW + bits 5, 6; entry 7: NAPOT W X without R */
  csrw pmpcfg0, a1
  csrr a0, pmpcfg0
  ASSERT_EQ a0, 0x1c0b0b0b0b0b0b1f
  CHKNUM 20                    /* entries 16..63: pmpcfg4..14 and pmpaddr16..63 read 0, writes ignored */
  li a1, -1
  csrw pmpcfg4, a1
  csrr a0, pmpcfg4
  ASSERT_EQ a0, 0
  csrw pmpaddr16, a1
  csrr a0, pmpaddr16
  ASSERT_EQ a0, 0
  csrw pmpaddr63, a1
  csrr a0, pmpaddr63
  ASSERT_EQ a0, 0
#endif
  CHKNUM 21                    /* a locked TOR entry (15) keeps its cfg and address, and entry 14's address */
  li a1, 0x200
  csrw pmpaddr14, a1
  li a1, 0x400
  csrw pmpaddr15, a1           /* [0x800, 0x1000): nothing the test touches */
  li a1, 0x8f00000000000000    /* entry 15: L, TOR, RWX */
  li t0, 0x00ffffffffffffff
  csrc pmpcfg2, t0             /* entries 8..14 off */
  csrr t0, pmpcfg2
  or a1, a1, t0
  csrw pmpcfg2, a1
  csrw pmpcfg2, zero           /* ignored for entry 15 */
  csrr a0, pmpcfg2
  srli a0, a0, 56
  ASSERT_EQ a0, 0x8f
  li t0, 0x123
  csrw pmpaddr15, t0
  csrw pmpaddr14, t0
  csrr a0, pmpaddr15
  ASSERT_EQ a0, 0x400
  csrr a0, pmpaddr14
  ASSERT_EQ a0, 0x200
  CHKNUM 22                    /* entry 13, below the lock's range base, is still writable */
  li t0, 0x321
  csrw pmpaddr13, t0
  csrr a0, pmpaddr13
  ASSERT_EQ a0, 0x321

  mv ra, s11
  ret
