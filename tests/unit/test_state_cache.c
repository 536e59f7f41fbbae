/* test_state_cache.c: the server's per-user state cache (server/state_cache.h).
 *
 * Usage: test_state_cache CASE
 *   basic    miss, put, hit (a copy), replace, remove, stats
 *   lru      a small cache is one exact LRU: the least recently used entry goes first,
 *            and a hit makes an entry the most recent
 *   staleness  the ticket rule: a put is refused while a write of its shard is open and
 *            after one ended since the miss; a fresh miss may put again
 *   update   write_end steps a cached state in place; an update that refuses drops it
 *   threads  4 threads of random gets, puts and writes over 600 users in a cache of 200:
 *            every state read back belongs to its user, the count never passes the
 *            capacity (run under ASan/TSan to catch races)
 */
#include "dr_test.h"
#include "state_cache.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* A test state: the user's number and a counter the updates advance. */
struct state {
    uint64_t user, counter;
    double pad[3];
};

static void user_name(char *buf, size_t size, unsigned u)
{
    snprintf(buf, size, "user-%u", u);
}

static struct state state_of(unsigned u, uint64_t counter)
{
    return (struct state){.user = u, .counter = counter};
}

static int test_basic(void)
{
    struct dr_state_cache *c = NULL;
    DR_CHECK(dr_state_cache_create(0, sizeof(struct state), &c) == DR_ERR_INVALID_ARG,
             "capacity 0 accepted");
    DR_CHECK(dr_state_cache_create(100, sizeof(struct state), &c) == DR_OK, "create");
    struct state out = {0}, in = state_of(7, 3);
    uint64_t ticket = 99;
    DR_CHECK(!dr_state_cache_get(c, "alice", 5, &out, &ticket), "hit in an empty cache");
    DR_CHECK(dr_state_cache_put(c, "alice", 5, &in, ticket), "put refused");
    DR_CHECK(dr_state_cache_get(c, "alice", 5, &out, &ticket), "miss after put");
    DR_CHECK(memcmp(&out, &in, sizeof out) == 0, "the state read back differs");
    DR_CHECK(!dr_state_cache_get(c, "alic", 4, &out, &ticket), "a prefix hit");
    DR_CHECK(!dr_state_cache_get(c, "alice\0", 6, &out, &ticket), "a longer key hit");
    in.counter = 4; /* a second miss of the same user replaces the first's state */
    DR_CHECK(dr_state_cache_put(c, "alice", 5, &in, ticket), "replace refused");
    DR_CHECK(dr_state_cache_get(c, "alice", 5, &out, &ticket) && out.counter == 4, "replace");
    dr_state_cache_remove(c, "alice", 5);
    DR_CHECK(!dr_state_cache_get(c, "alice", 5, &out, &ticket), "hit after remove");
    struct dr_state_cache_stats st;
    dr_state_cache_get_stats(c, &st);
    DR_CHECK(st.hits == 2 && st.misses == 4 && st.entries == 0 && st.capacity == 100,
             "stats: %llu hits, %llu misses, %zu entries", (unsigned long long)st.hits,
             (unsigned long long)st.misses, st.entries);
    dr_state_cache_destroy(c);
    dr_state_cache_destroy(NULL);
    return dr_test_failures ? 1 : 0;
}

static bool has(struct dr_state_cache *c, unsigned u)
{
    char name[32];
    user_name(name, sizeof name, u);
    struct state out;
    uint64_t ticket;
    return dr_state_cache_get(c, name, strlen(name), &out, &ticket);
}

static void put(struct dr_state_cache *c, unsigned u)
{
    char name[32];
    user_name(name, sizeof name, u);
    struct state s = state_of(u, 0), out;
    uint64_t ticket = 0;
    DR_CHECK(!dr_state_cache_get(c, name, strlen(name), &out, &ticket), "user %u cached", u);
    DR_CHECK(dr_state_cache_put(c, name, strlen(name), &s, ticket), "put of user %u", u);
}

static int test_lru(void)
{
    struct dr_state_cache *c = NULL;
    DR_CHECK(dr_state_cache_create(3, sizeof(struct state), &c) == DR_OK, "create");
    put(c, 1);
    put(c, 2);
    put(c, 3);
    DR_CHECK(has(c, 1), "1 missing"); /* 1 is the most recent now: 2 is the oldest */
    put(c, 4);
    DR_CHECK(!has(c, 2), "2 not evicted first");
    DR_CHECK(has(c, 1) && has(c, 3) && has(c, 4), "a wrong entry evicted");
    put(c, 5); /* newest first the order was 4 3 1: 1 goes */
    DR_CHECK(!has(c, 1), "1 not evicted");
    struct dr_state_cache_stats st;
    dr_state_cache_get_stats(c, &st);
    DR_CHECK(st.evictions == 2 && st.entries == 3, "%llu evictions, %zu entries",
             (unsigned long long)st.evictions, st.entries);
    dr_state_cache_destroy(c);
    return dr_test_failures ? 1 : 0;
}

static int test_staleness(void)
{
    struct dr_state_cache *c = NULL;
    DR_CHECK(dr_state_cache_create(8, sizeof(struct state), &c) == DR_OK, "create");
    struct state s = state_of(1, 0), out;
    uint64_t ticket = 0;
    /* A write opens after the miss: refused while open, and after it ends. */
    DR_CHECK(!dr_state_cache_get(c, "bob", 3, &out, &ticket), "hit");
    dr_state_cache_write_begin(c, "bob", 3);
    DR_CHECK(!dr_state_cache_put(c, "bob", 3, &s, ticket), "put during a write");
    dr_state_cache_write_end(c, "bob", 3, NULL, NULL);
    DR_CHECK(!dr_state_cache_put(c, "bob", 3, &s, ticket), "put with a ticket from before a write");
    /* A write of another user of the same shard (one shard here) counts too. */
    DR_CHECK(!dr_state_cache_get(c, "bob", 3, &out, &ticket), "hit");
    dr_state_cache_write_begin(c, "carol", 5);
    dr_state_cache_write_end(c, "carol", 5, NULL, NULL);
    DR_CHECK(!dr_state_cache_put(c, "bob", 3, &s, ticket), "put across another user's write");
    /* A miss taken while a write is open: refused until it is over, and after. */
    dr_state_cache_write_begin(c, "bob", 3);
    DR_CHECK(!dr_state_cache_get(c, "bob", 3, &out, &ticket), "hit");
    DR_CHECK(!dr_state_cache_put(c, "bob", 3, &s, ticket), "put during a write");
    dr_state_cache_write_end(c, "bob", 3, NULL, NULL);
    DR_CHECK(!dr_state_cache_put(c, "bob", 3, &s, ticket), "put with a ticket from a write");
    /* Quiet: the put holds. */
    DR_CHECK(!dr_state_cache_get(c, "bob", 3, &out, &ticket), "hit");
    DR_CHECK(dr_state_cache_put(c, "bob", 3, &s, ticket), "put refused when nothing ran");
    struct dr_state_cache_stats st;
    dr_state_cache_get_stats(c, &st);
    DR_CHECK(st.refused == 5 && st.entries == 1, "%llu refused, %zu entries",
             (unsigned long long)st.refused, st.entries);
    dr_state_cache_destroy(c);
    return dr_test_failures ? 1 : 0;
}

static bool advance(void *ctx, void *state)
{
    struct state *s = state;
    s->counter += *(const uint64_t *)ctx;
    return true;
}

static bool refuse(void *ctx, void *state)
{
    (void)ctx;
    ((struct state *)state)->counter = 12345; /* scribbles, then refuses: the entry must go */
    return false;
}

static int test_update(void)
{
    struct dr_state_cache *c = NULL;
    DR_CHECK(dr_state_cache_create(8, sizeof(struct state), &c) == DR_OK, "create");
    put(c, 1);
    char name[32];
    user_name(name, sizeof name, 1);
    size_t len = strlen(name);
    uint64_t by = 5, ticket = 0;
    dr_state_cache_write_begin(c, name, len);
    dr_state_cache_write_end(c, name, len, advance, &by);
    struct state out;
    DR_CHECK(dr_state_cache_get(c, name, len, &out, &ticket) && out.counter == 5 && out.user == 1,
             "not advanced: counter %llu", (unsigned long long)out.counter);
    dr_state_cache_write_begin(c, "nobody", 6); /* no entry: the update is not called */
    dr_state_cache_write_end(c, "nobody", 6, refuse, NULL);
    dr_state_cache_write_begin(c, name, len);
    dr_state_cache_write_end(c, name, len, refuse, NULL);
    DR_CHECK(!dr_state_cache_get(c, name, len, &out, &ticket), "a refused state kept");
    struct dr_state_cache_stats st;
    dr_state_cache_get_stats(c, &st);
    DR_CHECK(st.invalidations == 1 && st.entries == 0, "%llu invalidations",
             (unsigned long long)st.invalidations);
    dr_state_cache_destroy(c);
    return dr_test_failures ? 1 : 0;
}

#define N_THREADS 4
#define N_USERS   600
#define N_OPS     20000

struct worker {
    struct dr_state_cache *cache;
    uint64_t seed;
    int failures;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = w->seed;
    for (int i = 0; i < N_OPS; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        unsigned u = (unsigned)((rng >> 33) % N_USERS), op = (unsigned)((rng >> 20) % 4);
        char name[32];
        user_name(name, sizeof name, u);
        size_t len = strlen(name);
        struct state out;
        uint64_t ticket = 0, by = 1;
        if (op < 3) {
            if (dr_state_cache_get(w->cache, name, len, &out, &ticket)) {
                if (out.user != u)
                    w->failures++;
            } else {
                struct state s = state_of(u, 0);
                dr_state_cache_put(w->cache, name, len, &s, ticket);
            }
        } else {
            dr_state_cache_write_begin(w->cache, name, len);
            dr_state_cache_write_end(w->cache, name, len, advance, &by);
        }
    }
    return NULL;
}

static int test_threads(void)
{
    struct dr_state_cache *c = NULL;
    DR_CHECK(dr_state_cache_create(200, sizeof(struct state), &c) == DR_OK, "create");
    struct worker w[N_THREADS];
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (struct worker){.cache = c, .seed = dr_test_rand_u64()};
        pthread_create(&t[i], NULL, hammer, &w[i]);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
        DR_CHECK(w[i].failures == 0, "thread %d read %d states of another user", i, w[i].failures);
    }
    struct dr_state_cache_stats st;
    dr_state_cache_get_stats(c, &st);
    DR_CHECK(st.entries <= 200 && st.entries > 0, "%zu entries", st.entries);
    DR_CHECK(st.hits > 0 && st.misses > 0, "no lookups counted");
    DR_CHECK(st.evictions > 0, "600 users in 200 places and no eviction");
    printf("threads: %llu hits, %llu misses, %llu evictions, %llu refused, %zu entries\n",
           (unsigned long long)st.hits, (unsigned long long)st.misses,
           (unsigned long long)st.evictions, (unsigned long long)st.refused, st.entries);
    dr_state_cache_destroy(c);
    return dr_test_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    const char *name = argc > 1 ? argv[1] : "";
    if (strcmp(name, "basic") == 0)
        return test_basic();
    if (strcmp(name, "lru") == 0)
        return test_lru();
    if (strcmp(name, "staleness") == 0)
        return test_staleness();
    if (strcmp(name, "update") == 0)
        return test_update();
    if (strcmp(name, "threads") == 0)
        return test_threads();
    fprintf(stderr, "usage: test_state_cache basic|lru|staleness|update|threads\n");
    return 2;
}
