/* test_history.c: the history store's contract (history.h), the same tests for each backend:
 * LMDB in a temporary directory and Redis in a real redis-server the test starts itself
 * (tests/support/dr_test_redis.h; skipped, exit 77, when redis-server is absent).
 *
 * Usage: test_history lmdb|redis CASE
 *   order       a user's events come back by (ts, arrival), the last N of them, UTF-8 and
 *               binary-looking ids intact, a user id's prefix is another user; the log holds
 *               every event in arrival order with seq 1..n
 *   idempotent  an event_id is stored once, within a batch and across batches; is_stored
 *               and the counts say which
 *   bad_input   an empty or 257-byte user id, an over-long model version: the batch fails as
 *               a whole (nothing stored), reads of such ids fail, the store keeps working
 *   impressions impressions go to the log (model version kept), between events, seq without
 *               gaps, never into the user's history
 *   threads     4 writers and 2 readers at once: every event stored once, the log gap-free
 * Redis only:
 *   outage      redis-server killed: calls fail with DR_ERR_UNAVAILABLE at once; restarted
 *               from its AOF: the next call reconnects, nothing acknowledged lost; stopped
 *               (SIGSTOP): a call fails at the timeout, and its retry stores the event once
 *   crash       a writer process acknowledges batches while redis-server is killed with
 *               SIGKILL; restarted from its AOF, every acknowledged batch is there, whole
 *   volatile    a Redis with appendonly no is refused with a message naming the fix, opened
 *               with allow_volatile (info says not durable); there a kill -9 loses an
 *               acknowledged event, the loss the crash case would catch
 *   replicas    wait_replicas 1 with no replica: the write fails with DR_ERR_UNAVAILABLE at
 *               half the timeout, naming the replicas; it is on the primary, stored once
 *   config      key prefixes keep stores apart; bad URLs are refused with a message; a port
 *               nobody listens on is DR_ERR_UNAVAILABLE
 */
#include "dr_test.h"
#include "dr_test_redis.h"
#include "driftrec.pb-c.h"
#include "history.h"
#include "workpool.h" /* dr_now_ns */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static bool is_redis;
static struct dr_test_redis redis;
static char lmdb_dir[400];

static struct dr_history *open_with(const char *prefix, struct dr_error *err, enum dr_status *st)
{
    struct dr_history *h = NULL;
    struct dr_history_opts opts = {.key_prefix = prefix, .timeout_ms = 1000};
    *st = dr_history_open(is_redis ? redis.url : lmdb_dir, &opts, &h, err);
    return h;
}

static struct dr_history *open_store(void)
{
    struct dr_error err = {0};
    enum dr_status st;
    struct dr_history *h = open_with(NULL, &err, &st);
    if (st != DR_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        exit(1);
    }
    return h;
}

static void setup(void)
{
    if (is_redis) {
        dr_test_redis_start(&redis, false);
        return;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(lmdb_dir, sizeof lmdb_dir, "%s/dr_history_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(lmdb_dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void teardown(void)
{
    if (is_redis) {
        dr_test_redis_stop(&redis);
        return;
    }
    char cmd[500];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", lmdb_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", lmdb_dir);
}

static struct dr_event ev(const char *user, const char *item, int64_t ts, const char *event_id)
{
    return (struct dr_event){.user_id = user,
                             .user_id_len = strlen(user),
                             .item_id = item,
                             .item_id_len = strlen(item),
                             .ts = ts,
                             .event_type = DRIFTREC__V1__EVENT_TYPE__CLICK,
                             .event_id = event_id,
                             .event_id_len = event_id ? strlen(event_id) : 0};
}

/* What a read collects: item ids (joined by ','), user ids checked. */
struct seen {
    char items[8192];
    size_t n, n_bad;
    const char *user;
    size_t user_len;
};

static void visit(void *ctx, const uint8_t *packed, size_t len)
{
    struct seen *s = ctx;
    Driftrec__V1__Event *e = driftrec__v1__event__unpack(NULL, len, packed);
    if (!e || e->user_id.len != s->user_len || memcmp(e->user_id.data, s->user, s->user_len)) {
        s->n_bad++;
    } else {
        size_t at = strlen(s->items);
        snprintf(s->items + at, sizeof s->items - at, "%s%.*s", at ? "," : "", (int)e->item_id.len,
                 (const char *)e->item_id.data);
    }
    if (e)
        driftrec__v1__event__free_unpacked(e, NULL);
    s->n++;
}

static const char *read_items(struct dr_history *h, const char *user, size_t user_len,
                              size_t max_events, struct seen *s)
{
    memset(s, 0, sizeof *s);
    s->user = user;
    s->user_len = user_len;
    size_t n = 0;
    enum dr_status st = dr_history_read_user(h, user, user_len, max_events, visit, s, &n);
    DR_CHECK(st == DR_OK && n == s->n && s->n_bad == 0, "read %.*s: %s, %zu visited, %zu bad",
             (int)user_len, user, dr_status_str(st), n, s->n_bad);
    return s->items;
}

/* The log as "kind:item" (impressions: "i:item@version"), with seq checked to be 1..n. */
struct log_seen {
    char text[65536];
    uint64_t n, n_bad_seq;
};

static void visit_log(void *ctx, const struct dr_history_log_record *rec)
{
    struct log_seen *s = ctx;
    if (rec->seq != ++s->n)
        s->n_bad_seq++;
    Driftrec__V1__Event *e =
        rec->packed ? driftrec__v1__event__unpack(NULL, rec->len, rec->packed) : NULL;
    size_t at = strlen(s->text);
    if (!e) {
        snprintf(s->text + at, sizeof s->text - at, "%sdamaged", at ? "," : "");
        return;
    }
    if (rec->kind == DR_HISTORY_LOG_IMPRESSION)
        snprintf(s->text + at, sizeof s->text - at, "%si:%.*s@%.*s", at ? "," : "",
                 (int)e->item_id.len, (const char *)e->item_id.data, (int)rec->model_version_len,
                 rec->model_version);
    else
        snprintf(s->text + at, sizeof s->text - at, "%se:%.*s", at ? "," : "", (int)e->item_id.len,
                 (const char *)e->item_id.data);
    driftrec__v1__event__free_unpacked(e, NULL);
}

static const char *read_log(struct dr_history *h, struct log_seen *s)
{
    memset(s, 0, sizeof *s);
    enum dr_status st = dr_history_read_log(h, visit_log, s);
    DR_CHECK(st == DR_OK && s->n_bad_seq == 0, "read_log: %s, %llu seq out of place",
             dr_status_str(st), (unsigned long long)s->n_bad_seq);
    return s->text;
}

static enum dr_status store_write(struct dr_history *h, const struct dr_event *e, size_t n,
                                  size_t *accepted, size_t *duplicates, bool *is_stored)
{
    struct dr_error err = {0};
    return dr_history_write(h, e, n, accepted, duplicates, is_stored, &err);
}

#define CHECK_STR(got, want) DR_CHECK(strcmp((got), (want)) == 0, "got %s, want %s", got, want)

static int test_order(void)
{
    struct dr_history *h = open_store();
    static const char uid[] = "\xc3\xa9l\xc3\xa8ve \xe4\xb8\xad \xf0\x9f\x98\x80 \x01\x7f";
    struct dr_event a[] = {
        ev("u1", "late", 300, NULL),          ev("u1", "early", 100, NULL),
        ev("u1", "mid-1", 200, NULL),         ev("u10", "other", 150, NULL),
        ev(uid, "utf8", 5, "\xe2\x82\xac-1"), ev("u1", "mid-2", 200, NULL), /* same ts: arrival */
    };
    size_t acc = 0, dup = 9;
    DR_CHECK(store_write(h, a, 6, &acc, &dup, NULL) == DR_OK && acc == 6 && dup == 0, "write");
    struct dr_event b[] = {ev("u1", "mid-3", 200, NULL), ev("u1", "first", -7, NULL)};
    DR_CHECK(store_write(h, b, 2, &acc, &dup, NULL) == DR_OK && acc == 2, "write 2");
    struct seen s;
    CHECK_STR(read_items(h, "u1", 2, 0, &s), "first,early,mid-1,mid-2,mid-3,late");
    CHECK_STR(read_items(h, "u1", 2, 2, &s), "mid-3,late");
    CHECK_STR(read_items(h, "u1", 2, 100, &s), "first,early,mid-1,mid-2,mid-3,late");
    CHECK_STR(read_items(h, "u10", 3, 0, &s), "other");
    CHECK_STR(read_items(h, "u", 1, 0, &s), ""); /* a prefix of u1 is not u1 */
    CHECK_STR(read_items(h, "nobody", 6, 0, &s), "");
    CHECK_STR(read_items(h, uid, sizeof uid - 1, 0, &s), "utf8");
    struct log_seen *l = malloc(sizeof *l);
    CHECK_STR(read_log(h, l), "e:late,e:early,e:mid-1,e:other,e:utf8,e:mid-2,e:mid-3,e:first");
    free(l);
    dr_history_close(h);
    /* Reopened: the same. */
    h = open_store();
    CHECK_STR(read_items(h, "u1", 2, 3, &s), "mid-2,mid-3,late");
    dr_history_close(h);
    return dr_test_failures ? 1 : 0;
}

static int test_idempotent(void)
{
    struct dr_history *h = open_store();
    struct dr_event a[] = {ev("u", "a", 1, "id-a"), ev("u", "b", 2, "id-b"),
                           ev("u", "a-again", 3, "id-a"), ev("u", "no-id", 4, NULL)};
    bool is_stored[4];
    size_t acc = 0, dup = 0;
    DR_CHECK(store_write(h, a, 4, &acc, &dup, is_stored) == DR_OK, "write");
    DR_CHECK(acc == 3 && dup == 1 && is_stored[0] && is_stored[1] && !is_stored[2] && is_stored[3],
             "acc %zu dup %zu", acc, dup);
    struct dr_event b[] = {ev("u", "b-again", 5, "id-b"), ev("u", "c", 6, "id-c"),
                           ev("v", "a-other-user", 7, "id-a"), ev("u", "no-id", 4, NULL)};
    DR_CHECK(store_write(h, b, 4, &acc, &dup, is_stored) == DR_OK, "write 2");
    DR_CHECK(acc == 2 && dup == 2 && !is_stored[0] && is_stored[1] && !is_stored[2] && is_stored[3],
             "acc %zu dup %zu", acc, dup);
    struct seen s;
    CHECK_STR(read_items(h, "u", 1, 0, &s), "a,b,no-id,no-id,c");
    CHECK_STR(read_items(h, "v", 1, 0, &s), "");
    struct log_seen *l = malloc(sizeof *l);
    CHECK_STR(read_log(h, l), "e:a,e:b,e:no-id,e:c,e:no-id");
    free(l);
    dr_history_close(h);
    return dr_test_failures ? 1 : 0;
}

static int test_bad_input(void)
{
    struct dr_history *h = open_store();
    char long_id[258];
    memset(long_id, 'x', 257);
    long_id[257] = '\0';
    struct dr_event a[] = {ev("ok", "first", 1, "id-1"), ev(long_id, "too-long", 2, NULL)};
    struct dr_error err = {0};
    size_t acc = 7;
    enum dr_status st = dr_history_write(h, a, 2, &acc, NULL, NULL, &err);
    DR_CHECK(st == DR_ERR_INVALID_ARG && strstr(err.msg, "user_id"), "257 bytes: %s %s",
             dr_status_str(st), err.msg);
    a[1] = ev("", "empty", 2, NULL);
    st = dr_history_write(h, a, 2, &acc, NULL, NULL, &err);
    DR_CHECK(st == DR_ERR_INVALID_ARG, "empty user id: %s", dr_status_str(st));
    char max_id[257];
    memset(max_id, 'm', 256);
    max_id[256] = '\0';
    a[1] = ev(max_id, "max", 2, NULL); /* 256 bytes: allowed */
    DR_CHECK(store_write(h, a, 2, &acc, NULL, NULL) == DR_OK && acc == 2, "256-byte id");
    struct seen s;
    CHECK_STR(read_items(h, "ok", 2, 0, &s), "first"); /* once: the failed batches left none */
    CHECK_STR(read_items(h, max_id, 256, 0, &s), "max");
    size_t n = 9;
    DR_CHECK(dr_history_read_user(h, long_id, 257, 0, visit, &s, &n) == DR_ERR_INVALID_ARG,
             "read 257");
    DR_CHECK(dr_history_read_user(h, "", 0, 0, visit, &s, &n) == DR_ERR_INVALID_ARG, "read 0");

    static char version[DR_HISTORY_MAX_VERSION_BYTES + 2];
    memset(version, 'v', sizeof version - 1);
    struct dr_impression imps[2] = {
        {.event = ev("ok", "shown", 3, NULL), .model_version = "v1", .model_version_len = 2},
        {.event = ev("ok", "shown-2", 3, NULL),
         .model_version = version,
         .model_version_len = DR_HISTORY_MAX_VERSION_BYTES + 1}};
    st = dr_history_log_impressions(h, imps, 2, &err);
    DR_CHECK(st == DR_ERR_INVALID_ARG, "long version: %s", dr_status_str(st));
    imps[1].model_version_len = DR_HISTORY_MAX_VERSION_BYTES;
    DR_CHECK(dr_history_log_impressions(h, imps, 2, &err) == DR_OK, "max version: %s", err.msg);
    struct log_seen *l = malloc(sizeof *l);
    read_log(h, l);
    DR_CHECK(strncmp(l->text, "e:first,e:max,i:shown@v1,i:shown-2@vvv", 38) == 0 && l->n == 4,
             "log %.60s (%llu)", l->text, (unsigned long long)l->n);
    free(l);
    DR_CHECK(store_write(h, a, 0, &acc, NULL, NULL) == DR_OK && acc == 0, "empty batch");
    DR_CHECK(dr_history_log_impressions(h, imps, 0, &err) == DR_OK, "no impressions");
    dr_history_close(h);
    return dr_test_failures ? 1 : 0;
}

static int test_impressions(void)
{
    struct dr_history *h = open_store();
    struct dr_event a[] = {ev("u", "bought", 10, "e-1")};
    size_t acc;
    DR_CHECK(store_write(h, a, 1, &acc, NULL, NULL) == DR_OK, "write");
    struct dr_impression imps[3];
    const char *items[] = {"s0", "s1", "s2"};
    for (int i = 0; i < 3; i++) {
        imps[i] = (struct dr_impression){.event = ev("u", items[i], 20, NULL),
                                         .model_version = "m-\xc3\xa9",
                                         .model_version_len = 4};
        imps[i].event.event_type = DRIFTREC__V1__EVENT_TYPE__IMPRESSION;
        imps[i].event.request_id = "req-1";
        imps[i].event.request_id_len = 5;
        imps[i].event.position = i;
        imps[i].event.has_position = true;
    }
    struct dr_error err = {0};
    DR_CHECK(dr_history_log_impressions(h, imps, 3, &err) == DR_OK, "impressions: %s", err.msg);
    struct dr_event b[] = {ev("u", "s1", 30, "e-2")};
    DR_CHECK(store_write(h, b, 1, &acc, NULL, NULL) == DR_OK, "write 2");
    DR_CHECK(dr_history_log_impressions(h, imps, 1, &err) == DR_OK, "impressions 2: %s", err.msg);
    struct log_seen *l = malloc(sizeof *l);
    CHECK_STR(read_log(h, l),
              "e:bought,i:s0@m-\xc3\xa9,i:s1@m-\xc3\xa9,i:s2@m-\xc3\xa9,e:s1,i:s0@m-\xc3\xa9");
    free(l);
    struct seen s;
    CHECK_STR(read_items(h, "u", 1, 0, &s), "bought,s1"); /* impressions are not history */
    dr_history_close(h);
    return dr_test_failures ? 1 : 0;
}

enum { N_WRITERS = 4, N_BATCHES = 150, BATCH = 5 };

struct writer {
    struct dr_history *h;
    int id;
    size_t n_failed;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char user[16], items[BATCH][32], ids[BATCH][32];
    snprintf(user, sizeof user, "w%d", w->id);
    for (int b = 0; b < N_BATCHES; b++) {
        struct dr_event e[BATCH];
        for (int j = 0; j < BATCH; j++) {
            snprintf(items[j], sizeof items[j], "%d", b * BATCH + j);
            snprintf(ids[j], sizeof ids[j], "w%d-%d-%d", w->id, b, j % 4); /* j 4 repeats 0 */
            e[j] = ev(user, items[j], b, ids[j]);
        }
        size_t acc = 0, dup = 0;
        if (store_write(w->h, e, BATCH, &acc, &dup, NULL) != DR_OK || acc != 4 || dup != 1)
            w->n_failed++;
    }
    return NULL;
}

struct reader {
    struct dr_history *h;
    atomic_bool *stop;
    size_t n_reads, n_failed;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    struct seen *s = malloc(sizeof *s);
    while (!atomic_load_explicit(r->stop, memory_order_relaxed)) {
        memset(s, 0, sizeof *s);
        s->user = "w1";
        s->user_len = 2;
        if (dr_history_read_user(r->h, "w1", 2, 10, visit, s, NULL) != DR_OK || s->n_bad)
            r->n_failed++;
        r->n_reads++;
    }
    free(s);
    return NULL;
}

static int test_threads(void)
{
    struct dr_history *h = open_store();
    pthread_t wt[N_WRITERS], rt[2];
    struct writer w[N_WRITERS];
    struct reader r[2];
    atomic_bool stop = false;
    for (int i = 0; i < 2; i++) {
        r[i] = (struct reader){.h = h, .stop = &stop};
        pthread_create(&rt[i], NULL, reader_main, &r[i]);
    }
    uint64_t t0 = dr_now_ns();
    for (int i = 0; i < N_WRITERS; i++) {
        w[i] = (struct writer){.h = h, .id = i};
        pthread_create(&wt[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < N_WRITERS; i++) {
        pthread_join(wt[i], NULL);
        DR_CHECK(w[i].n_failed == 0, "writer %d: %zu batches failed", i, w[i].n_failed);
    }
    double s_total = (double)(dr_now_ns() - t0) / 1e9;
    atomic_store_explicit(&stop, true, memory_order_relaxed); /* the joins order the rest */
    for (int i = 0; i < 2; i++) {
        pthread_join(rt[i], NULL);
        DR_CHECK(r[i].n_failed == 0, "reader %d: %zu reads failed", i, r[i].n_failed);
    }
    printf("threads: %d batches of %d events in %.2f s (%.0f batches/s), %zu reads\n",
           N_WRITERS * N_BATCHES, BATCH, s_total, N_WRITERS * N_BATCHES / s_total,
           r[0].n_reads + r[1].n_reads);
    struct log_seen *l = malloc(sizeof *l);
    read_log(h, l);
    DR_CHECK(l->n == N_WRITERS * N_BATCHES * 4, "log: %llu records", (unsigned long long)l->n);
    free(l);
    for (int i = 0; i < N_WRITERS; i++) {
        char user[16];
        snprintf(user, sizeof user, "w%d", i);
        struct seen *s = malloc(sizeof *s);
        read_items(h, user, strlen(user), 0, s);
        /* Item b*5+j for j 0..3 of each batch b, in batch order (ts = b). */
        char want[8192] = "";
        for (int b = 0; b < N_BATCHES; b++)
            for (int j = 0; j < 4; j++) {
                size_t at = strlen(want);
                snprintf(want + at, sizeof want - at, "%s%d", at ? "," : "", b * BATCH + j);
            }
        DR_CHECK(s->n == N_BATCHES * 4 && strcmp(s->items, want) == 0, "%s: %zu events", user,
                 s->n);
        free(s);
    }
    dr_history_close(h);
    return dr_test_failures ? 1 : 0;
}

/* ---- Redis only ---------------------------------------------------------------------------- */

static int test_outage(void)
{
    struct dr_history *h = open_store();
    struct dr_event a[] = {ev("u", "before", 1, "id-1")};
    size_t acc;
    DR_CHECK(store_write(h, a, 1, &acc, NULL, NULL) == DR_OK && acc == 1, "write");
    dr_test_redis_kill(&redis, SIGKILL);
    struct dr_error err = {0};
    struct dr_event b[] = {ev("u", "during", 2, "id-2")};
    uint64_t t0 = dr_now_ns();
    enum dr_status st = dr_history_write(h, b, 1, &acc, NULL, NULL, &err);
    DR_CHECK(st == DR_ERR_UNAVAILABLE && strstr(err.msg, "redis"), "write while down: %s %s",
             dr_status_str(st), err.msg);
    struct seen s = {0};
    st = dr_history_read_user(h, "u", 1, 0, visit, &s, NULL);
    DR_CHECK(st == DR_ERR_UNAVAILABLE, "read while down: %s", dr_status_str(st));
    struct log_seen *l = calloc(1, sizeof *l);
    DR_CHECK(dr_history_read_log(h, visit_log, l) == DR_ERR_UNAVAILABLE, "read_log while down");
    struct dr_impression imp = {.event = ev("u", "shown", 2, NULL)};
    DR_CHECK(dr_history_log_impressions(h, &imp, 1, &err) == DR_ERR_UNAVAILABLE,
             "impressions while down");
    double ms = (double)(dr_now_ns() - t0) / 1e6;
    DR_CHECK(ms < 2000, "the failing calls took %.0f ms", ms);
    printf("outage: %s (4 failed calls in %.1f ms)\n", err.msg, ms);

    dr_test_redis_spawn(&redis); /* the same AOF */
    DR_CHECK(store_write(h, b, 1, &acc, NULL, NULL) == DR_OK && acc == 1,
             "write after the restart");
    CHECK_STR(read_items(h, "u", 1, 0, &s), "before,during");
    CHECK_STR(read_log(h, l), "e:before,e:during");

    /* A Redis that does not answer (stopped): the call fails at the timeout (1 s here); the
     * write's outcome is unknown, and a retry with the same event_id stores it once. */
    kill(redis.pid, SIGSTOP);
    struct dr_event c[] = {ev("u", "hung", 3, "id-3")};
    t0 = dr_now_ns();
    st = dr_history_write(h, c, 1, &acc, NULL, NULL, &err);
    ms = (double)(dr_now_ns() - t0) / 1e6;
    kill(redis.pid, SIGCONT);
    DR_CHECK(st == DR_ERR_UNAVAILABLE && strstr(err.msg, "timeout") && ms > 900 && ms < 3000,
             "write to a stopped Redis: %s %s after %.0f ms", dr_status_str(st), err.msg, ms);
    printf("outage: %s (after %.0f ms)\n", err.msg, ms);
    size_t dup = 0;
    DR_CHECK(store_write(h, c, 1, &acc, &dup, NULL) == DR_OK && acc + dup == 1, "retry");
    CHECK_STR(read_items(h, "u", 1, 0, &s), "before,during,hung");
    free(l);
    dr_history_close(h);
    return dr_test_failures ? 1 : 0;
}

/* A writer process acknowledges batches on a pipe (batch number, after the write returned
 * DR_OK) until redis-server is killed under it. */
static int test_crash(void)
{
    int acks[2];
    if (pipe(acks) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t writer = fork();
    if (writer == 0) {
        close(acks[0]);
        struct dr_history *h = open_store();
        for (uint32_t b = 0;; b++) {
            char items[8][32], ids[8][32];
            struct dr_event e[8];
            for (int j = 0; j < 8; j++) {
                snprintf(items[j], sizeof items[j], "%u-%d", b, j);
                snprintf(ids[j], sizeof ids[j], "c-%u-%d", b, j);
                e[j] = ev(j % 2 ? "odd" : "even", items[j], b, ids[j]);
            }
            size_t acc;
            if (store_write(h, e, 8, &acc, NULL, NULL) != DR_OK)
                _exit(0); /* Redis is gone: not acknowledged */
            if (acc != 8 || write(acks[1], &b, sizeof b) != sizeof b)
                _exit(3);
        }
    }
    close(acks[1]);
    uint32_t b, last = 0;
    size_t n_acked = 0;
    while (n_acked < 300 && read(acks[0], &b, sizeof b) == sizeof b) {
        last = b;
        n_acked++;
    }
    dr_test_redis_kill(&redis, SIGKILL); /* mid-ingest */
    while (read(acks[0], &b, sizeof b) == sizeof b) {
        last = b;
        n_acked++;
    }
    int status = 0;
    waitpid(writer, &status, 0);
    DR_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer exit %d", status);
    DR_CHECK(n_acked == last + 1 && n_acked >= 300, "%zu acknowledged, last %u", n_acked, last);

    dr_test_redis_spawn(&redis);
    struct dr_history *h = open_store();
    struct log_seen *l = malloc(sizeof *l);
    read_log(h, l);
    /* Every acknowledged batch (8 records each), and at most one more: the one in flight at
     * the kill, applied whole or not at all. */
    DR_CHECK(l->n == n_acked * 8 || l->n == (n_acked + 1) * 8, "%llu records for %zu batches",
             (unsigned long long)l->n, n_acked);
    printf("crash: %zu batches acknowledged, %llu records after the restart\n", n_acked,
           (unsigned long long)l->n);
    struct seen *s = malloc(sizeof *s);
    read_items(h, "even", 4, 0, s);
    DR_CHECK(s->n * 2 == (size_t)l->n, "even: %zu of %llu", s->n, (unsigned long long)l->n);
    free(l);
    /* The acknowledged ids are stored: writing them again stores nothing. */
    struct dr_event again = ev("even", "x", 0, "c-0-0");
    size_t acc = 9, dup = 0;
    DR_CHECK(store_write(h, &again, 1, &acc, &dup, NULL) == DR_OK && acc == 0 && dup == 1, "c-0-0");
    free(s);
    dr_history_close(h);
    return dr_test_failures ? 1 : 0;
}

static int test_volatile(void)
{
    dr_test_redis_stop(&redis);
    dr_test_redis_start(&redis, true);
    struct dr_error err = {0};
    enum dr_status st;
    struct dr_history *h = open_with(NULL, &err, &st);
    DR_CHECK(st == DR_ERR_INVALID_ARG && !h && strstr(err.msg, "appendonly no") &&
                 strstr(err.msg, "would lose acknowledged events"),
             "volatile: %s %s", dr_status_str(st), err.msg);
    printf("volatile: %s\n", err.msg);
    struct dr_history_opts opts = {.allow_volatile = true};
    st = dr_history_open(redis.url, &opts, &h, &err);
    DR_CHECK(st == DR_OK, "allow_volatile: %s", err.msg);
    if (h) {
        struct dr_history_info info;
        dr_history_get_info(h, &info);
        DR_CHECK(!info.is_durable && strcmp(info.backend, "redis") == 0 &&
                     strcmp(info.appendonly, "no") == 0,
                 "info");
        /* The reason it is refused: acknowledged events, then a kill -9 and a restart
         * (no AOF, no snapshot): gone.  The crash case's check would see it. */
        struct dr_event e = ev("u", "acknowledged", 1, "id-1");
        size_t acc = 0;
        DR_CHECK(store_write(h, &e, 1, &acc, NULL, NULL) == DR_OK && acc == 1, "write");
        dr_history_close(h);
        dr_test_redis_kill(&redis, SIGKILL);
        dr_test_redis_spawn(&redis);
        h = NULL;
        DR_CHECK(dr_history_open(redis.url, &opts, &h, &err) == DR_OK, "reopen: %s", err.msg);
        struct seen s;
        if (h)
            CHECK_STR(read_items(h, "u", 1, 0, &s), ""); /* lost */
        dr_history_close(h);
    }
    return dr_test_failures ? 1 : 0;
}

static int test_replicas(void)
{
    struct dr_history *h = NULL;
    struct dr_error err = {0};
    struct dr_history_opts opts = {.timeout_ms = 400, .wait_replicas = 1};
    DR_CHECK(dr_history_open(redis.url, &opts, &h, &err) == DR_OK, "open: %s", err.msg);
    if (!h)
        return 1;
    struct dr_event e = ev("u", "waited", 1, "id-w");
    size_t acc = 0, dup = 0;
    uint64_t t0 = dr_now_ns();
    enum dr_status st = dr_history_write(h, &e, 1, &acc, NULL, NULL, &err);
    double ms = (double)(dr_now_ns() - t0) / 1e6;
    DR_CHECK(st == DR_ERR_UNAVAILABLE && strstr(err.msg, "0 of 1 replicas") && ms >= 190 &&
                 ms < 1000,
             "no replica: %s %s after %.0f ms", dr_status_str(st), err.msg, ms);
    printf("replicas: %s (after %.0f ms)\n", err.msg, ms);
    dr_history_close(h);
    h = open_store();
    struct seen s;
    CHECK_STR(read_items(h, "u", 1, 0, &s), "waited"); /* on the primary */
    DR_CHECK(store_write(h, &e, 1, &acc, &dup, NULL) == DR_OK && acc == 0 && dup == 1, "retry");
    dr_history_close(h);
    return dr_test_failures ? 1 : 0;
}

static int test_config(void)
{
    struct dr_error err = {0};
    enum dr_status st;
    struct dr_history *a = open_with("tenant-a:", &err, &st);
    struct dr_history *b = open_with("tenant-b:", &err, &st);
    DR_CHECK(a && b, "open: %s", err.msg);
    struct dr_event e = ev("u", "in-a", 1, "same-id");
    size_t acc;
    DR_CHECK(store_write(a, &e, 1, &acc, NULL, NULL) == DR_OK && acc == 1, "a");
    e.item_id = "in-b";
    e.item_id_len = 4;
    DR_CHECK(store_write(b, &e, 1, &acc, NULL, NULL) == DR_OK && acc == 1,
             "b: same id, other store");
    struct seen s;
    CHECK_STR(read_items(a, "u", 1, 0, &s), "in-a");
    CHECK_STR(read_items(b, "u", 1, 0, &s), "in-b");
    struct dr_history_info info;
    dr_history_get_info(a, &info);
    DR_CHECK(info.is_durable && strcmp(info.appendfsync, "always") == 0, "info");
    DR_CHECK(dr_history_env_flags(a) == 0, "no LMDB flags");
    dr_history_close(a);
    dr_history_close(b);

    static const char *const bad[] = {"redis://",
                                      "redis://:6379",
                                      "redis://host:0",
                                      "redis://host:65536",
                                      "redis://host:12x",
                                      "redis://host:6379/x",
                                      "redis://host:6379/1/2",
                                      "redis://user:pw@host:6379",
                                      "redis://[::1",
                                      "unix://relative.sock"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dr_history *h = NULL;
        st = dr_history_open(bad[i], NULL, &h, &err);
        DR_CHECK(st == DR_ERR_INVALID_ARG && !h && strstr(err.msg, "history:"), "%s: %s %s", bad[i],
                 dr_status_str(st), err.msg);
    }
    char url[64];
    int port = 0;
    { /* a port nobody listens on: bind one, close it */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
        socklen_t len = sizeof sa;
        if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
            port = ntohs(sa.sin_port);
        if (fd >= 0)
            close(fd);
    }
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port);
    struct dr_history *h = NULL;
    st = dr_history_open(url, NULL, &h, &err);
    DR_CHECK(st == DR_ERR_UNAVAILABLE && !h && strstr(err.msg, "cannot connect"), "%s: %s %s", url,
             dr_status_str(st), err.msg);
    DR_CHECK(dr_history_is_redis("redis://h") && dr_history_is_redis("unix:///s") &&
                 !dr_history_is_redis("var/history") && !dr_history_is_redis(NULL),
             "is_redis");
    return dr_test_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    signal(SIGPIPE, SIG_IGN); /* as the server: a closed Redis socket is an error */
    const char *backend = argc > 1 ? argv[1] : "", *name = argc > 2 ? argv[2] : "";
    is_redis = strcmp(backend, "redis") == 0;
    if (!is_redis && strcmp(backend, "lmdb") != 0) {
        fprintf(stderr, "usage: test_history lmdb|redis CASE\n");
        return 2;
    }
    static const struct {
        const char *name;
        int (*fn)(void);
        bool is_redis_only;
    } cases[] = {
        {"order", test_order, false},         {"idempotent", test_idempotent, false},
        {"bad_input", test_bad_input, false}, {"impressions", test_impressions, false},
        {"threads", test_threads, false},     {"outage", test_outage, true},
        {"crash", test_crash, true},          {"volatile", test_volatile, true},
        {"replicas", test_replicas, true},    {"config", test_config, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(name, cases[i].name) != 0)
            continue;
        if (cases[i].is_redis_only && !is_redis) {
            fprintf(stderr, "%s: a Redis-only case\n", name);
            return 2;
        }
        setup();
        int rc = cases[i].fn();
        teardown();
        return rc;
    }
    fprintf(stderr, "test_history: unknown case '%s'\n", name);
    return 2;
}
