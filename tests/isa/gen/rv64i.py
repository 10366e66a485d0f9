# Generates tests/isa/rv64i.S (python3 tests/isa/gen/rv64i.py); expected values
# are computed here, so edit this script rather than the .S file.
import sys, os
HERE=os.path.dirname(os.path.abspath(__file__)); sys.path.insert(0,os.path.dirname(os.path.abspath(__file__)))
from rv import *
g=G(1)
N=g.num
P=g.raw
P('''/*
 * rv64i - the RV64I base integer instruction set (32-bit encodings only;
 * compressed forms are covered by rvc): LUI/AUIPC, JAL/JALR, branches,
 * loads and stores, register-immediate and register-register ALU ops,
 * the RV64 word (W) forms, x0 hard-wired to zero, and every register
 * field decoding x1..x31.
 */
#include "common.h"

/* branch \\inst on a1 = \\v1, a2 = \\v2; \\taken = 1 if it must be taken */
.macro TEST_BR n, inst, v1, v2, taken
  CHKNUM \\n
  li a1, \\v1
  li a2, \\v2
  \\inst a1, a2, .Lt\\@
  .if \\taken
    j fail
  .else
    j .Ld\\@
  .endif
.Lt\\@:
  .if !(\\taken)
    j fail
  .endif
.Ld\\@:
.endm

/* load \\inst a0, \\off(a1) with a1 = \\base; expect a0 == \\exp */
.macro TEST_LD n, inst, exp, base, off
  CHKNUM \\n
  la a1, \\base
  \\inst a0, \\off(a1)
  ASSERT_EQ a0, \\exp
.endm

  .text
  .option norvc
  .globl test_main
test_main:''')

g.c("LUI: upper 20 bits, low 12 zero, sign-extended from bit 31")
for imm,exp in [(0x12345,0x12345000),(0,0),(0x7ffff,0x7ffff000),(0x80000,0xffffffff80000000),(0xfffff,0xfffffffffffff000),(1,0x1000)]:
    n=N(); P(f"  CHKNUM {n}\n  li a0, -1\n  lui a0, {hex(imm)}\n  ASSERT_EQ a0, {hex(exp)}")
g.c("AUIPC: pc of the auipc itself plus the sign-extended upper immediate")
n=N(); P(f"  CHKNUM {n}\n1:\n  auipc a0, 0\n  la a1, 1b\n  ASSERT_REQ a0, a1")
n=N(); P(f"  CHKNUM {n}\n1:\n  auipc a0, 1\n  la a1, 1b\n  li a2, 0x1000\n  add a1, a1, a2\n  ASSERT_REQ a0, a1")
n=N(); P(f"  CHKNUM {n}\n1:\n  auipc a0, 0xfffff\n  la a1, 1b\n  li a2, -0x1000\n  add a1, a1, a2\n  ASSERT_REQ a0, a1")
n=N(); P(f"  CHKNUM {n}\n1:\n  auipc a0, 0x80000\n  la a1, 1b\n  li a2, 0xffffffff80000000\n  add a1, a1, a2\n  ASSERT_REQ a0, a1")
n=N(); P(f"  CHKNUM {n}  /* auipc + addi pair as used by la */\n1:\n  auipc a0, %pcrel_hi(lbl_target)\n  addi a0, a0, %pcrel_lo(1b)\n  la a1, lbl_target_addr\n  ld a1, 0(a1)\n  ASSERT_REQ a0, a1")

g.c("JAL: link = pc + 4, forward and backward targets, rd = x0")
n=N(); P(f"""  CHKNUM {n}
  li ra, 0
  jal ra, 1f
2:
  j fail
1:
  la a1, 2b
  ASSERT_REQ ra, a1""")
n=N(); P(f"""  CHKNUM {n}  /* jal with rd = a0 (not ra) */
  li a0, 0
  jal a0, 1f
2:
  j fail
1:
  la a1, 2b
  ASSERT_REQ a0, a1""")
n=N(); P(f"""  CHKNUM {n}  /* backward jal */
  li a2, 0
  j 3f
1:
  addi a2, a2, 1
  j 4f
3:
  jal t0, 1b
5:
  j fail
4:
  ASSERT_EQ a2, 1
  la a1, 5b
  ASSERT_REQ t0, a1""")
n=N(); P(f"""  CHKNUM {n}  /* jal x0 does not write a register, x0 stays 0 */
  jal x0, 1f
  j fail
1:
  ASSERT_EQ x0, 0""")
g.c("JALR: target = (rs1 + imm) & ~1, link = pc + 4")
n=N(); P(f"""  CHKNUM {n}
  la t0, 1f
  jalr ra, 0(t0)
2:
  j fail
1:
  la a1, 2b
  ASSERT_REQ ra, a1""")
n=N(); P(f"""  CHKNUM {n}  /* positive offset */
  la t0, 1f
  addi t0, t0, -16
  jalr a0, 16(t0)
2:
  j fail
1:
  la a1, 2b
  ASSERT_REQ a0, a1""")
n=N(); P(f"""  CHKNUM {n}  /* negative offset */
  la t0, 1f
  addi t0, t0, 100
  jalr a0, -100(t0)
  j fail
1:""")
n=N(); P(f"""  CHKNUM {n}  /* bit 0 of rs1 + imm cleared: odd rs1 */
  la t0, 1f
  addi t0, t0, 1
  jalr a0, 0(t0)
  j fail
  j fail
1:""")
n=N(); P(f"""  CHKNUM {n}  /* bit 0 of rs1 + imm cleared: odd immediate */
  la t0, 1f
  jalr a0, 1(t0)
  j fail
  j fail
1:""")
n=N(); P(f"""  CHKNUM {n}  /* odd rs1 and odd imm: sum is even, not cleared twice */
  la t0, 1f
  addi t0, t0, -3
  jalr a0, 3(t0)
  j fail
1:""")
n=N(); P(f"""  CHKNUM {n}  /* rd = rs1: the target uses the old rs1 */
  la t0, 1f
  jalr t0, 0(t0)
2:
  j fail
1:
  la a1, 2b
  ASSERT_REQ t0, a1""")
n=N(); P(f"""  CHKNUM {n}  /* jalr x0 (ret-like) writes nothing */
  la t0, 1f
  jalr x0, 0(t0)
  j fail
1:
  ASSERT_EQ x0, 0""")
n=N(); P(f"""  CHKNUM {n}  /* call and return through a subroutine */
  li a0, 5
  call sub_double
  ASSERT_EQ a0, 10""")

g.c("branches (TEST_BR n, inst, a, b, taken)")
INTMIN=0x8000000000000000; INTMAX=0x7fffffffffffffff
pairs=[(0,0),(1,1),(-1,-1),(0,1),(1,0),(-1,1),(1,-1),(INTMIN,INTMAX),(INTMAX,INTMIN),(-2,-1),(-1,-2),
       (0x80000000,0x7fffffff),(0xffffffff,0x100000000),(0x100000000,0),(INTMIN,0),(0,INTMIN),(INTMIN,INTMIN),
       (0xffffffff,-1),(0x7fffffff,0xffffffff80000000)]
br={'beq':lambda a,b:u64(a)==u64(b),'bne':lambda a,b:u64(a)!=u64(b),'blt':lambda a,b:s64(a)<s64(b),
    'bge':lambda a,b:s64(a)>=s64(b),'bltu':lambda a,b:u64(a)<u64(b),'bgeu':lambda a,b:u64(a)>=u64(b)}
for op in ['beq','bne','blt','bge','bltu','bgeu']:
    for a,b in pairs:
        P(f"  TEST_BR {N()}, {op}, {h(a)}, {h(b)}, {int(br[op](a,b))}")
n=N(); P(f"""  CHKNUM {n}  /* backward conditional branch: count down a loop */
  li a0, 5
  li a1, 0
1:
  addi a1, a1, 3
  addi a0, a0, -1
  bnez a0, 1b
  ASSERT_EQ a1, 15""")
n=N(); P(f"""  CHKNUM {n}  /* same register for both operands */
  li a1, -7
  beq a1, a1, 1f
  j fail
1:
  bne a1, a1, fail_near
  blt a1, a1, fail_near
  bltu a1, a1, fail_near
  bge a1, a1, 2f
  j fail
2:
  bgeu a1, a1, 3f
  j fail
3:""")
n=N(); P(f"""  CHKNUM {n}  /* branch compares against x0 */
  li a1, -1
  bltz a1, 1f
  j fail
1:
  bgez a1, fail_near
  bgtu a1, x0, 2f
  j fail
2:""")

g.c("loads: sign and zero extension, offsets (tdat0 = 0x80f1e2d3c4b5a697, tdat1 = 0x0123456789abcdef)")
L=[('lb',0,'tdat0',0xffffffffffffff97),('lbu',0,'tdat0',0x97),('lb',7,'tdat0',0xffffffffffffff80),('lbu',7,'tdat0',0x80),
   ('lb',0,'tdat1',0xffffffffffffffef),('lbu',0,'tdat1',0xef),('lb',7,'tdat1',1),('lbu',7,'tdat1',1),('lb',3,'tdat1',0xffffffffffffff89),('lb',4,'tdat1',0x67),
   ('lh',0,'tdat0',0xffffffffffffa697),('lhu',0,'tdat0',0xa697),('lh',6,'tdat0',0xffffffffffff80f1),('lhu',6,'tdat0',0x80f1),
   ('lh',6,'tdat1',0x0123),('lhu',6,'tdat1',0x0123),('lh',2,'tdat1',0xffffffffffff89ab),('lhu',2,'tdat1',0x89ab),('lh',4,'tdat1',0x4567),
   ('lw',0,'tdat0',0xffffffffc4b5a697),('lwu',0,'tdat0',0xc4b5a697),('lw',4,'tdat0',0xffffffff80f1e2d3),('lwu',4,'tdat0',0x80f1e2d3),
   ('lw',4,'tdat1',0x01234567),('lwu',4,'tdat1',0x01234567),('lw',0,'tdat1',0xffffffff89abcdef),('lwu',0,'tdat1',0x89abcdef),
   ('ld',0,'tdat0',0x80f1e2d3c4b5a697),('ld',0,'tdat1',0x0123456789abcdef),('ld',8,'tdat0',0x0123456789abcdef),
   ('lb',-1,'tdat1',0xffffffffffffff80),('lbu',-1,'tdat1',0x80),('lh',-2,'tdat1',0xffffffffffff80f1),('lw',-4,'tdat1',0xffffffff80f1e2d3),('ld',-8,'tdat1',0x80f1e2d3c4b5a697),
   ('ld',-8,'tdat_hi',0x7ff0000000000001),('lw',2044,'tdat_lo',0x55aa33cc),('lbu',-2048,'tdat_hi',0xa5)]
for op,off,base,exp in L:
    P(f"  TEST_LD {N()}, {op}, {h(exp)}, {base}, {off}")
n=N(); P(f"""  CHKNUM {n}  /* destination = base register */
  la a0, tdat1
  ld a0, 0(a0)
  ASSERT_EQ a0, 0x0123456789abcdef""")
n=N(); P(f"""  CHKNUM {n}  /* load into x0 is discarded */
  la a1, tdat1
  ld x0, 0(a1)
  lw x0, 0(a1)
  lbu x0, 1(a1)
  ASSERT_EQ x0, 0
  add a0, x0, x0
  ASSERT_EQ a0, 0""")

g.c("stores: widths, only the addressed bytes change, little-endian")
def st(op,val,off,init,exp):
    n=N(); P(f"""  CHKNUM {n}  /* {op} {h(val)} at +{off} */
  la a1, sbuf
  li a2, {h(init)}
  sd a2, 0(a1)
  sd a2, 8(a1)
  li a2, {h(val)}
  {op} a2, {off}(a1)
  ld a0, 0(a1)
  ASSERT_EQ a0, {h(exp[0])}
  ld a0, 8(a1)
  ASSERT_EQ a0, {h(exp[1])}""")
def stexp(init,val,off,w):
    b=bytearray(init.to_bytes(8,'little')*2)
    b[off:off+w]=(val&((1<<(8*w))-1)).to_bytes(w,'little')
    return int.from_bytes(b[:8],'little'),int.from_bytes(b[8:],'little')
for op,w,val,off,init in [('sb',1,0x1122334455667788,0,M),('sb',1,0x1122334455667788,5,M),('sb',1,0xff,3,0),('sb',1,0x80,15,0),
        ('sh',2,0x1122334455667788,0,M),('sh',2,0x1122334455667788,6,M),('sh',2,0xffff,2,0),('sh',2,0xabcd,10,0),
        ('sw',4,0x1122334455667788,0,M),('sw',4,0x1122334455667788,4,M),('sw',4,0xdeadbeef,8,0),('sw',4,0x80000000,12,0),
        ('sd',8,0x1122334455667788,0,M),('sd',8,0x8000000000000001,8,0)]:
    st(op,val,off,init,stexp(init,val,off,w))
n=N(); P(f"""  CHKNUM {n}  /* byte order: sd then lbu each byte */
  la a1, sbuf
  li a2, 0x0706050403020100
  sd a2, 0(a1)
  li a3, 0
1:
  add a4, a1, a3
  lbu a0, 0(a4)
  bne a0, a3, fail_near
  addi a3, a3, 1
  li a4, 8
  blt a3, a4, 1b""")
n=N(); P(f"""  CHKNUM {n}  /* negative store offset, store of x0 */
  la a1, sbuf
  addi a1, a1, 16
  li a2, -1
  sd a2, -16(a1)
  sw x0, -12(a1)
  sh x0, -16(a1)
  addi a1, a1, -16
  ld a0, 0(a1)
  ASSERT_EQ a0, 0x00000000ffff0000""")
n=N(); P(f"""  CHKNUM {n}  /* store data register = base register */
  la a1, sbuf
  sd a1, 0(a1)
  ld a0, 0(a1)
  ASSERT_REQ a0, a1""")

g.c("ADDI / SLTI / SLTIU / XORI / ORI / ANDI")
for a,i in [(0,0),(1,1),(3,7),(0,-2048),(0,2047),(-1,1),(INTMAX,1),(0x7fffffff,1),(0xffffffff,1),(INTMIN,-1),(0x123456789,-0x800),(5,-5)]:
    g.ri('addi',a,i)
for a,i in [(0,1),(1,0),(-1,0),(0,-1),(INTMIN,0),(INTMAX,-1),(5,5),(-2049,-2048),(-2048,-2048),(0x7ff,2047),(0x7fe,2047),(-1,2047)]:
    g.ri('slti',a,i)
for a,i in [(0,1),(5,1),(-1,-1),(1,-1),(0,0),(0xfffffffffffff800,-2048),(0xfffffffffffff7ff,-2048),(INTMIN,0),(0x7fe,2047),(0x100000000,-1),(-2,-1)]:
    g.ri('sltiu',a,i)
for op in ['xori','ori','andi']:
    for a,i in [(0x00ff00ff00ff00ff,0x0f0),(0x00ff00ff00ff00ff,-1),(0xff00ff00ff00ff00,0x70f),(0x123456789abcdef0,-256),(0,-2048),(-1,0),(0x5555555555555555,0x2aa)]:
        g.ri(op,a,i)
g.c("SLLI / SRLI / SRAI: 6-bit shift amounts")
for a,i in [(1,0),(1,1),(1,7),(1,31),(1,32),(1,63),(0x0123456789abcdef,4),(0x0123456789abcdef,36),(-1,63),(0xffffffff,32)]:
    g.ri('slli',a,i)
for a,i in [(-1,0),(-1,1),(-1,63),(-1,32),(-1,31),(INTMIN,63),(0x0123456789abcdef,4),(0x0123456789abcdef,40),(0x80000000,31)]:
    g.ri('srli',a,i)
for a,i in [(INTMIN,0),(INTMIN,1),(INTMIN,63),(INTMAX,63),(INTMAX,1),(0x80000000,31),(0xfedcba9876543210,32),(0xfedcba9876543210,4),(-1,17),(0x7edcba9876543210,60)]:
    g.ri('srai',a,i)

g.c("ADD / SUB")
for a,b in [(0,0),(1,1),(3,7),(-1,1),(INTMAX,1),(INTMIN,-1),(0xffffffff,1),(0x7fffffff,0x7fffffff),(-1,-1),(0x123456789abcdef0,0x0fedcba987654321)]:
    g.rr('add',a,b)
for a,b in [(0,0),(1,1),(3,7),(0,1),(INTMIN,1),(INTMAX,-1),(0x100000000,1),(-1,-1),(0x123456789abcdef0,0x0fedcba987654321),(0,INTMIN)]:
    g.rr('sub',a,b)
g.c("SLL / SRL / SRA: amount = rs2[5:0]")
for a,b in [(1,0),(1,1),(1,31),(1,32),(1,63),(1,64),(1,65),(1,-1),(0x0123456789abcdef,12),(0x0123456789abcdef,0xffffffffffffffc4)]:
    g.rr('sll',a,b)
for a,b in [(-1,0),(-1,1),(-1,63),(-1,64),(-1,-1),(INTMIN,32),(0x0123456789abcdef,12),(0x0123456789abcdef,0x1000000024)]:
    g.rr('srl',a,b)
for a,b in [(INTMIN,0),(INTMIN,1),(INTMIN,63),(INTMIN,64),(INTMIN,-1),(INTMAX,62),(0xfedcba9876543210,12),(0xfedcba9876543210,0x7fffffe4),(0x80000000,31)]:
    g.rr('sra',a,b)
g.c("SLT / SLTU")
for a,b in pairs[:14]: g.rr('slt',a,b)
for a,b in pairs[:14]: g.rr('sltu',a,b)
g.rr('sltu',0,5); g.rr('sltu',5,0)  # snez idiom with rs1 = x0 is tested below
g.c("XOR / OR / AND")
for op in ['xor','or','and']:
    for a,b in [(0xff00ff00ff00ff00,0x0ff00ff00ff00ff0),(0x00ff00ff00ff00ff,0xf00ff00ff00ff00f),(0,-1),(-1,-1),(0x123456789abcdef0,0)]:
        g.rr(op,a,b)
g.c("destination equals a source, both sources the same register")
g.rr('add',13,11,'TEST_RR_D1'); g.rr('sub',13,11,'TEST_RR_D2'); g.rr('sll',1,7,'TEST_RR_D1'); g.rr('sra',-128,3,'TEST_RR_D2')
g.rr('xor',0x1234,0x1234,'TEST_RR_D1'); g.rr('sltu',1,2,'TEST_RR_D2')
P(f"  TEST_RR_SS {N()}, add, 0x2468, 0x1234\n  TEST_RR_SS {N()}, sub, 0, 0x1234\n  TEST_RR_SS {N()}, sltu, 0, -1\n  TEST_RR_SS {N()}, xor, 0, -1\n  TEST_RR_SS {N()}, and, 0x55, 0x55")
n=N(); P(f"""  CHKNUM {n}  /* sltu rd, x0, rs (snez) and slt with x0 */
  li a1, 7
  sltu a0, x0, a1
  ASSERT_EQ a0, 1
  sltu a0, x0, x0
  ASSERT_EQ a0, 0
  li a1, -7
  slt a0, a1, x0
  ASSERT_EQ a0, 1""")

g.c("ADDIW / SLLIW / SRLIW / SRAIW: 32-bit result sign-extended, upper source bits ignored")
for a,i in [(0,0),(1,1),(0x7fffffff,1),(0xffffffff,1),(0x123456789,0),(0x80000000,0),(-1,-1),(0xffffffff00000001,1),(0x7fffffff,-2048),(0x80000000,-1),(0xfffffffe,2047)]:
    g.ri('addiw',a,i)
for a,i in [(1,0),(1,31),(0xffffffff,4),(0x123456789abcdef0,0),(0x123456789abcdef0,4),(1,30),(0xffffffff00000001,1),(0x00000000ffffffff,31)]:
    g.ri('slliw',a,i)
for a,i in [(0xffffffff80000000,0),(0x80000000,0),(0x80000000,1),(0xffffffff,31),(0x123456789abcdef0,4),(0xffffffff,0),(0xffffffff00000000,1),(0x7fffffff,0)]:
    g.ri('srliw',a,i)
for a,i in [(0x80000000,1),(0x7fffffff,31),(0x80000000,31),(0xffffffff7fffffff,4),(0x12345678f0000000,8),(0x0000000080000000,0),(0xffffffff00000001,0),(0x40000000,30)]:
    g.ri('sraiw',a,i)
g.c("ADDW / SUBW")
for a,b in [(0,0),(0x7fffffff,1),(0xffffffff,1),(0x123456789,0x100000000),(-1,-1),(0x80000000,0x80000000),(0xaaaaaaaa00000003,0x5555555500000004)]:
    g.rr('addw',a,b)
for a,b in [(0,0),(0x80000000,1),(0,1),(0x100000000,1),(0x7fffffff,-1),(0x123456789,0x23456789),(0xffffffff00000005,0x00000000fffffffb)]:
    g.rr('subw',a,b)
g.c("SLLW / SRLW / SRAW: amount = rs2[4:0] (amounts >= 32 are masked)")
for a,b in [(1,0),(1,31),(1,32),(1,33),(1,63),(0xffffffff,4),(0x123456789abcdef0,8),(1,-1)]:
    g.rr('sllw',a,b)
for a,b in [(0x80000000,0),(0x80000000,31),(0x80000000,63),(0x80000000,32),(0xffffffff,36),(0x123456789abcdef0,4),(0xffffffff00000000,1),(-1,1)]:
    g.rr('srlw',a,b)
for a,b in [(0x80000000,0),(0x80000000,36),(0x80000000,31),(0x7fffffff,31),(0x7fffffff,63),(0x17fffffff,4),(0xffffffff7fffffff,32),(0x12345678f0000000,40)]:
    g.rr('sraw',a,b)

g.c("x0 is hard-wired to zero")
for ins in ["addi x0, x0, 5","lui x0, 0x12345","auipc x0, 0x1","add x0, a1, a1","sub x0, x0, a1","slli x0, a1, 3","xori x0, x0, -1","addiw x0, a1, 1","sltiu x0, x0, 1"]:
    n=N(); P(f"  CHKNUM {n}\n  li a1, 0x55\n  {ins}\n  ASSERT_EQ x0, 0\n  addi a0, x0, 0\n  ASSERT_EQ a0, 0")
n=N(); P(f"""  CHKNUM {n}  /* x0 as a source reads 0 after attempted writes */
  li a1, 1
  addi x0, a1, 100
  add a0, x0, a1
  ASSERT_EQ a0, 1
  or a0, x0, x0
  ASSERT_EQ a0, 0""")

g.c("register-field decoding: write x1..x31 (except sp, gp) with distinct values, store them all")
n=N()
regs=[r for r in range(1,32) if r not in (2,3)]
body=[f"  CHKNUM {n}","  la sp, regdump"]
for r in regs: body.append(f"  li x{r}, 0x{(r*0x0101010101010101)^0x1000000000000000:x}")
for r in regs: body.append(f"  sd x{r}, {8*r}(sp)")
body.append("  la sp, stack_top")
body.append("  la a1, regdump")
for r in regs:
    body.append(f"  ld a0, {8*r}(a1)\n  ASSERT_EQ a0, 0x{(r*0x0101010101010101)^0x1000000000000000:x}")
P("\n".join(body))
n=N(); P(f"""  CHKNUM {n}  /* every register as rs1 and rs2 of add */
  li x1, 1
  li x4, 4
  li x5, 5
  li x6, 6
  li x7, 7
  li x8, 8
  li x9, 9
  li x10, 10
  li x11, 11
  li x12, 12
  li x13, 13
  li x14, 14
  li x15, 15
  li x16, 16
  li x17, 17
  li x18, 18
  li x19, 19
  li x20, 20
  li x21, 21
  li x22, 22
  li x23, 23
  li x24, 24
  li x25, 25
  li x26, 26
  li x27, 27
  li x28, 28
  li x29, 29
  li x30, 30
  li x31, 31
  add x30, x1, x4
  add x30, x30, x5
  add x30, x30, x6
  add x30, x7, x30
  add x30, x8, x30
  add x30, x9, x30
  add x30, x30, x10
  add x30, x11, x30
  add x30, x30, x12
  add x30, x13, x30
  add x30, x30, x14
  add x30, x15, x30
  add x30, x30, x16
  add x30, x17, x30
  add x30, x30, x18
  add x30, x19, x30
  add x30, x30, x20
  add x30, x21, x30
  add x30, x30, x22
  add x30, x23, x30
  add x30, x30, x24
  add x30, x25, x30
  add x30, x30, x26
  add x30, x27, x30
  add x30, x30, x28
  add x30, x29, x30
  add x30, x30, x31
  li x29, {sum(r for r in regs if r not in (30,))}
  beq x30, x29, 1f
  j fail
1:""")
g.c("FENCE / FENCE.I / NOP execute as no-ops")
n=N(); P(f"  CHKNUM {n}\n  li a0, 3\n  fence\n  fence rw, rw\n  fence.i\n  nop\n  ASSERT_EQ a0, 3")
P("""  j pass

/* a far-away jump target for branches that must not be taken */
fail_near:
  j fail

sub_double:
  add a0, a0, a0
  ret

lbl_target:
  nop

  .data
  .align 4
lbl_target_addr:
  .dword lbl_target
tdat0:
  .dword 0x80f1e2d3c4b5a697
tdat1:
  .dword 0x0123456789abcdef
tdat_lo:
  .skip 8
  .byte 0xa5
  .skip 2035
  .word 0x55aa33cc
tdat_gap:
  .dword 0x7ff0000000000001
tdat_hi:
  .dword 0

  .bss
  .align 4
sbuf:
  .skip 32
regdump:
  .skip 256
""")
open(os.path.join(HERE,'..','rv64i.S'),'w').write('/* Generated by tests/isa/gen/rv64i.py: edit that script, not this file. */\n'+g.text())
print("last check", g.n-1)
