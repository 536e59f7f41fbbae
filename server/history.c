/* history.c: the history store's API (history.h): the LMDB backend, and dispatch to the Redis
 * backend (history_redis.c) when the store was opened on a Redis URL.  Both store the same
 * bytes: the packed event and the log record format below.
 *
 * Threads: the writes may be called from any thread; LMDB serialises writers with its own
 * lock, so concurrent callers queue there (the server writes an Ingest batch on the worker
 * that runs it, and impressions from the impression log's one writer thread, many responses
 * per transaction).  Reads use read-only transactions, MDB_NOTLS so a worker thread may hold
 * several.
 */
#include "history.h"
#include "history_redis.h"

#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driftrec.pb-c.h"

struct dr_history {
    struct dr__history_redis *redis; /* not NULL: the Redis backend, env unused */
    MDB_env *env;
    MDB_dbi dbi_events, dbi_event_ids, dbi_log, dbi_meta;
};

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

void dr__history_put_ts_key(uint8_t out[8], int64_t ts)
{
    put_be64(out, (uint64_t)ts ^ ((uint64_t)1 << 63));
}

bool dr_history_is_redis(const char *target)
{
    return target && (strncmp(target, "redis://", 8) == 0 || strncmp(target, "unix://", 7) == 0);
}

enum dr_status dr_history_open(const char *path, const struct dr_history_opts *opts,
                               struct dr_history **out, struct dr_error *err)
{
    struct dr_history *h = calloc(1, sizeof *h);
    if (!h)
        return dr_error_set(err, DR_ERR_NOMEM, "history: out of memory");
    if (dr_history_is_redis(path)) {
        enum dr_status st = dr__history_redis_open(path, opts, &h->redis, err);
        if (st != DR_OK) {
            free(h);
            return st;
        }
        *out = h;
        return DR_OK;
    }
    size_t map_size = opts && opts->map_size_bytes ? opts->map_size_bytes : (size_t)1 << 30;
    int rc = mdb_env_create(&h->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(h->env, 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize(h->env, map_size);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(h->env, 256);
    /* Durable by default: no MDB_NOSYNC, MDB_NOMETASYNC, MDB_MAPASYNC. */
    if (rc == 0)
        rc = mdb_env_open(h->env, path, MDB_NOTLS, 0600);
    if (rc != 0) {
        dr_error_set(err, DR_ERR_IO, "history: cannot open LMDB environment at %s: %s", path,
                     mdb_strerror(rc));
        if (h->env)
            mdb_env_close(h->env);
        free(h);
        return DR_ERR_IO;
    }
    MDB_txn *txn;
    rc = mdb_txn_begin(h->env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "events", MDB_CREATE, &h->dbi_events);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "event_ids", MDB_CREATE, &h->dbi_event_ids);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "log", MDB_CREATE | MDB_INTEGERKEY, &h->dbi_log);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &h->dbi_meta);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0) {
        dr_error_set(err, DR_ERR_IO, "history: cannot open databases in %s: %s", path,
                     mdb_strerror(rc));
        mdb_env_close(h->env);
        free(h);
        return DR_ERR_IO;
    }
    *out = h;
    return DR_OK;
}

void dr_history_close(struct dr_history *h)
{
    if (!h)
        return;
    if (h->redis)
        dr__history_redis_close(h->redis);
    else
        mdb_env_close(h->env);
    free(h);
}

unsigned int dr_history_env_flags(const struct dr_history *h)
{
    unsigned int flags = 0;
    if (!h->redis)
        mdb_env_get_flags(h->env, &flags);
    return flags;
}

void dr_history_get_info(const struct dr_history *h, struct dr_history_info *out)
{
    if (h->redis) {
        dr__history_redis_get_info(h->redis, out);
        return;
    }
    unsigned int flags = dr_history_env_flags(h);
    *out = (struct dr_history_info){
        .backend = "lmdb",
        .is_durable = !(flags & (MDB_NOSYNC | MDB_NOMETASYNC | MDB_MAPASYNC)),
    };
}

static ProtobufCBinaryData bin(const char *p, size_t len)
{
    ProtobufCBinaryData b = {.len = len, .data = (uint8_t *)(uintptr_t)p};
    return b;
}

uint8_t *dr__history_pack_event(const struct dr_event *e, size_t *len)
{
    Driftrec__V1__Event m = DRIFTREC__V1__EVENT__INIT;
    m.has_user_id = 1;
    m.user_id = bin(e->user_id, e->user_id_len);
    m.has_item_id = 1;
    m.item_id = bin(e->item_id, e->item_id_len);
    m.has_ts = 1;
    m.ts = e->ts;
    m.has_event_type = 1;
    m.event_type = (Driftrec__V1__EventType)e->event_type;
    m.has_dwell_s = e->has_dwell_s;
    m.dwell_s = e->dwell_s;
    m.has_amount = e->has_amount;
    m.amount = e->amount;
    m.has_rating = e->has_rating;
    m.rating = e->rating;
    m.has_position = e->has_position;
    m.position = e->position;
    m.has_text = e->text_len > 0;
    m.text = bin(e->text, e->text_len);
    m.has_event_id = e->event_id_len > 0;
    m.event_id = bin(e->event_id, e->event_id_len);
    m.has_request_id = e->request_id_len > 0;
    m.request_id = bin(e->request_id, e->request_id_len);
    m.has_variant = e->variant_len > 0;
    m.variant = bin(e->variant, e->variant_len);
    size_t body = driftrec__v1__event__get_packed_size(&m);
    uint8_t *buf = malloc(body ? body : 1);
    if (!buf)
        return NULL;
    driftrec__v1__event__pack(&m, buf);
    *len = body;
    return buf;
}

static int next_seq(MDB_txn *txn, MDB_dbi meta, uint64_t *seq)
{
    MDB_val key = {.mv_size = 8, .mv_data = "next_seq"}, val;
    int rc = mdb_get(txn, meta, &key, &val);
    if (rc == MDB_NOTFOUND) {
        *seq = 1;
        return 0;
    }
    if (rc == 0 && val.mv_size == 8)
        *seq = get_be64(val.mv_data);
    return rc;
}

static int put_next_seq(MDB_txn *txn, MDB_dbi meta, uint64_t seq)
{
    uint8_t seq_be[8];
    put_be64(seq_be, seq);
    MDB_val key = {.mv_size = 8, .mv_data = "next_seq"};
    MDB_val val = {.mv_size = 8, .mv_data = seq_be};
    return mdb_put(txn, meta, &key, &val, 0);
}

/* Appends log record seq: the kind byte, for impressions the model version (be16 length, bytes),
 * then the packed event.  MDB_RESERVE lets the record be written in place. */
static int append_log(MDB_txn *txn, MDB_dbi log, uint64_t seq, enum dr_history_log_kind kind,
                      const char *version, size_t version_len, const uint8_t *packed, size_t len)
{
    size_t header = kind == DR_HISTORY_LOG_IMPRESSION ? 3 + version_len : 1;
    size_t seq_key = (size_t)seq;
    MDB_val key = {.mv_size = sizeof seq_key, .mv_data = &seq_key};
    MDB_val val = {.mv_size = header + len, .mv_data = NULL};
    int rc = mdb_put(txn, log, &key, &val, MDB_APPEND | MDB_RESERVE);
    if (rc != 0)
        return rc;
    uint8_t *p = val.mv_data;
    p[0] = (uint8_t)kind;
    if (kind == DR_HISTORY_LOG_IMPRESSION) {
        p[1] = (uint8_t)(version_len >> 8);
        p[2] = (uint8_t)(version_len & 0xff);
        memcpy(p + 3, version, version_len);
    }
    memcpy(p + header, packed, len);
    return 0;
}

static enum dr_status fail_write(MDB_txn *txn, int rc, const char *what, size_t n,
                                 struct dr_error *err)
{
    mdb_txn_abort(txn);
    enum dr_status st = rc == ENOMEM ? DR_ERR_NOMEM : rc == EINVAL ? DR_ERR_INVALID_ARG : DR_ERR_IO;
    return dr_error_set(err, st, "history: write of %zu %s failed: %s", n, what,
                        rc == EINVAL ? "bad user_id or model version" : mdb_strerror(rc));
}

enum dr_status dr_history_write(struct dr_history *h, const struct dr_event *events, size_t n,
                                size_t *accepted, size_t *duplicates, bool *is_stored,
                                struct dr_error *err)
{
    if (h->redis)
        return dr__history_redis_write(h->redis, events, n, accepted, duplicates, is_stored, err);
    MDB_txn *txn;
    int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
    if (rc != 0)
        return dr_error_set(err, DR_ERR_IO, "history: begin: %s", mdb_strerror(rc));
    uint64_t seq = 1;
    rc = next_seq(txn, h->dbi_meta, &seq);
    size_t n_accepted = 0, n_dups = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct dr_event *e = &events[i];
        if (e->user_id_len == 0 || e->user_id_len > DR_HISTORY_MAX_ID_BYTES) {
            rc = EINVAL;
            break;
        }
        uint8_t seq_be[8];
        put_be64(seq_be, seq);
        if (e->event_id_len > 0) {
            MDB_val key = {.mv_size = e->event_id_len, .mv_data = (void *)(uintptr_t)e->event_id};
            MDB_val val = {.mv_size = 8, .mv_data = seq_be};
            rc = mdb_put(txn, h->dbi_event_ids, &key, &val, MDB_NOOVERWRITE);
            if (rc == MDB_KEYEXIST) {
                n_dups++;
                rc = 0;
                if (is_stored)
                    is_stored[i] = false;
                continue;
            }
            if (rc != 0)
                break;
        }
        size_t len;
        uint8_t *packed = dr__history_pack_event(e, &len);
        if (!packed) {
            rc = ENOMEM;
            break;
        }
        uint8_t key_buf[DR_HISTORY_MAX_ID_BYTES + 17];
        memcpy(key_buf, e->user_id, e->user_id_len);
        key_buf[e->user_id_len] = 0;
        dr__history_put_ts_key(key_buf + e->user_id_len + 1, e->ts);
        put_be64(key_buf + e->user_id_len + 9, seq);
        MDB_val key = {.mv_size = e->user_id_len + 17, .mv_data = key_buf};
        MDB_val val = {.mv_size = len, .mv_data = packed};
        rc = mdb_put(txn, h->dbi_events, &key, &val, 0);
        if (rc == 0)
            rc = append_log(txn, h->dbi_log, seq, DR_HISTORY_LOG_EVENT, NULL, 0, packed, len);
        free(packed);
        if (is_stored)
            is_stored[i] = true;
        seq++;
        n_accepted++;
    }
    if (rc == 0)
        rc = put_next_seq(txn, h->dbi_meta, seq);
    if (rc != 0)
        return fail_write(txn, rc, "events", n, err);
    rc = mdb_txn_commit(txn); /* fsync: durable when this returns 0 */
    if (rc != 0)
        return dr_error_set(err, DR_ERR_IO, "history: commit: %s", mdb_strerror(rc));
    if (accepted)
        *accepted = n_accepted;
    if (duplicates)
        *duplicates = n_dups;
    return DR_OK;
}

enum dr_status dr_history_log_impressions(struct dr_history *h, const struct dr_impression *imps,
                                          size_t n, struct dr_error *err)
{
    if (h->redis)
        return dr__history_redis_log_impressions(h->redis, imps, n, err);
    MDB_txn *txn;
    int rc = mdb_txn_begin(h->env, NULL, 0, &txn);
    if (rc != 0)
        return dr_error_set(err, DR_ERR_IO, "history: begin: %s", mdb_strerror(rc));
    uint64_t seq = 1;
    rc = next_seq(txn, h->dbi_meta, &seq);
    for (size_t i = 0; i < n && rc == 0; i++, seq++) {
        const struct dr_impression *imp = &imps[i];
        if (imp->event.user_id_len == 0 || imp->event.user_id_len > DR_HISTORY_MAX_ID_BYTES ||
            imp->model_version_len > DR_HISTORY_MAX_VERSION_BYTES) {
            rc = EINVAL;
            break;
        }
        size_t len;
        uint8_t *packed = dr__history_pack_event(&imp->event, &len);
        if (!packed) {
            rc = ENOMEM;
            break;
        }
        rc = append_log(txn, h->dbi_log, seq, DR_HISTORY_LOG_IMPRESSION, imp->model_version,
                        imp->model_version_len, packed, len);
        free(packed);
    }
    if (rc == 0)
        rc = put_next_seq(txn, h->dbi_meta, seq);
    if (rc != 0)
        return fail_write(txn, rc, "impressions", n, err);
    rc = mdb_txn_commit(txn); /* fsync: durable when this returns 0 */
    if (rc != 0)
        return dr_error_set(err, DR_ERR_IO, "history: commit: %s", mdb_strerror(rc));
    return DR_OK;
}

enum dr_status dr_history_read_user(struct dr_history *h, const char *user_id, size_t user_id_len,
                                    size_t max_events, dr_history_visit_fn fn, void *ctx,
                                    size_t *n_visited)
{
    if (user_id_len == 0 || user_id_len > DR_HISTORY_MAX_ID_BYTES)
        return DR_ERR_INVALID_ARG;
    if (h->redis)
        return dr__history_redis_read_user(h->redis, user_id, user_id_len, max_events, fn, ctx,
                                           n_visited);
    MDB_txn *txn;
    MDB_cursor *cur;
    if (mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn) != 0)
        return DR_ERR_IO;
    if (mdb_cursor_open(txn, h->dbi_events, &cur) != 0) {
        mdb_txn_abort(txn);
        return DR_ERR_IO;
    }
    uint8_t prefix[DR_HISTORY_MAX_ID_BYTES + 1];
    memcpy(prefix, user_id, user_id_len);
    prefix[user_id_len] = 0;
    size_t plen = user_id_len + 1;

    /* Find the first key past the user's range, then walk back max_events: the history is
     * visited oldest first without reading the older part. */
    uint8_t past[DR_HISTORY_MAX_ID_BYTES + 1];
    memcpy(past, prefix, plen);
    past[user_id_len] = 1; /* user_id \1 sorts after every user_id \0 ... key */
    MDB_val key = {.mv_size = plen, .mv_data = past}, val;
    int rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(cur, &key, &val, MDB_PREV)
                 : mdb_cursor_get(cur, &key, &val, MDB_LAST);
    size_t back = 0;
    while (rc == 0 && key.mv_size == plen + 16 && memcmp(key.mv_data, prefix, plen) == 0) {
        back++;
        if (max_events && back == max_events)
            break;
        rc = mdb_cursor_get(cur, &key, &val, MDB_PREV);
    }
    size_t visited = 0;
    if (back > 0) {
        if (!(rc == 0 && key.mv_size == plen + 16 && memcmp(key.mv_data, prefix, plen) == 0))
            rc = mdb_cursor_get(cur, &key, &val, rc == 0 ? MDB_NEXT : MDB_FIRST);
        while (rc == 0 && visited < back && key.mv_size == plen + 16 &&
               memcmp(key.mv_data, prefix, plen) == 0) {
            fn(ctx, val.mv_data, val.mv_size);
            visited++;
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (n_visited)
        *n_visited = visited;
    return DR_OK;
}

void dr__history_parse_log_record(uint64_t seq, const uint8_t *p, size_t len,
                                  struct dr_history_log_record *rec)
{
    *rec = (struct dr_history_log_record){.seq = seq, .kind = len ? p[0] : 0};
    /* Where the packed event starts; past the end: a damaged record (packed stays NULL). */
    size_t header = len ? 1 : SIZE_MAX;
    if (rec->kind == DR_HISTORY_LOG_IMPRESSION)
        header = len >= 3 ? 3 + ((size_t)p[1] << 8 | p[2]) : SIZE_MAX;
    if (header <= len) {
        if (rec->kind == DR_HISTORY_LOG_IMPRESSION) {
            rec->model_version = (const char *)p + 3;
            rec->model_version_len = header - 3;
        }
        rec->packed = p + header;
        rec->len = len - header;
    }
}

enum dr_status dr_history_read_log(struct dr_history *h, dr_history_log_fn fn, void *ctx)
{
    if (h->redis)
        return dr__history_redis_read_log(h->redis, fn, ctx);
    MDB_txn *txn;
    MDB_cursor *cur;
    if (mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn) != 0)
        return DR_ERR_IO;
    if (mdb_cursor_open(txn, h->dbi_log, &cur) != 0) {
        mdb_txn_abort(txn);
        return DR_ERR_IO;
    }
    MDB_val key, val;
    int rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (rc == 0) {
        size_t seq;
        memcpy(&seq, key.mv_data, sizeof seq);
        struct dr_history_log_record rec;
        dr__history_parse_log_record((uint64_t)seq, val.mv_data, val.mv_size, &rec);
        fn(ctx, &rec);
        rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return DR_OK;
}
