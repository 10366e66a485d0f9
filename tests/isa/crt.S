/*
 * crt.S - start-up, default trap handler and HTIF reporting shared by
 * every ferry ISA test.  Linked first, so _start is at 0x80000000.
 *
 * _start sets up M-mode (mtvec = trap_entry, mscratch = trap frame, stack,
 * FS = Initial, fcsr = 0, no delegation, no paging, no interrupts enabled,
 * mtimecmp = -1, msip = 0, PMP entry 0 = whole address space RWX so that
 * S/U-mode may access memory) and calls test_main.  Returning from
 * test_main passes.
 *
 * trap_entry (M-mode, direct) records mcause/mepc/mtval/mstatus into
 * trap_cause/trap_epc/trap_tval/trap_mstatus and counts traps in
 * trap_count.  A trap that is not announced with EXPECT_TRAP fails the
 * test with the current check number.  Then:
 *   - interrupts: the source is cleared (MTI: mtimecmp = -1; MSI: msip = 0;
 *     SSI/STI/SEI: the mip bit is cleared) and execution resumes at mepc;
 *   - exceptions: if RESUME_AT gave an address, execution continues there
 *     in the privilege given to it; otherwise the faulting instruction
 *     (read from mepc as a physical address) is skipped.
 */
#include "common.h"

  .section .text.init, "ax", @progbits
  .option norvc
  .globl _start
_start:
  li x1, 0
  li x3, 0
  li x4, 0
  li x8, 0
  li x9, 0
  la t0, trap_entry
  csrw mtvec, t0
  la sp, stack_top
  la t0, trap_frame
  csrw mscratch, t0

  /* zero .bss */
  la t0, _bss_start
  la t1, _bss_end
1:
  bgeu t0, t1, 2f
  sd zero, 0(t0)
  addi t0, t0, 8
  j 1b
2:
  li t0, NO_TRAP
  la t1, trap_cause
  sd t0, 0(t1)

  /* PMP entry 0: NAPOT covering everything, RWX.  Tolerate an
   * implementation without PMP CSRs (the writes are then skipped). */
  la t0, skip_trap
  csrw mtvec, t0
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
  la t0, trap_entry
  csrw mtvec, t0

  /* machine state */
  csrw mie, zero
  csrw mip, zero
  csrw medeleg, zero
  csrw mideleg, zero
  csrw satp, zero
  li t0, MSTATUS_MIE | MSTATUS_SIE | MSTATUS_MPIE | MSTATUS_SPIE | MSTATUS_MPP | MSTATUS_SPP | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR | MSTATUS_FS
  csrc mstatus, t0
  li t0, MSTATUS_FS_INIT
  csrs mstatus, t0
  csrw fcsr, zero

  /* CLINT: no timer or software interrupt pending */
  li t0, CLINT_MTIMECMP
  li t1, -1
  sd t1, 0(t0)
  li t0, CLINT_MSIP
  sw zero, 0(t0)

  li gp, 0
  call test_main
  j pass

/* Skip the trapping (4-byte) instruction; used only during start-up. */
  .align 2
skip_trap:
  csrr t0, mepc
  addi t0, t0, 4
  csrw mepc, t0
  mret

  .text
  .option norvc

/* ---- reporting ---- */
  .globl pass
pass:
  fence
  li t0, 1
  la t1, tohost
  sd t0, 0(t1)
  /* Not reached on an HTIF host (ferry, QEMU spike).  On a machine
   * without HTIF (QEMU virt) the test/syscon device ends the run. */
  li t0, 0x5555
  li t1, SYSCON_BASE
  sw t0, 0(t1)
1:
  j 1b

  .globl fail
fail:
  fence
  mv t0, gp
  bnez t0, 1f
  li t0, 255           /* failure before the first check */
1:
  slli t2, t0, 1
  ori t2, t2, 1
  la t1, tohost
  sd t2, 0(t1)
  /* no HTIF: syscon FAIL with the code in bits 31:16 */
  slli t0, t0, 16
  li t1, 0x3333
  or t0, t0, t1
  li t1, SYSCON_BASE
  sw t0, 0(t1)
2:
  j 2b

/* ---- default M-mode trap handler ---- */
  .align 6
  .globl trap_entry
trap_entry:
  csrrw sp, mscratch, sp
  sd t0, 0(sp)
  sd t1, 8(sp)
  sd t2, 16(sp)

  csrr t0, mcause
  la t1, trap_cause
  sd t0, 0(t1)
  csrr t2, mepc
  la t1, trap_epc
  sd t2, 0(t1)
  csrr t2, mtval
  la t1, trap_tval
  sd t2, 0(t1)
  csrr t2, mstatus
  la t1, trap_mstatus
  sd t2, 0(t1)
  la t1, trap_count
  ld t2, 0(t1)
  addi t2, t2, 1
  sd t2, 0(t1)

  /* was a trap expected? (one-shot) */
  la t1, trap_expected
  ld t2, 0(t1)
  beqz t2, trap_unexpected
  sd zero, 0(t1)

  bltz t0, trap_interrupt

  /* exception: resume address given? */
  la t1, trap_resume
  ld t2, 0(t1)
  beqz t2, trap_skip
  sd zero, 0(t1)
  csrw mepc, t2
  la t1, trap_resume_mode
  ld t2, 0(t1)
  andi t2, t2, 3
  slli t2, t2, 11
  li t1, MSTATUS_MPP
  csrc mstatus, t1
  csrs mstatus, t2
  j trap_return

trap_skip:
  csrr t1, mepc
  lhu t2, 0(t1)
  andi t2, t2, 3
  addi t1, t1, 2
  li t0, 3
  bne t2, t0, 1f
  addi t1, t1, 2
1:
  csrw mepc, t1
  j trap_return

trap_interrupt:
  slli t0, t0, 1
  srli t0, t0, 1
  li t1, IRQ_M_TIMER
  bne t0, t1, 1f
  li t1, CLINT_MTIMECMP
  li t2, -1
  sd t2, 0(t1)
  j trap_return
1:
  li t1, IRQ_M_SOFT
  bne t0, t1, 1f
  li t1, CLINT_MSIP
  sw zero, 0(t1)
  j trap_return
1:
  li t1, IRQ_S_SOFT
  bne t0, t1, 1f
  csrci mip, MIP_SSIP
  j trap_return
1:
  li t1, IRQ_S_TIMER
  bne t0, t1, 1f
  li t1, MIP_STIP
  csrc mip, t1
  j trap_return
1:
  li t1, IRQ_S_EXT
  bne t0, t1, trap_unexpected
  li t1, MIP_SEIP
  csrc mip, t1

trap_return:
  ld t0, 0(sp)
  ld t1, 8(sp)
  ld t2, 16(sp)
  csrrw sp, mscratch, sp
  mret

trap_unexpected:
  j fail

/* ---- data ---- */
  .section .tohost, "aw", @progbits
  .align 6
  .globl tohost
tohost:
  .dword 0
  .size tohost, 8
  .globl fromhost
fromhost:
  .dword 0
  .size fromhost, 8

  .bss
  .align 3
  .globl trap_cause, trap_epc, trap_tval, trap_mstatus, trap_count
  .globl trap_expected, trap_resume, trap_resume_mode
trap_cause:       .dword 0
trap_epc:         .dword 0
trap_tval:        .dword 0
trap_mstatus:     .dword 0
trap_count:       .dword 0
trap_expected:    .dword 0
trap_resume:      .dword 0
trap_resume_mode: .dword 0
  .align 4
  .globl trap_frame
trap_frame:
  .skip 256
  .align 4
stack:
  .skip 16384
  .globl stack_top
stack_top:
