/*
 * sv39 - Sv39 (and Sv48) address translation from S- and U-mode.
 *
 * Page tables (built in M-mode at start):
 *   root[2]  -> l1_ram            VA 0x80000000.. (1 GiB)
 *     l1_ram[0]  megapage         VA = PA 0x80000000..0x801fffff, RWX, S:
 *                                 this test's code, data and page tables
 *     l1_ram[1]  -> l0_test       4 KiB test pages at VA_BASE (below)
 *     l1_ram[2]  megapage with PPN[0] != 0 (misaligned superpage)
 *     l1_ram[3]  megapage         VA 0x80600000.. -> PA 0x80000000, U RWX:
 *                                 U-mode runs the test code through it
 *   root[3]  gigapage             VA 0xc0000000 -> PA 0x80000000, RW
 *   root[4]  gigapage with PPN[1] != 0 (misaligned superpage)
 *   root48[0], root48[1] -> root  (Sv48: the Sv39 tree below 512 GiB, twice)
 *
 * Faults are not delegated: they reach the M-mode handler of crt.S, which
 * records mcause/mtval and resumes in M-mode (RESUME_AT).  Successful
 * accesses return to M with ecall.
 */
#include "common.h"

#define VA_BASE   0x80200000
#define VA_RW     (VA_BASE + 0x0000)   /* pg0, RW             */
#define VA_RO     (VA_BASE + 0x1000)   /* pg1, R              */
#define VA_XO     (VA_BASE + 0x2000)   /* pg2, X only (code)  */
#define VA_INV    (VA_BASE + 0x3000)   /* V = 0               */
#define VA_U      (VA_BASE + 0x4000)   /* pg3, U RW           */
#define VA_UX     (VA_BASE + 0x5000)   /* pg5, U RX (code)    */
#define VA_AD     (VA_BASE + 0x6000)   /* pg4, RW, A = D = 0  */
#define VA_NOX    (VA_BASE + 0x7000)   /* pg0, RW (no X)      */
#define VA_WO     (VA_BASE + 0x8000)   /* pg0, W only: reserved encoding */
#define VA_SWAP   (VA_BASE + 0x9000)   /* pg0 R, later pg1    */
#define VA_PTR0   (VA_BASE + 0xa000)   /* V only at level 0: not a leaf */
#define VA_SWAP2  (VA_BASE + 0xb000)   /* pg1 R, later invalid */
#define VA_CROSS  (VA_BASE + 0xc000)   /* pg1 RW, then pg0 RW at + 0x1000 */
#define VA_CRINV  (VA_BASE + 0xe000)   /* pg0 RW, then V = 0 at + 0x1000 */
#define VA_MISMEG 0x80400000           /* misaligned megapage */
#define VA_GIGA   0xc0000000           /* gigapage alias of RAM */
#define VA_MISGIG 0x100000000          /* misaligned gigapage */
#define VA_NOROOT 0x140000000          /* root[5] = 0 */
#define U_ALIAS   0x600000             /* l1_ram[3]: U alias of the code megapage */

#define PTE_LEAF_A (PTE_V | PTE_A)
#define PTE_LEAF_AD (PTE_V | PTE_A | PTE_D)

/* PTE \table[\index] = leaf/pointer to the address of symbol \sym */
.macro PTE_SYM table, index, sym, flags
  la t0, \table
  li t1, (\index) * 8
  add t0, t0, t1
  la t2, \sym
  srli t2, t2, 12
  slli t2, t2, 10
  li t1, \flags
  or t2, t2, t1
  sd t2, 0(t0)
.endm

/* PTE \table[\index] = leaf to physical address \pa */
.macro PTE_ABS table, index, pa, flags
  la t0, \table
  li t1, (\index) * 8
  add t0, t0, t1
  li t2, ((\pa) >> 12) << 10
  li t1, \flags
  or t2, t2, t1
  sd t2, 0(t0)
.endm

/* address of \table[\index] into \reg */
.macro PTE_ADDR reg, table, index
  la \reg, \table
  addi \reg, \reg, (\index) * 8
.endm

/* continue at \label in privilege \mode; U-mode code runs through the
 * U-accessible alias of the code megapage (VA + U_ALIAS) */
.macro ENTER_AT mode, label
  .if (\mode) == PRV_U
  li t6, MSTATUS_MPP | MSTATUS_MPIE
  csrc mstatus, t6
  la t6, \label
  li t5, U_ALIAS
  add t6, t6, t5
  csrw mepc, t6
  mret
  .else
  ENTER_MODE \mode, \label
  .endif
.endm

/* check \n: in privilege \mode, "\insn" (address in a1 = \va) faults with
 * \cause and mtval = \va, a0 unchanged */
.macro FAULT n, mode, cause, va, insn
  CHKNUM \n
  li a1, \va
  li a0, 0x5a5a
  RESUME_AT .Lr\@, PRV_M
  EXPECT_TRAP
  ENTER_AT \mode, .Ls\@
.Ls\@:
  \insn
  j fail
.Lr\@:
  ASSERT_TRAP \cause
  ASSERT_VAR trap_tval, \va
  ASSERT_EQ a0, 0x5a5a
.endm

/* check \n: in privilege \mode, "\insn" (address in a1 = \va, a2 =
 * 0x0badc0de) works, then ecall; expect \exp in a0 */
.macro WORKS n, mode, va, insn, exp
  CHKNUM \n
  li a1, \va
  li a2, 0x0badc0de
  RESUME_AT .Lr\@, PRV_M
  EXPECT_TRAP
  ENTER_AT \mode, .Ls\@
.Ls\@:
  \insn
  ecall
  j fail
.Lr\@:
  .if (\mode) == PRV_S
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  .else
  ASSERT_TRAP CAUSE_USER_ECALL
  .endif
  ASSERT_EQ a0, \exp
.endm

  .text
  .globl test_main
test_main:
  mv s11, ra

  CHKNUM 1                     /* the test image fits in the first 2 MiB megapage */
  la a0, _end
  li a1, 0x80200000
  bgtu a0, a1, fail

  /* ---- test page contents ---- */
  la a0, pg0
  li a1, 0x1111111111111111
  sd a1, 0(a0)
  la a0, pg1
  li a1, 0x2222222222222222
  sd a1, 0(a0)
  la a0, pg3
  li a1, 0x3333333333333333
  sd a1, 0(a0)
  la a0, pg4
  li a1, 0x4444444444444444
  sd a1, 0(a0)
  la a0, pg1 + 0xff8
  li a1, 0xa1a2a3a4a5a6a7a8
  sd a1, 0(a0)
  la a0, snippet               /* code for the X pages */
  ld a1, 0(a0)
  la a2, pg2
  sd a1, 0(a2)
  la a2, pg5
  sd a1, 0(a2)
  fence.i

  /* ---- page tables ---- */
  PTE_SYM root, 2, l1_ram, PTE_V
  PTE_ABS root, 3, 0x80000000, PTE_LEAF_AD | PTE_R | PTE_W
  PTE_ABS root, 4, 0x80200000, PTE_LEAF_AD | PTE_R | PTE_W
  PTE_ABS l1_ram, 0, 0x80000000, PTE_LEAF_AD | PTE_R | PTE_W | PTE_X
  PTE_SYM l1_ram, 1, l0_test, PTE_V
  PTE_ABS l1_ram, 3, 0x80000000, PTE_LEAF_AD | PTE_U | PTE_R | PTE_W | PTE_X
  PTE_ABS l1_ram, 2, 0x80001000, PTE_LEAF_AD | PTE_R | PTE_W
  PTE_SYM l0_test, 0, pg0, PTE_LEAF_AD | PTE_R | PTE_W
  PTE_SYM l0_test, 1, pg1, PTE_LEAF_A | PTE_R
  PTE_SYM l0_test, 2, pg2, PTE_LEAF_A | PTE_X
  PTE_SYM l0_test, 4, pg3, PTE_LEAF_AD | PTE_U | PTE_R | PTE_W
  PTE_SYM l0_test, 5, pg5, PTE_LEAF_A | PTE_U | PTE_R | PTE_X
  PTE_SYM l0_test, 6, pg4, PTE_V | PTE_R | PTE_W
  PTE_SYM l0_test, 7, pg0, PTE_LEAF_AD | PTE_R | PTE_W
  PTE_SYM l0_test, 8, pg0, PTE_LEAF_AD | PTE_W
  PTE_SYM l0_test, 9, pg0, PTE_LEAF_A | PTE_R
  PTE_SYM l0_test, 10, pg0, PTE_V
  PTE_SYM l0_test, 11, pg1, PTE_LEAF_A | PTE_R
  PTE_SYM l0_test, 12, pg1, PTE_LEAF_AD | PTE_R | PTE_W
  PTE_SYM l0_test, 13, pg0, PTE_LEAF_AD | PTE_R | PTE_W
  PTE_SYM l0_test, 14, pg0, PTE_LEAF_AD | PTE_R | PTE_W
  PTE_SYM root48, 0, root, PTE_V
  PTE_SYM root48, 1, root, PTE_V

  /* ---- satp ---- */
  CHKNUM 2                     /* Sv39 satp reads back */
  la a0, root
  srli a0, a0, 12
  li a1, SATP_MODE_SV39
  or s0, a0, a1                /* s0 = Sv39 satp value */
  csrw satp, s0
  sfence.vma
  csrr a0, satp
  ASSERT_REQ a0, s0
  CHKNUM 3                     /* unsupported mode (Sv64 = 11): the write has no effect */
  la a0, root48
  srli a0, a0, 12
  li a1, 11 << 60
  or a1, a0, a1
  csrw satp, a1
  csrr a0, satp
  ASSERT_REQ a0, s0
#ifdef STRICT_SPEC
  CHKNUM 75                    /* ferry has no Sv57 (10): no effect (QEMU 7.2 implements Sv57) */
  la a0, root48
  srli a0, a0, 12
  li a1, 10 << 60
  or a1, a0, a1
  csrw satp, a1
  csrr a0, satp
  ASSERT_REQ a0, s0
#endif
  CHKNUM 4                     /* reserved mode 1: no effect either */
  li a1, (1 << 60) | 0x1234
  csrw satp, a1
  csrr a0, satp
  ASSERT_REQ a0, s0
  CHKNUM 5                     /* M-mode is not translated */
  la a0, pg0
  ld a0, 0(a0)
  ASSERT_EQ a0, 0x1111111111111111

  /* ---- basic S accesses ---- */
  WORKS 6, PRV_S, VA_RW, "ld a0, 0(a1)", 0x1111111111111111
  WORKS 7, PRV_S, VA_RW, "sd a2, 8(a1); ld a0, 8(a1)", 0x0badc0de
  CHKNUM 8                     /* the store reached pg0 */
  la a0, pg0
  ld a0, 8(a0)
  ASSERT_EQ a0, 0x0badc0de
  CHKNUM 9                     /* gigapage alias 0xc0000000 -> 0x80000000 */
  la a1, pg0
  li t0, VA_GIGA - 0x80000000
  add a1, a1, t0
  ENTER_MODE PRV_S, 1f
1:
  ld a0, 0(a1)
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_EQ a0, 0x1111111111111111
  WORKS 10, PRV_S, VA_RO, "ld a0, 0(a1)", 0x2222222222222222
  WORKS 11, PRV_S, VA_RW + 0xff8, "sd a2, 0(a1); lwu a0, 0(a1)", 0x0badc0de

  /* ---- invalid and missing permissions ---- */
  FAULT 12, PRV_S, CAUSE_LOAD_PAGE_FAULT, VA_INV, "ld a0, 0(a1)"
  FAULT 13, PRV_S, CAUSE_STORE_PAGE_FAULT, VA_INV + 0x10, "sd a0, 0(a1)"
  FAULT 14, PRV_S, CAUSE_FETCH_PAGE_FAULT, VA_INV, "jalr ra, 0(a1)"
  CHKNUM 15                    /* fetch fault: mepc = the target */
  ASSERT_VAR trap_epc, VA_INV
  FAULT 16, PRV_S, CAUSE_STORE_PAGE_FAULT, VA_RO, "sd a0, 0(a1)"
  FAULT 17, PRV_S, CAUSE_STORE_PAGE_FAULT, VA_RO + 4, "amoadd.w a0, a0, (a1)"
  FAULT 18, PRV_S, CAUSE_LOAD_PAGE_FAULT, VA_XO, "lw a0, 0(a1)"
  FAULT 19, PRV_S, CAUSE_FETCH_PAGE_FAULT, VA_NOX, "jalr ra, 0(a1)"
  FAULT 20, PRV_S, CAUSE_FETCH_PAGE_FAULT, VA_RO, "jalr ra, 0(a1)"
  WORKS 21, PRV_S, VA_XO, "jalr ra, 0(a1)", 0x55
  FAULT 22, PRV_S, CAUSE_LOAD_PAGE_FAULT, VA_WO, "ld a0, 0(a1)"
  FAULT 23, PRV_S, CAUSE_STORE_PAGE_FAULT, VA_WO, "sd a0, 0(a1)"
  FAULT 24, PRV_S, CAUSE_LOAD_PAGE_FAULT, VA_PTR0, "ld a0, 0(a1)"
  FAULT 25, PRV_S, CAUSE_LOAD_PAGE_FAULT, VA_NOROOT + 0x123, "lbu a0, 0(a1)"

  /* ---- MXR ---- */
  CHKNUM 26                    /* MXR = 1: loads from an X-only page work */
  li t0, MSTATUS_MXR
  csrs mstatus, t0
  li a1, VA_XO
  ENTER_MODE PRV_S, 1f
1:
  lwu a0, 0(a1)
  ECALL_TO_M 2f
2:
  li t0, MSTATUS_MXR
  csrc mstatus, t0
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  la a1, snippet
  lwu a1, 0(a1)
  ASSERT_REQ a0, a1
  CHKNUM 27                    /* MXR does not allow stores */
  li t0, MSTATUS_MXR
  csrs mstatus, t0
  li a1, VA_XO
  ENTER_MODE PRV_S, 1f
1:
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
  sw a0, 0(a1)
  j fail
2:
  li t0, MSTATUS_MXR
  csrc mstatus, t0
  ASSERT_TRAP CAUSE_STORE_PAGE_FAULT

  /* ---- user pages and SUM ---- */
  FAULT 28, PRV_S, CAUSE_LOAD_PAGE_FAULT, VA_U, "ld a0, 0(a1)"
  FAULT 29, PRV_S, CAUSE_STORE_PAGE_FAULT, VA_U, "sd a0, 0(a1)"
  li t0, MSTATUS_SUM
  csrs mstatus, t0
  WORKS 30, PRV_S, VA_U, "ld a0, 0(a1)", 0x3333333333333333
  WORKS 31, PRV_S, VA_U, "sd a2, 16(a1); ld a0, 16(a1)", 0x0badc0de
  FAULT 32, PRV_S, CAUSE_FETCH_PAGE_FAULT, VA_UX, "jalr ra, 0(a1)"
  li t0, MSTATUS_SUM
  csrc mstatus, t0
  FAULT 33, PRV_S, CAUSE_FETCH_PAGE_FAULT, VA_UX, "jalr ra, 0(a1)"
  WORKS 34, PRV_U, VA_U, "ld a0, 0(a1)", 0x3333333333333333
  WORKS 35, PRV_U, VA_U, "sd a2, 24(a1); ld a0, 24(a1)", 0x0badc0de
  FAULT 36, PRV_U, CAUSE_LOAD_PAGE_FAULT, VA_RW, "ld a0, 0(a1)"
  FAULT 37, PRV_U, CAUSE_STORE_PAGE_FAULT, VA_RW, "sd a0, 0(a1)"
  WORKS 38, PRV_U, VA_UX, "jalr ra, 0(a1)", 0x55   /* U-mode runs code from a U page */
  CHKNUM 40                    /* U-mode cannot fetch from an S page */
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
  ENTER_MODE PRV_U, 1f
1:
  j fail
2:
  ASSERT_TRAP CAUSE_FETCH_PAGE_FAULT
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_VAR_ADDR trap_tval, 1b

  /* ---- superpages ---- */
  FAULT 41, PRV_S, CAUSE_LOAD_PAGE_FAULT, VA_MISMEG + 0x2000, "ld a0, 0(a1)"
  FAULT 42, PRV_S, CAUSE_STORE_PAGE_FAULT, VA_MISMEG, "sd a0, 0(a1)"
  FAULT 43, PRV_S, CAUSE_LOAD_PAGE_FAULT, VA_MISGIG + 0x1000, "ld a0, 0(a1)"

  /* ---- non-canonical addresses (bits 63:39 != bit 38) ---- */
  FAULT 44, PRV_S, CAUSE_LOAD_PAGE_FAULT, 0x0000004080000000, "ld a0, 0(a1)"
  FAULT 45, PRV_S, CAUSE_STORE_PAGE_FAULT, 0x0000008080000000, "sd a0, 0(a1)"
  FAULT 46, PRV_S, CAUSE_LOAD_PAGE_FAULT, 0xffffff8080000000, "ld a0, 0(a1)"
  FAULT 47, PRV_S, CAUSE_FETCH_PAGE_FAULT, 0x8000000080000000, "jalr ra, 0(a1)"

  /* ---- A and D bits (hardware-managed) ---- */
  CHKNUM 48                    /* a load sets A, not D */
  PTE_ADDR s1, l0_test, 6
  ld a0, 0(s1)
  ASSERT_MASKED a0, PTE_A | PTE_D, 0
  WORKS 49, PRV_S, VA_AD, "ld a0, 0(a1)", 0x4444444444444444
  CHKNUM 50
  ld a0, 0(s1)
  ASSERT_MASKED a0, PTE_A | PTE_D, PTE_A
  WORKS 51, PRV_S, VA_AD, "sd a2, 0(a1); ld a0, 0(a1)", 0x0badc0de
  CHKNUM 52                    /* a store sets D */
  ld a0, 0(s1)
  ASSERT_MASKED a0, PTE_A | PTE_D | PTE_R | PTE_W | PTE_V, PTE_A | PTE_D | PTE_R | PTE_W | PTE_V
  CHKNUM 53                    /* a store to a clean page sets A and D at once */
  li t0, PTE_A | PTE_D
  not t0, t0
  and a0, a0, t0
  sd a0, 0(s1)
  sfence.vma
  WORKS 54, PRV_S, VA_AD, "sw a2, 4(a1); li a0, 1", 1
  CHKNUM 55
  ld a0, 0(s1)
  ASSERT_MASKED a0, PTE_A | PTE_D, PTE_A | PTE_D
  CHKNUM 56                    /* a faulting store does not set D */
  PTE_ADDR s1, l0_test, 1
  ld a0, 0(s1)
  ASSERT_MASKED a0, PTE_D, 0
  FAULT 57, PRV_S, CAUSE_STORE_PAGE_FAULT, VA_RO, "sd a0, 0(a1)"
  CHKNUM 58
  ld a0, 0(s1)
  ASSERT_MASKED a0, PTE_D, 0

  /* ---- sfence.vma ---- */
  CHKNUM 59                    /* S changes a PTE, sfence.vma, sees the new mapping */
  li a1, VA_SWAP
  PTE_ADDR s1, l0_test, 9
  la s2, pg1
  srli s2, s2, 12
  slli s2, s2, 10
  ori s2, s2, PTE_LEAF_A | PTE_R
  ENTER_MODE PRV_S, 1f
1:
  ld s3, 0(a1)                 /* old mapping: pg0 */
  sd s2, 0(s1)
  sfence.vma
  ld a0, 0(a1)                 /* new mapping: pg1 */
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_EQ s3, 0x1111111111111111
  ASSERT_EQ a0, 0x2222222222222222
  CHKNUM 60                    /* sfence.vma rs1 = the address: an invalidated PTE now faults */
  li a1, VA_SWAP2
  PTE_ADDR s1, l0_test, 11
  ENTER_MODE PRV_S, 1f
1:
  ld s3, 0(a1)
  sd zero, 0(s1)
  sfence.vma a1, zero
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
  ld a0, 0(a1)
  j fail
2:
  ASSERT_TRAP CAUSE_LOAD_PAGE_FAULT
  ASSERT_VAR trap_tval, VA_SWAP2
  ASSERT_EQ s3, 0x2222222222222222

  /* ---- misaligned accesses crossing into another (non-adjacent) page ---- */
  WORKS 76, PRV_S, VA_CROSS + 0xffc, "ld a0, 0(a1)", 0x11111111a1a2a3a4
  WORKS 77, PRV_S, VA_CROSS + 0xffe, "lw a0, 0(a1)", 0x000000001111a1a2
  CHKNUM 78                    /* a crossing store writes both physical pages */
  li a1, VA_CROSS + 0xffd
  li a2, 0x0102030405060708
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
  ENTER_MODE PRV_S, 1f
1:
  sd a2, 0(a1)
  ecall
  j fail
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  la a0, pg1 + 0xff8
  ld a0, 0(a0)
  ASSERT_EQ a0, 0x060708a4a5a6a7a8
  la a0, pg0
  ld a1, 0(a0)
  li t0, 0x1111111111111111    /* restore pg0[0] for the Sv48 checks */
  sd t0, 0(a0)
  ASSERT_EQ a1, 0x1111110102030405
  CHKNUM 79                    /* crossing into an invalid page: page fault; stval is the
                                  access address or that of the part that faulted */
  li a1, VA_CRINV + 0xffa
  li a0, 0x5a5a
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
  ENTER_MODE PRV_S, 1f
1:
  ld a0, 0(a1)
  j fail
2:
  ASSERT_TRAP CAUSE_LOAD_PAGE_FAULT
  ASSERT_EQ a0, 0x5a5a
  la t5, trap_tval
  ld t5, 0(t5)
  beq t5, a1, 3f
  li t6, VA_CRINV + 0x1000
  bne t5, t6, fail
3:
  CHKNUM 80                    /* ... and for a store, no byte of the first page is written */
  la a0, pg0 + 0xff8
  li t0, 0x5555555555555555
  sd t0, 0(a0)
  li a1, VA_CRINV + 0xffc
  RESUME_AT 2f, PRV_M
  EXPECT_TRAP
  ENTER_MODE PRV_S, 1f
1:
  sd a1, 0(a1)
  j fail
2:
  ASSERT_TRAP CAUSE_STORE_PAGE_FAULT
  la a0, pg0 + 0xff8
  ld a0, 0(a0)
  ASSERT_EQ a0, 0x5555555555555555

  /* ---- MPRV: M-mode loads/stores translated with MPP's privilege ---- */
  CHKNUM 61
  la a1, pg0
  li t0, VA_GIGA - 0x80000000
  add a1, a1, t0
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPRV | MSTATUS_MPP_S
  csrs mstatus, t0
  ld a0, 0(a1)
  li t0, MSTATUS_MPRV | MSTATUS_MPP
  csrc mstatus, t0
  ASSERT_EQ a0, 0x1111111111111111
  CHKNUM 62                    /* MPRV: a translation fault traps to M as a page fault */
  li a1, VA_INV
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPRV | MSTATUS_MPP_S
  csrs mstatus, t0
  EXPECT_TRAP
  ld a0, 0(a1)
  li t0, MSTATUS_MPRV | MSTATUS_MPP
  csrc mstatus, t0
  ASSERT_TRAP CAUSE_LOAD_PAGE_FAULT
  ASSERT_VAR trap_tval, VA_INV

  /* ---- satp = Bare from S ---- */
  CHKNUM 63                    /* VA_BASE is pg0 when translated, itself when Bare */
  li a1, VA_BASE
  li t0, 0x7777
  sd t0, 0(a1)                 /* M: physical 0x80200000 */
  ENTER_MODE PRV_S, 1f
1:
  ld s3, 0(a1)
  csrw satp, zero
  sfence.vma
  ld a0, 0(a1)
  ECALL_TO_M 2f
2:
  ASSERT_TRAP CAUSE_SUPERVISOR_ECALL
  ASSERT_EQ s3, 0x1111111111111111
  ASSERT_EQ a0, 0x7777
  csrr a0, satp
  ASSERT_EQ a0, 0

  /* ---- Sv48 ---- */
  CHKNUM 64                    /* Sv48 satp reads back */
  la a0, root48
  srli a0, a0, 12
  li a1, SATP_MODE_SV48
  or s0, a0, a1
  csrw satp, s0
  sfence.vma
  csrr a0, satp
  ASSERT_REQ a0, s0
  WORKS 65, PRV_S, VA_RW, "ld a0, 0(a1)", 0x1111111111111111
  WORKS 66, PRV_S, 0x8000000000 + VA_RO, "ld a0, 0(a1)", 0x2222222222222222
  FAULT 67, PRV_S, CAUSE_LOAD_PAGE_FAULT, VA_INV, "ld a0, 0(a1)"
  FAULT 68, PRV_S, CAUSE_LOAD_PAGE_FAULT, 0x10000000000, "ld a0, 0(a1)"
  FAULT 69, PRV_S, CAUSE_LOAD_PAGE_FAULT, 0x0000800000000000, "ld a0, 0(a1)"
  FAULT 70, PRV_S, CAUSE_STORE_PAGE_FAULT, 0xffff000080000000, "sd a0, 0(a1)"
  FAULT 71, PRV_S, CAUSE_FETCH_PAGE_FAULT, 0x8000000000 + VA_NOX, "jalr ra, 0(a1)"
  FAULT 72, PRV_S, CAUSE_LOAD_PAGE_FAULT, 0x4000000000 + VA_GIGA, "ld a0, 0(a1)"
  FAULT 73, PRV_S, CAUSE_LOAD_PAGE_FAULT, 0x8000000000 + VA_MISMEG, "ld a0, 0(a1)"
  WORKS 74, PRV_U, VA_U, "ld a0, 0(a1)", 0x3333333333333333

  csrw satp, zero
  sfence.vma
  mv ra, s11
  ret

/* copied to the X pages: a0 = 0x55, return */
  .balign 8                    /* (align while RVC is on: see README) */
  .option push
  .option norvc
snippet:
  addi a0, zero, 0x55
  jalr zero, 0(ra)
  .option pop

  .bss
  .balign 4096
root:    .skip 4096
l1_ram:  .skip 4096
l0_test: .skip 4096
root48:  .skip 4096
pg0:     .skip 4096
pg1:     .skip 4096
pg2:     .skip 4096
pg3:     .skip 4096
pg4:     .skip 4096
pg5:     .skip 4096
