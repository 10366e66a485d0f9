/* ferry run: boot a VM — the built-in Linux guest by default, a kernel of
 * the user's, or a bare-metal ELF with --bios. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ctl/ctl.h"
#include "cpu/jit.h"
#include "machine/machine.h"
#include "machine/signals.h"
#include "migrate/arbiter_etcd.h"
#include "migrate/migration.h"
#include "migrate/replication.h"
#include "migrate/standby_state.h"
#include "machine/vclock.h"
#include "transport/tls.h"

/* The translator where it translates; elsewhere `jit` would run the
 * interpreter anyway. */
#if defined(__x86_64__)
#define CPU_DEFAULT_ENGINE "jit"
#else
#define CPU_DEFAULT_ENGINE "interp"
#endif

#define DEFAULT_APPEND "console=ttyS0 quiet"

static void run_usage(FILE *out)
{
    fprintf(out,
            "usage: ferry run [options]\n"
            "\n"
            "  --kernel FILE     RISC-V Linux Image (default: the built-in guest)\n"
            "  --initrd FILE     initramfs (default: the built-in guest's)\n"
            "  --append ARGS     kernel command line (default: \"" DEFAULT_APPEND "\")\n"
            "  --mem SIZE        guest RAM, e.g. 256M or 1G (default 256M)\n"
            "  --smp N           number of harts, 1..8 (default 1)\n"
            "  --bios FILE       run a bare-metal RV64 ELF in M-mode instead of Linux;\n"
            "                    the exit status is the code it writes to `tohost`\n"
            "  --console SPEC    stdio (default), socket:PATH, file:PATH or none\n"
            "  --drive SPEC      a virtio disk: file=PATH[,readonly=on] or\n"
            "                    nbd://HOST:PORT/EXPORT[,readonly=on] (repeatable)\n"
            "  --net SPEC        a virtio network card on a tap device:\n"
            "                    tap=NAME[,mac=52:54:00:12:34:56] (repeatable)\n"
            "  --no-rng          leave out the virtio entropy device\n"
            "  --control PATH    serve the JSON control socket at PATH (status, pause,\n"
            "                    resume, migrate, save, quit; see 'ferry ctl')\n"
            "  --incoming tcp:ADDR:PORT | tls:ADDR:PORT\n"
            "                    wait for a migration stream instead of booting; the\n"
            "                    stream sets RAM size and harts, local --drive/--net\n"
            "                    options bind the backends; a source migrating with\n"
            "                    --copy-storage fills each --drive file=PATH (received\n"
            "                    as PATH.partial, renamed when the guest runs here;\n"
            "                    the same for --standby with replicate --copy-storage)\n"
            "  --max-mem SIZE    with --incoming/--restore/--standby: the largest RAM a\n"
            "                    stream may describe (default: half of this host's\n"
            "                    memory); a larger one is refused before allocating\n"
            "  --restore FILE    resume a VM saved with 'ferry save'\n"
            "  --standby tcp:ADDR:PORT | tls:ADDR:PORT\n"
            "                    be the standby of a replicated VM (ferry replicate);\n"
            "                    take over when the primary dies or switches over\n"
            "  --fence CMD       with --standby: run CMD before taking over after a\n"
            "                    failure; do not take over if it fails\n"
            "  --arbiter etcd://HOST:PORT[,HOST:PORT...]/KEY\n"
            "                    replication arbiter (primary and --standby): only the\n"
            "                    holder of KEY (a lease in this etcd cluster) runs the\n"
            "                    guest and releases its output; numeric addresses\n"
            "  --lease-ttl S     with --arbiter: the lease's TTL in seconds (default 3)\n"
            "  --heartbeat-timeout T\n"
            "                    with --standby: silence that means the primary is\n"
            "                    gone (default 500ms). With --control, a standby\n"
            "                    answers status, takeover (a manual failover, fenced)\n"
            "                    and quit (end without taking over) from the start\n"
            "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
            "                    TLS 1.3 credentials for tls: addresses (--incoming,\n"
            "                    --standby, and migrate/replicate without their own):\n"
            "                    this host's certificate and key, and the CA that signs\n"
            "                    the peer's; both sides verify each other\n"
            "  --tls-psk FILE    instead: a pre-shared key in hex (chmod 600), the same\n"
            "                    file on both hosts\n"
            "  --cpu ENGINE      jit (the translating CPU; default on x86-64 hosts) or\n"
            "                    interp (the interpreter: the reference, and the default\n"
            "                    elsewhere, where jit runs it too); $FERRY_CPU if not given\n"
            "  --stats           print instructions executed, MIPS and SBI set_timer calls\n"
            "                    at exit\n"
            "\n"
            "On a terminal, Ctrl-A x quits. SIGTERM, SIGINT and SIGHUP end ferry in any\n"
            "state (an outgoing migration is cancelled first).\n"
            "The built-in guest is looked up in $FERRY_GUEST_DIR, then next to the\n"
            "ferry binary (guest/ or ../guest/).\n");
}

/* Finds the built-in guest directory holding Image and initramfs.cpio. */
static int find_guest_dir(char *out, size_t cap)
{
    const char *env = getenv("FERRY_GUEST_DIR");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    const char *candidates[] = {"guest", "../guest"};
    for (size_t i = 0; i < 2; i++) {
        char probe[PATH_MAX + 64];
        snprintf(probe, sizeof probe, "%s/%s/Image", exe, candidates[i]);
        if (access(probe, R_OK) == 0) {
            snprintf(out, cap, "%s/%s", exe, candidates[i]);
            return 0;
        }
    }
    return -1;
}

int cmd_run(int argc, char **argv)
{
    /* RAM size and harts stay 0 unless given: a migration destination takes
     * them from the stream and rejects a contradicting flag. */
    struct machine_config cfg = {0};
    const char *mem = NULL, *smp = NULL, *control = NULL, *incoming = NULL, *restore = NULL;
    const char *standby = NULL, *fence = NULL, *heartbeat = NULL, *max_mem = NULL;
    const char *engine = NULL, *arbiter_url = NULL, *lease_ttl = NULL;
    bool stats = false;
    struct tls_config tls;
    memset(&tls, 0, sizeof tls);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_tls_flag(argc, argv, &i, &tls)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            continue;
        }
#define FLAG(name, dst)                                          \
    if ((r = cli_flag_value(argc, argv, &i, name, &v)) != 0) {   \
        if (r < 0)                                               \
            return EXIT_USAGE;                                   \
        dst = v;                                                 \
        continue;                                                \
    }
        FLAG("--kernel", cfg.kernel)
        FLAG("--initrd", cfg.initrd)
        FLAG("--append", cfg.append)
        FLAG("--mem", mem)
        FLAG("--smp", smp)
        FLAG("--bios", cfg.bios)
        FLAG("--console", cfg.console)
        FLAG("--control", control)
        FLAG("--incoming", incoming)
        FLAG("--restore", restore)
        FLAG("--standby", standby)
        FLAG("--fence", fence)
        FLAG("--heartbeat-timeout", heartbeat)
        FLAG("--max-mem", max_mem)
        FLAG("--cpu", engine)
        FLAG("--arbiter", arbiter_url)
        FLAG("--lease-ttl", lease_ttl)
#undef FLAG
        if ((r = cli_flag_value(argc, argv, &i, "--drive", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (cfg.ndrives == MACHINE_MAX_DRIVES) {
                cli_error("at most %d --drive options", MACHINE_MAX_DRIVES);
                return EXIT_USAGE;
            }
            cfg.drives[cfg.ndrives++] = v;
            continue;
        }
        if ((r = cli_flag_value(argc, argv, &i, "--net", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (cfg.nnets == MACHINE_MAX_NETS) {
                cli_error("at most %d --net options", MACHINE_MAX_NETS);
                return EXIT_USAGE;
            }
            cfg.nets[cfg.nnets++] = v;
            continue;
        }
        if (strcmp(argv[i], "--no-rng") == 0) {
            cfg.no_rng = true;
            continue;
        }
        if (strcmp(argv[i], "--stats") == 0) {
            stats = true;
            continue;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            run_usage(stdout);
            return 0;
        }
        cli_error("unknown option '%s' for 'ferry run' (try 'ferry run --help')", argv[i]);
        return EXIT_USAGE;
    }

    if (!engine)
        engine = getenv("FERRY_CPU"); /* the test runner's --cpu */
    if (!engine)
        engine = CPU_DEFAULT_ENGINE;
    if (engine && strcmp(engine, "interp") != 0 && strcmp(engine, "jit") != 0) {
        cli_error("--cpu (or FERRY_CPU) must be interp or jit, not '%s'", engine);
        return EXIT_USAGE;
    }
    cfg.jit = strcmp(engine, "jit") == 0;

    struct error err;
    if (mem && cli_parse_size(mem, &cfg.ram_size, &err) < 0) {
        cli_error("--mem: %s", err.msg);
        return EXIT_USAGE;
    }
    if (mem && cfg.ram_size == 0) {
        cli_error("--mem must be a positive size like 256M");
        return EXIT_USAGE;
    }
    if (max_mem && (cli_parse_size(max_mem, &cfg.max_ram_size, &err) < 0 ||
                    cfg.max_ram_size == 0)) {
        cli_error("--max-mem must be a positive size like 4G, not '%s'", max_mem);
        return EXIT_USAGE;
    }
    if (smp) {
        char *end;
        long n = strtol(smp, &end, 10);
        if (*smp == '\0' || *end != '\0' || n < 1 || n > MACHINE_MAX_HARTS) {
            cli_error("--smp must be a number from 1 to %d, not '%s'", MACHINE_MAX_HARTS, smp);
            return EXIT_USAGE;
        }
        cfg.nharts = (unsigned)n;
    }

    char guest_dir[PATH_MAX], kernel_path[PATH_MAX + 32], initrd_path[PATH_MAX + 32];
    if (!cfg.bios && !cfg.kernel && (incoming || restore || standby)) {
        /* The guest comes from the stream; the built-in kernel, if there
         * is one, only serves a later reboot. */
        if (find_guest_dir(guest_dir, sizeof guest_dir) == 0) {
            snprintf(kernel_path, sizeof kernel_path, "%s/Image", guest_dir);
            cfg.kernel = kernel_path;
            if (!cfg.initrd) {
                snprintf(initrd_path, sizeof initrd_path, "%s/initramfs.cpio", guest_dir);
                cfg.initrd = initrd_path;
            }
        }
    } else if (!cfg.bios && !cfg.kernel) {
        if (find_guest_dir(guest_dir, sizeof guest_dir) < 0) {
            cli_error("no --kernel given and the built-in guest was not found "
                      "(build it with 'make guest' or set FERRY_GUEST_DIR)");
            return 1;
        }
        snprintf(kernel_path, sizeof kernel_path, "%s/Image", guest_dir);
        cfg.kernel = kernel_path;
        if (!cfg.initrd) {
            snprintf(initrd_path, sizeof initrd_path, "%s/initramfs.cpio", guest_dir);
            cfg.initrd = initrd_path;
        }
    }
    if (!cfg.append)
        cfg.append = DEFAULT_APPEND;
    if (!incoming && !restore && !standby) {
        if (!cfg.ram_size)
            cfg.ram_size = 256ull << 20;
        if (!cfg.nharts)
            cfg.nharts = 1;
    }

    if (!!incoming + !!restore + !!standby > 1) {
        cli_error("--incoming, --restore and --standby cannot be combined");
        return EXIT_USAGE;
    }
    if (standby && strncmp(standby, "tcp:", 4) != 0 && strncmp(standby, "tls:", 4) != 0) {
        cli_error("--standby must be tcp:ADDR:PORT or tls:ADDR:PORT, not '%s'", standby);
        return EXIT_USAGE;
    }
    if ((fence || heartbeat) && !standby) {
        cli_error("--fence and --heartbeat-timeout only go with --standby");
        return EXIT_USAGE;
    }
    uint64_t heartbeat_ns = 500ull * 1000 * 1000;
    if (heartbeat) {
        double ns;
        if (cli_parse_duration(heartbeat, &ns) < 0 || ns < 1e6) {
            cli_error("--heartbeat-timeout must be a duration like 500ms or 2s, not '%s'",
                      heartbeat);
            return EXIT_USAGE;
        }
        heartbeat_ns = (uint64_t)ns;
    }
    if (lease_ttl && !arbiter_url) {
        cli_error("--lease-ttl only goes with --arbiter");
        return EXIT_USAGE;
    }
    if (arbiter_url && (incoming || restore)) {
        cli_error("--arbiter goes with a VM that boots here or a --standby");
        return EXIT_USAGE;
    }
    struct arbiter *arbiter = NULL;
    if (arbiter_url) {
        char *end;
        long ttl = lease_ttl ? strtol(lease_ttl, &end, 10) : ARBITER_DEFAULT_TTL_S;
        if (lease_ttl && (*lease_ttl == '\0' || *end != '\0'))
            ttl = -1;
        if (arbiter_open(arbiter_url, ttl > 0 && ttl <= 3600 ? (unsigned)ttl : 0, &arbiter,
                         &err) < 0) {
            cli_error("%s", err.msg);
            return EXIT_USAGE;
        }
    }
    if (incoming && strncmp(incoming, "tcp:", 4) != 0 && strncmp(incoming, "tls:", 4) != 0) {
        cli_error("--incoming must be tcp:ADDR:PORT or tls:ADDR:PORT, not '%s'", incoming);
        return EXIT_USAGE;
    }
    const char *listen_uri = incoming ? incoming : standby;
    if (listen_uri && strncmp(listen_uri, "tls:", 4) == 0 && cli_tls_check(listen_uri, &tls) < 0)
        return EXIT_USAGE;
    if (!tls_config_empty(&tls)) {
        /* Without a tls: listener the options are the credentials of
         * later outgoing migrations and replications. */
        struct error tls_err;
        if (tls_config_check(&tls, &tls_err) < 0) {
            cli_error("%s", tls_err.msg);
            return EXIT_USAGE;
        }
        tls_set_default(&tls);
    }
    char restore_uri[PATH_MAX + 8];
    const char *receive_uri = incoming;
    if (restore) {
        snprintf(restore_uri, sizeof restore_uri, "file:%s", restore);
        receive_uri = restore_uri;
    }

    static struct machine m; /* large: keep it off the stack */
    int status;
    if (signals_watch() < 0) {
        cli_error("cannot start the signal watcher");
        return 1;
    }
    uint64_t start_ns = vclock_host_ns(), instructions = 0, set_timer_calls = 0;
    struct jit_stats jstats = {0};
    for (;;) {
        int rc;
        struct ctl_server *ctl = NULL;
        /* A destination opens its control socket before the stream comes,
         * so that doing so is not part of the guest's downtime. */
        if (control && receive_uri && !standby && ctl_open(control, &ctl, &err) < 0) {
            cli_error("%s", err.msg);
            return 1;
        }
        if (control && standby) {
            /* A standby answers status, takeover and quit from the start
             * (migrate/standby_state.h), long before it has a guest. */
            standby_state_begin(standby, heartbeat_ns, fence != NULL, arbiter_url);
            if (ctl_start(&m, control, &ctl, &err) < 0) {
                standby_state_end();
                cli_error("%s", err.msg);
                return 1;
            }
        }
        if (ctl)
            signals_set_control_path(control);
        if (standby) {
            struct standby_params sp = {standby, fence, heartbeat_ns, arbiter};
            rc = standby_run(&m, &cfg, &sp, &err);
            if (rc > 0) {
                ctl_stop(ctl, 0);
                fprintf(stderr, "ferry: %s\n", err.msg);
                return 0;
            }
        } else if (receive_uri) {
            rc = migration_receive(&m, &cfg, receive_uri, &err);
        } else {
            rc = machine_init(&m, &cfg, &err);
        }
        if (rc == 0 && arbiter && !standby && !arbiter_current()) {
            /* A primary runs the guest only holding the arbiter's key. */
            rc = arbiter_take(arbiter, "primary", &err);
            if (rc < 0)
                machine_destroy(&m);
        }
        if (rc < 0) {
            ctl_stop(ctl, 0);
            arbiter_close(arbiter);
            cli_error("%s", err.msg);
            return 1;
        }
        if (arbiter) {
            arbiter_set_machine(arbiter, &m);
            if (arbiter_keep(arbiter, &err) < 0) {
                ctl_stop(ctl, 0);
                machine_destroy(&m);
                arbiter_close(arbiter);
                cli_error("%s", err.msg);
                return 1;
            }
        }
        if (ctl && !standby) {
            ctl_serve(ctl, &m);
        } else if (ctl) {
            /* served since the start */
        } else if (control && ctl_start(&m, control, &ctl, &err) < 0) {
            cli_error("%s", err.msg);
            machine_destroy(&m);
            return 1;
        }
        signals_set_control_path(ctl ? control : NULL);
        if (receive_uri || standby) {
            migration_receive_started(&m);
            fprintf(stderr, "ferry: guest resumed from %s\n", standby ? standby : receive_uri);
        }
        signals_set_machine(&m);
        status = machine_run(&m);
        signals_set_machine(NULL);
        if (arbiter)
            arbiter_set_machine(arbiter, NULL);
        ctl_stop(ctl, m.stop == MACHINE_MIGRATED ? 5000 : 0);
        signals_set_control_path(NULL);
        migration_join(&m);
        migration_receive_stop(&m);
        instructions += machine_instructions(&m);
        for (unsigned i = 0; i < m.nharts; i++) {
            set_timer_calls += m.harts[i].sbi_set_timer_calls;
            jit_stats_add(&m.harts[i], &jstats);
        }
        enum machine_stop why = m.stop;
        if (why == MACHINE_QUIT && status > 128) {
            const char *sig = sigabbrev_np(status - 128);
            fprintf(stderr, "ferry: stopped by SIG%s\n", sig ? sig : "?");
        }
        if (why == MACHINE_MIGRATED) {
            struct migration_status st;
            struct replication_status rs;
            migration_get_status(&m, &st);
            replication_get_status(&m, &rs);
            if (rs.state == REPL_SWITCHED)
                fprintf(stderr, "ferry: guest switched over to its standby %s\n", rs.uri);
            else
                fprintf(stderr, "ferry: guest %s %s\n",
                        strncmp(st.uri, "file:", 5) == 0 ? "saved to" : "migrated to", st.uri);
        }
        machine_destroy(&m);
        if (why != MACHINE_REBOOT)
            break;
        /* A reboot boots the configured kernel afresh. */
        receive_uri = NULL;
        standby = NULL;
        cfg.no_boot = false;
    }
    arbiter_close(arbiter);
    if (stats) {
        /* Wall-clock MIPS, and MIPS per second of CPU time the process got
         * (the latter is what a loaded host does not distort). */
        double secs = (double)(vclock_host_ns() - start_ns) / 1e9;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        fprintf(stderr, "ferry: stats: instructions=%llu seconds=%.3f mips=%.1f cpu_seconds=%.3f "
                "mips_per_cpu_second=%.1f sbi_set_timer_calls=%llu\n",
                (unsigned long long)instructions, secs,
                secs > 0 ? (double)instructions / secs / 1e6 : 0.0, cpu,
                cpu > 0 ? (double)instructions / cpu / 1e6 : 0.0,
                (unsigned long long)set_timer_calls);
        if (cfg.jit)
            fprintf(stderr, "ferry: stats: jit blocks=%llu flushes=%llu code_write_flushes=%llu "
                    "translate_seconds=%.3f\n", (unsigned long long)jstats.blocks,
                    (unsigned long long)jstats.flushes, (unsigned long long)jstats.code_writes,
                    (double)jstats.translate_ns / 1e9);
    }
    return status;
}
