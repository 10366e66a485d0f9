/*
 * traps - exceptions, interrupts, privilege changes and delegation:
 * ECALL from M/S/U (causes 11/9/8), EBREAK, illegal instructions (mtval =
 * the instruction bits), privileged instructions from lower modes, MRET /
 * SRET and the MIE/MPIE/MPP, SIE/SPIE/SPP stacks (MPRV cleared), TSR,
 * delegation through medeleg/mideleg to an S-mode handler (scause, sepc,
 * stval, stvec), machine timer (CLINT mtimecmp) and software (msip)
 * interrupts, global enables per privilege, a delegated supervisor
 * software interrupt taken in S-mode, WFI waking on a pending interrupt,
 * vectored mtvec/stvec dispatch, jumps to pc+2 (no misaligned-fetch trap
 * with C), and access faults on unmapped physical addresses (mtval = the
 * address).
 */
#include "common.h"

/* S-mode counterparts of EXPECT_TRAP / RESUME_AT for s_trap_entry */
.macro S_EXPECT_TRAP
  la t6, s_cause
  li t5, NO_TRAP
  sd t5, 0(t6)
  la t6, s_expected
  li t5, 1
  sd t5, 0(t6)
.endm

.macro S_RESUME_AT label, mode
  la t6, s_resume_mode
  li t5, \mode
  sd t5, 0(t6)
  la t6, s_resume
  la t5, \label
  sd t5, 0(t6)
.endm

/* spin (bounded) until trap_count changes from the value in \reg */
.macro WAIT_TRAP reg
  li t4, 20000000
.Lw\@:
  la t5, trap_count
  ld t5, 0(t5)
  bne t5, \reg, .Ld\@
  addi t4, t4, -1
  bnez t4, .Lw\@
.Ld\@:
.endm

  .text
  .globl test_main
test_main:
  mv s11, ra
  la t0, s_trap_frame
  csrw sscratch, t0
  la t0, s_trap_entry
  csrw stvec, t0

  /* ---------------- synchronous exceptions into M ---------------- */
  CHKNUM 1                     /* ecall from M: cause 11, mepc = the ecall, mtval = 0 */
  EXPECT_TRAP
1:
  ecall
  ASSERT_TRAP CAUSE_MACHINE_ECALL
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_VAR trap_tval, 0
  CHKNUM 2                     /* the trap saved MPP = M, MPIE = old MIE (0) */
  la t0, trap_mstatus
  ld a0, 0(t0)
  ASSERT_MASKED a0, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE, MSTATUS_MPP_M
  CHKNUM 3                     /* ecall from S: cause 9, MPP = S */
  ENTER_MODE PRV_S, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  ecall
  j fail
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_VAR_ADDR trap_epc, 3b
  la t0, trap_mstatus
  ld a0, 0(t0)
  ASSERT_MASKED a0, MSTATUS_MPP, MSTATUS_MPP_S
  CHKNUM 4                     /* ecall from U: cause 8, MPP = U */
  ENTER_MODE PRV_U, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  ecall
  j fail
2:
  ASSERT_TRAP CAUSE_USER_ECALL
  ASSERT_VAR_ADDR trap_epc, 3b
  la t0, trap_mstatus
  ld a0, 0(t0)
  ASSERT_MASKED a0, MSTATUS_MPP, 0
  CHKNUM 5                     /* ebreak: cause 3, mepc = the ebreak, mtval = pc or 0 */
  EXPECT_TRAP
1:
  ebreak
  ASSERT_TRAP CAUSE_BREAKPOINT
  ASSERT_VAR_ADDR trap_epc, 1b
  la t5, trap_tval
  ld t5, 0(t5)
  beqz t5, 2f
  la t6, 1b
  bne t5, t6, fail
2:
  CHKNUM 6                     /* ebreak from U-mode */
  ENTER_MODE PRV_U, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  ebreak
  j fail
2:
  ASSERT_TRAP CAUSE_BREAKPOINT
  ASSERT_VAR_ADDR trap_epc, 3b

  /* illegal instructions: cause 2, mtval = the instruction bits, rd unchanged */
  CHKNUM 7                     /* custom-0 opcode */
  li a0, 0x1234
  EXPECT_TRAP
1:
  .4byte 0x0000050b
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_VAR trap_tval, 0x0000050b
  ASSERT_EQ a0, 0x1234
  CHKNUM 8                     /* OP with an undefined funct7 */
  EXPECT_TRAP
  .4byte 0xfeb50533
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR trap_tval, 0xfeb50533
  CHKNUM 9                     /* LOAD with the undefined funct3 7 */
  EXPECT_TRAP
  .4byte 0x0005f503
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR trap_tval, 0x0005f503
  CHKNUM 10                    /* SLLIW with shamt[5] = 1 is reserved */
  EXPECT_TRAP
  .4byte 0x0205151b            /* slliw a0, a0, 32 (reserved) */
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR trap_tval, 0x0205151b
  CHKNUM 11                    /* reserved 16-bit encoding (quadrant 0, funct3 4): mtval = 16 bits */
  EXPECT_TRAP
1:
  .2byte 0x8000
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_VAR trap_tval, 0x8000
  CHKNUM 12                    /* illegal instruction from U-mode */
  ENTER_MODE PRV_U, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  .4byte 0x0000050b
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  ASSERT_VAR trap_tval, 0x0000050b

  /* privileged instructions from lower privilege levels */
  CHKNUM 13                    /* mret in S */
  ENTER_MODE PRV_S, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  mret
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  ASSERT_VAR trap_tval, 0x30200073
  CHKNUM 14                    /* sret in U */
  ENTER_MODE PRV_U, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  sret
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  CHKNUM 15                    /* sfence.vma in U */
  ENTER_MODE PRV_U, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  sfence.vma
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  CHKNUM 16                    /* sret in S with mstatus.TSR = 1 */
  li t0, MSTATUS_TSR
  csrs mstatus, t0
  ENTER_MODE PRV_S, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  sret
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  li t0, MSTATUS_TSR
  csrc mstatus, t0
  CHKNUM 17                    /* wfi in S with mstatus.TW = 1 */
  li t0, MSTATUS_TW
  csrs mstatus, t0
  ENTER_MODE PRV_S, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  wfi
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  li t0, MSTATUS_TW
  csrc mstatus, t0

  /* ---------------- MRET / SRET ---------------- */
  CHKNUM 18                    /* mret M -> M: MIE = MPIE, MPIE = 1, MPP = U */
  li t0, MSTATUS_MPP | MSTATUS_MPIE
  csrs mstatus, t0
  li t0, MSTATUS_MIE
  csrc mstatus, t0
  la t0, 1f
  csrw mepc, t0
  mret
  j fail
1:
  csrr a0, mstatus
  li t0, MSTATUS_MIE
  csrc mstatus, t0
  ASSERT_MASKED a0, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE, MSTATUS_MPIE | MSTATUS_MIE
  CHKNUM 19                    /* mret with MPIE = 0: MIE = 0, MPIE = 1 */
  li t0, MSTATUS_MPP
  csrs mstatus, t0
  li t0, MSTATUS_MPIE | MSTATUS_MIE
  csrc mstatus, t0
  la t0, 1f
  csrw mepc, t0
  mret
  j fail
1:
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE, MSTATUS_MPIE
  CHKNUM 20                    /* mret to S clears MPRV (priv 1.12; checked with STRICT_SPEC) */
  li t0, MSTATUS_MPRV
  csrs mstatus, t0
  ENTER_MODE PRV_S, 1f
1:
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  csrr a0, mstatus
  li t0, MSTATUS_MPRV
  csrc mstatus, t0
#ifdef STRICT_SPEC
  ASSERT_MASKED a0, MSTATUS_MPRV, 0     /* QEMU 7.2 leaves MPRV set */
#endif
  CHKNUM 21                    /* sret from M: SIE = SPIE, SPIE = 1, SPP = U; lands in S */
  li t0, MSTATUS_SPP | MSTATUS_SPIE
  csrs mstatus, t0
  li t0, MSTATUS_SIE
  csrc mstatus, t0
  la t0, 1f
  csrw sepc, t0
  sret
  j fail
1:
  csrr a0, sstatus             /* S CSR: works in S (and M) */
  ASSERT_MASKED a0, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE, MSTATUS_SPIE | MSTATUS_SIE
  csrci sstatus, MSTATUS_SIE
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
  ecall
  j fail
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL   /* proves sret went to S */
  CHKNUM 22                    /* sret from S to U */
  ENTER_MODE PRV_S, 1f
1:
  li t0, MSTATUS_SPP
  csrc sstatus, t0
  la t0, 3f
  csrw sepc, t0
  sret
  j fail
3:
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_USER_ECALL
  CHKNUM 23                    /* sret from S to S with SPIE = 0 */
  ENTER_MODE PRV_S, 1f
1:
  li t0, MSTATUS_SPP
  csrs sstatus, t0
  li t0, MSTATUS_SPIE | MSTATUS_SIE
  csrc sstatus, t0
  la t0, 3f
  csrw sepc, t0
  sret
  j fail
3:
  csrr a0, sstatus
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_MASKED a0, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE, MSTATUS_SPIE

  /* ---------------- delegation to S ---------------- */
  CHKNUM 24                    /* ecall from U delegated: S handler, scause 8, sepc, stval 0 */
  li t0, 1 << CAUSE_USER_ECALL
  csrw medeleg, t0
  CLEAR_TRAP
  ENTER_MODE PRV_U, 1f
1:
  S_RESUME_AT 3f, PRV_S
  S_EXPECT_TRAP
4:
  ecall
  j fail
3:
  ECALL_TO_M 2f                /* now in S: back to M */
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_VAR s_cause, CAUSE_USER_ECALL
  ASSERT_VAR_ADDR s_epc, 4b
  ASSERT_VAR s_tval, 0
  CHKNUM 25                    /* the delegated trap set SPP = U, SPIE = old SIE */
  la t0, s_sstatus
  ld a0, 0(t0)
  ASSERT_MASKED a0, MSTATUS_SPP | MSTATUS_SIE, 0
  CHKNUM 26                    /* illegal instruction delegated: stval = instruction bits */
  li t0, (1 << CAUSE_ILLEGAL_INSN) | (1 << CAUSE_BREAKPOINT)
  csrw medeleg, t0
  ENTER_MODE PRV_U, 1f
1:
  S_EXPECT_TRAP
4:
  .4byte 0x0000050b
  la t5, s_cause               /* the S handler skipped it and returned to U */
  ld s1, 0(t5)
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_USER_ECALL
  ASSERT_EQ s1, CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR s_epc, 4b
  ASSERT_VAR s_tval, 0x0000050b
  CHKNUM 27                    /* breakpoint in S delegated to S: SPP = S, SIE 1 -> SPIE */
  ENTER_MODE PRV_S, 1f
1:
  csrsi sstatus, MSTATUS_SIE
  S_EXPECT_TRAP
4:
  ebreak
  csrr s2, sstatus             /* after sret: SIE restored from SPIE */
  csrci sstatus, MSTATUS_SIE
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL   /* not delegated: medeleg[9] = 0 */
  ASSERT_VAR s_cause, CAUSE_BREAKPOINT
  ASSERT_VAR_ADDR s_epc, 4b
  la t0, s_sstatus
  ld a0, 0(t0)
  ASSERT_MASKED a0, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE, MSTATUS_SPP | MSTATUS_SPIE
  ASSERT_MASKED s2, MSTATUS_SIE, MSTATUS_SIE
  CHKNUM 28                    /* traps in M are never delegated */
  EXPECT_TRAP
  ebreak
  ASSERT_TRAP CAUSE_BREAKPOINT
  csrw medeleg, zero
  CHKNUM 29                    /* with medeleg = 0 the same trap from U goes to M */
  ENTER_MODE PRV_U, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
  ebreak
  j fail
2:
  ASSERT_TRAP CAUSE_BREAKPOINT

  /* ---------------- machine interrupts ---------------- */
  CHKNUM 30                    /* MTIP follows mtime >= mtimecmp, without a trap while MIE = 0 */
  li t0, CLINT_MTIMECMP
  sd zero, 0(t0)
  li t1, MIP_MTIP
  csrs mie, t1
  CLEAR_TRAP
  li t2, 10000
1:
  csrr a0, mip
  andi a0, a0, MIP_MTIP
  bnez a0, 2f
  addi t2, t2, -1
  bnez t2, 1b
2:
  ASSERT_EQ a0, MIP_MTIP
  li t1, -1
  sd t1, 0(t0)
  li t2, 10000
1:
  csrr a0, mip
  andi a0, a0, MIP_MTIP
  beqz a0, 2f
  addi t2, t2, -1
  bnez t2, 1b
2:
  ASSERT_EQ a0, 0
  ASSERT_NO_TRAP
  CHKNUM 31                    /* machine timer interrupt: cause 0x8000000000000007 */
  la t0, trap_count
  ld s0, 0(t0)
  EXPECT_TRAP
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  addi t1, t1, 500             /* 50 us ahead */
  li t0, CLINT_MTIMECMP
  sd t1, 0(t0)
  csrsi mstatus, MSTATUS_MIE
  WAIT_TRAP s0
  csrci mstatus, MSTATUS_MIE
  ASSERT_TRAP CAUSE_INTR | IRQ_M_TIMER
  CHKNUM 32                    /* the interrupted pc is in mepc; MPIE = 1, MPP = M */
  la t0, trap_epc
  ld a0, 0(t0)
  la a1, test_main
  bltu a0, a1, fail
  la a1, test_end
  bgeu a0, a1, fail
  la t0, trap_mstatus
  ld a0, 0(t0)
  ASSERT_MASKED a0, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE, MSTATUS_MPP_M | MSTATUS_MPIE
  CHKNUM 33                    /* machine software interrupt via msip: cause ...3 */
  li t0, MIP_MTIP
  csrc mie, t0
  li t0, MIP_MSIP
  csrs mie, t0
  li t0, CLINT_MSIP
  li t1, 1
  sw t1, 0(t0)
  li t2, 10000                 /* MSIP becomes visible in mip */
1:
  csrr a0, mip
  andi a0, a0, MIP_MSIP
  bnez a0, 2f
  addi t2, t2, -1
  bnez t2, 1b
2:
  ASSERT_EQ a0, MIP_MSIP
  la t0, trap_count
  ld s0, 0(t0)
  EXPECT_TRAP
  csrsi mstatus, MSTATUS_MIE
  WAIT_TRAP s0
  csrci mstatus, MSTATUS_MIE
  ASSERT_TRAP CAUSE_INTR | IRQ_M_SOFT
  CHKNUM 34                    /* the handler's msip = 0 cleared MSIP */
  csrr a0, mip
  ASSERT_MASKED a0, MIP_MSIP, 0
  CHKNUM 35                    /* M interrupts are taken in S even with mstatus.MIE = 0 */
  li t0, CLINT_MSIP
  li t1, 1
  sw t1, 0(t0)
  li t2, 10000
1:
  csrr a0, mip
  andi a0, a0, MIP_MSIP
  bnez a0, 2f
  addi t2, t2, -1
  bnez t2, 1b
2:
  la t0, trap_count
  ld s0, 0(t0)
  EXPECT_TRAP
  ENTER_MODE PRV_S, 1f
1:
  WAIT_TRAP s0
  la t5, trap_cause
  ld s1, 0(t5)
  la t5, trap_mstatus
  ld s2, 0(t5)
  ECALL_TO_M 2f
2:
  ASSERT_EQ s1, CAUSE_INTR | IRQ_M_SOFT
  ASSERT_MASKED s2, MSTATUS_MPP, MSTATUS_MPP_S
  li t0, MIP_MSIP
  csrc mie, t0

  /* ---------------- WFI ---------------- */
  CHKNUM 36                    /* WFI returns when an enabled interrupt is pending (MIE = 0: no trap) */
  li t0, MIP_MTIP
  csrs mie, t0
  CLEAR_TRAP
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  li t2, 2000
  add t1, t1, t2               /* 200 us ahead */
  li t0, CLINT_MTIMECMP
  sd t1, 0(t0)
  li t2, 100000
1:
  wfi
  csrr a0, mip
  andi a0, a0, MIP_MTIP
  bnez a0, 2f
  addi t2, t2, -1
  bnez t2, 1b
2:
  ASSERT_EQ a0, MIP_MTIP
  ASSERT_NO_TRAP
  li t0, CLINT_MTIMECMP
  li t1, -1
  sd t1, 0(t0)
  CHKNUM 37                    /* WFI with MIE = 1: the timer interrupt is taken, execution continues after */
  la t0, trap_count
  ld s0, 0(t0)
  EXPECT_TRAP
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  li t2, 2000
  add t1, t1, t2
  li t0, CLINT_MTIMECMP
  sd t1, 0(t0)
  csrsi mstatus, MSTATUS_MIE
  li t2, 100000
1:
  wfi
  la t0, trap_count
  ld t0, 0(t0)
  bne t0, s0, 2f
  addi t2, t2, -1
  bnez t2, 1b
2:
  csrci mstatus, MSTATUS_MIE
  ASSERT_TRAP CAUSE_INTR | IRQ_M_TIMER
  li t0, MIP_MTIP
  csrc mie, t0

  /* ---------------- supervisor software interrupt ---------------- */
  CHKNUM 38                    /* SSIP set by M, delegated, taken in S when sstatus.SIE = 1 */
  li t0, MIP_SSIP
  csrw mideleg, t0
  csrs mie, t0
  csrs mip, t0
  ENTER_MODE PRV_S, 1f
1:
  S_EXPECT_TRAP
  la t5, s_count
  ld s0, 0(t5)
  csrsi sstatus, MSTATUS_SIE
  li t4, 1000000
3:
  la t5, s_count
  ld t5, 0(t5)
  bne t5, s0, 4f
  addi t4, t4, -1
  bnez t4, 3b
4:
  csrci sstatus, MSTATUS_SIE
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_VAR s_cause, CAUSE_INTR | IRQ_S_SOFT
  la t0, s_sstatus
  ld a0, 0(t0)
  ASSERT_MASKED a0, MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE, MSTATUS_SPP | MSTATUS_SPIE
  csrr a0, mip
  ASSERT_MASKED a0, MIP_SSIP, 0   /* the S handler cleared it through sip */
  CHKNUM 39                    /* pending SSI is not taken in S with SIE = 0 ... */
  li t0, MIP_SSIP
  csrs mip, t0
  CLEAR_TRAP
  ENTER_MODE PRV_S, 1f
1:
  la t5, s_cause
  li t6, NO_TRAP
  sd t6, 0(t5)
  li t4, 1000
3:
  addi t4, t4, -1
  bnez t4, 3b
  la t5, s_cause
  ld s1, 0(t5)
  /* ... but is taken in U regardless of SIE */
  S_EXPECT_TRAP
  li t0, MSTATUS_SPP
  csrc sstatus, t0
  la t0, 5f
  csrw sepc, t0
  sret
5:
  li t4, 1000000
3:
  la t5, s_cause
  ld t5, 0(t5)
  li t6, NO_TRAP
  bne t5, t6, 4f
  addi t4, t4, -1
  bnez t4, 3b
4:
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_USER_ECALL
  li t0, NO_TRAP
  ASSERT_REQ s1, t0
  ASSERT_VAR s_cause, CAUSE_INTR | IRQ_S_SOFT
  la t0, s_sstatus
  ld a0, 0(t0)
  ASSERT_MASKED a0, MSTATUS_SPP, 0
  CHKNUM 40                    /* not delegated: the same interrupt goes to M from S */
  csrci mstatus, MSTATUS_SIE
  csrw mideleg, zero
  li t0, MIP_SSIP
  csrs mip, t0
  la t0, trap_count
  ld s0, 0(t0)
  EXPECT_TRAP
  ENTER_MODE PRV_S, 1f
1:
  WAIT_TRAP s0
  la t5, trap_cause
  ld s1, 0(t5)
  ECALL_TO_M 2f
2:
  ASSERT_EQ s1, CAUSE_INTR | IRQ_S_SOFT
  CHKNUM 41                    /* ... and in M only with mstatus.MIE = 1 */
  li t0, MIP_SSIP
  csrs mip, t0
  la t0, trap_count
  ld s0, 0(t0)
  li t4, 1000
1:
  addi t4, t4, -1
  bnez t4, 1b
  la t0, trap_count
  ld t0, 0(t0)
  ASSERT_REQ t0, s0
  EXPECT_TRAP
  csrsi mstatus, MSTATUS_MIE
  WAIT_TRAP s0
  csrci mstatus, MSTATUS_MIE
  ASSERT_TRAP CAUSE_INTR | IRQ_S_SOFT
  li t0, MIP_SSIP
  csrc mie, t0

  /* ---------------- vectored trap vectors ---------------- */
  CHKNUM 42                    /* mtvec mode 1: interrupt N enters at base + 4 * N */
  la t0, m_vectors
  ori t0, t0, 1
  csrw mtvec, t0
  la t0, vec_seen
  li t1, -1
  sd t1, 0(t0)
  li t0, MIP_MSIP
  csrs mie, t0
  la t0, trap_count
  ld s0, 0(t0)
  EXPECT_TRAP
  li t0, CLINT_MSIP
  li t1, 1
  sw t1, 0(t0)
  csrsi mstatus, MSTATUS_MIE
  WAIT_TRAP s0
  csrci mstatus, MSTATUS_MIE
  ASSERT_TRAP CAUSE_INTR | IRQ_M_SOFT
  ASSERT_VAR vec_seen, 3
  li t0, MIP_MSIP
  csrc mie, t0
  CHKNUM 43                    /* timer interrupt through entry 7 */
  li t0, MIP_MTIP
  csrs mie, t0
  la t0, trap_count
  ld s0, 0(t0)
  EXPECT_TRAP
  li t0, CLINT_MTIMECMP
  sd zero, 0(t0)
  csrsi mstatus, MSTATUS_MIE
  WAIT_TRAP s0
  csrci mstatus, MSTATUS_MIE
  ASSERT_TRAP CAUSE_INTR | IRQ_M_TIMER
  ASSERT_VAR vec_seen, 7
  li t0, MIP_MTIP
  csrc mie, t0
  CHKNUM 44                    /* exceptions still enter at the base */
  EXPECT_TRAP
  ecall
  ASSERT_TRAP CAUSE_MACHINE_ECALL
  ASSERT_VAR vec_seen, 0
  la t0, trap_entry
  csrw mtvec, t0
  CHKNUM 45                    /* stvec mode 1: delegated SSI enters at base + 4 */
  csrci mstatus, MSTATUS_SIE   /* (the sret to U in check 39 left SIE = SPIE = 1) */
  la t0, s_vectors
  ori t0, t0, 1
  csrw stvec, t0
  la t0, vec_seen
  li t1, -1
  sd t1, 0(t0)
  li t0, MIP_SSIP
  csrw mideleg, t0
  csrs mie, t0
  csrs mip, t0
  ENTER_MODE PRV_S, 1f
1:
  S_EXPECT_TRAP
  la t5, s_count
  ld s0, 0(t5)
  csrsi sstatus, MSTATUS_SIE
  li t4, 1000000
3:
  la t5, s_count
  ld t5, 0(t5)
  bne t5, s0, 4f
  addi t4, t4, -1
  bnez t4, 3b
4:
  csrci sstatus, MSTATUS_SIE
  ECALL_TO_M 2f
2:
  ASSERT_VAR s_cause, CAUSE_INTR | IRQ_S_SOFT
  ASSERT_VAR vec_seen, 0x101
  la t0, s_trap_entry
  csrw stvec, t0
  csrw mideleg, zero
  li t0, MIP_SSIP
  csrc mie, t0

  /* ---------------- control transfers to pc + 2 ---------------- */
  CHKNUM 46                    /* jalr to an address = 2 mod 4: no misaligned-fetch trap */
  CLEAR_TRAP
  .option push
  .option norvc
  la t0, 1f
  jalr zero, 2(t0)
1:
  .2byte 0x0000                /* illegal: skipped by the jump */
  .2byte 0x0001                /* c.nop: the target */
  .option pop
  ASSERT_NO_TRAP
  CHKNUM 47                    /* jal / branch to pc + 2 */
  .option push
  .option norvc
  beq zero, zero, 1f + 2
1:
  .2byte 0x0000                /* illegal: skipped by the branch */
  .2byte 0x0001
  jal zero, 2f + 2
2:
  .2byte 0x0000                /* illegal: skipped by the jump */
  .2byte 0x0001                /* c.nop: the target */
  .option pop
  ASSERT_NO_TRAP

  /* ---------------- access faults ---------------- */
  CHKNUM 48                    /* load from 0x0: cause 5, mtval = 0 */
  li a1, 0
  li a0, 0x1234
  EXPECT_TRAP
1:
  ld a0, 0(a1)
  ASSERT_TRAP CAUSE_LOAD_ACCESS
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_VAR trap_tval, 0
  ASSERT_EQ a0, 0x1234
  CHKNUM 49                    /* load from 0x200010: mtval = the address */
  li a1, 0x200000
  EXPECT_TRAP
  lw a0, 16(a1)
  ASSERT_TRAP CAUSE_LOAD_ACCESS
  ASSERT_VAR trap_tval, 0x200010
  CHKNUM 50                    /* store to 0x200008: cause 7 */
  li a1, 0x200008
  EXPECT_TRAP
1:
  sd a1, 0(a1)
  ASSERT_TRAP CAUSE_STORE_ACCESS
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_VAR trap_tval, 0x200008
  CHKNUM 51                    /* byte store to 0x0 */
  EXPECT_TRAP
  sb zero, 0(zero)
  ASSERT_TRAP CAUSE_STORE_ACCESS
  ASSERT_VAR trap_tval, 0
  CHKNUM 52                    /* AMO to an unmapped address: store/AMO access fault */
  li a1, 0x200000
  EXPECT_TRAP
  amoadd.d a0, a1, (a1)
#ifdef STRICT_SPEC
  ASSERT_TRAP CAUSE_STORE_ACCESS
#else
  la t5, trap_cause            /* QEMU 7.2 reports 5 (load access fault) for AMOs */
  ld t5, 0(t5)
  li t6, CAUSE_LOAD_ACCESS
  beq t5, t6, 1f
  ASSERT_TRAP CAUSE_STORE_ACCESS
1:
#endif
  ASSERT_VAR trap_tval, 0x200000
  CHKNUM 53                    /* instruction fetch from 0x200000: cause 1, mepc = mtval = address */
  RESUME_AT 1f, PRV_M
  EXPECT_TRAP
  li t0, 0x200000
  jalr ra, 0(t0)
  j fail
1:
  ASSERT_TRAP CAUSE_FETCH_ACCESS
  ASSERT_VAR trap_epc, 0x200000
  ASSERT_VAR trap_tval, 0x200000
  CHKNUM 54                    /* load access fault from U-mode */
  ENTER_MODE PRV_U, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
  li a1, 0x200000
  ld a0, 0(a1)
  j fail
2:
  ASSERT_TRAP CAUSE_LOAD_ACCESS
  ASSERT_VAR trap_tval, 0x200000

  mv ra, s11
  ret
test_end:

/* ---------------- S-mode trap handler ----------------
 * Records scause/sepc/stval/sstatus into s_cause/s_epc/s_tval/s_sstatus,
 * counts s_count; fails unless S_EXPECT_TRAP was given.  Interrupts: SSIP
 * is cleared.  Exceptions: continue at S_RESUME_AT's label and mode (0 =
 * U, 1 = S) if given, else skip the instruction. */
  .align 6
s_trap_entry:
  csrrw sp, sscratch, sp
  sd t0, 0(sp)
  sd t1, 8(sp)
  sd t2, 16(sp)
  csrr t0, scause
  la t1, s_cause
  sd t0, 0(t1)
  csrr t2, sepc
  la t1, s_epc
  sd t2, 0(t1)
  csrr t2, stval
  la t1, s_tval
  sd t2, 0(t1)
  csrr t2, sstatus
  la t1, s_sstatus
  sd t2, 0(t1)
  la t1, s_count
  ld t2, 0(t1)
  addi t2, t2, 1
  sd t2, 0(t1)
  la t1, s_expected
  ld t2, 0(t1)
  beqz t2, s_unexpected
  sd zero, 0(t1)
  bltz t0, s_interrupt
  la t1, s_resume
  ld t2, 0(t1)
  beqz t2, s_skip
  sd zero, 0(t1)
  csrw sepc, t2
  la t1, s_resume_mode
  ld t2, 0(t1)
  li t1, MSTATUS_SPP
  csrc sstatus, t1
  beqz t2, s_return
  csrs sstatus, t1
  j s_return
s_skip:
  csrr t1, sepc
  lhu t2, 0(t1)
  andi t2, t2, 3
  addi t1, t1, 2
  li t0, 3
  bne t2, t0, 1f
  addi t1, t1, 2
1:
  csrw sepc, t1
  j s_return
s_interrupt:
  slli t0, t0, 1
  srli t0, t0, 1
  li t1, IRQ_S_SOFT
  bne t0, t1, s_unexpected
  csrci sip, MIP_SSIP
s_return:
  ld t0, 0(sp)
  ld t1, 8(sp)
  ld t2, 16(sp)
  csrrw sp, sscratch, sp
  sret
s_unexpected:
  j fail

/* ---------------- vector tables ----------------
 * Entry N records N in vec_seen (0x100 + N for stvec) and continues in the
 * ordinary handler. */
  .balign 256                  /* (align while RVC is on: see README) */
  .option push
  .option norvc
m_vectors:
  j m_vec0
  j trap_entry
  j trap_entry
  j m_vec3
  j trap_entry
  j trap_entry
  j trap_entry
  j m_vec7
  j trap_entry
  j trap_entry
  j trap_entry
  j trap_entry
  .option pop
  .balign 256
  .option push
  .option norvc
s_vectors:
  j s_vec0
  j s_vec1
  j s_trap_entry
  j s_trap_entry
  j s_trap_entry
  j s_trap_entry
  j s_trap_entry
  j s_trap_entry
  j s_trap_entry
  j s_trap_entry
  .option pop

.macro VEC_MARK label, value, scratch, next
\label:
  csrrw sp, \scratch, sp
  sd t0, 24(sp)
  sd t1, 32(sp)
  la t0, vec_seen
  li t1, \value
  sd t1, 0(t0)
  ld t0, 24(sp)
  ld t1, 32(sp)
  csrrw sp, \scratch, sp
  j \next
.endm
  VEC_MARK m_vec0, 0, mscratch, trap_entry
  VEC_MARK m_vec3, 3, mscratch, trap_entry
  VEC_MARK m_vec7, 7, mscratch, trap_entry
  VEC_MARK s_vec0, 0x100, sscratch, s_trap_entry
  VEC_MARK s_vec1, 0x101, sscratch, s_trap_entry

  .bss
  .align 3
s_cause:       .dword 0
s_epc:         .dword 0
s_tval:        .dword 0
s_sstatus:     .dword 0
s_count:       .dword 0
s_expected:    .dword 0
s_resume:      .dword 0
s_resume_mode: .dword 0
vec_seen:      .dword 0
  .align 4
s_trap_frame:
  .skip 256
