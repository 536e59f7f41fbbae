/* test_impression_log.c: Recommend's impression queue and its group-commit writer
 * (server/impression_log.h) over a real history store in a temporary directory.
 *
 * Usage: test_impression_log CASE [redis]
 *   drain    1000 responses (about 14000 impressions) appended as fast as possible, then
 *            destroy at once: the drain commits every one; each record has its user, item,
 *            request id, variant, position, model version and ts, in append order.  With
 *            "redis", over a Redis history (a redis-server the test starts; 77 without one)
 *   full     another process holds LMDB's write lock, so the writer cannot commit: appends
 *            still return at once, a response that does not fit is dropped whole and
 *            counted, and once the lock is free exactly the accepted ones reach the log
 *   failing  a store whose map is full: the failed commits are counted as dropped, nothing
 *            blocks, destroy returns
 */
#include "dr_test.h"
#include "dr_test_redis.h"
#include "history.h"
#include "impression_log.h"
#include "workpool.h" /* dr_now_ns */

#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ITEMS 32

/* One response of n items ("item-<r>-<i>"), request id "req-<r>", for user "user-<r % 5>". */
struct response {
    char ids[MAX_ITEMS][32], request_id[32], user[32];
    Driftrec__V1__ScoredItem items[MAX_ITEMS];
    Driftrec__V1__ScoredItem *item_ptrs[MAX_ITEMS];
    Driftrec__V1__RecommendResponse resp;
    ProtobufCBinaryData user_id;
};

static ProtobufCBinaryData bytes_of(const char *s)
{
    return (ProtobufCBinaryData){.len = strlen(s), .data = (uint8_t *)(uintptr_t)s};
}

static void make_response(struct response *r, unsigned number, size_t n)
{
    driftrec__v1__recommend_response__init(&r->resp);
    for (size_t i = 0; i < n; i++) {
        snprintf(r->ids[i], sizeof r->ids[i], "item-%u-%zu", number, i);
        driftrec__v1__scored_item__init(&r->items[i]);
        r->items[i].has_item_id = 1;
        r->items[i].item_id = bytes_of(r->ids[i]);
        r->item_ptrs[i] = &r->items[i];
    }
    snprintf(r->request_id, sizeof r->request_id, "req-%u", number);
    snprintf(r->user, sizeof r->user, "user-%u", number % 5);
    r->resp.n_items = n;
    r->resp.items = r->item_ptrs;
    r->resp.has_request_id = r->resp.has_variant = r->resp.has_model_version = 1;
    r->resp.request_id = bytes_of(r->request_id);
    r->resp.variant = bytes_of("B");
    r->resp.model_version = bytes_of("v-2026");
    r->user_id = bytes_of(r->user);
}

/* What the log holds, checked record by record against the responses appended in order
 * (each response is n_items[r] items; accepted[r] false: it must be absent). */
struct log_check {
    const size_t *n_items;
    const bool *accepted;
    size_t n_responses;
    size_t response, position; /* the next record expected */
    size_t n_records, n_bad;
};

static bool field_is(ProtobufCBinaryData b, protobuf_c_boolean has, const char *want)
{
    return has && b.len == strlen(want) && memcmp(b.data, want, b.len) == 0;
}

static void visit(void *ctx, const struct dr_history_log_record *rec)
{
    struct log_check *c = ctx;
    while (c->response < c->n_responses && !c->accepted[c->response])
        c->response++;
    c->n_records++;
    Driftrec__V1__Event *e =
        rec->packed ? driftrec__v1__event__unpack(NULL, rec->len, rec->packed) : NULL;
    if (c->response >= c->n_responses || !e) {
        c->n_bad++;
        if (e)
            driftrec__v1__event__free_unpacked(e, NULL);
        return;
    }
    struct response want;
    make_response(&want, (unsigned)c->response, c->n_items[c->response]);
    bool is_ok = rec->kind == DR_HISTORY_LOG_IMPRESSION && rec->model_version_len == 6 &&
                 memcmp(rec->model_version, "v-2026", 6) == 0 &&
                 field_is(e->user_id, e->has_user_id, want.user) &&
                 field_is(e->item_id, e->has_item_id, want.ids[c->position]) &&
                 field_is(e->request_id, e->has_request_id, want.request_id) &&
                 field_is(e->variant, e->has_variant, "B") && e->has_position &&
                 e->position == (int32_t)c->position &&
                 e->ts == 1700000000 + (int64_t)c->response &&
                 e->event_type == DRIFTREC__V1__EVENT_TYPE__IMPRESSION;
    if (!is_ok && c->n_bad++ == 0)
        fprintf(stderr, "record %zu: response %zu position %zu differs\n", c->n_records,
                c->response, c->position);
    driftrec__v1__event__free_unpacked(e, NULL);
    if (++c->position == c->n_items[c->response]) {
        c->position = 0;
        c->response++;
    }
}

static void check_log(struct dr_history *h, const size_t *n_items, const bool *accepted,
                      size_t n_responses, size_t want_records)
{
    struct log_check c = {.n_items = n_items, .accepted = accepted, .n_responses = n_responses};
    DR_CHECK(dr_history_read_log(h, visit, &c) == DR_OK, "read_log");
    DR_CHECK(c.n_records == want_records && c.n_bad == 0, "log: %zu records (%zu wrong), want %zu",
             c.n_records, c.n_bad, want_records);
}

/* A fresh store in a new directory under $TMPDIR (else /tmp); dir receives its path. */
static struct dr_history *open_store(char *dir, size_t dir_size, size_t map_size_bytes)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, dir_size, "%s/dr_implog_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    struct dr_history *h = NULL;
    struct dr_error err = {0};
    struct dr_history_opts opts = {.map_size_bytes = map_size_bytes};
    if (dr_history_open(dir, &opts, &h, &err) != DR_OK) {
        fprintf(stderr, "history: %s\n", err.msg);
        exit(1);
    }
    return h;
}

static void remove_store(struct dr_history *h, const char *dir)
{
    dr_history_close(h);
    char path[512];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

static int test_drain(bool is_redis)
{
    char dir[400];
    struct dr_test_redis redis;
    struct dr_history *h = NULL;
    if (is_redis) {
        dr_test_redis_start(&redis, false);
        struct dr_error err = {0};
        if (dr_history_open(redis.url, NULL, &h, &err) != DR_OK) {
            fprintf(stderr, "history: %s\n", err.msg);
            exit(1);
        }
    } else {
        h = open_store(dir, sizeof dir, 0);
    }
    struct dr_impression_log *log = NULL;
    DR_CHECK(dr_impression_log_create(h, 1000000, &log, NULL) == DR_OK, "create");
    enum { N_RESPONSES = 1000 };
    static size_t n_items[N_RESPONSES];
    static bool accepted[N_RESPONSES];
    size_t total = 0;
    for (unsigned r = 0; r < N_RESPONSES; r++) {
        struct response resp;
        n_items[r] = 1 + r % 39 % MAX_ITEMS; /* 1..32 */
        make_response(&resp, r, n_items[r]);
        accepted[r] = dr_impression_log_append(log, &resp.user_id, &resp.resp,
                                               1700000000 + (int64_t)r) == DR_OK;
        DR_CHECK(accepted[r], "append %u refused", r);
        total += n_items[r];
    }
    struct dr_impression_log_stats st;
    dr_impression_log_get_stats(log, &st);
    printf("drain: %zu impressions appended; at destroy %zu queued, %llu committed in %llu "
           "commits\n",
           total, st.queued, (unsigned long long)st.logged, (unsigned long long)st.commits);
    struct dr_impression_log_stats before = st;
    dr_impression_log_destroy(log); /* drains */
    DR_CHECK(before.dropped_queue_full == 0 && before.dropped_write_failed == 0, "drops");
    check_log(h, n_items, accepted, N_RESPONSES, total);
    if (is_redis) {
        dr_history_close(h);
        dr_test_redis_stop(&redis);
    } else {
        remove_store(h, dir);
    }
    return dr_test_failures ? 1 : 0;
}

/* Holds LMDB's write lock on dir from another process until told (a byte on *release*). */
static pid_t hold_write_lock(const char *dir, int *release_fd)
{
    int locked[2], release[2];
    if (pipe(locked) != 0 || pipe(release) != 0) {
        perror("pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid == 0) {
        MDB_env *env;
        MDB_txn *txn;
        char byte = 0;
        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 4) != 0 ||
            mdb_env_set_mapsize(env, (size_t)1 << 30) != 0 ||
            mdb_env_open(env, dir, MDB_NOTLS, 0600) != 0 || mdb_txn_begin(env, NULL, 0, &txn) != 0)
            _exit(3);
        if (write(locked[1], &byte, 1) != 1 || read(release[0], &byte, 1) != 1)
            _exit(4);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        _exit(0);
    }
    char byte;
    if (pid < 0 || read(locked[0], &byte, 1) != 1) {
        fprintf(stderr, "the lock holder did not start\n");
        exit(1);
    }
    close(locked[0]);
    close(locked[1]);
    close(release[0]);
    *release_fd = release[1];
    return pid;
}

static int test_full(void)
{
    char dir[400];
    struct dr_history *h = open_store(dir, sizeof dir, 0);
    int release_fd = -1;
    pid_t holder = hold_write_lock(dir, &release_fd);

    struct dr_impression_log *log = NULL;
    DR_CHECK(dr_impression_log_create(h, 100, &log, NULL) == DR_OK, "create");
    enum { N_RESPONSES = 14 };
    size_t n_items[N_RESPONSES];
    bool accepted[N_RESPONSES];
    uint64_t slowest_ns = 0;
    size_t n_accepted = 0, n_dropped = 0;
    for (unsigned r = 0; r < N_RESPONSES; r++) {
        struct response resp;
        n_items[r] = r == 10 ? 1 : 10; /* the 11th (1 item) fits where 10 would not */
        make_response(&resp, r, n_items[r]);
        uint64_t start = dr_now_ns();
        enum dr_status st =
            dr_impression_log_append(log, &resp.user_id, &resp.resp, 1700000000 + (int64_t)r);
        uint64_t took = dr_now_ns() - start;
        slowest_ns = took > slowest_ns ? took : slowest_ns;
        accepted[r] = st == DR_OK;
        DR_CHECK(st == DR_OK || st == DR_ERR_OVERLOADED, "append %u: %s", r, dr_status_str(st));
        if (accepted[r])
            n_accepted += n_items[r];
        else
            n_dropped += n_items[r];
    }
    /* 100 slots: ten responses of 10 (one of them held by the blocked writer), then only the
     * response of 1 would still fit, if the 100 were not full already. */
    DR_CHECK(n_accepted == 100 && n_dropped == 31, "%zu accepted, %zu dropped", n_accepted,
             n_dropped);
    DR_CHECK(slowest_ns < 100u * 1000000u, "an append waited %.1f ms for the store",
             (double)slowest_ns / 1e6);
    struct dr_impression_log_stats st;
    dr_impression_log_get_stats(log, &st);
    DR_CHECK(st.queued == 100 && st.dropped_queue_full == 31 && st.logged == 0 &&
                 st.capacity == 100,
             "stats: %zu queued, %llu dropped, %llu logged", st.queued,
             (unsigned long long)st.dropped_queue_full, (unsigned long long)st.logged);

    char byte = 0;
    DR_CHECK(write(release_fd, &byte, 1) == 1, "release");
    int status = 0;
    waitpid(holder, &status, 0);
    DR_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the lock holder failed");
    close(release_fd);
    dr_impression_log_destroy(log);
    check_log(h, n_items, accepted, N_RESPONSES, 100);
    remove_store(h, dir);
    return dr_test_failures ? 1 : 0;
}

static int test_failing(void)
{
    char dir[400];
    struct dr_history *h = open_store(dir, sizeof dir, 64 * 1024); /* a few pages only */
    struct dr_impression_log *log = NULL;
    DR_CHECK(dr_impression_log_create(h, 1000000, &log, NULL) == DR_OK, "create");
    size_t total = 0;
    for (unsigned r = 0; r < 400; r++) {
        struct response resp;
        make_response(&resp, r, MAX_ITEMS);
        DR_CHECK(dr_impression_log_append(log, &resp.user_id, &resp.resp, 1700000000) == DR_OK,
                 "append %u", r);
        total += MAX_ITEMS;
    }
    struct dr_impression_log_stats st;
    uint64_t deadline = dr_now_ns() + 20ull * 1000000000ull;
    do {
        dr_impression_log_get_stats(log, &st);
    } while (st.logged + st.dropped_write_failed < total && dr_now_ns() < deadline);
    DR_CHECK(st.logged + st.dropped_write_failed == total && st.dropped_write_failed > 0,
             "%llu logged + %llu failed, want %zu with failures", (unsigned long long)st.logged,
             (unsigned long long)st.dropped_write_failed, total);
    dr_impression_log_destroy(log);
    remove_store(h, dir);
    return dr_test_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    signal(SIGPIPE, SIG_IGN); /* as the server: a closed Redis socket is an error */
    const char *name = argc > 1 ? argv[1] : "";
    if (strcmp(name, "drain") == 0)
        return test_drain(argc > 2 && strcmp(argv[2], "redis") == 0);
    if (strcmp(name, "full") == 0)
        return test_full();
    if (strcmp(name, "failing") == 0)
        return test_failing();
    fprintf(stderr, "usage: test_impression_log drain|full|failing\n");
    return 2;
}
