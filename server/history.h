/* history.h: the durable per-user event history and the append-only event log (LMDB).
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
 */
#ifndef DR_HISTORY_H
#define DR_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

/* Keys must fit LMDB's 511-byte limit: user_id + 17 bytes of suffix. */
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
};

/* Opens (creating) the store in directory path; the directory must exist. */
enum dr_status dr_history_open(const char *path, const struct dr_history_opts *opts,
                               struct dr_history **out, struct dr_error *err);
void dr_history_close(struct dr_history *h); /* NULL is a no-op */

/* LMDB environment flags, for the durability test. */
unsigned int dr_history_env_flags(const struct dr_history *h);

/* Writes a batch in one durable transaction: each new event goes to the user's history and
 * to the log.  events[i] with a non-empty event_id seen before is skipped (counted in
 * *duplicates, also when repeated inside the batch).  is_stored (may be NULL): n flags, true
 * where events[i] was stored, false where it was a duplicate (the state cache steps exactly
 * the stored ones); its contents are unspecified on failure.  On failure nothing of the batch
 * is stored. */
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
 * number of events visited. */
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
 * kind is passed with packed NULL (damage; the caller says so). */
typedef void (*dr_history_log_fn)(void *ctx, const struct dr_history_log_record *rec);
enum dr_status dr_history_read_log(struct dr_history *h, dr_history_log_fn fn, void *ctx);

#endif /* DR_HISTORY_H */
