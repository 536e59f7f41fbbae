/* server.h: the gRPC C-core server: completion-queue pollers, request decoding and
 * validation, a bounded work pool for handlers, health, and graceful shutdown. */
#ifndef DR_SERVER_H
#define DR_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

struct dr_auth;
struct dr_bundle;
struct dr_model_source;

struct dr_server_opts {
    const char *listen_addr; /* "127.0.0.1:50051" */
    /* LMDB directory (created if missing), or a Redis URL: redis://HOST:PORT[/DB] or
     * unix:///PATH (history.h) */
    const char *history_path;
    size_t history_map_bytes;    /* LMDB: 0 = 1 GiB */
    const char *history_prefix;  /* Redis: key namespace; NULL or "" = "driftrec:" */
    int history_timeout_ms;      /* Redis: connect and command timeout; 0 = 2000 */
    bool history_allow_volatile; /* Redis: serve (with a warning) when Redis would lose writes */
    bool allow_step_time;        /* serve bundles trained on order-only data (time_unit "steps") */
    int history_wait_replicas;   /* Redis: replicas each write waits for (WAIT); 0 = none */
    int n_pollers;               /* completion-queue threads (I/O and decoding only) */
    int n_workers;               /* handler threads */
    size_t queue_capacity;       /* work queue slots; full = RESOURCE_EXHAUSTED */
    /* Refuse (RESOURCE_EXHAUSTED) a call the queue's expected wait would make miss its
     * deadline, instead of queueing it (server.c, admit). */
    bool admit_by_deadline;
    int max_message_bytes; /* larger requests get RESOURCE_EXHAUSTED from gRPC */
    const char *variant;   /* A/B arm reported in replies ("" = none) */
    /* Recommend, Rank and Ingest without an x-user-id header are refused (behind an A/B proxy
     * that splits by it); with one, it must match the message's user id either way. */
    bool is_user_header_required;
    int drain_grace_ms;       /* in-flight calls get this long at shutdown */
    const char *metrics_addr; /* Prometheus /metrics on host:port; NULL or "" = off */
    /* BERT model directory for Embed; NULL or "" = none.  Embed's only: Recommend's query text
     * uses the bundle's own text encoder, the one its text projection was trained on. */
    const char *text_model;
    /* Where the recommendation model comes from (model_source.h; borrowed, kept by the
     * caller until dr_server_shutdown has returned); NULL: none. */
    const struct dr_model_source *model_source;
    /* A recommendation model will follow (dr_server_load_model): until then Recommend and Rank
     * answer UNAVAILABLE (retry), not FAILED_PRECONDITION (no model on this instance). */
    bool is_model_expected;
    size_t state_cache_users; /* users whose interest state is cached; 0 = no cache */
    size_t warmup_queries;    /* index searches the model's warm-up runs (recommend.h) */
    /* Recommend's impressions buffered for the event log's group-commit writer (with a bundle);
     * 0 = impressions are not logged. */
    size_t impression_queue;
    /* The key that user ids in log lines are hashed with (log.h): a file of hex digits, made
     * (mode 0600) when absent.  NULL or "": <history_path>/log-key (required with a Redis
     * history: every replica must hash with the same key). */
    const char *log_key_path;
    /* At shutdown, health answers NOT_SERVING this long while calls are still served. */
    int drain_delay_ms;
    /* w in [0, 1] of Recommend's query-text blend (recommend.h): 0 ignores the query, 1 ranks
     * by it alone. */
    float query_weight;
    /* TLS and tokens (auth.h): borrowed, kept by the caller until dr_server_shutdown has
     * returned; NULL = plaintext, no tokens, Admin disabled. */
    const struct dr_auth *auth;
    /* A client connection is sent GOAWAY after about this long (gRPC adds +-10% jitter), so
     * clients reconnect and a load balancer that balances connections, not calls, spreads them
     * over replicas added since; 0 = never.  Its calls then get the grace period to finish. */
    int max_connection_age_ms;
    int max_connection_age_grace_ms; /* 0 = gRPC's default (unbounded) */
    /* The batcher (batcher.h): users or texts per batch of model work across calls (1 = no
     * batcher: each call runs its own), and how long a batch may wait for more, from its
     * oldest item (0: it takes what is queued). */
    size_t max_batch;
    uint64_t max_queue_delay_us;
};

/* No batching by default: on 2 shared cores it measured slower than unbatched calls
 * (docs/architecture.md, "The batcher"). */
#define DR_MAX_BATCH_DEFAULT 1

void dr_server_opts_default(struct dr_server_opts *opts);

struct dr_server;

/* Binds, starts pollers and workers; the server serves until dr_server_shutdown.  Health
 * answers at once: "" SERVING (alive), driftrec.v1.Recommender NOT_SERVING until a model is
 * set. */
enum dr_status dr_server_start(const struct dr_server_opts *opts, struct dr_server **out,
                               struct dr_error *err);

/* Loads the bundle in dir (docs/bundle.md) and serves it for Recommend and Rank: the bundle
 * is checked, its recommender built and warmed up beside the model being served (calls keep
 * flowing), then published with one pointer swap; the model it replaces is freed when the
 * last call using it ends, and its user-state cache goes with it.  From the first model on,
 * health says SERVING for driftrec.v1.Recommender.  Loads run one at a time; any thread.
 * On failure the served model (if any) stays, the failure is logged with the reason and
 * counted (driftrec_model_loads_total{result="failed"}), and err says why. */
enum dr_status dr_server_load_model(struct dr_server *srv, const char *dir, struct dr_error *err);
/* Resolves opts.model_source now (the bundle directory, or the registry's highest version)
 * and loads it as dr_server_load_model does: at the start, SIGHUP and Admin.Reload. */
enum dr_status dr_server_reload(struct dr_server *srv, struct dr_error *err);
/* The directory the served model was loaded from; false without a model. */
bool dr_server_model_dir(struct dr_server *srv, char *dir, size_t size);
/* The port /metrics is served on (0 if off). */
int dr_server_metrics_port(const struct dr_server *srv);

/* Health turns NOT_SERVING (and calls are still served for drain_delay_ms), then new calls
 * are refused, in-flight calls get the grace period, queued impressions are committed, and
 * everything is released.  Returns the number of calls still unanswered when the grace
 * period ended (cancelled: the drain cut them; 0 for a clean drain).  NULL is a no-op. */
long dr_server_shutdown(struct dr_server *srv);

#endif /* DR_SERVER_H */
