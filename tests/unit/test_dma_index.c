/* Ring indices written by a device are never torn for a guest vCPU reading
 * them at the same time (bus_dma_write_u16): a reader thread spinning on a
 * used->idx-like field while the device's writes change both of its bytes
 * must only ever see values that were written (a bytewise store, high byte
 * first, fails this within a run). And the reverse: a guest's avail->idx
 * read by bus_dma_read_u16, and both refusing addresses outside RAM. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "mem/bus.h"
#include "check.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (1ull << 20)
#define INDEX_GPA (RAM_BASE + 0x1002)   /* like used + 2 */
#define STEPS 2000000u

static struct bus bus;
static volatile bool done;
static unsigned long long torn, seen;

/* The two values the writer alternates between: every store changes both
 * bytes, as the carry into the high byte does once every 256 steps. */
#define LOW 0x00ffu
#define HIGH 0x0100u

static uint16_t *host_index(void) { return (uint16_t *)ram_host(&bus.ram, INDEX_GPA); }

/* The guest's side: one 16-bit load at a time, as a vCPU does; anything
 * but the two values stored is a torn one (memcpy: 0x01ff or 0x0000). */
static void *guest_reader(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        uint16_t v = __atomic_load_n(host_index(), __ATOMIC_ACQUIRE);
        if (v != LOW && v != HIGH)
            torn++;
        seen++;
    }
    return NULL;
}

/* The guest's writes, the device reading: every value read must be one the
 * guest stored. */
static void check_reads(void)
{
    struct error err = {0};
    uint16_t v;
    unsigned long long bad = 0;
    for (unsigned i = 0; i < 100000; i++) {
        __atomic_store_n(host_index(), (uint16_t)i, __ATOMIC_RELEASE);
        if (bus_dma_read_u16(&bus, INDEX_GPA, &v, &err) < 0 || v != (uint16_t)i)
            bad++;
    }
    CHECK(bad == 0, "%llu reads differed from the value stored", bad);
    CHECK(bus_dma_read_u16(&bus, RAM_BASE + RAM_SIZE, &v, &err) < 0, "read past RAM refused");
    CHECK(bus_dma_write_u16(&bus, RAM_BASE + RAM_SIZE - 1, 1, &err) < 0, "write past RAM refused");
}

int main(void)
{
    struct error err = {0};
    if (ram_init(&bus.ram, RAM_BASE, RAM_SIZE, &err) < 0) {
        printf("FAIL: ram_init: %s\n", err.msg);
        return 1;
    }
    check_reads();
    __atomic_store_n(host_index(), LOW, __ATOMIC_RELEASE);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, guest_reader, NULL) == 0);
    for (unsigned i = 1; i <= STEPS; i++)
        CHECK(bus_dma_write_u16(&bus, INDEX_GPA, (uint16_t)(i & 1 ? HIGH : LOW), &err) == 0);
    __atomic_store_n(&done, true, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    CHECK(torn == 0, "the reader saw %llu torn index values in %llu reads", torn, seen);
    CHECK(*host_index() == (STEPS & 1 ? HIGH : LOW));
    ram_destroy(&bus.ram);
    printf("%s: %d checks, %d failures (%llu concurrent reads)\n", __FILE__, checks, failures,
           seen);
    return failures ? 1 : 0;
}
