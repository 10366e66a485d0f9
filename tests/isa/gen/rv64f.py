# Generates tests/isa/rv64f.S (python3 tests/isa/gen/rv64f.py); expected values
# are computed here, so edit this script rather than the .S file.
import sys, os
HERE=os.path.dirname(os.path.abspath(__file__)); sys.path.insert(0,os.path.dirname(os.path.abspath(__file__)))
from fpgen import *
f=S
g=gen(S,None,"rv64f - the F extension (single precision) on RV64: arithmetic, fused\n * multiply-add, min/max, sign injection, compares, classify, conversions,\n * moves, loads/stores, rounding modes (static rm field and dynamic frm,\n * invalid modes trap), fflags accrual, fcsr/frm/fflags CSRs, NaN boxing\n * and canonical NaNs, and the mstatus.FS / SD state tracking.")
N=g.num; P=g.raw
def B(x): return bits_of(S,x)
def enc(funct7,rs2,rs1,rm,rd,opc=0x53): return (funct7<<25)|(rs2<<20)|(rs1<<15)|(rm<<12)|(rd<<7)|opc
g.c("FMV.X.W sign-extends bit 31; FMV.W.X takes rs1[31:0] and NaN-boxes")
n=N(); P(f"""  CHKNUM {n}
  li a1, 0xbf800000
  fmv.w.x fa0, a1
  fmv.x.w a0, fa0
  ASSERT_EQ a0, 0xffffffffbf800000
  fmv.x.d a0, fa0
  ASSERT_EQ a0, 0xffffffffbf800000""")
n=N(); P(f"""  CHKNUM {n}
  li a1, 0x123456783f800000
  fmv.w.x fa0, a1
  fmv.x.d a0, fa0
  ASSERT_EQ a0, 0xffffffff3f800000
  fmv.x.w a0, fa0
  ASSERT_EQ a0, 0x3f800000""")
n=N(); P(f"""  CHKNUM {n}  /* moves keep signaling NaN payloads and raise no flags */
  fsflags x0
  li a1, 0x7f800001
  fmv.w.x fa0, a1
  fmv.x.w a0, fa0
  frflags a3
  ASSERT_EQ a0, 0x7f800001
  ASSERT_EQ a3, 0""")
g.c("FLW / FSW: boxing on load, exact 4-byte store, offsets, no NaN canonicalization")
n=N(); P(f"""  CHKNUM {n}
  la a1, fdata
  flw fa0, 0(a1)
  fmv.x.d a0, fa0
  ASSERT_EQ a0, 0xffffffff40490fdb
  flw fa1, 4(a1)
  fmv.x.d a0, fa1
  ASSERT_EQ a0, 0xffffffff7f800001""")
n=N(); P(f"""  CHKNUM {n}
  la a1, fdata
  addi a1, a1, 8
  flw fa0, -4(a1)
  li a2, -1
  sd a2, 8(a1)
  fsw fa0, 12(a1)
  ld a0, 8(a1)
  ASSERT_EQ a0, 0x7f800001ffffffff
  flw fa2, -8(a1)
  fsw fa2, 8(a1)
  ld a0, 8(a1)
  ASSERT_EQ a0, 0x7f80000140490fdb""")
n=N(); P(f"""  CHKNUM {n}  /* fsw of a double-holding register stores its low 32 bits */
  la a1, fbuf
  li a2, 0x0123456789abcdef
  fmv.d.x fa0, a2
  sd zero, 0(a1)
  fsw fa0, 0(a1)
  ld a0, 0(a1)
  ASSERT_EQ a0, 0x89abcdef""")
g.c("NaN boxing: a register whose upper 32 bits are not all ones is a canonical NaN to single-precision operations")
def unboxed(upper): return (upper<<32)|B(1.0)
for upper in [0,0xfffffffe,0x7fffffff]:
    n=N(); P(f"""  CHKNUM {n}  /* fadd.s with fa0 = 0x{unboxed(upper):016x} */
  li a1, 0x{unboxed(upper):x}
  fmv.d.x fa0, a1
  li a2, 0x3f800000
  fmv.w.x fa1, a2
  fsflags x0
  fadd.s fa2, fa0, fa1
  frflags a3
  fmv.x.d a0, fa2
  ASSERT_EQ a0, 0xffffffff7fc00000
  ASSERT_EQ a3, 0
  fadd.s fa2, fa1, fa0
  fmv.x.d a0, fa2
  ASSERT_EQ a0, 0xffffffff7fc00000""")
def ub_test(body, checks):
    n=N(); P(f"""  CHKNUM {n}
  li a1, 0x{unboxed(0):x}
  fmv.d.x fa0, a1
  li a2, 0xbf800000
  fmv.w.x fa1, a2
  fsflags x0
{body}
  frflags a3
{checks}""")
ub_test("  fclass.s a0, fa0","  ASSERT_EQ a0, 0x200\n  ASSERT_EQ a3, 0")
ub_test("  fsgnj.s fa2, fa0, fa1\n  fmv.x.d a0, fa2","  ASSERT_EQ a0, 0xffffffffffc00000\n  ASSERT_EQ a3, 0")
ub_test("  fsgnjx.s fa2, fa1, fa0\n  fmv.x.d a0, fa2","  ASSERT_EQ a0, 0xffffffffbf800000\n  ASSERT_EQ a3, 0")
ub_test("  fmin.s fa2, fa0, fa1\n  fmv.x.d a0, fa2","  ASSERT_EQ a0, 0xffffffffbf800000\n  ASSERT_EQ a3, 0")
ub_test("  feq.s a0, fa0, fa0","  ASSERT_EQ a0, 0\n  ASSERT_EQ a3, 0")
ub_test("  flt.s a0, fa0, fa1","  ASSERT_EQ a0, 0\n  ASSERT_EQ a3, FF_NV")
ub_test("  fcvt.w.s a0, fa0, rtz","  ASSERT_EQ a0, 0x7fffffff\n  ASSERT_EQ a3, FF_NV")
ub_test("  fmul.s fa2, fa1, fa0\n  fmv.x.d a0, fa2","  ASSERT_EQ a0, 0xffffffff7fc00000\n  ASSERT_EQ a3, 0")
ub_test("  fmadd.s fa2, fa1, fa1, fa0\n  fmv.x.d a0, fa2","  ASSERT_EQ a0, 0xffffffff7fc00000\n  ASSERT_EQ a3, 0")
ub_test("  fcvt.d.s fa2, fa0\n  fmv.x.d a0, fa2","  ASSERT_EQ a0, 0x7ff8000000000000\n  ASSERT_EQ a3, 0")
ub_test("  fmv.x.w a0, fa0","  ASSERT_EQ a0, 0x3f800000\n  ASSERT_EQ a3, 0")
ub_test("  la a4, fbuf\n  sd zero, 0(a4)\n  fsw fa0, 0(a4)\n  ld a0, 0(a4)","  ASSERT_EQ a0, 0x3f800000\n  ASSERT_EQ a3, 0")
g.c("canonical NaN: a NaN result never propagates an input payload or sign")
for ins,a,b in [('fadd.s',0xffc12345,B(1.0)),('fmul.s',B(2.0),0x7fc00abc),('fsub.s',0xff812345,B(1.0)),('fdiv.s',0x7fffffff,0x7fffffff)]:
    fn={'fadd.s':lambda a,b:add(S,a,b,0),'fmul.s':lambda a,b:mul(S,a,b,0),'fsub.s':lambda a,b:add(S,a,b,0,True),'fdiv.s':lambda a,b:div(S,a,b,0)}[ins]
    r,fl=fn(a,b); assert r==S.qnan
    P(f"  TEST_FOP2 {N()}, {ins}, rne, 0x{a:x}, 0x{b:x}, 0x{fl:x}, 0xffffffff7fc00000")
P(f"  TEST_FOP1 {N()}, fsqrt.s, rne, 0xffc0dead, 0x0, 0xffffffff7fc00000")
P(f"  TEST_FOP3 {N()}, fnmadd.s, rne, 0x3f800000, 0x3f800000, 0xff800001, 0x10, 0xffffffff7fc00000")

g.c("dynamic rounding mode (frm) and static rm overriding it")
cases=[(B(0.1),B(1/3)),(B(-0.1),B(-1/3)),(B(1.0),B(2.0**-24))]
for rm in range(5):
    P(f"  fsrmi {rm}")
    for a,b in cases:
        r,fl=add(S,a,b,rm)
        P(f"  TEST_FOP2 {N()}, fadd.s, dyn, 0x{a:x}, 0x{b:x}, 0x{fl:x}, 0x{r|0xffffffff00000000:x}  /* frm = {RMN[rm]} */")
    r,fl=div(S,B(-1.0),B(3.0),rm)
    P(f"  TEST_FOP2 {N()}, fdiv.s, dyn, 0x{B(-1.0):x}, 0x{B(3.0):x}, 0x{fl:x}, 0x{r|0xffffffff00000000:x}")
    r,fl=to_int(S,B(2.5),rm,32,1)
    P(f"  TEST_FCVT_IF {N()}, fcvt.w.s, dyn, 0x{B(2.5):x}, 0x{fl:x}, {h(r)}")
    r,fl=from_int(S,0x1000001,rm)
    P(f"  TEST_FCVT_FI {N()}, fcvt.s.w, dyn, 0x1000001, 0x{fl:x}, 0x{r|0xffffffff00000000:x}")
P("  fsrmi RM_RUP")
for rm in [RNE,RTZ,RDN,RMM]:
    r,fl=add(S,B(0.1),B(1/3),rm)
    P(f"  TEST_FOP2 {N()}, fadd.s, {RMN[rm]}, 0x{B(0.1):x}, 0x{B(1/3):x}, 0x{fl:x}, 0x{r|0xffffffff00000000:x}  /* static {RMN[rm]} while frm = rup */")
P("  fsrmi 0")

g.c("invalid rounding modes: static rm 5/6 and dynamic with frm 5/6/7 raise illegal instruction")
for rm in [5,6]:
    e=enc(0,11,10,rm,12)
    n=N(); P(f"""  CHKNUM {n}  /* fadd.s fa2, fa0, fa1 with rm = {rm} */
  fmv.w.x fa2, zero
  EXPECT_TRAP
1:
  .4byte 0x{e:08x}
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 1b
  fmv.x.w a0, fa2
  ASSERT_EQ a0, 0""")
for frm in [5,6,7]:
    n=N(); P(f"""  CHKNUM {n}  /* frm = {frm}: dynamic-rm instructions trap, static-rm and rm-less ones do not */
  li a1, 0x3f800000
  fmv.w.x fa0, a1
  fmv.w.x fa1, a1
  fsrmi {frm}
  csrr a0, frm
  ASSERT_EQ a0, {frm}
  EXPECT_TRAP
  fadd.s fa2, fa0, fa1, dyn
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  EXPECT_TRAP
  fcvt.w.s a0, fa0, dyn
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  CLEAR_TRAP
  fadd.s fa2, fa0, fa1, rne
  fmin.s fa3, fa0, fa1
  fsgnj.s fa3, fa0, fa1
  feq.s a0, fa0, fa1
  fmv.x.w a0, fa2
  ASSERT_EQ a0, 0x40000000
  ASSERT_NO_TRAP
  fsrmi 0""")

g.c("fcsr / frm / fflags CSRs")
n=N(); P(f"""  CHKNUM {n}
  csrw fcsr, zero
  csrwi fflags, 0x1f
  csrr a0, fcsr
  ASSERT_EQ a0, 0x1f
  csrwi frm, 3
  csrr a0, fcsr
  ASSERT_EQ a0, 0x7f
  csrr a0, frm
  ASSERT_EQ a0, 3
  csrr a0, fflags
  ASSERT_EQ a0, 0x1f""")
n=N(); P(f"""  CHKNUM {n}  /* fcsr holds 8 bits; fflags 5; frm 3 */
  li a1, 0xfffff
  csrw fcsr, a1
  csrr a0, fcsr
  ASSERT_EQ a0, 0xff
  csrr a0, frm
  ASSERT_EQ a0, 7
  li a1, 0xe5
  csrw fflags, a1
  csrr a0, fflags
  ASSERT_EQ a0, 0x05
  li a1, 0xfa
  csrw frm, a1
  csrr a0, frm
  ASSERT_EQ a0, 2
  csrr a0, fcsr
  ASSERT_EQ a0, 0x45""")
n=N(); P(f"""  CHKNUM {n}  /* swap forms return the old value */
  li a1, 0x3
  fsflags a0, a1
  ASSERT_EQ a0, 0x05
  li a1, 1
  fsrm a0, a1
  ASSERT_EQ a0, 2
  li a1, 0x88
  fscsr a0, a1
  ASSERT_EQ a0, 0x23
  frcsr a0
  ASSERT_EQ a0, 0x88
  fsflagsi a0, 0x10
  ASSERT_EQ a0, 0x08
  fsrmi a0, 0
  ASSERT_EQ a0, 4
  frcsr a0
  ASSERT_EQ a0, 0x10""")
n=N(); P(f"""  CHKNUM {n}  /* csrrs / csrrc on fflags */
  csrw fcsr, zero
  csrrsi a0, fflags, 0x6
  ASSERT_EQ a0, 0
  csrrsi a0, fflags, 0x11
  ASSERT_EQ a0, 0x6
  csrrci a0, fflags, 0x2
  ASSERT_EQ a0, 0x17
  csrr a0, fflags
  ASSERT_EQ a0, 0x15
  csrw fcsr, zero""")
g.c("fflags accrue: each exception sets its bit, nothing clears them")
def fl_seq(n, steps, exp):
    P(f"  CHKNUM {n}\n  fsflags x0")
    for ins,a,b in steps:
        P(f"  li a1, 0x{a:x}\n  fmv.w.x fa0, a1\n  li a2, 0x{b:x}\n  fmv.w.x fa1, a2\n  {ins} fa2, fa0, fa1")
    P(f"  frflags a0\n  ASSERT_EQ a0, {exp}")
fl_seq(N(),[('fdiv.s',B(1.0),0)],"FF_DZ")
fl_seq(N(),[('fdiv.s',B(1.0),0),('fadd.s',B(0.1),B(1/3))],"FF_DZ | FF_NX")
fl_seq(N(),[('fadd.s',B(0.1),B(1/3)),('fadd.s',B(1.0),B(1.0))],"FF_NX")
fl_seq(N(),[('fmul.s',S.maxf,B(2.0)),('fadd.s',B(1.0),B(1.0))],"FF_OF | FF_NX")
fl_seq(N(),[('fmul.s',1,B(0.5))],"FF_UF | FF_NX")
fl_seq(N(),[('fadd.s',S.inf|1,B(1.0))],"FF_NV")
fl_seq(N(),[('fadd.s',S.inf,S.inf|S.signbit)],"FF_NV")
fl_seq(N(),[('fmul.s',1,B(0.5)),('fdiv.s',B(1.0),0),('fmul.s',S.maxf,S.maxf),('fmul.s',S.inf,0)],"0x1f")
n=N(); P(f"""  CHKNUM {n}  /* flags stay set across exception-free instructions and moves */
  csrwi fflags, 0x1f
  li a1, 0x3f800000
  fmv.w.x fa0, a1
  fadd.s fa1, fa0, fa0
  fmv.x.w a0, fa1
  fsgnj.s fa2, fa1, fa0
  flt.s a0, fa0, fa1
  frflags a0
  ASSERT_EQ a0, 0x1f
  fsflags x0""")
g.c("all 32 FP registers are distinct")
lines=[f"  CHKNUM {N()}"]
for r in range(32): lines.append(f"  li a1, 0x{0x3f800000+r*0x10000:x}\n  fmv.w.x f{r}, a1")
for r in range(32): lines.append(f"  fmv.x.w a0, f{r}\n  ASSERT_EQ a0, 0x{0x3f800000+r*0x10000:x}")
P("\n".join(lines))
n=N(); P(f"""  CHKNUM {n}  /* same register as source and destination, and f0/f31 as operands */
  li a1, 0x40400000
  fmv.w.x f0, a1
  li a1, 0x40000000
  fmv.w.x f31, a1
  fmul.s f0, f0, f31
  fadd.s f31, f31, f0
  fmv.x.w a0, f31
  ASSERT_EQ a0, 0x41000000""")

g.c("mstatus.FS: FP state changes make it Dirty (and SD = 1); with FS = Off FP instructions and CSRs are illegal")
n=N(); P(f"""  CHKNUM {n}  /* Initial -> Dirty by an FP arithmetic instruction */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  li t0, MSTATUS_FS_INIT
  csrs mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS, MSTATUS_FS_INIT
  bltz a0, fail
  fadd.s fa0, fa1, fa2
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS, MSTATUS_FS_DIRTY
  ASSERT_MASKED a0, MSTATUS_SD, MSTATUS_SD""")
n=N(); P(f"""  CHKNUM {n}  /* Clean -> Dirty by an FP load */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  li t0, MSTATUS_FS_CLEAN
  csrs mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_CLEAN
  la a1, fdata
  flw fa0, 0(a1)
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_DIRTY | MSTATUS_SD""")
n=N(); P(f"""  CHKNUM {n}  /* Clean -> Dirty by fmv.w.x */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  li t0, MSTATUS_FS_CLEAN
  csrs mstatus, t0
  fmv.w.x fa0, zero
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_DIRTY | MSTATUS_SD""")
n=N(); P(f"""  CHKNUM {n}  /* Initial -> Dirty by writing fflags */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  li t0, MSTATUS_FS_INIT
  csrs mstatus, t0
  csrwi fflags, 1
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_DIRTY | MSTATUS_SD
  csrwi fflags, 0""")
n=N(); P(f"""  CHKNUM {n}  /* an instruction that only accrues fflags (feq.s on a sNaN) with FS = Clean.
     That this makes FS Dirty (fflags is FP state) is checked only with STRICT_SPEC:
     QEMU 7.2 leaves FS Clean here. */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  li t0, MSTATUS_FS_CLEAN
  csrs mstatus, t0
  feq.s a0, fa0, fa0
  li a1, 0x7f800001
  fmv.w.x fa0, a1
  li t0, MSTATUS_FS
  csrc mstatus, t0
  li t0, MSTATUS_FS_CLEAN
  csrs mstatus, t0
  feq.s a0, fa0, fa0
  csrr a0, mstatus
#ifdef STRICT_SPEC
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_DIRTY | MSTATUS_SD
#endif
  frflags a0
  ASSERT_EQ a0, FF_NV
  fsflags x0""")
n=N(); P(f"""  CHKNUM {n}  /* writing FS = Dirty directly sets SD; SD itself is read-only */
  li t0, MSTATUS_FS
  csrs mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, MSTATUS_FS_DIRTY | MSTATUS_SD
  li t0, MSTATUS_FS | MSTATUS_SD
  csrc mstatus, t0
  li t0, MSTATUS_SD
  csrs mstatus, t0
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, 0
  li t0, MSTATUS_FS_INIT
  csrs mstatus, t0""")
P("""  /* FS = Off from here until re-enabled */
  li a1, 0x40490fdb
  fmv.w.x fa0, a1
  li t0, MSTATUS_FS
  csrc mstatus, t0""")
for ins in ["fadd.s fa0, fa1, fa2","fmv.w.x fa0, zero","fmv.x.w a0, fa1","flw fa0, 0(sp)","fsw fa0, 0(sp)","fcvt.s.w fa0, zero","fmadd.s fa0, fa1, fa1, fa1","feq.s a0, fa1, fa1","fclass.s a0, fa1",
            "fld fa0, 0(sp)","fmv.d.x fa0, zero","csrr a0, fflags","csrr a0, frm","csrr a0, fcsr","csrwi fflags, 1","fsflags x0"]:
    n=N(); P(f"""  CHKNUM {n}  /* FS = Off: {ins} */
  li a0, 0x1234
  EXPECT_TRAP
1:
  {ins}
  ASSERT_TRAP CAUSE_ILLEGAL_INSN
  ASSERT_VAR_ADDR trap_epc, 1b
  ASSERT_EQ a0, 0x1234""")
n=N(); P(f"""  CHKNUM {n}  /* the trapping instructions changed no FP state; FS is still Off, SD = 0 */
  csrr a0, mstatus
  ASSERT_MASKED a0, MSTATUS_FS | MSTATUS_SD, 0
  li t0, MSTATUS_FS_INIT
  csrs mstatus, t0
  fmv.x.w a0, fa0
  ASSERT_EQ a0, 0x40490fdb
  frflags a0
  ASSERT_EQ a0, 0""")
P("""  ret

  .data
  .align 3
fdata:
  .word 0x40490fdb
  .word 0x7f800001
  .skip 24
  .bss
  .align 3
fbuf:
  .skip 16
""")
open(os.path.join(HERE,'..','rv64f.S'),'w').write('/* Generated by tests/isa/gen/rv64f.py: edit that script, not this file. */\n'+g.text())
print("last",g.n-1)
