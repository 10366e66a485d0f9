#!/usr/bin/env python3
# mutate.py FILE.S N... : for each check N, corrupt its first expectation
# (flip bit 0 of the expected value), build into /tmp/ferry-isa-mut, run on
# QEMU virt (or on ferry with FERRY=path/to/ferry), restore the source, and
# print "N exitcode OK" when the run failed with N & 0xff.  Used to show
# that each check can fail.  A check whose only assertion is not an
# ASSERT_*/TEST_* line mutates the next check instead (reported MISMATCH).
#   cd tests/isa && python3 gen/mutate.py rv64i.S 1 2 3
import sys,re,subprocess,os
src=sys.argv[1]; name=os.path.basename(src)[:-2]
orig=open(src).read()
lines=orig.split('\n')
res=[]
for n in map(int,sys.argv[2:]):
    L=list(lines); done=False
    for i,l in enumerate(L):
        m=re.match(r'(\s*)(TEST_\w+|CHECK\w*|FAULT|WORKS)\s+%d\s*,(.*?)(/\*.*)?$'%n,l)
        if m:
            parts=[p.strip() for p in m.group(3).split(',')]
            # expectation position
            kind=m.group(2)
            if kind=='FAULT':
                parts[1]=f"({parts[1]})^1"
            elif kind in ('TEST_RR','TEST_RI','TEST_R','TEST_RR_D1','TEST_RR_D2','TEST_RR_SS','TEST_LD'):
                parts[1]=f"({parts[1]})^1"
            elif kind=='TEST_BR':
                parts[-1]=str(1-int(parts[-1]))
            elif kind in ('CHECK','CHECK_VAR','CHECK_TRAP'):
                parts[-1]=f"({parts[-1]})^1"
            elif kind.startswith('TEST_F'):
                parts[-1]=f"({parts[-1]})^1"  # expected result bits are last
            else:
                parts[-1]=f"({parts[-1]})^1"
            L[i]=m.group(1)+kind+' %d, '%n+', '.join(parts); done=True; break
        if re.match(r'\s*CHKNUM\s+%d\b'%n,l):
            for j in range(i+1,len(L)):
                mm=re.match(r'(\s*)(ASSERT_EQ|ASSERT_VAR|ASSERT_TRAP|ASSERT_NE|ASSERT_MASKED|ASSERT_VAR_ADDR)\s+(.*)$',L[j])
                if mm:
                    parts=[p.strip() for p in mm.group(3).split(',')]
                    parts[-1]=f"({parts[-1]})^1"
                    L[j]=mm.group(1)+mm.group(2)+' '+', '.join(parts); done=True; break
                mm=re.match(r'(\s*)ASSERT_REQ\s+(\w+),\s*(\w+)',L[j])
                if mm:
                    L.insert(j,mm.group(1)+f"xori {mm.group(2)}, {mm.group(2)}, 1"); done=True; break
            break
    if not done: res.append((n,'NOTFOUND')); continue
    open(src,'w').write('\n'.join(L))
    try:
        r=subprocess.run(['make','-s','-C',os.path.dirname(os.path.abspath(src)),'BUILD=/tmp/ferry-isa-mut'],capture_output=True,text=True)
        if r.returncode: res.append((n,'BUILDERR '+r.stderr[-300:])); continue
        if os.environ.get('FERRY'):
            r=subprocess.run(['timeout','20',os.environ['FERRY'],'run','--bios',f'/tmp/ferry-isa-mut/{name}.elf'],capture_output=True,stdin=subprocess.DEVNULL)
        else:
            r=subprocess.run(['timeout','20','qemu-system-riscv64','-M','virt','-m','64M','-nographic','-bios','none','-kernel',f'/tmp/ferry-isa-mut/{name}.elf'],capture_output=True)
        res.append((n,r.returncode, 'OK' if r.returncode==(n&0xff) else 'MISMATCH'))
    finally:
        open(src,'w').write(orig)
for x in res: print(*x)
