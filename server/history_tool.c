/* history_tool.c: driftrec-history, a read-only look into the history store.
 *   driftrec-history STORE user USER_ID [N] the user's last N events (all if N is 0), JSON lines
 *   driftrec-history STORE log [KIND]       the event log in order, JSON lines: ingested events
 *                                           ("kind": "event") and Recommend's impressions
 *                                           ("kind": "impression", with "model_version"); KIND
 *                                           (event or impression) keeps only that kind
 *   driftrec-history STORE flags            durability: the LMDB environment flags, or Redis's
 *                                           appendonly and appendfsync
 * STORE is an LMDB directory or a Redis URL (redis://HOST:PORT[/DB], unix:///PATH), then
 * optionally --prefix P for the Redis key prefix (the server's --history-prefix).
 * Strings are printed JSON-escaped with cJSON.  The store holds real user ids: the tool is
 * for the service's operators, like the files it reads. */
#include <cjson/cJSON.h>
#include <lmdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driftrec.pb-c.h"
#include "history.h"

static char *dup_bytes(ProtobufCBinaryData b, protobuf_c_boolean has)
{
    char *s = malloc(has ? b.len + 1 : 1);
    if (!s)
        return NULL;
    if (has)
        memcpy(s, b.data, b.len);
    s[has ? b.len : 0] = '\0';
    return s;
}

static void add_string(cJSON *o, const char *key, ProtobufCBinaryData b, protobuf_c_boolean has)
{
    char *s = dup_bytes(b, has);
    if (s && (has || strcmp(key, "text") == 0))
        cJSON_AddStringToObject(o, key, s);
    free(s);
}

/* Prints one stored event as a JSON line; rec (may be NULL) adds the log record's fields. */
static void print_event(const uint8_t *packed, size_t len, const struct dr_history_log_record *rec)
{
    Driftrec__V1__Event *e = packed ? driftrec__v1__event__unpack(NULL, len, packed) : NULL;
    if (!e) {
        printf("{\"error\":\"undecodable record of %zu bytes\"", len);
        if (rec)
            printf(",\"seq\":%llu", (unsigned long long)rec->seq);
        printf("}\n");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (rec) {
        cJSON_AddStringToObject(o, "kind",
                                rec->kind == DR_HISTORY_LOG_IMPRESSION ? "impression" : "event");
        cJSON_AddNumberToObject(o, "seq", (double)rec->seq);
    }
    add_string(o, "user_id", e->user_id, e->has_user_id);
    add_string(o, "item_id", e->item_id, e->has_item_id);
    cJSON_AddNumberToObject(o, "ts", (double)e->ts);
    static const char *const types[] = {"unspecified", "impression", "view",  "click",
                                        "cart",        "purchase",   "review"};
    cJSON_AddStringToObject(o, "event_type",
                            (unsigned)e->event_type < 7 ? types[e->event_type] : "unknown");
    if (e->has_dwell_s)
        cJSON_AddNumberToObject(o, "dwell_s", e->dwell_s);
    else
        cJSON_AddNullToObject(o, "dwell_s");
    if (e->has_amount)
        cJSON_AddNumberToObject(o, "amount", e->amount);
    else
        cJSON_AddNullToObject(o, "amount");
    if (e->has_rating)
        cJSON_AddNumberToObject(o, "rating", e->rating);
    else
        cJSON_AddNullToObject(o, "rating");
    add_string(o, "text", e->text, e->has_text);
    add_string(o, "event_id", e->event_id, e->has_event_id);
    add_string(o, "request_id", e->request_id, e->has_request_id);
    add_string(o, "variant", e->variant, e->has_variant);
    if (e->has_position)
        cJSON_AddNumberToObject(o, "position", e->position);
    if (rec && rec->model_version) {
        ProtobufCBinaryData v = {.len = rec->model_version_len,
                                 .data = (uint8_t *)(uintptr_t)rec->model_version};
        add_string(o, "model_version", v, 1);
    }
    char *text = cJSON_PrintUnformatted(o);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
    driftrec__v1__event__free_unpacked(e, NULL);
}

static void visit_user(void *ctx, const uint8_t *packed, size_t len)
{
    (void)ctx;
    print_event(packed, len, NULL);
}

static void visit_log(void *ctx, const struct dr_history_log_record *rec)
{
    const int *only_kind = ctx;
    if (*only_kind == 0 || rec->kind == *only_kind)
        print_event(rec->packed, rec->len, rec);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a Redis that closes the socket: an error, not the end */
    /* Reads only: a Redis that would lose writes is still readable. */
    struct dr_history_opts opts = {.allow_volatile = true};
    if (argc >= 4 && strcmp(argv[2], "--prefix") == 0) {
        opts.key_prefix = argv[3];
        argv[3] = argv[1];
        argv += 2;
        argc -= 2;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: driftrec-history STORE [--prefix P] user USER_ID [N] | log "
                        "[event|impression] | flags\n"
                        "  STORE: an LMDB directory, redis://HOST:PORT[/DB] or unix:///PATH\n");
        return 2;
    }
    struct dr_history *h = NULL;
    struct dr_error err = {0};
    if (dr_history_open(argv[1], &opts, &h, &err) != DR_OK) {
        fprintf(stderr, "driftrec-history: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (strcmp(argv[2], "user") == 0 && argc >= 4) {
        size_t n = argc >= 5 ? (size_t)strtoul(argv[4], NULL, 10) : 0;
        enum dr_status st =
            dr_history_read_user(h, argv[3], strlen(argv[3]), n, visit_user, NULL, NULL);
        if (st != DR_OK) {
            fprintf(stderr, "driftrec-history: reading user %s: %s\n", argv[3], dr_status_str(st));
            rc = 1;
        }
    } else if (strcmp(argv[2], "log") == 0) {
        int only_kind = 0;
        if (argc >= 4 && strcmp(argv[3], "event") == 0)
            only_kind = DR_HISTORY_LOG_EVENT;
        else if (argc >= 4 && strcmp(argv[3], "impression") == 0)
            only_kind = DR_HISTORY_LOG_IMPRESSION;
        else if (argc >= 4)
            only_kind = -1;
        if (only_kind < 0) {
            fprintf(stderr, "driftrec-history: log %s: expected event or impression\n", argv[3]);
            rc = 2;
        } else {
            enum dr_status st = dr_history_read_log(h, visit_log, &only_kind);
            if (st != DR_OK)
                fprintf(stderr, "driftrec-history: reading the log: %s\n", dr_status_str(st));
            rc = st == DR_OK ? 0 : 1;
        }
    } else if (strcmp(argv[2], "flags") == 0 && dr_history_is_redis(argv[1])) {
        struct dr_history_info info;
        dr_history_get_info(h, &info);
        printf("{\"backend\":\"redis\",\"appendonly\":\"%s\",\"appendfsync\":\"%s\","
               "\"durable\":%d}\n",
               info.appendonly, info.appendfsync, info.is_durable);
    } else if (strcmp(argv[2], "flags") == 0) {
        unsigned int f = dr_history_env_flags(h);
        printf("{\"flags\":%u,\"nosync\":%d,\"nometasync\":%d,\"mapasync\":%d,\"writemap\":%d}\n",
               f, !!(f & MDB_NOSYNC), !!(f & MDB_NOMETASYNC), !!(f & MDB_MAPASYNC),
               !!(f & MDB_WRITEMAP));
    } else {
        fprintf(stderr, "driftrec-history: unknown command '%s'\n", argv[2]);
        rc = 2;
    }
    dr_history_close(h);
    return rc;
}
