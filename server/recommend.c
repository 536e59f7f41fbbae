/* recommend.c: the serving path of Recommend and Rank (what it computes: recommend.h).
 *
 * A call, on one worker with its own struct dr_rec_call:
 *   1. the user's state: a copy from the cache, or (a miss) a replay of the last max_events
 *      usable events read from the history store, cached under the ticket of the miss;
 *   2. the history read (every stored event of the user, oldest first) also collects the
 *      rows to exclude and the recent window the explanations draw from; a Rank that hits
 *      the cache and has no inline events reads nothing;
 *   3. inline events (sorted by ts) step a private copy of the state; one older than the
 *      state's last event instead replays the window merged with them (not cached); without
 *      a usable stored event they are one replay from scratch (the same numbers, faster);
 *   4. Recommend with query text: the query's item-space vector blended into the user vector
 *      (recommend.h; encode_query and blend_query below);
 *   5. Recommend: index search for max(k, ef) candidates, exact fp32 re-scoring, the best
 *      k (ties to the lower row), each explained by the most similar recent history item;
 *      Rank: exact scores of the known candidates, sorted the same way.
 * "Usable": the item is one of the bundle's ids and the event type one of its event types;
 * other events are skipped and counted (driftrec_skipped_events_total), in the replay and in
 * the cache's steps alike, so a cached state always equals the replay of the same events.
 * Stored events are unpacked by protobuf-c into the call's arena (no malloc per event).
 */
#include "recommend.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batcher.h"
#include "bert.h"
#include "text_batcher.h"
#include "tokenizer.h"
#include "validate.h"
#include "workpool.h" /* dr_now_ns */

#define DEFAULT_K      10
#define MAX_SEARCH     4096        /* the index caps k and ef here (ann_search.c) */
#define ARENA_BYTES    (64 * 1024) /* one unpacked stored event: at most ~17 KiB of fields */
#define EXPLAIN_BYTES  (48 + DR_MAX_ID_BYTES)
#define MAX_RESULTS    (DR_MAX_CANDIDATES > MAX_SEARCH ? DR_MAX_CANDIDATES : MAX_SEARCH)
#define N_PROTO_TYPES  7 /* driftrec.v1.EventType values 0..6 */
#define FIRST_EXCLUDED 1024

/* One event as the model takes it. */
struct uevent {
    int64_t ts;
    uint32_t row;
    uint32_t seq;                  /* tie-break among equal ts: arrival order */
    int32_t type;                  /* the model's event type */
    int32_t proto_type;            /* driftrec.v1.EventType, for the explanation's verb */
    float dwell_s, amount, rating; /* dwell and amount clipped; NAN when missing */
};

enum usability {
    USABLE,
    ROW_ONLY,     /* a known item, but an event type the model lacks: excluded, not replayed */
    UNKNOWN_ITEM, /* nothing to do with it */
};

struct scored {
    float score;
    uint32_t row;
};

struct dr_recommender {
    const struct dr_bundle *bundle;
    const struct dr_interest *model;
    const struct dr_kernels *kern;
    struct dr_history *history;
    struct dr_metrics *metrics;
    struct dr_state_cache *cache; /* NULL: no cache */
    size_t dim, n_items, max_events, ef, state_size;
    float clip_dwell_s, clip_amount;
    int32_t model_type[N_PROTO_TYPES]; /* driftrec.v1.EventType -> the model's type, or -1 */
    /* Query text: the bundle's text encoder and its vocabulary (owned; NULL when the bundle has
     * no text projection), W_text (borrowed from the bundle), the tokens a query is cut to. */
    struct dr_bert *text_model;
    struct dr_tokenizer *tokenizer;
    const float *text_proj;
    size_t text_dim, text_max_len;
    bool is_text_normalized;
    float query_weight;
    /* "ingest": one history write at a time, so cached states step in the store's order
     * (equal timestamps are ordered by the write's sequence number).  Taken before any cache
     * shard lock.  Guards ingest_ws. */
    pthread_mutex_t ingest_lock;
    void *ingest_ws;
    size_t ingest_ws_size;
    /* "rec_call_pool": a leaf lock over the free list of call scratch. */
    pthread_mutex_t pool_lock;
    struct dr_rec_call *free_calls;
    /* Interest-model work grouped across calls (NULL with max_batch 1: each call runs its own
     * user) and the scratch of each of its slots; query text likewise through text_batcher. */
    struct dr_batcher *batcher;
    struct interest_slot *slots;
    size_t n_slots, max_batch;
    struct dr_text_batcher *text_batcher;
};

/* One user's interest-model work for the batcher: a replay from scratch (the state, when not
 * NULL, receives the final state) or steps of a saved state (advanced in place). */
enum job_kind { JOB_REPLAY, JOB_STEP, JOB_KIND_COUNT };
#define LENGTH_BUCKETS (DR_BATCH_N_BUCKETS / JOB_KIND_COUNT)

struct interest_job {
    const struct dr_interest_event *events;
    size_t n_events;
    void *state;
    float *out; /* dim */
};

/* A batch's scratch, sized for max_batch users; only the batch's leader touches it. */
struct interest_slot {
    void *ws;
    size_t ws_size;
    float *out;                              /* max_batch x dim */
    const struct dr_interest_event **events; /* per user */
    struct dr_interest_event *step_events;   /* one step's event per user */
    size_t *n_events;
    void **states;
    size_t *order; /* batch positions, most events first */
    bool *is_ok;
};

struct dr_rec_call {
    struct dr_rec_call *next; /* in the pool's free list */
    void *ws;                 /* interest-model workspace for one user */
    size_t ws_size;
    struct dr_ann_searcher *searcher;
    void *state, *state2; /* state_size bytes each */
    float *user_vec;      /* dim */
    unsigned char *arena; /* ARENA_BYTES: protobuf-c unpacks one stored event here */
    size_t arena_used;
    /* The history read: the last max_events usable events (a ring), the rows to exclude. */
    struct uevent *ring;
    size_t n_seen; /* usable events seen; the ring holds the last min(n_seen, max_events) */
    uint32_t *exclude;
    size_t n_exclude, cap_exclude;
    size_t n_unknown_item, n_unknown_type, n_unreadable;
    bool is_nomem;
    /* window: the ring in order, with room for the inline events of a merged replay */
    struct uevent *window, *inline_ev;
    size_t n_window, n_inline;
    struct dr_interest_event *model_ev;   /* max_events */
    struct dr_interest_event *inline_mev; /* DR_MAX_EVENTS_PER_REQUEST: inline steps, batched */
    uint64_t deadline_ns;                 /* the call's, dr_now_ns clock; 0 = none */
    /* results */
    struct scored *results; /* MAX_RESULTS */
    uint32_t *ids;          /* MAX_RESULTS */
    float *scores;          /* MAX_RESULTS */
    uint32_t *sources;      /* explanation sources: distinct recent rows */
    int32_t *source_types;  /* their latest driftrec.v1.EventType */
    float *sims;
    size_t n_sources;
    Driftrec__V1__ScoredItem *items;
    Driftrec__V1__ScoredItem **item_ptrs;
    ProtobufCBinaryData *unknown; /* DR_MAX_CANDIDATES */
    char *text;                   /* DR_MAX_K explanations of EXPLAIN_BYTES */
    Driftrec__V1__StageTimings timings;
    /* query text (only with a text model): token ids, the encoder's workspace and output,
     * the query's item-space vector */
    int32_t *query_ids; /* text_max_len */
    void *text_ws;
    size_t text_ws_size;
    float *text_vec;  /* text_dim */
    float *query_vec; /* dim */
};

/* ---- call scratch -------------------------------------------------------------------------- */

static void call_destroy(struct dr_rec_call *c)
{
    if (!c)
        return;
    dr_aligned_free(c->ws);
    dr_ann_searcher_destroy(c->searcher);
    dr_aligned_free(c->state);
    dr_aligned_free(c->state2);
    dr_aligned_free(c->user_vec);
    free(c->arena);
    free(c->ring);
    free(c->exclude);
    free(c->window);
    free(c->inline_ev);
    free(c->model_ev);
    free(c->inline_mev);
    free(c->results);
    free(c->ids);
    free(c->scores);
    free(c->sources);
    free(c->source_types);
    free(c->sims);
    free(c->items);
    free(c->item_ptrs);
    free(c->unknown);
    free(c->text);
    free(c->query_ids);
    dr_aligned_free(c->text_ws);
    dr_aligned_free(c->text_vec);
    dr_aligned_free(c->query_vec);
    free(c);
}

static struct dr_rec_call *call_create(const struct dr_recommender *rec)
{
    struct dr_rec_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t window_cap = rec->max_events + DR_MAX_EVENTS_PER_REQUEST;
    size_t n_items_out = DR_MAX_K > DR_MAX_CANDIDATES ? DR_MAX_K : DR_MAX_CANDIDATES;
    c->ws_size = dr_interest_workspace_size(rec->model, 1);
    c->ws = dr_aligned_alloc(c->ws_size);
    c->state = dr_aligned_alloc(rec->state_size);
    c->state2 = dr_aligned_alloc(rec->state_size);
    c->user_vec = dr_aligned_alloc(rec->dim * sizeof(float));
    c->arena = malloc(ARENA_BYTES);
    c->ring = calloc(rec->max_events, sizeof *c->ring);
    c->cap_exclude = FIRST_EXCLUDED;
    c->exclude = malloc(c->cap_exclude * sizeof *c->exclude);
    c->window = calloc(window_cap, sizeof *c->window);
    c->inline_ev = calloc(DR_MAX_EVENTS_PER_REQUEST, sizeof *c->inline_ev);
    c->model_ev = calloc(rec->max_events, sizeof *c->model_ev);
    c->inline_mev = calloc(DR_MAX_EVENTS_PER_REQUEST, sizeof *c->inline_mev);
    c->results = calloc(MAX_RESULTS, sizeof *c->results);
    c->ids = calloc(MAX_RESULTS, sizeof *c->ids);
    c->scores = calloc(MAX_RESULTS, sizeof *c->scores);
    c->sources = calloc(window_cap, sizeof *c->sources);
    c->source_types = calloc(window_cap, sizeof *c->source_types);
    c->sims = calloc(window_cap, sizeof *c->sims);
    c->items = calloc(n_items_out, sizeof *c->items);
    c->item_ptrs = calloc(n_items_out, sizeof *c->item_ptrs);
    c->unknown = calloc(DR_MAX_CANDIDATES, sizeof *c->unknown);
    c->text = malloc((size_t)DR_MAX_K * EXPLAIN_BYTES);
    if (!c->ws || !c->state || !c->state2 || !c->user_vec || !c->arena || !c->ring || !c->exclude ||
        !c->window || !c->inline_ev || !c->model_ev || !c->inline_mev || !c->results || !c->ids ||
        !c->scores || !c->sources || !c->source_types || !c->sims || !c->items || !c->item_ptrs ||
        !c->unknown || !c->text ||
        dr_ann_searcher_create(dr_bundle_index(rec->bundle), &c->searcher) != DR_OK) {
        call_destroy(c);
        return NULL;
    }
    if (rec->text_model) {
        c->query_ids = malloc(rec->text_max_len * sizeof *c->query_ids);
        c->text_ws_size =
            dr_bert_workspace_size(rec->text_model, rec->text_max_len, rec->text_max_len);
        c->text_ws = dr_aligned_alloc(c->text_ws_size);
        c->text_vec = dr_aligned_alloc(rec->text_dim * sizeof(float));
        c->query_vec = dr_aligned_alloc(rec->dim * sizeof(float));
        if (!c->query_ids || !c->text_ws || !c->text_vec || !c->query_vec) {
            call_destroy(c);
            return NULL;
        }
    }
    return c;
}

struct dr_rec_call *dr_recommender_call_begin(struct dr_recommender *rec)
{
    pthread_mutex_lock(&rec->pool_lock);
    struct dr_rec_call *c = rec->free_calls;
    if (c)
        rec->free_calls = c->next;
    pthread_mutex_unlock(&rec->pool_lock);
    if (!c)
        c = call_create(rec); /* the pool grows to the number of workers */
    if (c)
        c->deadline_ns = 0;
    return c;
}

void dr_recommender_call_set_deadline(struct dr_rec_call *c, uint64_t deadline_ns)
{
    c->deadline_ns = deadline_ns;
}

void dr_recommender_call_end(struct dr_recommender *rec, struct dr_rec_call *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&rec->pool_lock);
    c->next = rec->free_calls;
    rec->free_calls = c;
    pthread_mutex_unlock(&rec->pool_lock);
}

/* ---- events -------------------------------------------------------------------------------- */

/* Classifies one event and fills *out (always for USABLE; the row also for ROW_ONLY). */
static enum usability classify(const struct dr_recommender *rec, const char *item, size_t item_len,
                               int proto_type, int64_t ts, bool has_dwell_s, double dwell_s,
                               bool has_amount, double amount, bool has_rating, int rating,
                               struct uevent *out)
{
    size_t row = 0;
    if (!dr_bundle_item_row(rec->bundle, item, item_len, &row))
        return UNKNOWN_ITEM;
    int32_t type = proto_type >= 0 && proto_type < N_PROTO_TYPES ? rec->model_type[proto_type] : -1;
    float dwell = has_dwell_s ? (float)dwell_s : NAN, spent = has_amount ? (float)amount : NAN;
    *out = (struct uevent){
        .ts = ts,
        .row = (uint32_t)row,
        .type = type,
        .proto_type = proto_type,
        /* preprocessing.clip: training clipped these before the log (docs/bundle.md) */
        .dwell_s = dwell > rec->clip_dwell_s ? rec->clip_dwell_s : dwell,
        .amount = spent > rec->clip_amount ? rec->clip_amount : spent,
        .rating = has_rating ? (float)rating : NAN,
    };
    return type >= 0 ? USABLE : ROW_ONLY;
}

static enum usability classify_message(const struct dr_recommender *rec,
                                       const Driftrec__V1__Event *m, struct uevent *out)
{
    return classify(rec, (const char *)m->item_id.data, m->item_id.len,
                    m->has_event_type ? (int)m->event_type : 0, m->ts, m->has_dwell_s, m->dwell_s,
                    m->has_amount, m->amount, m->has_rating, m->rating, out);
}

static void count_skip(struct dr_rec_call *c, enum usability u)
{
    if (u == UNKNOWN_ITEM)
        c->n_unknown_item++;
    else if (u == ROW_ONLY)
        c->n_unknown_type++;
}

static struct dr_interest_event model_event(const struct dr_recommender *rec,
                                            const struct uevent *e)
{
    return (struct dr_interest_event){
        .item_vec = dr_bundle_item_vector(rec->bundle, e->row),
        .text_vec = NULL, /* no text encoder runs on the request path: event text is unused */
        .ts = e->ts,
        .event_type = e->type,
        .dwell_s = e->dwell_s,
        .amount = e->amount,
        .rating = e->rating,
    };
}

static int cmp_uevent(const void *pa, const void *pb)
{
    const struct uevent *a = pa, *b = pb;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static bool is_excluded(Driftrec__V1__ExcludeMode mode, int proto_type)
{
    return mode == DRIFTREC__V1__EXCLUDE_MODE__EXCLUDE_HISTORY ||
           (mode == DRIFTREC__V1__EXCLUDE_MODE__EXCLUDE_PURCHASED &&
            proto_type == DRIFTREC__V1__EVENT_TYPE__PURCHASE);
}

static void push_exclude(struct dr_rec_call *c, uint32_t row)
{
    if (c->n_exclude == c->cap_exclude) {
        uint32_t *grown = realloc(c->exclude, 2 * c->cap_exclude * sizeof *grown);
        if (!grown) {
            c->is_nomem = true;
            return;
        }
        c->exclude = grown;
        c->cap_exclude *= 2;
    }
    c->exclude[c->n_exclude++] = row;
}

/* protobuf-c allocates one unpacked event from the call's arena, reset per event. */
static void *arena_alloc(void *data, size_t size)
{
    struct dr_rec_call *c = data;
    size_t at = dr_round_up(c->arena_used, 16);
    if (at > ARENA_BYTES || size > ARENA_BYTES - at)
        return NULL;
    c->arena_used = at + size;
    return c->arena + at;
}

static void arena_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr;
}

struct read_ctx {
    const struct dr_recommender *rec;
    struct dr_rec_call *call;
    Driftrec__V1__ExcludeMode exclude;
};

static void visit_stored(void *ctx, const uint8_t *packed, size_t len)
{
    struct read_ctx *r = ctx;
    struct dr_rec_call *c = r->call;
    c->arena_used = 0;
    ProtobufCAllocator arena = {.alloc = arena_alloc, .free = arena_free, .allocator_data = c};
    Driftrec__V1__Event *m = driftrec__v1__event__unpack(&arena, len, packed);
    if (!m) { /* the server wrote it, so this is damage; leave the event out */
        c->n_unreadable++;
        return;
    }
    struct uevent ev;
    enum usability u = classify_message(r->rec, m, &ev);
    count_skip(c, u);
    if (u == UNKNOWN_ITEM)
        return;
    if (is_excluded(r->exclude, ev.proto_type))
        push_exclude(c, ev.row);
    if (u == USABLE && r->rec->max_events > 0) {
        ev.seq = (uint32_t)c->n_seen;
        c->ring[c->n_seen % r->rec->max_events] = ev;
        c->n_seen++;
    }
}

/* Reads every stored event of the user: the exclusions and the window (the last max_events
 * usable events, in order, seq 0..n-1). */
static enum dr_status read_history(const struct dr_recommender *rec, struct dr_rec_call *c,
                                   const ProtobufCBinaryData *user,
                                   Driftrec__V1__ExcludeMode exclude)
{
    struct read_ctx r = {.rec = rec, .call = c, .exclude = exclude};
    enum dr_status st = dr_history_read_user(rec->history, (const char *)user->data, user->len, 0,
                                             visit_stored, &r, NULL);
    if (st != DR_OK)
        return st;
    if (c->is_nomem)
        return DR_ERR_NOMEM;
    size_t n = c->n_seen < rec->max_events ? c->n_seen : rec->max_events;
    size_t first = c->n_seen - n;
    for (size_t i = 0; i < n; i++) {
        c->window[i] = c->ring[(first + i) % rec->max_events];
        c->window[i].seq = (uint32_t)i;
    }
    c->n_window = n;
    return DR_OK;
}

/* The request's inline events, usable ones sorted by (ts, position); their rows excluded per
 * the mode.  Unknown ones are counted as skipped at once: they feed this vector. */
static void take_inline(const struct dr_recommender *rec, struct dr_rec_call *c,
                        Driftrec__V1__Event *const *events, size_t n,
                        Driftrec__V1__ExcludeMode exclude)
{
    size_t unknown_item = 0, unknown_type = 0;
    for (size_t i = 0; i < n; i++) {
        struct uevent ev;
        enum usability u = classify_message(rec, events[i], &ev);
        unknown_item += u == UNKNOWN_ITEM;
        unknown_type += u == ROW_ONLY;
        if (u == UNKNOWN_ITEM)
            continue;
        if (is_excluded(exclude, ev.proto_type))
            push_exclude(c, ev.row);
        if (u == USABLE) {
            ev.seq = (uint32_t)i;
            c->inline_ev[c->n_inline++] = ev;
        }
    }
    qsort(c->inline_ev, c->n_inline, sizeof *c->inline_ev, cmp_uevent);
    dr_metrics_count_skipped(rec->metrics, DR_SKIP_UNKNOWN_ITEM, unknown_item);
    dr_metrics_count_skipped(rec->metrics, DR_SKIP_UNKNOWN_EVENT_TYPE, unknown_type);
}

/* ---- batched interest-model work ---------------------------------------------------------- */

static int cmp_most_events(const void *pa, const void *pb, void *ctx)
{
    const size_t *n = ctx, a = *(const size_t *)pa, b = *(const size_t *)pb;
    if (n[a] != n[b])
        return n[a] > n[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Replays: one dr_interest_run over the batch (ragged by events); should it refuse, each user
 * alone, so a bad history fails only its own call. */
static void run_replays(const struct dr_recommender *rec, struct interest_slot *s,
                        struct dr_batch_item *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct interest_job *j = items[i]->job;
        s->events[i] = j->events;
        s->n_events[i] = j->n_events;
        s->states[i] = j->state;
    }
    enum dr_status st = dr_interest_run(rec->model, n, s->events, s->n_events, s->states, s->out,
                                        rec->dim, s->ws, s->ws_size);
    for (size_t i = 0; i < n; i++) {
        if (st != DR_OK)
            items[i]->status =
                dr_interest_run(rec->model, 1, &s->events[i], &s->n_events[i], &s->states[i],
                                s->out + i * rec->dim, rec->dim, s->ws, s->ws_size);
        if (items[i]->status == DR_OK)
            memcpy(((struct interest_job *)items[i]->job)->out, s->out + i * rec->dim,
                   rec->dim * sizeof(float));
    }
}

/* Steps: at step t the users with more than t events advance together (one dr_interest_step
 * over them, most events first so they are a prefix of the order), then one
 * dr_interest_user_vectors over all.  A step the model refuses (an event older than the
 * state) is retried user by user; a refused user drops out with DR_ERR_INVALID_ARG. */
static void run_steps(const struct dr_recommender *rec, struct interest_slot *s,
                      struct dr_batch_item *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s->n_events[i] = ((const struct interest_job *)items[i]->job)->n_events;
        s->order[i] = i;
        s->is_ok[i] = true;
    }
    qsort_r(s->order, n, sizeof *s->order, cmp_most_events, s->n_events);
    size_t n_active = n;
    for (size_t t = 0; n_active > 0; t++) {
        while (n_active > 0 && s->n_events[s->order[n_active - 1]] <= t)
            n_active--;
        size_t m = 0;
        for (size_t r = 0; r < n_active; r++) {
            size_t i = s->order[r];
            if (!s->is_ok[i])
                continue;
            const struct interest_job *j = items[i]->job;
            s->step_events[m] = j->events[t];
            s->states[m] = j->state;
            s->order[n + m] = i; /* row m's batch position (order has room for 2n) */
            m++;
        }
        if (m == 0)
            continue;
        if (dr_interest_step(rec->model, m, s->step_events, s->states, NULL, 0, s->ws,
                             s->ws_size) == DR_OK)
            continue;
        for (size_t r = 0; r < m; r++) {
            if (dr_interest_step(rec->model, 1, &s->step_events[r], &s->states[r], NULL, 0, s->ws,
                                 s->ws_size) != DR_OK) {
                s->is_ok[s->order[n + r]] = false;
                items[s->order[n + r]]->status = DR_ERR_INVALID_ARG;
            }
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->is_ok[i]) {
            s->states[m] = ((struct interest_job *)items[i]->job)->state;
            s->order[m++] = i;
        }
    }
    enum dr_status st = dr_interest_user_vectors(rec->model, m, (const void *const *)s->states,
                                                 s->out, rec->dim, s->ws, s->ws_size);
    for (size_t r = 0; r < m; r++) {
        struct dr_batch_item *it = items[s->order[r]];
        if (st == DR_OK)
            memcpy(((struct interest_job *)it->job)->out, s->out + r * rec->dim,
                   rec->dim * sizeof(float));
        else
            it->status = st;
    }
}

static void run_interest_batch(void *ctx, size_t slot, struct dr_batch_item *const *items, size_t n)
{
    struct dr_recommender *rec = ctx;
    dr_metrics_observe_batch(rec->metrics, DR_METRIC_MODEL_INTEREST, n);
    if (items[0]->bucket / LENGTH_BUCKETS == JOB_REPLAY)
        run_replays(rec, &rec->slots[slot], items, n);
    else
        run_steps(rec, &rec->slots[slot], items, n);
}

/* One user's work through the batcher: DR_OK, DR_ERR_DEADLINE (counted) when the call's
 * deadline passed while it waited, or the model's status. */
static enum dr_status submit_interest(const struct dr_recommender *rec, struct dr_rec_call *c,
                                      enum job_kind kind, const struct dr_interest_event *events,
                                      size_t n, void *state)
{
    struct interest_job job = {.events = events, .n_events = n, .state = state, .out = c->user_vec};
    struct dr_batch_item item = {
        .bucket = (size_t)kind * LENGTH_BUCKETS + dr_batcher_length_bucket(n, LENGTH_BUCKETS),
        .deadline_ns = c->deadline_ns,
        .job = &job,
    };
    enum dr_status st = dr_batcher_run(rec->batcher, &item, 1);
    if (st != DR_OK)
        return st;
    dr_metrics_observe_batch_wait_ns(rec->metrics, DR_METRIC_MODEL_INTEREST, item.wait_ns);
    if (item.status == DR_ERR_DEADLINE)
        dr_metrics_count_deadline_drop(rec->metrics, false);
    return item.status;
}

/* Replays events[0 .. n) (the last max_events of them) into user_vec; saves the final state
 * into state unless it is NULL. */
static enum dr_status replay(const struct dr_recommender *rec, struct dr_rec_call *c,
                             const struct uevent *events, size_t n, void *state)
{
    size_t first = n > rec->max_events ? n - rec->max_events : 0;
    for (size_t i = first; i < n; i++)
        c->model_ev[i - first] = model_event(rec, &events[i]);
    const struct dr_interest_event *evp = c->model_ev;
    size_t n_ev = n - first;
    if (rec->batcher && state) /* a merged replay (no state kept) is rare: it runs alone */
        return submit_interest(rec, c, JOB_REPLAY, evp, n_ev, state);
    void *states[1] = {state};
    return dr_interest_run(rec->model, 1, &evp, &n_ev, state ? states : NULL, c->user_vec, rec->dim,
                           c->ws, c->ws_size);
}

/* The answer for work the batcher did not run: the call's deadline passed while it waited
 * (dropped before compute), or the server is stopping. */
static grpc_status_code not_run(enum dr_status st, char *msg, size_t msg_size)
{
    if (st == DR_ERR_DEADLINE) {
        snprintf(msg, msg_size, "deadline expired while waiting for the interest model");
        return GRPC_STATUS_DEADLINE_EXCEEDED;
    }
    snprintf(msg, msg_size, "the server is stopping; retry");
    return GRPC_STATUS_UNAVAILABLE;
}

/* The user's vector into c->user_vec (steps 1-3 of the top comment).  Also leaves the
 * exclusions and the window in c when the history was read (always, except for a cached
 * user when needs_history is false and there are no inline events). */
static grpc_status_code user_vector(struct dr_recommender *rec, struct dr_rec_call *c,
                                    const ProtobufCBinaryData *user,
                                    Driftrec__V1__Event *const *inline_events, size_t n_inline,
                                    bool needs_history, Driftrec__V1__ExcludeMode exclude,
                                    char *msg, size_t msg_size)
{
    const char *uid = (const char *)user->data;
    c->n_seen = c->n_exclude = c->n_window = c->n_inline = 0;
    c->n_unknown_item = c->n_unknown_type = c->n_unreadable = 0;
    c->is_nomem = false;

    uint64_t ticket = 0;
    bool is_hit = rec->cache && dr_state_cache_get(rec->cache, uid, user->len, c->state, &ticket);
    /* The ticket comes before the read: an Ingest that commits after it keeps this replay
     * out of the cache (state_cache.h). */
    if (!is_hit || needs_history || n_inline > 0) {
        enum dr_status st = read_history(rec, c, user, exclude);
        if (st != DR_OK) {
            snprintf(msg, msg_size, "reading the user's history failed: %s", dr_status_str(st));
            return st == DR_ERR_NOMEM         ? GRPC_STATUS_RESOURCE_EXHAUSTED
                   : st == DR_ERR_UNAVAILABLE ? GRPC_STATUS_UNAVAILABLE
                                              : GRPC_STATUS_INTERNAL;
        }
    }
    if (!is_hit) {
        enum dr_status st = replay(rec, c, c->window, c->n_window, c->state);
        if (st == DR_ERR_DEADLINE || st == DR_ERR_UNAVAILABLE)
            return not_run(st, msg, msg_size);
        if (st != DR_OK) {
            snprintf(msg, msg_size, "the interest model refused the user's history");
            return GRPC_STATUS_INTERNAL;
        }
        if (rec->cache)
            dr_state_cache_put(rec->cache, uid, user->len, c->state, ticket);
        /* Counted where the events feed a vector: here and in the cache's steps. */
        dr_metrics_count_skipped(rec->metrics, DR_SKIP_UNKNOWN_ITEM, c->n_unknown_item);
        dr_metrics_count_skipped(rec->metrics, DR_SKIP_UNKNOWN_EVENT_TYPE, c->n_unknown_type);
    }
    dr_metrics_count_skipped(rec->metrics, DR_SKIP_UNREADABLE, c->n_unreadable);
    take_inline(rec, c, inline_events, n_inline, exclude);
    if (c->is_nomem) {
        snprintf(msg, msg_size, "out of memory for the user's history");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }

    enum dr_status st = DR_OK;
    if (c->n_inline > 0 && c->n_window == 0) {
        /* No usable stored event (the history was read: there are inline events), so the
         * state is the initial one and stepping it through the inline events is a replay from
         * scratch: one run, whose input products are one GEMM per chunk, instead of a step per
         * event; the same numbers (interest.h). */
        for (size_t i = 0; i < c->n_inline; i++)
            c->inline_mev[i] = model_event(rec, &c->inline_ev[i]);
        const struct dr_interest_event *evp = c->inline_mev;
        size_t n_ev = c->n_inline;
        if (rec->batcher) {
            st = submit_interest(rec, c, JOB_REPLAY, evp, n_ev, c->state2);
            if (st == DR_ERR_DEADLINE || st == DR_ERR_UNAVAILABLE)
                return not_run(st, msg, msg_size);
        } else {
            st = dr_interest_run(rec->model, 1, &evp, &n_ev, NULL, c->user_vec, rec->dim, c->ws,
                                 c->ws_size);
        }
    } else if (c->n_inline == 0) {
        if (is_hit) {
            const void *states[1] = {c->state};
            st = dr_interest_user_vectors(rec->model, 1, states, c->user_vec, rec->dim, c->ws,
                                          c->ws_size);
        }
    } else if (rec->batcher) {
        /* Newer than the state (the usual case): step a copy, batched with other calls' steps
         * (an older one gives DR_ERR_INVALID_ARG, as below). */
        memcpy(c->state2, c->state, rec->state_size);
        for (size_t i = 0; i < c->n_inline; i++)
            c->inline_mev[i] = model_event(rec, &c->inline_ev[i]);
        st = submit_interest(rec, c, JOB_STEP, c->inline_mev, c->n_inline, c->state2);
        if (st == DR_ERR_DEADLINE || st == DR_ERR_UNAVAILABLE)
            return not_run(st, msg, msg_size);
    } else {
        /* Newer than the state (the usual case): step a copy, O(1) per event. */
        memcpy(c->state2, c->state, rec->state_size);
        void *states[1] = {c->state2};
        for (size_t i = 0; i < c->n_inline && st == DR_OK; i++) {
            struct dr_interest_event ev = model_event(rec, &c->inline_ev[i]);
            st = dr_interest_step(rec->model, 1, &ev, states,
                                  i + 1 == c->n_inline ? c->user_vec : NULL, rec->dim, c->ws,
                                  c->ws_size);
        }
    }
    if (c->n_inline > 0 && st == DR_ERR_INVALID_ARG) {
        /* An inline event older than the user's last one: replay the window merged with
         * the inline events, history first among equal timestamps. */
        for (size_t i = 0; i < c->n_inline; i++) {
            c->window[c->n_window + i] = c->inline_ev[i];
            c->window[c->n_window + i].seq = (uint32_t)(c->n_window + i);
        }
        size_t n = c->n_window + c->n_inline;
        qsort(c->window, n, sizeof *c->window, cmp_uevent);
        st = replay(rec, c, c->window, n, NULL);
        /* The merged order now holds the window: the explanation sources read it. */
        c->n_window = n;
        c->n_inline = 0;
    }
    if (st != DR_OK) {
        snprintf(msg, msg_size, "the interest model refused the user's events: %s",
                 dr_status_str(st));
        return GRPC_STATUS_INTERNAL;
    }
    for (size_t j = 0; j < rec->dim; j++) {
        if (!isfinite(c->user_vec[j])) {
            snprintf(msg, msg_size, "the user vector is not finite");
            return GRPC_STATUS_INTERNAL;
        }
    }
    return GRPC_STATUS_OK;
}

/* ---- scoring ------------------------------------------------------------------------------- */

/* Best first; equal scores to the lower row ("ties go to the lower id", docs/bundle.md). */
static int cmp_scored(const void *pa, const void *pb)
{
    const struct scored *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

static int cmp_row(const void *pa, const void *pb)
{
    const struct scored *a = pa, *b = pb;
    return a->row < b->row ? -1 : a->row > b->row;
}

/* c->results[0 .. n) get their exact scores (fp32 dot products with the user vector). */
static void score_exact(const struct dr_recommender *rec, struct dr_rec_call *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        c->ids[i] = c->results[i].row;
    rec->kern->dot_f32(rec->dim, c->user_vec, dr_bundle_item_vectors(rec->bundle), rec->dim, c->ids,
                       n, c->scores);
    for (size_t i = 0; i < n; i++)
        c->results[i].score = c->scores[i];
}

static ProtobufCBinaryData bytes_of(const char *s, size_t len)
{
    ProtobufCBinaryData b = {.len = len, .data = (uint8_t *)(uintptr_t)s};
    return b;
}

static void fill_item(const struct dr_recommender *rec, struct dr_rec_call *c, size_t i)
{
    size_t len = 0;
    const char *id = dr_bundle_item_id(rec->bundle, c->results[i].row, &len);
    Driftrec__V1__ScoredItem *it = &c->items[i];
    driftrec__v1__scored_item__init(it);
    it->has_item_id = it->has_score = 1;
    it->item_id = bytes_of(id, len);
    it->score = c->results[i].score;
    c->item_ptrs[i] = it;
}

/* The explanation sources: distinct rows of the window and the inline events, each with the
 * type of its latest event. */
static void collect_sources(struct dr_rec_call *c)
{
    c->n_sources = 0;
    for (size_t i = 0; i < c->n_window + c->n_inline; i++) {
        const struct uevent *e = i < c->n_window ? &c->window[i] : &c->inline_ev[i - c->n_window];
        size_t s = 0;
        while (s < c->n_sources && c->sources[s] != e->row)
            s++;
        if (s == c->n_sources)
            c->sources[c->n_sources++] = e->row;
        c->source_types[s] = e->proto_type;
    }
}

static const char *verb_of(int proto_type)
{
    switch (proto_type) {
    case DRIFTREC__V1__EVENT_TYPE__IMPRESSION:
        return "saw";
    case DRIFTREC__V1__EVENT_TYPE__VIEW:
        return "viewed";
    case DRIFTREC__V1__EVENT_TYPE__CLICK:
        return "clicked";
    case DRIFTREC__V1__EVENT_TYPE__CART:
        return "added to your cart";
    case DRIFTREC__V1__EVENT_TYPE__PURCHASE:
        return "bought";
    case DRIFTREC__V1__EVENT_TYPE__REVIEW:
        return "reviewed";
    default:
        return "chose";
    }
}

/* Item i's explanation: the source whose item vector has the largest dot product with it
 * (first on ties).  The bundle has no titles, so the text names the item id. */
static void explain(const struct dr_recommender *rec, struct dr_rec_call *c, size_t i)
{
    if (c->n_sources == 0)
        return;
    const float *vectors = dr_bundle_item_vectors(rec->bundle);
    rec->kern->dot_f32(rec->dim, vectors + (size_t)c->results[i].row * rec->dim, vectors, rec->dim,
                       c->sources, c->n_sources, c->sims);
    size_t best = 0;
    for (size_t s = 1; s < c->n_sources; s++)
        best = c->sims[s] > c->sims[best] ? s : best;
    size_t len = 0;
    const char *id = dr_bundle_item_id(rec->bundle, c->sources[best], &len);
    /* "because you <verb> <id>", cut to the buffer; built with memcpy, as it runs for every
     * item of every Recommend (snprintf's format parsing showed in profiles). */
    char *text = c->text + i * EXPLAIN_BYTES;
    size_t n = 0;
    const char *parts[] = {"because you ", verb_of(c->source_types[best]), " "};
    for (size_t p = 0; p < 3; p++) {
        size_t m = strlen(parts[p]);
        m = m < EXPLAIN_BYTES - n ? m : EXPLAIN_BYTES - n;
        memcpy(text + n, parts[p], m);
        n += m;
    }
    size_t m = len < EXPLAIN_BYTES - n ? len : EXPLAIN_BYTES - n;
    memcpy(text + n, id, m);
    n += m;
    Driftrec__V1__ScoredItem *it = &c->items[i];
    it->has_because_item_id = it->has_explanation = 1;
    it->because_item_id = bytes_of(id, len);
    it->explanation = bytes_of(text, n);
}

/* NOT_FOUND unless the request names no model or this one. */
static grpc_status_code check_model(const struct dr_recommender *rec, bool has_model,
                                    const ProtobufCBinaryData *model, char *msg, size_t msg_size)
{
    const char *name = dr_bundle_name(rec->bundle);
    if (!has_model || model->len == 0 ||
        (model->len == strlen(name) && memcmp(model->data, name, model->len) == 0))
        return GRPC_STATUS_OK;
    snprintf(msg, msg_size, "model \"%.*s\" is not loaded (this instance serves \"%s\")",
             (int)model->len, (const char *)model->data, name);
    return GRPC_STATUS_NOT_FOUND;
}

/* The category number the request names: a category name of the bundle or, when the bundle
 * names none, a decimal number below n_categories. */
static grpc_status_code find_category(const struct dr_recommender *rec,
                                      const ProtobufCBinaryData *want, uint32_t *out, char *msg,
                                      size_t msg_size)
{
    const char *model = dr_bundle_name(rec->bundle);
    if (!dr_bundle_has_categories(rec->bundle)) {
        snprintf(msg, msg_size, "category: model \"%s\" has no item categories", model);
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    size_t n = dr_bundle_n_categories(rec->bundle);
    for (size_t i = 0; i < n; i++) {
        const char *name = dr_bundle_category_name(rec->bundle, i);
        char number[24];
        if (!name) {
            snprintf(number, sizeof number, "%zu", i);
            name = number;
        }
        if (strlen(name) == want->len && memcmp(name, want->data, want->len) == 0) {
            *out = (uint32_t)i;
            return GRPC_STATUS_OK;
        }
    }
    snprintf(msg, msg_size, "category \"%.*s\": not one of model \"%s\"'s %zu categories",
             (int)want->len, (const char *)want->data, model, n);
    return GRPC_STATUS_INVALID_ARGUMENT;
}

/* ---- query text --------------------------------------------------------------------------- */

static double norm2(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * (double)x[i];
    return sqrt(s);
}

/* The query's item-space vector into c->query_vec, as the item tower maps an item's text:
 * W_text . (t / max(|t|, 1e-6)), t the encoder's output for [CLS] pieces [SEP] cut to
 * text_max_len.  *has_pieces is false (and query_vec untouched) for text with no word pieces:
 * training gave such item text a zero vector, so the query adds nothing.  INVALID_ARGUMENT
 * when the tokenizer refuses the text, INTERNAL when the encoder does. */
static grpc_status_code encode_query(const struct dr_recommender *rec, struct dr_rec_call *c,
                                     const char *text, size_t len, bool *has_pieces, char *msg,
                                     size_t msg_size)
{
    struct dr_error err = {0};
    size_t n_ids = 0;
    *has_pieces = false;
    if (dr_tokenizer_encode(rec->tokenizer, text, len, rec->text_max_len, c->query_ids, &n_ids,
                            &err) != DR_OK) {
        snprintf(msg, msg_size, "query_text: %s", err.msg);
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    if (n_ids <= 2) /* [CLS] [SEP] only */
        return GRPC_STATUS_OK;
    enum dr_status st = rec->text_batcher
                            ? dr_text_batcher_encode(rec->text_batcher, 1, c->query_ids, &n_ids,
                                                     c->text_vec, rec->text_dim, c->deadline_ns)
                            : dr_bert_encode(rec->text_model, 1, c->query_ids, &n_ids, c->text_vec,
                                             rec->text_dim, c->text_ws, c->text_ws_size);
    if (st == DR_ERR_DEADLINE) {
        snprintf(msg, msg_size, "deadline expired while waiting for the text encoder");
        return GRPC_STATUS_DEADLINE_EXCEEDED;
    }
    if (st != DR_OK) {
        snprintf(msg, msg_size, "query_text: the text encoder failed: %s", dr_status_str(st));
        return GRPC_STATUS_INTERNAL;
    }
    if (rec->is_text_normalized) {
        /* the trainer's t / clamp_min(|t|, 1e-6) */
        double n = norm2(c->text_vec, rec->text_dim);
        float inv = (float)(1.0 / (n > 1e-6 ? n : 1e-6));
        for (size_t i = 0; i < rec->text_dim; i++)
            c->text_vec[i] *= inv;
    }
    /* q[dim] = W_text[dim x text_dim] . t: one row of A times B transposed */
    rec->kern->gemm_f32_nt(1, rec->dim, rec->text_dim, c->text_vec, rec->text_dim, rec->text_proj,
                           rec->text_dim, NULL, c->query_vec, rec->dim);
    *has_pieces = true;
    return GRPC_STATUS_OK;
}

/* c->user_vec = (1 - w) u + w |u| q / |q|: the query's direction at the user's length, so w
 * weighs direction against direction whatever the scales of u and q; q alone for |u| = 0. */
static void blend_query(const struct dr_recommender *rec, struct dr_rec_call *c)
{
    double nu = norm2(c->user_vec, rec->dim), nq = norm2(c->query_vec, rec->dim);
    if (!(nq > 0))
        return; /* W_text maps this text to zero: nothing to move towards */
    if (nu == 0) {
        memcpy(c->user_vec, c->query_vec, rec->dim * sizeof *c->user_vec);
        return;
    }
    double w = (double)rec->query_weight, scale = w * nu / nq;
    for (size_t j = 0; j < rec->dim; j++)
        c->user_vec[j] =
            (float)((1.0 - w) * (double)c->user_vec[j] + scale * (double)c->query_vec[j]);
}

/* ---- the calls ------------------------------------------------------------------------------ */

grpc_status_code dr_recommender_recommend(struct dr_recommender *rec, struct dr_rec_call *c,
                                          const Driftrec__V1__RecommendRequest *req,
                                          Driftrec__V1__RecommendResponse *resp, char *msg,
                                          size_t msg_size)
{
    grpc_status_code code = check_model(rec, req->has_model, &req->model, msg, msg_size);
    if (code != GRPC_STATUS_OK)
        return code;
    bool has_query = req->has_query_text && req->query_text.len > 0;
    if (has_query && !rec->text_model) {
        /* Without the encoder the projection was trained on, and the projection, there is no
         * honest way from text to the item space. */
        snprintf(msg, msg_size,
                 "query_text: model \"%s\" has no %s, so it cannot map text to items; leave "
                 "query_text empty",
                 dr_bundle_name(rec->bundle),
                 dr_bundle_text_encoder_path(rec->bundle) ? "text projection (text_projection)"
                                                          : "text encoder and text projection");
        return GRPC_STATUS_FAILED_PRECONDITION;
    }
    uint32_t category = 0;
    bool has_category = req->has_category && req->category.len > 0;
    if (has_category &&
        (code = find_category(rec, &req->category, &category, msg, msg_size)) != GRPC_STATUS_OK)
        return code;
    Driftrec__V1__ExcludeMode exclude =
        req->has_exclude ? req->exclude : DRIFTREC__V1__EXCLUDE_MODE__EXCLUDE_HISTORY;
    code = user_vector(rec, c, &req->user_id, req->recent_events, req->n_recent_events, true,
                       exclude, msg, msg_size);
    if (code != GRPC_STATUS_OK)
        return code;
    if (has_query) {
        bool has_pieces = false;
        code = encode_query(rec, c, (const char *)req->query_text.data, req->query_text.len,
                            &has_pieces, msg, msg_size);
        if (code != GRPC_STATUS_OK)
            return code;
        if (has_pieces)
            blend_query(rec, c);
    }

    /* max(k, ef) candidates cost the search nothing more (it keeps ef anyway) and give the
     * exact re-scoring more to choose the best k from. */
    uint64_t search_start = dr_now_ns();
    size_t k = req->has_k ? (size_t)req->k : DEFAULT_K;
    size_t want = k > rec->ef ? k : rec->ef;
    want = want < MAX_SEARCH ? want : MAX_SEARCH;
    struct dr_ann_query_opts q = {
        .ef = rec->ef,
        .exclude = c->exclude,
        .n_exclude = c->n_exclude,
        .categories = has_category ? &category : NULL,
        .n_categories = has_category ? 1 : 0,
    };
    size_t n_out = 0;
    if (dr_ann_search(c->searcher, c->user_vec, want, &q, c->ids, NULL, &n_out) != DR_OK) {
        snprintf(msg, msg_size, "the index refused the query");
        return GRPC_STATUS_INTERNAL;
    }
    for (size_t i = 0; i < n_out; i++)
        c->results[i] = (struct scored){.row = c->ids[i]};
    score_exact(rec, c, n_out);
    qsort(c->results, n_out, sizeof *c->results, cmp_scored);
    size_t n = n_out < k ? n_out : k;
    collect_sources(c);
    for (size_t i = 0; i < n; i++) {
        fill_item(rec, c, i);
        explain(rec, c, i);
    }
    c->timings = (Driftrec__V1__StageTimings)DRIFTREC__V1__STAGE_TIMINGS__INIT;
    c->timings.has_search_us = 1;
    c->timings.search_us = (int64_t)((dr_now_ns() - search_start) / 1000);

    resp->n_items = n;
    resp->items = c->item_ptrs;
    resp->has_model = resp->has_model_version = 1;
    resp->model = bytes_of(dr_bundle_name(rec->bundle), strlen(dr_bundle_name(rec->bundle)));
    resp->model_version =
        bytes_of(dr_bundle_version(rec->bundle), strlen(dr_bundle_version(rec->bundle)));
    if (req->has_request_id) {
        resp->has_request_id = 1;
        resp->request_id = req->request_id;
    }
    resp->timings = &c->timings;
    return GRPC_STATUS_OK;
}

grpc_status_code dr_recommender_rank(struct dr_recommender *rec, struct dr_rec_call *c,
                                     const Driftrec__V1__RankRequest *req,
                                     Driftrec__V1__RankResponse *resp, char *msg, size_t msg_size)
{
    grpc_status_code code = check_model(rec, req->has_model, &req->model, msg, msg_size);
    if (code != GRPC_STATUS_OK)
        return code;
    code = user_vector(rec, c, &req->user_id, req->recent_events, req->n_recent_events, false,
                       DRIFTREC__V1__EXCLUDE_MODE__EXCLUDE_NONE, msg, msg_size);
    if (code != GRPC_STATUS_OK)
        return code;
    uint64_t search_start = dr_now_ns();
    /* Unknown candidates are reported, not fatal: a gateway's candidate list may name items
     * newer than the model.  A candidate given twice is scored once. */
    size_t n_known = 0, n_unknown = 0;
    for (size_t i = 0; i < req->n_candidate_item_ids; i++) {
        const ProtobufCBinaryData *id = &req->candidate_item_ids[i];
        size_t row = 0;
        if (dr_bundle_item_row(rec->bundle, (const char *)id->data, id->len, &row))
            c->results[n_known++] = (struct scored){.row = (uint32_t)row};
        else
            c->unknown[n_unknown++] = *id;
    }
    qsort(c->results, n_known, sizeof *c->results, cmp_row);
    size_t n = 0;
    for (size_t i = 0; i < n_known; i++) {
        if (n == 0 || c->results[n - 1].row != c->results[i].row)
            c->results[n++] = c->results[i];
    }
    score_exact(rec, c, n);
    qsort(c->results, n, sizeof *c->results, cmp_scored);
    for (size_t i = 0; i < n; i++)
        fill_item(rec, c, i);
    c->timings = (Driftrec__V1__StageTimings)DRIFTREC__V1__STAGE_TIMINGS__INIT;
    c->timings.has_search_us = 1;
    c->timings.search_us = (int64_t)((dr_now_ns() - search_start) / 1000);

    resp->n_items = n;
    resp->items = c->item_ptrs;
    resp->n_unknown_item_ids = n_unknown;
    resp->unknown_item_ids = c->unknown;
    resp->has_model = resp->has_model_version = 1;
    resp->model = bytes_of(dr_bundle_name(rec->bundle), strlen(dr_bundle_name(rec->bundle)));
    resp->model_version =
        bytes_of(dr_bundle_version(rec->bundle), strlen(dr_bundle_version(rec->bundle)));
    resp->timings = &c->timings;
    return GRPC_STATUS_OK;
}

/* ---- Ingest and the cache ------------------------------------------------------------------ */

struct ingest_item {
    const struct dr_event *e;
    size_t index; /* in the batch: the store's sequence order among equal timestamps */
};

/* Any total order of user ids will do: it only groups a batch's events by user. */
static int cmp_ingest_user(const struct dr_event *a, const struct dr_event *b)
{
    if (a->user_id_len != b->user_id_len)
        return a->user_id_len < b->user_id_len ? -1 : 1;
    return memcmp(a->user_id, b->user_id, a->user_id_len);
}

static int cmp_ingest(const void *pa, const void *pb)
{
    const struct dr_event *a = ((const struct ingest_item *)pa)->e;
    const struct dr_event *b = ((const struct ingest_item *)pb)->e;
    int c = cmp_ingest_user(a, b);
    if (c != 0)
        return c;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    size_t ia = ((const struct ingest_item *)pa)->index,
           ib = ((const struct ingest_item *)pb)->index;
    return ia < ib ? -1 : ia > ib;
}

struct step_ctx {
    struct dr_recommender *rec;
    const struct ingest_item *items; /* one user's, in the store's order */
    size_t n;
    const bool *is_stored; /* by batch index */
};

/* Advances a cached state by the user's stored events (dr_state_cache_update_fn).  false
 * (drop the state) when the model refuses one: an event older than the state's last. */
static bool step_user(void *ctx, void *state)
{
    struct step_ctx *s = ctx;
    struct dr_recommender *rec = s->rec;
    uint64_t unknown_item = 0, unknown_type = 0;
    bool is_ok = true;
    for (size_t i = 0; i < s->n && is_ok; i++) {
        const struct dr_event *e = s->items[i].e;
        if (!s->is_stored[s->items[i].index])
            continue; /* a duplicate event_id: not applied again */
        struct uevent ev;
        enum usability u =
            classify(rec, e->item_id, e->item_id_len, e->event_type, e->ts, e->has_dwell_s,
                     e->dwell_s, e->has_amount, e->amount, e->has_rating, e->rating, &ev);
        unknown_item += u == UNKNOWN_ITEM;
        unknown_type += u == ROW_ONLY;
        if (u != USABLE)
            continue;
        struct dr_interest_event mev = model_event(rec, &ev);
        void *states[1] = {state};
        is_ok = dr_interest_step(rec->model, 1, &mev, states, NULL, 0, rec->ingest_ws,
                                 rec->ingest_ws_size) == DR_OK;
    }
    dr_metrics_count_skipped(rec->metrics, DR_SKIP_UNKNOWN_ITEM, unknown_item);
    dr_metrics_count_skipped(rec->metrics, DR_SKIP_UNKNOWN_EVENT_TYPE, unknown_type);
    return is_ok;
}

enum dr_status dr_recommender_ingest(struct dr_recommender *rec, const struct dr_event *events,
                                     size_t n, size_t *accepted, size_t *duplicates,
                                     struct dr_error *err)
{
    if (!rec->cache)
        return dr_history_write(rec->history, events, n, accepted, duplicates, NULL, err);
    struct ingest_item *items = malloc((n ? n : 1) * sizeof *items);
    bool *is_stored = malloc(n ? n : 1);
    if (!items || !is_stored) {
        free(items);
        free(is_stored);
        return dr_error_set(err, DR_ERR_NOMEM, "ingest: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        items[i] = (struct ingest_item){.e = &events[i], .index = i};
    qsort(items, n, sizeof *items, cmp_ingest);

    pthread_mutex_lock(&rec->ingest_lock);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || cmp_ingest_user(items[i - 1].e, items[i].e) != 0)
            dr_state_cache_write_begin(rec->cache, items[i].e->user_id, items[i].e->user_id_len);
    }
    enum dr_status st =
        dr_history_write(rec->history, events, n, accepted, duplicates, is_stored, err);
    for (size_t first = 0, end; first < n; first = end) {
        end = first + 1;
        while (end < n && cmp_ingest_user(items[first].e, items[end].e) == 0)
            end++;
        struct step_ctx ctx = {
            .rec = rec, .items = items + first, .n = end - first, .is_stored = is_stored};
        dr_state_cache_write_end(rec->cache, items[first].e->user_id, items[first].e->user_id_len,
                                 st == DR_OK ? step_user : NULL, &ctx);
    }
    pthread_mutex_unlock(&rec->ingest_lock);
    free(items);
    free(is_stored);
    return st;
}

void dr_recommender_cache_stats(struct dr_recommender *rec, struct dr_state_cache_stats *out)
{
    if (rec->cache)
        dr_state_cache_get_stats(rec->cache, out);
    else
        *out = (struct dr_state_cache_stats){0};
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

const struct dr_bundle *dr_recommender_bundle(const struct dr_recommender *rec)
{
    return rec->bundle;
}

/* The bundle's text encoder and its vocabulary, for query text; only with a text projection
 * (without one the encoder's vectors have no way into the item space). */
static enum dr_status load_query_encoder(struct dr_recommender *rec, struct dr_error *err)
{
    rec->text_proj = dr_bundle_text_projection(rec->bundle, &rec->text_dim);
    if (!rec->text_proj)
        return DR_OK;
    const char *path = dr_bundle_text_encoder_path(rec->bundle);
    enum dr_status st = dr_bert_load(path, NULL, &rec->text_model, err);
    if (st != DR_OK)
        return st;
    /* The bundle's loader checked text_dim against the manifest; this is the loaded model. */
    if (dr_bert_output_dim(rec->text_model) != rec->text_dim)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: outputs %zu values, text_projection wants %zu",
                            path, dr_bert_output_dim(rec->text_model), rec->text_dim);
    const char *vocab = dr_bert_vocab_path(rec->text_model);
    if (!vocab)
        return dr_error_set(err, DR_ERR_FORMAT, "%s: the manifest names no vocabulary", path);
    st = dr_tokenizer_load(vocab, dr_bert_vocab_lower_case(rec->text_model), &rec->tokenizer, err);
    if (st != DR_OK)
        return st;
    /* Item text was cut to preprocessing.text.max_len at export: a query is cut the same way. */
    size_t max_len = dr_bundle_text_max_len(rec->bundle);
    max_len = max_len ? max_len : DR_TEXT_MAX_TOKENS;
    size_t positions = dr_bert_max_len(rec->text_model);
    rec->text_max_len = max_len < positions ? max_len : positions;
    rec->is_text_normalized = dr_bundle_text_projection_normalizes(rec->bundle);
    return DR_OK;
}

static void slots_destroy(struct dr_recommender *rec)
{
    for (size_t i = 0; rec->slots && i < rec->n_slots; i++) {
        struct interest_slot *s = &rec->slots[i];
        dr_aligned_free(s->ws);
        dr_aligned_free(s->out);
        free(s->events);
        free(s->step_events);
        free(s->n_events);
        free(s->states);
        free(s->order);
        free(s->is_ok);
    }
    free(rec->slots);
    rec->slots = NULL;
}

/* The interest model's batcher and its slots' scratch; the query encoder's batcher. */
static enum dr_status create_batchers(struct dr_recommender *rec,
                                      const struct dr_recommender_opts *opts)
{
    size_t nb = opts->max_batch, n_slots = opts->n_batch_slots ? opts->n_batch_slots : 1;
    rec->max_batch = nb;
    rec->slots = calloc(n_slots, sizeof *rec->slots);
    if (!rec->slots)
        return DR_ERR_NOMEM;
    rec->n_slots = n_slots;
    for (size_t i = 0; i < n_slots; i++) {
        struct interest_slot *s = &rec->slots[i];
        s->ws_size = dr_interest_workspace_size(rec->model, nb);
        s->ws = dr_aligned_alloc(s->ws_size);
        s->out = dr_aligned_alloc(nb * rec->dim * sizeof(float));
        s->events = calloc(nb, sizeof *s->events);
        s->step_events = calloc(nb, sizeof *s->step_events);
        s->n_events = calloc(nb, sizeof *s->n_events);
        s->states = calloc(nb, sizeof *s->states);
        s->order = calloc(2 * nb, sizeof *s->order);
        s->is_ok = calloc(nb, sizeof *s->is_ok);
        if (!s->ws || !s->out || !s->events || !s->step_events || !s->n_events || !s->states ||
            !s->order || !s->is_ok)
            return DR_ERR_NOMEM;
    }
    struct dr_batcher_opts bo = {
        .max_batch = nb, .max_delay_ns = opts->max_delay_ns, .n_slots = n_slots};
    enum dr_status st = dr_batcher_create(&bo, run_interest_batch, rec, &rec->batcher);
    if (st == DR_OK && rec->text_model) {
        struct dr_text_batcher_opts to = {.max_batch = nb,
                                          .max_delay_ns = opts->max_delay_ns,
                                          .n_slots = n_slots,
                                          .max_len = rec->text_max_len};
        st = dr_text_batcher_create(rec->text_model, &to, rec->metrics, &rec->text_batcher);
    }
    return st;
}

enum dr_status dr_recommender_create(const struct dr_bundle *bundle, struct dr_history *history,
                                     struct dr_metrics *metrics,
                                     const struct dr_recommender_opts *opts,
                                     struct dr_recommender **out, struct dr_error *err)
{
    size_t cache_users = opts->cache_users, n_warmup = opts->n_warmup;
    struct dr_recommender *rec = calloc(1, sizeof *rec);
    if (!rec)
        return dr_error_set(err, DR_ERR_NOMEM, "recommender: out of memory");
    rec->bundle = bundle;
    rec->model = dr_bundle_interest(bundle);
    rec->kern = dr_kernels_get();
    rec->history = history;
    rec->metrics = metrics;
    rec->dim = dr_bundle_item_dim(bundle);
    rec->n_items = dr_bundle_n_items(bundle);
    rec->max_events = dr_interest_max_events(rec->model);
    rec->ef = dr_bundle_ef_search(bundle);
    rec->state_size = dr_interest_state_size(rec->model);
    rec->clip_dwell_s = dr_bundle_clip_dwell_s(bundle);
    rec->clip_amount = dr_bundle_clip_amount(bundle);
    rec->query_weight = opts->query_weight;
    /* The proto's types by name ("IMPRESSION" is the bundle's "impression"). */
    static const char *const names[N_PROTO_TYPES] = {"",     "impression", "view",  "click",
                                                     "cart", "purchase",   "review"};
    rec->model_type[0] = -1;
    for (int t = 1; t < N_PROTO_TYPES; t++) {
        if (!dr_bundle_event_type(bundle, names[t], &rec->model_type[t]))
            rec->model_type[t] = -1;
    }
    pthread_mutex_init(&rec->ingest_lock, NULL);
    pthread_mutex_init(&rec->pool_lock, NULL);
    rec->ingest_ws_size = dr_interest_workspace_size(rec->model, 1);
    rec->ingest_ws = dr_aligned_alloc(rec->ingest_ws_size);
    enum dr_status st = rec->ingest_ws ? DR_OK : DR_ERR_NOMEM;
    if (st == DR_OK && cache_users > 0)
        st = dr_state_cache_create(cache_users, rec->state_size, &rec->cache);
    if (st != DR_OK) {
        dr_recommender_destroy(rec);
        return dr_error_set(err, st, "recommender: out of memory");
    }
    if ((st = load_query_encoder(rec, err)) != DR_OK) {
        dr_recommender_destroy(rec);
        return st;
    }
    if (opts->max_batch > 1 && (st = create_batchers(rec, opts)) != DR_OK) {
        dr_recommender_destroy(rec);
        return dr_error_set(err, st, "recommender: the batcher: %s", dr_status_str(st));
    }

    /* Warm-up: the empty-history vector and its search, then n_warmup searches from item
     * vectors spread over the bundle, so the first clients do not pay for page faults in the
     * model, the vectors and the index (mapped, and cold after a deploy). */
    struct dr_rec_call *c = dr_recommender_call_begin(rec);
    if (!c) {
        dr_recommender_destroy(rec);
        return dr_error_set(err, DR_ERR_NOMEM, "recommender: out of memory");
    }
    dr_interest_state_init(rec->model, c->state);
    const void *states[1] = {c->state};
    size_t n_out = 0;
    st = dr_interest_user_vectors(rec->model, 1, states, c->user_vec, rec->dim, c->ws, c->ws_size);
    if (st == DR_OK)
        st = dr_ann_search(c->searcher, c->user_vec, DEFAULT_K,
                           &(struct dr_ann_query_opts){.ef = rec->ef}, c->ids, NULL, &n_out);
    if (st == DR_OK && rec->text_model) { /* the encoder's pages too */
        char msg[200];
        bool has_pieces = false;
        static const char warm_text[] = "warm up the query encoder";
        if (encode_query(rec, c, warm_text, sizeof warm_text - 1, &has_pieces, msg, sizeof msg) !=
            GRPC_STATUS_OK)
            st = DR_ERR_INTERNAL;
    }
    for (size_t i = 0; i < n_warmup && st == DR_OK; i++) {
        size_t row = (size_t)((uint64_t)i * rec->n_items / n_warmup);
        st = dr_ann_search(c->searcher, dr_bundle_item_vector(bundle, row), DEFAULT_K,
                           &(struct dr_ann_query_opts){.ef = rec->ef}, c->ids, NULL, &n_out);
    }
    dr_recommender_call_end(rec, c);
    if (st != DR_OK) {
        dr_recommender_destroy(rec);
        return dr_error_set(err, st, "recommender: the warm-up query failed: %s",
                            dr_status_str(st));
    }
    *out = rec;
    return DR_OK;
}

void dr_recommender_destroy(struct dr_recommender *rec)
{
    if (!rec)
        return;
    for (struct dr_rec_call *c = rec->free_calls, *next; c; c = next) {
        next = c->next;
        call_destroy(c);
    }
    dr_text_batcher_destroy(rec->text_batcher);
    dr_batcher_destroy(rec->batcher);
    slots_destroy(rec);
    dr_state_cache_destroy(rec->cache);
    dr_tokenizer_destroy(rec->tokenizer);
    dr_bert_destroy(rec->text_model);
    dr_aligned_free(rec->ingest_ws);
    pthread_mutex_destroy(&rec->pool_lock);
    pthread_mutex_destroy(&rec->ingest_lock);
    free(rec);
}
