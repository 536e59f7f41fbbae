/* workpool.h: compute threads fed through one bounded queue.
 *
 * Completion-queue pollers submit jobs; when the queue is full, dr_workpool_submit fails at
 * once with DR_ERR_OVERLOADED (the caller answers RESOURCE_EXHAUSTED) instead of letting the
 * queue grow.  Workers never call gRPC's completion queue; they start the reply batch.
 */
#ifndef DR_WORKPOOL_H
#define DR_WORKPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

struct dr_workpool;

typedef void (*dr_job_fn)(void *arg, uint64_t queued_ns);

enum dr_status dr_workpool_create(size_t n_threads, size_t queue_capacity,
                                  struct dr_workpool **out);
/* Runs fn(arg, nanoseconds spent queued) on a worker; DR_ERR_OVERLOADED if the queue is
 * full, DR_ERR_INVALID_ARG once the pool is stopping. */
enum dr_status dr_workpool_submit(struct dr_workpool *pool, dr_job_fn fn, void *arg);
size_t dr_workpool_depth(struct dr_workpool *pool);
/* Jobs queued plus jobs a worker is running: the pool's whole load, the signal an autoscaler
 * reads (depth alone stays 0 until every worker is busy). */
size_t dr_workpool_in_flight(struct dr_workpool *pool);
/* Finishes every queued job, joins the threads, frees the pool.  NULL is a no-op. */
void dr_workpool_destroy(struct dr_workpool *pool);

uint64_t dr_now_ns(void); /* CLOCK_MONOTONIC */

#endif /* DR_WORKPOOL_H */
