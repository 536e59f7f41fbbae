/* metrics.h: counters and histograms of the request path, served in Prometheus text
 * format on an HTTP port (libmicrohttpd).
 *
 * Recording is lock-free (relaxed atomics: each value is read on its own, no ordering
 * with other memory is implied); the HTTP thread formats a snapshot on each scrape.
 */
#ifndef DR_METRICS_H
#define DR_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "impression_log.h"
#include "state_cache.h"

enum dr_metric_method {
    DR_METRIC_RECOMMEND,
    DR_METRIC_RANK,
    DR_METRIC_EMBED,
    DR_METRIC_INGEST,
    DR_METRIC_GET_MODEL,
    DR_METRIC_HEALTH,
    DR_METRIC_ADMIN_GET_STATUS,
    DR_METRIC_ADMIN_RELOAD,
    DR_METRIC_UNKNOWN,
    DR_METRIC_METHOD_COUNT
};

#define DR_METRIC_STATUS_COUNT 17 /* gRPC status codes 0..16 */

enum dr_metric_hist { DR_HIST_QUEUE, DR_HIST_COMPUTE, DR_HIST_E2E, DR_HIST_COUNT };

/* The models whose work the batcher groups across calls (batcher.h). */
enum dr_metric_model { DR_METRIC_MODEL_INTEREST, DR_METRIC_MODEL_BERT, DR_METRIC_MODEL_COUNT };

/* Why an event was left out of a user vector. */
enum dr_metric_skip {
    DR_SKIP_UNKNOWN_ITEM,       /* its item is not in the model's items */
    DR_SKIP_UNKNOWN_EVENT_TYPE, /* its type is not one of the model's event types */
    DR_SKIP_UNREADABLE,         /* the stored record does not decode (damage) */
    DR_SKIP_COUNT
};

struct dr_metrics;

/* "Recommend", ... "AdminGetStatus", "unknown"; "OK", "INVALID_ARGUMENT", ... (UNKNOWN out of
 * range). */
const char *dr_metrics_method_name(enum dr_metric_method method);
const char *dr_metrics_status_name(int status);

/* labels: variant (may be ""), kernel ISA and model version for the info gauges. */
enum dr_status dr_metrics_create(const char *variant, const char *kernel_isa,
                                 struct dr_metrics **out);
void dr_metrics_destroy(struct dr_metrics *m); /* stops the HTTP server too; NULL no-op */

void dr_metrics_count_request(struct dr_metrics *m, enum dr_metric_method method, int status);
void dr_metrics_observe_ns(struct dr_metrics *m, enum dr_metric_hist hist,
                           enum dr_metric_method method, uint64_t ns);
/* A call dropped before compute because its deadline had passed: on_arrival when it had
 * already passed as the call arrived (the client, or the way here, took it all), else in the
 * work queue. */
void dr_metrics_count_deadline_drop(struct dr_metrics *m, bool on_arrival);
/* One batch of n items (users or texts) run by the batcher (driftrec_batch_size), and the
 * time one item waited in the batcher before its batch started (driftrec_batch_wait_seconds). */
void dr_metrics_observe_batch(struct dr_metrics *m, enum dr_metric_model model, size_t n);
void dr_metrics_observe_batch_wait_ns(struct dr_metrics *m, enum dr_metric_model model,
                                      uint64_t ns);
/* Why a call was refused with RESOURCE_EXHAUSTED before it was queued. */
enum dr_metric_refusal { DR_REFUSED_QUEUE_FULL, DR_REFUSED_EXPECTED_WAIT, DR_REFUSED_COUNT };
void dr_metrics_count_refusal(struct dr_metrics *m, enum dr_metric_refusal reason);
/* A recommendation model load (at start or a reload) that succeeded or failed. */
void dr_metrics_count_model_load(struct dr_metrics *m, bool ok);
/* A call whose x-ab-variant header names another arm than this instance's. */
void dr_metrics_count_misrouted(struct dr_metrics *m);
/* A gauge read at scrape time (e.g. the work queue's depth). */
void dr_metrics_set_queue_depth_fn(struct dr_metrics *m, size_t (*fn)(void *), void *ctx);
/* Requests queued or being handled, read at scrape time (driftrec_in_flight_requests). */
void dr_metrics_set_in_flight_fn(struct dr_metrics *m, size_t (*fn)(void *), void *ctx);
/* The info gauge's model; any time, any thread (a model may be loaded after the start). */
void dr_metrics_set_model(struct dr_metrics *m, const char *name, const char *version);
void dr_metrics_count_skipped(struct dr_metrics *m, enum dr_metric_skip reason, uint64_t n);
/* The history store's backend ("lmdb", "redis") and whether it is durable (history.h);
 * before dr_metrics_listen. */
void dr_metrics_set_history(struct dr_metrics *m, const char *backend, bool is_durable);
/* The user-state cache's counters, read at scrape time through fn(ctx, out); fn returns
 * false while there are none to show (no model yet, or no cache).  Set before
 * dr_metrics_listen; fn is called from the HTTP thread. */
void dr_metrics_set_cache_fn(struct dr_metrics *m,
                             bool (*fn)(void *ctx, struct dr_state_cache_stats *out), void *ctx);

/* The impression log's counters, likewise. */
void dr_metrics_set_impressions_fn(struct dr_metrics *m,
                                   bool (*fn)(void *ctx, struct dr_impression_log_stats *out),
                                   void *ctx);

/* Prometheus text exposition of the current values; returns owned (free()). */
char *dr_metrics_render(struct dr_metrics *m);

/* Serves GET /metrics on host:port ("127.0.0.1:9090"); port 0 picks a free one.
 * *bound_port receives the port in use. */
enum dr_status dr_metrics_listen(struct dr_metrics *m, const char *addr, int *bound_port,
                                 struct dr_error *err);

#endif /* DR_METRICS_H */
