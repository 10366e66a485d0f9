/* The Supervisor Binary Interface, implemented inside the emulator instead
 * of by M-mode firmware: BASE, TIME, IPI, RFENCE, HSM, SRST and the legacy
 * console calls. */
#include "cpu/cpu_internal.h"
#include "machine/machine.h"

#define SBI_SUCCESS 0
#define SBI_ERR_FAILED (-1)
#define SBI_ERR_NOT_SUPPORTED (-2)
#define SBI_ERR_INVALID_PARAM (-3)
#define SBI_ERR_ALREADY_AVAILABLE (-6)

#define EXT_LEGACY_SET_TIMER 0x00
#define EXT_LEGACY_PUTCHAR 0x01
#define EXT_LEGACY_GETCHAR 0x02
#define EXT_LEGACY_SHUTDOWN 0x08
#define EXT_BASE 0x10
#define EXT_TIME 0x54494D45
#define EXT_IPI 0x735049
#define EXT_RFENCE 0x52464E43
#define EXT_HSM 0x48534D
#define EXT_SRST 0x53525354

#define SBI_SPEC_VERSION ((1u << 24) | 0) /* v1.0 */
#define SBI_IMPL_ID 0xfe77                  /* "ferry"; not a registered id */

struct sbi_ret {
    int64_t error;
    uint64_t value;
};

/* set_timer writes stimecmp, as OpenSBI does on a hart with Sstc; the
 * calls are counted for --stats (a kernel using Sstc makes none). */
static void sbi_set_timer(struct hart *h, uint64_t when)
{
    h->sbi_set_timer_calls++;
    machine_set_hart_timer(h->machine, h, when);
}

static bool ext_supported(uint64_t ext)
{
    switch (ext) {
    case EXT_BASE: case EXT_TIME: case EXT_IPI: case EXT_RFENCE: case EXT_HSM: case EXT_SRST:
    case EXT_LEGACY_SET_TIMER: case EXT_LEGACY_PUTCHAR: case EXT_LEGACY_GETCHAR:
    case EXT_LEGACY_SHUTDOWN:
        return true;
    default:
        return false;
    }
}

/* The harts selected by (mask, mask_base), base -1 meaning all, as a bit
 * set over hart ids. */
static uint64_t selected_harts(const struct machine *m, uint64_t mask, uint64_t base)
{
    uint64_t set = 0;
    for (unsigned i = 0; i < m->nharts; i++) {
        bool selected;
        if (base == UINT64_MAX)
            selected = true;
        else
            selected = i >= base && i - base < 64 && ((mask >> (i - base)) & 1);
        if (selected)
            set |= 1ull << i;
    }
    return set;
}

/* Masks naming harts that do not exist are rejected (after acting on the
 * ones that do, as before). */
static int64_t check_hart_mask(const struct machine *m, uint64_t mask, uint64_t base)
{
    if (base != UINT64_MAX && base < 64 * 1024 && mask) {
        for (unsigned bit = 0; bit < 64; bit++)
            if (((mask >> bit) & 1) && base + bit >= m->nharts)
                return SBI_ERR_INVALID_PARAM;
    }
    return SBI_SUCCESS;
}

static struct sbi_ret hsm_call(struct hart *h, uint64_t fid)
{
    struct machine *m = h->machine;
    uint64_t id = h->x[10];
    switch (fid) {
    case 0: { /* hart_start(hartid, start_addr, opaque) */
        if (id >= m->nharts)
            return (struct sbi_ret){SBI_ERR_INVALID_PARAM, 0};
        if (!machine_start_hart(m, &m->harts[id], h->x[11], h->x[12]))
            return (struct sbi_ret){SBI_ERR_ALREADY_AVAILABLE, 0};
        return (struct sbi_ret){SBI_SUCCESS, 0};
    }
    case 1: /* hart_stop */
        machine_stop_hart(m, h);
        return (struct sbi_ret){SBI_SUCCESS, 0};
    case 2: /* hart_get_status */
        if (id >= m->nharts)
            return (struct sbi_ret){SBI_ERR_INVALID_PARAM, 0};
        return (struct sbi_ret){SBI_SUCCESS, machine_hart_status(m, &m->harts[id])};
    default:
        return (struct sbi_ret){SBI_ERR_NOT_SUPPORTED, 0};
    }
}

static struct sbi_ret sbi_dispatch(struct hart *h, uint64_t ext, uint64_t fid)
{
    struct machine *m = h->machine;
    uint64_t *a = &h->x[10];
    switch (ext) {
    case EXT_BASE:
        switch (fid) {
        case 0: return (struct sbi_ret){0, SBI_SPEC_VERSION};
        case 1: return (struct sbi_ret){0, SBI_IMPL_ID};
        case 2: return (struct sbi_ret){0, 1};
        case 3: return (struct sbi_ret){0, ext_supported(a[0]) ? 1 : 0};
        case 4: case 5: case 6: return (struct sbi_ret){0, 0}; /* mvendorid, marchid, mimpid */
        default: return (struct sbi_ret){SBI_ERR_NOT_SUPPORTED, 0};
        }
    case EXT_TIME:
        if (fid != 0)
            return (struct sbi_ret){SBI_ERR_NOT_SUPPORTED, 0};
        sbi_set_timer(h, a[0]);
        return (struct sbi_ret){0, 0};
    case EXT_IPI: {
        if (fid != 0)
            return (struct sbi_ret){SBI_ERR_NOT_SUPPORTED, 0};
        uint64_t set = selected_harts(m, a[0], a[1]);
        for (unsigned i = 0; i < m->nharts; i++)
            if ((set >> i) & 1)
                machine_send_ipi(m, i);
        return (struct sbi_ret){check_hart_mask(m, a[0], a[1]), 0};
    }
    case EXT_RFENCE:
        /* remote fence.i drops every hart's decoded code; the remote
         * sfence.vma variants flush the targets' TLBs. Both complete
         * before this call returns (machine_exclusive_begin). */
        if (fid > 6)
            return (struct sbi_ret){SBI_ERR_NOT_SUPPORTED, 0};
        if (fid == 0)
            machine_fence_i(m);
        else
            machine_remote_sfence(m, selected_harts(m, a[0], a[1]));
        return (struct sbi_ret){fid == 0 ? 0 : check_hart_mask(m, a[0], a[1]), 0};
    case EXT_HSM:
        return hsm_call(h, fid);
    case EXT_SRST:
        if (fid != 0)
            return (struct sbi_ret){SBI_ERR_NOT_SUPPORTED, 0};
        if (a[0] == 0) {
            machine_request_stop(m, MACHINE_POWEROFF, a[1] == 0 ? 0 : 1);
            return (struct sbi_ret){0, 0};
        }
        if (a[0] == 1 || a[0] == 2) {
            machine_request_stop(m, MACHINE_REBOOT, 0);
            return (struct sbi_ret){0, 0};
        }
        return (struct sbi_ret){SBI_ERR_INVALID_PARAM, 0};
    default:
        return (struct sbi_ret){SBI_ERR_NOT_SUPPORTED, 0};
    }
}

bool sbi_ecall(struct hart *h)
{
    uint64_t ext = h->x[17], fid = h->x[16];
    struct machine *m = h->machine;
    switch (ext) {
    case EXT_LEGACY_SET_TIMER:
        sbi_set_timer(h, h->x[10]);
        h->x[10] = 0;
        return true;
    case EXT_LEGACY_PUTCHAR: {
        uint8_t c = (uint8_t)h->x[10];
        pthread_mutex_lock(&m->io_lock); /* the UART writes there too */
        console_write(&m->console, &c, 1);
        pthread_mutex_unlock(&m->io_lock);
        h->x[10] = 0;
        return true;
    }
    case EXT_LEGACY_GETCHAR:
        h->x[10] = (uint64_t)-1;
        return true;
    case EXT_LEGACY_SHUTDOWN:
        machine_request_stop(m, MACHINE_POWEROFF, 0);
        return true;
    default: {
        struct sbi_ret r = sbi_dispatch(h, ext, fid);
        h->x[10] = (uint64_t)r.error;
        h->x[11] = r.value;
        return true;
    }
    }
}
