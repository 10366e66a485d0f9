# Reference IEEE-754 binary32/binary64 arithmetic with RISC-V semantics
# (canonical NaN, tininess after rounding, RISC-V conversion saturation).
from fractions import Fraction as Fr
import math
NX,UF,OF,DZ,NV=1,2,4,8,16
RNE,RTZ,RDN,RUP,RMM=0,1,2,3,4
class Fmt:
    def __init__(s,e,m):
        s.e=e; s.m=m; s.bias=(1<<(e-1))-1; s.emin=1-s.bias; s.emax=s.bias; s.w=1+e+m
        s.qnan=(((1<<e)-1)<<m)|(1<<(m-1)); s.expmask=(1<<e)-1
        s.inf=((1<<e)-1)<<m; s.maxf=s.inf-1; s.signbit=1<<(s.w-1)
S=Fmt(8,23); D=Fmt(11,52)
def p2(e): return Fr(2)**e
def decode(f,b):
    sign=(b>>(f.w-1))&1; ex=(b>>f.m)&f.expmask; man=b&((1<<f.m)-1)
    if ex==f.expmask:
        if man==0: return ('inf',sign,None)
        return ('snan' if not (man>>(f.m-1))&1 else 'qnan',sign,None)
    if ex==0:
        if man==0: return ('zero',sign,Fr(0))
        return ('num',sign,Fr(man)*p2(f.emin-f.m))
    return ('num',sign,Fr(man|(1<<f.m))*p2(ex-f.bias-f.m))
def isnan(k): return k[0] in ('snan','qnan')
def zero(f,s): return (s<<(f.w-1))
def inf(f,s): return (s<<(f.w-1))|f.inf
def _dec(rm,sign,n,r):
    if r==0: return 0
    if rm==RNE: return 1 if (r>Fr(1,2) or (r==Fr(1,2) and n&1)) else 0
    if rm==RTZ: return 0
    if rm==RDN: return 1 if sign else 0
    if rm==RUP: return 0 if sign else 1
    if rm==RMM: return 1 if r>=Fr(1,2) else 0
    raise ValueError(rm)
def round_val(f,sign,x,rm):
    """x: positive Fraction (magnitude)."""
    assert x>0
    e=x.numerator.bit_length()-x.denominator.bit_length()
    while p2(e)>x: e-=1
    while p2(e+1)<=x: e+=1
    def rnd(qe):
        v=x/p2(qe); n=v.numerator//v.denominator; r=v-n
        return n+_dec(rm,sign,n,r), r!=0
    nu,_=rnd(e-f.m)
    tiny = nu*p2(e-f.m) < p2(f.emin)
    qe=max(e,f.emin)-f.m
    n,inex=rnd(qe)
    if n==(1<<(f.m+1)): n>>=1; qe+=1
    flags=NX if inex else 0
    if inex and tiny: flags|=UF
    if n==0: return zero(f,sign),flags
    if n<(1<<f.m): return (sign<<(f.w-1))|n, flags
    ex=qe+f.m+f.bias
    if ex>=f.expmask:
        big = rm in (RNE,RMM) or (rm==RUP and not sign) or (rm==RDN and sign)
        return ((sign<<(f.w-1))|(f.inf if big else f.maxf)), OF|NX
    return (sign<<(f.w-1))|(ex<<f.m)|(n-(1<<f.m)), flags
def round_signed(f,v,rm,zsign=0):
    if v==0: return zero(f,zsign),0
    return round_val(f,1 if v<0 else 0,abs(v),rm)
def val(k): return -k[2] if k[1] else k[2]
def nanres(f,*ks):
    fl=NV if any(k[0]=='snan' for k in ks) else 0
    return f.qnan,fl
def add(f,a,b,rm,sub=False):
    A=decode(f,a); B=decode(f,b)
    if sub: B=(B[0],B[1]^1,B[2])
    if isnan(A) or isnan(B): return nanres(f,A,B)
    if A[0]=='inf' and B[0]=='inf':
        if A[1]!=B[1]: return f.qnan,NV
        return inf(f,A[1]),0
    if A[0]=='inf': return inf(f,A[1]),0
    if B[0]=='inf': return inf(f,B[1]),0
    v=val(A)+val(B)
    if v==0:
        if A[0]=='zero' and B[0]=='zero' and A[1]==B[1]: zs=A[1]
        else: zs=1 if rm==RDN else 0
        return zero(f,zs),0
    return round_signed(f,v,rm)
def mul(f,a,b,rm):
    A=decode(f,a); B=decode(f,b); s=A[1]^B[1]
    if isnan(A) or isnan(B): return nanres(f,A,B)
    if (A[0]=='inf' and B[0]=='zero') or (A[0]=='zero' and B[0]=='inf'): return f.qnan,NV
    if A[0]=='inf' or B[0]=='inf': return inf(f,s),0
    if A[0]=='zero' or B[0]=='zero': return zero(f,s),0
    return round_val(f,s,A[2]*B[2],rm)
def div(f,a,b,rm):
    A=decode(f,a); B=decode(f,b); s=A[1]^B[1]
    if isnan(A) or isnan(B): return nanres(f,A,B)
    if A[0]=='inf' and B[0]=='inf': return f.qnan,NV
    if A[0]=='zero' and B[0]=='zero': return f.qnan,NV
    if A[0]=='inf': return inf(f,s),0
    if B[0]=='inf': return zero(f,s),0
    if B[0]=='zero': return inf(f,s),DZ
    if A[0]=='zero': return zero(f,s),0
    return round_val(f,s,A[2]/B[2],rm)
def sqrt(f,a,rm):
    A=decode(f,a)
    if isnan(A): return nanres(f,A)
    if A[0]=='zero': return a,0
    if A[1]: return f.qnan,NV
    if A[0]=='inf': return a,0
    x=A[2]; k=1400
    N=x*p2(2*k); assert N.denominator==1
    N=N.numerator; r=math.isqrt(N)
    if r*r==N: v=Fr(r)/p2(k)
    else: v=(Fr(r)+Fr(1,2))/p2(k)
    return round_val(f,0,v,rm)
def fma(f,a,b,c,rm,negprod=False,negc=False):
    A=decode(f,a); B=decode(f,b); C=decode(f,c)
    inv = (A[0]=='inf' and B[0]=='zero') or (A[0]=='zero' and B[0]=='inf')
    if isnan(A) or isnan(B) or isnan(C) or inv:
        fl=NV if (inv or any(k[0]=='snan' for k in (A,B,C))) else 0
        return f.qnan,fl
    ps=A[1]^B[1]^(1 if negprod else 0); cs=C[1]^(1 if negc else 0)
    pinf = A[0]=='inf' or B[0]=='inf'
    if pinf and C[0]=='inf' and ps!=cs: return f.qnan,NV
    if pinf: return inf(f,ps),0
    if C[0]=='inf': return inf(f,cs),0
    pz = A[0]=='zero' or B[0]=='zero'
    pv = Fr(0) if pz else A[2]*B[2]*(-1 if ps else 1)
    cv = -C[2] if cs else C[2]
    v=pv+cv
    if v==0:
        if pz and C[0]=='zero' and ps==cs: zs=ps
        else: zs=1 if rm==RDN else 0
        return zero(f,zs),0
    return round_signed(f,v,rm)
def minmax(f,a,b,ismax):
    A=decode(f,a); B=decode(f,b)
    fl=NV if (A[0]=='snan' or B[0]=='snan') else 0
    if isnan(A) and isnan(B): return f.qnan,fl
    if isnan(A): return b,fl
    if isnan(B): return a,fl
    va=val(A) if A[0]!='inf' else (-(Fr(10)**400) if A[1] else Fr(10)**400)
    vb=val(B) if B[0]!='inf' else (-(Fr(10)**400) if B[1] else Fr(10)**400)
    if va==vb:
        # zeros of different sign: -0 < +0
        if ismax: return (a if A[1]==0 else b),fl
        return (a if A[1]==1 else b),fl
    if ismax: return (a if va>vb else b),fl
    return (a if va<vb else b),fl
def fval(k):
    if k[0]=='inf': return -(Fr(10)**400) if k[1] else Fr(10)**400
    return val(k)
def cmp(f,a,b,op):
    A=decode(f,a); B=decode(f,b)
    if isnan(A) or isnan(B):
        if op=='eq': return 0,(NV if (A[0]=='snan' or B[0]=='snan') else 0)
        return 0,NV
    va,vb=fval(A),fval(B)
    return int({'eq':va==vb,'lt':va<vb,'le':va<=vb}[op]),0
def fclass(f,a):
    A=decode(f,a); k=A[0]; s=A[1]
    if k=='inf': return 1 if s else 1<<7
    if k=='zero': return 1<<3 if s else 1<<4
    if k=='snan': return 1<<8
    if k=='qnan': return 1<<9
    sub=((a>>f.m)&f.expmask)==0
    if s: return 1<<2 if sub else 1<<1
    return 1<<5 if sub else 1<<6
def to_int(f,a,rm,width,signed):
    A=decode(f,a)
    lo,hi=(-(1<<(width-1)),(1<<(width-1))-1) if signed else (0,(1<<width)-1)
    if isnan(A): r,fl=hi,NV
    elif A[0]=='inf': r,fl=(lo if A[1] else hi),NV
    elif A[0]=='zero': r,fl=0,0
    else:
        x=A[2]; n=x.numerator//x.denominator; rem=x-n
        n+=_dec(rm,A[1],n,rem)
        v=-n if A[1] else n
        if v<lo: r,fl=lo,NV
        elif v>hi: r,fl=hi,NV
        else: r,fl=v,(NX if rem!=0 else 0)
    r&=(1<<width)-1
    if width==32 and (r>>31): r|=0xffffffff00000000   # 32-bit results are sign-extended
    return r,fl
def from_int(f,v,rm):
    if v==0: return 0,0
    return round_signed(f,Fr(v),rm)
def cvt(fd,fs,a,rm):
    A=decode(fs,a)
    if isnan(A): return fd.qnan,(NV if A[0]=='snan' else 0)
    if A[0]=='inf': return inf(fd,A[1]),0
    if A[0]=='zero': return zero(fd,A[1]),0
    return round_val(fd,A[1],A[2],rm)
def sgnj(f,a,b,mode):
    sa=a&f.signbit; sb=b&f.signbit; mag=a&~f.signbit&((1<<f.w)-1)
    if mode=='j': s=sb
    elif mode=='n': s=sb^f.signbit
    else: s=sa^sb
    return mag|s
def bits_of(f,x):
    import struct
    if f is D: return struct.unpack('<Q',struct.pack('<d',x))[0]
    return struct.unpack('<I',struct.pack('<f',x))[0]
