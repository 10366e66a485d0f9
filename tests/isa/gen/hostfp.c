#include <stdio.h>
#include <fenv.h>
#include <math.h>
#include <string.h>
#include <stdint.h>
#pragma STDC FENV_ACCESS ON
int main(void){
  char op[16]; int prec, rm; unsigned long long a,b,c;
  int rms[]={FE_TONEAREST,FE_TOWARDZERO,FE_DOWNWARD,FE_UPWARD};
  while(scanf("%15s %d %d %llx %llx %llx",op,&prec,&rm,&a,&b,&c)==6){
    fesetround(rms[rm]); feclearexcept(FE_ALL_EXCEPT);
    unsigned long long r;
    if(prec==64){ double x,y,z,o; memcpy(&x,&a,8);memcpy(&y,&b,8);memcpy(&z,&c,8);
      volatile double vx=x,vy=y,vz=z;
      if(!strcmp(op,"add"))o=vx+vy; else if(!strcmp(op,"mul"))o=vx*vy; else if(!strcmp(op,"div"))o=vx/vy;
      else if(!strcmp(op,"sqrt"))o=sqrt(vx); else o=fma(vx,vy,vz);
      memcpy(&r,&o,8);
    } else { float x,y,z,o; uint32_t t; t=a;memcpy(&x,&t,4);t=b;memcpy(&y,&t,4);t=c;memcpy(&z,&t,4);
      volatile float vx=x,vy=y,vz=z;
      if(!strcmp(op,"add"))o=vx+vy; else if(!strcmp(op,"mul"))o=vx*vy; else if(!strcmp(op,"div"))o=vx/vy;
      else if(!strcmp(op,"sqrt"))o=sqrtf(vx); else o=fmaf(vx,vy,vz);
      memcpy(&t,&o,4); r=t;}
    int e=fetestexcept(FE_ALL_EXCEPT), f=0;
    if(e&FE_INEXACT)f|=1; if(e&FE_UNDERFLOW)f|=2; if(e&FE_OVERFLOW)f|=4; if(e&FE_DIVBYZERO)f|=8; if(e&FE_INVALID)f|=16;
    printf("%llx %d\n",r,f);
  }
}
