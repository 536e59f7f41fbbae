/* state_cache.c: the sharded LRU of user states (contract and staleness rule in the header).
 *
 * Layout: n_shards shards (a power of two, at most MAX_SHARDS, each holding at least
 * MIN_PER_SHARD users unless the whole cache is smaller), each a mutex, a chained hash table
 * with a fixed bucket array (a power of two >= its capacity, so chains stay short without
 * ever rehashing), a doubly linked LRU list (newest at the head) and the shard's write epoch
 * and open-write count.  The LRU is per shard: an approximation of a global one that only
 * matters when the cache is full.  An entry is one allocation: header, key bytes, then the
 * state at an 8-byte aligned offset.  The hash is keyed with a per-process seed so clients
 * cannot choose user ids that pile into one chain.  The shard comes from the hash's high
 * bits, the bucket from its low bits.
 *
 * Threads: every operation takes exactly one shard's lock (stats: each in turn); no lock is
 * held while calling out, except the update function of dr_state_cache_write_end, which must
 * not call back into the cache.
 */
#include "state_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SHARDS    64
#define MIN_PER_SHARD 64 /* users: below 2 * 64 users the cache is one shard */

struct entry {
    struct entry *chain;         /* next in the bucket */
    struct entry *newer, *older; /* LRU list */
    uint64_t hash;
    size_t key_len;
    /* key bytes follow, then the state at state_offset(key_len) */
};

struct shard {
    /* "state_cache shard": a leaf lock (nothing else is taken under it but what the write_end
     * update function takes).  Shards start a cache line apart so they share no lines. */
    _Alignas(64) pthread_mutex_t lock;
    struct entry **buckets;
    size_t mask; /* n_buckets - 1 */
    size_t len, capacity;
    struct entry *newest, *oldest;
    uint64_t epoch;     /* bumped at the end of every history write into this shard */
    uint32_t n_writing; /* history writes begun and not yet ended */
    uint64_t hits, misses, evictions, invalidations, refused;
};

struct dr_state_cache {
    size_t state_size, capacity, n_shards;
    uint64_t seed;
    struct shard *shards;
};

static size_t state_offset(size_t key_len)
{
    return dr_round_up(sizeof(struct entry) + key_len, 8);
}

static char *entry_key(struct entry *e)
{
    return (char *)(e + 1);
}

static void *entry_state(struct entry *e)
{
    return (char *)e + state_offset(e->key_len);
}

/* FNV-1a over the seed and the bytes, then a 64-bit finaliser (murmur3's fmix64) so the high
 * bits that pick the shard depend on every byte. */
static uint64_t hash_id(const struct dr_state_cache *c, const char *id, size_t len)
{
    uint64_t h = 1469598103934665603ull ^ c->seed;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static struct shard *shard_of(struct dr_state_cache *c, uint64_t hash)
{
    return &c->shards[(hash >> 40) & (c->n_shards - 1)];
}

/* The entry's slot in its bucket chain (the pointer that points at it), or the chain's end. */
static struct entry **find(struct shard *s, uint64_t hash, const char *id, size_t len)
{
    struct entry **slot = &s->buckets[hash & s->mask];
    while (*slot) {
        struct entry *e = *slot;
        if (e->hash == hash && e->key_len == len && memcmp(entry_key(e), id, len) == 0)
            return slot;
        slot = &e->chain;
    }
    return slot;
}

static void lru_unlink(struct shard *s, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push_newest(struct shard *s, struct entry *e)
{
    e->newer = NULL;
    e->older = s->newest;
    if (s->newest)
        s->newest->newer = e;
    s->newest = e;
    if (!s->oldest)
        s->oldest = e;
}

/* Unlinks and frees the entry at slot. */
static void drop(struct shard *s, struct entry **slot)
{
    struct entry *e = *slot;
    *slot = e->chain;
    lru_unlink(s, e);
    s->len--;
    free(e);
}

enum dr_status dr_state_cache_create(size_t capacity, size_t state_size,
                                     struct dr_state_cache **out)
{
    if (capacity == 0 || state_size == 0)
        return DR_ERR_INVALID_ARG;
    struct dr_state_cache *c = calloc(1, sizeof *c);
    if (!c)
        return DR_ERR_NOMEM;
    c->state_size = state_size;
    c->capacity = capacity;
    /* Enough shards to spread the locks, few enough that each keeps a useful LRU: a small
     * cache is one shard, an exact LRU. */
    c->n_shards = 1;
    while (c->n_shards * 2 <= MAX_SHARDS && c->n_shards * 2 * MIN_PER_SHARD <= capacity)
        c->n_shards *= 2;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->seed = hash_id(c, (const char *)&ts, sizeof ts) ^ (uint64_t)(uintptr_t)c;
    c->shards = dr_aligned_alloc(c->n_shards * sizeof *c->shards);
    if (!c->shards) {
        free(c);
        return DR_ERR_NOMEM;
    }
    memset(c->shards, 0, c->n_shards * sizeof *c->shards);
    for (size_t i = 0; i < c->n_shards; i++) {
        struct shard *s = &c->shards[i];
        /* The capacity split exactly: the first (capacity % n) shards take one more. */
        s->capacity = capacity / c->n_shards + (i < capacity % c->n_shards ? 1 : 0);
        size_t n_buckets = 1;
        while (n_buckets < s->capacity)
            n_buckets *= 2;
        s->mask = n_buckets - 1;
        s->buckets = calloc(n_buckets, sizeof *s->buckets);
        pthread_mutex_init(&s->lock, NULL);
        if (!s->buckets) {
            c->n_shards = i + 1; /* destroy frees what exists */
            dr_state_cache_destroy(c);
            return DR_ERR_NOMEM;
        }
    }
    *out = c;
    return DR_OK;
}

void dr_state_cache_destroy(struct dr_state_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_shards; i++) {
        struct shard *s = &c->shards[i];
        for (struct entry *e = s->newest, *next; e; e = next) {
            next = e->older;
            free(e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    dr_aligned_free(c->shards);
    free(c);
}

bool dr_state_cache_get(struct dr_state_cache *c, const char *id, size_t len, void *state_out,
                        uint64_t *ticket)
{
    uint64_t hash = hash_id(c, id, len);
    struct shard *s = shard_of(c, hash);
    pthread_mutex_lock(&s->lock);
    struct entry *e = *find(s, hash, id, len);
    if (e) {
        memcpy(state_out, entry_state(e), c->state_size);
        lru_unlink(s, e);
        lru_push_newest(s, e);
        s->hits++;
    } else {
        *ticket = s->epoch;
        s->misses++;
    }
    pthread_mutex_unlock(&s->lock);
    return e != NULL;
}

bool dr_state_cache_put(struct dr_state_cache *c, const char *id, size_t len, const void *state,
                        uint64_t ticket)
{
    uint64_t hash = hash_id(c, id, len);
    struct shard *s = shard_of(c, hash);
    /* Allocated before the lock (and freed if unused) so the lock is never held across
     * malloc. */
    struct entry *fresh = malloc(state_offset(len) + c->state_size);
    pthread_mutex_lock(&s->lock);
    bool is_stored = false;
    if (s->n_writing > 0 || s->epoch != ticket) {
        s->refused++;
    } else {
        struct entry **slot = find(s, hash, id, len);
        if (*slot) { /* another miss of the same user got here first: same history, same state */
            memcpy(entry_state(*slot), state, c->state_size);
            lru_unlink(s, *slot);
            lru_push_newest(s, *slot);
            is_stored = true;
        } else if (fresh) {
            if (s->len == s->capacity) {
                struct entry *victim = s->oldest;
                drop(s, find(s, victim->hash, entry_key(victim), victim->key_len));
                s->evictions++;
                slot = find(s, hash, id, len); /* the victim may have been in this chain */
            }
            *fresh = (struct entry){.hash = hash, .key_len = len};
            memcpy(entry_key(fresh), id, len);
            memcpy(entry_state(fresh), state, c->state_size);
            *slot = fresh;
            lru_push_newest(s, fresh);
            s->len++;
            fresh = NULL;
            is_stored = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    free(fresh);
    return is_stored;
}

void dr_state_cache_write_begin(struct dr_state_cache *c, const char *id, size_t len)
{
    struct shard *s = shard_of(c, hash_id(c, id, len));
    pthread_mutex_lock(&s->lock);
    s->n_writing++;
    pthread_mutex_unlock(&s->lock);
}

void dr_state_cache_write_end(struct dr_state_cache *c, const char *id, size_t len,
                              dr_state_cache_update_fn update, void *ctx)
{
    uint64_t hash = hash_id(c, id, len);
    struct shard *s = shard_of(c, hash);
    pthread_mutex_lock(&s->lock);
    struct entry **slot = find(s, hash, id, len);
    if (*slot && update && !update(ctx, entry_state(*slot))) {
        drop(s, slot);
        s->invalidations++;
    }
    DR_ASSERT(s->n_writing > 0);
    s->n_writing--;
    s->epoch++;
    pthread_mutex_unlock(&s->lock);
}

void dr_state_cache_remove(struct dr_state_cache *c, const char *id, size_t len)
{
    uint64_t hash = hash_id(c, id, len);
    struct shard *s = shard_of(c, hash);
    pthread_mutex_lock(&s->lock);
    struct entry **slot = find(s, hash, id, len);
    if (*slot)
        drop(s, slot);
    pthread_mutex_unlock(&s->lock);
}

void dr_state_cache_get_stats(struct dr_state_cache *c, struct dr_state_cache_stats *out)
{
    *out = (struct dr_state_cache_stats){.capacity = c->capacity};
    for (size_t i = 0; i < c->n_shards; i++) {
        struct shard *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        out->hits += s->hits;
        out->misses += s->misses;
        out->evictions += s->evictions;
        out->invalidations += s->invalidations;
        out->refused += s->refused;
        out->entries += s->len;
        pthread_mutex_unlock(&s->lock);
    }
}
