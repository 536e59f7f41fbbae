/* server.c: the gRPC C-core server.
 *
 * One completion queue, n_pollers threads on grpc_completion_queue_next.  Every registered
 * method keeps a few requests posted (each a heap struct call whose address is the tag);
 * a generic request catches unknown methods so they get UNIMPLEMENTED at once instead of
 * hanging until the client's deadline.  A call has at most one batch outstanding:
 *   PHASE_REQUESTED  posted, waiting for a client; the payload arrives with the call
 *   PHASE_REPLYING   the single final batch (initial metadata, message, status, close)
 * Pollers decode and validate (cheap, bounded by the message size limit), then hand the call
 * to the work pool; a full pool answers RESOURCE_EXHAUSTED at once.  Workers run the
 * handler and start the reply batch; its completion (on a poller) frees the call.
 * The recommendation model arrives after the start (dr_server_load_model, while health and
 * Ingest are served), and may be replaced while calls flow: each model (bundle + recommender)
 * lives in a reference-counted slot.  A call takes a reference under slot_lock (get and
 * increment: a plain load-then-increment could see a slot freed in between) in the worker,
 * so nothing spans the poller-to-worker hand-off, and drops it atomically when it is done; a
 * new model is built and warmed beside the old one, published by swapping the pointer under
 * the same lock, and the old one is freed by whichever call drops its last reference.  Until
 * the first model, Recommend and Rank answer UNAVAILABLE.
 * Shutdown: health NOT_SERVING (for drain_delay_ms calls are still served), then
 * shutdown_and_notify on a separate pluck queue, cancel what outlives the grace period, drain
 * the work pool, destroy, drain the queue, join pollers, commit the queued impressions.
 */
#include "server.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "batcher.h"
#include "bert.h"
#include "bundle.h"
#include "driftrec.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "history.h"
#include "impression_log.h"
#include "kernels.h"
#include "log.h"
#include "metrics.h"
#include "model_file.h"
#include "model_source.h"
#include "recommend.h"
#include "text_batcher.h"
#include "tokenizer.h"
#include "tsan.h"
#include "validate.h"
#include "workpool.h"

enum method {
    M_RECOMMEND,
    M_RANK,
    M_EMBED,
    M_INGEST,
    M_GET_MODEL,
    M_HEALTH,
    M_ADMIN_GET_STATUS,
    M_ADMIN_RELOAD,
    M_COUNT,
    M_GENERIC = M_COUNT,
};

static const char *const method_paths[M_COUNT] = {
    [M_RECOMMEND] = "/driftrec.v1.Recommender/Recommend",
    [M_RANK] = "/driftrec.v1.Recommender/Rank",
    [M_EMBED] = "/driftrec.v1.Recommender/Embed",
    [M_INGEST] = "/driftrec.v1.Recommender/Ingest",
    [M_GET_MODEL] = "/driftrec.v1.Recommender/GetModel",
    [M_HEALTH] = "/grpc.health.v1.Health/Check",
    [M_ADMIN_GET_STATUS] = "/driftrec.v1.Admin/GetStatus",
    [M_ADMIN_RELOAD] = "/driftrec.v1.Admin/Reload",
};

/* Metrics are indexed by method: the two enums share their order, generic calls "unknown". */
_Static_assert((int)M_RECOMMEND == (int)DR_METRIC_RECOMMEND &&
                   (int)M_ADMIN_RELOAD == (int)DR_METRIC_ADMIN_RELOAD &&
                   (int)M_GENERIC == (int)DR_METRIC_UNKNOWN,
               "enum method and enum dr_metric_method must share their order");

#define REQUESTS_POSTED_PER_METHOD 8
#define SERVICE_NAME               "driftrec.v1.Recommender"

enum phase { PHASE_REQUESTED, PHASE_REPLYING };

struct dr_server {
    struct dr_server_opts opts;
    grpc_server *server;
    grpc_completion_queue *cq;
    grpc_completion_queue *shutdown_cq;
    void *method_handles[M_COUNT];
    pthread_t *pollers;
    int n_pollers;
    struct dr_workpool *pool;
    struct dr_history *history;
    struct dr_metrics *metrics;
    int metrics_port;
    /* The text encoder for Embed (read-only after start; shared by all workers). */
    struct dr_bert *bert;
    struct dr_tokenizer *tokenizer;
    struct dr_text_batcher *text_batcher; /* Embed's texts across calls; NULL: --max-batch 1 */
    char model_name[128], model_version[128];
    /* The served model (Recommend, Rank, the user-state cache): NULL until the first
     * dr_server_load_model, NULL for good without a model.  Read only through slot_acquire. */
    struct model_slot *slot;
    pthread_mutex_t slot_lock; /* held only to read-and-reference or to swap slot */
    pthread_mutex_t load_lock; /* one model load at a time */
    /* Recommend's impressions on their way to the event log: made with the first model
     * (release store; the readers' acquire loads see it fully built). */
    _Atomic(struct dr_impression_log *) impressions;
    /* "model": Ingest holds it shared from taking the slot to the end of its write, so no
     * Ingest that stepped an old model's cache (or none) is still writing when a new model
     * appears (its events could be missing from a state the new model caches meanwhile);
     * a load holds it exclusive to publish.  Writer-preferring, so a stream of Ingest cannot
     * hold a model back. */
    pthread_rwlock_t model_lock;
    /* Request ids the server makes up: a random per-process seed and a counter. */
    uint64_t request_id_seed;
    atomic_uint_fast64_t n_request_ids;
    /* Failed requests the server is to blame for are logged (WARN) at most 10 a second. */
    struct dr_log_rate failure_log_rate;
    /* Calls an A/B proxy sent here for another arm (x-ab-variant): WARN, 10 a second. */
    struct dr_log_rate misroute_log_rate;
    /* Admission control's estimates (run_job, update_mean): the mean compute time, and the
     * mean wait per call ahead in the queue as observed (it includes time the workers were not
     * running at all: other processes on the cores). */
    atomic_uint_fast64_t compute_mean_ns;
    atomic_uint_fast64_t wait_per_call_ahead_ns;
    atomic_long n_unanswered; /* calls arrived and not yet answered (the drain reports them) */
    atomic_bool is_draining;  /* health: NOT_SERVING (from the drain's start) */
    atomic_bool is_stopping;  /* gRPC shutdown has begun: requests are no longer re-posted */
    uint64_t start_ns;        /* for Admin's uptime */
    char variant[DR_MAX_TAG_BYTES + 1];
};

/* One served model.  refs: one for being published, one per call using it. */
#define MODEL_VERSION_MAX 160 /* bytes kept of a model version for logs and replies */

struct model_slot {
    struct dr_bundle *bundle;   /* owned */
    struct dr_recommender *rec; /* owned; built on bundle */
    atomic_size_t refs;
    uint64_t loaded_at_ns;
    char dir[DR_MODEL_PATH_MAX];
};

static void slot_destroy(struct model_slot *s)
{
    dr_recommender_destroy(s->rec);
    dr_bundle_destroy(s->bundle);
    free(s);
}

/* The served model with a reference taken, or NULL without one.  The lock makes reading the
 * pointer and counting the reference one step that a swap cannot come between. */
static struct model_slot *slot_acquire(struct dr_server *srv)
{
    pthread_mutex_lock(&srv->slot_lock);
    struct model_slot *s = srv->slot;
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&srv->slot_lock);
    return s;
}

/* Drops a reference; the last one frees the model (on whichever thread that is). */
static void slot_release(struct model_slot *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        slot_destroy(s);
}

static bool has_model(struct dr_server *srv)
{
    pthread_mutex_lock(&srv->slot_lock);
    bool has = srv->slot != NULL;
    pthread_mutex_unlock(&srv->slot_lock);
    return has;
}

struct call {
    struct dr_server *srv;
    enum method method;
    enum phase phase;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array request_md;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* generic requests only */
    uint64_t start_ns;
    uint64_t compute_start_ns; /* set when a worker picks the call up; 0 on pollers */
    uint64_t queued_ns;        /* how long it waited in the work queue */
    size_t calls_ahead;        /* the queue's depth when it was admitted */
    /* decoded request: one of these, freed with the call */
    ProtobufCMessage *request;
    /* the request id the reply carries when the server made it up (for the log line) */
    ProtobufCBinaryData made_request_id;
    /* reply */
    grpc_byte_buffer *reply;
    grpc_slice status_details;
    grpc_metadata reply_md[1];
    int cancelled;
};

/* ---- posting requests and freeing calls ------------------------------------------------ */

static void post_request(struct dr_server *srv, enum method m)
{
    struct call *c = calloc(1, sizeof *c);
    if (!c) {
        dr_log(DR_LOG_ERROR, "out of memory posting a request");
        return;
    }
    c->srv = srv;
    c->method = m;
    c->phase = PHASE_REQUESTED;
    grpc_metadata_array_init(&c->request_md);
    /* The tag comes back on any poller, through libgrpc TSan cannot see into (tsan.h). */
    DR_TSAN_RELEASE(c);
    grpc_call_error e;
    if (m == M_GENERIC) {
        grpc_call_details_init(&c->details);
        e = grpc_server_request_call(srv->server, &c->call, &c->details, &c->request_md, srv->cq,
                                     srv->cq, c);
    } else {
        e = grpc_server_request_registered_call(srv->server, srv->method_handles[m], &c->call,
                                                &c->deadline, &c->request_md, &c->payload, srv->cq,
                                                srv->cq, c);
    }
    if (e != GRPC_CALL_OK) {
        grpc_metadata_array_destroy(&c->request_md);
        if (m == M_GENERIC)
            grpc_call_details_destroy(&c->details);
        free(c);
    }
}

static void free_call(struct call *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->request_md);
    if (c->method == M_GENERIC)
        grpc_call_details_destroy(&c->details);
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    if (c->reply)
        grpc_byte_buffer_destroy(c->reply);
    if (c->request)
        protobuf_c_message_free_unpacked(c->request, NULL);
    grpc_slice_unref(c->status_details);
    free(c);
}

/* ---- replies --------------------------------------------------------------------------- */

/* Whose request this is, for its log line: *user and *len, or *is_several (an Ingest batch of
 * several users); nothing for requests without users. */
static void request_user(const struct call *c, const ProtobufCBinaryData **user, bool *is_several)
{
    *user = NULL;
    *is_several = false;
    if (!c->request)
        return;
    if (c->method == M_RECOMMEND) {
        const Driftrec__V1__RecommendRequest *r = (const void *)c->request;
        *user = r->has_user_id && r->user_id.len ? &r->user_id : NULL;
    } else if (c->method == M_RANK) {
        const Driftrec__V1__RankRequest *r = (const void *)c->request;
        *user = r->has_user_id && r->user_id.len ? &r->user_id : NULL;
    } else if (c->method == M_INGEST) {
        const Driftrec__V1__IngestRequest *r = (const void *)c->request;
        for (size_t i = 0; i < r->n_events; i++) {
            const ProtobufCBinaryData *u = &r->events[i]->user_id;
            if (!r->events[i]->has_user_id || u->len == 0)
                continue;
            if (*user && (u->len != (*user)->len || memcmp(u->data, (*user)->data, u->len) != 0)) {
                *user = NULL;
                *is_several = true;
                return;
            }
            *user = u;
        }
    }
}

static const ProtobufCBinaryData *request_id_of(const struct call *c)
{
    if (c->made_request_id.len)
        return &c->made_request_id;
    if (c->method == M_RECOMMEND && c->request) {
        const Driftrec__V1__RecommendRequest *r = (const void *)c->request;
        return r->has_request_id && r->request_id.len ? &r->request_id : NULL;
    }
    if (c->method == M_RANK && c->request) {
        const Driftrec__V1__RankRequest *r = (const void *)c->request;
        return r->has_request_id && r->request_id.len ? &r->request_id : NULL;
    }
    return NULL;
}

static bool contains(const char *text, const ProtobufCBinaryData *needle)
{
    return needle && needle->len && memmem(text, strlen(text), needle->data, needle->len);
}

/* One line per request at DEBUG; failures the server is to blame for (its errors, overload,
 * deadlines it let pass) at WARN, rate-limited.  The user appears only as the keyed hash. */
static void log_request(struct call *c, grpc_status_code status, const char *msg)
{
    bool is_fault = status == GRPC_STATUS_INTERNAL || status == GRPC_STATUS_UNAVAILABLE ||
                    status == GRPC_STATUS_RESOURCE_EXHAUSTED ||
                    status == GRPC_STATUS_DEADLINE_EXCEEDED || status == GRPC_STATUS_UNKNOWN ||
                    status == GRPC_STATUS_DATA_LOSS;
    enum dr_log_level level = is_fault ? DR_LOG_WARN : DR_LOG_DEBUG;
    uint64_t n_suppressed = 0;
    if (!dr_log_enabled(level) ||
        (is_fault && !dr_log_rate_allow(&c->srv->failure_log_rate, &n_suppressed)))
        return;
    struct dr_log_line line;
    dr_log_begin(&line, level, status == GRPC_STATUS_OK ? "request" : "request failed");
    dr_log_str(&line, "method", dr_metrics_method_name((enum dr_metric_method)c->method));
    dr_log_str(&line, "code", dr_metrics_status_name((int)status));
    const ProtobufCBinaryData *user;
    bool is_several;
    request_user(c, &user, &is_several);
    if (user)
        dr_log_user(&line, (const char *)user->data, user->len);
    else if (is_several)
        dr_log_str(&line, "user", "several");
    const ProtobufCBinaryData *request_id = request_id_of(c);
    if (request_id)
        dr_log_strn(&line, "request_id", (const char *)request_id->data, request_id->len);
    dr_log_int(&line, "us", (long long)((dr_now_ns() - c->start_ns) / 1000));
    /* No message names a user today; should one ever echo the id, the id stays out. */
    if (msg && msg[0])
        dr_log_str(&line, "detail", contains(msg, user) ? "(omitted: names the user)" : msg);
    if (n_suppressed)
        dr_log_int(&line, "suppressed", (long long)n_suppressed);
    dr_log_end(&line);
}

/* Starts the call's one final batch.  body (may be NULL) is a packed message; msg is the
 * status detail.  The call is freed when the batch completes. */
static void reply(struct call *c, grpc_status_code status, const char *msg,
                  const ProtobufCMessage *body)
{
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->srv->variant[0]) {
        c->reply_md[0].key = grpc_slice_from_static_string("x-variant");
        c->reply_md[0].value = grpc_slice_from_static_string(c->srv->variant);
        ops[n].data.send_initial_metadata.count = 1;
        ops[n].data.send_initial_metadata.metadata = c->reply_md;
    }
    n++;
    if (status == GRPC_STATUS_OK && body) {
        size_t len = protobuf_c_message_get_packed_size(body);
        grpc_slice slice = grpc_slice_malloc(len);
        protobuf_c_message_pack(body, GRPC_SLICE_START_PTR(slice));
        c->reply = grpc_raw_byte_buffer_create(&slice, 1);
        grpc_slice_unref(slice);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->reply;
        n++;
    }
    c->status_details = grpc_slice_from_copied_string(msg ? msg : "");
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = status;
    ops[n].data.send_status_from_server.status_details = &c->status_details;
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
    n++;
    c->phase = PHASE_REPLYING;
    atomic_fetch_sub_explicit(&c->srv->n_unanswered, 1, memory_order_relaxed);
    /* The method enums share their order; generic calls count as "unknown".  Everything is
     * recorded before the batch starts: once the client has its reply, the metrics show it. */
    if (c->compute_start_ns)
        dr_metrics_observe_ns(c->srv->metrics, DR_HIST_COMPUTE, (enum dr_metric_method)c->method,
                              dr_now_ns() - c->compute_start_ns);
    dr_metrics_count_request(c->srv->metrics, (enum dr_metric_method)c->method, (int)status);
    dr_metrics_observe_ns(c->srv->metrics, DR_HIST_E2E, (enum dr_metric_method)c->method,
                          dr_now_ns() - c->start_ns);
    log_request(c, status, msg);
    grpc_call *call = c->call;
    DR_TSAN_RELEASE(c); /* the last touch: a poller frees c once the batch completes (tsan.h) */
    grpc_call_error e = grpc_call_start_batch(call, ops, n, c, NULL);
    if (e != GRPC_CALL_OK) {
        struct dr_log_line line;
        dr_log_begin(&line, DR_LOG_ERROR, "start_batch failed");
        dr_log_int(&line, "code", (long long)e);
        dr_log_end(&line);
        free_call(c);
    }
}

static grpc_status_code status_of(enum dr_status st)
{
    switch (st) {
    case DR_OK:
        return GRPC_STATUS_OK;
    case DR_ERR_INVALID_ARG:
    case DR_ERR_FORMAT:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case DR_ERR_OVERLOADED:
    case DR_ERR_NOMEM:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case DR_ERR_DEADLINE:
        return GRPC_STATUS_DEADLINE_EXCEEDED;
    case DR_ERR_IO:
    case DR_ERR_UNSUPPORTED_CPU:
    case DR_ERR_INTERNAL:
        break;
    case DR_ERR_UNAVAILABLE:
        return GRPC_STATUS_UNAVAILABLE;
    }
    return GRPC_STATUS_INTERNAL;
}

/* ---- handlers (run on workers) ----------------------------------------------------------- */

/* The call's deadline on the dr_now_ns clock, for the batcher (0: none). */
static uint64_t deadline_ns_of(const struct call *c)
{
    gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
    gpr_timespec deadline = gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(deadline, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0)
        return 0;
    gpr_timespec left = gpr_time_sub(deadline, now);
    int64_t left_ns = left.tv_sec * 1000000000 + left.tv_nsec;
    uint64_t t = dr_now_ns();
    return left_ns > 0 ? t + (uint64_t)left_ns : t;
}

static bool deadline_passed(const struct call *c)
{
    gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
    return gpr_time_cmp(gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC), now) < 0;
}

static void handle_ingest(struct call *c)
{
    Driftrec__V1__IngestRequest *req = (Driftrec__V1__IngestRequest *)c->request;
    struct dr_event *events = calloc(req->n_events ? req->n_events : 1, sizeof *events);
    if (!events) {
        reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
        return;
    }
    char msg[256];
    for (size_t i = 0; i < req->n_events; i++) {
        char name[32];
        snprintf(name, sizeof name, "events[%zu]", i);
        if (!dr_validate_event(req->events[i], name, NULL, &events[i], msg, sizeof msg)) {
            free(events);
            reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg, NULL);
            return;
        }
        /* Feedback without a variant is labelled with the arm that received it, so an A/B
         * report can attribute it; a variant the client gives is kept as given. */
        if (events[i].variant_len == 0 && c->srv->variant[0]) {
            events[i].variant = c->srv->variant;
            events[i].variant_len = strlen(c->srv->variant);
        }
    }
    size_t accepted = 0, duplicates = 0;
    struct dr_error err = {0};
    /* With a model, the write also advances the cached states of the users it touches. */
    pthread_rwlock_rdlock(&c->srv->model_lock);
    struct model_slot *slot = slot_acquire(c->srv);
    enum dr_status st =
        slot ? dr_recommender_ingest(slot->rec, events, req->n_events, &accepted, &duplicates, &err)
             : dr_history_write(c->srv->history, events, req->n_events, &accepted, &duplicates,
                                NULL, &err);
    slot_release(slot);
    pthread_rwlock_unlock(&c->srv->model_lock);
    free(events);
    if (st != DR_OK) {
        struct dr_log_line line;
        dr_log_begin(&line, DR_LOG_ERROR, "ingest failed");
        dr_log_int(&line, "events", (long long)req->n_events);
        dr_log_str(&line, "detail", err.msg);
        dr_log_end(&line);
        reply(c, status_of(st),
              st == DR_ERR_UNAVAILABLE
                  ? "ingest failed: the history store is unavailable; retry (events with an "
                    "event_id are stored once)"
                  : "ingest failed: the events were not stored",
              NULL);
        return;
    }
    Driftrec__V1__IngestResponse resp = DRIFTREC__V1__INGEST_RESPONSE__INIT;
    resp.has_accepted = 1;
    resp.accepted = (int32_t)accepted;
    resp.has_duplicates = 1;
    resp.duplicates = (int32_t)duplicates;
    reply(c, GRPC_STATUS_OK, NULL, &resp.base);
}

static ProtobufCBinaryData bytes_of(const char *s)
{
    ProtobufCBinaryData b = {.len = strlen(s), .data = (uint8_t *)(uintptr_t)s};
    return b;
}

static bool bytes_equal(const ProtobufCBinaryData *b, const char *s)
{
    return b->len == strlen(s) && memcmp(b->data, s, b->len) == 0;
}

static enum dr_status reload_model(struct dr_server *srv, struct dr_error *err,
                                   char previous[MODEL_VERSION_MAX], struct model_slot **loaded);

static void handle_admin_reload(struct call *c)
{
    struct dr_server *srv = c->srv;
    char previous[MODEL_VERSION_MAX] = "";
    struct model_slot *slot = NULL; /* the model this reload published: the strings below
                                     * point into it, whatever a poll loads meanwhile */
    uint64_t start_ns = dr_now_ns();
    struct dr_error err = {0};
    enum dr_status st = reload_model(srv, &err, previous, &slot);
    if (st != DR_OK) {
        char msg[sizeof err.msg + 64];
        snprintf(msg, sizeof msg, "reload refused, the served model stays: %s", err.msg);
        reply(c, GRPC_STATUS_FAILED_PRECONDITION, msg, NULL);
        return;
    }
    Driftrec__V1__ReloadResponse resp = DRIFTREC__V1__RELOAD_RESPONSE__INIT;
    resp.has_model = resp.has_model_version = resp.has_model_dir = resp.has_load_ms = 1;
    resp.model = bytes_of(dr_bundle_name(slot->bundle));
    resp.model_version = bytes_of(dr_bundle_version(slot->bundle));
    resp.model_dir = bytes_of(slot->dir);
    resp.load_ms = (double)(dr_now_ns() - start_ns) / 1e6;
    resp.has_previous_version = previous[0] != '\0';
    resp.previous_version = bytes_of(previous);
    reply(c, GRPC_STATUS_OK, NULL, &resp.base); /* packs before returning */
    slot_release(slot);
}

/* Every loaded model (the bundle is the default), or the one the request names. */
static void handle_get_model(struct call *c)
{
    struct dr_server *srv = c->srv;
    const Driftrec__V1__GetModelRequest *req = (const void *)c->request;
    bool has_filter = req->has_model && req->model.len > 0;
    Driftrec__V1__GetModelResponse resp = DRIFTREC__V1__GET_MODEL_RESPONSE__INIT;
    Driftrec__V1__ModelInfo infos[2];
    Driftrec__V1__ModelInfo *ptrs[2];
    const char *isa = dr_isa_name(dr_kernels_get()->isa);
    size_t n = 0;
    struct model_slot *slot = slot_acquire(srv); /* the strings below point into its bundle */
    const struct dr_bundle *b = slot ? slot->bundle : NULL;
    if (b && (!has_filter || bytes_equal(&req->model, dr_bundle_name(b)))) {
        Driftrec__V1__ModelInfo *info = &infos[n];
        driftrec__v1__model_info__init(info);
        info->has_name = info->has_version = info->has_kernel_isa = info->has_is_default = 1;
        info->name = bytes_of(dr_bundle_name(b));
        info->version = bytes_of(dr_bundle_version(b));
        info->kernel_isa = bytes_of(isa);
        info->is_default = 1;
        info->has_item_count = info->has_vector_dim = 1;
        size_t n_items = dr_bundle_n_items(b);
        info->item_count = n_items > INT32_MAX ? INT32_MAX : (int32_t)n_items;
        info->vector_dim = (int32_t)dr_bundle_item_dim(b);
        ptrs[n] = info;
        n++;
    }
    if (srv->bert && (!has_filter || bytes_equal(&req->model, srv->model_name))) {
        Driftrec__V1__ModelInfo *info = &infos[n];
        driftrec__v1__model_info__init(info);
        info->has_name = info->has_version = info->has_kernel_isa = info->has_is_default = 1;
        info->name = bytes_of(srv->model_name);
        info->version = bytes_of(srv->model_version);
        info->kernel_isa = bytes_of(isa);
        info->is_default = b == NULL; /* the text encoder is the default only on its own */
        info->has_vector_dim = 1;
        info->vector_dim = (int32_t)dr_bert_output_dim(srv->bert);
        ptrs[n] = info;
        n++;
    }
    if (has_filter && n == 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "model \"%.*s\" is not loaded on this instance",
                 (int)req->model.len, (const char *)req->model.data);
        reply(c, GRPC_STATUS_NOT_FOUND, msg, NULL);
    } else {
        resp.n_models = n;
        resp.models = n ? ptrs : NULL;
        reply(c, GRPC_STATUS_OK, NULL, &resp.base); /* packs before returning */
    }
    slot_release(slot);
}

/* decode, queue and compute so far, and the total, from the call's clock readings. */
static void fill_timings(const struct call *c, Driftrec__V1__StageTimings *t)
{
    uint64_t now = dr_now_ns(), submitted = c->compute_start_ns - c->queued_ns;
    t->has_decode_us = t->has_queue_us = t->has_compute_us = t->has_total_us = 1;
    t->decode_us = submitted > c->start_ns ? (int64_t)((submitted - c->start_ns) / 1000) : 0;
    t->queue_us = (int64_t)(c->queued_ns / 1000);
    t->compute_us = (int64_t)((now - c->compute_start_ns) / 1000);
    t->total_us = (int64_t)((now - c->start_ns) / 1000);
}

/* splitmix64's finalizer: a bijection, so distinct counters give distinct ids. */
static uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void handle_recommend(struct call *c, struct dr_recommender *rec)
{
    struct dr_server *srv = c->srv;
    struct dr_rec_call *scratch = dr_recommender_call_begin(rec);
    if (!scratch) {
        reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for this call", NULL);
        return;
    }
    dr_recommender_call_set_deadline(scratch, deadline_ns_of(c));
    char msg[300];
    Driftrec__V1__RecommendResponse resp = DRIFTREC__V1__RECOMMEND_RESPONSE__INIT;
    const Driftrec__V1__RecommendRequest *req = (const void *)c->request;
    grpc_status_code code = dr_recommender_recommend(rec, scratch, req, &resp, msg, sizeof msg);
    if (code == GRPC_STATUS_OK) {
        resp.has_variant = srv->variant[0] != '\0';
        resp.variant = bytes_of(srv->variant);
        /* Feedback names the recommendation it answers by request id, and the impressions are
         * logged under it: a request without one gets one. */
        char request_id[17];
        if (!resp.has_request_id || resp.request_id.len == 0) {
            uint64_t n = atomic_fetch_add_explicit(&srv->n_request_ids, 1, memory_order_relaxed);
            snprintf(request_id, sizeof request_id, "%016llx",
                     (unsigned long long)mix64(srv->request_id_seed + n));
            resp.has_request_id = 1;
            resp.request_id = bytes_of(request_id);
            c->made_request_id = resp.request_id; /* read by reply's log line, before it returns */
        }
        fill_timings(c, resp.timings);
        /* Before the reply: the response points into the request, which goes with the call. */
        struct dr_impression_log *impressions =
            atomic_load_explicit(&srv->impressions, memory_order_acquire);
        if (impressions)
            dr_impression_log_append(impressions, &req->user_id, &resp, (int64_t)time(NULL));
        reply(c, code, NULL, &resp.base); /* packs before returning: the scratch may go */
    } else {
        reply(c, code, msg, NULL);
    }
    dr_recommender_call_end(rec, scratch);
}

static void handle_rank(struct call *c, struct dr_recommender *rec)
{
    struct dr_server *srv = c->srv;
    struct dr_rec_call *scratch = dr_recommender_call_begin(rec);
    if (!scratch) {
        reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for this call", NULL);
        return;
    }
    dr_recommender_call_set_deadline(scratch, deadline_ns_of(c));
    char msg[300];
    Driftrec__V1__RankResponse resp = DRIFTREC__V1__RANK_RESPONSE__INIT;
    grpc_status_code code =
        dr_recommender_rank(rec, scratch, (const void *)c->request, &resp, msg, sizeof msg);
    if (code == GRPC_STATUS_OK) {
        resp.has_variant = srv->variant[0] != '\0';
        resp.variant = bytes_of(srv->variant);
        fill_timings(c, resp.timings);
        reply(c, code, NULL, &resp.base);
    } else {
        reply(c, code, msg, NULL);
    }
    dr_recommender_call_end(rec, scratch);
}

/* Embed: tokenize each text with the model's vocabulary ([CLS] ... [SEP], cut to the
 * model's maximum length, at most DR_TEXT_MAX_TOKENS), encode them as one ragged batch, or,
 * with the batcher, in batches shared with other calls' texts. */
static void handle_embed(struct call *c)
{
    struct dr_server *srv = c->srv;
    const Driftrec__V1__EmbedRequest *req = (const void *)c->request;
    size_t n = req->n_texts, dim = dr_bert_output_dim(srv->bert);
    size_t max_len = dr_bert_max_len(srv->bert) < DR_TEXT_MAX_TOKENS ? dr_bert_max_len(srv->bert)
                                                                     : DR_TEXT_MAX_TOKENS;
    int32_t *ids = malloc(n * max_len * sizeof *ids);
    size_t *lens = malloc(n * sizeof *lens);
    float *out = malloc(n * dim * sizeof *out);
    size_t ws_size =
        srv->text_batcher ? 0 : dr_bert_workspace_size(srv->bert, n * max_len, max_len);
    void *ws = srv->text_batcher ? NULL : dr_aligned_alloc(ws_size);
    Driftrec__V1__Vector *vecs = calloc(n, sizeof *vecs);
    Driftrec__V1__Vector **vec_ptrs = calloc(n, sizeof *vec_ptrs);
    char msg[300];
    if (!ids || !lens || !out || (!ws && !srv->text_batcher) || !vecs || !vec_ptrs) {
        reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for this batch", NULL);
        goto done;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        struct dr_error err = {0};
        if (dr_tokenizer_encode(srv->tokenizer, (const char *)req->texts[i].data, req->texts[i].len,
                                max_len, ids + at, &lens[i], &err) != DR_OK) {
            snprintf(msg, sizeof msg, "texts[%zu]: %s", i, err.msg);
            reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg, NULL);
            goto done;
        }
        at += lens[i];
    }
    enum dr_status st =
        srv->text_batcher
            ? dr_text_batcher_encode(srv->text_batcher, n, ids, lens, out, dim, deadline_ns_of(c))
            : dr_bert_encode(srv->bert, n, ids, lens, out, dim, ws, ws_size);
    if (st == DR_ERR_DEADLINE) {
        reply(c, GRPC_STATUS_DEADLINE_EXCEEDED,
              "deadline expired while waiting for the text encoder", NULL);
        goto done;
    }
    if (st != DR_OK) {
        snprintf(msg, sizeof msg, "encoding failed: %s", dr_status_str(st));
        reply(c, status_of(st), msg, NULL);
        goto done;
    }
    Driftrec__V1__EmbedResponse resp = DRIFTREC__V1__EMBED_RESPONSE__INIT;
    for (size_t i = 0; i < n; i++) {
        driftrec__v1__vector__init(&vecs[i]);
        vecs[i].n_values = dim;
        vecs[i].values = out + i * dim;
        vec_ptrs[i] = &vecs[i];
    }
    resp.n_vectors = n;
    resp.vectors = vec_ptrs;
    resp.has_model = resp.has_model_version = 1;
    resp.model = bytes_of(srv->model_name);
    resp.model_version = bytes_of(srv->model_version);
    reply(c, GRPC_STATUS_OK, NULL, &resp.base); /* packs before returning: buffers may go */
done:
    free(ids);
    free(lens);
    free(out);
    dr_aligned_free(ws);
    free(vecs);
    free(vec_ptrs);
}

/* Recommend and Rank need the recommendation model (--model: a bundle), Embed the text
 * model; requests are validated in full first, so a client learns about a malformed request
 * before it learns about the model.  While the bundle is still loading the answer is
 * UNAVAILABLE, which clients retry; without one it is FAILED_PRECONDITION, which they must
 * not. */
static void handle_needs_model(struct call *c)
{
    if (c->method == M_EMBED)
        reply(c, GRPC_STATUS_FAILED_PRECONDITION,
              "no text model is loaded on this instance (--text-model)", NULL);
    else if (c->srv->opts.is_model_expected)
        reply(c, GRPC_STATUS_UNAVAILABLE,
              "the recommendation model is still loading; retry (the health service says "
              "SERVING for driftrec.v1.Recommender once it is ready)",
              NULL);
    else
        reply(c, GRPC_STATUS_FAILED_PRECONDITION,
              "no recommendation model is loaded on this instance (--model BUNDLE_DIR; see "
              "GetModel and the health service)",
              NULL);
}

/* An exponential average that rises fast (a quarter of the way to a larger sample) and
 * falls slowly (a sixteenth): admission would rather refuse a call early while the work
 * gets slower than admit calls that then wait past their deadlines.  Racing updates may lose
 * one sample: harmless for an estimate. */
static void update_mean(atomic_uint_fast64_t *mean, uint64_t sample)
{
    uint64_t m = atomic_load_explicit(mean, memory_order_relaxed);
    uint64_t next = m == 0 ? sample : sample > m ? m + (sample - m) / 4 : m - (m - sample) / 16;
    atomic_store_explicit(mean, next, memory_order_relaxed);
}

static void run_job(void *arg, uint64_t queued_ns)
{
    struct call *c = arg;
    struct dr_server *srv = c->srv; /* c may be freed once its reply is started */
    struct dr_metrics *metrics = c->srv->metrics;
    enum dr_metric_method mm = (enum dr_metric_method)c->method;
    dr_metrics_observe_ns(metrics, DR_HIST_QUEUE, mm, queued_ns);
    c->queued_ns = queued_ns;
    if (c->calls_ahead > 0) /* dropped calls too: they waited like the others */
        update_mean(&srv->wait_per_call_ahead_ns, queued_ns / c->calls_ahead);
    if (deadline_passed(c)) { /* dropped before it costs compute */
        dr_metrics_count_deadline_drop(metrics, false);
        reply(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline expired while queued", NULL);
        return;
    }
    uint64_t start_ns = dr_now_ns();
    c->compute_start_ns = start_ns;
    switch (c->method) {
    case M_INGEST:
        handle_ingest(c);
        break;
    case M_GET_MODEL:
        handle_get_model(c);
        break;
    case M_ADMIN_RELOAD: /* on a worker: a load takes long, and pollers must keep polling */
        handle_admin_reload(c);
        break;
    case M_EMBED:
        if (c->srv->bert)
            handle_embed(c);
        else
            handle_needs_model(c);
        break;
    case M_RECOMMEND:
    case M_RANK: {
        /* Taken here, in the worker, and held to the reply: a reload meanwhile frees this
         * model only after the call is done with it. */
        struct model_slot *slot = slot_acquire(c->srv);
        if (!slot)
            handle_needs_model(c);
        else if (c->method == M_RECOMMEND)
            handle_recommend(c, slot->rec);
        else
            handle_rank(c, slot->rec);
        slot_release(slot);
        break;
    }
    default:
        handle_needs_model(c);
        break;
    }
    update_mean(&srv->compute_mean_ns, dr_now_ns() - start_ns);
}

/* ---- decoding and validation (pollers) ------------------------------------------------- */

static const ProtobufCMessageDescriptor *const descriptors[M_COUNT] = {
    [M_RECOMMEND] = &driftrec__v1__recommend_request__descriptor,
    [M_RANK] = &driftrec__v1__rank_request__descriptor,
    [M_EMBED] = &driftrec__v1__embed_request__descriptor,
    [M_INGEST] = &driftrec__v1__ingest_request__descriptor,
    [M_GET_MODEL] = &driftrec__v1__get_model_request__descriptor,
    [M_HEALTH] = &grpc__health__v1__health_check_request__descriptor,
    [M_ADMIN_GET_STATUS] = &driftrec__v1__get_status_request__descriptor,
    [M_ADMIN_RELOAD] = &driftrec__v1__reload_request__descriptor,
};

static void handle_health(struct call *c)
{
    const Grpc__Health__V1__HealthCheckRequest *r = (const void *)c->request;
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    bool draining = atomic_load_explicit(&c->srv->is_draining, memory_order_relaxed);
    const char *service = r->service ? r->service : "";
    if (service[0] == '\0') {
        resp.status = draining
                          ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                          : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    } else if (strcmp(service, SERVICE_NAME) == 0) {
        /* Ready once the recommendation model is loaded and warm (dr_server_load_model
         * publishes it after the warm-up queries), and not draining. */
        resp.status = has_model(c->srv) && !draining
                          ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                          : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    } else {
        reply(c, GRPC_STATUS_NOT_FOUND, "unknown service name", NULL);
        return;
    }
    reply(c, GRPC_STATUS_OK, NULL, &resp.base);
}

/* Copies the payload into one contiguous buffer for protobuf-c. */
static uint8_t *read_payload(grpc_byte_buffer *bb, size_t *len)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    *len = GRPC_SLICE_LENGTH(all);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        memcpy(buf, GRPC_SLICE_START_PTR(all), *len);
    grpc_slice_unref(all);
    return buf;
}

/* Admission by deadline: a call whose deadline has passed is dropped before it is queued;
 * one that would expire in the queue is refused at once with RESOURCE_EXHAUSTED, which a
 * client may retry elsewhere, rather than answered DEADLINE_EXCEEDED after waiting for
 * nothing.  Its expected wait: the calls ahead of it times the larger of the mean compute
 * time over the workers and the wait per call ahead observed lately (which sees the cores
 * being taken by others, as compute time alone does not).  False when the call was answered
 * here. */
static bool admit(struct call *c)
{
    struct dr_server *srv = c->srv;
    gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
    gpr_timespec deadline = gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(deadline, now) < 0) {
        dr_metrics_count_deadline_drop(srv->metrics, true);
        reply(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline expired before the call was queued",
              NULL);
        return false;
    }
    if (!srv->opts.admit_by_deadline ||
        gpr_time_cmp(deadline, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0)
        return true;
    gpr_timespec left = gpr_time_sub(deadline, now);
    double left_ns = (double)left.tv_sec * 1e9 + (double)left.tv_nsec;
    c->calls_ahead = dr_workpool_depth(srv->pool);
    double per_call = (double)atomic_load_explicit(&srv->compute_mean_ns, memory_order_relaxed) /
                      (double)(srv->opts.n_workers > 0 ? srv->opts.n_workers : 1);
    double observed =
        (double)atomic_load_explicit(&srv->wait_per_call_ahead_ns, memory_order_relaxed);
    double wait_ns = (double)c->calls_ahead * (observed > per_call ? observed : per_call);
    if (wait_ns <= left_ns)
        return true;
    char msg[200];
    snprintf(msg, sizeof msg,
             "server overloaded: the queue's expected wait (%.1f ms) exceeds the call's "
             "remaining deadline (%.1f ms)",
             wait_ns / 1e6, left_ns / 1e6);
    dr_metrics_count_refusal(srv->metrics, DR_REFUSED_EXPECTED_WAIT);
    reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, NULL);
    return false;
}

/* Admin.GetStatus: cheap and lock-free, answered on the poller like health, so it answers
 * while the work queue is full. */
static void handle_admin_status(struct call *c)
{
    struct dr_server *srv = c->srv;
    Driftrec__V1__GetStatusResponse resp = DRIFTREC__V1__GET_STATUS_RESPONSE__INIT;
    struct model_slot *slot = slot_acquire(srv); /* the strings below point into its bundle */
    const struct dr_bundle *b = slot ? slot->bundle : NULL;
    if (b) {
        resp.has_model = resp.has_model_version = 1;
        resp.model = bytes_of(dr_bundle_name(b));
        resp.model_version = bytes_of(dr_bundle_version(b));
    }
    resp.has_uptime_s = resp.has_is_ready = 1;
    resp.uptime_s = (double)(dr_now_ns() - srv->start_ns) / 1e9;
    resp.is_ready = b && !atomic_load_explicit(&srv->is_draining, memory_order_relaxed);
    resp.has_variant = srv->variant[0] != '\0';
    resp.variant = bytes_of(srv->variant);
    reply(c, GRPC_STATUS_OK, NULL, &resp.base); /* packs before returning */
    slot_release(slot);
}

/* The call's credentials, before anything else is read: an unauthenticated client learns
 * nothing about the request it sent, and no payload of its is decoded.  Unknown methods are
 * checked too (by their service), so the Admin service answers nobody without its token. */
static bool is_authorized(struct call *c)
{
    /* method_paths has no entry for M_GENERIC (== M_COUNT): its path is the call's own. */
    const char *path;
    size_t len;
    if (c->method == M_GENERIC) {
        path = (const char *)GRPC_SLICE_START_PTR(c->details.method);
        len = GRPC_SLICE_LENGTH(c->details.method);
    } else {
        path = method_paths[c->method];
        len = strlen(path);
    }
    const char *msg = NULL;
    grpc_status_code code =
        dr_auth_check(c->srv->opts.auth, dr_auth_scope_of(path, len), &c->request_md, &msg);
    if (code == GRPC_STATUS_OK)
        return true;
    reply(c, code, msg, NULL);
    return false;
}

/* The value of request metadata key (lower case), or NULL; an empty value counts as absent. */
static const grpc_slice *metadata_value(const grpc_metadata_array *md, const char *key)
{
    for (size_t i = 0; i < md->count; i++)
        if (grpc_slice_str_cmp(md->metadata[i].key, key) == 0)
            return GRPC_SLICE_LENGTH(md->metadata[i].value) ? &md->metadata[i].value : NULL;
    return NULL;
}

static bool slice_equals(const grpc_slice *s, const ProtobufCBinaryData *b, bool has)
{
    size_t len = has ? b->len : 0;
    return GRPC_SLICE_LENGTH(*s) == len && memcmp(GRPC_SLICE_START_PTR(*s), b->data, len) == 0;
}

/* A proxy routes on x-user-id because it cannot read the message: the header must then name
 * the user the message names (every event's user, for Ingest), or the split and the logs
 * would disagree about whose call this was.  Without the header (a direct caller) anything
 * goes, unless the server requires it.  Neither message names a user id (log privacy). */
static bool check_user_header(const struct call *c, char *msg, size_t msg_size)
{
    if (c->method != M_RECOMMEND && c->method != M_RANK && c->method != M_INGEST)
        return true;
    const grpc_slice *header = metadata_value(&c->request_md, "x-user-id");
    if (!header) {
        if (!c->srv->opts.is_user_header_required)
            return true;
        snprintf(msg, msg_size,
                 "the x-user-id header is required on this instance (--require-user-header)");
        return false;
    }
    if (c->method == M_RECOMMEND) {
        const Driftrec__V1__RecommendRequest *r = (const void *)c->request;
        if (slice_equals(header, &r->user_id, r->has_user_id))
            return true;
        snprintf(msg, msg_size, "the x-user-id header does not match user_id");
        return false;
    }
    if (c->method == M_RANK) {
        const Driftrec__V1__RankRequest *r = (const void *)c->request;
        if (slice_equals(header, &r->user_id, r->has_user_id))
            return true;
        snprintf(msg, msg_size, "the x-user-id header does not match user_id");
        return false;
    }
    const Driftrec__V1__IngestRequest *r = (const void *)c->request;
    for (size_t i = 0; i < r->n_events; i++)
        if (!slice_equals(header, &r->events[i]->user_id, r->events[i]->has_user_id)) {
            snprintf(msg, msg_size, "events[%zu].user_id does not match the x-user-id header", i);
            return false;
        }
    return true;
}

/* An A/B proxy says which arm it meant (x-ab-variant); a call that reached another arm is
 * served all the same (the client still gets an answer, and the reply's x-variant says who
 * gave it) but counted and logged: the split's configuration is wrong. */
static void check_ab_variant(struct call *c)
{
    struct dr_server *srv = c->srv;
    const grpc_slice *arm = metadata_value(&c->request_md, "x-ab-variant");
    if (!arm || grpc_slice_str_cmp(*arm, srv->variant) == 0)
        return;
    dr_metrics_count_misrouted(srv->metrics);
    uint64_t n_suppressed = 0;
    if (!dr_log_enabled(DR_LOG_WARN) || !dr_log_rate_allow(&srv->misroute_log_rate, &n_suppressed))
        return;
    struct dr_log_line line;
    dr_log_begin(&line, DR_LOG_WARN, "call routed to the wrong A/B arm");
    dr_log_strn(&line, "x_ab_variant", (const char *)GRPC_SLICE_START_PTR(*arm),
                GRPC_SLICE_LENGTH(*arm) > DR_MAX_TAG_BYTES ? DR_MAX_TAG_BYTES
                                                           : GRPC_SLICE_LENGTH(*arm));
    dr_log_str(&line, "variant", srv->variant);
    if (n_suppressed)
        dr_log_int(&line, "suppressed", (long long)n_suppressed);
    dr_log_end(&line);
}

static void handle_new_call(struct call *c)
{
    struct dr_server *srv = c->srv;
    if (!is_authorized(c))
        return;
    check_ab_variant(c);
    if (c->method == M_GENERIC) {
        char *method = grpc_slice_to_c_string(c->details.method);
        char msg[300];
        snprintf(msg, sizeof msg, "method %s is not implemented by driftrec", method);
        gpr_free(method);
        reply(c, GRPC_STATUS_UNIMPLEMENTED, msg, NULL);
        return;
    }
    if (!c->payload) { /* the client gave up (deadline or cancel) before sending it */
        if (deadline_passed(c)) {
            dr_metrics_count_deadline_drop(srv->metrics, true);
            reply(c, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline expired before the request arrived",
                  NULL);
        } else {
            reply(c, GRPC_STATUS_CANCELLED, "the request message did not arrive", NULL);
        }
        return;
    }
    size_t len = 0;
    uint8_t *bytes = read_payload(c->payload, &len);
    if (!bytes) {
        reply(c, GRPC_STATUS_INTERNAL, "cannot read the request payload", NULL);
        return;
    }
    c->request = protobuf_c_message_unpack(descriptors[c->method], NULL, len, bytes);
    free(bytes);
    if (!c->request) {
        char msg[160];
        snprintf(msg, sizeof msg, "malformed request: %zu bytes are not a valid %s", len,
                 descriptors[c->method]->name);
        reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg, NULL);
        return;
    }
    if (c->method == M_HEALTH) {
        handle_health(c);
        return;
    }
    if (c->method == M_ADMIN_GET_STATUS) {
        handle_admin_status(c);
        return;
    }
    char msg[256];
    if (!dr_validate_request(c->request, msg, sizeof msg)) {
        reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg, NULL);
        return;
    }
    if (!check_user_header(c, msg, sizeof msg)) {
        reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg, NULL);
        return;
    }
    if (!admit(c))
        return;
    enum dr_status st = dr_workpool_submit(srv->pool, run_job, c);
    if (st == DR_ERR_OVERLOADED) {
        dr_metrics_count_refusal(srv->metrics, DR_REFUSED_QUEUE_FULL);
        reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "server overloaded: work queue full", NULL);
    } else if (st != DR_OK)
        reply(c, GRPC_STATUS_UNAVAILABLE, "server shutting down", NULL);
}

static void *poller_main(void *arg)
{
    struct dr_server *srv = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        struct call *c = ev.tag;
        DR_TSAN_ACQUIRE(c); /* pairs with the release before posting or starting the batch */
        if (c->phase == PHASE_REPLYING) {
            free_call(c);
            continue;
        }
        if (!ev.success) { /* the server is shutting down: the posted request is void */
            free_call(c);
            continue;
        }
        c->start_ns = dr_now_ns();
        atomic_fetch_add_explicit(&srv->n_unanswered, 1, memory_order_relaxed);
        if (!atomic_load_explicit(&srv->is_stopping, memory_order_relaxed))
            post_request(srv, c->method); /* re-arm first: the next client need not wait */
        handle_new_call(c);
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

void dr_server_opts_default(struct dr_server_opts *opts)
{
    *opts = (struct dr_server_opts){
        .listen_addr = "127.0.0.1:50051",
        .history_path = "var/history",
        .history_map_bytes = 0,
        .n_pollers = 2,
        .n_workers = 2,
        .queue_capacity = 1024,
        .admit_by_deadline = true,
        .max_message_bytes = 4 * 1024 * 1024,
        .variant = "",
        .drain_grace_ms = 5000,
        .metrics_addr = "127.0.0.1:9090",
        .state_cache_users = DR_STATE_CACHE_DEFAULT_USERS,
        .impression_queue = DR_IMPRESSION_LOG_DEFAULT_CAPACITY,
        .warmup_queries = DR_WARMUP_DEFAULT_QUERIES,
        .drain_delay_ms = 0,
        .query_weight = DR_QUERY_WEIGHT_DEFAULT,
        .max_batch = DR_MAX_BATCH_DEFAULT,
        .max_queue_delay_us = 0,
    };
}

int dr_server_metrics_port(const struct dr_server *srv)
{
    return srv->metrics_port;
}

static size_t queue_depth(void *pool)
{
    return dr_workpool_depth(pool);
}

static size_t in_flight(void *pool)
{
    return dr_workpool_in_flight(pool);
}

static int mkdir_p(const char *path)
{
    char buf[1024];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char saved = buf[i];
            buf[i] = '\0';
            mkdir(buf, 0700);
            buf[i] = saved;
        }
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* Batches of one model that run at once: one per core, never more than the workers (they
 * are the threads that run them). */
static size_t batch_slots(const struct dr_server_opts *opts)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = ncpu > 0 ? (size_t)ncpu : 1,
           workers = opts->n_workers > 0 ? (size_t)opts->n_workers : 1;
    n = n < workers ? n : workers;
    return n < DR_BATCH_MAX_SLOTS ? n : DR_BATCH_MAX_SLOTS;
}

/* The text encoder, its vocabulary and the name and version its manifest gives. */
static enum dr_status load_text_model(struct dr_server *srv, const char *path, struct dr_error *err)
{
    enum dr_status st = dr_bert_load(path, NULL, &srv->bert, err);
    if (st != DR_OK)
        return st;
    const char *vocab = dr_bert_vocab_path(srv->bert);
    if (!vocab)
        st = dr_error_set(err, DR_ERR_FORMAT, "%s: the manifest names no vocabulary", path);
    else
        st = dr_tokenizer_load(vocab, dr_bert_vocab_lower_case(srv->bert), &srv->tokenizer, err);
    struct dr_model_file *mf = NULL;
    if (st == DR_OK && dr_model_file_open(path, &mf, err) == DR_OK) {
        snprintf(srv->model_name, sizeof srv->model_name, "%s", dr_model_file_name(mf));
        snprintf(srv->model_version, sizeof srv->model_version, "%s", dr_model_file_version(mf));
        dr_model_file_destroy(mf);
    } else if (st == DR_OK) {
        st = err ? err->code : DR_ERR_FORMAT;
    }
    if (st != DR_OK) {
        dr_tokenizer_destroy(srv->tokenizer);
        dr_bert_destroy(srv->bert);
        srv->tokenizer = NULL;
        srv->bert = NULL;
    }
    return st;
}

/* The log's user-id key: the configured file, else one next to the history (made when
 * absent, so a deployment's hashes stay the same across restarts). */
static enum dr_status load_log_key(const struct dr_server_opts *opts, struct dr_error *err)
{
    char path[1024];
    if (opts->log_key_path && opts->log_key_path[0])
        snprintf(path, sizeof path, "%s", opts->log_key_path);
    else if (dr_history_is_redis(opts->history_path))
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "a Redis history needs --log-key-file: every replica must hash user "
                            "ids in its log lines with the same key");
    else if ((size_t)snprintf(path, sizeof path, "%s/log-key", opts->history_path) >= sizeof path)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "history path too long: %s",
                            opts->history_path);
    uint8_t key[DR_LOG_KEY_MAX_BYTES];
    size_t len = 0;
    bool is_created = false;
    enum dr_status st = dr_log_key_load_or_create(path, key, &len, &is_created, err);
    if (st == DR_OK)
        st = dr_log_set_key(key, len);
    if (st == DR_OK && is_created) {
        struct dr_log_line line;
        dr_log_begin(&line, DR_LOG_INFO, "made a new key for user ids in the log");
        dr_log_str(&line, "path", path);
        dr_log_end(&line);
    }
    return st;
}

/* The metrics' readers of the model's parts: nothing to show before the first model.  The
 * cache belongs to the model: a new model starts with an empty cache and zero counters. */
static bool cache_stats(void *ctx, struct dr_state_cache_stats *out)
{
    struct dr_server *srv = ctx;
    if (srv->opts.state_cache_users == 0) /* without a cache, no cache metrics */
        return false;
    struct model_slot *slot = slot_acquire(srv);
    if (slot)
        dr_recommender_cache_stats(slot->rec, out);
    slot_release(slot);
    return slot != NULL;
}

static bool impression_stats(void *ctx, struct dr_impression_log_stats *out)
{
    struct dr_server *srv = ctx;
    struct dr_impression_log *log = atomic_load_explicit(&srv->impressions, memory_order_acquire);
    if (!log)
        return false;
    dr_impression_log_get_stats(log, out);
    return true;
}

enum dr_status dr_server_start(const struct dr_server_opts *opts, struct dr_server **out,
                               struct dr_error *err)
{
    struct dr_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return dr_error_set(err, DR_ERR_NOMEM, "server: out of memory");
    srv->opts = *opts;
    srv->start_ns = dr_now_ns();
    pthread_rwlockattr_t lock_attr;
    pthread_rwlockattr_init(&lock_attr);
    pthread_rwlockattr_setkind_np(&lock_attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&srv->model_lock, &lock_attr);
    pthread_rwlockattr_destroy(&lock_attr);
    pthread_mutex_init(&srv->slot_lock, NULL);
    pthread_mutex_init(&srv->load_lock, NULL);
    snprintf(srv->variant, sizeof srv->variant, "%s", opts->variant ? opts->variant : "");
    enum dr_status st = DR_OK;
    if (!dr_history_is_redis(opts->history_path) && mkdir_p(opts->history_path) != 0) {
        st = dr_error_set(err, DR_ERR_IO, "history directory %s: cannot create it",
                          opts->history_path);
        goto fail;
    }
    st = load_log_key(opts, err);
    if (st != DR_OK)
        goto fail;
    struct dr_history_opts hopts = {.map_size_bytes = opts->history_map_bytes,
                                    .key_prefix = opts->history_prefix,
                                    .timeout_ms = opts->history_timeout_ms,
                                    .allow_volatile = opts->history_allow_volatile,
                                    .wait_replicas = opts->history_wait_replicas};
    st = dr_history_open(opts->history_path, &hopts, &srv->history, err);
    if (st != DR_OK)
        goto fail;
    struct dr_history_info hinfo;
    dr_history_get_info(srv->history, &hinfo);
    if (!hinfo.is_durable) { /* allowed by --history-allow-volatile; also a metric */
        struct dr_log_line line;
        dr_log_begin(&line, DR_LOG_WARN,
                     "the history store would lose acknowledged events in a crash");
        dr_log_str(&line, "backend", hinfo.backend);
        dr_log_str(&line, "appendonly", hinfo.appendonly);
        dr_log_str(&line, "appendfsync", hinfo.appendfsync);
        dr_log_end(&line);
    }
    st = dr_workpool_create((size_t)opts->n_workers, opts->queue_capacity, &srv->pool);
    if (st != DR_OK) {
        dr_error_set(err, st, "work pool: %s", dr_status_str(st));
        goto fail;
    }
    st = dr_metrics_create(srv->variant, dr_isa_name(dr_kernels_get()->isa), &srv->metrics);
    if (st != DR_OK) {
        dr_error_set(err, st, "metrics: %s", dr_status_str(st));
        goto fail;
    }
    dr_metrics_set_queue_depth_fn(srv->metrics, queue_depth, srv->pool);
    dr_metrics_set_history(srv->metrics, hinfo.backend, hinfo.is_durable);
    dr_metrics_set_in_flight_fn(srv->metrics, in_flight, srv->pool);
    if (opts->text_model && opts->text_model[0]) {
        st = load_text_model(srv, opts->text_model, err);
        if (st != DR_OK)
            goto fail;
        if (opts->max_batch > 1) {
            size_t max_len = dr_bert_max_len(srv->bert) < DR_TEXT_MAX_TOKENS
                                 ? dr_bert_max_len(srv->bert)
                                 : DR_TEXT_MAX_TOKENS;
            struct dr_text_batcher_opts to = {.max_batch = opts->max_batch,
                                              .max_delay_ns = opts->max_queue_delay_us * 1000u,
                                              .n_slots = batch_slots(opts),
                                              .max_len = max_len};
            st = dr_text_batcher_create(srv->bert, &to, srv->metrics, &srv->text_batcher);
            if (st != DR_OK) {
                dr_error_set(err, st, "text batcher: %s", dr_status_str(st));
                goto fail;
            }
        }
        dr_metrics_set_model(srv->metrics, srv->model_name, srv->model_version);
    }
    /* Read on each scrape; they show nothing until a model is published. */
    dr_metrics_set_cache_fn(srv->metrics, cache_stats, srv);
    dr_metrics_set_impressions_fn(srv->metrics, impression_stats, srv);
    if (getrandom(&srv->request_id_seed, sizeof srv->request_id_seed, 0) !=
        (ssize_t)sizeof srv->request_id_seed)
        srv->request_id_seed = dr_now_ns() ^ ((uint64_t)getpid() << 32);
    /* Last of the parts: the HTTP thread reads everything set above on each scrape. */
    if (opts->metrics_addr && opts->metrics_addr[0]) {
        st = dr_metrics_listen(srv->metrics, opts->metrics_addr, &srv->metrics_port, err);
        if (st != DR_OK)
            goto fail;
    }

    grpc_init();
    grpc_arg args[5];
    size_t n_args = 0;
    args[n_args++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                                .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                                .value.integer = opts->max_message_bytes};
    args[n_args++] =
        (grpc_arg){.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0};
    args[n_args++] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_CONCURRENT_STREAMS, .value.integer = 1024};
    /* Only when set: gRPC's own defaults (no age limit, unbounded grace) stay otherwise. */
    if (opts->max_connection_age_ms > 0)
        args[n_args++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                                    .key = GRPC_ARG_MAX_CONNECTION_AGE_MS,
                                    .value.integer = opts->max_connection_age_ms};
    if (opts->max_connection_age_grace_ms > 0)
        args[n_args++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                                    .key = GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                                    .value.integer = opts->max_connection_age_grace_ms};
    grpc_channel_args channel_args = {.num_args = n_args, .args = args};
    srv->server = grpc_server_create(&channel_args, NULL);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    srv->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    for (int m = 0; m < M_COUNT; m++)
        srv->method_handles[m] = grpc_server_register_method(
            srv->server, method_paths[m], NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    grpc_server_credentials *creds = dr_auth_server_credentials(opts->auth);
    int port = grpc_server_add_http2_port(srv->server, opts->listen_addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        grpc_server_destroy(srv->server);
        grpc_completion_queue_shutdown(srv->cq);
        grpc_completion_queue_destroy(srv->cq);
        grpc_completion_queue_shutdown(srv->shutdown_cq);
        grpc_completion_queue_destroy(srv->shutdown_cq);
        grpc_shutdown();
        st = dr_error_set(err, DR_ERR_IO, "cannot listen on %s (in use, or a bad address)",
                          opts->listen_addr);
        goto fail;
    }
    grpc_server_start(srv->server);
    for (int m = 0; m <= M_GENERIC; m++)
        for (int i = 0; i < REQUESTS_POSTED_PER_METHOD; i++)
            post_request(srv, (enum method)m);

    srv->n_pollers = opts->n_pollers > 0 ? opts->n_pollers : 1;
    srv->pollers = calloc((size_t)srv->n_pollers, sizeof *srv->pollers);
    for (int i = 0; srv->pollers && i < srv->n_pollers; i++)
        pthread_create(&srv->pollers[i], NULL, poller_main, srv);
    *out = srv;
    return DR_OK;

fail:
    dr_metrics_destroy(srv->metrics);
    dr_text_batcher_destroy(srv->text_batcher);
    dr_tokenizer_destroy(srv->tokenizer);
    dr_bert_destroy(srv->bert);
    dr_workpool_destroy(srv->pool);
    dr_history_close(srv->history);
    pthread_rwlock_destroy(&srv->model_lock);
    pthread_mutex_destroy(&srv->slot_lock);
    pthread_mutex_destroy(&srv->load_lock);
    free(srv);
    return st;
}

/* Builds a model beside the served one (load, checks, warm-up) and swaps it in. */
static enum dr_status load_and_publish(struct dr_server *srv, const char *dir, struct dr_error *err)
{
    struct model_slot *slot = calloc(1, sizeof *slot);
    if (!slot)
        return dr_error_set(err, DR_ERR_NOMEM, "model: out of memory");
    if (strlen(dir) >= sizeof slot->dir) {
        free(slot);
        return dr_error_set(err, DR_ERR_INVALID_ARG, "model directory: path too long");
    }
    strcpy(slot->dir, dir);
    enum dr_status st = dr_bundle_load(dir, NULL, &slot->bundle, err);
    /* Requests carry Unix timestamps; such a model would read their gaps as event counts. */
    if (st == DR_OK && dr_bundle_time_in_steps(slot->bundle) && !srv->opts.allow_step_time)
        st = dr_error_set(err, DR_ERR_FORMAT,
                          "%s: trained with preprocessing.time_unit \"steps\" (order-only "
                          "data): its time-gap buckets and half-life count events, while "
                          "requests carry timestamps in seconds; serve a model trained on "
                          "timestamps, or start with --allow-step-time yes to serve it anyway",
                          dir);
    struct dr_recommender_opts ropts = {
        .cache_users = srv->opts.state_cache_users,
        .n_warmup = srv->opts.warmup_queries,
        .query_weight = srv->opts.query_weight,
        .max_batch = srv->opts.max_batch,
        .max_delay_ns = srv->opts.max_queue_delay_us * 1000u,
        .n_batch_slots = batch_slots(&srv->opts),
    };
    if (st == DR_OK)
        st = dr_recommender_create(slot->bundle, srv->history, srv->metrics, &ropts, &slot->rec,
                                   err);
    struct dr_impression_log *impressions = NULL;
    if (st == DR_OK && srv->opts.impression_queue > 0 &&
        !atomic_load_explicit(&srv->impressions, memory_order_acquire))
        st = dr_impression_log_create(srv->history, srv->opts.impression_queue, &impressions, err);
    if (st != DR_OK) {
        slot_destroy(slot);
        return st;
    }
    atomic_init(&slot->refs, 1); /* the published reference */
    slot->loaded_at_ns = dr_now_ns();
    pthread_rwlock_wrlock(&srv->model_lock); /* no Ingest is writing past a cache now */
    if (impressions)                         /* release: its readers see it fully built */
        atomic_store_explicit(&srv->impressions, impressions, memory_order_release);
    pthread_mutex_lock(&srv->slot_lock);
    struct model_slot *old = srv->slot;
    srv->slot = slot;
    pthread_mutex_unlock(&srv->slot_lock);
    pthread_rwlock_unlock(&srv->model_lock);
    dr_metrics_set_model(srv->metrics, dr_bundle_name(slot->bundle),
                         dr_bundle_version(slot->bundle));
    slot_release(old); /* freed here, or by the last call still using it */
    return DR_OK;
}

/* Loads dir under load_lock: previous gets the version served before ("" if none) and, when
 * loaded is not NULL, *loaded a reference to the model this call published (on success), both
 * read under the lock so a concurrent poll or SIGHUP load cannot slip in between. */
static enum dr_status load_model(struct dr_server *srv, const char *dir, struct dr_error *err,
                                 char previous[MODEL_VERSION_MAX], struct model_slot **loaded)
{
    pthread_mutex_lock(&srv->load_lock);
    uint64_t start_ns = dr_now_ns();
    previous[0] = '\0';
    struct model_slot *cur = slot_acquire(srv);
    if (cur)
        snprintf(previous, MODEL_VERSION_MAX, "%s", dr_bundle_version(cur->bundle));
    slot_release(cur);
    struct dr_error local = {0};
    enum dr_status st = load_and_publish(srv, dir, err ? err : &local);
    const char *detail = err ? err->msg : local.msg;
    dr_metrics_count_model_load(srv->metrics, st == DR_OK);
    struct dr_log_line line;
    if (st == DR_OK) {
        struct model_slot *now = slot_acquire(srv);
        dr_log_begin(&line, DR_LOG_INFO, previous[0] ? "model replaced" : "model loaded");
        dr_log_str(&line, "dir", dir);
        dr_log_str(&line, "model", dr_bundle_name(now->bundle));
        dr_log_str(&line, "version", dr_bundle_version(now->bundle));
        if (previous[0])
            dr_log_str(&line, "previous_version", previous);
        dr_log_int(&line, "items", (long long)dr_bundle_n_items(now->bundle));
        dr_log_int(&line, "dim", (long long)dr_bundle_item_dim(now->bundle));
        dr_log_double(&line, "ms", (double)(dr_now_ns() - start_ns) / 1e6);
        dr_log_end(&line);
        if (loaded)
            *loaded = now; /* the caller's reference */
        else
            slot_release(now);
    } else {
        dr_log_begin(&line, DR_LOG_ERROR,
                     previous[0] ? "model load failed: the served model stays"
                                 : "cannot load the model bundle");
        dr_log_str(&line, "dir", dir);
        dr_log_str(&line, "detail", detail);
        if (previous[0])
            dr_log_str(&line, "serving_version", previous);
        dr_log_end(&line);
    }
    pthread_mutex_unlock(&srv->load_lock);
    return st;
}

enum dr_status dr_server_load_model(struct dr_server *srv, const char *dir, struct dr_error *err)
{
    char previous[MODEL_VERSION_MAX];
    return load_model(srv, dir, err, previous, NULL);
}

static enum dr_status reload_model(struct dr_server *srv, struct dr_error *err,
                                   char previous[MODEL_VERSION_MAX], struct model_slot **loaded)
{
    previous[0] = '\0';
    const struct dr_model_source *src = srv->opts.model_source;
    if (!src || !dr_model_source_is_set(src))
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "no model source to reload (--model or --model-root)");
    char dir[DR_MODEL_PATH_MAX];
    enum dr_status st = dr_model_source_resolve(src, dir, err);
    if (st != DR_OK) {
        struct dr_log_line line;
        dr_log_begin(&line, DR_LOG_ERROR, "no model to load");
        dr_log_str(&line, "detail", err ? err->msg : "");
        dr_log_end(&line);
        dr_metrics_count_model_load(srv->metrics, false);
        return st;
    }
    return load_model(srv, dir, err, previous, loaded);
}

enum dr_status dr_server_reload(struct dr_server *srv, struct dr_error *err)
{
    char previous[MODEL_VERSION_MAX];
    return reload_model(srv, err, previous, NULL);
}

bool dr_server_model_dir(struct dr_server *srv, char *dir, size_t size)
{
    struct model_slot *slot = slot_acquire(srv);
    bool ok = slot && strlen(slot->dir) < size;
    if (ok)
        strcpy(dir, slot->dir);
    slot_release(slot);
    return ok;
}

long dr_server_shutdown(struct dr_server *srv)
{
    if (!srv)
        return 0;
    long n_cut = 0;
    atomic_store_explicit(&srv->is_draining, true, memory_order_relaxed);
    /* The drain delay: health already says NOT_SERVING, calls are still served, so load
     * balancers that probe health move traffic away before the port closes. */
    if (srv->opts.drain_delay_ms > 0)
        nanosleep(&(struct timespec){.tv_sec = srv->opts.drain_delay_ms / 1000,
                                     .tv_nsec = (long)(srv->opts.drain_delay_ms % 1000) * 1000000},
                  NULL);
    atomic_store_explicit(&srv->is_stopping, true, memory_order_relaxed);
    int shutdown_tag;
    grpc_server_shutdown_and_notify(srv->server, srv->shutdown_cq, &shutdown_tag);
    gpr_timespec grace = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(srv->opts.drain_grace_ms, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_pluck(srv->shutdown_cq, &shutdown_tag, grace, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        n_cut = atomic_load_explicit(&srv->n_unanswered, memory_order_relaxed);
        struct dr_log_line line;
        dr_log_begin(&line, DR_LOG_WARN, "drain: grace period over, cancelling the calls left");
        dr_log_int(&line, "calls_cut", n_cut);
        dr_log_int(&line, "grace_ms", srv->opts.drain_grace_ms);
        dr_log_end(&line);
        grpc_server_cancel_all_calls(srv->server);
        grpc_completion_queue_pluck(srv->shutdown_cq, &shutdown_tag,
                                    gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    }
    dr_workpool_destroy(srv->pool); /* queued handlers still reply (or see their calls cancelled) */
    grpc_server_destroy(srv->server);
    grpc_completion_queue_shutdown(srv->cq);
    for (int i = 0; srv->pollers && i < srv->n_pollers; i++)
        pthread_join(srv->pollers[i], NULL);
    grpc_completion_queue_destroy(srv->cq);
    grpc_completion_queue_shutdown(srv->shutdown_cq);
    grpc_completion_queue_destroy(srv->shutdown_cq);
    grpc_shutdown();
    dr_metrics_destroy(srv->metrics); /* first: its HTTP thread reads the cache and the log */
    /* No handler runs any more (the work pool is gone): the writer commits every impression
     * queued, then stops. */
    dr_impression_log_destroy(atomic_load_explicit(&srv->impressions, memory_order_acquire));
    slot_release(srv->slot); /* the published reference: no call holds another now */
    dr_text_batcher_destroy(srv->text_batcher);
    dr_tokenizer_destroy(srv->tokenizer);
    dr_bert_destroy(srv->bert);
    dr_history_close(srv->history);
    pthread_rwlock_destroy(&srv->model_lock);
    pthread_mutex_destroy(&srv->slot_lock);
    pthread_mutex_destroy(&srv->load_lock);
    free(srv->pollers);
    free(srv);
    return n_cut;
}
