/* The control plane's bookkeeping against a real running machine (a
 * bare-metal hart spinning on `j .`): run state transitions are checked,
 * a pause is a counted hold per owner (a replication epoch's release never
 * resumes an operator pause; `resume` is refused while a job holds the
 * guest), the dirty log has one registered reader, and a job is freed only
 * after its owner joined it and the last waiter put its reference. */
#include <elf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "machine/machine.h"
#include "check.h"   /* atomic counters: a waiter thread checks too (test_jobs) */

static struct machine m;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A minimal RISC-V ELF: one segment at the RAM base holding `jal x0, 0`. */
static int write_spin_elf(char *path)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    struct {
        Elf64_Ehdr eh;
        Elf64_Phdr ph;
        uint32_t code;
    } __attribute__((packed)) img = {0};
    memcpy(img.eh.e_ident, ELFMAG, SELFMAG);
    img.eh.e_ident[EI_CLASS] = ELFCLASS64;
    img.eh.e_ident[EI_DATA] = ELFDATA2LSB;
    img.eh.e_ident[EI_VERSION] = EV_CURRENT;
    img.eh.e_type = ET_EXEC;
    img.eh.e_machine = EM_RISCV;
    img.eh.e_version = EV_CURRENT;
    img.eh.e_entry = MEMMAP_RAM_BASE;
    img.eh.e_phoff = sizeof img.eh;
    img.eh.e_ehsize = sizeof img.eh;
    img.eh.e_phentsize = sizeof img.ph;
    img.eh.e_phnum = 1;
    img.ph.p_type = PT_LOAD;
    img.ph.p_offset = sizeof img.eh + sizeof img.ph;
    img.ph.p_vaddr = img.ph.p_paddr = MEMMAP_RAM_BASE;
    img.ph.p_filesz = img.ph.p_memsz = 4;
    img.code = 0x0000006f;
    bool ok = write(fd, &img, sizeof img) == (ssize_t)sizeof img;
    close(fd);
    return ok ? 0 : -1;
}

static void *run_thread(void *arg)
{
    (void)arg;
    machine_run(&m);
    return NULL;
}

/* Instructions retired, read while the loop is parked (by a hold of our
 * own when it runs), so the read never races the vCPU thread. */
static uint64_t instret_parked(void)
{
    struct error err;
    bool hold = runstate_get(&m) == RUN_STATE_RUNNING;
    if (hold && runstate_hold(&m, HOLD_SAVE, &err) < 0)
        return 0;
    uint64_t n = machine_instructions(&m);
    if (hold)
        runstate_release(&m, HOLD_SAVE, &err);
    return n;
}

/* Whether the hart executes: instructions advance within 2 s (a loaded
 * host may not schedule the vCPU thread at once); a held hart must not
 * advance over 30 ms. */
static bool guest_runs(void)
{
    uint64_t before = instret_parked();
    for (int i = 0; i < 200; i++) {
        sleep_ms(10);
        if (instret_parked() != before)
            return true;
        if (i == 2 && runstate_get(&m) != RUN_STATE_RUNNING)
            return false;
    }
    return false;
}

static void test_holds(void)
{
    struct error err;
    CHECK(runstate_get(&m) == RUN_STATE_RUNNING, "starts running");
    CHECK(runstate_release(&m, HOLD_MIGRATION, &err) < 0, "releasing a hold nobody took");

    CHECK(runstate_hold(&m, HOLD_OPERATOR, &err) == 0, "operator pause: %s", err.msg);
    CHECK(runstate_get(&m) == RUN_STATE_PAUSED, "paused");
    CHECK(runstate_hold(&m, HOLD_OPERATOR, &err) == 0, "a second pause is a no-op");
    CHECK(runstate_holds(&m, HOLD_OPERATOR) == 1, "the operator holds once");
    CHECK(!guest_runs(), "the guest does not run while paused");

    /* A replication epoch inside the operator's pause. */
    CHECK(runstate_hold(&m, HOLD_REPLICATION, &err) == 0, "epoch hold: %s", err.msg);
    CHECK(runstate_release(&m, HOLD_REPLICATION, &err) == 0, "epoch release: %s", err.msg);
    CHECK(runstate_get(&m) == RUN_STATE_PAUSED && !guest_runs(),
          "an epoch's release must not resume an operator pause");

    /* A migration's final copy: resume is refused until it is over. */
    CHECK(runstate_hold(&m, HOLD_MIGRATION, &err) == 0, "migration hold: %s", err.msg);
    CHECK(runstate_transition(&m, RUN_STATE_PAUSED, RUN_STATE_COMPLETING, &err) == 0,
          "to completing: %s", err.msg);
    CHECK(runstate_transition(&m, RUN_STATE_PAUSED, RUN_STATE_RUNNING, &err) < 0 &&
          strstr(err.msg, "completing"), "a transition from the wrong state is refused");
    CHECK(runstate_operator_resume(&m, &err) < 0 && strstr(err.msg, "completing"),
          "resume during the final copy refused (%s)", err.msg);
    CHECK(runstate_release(&m, HOLD_MIGRATION, &err) < 0, "no release while completing");
    CHECK(!guest_runs(), "still parked");
    CHECK(runstate_transition(&m, RUN_STATE_COMPLETING, RUN_STATE_PAUSED, &err) == 0,
          "back to paused: %s", err.msg);
    CHECK(runstate_operator_resume(&m, &err) < 0 && strstr(err.msg, "migration"),
          "resume refused while the migration holds (%s)", err.msg);
    CHECK(runstate_release(&m, HOLD_MIGRATION, &err) == 0, "migration release: %s", err.msg);
    CHECK(runstate_get(&m) == RUN_STATE_PAUSED, "the operator still holds it");
    CHECK(runstate_operator_resume(&m, &err) == 0, "operator resume: %s", err.msg);
    CHECK(runstate_get(&m) == RUN_STATE_RUNNING && guest_runs(), "running again");
    CHECK(runstate_operator_resume(&m, &err) == 0, "resume without a hold: nothing to do");

    /* A handover that ends uncertain: only the operator may resume. */
    CHECK(runstate_hold(&m, HOLD_MIGRATION, &err) == 0, "hold: %s", err.msg);
    runstate_transition(&m, RUN_STATE_PAUSED, RUN_STATE_COMPLETING, &err);
    runstate_transition(&m, RUN_STATE_COMPLETING, RUN_STATE_HANDOVER, &err);
    CHECK(runstate_operator_resume(&m, &err) < 0, "resume refused during a handover");
    CHECK(runstate_hand_to_operator(&m, HOLD_MIGRATION, RUN_STATE_HANDOVER, &err) == 0,
          "hand to operator: %s", err.msg);
    CHECK(runstate_holds(&m, HOLD_MIGRATION) == 0 && runstate_holds(&m, HOLD_OPERATOR) == 1,
          "the hold moved to the operator");
    CHECK(!guest_runs(), "paused after the uncertain handover");
    CHECK(runstate_operator_resume(&m, &err) == 0 && guest_runs(), "the operator resumes");

    /* Post-copy on the source: the guest runs on the destination; a broken
     * connection splits the state; resume is refused throughout. */
    CHECK(runstate_hold(&m, HOLD_MIGRATION, &err) == 0, "hold: %s", err.msg);
    runstate_transition(&m, RUN_STATE_PAUSED, RUN_STATE_COMPLETING, &err);
    runstate_transition(&m, RUN_STATE_COMPLETING, RUN_STATE_HANDOVER, &err);
    CHECK(runstate_transition(&m, RUN_STATE_HANDOVER, RUN_STATE_POSTCOPY, &err) == 0,
          "to postcopy-active: %s", err.msg);
    CHECK(runstate_operator_resume(&m, &err) < 0 && strstr(err.msg, "split"),
          "resume refused in post-copy (%s)", err.msg);
    CHECK(runstate_transition(&m, RUN_STATE_POSTCOPY, RUN_STATE_POSTCOPY_PAUSED, &err) == 0 &&
          runstate_get(&m) == RUN_STATE_POSTCOPY_PAUSED, "to postcopy-paused");
    CHECK(runstate_operator_resume(&m, &err) < 0 && strstr(err.msg, "postcopy-paused") &&
          !guest_runs(), "resume refused while post-copy is paused (%s)", err.msg);
    CHECK(runstate_release(&m, HOLD_MIGRATION, &err) < 0, "no release in post-copy");
    CHECK(strcmp(runstate_name(RUN_STATE_POSTCOPY), "postcopy-active") == 0 &&
          strcmp(runstate_name(RUN_STATE_POSTCOPY_PAUSED), "postcopy-paused") == 0, "names");
    /* Back to running for the tests after this one. */
    runstate_transition(&m, RUN_STATE_POSTCOPY_PAUSED, RUN_STATE_PAUSED, &err);
    CHECK(runstate_release(&m, HOLD_MIGRATION, &err) == 0 && guest_runs(), "running again");
}

static void test_dirty_readers(void)
{
    struct error err;
    struct dirty_reader a = {0}, b = {0};
    uint64_t *bits = calloc(m.bus.ram.dirty_words, 8);
    CHECK(dirty_reader_open(&m, &a, "migration", &err) == 0, "first reader: %s", err.msg);
    CHECK(dirty_reader_open(&m, &b, "replication", &err) < 0 && strstr(err.msg, "migration"),
          "a second reader is refused, naming the first (%s)", err.msg);
    CHECK(dirty_reader_harvest(&a, bits, &err) >= 0, "the reader harvests: %s", err.msg);
    b.m = &m;
    b.owner = "replication";
    CHECK(dirty_reader_harvest(&b, bits, &err) < 0, "an unregistered reader cannot harvest");
    b.m = NULL;
    dirty_reader_close(&a);
    CHECK(dirty_reader_open(&m, &b, "replication", &err) == 0, "free again: %s", err.msg);
    dirty_reader_close(&b);
    free(bits);
}

/* A job whose thread waits until told to finish. */
struct test_job {
    struct job job;
    atomic_bool go;
};
static int destroyed;

static void test_job_stop(struct job *j) { atomic_store(&((struct test_job *)j)->go, true); }
static void test_job_destroy(struct job *j)
{
    destroyed++;
    free(j);
}
static const struct job_ops test_job_ops = {test_job_stop, test_job_destroy};

static void *test_job_thread(void *arg)
{
    struct test_job *t = arg;
    while (!atomic_load(&t->go))
        sleep_ms(1);
    job_finish(&t->job);
    return NULL;
}

static struct test_job *new_job(enum job_kind kind)
{
    struct test_job *t = calloc(1, sizeof *t);
    job_init(&t->job, kind, &test_job_ops, &m);
    atomic_init(&t->go, false);
    return t;
}

static void *waiter_thread(void *arg)
{
    struct job *j = arg;
    job_wait(j);
    sleep_ms(20); /* still reading after the owner moved on */
    CHECK(j->finished && j->kind == JOB_SAVE, "the job is intact while referenced");
    job_put(j);
    return NULL;
}

static void test_jobs(void)
{
    struct error err;
    struct test_job *a = new_job(JOB_SAVE);
    CHECK(job_start(&m, &a->job, test_job_thread, &err) == 0, "start: %s", err.msg);
    struct test_job *b = new_job(JOB_MIGRATE);
    CHECK(job_start(&m, &b->job, test_job_thread, &err) < 0 && strstr(err.msg, "save"),
          "a second job is refused, naming the first (%s)", err.msg);
    CHECK(job_check_idle(&m, JOB_REPLICATE, &err) < 0, "not idle");
    job_put(&b->job);
    CHECK(destroyed == 1, "the refused job is freed by its creator's put");

    struct job *ref = job_get(&m, JOB_FAMILY_MIGRATION);
    CHECK(ref == &a->job, "job_get finds the save");
    pthread_t waiter;
    pthread_create(&waiter, NULL, waiter_thread, ref);
    atomic_store(&a->go, true);
    sleep_ms(5);
    /* The next job reaps the finished one (join, keep as the latest) while
     * the waiter still holds it. */
    struct test_job *c = new_job(JOB_REPLICATE);
    while (job_start(&m, &c->job, test_job_thread, &err) < 0)
        sleep_ms(1);
    CHECK(destroyed == 1, "the save is kept as the latest migration-family job");
    struct job *latest = job_get(&m, JOB_FAMILY_MIGRATION);
    CHECK(latest == &a->job, "the latest save's status stays readable");
    job_put(latest);
    pthread_join(waiter, NULL);
    job_slot_destroy(&m.jobs); /* stops and joins c, drops both */
    CHECK(destroyed == 3, "every job freed once (%d)", destroyed);
    job_slot_init(&m.jobs);
}

int main(void)
{
    char path[] = "/tmp/ferry-runstate-XXXXXX";
    struct error err;
    if (write_spin_elf(path) < 0) {
        printf("FAIL: cannot write the test ELF\n");
        return 1;
    }
    struct machine_config cfg = {.ram_size = 16ull << 20, .nharts = 1, .bios = path,
                                 .console = "none", .no_rng = true};
    if (machine_init(&m, &cfg, &err) < 0) {
        printf("FAIL: machine_init: %s\n", err.msg);
        unlink(path);
        return 1;
    }
    unlink(path);
    pthread_t t;
    pthread_create(&t, NULL, run_thread, NULL);
    test_holds();
    test_dirty_readers();
    test_jobs();
    machine_request_stop(&m, MACHINE_QUIT, 0);
    pthread_join(t, NULL);
    CHECK(runstate_get(&m) == RUN_STATE_SHUTDOWN, "shut down after quit");
    machine_destroy(&m);
    printf("%s: %d checks, %d failures\n", __FILE__, checks, failures);
    return failures ? 1 : 0;
}
