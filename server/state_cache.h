/* state_cache.h: a bounded LRU of per-user interest-model states, keyed by user id.
 *
 * A cached state lets Recommend skip replaying a user's history through the interest model,
 * and lets Ingest advance the user by each new event in O(1) (dr_interest_step).  Entries are
 * fixed-size blobs (state_size bytes, 8-byte aligned); callers copy them in and out, so no
 * pointer into the cache escapes a lock.
 *
 * The cache is split into shards by a hash of the user id, each with its own mutex, LRU list
 * and share of the capacity; any thread may call any function.
 *
 * Staleness rule.  A state built from the history store must not be cached if an Ingest for
 * the same shard ran, or is running, between the lookup that missed and the insert: the
 * state could lack that Ingest's events (read before its commit) or hold them and then be
 * stepped with them again.  So a miss hands out a ticket (the shard's write epoch);
 * dr_state_cache_write_begin / _end bracket every history write of a user, and an insert
 * whose ticket is stale, or that comes while a write is open, is refused.
 */
#ifndef DR_STATE_CACHE_H
#define DR_STATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

struct dr_state_cache;

struct dr_state_cache_stats {
    uint64_t hits, misses;
    uint64_t evictions;     /* the least recently used entry made room for a new one */
    uint64_t invalidations; /* an update function refused an event: the entry was dropped */
    uint64_t refused;       /* inserts refused by the staleness rule */
    size_t entries, capacity;
};

/* capacity: users (>= 1); state_size: bytes per state (>= 1).  *out: returns owned (free with
 * dr_state_cache_destroy).  DR_ERR_INVALID_ARG or DR_ERR_NOMEM. */
enum dr_status dr_state_cache_create(size_t capacity, size_t state_size,
                                     struct dr_state_cache **out);
void dr_state_cache_destroy(struct dr_state_cache *cache); /* NULL is a no-op */

/* On a hit: copies the user's state to state_out (state_size bytes, borrowed), marks the
 * entry most recently used and returns true.  On a miss: returns false and sets *ticket, to
 * be passed to dr_state_cache_put once the state is built.  user_id is borrowed. */
bool dr_state_cache_get(struct dr_state_cache *cache, const char *user_id, size_t user_id_len,
                        void *state_out, uint64_t *ticket);

/* Inserts (or replaces) the user's state (copied from state), evicting the shard's least
 * recently used entry when it is full.  Returns false, changing nothing, when the staleness
 * rule refuses it (see above). */
bool dr_state_cache_put(struct dr_state_cache *cache, const char *user_id, size_t user_id_len,
                        const void *state, uint64_t ticket);

/* Brackets a history write that holds events of this user: call _begin before the write,
 * _end after it (whether it succeeded or not), once each per user.  _end calls
 * update(ctx, state) on the cached state, if there is one and update is not NULL, under the
 * shard's lock; update advances the state in place and returns false to have the entry
 * dropped instead (an event it cannot apply). */
typedef bool (*dr_state_cache_update_fn)(void *ctx, void *state);
void dr_state_cache_write_begin(struct dr_state_cache *cache, const char *user_id,
                                size_t user_id_len);
void dr_state_cache_write_end(struct dr_state_cache *cache, const char *user_id, size_t user_id_len,
                              dr_state_cache_update_fn update, void *ctx);

/* Drops the user's entry if there is one. */
void dr_state_cache_remove(struct dr_state_cache *cache, const char *user_id, size_t user_id_len);

/* Sums over the shards (each read under its lock; the total is not one instant). */
void dr_state_cache_get_stats(struct dr_state_cache *cache, struct dr_state_cache_stats *out);

#endif /* DR_STATE_CACHE_H */
