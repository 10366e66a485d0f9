/*
 * zicbo - Zicbom (cbo.clean, cbo.flush, cbo.inval) and Zicboz (cbo.zero)
 * with a 64-byte cache block: cbo.zero clears exactly the block holding
 * rs1 (rs1 need not be aligned), the management operations leave memory
 * alone; below M-mode menvcfg (and in U-mode senvcfg too) must enable each
 * operation (CBZE, CBCFE, CBIE != 00), else illegal instruction; the
 * envcfg fields are WARL (CBIE = 10 reads 00); under Sv39 a cbo.zero to a
 * page without write permission, or any CBO to an unmapped page, raises a
 * store page fault with tval = rs1, while clean/flush/inval only need read
 * permission; cbo.zero outside RAM is a store access fault; reserved
 * encodings are illegal. QEMU 7.2 has neither extension.
 */
#include "common.h"

  .option arch, +zicbom, +zicboz

#define CSR_MENVCFG 0x30a
#define CSR_SENVCFG 0x10a
#define CBIE_FLUSH  0x10
#define CBIE_INVAL  0x30
#define CBIE_MASK   0x30
#define CBCFE       0x40
#define CBZE        0x80
#define ENVCFG_ALL  (CBIE_INVAL | CBCFE | CBZE)

/* fill the 3 blocks at buf with 0xa5 bytes (clobbers t0-t2) */
.macro FILL_BUF
  la t0, buf
  li t1, 0xa5a5a5a5a5a5a5a5
  li t2, 192
1:
  sd t1, 0(t0)
  addi t0, t0, 8
  addi t2, t2, -8
  bnez t2, 1b
.endm

/* fail unless the 8 doublewords at \off(buf) all equal \val */
.macro ASSERT_BLOCK off, val
  la t0, buf + \off
  li t1, \val
  li t2, 8
1:
  ld t3, 0(t0)
  beq t3, t1, 2f
  j fail
2:
  addi t0, t0, 8
  addi t2, t2, -1
  bnez t2, 1b
.endm

/* check \n: \insn from privilege \mode traps with illegal instruction */
.macro CHECK_ILLEGAL_IN n, mode, insn
  CHKNUM \n
  ENTER_MODE \mode, .Lin\@
.Lin\@:
  la a1, buf
  EXPECT_TRAP
  \insn
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ECALL_TO_M .Lout\@
.Lout\@:
.endm

/* check \n: \insn from privilege \mode does not trap */
.macro CHECK_ALLOWED_IN n, mode, insn
  CHKNUM \n
  ENTER_MODE \mode, .Lin\@
.Lin\@:
  la a1, buf
  CLEAR_TRAP
  \insn
  ASSERT_NO_TRAP
  ECALL_TO_M .Lout\@
.Lout\@:
.endm

  .text
  .globl test_main
test_main:
  mv s11, ra

  /* ---------------- M-mode semantics ---------------- */
  CHKNUM 1                     /* cbo.zero on an aligned block: exactly 64 bytes become 0 */
  FILL_BUF
  la a1, buf + 64
  cbo.zero (a1)
  ASSERT_BLOCK 0, 0xa5a5a5a5a5a5a5a5
  ASSERT_BLOCK 64, 0
  ASSERT_BLOCK 128, 0xa5a5a5a5a5a5a5a5
  CHKNUM 2                     /* rs1 in the middle of the block: the whole block */
  FILL_BUF
  la a1, buf + 64 + 37
  cbo.zero (a1)
  ASSERT_BLOCK 0, 0xa5a5a5a5a5a5a5a5
  ASSERT_BLOCK 64, 0
  ASSERT_BLOCK 128, 0xa5a5a5a5a5a5a5a5
  CHKNUM 3                     /* rs1 at the block's last byte */
  FILL_BUF
  la a1, buf + 127
  cbo.zero (a1)
  ASSERT_BLOCK 64, 0
  ASSERT_BLOCK 128, 0xa5a5a5a5a5a5a5a5
  CHKNUM 4                     /* a load after cbo.zero sees the zeros (no stale cached copy) */
  FILL_BUF
  la a1, buf + 128
  ld a0, 8(a1)
  cbo.zero (a1)
  ld a0, 8(a1)
  ASSERT_EQ a0, 0
  CHKNUM 5                     /* clean, flush and inval keep the data */
  FILL_BUF
  la a1, buf + 64
  cbo.clean (a1)
  cbo.flush (a1)
  cbo.inval (a1)
  ASSERT_BLOCK 64, 0xa5a5a5a5a5a5a5a5
  CHKNUM 6                     /* M-mode may use them all with menvcfg = 0 */
  csrw CSR_MENVCFG, zero
  CLEAR_TRAP
  cbo.zero (a1)
  cbo.clean (a1)
  cbo.flush (a1)
  cbo.inval (a1)
  ASSERT_NO_TRAP

  /* ---------------- envcfg WARL ---------------- */
  CHKNUM 7                     /* menvcfg: CBIE, CBCFE, CBZE, FIOM writable */
  li t0, ENVCFG_ALL | 1
  csrw CSR_MENVCFG, t0
  csrr a0, CSR_MENVCFG
  ASSERT_MASKED a0, 0xff, ENVCFG_ALL | 1
  CHKNUM 8                     /* CBIE = 10 is reserved: reads as 00 */
  li t0, 0x20
  csrw CSR_MENVCFG, t0
  csrr a0, CSR_MENVCFG
  ASSERT_MASKED a0, CBIE_MASK, 0
  CHKNUM 9                     /* senvcfg: the same fields */
  li t0, ENVCFG_ALL | 1
  csrw CSR_SENVCFG, t0
  csrr a0, CSR_SENVCFG
  ASSERT_MASKED a0, 0xff, ENVCFG_ALL | 1
  li t0, CBIE_FLUSH
  csrw CSR_SENVCFG, t0
  csrr a0, CSR_SENVCFG
  ASSERT_EQ a0, CBIE_FLUSH

  /* ---------------- permissions in S and U ---------------- */
  csrw CSR_MENVCFG, zero
  csrw CSR_SENVCFG, zero
  CHECK_ILLEGAL_IN 10, PRV_S, "cbo.zero (a1)"
  CHECK_ILLEGAL_IN 11, PRV_S, "cbo.clean (a1)"
  CHECK_ILLEGAL_IN 12, PRV_S, "cbo.flush (a1)"
  CHECK_ILLEGAL_IN 13, PRV_S, "cbo.inval (a1)"
  CHKNUM 14                    /* mtval holds the instruction */
  ENTER_MODE PRV_S, 1f
1:
  EXPECT_TRAP
  cbo.inval (a1)
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR trap_tval, 0x0005a00f
  ECALL_TO_M 2f
2:
  li t0, CBZE
  csrw CSR_MENVCFG, t0
  CHECK_ALLOWED_IN 15, PRV_S, "cbo.zero (a1)"
  CHECK_ILLEGAL_IN 16, PRV_S, "cbo.clean (a1)"
  CHECK_ILLEGAL_IN 17, PRV_U, "cbo.zero (a1)"    /* senvcfg.CBZE still clear */
  li t0, CBZE
  csrw CSR_SENVCFG, t0
  CHECK_ALLOWED_IN 18, PRV_U, "cbo.zero (a1)"
  li t0, CBCFE
  csrw CSR_MENVCFG, t0
  CHECK_ALLOWED_IN 19, PRV_S, "cbo.clean (a1)"
  CHECK_ALLOWED_IN 20, PRV_S, "cbo.flush (a1)"
  CHECK_ILLEGAL_IN 21, PRV_S, "cbo.zero (a1)"    /* menvcfg.CBZE now clear */
  CHECK_ILLEGAL_IN 22, PRV_U, "cbo.clean (a1)"   /* senvcfg.CBCFE clear */
  li t0, CBCFE
  csrw CSR_SENVCFG, t0
  CHECK_ALLOWED_IN 23, PRV_U, "cbo.flush (a1)"
  li t0, CBIE_FLUSH
  csrw CSR_MENVCFG, t0
  CHECK_ALLOWED_IN 24, PRV_S, "cbo.inval (a1)"   /* performed as a flush */
  CHECK_ILLEGAL_IN 25, PRV_U, "cbo.inval (a1)"   /* senvcfg.CBIE = 00 */
  li t0, CBIE_INVAL
  csrw CSR_SENVCFG, t0
  CHECK_ALLOWED_IN 26, PRV_U, "cbo.inval (a1)"
  CHKNUM 27                    /* cbo.zero from U-mode really clears the block */
  li t0, ENVCFG_ALL
  csrw CSR_MENVCFG, t0
  csrw CSR_SENVCFG, t0
  FILL_BUF
  ENTER_MODE PRV_U, 1f
1:
  la a1, buf + 64 + 8
  cbo.zero (a1)
  ECALL_TO_M 2f
2:
  ASSERT_BLOCK 0, 0xa5a5a5a5a5a5a5a5
  ASSERT_BLOCK 64, 0
  ASSERT_BLOCK 128, 0xa5a5a5a5a5a5a5a5

  /* ---------------- faults ---------------- */
  CHKNUM 28                    /* cbo.zero outside RAM: store access fault, tval = rs1 */
  li a1, 0x200000 + 72         /* nothing mapped there */
  EXPECT_TRAP
  cbo.zero (a1)
  ASSERT_TRAP CAUSE_STORE_ACCESS
  ASSERT_VAR_REG trap_tval, a1

  /* Sv39, three gigapages: VA 2G -> PA 2G RWX (the test itself),
   * VA 3G -> PA 2G read-only, VA 1G unmapped. */
  la t0, pt_root
  li t1, (0x80000000 >> 2) | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
  sd t1, 16(t0)
  li t1, (0x80000000 >> 2) | PTE_V | PTE_R | PTE_A
  sd t1, 24(t0)
  srli t0, t0, 12
  li t1, SATP_MODE_SV39
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li s1, 0x40000000            /* VA offset from the RWX view to the read-only view */

  CHKNUM 29                    /* cbo.zero through a read-only mapping: store page fault, tval = rs1, no write */
  FILL_BUF
  ENTER_MODE PRV_S, 1f
1:
  la a1, buf + 64 + 5
  add a1, a1, s1
  EXPECT_TRAP
  cbo.zero (a1)
  ASSERT_TRAP CAUSE_STORE_PAGE_FAULT
  ASSERT_VAR_REG trap_tval, a1
  CHKNUM 30                    /* clean/flush/inval need only read permission */
  CLEAR_TRAP
  cbo.clean (a1)
  cbo.flush (a1)
  cbo.inval (a1)
  ASSERT_NO_TRAP
  CHKNUM 31                    /* cbo.zero through the writable mapping works under Sv39 */
  la a1, buf + 64
  cbo.zero (a1)
  ECALL_TO_M 2f
2:
  ASSERT_BLOCK 0, 0xa5a5a5a5a5a5a5a5
  ASSERT_BLOCK 64, 0
  CHKNUM 32                    /* an unmapped page: store page fault for zero and for clean */
  ENTER_MODE PRV_S, 1f
1:
  li a1, 0x40000000 + 200
  EXPECT_TRAP
  cbo.zero (a1)
  ASSERT_TRAP CAUSE_STORE_PAGE_FAULT
  ASSERT_VAR_REG trap_tval, a1
  EXPECT_TRAP
  cbo.clean (a1)
  ASSERT_TRAP CAUSE_STORE_PAGE_FAULT
  ASSERT_VAR_REG trap_tval, a1
  ECALL_TO_M 2f
2:
  csrw satp, zero
  sfence.vma

  /* ---------------- reserved encodings ---------------- */
  CHKNUM 33                    /* rd != 0 */
  EXPECT_TRAP
  .4byte 0x0045a08f            /* cbo.zero (a1) with rd = x1 */
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  CHKNUM 34                    /* function 3 (between flush and zero) */
  EXPECT_TRAP
  .4byte 0x0035a00f
  ASSERT_TRAP CAUSE_ILLEGAL_INSN

  mv ra, s11
  ret

  .data
  .align 12
pt_root:
  .zero 4096
  .align 6
buf:
  .zero 192
