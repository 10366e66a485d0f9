/* Architectural constants from the RISC-V unprivileged and privileged specs. */
#ifndef FERRY_CPU_RISCV_H
#define FERRY_CPU_RISCV_H

enum { PRIV_U = 0, PRIV_S = 1, PRIV_M = 3 };

/* mstatus / sstatus */
#define MSTATUS_SIE   (1ull << 1)
#define MSTATUS_MIE   (1ull << 3)
#define MSTATUS_SPIE  (1ull << 5)
#define MSTATUS_UBE   (1ull << 6)
#define MSTATUS_MPIE  (1ull << 7)
#define MSTATUS_SPP   (1ull << 8)
#define MSTATUS_MPP   (3ull << 11)
#define MSTATUS_MPP_SHIFT 11
#define MSTATUS_FS    (3ull << 13)
#define MSTATUS_FS_SHIFT 13
#define MSTATUS_XS    (3ull << 15)
#define MSTATUS_MPRV  (1ull << 17)
#define MSTATUS_SUM   (1ull << 18)
#define MSTATUS_MXR   (1ull << 19)
#define MSTATUS_TVM   (1ull << 20)
#define MSTATUS_TW    (1ull << 21)
#define MSTATUS_TSR   (1ull << 22)
#define MSTATUS_UXL   (3ull << 32)
#define MSTATUS_SXL   (3ull << 34)
#define MSTATUS_SD    (1ull << 63)

#define FS_OFF     0
#define FS_INITIAL 1
#define FS_CLEAN   2
#define FS_DIRTY   3

/* Interrupt bits (mip/mie) and numbers */
#define IRQ_SSI 1
#define IRQ_MSI 3
#define IRQ_STI 5
#define IRQ_MTI 7
#define IRQ_SEI 9
#define IRQ_MEI 11
#define MIP_SSIP (1ull << IRQ_SSI)
#define MIP_MSIP (1ull << IRQ_MSI)
#define MIP_STIP (1ull << IRQ_STI)
#define MIP_MTIP (1ull << IRQ_MTI)
#define MIP_SEIP (1ull << IRQ_SEI)
#define MIP_MEIP (1ull << IRQ_MEI)
#define CAUSE_INTERRUPT (1ull << 63)

/* Exception causes */
#define CAUSE_MISALIGNED_FETCH    0
#define CAUSE_FETCH_ACCESS        1
#define CAUSE_ILLEGAL_INSN        2
#define CAUSE_BREAKPOINT          3
#define CAUSE_MISALIGNED_LOAD     4
#define CAUSE_LOAD_ACCESS         5
#define CAUSE_MISALIGNED_STORE    6
#define CAUSE_STORE_ACCESS        7
#define CAUSE_ECALL_U             8
#define CAUSE_ECALL_S             9
#define CAUSE_ECALL_M             11
#define CAUSE_FETCH_PAGE_FAULT    12
#define CAUSE_LOAD_PAGE_FAULT     13
#define CAUSE_STORE_PAGE_FAULT    15

/* CSR numbers */
#define CSR_FFLAGS     0x001
#define CSR_FRM        0x002
#define CSR_FCSR       0x003
#define CSR_CYCLE      0xc00
#define CSR_TIME       0xc01
#define CSR_INSTRET    0xc02
#define CSR_SSTATUS    0x100
#define CSR_SIE        0x104
#define CSR_STVEC      0x105
#define CSR_SCOUNTEREN 0x106
#define CSR_SENVCFG    0x10a
#define CSR_SSCRATCH   0x140
#define CSR_SEPC       0x141
#define CSR_SCAUSE     0x142
#define CSR_STVAL      0x143
#define CSR_SIP        0x144
#define CSR_STIMECMP   0x14d
#define CSR_SATP       0x180
#define CSR_MVENDORID  0xf11
#define CSR_MARCHID    0xf12
#define CSR_MIMPID     0xf13
#define CSR_MHARTID    0xf14
#define CSR_MCONFIGPTR 0xf15
#define CSR_MSTATUS    0x300
#define CSR_MISA       0x301
#define CSR_MEDELEG    0x302
#define CSR_MIDELEG    0x303
#define CSR_MIE        0x304
#define CSR_MTVEC      0x305
#define CSR_MCOUNTEREN 0x306
#define CSR_MENVCFG    0x30a
#define CSR_MCOUNTINHIBIT 0x320
#define CSR_MSCRATCH   0x340
#define CSR_MEPC       0x341
#define CSR_MCAUSE     0x342
#define CSR_MTVAL      0x343
#define CSR_MIP        0x344
#define CSR_PMPCFG0    0x3a0
#define CSR_PMPCFG2    0x3a2
#define CSR_PMPADDR0   0x3b0
#define CSR_MCYCLE     0xb00
#define CSR_MINSTRET   0xb02
#define CSR_TSELECT    0x7a0
#define CSR_TDATA1     0x7a1
#define CSR_TDATA2     0x7a2
#define CSR_TDATA3     0x7a3
#define CSR_TINFO      0x7a4

/* menvcfg / senvcfg (senvcfg has no STCE) */
#define ENVCFG_FIOM        (1ull << 0)
#define ENVCFG_CBIE_SHIFT  4
#define ENVCFG_CBIE        (3ull << 4)   /* 00 illegal, 01 flush, 11 invalidate */
#define ENVCFG_CBIE_FLUSH  1ull
#define ENVCFG_CBIE_INVAL  3ull
#define ENVCFG_CBCFE       (1ull << 6)
#define ENVCFG_CBZE        (1ull << 7)
#define MENVCFG_STCE       (1ull << 63)

/* mcounteren / scounteren bit of the time CSR (also gates stimecmp) */
#define COUNTEREN_TM (1ull << 1)

/* Zicbom / Zicboz cache-block size (riscv,cbom-block-size in the device
 * tree): cbo.zero clears this many bytes. */
#define CACHE_BLOCK_SIZE 64

/* PMP entries implemented (pmpcfg0/pmpcfg2, pmpaddr0..15). */
#define PMP_ENTRIES 16

/* satp */
#define SATP_MODE_SHIFT 60
#define SATP_MODE_BARE 0
#define SATP_MODE_SV39 8
#define SATP_MODE_SV48 9
#define SATP_PPN_MASK ((1ull << 44) - 1)

/* PTE bits */
#define PTE_V (1u << 0)
#define PTE_R (1u << 1)
#define PTE_W (1u << 2)
#define PTE_X (1u << 3)
#define PTE_U (1u << 4)
#define PTE_G (1u << 5)
#define PTE_A (1u << 6)
#define PTE_D (1u << 7)

/* fflags */
#define FFLAG_NX 0x01 /* inexact */
#define FFLAG_UF 0x02 /* underflow */
#define FFLAG_OF 0x04 /* overflow */
#define FFLAG_DZ 0x08 /* divide by zero */
#define FFLAG_NV 0x10 /* invalid */

/* Rounding modes */
#define RM_RNE 0
#define RM_RTZ 1
#define RM_RDN 2
#define RM_RUP 3
#define RM_RMM 4
#define RM_DYN 7

/* Timebase of mtime / the time CSR, as on QEMU's virt machine. */
#define TIMEBASE_HZ 10000000ull

#endif
