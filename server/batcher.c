/* batcher.c: the leader/follower batcher (what and why: batcher.h).
 *
 * State, all under one mutex ("batcher", a leaf: run is called with it released): a FIFO per
 * bucket (items in submission order, with their count and cost), a bitmask of busy slots and
 * the batch arrays of each slot.  An item moves QUEUED -> RUNNING -> DONE, or QUEUED -> DONE
 * when dropped for its deadline.
 *
 * Wake-ups are targeted, not broadcast (with 16 workers on 2 cores a broadcast per batch cost
 * more than the batching saved): each call waits on its own condition variable; a finished
 * batch signals the calls whose items it finished, and, while a slot is free and work is
 * queued, the call owning the oldest queued item that is not itself leading a batch, which
 * becomes the next leader.  A caller checks its items under the mutex before it waits, so no
 * signal is lost.  Shutdown signals the owners of every queued item.
 */
#include "batcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "workpool.h" /* dr_now_ns */

enum { PHASE_QUEUED = 1, PHASE_RUNNING, PHASE_DONE };

/* One dr_batcher_run call, on its stack. */
struct dr__batch_waiter {
    pthread_cond_t cond; /* CLOCK_MONOTONIC, for the delay */
    bool is_leading;     /* running a batch (unlocked): a signal would be lost on it */
};

struct fifo {
    struct dr_batch_item *head, *tail;
    size_t len, cost;
};

struct dr_batcher {
    struct dr_batcher_opts opts;
    dr_batch_fn run;
    void *ctx;
    pthread_mutex_t lock;
    struct fifo queue[DR_BATCH_N_BUCKETS];
    size_t n_queued, n_running;
    uint64_t busy_slots;          /* bit s: slot s runs a batch */
    struct dr_batch_item **batch; /* n_slots rows of max_batch */
    bool is_stopping;
    struct dr_batcher_stats stats;
};

size_t dr_batcher_length_bucket(size_t len, size_t n_buckets)
{
    size_t b = 0;
    for (size_t cap = 8; len > cap && b + 1 < n_buckets; cap *= 2)
        b++;
    return b;
}

enum dr_status dr_batcher_create(const struct dr_batcher_opts *opts, dr_batch_fn run, void *ctx,
                                 struct dr_batcher **out)
{
    if (!opts || !run || !out || opts->max_batch == 0 || opts->n_slots == 0 ||
        opts->n_slots > DR_BATCH_MAX_SLOTS)
        return DR_ERR_INVALID_ARG;
    struct dr_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return DR_ERR_NOMEM;
    b->batch = calloc(opts->n_slots * opts->max_batch, sizeof *b->batch);
    if (!b->batch) {
        free(b);
        return DR_ERR_NOMEM;
    }
    b->opts = *opts;
    b->run = run;
    b->ctx = ctx;
    pthread_mutex_init(&b->lock, NULL);
    *out = b;
    return DR_OK;
}

void dr_batcher_destroy(struct dr_batcher *b)
{
    if (!b)
        return;
    DR_ASSERT(b->n_queued == 0 && b->n_running == 0);
    pthread_mutex_destroy(&b->lock);
    free(b->batch);
    free(b);
}

void dr_batcher_shutdown(struct dr_batcher *b)
{
    pthread_mutex_lock(&b->lock);
    b->is_stopping = true;
    for (int k = 0; k < DR_BATCH_N_BUCKETS; k++)
        for (struct dr_batch_item *it = b->queue[k].head; it; it = it->next)
            pthread_cond_signal(&it->waiter->cond);
    pthread_mutex_unlock(&b->lock);
}

void dr_batcher_get_stats(struct dr_batcher *b, struct dr_batcher_stats *out)
{
    pthread_mutex_lock(&b->lock);
    *out = b->stats;
    out->n_queued = b->n_queued;
    pthread_mutex_unlock(&b->lock);
}

static size_t cost_of(const struct dr_batch_item *it)
{
    return it->cost ? it->cost : 1;
}

static bool is_full(const struct dr_batcher *b, const struct fifo *q)
{
    return q->len >= b->opts.max_batch || (b->opts.max_cost && q->cost >= b->opts.max_cost);
}

/* The bucket whose batch goes now: a full one, else the oldest item's once the delay since
 * its submission has passed (at once with no delay or while stopping).  -1 when none goes
 * yet; then *wake_ns is when the oldest item's delay ends (0: nothing queued). */
static int pick_bucket(const struct dr_batcher *b, uint64_t now, uint64_t *wake_ns)
{
    *wake_ns = 0;
    int oldest = -1;
    for (int k = 0; k < DR_BATCH_N_BUCKETS; k++) {
        const struct fifo *q = &b->queue[k];
        if (!q->head)
            continue;
        if (is_full(b, q))
            return k;
        if (oldest < 0 || q->head->submitted_ns < b->queue[oldest].head->submitted_ns)
            oldest = k;
    }
    if (oldest < 0)
        return -1;
    uint64_t due = b->queue[oldest].head->submitted_ns + b->opts.max_delay_ns;
    if (b->opts.max_delay_ns == 0 || b->is_stopping || now >= due)
        return oldest;
    *wake_ns = due;
    return -1;
}

static struct dr_batch_item *pop(struct dr_batcher *b, struct fifo *q)
{
    struct dr_batch_item *it = q->head;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    q->cost -= cost_of(it);
    b->n_queued--;
    it->next = NULL;
    return it;
}

/* While a slot is free: wakes the owner of the oldest queued item that is waiting (not
 * leading), to lead the next batch. */
static void wake_leader(struct dr_batcher *b)
{
    if (b->n_running >= b->opts.n_slots || b->n_queued == 0)
        return;
    struct dr_batch_item *best = NULL;
    for (int k = 0; k < DR_BATCH_N_BUCKETS; k++) {
        for (struct dr_batch_item *it = b->queue[k].head; it; it = it->next) {
            if (!it->waiter->is_leading) {
                if (!best || it->submitted_ns < best->submitted_ns)
                    best = it;
                break; /* later items of the bucket are younger */
            }
        }
    }
    if (best)
        pthread_cond_signal(&best->waiter->cond);
}

/* Takes a slot, forms the batch of bucket k (dropping expired items), runs it unlocked and
 * marks it done.  Called and returns with the lock held. */
static void lead(struct dr_batcher *b, struct dr__batch_waiter *self, int k, uint64_t now)
{
    size_t slot = 0;
    while (b->busy_slots & (1ull << slot))
        slot++;
    DR_ASSERT(slot < b->opts.n_slots);
    struct dr_batch_item **batch = b->batch + slot * b->opts.max_batch;
    struct fifo *q = &b->queue[k];
    size_t n = 0, cost = 0;
    while (q->head && n < b->opts.max_batch) {
        struct dr_batch_item *it = q->head;
        if (it->deadline_ns && now > it->deadline_ns) {
            pop(b, q);
            it->status = DR_ERR_DEADLINE;
            it->wait_ns = now - it->submitted_ns;
            it->phase = PHASE_DONE;
            b->stats.n_deadline_dropped++;
            if (it->waiter != self)
                pthread_cond_signal(&it->waiter->cond);
            continue;
        }
        if (n > 0 && b->opts.max_cost && cost + cost_of(it) > b->opts.max_cost)
            break;
        pop(b, q);
        cost += cost_of(it);
        it->status = DR_OK;
        it->wait_ns = now - it->submitted_ns;
        it->phase = PHASE_RUNNING;
        batch[n++] = it;
    }
    if (n > 0) {
        b->busy_slots |= 1ull << slot;
        b->n_running++;
        self->is_leading = true;
        wake_leader(b); /* another slot may be free for what is left */
        pthread_mutex_unlock(&b->lock);
        b->run(b->ctx, slot, batch, n);
        pthread_mutex_lock(&b->lock);
        self->is_leading = false;
        for (size_t i = 0; i < n; i++) {
            batch[i]->batch_len = n;
            batch[i]->phase = PHASE_DONE;
            if (batch[i]->waiter != self)
                pthread_cond_signal(&batch[i]->waiter->cond);
        }
        b->busy_slots &= ~(1ull << slot);
        b->n_running--;
        b->stats.n_batches++;
        b->stats.n_items_run += n;
        if (n > b->stats.largest_batch)
            b->stats.largest_batch = n;
    }
    wake_leader(b);
}

enum dr_status dr_batcher_run(struct dr_batcher *b, struct dr_batch_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].bucket >= DR_BATCH_N_BUCKETS)
            return DR_ERR_INVALID_ARG;
    }
    pthread_mutex_lock(&b->lock);
    if (b->is_stopping) {
        pthread_mutex_unlock(&b->lock);
        for (size_t i = 0; i < n; i++) {
            items[i].status = DR_ERR_UNAVAILABLE;
            items[i].batch_len = 0;
        }
        return DR_ERR_UNAVAILABLE;
    }
    struct dr__batch_waiter self = {.is_leading = false};
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self.cond, &attr);
    pthread_condattr_destroy(&attr);
    uint64_t now = dr_now_ns();
    for (size_t i = 0; i < n; i++) {
        struct dr_batch_item *it = &items[i];
        struct fifo *q = &b->queue[it->bucket];
        *it = (struct dr_batch_item){.bucket = it->bucket,
                                     .cost = it->cost,
                                     .deadline_ns = it->deadline_ns,
                                     .job = it->job,
                                     .status = DR_OK,
                                     .waiter = &self,
                                     .submitted_ns = now,
                                     .phase = PHASE_QUEUED};
        if (q->tail)
            q->tail->next = it;
        else
            q->head = it;
        q->tail = it;
        q->len++;
        q->cost += cost_of(it);
        b->n_queued++;
    }
    for (;;) {
        size_t n_done = 0, n_mine_queued = 0;
        for (size_t i = 0; i < n; i++) {
            n_done += items[i].phase == PHASE_DONE;
            n_mine_queued += items[i].phase == PHASE_QUEUED;
        }
        if (n_done == n)
            break;
        if (n_mine_queued > 0 && b->n_running < b->opts.n_slots) {
            uint64_t wake_ns = 0;
            now = dr_now_ns();
            int k = pick_bucket(b, now, &wake_ns);
            if (k >= 0) {
                lead(b, &self, k, now);
                continue;
            }
            if (wake_ns) {
                struct timespec ts = {.tv_sec = (time_t)(wake_ns / 1000000000u),
                                      .tv_nsec = (long)(wake_ns % 1000000000u)};
                int rc = pthread_cond_timedwait(&self.cond, &b->lock, &ts);
                DR_ASSERT(rc == 0 || rc == ETIMEDOUT);
                continue;
            }
        }
        pthread_cond_wait(&self.cond, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    pthread_cond_destroy(&self.cond);
    return DR_OK;
}
