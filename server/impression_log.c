/* impression_log.c: the bounded impression queue and its group-commit writer (see
 * impression_log.h).
 *
 * Two byte buffers: workers append records to the active one; the writer thread swaps it
 * for the other (empty) one, decodes the records into struct dr_impression and writes them
 * with dr_history_log_impressions, then clears the buffer.  One mutex ("impression_log", a
 * leaf: nothing is locked inside it) guards the active buffer, the counts and the swap; the
 * buffer being written belongs to the writer alone until it is cleared.  A record:
 *   struct record (ts, item count, string lengths), user id, request id, variant, model
 *   version, then per item: uint32 length, item id bytes
 * Buffers grow (doubling, under the lock) and are never shrunk: the capacity bounds them.
 */
#include "impression_log.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "workpool.h" /* dr_now_ns */

#define FIRST_BUFFER_BYTES (64 * 1024)
#define ERROR_LOG_EVERY_NS (10ull * 1000000000ull)
/* Commits start at most this often (unless a buffer is half full or the log is stopping): a
 * busy server then writes tens of responses per fsync instead of one, and the writer's CPU
 * and I/O come in a few bursts a second rather than between every two requests. */
#define MIN_COMMIT_INTERVAL_NS (20ull * 1000000ull)
/* The writer's nice value: below the request path's threads, so on a small machine a commit
 * never takes a core from a Recommend that is waiting for one.  If it falls behind for long,
 * the bounded queue drops (and counts) impressions rather than slowing requests. */
#define WRITER_NICE 10

struct record {
    int64_t ts;
    uint32_t n_items;
    uint32_t user_len, request_len, variant_len, version_len;
};

struct buffer {
    uint8_t *bytes;
    size_t used, cap;
    size_t n_impressions;
};

struct dr_impression_log {
    struct dr_history *history;
    size_t capacity;
    pthread_mutex_t lock;
    pthread_cond_t wake;   /* the active buffer turned non-empty, or stopping */
    struct buffer bufs[2]; /* bufs[active]: appends; the other: empty or being written */
    int active;
    size_t n_writing; /* impressions in the buffer the writer holds */
    bool is_stopping;
    pthread_t writer;
    /* Written by the writer; its scratch for one transaction. */
    struct dr_impression *imps;
    size_t cap_imps;
    uint64_t last_error_ns;
    /* Counters: relaxed, each read on its own for the metrics. */
    atomic_uint_fast64_t logged, commits, dropped_queue_full, dropped_write_failed;
};

static size_t record_size(const struct record *r, const Driftrec__V1__RecommendResponse *resp)
{
    size_t size = sizeof *r + r->user_len + r->request_len + r->variant_len + r->version_len;
    for (size_t i = 0; i < resp->n_items; i++)
        size += sizeof(uint32_t) + resp->items[i]->item_id.len;
    return size;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t len)
{
    if (len)
        memcpy(p, src, len);
    return p + len;
}

enum dr_status dr_impression_log_append(struct dr_impression_log *log,
                                        const ProtobufCBinaryData *user_id,
                                        const Driftrec__V1__RecommendResponse *resp, int64_t ts)
{
    size_t n = resp->n_items;
    if (n == 0)
        return DR_OK;
    /* The store refuses longer versions; a longer one is cut rather than losing the group. */
    size_t version_len = resp->has_model_version ? resp->model_version.len : 0;
    if (version_len > DR_HISTORY_MAX_VERSION_BYTES)
        version_len = DR_HISTORY_MAX_VERSION_BYTES;
    struct record r = {
        .ts = ts,
        .n_items = (uint32_t)n,
        .user_len = (uint32_t)user_id->len,
        .request_len = resp->has_request_id ? (uint32_t)resp->request_id.len : 0,
        .variant_len = resp->has_variant ? (uint32_t)resp->variant.len : 0,
        .version_len = (uint32_t)version_len,
    };
    size_t size = record_size(&r, resp);

    pthread_mutex_lock(&log->lock);
    struct buffer *b = &log->bufs[log->active];
    enum dr_status st = DR_OK;
    if (b->n_impressions + log->n_writing + n > log->capacity) {
        st = DR_ERR_OVERLOADED;
    } else if (b->used + size > b->cap) {
        size_t cap = b->cap ? b->cap : FIRST_BUFFER_BYTES;
        while (cap < b->used + size)
            cap *= 2;
        uint8_t *grown = realloc(b->bytes, cap);
        if (grown) {
            b->bytes = grown;
            b->cap = cap;
        } else {
            st = DR_ERR_NOMEM;
        }
    }
    if (st != DR_OK) {
        pthread_mutex_unlock(&log->lock);
        atomic_fetch_add_explicit(&log->dropped_queue_full, n, memory_order_relaxed);
        return st;
    }
    uint8_t *p = put_bytes(b->bytes + b->used, &r, sizeof r);
    p = put_bytes(p, user_id->data, r.user_len);
    p = put_bytes(p, resp->request_id.data, r.request_len);
    p = put_bytes(p, resp->variant.data, r.variant_len);
    p = put_bytes(p, resp->model_version.data, r.version_len);
    for (size_t i = 0; i < n; i++) {
        const ProtobufCBinaryData *id = &resp->items[i]->item_id;
        uint32_t len = (uint32_t)id->len;
        p = put_bytes(p, &len, sizeof len);
        p = put_bytes(p, id->data, len);
    }
    DR_ASSERT((size_t)(p - b->bytes) == b->used + size);
    /* The writer sleeps while the active buffer is empty, or gathers until the commit
     * interval is over; a buffer that turns half full ends the gathering at once. */
    bool was_empty = b->n_impressions == 0;
    bool crosses_half =
        b->n_impressions < log->capacity / 2 && b->n_impressions + n >= log->capacity / 2;
    b->used += size;
    b->n_impressions += n;
    if (was_empty || crosses_half)
        pthread_cond_signal(&log->wake);
    pthread_mutex_unlock(&log->lock);
    return DR_OK;
}

/* Decodes b into log->imps and commits them in one transaction.  Writer thread only. */
static void write_buffer(struct dr_impression_log *log, const struct buffer *b)
{
    if (b->n_impressions > log->cap_imps) {
        size_t cap = log->cap_imps ? log->cap_imps : 256;
        while (cap < b->n_impressions)
            cap *= 2;
        struct dr_impression *grown = realloc(log->imps, cap * sizeof *grown);
        if (!grown) {
            atomic_fetch_add_explicit(&log->dropped_write_failed, b->n_impressions,
                                      memory_order_relaxed);
            struct dr_log_line line;
            dr_log_begin(&line, DR_LOG_ERROR, "impression log: out of memory");
            dr_log_int(&line, "lost", (long long)b->n_impressions);
            dr_log_end(&line);
            return;
        }
        log->imps = grown;
        log->cap_imps = cap;
    }
    const uint8_t *p = b->bytes, *end = b->bytes + b->used;
    size_t k = 0;
    while (p < end) {
        struct record r;
        memcpy(&r, p, sizeof r);
        p += sizeof r;
        const char *user = (const char *)p;
        const char *request = user + r.user_len;
        const char *variant = request + r.request_len;
        const char *version = variant + r.variant_len;
        p = (const uint8_t *)(version + r.version_len);
        for (uint32_t i = 0; i < r.n_items; i++) {
            uint32_t len;
            memcpy(&len, p, sizeof len);
            p += sizeof len;
            log->imps[k++] = (struct dr_impression){
                .event =
                    {
                        .user_id = user,
                        .user_id_len = r.user_len,
                        .item_id = (const char *)p,
                        .item_id_len = len,
                        .ts = r.ts,
                        .event_type = DRIFTREC__V1__EVENT_TYPE__IMPRESSION,
                        .position = (int)i,
                        .has_position = true,
                        .request_id = request,
                        .request_id_len = r.request_len,
                        .variant = variant,
                        .variant_len = r.variant_len,
                    },
                .model_version = version,
                .model_version_len = r.version_len,
            };
            p += len;
        }
    }
    DR_ASSERT(k == b->n_impressions);
    struct dr_error err = {0};
    if (dr_history_log_impressions(log->history, log->imps, k, &err) == DR_OK) {
        atomic_fetch_add_explicit(&log->logged, k, memory_order_relaxed);
        atomic_fetch_add_explicit(&log->commits, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&log->dropped_write_failed, k, memory_order_relaxed);
    /* A full map or a failing disk fails every commit: say so now and then, not per commit. */
    uint64_t now = dr_now_ns();
    if (log->last_error_ns == 0 || now - log->last_error_ns >= ERROR_LOG_EVERY_NS) {
        log->last_error_ns = now;
        struct dr_log_line line;
        dr_log_begin(&line, DR_LOG_ERROR, "impression log: commit failed");
        dr_log_int(&line, "lost", (long long)k);
        dr_log_str(&line, "detail", err.msg);
        dr_log_end(&line);
    }
}

static void *writer_main(void *arg)
{
    struct dr_impression_log *log = arg;
    /* Linux: SCHED_IDLE runs the writer only on a core nothing else wants; where that is
     * refused, a nice value (PRIO_PROCESS with the thread id) of its own.  Either failing is
     * harmless. */
    struct sched_param idle = {.sched_priority = 0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0 &&
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WRITER_NICE) != 0)
        dr_log(DR_LOG_DEBUG, "impression log: cannot lower the writer's priority");
    uint64_t last_commit_ns = 0;
    pthread_mutex_lock(&log->lock);
    for (;;) {
        while (log->bufs[log->active].n_impressions == 0 && !log->is_stopping)
            pthread_cond_wait(&log->wake, &log->lock);
        if (log->bufs[log->active].n_impressions == 0)
            break; /* stopping, and everything is written */
        /* Gather for the rest of the commit interval (appends do not wake the writer while
         * the buffer is non-empty; a half-full buffer or stopping does). */
        uint64_t now = dr_now_ns();
        if (!log->is_stopping && now - last_commit_ns < MIN_COMMIT_INTERVAL_NS &&
            log->bufs[log->active].n_impressions < log->capacity / 2) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            uint64_t wait_ns = MIN_COMMIT_INTERVAL_NS - (now - last_commit_ns);
            until.tv_sec += (time_t)(wait_ns / 1000000000u);
            until.tv_nsec += (long)(wait_ns % 1000000000u);
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&log->wake, &log->lock, &until);
            continue; /* re-check: stopping, or the interval is over */
        }
        last_commit_ns = now;
        struct buffer *full = &log->bufs[log->active];
        log->active ^= 1; /* the other buffer is empty: the writer cleared it */
        log->n_writing = full->n_impressions;
        pthread_mutex_unlock(&log->lock);
        write_buffer(log, full);
        pthread_mutex_lock(&log->lock);
        full->used = 0;
        full->n_impressions = 0;
        log->n_writing = 0;
    }
    pthread_mutex_unlock(&log->lock);
    return NULL;
}

enum dr_status dr_impression_log_create(struct dr_history *history, size_t capacity,
                                        struct dr_impression_log **out, struct dr_error *err)
{
    if (capacity == 0)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "impression log: capacity 0");
    struct dr_impression_log *log = calloc(1, sizeof *log);
    if (!log)
        return dr_error_set(err, DR_ERR_NOMEM, "impression log: out of memory");
    log->history = history;
    log->capacity = capacity;
    pthread_mutex_init(&log->lock, NULL);
    pthread_cond_init(&log->wake, NULL);
    if (pthread_create(&log->writer, NULL, writer_main, log) != 0) {
        pthread_cond_destroy(&log->wake);
        pthread_mutex_destroy(&log->lock);
        free(log);
        return dr_error_set(err, DR_ERR_INTERNAL, "impression log: cannot start its writer");
    }
    *out = log;
    return DR_OK;
}

void dr_impression_log_destroy(struct dr_impression_log *log)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->lock);
    log->is_stopping = true;
    pthread_cond_signal(&log->wake);
    pthread_mutex_unlock(&log->lock);
    pthread_join(log->writer, NULL); /* it writes what is queued first */
    free(log->bufs[0].bytes);
    free(log->bufs[1].bytes);
    free(log->imps);
    pthread_cond_destroy(&log->wake);
    pthread_mutex_destroy(&log->lock);
    free(log);
}

void dr_impression_log_get_stats(struct dr_impression_log *log, struct dr_impression_log_stats *out)
{
    pthread_mutex_lock(&log->lock);
    size_t queued = log->bufs[log->active].n_impressions + log->n_writing;
    pthread_mutex_unlock(&log->lock);
    *out = (struct dr_impression_log_stats){
        .logged = atomic_load_explicit(&log->logged, memory_order_relaxed),
        .commits = atomic_load_explicit(&log->commits, memory_order_relaxed),
        .dropped_queue_full = atomic_load_explicit(&log->dropped_queue_full, memory_order_relaxed),
        .dropped_write_failed =
            atomic_load_explicit(&log->dropped_write_failed, memory_order_relaxed),
        .queued = queued,
        .capacity = log->capacity,
    };
}
