# Shared generator of the rv64f / rv64d arithmetic checks (see rv64f.py).
import sys, os, struct; sys.path.insert(0,os.path.dirname(os.path.abspath(__file__)))
from softfp import *
from rv import G, h
RMN=['rne','rtz','rdn','rup','rmm']
def gen(f, path, title):
    isS = f is S
    p = 's' if isS else 'd'
    mvin = 'fmv.w.x' if isS else 'fmv.d.x'
    box = 0xffffffff00000000 if isS else 0
    g=G(1); N=g.num; P=g.raw
    def B(x): return bits_of(f,x)
    def hb(b): return "0x%x"%(b|box)   # expected register content of a float result
    one=B(1.0); two=B(2.0); half=B(0.5); three=B(3.0); m1=B(-1.0); z=0; nz=f.signbit
    pinf=f.inf; ninf=f.inf|f.signbit; qn=f.qnan; nqn=f.qnan|f.signbit
    sn=f.inf|1; qnp=f.qnan|0x123  # sNaN, qNaN with payload
    maxf=f.maxf; nmaxf=f.maxf|f.signbit; minn=1<<f.m; mins=1; maxs=(1<<f.m)-1
    tenth=B(0.1); third=B(1/3); pi=B(3.141592653589793); e_=B(2.718281828459045)
    big=B(1e30 if isS else 1e300); small=B(1e-30 if isS else 1e-300)
    ulp1=(f.bias-f.m)<<f.m          # 2^-m : ulp of 1.0
    halfulp=(f.bias-f.m-1)<<f.m     # 2^-(m+1)
    named={one:'1.0',two:'2.0',half:'0.5',three:'3.0',m1:'-1.0',z:'+0',nz:'-0',pinf:'+inf',ninf:'-inf',qn:'qNaN',nqn:'-qNaN',
           sn:'sNaN',qnp:'qNaN(payload)',maxf:'max',nmaxf:'-max',minn:'min normal',mins:'min subnormal',maxs:'max subnormal',
           tenth:'0.1',third:'1/3',pi:'pi',e_:'e',big:'big',small:'small',ulp1:'ulp(1)',halfulp:'ulp(1)/2'}
    def nm(b): return named.get(b, None)
    def cm(*bs):
        ns=[nm(b) or '.' for b in bs]
        return "  /* "+", ".join(ns)+" */" if any(x!='.' for x in ns) else ""
    P(f'''/*
 * {title}
 * Expected values were computed with an exact rational model of IEEE-754
 * (RISC-V rules: canonical NaN results, tininess detected after rounding,
 * saturating float-to-integer conversions) and checked against QEMU.
 * Every arithmetic check compares the whole result register bits{" (NaN boxing: upper 32 bits all ones)" if isS else ""}
 * and the exact fflags value the single instruction raised.
 */
#include "common.h"

/* \\inst fa2, fa0, fa1, \\rm  with fa0 = \\a, fa1 = \\b */
.macro TEST_FOP2 n, inst, rm, a, b, flags, res
  CHKNUM \\n
  li a1, \\a
  {mvin} fa0, a1
  li a2, \\b
  {mvin} fa1, a2
  fsflags x0
  \\inst fa2, fa0, fa1, \\rm
  frflags a3
  fmv.x.d a0, fa2
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

/* \\inst fa2, fa0, fa1 (no rounding mode: min/max/sign injection) */
.macro TEST_FOP2N n, inst, a, b, flags, res
  CHKNUM \\n
  li a1, \\a
  {mvin} fa0, a1
  li a2, \\b
  {mvin} fa1, a2
  fsflags x0
  \\inst fa2, fa0, fa1
  frflags a3
  fmv.x.d a0, fa2
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

/* \\inst fa2, fa0, \\rm */
.macro TEST_FOP1 n, inst, rm, a, flags, res
  CHKNUM \\n
  li a1, \\a
  {mvin} fa0, a1
  fsflags x0
  \\inst fa2, fa0, \\rm
  frflags a3
  fmv.x.d a0, fa2
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

/* \\inst fa3, fa0, fa1, fa2, \\rm */
.macro TEST_FOP3 n, inst, rm, a, b, c, flags, res
  CHKNUM \\n
  li a1, \\a
  {mvin} fa0, a1
  li a2, \\b
  {mvin} fa1, a2
  li a3, \\c
  {mvin} fa2, a3
  fsflags x0
  \\inst fa3, fa0, fa1, fa2, \\rm
  frflags a3
  fmv.x.d a0, fa3
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

/* \\inst a0, fa0, fa1 (comparisons: integer result) */
.macro TEST_FCMP n, inst, a, b, flags, res
  CHKNUM \\n
  li a1, \\a
  {mvin} fa0, a1
  li a2, \\b
  {mvin} fa1, a2
  li a0, 0x55
  fsflags x0
  \\inst a0, fa0, fa1
  frflags a3
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

/* fclass a0, fa0 */
.macro TEST_FCLASS n, a, res
  CHKNUM \\n
  li a1, \\a
  {mvin} fa0, a1
  fsflags x0
  fclass.{p} a0, fa0
  frflags a3
  ASSERT_EQ a3, 0
  ASSERT_EQ a0, \\res
.endm

/* float -> integer: \\inst a0, fa0, \\rm */
.macro TEST_FCVT_IF n, inst, rm, a, flags, res
  CHKNUM \\n
  li a1, \\a
  {mvin} fa0, a1
  fsflags x0
  \\inst a0, fa0, \\rm
  frflags a3
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

/* integer -> float: \\inst fa0, a1, \\rm */
.macro TEST_FCVT_FI n, inst, rm, ival, flags, res
  CHKNUM \\n
  li a1, \\ival
  fsflags x0
  \\inst fa0, a1, \\rm
  frflags a3
  fmv.x.d a0, fa0
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

/* integer -> float, exact (no rm operand): \\inst fa0, a1 */
.macro TEST_FCVT_FI0 n, inst, ival, flags, res
  CHKNUM \\n
  li a1, \\ival
  fsflags x0
  \\inst fa0, a1
  frflags a3
  fmv.x.d a0, fa0
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

/* float -> float conversion: \\inst fa1, fa0, \\rm; input loaded with \\mv */
.macro TEST_FCVT_FF n, inst, mv, rm, a, flags, res
  CHKNUM \\n
  li a1, \\a
  \\mv fa0, a1
  fsflags x0
  \\inst fa1, fa0, \\rm
  frflags a3
  fmv.x.d a0, fa1
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

/* float -> float conversion without rm operand (exact widening) */
.macro TEST_FCVT_FF0 n, inst, mv, a, flags, res
  CHKNUM \\n
  li a1, \\a
  \\mv fa0, a1
  fsflags x0
  \\inst fa1, fa0
  frflags a3
  fmv.x.d a0, fa1
  ASSERT_EQ a3, \\flags
  ASSERT_EQ a0, \\res
.endm

  .text
  .globl test_main
test_main:
  li t0, MSTATUS_FS
  csrs mstatus, t0
  csrw fcsr, zero''')
    def op2(name, fn, a, b, rm=RNE, inst=None):
        r,fl=fn(a,b,rm)
        P(f"  TEST_FOP2 {N()}, {inst or name+'.'+p}, {RMN[rm]}, 0x{a:x}, 0x{b:x}, 0x{fl:x}, {hb(r)}{cm(a,b)}")
    A=lambda a,b,rm: add(f,a,b,rm); Sb=lambda a,b,rm: add(f,a,b,rm,True)
    Mu=lambda a,b,rm: mul(f,a,b,rm); Dv=lambda a,b,rm: div(f,a,b,rm)
    g.c(f"FADD.{p.upper()}")
    for a,b in [(one,one),(one,two),(one,m1),(m1,one),(tenth,third),(pi,e_),(z,z),(nz,nz),(z,nz),(nz,z),(one,z),(nz,m1),
                (maxf,maxf),(nmaxf,nmaxf),(maxf,nmaxf),(pinf,one),(pinf,pinf),(pinf,ninf),(ninf,maxf),(qn,one),(one,qnp),(sn,one),(one,sn),(nqn,ninf),
                (mins,mins),(maxs,mins),(minn,minn|f.signbit),(one,halfulp),(one,ulp1),(big,small),(minn,mins)]:
        op2('fadd',A,a,b)
    g.c("exact-zero sum is -0 only in RDN")
    op2('fadd',A,one,m1,RDN); op2('fadd',A,one,m1,RUP); op2('fadd',A,nz,nz,RUP); op2('fadd',A,z,nz,RDN)
    g.c(f"FSUB.{p.upper()}")
    for a,b in [(one,one),(one,two),(two,one),(m1,one),(tenth,third),(z,z),(nz,z),(z,nz),(pinf,pinf),(ninf,pinf),(pinf,ninf),(maxf,nmaxf),
                (qn,one),(sn,z),(one,halfulp),(minn,mins),(B(1e10),B(1e-10))]:
        op2('fsub',Sb,a,b)
    op2('fsub',Sb,one,one,RDN); op2('fsub',Sb,nz,z,RNE)
    g.c(f"FMUL.{p.upper()}")
    for a,b in [(one,one),(two,three),(m1,three),(tenth,tenth),(third,three),(z,one),(nz,one),(z,m1),(pinf,two),(pinf,m1),(pinf,z),(z,ninf),
                (maxf,two),(nmaxf,two),(minn,half),(mins,half),(mins,nz),(minn,B(0.75)),(big,big),(small,small),(qn,z),(sn,one),(qnp,pinf),
                (maxs,two),(B(1.5),B(1.5))]:
        op2('fmul',Mu,a,b)
    g.c("tininess is detected after rounding: a product just below the smallest\n     normal that rounds up to it is inexact but does not underflow (RNE);\n     in RTZ it stays subnormal and underflows")
    x=B(1-2.0**-(f.m+2)) ; op2('fmul',Mu,minn,x,RNE); op2('fmul',Mu,minn,x,RTZ); op2('fmul',Mu,minn,x,RUP)
    g.c(f"FDIV.{p.upper()}")
    for a,b in [(one,one),(one,three),(two,three),(m1,three),(one,z),(m1,z),(one,nz),(z,z),(nz,z),(pinf,pinf),(pinf,two),(two,pinf),(m1,pinf),
                (z,one),(nz,three),(qn,z),(z,qn),(sn,two),(maxf,half),(minn,two),(mins,two),(B(6.0),B(-2.0)),(tenth,B(10.0)),(pinf,z)]:
        op2('fdiv',Dv,a,b)
    g.c(f"FSQRT.{p.upper()}")
    for a in [one,B(4.0),two,three,tenth,z,nz,m1,pinf,ninf,qn,sn,qnp,maxf,minn,mins,B(0.25),B(1e-20),B(2.25)]:
        r,fl=sqrt(f,a,RNE); P(f"  TEST_FOP1 {N()}, fsqrt.{p}, rne, 0x{a:x}, 0x{fl:x}, {hb(r)}{cm(a)}")
    for rm in range(5):
        r,fl=sqrt(f,two,rm); P(f"  TEST_FOP1 {N()}, fsqrt.{p}, {RMN[rm]}, 0x{two:x}, 0x{fl:x}, {hb(r)}  /* sqrt(2) {RMN[rm]} */")
    g.c("static rounding modes on inexact results (ties: 1 + ulp/2)")
    for a,b in [(one,halfulp),(m1,halfulp|f.signbit),(B(1.0+2.0**-f.m),halfulp),(one,B(2.0**-(f.m+2))),(m1,B(-(2.0**-(f.m+2)))),
                (tenth,third),(B(-0.1),B(-1/3)),(maxf,maxf),(nmaxf,nmaxf)]:
        for rm in range(5): op2('fadd',A,a,b,rm)
    for rm in range(5): op2('fmul',Mu,mins,half,rm); op2('fdiv',Dv,one,three,rm); op2('fdiv',Dv,m1,three,rm)
    g.c("FMADD / FMSUB / FNMSUB / FNMADD")
    fams=[('fmadd',False,False),('fmsub',False,True),('fnmsub',True,False),('fnmadd',True,True)]
    trip=[(one,one,one),(two,three,one),(B(1.5),B(-2.0),B(0.25)),(tenth,B(10.0),m1),(pinf,one,one),(pinf,z,one),(z,pinf,qn),
          (pinf,one,ninf),(one,one,m1),(z,one,nz),(nz,one,z),(nz,one,nz),(qn,one,one),(one,sn,one),(one,one,sn),(maxf,two,nmaxf),(maxf,maxf,one),
          (mins,half,z),(third,three,m1),(B(1+2.0**-f.m),B(1-2.0**-f.m),m1)]
    for nmi,neg_p,neg_c in fams:
        for a,b,c in trip:
            r,fl=fma(f,a,b,c,RNE,neg_p,neg_c)
            P(f"  TEST_FOP3 {N()}, {nmi}.{p}, rne, 0x{a:x}, 0x{b:x}, 0x{c:x}, 0x{fl:x}, {hb(r)}{cm(a,b,c)}")
        for rm in range(5):
            a,b,c=tenth,third,B(-0.25)
            r,fl=fma(f,a,b,c,rm,neg_p,neg_c)
            P(f"  TEST_FOP3 {N()}, {nmi}.{p}, {RMN[rm]}, 0x{a:x}, 0x{b:x}, 0x{c:x}, 0x{fl:x}, {hb(r)}")
    g.c("fused: (1+u)(1-u) - 1 = -u^2 exactly, which separate mul+add would lose")
    a,b,c=B(1+2.0**-f.m),B(1-2.0**-f.m),m1
    r,fl=fma(f,a,b,c,RNE); assert r!=0
    n=N(); P(f"""  CHKNUM {n}
  li a1, 0x{a:x}
  {mvin} fa0, a1
  li a1, 0x{b:x}
  {mvin} fa1, a1
  li a1, 0x{c:x}
  {mvin} fa2, a1
  fmul.{p} fa3, fa0, fa1
  fadd.{p} fa3, fa3, fa2
  fmv.x.d a0, fa3
  ASSERT_EQ a0, {hb(0)}
  fmadd.{p} fa3, fa0, fa1, fa2
  fmv.x.d a0, fa3
  ASSERT_EQ a0, {hb(r)}""")
    g.c("FMIN / FMAX (-0 < +0, a single NaN operand is ignored, sNaN raises NV)")
    for mnm,ismax in [('fmin',False),('fmax',True)]:
        for a,b in [(one,two),(two,one),(m1,one),(z,nz),(nz,z),(z,z),(qn,one),(one,qn),(qn,qn),(sn,one),(one,sn),(sn,qn),(pinf,maxf),(ninf,nmaxf),(mins,z),(nqn,m1)]:
            r,fl=minmax(f,a,b,ismax)
            P(f"  TEST_FOP2N {N()}, {mnm}.{p}, 0x{a:x}, 0x{b:x}, 0x{fl:x}, {hb(r)}{cm(a,b)}")
    g.c("FSGNJ / FSGNJN / FSGNJX (bitwise: NaNs are not canonicalized, no flags)")
    for mnm,md in [('fsgnj','j'),('fsgnjn','n'),('fsgnjx','x')]:
        for a,b in [(one,m1),(m1,one),(m1,m1),(one,one),(z,nz),(qnp,m1),(sn|f.signbit,one),(pinf,ninf),(B(-3.5),B(-0.0))]:
            P(f"  TEST_FOP2N {N()}, {mnm}.{p}, 0x{a:x}, 0x{b:x}, 0x0, {hb(sgnj(f,a,b,md))}{cm(a,b)}")
    n=N(); P(f"""  CHKNUM {n}  /* fmv / fneg / fabs pseudo-instructions (same register as both sources) */
  li a1, 0x{B(-2.5):x}
  {mvin} fa0, a1
  fneg.{p} fa1, fa0
  fabs.{p} fa2, fa0
  fmv.{p} fa3, fa0
  fmv.x.d a0, fa1
  ASSERT_EQ a0, {hb(B(2.5))}
  fmv.x.d a0, fa2
  ASSERT_EQ a0, {hb(B(2.5))}
  fmv.x.d a0, fa3
  ASSERT_EQ a0, {hb(B(-2.5))}""")
    g.c("FEQ (quiet: NV only for sNaN) / FLT / FLE (signaling: NV for any NaN)")
    for mnm,o in [('feq','eq'),('flt','lt'),('fle','le')]:
        for a,b in [(one,one),(one,two),(two,one),(z,nz),(nz,z),(m1,one),(ninf,pinf),(pinf,pinf),(qn,one),(one,qn),(sn,one),(qn,qn),(mins,z),(nmaxf,ninf)]:
            r,fl=cmp(f,a,b,o)
            P(f"  TEST_FCMP {N()}, {mnm}.{p}, 0x{a:x}, 0x{b:x}, 0x{fl:x}, {r}{cm(a,b)}")
    g.c("FCLASS: all ten classes")
    for a in [ninf,m1,mins|f.signbit,nz,z,mins,one,pinf,sn,qn,nmaxf,maxs,nqn,qnp]:
        P(f"  TEST_FCLASS {N()}, 0x{a:x}, 0x{fclass(f,a):x}{cm(a)}")
    g.c(f"FCVT.W/WU/L/LU.{p.upper()}: rounding, saturation, NaN -> max, 32-bit results sign-extended")
    cvals=[one,m1,B(2.5),B(-2.5),B(3.5),B(0.5),B(-0.5),B(-0.3),z,nz,tenth,B(2147483647.0) if not isS else B(2147483520.0),B(2147483648.0),B(-2147483648.0),B(-2147483904.0 if isS else -2147483649.0),
           B(4294967295.0) if not isS else B(4294967040.0),B(4294967296.0),B(3e9),B(-1.5),B(9.2233720368547758e18),B(-9.2233720368547758e18),B(1.8446744073709552e19),B(1e19),B(1e20),B(-1e20),pinf,ninf,qn,sn,nqn,maxf,mins]
    for ins,w,sg in [('fcvt.w','32',1),('fcvt.wu','32',0),('fcvt.l','64',1),('fcvt.lu','64',0)]:
        for a in cvals:
            r,fl=to_int(f,a,RTZ,int(w),sg)
            P(f"  TEST_FCVT_IF {N()}, {ins}.{p}, rtz, 0x{a:x}, 0x{fl:x}, {h(r)}{cm(a)}")
        for a in [B(2.5),B(-2.5),B(1.5),B(-0.5),B(0.5),B(2.7),B(-2.7)]:
            for rm in range(5):
                r,fl=to_int(f,a,rm,int(w),sg)
                P(f"  TEST_FCVT_IF {N()}, {ins}.{p}, {RMN[rm]}, 0x{a:x}, 0x{fl:x}, {h(r)}")
    g.c(f"FCVT.{p.upper()}.W/WU/L/LU: integer sources (W forms use rs1[31:0] only)")
    for ins,w,sg in [('w',32,1),('wu',32,0),('l',64,1),('lu',64,0)]:
        for v in [0,1,-1,7,-7,0x7fffffff,0x80000000,0xffffffff,0x1ffffff,0x1000001,0x123456789,0xffffffff00000005,0x7fffffffffffffff,0x8000000000000000,0x8000000000000401,0xfffffffffffff801,1<<53|1,(1<<62)+(1<<40)+1]:
            v&=(1<<64)-1
            if w==32: iv=v&0xffffffff; iv=iv-(1<<32) if (sg and iv>>31) else iv
            else: iv=v-(1<<64) if (sg and v>>63) else v
            if w==32 and not isS:
                r,fl=from_int(f,iv,RNE); assert fl==0
                P(f"  TEST_FCVT_FI0 {N()}, fcvt.{p}.{ins}, {h(v)}, 0x{fl:x}, {hb(r)}")
                continue
            for rm in ([RNE] if iv in (0,1,-1,7,-7) else [RNE,RTZ,RDN,RUP,RMM]):
                r,fl=from_int(f,iv,rm)
                P(f"  TEST_FCVT_FI {N()}, fcvt.{p}.{ins}, {RMN[rm]}, {h(v)}, 0x{fl:x}, {hb(r)}")
    return g
