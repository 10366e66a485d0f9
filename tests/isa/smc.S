/*
 * smc - self-modifying code: a function that has already run many times
 * (so the translating CPU holds it, chained into a hot loop) is rewritten
 * with a store and FENCE.I and must run the new instruction; the
 * instruction right after the patching store (same translated block) is
 * replaced; code written into a data buffer, run, rewritten and run again.
 */
#include "common.h"

  .text
  .option norvc
  .globl test_main
test_main:
  addi sp, sp, -16
  sd ra, 0(sp)

  /* The function as written, run often enough to be hot. */
  CHKNUM 1
  li s0, 1000
1:
  call patchme
  addi s0, s0, -1
  bnez s0, 1b
  ASSERT_EQ a0, 1

  /* Its first instruction becomes li a0, 2. */
  CHKNUM 2
  la t0, patchme
  li t1, 0x00200513
  sw t1, 0(t0)
  fence.i
  call patchme
  ASSERT_EQ a0, 2

  /* Again, then in a hot loop. */
  CHKNUM 3
  la t0, patchme
  li t1, 0x00300513
  sw t1, 0(t0)
  fence.i
  li s0, 100
2:
  call patchme
  addi s0, s0, -1
  bnez s0, 2b
  ASSERT_EQ a0, 3

  /* The instruction two after the store, in the same block. */
  CHKNUM 4
  la t0, 3f
  li t1, 0x00700513
  li a0, 0
  sw t1, 0(t0)
  fence.i
3:
  li a0, 4
  ASSERT_EQ a0, 7

  /* Code written into a data buffer, run, rewritten, run again. */
  CHKNUM 5
  la t0, codebuf
  li t1, 0x00900513
  sw t1, 0(t0)
  li t1, 0x00008067
  sw t1, 4(t0)
  fence.i
  jalr t0
  ASSERT_EQ a0, 9
  CHKNUM 6
  la t0, codebuf
  li t1, 0x00b00513
  sw t1, 0(t0)
  fence.i
  jalr t0
  ASSERT_EQ a0, 11

  ld ra, 0(sp)
  addi sp, sp, 16
  ret

  .balign 4
patchme:
  li a0, 1
  ret

  .data
  .balign 8
codebuf:
  .space 64
