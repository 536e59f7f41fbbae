/* driftrec_load.c: driftrec-load, the load-test client (gRPC C core, one thread, async).
 *
 * Closed loop: --concurrency callers, each starting its next call when the last returns.
 * Open loop: Poisson arrivals at --rate calls/s, started by a sender thread that sleeps to
 * each arrival's time (clock_nanosleep) while the main thread drains completions; latency
 * counts from each call's intended start, so a stalled server shows up in the tail instead
 * of slowing the sender down (no coordinated omission).  With --max-in-flight reached, an arrival
 * is not sent: it is counted as over_cap (a failure).  The send lag (how late each arrival was
 * handled after its intended start) is recorded per arrival and, as a mean, per tenth of the
 * measured time.  Lag is already part of each call's latency, so wake-up jitter only shows in
 * the tail; what makes a run invalid is a sender that fell behind: a median lag, or a growth of
 * the mean lag from the first tenth to the last, over --max-send-lag-ms. Every gRPC status code is
 * counted; latencies go into log buckets (64 per power of two, about 1.1% wide, as HdrHistogram
 * does) reported as p50/p90/p99/p99.9/max, in text and JSON, for all calls and per method.
 *
 * Requests: Health, Embed and Ingest are synthetic; Recommend (with and without query text),
 * Rank and Ingest can come from a replay file of real histories (bench/load/make_replay.py:
 * per line a user id, the user's last events, a query text and Rank candidates), the
 * request bodies packed once at load.  --mix picks each call's method by weight.
 *
 * Transport (client.h, shared with driftrec-cli): plaintext or TLS (mTLS), and metadata sent
 * with every call (a bearer token, --metadata).  The JSON result carries, besides the
 * percentiles, the latency histogram (all calls and per method) and a timeline (per window of
 * the measured time, by intended start: calls, errors, percentiles) that
 * bench/load/plot_load.py draws (--plot runs it).
 */
#include <cjson/cJSON.h>
#include <errno.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "driftrec.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "tsan.h"

#define SUB_BUCKETS 64
#define N_BUCKETS   (64 * SUB_BUCKETS)
#define N_STATUS    17
#define N_LAG_WIN   10
#define MAX_WINDOWS 300 /* timeline windows: 1 s each, longer for runs over 300 s */

enum dr_method {
    DR_M_HEALTH,
    DR_M_EMBED,
    DR_M_INGEST,
    DR_M_RECOMMEND,
    DR_M_RECOMMEND_QUERY,
    DR_M_RANK,
    DR_N_METHODS
};

static const char *const dr_method_names[DR_N_METHODS] = {"health",    "embed",           "ingest",
                                                          "recommend", "recommend_query", "rank"};

static const char *const dr_method_paths[DR_N_METHODS] = {
    "/grpc.health.v1.Health/Check",       "/driftrec.v1.Recommender/Embed",
    "/driftrec.v1.Recommender/Ingest",    "/driftrec.v1.Recommender/Recommend",
    "/driftrec.v1.Recommender/Recommend", "/driftrec.v1.Recommender/Rank"};

/* One replay line: the packed Recommend, Recommend-with-query and Rank bodies, and what an
 * Ingest built from it needs (the user and the last event). */
struct dr_replay_entry {
    uint8_t *body[3];
    size_t len[3];
    char *user, *item;
    int64_t ts;
    int type;
};

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
    const char *addr, *method, *mix, *mode, *json, *replay, *plot;
    struct dr_client_opts transport;
    int concurrency, max_in_flight, timeout_ms, k, connections;
    bool is_inline; /* Recommend and Rank carry the line's events (else the user id only) */
    double rate, duration_s, warmup_s, max_send_lag_ms;
    unsigned seed;
};

struct call {
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    uint64_t intended_ns;
    int method;
};

struct run {
    struct opts o;
    grpc_channel **channels; /* o.connections of them, each its own HTTP/2 connection */
    grpc_completion_queue *cq;
    uint64_t seq;
    uint64_t start_ns, measure_from_ns, end_ns;
    atomic_int in_flight; /* the sender thread starts calls, the main thread finishes them */
    atomic_bool sender_done;
    uint64_t status_counts[N_STATUS], over_cap, sent;
    uint64_t method_status[DR_N_METHODS][N_STATUS];
    struct histogram latency, send_lag, method_latency[DR_N_METHODS];
    double lag_win_sum_ns[N_LAG_WIN]; /* open loop: send lag per tenth of the measured time */
    uint64_t lag_win_n[N_LAG_WIN];
    unsigned weights[DR_N_METHODS], weight_total;
    struct dr_replay_entry *replay;
    size_t n_replay;
    struct dr_client_metadata metadata; /* sent with every call */
    /* The timeline: calls by intended start, per window of window_ns from measure_from_ns. */
    struct histogram *windows;
    uint64_t *window_errors;
    size_t n_windows;
    uint64_t window_ns;
};

static ProtobufCBinaryData bin(const char *s)
{
    ProtobufCBinaryData b = {.len = strlen(s), .data = (uint8_t *)(uintptr_t)s};
    return b;
}

static uint64_t dr_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* The method of call number seq: drawn by the --mix weights. */
static int dr_pick_method(const struct run *r, uint64_t seq)
{
    uint64_t x = dr_mix64(((uint64_t)r->o.seed << 40) ^ seq) % r->weight_total;
    for (int m = 0; m < DR_N_METHODS; m++) {
        if (x < r->weights[m])
            return m;
        x -= r->weights[m];
    }
    return DR_M_HEALTH;
}

static uint8_t *dr_pack(const ProtobufCMessage *msg, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        protobuf_c_message_pack(msg, buf);
    return buf;
}

/* The request body of call number seq, method m (owned by the caller, free()). */
static uint8_t *build_request(const struct run *r, uint64_t seq, int m, size_t *len)
{
    char user[160], item[32], event_id[48];
    Driftrec__V1__Event ev = DRIFTREC__V1__EVENT__INIT;
    Driftrec__V1__Event *evs[1] = {&ev};
    Driftrec__V1__IngestRequest ingest = DRIFTREC__V1__INGEST_REQUEST__INIT;
    Driftrec__V1__EmbedRequest embed = DRIFTREC__V1__EMBED_REQUEST__INIT;
    Grpc__Health__V1__HealthCheckRequest health = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCBinaryData text;
    const struct dr_replay_entry *e = r->n_replay ? &r->replay[seq % r->n_replay] : NULL;
    if (m == DR_M_RECOMMEND || m == DR_M_RECOMMEND_QUERY || m == DR_M_RANK) {
        int slot = m - DR_M_RECOMMEND;
        uint8_t *buf = malloc(e->len[slot] ? e->len[slot] : 1);
        if (buf)
            memcpy(buf, e->body[slot], e->len[slot]);
        *len = e->len[slot];
        return buf;
    }
    if (m == DR_M_INGEST) {
        /* Replayed events go to a user of their own ("load-" + the replay's user), so the
         * users Recommend and Rank name never gain a stored history. */
        if (e)
            snprintf(user, sizeof user, "load-%s", e->user);
        else
            snprintf(user, sizeof user, "load-u%llu", (unsigned long long)(seq % 1000));
        snprintf(item, sizeof item, "load-i%llu", (unsigned long long)(seq % 5000));
        snprintf(event_id, sizeof event_id, "load-%u-%llu", r->o.seed, (unsigned long long)seq);
        ev.has_user_id = ev.has_item_id = ev.has_ts = ev.has_event_type = ev.has_event_id = 1;
        ev.user_id = bin(user);
        ev.item_id = bin(e ? e->item : item);
        ev.ts = e ? e->ts : 1700000000 + (int64_t)seq;
        ev.event_type = e ? (Driftrec__V1__EventType)e->type : DRIFTREC__V1__EVENT_TYPE__CLICK;
        ev.event_id = bin(event_id);
        ingest.n_events = 1;
        ingest.events = evs;
        return dr_pack(&ingest.base, len);
    }
    if (m == DR_M_EMBED) {
        text = bin("waterproof hiking boots for wet autumn trails");
        embed.n_texts = 1;
        embed.texts = &text;
        return dr_pack(&embed.base, len);
    }
    health.service = (char *)"";
    return dr_pack(&health.base, len);
}

static const char *dr_json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One replay line into e; false when it lacks a user id or events. */
static bool dr_replay_entry_init(struct dr_replay_entry *e, const cJSON *o, int k, bool is_inline)
{
    const char *user = dr_json_str(o, "user_id"), *query = dr_json_str(o, "query");
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(o, "events");
    const cJSON *cands = cJSON_GetObjectItemCaseSensitive(o, "candidates");
    int n = cJSON_GetArraySize(events), nc = cJSON_GetArraySize(cands);
    if (!user || !cJSON_IsArray(events) || n < 1)
        return false;
    Driftrec__V1__Event *evs = calloc((size_t)n, sizeof *evs);
    Driftrec__V1__Event **ptrs = calloc((size_t)n, sizeof *ptrs);
    ProtobufCBinaryData *cand = calloc((size_t)(nc > 0 ? nc : 1), sizeof *cand);
    bool ok = evs && ptrs && cand;
    for (int i = 0; ok && i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(events, i);
        const char *item = dr_json_str(x, "item_id");
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(x, "ts");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(x, "type");
        const cJSON *dwell = cJSON_GetObjectItemCaseSensitive(x, "dwell_s");
        const cJSON *amount = cJSON_GetObjectItemCaseSensitive(x, "amount");
        const cJSON *rating = cJSON_GetObjectItemCaseSensitive(x, "rating");
        if (!item || !cJSON_IsNumber(ts) || !cJSON_IsNumber(type)) {
            ok = false;
            break;
        }
        Driftrec__V1__Event init = DRIFTREC__V1__EVENT__INIT;
        evs[i] = init;
        evs[i].has_item_id = evs[i].has_ts = evs[i].has_event_type = 1;
        evs[i].item_id = bin(item);
        evs[i].ts = (int64_t)ts->valuedouble;
        evs[i].event_type = (Driftrec__V1__EventType)type->valueint;
        if (cJSON_IsNumber(dwell)) {
            evs[i].has_dwell_s = 1;
            evs[i].dwell_s = dwell->valuedouble;
        }
        if (cJSON_IsNumber(amount)) {
            evs[i].has_amount = 1;
            evs[i].amount = amount->valuedouble;
        }
        if (cJSON_IsNumber(rating)) {
            evs[i].has_rating = 1;
            evs[i].rating = rating->valueint;
        }
        ptrs[i] = &evs[i];
    }
    int n_cand = 0;
    for (int i = 0; ok && i < nc; i++) {
        const cJSON *c = cJSON_GetArrayItem(cands, i);
        if (cJSON_IsString(c) && c->valuestring[0])
            cand[n_cand++] = bin(c->valuestring);
    }
    if (ok) {
        Driftrec__V1__RecommendRequest rec = DRIFTREC__V1__RECOMMEND_REQUEST__INIT;
        rec.has_user_id = rec.has_k = 1;
        rec.user_id = bin(user);
        rec.k = k;
        rec.n_recent_events = is_inline ? (size_t)n : 0;
        rec.recent_events = is_inline ? ptrs : NULL;
        e->body[0] = dr_pack(&rec.base, &e->len[0]);
        rec.has_query_text = 1;
        rec.query_text = bin(query && query[0] ? query : "gift ideas");
        e->body[1] = dr_pack(&rec.base, &e->len[1]);
        Driftrec__V1__RankRequest rank = DRIFTREC__V1__RANK_REQUEST__INIT;
        rank.has_user_id = 1;
        rank.user_id = bin(user);
        rank.n_recent_events = is_inline ? (size_t)n : 0;
        rank.recent_events = is_inline ? ptrs : NULL;
        if (n_cand == 0) /* Rank needs a candidate: the last event's item */
            cand[n_cand++] = evs[n - 1].item_id;
        rank.n_candidate_item_ids = (size_t)n_cand;
        rank.candidate_item_ids = cand;
        e->body[2] = dr_pack(&rank.base, &e->len[2]);
        e->user = strdup(user);
        e->item = strdup((const char *)evs[n - 1].item_id.data);
        e->ts = evs[n - 1].ts;
        e->type = (int)evs[n - 1].event_type;
        ok = e->body[0] && e->body[1] && e->body[2] && e->user && e->item;
    }
    free(evs);
    free(ptrs);
    free(cand);
    return ok;
}

static void dr_replay_free(struct run *r)
{
    for (size_t i = 0; i < r->n_replay; i++) {
        for (int j = 0; j < 3; j++)
            free(r->replay[i].body[j]);
        free(r->replay[i].user);
        free(r->replay[i].item);
    }
    free(r->replay);
    r->replay = NULL;
    r->n_replay = 0;
}

/* Reads the replay file (JSON lines); false with a message on stderr. */
static bool dr_replay_load(struct run *r, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "driftrec-load: cannot read %s\n", path);
        return false;
    }
    size_t cap = 0, lineno = 0;
    char *line = NULL, *buf = NULL;
    size_t buf_cap = 0;
    ssize_t got;
    bool ok = true;
    while ((got = getline(&buf, &buf_cap, f)) > 0) {
        line = buf;
        lineno++;
        if (got <= 1)
            continue;
        cJSON *o = cJSON_Parse(line);
        if (r->n_replay == cap) {
            size_t nc = cap ? 2 * cap : 1024;
            struct dr_replay_entry *grown = realloc(r->replay, nc * sizeof *grown);
            if (!grown) {
                cJSON_Delete(o);
                ok = false;
                break;
            }
            r->replay = grown;
            cap = nc;
        }
        struct dr_replay_entry *e = &r->replay[r->n_replay];
        memset(e, 0, sizeof *e);
        if (!o || !dr_replay_entry_init(e, o, r->o.k, r->o.is_inline)) {
            fprintf(stderr, "driftrec-load: %s:%zu: not a replay line\n", path, lineno);
            for (int j = 0; j < 3; j++)
                free(e->body[j]);
            free(e->user);
            free(e->item);
            cJSON_Delete(o);
            ok = false;
            break;
        }
        r->n_replay++;
        cJSON_Delete(o);
    }
    free(buf);
    fclose(f);
    if (ok && r->n_replay == 0) {
        fprintf(stderr, "driftrec-load: %s has no requests\n", path);
        ok = false;
    }
    return ok;
}

/* "recommend=70,rank=10,..." (or one method name) into the weights; false if malformed. */
static bool dr_parse_mix(struct run *r, const char *spec)
{
    memset(r->weights, 0, sizeof r->weights);
    r->weight_total = 0;
    char *copy = strdup(spec), *save = NULL;
    bool ok = copy != NULL;
    for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; ok && tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        unsigned w = 1;
        if (eq) {
            *eq = '\0';
            char *end;
            unsigned long v = strtoul(eq + 1, &end, 10);
            if (*end || end == eq + 1 || v > 1000000) {
                ok = false;
                break;
            }
            w = (unsigned)v;
        }
        int m = 0;
        while (m < DR_N_METHODS && strcmp(tok, dr_method_names[m]) != 0)
            m++;
        if (m == DR_N_METHODS) {
            ok = false;
            break;
        }
        r->weights[m] += w;
        r->weight_total += w;
    }
    free(copy);
    return ok && r->weight_total > 0;
}

static bool start_call(struct run *r, uint64_t intended_ns)
{
    struct call *c = calloc(1, sizeof *c);
    if (!c)
        return false;
    size_t len;
    uint64_t seq = r->seq++;
    int m = dr_pick_method(r, seq);
    const char *path = dr_method_paths[m];
    uint8_t *body = build_request(r, seq, m, &len);
    if (!body) {
        free(c);
        return false;
    }
    c->intended_ns = intended_ns;
    c->method = m;
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                         gpr_time_from_millis(r->o.timeout_ms, GPR_TIMESPAN));
    grpc_slice method = grpc_slice_from_static_string(path);
    grpc_channel *channel = r->channels[seq % (uint64_t)r->o.connections]; /* round robin */
    c->call = grpc_channel_create_call(channel, NULL, GRPC_PROPAGATE_DEFAULTS, r->cq, method, NULL,
                                       deadline, NULL);
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
    ops[0].data.send_initial_metadata.count = r->metadata.count;
    ops[0].data.send_initial_metadata.metadata = r->metadata.count ? r->metadata.md : NULL;
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
    grpc_call *call = c->call;
    DR_TSAN_RELEASE(c); /* finish_call gets c from the queue, maybe on another thread (tsan.h) */
    if (grpc_call_start_batch(call, ops, 6, c, NULL) != GRPC_CALL_OK) {
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
        int st = (unsigned)c->status < N_STATUS ? (int)c->status : GRPC_STATUS_UNKNOWN;
        r->status_counts[st]++;
        r->method_status[c->method][st]++;
        record(&r->latency, done_ns - c->intended_ns);
        record(&r->method_latency[c->method], done_ns - c->intended_ns);
        size_t w = (size_t)((c->intended_ns - r->measure_from_ns) / r->window_ns);
        w = w < r->n_windows ? w : r->n_windows - 1;
        record(&r->windows[w], done_ns - c->intended_ns);
        r->window_errors[w] += st != GRPC_STATUS_OK;
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
        if (measured) { /* every arrival's lag, sent or over the cap */
            uint64_t lag = now_ns() - next;
            size_t w = (size_t)((next - r->measure_from_ns) * (double)N_LAG_WIN /
                                (double)(r->end_ns - r->measure_from_ns));
            w = w < N_LAG_WIN ? w : N_LAG_WIN - 1;
            record(&r->send_lag, lag);
            r->lag_win_sum_ns[w] += (double)lag;
            r->lag_win_n[w]++;
        }
        if (atomic_load_explicit(&r->in_flight, memory_order_relaxed) >= r->o.max_in_flight) {
            r->over_cap += measured;
            continue;
        }
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
            DR_TSAN_ACQUIRE(ev.tag); /* pairs with start_call's release */
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

/* Mean send lag (ms) in the tenth w of the measured time; 0 without arrivals there. */
static double lag_win_ms(const struct run *r, int w)
{
    return r->lag_win_n[w] ? r->lag_win_sum_ns[w] / (double)r->lag_win_n[w] / 1e6 : 0.0;
}

/* "latency_histogram": the non-empty buckets, their upper bounds (ms) and counts: a CDF. */
static void add_histogram(cJSON *o, const struct histogram *h)
{
    cJSON *hist = cJSON_AddObjectToObject(o, "latency_histogram");
    cJSON *le = cJSON_AddArrayToObject(hist, "le_ms"), *n = cJSON_AddArrayToObject(hist, "count");
    for (size_t b = 0; b < N_BUCKETS; b++) {
        if (!h->counts[b])
            continue;
        uint64_t upper = bucket_upper(b);
        cJSON_AddItemToArray(
            le, cJSON_CreateNumber((double)(upper < h->max_ns ? upper : h->max_ns) / 1e6));
        cJSON_AddItemToArray(n, cJSON_CreateNumber((double)h->counts[b]));
    }
}

/* "timeline": per window of the measured time (by intended start), its start, calls, errors
 * (any status but OK) and percentiles. */
static void add_timeline(cJSON *o, const struct run *r)
{
    cJSON *t = cJSON_AddObjectToObject(o, "timeline");
    cJSON_AddNumberToObject(t, "window_s", (double)r->window_ns / 1e9);
    static const char *const keys[] = {"t_s",    "calls",  "errors", "p50_ms",
                                       "p90_ms", "p99_ms", "max_ms"};
    cJSON *cols[7];
    for (int k = 0; k < 7; k++)
        cols[k] = cJSON_AddArrayToObject(t, keys[k]);
    for (size_t w = 0; w < r->n_windows; w++) {
        const struct histogram *h = &r->windows[w];
        double v[7] = {(double)(w * r->window_ns) / 1e9,
                       (double)h->total,
                       (double)r->window_errors[w],
                       percentile_ms(h, 50),
                       percentile_ms(h, 90),
                       percentile_ms(h, 99),
                       (double)h->max_ns / 1e6};
        for (int k = 0; k < 7; k++)
            cJSON_AddItemToArray(cols[k], cJSON_CreateNumber(v[k]));
    }
}

static void report(const struct run *r)
{
    uint64_t done = 0, ok = r->status_counts[0];
    for (int s = 0; s < N_STATUS; s++)
        done += r->status_counts[s];
    double secs = r->o.duration_s;
    bool open_loop = strcmp(r->o.mode, "open") == 0;
    double lag_p50 = percentile_ms(&r->send_lag, 50.0), lag_p99 = percentile_ms(&r->send_lag, 99.0);
    int first = 0, last = N_LAG_WIN - 1;
    while (first < last && !r->lag_win_n[first])
        first++;
    while (last > first && !r->lag_win_n[last])
        last--;
    double lag_growth = lag_win_ms(r, last) - lag_win_ms(r, first);
    bool valid =
        !open_loop || (lag_p50 <= r->o.max_send_lag_ms && lag_growth <= r->o.max_send_lag_ms);
    printf("driftrec-load %s %s loop: %llu calls in %.1f s (%.0f/s), ok %llu, over_cap %llu%s\n",
           r->o.mix, r->o.mode, (unsigned long long)done, secs, (double)done / secs,
           (unsigned long long)ok, (unsigned long long)r->over_cap,
           valid ? "" : "  INVALID: the sender fell behind (send lag p50 or growth > limit)");
    if (open_loop)
        printf("send lag ms: p50 %.3f p99 %.3f max %.3f, mean first tenth %.3f last tenth %.3f\n",
               lag_p50, lag_p99, (double)r->send_lag.max_ns / 1e6, lag_win_ms(r, first),
               lag_win_ms(r, last));
    printf("latency ms: p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n",
           percentile_ms(&r->latency, 50), percentile_ms(&r->latency, 90),
           percentile_ms(&r->latency, 99), percentile_ms(&r->latency, 99.9),
           (double)r->latency.max_ns / 1e6);
    for (int s = 1; s < N_STATUS; s++)
        if (r->status_counts[s])
            printf("status %s: %llu\n", status_names[s], (unsigned long long)r->status_counts[s]);
    for (int m = 0; m < DR_N_METHODS; m++) {
        const struct histogram *h = &r->method_latency[m];
        if (!r->weights[m])
            continue;
        printf("  %-16s %8llu calls, ok %8llu, p50 %.3f p99 %.3f ms\n", dr_method_names[m],
               (unsigned long long)h->total, (unsigned long long)r->method_status[m][0],
               percentile_ms(h, 50), percentile_ms(h, 99));
    }
    if (!r->o.json)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", r->o.mix);
    if (r->o.replay)
        cJSON_AddStringToObject(o, "replay", r->o.replay);
    cJSON_AddStringToObject(o, "mode", r->o.mode);
    cJSON_AddNumberToObject(o, "duration_s", secs);
    cJSON_AddNumberToObject(o, "target_rate", open_loop ? r->o.rate : 0);
    cJSON_AddNumberToObject(o, "concurrency", open_loop ? 0 : r->o.concurrency);
    cJSON_AddNumberToObject(o, "connections", r->o.connections);
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
    cJSON_AddNumberToObject(o, "send_lag_p50_ms", lag_p50);
    cJSON_AddNumberToObject(o, "send_lag_p99_ms", lag_p99);
    cJSON_AddNumberToObject(o, "send_lag_max_ms", (double)r->send_lag.max_ns / 1e6);
    cJSON_AddNumberToObject(o, "send_lag_growth_ms", lag_growth);
    cJSON *wins = cJSON_AddArrayToObject(o, "send_lag_mean_ms_by_tenth");
    for (int w = 0; w < N_LAG_WIN; w++)
        cJSON_AddItemToArray(wins, cJSON_CreateNumber(lag_win_ms(r, w)));
    cJSON *per = cJSON_AddObjectToObject(o, "methods");
    for (int m = 0; m < DR_N_METHODS; m++) {
        const struct histogram *h = &r->method_latency[m];
        if (!r->weights[m])
            continue;
        cJSON *mo = cJSON_AddObjectToObject(per, dr_method_names[m]);
        cJSON_AddStringToObject(mo, "path", dr_method_paths[m]);
        cJSON_AddNumberToObject(mo, "weight", r->weights[m]);
        cJSON_AddNumberToObject(mo, "calls", (double)h->total);
        cJSON *ms = cJSON_AddObjectToObject(mo, "status");
        for (int s = 0; s < N_STATUS; s++)
            if (r->method_status[m][s])
                cJSON_AddNumberToObject(ms, status_names[s], (double)r->method_status[m][s]);
        cJSON *ml = cJSON_AddObjectToObject(mo, "latency_ms");
        for (int i = 0; i < 4; i++)
            cJSON_AddNumberToObject(ml, pn[i], percentile_ms(h, ps[i]));
        cJSON_AddNumberToObject(ml, "max", (double)h->max_ns / 1e6);
        add_histogram(mo, h);
    }
    add_histogram(o, &r->latency);
    add_timeline(o, r);
    char *text = cJSON_Print(o);
    FILE *f = fopen(r->o.json, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        fprintf(stderr, "driftrec-load: cannot write %s\n", r->o.json);
    free(text);
    cJSON_Delete(o);
}

/* Runs the plot script on the JSON result: 0, or 1 with a message. */
static int run_plot(const char *json, const char *png, const char *label)
{
    const char *script = getenv("DR_LOAD_PLOT_SCRIPT");
    script = script && script[0] ? script : DR_PLOT_SCRIPT;
    pid_t pid = fork();
    if (pid == 0) {
        execl("/usr/bin/python3", "python3", script, json, "-o", png, "--label", label,
              (char *)NULL);
        fprintf(stderr, "driftrec-load: cannot run /usr/bin/python3: %s\n", strerror(errno));
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "driftrec-load: the plot failed (%s %s)\n", script, png);
        return 1;
    }
    printf("plot: %s\n", png);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: driftrec-load [options]\n"
            "  --addr HOST:PORT      server (default 127.0.0.1:50051)\n"
            "  --method M            one method: health | embed | ingest | recommend |\n"
            "                        recommend_query | rank (default health); the same as\n"
            "                        --mix M=1\n"
            "  --mix SPEC            methods by weight, e.g.\n"
            "                        recommend=70,recommend_query=10,rank=10,ingest=10; each\n"
            "                        call draws its method (seeded by --seed)\n"
            "  --replay PATH         requests from a replay file (bench/load/make_replay.py);\n"
            "                        needed by recommend, recommend_query and rank.  Line i\n"
            "                        serves calls i, i+n, ...: Recommend and Rank send its user\n"
            "                        id and all its events inline (no stored history for that\n"
            "                        user), recommend_query adds its query text, rank its\n"
            "                        candidates; ingest sends its last event for user\n"
            "                        \"load-\" + its user id (without --replay: synthetic)\n"
            "  --stored-history      Recommend and Rank send the line's user id only: the\n"
            "                        server answers from that user's stored history (and its\n"
            "                        cached state); ingest the users' events first\n"
            "  --k N                 Recommend's k (default 10)\n");
    fprintf(out,
            "  --mode closed|open    closed loop (default) or open loop (Poisson arrivals)\n"
            "  --concurrency N       closed loop: calls kept in flight (default 8)\n"
            "  --connections N       HTTP/2 connections to the server, calls spread over them\n"
            "                        round robin (default 1)\n"
            "  --rate R              open loop: arrivals per second (default 100)\n"
            "  --max-in-flight N     open loop: cap; arrivals over it count as over_cap "
            "(default 256)\n"
            "  --max-send-lag-ms L   open loop: the run is invalid (\"valid\": false) when the\n"
            "                        median send lag, or the growth of the mean send lag from\n"
            "                        the first tenth of the measured time to the last, exceeds\n"
            "                        L ms: the sender fell behind (default 5).  Lag is how late\n"
            "                        an arrival was handled after its intended start; it is\n"
            "                        part of that call's latency either way\n"
            "  --duration S          measured seconds (default 5)\n"
            "  --warmup S            seconds before measuring (default 1)\n"
            "  --timeout-ms N        per-call deadline (default 2000)\n"
            "  --seed N              method draws, event ids and arrival times (default 1)\n"
            "  --json PATH           write the result as JSON: totals, \"status\" (every gRPC\n"
            "                        code seen), \"latency_ms\", per method \"methods\", and in\n"
            "                        open loop \"valid\" and the send lag (\"send_lag_p50_ms\",\n"
            "                        \"_p99_ms\", \"_max_ms\", \"_growth_ms\", means by tenth),\n"
            "                        \"latency_histogram\" (bucket bounds and counts, also per\n"
            "                        method) and \"timeline\" (per second of the measured time,\n"
            "                        longer windows past 300 s; by intended start: calls,\n"
            "                        errors, p50/p90/p99/max)\n"
            "  --plot PNG            draw the result with bench/load/plot_load.py (python3 +\n"
            "                        matplotlib): latency percentiles over time and the\n"
            "                        latency CDF per method (with or without --json)\n"
            "connection (plaintext unless --tls-ca):\n" DR_CLIENT_OPTS_USAGE
            "Latency counts from each call's intended start; every gRPC status is counted, per\n"
            "method too.  Warm-up calls are sent but not counted.\n");
}

int main(int argc, char **argv)
{
    struct run r = {.o = {.addr = "127.0.0.1:50051",
                          .method = "health",
                          .k = 10,
                          .is_inline = true,
                          .mode = "closed",
                          .concurrency = 8,
                          .connections = 1,
                          .max_in_flight = 256,
                          .timeout_ms = 2000,
                          .rate = 100,
                          .duration_s = 5,
                          .warmup_s = 1,
                          .max_send_lag_ms = 5,
                          .seed = 1,
                          .transport = {.token_path = getenv("DR_TOKEN_FILE")}}};
    struct dr_error err = {0};
    int is_known = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--stored-history") == 0) { /* the one flag without a value */
            r.o.is_inline = false;
            continue;
        }
        if (!v) {
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--addr") == 0)
            r.o.addr = v;
        else if (strcmp(a, "--method") == 0)
            r.o.method = v;
        else if (strcmp(a, "--mix") == 0)
            r.o.mix = v;
        else if (strcmp(a, "--replay") == 0)
            r.o.replay = v;
        else if (strcmp(a, "--k") == 0)
            r.o.k = atoi(v);

        else if (strcmp(a, "--mode") == 0)
            r.o.mode = v;
        else if (strcmp(a, "--concurrency") == 0)
            r.o.concurrency = atoi(v);
        else if (strcmp(a, "--connections") == 0)
            r.o.connections = atoi(v);
        else if (strcmp(a, "--rate") == 0)
            r.o.rate = atof(v);
        else if (strcmp(a, "--max-in-flight") == 0)
            r.o.max_in_flight = atoi(v);
        else if (strcmp(a, "--duration") == 0)
            r.o.duration_s = atof(v);
        else if (strcmp(a, "--warmup") == 0)
            r.o.warmup_s = atof(v);
        else if (strcmp(a, "--max-send-lag-ms") == 0)
            r.o.max_send_lag_ms = atof(v);
        else if (strcmp(a, "--timeout-ms") == 0)
            r.o.timeout_ms = atoi(v);
        else if (strcmp(a, "--seed") == 0)
            r.o.seed = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--json") == 0)
            r.o.json = v;
        else if (strcmp(a, "--plot") == 0)
            r.o.plot = v;
        else if (dr_client_opts_apply(&r.o.transport, a, v, &is_known, &err) != DR_OK) {
            fprintf(stderr, "driftrec-load: %s\n", err.msg);
            return 2;
        } else if (!is_known) {
            fprintf(stderr, "driftrec-load: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!r.o.mix)
        r.o.mix = r.o.method;
    bool known_mix = dr_parse_mix(&r, r.o.mix);
    bool known_mode = strcmp(r.o.mode, "open") == 0 || strcmp(r.o.mode, "closed") == 0;
    if (!known_mix || !known_mode || r.o.concurrency < 1 || r.o.rate <= 0 ||
        r.o.max_in_flight < 1 || r.o.connections < 1 || r.o.connections > 1024 ||
        r.o.duration_s <= 0 || r.o.warmup_s < 0 || r.o.timeout_ms < 1 ||
        !(r.o.max_send_lag_ms > 0) || r.o.k < 1) {
        fprintf(stderr, "driftrec-load: bad option value (see --help)\n");
        return 2;
    }
    bool needs_replay =
        r.weights[DR_M_RECOMMEND] || r.weights[DR_M_RECOMMEND_QUERY] || r.weights[DR_M_RANK];
    if (needs_replay && !r.o.replay) {
        fprintf(stderr, "driftrec-load: recommend, recommend_query and rank need --replay\n");
        return 2;
    }
    if (r.o.replay && !dr_replay_load(&r, r.o.replay)) {
        dr_replay_free(&r);
        return 2;
    }
    /* The plot needs the JSON: without --json it goes to a temporary file. */
    char json_tmp[64] = "";
    if (r.o.plot && !r.o.json) {
        const char *tmp = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
        int n = snprintf(json_tmp, sizeof json_tmp, "%s/driftrec-load-XXXXXX.json", tmp);
        int fd = n > 0 && (size_t)n < sizeof json_tmp ? mkstemps(json_tmp, 5) : -1;
        if (fd < 0) {
            fprintf(stderr, "driftrec-load: cannot make a temporary file for --plot in %s\n", tmp);
            dr_replay_free(&r);
            return 2;
        }
        close(fd);
        r.o.json = json_tmp;
    }
    uint64_t measured_ns = (uint64_t)(r.o.duration_s * 1e9);
    r.window_ns = measured_ns / MAX_WINDOWS > 1000000000u ? measured_ns / MAX_WINDOWS : 1000000000u;
    r.n_windows = (size_t)((measured_ns + r.window_ns - 1) / r.window_ns);
    r.n_windows = r.n_windows ? r.n_windows : 1;
    r.windows = calloc(r.n_windows, sizeof *r.windows);
    r.window_errors = calloc(r.n_windows, sizeof *r.window_errors);
    grpc_init();
    enum dr_status st = r.windows && r.window_errors
                            ? dr_client_metadata_init(&r.metadata, &r.o.transport, &err)
                            : dr_error_set(&err, DR_ERR_NOMEM, "out of memory");
    r.channels = calloc((size_t)r.o.connections, sizeof *r.channels);
    if (st == DR_OK && !r.channels)
        st = dr_error_set(&err, DR_ERR_NOMEM, "out of memory");
    for (int i = 0; st == DR_OK && i < r.o.connections; i++)
        st = dr_client_channel_create(r.o.addr, &r.o.transport, &r.channels[i], &err);
    if (st != DR_OK) {
        for (int i = 0; r.channels && i < r.o.connections; i++)
            if (r.channels[i])
                grpc_channel_destroy(r.channels[i]);
        free(r.channels);
        dr_client_metadata_deinit(&r.metadata);
        fprintf(stderr, "driftrec-load: %s\n", err.msg);
        grpc_shutdown();
        free(r.windows);
        free(r.window_errors);
        dr_replay_free(&r);
        if (json_tmp[0])
            unlink(json_tmp);
        return 2;
    }
    r.cq = grpc_completion_queue_create_for_next(NULL);
    run_load(&r);
    report(&r);
    int rc = r.o.plot ? run_plot(r.o.json, r.o.plot, r.o.mix) : 0;
    if (json_tmp[0])
        unlink(json_tmp);
    free(r.windows);
    free(r.window_errors);
    dr_client_metadata_deinit(&r.metadata);
    for (int i = 0; i < r.o.connections; i++)
        grpc_channel_destroy(r.channels[i]);
    free(r.channels);
    grpc_completion_queue_shutdown(r.cq);
    while (grpc_completion_queue_next(r.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(r.cq);
    grpc_shutdown();
    dr_replay_free(&r);
    return rc;
}
