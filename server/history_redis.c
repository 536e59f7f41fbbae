/* history_redis.c: the history store on Redis (hiredis), shared by many server replicas.
 *
 * Key layout under the prefix P (default "driftrec:"; docs/history.md):
 *   P seq          string: the last seq handed out (INCR)
 *   P ids          hash: event_id -> seq; an event_id is applied once
 *   P u:<user_id>  sorted set, every score 0: members be64(ts ^ sign bit) be64(seq) packed
 *                  Event, so the lexical order is LMDB's key order, (ts, arrival)
 *   P log          stream: entry id <seq>-0, one field "r": the log record (history.h)
 * A batch is one Lua script (EVALSHA): the idempotency check, the seq, the user's sorted set
 * and the log entry of every event in it run with no other command in between, and Redis
 * writes the script's effects to its AOF as one MULTI/EXEC block, which a restart after a
 * crash applies whole or not at all.  The script writes nothing before its checks pass, and
 * its first write is the one Redis refuses when out of memory, so a refused batch leaves
 * nothing behind.  With appendfsync always Redis fsyncs the AOF before it replies, so an
 * acknowledged batch is on disk: open checks that (CONFIG GET) and refuses a Redis that would
 * lose acknowledged writes unless allow_volatile.
 *
 * Threads: any thread may call any function.  Connections live in a small pool (mutex
 * "history_redis_pool", a leaf lock held only to push or pop): a call takes one, or connects
 * a new one, so calls from several workers run concurrently.  A connection that failed is
 * dropped with every idle one (Redis likely restarted), and the call fails with
 * DR_ERR_UNAVAILABLE; the next call connects again.  hiredis 0.14 has no TLS and this file
 * sends no AUTH: Redis must be on loopback, a unix socket or a private network.
 */
#include "history_redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDLE         64   /* pooled connections beyond this are closed */
#define LOG_PAGE         1024 /* log entries read per XRANGE */
#define MAX_PREFIX_BYTES 200

/* KEYS: P seq, P ids, P log, then the user key of each event.  ARGV: per event, its event_id
 * ("" for none), be64(ts ^ sign bit), the packed event.  Returns 1 (stored) or 0 (a duplicate
 * event_id) per event. */
static const char write_script[] =
    "local function be64(n)\n"
    "  local b = {}\n"
    "  for i = 8, 1, -1 do b[i] = string.char(n % 256); n = math.floor(n / 256) end\n"
    "  return table.concat(b)\n"
    "end\n"
    "local out = {}\n"
    "for i = 1, #KEYS - 3 do\n"
    "  local eid, ts, packed = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]\n"
    "  if eid ~= '' and redis.call('HEXISTS', KEYS[2], eid) == 1 then\n"
    "    out[i] = 0\n"
    "  else\n"
    "    local seq = redis.call('INCR', KEYS[1])\n"
    "    if eid ~= '' then redis.call('HSET', KEYS[2], eid, seq) end\n"
    "    redis.call('ZADD', KEYS[3 + i], 0, ts .. be64(seq) .. packed)\n"
    "    redis.call('XADD', KEYS[3], string.format('%d-0', seq), 'r', '\\1' .. packed)\n"
    "    out[i] = 1\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS: P seq, P log.  ARGV: log records.  Returns their number. */
static const char impressions_script[] =
    "local first = redis.call('INCRBY', KEYS[1], #ARGV) - #ARGV\n"
    "for i = 1, #ARGV do\n"
    "  redis.call('XADD', KEYS[2], string.format('%d-0', first + i), 'r', ARGV[i])\n"
    "end\n"
    "return #ARGV\n";

struct dr__history_redis {
    char where[300]; /* "redis 127.0.0.1:6379" or "redis /run/redis.sock", for messages */
    char host[256];  /* a TCP host, or the unix socket's path */
    bool is_unix;
    int port, db;
    struct timeval timeout;
    int wait_replicas, wait_timeout_ms;
    char prefix[MAX_PREFIX_BYTES + 1];
    size_t prefix_len;
    char key_seq[MAX_PREFIX_BYTES + 4], key_ids[MAX_PREFIX_BYTES + 4],
        key_log[MAX_PREFIX_BYTES + 4];
    char write_sha[41], impressions_sha[41];
    struct dr_history_info info;
    pthread_mutex_t lock; /* "history_redis_pool": guards idle, n_idle */
    redisContext *idle[MAX_IDLE];
    size_t n_idle;
};

/* ---- URL and connections ------------------------------------------------------------------ */

/* redis://HOST[:PORT][/DB] (HOST may be [IPv6]) or unix:///PATH. */
static enum dr_status parse_url(struct dr__history_redis *r, const char *url, struct dr_error *err)
{
    r->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        if (path[0] != '/' || strlen(path) >= sizeof r->host)
            return dr_error_set(err, DR_ERR_INVALID_ARG,
                                "history: %s: expected unix:///absolute/path/to/socket", url);
        r->is_unix = true;
        snprintf(r->host, sizeof r->host, "%s", path);
        snprintf(r->where, sizeof r->where, "redis %s", path);
        return DR_OK;
    }
    const char *p = url + 8;             /* past redis:// */
    if (memchr(p, '@', strcspn(p, "/"))) /* not echoed: it may hold a password */
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "history: a Redis URL with a user or password is not supported "
                            "(no AUTH: keep Redis on loopback, a socket or a private network)");
    const char *host_end;
    const char *host = p;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end)
            return dr_error_set(err, DR_ERR_INVALID_ARG, "history: %s: unclosed [", url);
        p = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/");
        p = host_end;
    }
    size_t host_len = (size_t)(host_end - host);
    if (host_len == 0 || host_len >= sizeof r->host)
        return dr_error_set(err, DR_ERR_INVALID_ARG, "history: %s: expected redis://HOST:PORT[/DB]",
                            url);
    memcpy(r->host, host, host_len);
    r->host[host_len] = '\0';
    char *end;
    if (*p == ':') {
        errno = 0;
        long port = strtol(p + 1, &end, 10);
        if (errno || end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/'))
            return dr_error_set(err, DR_ERR_INVALID_ARG, "history: %s: bad port", url);
        r->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        errno = 0;
        long db = strtol(p + 1, &end, 10);
        if (errno || end == p + 1 || *end || db < 0 || db > 1000000)
            return dr_error_set(err, DR_ERR_INVALID_ARG, "history: %s: bad database number", url);
        r->db = (int)db;
    } else if (*p && strcmp(p, "/") != 0) {
        return dr_error_set(err, DR_ERR_INVALID_ARG, "history: %s: expected redis://HOST:PORT[/DB]",
                            url);
    }
    snprintf(r->where, sizeof r->where, "redis %s:%d", r->host, r->port);
    return DR_OK;
}

/* A new connection with the timeouts set and the database selected; NULL with err set. */
static redisContext *connect_new(struct dr__history_redis *r, struct dr_error *err)
{
    redisContext *c = r->is_unix ? redisConnectUnixWithTimeout(r->host, r->timeout)
                                 : redisConnectWithTimeout(r->host, r->port, r->timeout);
    if (!c) {
        dr_error_set(err, DR_ERR_NOMEM, "history: %s: out of memory", r->where);
        return NULL;
    }
    if (c->err) {
        dr_error_set(err, DR_ERR_UNAVAILABLE, "history: %s: cannot connect: %s", r->where,
                     c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, r->timeout) != REDIS_OK || (!r->is_unix && redisEnableKeepAlive(c))) {
        dr_error_set(err, DR_ERR_UNAVAILABLE, "history: %s: cannot set the timeout: %s", r->where,
                     c->errstr);
        redisFree(c);
        return NULL;
    }
    if (r->db != 0) {
        redisReply *rep = redisCommand(c, "SELECT %d", r->db);
        bool is_ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (!is_ok)
            dr_error_set(err, rep ? DR_ERR_INVALID_ARG : DR_ERR_UNAVAILABLE,
                         "history: %s: SELECT %d: %s", r->where, r->db, rep ? rep->str : c->errstr);
        freeReplyObject(rep);
        if (!is_ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* True when an idle connection has something to read: the server closed it (EOF), so it is
 * dead.  One poll instead of a failed call after each Redis restart. */
static bool is_closed(const redisContext *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

static redisContext *take(struct dr__history_redis *r, struct dr_error *err)
{
    for (;;) {
        pthread_mutex_lock(&r->lock);
        redisContext *c = r->n_idle ? r->idle[--r->n_idle] : NULL;
        pthread_mutex_unlock(&r->lock);
        if (!c)
            return connect_new(r, err);
        if (!is_closed(c))
            return c;
        redisFree(c);
    }
}

/* Returns a connection after a call: kept when it still works, else closed along with every
 * idle one (after a failure they are likely dead too). */
static void give_back(struct dr__history_redis *r, redisContext *c)
{
    redisContext *dead[MAX_IDLE];
    size_t n_dead = 0;
    pthread_mutex_lock(&r->lock);
    if (!c->err && r->n_idle < MAX_IDLE) {
        r->idle[r->n_idle++] = c;
        c = NULL;
    } else if (c->err) {
        memcpy(dead, r->idle, r->n_idle * sizeof dead[0]);
        n_dead = r->n_idle;
        r->n_idle = 0;
    }
    pthread_mutex_unlock(&r->lock);
    if (c)
        redisFree(c);
    for (size_t i = 0; i < n_dead; i++)
        redisFree(dead[i]);
}

/* Runs one command on c.  A reply that is an error is returned as DR_ERR_IO with its text (a
 * NOSCRIPT is left to the caller: *reply set); no reply: DR_ERR_UNAVAILABLE. */
static enum dr_status run(struct dr__history_redis *r, redisContext *c, int argc, const char **argv,
                          const size_t *argv_len, redisReply **reply, struct dr_error *err)
{
    *reply = redisCommandArgv(c, argc, argv, argv_len);
    if (!*reply) {
        bool is_timeout = c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK ||
                                                     strstr(c->errstr, "temporarily") != NULL);
        return dr_error_set(err, DR_ERR_UNAVAILABLE, "history: %s: %s%s", r->where,
                            is_timeout ? "no answer within the timeout" : c->errstr,
                            is_timeout ? " (a write's outcome is unknown)" : "");
    }
    if ((*reply)->type == REDIS_REPLY_ERROR && strncmp((*reply)->str, "NOSCRIPT", 8) != 0) {
        dr_error_set(err, DR_ERR_IO, "history: %s: %s: %s", r->where, argv[0], (*reply)->str);
        freeReplyObject(*reply);
        *reply = NULL;
        return DR_ERR_IO;
    }
    return DR_OK;
}

/* EVALSHA of a loaded script, or EVAL with its text when Redis lost it (a restart without
 * the script cache, SCRIPT FLUSH).  argv[0], argv[1]: left for "EVALSHA" and the sha. */
static enum dr_status eval(struct dr__history_redis *r, redisContext *c, const char *sha,
                           const char *script, int argc, const char **argv, size_t *argv_len,
                           redisReply **reply, struct dr_error *err)
{
    argv[0] = "EVALSHA";
    argv_len[0] = 7;
    argv[1] = sha;
    argv_len[1] = 40;
    enum dr_status st = run(r, c, argc, argv, argv_len, reply, err);
    if (st == DR_OK && (*reply)->type == REDIS_REPLY_ERROR) { /* NOSCRIPT */
        freeReplyObject(*reply);
        argv[0] = "EVAL";
        argv_len[0] = 4;
        argv[1] = script;
        argv_len[1] = strlen(script);
        st = run(r, c, argc, argv, argv_len, reply, err);
    }
    if (st == DR_OK && (*reply)->type == REDIS_REPLY_ERROR) {
        st = dr_error_set(err, DR_ERR_IO, "history: %s: %s", r->where, (*reply)->str);
        freeReplyObject(*reply);
        *reply = NULL;
    }
    return st;
}

/* After a write on c: WAIT for the replicas the options ask for. */
static enum dr_status wait_replicas(struct dr__history_redis *r, redisContext *c,
                                    struct dr_error *err)
{
    if (r->wait_replicas <= 0)
        return DR_OK;
    redisReply *rep = redisCommand(c, "WAIT %d %d", r->wait_replicas, r->wait_timeout_ms);
    if (!rep)
        return dr_error_set(err, DR_ERR_UNAVAILABLE, "history: %s: WAIT: %s", r->where, c->errstr);
    long long n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    if (n < r->wait_replicas)
        return dr_error_set(err, DR_ERR_UNAVAILABLE,
                            "history: %s: stored on the primary, but %lld of %d replicas "
                            "acknowledged it within %d ms",
                            r->where, n < 0 ? 0 : n, r->wait_replicas, r->wait_timeout_ms);
    return DR_OK;
}

/* ---- open, close, info -------------------------------------------------------------------- */

/* CONFIG GET name into out ("" when refused, as managed services may). */
static enum dr_status config_get(struct dr__history_redis *r, redisContext *c, const char *name,
                                 char *out, size_t out_size, struct dr_error *err)
{
    out[0] = '\0';
    redisReply *rep = redisCommand(c, "CONFIG GET %s", name);
    if (!rep)
        return dr_error_set(err, DR_ERR_UNAVAILABLE, "history: %s: CONFIG GET: %s", r->where,
                            c->errstr);
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
        rep->element[1]->type == REDIS_REPLY_STRING)
        snprintf(out, out_size, "%s", rep->element[1]->str);
    freeReplyObject(rep);
    return DR_OK;
}

static enum dr_status load_script(struct dr__history_redis *r, redisContext *c, const char *script,
                                  char sha[41], struct dr_error *err)
{
    redisReply *rep = redisCommand(c, "SCRIPT LOAD %s", script);
    if (!rep)
        return dr_error_set(err, DR_ERR_UNAVAILABLE, "history: %s: SCRIPT LOAD: %s", r->where,
                            c->errstr);
    enum dr_status st = DR_OK;
    if (rep->type == REDIS_REPLY_STRING && rep->len == 40)
        memcpy(sha, rep->str, 41);
    else
        st = dr_error_set(err, DR_ERR_IO, "history: %s: SCRIPT LOAD: %s", r->where,
                          rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    freeReplyObject(rep);
    return st;
}

enum dr_status dr__history_redis_open(const char *url, const struct dr_history_opts *opts,
                                      struct dr__history_redis **out, struct dr_error *err)
{
    struct dr__history_redis *r = calloc(1, sizeof *r);
    if (!r)
        return dr_error_set(err, DR_ERR_NOMEM, "history: out of memory");
    enum dr_status st = parse_url(r, url, err);
    if (st != DR_OK) {
        free(r);
        return st;
    }
    const char *prefix =
        opts && opts->key_prefix && opts->key_prefix[0] ? opts->key_prefix : "driftrec:";
    r->prefix_len = strlen(prefix);
    if (r->prefix_len > MAX_PREFIX_BYTES) {
        free(r);
        return dr_error_set(err, DR_ERR_INVALID_ARG, "history: key prefix longer than %d bytes",
                            MAX_PREFIX_BYTES);
    }
    memcpy(r->prefix, prefix, r->prefix_len + 1);
    snprintf(r->key_seq, sizeof r->key_seq, "%sseq", prefix);
    snprintf(r->key_ids, sizeof r->key_ids, "%sids", prefix);
    snprintf(r->key_log, sizeof r->key_log, "%slog", prefix);
    int timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    r->timeout.tv_sec = timeout_ms / 1000;
    r->timeout.tv_usec = (timeout_ms % 1000) * 1000;
    r->wait_replicas = opts ? opts->wait_replicas : 0;
    r->wait_timeout_ms = timeout_ms / 2 > 0 ? timeout_ms / 2 : 1;
    pthread_mutex_init(&r->lock, NULL);

    redisContext *c = connect_new(r, err);
    if (!c) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        return err ? err->code : DR_ERR_UNAVAILABLE;
    }
    r->info.backend = "redis";
    st = config_get(r, c, "appendonly", r->info.appendonly, sizeof r->info.appendonly, err);
    if (st == DR_OK)
        st = config_get(r, c, "appendfsync", r->info.appendfsync, sizeof r->info.appendfsync, err);
    r->info.is_durable =
        strcmp(r->info.appendonly, "yes") == 0 && strcmp(r->info.appendfsync, "always") == 0;
    if (st == DR_OK && !r->info.is_durable && !(opts && opts->allow_volatile))
        st = dr_error_set(
            err, DR_ERR_INVALID_ARG,
            "history: %s would lose acknowledged events (appendonly %s, appendfsync %s): set "
            "appendonly yes and appendfsync always, or allow it with --history-allow-volatile",
            r->where, r->info.appendonly[0] ? r->info.appendonly : "unknown",
            r->info.appendfsync[0] ? r->info.appendfsync : "unknown");
    if (st == DR_OK)
        st = load_script(r, c, write_script, r->write_sha, err);
    if (st == DR_OK)
        st = load_script(r, c, impressions_script, r->impressions_sha, err);
    if (st != DR_OK) {
        redisFree(c);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return st;
    }
    r->idle[r->n_idle++] = c;
    *out = r;
    return DR_OK;
}

void dr__history_redis_close(struct dr__history_redis *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_idle; i++)
        redisFree(r->idle[i]);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void dr__history_redis_get_info(const struct dr__history_redis *r, struct dr_history_info *out)
{
    *out = r->info;
}

/* ---- writes ------------------------------------------------------------------------------- */

/* The arguments of one script call: argv[0..1] for the command and sha, then keys and args.
 * One allocation; the user keys and ts keys live in bytes. */
struct args {
    const char **argv;
    size_t *argv_len;
    int argc;
    char *bytes;
};

static bool args_init(struct args *a, size_t n_argv, size_t n_bytes)
{
    a->argv = malloc(n_argv * sizeof *a->argv);
    a->argv_len = malloc(n_argv * sizeof *a->argv_len);
    a->bytes = malloc(n_bytes ? n_bytes : 1);
    a->argc = 0;
    return a->argv && a->argv_len && a->bytes;
}

static void args_deinit(struct args *a)
{
    free(a->argv);
    free(a->argv_len);
    free(a->bytes);
}

static void args_add(struct args *a, const void *p, size_t len)
{
    a->argv[a->argc] = p;
    a->argv_len[a->argc++] = len;
}

enum dr_status dr__history_redis_write(struct dr__history_redis *r, const struct dr_event *events,
                                       size_t n, size_t *accepted, size_t *duplicates,
                                       bool *is_stored, struct dr_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (events[i].user_id_len == 0 || events[i].user_id_len > DR_HISTORY_MAX_ID_BYTES)
            return dr_error_set(err, DR_ERR_INVALID_ARG,
                                "history: write of %zu events failed: bad user_id", n);
    if (n == 0) {
        if (accepted)
            *accepted = 0;
        if (duplicates)
            *duplicates = 0;
        return DR_OK;
    }
    /* argv: EVALSHA sha numkeys, 3 keys, then per event a user key and 3 arguments. */
    size_t n_argv = 6 + 4 * n;
    size_t n_bytes = 32 + n * (r->prefix_len + 2 + DR_HISTORY_MAX_ID_BYTES + 8);
    struct args a;
    uint8_t **packed = calloc(n, sizeof *packed);
    enum dr_status st = DR_OK;
    redisContext *c = NULL;
    redisReply *rep = NULL;
    if (!packed || !args_init(&a, n_argv, n_bytes)) {
        if (packed)
            args_deinit(&a);
        free(packed);
        return dr_error_set(err, DR_ERR_NOMEM, "history: write of %zu events: out of memory", n);
    }
    char *numkeys = a.bytes, *at = a.bytes + 32;
    snprintf(numkeys, 32, "%zu", 3 + n);
    args_add(&a, NULL, 0); /* EVALSHA */
    args_add(&a, NULL, 0); /* sha */
    args_add(&a, numkeys, strlen(numkeys));
    args_add(&a, r->key_seq, strlen(r->key_seq));
    args_add(&a, r->key_ids, strlen(r->key_ids));
    args_add(&a, r->key_log, strlen(r->key_log));
    for (size_t i = 0; i < n; i++) { /* the user keys: P u:<user_id> */
        memcpy(at, r->prefix, r->prefix_len);
        memcpy(at + r->prefix_len, "u:", 2);
        memcpy(at + r->prefix_len + 2, events[i].user_id, events[i].user_id_len);
        size_t len = r->prefix_len + 2 + events[i].user_id_len;
        args_add(&a, at, len);
        at += len;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        packed[i] = dr__history_pack_event(&events[i], &len);
        if (!packed[i]) {
            st = dr_error_set(err, DR_ERR_NOMEM, "history: write of %zu events: out of memory", n);
            goto done;
        }
        dr__history_put_ts_key((uint8_t *)at, events[i].ts);
        args_add(&a, events[i].event_id ? events[i].event_id : "", events[i].event_id_len);
        args_add(&a, at, 8);
        args_add(&a, packed[i], len);
        at += 8;
    }
    c = take(r, err);
    if (!c) {
        st = err ? err->code : DR_ERR_UNAVAILABLE;
        goto done;
    }
    st = eval(r, c, r->write_sha, write_script, a.argc, a.argv, a.argv_len, &rep, err);
    if (st == DR_OK && (rep->type != REDIS_REPLY_ARRAY || rep->elements != n))
        st = dr_error_set(err, DR_ERR_IO, "history: %s: unexpected reply to the write script",
                          r->where);
    if (st == DR_OK)
        st = wait_replicas(r, c, err);
    if (st == DR_OK) {
        size_t n_stored = 0;
        for (size_t i = 0; i < n; i++) {
            bool stored = rep->element[i]->type == REDIS_REPLY_INTEGER && rep->element[i]->integer;
            n_stored += stored;
            if (is_stored)
                is_stored[i] = stored;
        }
        if (accepted)
            *accepted = n_stored;
        if (duplicates)
            *duplicates = n - n_stored;
    }
done:
    freeReplyObject(rep);
    if (c)
        give_back(r, c);
    for (size_t i = 0; i < n; i++)
        free(packed[i]);
    free(packed);
    args_deinit(&a);
    return st;
}

enum dr_status dr__history_redis_log_impressions(struct dr__history_redis *r,
                                                 const struct dr_impression *imps, size_t n,
                                                 struct dr_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (imps[i].event.user_id_len == 0 || imps[i].event.user_id_len > DR_HISTORY_MAX_ID_BYTES ||
            imps[i].model_version_len > DR_HISTORY_MAX_VERSION_BYTES)
            return dr_error_set(err, DR_ERR_INVALID_ARG,
                                "history: write of %zu impressions failed: bad user_id or model "
                                "version",
                                n);
    if (n == 0)
        return DR_OK;
    struct args a;
    uint8_t **records = calloc(n, sizeof *records);
    if (!records || !args_init(&a, 5 + n, 0)) {
        if (records)
            args_deinit(&a);
        free(records);
        return dr_error_set(err, DR_ERR_NOMEM, "history: write of %zu impressions: out of memory",
                            n);
    }
    enum dr_status st = DR_OK;
    redisContext *c = NULL;
    redisReply *rep = NULL;
    args_add(&a, NULL, 0);
    args_add(&a, NULL, 0);
    args_add(&a, "2", 1);
    args_add(&a, r->key_seq, strlen(r->key_seq));
    args_add(&a, r->key_log, strlen(r->key_log));
    for (size_t i = 0; i < n; i++) { /* kind, be16 version length, version, packed event */
        const struct dr_impression *imp = &imps[i];
        size_t len;
        uint8_t *packed = dr__history_pack_event(&imp->event, &len);
        size_t header = 3 + imp->model_version_len;
        records[i] = packed ? malloc(header + len) : NULL;
        if (!records[i]) {
            free(packed);
            st = dr_error_set(err, DR_ERR_NOMEM, "history: write of %zu impressions: out of memory",
                              n);
            goto done;
        }
        records[i][0] = DR_HISTORY_LOG_IMPRESSION;
        records[i][1] = (uint8_t)(imp->model_version_len >> 8);
        records[i][2] = (uint8_t)(imp->model_version_len & 0xff);
        if (imp->model_version_len)
            memcpy(records[i] + 3, imp->model_version, imp->model_version_len);
        memcpy(records[i] + header, packed, len);
        free(packed);
        args_add(&a, records[i], header + len);
    }
    c = take(r, err);
    if (!c) {
        st = err ? err->code : DR_ERR_UNAVAILABLE;
        goto done;
    }
    st = eval(r, c, r->impressions_sha, impressions_script, a.argc, a.argv, a.argv_len, &rep, err);
    if (st == DR_OK)
        st = wait_replicas(r, c, err);
done:
    freeReplyObject(rep);
    if (c)
        give_back(r, c);
    for (size_t i = 0; i < n; i++)
        free(records[i]);
    free(records);
    args_deinit(&a);
    return st;
}

/* ---- reads -------------------------------------------------------------------------------- */

enum dr_status dr__history_redis_read_user(struct dr__history_redis *r, const char *user_id,
                                           size_t user_id_len, size_t max_events,
                                           dr_history_visit_fn fn, void *ctx, size_t *n_visited)
{
    char key[MAX_PREFIX_BYTES + 2 + DR_HISTORY_MAX_ID_BYTES];
    memcpy(key, r->prefix, r->prefix_len);
    memcpy(key + r->prefix_len, "u:", 2);
    memcpy(key + r->prefix_len + 2, user_id, user_id_len);
    char start[32];
    snprintf(start, sizeof start, "%lld", max_events ? -(long long)max_events : 0LL);
    const char *argv[] = {"ZRANGE", key, start, "-1"};
    size_t argv_len[] = {6, r->prefix_len + 2 + user_id_len, strlen(start), 2};
    struct dr_error err = {0};
    redisContext *c = take(r, &err);
    if (!c)
        return err.code;
    redisReply *rep = NULL;
    enum dr_status st = run(r, c, 4, argv, argv_len, &rep, &err);
    give_back(r, c);
    if (st != DR_OK)
        return st;
    size_t visited = 0;
    if (rep->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < rep->elements; i++) {
            const redisReply *m = rep->element[i];
            if (m->type != REDIS_REPLY_STRING)
                continue;
            /* Past the 16-byte (ts, seq) prefix; a shorter member is damage, passed whole so
             * the caller's decoder reports it. */
            size_t skip = m->len >= 16 ? 16 : 0;
            fn(ctx, (const uint8_t *)m->str + skip, m->len - skip);
            visited++;
        }
    } else {
        st = DR_ERR_IO; /* not a sorted set: foreign data under the prefix */
    }
    freeReplyObject(rep);
    if (n_visited)
        *n_visited = visited;
    return st;
}

enum dr_status dr__history_redis_read_log(struct dr__history_redis *r, dr_history_log_fn fn,
                                          void *ctx)
{
    unsigned long long next = 0; /* the first seq of the next page */
    struct dr_error err = {0};
    for (;;) {
        char start[32], count[16];
        snprintf(start, sizeof start, "%llu-0", next);
        snprintf(count, sizeof count, "%d", LOG_PAGE);
        const char *argv[] = {"XRANGE", r->key_log, start, "+", "COUNT", count};
        size_t argv_len[] = {6, strlen(r->key_log), strlen(start), 1, 5, strlen(count)};
        redisContext *c = take(r, &err);
        if (!c)
            return err.code;
        redisReply *rep = NULL;
        enum dr_status st = run(r, c, 6, argv, argv_len, &rep, &err);
        give_back(r, c);
        if (st != DR_OK)
            return st;
        if (rep->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            return DR_ERR_IO;
        }
        size_t n = rep->elements;
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = rep->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING)
                continue;
            unsigned long long seq = strtoull(e->element[0]->str, NULL, 10);
            next = seq + 1;
            const redisReply *fields = e->element[1];
            struct dr_history_log_record rec = {.seq = seq};
            if (fields->type == REDIS_REPLY_ARRAY && fields->elements == 2 &&
                fields->element[1]->type == REDIS_REPLY_STRING)
                dr__history_parse_log_record(seq, (const uint8_t *)fields->element[1]->str,
                                             fields->element[1]->len, &rec);
            fn(ctx, &rec);
        }
        freeReplyObject(rep);
        if (n < LOG_PAGE)
            return DR_OK;
    }
}
