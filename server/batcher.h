/* batcher.h: model work grouped across concurrent calls (docs/architecture.md, "The batcher").
 *
 * A worker hands the batcher its items (one per user for the interest model, one per text for
 * BERT) and blocks until each has a status.  Items of one bucket (a sequence-length band the
 * caller picks, so one long sequence does not slow a batch of short ones) run together, up to
 * max_batch items and max_cost cost units (tokens for BERT) per batch, through the run
 * callback.
 *
 * Leader/follower, no model thread: a waiting worker whose items are still queued, when
 * fewer than n_slots batches are running, becomes the leader of the next batch (the bucket of
 * the oldest queued item, or a full bucket), runs it on its own thread and wakes the
 * followers.  On a few CPU cores a dedicated model thread would add two context switches per
 * call and serialise the model on one core while the workers wait; here the model runs on the
 * workers that are blocked anyway, at most n_slots batches at once (the cores), and a batch
 * forms from whatever queued while the slots were busy.  With max_delay_ns 0 (the default) a
 * leader takes what is queued at that moment and never waits; with max_delay_ns D > 0 it
 * waits until D has passed since the OLDEST queued item was submitted, unless a bucket is
 * full first.
 *
 * Deadlines: an item whose deadline passed while it was queued is dropped when its batch
 * forms (status DR_ERR_DEADLINE, never given to run).  Shutdown stops the delay (what is
 * queued runs at once) and refuses new items with DR_ERR_UNAVAILABLE.
 *
 * Threads: any number of callers; one mutex ("batcher") guards the queue, never held while
 * run executes.
 */
#ifndef DR_BATCHER_H
#define DR_BATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define DR_BATCH_N_BUCKETS 16
struct dr__batch_waiter;
#define DR_BATCH_MAX_SLOTS 64

/* One unit of work.  The caller sets bucket, cost, deadline_ns and job before
 * dr_batcher_run; the batcher sets status, wait_ns and batch_len. */
struct dr_batch_item {
    size_t bucket;        /* < DR_BATCH_N_BUCKETS; only items of one bucket share a batch */
    size_t cost;          /* counted against max_cost (e.g. tokens); 0 counts as 1 */
    uint64_t deadline_ns; /* dr_now_ns clock; 0 = none */
    void *job;            /* the caller's, for run (borrowed) */
    enum dr_status status;
    uint64_t wait_ns; /* from submission to its batch's start (or its drop) */
    size_t batch_len; /* items in the batch it ran in (0 if it did not run) */
    /* the batcher's */
    struct dr_batch_item *next;
    struct dr__batch_waiter *waiter; /* the call that submitted it */
    uint64_t submitted_ns;
    int phase;
};

/* Runs items[0 .. n) as one batch on the calling (leader) thread, with the scratch of slot
 * (0 .. n_slots - 1; one batch per slot at a time) and sets each item's status. */
typedef void (*dr_batch_fn)(void *ctx, size_t slot, struct dr_batch_item *const *items, size_t n);

struct dr_batcher_opts {
    size_t max_batch;      /* items per batch, >= 1 */
    size_t max_cost;       /* cost per batch (0: no limit); an item over it runs alone */
    uint64_t max_delay_ns; /* 0: a batch takes what is queued and goes at once */
    size_t n_slots;        /* batches running at once, 1 .. DR_BATCH_MAX_SLOTS */
};

struct dr_batcher_stats {
    uint64_t n_batches, n_items_run, n_deadline_dropped;
    size_t largest_batch;
    size_t n_queued; /* now */
};

struct dr_batcher;

/* run, ctx: borrowed, outlive the batcher.  *out: returns owned (free with
 * dr_batcher_destroy).  DR_ERR_INVALID_ARG for a bad option. */
enum dr_status dr_batcher_create(const struct dr_batcher_opts *opts, dr_batch_fn run, void *ctx,
                                 struct dr_batcher **out);
/* Queues items[0 .. n) (borrowed; they must stay put until it returns) and returns when each
 * has its status.  DR_OK once they ran or were dropped (see each status); DR_ERR_INVALID_ARG
 * for a bucket out of range; DR_ERR_UNAVAILABLE after dr_batcher_shutdown (statuses set so). */
enum dr_status dr_batcher_run(struct dr_batcher *b, struct dr_batch_item *items, size_t n);
/* No more waiting for the delay; later runs are refused.  Queued items still run. */
void dr_batcher_shutdown(struct dr_batcher *b);
void dr_batcher_get_stats(struct dr_batcher *b, struct dr_batcher_stats *out);
/* No run may be in progress.  NULL is a no-op. */
void dr_batcher_destroy(struct dr_batcher *b);

/* A bucket for a sequence of len elements: 0 for up to 8, then one per doubling, capped at
 * n_buckets - 1. */
size_t dr_batcher_length_bucket(size_t len, size_t n_buckets);

#endif /* DR_BATCHER_H */
