/*
 * mmode_basic - smallest possible test: proves that the harness starts the
 * ELF at 0x80000000 in M-mode and sees tohost = 1.  The only checks are
 * that the entry point really is 0x80000000 and that a register holds a
 * value; anything more belongs to the other tests.
 */
#include "common.h"

  .text
  .globl test_main
test_main:
  CHKNUM 1
  la a0, _start
  ASSERT_EQ a0, 0x80000000
  CHKNUM 2
  li a0, 42
  ASSERT_EQ a0, 42
  ret
