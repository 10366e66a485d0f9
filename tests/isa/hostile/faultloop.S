/*
 * faultloop: a hostile bare-metal guest (issue 13). It is not a pass/fail
 * ISA test: it never ends by itself. tests/cli/test_trap_storm.py runs it
 * to check that a guest caught in a trap storm cannot make ferry ignore
 * SIGTERM, SIGINT or Ctrl-A x.
 *
 * From M-mode it delegates every exception to S-mode, points stvec at an
 * address that no page table maps, enables Sv39 with an empty root table
 * and drops to S-mode. Every fetch then takes an instruction page fault
 * whose handler fetch faults again, forever, without retiring a single
 * instruction. Before that it prints "faultloop: storm" on the UART, so a
 * test knows when the storm has begun.
 */
  .section .text.init, "ax", @progbits
  .globl _start
_start:
  /* The UART's transmit register (ns16550 at 0x10000000, virt map). */
  li t0, 0x10000000
  la t1, banner
1:
  lbu t2, 0(t1)
  beqz t2, 2f
  sb t2, 0(t0)
  addi t1, t1, 1
  j 1b
2:
  /* PMP entry 0: everything RWX, so S-mode is not stopped by PMP. */
  la t0, 3f
  csrw mtvec, t0
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
3:
  li t0, -1
  csrw medeleg, t0
  li t0, 0x1000             /* stvec: nothing maps it */
  csrw stvec, t0
  la t0, root_table         /* Sv39 (mode 8), all entries invalid */
  srli t0, t0, 12
  li t1, 8
  slli t1, t1, 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li t0, 0x1800             /* mstatus.MPP = S */
  csrc mstatus, t0
  li t0, 0x0800
  csrs mstatus, t0
  la t0, _start             /* where S-mode starts: unmapped now */
  csrw mepc, t0
  mret

  .section .rodata
banner:
  .asciz "faultloop: storm\r\n"

  .section .bss
  .balign 4096
root_table:
  .zero 4096
