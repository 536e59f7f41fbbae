/* server.h: the gRPC C-core server: completion-queue pollers, request decoding and
 * validation, a bounded work pool for handlers, health, and graceful shutdown. */
#ifndef DR_SERVER_H
#define DR_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"

struct dr_bundle;

struct dr_server_opts {
    const char *listen_addr;  /* "127.0.0.1:50051" */
    const char *history_path; /* LMDB directory (created if missing) */
    size_t history_map_bytes; /* 0 = 1 GiB */
    int n_pollers;            /* completion-queue threads (I/O and decoding only) */
    int n_workers;            /* handler threads */
    size_t queue_capacity;    /* work queue slots; full = RESOURCE_EXHAUSTED */
    int max_message_bytes;    /* larger requests get RESOURCE_EXHAUSTED from gRPC */
    const char *variant;      /* A/B arm reported in replies ("" = none) */
    int drain_grace_ms;       /* in-flight calls get this long at shutdown */
    const char *metrics_addr; /* Prometheus /metrics on host:port; NULL or "" = off */
    /* BERT model directory for Embed; NULL or "" = none.  Embed's only: Recommend's query text
     * uses the bundle's own text encoder, the one its text projection was trained on. */
    const char *text_model;
    /* A recommendation model will follow (dr_server_set_model): until then Recommend and Rank
     * answer UNAVAILABLE (retry), not FAILED_PRECONDITION (no model on this instance). */
    bool is_model_expected;
    size_t state_cache_users; /* users whose interest state is cached; 0 = no cache */
    size_t warmup_queries;    /* index searches the model's warm-up runs (recommend.h) */
    /* Recommend's impressions buffered for the event log's group-commit writer (with a bundle);
     * 0 = impressions are not logged. */
    size_t impression_queue;
    /* The key that user ids in log lines are hashed with (log.h): a file of hex digits, made
     * (mode 0600) when absent.  NULL or "": <history_path>/log-key. */
    const char *log_key_path;
    /* At shutdown, health answers NOT_SERVING this long while calls are still served. */
    int drain_delay_ms;
    /* w in [0, 1] of Recommend's query-text blend (recommend.h): 0 ignores the query, 1 ranks
     * by it alone. */
    float query_weight;
    /* A client connection is sent GOAWAY after about this long (gRPC adds +-10% jitter), so
     * clients reconnect and a load balancer that balances connections, not calls, spreads them
     * over replicas added since; 0 = never.  Its calls then get the grace period to finish. */
    int max_connection_age_ms;
    int max_connection_age_grace_ms; /* 0 = gRPC's default (unbounded) */
};

void dr_server_opts_default(struct dr_server_opts *opts);

struct dr_server;

/* Binds, starts pollers and workers; the server serves until dr_server_shutdown.  Health
 * answers at once: "" SERVING (alive), driftrec.v1.Recommender NOT_SERVING until a model is
 * set. */
enum dr_status dr_server_start(const struct dr_server_opts *opts, struct dr_server **out,
                               struct dr_error *err);

/* Serves bundle for Recommend and Rank from now on: builds the recommender and runs its
 * warm-up, starts the impression log, then publishes them at once; from then on health says
 * SERVING for driftrec.v1.Recommender.  Once per server, from one thread (main, while the
 * server already serves health and Ingest).  bundle: borrowed, kept by the caller until
 * dr_server_shutdown has returned.  On failure nothing changes. */
enum dr_status dr_server_set_model(struct dr_server *srv, const struct dr_bundle *bundle,
                                   struct dr_error *err);
/* The port /metrics is served on (0 if off). */
int dr_server_metrics_port(const struct dr_server *srv);

/* Health turns NOT_SERVING (and calls are still served for drain_delay_ms), then new calls
 * are refused, in-flight calls get the grace period, queued impressions are committed, and
 * everything is released.  NULL is a no-op. */
void dr_server_shutdown(struct dr_server *srv);

#endif /* DR_SERVER_H */
