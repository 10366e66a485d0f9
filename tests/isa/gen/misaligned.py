# Generates tests/isa/misaligned.S (python3 tests/isa/gen/misaligned.py); expected values
# are computed here, so edit this script rather than the .S file.
import sys, os
HERE=os.path.dirname(os.path.abspath(__file__)); sys.path.insert(0,os.path.dirname(os.path.abspath(__file__)))
from rv import G, h
g=G(2); N=g.num; P=g.raw
SIZE=0x2000+64
pat=bytes(((i*37+0x91)^(i>>8)) & 0xff for i in range(SIZE))
def le(off,w): return int.from_bytes(pat[off:off+w],'little')
def sx(v,w):
    b=8*w
    return v-(1<<b) if v>>(b-1) else v
P('''/*
 * misaligned - misaligned loads and stores in M-mode are performed (ferry
 * does them in hardware; no address-misaligned trap may occur: the default
 * trap handler fails the test with the check number): LH/LHU/LW/LWU/LD,
 * SH/SW/SD, FLW/FSW/FLD/FSD and compressed C.LW/C.LD/C.SW/C.SD/C.FLD/
 * C.FSD, at every misalignment, crossing an 8-byte boundary and a 4 KiB
 * page boundary.  Loaded values are checked byte-exactly (sign/zero
 * extension included); stores must change exactly the addressed bytes.
 * mbuf holds a fixed byte pattern (mbuf[i] = ((37 i + 0x91) ^ (i >> 8)) & 0xff)
 * and starts on a page boundary.
 */
#include "common.h"

/* load \\inst a0, 0(a1) with a1 = mbuf + \\off */
.macro TEST_MLD n, inst, off, exp
  CHKNUM \\n
  la a1, mbuf
  li t0, \\off
  add a1, a1, t0
  \\inst a0, 0(a1)
  ASSERT_EQ a0, \\exp
.endm

/* store \\inst of \\val at sbuf + \\off into 0x5a-filled memory; check the
 * aligned doublewords at sbuf + \\d0 and \\d0 + 8 */
.macro TEST_MST n, inst, off, val, d0, e0, e1
  CHKNUM \\n
  la a1, sbuf
  li t0, \\d0
  add a2, a1, t0
  li t1, 0x5a5a5a5a5a5a5a5a
  sd t1, 0(a2)
  sd t1, 8(a2)
  li t0, \\off
  add a1, a1, t0
  li a3, \\val
  \\inst a3, 0(a1)
  ld a0, 0(a2)
  ASSERT_EQ a0, \\e0
  ld a0, 8(a2)
  ASSERT_EQ a0, \\e1
.endm

  .text
  .globl test_main
test_main:
  li t0, MSTATUS_FS
  csrs mstatus, t0
  CHKNUM 1                     /* mbuf and sbuf are page aligned */
  la a0, mbuf
  slli a0, a0, 52
  ASSERT_EQ a0, 0
  la a0, sbuf
  slli a0, a0, 52
  ASSERT_EQ a0, 0''')
offs=[1,2,3,4,5,6,7,9,13,0x7fe,0xff9,0xffa,0xffb,0xffc,0xffd,0xffe,0xfff,0x1001]
for ins,w,sg in [('lh',2,1),('lhu',2,0),('lw',4,1),('lwu',4,0),('ld',8,1)]:
    g.c(ins.upper())
    for o in offs:
        if o%w==0: continue
        v=le(o,w)
        if sg and w<8: v=sx(v,w)
        P(f"  TEST_MLD {N()}, {ins}, 0x{o:x}, {h(v)}")
def st_exp(off,w,val,d0):
    b=bytearray(b'\x5a'*16)
    vb=(val&((1<<(8*w))-1)).to_bytes(w,'little')
    for k in range(w):
        b[off-d0+k]=vb[k]
    return int.from_bytes(b[:8],'little'),int.from_bytes(b[8:],'little')
for ins,w in [('sh',2),('sw',4),('sd',8)]:
    g.c(ins.upper())
    for o in offs:
        if o%w==0: continue
        d0=(o//8)*8
        if o-d0+w>16: d0+=8
        val=0x8877665544332211 ^ (o*0x0101010101010101 & 0xffffffffffffffff)
        val&=0xffffffffffffffff
        e0,e1=st_exp(o,w,val,d0)
        P(f"  TEST_MST {N()}, {ins}, 0x{o:x}, {h(val)}, 0x{d0:x}, {h(e0)}, {h(e1)}")
g.c("FLW / FLD (no NaN canonicalization: raw bits; FLW NaN-boxes)")
for o in [1,2,3,5,6,0xffd,0xffe,0xfff]:
    v=le(o,4)|0xffffffff00000000
    n=N(); P(f"  CHKNUM {n}\n  la a1, mbuf\n  li t0, 0x{o:x}\n  add a1, a1, t0\n  flw fa0, 0(a1)\n  fmv.x.d a0, fa0\n  ASSERT_EQ a0, {h(v)}")
for o in [1,3,4,7,0xff9,0xffc,0xfff]:
    v=le(o,8)
    n=N(); P(f"  CHKNUM {n}\n  la a1, mbuf\n  li t0, 0x{o:x}\n  add a1, a1, t0\n  fld fa0, 0(a1)\n  fmv.x.d a0, fa0\n  ASSERT_EQ a0, {h(v)}")
g.c("FSW / FSD")
for ins,w,mv in [('fsw',4,'fmv.w.x'),('fsd',8,'fmv.d.x')]:
    for o in [1,2,3,5,0xffa,0xffd,0xfff]:
        if o%w==0: continue
        d0=(o//8)*8
        if o-d0+w>16: d0+=8
        val=(0x7ff123456789abcd if w==8 else 0xff812345) ^ o
        e0,e1=st_exp(o,w,val,d0)
        n=N(); P(f"""  CHKNUM {n}
  la a1, sbuf
  li t0, 0x{d0:x}
  add a2, a1, t0
  li t1, 0x5a5a5a5a5a5a5a5a
  sd t1, 0(a2)
  sd t1, 8(a2)
  li t0, 0x{o:x}
  add a1, a1, t0
  li a3, {h(val)}
  {mv} fa1, a3
  {ins} fa1, 0(a1)
  ld a0, 0(a2)
  ASSERT_EQ a0, {h(e0)}
  ld a0, 8(a2)
  ASSERT_EQ a0, {h(e1)}""")
g.c("compressed loads/stores with a misaligned base register")
for ins,w,sg,off,imm in [('c.lw',4,1,0x3,4),('c.ld',8,1,0x5,8),('c.lw',4,1,0xff9,4),('c.ld',8,1,0xffb,0)]:
    o=off+imm; v=le(o,w)
    if sg and w<8: v=sx(v,w)
    n=N(); P(f"  CHKNUM {n}\n  la a4, mbuf\n  li t0, 0x{off:x}\n  add a4, a4, t0\n  {ins} a0, {imm}(a4)\n  ASSERT_EQ a0, {h(v)}")
n=N(); P(f"  CHKNUM {n}\n  la a4, mbuf\n  addi a4, a4, 0x11\n  c.fld fa0, 8(a4)\n  fmv.x.d a0, fa0\n  ASSERT_EQ a0, {h(le(0x19,8))}")
for ins,w,off,imm in [('c.sw',4,0x7,0),('c.sd',8,0xffd,0),('c.sw',4,0xffe,0)]:
    o=off+imm; d0=(o//8)*8
    if o-d0+w>16: d0+=8
    val=0x0123456789abcdef
    e0,e1=st_exp(o,w,val,d0)
    n=N(); P(f"""  CHKNUM {n}
  la a1, sbuf
  li t0, 0x{d0:x}
  add a2, a1, t0
  li t1, 0x5a5a5a5a5a5a5a5a
  sd t1, 0(a2)
  sd t1, 8(a2)
  li t0, 0x{off:x}
  add a4, a1, t0
  li a5, {h(val)}
  {ins} a5, {imm}(a4)
  ld a0, 0(a2)
  ASSERT_EQ a0, {h(e0)}
  ld a0, 8(a2)
  ASSERT_EQ a0, {h(e1)}""")
b=bytearray(16)
def stb(o,w,v): b[o:o+w]=(v&((1<<(8*w))-1)).to_bytes(w,'little')
def ldb(o,w,sg):
    v=int.from_bytes(b[o:o+w],'little')
    return h(sx(v,w) if sg and w<8 else v)
stb(0,8,0xfedcba9876543210); e1=ldb(0,8,1)
stb(1,4,0xfedcba9876543210); e2=ldb(1,4,1); e3=ldb(2,4,0)
stb(3,2,0xfedcba9876543210); e4=ldb(3,2,1)
n=N(); P(f"""  CHKNUM {n}  /* store then load back at the same misaligned address, all widths */
  la a1, sbuf
  addi a1, a1, 0x7ff
  li a3, 0xfedcba9876543210
  sd a3, 0(a1)
  ld a0, 0(a1)
  ASSERT_EQ a0, {e1}
  sw a3, 1(a1)
  lw a0, 1(a1)
  ASSERT_EQ a0, {e2}
  lwu a0, 2(a1)
  ASSERT_EQ a0, {e3}
  sh a3, 3(a1)
  lh a0, 3(a1)
  ASSERT_EQ a0, {e4}""")
n=N(); P(f"""  CHKNUM {n}  /* no trap was taken at all */
  ASSERT_VAR trap_count, 0""")
P("  ret\n\n  .data\n  .balign 4096\nmbuf:")
for i in range(0,SIZE,16):
    P("  .byte "+", ".join("0x%02x"%b for b in pat[i:i+16]))
P("\n  .bss\n  .balign 4096\nsbuf:\n  .skip 0x2000")
open(os.path.join(HERE,'..','misaligned.S'),'w').write('/* Generated by tests/isa/gen/misaligned.py: edit that script, not this file. */\n'+g.text())
print("last",g.n-1)
