/* metrics.c: Prometheus counters, histograms and gauges (see metrics.h).
 *
 * Histogram buckets are fixed (50 us to 10 s, roughly x2.5 apart) so recording is a short
 * scan plus two relaxed atomic adds.  The exposition follows the Prometheus text format 0.0.4:
 * HELP and TYPE lines, cumulative le buckets, _sum in seconds and _count.  jemalloc's
 * statistics are included when the server is linked with it (not under sanitizers, whose
 * allocators it would replace).
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef DR_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static const double bucket_le_s[] = {50e-6, 100e-6, 250e-6, 500e-6, 1e-3,   2.5e-3, 5e-3,
                                     10e-3, 25e-3,  50e-3,  100e-3, 250e-3, 1.0,    10.0};
#define N_BUCKETS (sizeof bucket_le_s / sizeof bucket_le_s[0])

static const char *const method_names[DR_METRIC_METHOD_COUNT] = {
    "Recommend", "Rank",           "Embed",       "Ingest", "GetModel",
    "Health",    "AdminGetStatus", "AdminReload", "unknown"};
static const char *const status_names[DR_METRIC_STATUS_COUNT] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};
static const char *const hist_names[DR_HIST_COUNT] = {"queue", "compute", "request"};
static const char *const hist_help[DR_HIST_COUNT] = {"Time a request waited in the work queue",
                                                     "Time a handler ran",
                                                     "Time from a request's arrival to its reply"};

const char *dr_metrics_method_name(enum dr_metric_method method)
{
    return (unsigned)method < DR_METRIC_METHOD_COUNT ? method_names[method] : "unknown";
}

const char *dr_metrics_status_name(int status)
{
    return status >= 0 && status < DR_METRIC_STATUS_COUNT ? status_names[status] : "UNKNOWN";
}

struct histogram {
    atomic_uint_fast64_t buckets[N_BUCKETS + 1]; /* last: +Inf */
    atomic_uint_fast64_t sum_ns;
};

static const char *const model_names[DR_METRIC_MODEL_COUNT] = {"interest", "bert"};
/* Batch sizes: powers of two up to 256 (--max-batch is rarely more). */
#define N_SIZE_BUCKETS 9
static const unsigned size_le[N_SIZE_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
struct size_histogram {
    atomic_uint_fast64_t buckets[N_SIZE_BUCKETS + 1]; /* last: +Inf */
    atomic_uint_fast64_t sum;
};

struct dr_metrics {
    char variant[129], kernel_isa[32];
    /* "metrics_model": a leaf lock; the model may be set while the HTTP thread renders. */
    pthread_mutex_t model_lock;
    char model_name[129], model_version[129];
    atomic_uint_fast64_t requests[DR_METRIC_METHOD_COUNT][DR_METRIC_STATUS_COUNT];
    atomic_uint_fast64_t deadline_drops;              /* in the work queue */
    atomic_uint_fast64_t deadline_expired_on_arrival; /* before it was queued */
    atomic_uint_fast64_t model_loads[2];              /* [0] failed, [1] ok */
    atomic_uint_fast64_t refusals[DR_REFUSED_COUNT];
    atomic_uint_fast64_t misrouted;
    atomic_uint_fast64_t skipped[DR_SKIP_COUNT];
    bool (*cache_fn)(void *, struct dr_state_cache_stats *);
    void *cache_ctx;
    bool (*impressions_fn)(void *, struct dr_impression_log_stats *);
    void *impressions_ctx;
    struct histogram hist[DR_HIST_COUNT][DR_METRIC_METHOD_COUNT];
    struct size_histogram batch_size[DR_METRIC_MODEL_COUNT];
    struct histogram batch_wait[DR_METRIC_MODEL_COUNT];
    size_t (*queue_depth_fn)(void *);
    void *queue_depth_ctx;
    char history_backend[16];
    bool is_history_durable;
    size_t (*in_flight_fn)(void *);
    void *in_flight_ctx;
    struct MHD_Daemon *httpd;
};

enum dr_status dr_metrics_create(const char *variant, const char *kernel_isa,
                                 struct dr_metrics **out)
{
    struct dr_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return DR_ERR_NOMEM;
    snprintf(m->variant, sizeof m->variant, "%s", variant ? variant : "");
    snprintf(m->kernel_isa, sizeof m->kernel_isa, "%s", kernel_isa ? kernel_isa : "");
    pthread_mutex_init(&m->model_lock, NULL);
    *out = m;
    return DR_OK;
}

void dr_metrics_destroy(struct dr_metrics *m)
{
    if (!m)
        return;
    if (m->httpd)
        MHD_stop_daemon(m->httpd);
    pthread_mutex_destroy(&m->model_lock);
    free(m);
}

void dr_metrics_count_request(struct dr_metrics *m, enum dr_metric_method method, int status)
{
    if (!m || (unsigned)method >= DR_METRIC_METHOD_COUNT)
        return;
    if (status < 0 || status >= DR_METRIC_STATUS_COUNT)
        status = 2; /* UNKNOWN */
    atomic_fetch_add_explicit(&m->requests[method][status], 1, memory_order_relaxed);
}

void dr_metrics_observe_ns(struct dr_metrics *m, enum dr_metric_hist hist,
                           enum dr_metric_method method, uint64_t ns)
{
    if (!m || (unsigned)hist >= DR_HIST_COUNT || (unsigned)method >= DR_METRIC_METHOD_COUNT)
        return;
    struct histogram *h = &m->hist[hist][method];
    double s = (double)ns * 1e-9;
    size_t b = 0;
    while (b < N_BUCKETS && s > bucket_le_s[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

static void observe_time(struct histogram *h, uint64_t ns)
{
    double s = (double)ns * 1e-9;
    size_t b = 0;
    while (b < N_BUCKETS && s > bucket_le_s[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void dr_metrics_observe_batch(struct dr_metrics *m, enum dr_metric_model model, size_t n)
{
    if (!m || (unsigned)model >= DR_METRIC_MODEL_COUNT)
        return;
    struct size_histogram *h = &m->batch_size[model];
    size_t b = 0;
    while (b < N_SIZE_BUCKETS && n > size_le[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, n, memory_order_relaxed);
}

void dr_metrics_observe_batch_wait_ns(struct dr_metrics *m, enum dr_metric_model model, uint64_t ns)
{
    if (m && (unsigned)model < DR_METRIC_MODEL_COUNT)
        observe_time(&m->batch_wait[model], ns);
}

void dr_metrics_count_deadline_drop(struct dr_metrics *m, bool on_arrival)
{
    if (m)
        atomic_fetch_add_explicit(on_arrival ? &m->deadline_expired_on_arrival : &m->deadline_drops,
                                  1, memory_order_relaxed);
}

void dr_metrics_count_refusal(struct dr_metrics *m, enum dr_metric_refusal reason)
{
    if (m)
        atomic_fetch_add_explicit(&m->refusals[reason], 1, memory_order_relaxed);
}

void dr_metrics_count_model_load(struct dr_metrics *m, bool ok)
{
    if (m)
        atomic_fetch_add_explicit(&m->model_loads[ok], 1, memory_order_relaxed);
}

void dr_metrics_count_misrouted(struct dr_metrics *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->misrouted, 1, memory_order_relaxed);
}

void dr_metrics_set_queue_depth_fn(struct dr_metrics *m, size_t (*fn)(void *), void *ctx)
{
    m->queue_depth_fn = fn;
    m->queue_depth_ctx = ctx;
}

void dr_metrics_set_in_flight_fn(struct dr_metrics *m, size_t (*fn)(void *), void *ctx)
{
    m->in_flight_fn = fn;
    m->in_flight_ctx = ctx;
}

void dr_metrics_set_model(struct dr_metrics *m, const char *name, const char *version)
{
    pthread_mutex_lock(&m->model_lock);
    snprintf(m->model_name, sizeof m->model_name, "%s", name ? name : "");
    snprintf(m->model_version, sizeof m->model_version, "%s", version ? version : "");
    pthread_mutex_unlock(&m->model_lock);
}

void dr_metrics_set_history(struct dr_metrics *m, const char *backend, bool is_durable)
{
    snprintf(m->history_backend, sizeof m->history_backend, "%s", backend ? backend : "");
    m->is_history_durable = is_durable;
}

void dr_metrics_count_skipped(struct dr_metrics *m, enum dr_metric_skip reason, uint64_t n)
{
    if (m && n && (unsigned)reason < DR_SKIP_COUNT)
        atomic_fetch_add_explicit(&m->skipped[reason], n, memory_order_relaxed);
}

void dr_metrics_set_cache_fn(struct dr_metrics *m,
                             bool (*fn)(void *ctx, struct dr_state_cache_stats *out), void *ctx)
{
    m->cache_fn = fn;
    m->cache_ctx = ctx;
}

void dr_metrics_set_impressions_fn(struct dr_metrics *m,
                                   bool (*fn)(void *ctx, struct dr_impression_log_stats *out),
                                   void *ctx)
{
    m->impressions_fn = fn;
    m->impressions_ctx = ctx;
}

/* A growing text buffer for the exposition. */
struct text {
    char *buf;
    size_t len, cap;
    int failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *grown = realloc(t->buf, cap);
        if (!grown) {
            t->failed = 1;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

static uint64_t load(atomic_uint_fast64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

char *dr_metrics_render(struct dr_metrics *m)
{
    struct text t = {.buf = malloc(16384), .cap = 16384};
    if (!t.buf)
        return NULL;
    t.buf[0] = '\0';
    put(&t, "# HELP driftrec_requests_total Requests answered, by method and gRPC status.\n"
            "# TYPE driftrec_requests_total counter\n");
    for (int me = 0; me < DR_METRIC_METHOD_COUNT; me++)
        for (int s = 0; s < DR_METRIC_STATUS_COUNT; s++) {
            uint64_t v = load(&m->requests[me][s]);
            if (v)
                put(&t, "driftrec_requests_total{method=\"%s\",code=\"%s\",variant=\"%s\"} %llu\n",
                    method_names[me], status_names[s], m->variant, (unsigned long long)v);
        }
    put(&t,
        "# HELP driftrec_deadline_dropped_total Requests dropped before compute because "
        "their deadline had passed.\n# TYPE driftrec_deadline_dropped_total counter\n"
        "driftrec_deadline_dropped_total %llu\n"
        "# HELP driftrec_deadline_expired_on_arrival_total Requests whose deadline had passed "
        "when they arrived (dropped, never queued).\n"
        "# TYPE driftrec_deadline_expired_on_arrival_total counter\n"
        "driftrec_deadline_expired_on_arrival_total %llu\n",
        (unsigned long long)load(&m->deadline_drops),
        (unsigned long long)load(&m->deadline_expired_on_arrival));
    put(&t,
        "# HELP driftrec_refused_total Calls refused with RESOURCE_EXHAUSTED before they were "
        "queued: the queue was full, or its expected wait exceeded the call's deadline.\n"
        "# TYPE driftrec_refused_total counter\n"
        "driftrec_refused_total{reason=\"queue_full\"} %llu\n"
        "driftrec_refused_total{reason=\"expected_wait\"} %llu\n",
        (unsigned long long)load(&m->refusals[DR_REFUSED_QUEUE_FULL]),
        (unsigned long long)load(&m->refusals[DR_REFUSED_EXPECTED_WAIT]));
    put(&t,
        "# HELP driftrec_model_loads_total Recommendation model loads (start and reloads), by "
        "result; a failed one leaves the served model in place.\n"
        "# TYPE driftrec_model_loads_total counter\n"
        "driftrec_model_loads_total{result=\"ok\"} %llu\n"
        "driftrec_model_loads_total{result=\"failed\"} %llu\n",
        (unsigned long long)load(&m->model_loads[1]), (unsigned long long)load(&m->model_loads[0]));
    put(&t,
        "# HELP driftrec_ab_misrouted_total Calls whose x-ab-variant header (the arm an A/B "
        "proxy chose) is not this instance's variant.\n"
        "# TYPE driftrec_ab_misrouted_total counter\n"
        "driftrec_ab_misrouted_total{variant=\"%s\"} %llu\n",
        m->variant, (unsigned long long)load(&m->misrouted));
    static const char *const skip_reasons[DR_SKIP_COUNT] = {"unknown_item", "unknown_event_type",
                                                            "unreadable"};
    put(&t, "# HELP driftrec_skipped_events_total Events left out of a user vector (counted each "
            "time they are read for one), by reason.\n"
            "# TYPE driftrec_skipped_events_total counter\n");
    for (int r = 0; r < DR_SKIP_COUNT; r++)
        put(&t, "driftrec_skipped_events_total{reason=\"%s\"} %llu\n", skip_reasons[r],
            (unsigned long long)load(&m->skipped[r]));
    struct dr_state_cache_stats cs;
    if (m->cache_fn && m->cache_fn(m->cache_ctx, &cs)) {
        const struct {
            const char *name, *help;
            uint64_t value;
        } counters[] = {
            {"hits", "Recommend and Rank calls that found the user's state cached", cs.hits},
            {"misses", "Recommend and Rank calls that replayed the user's history", cs.misses},
            {"evictions", "Least recently used states dropped to make room", cs.evictions},
            {"invalidations",
             "Cached states dropped because an ingested event was older than "
             "the state (rebuilt from the history on the next call)",
             cs.invalidations},
            {"refused",
             "Replayed states not cached because an Ingest of the same shard ran "
             "meanwhile",
             cs.refused},
        };
        for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
            put(&t,
                "# HELP driftrec_state_cache_%s_total %s.\n"
                "# TYPE driftrec_state_cache_%s_total counter\n"
                "driftrec_state_cache_%s_total %llu\n",
                counters[i].name, counters[i].help, counters[i].name, counters[i].name,
                (unsigned long long)counters[i].value);
        put(&t,
            "# HELP driftrec_state_cache_entries Users whose interest state is cached.\n"
            "# TYPE driftrec_state_cache_entries gauge\ndriftrec_state_cache_entries %zu\n"
            "# HELP driftrec_state_cache_capacity The most users the cache holds.\n"
            "# TYPE driftrec_state_cache_capacity gauge\ndriftrec_state_cache_capacity %zu\n",
            cs.entries, cs.capacity);
    }
    struct dr_impression_log_stats is;
    if (m->impressions_fn && m->impressions_fn(m->impressions_ctx, &is)) {
        put(&t,
            "# HELP driftrec_impressions_logged_total Recommend impressions committed to the "
            "event log.\n# TYPE driftrec_impressions_logged_total counter\n"
            "driftrec_impressions_logged_total %llu\n"
            "# HELP driftrec_impression_commits_total Event-log transactions that wrote "
            "impressions (logged / commits: the group size).\n"
            "# TYPE driftrec_impression_commits_total counter\n"
            "driftrec_impression_commits_total %llu\n"
            "# HELP driftrec_impressions_dropped_total Impressions not logged, by reason.\n"
            "# TYPE driftrec_impressions_dropped_total counter\n"
            "driftrec_impressions_dropped_total{reason=\"queue_full\"} %llu\n"
            "driftrec_impressions_dropped_total{reason=\"write_failed\"} %llu\n"
            "# HELP driftrec_impression_queue Impressions buffered for the event log.\n"
            "# TYPE driftrec_impression_queue gauge\ndriftrec_impression_queue %zu\n"
            "# HELP driftrec_impression_queue_capacity The most impressions buffered.\n"
            "# TYPE driftrec_impression_queue_capacity gauge\n"
            "driftrec_impression_queue_capacity %zu\n",
            (unsigned long long)is.logged, (unsigned long long)is.commits,
            (unsigned long long)is.dropped_queue_full, (unsigned long long)is.dropped_write_failed,
            is.queued, is.capacity);
    }
    for (int h = 0; h < DR_HIST_COUNT; h++) {
        put(&t, "# HELP driftrec_%s_seconds %s.\n# TYPE driftrec_%s_seconds histogram\n",
            hist_names[h], hist_help[h], hist_names[h]);
        for (int me = 0; me < DR_METRIC_METHOD_COUNT; me++) {
            struct histogram *hg = &m->hist[h][me];
            uint64_t cum = 0;
            for (size_t b = 0; b <= N_BUCKETS; b++)
                cum += load(&hg->buckets[b]);
            if (cum == 0)
                continue;
            uint64_t running = 0;
            for (size_t b = 0; b < N_BUCKETS; b++) {
                running += load(&hg->buckets[b]);
                put(&t, "driftrec_%s_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n", hist_names[h],
                    method_names[me], bucket_le_s[b], (unsigned long long)running);
            }
            put(&t, "driftrec_%s_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n", hist_names[h],
                method_names[me], (unsigned long long)cum);
            put(&t, "driftrec_%s_seconds_sum{method=\"%s\"} %.9f\n", hist_names[h],
                method_names[me], (double)load(&hg->sum_ns) * 1e-9);
            put(&t, "driftrec_%s_seconds_count{method=\"%s\"} %llu\n", hist_names[h],
                method_names[me], (unsigned long long)cum);
        }
    }
    put(&t, "# HELP driftrec_batch_size Items (users or texts) per batch of model work.\n"
            "# TYPE driftrec_batch_size histogram\n");
    for (int mo = 0; mo < DR_METRIC_MODEL_COUNT; mo++) {
        struct size_histogram *hg = &m->batch_size[mo];
        uint64_t cum = 0;
        for (size_t b = 0; b <= N_SIZE_BUCKETS; b++)
            cum += load(&hg->buckets[b]);
        if (cum == 0)
            continue;
        uint64_t running = 0;
        for (size_t b = 0; b < N_SIZE_BUCKETS; b++) {
            running += load(&hg->buckets[b]);
            put(&t, "driftrec_batch_size_bucket{model=\"%s\",le=\"%u\"} %llu\n", model_names[mo],
                size_le[b], (unsigned long long)running);
        }
        put(&t,
            "driftrec_batch_size_bucket{model=\"%s\",le=\"+Inf\"} %llu\n"
            "driftrec_batch_size_sum{model=\"%s\"} %llu\n"
            "driftrec_batch_size_count{model=\"%s\"} %llu\n",
            model_names[mo], (unsigned long long)cum, model_names[mo],
            (unsigned long long)load(&hg->sum), model_names[mo], (unsigned long long)cum);
    }
    put(&t, "# HELP driftrec_batch_wait_seconds Time an item waited in the batcher before its "
            "batch started.\n# TYPE driftrec_batch_wait_seconds histogram\n");
    for (int mo = 0; mo < DR_METRIC_MODEL_COUNT; mo++) {
        struct histogram *hg = &m->batch_wait[mo];
        uint64_t cum = 0;
        for (size_t b = 0; b <= N_BUCKETS; b++)
            cum += load(&hg->buckets[b]);
        if (cum == 0)
            continue;
        uint64_t running = 0;
        for (size_t b = 0; b < N_BUCKETS; b++) {
            running += load(&hg->buckets[b]);
            put(&t, "driftrec_batch_wait_seconds_bucket{model=\"%s\",le=\"%g\"} %llu\n",
                model_names[mo], bucket_le_s[b], (unsigned long long)running);
        }
        put(&t,
            "driftrec_batch_wait_seconds_bucket{model=\"%s\",le=\"+Inf\"} %llu\n"
            "driftrec_batch_wait_seconds_sum{model=\"%s\"} %.9f\n"
            "driftrec_batch_wait_seconds_count{model=\"%s\"} %llu\n",
            model_names[mo], (unsigned long long)cum, model_names[mo],
            (double)load(&hg->sum_ns) * 1e-9, model_names[mo], (unsigned long long)cum);
    }
    if (m->queue_depth_fn)
        put(&t,
            "# HELP driftrec_queue_depth Requests waiting for a worker.\n"
            "# TYPE driftrec_queue_depth gauge\ndriftrec_queue_depth %zu\n",
            m->queue_depth_fn(m->queue_depth_ctx));
    if (m->history_backend[0])
        put(&t,
            "# HELP driftrec_history_durable 1 when an acknowledged write survives a crash of "
            "the history store, 0 when it may be lost (Redis without appendonly yes and "
            "appendfsync always).\n# TYPE driftrec_history_durable gauge\n"
            "driftrec_history_durable{backend=\"%s\"} %d\n",
            m->history_backend, m->is_history_durable ? 1 : 0);
    if (m->in_flight_fn)
        put(&t,
            "# HELP driftrec_in_flight_requests Requests queued for or being handled by a worker "
            "(the per-pod autoscaling signal).\n"
            "# TYPE driftrec_in_flight_requests gauge\ndriftrec_in_flight_requests %zu\n",
            m->in_flight_fn(m->in_flight_ctx));
    pthread_mutex_lock(&m->model_lock);
    put(&t,
        "# HELP driftrec_info Build and runtime facts (value 1).\n# TYPE driftrec_info gauge\n"
        "driftrec_info{kernel_isa=\"%s\",variant=\"%s\",model=\"%s\",model_version=\"%s\"} 1\n",
        m->kernel_isa, m->variant, m->model_name, m->model_version);
    pthread_mutex_unlock(&m->model_lock);
#ifdef DR_HAVE_JEMALLOC
    uint64_t epoch = 1;
    size_t sz = sizeof epoch;
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    static const char *const stats[] = {"allocated", "active", "resident", "mapped", "retained"};
    put(&t, "# HELP driftrec_jemalloc_bytes jemalloc statistics (stats.*).\n"
            "# TYPE driftrec_jemalloc_bytes gauge\n");
    for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
        char name[32];
        size_t value = 0, vsz = sizeof value;
        snprintf(name, sizeof name, "stats.%s", stats[i]);
        if (mallctl(name, &value, &vsz, NULL, 0) == 0)
            put(&t, "driftrec_jemalloc_bytes{stat=\"%s\"} %zu\n", stats[i], value);
    }
#endif
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    struct dr_metrics *m = cls;
    if (strcmp(method, "GET") != 0) {
        static char msg[] = "only GET\n";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof msg - 1, msg, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/metrics") != 0) {
        static char msg[] = "not found: metrics are at /metrics\n";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof msg - 1, msg, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, r);
        MHD_destroy_response(r);
        return ret;
    }
    char *text = dr_metrics_render(m);
    if (!text)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

enum dr_status dr_metrics_listen(struct dr_metrics *m, const char *addr, int *bound_port,
                                 struct dr_error *err)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "metrics address %s: expected host:port",
                            addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    long port = strtol(colon + 1, NULL, 10);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port < 0 || port > 65535 || inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "metrics address %s: expected an IPv4 host:port", addr);
    m->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, answer,
                                m, MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_END);
    if (!m->httpd)
        return dr_error_set(err, DR_ERR_IO, "metrics: cannot listen on %s", addr);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->httpd, MHD_DAEMON_INFO_BIND_PORT);
    if (bound_port)
        *bound_port = info ? info->port : (int)port;
    return DR_OK;
}
