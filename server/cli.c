/* cli.c: driftrec-cli, the project's command-line client for driftrec-server.
 *
 *   driftrec-cli [--addr HOST:PORT] [--timeout-ms N] [TLS and metadata options] COMMAND ...
 *     health [SERVICE]
 *     ingest --user U --item I --type TYPE [--ts SECONDS] [--event-id E] [--dwell S]
 *            [--amount A] [--rating R] [--text T] [--request-id R] [--position P]
 *     recommend --user U [--k N] [--query TEXT] [--exclude history|purchased|none]
 *               [--category C] [--model M]
 *     rank --user U ITEM [ITEM ...]
 *     embed TEXT [TEXT ...]
 *     get-model
 *     admin-status
 *     admin-reload
 * Replies print as one JSON object on stdout; a gRPC error prints its status and message
 * on stderr and exits 1 (usage errors exit 2).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "driftrec.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

static const char *const status_names[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: driftrec-cli [options] COMMAND ...\n"
            "commands:\n"
            "  health [SERVICE]      exit 0 only when SERVING (1 otherwise)\n"
            "  ingest --user U --item I --type view|click|cart|purchase|review|impression\n"
            "         [--ts SECONDS] [--event-id E] [--dwell S] [--amount A] [--rating 1-5]\n"
            "         [--text T] [--request-id R] [--position P]\n"
            "  recommend --user U [--k N] [--query TEXT] [--exclude history|purchased|none]\n"
            "            [--category C] [--model M]\n"
            "  rank --user U ITEM [ITEM ...]\n"
            "  embed TEXT [TEXT ...]\n"
            "  get-model\n"
            "  admin-status          driftrec.v1.Admin/GetStatus (needs the admin token:\n"
            "                        --token-file ADMIN_TOKEN_FILE)\n"
            "  admin-reload          driftrec.v1.Admin/Reload: load the model source again and\n"
            "                        swap it in (admin token; --timeout-ms covers the load)\n"
            "options:\n"
            "  --addr HOST:PORT      the server (env DR_ADDR; default 127.0.0.1:50051)\n"
            "  --timeout-ms N        each call's deadline (default 5000)\n" DR_CLIENT_OPTS_USAGE
            "  --help\n");
}

static ProtobufCBinaryData text(const char *s)
{
    ProtobufCBinaryData b = {.len = strlen(s), .data = (uint8_t *)(uintptr_t)s};
    return b;
}

static const char *flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static char *bytes_to_str(ProtobufCBinaryData b)
{
    char *s = malloc(b.len + 1);
    if (s) {
        memcpy(s, b.data, b.len);
        s[b.len] = '\0';
    }
    return s;
}

static void add_bytes(cJSON *o, const char *key, ProtobufCBinaryData b)
{
    char *s = bytes_to_str(b);
    if (s)
        cJSON_AddStringToObject(o, key, s);
    free(s);
}

static int print_json(cJSON *o)
{
    char *s = cJSON_Print(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    return 0;
}

static cJSON *scored_items(Driftrec__V1__ScoredItem **items, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        add_bytes(o, "item_id", items[i]->item_id);
        cJSON_AddNumberToObject(o, "score", items[i]->score);
        if (items[i]->has_explanation)
            add_bytes(o, "explanation", items[i]->explanation);
        if (items[i]->has_because_item_id)
            add_bytes(o, "because_item_id", items[i]->because_item_id);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static int event_type_of(const char *s)
{
    static const char *const names[] = {"",     "impression", "view",  "click",
                                        "cart", "purchase",   "review"};
    for (int i = 1; i < 7; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Packs msg, calls method, returns the reply bytes through res (exit code on failure). */
static int call(struct dr_client *client, const char *method, const ProtobufCMessage *msg,
                int timeout_ms, struct dr_client_result *res)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return 1;
    protobuf_c_message_pack(msg, buf);
    enum dr_status st = dr_client_call(client, method, buf, len, timeout_ms, res);
    free(buf);
    if (st != DR_OK) {
        fprintf(stderr, "driftrec-cli: call failed: %s\n", dr_status_str(st));
        return 1;
    }
    if (res->status != 0) {
        fprintf(stderr, "driftrec-cli: %s: %s\n",
                res->status < 17 ? status_names[res->status] : "UNKNOWN", res->message);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *addr = getenv("DR_ADDR") ? getenv("DR_ADDR") : "127.0.0.1:50051";
    struct dr_client_opts copts = {.token_path = getenv("DR_TOKEN_FILE")};
    struct dr_error err = {0};
    int timeout_ms = 5000, i = 1, is_known = 0;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (strcmp(argv[i], "--addr") == 0)
            addr = argv[i + 1];
        else if (strcmp(argv[i], "--timeout-ms") == 0)
            timeout_ms = atoi(argv[i + 1]);
        else if (dr_client_opts_apply(&copts, argv[i], argv[i + 1], &is_known, &err) != DR_OK) {
            fprintf(stderr, "driftrec-cli: %s\n", err.msg);
            return 2;
        } else if (!is_known) {
            fprintf(stderr, "driftrec-cli: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc || timeout_ms <= 0) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i];
    int sub_argc = argc - i - 1;
    char **sub = argv + i + 1;

    struct dr_client *client = NULL;
    if (dr_client_create(addr, &copts, &client, &err) != DR_OK) {
        fprintf(stderr, "driftrec-cli: %s\n", err.msg);
        return 2; /* a bad option or file */
    }
    struct dr_client_result res = {0}; /* freed at the end, whichever command ran */
    int rc = 0;
    if (strcmp(cmd, "health") == 0) {
        Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
        req.service = sub_argc > 0 ? sub[0] : (char *)"";
        rc = call(client, "/grpc.health.v1.Health/Check", &req.base, timeout_ms, &res);
        if (rc == 0) {
            Grpc__Health__V1__HealthCheckResponse *r =
                grpc__health__v1__health_check_response__unpack(NULL, res.reply_len, res.reply);
            static const char *const states[] = {"UNKNOWN", "SERVING", "NOT_SERVING",
                                                 "SERVICE_UNKNOWN"};
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "status",
                                    r && (unsigned)r->status < 4 ? states[r->status] : "UNKNOWN");
            print_json(o);
            /* Exit 1 unless SERVING, so probes and HEALTHCHECK can use the status alone. */
            if (!r || r->status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
                rc = 1;
            grpc__health__v1__health_check_response__free_unpacked(r, NULL);
        }
    } else if (strcmp(cmd, "ingest") == 0) {
        const char *user = flag(sub_argc, sub, "--user"), *item = flag(sub_argc, sub, "--item");
        const char *type = flag(sub_argc, sub, "--type");
        if (!user || !item || !type || event_type_of(type) < 0) {
            fprintf(stderr, "driftrec-cli: ingest needs --user, --item and a valid --type\n");
            rc = 2;
        } else {
            Driftrec__V1__Event ev = DRIFTREC__V1__EVENT__INIT;
            ev.has_user_id = ev.has_item_id = ev.has_ts = ev.has_event_type = 1;
            ev.user_id = text(user);
            ev.item_id = text(item);
            const char *ts = flag(sub_argc, sub, "--ts");
            ev.ts = ts ? atoll(ts) : (int64_t)time(NULL);
            ev.event_type = (Driftrec__V1__EventType)event_type_of(type);
            const char *v;
            if ((v = flag(sub_argc, sub, "--event-id")))
                ev.has_event_id = 1, ev.event_id = text(v);
            if ((v = flag(sub_argc, sub, "--request-id")))
                ev.has_request_id = 1, ev.request_id = text(v);
            if ((v = flag(sub_argc, sub, "--text")))
                ev.has_text = 1, ev.text = text(v);
            if ((v = flag(sub_argc, sub, "--dwell")))
                ev.has_dwell_s = 1, ev.dwell_s = atof(v);
            if ((v = flag(sub_argc, sub, "--amount")))
                ev.has_amount = 1, ev.amount = atof(v);
            if ((v = flag(sub_argc, sub, "--rating")))
                ev.has_rating = 1, ev.rating = atoi(v);
            if ((v = flag(sub_argc, sub, "--position")))
                ev.has_position = 1, ev.position = atoi(v);
            Driftrec__V1__Event *evs[1] = {&ev};
            Driftrec__V1__IngestRequest req = DRIFTREC__V1__INGEST_REQUEST__INIT;
            req.n_events = 1;
            req.events = evs;
            rc = call(client, "/driftrec.v1.Recommender/Ingest", &req.base, timeout_ms, &res);
            if (rc == 0) {
                Driftrec__V1__IngestResponse *r =
                    driftrec__v1__ingest_response__unpack(NULL, res.reply_len, res.reply);
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "accepted", r ? r->accepted : 0);
                cJSON_AddNumberToObject(o, "duplicates", r ? r->duplicates : 0);
                print_json(o);
                driftrec__v1__ingest_response__free_unpacked(r, NULL);
            }
        }
    } else if (strcmp(cmd, "recommend") == 0) {
        const char *user = flag(sub_argc, sub, "--user");
        if (!user) {
            fprintf(stderr, "driftrec-cli: recommend needs --user\n");
            rc = 2;
        } else {
            Driftrec__V1__RecommendRequest req = DRIFTREC__V1__RECOMMEND_REQUEST__INIT;
            req.has_user_id = 1;
            req.user_id = text(user);
            const char *v;
            if ((v = flag(sub_argc, sub, "--k")))
                req.has_k = 1, req.k = atoi(v);
            if ((v = flag(sub_argc, sub, "--query")))
                req.has_query_text = 1, req.query_text = text(v);
            if ((v = flag(sub_argc, sub, "--category")))
                req.has_category = 1, req.category = text(v);
            if ((v = flag(sub_argc, sub, "--model")))
                req.has_model = 1, req.model = text(v);
            if ((v = flag(sub_argc, sub, "--exclude"))) {
                req.has_exclude = 1;
                req.exclude =
                    strcmp(v, "purchased") == 0 ? DRIFTREC__V1__EXCLUDE_MODE__EXCLUDE_PURCHASED
                    : strcmp(v, "none") == 0    ? DRIFTREC__V1__EXCLUDE_MODE__EXCLUDE_NONE
                                                : DRIFTREC__V1__EXCLUDE_MODE__EXCLUDE_HISTORY;
            }
            rc = call(client, "/driftrec.v1.Recommender/Recommend", &req.base, timeout_ms, &res);
            if (rc == 0) {
                Driftrec__V1__RecommendResponse *r =
                    driftrec__v1__recommend_response__unpack(NULL, res.reply_len, res.reply);
                cJSON *o = cJSON_CreateObject();
                if (r) {
                    cJSON_AddItemToObject(o, "items", scored_items(r->items, r->n_items));
                    add_bytes(o, "model", r->model);
                    add_bytes(o, "model_version", r->model_version);
                }
                cJSON_AddStringToObject(o, "variant", res.variant);
                print_json(o);
                driftrec__v1__recommend_response__free_unpacked(r, NULL);
            }
        }
    } else if (strcmp(cmd, "rank") == 0) {
        const char *user = flag(sub_argc, sub, "--user");
        int first = 2;
        if (!user || sub_argc <= first) {
            fprintf(stderr, "driftrec-cli: rank needs --user and at least one item\n");
            rc = 2;
        } else {
            size_t n = (size_t)(sub_argc - first);
            ProtobufCBinaryData *ids = calloc(n, sizeof *ids);
            Driftrec__V1__RankRequest req = DRIFTREC__V1__RANK_REQUEST__INIT;
            req.has_user_id = 1;
            req.user_id = text(user);
            for (size_t j = 0; ids && j < n; j++)
                ids[j] = text(sub[first + (int)j]);
            req.n_candidate_item_ids = ids ? n : 0;
            req.candidate_item_ids = ids;
            rc = call(client, "/driftrec.v1.Recommender/Rank", &req.base, timeout_ms, &res);
            if (rc == 0) {
                Driftrec__V1__RankResponse *r =
                    driftrec__v1__rank_response__unpack(NULL, res.reply_len, res.reply);
                cJSON *o = cJSON_CreateObject();
                if (r) {
                    cJSON_AddItemToObject(o, "items", scored_items(r->items, r->n_items));
                    cJSON *unknown = cJSON_AddArrayToObject(o, "unknown_item_ids");
                    for (size_t j = 0; j < r->n_unknown_item_ids; j++) {
                        char *s = bytes_to_str(r->unknown_item_ids[j]);
                        cJSON_AddItemToArray(unknown, cJSON_CreateString(s ? s : ""));
                        free(s);
                    }
                }
                print_json(o);
                driftrec__v1__rank_response__free_unpacked(r, NULL);
            }
            free(ids);
        }
    } else if (strcmp(cmd, "embed") == 0) {
        size_t n = (size_t)sub_argc;
        ProtobufCBinaryData *texts = calloc(n ? n : 1, sizeof *texts);
        Driftrec__V1__EmbedRequest req = DRIFTREC__V1__EMBED_REQUEST__INIT;
        for (size_t j = 0; texts && j < n; j++)
            texts[j] = text(sub[j]);
        req.n_texts = texts ? n : 0;
        req.texts = texts;
        rc = call(client, "/driftrec.v1.Recommender/Embed", &req.base, timeout_ms, &res);
        if (rc == 0) {
            Driftrec__V1__EmbedResponse *r =
                driftrec__v1__embed_response__unpack(NULL, res.reply_len, res.reply);
            cJSON *o = cJSON_CreateObject();
            cJSON *vecs = cJSON_AddArrayToObject(o, "vectors");
            for (size_t j = 0; r && j < r->n_vectors; j++)
                cJSON_AddItemToArray(vecs, cJSON_CreateFloatArray(r->vectors[j]->values,
                                                                  (int)r->vectors[j]->n_values));
            print_json(o);
            driftrec__v1__embed_response__free_unpacked(r, NULL);
        }
        free(texts);
    } else if (strcmp(cmd, "get-model") == 0) {
        Driftrec__V1__GetModelRequest req = DRIFTREC__V1__GET_MODEL_REQUEST__INIT;
        rc = call(client, "/driftrec.v1.Recommender/GetModel", &req.base, timeout_ms, &res);
        if (rc == 0) {
            Driftrec__V1__GetModelResponse *r =
                driftrec__v1__get_model_response__unpack(NULL, res.reply_len, res.reply);
            cJSON *o = cJSON_CreateObject();
            cJSON *models = cJSON_AddArrayToObject(o, "models");
            for (size_t j = 0; r && j < r->n_models; j++) {
                cJSON *m = cJSON_CreateObject();
                add_bytes(m, "name", r->models[j]->name);
                add_bytes(m, "version", r->models[j]->version);
                cJSON_AddBoolToObject(m, "is_default", r->models[j]->is_default);
                if (r->models[j]->has_item_count)
                    cJSON_AddNumberToObject(m, "item_count", r->models[j]->item_count);
                if (r->models[j]->has_vector_dim)
                    cJSON_AddNumberToObject(m, "vector_dim", r->models[j]->vector_dim);
                if (r->models[j]->has_kernel_isa)
                    add_bytes(m, "kernel_isa", r->models[j]->kernel_isa);
                cJSON_AddItemToArray(models, m);
            }
            print_json(o);
            driftrec__v1__get_model_response__free_unpacked(r, NULL);
        }
    } else if (strcmp(cmd, "admin-status") == 0) {
        Driftrec__V1__GetStatusRequest req = DRIFTREC__V1__GET_STATUS_REQUEST__INIT;
        rc = call(client, "/driftrec.v1.Admin/GetStatus", &req.base, timeout_ms, &res);
        if (rc == 0) {
            Driftrec__V1__GetStatusResponse *r =
                driftrec__v1__get_status_response__unpack(NULL, res.reply_len, res.reply);
            cJSON *o = cJSON_CreateObject();
            if (r) {
                if (r->has_model)
                    add_bytes(o, "model", r->model);
                if (r->has_model_version)
                    add_bytes(o, "model_version", r->model_version);
                cJSON_AddNumberToObject(o, "uptime_s", r->uptime_s);
                cJSON_AddBoolToObject(o, "is_ready", r->is_ready);
                if (r->has_variant)
                    add_bytes(o, "variant", r->variant);
            }
            print_json(o);
            driftrec__v1__get_status_response__free_unpacked(r, NULL);
        }
    } else if (strcmp(cmd, "admin-reload") == 0) {
        Driftrec__V1__ReloadRequest req = DRIFTREC__V1__RELOAD_REQUEST__INIT;
        rc = call(client, "/driftrec.v1.Admin/Reload", &req.base, timeout_ms, &res);
        if (rc == 0) {
            Driftrec__V1__ReloadResponse *r =
                driftrec__v1__reload_response__unpack(NULL, res.reply_len, res.reply);
            cJSON *o = cJSON_CreateObject();
            if (r) {
                if (r->has_model)
                    add_bytes(o, "model", r->model);
                if (r->has_model_version)
                    add_bytes(o, "model_version", r->model_version);
                if (r->has_previous_version)
                    add_bytes(o, "previous_version", r->previous_version);
                if (r->has_model_dir)
                    add_bytes(o, "model_dir", r->model_dir);
                cJSON_AddNumberToObject(o, "load_ms", r->load_ms);
            }
            print_json(o);
            driftrec__v1__reload_response__free_unpacked(r, NULL);
        }
    } else {
        fprintf(stderr, "driftrec-cli: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = 2;
    }
    free(res.reply);
    dr_client_destroy(client);
    return rc;
}
