/*
 * csr - the Zicsr instructions and the machine/supervisor CSRs ferry
 * implements: CSRRW/CSRRS/CSRRC and their immediate forms (rs1 = x0 and
 * uimm = 0 do not write, rd = x0), mhartid, misa, mstatus fields (WARL),
 * sstatus/sie/sip as views, mscratch/sscratch, mepc/sepc (bit 0 reads 0),
 * mtvec/stvec (direct/vectored, reserved modes not accepted), medeleg /
 * mideleg, mie/mip, the counters (cycle/instret increase, time follows the
 * CLINT mtime, mcounteren/scounteren gate lower privileges), and the
 * illegal-instruction traps for a non-existent CSR, a write to a read-only
 * CSR and a CSR of a higher privilege level.
 */
#include "common.h"

  .text
  .globl test_main
test_main:
  mv s11, ra

  /* ---------------- CSR instruction semantics (on sscratch) ---------------- */
  CHKNUM 1                     /* csrrw: returns old, writes new */
  li a1, 0x0123456789abcdef
  csrw sscratch, a1
  li a2, 0xfedcba9876543210
  csrrw a0, sscratch, a2
  ASSERT_EQ a0, 0x0123456789abcdef
  csrr a0, sscratch
  ASSERT_EQ a0, 0xfedcba9876543210
  CHKNUM 2                     /* csrrw with rd = rs1 swaps */
  li a0, 0x1111
  csrrw a0, sscratch, a0
  ASSERT_EQ a0, 0xfedcba9876543210
  csrr a0, sscratch
  ASSERT_EQ a0, 0x1111
  CHKNUM 3                     /* csrrw with rd = x0 (csrw) */
  li a1, 0x2222
  csrrw x0, sscratch, a1
  ASSERT_EQ x0, 0
  csrr a0, sscratch
  ASSERT_EQ a0, 0x2222
  CHKNUM 4                     /* csrrs sets bits */
  li a1, 0xf0f0
  csrw sscratch, a1
  li a2, 0x0ff0000000000f
  csrrs a0, sscratch, a2
  ASSERT_EQ a0, 0xf0f0
  csrr a0, sscratch
  ASSERT_EQ a0, 0x0ff0000000f0ff
  CHKNUM 5                     /* csrrc clears bits */
  li a2, 0x0f000000000f0f
  csrrc a0, sscratch, a2
  ASSERT_EQ a0, 0x0ff0000000f0ff
  csrr a0, sscratch
  ASSERT_EQ a0, 0x00f0000000f0f0
  CHKNUM 6                     /* csrrs/csrrc with rs1 = x0 only read */
  csrrs a0, sscratch, x0
  ASSERT_EQ a0, 0x00f0000000f0f0
  csrrc a0, sscratch, x0
  ASSERT_EQ a0, 0x00f0000000f0f0
  csrr a0, sscratch
  ASSERT_EQ a0, 0x00f0000000f0f0
  CHKNUM 7                     /* csrrwi zero-extends the 5-bit immediate */
  csrrwi a0, sscratch, 31
  ASSERT_EQ a0, 0x00f0000000f0f0
  csrr a0, sscratch
  ASSERT_EQ a0, 31
  CHKNUM 8                     /* csrrwi with uimm = 0 writes 0 */
  csrrwi a0, sscratch, 0
  ASSERT_EQ a0, 31
  csrr a0, sscratch
  ASSERT_EQ a0, 0
  CHKNUM 9                     /* csrrsi / csrrci */
  csrrsi a0, sscratch, 0x15
  ASSERT_EQ a0, 0
  csrrsi a0, sscratch, 0x0a
  ASSERT_EQ a0, 0x15
  csrrci a0, sscratch, 0x11
  ASSERT_EQ a0, 0x1f
  csrr a0, sscratch
  ASSERT_EQ a0, 0x0e
  CHKNUM 10                    /* csrrsi / csrrci with uimm = 0 only read */
  csrrsi a0, sscratch, 0
  ASSERT_EQ a0, 0x0e
  csrrci a0, sscratch, 0
  ASSERT_EQ a0, 0x0e
  CHKNUM 11                    /* csrrs with rd = rs1 */
  li a0, 0x100
  csrrs a0, sscratch, a0
  ASSERT_EQ a0, 0x0e
  csrr a0, sscratch
  ASSERT_EQ a0, 0x10e
  CHKNUM 12                    /* rd = x0 forms still write */
  csrrsi x0, sscratch, 1
  csrrc x0, sscratch, a0
  csrr a1, sscratch
  ASSERT_EQ a1, 1

  /* ---------------- scratch / epc / cause / tval ---------------- */
  CHKNUM 13                    /* mscratch: full 64 bits (restored for the trap handler) */
  csrr s0, mscratch
  li a1, 0xa5a5a5a55a5a5a5a
  csrw mscratch, a1
  csrr a0, mscratch
  csrw mscratch, s0
  ASSERT_EQ a0, 0xa5a5a5a55a5a5a5a
  CHKNUM 14                    /* mepc holds any 2-byte aligned address */
  li a1, 0x80001232
  csrw mepc, a1
  csrr a0, mepc
  ASSERT_EQ a0, 0x80001232
  li a1, 0xfffffffffffffffe
  csrw sepc, a1
  csrr a0, sepc
  ASSERT_EQ a0, 0xfffffffffffffffe
#ifdef STRICT_SPEC
  CHKNUM 15                    /* mepc[0] / sepc[0] always read 0 (QEMU 7.2 keeps the bit) */
  li a1, 0x80001235
  csrw mepc, a1
  csrr a0, mepc
  ASSERT_EQ a0, 0x80001234
  li a1, 0xffffffffffffffff
  csrw sepc, a1
  csrr a0, sepc
  ASSERT_EQ a0, 0xfffffffffffffffe
#endif
  CHKNUM 16                    /* mcause / scause hold interrupt and exception codes */
  li a1, 0x8000000000000007
  csrw mcause, a1
  csrr a0, mcause
  ASSERT_EQ a0, 0x8000000000000007
  li a1, 13
  csrw scause, a1
  csrr a0, scause
  ASSERT_EQ a0, 13
  CHKNUM 17                    /* mtval / stval */
  li a1, 0x123456789abcdef0
  csrw mtval, a1
  csrr a0, mtval
  ASSERT_EQ a0, 0x123456789abcdef0
  li a1, 0xfffffffffffff000
  csrw stval, a1
  csrr a0, stval
  ASSERT_EQ a0, 0xfffffffffffff000

  /* ---------------- identification ---------------- */
  CHKNUM 18                    /* mhartid = 0 */
  csrr a0, mhartid
  ASSERT_EQ a0, 0
  CHKNUM 19                    /* misa: MXL = 2 (RV64) */
  csrr a0, misa
  srli a1, a0, 62
  ASSERT_EQ a1, 2
  CHKNUM 20                    /* misa: I M A F D C S U present */
  ASSERT_MASKED a0, 0x141129, 0x141129
  CHKNUM 21                    /* misa: E (bit 4) absent */
  ASSERT_MASKED a0, 0x10, 0
  CHKNUM 22                    /* mvendorid / marchid / mimpid readable without trap */
  CLEAR_TRAP
  csrr a0, mvendorid
  csrr a0, marchid
  csrr a0, mimpid
  ASSERT_NO_TRAP

  /* ---------------- mstatus ---------------- */
  CHKNUM 23                    /* UXL = SXL = 2 (64-bit) */
  csrr a0, mstatus
  srli a1, a0, 32
  andi a1, a1, 0xf
  ASSERT_EQ a1, 0xa
  CHKNUM 24                    /* MIE SIE MPIE SPIE SPP MPRV SUM MXR TVM TW TSR: set and clear */
  li s0, MSTATUS_MIE | MSTATUS_SIE | MSTATUS_MPIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR
  csrs mstatus, s0
  csrr a0, mstatus
  and a1, a0, s0
  ASSERT_REQ a1, s0
  csrc mstatus, s0
  csrr a0, mstatus
  and a1, a0, s0
  ASSERT_EQ a1, 0
  CHKNUM 25                    /* MPP holds M, S and U */
  li t0, MSTATUS_MPP
  csrs mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_MPP, MSTATUS_MPP_M
  csrc mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_MPP, 0
  li t0, MSTATUS_MPP_S
  csrs mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_MPP, MSTATUS_MPP_S
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  CHKNUM 26                    /* FS holds all four states; SD follows FS = Dirty */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, 0
  li t0, MSTATUS_FS_CLEAN
  csrs mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_CLEAN
  li t0, MSTATUS_FS
  csrs mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_DIRTY | MSTATUS_SD
  li t0, MSTATUS_FS_CLEAN
  csrc mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_INIT
  CHKNUM 27                    /* little-endian only: UBE/SBE/MBE stay 0; XS stays 0; SD not writable */
  li t0, MSTATUS_UBE | (3 << 36) | MSTATUS_XS
  csrs mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_UBE | (3 << 36) | MSTATUS_XS | MSTATUS_SD, 0
  li t0, MSTATUS_SD
  csrs mstatus, t0
  csrr a0, mstatus
  bltz a0, fail
  CHKNUM 28                    /* sstatus is a restricted view of mstatus */
  li t0, MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPP | MSTATUS_MPP
  csrs mstatus, t0
  csrr a0, sstatus
  ASSERT_MASKED a0, MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPP | MSTATUS_MPP, MSTATUS_SIE | MSTATUS_SPP
  li t0, MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPP | MSTATUS_MPP
  csrc mstatus, t0
  CHKNUM 29                    /* writes through sstatus reach mstatus, but not M-only fields */
  li t0, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_SPIE | MSTATUS_MIE | MSTATUS_MPRV | MSTATUS_TVM
  csrs sstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_SPIE | MSTATUS_MIE | MSTATUS_MPRV | MSTATUS_TVM, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_SPIE
  csrc sstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_SPIE, 0
  CHKNUM 30                    /* sstatus shows UXL = 2 and FS / SD */
  csrr a0, sstatus
  srli a1, a0, 32
  andi a1, a1, 3
  ASSERT_EQ a1, 2
  ASSERT_MASKED a0, MSTATUS_FS, MSTATUS_FS_INIT

  /* ---------------- trap vectors ---------------- */
  CHKNUM 31                    /* mtvec direct */
  csrr s0, mtvec
  la a1, tvec_area
  csrw mtvec, a1
  csrr a0, mtvec
  ASSERT_REQ a0, a1
  CHKNUM 32                    /* mtvec vectored (mode 1) */
  ori a2, a1, 1
  csrw mtvec, a2
  csrr a0, mtvec
  ASSERT_REQ a0, a2
  CHKNUM 33                    /* reserved modes 2 and 3 are not accepted */
  ori a2, a1, 2
  csrw mtvec, a2
  csrr a0, mtvec
  andi a0, a0, 3
  li a3, 2
  bgeu a0, a3, fail
  ori a2, a1, 3
  csrw mtvec, a2
  csrr a0, mtvec
  andi a0, a0, 3
  bgeu a0, a3, fail
  csrw mtvec, s0
  csrr a0, mtvec
  ASSERT_REQ a0, s0
  CHKNUM 34                    /* stvec direct / vectored */
  la a1, tvec_area
  csrw stvec, a1
  csrr a0, stvec
  ASSERT_REQ a0, a1
  ori a2, a1, 1
  csrw stvec, a2
  csrr a0, stvec
  ASSERT_REQ a0, a2
  ori a2, a1, 2
  csrw stvec, a2
  csrr a0, stvec
  andi a0, a0, 3
  li a3, 2
  bgeu a0, a3, fail

  /* ---------------- delegation and interrupt enables ---------------- */
  CHKNUM 35                    /* medeleg: the exceptions Linux delegates are delegable */
  li a1, -1
  csrw medeleg, a1
  csrr a0, medeleg
  li a2, (1 << 0) | (1 << 3) | (1 << 8) | (1 << 12) | (1 << 13) | (1 << 15)
  and a3, a0, a2
  ASSERT_REQ a3, a2
  csrw medeleg, zero
  csrr a0, medeleg
  ASSERT_EQ a0, 0
  CHKNUM 36                    /* mideleg: S interrupts delegable, M interrupts not */
  li a1, -1
  csrw mideleg, a1
  csrr a0, mideleg
  ASSERT_MASKED a0, 0xaaa, 0x222
  csrw mideleg, zero
  csrr a0, mideleg
  ASSERT_MASKED a0, 0xaaa, 0
  CHKNUM 37                    /* mie: the six standard enables */
  li a1, 0xaaa
  csrw mie, a1
  csrr a0, mie
  ASSERT_MASKED a0, 0xfff, 0xaaa
  csrw mie, zero
  csrr a0, mie
  ASSERT_EQ a0, 0
  CHKNUM 38                    /* sie is mie restricted to delegated interrupts */
  li a1, 0x222
  csrw mideleg, a1
  li a1, 0xaaa
  csrw mie, a1
  csrr a0, sie
  ASSERT_MASKED a0, 0xfff, 0x222
  csrci sie, 0x2
  csrr a0, mie
  ASSERT_MASKED a0, 0xfff, 0xaa8
  csrw mie, zero
  csrw mideleg, zero
  CHKNUM 39                    /* mip: SSIP / STIP writable by M; MTIP / MSIP are not */
  li a1, MIP_SSIP | MIP_STIP | MIP_MTIP | MIP_MSIP
  csrs mip, a1
  csrr a0, mip
  ASSERT_MASKED a0, MIP_SSIP | MIP_STIP | MIP_MTIP | MIP_MSIP, MIP_SSIP | MIP_STIP
  csrc mip, a1
  csrr a0, mip
  ASSERT_MASKED a0, MIP_SSIP | MIP_STIP, 0
  CHKNUM 40                    /* sip.SSIP is writable through sip when delegated */
  li a1, MIP_SSIP
  csrw mideleg, a1
  csrsi sip, MIP_SSIP
  csrr a0, mip
  ASSERT_MASKED a0, MIP_SSIP, MIP_SSIP
  csrr a0, sip
  ASSERT_MASKED a0, MIP_SSIP, MIP_SSIP
  csrci sip, MIP_SSIP
  csrr a0, mip
  ASSERT_MASKED a0, MIP_SSIP, 0
  csrw mideleg, zero

  /* ---------------- counters ---------------- */
  CHKNUM 41                    /* cycle increases */
  rdcycle a0
  li t0, 100
1:
  addi t0, t0, -1
  bnez t0, 1b
  rdcycle a1
  bgeu a0, a1, fail
  CHKNUM 42                    /* instret increases, and by at least the instructions run */
  rdinstret a0
  li t0, 100
1:
  addi t0, t0, -1
  bnez t0, 1b
  rdinstret a1
  sub a1, a1, a0
  li a2, 200
  bltu a1, a2, fail
  CHKNUM 43                    /* mcycle / minstret are the same counters, M-writable */
  csrr a0, mcycle
  rdcycle a1
  bltu a1, a0, fail
  li a1, 0x100000000
  csrw minstret, a1
  csrr a0, minstret
  bltu a0, a1, fail
  li a2, 0x100010000
  bgeu a0, a2, fail
  CHKNUM 44                    /* time is readable in M and lies between two mtime reads */
  li t0, CLINT_MTIME
  ld a0, 0(t0)
  rdtime a1
  ld a2, 0(t0)
  bltu a1, a0, fail
  bltu a2, a1, fail
  CHKNUM 45                    /* time advances */
  rdtime a0
  li t0, 50000000
1:
  rdtime a1
  bne a1, a0, 2f
  addi t0, t0, -1
  bnez t0, 1b
  j fail
2:
  bltu a1, a0, fail
  CHKNUM 46                    /* mcounteren / scounteren hold CY, TM, IR */
  li a1, 7
  csrw mcounteren, a1
  csrr a0, mcounteren
  ASSERT_MASKED a0, 7, 7
  csrw scounteren, a1
  csrr a0, scounteren
  ASSERT_MASKED a0, 7, 7

  /* counters from S-mode: allowed with mcounteren set */
  CHKNUM 47
  CLEAR_TRAP
  ENTER_MODE PRV_S, 1f
1:
  rdcycle a0
  rdtime a0
  rdinstret a0
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  /* ... and from U-mode with mcounteren and scounteren set */
  CHKNUM 48
  ENTER_MODE PRV_U, 1f
1:
  rdcycle a0
  rdtime a0
  rdinstret a0
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_USER_ECALL
  /* mcounteren.TM = 0: rdtime from S traps; the handler returns to S after it */
  CHKNUM 49
  csrwi mcounteren, 5
  ENTER_MODE PRV_S, 1f
1:
  EXPECT_TRAP
  rdtime a0
  la t5, trap_cause
  ld s1, 0(t5)
  csrr s2, sscratch            /* still in S: S CSRs accessible */
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_EQ s1, CAUSE_ILLEGAL_INSN
  CHKNUM 50                    /* rdtime from S with TM = 0: illegal instruction */
  ENTER_MODE PRV_S, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  rdtime a0
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  CHKNUM 51                    /* scounteren.CY = 0: rdcycle from U traps, from S does not */
  csrwi mcounteren, 7
  csrwi scounteren, 6
  ENTER_MODE PRV_U, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  rdcycle a0
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  CHKNUM 52
  CLEAR_TRAP
  ENTER_MODE PRV_S, 1f
1:
  rdcycle a0
  rdinstret a0
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  csrwi mcounteren, 0
  csrwi scounteren, 0

  /* ---------------- illegal CSR accesses ---------------- */
  CHKNUM 53                    /* non-existent CSR (custom 0x8ff): illegal, rd unchanged, mtval = bits or 0 */
  li a0, 0x5555
  EXPECT_TRAP
1:
  csrr a0, 0x8ff
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_EQ a0, 0x5555
  la t5, trap_tval
  ld t5, 0(t5)
  beqz t5, 2f
  li t6, 0x8ff02573            /* csrrs a0, 0x8ff, x0 */
  bne t5, t6, fail
2:
  CHKNUM 54                    /* non-existent CSR 0x7ff, write form */
  li a1, 1
  EXPECT_TRAP
  csrw 0x7ff, a1
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  CHKNUM 55                    /* non-existent CSR 0x5ff via csrrsi */
  EXPECT_TRAP
  csrrsi a0, 0x5ff, 1
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  CHKNUM 56                    /* csrw to read-only mvendorid */
  li a0, 0x5555
  EXPECT_TRAP
1:
  csrrw a0, mvendorid, zero
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_EQ a0, 0x5555
  la t5, trap_tval
  ld t5, 0(t5)
  beqz t5, 2f
  li t6, 0xf1101573            /* csrrw a0, mvendorid, zero */
  bne t5, t6, fail
2:
  CHKNUM 57                    /* csrw to read-only mhartid, marchid, mimpid */
  EXPECT_TRAP
  csrw mhartid, zero
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  EXPECT_TRAP
  csrwi marchid, 1
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  EXPECT_TRAP
  csrsi mimpid, 1
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  CHKNUM 58                    /* writes to the read-only user counters trap */
  EXPECT_TRAP
  csrw cycle, zero
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  EXPECT_TRAP
  csrw time, zero
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  EXPECT_TRAP
  csrwi instret, 0
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
#ifdef STRICT_SPEC
  CHKNUM 65                    /* csrrs with rs1 != x0 is a write even when the value is 0:
                                  traps on a read-only CSR (QEMU 7.2 does not trap) */
  li a1, 0
  EXPECT_TRAP
  csrrs a0, mvendorid, a1
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  CHKNUM 66                    /* MPP is WARL: the reserved value 2 is not kept (QEMU 7.2 keeps it) */
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, 0x1000
  csrs mstatus, t0
  csrr a0, mstatus
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  and a0, a0, t0
  li t1, 0x1000
  beq a0, t1, fail
#endif
  CHKNUM 59                    /* rs1 = x0 / uimm = 0 forms on read-only CSRs are reads: no trap */
  CLEAR_TRAP
  csrrs a0, mvendorid, x0
  csrrc a0, mhartid, x0
  csrrsi a0, marchid, 0
  csrrci a0, mimpid, 0
  ASSERT_NO_TRAP
  CHKNUM 60                    /* an M CSR from S-mode is illegal */
  ENTER_MODE PRV_S, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  csrr a0, mstatus
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  CHKNUM 61                    /* an S CSR from U-mode is illegal */
  ENTER_MODE PRV_U, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  csrr a0, sstatus
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  CHKNUM 62                    /* S CSRs work from S-mode */
  CLEAR_TRAP
  ENTER_MODE PRV_S, 1f
1:
  li a1, 0x77
  csrw sscratch, a1
  csrr a0, sscratch
  csrr a2, sstatus
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_EQ a0, 0x77
  CHKNUM 63                    /* satp from S-mode traps when mstatus.TVM = 1 */
  li t0, MSTATUS_TVM
  csrs mstatus, t0
  ENTER_MODE PRV_S, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
3:
  csrr a0, satp
  j fail
2:
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 3b
  li t0, MSTATUS_TVM
  csrc mstatus, t0
  CHKNUM 64                    /* ... and works with TVM = 0 */
  CLEAR_TRAP
  ENTER_MODE PRV_S, 1f
1:
  csrr a0, satp
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_EQ a0, 0

  mv ra, s11
  ret

  .data
  .balign 256
tvec_area:
  .skip 256
