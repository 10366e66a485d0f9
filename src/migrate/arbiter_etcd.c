/* Arbitration by etcd (see arbiter_etcd.h). */
#include "migrate/arbiter_etcd.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/output_gate.h"
#include "base/escape.h"
#include "machine/machine.h"
#include "migrate/http_post.h"

#define KEY_MAX 200
/* Each request to one endpoint; all endpoints of one call share twice that. */
#define REQUEST_MS_MAX 1000
#define RETRY_NS (100ull * 1000 * 1000)
#define TICK_NS (20ull * 1000 * 1000)

struct endpoint_addr {
    char host[64];
    char port[8];
};

struct arbiter {
    char url[300];
    struct endpoint_addr ep[ARBITER_MAX_ENDPOINTS];
    unsigned nep, preferred;
    char key[KEY_MAX + 1];
    unsigned ttl_s;
    char who[128];

    /* Held while the machine is used (pause, resume) and while it is
     * replaced: the machine never goes away under a pause. Taken before mu. */
    pthread_mutex_t m_mu;
    pthread_mutex_t mu;            /* everything below */
    enum arbiter_state state;
    int64_t lease;
    uint64_t token;
    uint64_t valid_until;          /* vclock_host_ns; 0: never valid */
    uint64_t last_send;            /* of the last successful renewal */
    struct machine *m;
    bool paused;                   /* the arbiter's hold is on m */
    bool thread_running, stop;
    pthread_t thread;
    uint64_t renewals, renew_failures;
    uint64_t last_renew_ns, max_renew_ns;
    char error[256];
};

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct arbiter *current;

const char *arbiter_state_name(enum arbiter_state s)
{
    static const char *names[] = {"none", "acquiring", "holding", "suspended", "lost",
                                  "released"};
    return (unsigned)s <= ARBITER_RELEASED ? names[s] : "unknown";
}

/* ---- URL, base64, JSON helpers ---- */

int arbiter_open(const char *url, unsigned ttl_s, struct arbiter **out, struct error *err)
{
    if (strncmp(url, "etcd://", 7) != 0)
        return error_set(err, "--arbiter must be etcd://HOST:PORT[,HOST:PORT...]/KEY");
    if (ttl_s < 1 || ttl_s > 3600)
        return error_set(err, "the lease TTL must be from 1 to 3600 s");
    struct arbiter *a = calloc(1, sizeof *a);
    if (!a)
        return error_set(err, "out of memory");
    snprintf(a->url, sizeof a->url, "%s", url);
    const char *p = url + 7, *slash = strchr(p, '/');
    if (!slash || !slash[1]) {
        free(a);
        return error_set(err, "--arbiter '%s' names no key (etcd://HOST:PORT/KEY)", url);
    }
    const char *key = slash + 1;
    if (strlen(key) > KEY_MAX) {
        free(a);
        return error_set(err, "--arbiter: the key is longer than %d bytes", KEY_MAX);
    }
    for (const char *k = key; *k; k++)
        if (*k <= ' ' || *k > '~') {
            free(a);
            return error_set(err, "--arbiter: the key must be printable ASCII without spaces");
        }
    snprintf(a->key, sizeof a->key, "%s", key);
    while (p < slash) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *end = comma ? comma : slash;
        const char *colon = NULL;
        for (const char *c = p; c < end; c++)
            if (*c == ':')
                colon = c;
        size_t hl = colon ? (size_t)(colon - p) : 0, pl = colon ? (size_t)(end - colon - 1) : 0;
        if (!colon || hl == 0 || hl >= sizeof a->ep[0].host || pl == 0 ||
            pl >= sizeof a->ep[0].port || a->nep == ARBITER_MAX_ENDPOINTS ||
            (comma && comma + 1 == slash)) {
            free(a);
            return error_set(err, "--arbiter: bad endpoint list in '%s' (at most %d numeric "
                             "HOST:PORT, comma-separated)", url, ARBITER_MAX_ENDPOINTS);
        }
        memcpy(a->ep[a->nep].host, p, hl);
        memcpy(a->ep[a->nep].port, colon + 1, pl);
        a->nep++;
        p = comma ? comma + 1 : slash;
    }
    a->ttl_s = ttl_s;
    pthread_mutex_init(&a->m_mu, NULL);
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    return 0;
}

static void base64(const void *data, size_t len, char *out, size_t cap)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *d = data;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < cap; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0) |
                     (i + 2 < len ? d[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Decodes base64 text into out (at most cap-1 bytes, NUL-terminated);
 * stops at the first character that is not base64. */
static void unbase64(const char *in, char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (; *in && o + 1 < cap; in++) {
        const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *p = strchr(tab, *in);
        if (!p || *in == '\0')
            break;
        acc = acc << 6 | (uint32_t)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    out[o] = '\0';
}

/* An int64 the gateway sends as a decimal string (or a JSON integer);
 * absent: 0. -1 if malformed. */
static int get_i64(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) > 20)
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (*end || errno)
        return -1;
    *out = n;
    return 0;
}

/* POSTs req (taken) to path on the endpoints in turn until one answers;
 * *resp is the answer's JSON object (HTTP 200). */
static int call(struct arbiter *a, const char *path, json_t *req, json_t **resp, int timeout_ms,
                struct error *err)
{
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct http_answer *ans = malloc(sizeof *ans);
    if (!body || !ans) {
        free(body);
        free(ans);
        return error_set(err, "out of memory");
    }
    int rc = -1;
    uint64_t deadline = vclock_host_ns() + (uint64_t)timeout_ms * 1000000;
    unsigned first = __atomic_load_n(&a->preferred, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < a->nep; i++) {
        unsigned e = (first + i) % a->nep;
        uint64_t now = vclock_host_ns();
        if (now >= deadline)
            break;
        /* A hung member must not eat the whole budget: share it among
         * the members not tried yet. */
        int left = (int)((deadline - now) / 1000000);
        int each = left / (int)(a->nep - i);
        if (each > REQUEST_MS_MAX)
            each = REQUEST_MS_MAX;
        if (each < 1)
            break;
        if (http_post_json(a->ep[e].host, a->ep[e].port, path, body, each, ans, err) < 0) {
            error_prefix(err, "etcd %s:%s%s", a->ep[e].host, a->ep[e].port, path);
            /* Next time start with the next member. */
            __atomic_store_n(&a->preferred, (e + 1) % a->nep, __ATOMIC_RELAXED);
            continue;
        }
        json_error_t jerr;
        json_t *j = json_loadb(ans->body, ans->len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j || !json_is_object(j)) {
            json_decref(j);
            error_set(err, "etcd %s:%s%s: the answer is not a JSON object", a->ep[e].host,
                      a->ep[e].port, path);
            continue;
        }
        if (ans->status != 200) {
            const char *msg = json_string_value(json_object_get(j, "error"));
            error_set(err, "etcd %s:%s%s: HTTP %d: %s", a->ep[e].host, a->ep[e].port, path,
                      ans->status, msg ? peer_text(msg, strlen(msg) > 200 ? 200 : strlen(msg)).s
                                       : "no message");
            json_decref(j);
            /* A member without quorum answers an error: try another. */
            __atomic_store_n(&a->preferred, (e + 1) % a->nep, __ATOMIC_RELAXED);
            continue;
        }
        __atomic_store_n(&a->preferred, e, __ATOMIC_RELAXED);
        *resp = j;
        rc = 0;
        break;
    }
    if (rc < 0 && !err->msg[0])
        error_set(err, "etcd: no endpoint answered in time");
    free(body);
    free(ans);
    return rc;
}

static int request_ms(const struct arbiter *a)
{
    /* A renewal must be able to fail and be retried well within the TTL. */
    int ms = (int)(a->ttl_s * 1000 / 4);
    return ms < 2 * REQUEST_MS_MAX ? ms : 2 * REQUEST_MS_MAX;
}

static int lease_grant(struct arbiter *a, int64_t *lease, uint64_t *t_send, struct error *err)
{
    json_t *resp;
    *t_send = vclock_host_ns();
    if (call(a, "/v3/lease/grant", json_pack("{s:I}", "TTL", (json_int_t)a->ttl_s), &resp,
             request_ms(a), err) < 0)
        return -1;
    int64_t id, ttl;
    int rc = 0;
    if (get_i64(resp, "ID", &id) < 0 || get_i64(resp, "TTL", &ttl) < 0 || id == 0 || ttl <= 0)
        rc = error_set(err, "etcd refused a lease of %u s", a->ttl_s);
    else
        *lease = id;
    json_decref(resp);
    return rc;
}

/* Renews lease: 1 renewed (ttl_out seconds), 0 the lease is gone, -1 no answer. */
static int lease_keepalive(struct arbiter *a, int64_t lease, int64_t *ttl_out, struct error *err)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)lease);
    json_t *resp;
    if (call(a, "/v3/lease/keepalive", json_pack("{s:s}", "ID", id), &resp, request_ms(a),
             err) < 0)
        return -1;
    json_t *result = json_object_get(resp, "result");
    int64_t ttl = 0;
    int rc;
    if (!json_is_object(result) || get_i64(result, "TTL", &ttl) < 0)
        rc = error_set(err, "etcd: malformed keepalive answer");
    else
        rc = ttl > 0 ? 1 : 0;
    *ttl_out = ttl;
    json_decref(resp);
    return rc;
}

static int lease_revoke(struct arbiter *a, int64_t lease, struct error *err)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)lease);
    json_t *resp;
    if (call(a, "/v3/lease/revoke", json_pack("{s:s}", "ID", id), &resp, request_ms(a), err) < 0)
        return -1;
    json_decref(resp);
    return 0;
}

/* One transaction: put KEY=who with lease if KEY does not exist. 1 taken
 * (*token = the revision), 0 someone holds it (holder: its value), -1. */
static int key_take(struct arbiter *a, int64_t lease, uint64_t *token, char *holder, size_t hcap,
                    struct error *err)
{
    char k64[KEY_MAX * 2], v64[sizeof a->who * 2], id[24];
    base64(a->key, strlen(a->key), k64, sizeof k64);
    base64(a->who, strlen(a->who), v64, sizeof v64);
    snprintf(id, sizeof id, "%lld", (long long)lease);
    json_t *req = json_pack(
        "{s:[{s:s, s:s, s:s, s:s}], s:[{s:{s:s, s:s, s:s}}], s:[{s:{s:s}}]}",
        "compare", "key", k64, "target", "CREATE", "result", "EQUAL", "create_revision", "0",
        "success", "request_put", "key", k64, "value", v64, "lease", id,
        "failure", "request_range", "key", k64);
    json_t *resp;
    if (call(a, "/v3/kv/txn", req, &resp, request_ms(a), err) < 0)
        return -1;
    int rc = 0;
    int64_t rev = 0;
    if (json_is_true(json_object_get(resp, "succeeded"))) {
        if (get_i64(json_object_get(resp, "header"), "revision", &rev) < 0 || rev <= 0)
            rc = error_set(err, "etcd: malformed transaction answer");
        else {
            *token = (uint64_t)rev;
            rc = 1;
        }
    } else {
        /* responses[0].response_range.kvs[0].value: who holds it (base64,
         * shown as given: escaped, bounded). */
        json_t *kv = json_array_get(json_object_get(json_object_get(json_array_get(
            json_object_get(resp, "responses"), 0), "response_range"), "kvs"), 0);
        const char *v = json_string_value(json_object_get(kv, "value"));
        char text[128];
        unbase64(v ? v : "", text, sizeof text);
        snprintf(holder, hcap, "%s", v ? peer_text(text, strlen(text)).s : "(gone meanwhile)");
    }
    json_decref(resp);
    return rc;
}

/* ---- the state ---- */

static uint64_t margin_ns(const struct arbiter *a)
{
    return (uint64_t)a->ttl_s * 1000000000ull / 5;
}

static void set_current(struct arbiter *a)
{
    pthread_mutex_lock(&current_mu);
    current = a;
    pthread_mutex_unlock(&current_mu);
}

struct arbiter *arbiter_current(void)
{
    pthread_mutex_lock(&current_mu);
    struct arbiter *a = current;
    pthread_mutex_unlock(&current_mu);
    return a;
}

static void holding(struct arbiter *a, int64_t lease, uint64_t token, uint64_t t_send)
{
    pthread_mutex_lock(&a->mu);
    a->state = ARBITER_HOLDING;
    a->lease = lease;
    a->token = token;
    a->last_send = t_send;
    a->valid_until = t_send + (uint64_t)a->ttl_s * 1000000000ull;
    pthread_mutex_unlock(&a->mu);
}

static void describe_self(struct arbiter *a, const char *who)
{
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    snprintf(a->who, sizeof a->who, "%s pid %d on %s", who, (int)getpid(), host);
}

int arbiter_take(struct arbiter *a, const char *who, struct error *err)
{
    describe_self(a, who);
    int64_t lease;
    uint64_t t_send, token = 0;
    char holder[128] = "";
    if (lease_grant(a, &lease, &t_send, err) < 0)
        return error_prefix(err, "arbiter %s", a->url);
    int rc = key_take(a, lease, &token, holder, sizeof holder, err);
    if (rc <= 0) {
        struct error ignored;
        lease_revoke(a, lease, &ignored);
        if (rc == 0)
            return error_set(err, "arbiter %s: the key is held by another (%s)", a->url,
                             holder);
        return error_prefix(err, "arbiter %s", a->url);
    }
    holding(a, lease, token, t_send);
    set_current(a);
    fprintf(stderr, "ferry: arbiter: holding %s at revision %llu (lease %lld, TTL %u s)\n",
            a->key, (unsigned long long)token, (long long)lease, a->ttl_s);
    return 0;
}

int arbiter_take_wait(struct arbiter *a, const char *who, bool (*give_up)(void), struct error *err)
{
    describe_self(a, who);
    set_current(a);
    pthread_mutex_lock(&a->mu);
    a->state = ARBITER_ACQUIRING;
    pthread_mutex_unlock(&a->mu);
    int64_t lease = 0;
    uint64_t t_lease = 0;
    bool said = false;
    for (;;) {
        struct error e = {{0}};
        if (give_up && give_up())
            return error_set(err, "gave up waiting for the arbiter's key %s", a->key);
        uint64_t t_send = vclock_host_ns(), token = 0;
        char holder[128] = "";
        int rc = -1;
        if (!lease && lease_grant(a, &lease, &t_lease, &e) < 0)
            lease = 0;
        if (lease)
            rc = key_take(a, lease, &token, holder, sizeof holder, &e);
        if (rc == 1) {
            /* Valid from the lease's own grant or last renewal. */
            holding(a, lease, token, t_lease < t_send ? t_lease : t_send);
            fprintf(stderr, "ferry: arbiter: took %s at revision %llu (the fencing token)\n",
                    a->key, (unsigned long long)token);
            return 0;
        }
        if (rc == 0 && !said) {
            fprintf(stderr, "ferry: arbiter: %s is held (by %s): waiting for its lease to "
                    "end\n", a->key, holder);
            said = true;
        }
        pthread_mutex_lock(&a->mu);
        snprintf(a->error, sizeof a->error, "%s", rc < 0 ? e.msg : "the key is held by another");
        pthread_mutex_unlock(&a->mu);
        /* Keep our own lease alive while waiting. */
        if (lease) {
            int64_t ttl;
            uint64_t t = vclock_host_ns();
            int k = lease_keepalive(a, lease, &ttl, &e);
            if (k == 0)
                lease = 0;
            else if (k == 1)
                t_lease = t;
        }
        struct timespec ts = {0, (long)RETRY_NS};
        nanosleep(&ts, NULL);
    }
}

uint64_t arbiter_token(const struct arbiter *a)
{
    return a->token;
}

/* The lease cannot be shown valid any more: close the gate, pause. */
static void suspend_locked(struct arbiter *a, enum arbiter_state st, const char *why)
{
    if (a->state == ARBITER_HOLDING || (a->state == ARBITER_SUSPENDED && st == ARBITER_LOST))
        fprintf(stderr, "ferry: arbiter: %s: no output is released and the guest stays paused%s\n",
                why, st == ARBITER_LOST ? " (only an operator may decide what happens to it)"
                                        : " until the lease is renewed");
    a->state = st;
    snprintf(a->error, sizeof a->error, "%s", why);
}

static void apply_pause(struct arbiter *a)
{
    pthread_mutex_lock(&a->m_mu);
    pthread_mutex_lock(&a->mu);
    bool want = (a->state == ARBITER_SUSPENDED || a->state == ARBITER_LOST) && !a->paused;
    bool unpause = a->state == ARBITER_HOLDING && a->paused;
    struct machine *m = a->m;
    pthread_mutex_unlock(&a->mu);
    struct error e;
    if (m && want && runstate_hold(m, HOLD_ARBITER, &e) == 0) {
        pthread_mutex_lock(&a->mu);
        a->paused = true;
        pthread_mutex_unlock(&a->mu);
    }
    if (m && unpause && runstate_release(m, HOLD_ARBITER, &e) == 0) {
        pthread_mutex_lock(&a->mu);
        a->paused = false;
        pthread_mutex_unlock(&a->mu);
        fprintf(stderr, "ferry: arbiter: lease renewed in time after all: the guest resumes\n");
    }
    pthread_mutex_unlock(&a->m_mu);
}

static void *keep_thread(void *arg)
{
    struct arbiter *a = arg;
    uint64_t period = (uint64_t)a->ttl_s * 1000000000ull / 3;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        bool stop = a->stop;
        enum arbiter_state st = a->state;
        int64_t lease = a->lease;
        uint64_t now = vclock_host_ns();
        if (st == ARBITER_HOLDING && now + margin_ns(a) >= a->valid_until)
            suspend_locked(a, ARBITER_SUSPENDED, "could not renew the arbiter's lease before it "
                           "expires");
        bool due = (st == ARBITER_HOLDING && now >= a->last_send + period) ||
                   st == ARBITER_SUSPENDED;
        pthread_mutex_unlock(&a->mu);
        if (stop)
            return NULL;
        apply_pause(a);
        if (due) {
            struct error e = {{0}};
            int64_t ttl;
            uint64_t t_send = vclock_host_ns();
            int k = lease_keepalive(a, lease, &ttl, &e);
            uint64_t t_back = vclock_host_ns();
            pthread_mutex_lock(&a->mu);
            if (a->state == ARBITER_HOLDING || a->state == ARBITER_SUSPENDED) {
                if (k == 1) {
                    a->renewals++;
                    a->last_renew_ns = t_back - t_send;
                    if (a->last_renew_ns > a->max_renew_ns)
                        a->max_renew_ns = a->last_renew_ns;
                    a->last_send = t_send;
                    a->valid_until = t_send + (uint64_t)ttl * 1000000000ull;
                    if (a->state == ARBITER_SUSPENDED &&
                        t_back + margin_ns(a) < a->valid_until)
                        a->state = ARBITER_HOLDING; /* the key never left us */
                } else if (k == 0) {
                    suspend_locked(a, ARBITER_LOST, "lost the arbiter's lease (it expired or was "
                                   "revoked): another may hold the key now");
                } else {
                    a->renew_failures++;
                    snprintf(a->error, sizeof a->error, "%s", e.msg);
                }
            }
            pthread_mutex_unlock(&a->mu);
            apply_pause(a);
        }
        struct timespec ts = {0, (long)TICK_NS};
        nanosleep(&ts, NULL);
    }
}

int arbiter_keep(struct arbiter *a, struct error *err)
{
    set_current(a);
    output_gate_set(arbiter_may_release);
    pthread_mutex_lock(&a->mu);
    bool running = a->thread_running;
    a->thread_running = true;
    pthread_mutex_unlock(&a->mu);
    if (running)
        return 0;
    if (pthread_create(&a->thread, NULL, keep_thread, a) != 0) {
        pthread_mutex_lock(&a->mu);
        a->thread_running = false;
        pthread_mutex_unlock(&a->mu);
        return error_set(err, "cannot start the arbiter's renewal thread");
    }
    return 0;
}

void arbiter_set_machine(struct arbiter *a, struct machine *m)
{
    pthread_mutex_lock(&a->m_mu);
    pthread_mutex_lock(&a->mu);
    a->m = m;
    a->paused = false; /* a new machine starts without the arbiter's hold */
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_unlock(&a->m_mu);
}

int arbiter_release(struct arbiter *a, struct error *err)
{
    pthread_mutex_lock(&a->mu);
    if (a->state != ARBITER_HOLDING) {
        pthread_mutex_unlock(&a->mu);
        return error_set(err, "the arbiter's lease is not held (%s)", arbiter_state_name(a->state));
    }
    a->state = ARBITER_RELEASED; /* the gate closes before the lease goes */
    int64_t lease = a->lease;
    pthread_mutex_unlock(&a->mu);
    if (lease_revoke(a, lease, err) < 0) {
        /* Perhaps revoked after all: the next renewal tells. */
        pthread_mutex_lock(&a->mu);
        a->state = ARBITER_HOLDING;
        pthread_mutex_unlock(&a->mu);
        return error_prefix(err, "revoking the arbiter's lease");
    }
    fprintf(stderr, "ferry: arbiter: released %s (lease revoked) for the standby\n", a->key);
    return 0;
}

void arbiter_close(struct arbiter *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    bool running = a->thread_running;
    pthread_mutex_unlock(&a->mu);
    if (running)
        pthread_join(a->thread, NULL);
    if (arbiter_current() == a) {
        output_gate_set(NULL);
        set_current(NULL);
    }
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->m_mu);
    free(a);
}

bool arbiter_may_release(void)
{
    pthread_mutex_lock(&current_mu);
    struct arbiter *a = current;
    bool ok = true;
    if (a) {
        pthread_mutex_lock(&a->mu);
        ok = a->state == ARBITER_HOLDING && vclock_host_ns() + margin_ns(a) < a->valid_until;
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&current_mu);
    return ok;
}

void arbiter_get_status(struct arbiter_status *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&current_mu);
    struct arbiter *a = current;
    if (a) {
        pthread_mutex_lock(&a->mu);
        out->state = a->state;
        snprintf(out->url, sizeof out->url, "%s", a->url);
        out->token = a->token;
        out->lease = a->lease;
        out->ttl_s = a->ttl_s;
        uint64_t now = vclock_host_ns();
        out->valid_for_ms = a->state == ARBITER_HOLDING
                                ? ((double)a->valid_until - (double)now) / 1e6 : 0;
        out->last_renew_ms = (double)a->last_renew_ns / 1e6;
        out->max_renew_ms = (double)a->max_renew_ns / 1e6;
        out->renewals = a->renewals;
        out->renew_failures = a->renew_failures;
        snprintf(out->error, sizeof out->error, "%s", a->error);
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&current_mu);
}
