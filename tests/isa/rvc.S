/*
 * rvc - every RV64C compressed instruction, written with explicit c.*
 * mnemonics (the assembler must emit the 16-bit form or fail), plus:
 * C.EBREAK through the trap handler (mcause 3, mepc = its address), the
 * all-zero illegal instruction, 32-bit instructions at addresses = 2 mod 4
 * (interleaved with 16-bit ones, as jump/branch targets and straddling a
 * 4 KiB page boundary), and that in RV64 the C.JAL encoding is C.ADDIW.
 */
#include "common.h"

  .text
  .option rvc
  .option norelax          /* exact layout: .balign must see real offsets */
  .globl test_main
test_main:
  mv s11, sp              /* s11 keeps the real stack pointer */
  mv s10, ra

  /* ---------------- quadrant 0 ---------------- */

  /* C.ADDI4SPN: rd' = sp + nzuimm (multiple of 4, 4..1020) */
  CHKNUM 1
  la sp, cbuf
  c.addi4spn a0, sp, 4
  la a1, cbuf + 4
  ASSERT_REQ a0, a1
  CHKNUM 2
  c.addi4spn s0, sp, 1020
  la a1, cbuf + 1020
  ASSERT_REQ s0, a1
  CHKNUM 3
  c.addi4spn a5, sp, 512
  la a1, cbuf + 512
  ASSERT_REQ a5, a1

  /* C.LW sign-extends, C.LD, offsets up to 124 / 248 */
  CHKNUM 4
  la s1, cdata
  c.lw a0, 0(s1)
  ASSERT_EQ a0, 0xffffffff89abcdef
  CHKNUM 5
  c.lw a1, 4(s1)
  ASSERT_EQ a1, 0x01234567
  CHKNUM 6
  c.ld a2, 0(s1)
  ASSERT_EQ a2, 0x0123456789abcdef
  CHKNUM 7
  c.lw a3, 124(s1)
  ASSERT_EQ a3, 0xffffffff80000124
  CHKNUM 8
  c.ld a4, 248(s1)
  ASSERT_EQ a4, 0x8000000000000248
  CHKNUM 9
  c.ld s0, 8(s1)
  ASSERT_EQ s0, 0xfedcba9876543210

  /* C.SW / C.SD */
  CHKNUM 10
  la a5, cbuf
  li a0, -1
  sd a0, 0(a5)
  sd a0, 8(a5)
  li a1, 0x1122334455667788
  c.sw a1, 4(a5)
  ld a0, 0(a5)
  ASSERT_EQ a0, 0x55667788ffffffff
  CHKNUM 11
  c.sd a1, 8(a5)
  ld a0, 8(a5)
  ASSERT_EQ a0, 0x1122334455667788
  CHKNUM 12
  li s0, 0x7777
  c.sw s0, 124(a5)
  lwu a0, 124(a5)
  ASSERT_EQ a0, 0x7777
  CHKNUM 13
  li s1, 0x0abc
  c.sd s1, 248(a5)
  ld a0, 248(a5)
  ASSERT_EQ a0, 0x0abc

  /* C.FLD / C.FSD */
  CHKNUM 14
  la a5, cdata
  c.fld fa0, 16(a5)
  fmv.x.d a0, fa0
  ASSERT_EQ a0, 0x400921fb54442d18
  CHKNUM 15
  c.fld fs1, 248(a5)
  fmv.x.d a0, fs1
  ASSERT_EQ a0, 0x8000000000000248
  CHKNUM 16
  la a4, cbuf
  c.fsd fa0, 16(a4)
  c.fsd fs1, 240(a4)
  ld a0, 16(a4)
  ASSERT_EQ a0, 0x400921fb54442d18
  ld a0, 240(a4)
  ASSERT_EQ a0, 0x8000000000000248

  /* ---------------- quadrant 1 ---------------- */

  /* C.NOP */
  CHKNUM 17
  li a0, 5
  c.nop
  ASSERT_EQ a0, 5

  /* C.ADDI: 6-bit signed immediate, 64-bit add */
  CHKNUM 18
  li a0, 100
  c.addi a0, 31
  ASSERT_EQ a0, 131
  CHKNUM 19
  c.addi a0, -32
  ASSERT_EQ a0, 99
  CHKNUM 20
  li t3, 0x7fffffff
  c.addi t3, 1
  ASSERT_EQ t3, 0x80000000
  CHKNUM 21
  li t3, 0
  c.addi t3, -1
  ASSERT_EQ t3, -1

  /* C.ADDIW: 32-bit add, sign-extended (the RV32 C.JAL encoding) */
  CHKNUM 22
  li a0, 0x7fffffff
  c.addiw a0, 1
  ASSERT_EQ a0, 0xffffffff80000000
  CHKNUM 23
  li a0, 0x123456789
  c.addiw a0, 0
  ASSERT_EQ a0, 0x23456789
  CHKNUM 24
  li s2, 0xffffffff
  c.addiw s2, 1
  ASSERT_EQ s2, 0
  CHKNUM 25
  li a0, 0xfffffffe80000000
  c.addiw a0, -1
  ASSERT_EQ a0, 0x7fffffff
  CHKNUM 26          /* raw encoding 0x2505 = c.addiw a0, 1 (RV32: c.jal) */
  li a0, 41
1:
  .2byte 0x2505
  ASSERT_EQ a0, 42
  ASSERT_REQ ra, s10   /* ra not written as a link */

  /* C.LI */
  CHKNUM 27
  li a0, 0x1234
  c.li a0, 31
  ASSERT_EQ a0, 31
  CHKNUM 28
  c.li a0, -32
  ASSERT_EQ a0, -32
  CHKNUM 29
  c.li t4, 0
  ASSERT_EQ t4, 0

  /* C.ADDI16SP: sp += nzimm (multiple of 16, -512..496) */
  CHKNUM 30
  la sp, cbuf + 512
  c.addi16sp sp, 496
  la a1, cbuf + 1008
  ASSERT_REQ sp, a1
  CHKNUM 31
  c.addi16sp sp, -512
  la a1, cbuf + 496
  ASSERT_REQ sp, a1
  CHKNUM 32
  c.addi16sp sp, 16
  la a1, cbuf + 512
  ASSERT_REQ sp, a1
  mv sp, s11

  /* C.LUI: nzimm[17:12], sign-extended from bit 17 */
  CHKNUM 33
  li a0, -1
  c.lui a0, 1
  ASSERT_EQ a0, 0x1000
  CHKNUM 34
  c.lui a0, 0x1f
  ASSERT_EQ a0, 0x1f000
  CHKNUM 35
  c.lui a0, 0xfffe0
  ASSERT_EQ a0, 0xfffffffffffe0000
  CHKNUM 36
  c.lui t5, 0xfffff
  li t6, 0xfffffffffffff000
  beq t5, t6, 1f
  j fail
1:

  /* C.SRLI / C.SRAI / C.ANDI (rd' registers, shamt up to 63) */
  CHKNUM 37
  li a0, -1
  c.srli a0, 1
  ASSERT_EQ a0, 0x7fffffffffffffff
  CHKNUM 38
  li a0, -1
  c.srli a0, 63
  ASSERT_EQ a0, 1
  CHKNUM 39
  li a0, 0x8000000000000000
  c.srli a0, 32
  ASSERT_EQ a0, 0x80000000
  CHKNUM 40
  li a0, 0x8000000000000000
  c.srai a0, 1
  ASSERT_EQ a0, 0xc000000000000000
  CHKNUM 41
  li a0, 0x8000000000000000
  c.srai a0, 63
  ASSERT_EQ a0, -1
  CHKNUM 42
  li s1, 0xfedcba9876543210
  c.srai s1, 36
  ASSERT_EQ s1, 0xffffffffffedcba9
  CHKNUM 43
  li a0, 0x7fffffff00000000
  c.srai a0, 32
  ASSERT_EQ a0, 0x7fffffff
  CHKNUM 44
  li a0, 0x123456789abcdef0
  c.andi a0, 0x1f
  ASSERT_EQ a0, 0x10
  CHKNUM 45
  li a0, 0x123456789abcdef0
  c.andi a0, -32
  ASSERT_EQ a0, 0x123456789abcdee0
  CHKNUM 46
  li a0, -1
  c.andi a0, 0
  ASSERT_EQ a0, 0

  /* C.SUB / C.XOR / C.OR / C.AND / C.SUBW / C.ADDW */
  CHKNUM 47
  li a0, 100
  li a1, 142
  c.sub a0, a1
  ASSERT_EQ a0, -42
  CHKNUM 48
  li a0, 0x8000000000000000
  li a1, 1
  c.sub a0, a1
  ASSERT_EQ a0, 0x7fffffffffffffff
  CHKNUM 49
  li s0, 0xff00ff00ff00ff00
  li a5, 0x0ff00ff00ff00ff0
  c.xor s0, a5
  ASSERT_EQ s0, 0xf0f0f0f0f0f0f0f0
  CHKNUM 50
  li a2, 0xff00ff00ff00ff00
  li a3, 0x0ff00ff00ff00ff0
  c.or a2, a3
  ASSERT_EQ a2, 0xfff0fff0fff0fff0
  CHKNUM 51
  li a4, 0xff00ff00ff00ff00
  li s1, 0x0ff00ff00ff00ff0
  c.and a4, s1
  ASSERT_EQ a4, 0x0f000f000f000f00
  CHKNUM 52
  li a0, 0x80000000
  li a1, 1
  c.subw a0, a1
  ASSERT_EQ a0, 0x7fffffff
  CHKNUM 53
  li a0, 0x100000000
  li a1, 1
  c.subw a0, a1
  ASSERT_EQ a0, -1
  CHKNUM 54
  li a0, 0x7fffffff
  li a1, 1
  c.addw a0, a1
  ASSERT_EQ a0, 0xffffffff80000000
  CHKNUM 55
  li a0, 0xaaaaaaaa00000005
  li a1, 0x5555555500000006
  c.addw a0, a1
  ASSERT_EQ a0, 11

  /* C.J forward and backward */
  CHKNUM 56
  li a0, 0
  c.j 2f
1:
  c.addi a0, 1
  c.j 3f
2:
  c.addi a0, 2
  c.j 1b
  j fail
3:
  ASSERT_EQ a0, 3

  /* C.BEQZ / C.BNEZ (fail_c is within reach of the 9-bit offset) */
  j 1f
fail_c:
  j fail
1:
  CHKNUM 57
  li a0, 0
  c.beqz a0, 1f
  j fail
1:
  CHKNUM 58
  li a0, 1
  c.beqz a0, fail_c
  CHKNUM 59
  li s0, 0x100000000
  c.bnez s0, 1f
  j fail
1:
  CHKNUM 60
  li s0, 0
  c.bnez s0, fail_c
  CHKNUM 61
  li a5, 0x8000000000000000
  c.beqz a5, fail_c
  c.bnez a5, 1f
  j fail
1:
  CHKNUM 62          /* backward c.bnez loop */
  li a1, 4
  li a2, 0
1:
  c.addi a2, 5
  c.addi a1, -1
  c.bnez a1, 1b
  ASSERT_EQ a2, 20

  /* ---------------- quadrant 2 ---------------- */

  /* C.SLLI */
  CHKNUM 63
  li a0, 1
  c.slli a0, 63
  ASSERT_EQ a0, 0x8000000000000000
  CHKNUM 64
  li t1, 0x0123456789abcdef
  c.slli t1, 4
  ASSERT_EQ t1, 0x123456789abcdef0
  CHKNUM 65
  li s5, 0xffffffff
  c.slli s5, 32
  ASSERT_EQ s5, 0xffffffff00000000

  /* C.LWSP / C.LDSP / C.FLDSP */
  CHKNUM 66
  la sp, cdata
  c.lwsp a0, 0(sp)
  ASSERT_EQ a0, 0xffffffff89abcdef
  CHKNUM 67
  c.lwsp t2, 252(sp)
  ASSERT_EQ t2, 0xffffffff80000000
  CHKNUM 68
  c.ldsp s3, 8(sp)
  ASSERT_EQ s3, 0xfedcba9876543210
  CHKNUM 69
  c.ldsp a0, 504(sp)
  ASSERT_EQ a0, 0x0504050405040504
  CHKNUM 70
  c.fldsp ft0, 16(sp)
  fmv.x.d a0, ft0
  ASSERT_EQ a0, 0x400921fb54442d18
  CHKNUM 71
  c.fldsp fs11, 504(sp)
  fmv.x.d a0, fs11
  ASSERT_EQ a0, 0x0504050405040504
  mv sp, s11

  /* C.SWSP / C.SDSP / C.FSDSP */
  CHKNUM 72
  la sp, cbuf
  li a0, -1
  sd a0, 0(sp)
  li t0, 0x1122334455667788
  c.swsp t0, 0(sp)
  ld a0, 0(sp)
  ASSERT_EQ a0, 0xffffffff55667788
  CHKNUM 73
  c.swsp t0, 252(sp)
  lwu a0, 252(sp)
  ASSERT_EQ a0, 0x55667788
  CHKNUM 74
  c.sdsp t0, 504(sp)
  ld a0, 504(sp)
  ASSERT_EQ a0, 0x1122334455667788
  CHKNUM 75
  li a0, 0x3ff0000000000000
  fmv.d.x ft11, a0
  c.fsdsp ft11, 8(sp)
  ld a0, 8(sp)
  ASSERT_EQ a0, 0x3ff0000000000000
  CHKNUM 76
  c.fsdsp ft11, 496(sp)
  ld a0, 496(sp)
  ASSERT_EQ a0, 0x3ff0000000000000
  mv sp, s11

  /* C.JR: jump, no link */
  CHKNUM 77
  la t0, 1f
  li ra, 0x55
  c.jr t0
  j fail
1:
  ASSERT_EQ ra, 0x55

  /* C.JALR: link = address of c.jalr + 2 */
  CHKNUM 78
  la t0, 1f
  c.jalr t0
2:
  j fail
1:
  la a1, 2b
  ASSERT_REQ ra, a1
  CHKNUM 79          /* call a subroutine and return with c.jr ra */
  la t1, csub
  li a0, 7
  c.jalr t1
  ASSERT_EQ a0, 14
  CHKNUM 80          /* c.jalr with rs1 = ra: target from the old ra */
  la ra, 1f
  c.jalr ra
2:
  j fail
1:
  la a1, 2b
  ASSERT_REQ ra, a1

  /* C.MV / C.ADD */
  CHKNUM 81
  li a1, 0x0123456789abcdef
  c.mv t6, a1
  mv a0, t6
  ASSERT_EQ a0, 0x0123456789abcdef
  CHKNUM 82
  li s4, 0x7fffffffffffffff
  li s6, 1
  c.add s4, s6
  ASSERT_EQ s4, 0x8000000000000000
  CHKNUM 83
  li a0, 21
  c.add a0, a0
  ASSERT_EQ a0, 42
  CHKNUM 84
  li ra, 9
  c.mv x31, ra
  c.add x31, x31
  mv a0, x31
  ASSERT_EQ a0, 18

  /* C.EBREAK: breakpoint trap, mepc = address of the 2-byte instruction */
  CHKNUM 85
  li a0, 1
  EXPECT_TRAP
1:
  c.ebreak
  c.addi a0, 1
  ASSERT_TRAP CAUSE_BREAKPOINT
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_EQ a0, 2

  /* the all-zero 16-bit instruction is illegal; mtval = 0 either way */
  CHKNUM 86
  EXPECT_TRAP
1:
  .2byte 0x0000
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_VAR trap_tval, 0

  /* ---------------- 16/32-bit interleaving ---------------- */

  /* 32-bit instructions at addresses = 2 mod 4 */
  CHKNUM 87
  li a0, 0
  .balign 4
  c.addi a0, 1
  .option push
  .option norvc
1:
  addi a0, a0, 2            /* at 2 mod 4 */
  addi a0, a0, 4            /* at 2 mod 4 */
  .option pop
  c.addi a0, 8
  .option push
  .option norvc
2:
  addi a0, a0, 16           /* at 0 mod 4 */
  .option pop
  ASSERT_EQ a0, 31
  la a1, 1b
  andi a1, a1, 3
  ASSERT_EQ a1, 2

  /* 32-bit jal to a target at 2 mod 4; link = pc + 4 from a 2 mod 4 address */
  CHKNUM 88
  .balign 4
  c.nop
  .option push
  .option norvc
3:
  jal ra, 1f                /* at 2 mod 4 */
2:
  j fail
  .option pop
  .balign 4
  c.nop
  .option push
  .option norvc
1:
  addi a0, zero, 77         /* target at 2 mod 4 */
  .option pop
  la a1, 2b
  ASSERT_REQ ra, a1
  ASSERT_EQ a0, 77
  la a1, 1b
  andi a1, a1, 3
  ASSERT_EQ a1, 2

  /* jump to pc + 2: jalr to an address that is 2 mod 4 (no misaligned trap with C) */
  CHKNUM 89
  la t0, 1f
  andi a1, t0, 3
  ASSERT_EQ a1, 2
  .option push
  .option norvc
  jalr ra, 0(t0)
  j fail
  .option pop
  .balign 4
  c.nop
  .option push
  .option norvc
1:
  beq zero, zero, 2f        /* 32-bit branch at 2 mod 4 to 2 mod 4 */
  j fail
  .option pop
  .balign 4
  c.nop
2:
  la a1, 2b
  andi a1, a1, 3
  ASSERT_EQ a1, 2

  /* compressed branch to a 32-bit instruction and back */
  CHKNUM 90
  li a0, 0
  c.j 2f
1:
  c.addi a0, 1
  c.j 3f
  .option push
  .option norvc
2:
  addi a0, a0, 10
  .option pop
  c.j 1b
3:
  ASSERT_EQ a0, 11

  /* a 32-bit instruction straddling a 4 KiB page boundary */
  CHKNUM 91
  li a0, 0
  j straddle
straddle_back:
  ASSERT_EQ a0, 0x111

  /* a compressed instruction in the last 2 bytes of a page */
  CHKNUM 92
  li a0, 0
  j lastslot
lastslot_back:
  ASSERT_EQ a0, 3

  /* C.ADDI on a register outside x8-x15 (full 5-bit rd field) */
  CHKNUM 93
  li ra, 1
  c.addi ra, 2
  ASSERT_EQ ra, 3

  mv ra, s10
  mv sp, s11
  ret

/* ---- helpers ---- */
csub:
  c.add a0, a0
  c.jr ra

/* page-straddling code */
  .balign 4096
  .skip 4086
straddle:
  c.addi a0, 1              /* at page offset 4086 */
  c.addi a0, 1
  c.addi a0, 1
  .option push
  .option norvc
  addi a0, a0, 0x10c        /* at offset 4092: ends exactly at the page end */
  .option pop
  c.nop                     /* page offset 0 */
  .option push
  .option norvc
  j 1f
  .option pop
  .balign 4096
  .skip 4090
1:
  c.nop                     /* at 4090 */
  c.nop
  .option push
  .option norvc
  addi a0, a0, 2            /* at page offset 4094: crosses the page boundary */
  .option pop
  j straddle_back

  .balign 4096
  .skip 4088
lastslot:
  c.addi a0, 1              /* 4088 */
  c.addi a0, 1              /* 4090 */
  c.nop                     /* 4092 */
  c.addi a0, 1              /* 4094: last halfword of the page */
  j lastslot_back

  .data
  .align 4
cdata:
  .dword 0x0123456789abcdef
  .dword 0xfedcba9876543210
  .dword 0x400921fb54442d18
  .skip 124 - 24
  .word 0x80000124          /* cdata + 124 */
  .skip 248 - 128
  .dword 0x8000000000000248 /* cdata + 248 */
  .skip 504 - 256
  .dword 0x0504050405040504 /* cdata + 504 */

  .bss
  .align 4
cbuf:
  .skip 1024
