/* Device tree for the machine, written with libfdt's sequential-write API.
 *
 * Every libfdt call goes through TRY so a failure (usually a too-small
 * buffer) becomes one error message naming the step that failed. */
#include "machine/fdt.h"

#include <libfdt.h>
#include <string.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "machine/machine.h"

/* Phandles: one per hart's interrupt controller, then the PLIC and the
 * test device. Values are arbitrary but fixed so the blob is reproducible
 * apart from the rng seed. */
#define PHANDLE_CPU_INTC(i) (1u + (i))
#define PHANDLE_PLIC        0x100u
#define PHANDLE_TEST        0x101u

#define PLIC_NDEV   95u

struct dt_ctx {
    void *fdt;
    int cap;
    struct error *err;
};

static int dt_fail(struct dt_ctx *c, const char *what, int rc)
{
    if (rc == -FDT_ERR_NOSPACE)
        return error_set(c->err, "device tree: %s: blob does not fit in %d bytes", what,
                         c->cap);
    return error_set(c->err, "device tree: %s: %s", what, fdt_strerror(rc));
}

#define TRY(c, call)                                                                   \
    do {                                                                               \
        int rc_ = (call);                                                              \
        if (rc_ < 0)                                                                   \
            return dt_fail((c), #call, rc_);                                          \
    } while (0)

/* A property made of big-endian 32-bit cells. */
static int dt_cells(struct dt_ctx *c, const char *name, const uint32_t *cells, unsigned n)
{
    fdt32_t be[32];
    if (n > sizeof(be) / sizeof(be[0]))
        return error_set(c->err, "device tree: property %s has too many cells", name);
    for (unsigned i = 0; i < n; i++)
        be[i] = cpu_to_fdt32(cells[i]);
    TRY(c, fdt_property(c->fdt, name, be, (int)(n * sizeof(fdt32_t))));
    return 0;
}

/* reg = <base size> with #address-cells = #size-cells = 2. */
static int dt_reg64(struct dt_ctx *c, uint64_t base, uint64_t size)
{
    uint32_t cells[4] = { (uint32_t)(base >> 32), (uint32_t)base, (uint32_t)(size >> 32),
                          (uint32_t)size };
    return dt_cells(c, "reg", cells, 4);
}

/* String lists are NUL-separated; sizeof of the literal keeps the final NUL. */
#define DT_STRINGS(c, name, lit) TRY(c, fdt_property((c)->fdt, name, lit, sizeof(lit)))

static int dt_begin_unit(struct dt_ctx *c, const char *prefix, uint64_t addr)
{
    char name[64];
    snprintf(name, sizeof(name), "%s@%llx", prefix, (unsigned long long)addr);
    TRY(c, fdt_begin_node(c->fdt, name));
    return 0;
}

static int dt_add_chosen(struct dt_ctx *c, const struct fdt_params *p)
{
    TRY(c, fdt_begin_node(c->fdt, "chosen"));
    TRY(c, fdt_property_string(c->fdt, "bootargs", p->bootargs ? p->bootargs : ""));
    TRY(c, fdt_property_string(c->fdt, "stdout-path", "/soc/serial@10000000"));
    if (p->initrd_end > p->initrd_start) {
        TRY(c, fdt_property_u64(c->fdt, "linux,initrd-start", p->initrd_start));
        TRY(c, fdt_property_u64(c->fdt, "linux,initrd-end", p->initrd_end));
    }
    /* Seeds the guest's RNG so early getrandom() does not wait for entropy;
     * skipped silently if the host cannot provide it without blocking. */
    uint8_t seed[32];
    if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        TRY(c, fdt_property(c->fdt, "rng-seed", seed, sizeof(seed)));
    TRY(c, fdt_end_node(c->fdt));
    return 0;
}

/* What the CPU implements (src/cpu); Linux enables the extensions it finds
 * here. Every kernel parses riscv,isa (Linux 6.1 acts on sstc and zicbom,
 * shows them in /proc/cpuinfo, and skips the names it does not know);
 * riscv,isa-base plus riscv,isa-extensions is the newer binding (6.6+).
 * The order is the canonical one: single letters, then Z extensions by
 * their category letter (i before b), then S extensions. */
#define DT_ISA "rv64imafdc_zicbom_zicboz_zicond_zicsr_zifencei_zba_zbb_zbs_sstc"
static const char *const dt_isa_extensions[] = {
    "i", "m", "a", "f", "d", "c", "zicbom", "zicboz", "zicond", "zicsr", "zifencei",
    "zba", "zbb", "zbs", "sstc",
};

static int dt_add_isa(struct dt_ctx *c)
{
    char list[256];
    size_t len = 0;
    for (size_t i = 0; i < sizeof dt_isa_extensions / sizeof dt_isa_extensions[0]; i++) {
        size_t n = strlen(dt_isa_extensions[i]) + 1;
        memcpy(list + len, dt_isa_extensions[i], n);
        len += n;
    }
    TRY(c, fdt_property_string(c->fdt, "riscv,isa", DT_ISA));
    TRY(c, fdt_property_string(c->fdt, "riscv,isa-base", "rv64i"));
    TRY(c, fdt_property(c->fdt, "riscv,isa-extensions", list, (int)len));
    TRY(c, fdt_property_u32(c->fdt, "riscv,cbom-block-size", CACHE_BLOCK_SIZE));
    TRY(c, fdt_property_u32(c->fdt, "riscv,cboz-block-size", CACHE_BLOCK_SIZE));
    return 0;
}

static int dt_add_cpus(struct dt_ctx *c, unsigned nharts)
{
    TRY(c, fdt_begin_node(c->fdt, "cpus"));
    TRY(c, fdt_property_u32(c->fdt, "#address-cells", 1));
    TRY(c, fdt_property_u32(c->fdt, "#size-cells", 0));
    TRY(c, fdt_property_u32(c->fdt, "timebase-frequency", (uint32_t)TIMEBASE_HZ));
    for (unsigned i = 0; i < nharts; i++) {
        if (dt_begin_unit(c, "cpu", i) < 0)
            return -1;
        TRY(c, fdt_property_string(c->fdt, "device_type", "cpu"));
        TRY(c, fdt_property_u32(c->fdt, "reg", i));
        TRY(c, fdt_property_string(c->fdt, "status", "okay"));
        TRY(c, fdt_property_string(c->fdt, "compatible", "riscv"));
        if (dt_add_isa(c) < 0)
            return -1;
        TRY(c, fdt_property_string(c->fdt, "mmu-type", "riscv,sv48"));
        TRY(c, fdt_begin_node(c->fdt, "interrupt-controller"));
        TRY(c, fdt_property_u32(c->fdt, "#interrupt-cells", 1));
        /* No interrupt-map below it; dtc flags providers that omit this. */
        TRY(c, fdt_property_u32(c->fdt, "#address-cells", 0));
        TRY(c, fdt_property(c->fdt, "interrupt-controller", NULL, 0));
        TRY(c, fdt_property_string(c->fdt, "compatible", "riscv,cpu-intc"));
        TRY(c, fdt_property_u32(c->fdt, "phandle", PHANDLE_CPU_INTC(i)));
        TRY(c, fdt_end_node(c->fdt));
        TRY(c, fdt_end_node(c->fdt));
    }
    TRY(c, fdt_end_node(c->fdt));
    return 0;
}

/* interrupts-extended = <intc(0) a intc(0) b intc(1) a ...>: each hart's
 * pair of local interrupt lines that a device drives. */
static int dt_per_hart_irqs(struct dt_ctx *c, unsigned nharts, uint32_t a, uint32_t b)
{
    uint32_t cells[4 * MACHINE_MAX_HARTS];
    for (unsigned i = 0; i < nharts; i++) {
        cells[4 * i + 0] = PHANDLE_CPU_INTC(i);
        cells[4 * i + 1] = a;
        cells[4 * i + 2] = PHANDLE_CPU_INTC(i);
        cells[4 * i + 3] = b;
    }
    return dt_cells(c, "interrupts-extended", cells, 4 * nharts);
}

static int dt_add_plic(struct dt_ctx *c, unsigned nharts)
{
    if (dt_begin_unit(c, "plic", MEMMAP_PLIC_BASE) < 0)
        return -1;
    DT_STRINGS(c, "compatible", "sifive,plic-1.0.0\0riscv,plic0");
    if (dt_reg64(c, MEMMAP_PLIC_BASE, MEMMAP_PLIC_SIZE) < 0)
        return -1;
    TRY(c, fdt_property_u32(c->fdt, "#interrupt-cells", 1));
    TRY(c, fdt_property_u32(c->fdt, "#address-cells", 0));
    TRY(c, fdt_property(c->fdt, "interrupt-controller", NULL, 0));
    TRY(c, fdt_property_u32(c->fdt, "riscv,ndev", PLIC_NDEV));
    /* Context 2i is hart i's M external interrupt, 2i+1 its S one. */
    if (dt_per_hart_irqs(c, nharts, IRQ_MEI, IRQ_SEI) < 0)
        return -1;
    TRY(c, fdt_property_u32(c->fdt, "phandle", PHANDLE_PLIC));
    TRY(c, fdt_end_node(c->fdt));
    return 0;
}

static int dt_add_clint(struct dt_ctx *c, unsigned nharts)
{
    if (dt_begin_unit(c, "clint", MEMMAP_ACLINT_BASE) < 0)
        return -1;
    DT_STRINGS(c, "compatible", "sifive,clint0\0riscv,clint0");
    if (dt_reg64(c, MEMMAP_ACLINT_BASE, MEMMAP_ACLINT_SIZE) < 0 ||
        dt_per_hart_irqs(c, nharts, IRQ_MSI, IRQ_MTI) < 0)
        return -1;
    TRY(c, fdt_end_node(c->fdt));
    return 0;
}

static int dt_add_uart(struct dt_ctx *c)
{
    if (dt_begin_unit(c, "serial", MEMMAP_UART0_BASE) < 0)
        return -1;
    TRY(c, fdt_property_string(c->fdt, "compatible", "ns16550a"));
    if (dt_reg64(c, MEMMAP_UART0_BASE, MEMMAP_UART0_SIZE) < 0)
        return -1;
    TRY(c, fdt_property_u32(c->fdt, "clock-frequency", UART0_CLOCK_HZ));
    TRY(c, fdt_property_u32(c->fdt, "interrupts", MEMMAP_UART0_IRQ));
    TRY(c, fdt_property_u32(c->fdt, "interrupt-parent", PHANDLE_PLIC));
    TRY(c, fdt_end_node(c->fdt));
    return 0;
}

static int dt_add_test(struct dt_ctx *c)
{
    if (dt_begin_unit(c, "test", MEMMAP_SYSCON_BASE) < 0)
        return -1;
    DT_STRINGS(c, "compatible", "sifive,test1\0sifive,test0\0syscon");
    if (dt_reg64(c, MEMMAP_SYSCON_BASE, MEMMAP_SYSCON_SIZE) < 0)
        return -1;
    TRY(c, fdt_property_u32(c->fdt, "phandle", PHANDLE_TEST));
    TRY(c, fdt_end_node(c->fdt));
    return 0;
}

static int dt_add_virtio(struct dt_ctx *c)
{
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++) {
        uint64_t base = MEMMAP_VIRTIO_BASE + i * MEMMAP_VIRTIO_STRIDE;
        if (dt_begin_unit(c, "virtio_mmio", base) < 0)
            return -1;
        TRY(c, fdt_property_string(c->fdt, "compatible", "virtio,mmio"));
        if (dt_reg64(c, base, MEMMAP_VIRTIO_STRIDE) < 0)
            return -1;
        TRY(c, fdt_property_u32(c->fdt, "interrupts", MEMMAP_VIRTIO_IRQ0 + i));
        TRY(c, fdt_property_u32(c->fdt, "interrupt-parent", PHANDLE_PLIC));
        TRY(c, fdt_end_node(c->fdt));
    }
    return 0;
}

static int dt_add_soc(struct dt_ctx *c, unsigned nharts)
{
    TRY(c, fdt_begin_node(c->fdt, "soc"));
    TRY(c, fdt_property_u32(c->fdt, "#address-cells", 2));
    TRY(c, fdt_property_u32(c->fdt, "#size-cells", 2));
    TRY(c, fdt_property_string(c->fdt, "compatible", "simple-bus"));
    TRY(c, fdt_property(c->fdt, "ranges", NULL, 0)); /* 1:1 with the root */
    if (dt_add_test(c) < 0 || dt_add_clint(c, nharts) < 0 || dt_add_plic(c, nharts) < 0 ||
        dt_add_uart(c) < 0 || dt_add_virtio(c) < 0)
        return -1;
    TRY(c, fdt_end_node(c->fdt));
    return 0;
}

/* syscon-poweroff/-reboot poke the test device through its regmap. */
static int dt_add_syscon_action(struct dt_ctx *c, const char *node, const char *compat,
                                 uint32_t value)
{
    TRY(c, fdt_begin_node(c->fdt, node));
    TRY(c, fdt_property_string(c->fdt, "compatible", compat));
    TRY(c, fdt_property_u32(c->fdt, "regmap", PHANDLE_TEST));
    TRY(c, fdt_property_u32(c->fdt, "offset", 0));
    TRY(c, fdt_property_u32(c->fdt, "value", value));
    TRY(c, fdt_end_node(c->fdt));
    return 0;
}

static int dt_build_tree(struct dt_ctx *c, const struct machine *m, const struct fdt_params *p)
{
    unsigned nharts = m->nharts;
    if (nharts == 0 || nharts > MACHINE_MAX_HARTS)
        return error_set(c->err, "device tree: bad hart count %u", nharts);

    TRY(c, fdt_finish_reservemap(c->fdt));
    TRY(c, fdt_begin_node(c->fdt, ""));
    TRY(c, fdt_property_u32(c->fdt, "#address-cells", 2));
    TRY(c, fdt_property_u32(c->fdt, "#size-cells", 2));
    TRY(c, fdt_property_string(c->fdt, "compatible", "riscv-virtio"));
    TRY(c, fdt_property_string(c->fdt, "model", "ferry,virt"));

    if (dt_add_chosen(c, p) < 0)
        return -1;
    TRY(c, fdt_begin_node(c->fdt, "aliases"));
    TRY(c, fdt_property_string(c->fdt, "serial0", "/soc/serial@10000000"));
    TRY(c, fdt_end_node(c->fdt));

    if (dt_begin_unit(c, "memory", m->bus.ram.base) < 0)
        return -1;
    TRY(c, fdt_property_string(c->fdt, "device_type", "memory"));
    if (dt_reg64(c, m->bus.ram.base, m->bus.ram.size) < 0)
        return -1;
    TRY(c, fdt_end_node(c->fdt));

    if (dt_add_cpus(c, nharts) < 0 || dt_add_soc(c, nharts) < 0 ||
        dt_add_syscon_action(c, "poweroff", "syscon-poweroff", 0x5555) < 0 ||
        dt_add_syscon_action(c, "reboot", "syscon-reboot", 0x7777) < 0)
        return -1;

    TRY(c, fdt_end_node(c->fdt));
    TRY(c, fdt_finish(c->fdt));
    return 0;
}

int fdt_build(const struct machine *m, const struct fdt_params *p, void *buf, size_t cap,
              struct error *err)
{
    if (cap > INT32_MAX)
        cap = INT32_MAX;
    struct dt_ctx c = { .fdt = buf, .cap = (int)cap, .err = err };
    int rc = fdt_create(buf, c.cap);
    if (rc < 0)
        return dt_fail(&c, "fdt_create", rc);
    if (dt_build_tree(&c, m, p) < 0)
        return -1;
    /* Sequential-write mode builds the strings block at the end of the
     * buffer and moves it down at fdt_finish: clear what it left behind.
     * In guest RAM those bytes are outside the marked-dirty tree, so a
     * migration would not send them and --verify would see a difference
     * that the guest never could. */
    size_t size = fdt_totalsize(buf);
    if (size < cap)
        memset((uint8_t *)buf + size, 0, cap - size);
    return (int)size;
}
