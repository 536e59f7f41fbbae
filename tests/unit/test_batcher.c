/* test_batcher.c: the leader/follower batcher (server/batcher.h).
 *
 * Usage: test_batcher CASE
 *   group     while one batch runs, six calls queue; they run as ONE next batch, and each
 *             caller gets its own result
 *   limits    max_batch and max_cost cap a batch; an item over max_cost runs alone;
 *             buckets never mix
 *   delay     with a delay the batch goes when the delay has passed since the OLDEST item
 *             (not the newest); a full bucket goes at once
 *   deadline  an item whose deadline passes while queued is dropped, never run, counted
 *   shutdown  items waiting out a delay run at once on shutdown; later runs are refused
 *   badinput  bad options and buckets are refused
 *   threads   8 threads x 300 runs of 1-5 items, 2 slots: every result is the caller's own
 */
#include "batcher.h"
#include "dr_test.h"
#include "workpool.h" /* dr_now_ns */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_SEEN 256

struct job {
    uint64_t in, out;
    size_t bucket;
};

/* The run callback's context: a gate that holds batches, and a record of the batches. */
struct ctx {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_held;     /* batches wait at the gate while true */
    size_t n_started; /* batches that reached the gate */
    size_t n_batches;
    size_t sizes[MAX_SEEN];
    uint64_t start_ns[MAX_SEEN];
    bool is_mixed; /* a batch held two buckets */
    bool is_slot_shared;
    atomic_int slot_busy[DR_BATCH_MAX_SLOTS];
};

static void ctx_init(struct ctx *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
}

static void run_batch(void *arg, size_t slot, struct dr_batch_item *const *items, size_t n)
{
    struct ctx *c = arg;
    if (atomic_fetch_add(&c->slot_busy[slot], 1) != 0)
        c->is_slot_shared = true;
    pthread_mutex_lock(&c->lock);
    size_t at = c->n_batches++;
    if (at < MAX_SEEN) {
        c->sizes[at] = n;
        c->start_ns[at] = dr_now_ns();
    }
    c->n_started++;
    pthread_cond_broadcast(&c->cond);
    while (c->is_held)
        pthread_cond_wait(&c->cond, &c->lock);
    for (size_t i = 0; i < n; i++) {
        struct job *j = items[i]->job;
        if (j->bucket != items[0]->bucket || items[i]->bucket != items[0]->bucket)
            c->is_mixed = true;
        j->out = j->in * 3 + 1;
    }
    pthread_mutex_unlock(&c->lock);
    atomic_fetch_sub(&c->slot_busy[slot], 1);
}

static void wait_started(struct ctx *c, size_t n)
{
    pthread_mutex_lock(&c->lock);
    while (c->n_started < n)
        pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

static void set_held(struct ctx *c, bool is_held)
{
    pthread_mutex_lock(&c->lock);
    c->is_held = is_held;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One caller: runs n_items items (values in + i, bucket, cost, deadline) and keeps them. */
struct caller {
    struct dr_batcher *b;
    size_t n_items, bucket, cost;
    uint64_t in, deadline_ns;
    struct job jobs[8];
    struct dr_batch_item items[8];
    enum dr_status status;
    uint64_t done_ns;
};

static void *caller_main(void *arg)
{
    struct caller *k = arg;
    for (size_t i = 0; i < k->n_items; i++) {
        k->jobs[i] = (struct job){.in = k->in + i, .bucket = k->bucket};
        k->items[i] = (struct dr_batch_item){.bucket = k->bucket,
                                             .cost = k->cost,
                                             .deadline_ns = k->deadline_ns,
                                             .job = &k->jobs[i]};
    }
    k->status = dr_batcher_run(k->b, k->items, k->n_items);
    k->done_ns = dr_now_ns();
    return NULL;
}

static size_t queued(struct dr_batcher *b)
{
    struct dr_batcher_stats st;
    dr_batcher_get_stats(b, &st);
    return st.n_queued;
}

static void wait_queued(struct dr_batcher *b, size_t n)
{
    for (int i = 0; i < 5000 && queued(b) < n; i++)
        sleep_ms(1);
}

static int check_results(struct caller *k, size_t n_callers)
{
    for (size_t t = 0; t < n_callers; t++) {
        DR_CHECK(k[t].status == DR_OK, "caller %zu: %s", t, dr_status_str(k[t].status));
        for (size_t i = 0; i < k[t].n_items; i++) {
            DR_CHECK(k[t].items[i].status == DR_OK, "caller %zu item %zu: %s", t, i,
                     dr_status_str(k[t].items[i].status));
            DR_CHECK(k[t].jobs[i].out == k[t].jobs[i].in * 3 + 1,
                     "caller %zu item %zu got another's result", t, i);
        }
    }
    return 0;
}

static int test_group(void)
{
    struct ctx c;
    ctx_init(&c);
    struct dr_batcher *b = NULL;
    struct dr_batcher_opts o = {.max_batch = 32, .n_slots = 1};
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_OK, "create");
    struct caller k[7];
    pthread_t t[7];
    set_held(&c, true);
    k[0] = (struct caller){.b = b, .n_items = 1, .in = 1000};
    pthread_create(&t[0], NULL, caller_main, &k[0]);
    wait_started(&c, 1); /* the first call leads a batch of one, held at the gate */
    for (int i = 1; i < 7; i++) {
        k[i] = (struct caller){.b = b, .n_items = 1, .in = (uint64_t)i * 10};
        pthread_create(&t[i], NULL, caller_main, &k[i]);
    }
    wait_queued(b, 6);
    DR_CHECK(queued(b) == 6, "%zu queued, expected 6", queued(b));
    set_held(&c, false);
    for (int i = 0; i < 7; i++)
        pthread_join(t[i], NULL);
    check_results(k, 7);
    DR_CHECK(c.n_batches == 2 && c.sizes[0] == 1 && c.sizes[1] == 6,
             "batches: %zu (sizes %zu, %zu); expected 1 then 6", c.n_batches, c.sizes[0],
             c.sizes[1]);
    for (int i = 1; i < 7; i++)
        DR_CHECK(k[i].items[0].batch_len == 6, "caller %d: batch_len %zu", i,
                 k[i].items[0].batch_len);
    struct dr_batcher_stats st;
    dr_batcher_get_stats(b, &st);
    DR_CHECK(st.n_batches == 2 && st.n_items_run == 7 && st.largest_batch == 6, "stats");
    dr_batcher_destroy(b);
    return dr_test_failures ? 1 : 0;
}

static int test_limits(void)
{
    struct ctx c;
    ctx_init(&c);
    struct dr_batcher *b = NULL;
    struct dr_batcher_opts o = {.max_batch = 4, .max_cost = 10, .n_slots = 1};
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_OK, "create");
    enum { N = 13 };
    struct caller k[N];
    pthread_t t[N];
    set_held(&c, true);
    k[0] = (struct caller){.b = b, .n_items = 1, .in = 5, .cost = 1};
    pthread_create(&t[0], NULL, caller_main, &k[0]);
    wait_started(&c, 1);
    /* bucket 0: 8 callers of cost 1 (max_batch 4 caps: 2 batches of 4); bucket 1: 3 of cost
     * 4 (max_cost 10 caps: 2 + 1); bucket 2: one of cost 20 (alone) */
    for (int i = 1; i < N; i++) {
        size_t bucket = i <= 8 ? 0 : i <= 11 ? 1 : 2;
        size_t cost = bucket == 0 ? 1 : bucket == 1 ? 4 : 20;
        k[i] = (struct caller){
            .b = b, .n_items = 1, .in = (uint64_t)i * 7, .bucket = bucket, .cost = cost};
        pthread_create(&t[i], NULL, caller_main, &k[i]);
    }
    wait_queued(b, N - 1);
    set_held(&c, false);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    check_results(k, N);
    DR_CHECK(!c.is_mixed, "a batch mixed buckets");
    size_t by_size[5] = {0};
    for (size_t i = 1; i < c.n_batches; i++) {
        DR_CHECK(c.sizes[i] >= 1 && c.sizes[i] <= 4, "batch of %zu", c.sizes[i]);
        by_size[c.sizes[i] <= 4 ? c.sizes[i] : 0]++;
    }
    DR_CHECK(c.n_batches == 6 && by_size[4] == 2 && by_size[2] == 1 && by_size[1] == 2,
             "%zu batches: expected 1, then 4, 4, 2, 1, 1", c.n_batches);
    DR_CHECK(k[12].items[0].batch_len == 1, "the costly item shared a batch");
    dr_batcher_destroy(b);
    return dr_test_failures ? 1 : 0;
}

static int test_delay(void)
{
    struct ctx c;
    ctx_init(&c);
    struct dr_batcher *b = NULL;
    struct dr_batcher_opts o = {.max_batch = 8, .max_delay_ns = 200 * 1000000ull, .n_slots = 1};
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_OK, "create");
    struct caller k[2];
    pthread_t t[2];
    uint64_t t0 = dr_now_ns();
    k[0] = (struct caller){.b = b, .n_items = 1, .in = 1};
    pthread_create(&t[0], NULL, caller_main, &k[0]);
    sleep_ms(100);
    k[1] = (struct caller){.b = b, .n_items = 1, .in = 2};
    pthread_create(&t[1], NULL, caller_main, &k[1]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    check_results(k, 2);
    double start_ms = (double)(c.start_ns[0] - t0) / 1e6;
    /* From the oldest: ~200 ms; from the newest it would be ~300 ms. */
    DR_CHECK(c.n_batches == 1 && c.sizes[0] == 2, "%zu batches, first of %zu", c.n_batches,
             c.sizes[0]);
    DR_CHECK(start_ms >= 199.0 && start_ms < 280.0, "the batch started after %.1f ms", start_ms);
    DR_CHECK(k[0].items[0].wait_ns >= 199000000ull, "the oldest waited %.1f ms",
             (double)k[0].items[0].wait_ns / 1e6);
    printf("delay: batch of 2 started %.1f ms after the oldest item (delay 200 ms)\n", start_ms);

    /* A full bucket does not wait: max_batch 2 with a 10 s delay. */
    struct dr_batcher *b2 = NULL;
    struct ctx c2;
    ctx_init(&c2);
    struct dr_batcher_opts o2 = {.max_batch = 2, .max_delay_ns = 10000000000ull, .n_slots = 1};
    DR_CHECK(dr_batcher_create(&o2, run_batch, &c2, &b2) == DR_OK, "create");
    t0 = dr_now_ns();
    k[0] = (struct caller){.b = b2, .n_items = 1, .in = 1};
    k[1] = (struct caller){.b = b2, .n_items = 1, .in = 2};
    pthread_create(&t[0], NULL, caller_main, &k[0]);
    sleep_ms(20);
    pthread_create(&t[1], NULL, caller_main, &k[1]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    check_results(k, 2);
    double full_ms = (double)(dr_now_ns() - t0) / 1e6;
    DR_CHECK(full_ms < 2000.0 && c2.sizes[0] == 2, "a full bucket waited %.1f ms", full_ms);
    dr_batcher_destroy(b2);
    dr_batcher_destroy(b);
    return dr_test_failures ? 1 : 0;
}

static int test_deadline(void)
{
    struct ctx c;
    ctx_init(&c);
    struct dr_batcher *b = NULL;
    struct dr_batcher_opts o = {.max_batch = 8, .n_slots = 1};
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_OK, "create");
    struct caller k[3];
    pthread_t t[3];
    set_held(&c, true);
    k[0] = (struct caller){.b = b, .n_items = 1, .in = 1};
    pthread_create(&t[0], NULL, caller_main, &k[0]);
    wait_started(&c, 1);
    k[1] = (struct caller){.b = b, .n_items = 2, .in = 10, .deadline_ns = dr_now_ns() + 20000000};
    k[2] =
        (struct caller){.b = b, .n_items = 1, .in = 20, .deadline_ns = dr_now_ns() + 60000000000};
    pthread_create(&t[1], NULL, caller_main, &k[1]);
    pthread_create(&t[2], NULL, caller_main, &k[2]);
    wait_queued(b, 3);
    sleep_ms(60); /* k[1]'s deadline passes while it is queued */
    set_held(&c, false);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    check_results(&k[2], 1);
    check_results(&k[0], 1);
    DR_CHECK(k[1].status == DR_OK, "run: %s", dr_status_str(k[1].status));
    for (int i = 0; i < 2; i++) {
        DR_CHECK(k[1].items[i].status == DR_ERR_DEADLINE, "expired item %d: %s", i,
                 dr_status_str(k[1].items[i].status));
        DR_CHECK(k[1].jobs[i].out == 0 && k[1].items[i].batch_len == 0, "an expired item ran");
    }
    struct dr_batcher_stats st;
    dr_batcher_get_stats(b, &st);
    DR_CHECK(st.n_deadline_dropped == 2 && st.n_items_run == 2, "stats: %llu dropped, %llu run",
             (unsigned long long)st.n_deadline_dropped, (unsigned long long)st.n_items_run);
    dr_batcher_destroy(b);
    return dr_test_failures ? 1 : 0;
}

static int test_shutdown(void)
{
    struct ctx c;
    ctx_init(&c);
    struct dr_batcher *b = NULL;
    struct dr_batcher_opts o = {.max_batch = 8, .max_delay_ns = 30000000000ull, .n_slots = 2};
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_OK, "create");
    struct caller k[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        k[i] = (struct caller){.b = b, .n_items = 3, .in = (uint64_t)i * 100};
        pthread_create(&t[i], NULL, caller_main, &k[i]);
    }
    wait_queued(b, 6);
    DR_CHECK(c.n_batches == 0, "a batch went before the 30 s delay");
    uint64_t t0 = dr_now_ns();
    dr_batcher_shutdown(b);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    check_results(k, 2);
    DR_CHECK((double)(dr_now_ns() - t0) / 1e6 < 2000.0, "shutdown did not flush the queue");
    struct job j = {.in = 1};
    struct dr_batch_item it = {.job = &j};
    DR_CHECK(dr_batcher_run(b, &it, 1) == DR_ERR_UNAVAILABLE && it.status == DR_ERR_UNAVAILABLE &&
                 j.out == 0,
             "a run after shutdown was accepted");
    dr_batcher_destroy(b);
    return dr_test_failures ? 1 : 0;
}

static int test_badinput(void)
{
    struct ctx c;
    ctx_init(&c);
    struct dr_batcher *b = NULL;
    struct dr_batcher_opts o = {.max_batch = 0, .n_slots = 1};
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_ERR_INVALID_ARG && !b, "max_batch 0");
    o = (struct dr_batcher_opts){.max_batch = 4, .n_slots = 0};
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_ERR_INVALID_ARG, "n_slots 0");
    o.n_slots = DR_BATCH_MAX_SLOTS + 1;
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_ERR_INVALID_ARG, "too many slots");
    o.n_slots = 1;
    DR_CHECK(dr_batcher_create(&o, NULL, &c, &b) == DR_ERR_INVALID_ARG, "no run callback");
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_OK, "create");
    struct job j[2] = {{.in = 1}, {.in = 2}};
    struct dr_batch_item it[2] = {{.job = &j[0]}, {.bucket = DR_BATCH_N_BUCKETS, .job = &j[1]}};
    DR_CHECK(dr_batcher_run(b, it, 2) == DR_ERR_INVALID_ARG && j[0].out == 0,
             "a bucket out of range was accepted");
    DR_CHECK(dr_batcher_run(b, it, 0) == DR_OK, "an empty run");
    DR_CHECK(dr_batcher_length_bucket(0, 16) == 0 && dr_batcher_length_bucket(8, 16) == 0 &&
                 dr_batcher_length_bucket(9, 16) == 1 && dr_batcher_length_bucket(16, 16) == 1 &&
                 dr_batcher_length_bucket(17, 16) == 2 && dr_batcher_length_bucket(128, 16) == 4 &&
                 dr_batcher_length_bucket(1u << 30, 8) == 7,
             "length buckets");
    dr_batcher_destroy(b);
    dr_batcher_destroy(NULL);
    return dr_test_failures ? 1 : 0;
}

#define N_THREADS 8
#define N_RUNS    300

struct hammer {
    struct dr_batcher *b;
    uint64_t seed;
    int failures;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    uint64_t x = h->seed;
    for (int r = 0; r < N_RUNS; r++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        struct caller k = {.b = h->b,
                           .n_items = 1 + (size_t)(x >> 60) % 5,
                           .in = x >> 20,
                           .bucket = (size_t)(x >> 40) % 3};
        caller_main(&k);
        for (size_t i = 0; i < k.n_items; i++)
            h->failures += k.items[i].status != DR_OK || k.jobs[i].out != k.jobs[i].in * 3 + 1;
    }
    return NULL;
}

static int test_threads(void)
{
    struct ctx c;
    ctx_init(&c);
    struct dr_batcher *b = NULL;
    struct dr_batcher_opts o = {.max_batch = 6, .max_delay_ns = 50000, .n_slots = 2};
    DR_CHECK(dr_batcher_create(&o, run_batch, &c, &b) == DR_OK, "create");
    struct hammer h[N_THREADS];
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        h[i] = (struct hammer){.b = b, .seed = dr_test_rand_u64()};
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
        DR_CHECK(h[i].failures == 0, "thread %d: %d wrong results", i, h[i].failures);
    }
    struct dr_batcher_stats st;
    dr_batcher_get_stats(b, &st);
    DR_CHECK(!c.is_mixed, "a batch mixed buckets");
    DR_CHECK(!c.is_slot_shared, "two batches ran in one slot at once");
    DR_CHECK(st.largest_batch <= 6 && st.n_queued == 0, "largest batch %zu", st.largest_batch);
    printf("threads: %llu items in %llu batches, largest %zu\n", (unsigned long long)st.n_items_run,
           (unsigned long long)st.n_batches, st.largest_batch);
    dr_batcher_destroy(b);
    return dr_test_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    const char *name = argc > 1 ? argv[1] : "";
    if (strcmp(name, "group") == 0)
        return test_group();
    if (strcmp(name, "limits") == 0)
        return test_limits();
    if (strcmp(name, "delay") == 0)
        return test_delay();
    if (strcmp(name, "deadline") == 0)
        return test_deadline();
    if (strcmp(name, "shutdown") == 0)
        return test_shutdown();
    if (strcmp(name, "badinput") == 0)
        return test_badinput();
    if (strcmp(name, "threads") == 0)
        return test_threads();
    fprintf(stderr, "usage: test_batcher group|limits|delay|deadline|shutdown|badinput|threads\n");
    return 2;
}
