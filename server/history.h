/* history.h: the durable per-user event history and the append-only event log.
 *
 * Two backends behind one API, chosen by the target dr_history_open is given:
 *   a directory      LMDB, embedded: one server owns the store (below)
 *   redis://HOST:PORT[/DB] or unix:///PATH/TO/SOCKET
 *                    Redis (history_redis.c): one store shared by many replicas; the key
 *                    layout and the durability settings it needs are in docs/history.md
 * Both give the same guarantees: a batch is stored whole or not at all, an event_id is
 * applied once, a user's events are read in (ts, arrival) order, the log is in arrival order
 * with a gap-free seq, and a write returns only once the store has it on disk.
 *
 * One LMDB environment (one directory) holds:
 *   events    user_id \0 be64(ts) be64(seq) -> a packed driftrec.v1.Event
 *   event_ids event_id -> be64(seq): an event_id is applied once
 *   log       seq (native size_t, MDB_INTEGERKEY) -> one record, in arrival order, for
 *             retraining and A/B analysis:
 *               DR_HISTORY_LOG_EVENT       kind byte, packed Event: an ingested event (feedback
 *                                          included), written in the transaction that stores it
 *               DR_HISTORY_LOG_IMPRESSION  kind byte, be16 n, n bytes of model version, packed
 *                                          Event (type IMPRESSION): an item a Recommend returned
 *   meta      "next_seq" -> be64
 * Commits are durable (no MDB_NOSYNC / MDB_NOMETASYNC / MDB_MAPASYNC): a write returns only
 * after fsync.  The files are created with mode 0600: the history and the log keep real user
 * ids, for the service's account alone.  Writes go through one writer at a time (LMDB's
 * rule); each write function takes a whole batch so callers group-commit many records in one
 * transaction.  Reads run concurrently from any thread (MDB_NOTLS).
 *
 * Every function may be called from any thread.  With Redis, a call that finds the server
 * unreachable (or gets no answer within the timeout) fails with DR_ERR_UNAVAILABLE and the
 * next call connects again; the process must ignore SIGPIPE (a write to a socket Redis
 * closed would otherwise end it): driftrec-server and driftrec-history do.
 */
#ifndef DR_HISTORY_H
#define DR_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

/* Keys must fit LMDB's 511-byte limit: user_id + 17 bytes of suffix (Redis keeps the limit). */
#define DR_HISTORY_MAX_ID_BYTES 256

struct dr_history;

/* One event in the history format (docs/data.md).  Strings are borrowed, NUL-free, UTF-8,
 * with explicit lengths.  A negative dwell_s/amount or rating 0 means "not given". */
struct dr_event {
    const char *user_id;
    size_t user_id_len;
    const char *item_id;
    size_t item_id_len;
    int64_t ts;
    int event_type; /* driftrec.v1.EventType */
    double dwell_s, amount;
    int rating, position;
    bool has_dwell_s, has_amount, has_rating, has_position;
    const char *text;
    size_t text_len;
    const char *event_id;
    size_t event_id_len;
    const char *request_id;
    size_t request_id_len;
    const char *variant;
    size_t variant_len;
};

enum dr_history_log_kind { DR_HISTORY_LOG_EVENT = 1, DR_HISTORY_LOG_IMPRESSION = 2 };

struct dr_history_opts {
    size_t map_size_bytes; /* LMDB map size; 0 = 1 GiB (LMDB's own 10 MiB default is too small) */
    /* Redis only. */
    const char *key_prefix; /* namespace of every key; NULL or "" = "driftrec:" */
    int timeout_ms;         /* connect and command timeout; 0 = 2000 */
    /* Open a Redis that would lose acknowledged writes (appendonly no, appendfsync other than
     * always, or settings CONFIG GET may not read); dr_history_get_info then says so.  Without
     * it, such a Redis is refused. */
    bool allow_volatile;
    /* After each write, WAIT until this many replicas have it (0 = none), at most half the
     * timeout; fewer: the write fails with DR_ERR_UNAVAILABLE (it is on the primary: a retry
     * with the same event_ids stores nothing twice). */
    int wait_replicas;
};

/* True when target names a Redis server (redis:// or unix://), not an LMDB directory. */
bool dr_history_is_redis(const char *target);

/* Opens the store: an LMDB directory (which must exist; the store is created in it) or a
 * Redis URL (connects, checks the server's durability settings, loads the scripts).
 * *out: returns owned (free with dr_history_close). */
enum dr_status dr_history_open(const char *target, const struct dr_history_opts *opts,
                               struct dr_history **out, struct dr_error *err);
void dr_history_close(struct dr_history *h); /* NULL is a no-op */

/* LMDB environment flags, for the durability test (0 with Redis). */
unsigned int dr_history_env_flags(const struct dr_history *h);

struct dr_history_info {
    const char *backend; /* "lmdb" or "redis" */
    /* An acknowledged write survives a crash of the store's machine: LMDB always (durable
     * commits); Redis when it said appendonly yes and appendfsync always at open. */
    bool is_durable;
    char appendonly[16], appendfsync[16]; /* Redis: CONFIG GET's answers ("" if refused) */
};
void dr_history_get_info(const struct dr_history *h, struct dr_history_info *out);

/* Writes a batch in one durable transaction: each new event goes to the user's history and
 * to the log.  events[i] with a non-empty event_id seen before is skipped (counted in
 * *duplicates, also when repeated inside the batch).  is_stored (may be NULL): n flags, true
 * where events[i] was stored, false where it was a duplicate (the state cache steps exactly
 * the stored ones); its contents are unspecified on failure.  On failure nothing of the batch
 * is stored, except after a Redis timeout or lost connection (DR_ERR_UNAVAILABLE), when the
 * outcome is unknown: a retry is safe for the events that carry an event_id. */
enum dr_status dr_history_write(struct dr_history *h, const struct dr_event *events, size_t n,
                                size_t *accepted, size_t *duplicates, bool *is_stored,
                                struct dr_error *err);

/* One impression: an item a Recommend returned (event_type IMPRESSION, request_id, variant and
 * position set) and the version of the model that chose it.  Strings are borrowed. */
struct dr_impression {
    struct dr_event event;
    const char *model_version;
    size_t model_version_len; /* at most DR_HISTORY_MAX_VERSION_BYTES */
};

#define DR_HISTORY_MAX_VERSION_BYTES 1024

/* Appends n impressions to the log (only: they are not the user's history) in one durable
 * transaction; on failure none is written. */
enum dr_status dr_history_log_impressions(struct dr_history *h, const struct dr_impression *imps,
                                          size_t n, struct dr_error *err);

/* Calls fn for the user's last max_events events, oldest first (max_events 0 = all).
 * packed/len is the stored driftrec.v1.Event, valid only during the call.  Returns the
 * number of events visited.  On failure fn may have been called for some events already. */
typedef void (*dr_history_visit_fn)(void *ctx, const uint8_t *packed, size_t len);
enum dr_status dr_history_read_user(struct dr_history *h, const char *user_id, size_t user_id_len,
                                    size_t max_events, dr_history_visit_fn fn, void *ctx,
                                    size_t *n_visited);

/* One log record as dr_history_read_log hands it out; pointers valid only during the call. */
struct dr_history_log_record {
    uint64_t seq;
    int kind;                  /* enum dr_history_log_kind */
    const char *model_version; /* impressions: the serving model's version; else NULL */
    size_t model_version_len;
    const uint8_t *packed; /* a packed driftrec.v1.Event */
    size_t len;
};

/* Calls fn for every log record in order; for analysis and tests.  A record too short for its
 * kind is passed with packed NULL (damage; the caller says so).  LMDB reads one snapshot;
 * Redis reads the log in pages, so records appended meanwhile may be included. */
typedef void (*dr_history_log_fn)(void *ctx, const struct dr_history_log_record *rec);
enum dr_status dr_history_read_log(struct dr_history *h, dr_history_log_fn fn, void *ctx);

#endif /* DR_HISTORY_H */
