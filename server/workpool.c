/* workpool.c: a fixed set of worker threads over a bounded ring of jobs.
 * One mutex ("workpool") guards the ring; workers sleep on a condition variable.  The ring
 * never grows: a full ring is the overload signal. */
#include "workpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct job {
    dr_job_fn fn;
    void *arg;
    uint64_t submitted_ns;
};

struct dr_workpool {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct job *ring;
    size_t capacity, head, len;
    size_t n_running; /* jobs a worker has taken and not finished */
    bool stopping;
    size_t n_threads;
    pthread_t *threads;
};

uint64_t dr_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *arg)
{
    struct dr_workpool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->len == 0 && !pool->stopping)
            pthread_cond_wait(&pool->ready, &pool->lock);
        if (pool->len == 0 && pool->stopping)
            break;
        struct job job = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->capacity;
        pool->len--;
        pool->n_running++;
        pthread_mutex_unlock(&pool->lock);
        job.fn(job.arg, dr_now_ns() - job.submitted_ns);
        pthread_mutex_lock(&pool->lock);
        pool->n_running--;
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

enum dr_status dr_workpool_create(size_t n_threads, size_t queue_capacity, struct dr_workpool **out)
{
    if (n_threads == 0 || queue_capacity == 0)
        return DR_ERR_INVALID_ARG;
    struct dr_workpool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return DR_ERR_NOMEM;
    pool->ring = calloc(queue_capacity, sizeof *pool->ring);
    pool->threads = calloc(n_threads, sizeof *pool->threads);
    if (!pool->ring || !pool->threads) {
        free(pool->ring);
        free(pool->threads);
        free(pool);
        return DR_ERR_NOMEM;
    }
    pool->capacity = queue_capacity;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->ready, NULL);
    for (size_t i = 0; i < n_threads; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) {
            pool->n_threads = i;
            dr_workpool_destroy(pool);
            return DR_ERR_INTERNAL;
        }
        pool->n_threads = i + 1;
    }
    *out = pool;
    return DR_OK;
}

enum dr_status dr_workpool_submit(struct dr_workpool *pool, dr_job_fn fn, void *arg)
{
    pthread_mutex_lock(&pool->lock);
    enum dr_status st = DR_OK;
    if (pool->stopping) {
        st = DR_ERR_INVALID_ARG;
    } else if (pool->len == pool->capacity) {
        st = DR_ERR_OVERLOADED;
    } else {
        pool->ring[(pool->head + pool->len) % pool->capacity] =
            (struct job){.fn = fn, .arg = arg, .submitted_ns = dr_now_ns()};
        pool->len++;
        pthread_cond_signal(&pool->ready);
    }
    pthread_mutex_unlock(&pool->lock);
    return st;
}

size_t dr_workpool_depth(struct dr_workpool *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t len = pool->len;
    pthread_mutex_unlock(&pool->lock);
    return len;
}

size_t dr_workpool_in_flight(struct dr_workpool *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->len + pool->n_running;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void dr_workpool_destroy(struct dr_workpool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < pool->n_threads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->ready);
    pthread_mutex_destroy(&pool->lock);
    free(pool->ring);
    free(pool->threads);
    free(pool);
}
