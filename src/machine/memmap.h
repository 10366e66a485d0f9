/* The QEMU `virt` memory map that ferry's machine follows. */
#ifndef FERRY_MACHINE_MEMMAP_H
#define FERRY_MACHINE_MEMMAP_H

#define MEMMAP_BOOTROM_BASE  0x1000ull
#define MEMMAP_BOOTROM_SIZE  0x1000ull
#define MEMMAP_SYSCON_BASE   0x100000ull
#define MEMMAP_SYSCON_SIZE   0x1000ull
#define MEMMAP_ACLINT_BASE   0x2000000ull
#define MEMMAP_ACLINT_SIZE   0x10000ull
#define MEMMAP_PLIC_BASE     0xc000000ull
#define MEMMAP_PLIC_SIZE     0x600000ull
#define MEMMAP_UART0_BASE    0x10000000ull
#define MEMMAP_UART0_SIZE    0x100ull
#define MEMMAP_UART0_IRQ     10
#define MEMMAP_VIRTIO_BASE   0x10001000ull
#define MEMMAP_VIRTIO_STRIDE 0x1000ull
#define MEMMAP_VIRTIO_SLOTS  8
#define MEMMAP_VIRTIO_IRQ0   1   /* slot i uses PLIC source 1 + i */
#define MEMMAP_RAM_BASE      0x80000000ull

#define UART0_CLOCK_HZ 3686400

#endif
