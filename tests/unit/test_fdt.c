/* The device tree for a 2-hart, 128 MiB machine, read back with libfdt and
 * (when installed) decompiled by dtc. */
#include <libfdt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "machine/fdt.h"
#include "machine/machine.h"

#include "check.h"

#define RAM_SIZE (128ull << 20)

static struct machine m;
static uint8_t blob[64 * 1024];

static int node(const char *path)
{
    int off = fdt_path_offset(blob, path);
    if (off < 0)
        fprintf(stderr, "missing node %s: %s\n", path, fdt_strerror(off));
    return off;
}

/* Property as bytes; NULL (and a message) if absent. */
static const void *prop(const char *path, const char *name, int *len)
{
    int off = node(path);
    if (off < 0)
        return NULL;
    const void *v = fdt_getprop(blob, off, name, len);
    if (!v)
        fprintf(stderr, "missing %s:%s\n", path, name);
    return v;
}

static bool prop_is_string(const char *path, const char *name, const char *want)
{
    int len;
    const char *v = prop(path, name, &len);
    return v && len == (int)strlen(want) + 1 && !memcmp(v, want, (size_t)len);
}

/* Compares a property with a list of 32-bit cells. */
static bool prop_is_cells(const char *path, const char *name, const uint32_t *want, int n)
{
    int len;
    const fdt32_t *v = prop(path, name, &len);
    if (!v || len != n * 4)
        return false;
    for (int i = 0; i < n; i++)
        if (fdt32_to_cpu(v[i]) != want[i])
            return false;
    return true;
}

static uint32_t prop_u32(const char *path, const char *name)
{
    int len;
    const fdt32_t *v = prop(path, name, &len);
    return v && len == 4 ? fdt32_to_cpu(*v) : 0xdeadbeef;
}

static uint64_t prop_u64(const char *path, const char *name)
{
    int len;
    const void *v = prop(path, name, &len);
    fdt64_t raw; /* properties are only 4-byte aligned */
    if (!v || len != 8)
        return 0xdeadbeef;
    memcpy(&raw, v, sizeof(raw));
    return fdt64_to_cpu(raw);
}

static bool compatible_has(const char *path, const char *want)
{
    int off = node(path);
    return off >= 0 && fdt_node_check_compatible(blob, off, want) == 0;
}

static void test_tree(void)
{
    struct fdt_params p = { .initrd_start = 0x84000000, .initrd_end = 0x84123456,
                            .bootargs = "console=ttyS0 quiet" };
    struct error err = { { 0 } };
    int size = fdt_build(&m, &p, blob, sizeof(blob), &err);
    if (size < 0)
        fprintf(stderr, "fdt_build: %s\n", err.msg);
    CHECK(size > 0);
    CHECK(fdt_check_header(blob) == 0);
    CHECK_EQ(fdt_totalsize(blob), (unsigned)size);

    CHECK_EQ(prop_u32("/", "#address-cells"), 2);
    CHECK_EQ(prop_u32("/", "#size-cells"), 2);
    CHECK(prop_is_string("/", "compatible", "riscv-virtio"));
    CHECK(prop_is_string("/", "model", "ferry,virt"));

    /* /chosen */
    CHECK(prop_is_string("/chosen", "bootargs", "console=ttyS0 quiet"));
    CHECK(prop_is_string("/chosen", "stdout-path", "/soc/serial@10000000"));
    CHECK_EQ(prop_u64("/chosen", "linux,initrd-start"), 0x84000000);
    CHECK_EQ(prop_u64("/chosen", "linux,initrd-end"), 0x84123456);
    CHECK(node("/soc/serial@10000000") >= 0);

    /* memory */
    const uint32_t mem_reg[] = { 0, 0x80000000, 0, (uint32_t)RAM_SIZE };
    CHECK(prop_is_string("/memory@80000000", "device_type", "memory"));
    CHECK(prop_is_cells("/memory@80000000", "reg", mem_reg, 4));

    /* cpus: one node per hart with its interrupt controller */
    CHECK_EQ(prop_u32("/cpus", "timebase-frequency"), 10000000);
    CHECK_EQ(prop_u32("/cpus", "#address-cells"), 1);
    CHECK_EQ(prop_u32("/cpus", "#size-cells"), 0);
    int cpus = node("/cpus"), ncpu = 0, sub;
    fdt_for_each_subnode(sub, blob, cpus) {
        const char *name = fdt_get_name(blob, sub, NULL);
        if (name && !strncmp(name, "cpu@", 4))
            ncpu++;
    }
    CHECK_EQ(ncpu, 2);
    uint32_t intc[2];
    for (unsigned i = 0; i < 2; i++) {
        char path[64], ipath[96];
        snprintf(path, sizeof(path), "/cpus/cpu@%u", i);
        snprintf(ipath, sizeof(ipath), "%s/interrupt-controller", path);
        CHECK_EQ(prop_u32(path, "reg"), i);
        CHECK(prop_is_string(path, "device_type", "cpu"));
        CHECK(prop_is_string(path, "status", "okay"));
        CHECK(prop_is_string(path, "compatible", "riscv"));
        CHECK(prop_is_string(path, "riscv,isa",
                             "rv64imafdc_zicbom_zicboz_zicond_zicsr_zifencei_zba_zbb_zbs_sstc"));
        CHECK(prop_is_string(path, "riscv,isa-base", "rv64i"));
        static const char *const exts[] = {"i", "m", "a", "f", "d", "c", "zicbom", "zicboz",
                                           "zicond", "zicsr", "zifencei", "zba", "zbb",
                                           "zbs", "sstc"};
        int off = node(path);
        CHECK_EQ(fdt_stringlist_count(blob, off, "riscv,isa-extensions"),
                 (int)(sizeof exts / sizeof exts[0]));
        for (unsigned k = 0; k < sizeof exts / sizeof exts[0]; k++)
            CHECK_EQ(fdt_stringlist_search(blob, off, "riscv,isa-extensions", exts[k]), (int)k);
        CHECK_EQ(prop_u32(path, "riscv,cbom-block-size"), 64);
        CHECK_EQ(prop_u32(path, "riscv,cboz-block-size"), 64);
        CHECK(prop_is_string(path, "mmu-type", "riscv,sv48"));
        CHECK(prop_is_string(ipath, "compatible", "riscv,cpu-intc"));
        CHECK_EQ(prop_u32(ipath, "#interrupt-cells"), 1);
        int len = -1;
        CHECK(prop(ipath, "interrupt-controller", &len) && len == 0);
        intc[i] = prop_u32(ipath, "phandle");
        CHECK_EQ(fdt_node_offset_by_phandle(blob, intc[i]), node(ipath));
    }
    CHECK(intc[0] != intc[1]);
    CHECK(fdt_path_offset(blob, "/cpus/cpu@2") < 0);

    /* soc */
    CHECK(compatible_has("/soc", "simple-bus"));
    int len = -1;
    CHECK(prop("/soc", "ranges", &len) && len == 0);

    const char *plic = "/soc/plic@c000000";
    CHECK(compatible_has(plic, "sifive,plic-1.0.0"));
    CHECK(compatible_has(plic, "riscv,plic0"));
    const uint32_t plic_reg[] = { 0, 0xc000000, 0, 0x600000 };
    CHECK(prop_is_cells(plic, "reg", plic_reg, 4));
    CHECK_EQ(prop_u32(plic, "riscv,ndev"), 95);
    CHECK_EQ(prop_u32(plic, "#interrupt-cells"), 1);
    CHECK_EQ(prop_u32(plic, "#address-cells"), 0);
    const uint32_t plic_irqs[] = { intc[0], 11, intc[0], 9, intc[1], 11, intc[1], 9 };
    CHECK(prop_is_cells(plic, "interrupts-extended", plic_irqs, 8));
    uint32_t plic_ph = prop_u32(plic, "phandle");
    CHECK_EQ(fdt_node_offset_by_phandle(blob, plic_ph), node(plic));

    const char *clint = "/soc/clint@2000000";
    CHECK(compatible_has(clint, "sifive,clint0"));
    CHECK(compatible_has(clint, "riscv,clint0"));
    const uint32_t clint_irqs[] = { intc[0], 3, intc[0], 7, intc[1], 3, intc[1], 7 };
    CHECK(prop_is_cells(clint, "interrupts-extended", clint_irqs, 8));
    const uint32_t clint_reg[] = { 0, 0x2000000, 0, 0x10000 };
    CHECK(prop_is_cells(clint, "reg", clint_reg, 4));

    const char *uart = "/soc/serial@10000000";
    CHECK(compatible_has(uart, "ns16550a"));
    CHECK_EQ(prop_u32(uart, "clock-frequency"), 3686400);
    CHECK_EQ(prop_u32(uart, "interrupts"), 10);
    CHECK_EQ(prop_u32(uart, "interrupt-parent"), plic_ph);
    const uint32_t uart_reg[] = { 0, 0x10000000, 0, 0x100 };
    CHECK(prop_is_cells(uart, "reg", uart_reg, 4));

    const char *test = "/soc/test@100000";
    CHECK(compatible_has(test, "sifive,test0"));
    CHECK(compatible_has(test, "syscon"));
    uint32_t test_ph = prop_u32(test, "phandle");
    CHECK_EQ(fdt_node_offset_by_phandle(blob, test_ph), node(test));
    CHECK(compatible_has("/poweroff", "syscon-poweroff"));
    CHECK_EQ(prop_u32("/poweroff", "regmap"), test_ph);
    CHECK_EQ(prop_u32("/poweroff", "offset"), 0);
    CHECK_EQ(prop_u32("/poweroff", "value"), 0x5555);
    CHECK(compatible_has("/reboot", "syscon-reboot"));
    CHECK_EQ(prop_u32("/reboot", "regmap"), test_ph);
    CHECK_EQ(prop_u32("/reboot", "value"), 0x7777);

    for (unsigned i = 0; i < 8; i++) {
        char path[64];
        uint32_t base = 0x10001000u + i * 0x1000u;
        snprintf(path, sizeof(path), "/soc/virtio_mmio@%x", base);
        CHECK(compatible_has(path, "virtio,mmio"));
        const uint32_t reg[] = { 0, base, 0, 0x1000 };
        CHECK(prop_is_cells(path, "reg", reg, 4));
        CHECK_EQ(prop_u32(path, "interrupts"), 1 + i);
        CHECK_EQ(prop_u32(path, "interrupt-parent"), plic_ph);
    }
    CHECK(fdt_path_offset(blob, "/soc/virtio_mmio@10009000") < 0);
}

/* Without an initrd the initrd properties are absent; an empty command line
 * still yields a bootargs property. */
static void test_no_initrd(void)
{
    struct fdt_params p = { 0 };
    struct error err;
    CHECK(fdt_build(&m, &p, blob, sizeof(blob), &err) > 0);
    int chosen = fdt_path_offset(blob, "/chosen");
    CHECK(chosen >= 0);
    CHECK(!fdt_getprop(blob, chosen, "linux,initrd-start", NULL));
    CHECK(!fdt_getprop(blob, chosen, "linux,initrd-end", NULL));
    CHECK(prop_is_string("/chosen", "bootargs", ""));
}

static void test_errors(void)
{
    struct fdt_params p = { .bootargs = "x" };
    struct error err = { { 0 } };
    static uint8_t small[512];
    CHECK(fdt_build(&m, &p, small, sizeof(small), &err) < 0);
    CHECK(strstr(err.msg, "does not fit") != NULL);
    CHECK(fdt_build(&m, &p, small, 8, &err) < 0);
    CHECK(err.msg[0] != 0);

    unsigned saved = m.nharts;
    m.nharts = 0;
    CHECK(fdt_build(&m, &p, blob, sizeof(blob), &err) < 0);
    m.nharts = saved;
}

/* dtc must decompile the blob without complaint. */
static void test_dtc(void)
{
    if (system("command -v dtc >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_fdt: dtc not installed, skipping\n");
        return;
    }
    struct fdt_params p = { .initrd_start = 0x84000000, .initrd_end = 0x84100000,
                            .bootargs = "console=ttyS0" };
    struct error err;
    int size = fdt_build(&m, &p, blob, sizeof(blob), &err);
    CHECK(size > 0);
    char dtb[] = "/tmp/ferry-test-fdt-XXXXXX";
    int fd = mkstemp(dtb);
    CHECK(fd >= 0);
    CHECK(write(fd, blob, (size_t)size) == size);
    close(fd);
    char cmd[256], out[64];
    snprintf(out, sizeof(out), "%s.log", dtb);
    snprintf(cmd, sizeof(cmd), "dtc -q -I dtb -O dts -o /dev/null %s 2>%s", dtb, out);
    CHECK(system(cmd) == 0);
    /* Warnings count as failures: they flag a malformed binding. */
    snprintf(cmd, sizeof(cmd), "dtc -I dtb -O dts -o /dev/null %s 2>%s", dtb, out);
    CHECK(system(cmd) == 0);
    FILE *f = fopen(out, "r");
    char line[512];
    bool clean = true;
    while (f && fgets(line, sizeof(line), f)) {
        fprintf(stderr, "dtc: %s", line);
        clean = false;
    }
    if (f)
        fclose(f);
    CHECK(clean);
    unlink(out);
    unlink(dtb);
}

int main(void)
{
    m.nharts = 2;
    m.bus.ram.base = 0x80000000;
    m.bus.ram.size = RAM_SIZE;
    test_tree();
    test_no_initrd();
    test_errors();
    test_dtc();
    if (failures) {
        fprintf(stderr, "test_fdt: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_fdt: %d checks passed\n", checks);
    return 0;
}
