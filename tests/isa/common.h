/*
 * common.h - shared constants and check macros of the ferry ISA tests.
 *
 * Every test is one .S file that includes this header and defines the
 * global function `test_main`; it is linked with crt.S (entry, trap
 * handler, pass/fail reporting through HTIF `tohost`).
 *
 * Register conventions (see README.md):
 *   gp (x3)   current check number; `fail` reports it as the failure code
 *   t5, t6    scratch of the macros below (never hold values across them)
 *   sp        stack (crt.S sets it; tests may use it)
 *
 * Check numbers are explicit in the sources so that a failure code can be
 * found with `grep`.  Each CHKNUM also defines the symbol check_N at that
 * point (so `nm NAME.elf | grep check_N` finds its address, and a number
 * used twice is an assembly error).  A check number may not be a multiple
 * of 256 (an 8-bit exit status would read as 0 = success), nor 255, which
 * crt.S reports for a failure before the first check.
 */
#ifndef FERRY_ISA_COMMON_H
#define FERRY_ISA_COMMON_H

/* ---- platform (QEMU virt memory map, as ferry implements it) ---- */
#define RAM_BASE        0x80000000
#define CLINT_BASE      0x02000000
#define CLINT_MSIP      (CLINT_BASE + 0x0000)
#define CLINT_MTIMECMP  (CLINT_BASE + 0x4000)
#define CLINT_MTIME     (CLINT_BASE + 0xbff8)
#define UART_BASE       0x10000000
#define SYSCON_BASE     0x00100000

/* ---- mstatus ---- */
#define MSTATUS_SIE     0x2
#define MSTATUS_MIE     0x8
#define MSTATUS_SPIE    0x20
#define MSTATUS_UBE     0x40
#define MSTATUS_MPIE    0x80
#define MSTATUS_SPP     0x100
#define MSTATUS_MPP     0x1800
#define MSTATUS_MPP_S   0x0800
#define MSTATUS_MPP_M   0x1800
#define MSTATUS_FS      0x6000
#define MSTATUS_FS_INIT 0x2000
#define MSTATUS_FS_CLEAN 0x4000
#define MSTATUS_FS_DIRTY 0x6000
#define MSTATUS_XS      0x18000
#define MSTATUS_MPRV    0x20000
#define MSTATUS_SUM     0x40000
#define MSTATUS_MXR     0x80000
#define MSTATUS_TVM     0x100000
#define MSTATUS_TW      0x200000
#define MSTATUS_TSR     0x400000
#define MSTATUS_UXL     0x300000000
#define MSTATUS_SXL     0xc00000000
#define MSTATUS_SD      0x8000000000000000

#define PRV_U 0
#define PRV_S 1
#define PRV_M 3

/* ---- mip / mie bits ---- */
#define MIP_SSIP 0x2
#define MIP_MSIP 0x8
#define MIP_STIP 0x20
#define MIP_MTIP 0x80
#define MIP_SEIP 0x200
#define MIP_MEIP 0x800

/* ---- mcause values ---- */
#define CAUSE_MISALIGNED_FETCH  0
#define CAUSE_FETCH_ACCESS      1
#define CAUSE_ILLEGAL_INSN      2
#define CAUSE_BREAKPOINT        3
#define CAUSE_MISALIGNED_LOAD   4
#define CAUSE_LOAD_ACCESS       5
#define CAUSE_MISALIGNED_STORE  6
#define CAUSE_STORE_ACCESS      7
#define CAUSE_USER_ECALL        8
#define CAUSE_SUPERVISOR_ECALL  9
#define CAUSE_MACHINE_ECALL     11
#define CAUSE_FETCH_PAGE_FAULT  12
#define CAUSE_LOAD_PAGE_FAULT   13
#define CAUSE_STORE_PAGE_FAULT  15
#define CAUSE_INTR              0x8000000000000000
#define IRQ_S_SOFT              1
#define IRQ_M_SOFT              3
#define IRQ_S_TIMER             5
#define IRQ_M_TIMER             7
#define IRQ_S_EXT               9
#define IRQ_M_EXT               11

/* value of trap_cause while no trap was recorded (never a real mcause) */
#define NO_TRAP                 0x7ffffffffffff00d

/* ---- fflags ---- */
#define FF_NX 0x01
#define FF_UF 0x02
#define FF_OF 0x04
#define FF_DZ 0x08
#define FF_NV 0x10

/* ---- rounding modes ---- */
#define RM_RNE 0
#define RM_RTZ 1
#define RM_RDN 2
#define RM_RUP 3
#define RM_RMM 4
#define RM_DYN 7

/* ---- satp / PTE ---- */
#define SATP_MODE_SV39 (8 << 60)
#define SATP_MODE_SV48 (9 << 60)
#define PTE_V 0x01
#define PTE_R 0x02
#define PTE_W 0x04
#define PTE_X 0x08
#define PTE_U 0x10
#define PTE_G 0x20
#define PTE_A 0x40
#define PTE_D 0x80

/* ======================================================================
 * Check numbering
 * ==================================================================== */

/* Start check \n: set gp and define check_\n. */
.macro CHKNUM n
  .if ((\n) & 0xff) == 0
    .error "check number is a multiple of 256"
  .endif
  .if (\n) == 255
    .error "check number 255 is reserved"
  .endif
check_\n:
  li gp, \n
.endm

/* ======================================================================
 * Assertions (use the current check number in gp; clobber t5/t6)
 * ==================================================================== */

/* fail unless register \reg == constant \val */
.macro ASSERT_EQ reg, val
  li t6, \val
  beq \reg, t6, .Lok\@
  j fail
.Lok\@:
.endm

/* fail unless register \reg != constant \val */
.macro ASSERT_NE reg, val
  li t6, \val
  bne \reg, t6, .Lok\@
  j fail
.Lok\@:
.endm

/* fail unless registers \ra == \rb */
.macro ASSERT_REQ ra, rb
  beq \ra, \rb, .Lok\@
  j fail
.Lok\@:
.endm

/* fail unless the 64-bit variable \sym == constant \val */
.macro ASSERT_VAR sym, val
  la t5, \sym
  ld t5, 0(t5)
  li t6, \val
  beq t5, t6, .Lok\@
  j fail
.Lok\@:
.endm

/* fail unless the 64-bit variable \sym == address \label */
.macro ASSERT_VAR_ADDR sym, label
  la t5, \sym
  ld t5, 0(t5)
  la t6, \label
  beq t5, t6, .Lok\@
  j fail
.Lok\@:
.endm

/* fail unless the 64-bit variable \sym == register \reg */
.macro ASSERT_VAR_REG sym, reg
  la t5, \sym
  ld t5, 0(t5)
  beq t5, \reg, .Lok\@
  j fail
.Lok\@:
.endm

/* fail unless (\reg & \mask) == \val */
.macro ASSERT_MASKED reg, mask, val
  li t6, \mask
  and t6, \reg, t6
  li t5, \val
  beq t5, t6, .Lok\@
  j fail
.Lok\@:
.endm

/* check \n: register \reg == constant \val */
.macro CHECK n, reg, val
  CHKNUM \n
  ASSERT_EQ \reg, \val
.endm

/* check \n: registers \ra == \rb */
.macro CHECK_REQ n, ra, rb
  CHKNUM \n
  ASSERT_REQ \ra, \rb
.endm

/* check \n: variable \sym == \val */
.macro CHECK_VAR n, sym, val
  CHKNUM \n
  ASSERT_VAR \sym, \val
.endm

/* ======================================================================
 * Instruction tests (operands in a1/a2, result in a0)
 * ==================================================================== */

/* \inst a0, a1, a2 with a1 = \v1, a2 = \v2; expect a0 == \exp */
.macro TEST_RR n, inst, exp, v1, v2
  CHKNUM \n
  li a1, \v1
  li a2, \v2
  \inst a0, a1, a2
  ASSERT_EQ a0, \exp
.endm

/* \inst a0, a1, \imm with a1 = \v1; expect a0 == \exp */
.macro TEST_RI n, inst, exp, v1, imm
  CHKNUM \n
  li a1, \v1
  \inst a0, a1, \imm
  ASSERT_EQ a0, \exp
.endm

/* \inst a1, a1, a2 (destination = first source) */
.macro TEST_RR_D1 n, inst, exp, v1, v2
  CHKNUM \n
  li a1, \v1
  li a2, \v2
  \inst a1, a1, a2
  ASSERT_EQ a1, \exp
.endm

/* \inst a2, a1, a2 (destination = second source) */
.macro TEST_RR_D2 n, inst, exp, v1, v2
  CHKNUM \n
  li a1, \v1
  li a2, \v2
  \inst a2, a1, a2
  ASSERT_EQ a2, \exp
.endm

/* \inst a0, a1, a1 (both sources the same register) */
.macro TEST_RR_SS n, inst, exp, v1
  CHKNUM \n
  li a1, \v1
  \inst a0, a1, a1
  ASSERT_EQ a0, \exp
.endm

/* ======================================================================
 * Traps (see the trap handler in crt.S)
 * ==================================================================== */

/* Allow exactly one trap; forget the previous trap's cause. */
.macro EXPECT_TRAP
  la t6, trap_cause
  li t5, NO_TRAP
  sd t5, 0(t6)
  la t6, trap_expected
  li t5, 1
  sd t5, 0(t6)
.endm

/* After the next exception, continue at \label in privilege \mode
 * (default: skip the faulting instruction, same privilege). */
.macro RESUME_AT label, mode=PRV_M
  la t6, trap_resume_mode
  li t5, \mode
  sd t5, 0(t6)
  la t6, trap_resume
  la t5, \label
  sd t5, 0(t6)
.endm

/* Fail unless a trap was taken and its mcause was \cause. */
.macro ASSERT_TRAP cause
  ASSERT_VAR trap_cause, \cause
.endm

.macro CHECK_TRAP n, cause
  CHKNUM \n
  ASSERT_TRAP \cause
.endm

/* Fail unless no trap was taken since EXPECT_TRAP / NO_TRAP_SINCE. */
.macro ASSERT_NO_TRAP
  ASSERT_VAR trap_cause, NO_TRAP
.endm

/* Forget the last trap, so that ASSERT_NO_TRAP can be used later. */
.macro CLEAR_TRAP
  la t6, trap_cause
  li t5, NO_TRAP
  sd t5, 0(t6)
.endm

/* From M-mode: continue at \label in privilege \mode (via mret), with
 * MPIE cleared (interrupts stay disabled in the target mode). */
.macro ENTER_MODE mode, label
  li t6, MSTATUS_MPP | MSTATUS_MPIE
  csrc mstatus, t6
  li t6, ((\mode) << 11)
  csrs mstatus, t6
  la t6, \label
  csrw mepc, t6
  mret
.endm

/* From S/U-mode: ecall into the M-mode handler, which continues at \label
 * in M-mode.  (ASSERT_TRAP CAUSE_*_ECALL there checks where it came from.) */
.macro ECALL_TO_M label
  RESUME_AT \label, PRV_M
  EXPECT_TRAP
  ecall
  j fail
.endm

#endif
