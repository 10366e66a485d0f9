# Helpers of the test generators: 64/32-bit integer semantics of the RV64IM
# operations and G, which numbers checks (skipping 255 and multiples of 256).
M=(1<<64)-1
def s64(x):
    x&=M
    return x-(1<<64) if x>>63 else x
def u64(x): return x&M
def s32(x):
    x&=0xffffffff
    return x-(1<<32) if x>>31 else x
def sext32(x): return u64(s32(x))
def h(x): return "0x%x"%u64(x)
ops={
 'add':lambda a,b:a+b,'sub':lambda a,b:a-b,
 'sll':lambda a,b:u64(a)<<(b&63),'srl':lambda a,b:u64(a)>>(b&63),'sra':lambda a,b:s64(a)>>(b&63),
 'slt':lambda a,b:int(s64(a)<s64(b)),'sltu':lambda a,b:int(u64(a)<u64(b)),
 'xor':lambda a,b:a^b,'or':lambda a,b:a|b,'and':lambda a,b:a&b,
 'addw':lambda a,b:sext32(a+b),'subw':lambda a,b:sext32(a-b),
 'sllw':lambda a,b:sext32((a&0xffffffff)<<(b&31)),'srlw':lambda a,b:sext32((a&0xffffffff)>>(b&31)),
 'sraw':lambda a,b:sext32(s32(a)>>(b&31)),
 'mul':lambda a,b:a*b,'mulh':lambda a,b:(s64(a)*s64(b))>>64,'mulhu':lambda a,b:(u64(a)*u64(b))>>64,
 'mulhsu':lambda a,b:(s64(a)*u64(b))>>64,'mulw':lambda a,b:sext32(a*b),
}
def div(a,b):
    a,b=s64(a),s64(b)
    if b==0: return -1
    if a==-(1<<63) and b==-1: return a
    q=abs(a)//abs(b)
    return q if (a<0)==(b<0) else -q
def rem(a,b):
    a,b=s64(a),s64(b)
    if b==0: return a
    if a==-(1<<63) and b==-1: return 0
    return a-div(a,b)*b
def divu(a,b):
    a,b=u64(a),u64(b)
    return M if b==0 else a//b
def remu(a,b):
    a,b=u64(a),u64(b)
    return a if b==0 else a%b
def divw(a,b):
    a,b=s32(a),s32(b)
    if b==0: return -1
    if a==-(1<<31) and b==-1: return sext32(a)
    q=abs(a)//abs(b); return sext32(q if (a<0)==(b<0) else -q)
def remw(a,b):
    a,b=s32(a),s32(b)
    if b==0: return sext32(a)
    if a==-(1<<31) and b==-1: return 0
    q=abs(a)//abs(b); q= q if (a<0)==(b<0) else -q
    return sext32(a-q*b)
def divuw(a,b):
    a,b=a&0xffffffff,b&0xffffffff
    return M if b==0 else sext32(a//b)
def remuw(a,b):
    a,b=a&0xffffffff,b&0xffffffff
    return sext32(a) if b==0 else sext32(a%b)
ops.update(div=div,rem=rem,divu=divu,remu=remu,divw=divw,remw=remw,divuw=divuw,remuw=remuw)
iops={'addi':'add','slti':'slt','sltiu':'sltu','xori':'xor','ori':'or','andi':'and','slli':'sll','srli':'srl','srai':'sra',
 'addiw':'addw','slliw':'sllw','srliw':'srlw','sraiw':'sraw'}
class G:
    def __init__(s,start): s.n=start; s.out=[]
    def num(s):
        n=s.n; s.n+=1
        if n%256==0 or n==255: n=s.n; s.n+=1
        if n%256==0 or n==255: n=s.n; s.n+=1
        return n
    def rr(s,op,a,b,form='TEST_RR'):
        s.out.append("  %s %d, %s, %s, %s, %s"%(form,s.num(),op,h(ops[op](a,b)),h(a),h(b)))
    def ri(s,op,a,imm):
        s.out.append("  TEST_RI %d, %s, %s, %s, %d"%(s.num(),op,h(ops[iops[op]](a,imm)),h(a),imm))
    def c(s,text): s.out.append("\n  /* %s */"%text)
    def raw(s,t): s.out.append(t)
    def text(s): return "\n".join(s.out)+"\n"
