/* recommend.h: Recommend and Rank served from a model bundle (docs/api.md says what a client
 * sees, docs/architecture.md how a call flows).
 *
 * A user's vector comes from the bundle's interest model over the user's events: from the
 * cached state (state_cache.h) when there is one, else by replaying the last max_events
 * events of the history store whose items and event types the model knows (that state is
 * then cached).  A request's inline recent_events are applied on top, for that request only.
 * Recommend searches the bundle's HNSW index with the vector (ef from the bundle; the user's
 * history excluded by default; an optional category), re-scores the candidates exactly (fp32
 * dot products) and returns the best k; Rank scores the given candidates exactly.  Ingest
 * goes through dr_recommender_ingest so that cached states advance with each stored event.
 *
 * Query text (Recommend's query_text), a heuristic the model was never trained for: with a
 * bundle that has a text encoder and a text projection, the text is encoded by the bundle's
 * encoder (the one the projection was trained on), L2-normalised and projected into item
 * space (q), as the item tower maps an item's text; then the user vector u becomes
 * (1 - w) u + w |u| q / |q|, w the query weight (q alone for |u| = 0), and is searched as
 * usual.  Without the encoder or the projection a query gets FAILED_PRECONDITION.
 *
 * Threads: any number of workers call Recommend, Rank and Ingest at once, each with its own
 * struct dr_rec_call (buffers, index searcher, model workspace), taken from and returned to
 * a pool.  The bundle is read-only; the cache locks per shard; Ingest writes one at a time.
 */
#ifndef DR_RECOMMEND_H
#define DR_RECOMMEND_H

#include <grpc/status.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "driftrec.pb-c.h"
#include "history.h"
#include "metrics.h"
#include "state_cache.h"

#define DR_STATE_CACHE_DEFAULT_USERS 100000

struct dr_recommender;

#define DR_WARMUP_DEFAULT_QUERIES 100
#define DR_QUERY_WEIGHT_DEFAULT   0.5f
/* Tokens (with [CLS] and [SEP]) a text is cut to by Embed, and by a query when the bundle's
 * preprocessing.text.max_len does not say; never more than the encoder's positions. */
#define DR_TEXT_MAX_TOKENS 128

struct dr_recommender_opts {
    size_t cache_users; /* the state cache's capacity in users (0: no cache, every call replays) */
    size_t n_warmup;    /* index searches the warm-up runs */
    float query_weight; /* w of the query-text blend, in [0, 1] */
    /* The batcher (batcher.h): users (and query texts) per batch of model work, 1 = none (each
     * call runs its own); the delay from the oldest queued item; batches running at once. */
    size_t max_batch;
    uint64_t max_delay_ns;
    size_t n_batch_slots;
};

/* bundle, history, metrics (may be NULL): borrowed, they must outlive the recommender.
 * opts: borrowed, read here only.  When the bundle has a text encoder and a text projection,
 * loads that encoder and its vocabulary for query text (a failure fails the create).
 * Warms up before returning: the empty-history user vector and its index search, a query
 * encoding when there is an encoder, then n_warmup searches with item vectors spread over
 * the bundle as queries, so the first clients do not pay for page faults in the models, the
 * vectors and the index.  *out: returns owned (free with dr_recommender_destroy). */
enum dr_status dr_recommender_create(const struct dr_bundle *bundle, struct dr_history *history,
                                     struct dr_metrics *metrics,
                                     const struct dr_recommender_opts *opts,
                                     struct dr_recommender **out, struct dr_error *err);
void dr_recommender_destroy(struct dr_recommender *rec); /* NULL is a no-op */

/* The bundle it serves (borrowed from the creator). */
const struct dr_bundle *dr_recommender_bundle(const struct dr_recommender *rec);

/* One call's scratch.  _begin returns one from the pool (NULL: out of memory); _end returns it.
 * A response filled through a scratch points into it (and into the request and the bundle):
 * pack the response before _end. */
struct dr_rec_call;
struct dr_rec_call *dr_recommender_call_begin(struct dr_recommender *rec);
void dr_recommender_call_end(struct dr_recommender *rec, struct dr_rec_call *call);
/* The call's deadline (dr_now_ns clock; 0, the default, = none): work still waiting in the
 * batcher when it passes is dropped, and the call answers DEADLINE_EXCEEDED (counted in
 * driftrec_deadline_dropped_total). */
void dr_recommender_call_set_deadline(struct dr_rec_call *call, uint64_t deadline_ns);

/* The request has passed dr_validate_request.  GRPC_STATUS_OK with resp filled (items, model,
 * model_version, request_id, timings.search_us; the caller adds the variant and the other
 * timings), or another status with msg set ("category \"x\": not one of the model's
 * categories").  Returns a gRPC status rather than a dr_status because the answers include
 * NOT_FOUND (another model) and FAILED_PRECONDITION (query_text without a text encoder and
 * projection in the bundle), which dr_status has no words for.
 * req, resp: borrowed. */
grpc_status_code dr_recommender_recommend(struct dr_recommender *rec, struct dr_rec_call *call,
                                          const Driftrec__V1__RecommendRequest *req,
                                          Driftrec__V1__RecommendResponse *resp, char *msg,
                                          size_t msg_size);
grpc_status_code dr_recommender_rank(struct dr_recommender *rec, struct dr_rec_call *call,
                                     const Driftrec__V1__RankRequest *req,
                                     Driftrec__V1__RankResponse *resp, char *msg, size_t msg_size);

/* dr_history_write (same arguments and results) plus the cache: every stored event of a
 * cached user advances that user's state (dr_interest_step), in the store's order; an event
 * older than the state drops it (the next call rebuilds it from the store). */
enum dr_status dr_recommender_ingest(struct dr_recommender *rec, const struct dr_event *events,
                                     size_t n, size_t *accepted, size_t *duplicates,
                                     struct dr_error *err);

/* The cache's counters (all zero, capacity 0, without a cache). */
void dr_recommender_cache_stats(struct dr_recommender *rec, struct dr_state_cache_stats *out);

#endif /* DR_RECOMMEND_H */
