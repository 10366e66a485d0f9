# Generates tests/isa/rv64d.S (python3 tests/isa/gen/rv64d.py); expected values
# are computed here, so edit this script rather than the .S file.
import sys, os
HERE=os.path.dirname(os.path.abspath(__file__)); sys.path.insert(0,os.path.dirname(os.path.abspath(__file__)))
from fpgen import *
g=gen(D,None,"rv64d - the D extension (double precision) on RV64: arithmetic, fused\n * multiply-add, min/max, sign injection, compares, classify, conversions\n * (including single <-> double), moves, loads/stores, rounding modes\n * (static and dynamic, invalid modes trap), fflags, and mstatus.FS.")
N=g.num; P=g.raw
def B(x): return bits_of(D,x)
def BS(x): return bits_of(S,x)
def enc(funct7,rs2,rs1,rm,rd,opc=0x53): return (funct7<<25)|(rs2<<20)|(rs1<<15)|(rm<<12)|(rd<<7)|opc
g.c("FCVT.S.D: rounding to single, overflow, underflow, NaNs (result NaN-boxed)")
for a in [B(1.0),B(0.1),B(-0.1),B(1/3),B(3.4028235677973366e38),B(3.4028235e38*1.0000001),B(1e300),B(-1e300),B(1e-300),B(-1e-300),B(1.401298464324817e-45),
          B(7e-46),B(2.0**-149*1.5),B(1.1754942106924411e-38),0,D.signbit,D.inf,D.inf|D.signbit,D.qnan,D.inf|1,D.qnan|0xabcdef,B(16777217.0),B(-16777219.0)]:
    for rm in ([RNE] if a in (0,D.signbit,D.inf,D.inf|D.signbit,D.qnan,D.inf|1,D.qnan|0xabcdef,B(1.0)) else range(5)):
        r,fl=cvt(S,D,a,rm)
        P(f"  TEST_FCVT_FF {N()}, fcvt.s.d, fmv.d.x, {RMN[rm]}, 0x{a:x}, 0x{fl:x}, 0x{r|0xffffffff00000000:x}")
g.c("FCVT.D.S: exact widening, subnormal singles become normal doubles, NaNs canonical")
for a in [BS(1.0),BS(0.1),BS(-3.5),1,0x80000001,0x7fffff,0x00800000,S.maxf,0,S.signbit,S.inf,S.inf|S.signbit,S.qnan,S.inf|1,S.qnan|0x1234,0xffc00001]:
    r,fl=cvt(D,S,a,RNE)
    P(f"  TEST_FCVT_FF0 {N()}, fcvt.d.s, fmv.w.x, 0x{a:x}, 0x{fl:x}, 0x{r:x}")
g.c("FMV.X.D / FMV.D.X: raw 64-bit moves, no canonicalization, no flags")
for v in [0x0123456789abcdef,0x7ff0000000000001,0xfff8000000000123,0x8000000000000000,0xffffffff3f800000]:
    n=N(); P(f"""  CHKNUM {n}
  li a1, 0x{v:x}
  fsflags x0
  fmv.d.x fa0, a1
  fmv.d fa1, fa0
  fmv.x.d a0, fa1
  frflags a3
  ASSERT_EQ a0, 0x{v:x}
  ASSERT_EQ a3, 0""")
g.c("FLD / FSD")
n=N(); P(f"""  CHKNUM {n}
  la a1, ddata
  fld fa0, 0(a1)
  fmv.x.d a0, fa0
  ASSERT_EQ a0, 0x400921fb54442d18
  fld fa1, 8(a1)
  fmv.x.d a0, fa1
  ASSERT_EQ a0, 0x7ff0000000000001
  addi a2, a1, 32
  fsd fa1, -8(a2)
  fsd fa0, 0(a2)
  ld a0, 24(a1)
  ASSERT_EQ a0, 0x7ff0000000000001
  ld a0, 32(a1)
  ASSERT_EQ a0, 0x400921fb54442d18""")
n=N(); P(f"""  CHKNUM {n}  /* fsd of a NaN-boxed single stores all 64 bits; flw after fsd re-reads the low word */
  la a1, ddata
  li a2, 0x40490fdb
  fmv.w.x fa0, a2
  fsd fa0, 16(a1)
  ld a0, 16(a1)
  ASSERT_EQ a0, 0xffffffff40490fdb
  li a2, 0x3ff0000000000000
  sd a2, 16(a1)
  flw fa1, 16(a1)
  fmv.x.d a0, fa1
  ASSERT_EQ a0, 0xffffffff00000000
  flw fa1, 20(a1)
  fmv.x.d a0, fa1
  ASSERT_EQ a0, 0xffffffff3ff00000""")
g.c("dynamic rounding mode for double operations")
for rm in range(5):
    P(f"  fsrmi {rm}")
    for a,b in [(B(0.1),B(1/3)),(B(-0.1),B(-1/3)),(B(1.0),B(2.0**-53))]:
        r,fl=add(D,a,b,rm)
        P(f"  TEST_FOP2 {N()}, fadd.d, dyn, 0x{a:x}, 0x{b:x}, 0x{fl:x}, 0x{r:x}  /* frm = {RMN[rm]} */")
    r,fl=fma(D,B(0.1),B(3.0),B(-0.3),rm)
    P(f"  TEST_FOP3 {N()}, fmadd.d, dyn, 0x{B(0.1):x}, 0x{B(3.0):x}, 0x{B(-0.3):x}, 0x{fl:x}, 0x{r:x}")
    r,fl=to_int(D,B(-2.5),rm,64,1)
    P(f"  TEST_FCVT_IF {N()}, fcvt.l.d, dyn, 0x{B(-2.5):x}, 0x{fl:x}, {h(r)}")
    r,fl=from_int(D,(1<<60)+1,rm)
    P(f"  TEST_FCVT_FI {N()}, fcvt.d.l, dyn, 0x{(1<<60)+1:x}, 0x{fl:x}, 0x{r:x}")
    r,fl=cvt(S,D,B(0.1),rm)
    P(f"  TEST_FCVT_FF {N()}, fcvt.s.d, fmv.d.x, dyn, 0x{B(0.1):x}, 0x{fl:x}, 0x{r|0xffffffff00000000:x}")
P("  fsrmi 0")
g.c("invalid rounding modes")
for rm in [5,6]:
    e=enc(1,11,10,rm,12)
    n=N(); P(f"""  CHKNUM {n}  /* fadd.d fa2, fa0, fa1 with rm = {rm} */
  fmv.d.x fa2, zero
  EXPECT_TRAP
1:
  .4byte 0x{e:08x}
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 1b
  fmv.x.d a0, fa2
  ASSERT_EQ a0, 0""")
n=N(); P(f"""  CHKNUM {n}  /* frm = 7: dynamic-rm double instruction traps */
  fsrmi 7
  EXPECT_TRAP
  fmul.d fa2, fa0, fa1, dyn
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  EXPECT_TRAP
  fcvt.s.d fa2, fa0, dyn
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  fsrmi 0""")
g.c("fflags accrue across double operations")
n=N(); P(f"""  CHKNUM {n}
  fsflags x0
  li a1, 0x{B(1.0):x}
  fmv.d.x fa0, a1
  fmv.d.x fa1, zero
  fdiv.d fa2, fa0, fa1
  li a1, 0x{D.maxf:x}
  fmv.d.x fa3, a1
  fmul.d fa2, fa3, fa3
  frflags a0
  ASSERT_EQ a0, FF_DZ | FF_OF | FF_NX
  li a1, 1
  fmv.d.x fa3, a1
  fmul.d fa2, fa3, fa3
  fsub.d fa2, fa2, fa2
  fadd.d fa2, fa0, fa0
  frflags a0
  ASSERT_EQ a0, FF_DZ | FF_OF | FF_NX | FF_UF
  fsqrt.d fa2, fa4
  fsqrt.d fa2, fa0
  frflags a0
  ASSERT_EQ a0, FF_DZ | FF_OF | FF_NX | FF_UF
  li a1, 0x{B(-1.0):x}
  fmv.d.x fa3, a1
  fsqrt.d fa2, fa3
  frflags a0
  ASSERT_EQ a0, 0x1f
  fsflags x0""")
g.c("all 32 FP registers hold 64 bits independently")
lines=[f"  CHKNUM {N()}"]
for r in range(32): lines.append(f"  li a1, 0x{(0x0123456789abcdef ^ (r*0x1111111111111111))&0xffffffffffffffff:x}\n  fmv.d.x f{r}, a1")
for r in range(32): lines.append(f"  fmv.x.d a0, f{r}\n  ASSERT_EQ a0, 0x{(0x0123456789abcdef ^ (r*0x1111111111111111))&0xffffffffffffffff:x}")
P("\n".join(lines))
g.c("mstatus.FS for double instructions")
n=N(); P(f"""  CHKNUM {n}  /* Initial -> Dirty by fadd.d */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  li t0, MSTATUS_FS_INIT
  csrs mstatus, t0
  fadd.d fa0, fa1, fa2
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_DIRTY | MSTATUS_SD""")
n=N(); P(f"""  CHKNUM {n}  /* Clean -> Dirty by fld */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  li t0, MSTATUS_FS_CLEAN
  csrs mstatus, t0
  la a1, ddata
  fld fa0, 0(a1)
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_DIRTY | MSTATUS_SD""")
P("""  li t0, MSTATUS_FS
  csrc mstatus, t0""")
for ins in ["fadd.d fa0, fa1, fa2","fld fa0, 0(sp)","fsd fa0, 0(sp)","fmv.x.d a0, fa0","fcvt.d.l fa0, zero","fcvt.s.d fa0, fa1","fsqrt.d fa0, fa1","fle.d a0, fa0, fa1"]:
    n=N(); P(f"""  CHKNUM {n}  /* FS = Off: {ins} */
  li a0, 0x1234
  EXPECT_TRAP
1:
  {ins}
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_EQ a0, 0x1234""")
P("""  li t0, MSTATUS_FS_INIT
  csrs mstatus, t0
  ret

  .data
  .align 3
ddata:
  .dword 0x400921fb54442d18
  .dword 0x7ff0000000000001
  .skip 32
""")
open(os.path.join(HERE,'..','rv64d.S'),'w').write('/* Generated by tests/isa/gen/rv64d.py: edit that script, not this file. */\n'+g.text())
print("last",g.n-1)
