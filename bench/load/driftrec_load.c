/* driftrec_load.c: driftrec-load, the load-test client (gRPC C core, one thread, async).
 *
 * Closed loop: --concurrency callers, each starting its next call when the last returns.
 * Open loop: Poisson arrivals at --rate calls/s, started by a sender thread that sleeps to
 * each arrival's time (clock_nanosleep) while the main thread drains completions; latency
 * counts from each call's intended start, so a stalled server shows up in the tail instead
 * of slowing the sender down (no coordinated omission).  With --max-in-flight reached, an arrival
 * is not sent: it is counted as over_cap (a failure), and the send lag (how late calls left) is
 * recorded; a run whose p99 send lag exceeds 1 ms is marked invalid. Every gRPC status code is
 * counted; latencies go into log buckets (64 per power of two, about 1.1% wide, as HdrHistogram
 * does) reported as p50/p90/p99/p99.9/max, in text and JSON.
 */
#include <cjson/cJSON.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "driftrec.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

#define SUB_BUCKETS 64
#define N_BUCKETS   (64 * SUB_BUCKETS)
#define N_STATUS    17

struct histogram {
    uint64_t counts[N_BUCKETS];
    uint64_t total, max_ns;
};

static size_t bucket_of(uint64_t ns)
{
    if (ns < SUB_BUCKETS)
        return (size_t)ns;
    int msb = 63 - __builtin_clzll(ns);
    int shift = msb - 6; /* keep 6 bits below the leading one */
    size_t sub = (size_t)((ns >> shift) & (SUB_BUCKETS - 1));
    return (size_t)(shift + 1) * SUB_BUCKETS + sub;
}

static uint64_t bucket_upper(size_t b)
{
    if (b < SUB_BUCKETS)
        return b;
    size_t shift = b / SUB_BUCKETS - 1, sub = b % SUB_BUCKETS;
    return ((uint64_t)(SUB_BUCKETS + sub + 1) << shift) - 1;
}

static void record(struct histogram *h, uint64_t ns)
{
    size_t b = bucket_of(ns);
    h->counts[b < N_BUCKETS ? b : N_BUCKETS - 1]++;
    h->total++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

static double percentile_ms(const struct histogram *h, double p)
{
    if (h->total == 0)
        return 0.0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total), seen = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank) {
            uint64_t v = bucket_upper(b);
            return (double)(v < h->max_ns ? v : h->max_ns) / 1e6;
        }
    }
    return (double)h->max_ns / 1e6;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct opts {
    const char *addr, *method, *mode, *json;
    int concurrency, max_in_flight, timeout_ms;
    double rate, duration_s, warmup_s;
    unsigned seed;
};

struct call {
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    uint64_t intended_ns;
};

struct run {
    struct opts o;
    grpc_channel *channel;
    grpc_completion_queue *cq;
    uint64_t seq;
    uint64_t start_ns, measure_from_ns, end_ns;
    atomic_int in_flight; /* the sender thread starts calls, the main thread finishes them */
    atomic_bool sender_done;
    uint64_t status_counts[N_STATUS], over_cap, sent;
    struct histogram latency, send_lag;
};

static ProtobufCBinaryData bin(const char *s)
{
    ProtobufCBinaryData b = {.len = strlen(s), .data = (uint8_t *)(uintptr_t)s};
    return b;
}

/* The request body for call number seq (owned by the caller, free()). */
static uint8_t *build_request(const struct run *r, uint64_t seq, size_t *len, const char **path)
{
    char user[32], item[32], event_id[48];
    ProtobufCMessage *msg;
    Driftrec__V1__Event ev = DRIFTREC__V1__EVENT__INIT;
    Driftrec__V1__Event *evs[1] = {&ev};
    Driftrec__V1__IngestRequest ingest = DRIFTREC__V1__INGEST_REQUEST__INIT;
    Driftrec__V1__EmbedRequest embed = DRIFTREC__V1__EMBED_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckRequest health = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCBinaryData text;
    if (strcmp(r->o.method, "ingest") == 0) {
        snprintf(user, sizeof user, "load-u%llu", (unsigned long long)(seq % 1000));
        snprintf(item, sizeof item, "load-i%llu", (unsigned long long)(seq % 5000));
        snprintf(event_id, sizeof event_id, "load-%u-%llu", r->o.seed, (unsigned long long)seq);
        ev.has_user_id = ev.has_item_id = ev.has_ts = ev.has_event_type = ev.has_event_id = 1;
        ev.user_id = bin(user);
        ev.item_id = bin(item);
        ev.ts = 1700000000 + (int64_t)seq;
        ev.event_type = DRIFTREC__V1__EVENT_TYPE__CLICK;
        ev.event_id = bin(event_id);
        ingest.n_events = 1;
        ingest.events = evs;
        msg = &ingest.base;
        *path = "/driftrec.v1.Recommender/Ingest";
    } else if (strcmp(r->o.method, "embed") == 0) {
        text = bin("waterproof hiking boots for wet autumn trails");
        embed.n_texts = 1;
        embed.texts = &text;
        msg = &embed.base;
        *path = "/driftrec.v1.Recommender/Embed";
    } else {
        health.service = (char *)"";
        msg = &health.base;
        *path = "/grpc.health.v1.Health/Check";
    }
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        protobuf_c_message_pack(msg, buf);
    return buf;
}

static bool start_call(struct run *r, uint64_t intended_ns)
{
    struct call *c = calloc(1, sizeof *c);
    if (!c)
        return false;
    size_t len;
    const char *path;
    uint8_t *body = build_request(r, r->seq++, &len, &path);
    if (!body) {
        free(c);
        return false;
    }
    c->intended_ns = intended_ns;
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                         gpr_time_from_millis(r->o.timeout_ms, GPR_TIMESPAN));
    grpc_slice method = grpc_slice_from_static_string(path);
    c->call = grpc_channel_create_call(r->channel, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq, method,
                                       NULL, deadline, NULL);
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)body, len);
    free(body);
    c->send = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    grpc_metadata_array_init(&c->initial_md);
    grpc_metadata_array_init(&c->trailing_md);
    c->details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &c->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
    ops[5].data.recv_status_on_client.status = &c->status;
    ops[5].data.recv_status_on_client.status_details = &c->details;
    if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK) {
        grpc_call_unref(c->call);
        grpc_byte_buffer_destroy(c->send);
        free(c);
        return false;
    }
    atomic_fetch_add_explicit(&r->in_flight, 1, memory_order_relaxed);
    r->sent++;
    return true;
}

static void finish_call(struct run *r, struct call *c, uint64_t done_ns)
{
    atomic_fetch_sub_explicit(&r->in_flight, 1, memory_order_relaxed);
    if (c->intended_ns >= r->measure_from_ns) { /* warm-up calls are not counted */
        r->status_counts[(unsigned)c->status < N_STATUS ? c->status : GRPC_STATUS_UNKNOWN]++;
        record(&r->latency, done_ns - c->intended_ns);
    }
    if (c->recv)
        grpc_byte_buffer_destroy(c->recv);
    grpc_byte_buffer_destroy(c->send);
    grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->initial_md);
    grpc_metadata_array_destroy(&c->trailing_md);
    grpc_call_unref(c->call);
    free(c);
}

/* Next Poisson arrival gap in ns (inverse transform of an exponential). */
static uint64_t poisson_gap_ns(double rate, unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    double u = ((double)(*state >> 1) + 1.0) / 2147483649.0;
    return (uint64_t)(-log(u) / rate * 1e9);
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
        ;
}

/* Open loop: start each arrival at its time, or count it over the cap. */
static void *sender_main(void *arg)
{
    struct run *r = arg;
    unsigned rng = r->o.seed;
    for (uint64_t next = r->start_ns; next < r->end_ns; next += poisson_gap_ns(r->o.rate, &rng)) {
        sleep_until(next);
        bool measured = next >= r->measure_from_ns;
        if (atomic_load_explicit(&r->in_flight, memory_order_relaxed) >= r->o.max_in_flight) {
            r->over_cap += measured;
            continue;
        }
        if (measured)
            record(&r->send_lag, now_ns() - next);
        start_call(r, next);
    }
    /* release: the main thread reads over_cap, send_lag and sent after seeing this */
    atomic_store_explicit(&r->sender_done, true, memory_order_release);
    return NULL;
}

static void run_load(struct run *r)
{
    bool open_loop = strcmp(r->o.mode, "open") == 0;
    r->start_ns = now_ns();
    r->measure_from_ns = r->start_ns + (uint64_t)(r->o.warmup_s * 1e9);
    r->end_ns = r->measure_from_ns + (uint64_t)(r->o.duration_s * 1e9);
    pthread_t sender;
    if (open_loop) {
        pthread_create(&sender, NULL, sender_main, r);
    } else {
        for (int i = 0; i < r->o.concurrency; i++)
            start_call(r, now_ns());
        atomic_store_explicit(&r->sender_done, true, memory_order_relaxed);
    }
    for (;;) {
        bool sender_done = atomic_load_explicit(&r->sender_done, memory_order_acquire);
        if (sender_done && now_ns() >= r->end_ns &&
            atomic_load_explicit(&r->in_flight, memory_order_relaxed) == 0)
            break;
        grpc_event ev = grpc_completion_queue_next(
            r->cq,
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(50, GPR_TIMESPAN)),
            NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            finish_call(r, ev.tag, now_ns());
            if (!open_loop && now_ns() < r->end_ns)
                start_call(r, now_ns());
        }
    }
    if (open_loop)
        pthread_join(sender, NULL);
}

static const char *const status_names[N_STATUS] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

static void report(const struct run *r)
{
    uint64_t done = 0, ok = r->status_counts[0];
    for (int s = 0; s < N_STATUS; s++)
        done += r->status_counts[s];
    double secs = r->o.duration_s;
    bool open_loop = strcmp(r->o.mode, "open") == 0;
    double lag_p99 = percentile_ms(&r->send_lag, 99.0);
    bool valid = !open_loop || lag_p99 <= 1.0;
    printf("driftrec-load %s %s loop: %llu calls in %.1f s (%.0f/s), ok %llu, over_cap %llu%s\n",
           r->o.method, r->o.mode, (unsigned long long)done, secs, (double)done / secs,
           (unsigned long long)ok, (unsigned long long)r->over_cap,
           valid ? "" : "  INVALID: the sender fell behind (p99 send lag > 1 ms)");
    printf("latency ms: p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n",
           percentile_ms(&r->latency, 50), percentile_ms(&r->latency, 90),
           percentile_ms(&r->latency, 99), percentile_ms(&r->latency, 99.9),
           (double)r->latency.max_ns / 1e6);
    for (int s = 1; s < N_STATUS; s++)
        if (r->status_counts[s])
            printf("status %s: %llu\n", status_names[s], (unsigned long long)r->status_counts[s]);
    if (!r->o.json)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", r->o.method);
    cJSON_AddStringToObject(o, "mode", r->o.mode);
    cJSON_AddNumberToObject(o, "duration_s", secs);
    cJSON_AddNumberToObject(o, "target_rate", open_loop ? r->o.rate : 0);
    cJSON_AddNumberToObject(o, "concurrency", open_loop ? 0 : r->o.concurrency);
    cJSON_AddNumberToObject(o, "calls", (double)done);
    cJSON_AddNumberToObject(o, "qps", (double)done / secs);
    cJSON_AddNumberToObject(o, "over_cap", (double)r->over_cap);
    cJSON_AddBoolToObject(o, "valid", valid);
    cJSON *st = cJSON_AddObjectToObject(o, "status");
    for (int s = 0; s < N_STATUS; s++)
        if (r->status_counts[s])
            cJSON_AddNumberToObject(st, status_names[s], (double)r->status_counts[s]);
    cJSON *lat = cJSON_AddObjectToObject(o, "latency_ms");
    static const double ps[] = {50, 90, 99, 99.9};
    static const char *const pn[] = {"p50", "p90", "p99", "p99.9"};
    for (int i = 0; i < 4; i++)
        cJSON_AddNumberToObject(lat, pn[i], percentile_ms(&r->latency, ps[i]));
    cJSON_AddNumberToObject(lat, "max", (double)r->latency.max_ns / 1e6);
    cJSON_AddNumberToObject(o, "send_lag_p99_ms", lag_p99);
    char *text = cJSON_Print(o);
    FILE *f = fopen(r->o.json, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        fprintf(stderr, "driftrec-load: cannot write %s\n", r->o.json);
    free(text);
    cJSON_Delete(o);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: driftrec-load [options]\n"
                 "  --addr HOST:PORT      server (default 127.0.0.1:50051)\n"
                 "  --method M            ingest | embed | health (default health)\n"
                 "  --mode closed|open    closed loop (default) or open loop (Poisson arrivals)\n"
                 "  --concurrency N       closed loop: calls kept in flight (default 8)\n"
                 "  --rate R              open loop: arrivals per second (default 100)\n"
                 "  --max-in-flight N     open loop: cap; arrivals over it count as over_cap "
                 "(default 256)\n"
                 "  --duration S          measured seconds (default 5)\n"
                 "  --warmup S            seconds before measuring (default 1)\n"
                 "  --timeout-ms N        per-call deadline (default 2000)\n"
                 "  --seed N              event ids and arrival times (default 1)\n"
                 "  --json PATH           write the result as JSON\n"
                 "Latency counts from each call's intended start; every gRPC status is counted.\n");
}

int main(int argc, char **argv)
{
    struct run r = {.o = {.addr = "127.0.0.1:50051",
                          .method = "health",
                          .mode = "closed",
                          .concurrency = 8,
                          .max_in_flight = 256,
                          .timeout_ms = 2000,
                          .rate = 100,
                          .duration_s = 5,
                          .warmup_s = 1,
                          .seed = 1}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--addr") == 0)
            r.o.addr = v;
        else if (strcmp(a, "--method") == 0)
            r.o.method = v;
        else if (strcmp(a, "--mode") == 0)
            r.o.mode = v;
        else if (strcmp(a, "--concurrency") == 0)
            r.o.concurrency = atoi(v);
        else if (strcmp(a, "--rate") == 0)
            r.o.rate = atof(v);
        else if (strcmp(a, "--max-in-flight") == 0)
            r.o.max_in_flight = atoi(v);
        else if (strcmp(a, "--duration") == 0)
            r.o.duration_s = atof(v);
        else if (strcmp(a, "--warmup") == 0)
            r.o.warmup_s = atof(v);
        else if (strcmp(a, "--timeout-ms") == 0)
            r.o.timeout_ms = atoi(v);
        else if (strcmp(a, "--seed") == 0)
            r.o.seed = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--json") == 0)
            r.o.json = v;
        else {
            fprintf(stderr, "driftrec-load: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    bool known_method = strcmp(r.o.method, "ingest") == 0 || strcmp(r.o.method, "embed") == 0 ||
                        strcmp(r.o.method, "health") == 0;
    bool known_mode = strcmp(r.o.mode, "open") == 0 || strcmp(r.o.mode, "closed") == 0;
    if (!known_method || !known_mode || r.o.concurrency < 1 || r.o.rate <= 0 ||
        r.o.max_in_flight < 1 || r.o.duration_s <= 0 || r.o.warmup_s < 0 || r.o.timeout_ms < 1) {
        fprintf(stderr, "driftrec-load: bad option value (see --help)\n");
        return 2;
    }
    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    r.channel = grpc_channel_create(r.o.addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    r.cq = grpc_completion_queue_create_for_next(NULL);
    run_load(&r);
    report(&r);
    grpc_channel_destroy(r.channel);
    grpc_completion_queue_shutdown(r.cq);
    while (grpc_completion_queue_next(r.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(r.cq);
    grpc_shutdown();
    return 0;
}
