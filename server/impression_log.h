/* impression_log.h: Recommend's impressions, written to the history store's event log in group
 * commits by one writer thread.
 *
 * Every item a Recommend returns is one impression record (user id, item id, request id,
 * variant, position, model version, ts: history.h, the log).  A worker appends a response's
 * impressions with dr_impression_log_append: a copy into the current buffer under one mutex,
 * no I/O.  The writer thread takes everything that accumulated while it was committing (and
 * for at least 20 ms since the last commit began) and writes it in one durable transaction
 * (fsync), so a Recommend never waits for an fsync and a busy server commits many responses
 * per fsync.  The writer runs at idle priority (SCHED_IDLE, else nice 10): on a small machine
 * it never takes a core from the request path; if it cannot keep up, the bounded queue drops
 * and counts impressions instead.
 *
 * The queue is bounded: at most `capacity` impressions are buffered (waiting, plus those the
 * writer is committing).  A response that does not fit is dropped whole and counted; its
 * request is answered as usual.  The mutex is never held across I/O, so an append waits at
 * most for another append's copy or the writer's buffer swap.
 *
 * Durability: dr_impression_log_destroy writes everything queued before it returns, so a
 * clean shutdown (drain) loses nothing.  A crash loses the impressions not yet committed
 * (typically a few milliseconds' worth); unlike an Ingest, nothing was acknowledged for them.
 */
#ifndef DR_IMPRESSION_LOG_H
#define DR_IMPRESSION_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "driftrec.pb-c.h"
#include "history.h"

#define DR_IMPRESSION_LOG_DEFAULT_CAPACITY 65536

struct dr_impression_log;

struct dr_impression_log_stats {
    uint64_t logged;               /* impressions committed to the log */
    uint64_t commits;              /* transactions that wrote them (logged / commits: group size) */
    uint64_t dropped_queue_full;   /* not logged: the queue was full (or could not grow) */
    uint64_t dropped_write_failed; /* not logged: their transaction failed */
    size_t queued;                 /* buffered now, waiting or being committed */
    size_t capacity;
};

/* history: borrowed, must outlive the log.  capacity: impressions buffered at most (>= 1).
 * Starts the writer thread.  *out: returns owned (free with dr_impression_log_destroy). */
enum dr_status dr_impression_log_create(struct dr_history *history, size_t capacity,
                                        struct dr_impression_log **out, struct dr_error *err);
/* Writes everything queued, stops the writer thread and frees the log.  No append may run
 * concurrently or follow.  NULL is a no-op. */
void dr_impression_log_destroy(struct dr_impression_log *log);

/* Queues one impression per item of resp (position = its index, 0-based), with user_id,
 * resp's request_id, variant and model_version, and ts (Unix seconds).  Copies what it needs:
 * user_id and resp are borrowed for the call only.  DR_ERR_OVERLOADED when the queue has no
 * room for all of them (none is queued; they are counted as dropped), DR_ERR_NOMEM likewise
 * when a buffer cannot grow.  Any thread. */
enum dr_status dr_impression_log_append(struct dr_impression_log *log,
                                        const ProtobufCBinaryData *user_id,
                                        const Driftrec__V1__RecommendResponse *resp, int64_t ts);

/* A snapshot of the counters (for metrics).  Any thread. */
void dr_impression_log_get_stats(struct dr_impression_log *log,
                                 struct dr_impression_log_stats *out);

#endif /* DR_IMPRESSION_LOG_H */
