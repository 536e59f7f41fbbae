/* driftrec-user: events (JSON lines) -> one user vector per user, with an interest model.
 *
 *   driftrec-user MODEL_DIR [--items ITEMS.jsonl] [--max-events N | --all]
 *                 [--precision auto|fp32|int8] < events.jsonl
 *
 * Events follow docs/data.md (user_id, item_id, ts, event_type, dwell_s, amount, rating);
 * the item's vector is the event's "item_vec" array or, with --items, the "vector" of the
 * line with that item_id; an optional "text_vec" array is the event's text vector.  Each
 * user's events are ordered by ts (line order breaks ties) and the last max-events of them
 * (default: the model's max_events) are replayed from scratch, as the server does for a user
 * with no cached state.  Output: {"user_id": ..., "n_events": N, "vector": [...]} per user,
 * in order of first appearance.  Exit status 2 on an error naming the line.
 */
#include "interest.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_event_types[] = {"impression", "view",     "click",
                                            "cart",       "purchase", "review"};

struct item {
    char *id;
    float *vec;
};

struct user {
    char *id;
    struct dr_interest_event *events;
    size_t *line; /* per event: input line (tie-break) */
    size_t n, cap;
};

static size_t g_dim;
static struct item *g_items;
static size_t g_n_items;

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const struct item *)a)->id, ((const struct item *)b)->id);
}

static bool read_vec(const cJSON *arr, float *out)
{
    if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != g_dim)
        return false;
    size_t j = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsNumber(v))
            return false;
        out[j++] = (float)v->valuedouble;
    }
    return true;
}

static float num_or_nan(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? (float)v->valuedouble : NAN;
}

static char *id_string(const cJSON *v)
{
    char buf[64];
    if (cJSON_IsString(v))
        return strdup(v->valuestring);
    if (cJSON_IsNumber(v)) {
        snprintf(buf, sizeof buf, "%.0f", v->valuedouble);
        return strdup(buf);
    }
    return NULL;
}

static int fail(size_t line, const char *what)
{
    fprintf(stderr, "driftrec-user: line %zu: %s\n", line, what);
    return 2;
}

static int load_items(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "driftrec-user: cannot open %s\n", path);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0, cap_items = 0, line_no = 0;
    int rc = 0;
    while (getline(&line, &cap, f) >= 0) {
        line_no++;
        cJSON *obj = cJSON_Parse(line);
        if (!obj) {
            if (strspn(line, " \t\r\n") == strlen(line))
                continue;
            rc = fail(line_no, "items: not JSON");
            break;
        }
        if (g_n_items == cap_items) {
            cap_items = cap_items ? 2 * cap_items : 256;
            g_items = realloc(g_items, cap_items * sizeof *g_items);
        }
        struct item it = {id_string(cJSON_GetObjectItemCaseSensitive(obj, "item_id")),
                          malloc(g_dim * sizeof(float))};
        bool ok = it.id && read_vec(cJSON_GetObjectItemCaseSensitive(obj, "vector"), it.vec);
        cJSON_Delete(obj);
        if (!ok) {
            free(it.id);
            free(it.vec);
            rc = fail(line_no, "items: need item_id and a vector of the model's item_dim");
            break;
        }
        g_items[g_n_items++] = it;
    }
    free(line);
    fclose(f);
    qsort(g_items, g_n_items, sizeof *g_items, cmp_item);
    return rc;
}

static const struct user *g_sort_user;

static int cmp_event(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const struct dr_interest_event *x = &g_sort_user->events[i], *y = &g_sort_user->events[j];
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return g_sort_user->line[i] < g_sort_user->line[j] ? -1 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: driftrec-user MODEL_DIR [--items ITEMS.jsonl] [--max-events N | "
                        "--all] [--precision auto|fp32|int8] < events.jsonl\n");
        return 2;
    }
    struct dr_model_opts opts = {.precision = DR_PRECISION_AUTO};
    const char *items_path = NULL;
    long max_events = -1;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--items") == 0 && i + 1 < argc)
            items_path = argv[++i];
        else if (strcmp(argv[i], "--max-events") == 0 && i + 1 < argc)
            max_events = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--all") == 0)
            max_events = 0;
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) {
            const char *p = argv[++i];
            opts.precision = strcmp(p, "fp32") == 0   ? DR_PRECISION_FP32
                             : strcmp(p, "int8") == 0 ? DR_PRECISION_INT8
                                                      : DR_PRECISION_AUTO;
        } else {
            fprintf(stderr, "driftrec-user: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    struct dr_error err = {0};
    struct dr_interest *model = NULL;
    if (dr_interest_load(argv[1], &opts, &model, &err) != DR_OK) {
        fprintf(stderr, "driftrec-user: %s\n", err.msg);
        return 2;
    }
    g_dim = dr_interest_item_dim(model);
    if (max_events < 0)
        max_events = (long)dr_interest_max_events(model);
    int rc = items_path ? load_items(items_path) : 0;

    struct user *users = NULL;
    size_t n_users = 0, cap_users = 0, line_no = 0, cap = 0;
    char *line = NULL;
    while (rc == 0 && getline(&line, &cap, stdin) >= 0) {
        line_no++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        cJSON *obj = cJSON_Parse(line);
        if (!cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            rc = fail(line_no, "not a JSON object");
            break;
        }
        char *uid = id_string(cJSON_GetObjectItemCaseSensitive(obj, "user_id"));
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(obj, "ts");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "event_type");
        int32_t type_id = -1;
        for (int t = 0; cJSON_IsString(type) && t < 6; t++)
            if (strcmp(type->valuestring, k_event_types[t]) == 0)
                type_id = t;
        float *vec = malloc(g_dim * sizeof(float)), *text = NULL;
        bool has_vec = read_vec(cJSON_GetObjectItemCaseSensitive(obj, "item_vec"), vec);
        if (!has_vec && g_n_items) {
            char *iid = id_string(cJSON_GetObjectItemCaseSensitive(obj, "item_id"));
            struct item key = {.id = iid};
            const struct item *it =
                iid ? bsearch(&key, g_items, g_n_items, sizeof *g_items, cmp_item) : NULL;
            if (it) {
                memcpy(vec, it->vec, g_dim * sizeof(float));
                has_vec = true;
            }
            free(iid);
        }
        const cJSON *tv = cJSON_GetObjectItemCaseSensitive(obj, "text_vec");
        if (tv && !cJSON_IsNull(tv)) {
            text = malloc(g_dim * sizeof(float));
            if (!read_vec(tv, text))
                has_vec = false;
        }
        const char *problem = !uid                  ? "user_id missing"
                              : !cJSON_IsNumber(ts) ? "ts missing or not a number"
                              : type_id < 0         ? "unknown event_type"
                              : !has_vec ? "no item vector (item_vec, or --items), or a vector "
                                           "of the wrong size"
                                         : NULL;
        if (problem) {
            free(uid);
            free(vec);
            free(text);
            cJSON_Delete(obj);
            rc = fail(line_no, problem);
            break;
        }
        struct user *u = NULL;
        for (size_t i = 0; i < n_users; i++)
            if (strcmp(users[i].id, uid) == 0)
                u = &users[i];
        if (!u) {
            if (n_users == cap_users) {
                cap_users = cap_users ? 2 * cap_users : 64;
                users = realloc(users, cap_users * sizeof *users);
            }
            u = &users[n_users++];
            *u = (struct user){.id = uid};
        } else {
            free(uid);
        }
        if (u->n == u->cap) {
            u->cap = u->cap ? 2 * u->cap : 16;
            u->events = realloc(u->events, u->cap * sizeof *u->events);
            u->line = realloc(u->line, u->cap * sizeof *u->line);
        }
        u->events[u->n] = (struct dr_interest_event){
            .item_vec = vec,
            .text_vec = text,
            .ts = (int64_t)ts->valuedouble,
            .event_type = type_id,
            .dwell_s = num_or_nan(obj, "dwell_s"),
            .amount = num_or_nan(obj, "amount"),
            .rating = num_or_nan(obj, "rating"),
        };
        u->line[u->n++] = line_no;
        cJSON_Delete(obj);
    }
    free(line);

    size_t ws_size = dr_interest_workspace_size(model, 1);
    void *ws = dr_aligned_alloc(ws_size);
    float *out = malloc(g_dim * sizeof *out);
    for (size_t i = 0; rc == 0 && i < n_users; i++) {
        struct user *u = &users[i];
        size_t *order = malloc((u->n + 1) * sizeof *order);
        struct dr_interest_event *sorted = malloc((u->n + 1) * sizeof *sorted);
        for (size_t e = 0; e < u->n; e++)
            order[e] = e;
        g_sort_user = u;
        qsort(order, u->n, sizeof *order, cmp_event);
        size_t first = max_events > 0 && u->n > (size_t)max_events ? u->n - (size_t)max_events : 0;
        size_t n = u->n - first;
        for (size_t e = 0; e < n; e++)
            sorted[e] = u->events[order[first + e]];
        const struct dr_interest_event *evp = sorted;
        if (dr_interest_run(model, 1, &evp, &n, NULL, out, g_dim, ws, ws_size) != DR_OK) {
            fprintf(stderr, "driftrec-user: user %s: the model refused the events\n", u->id);
            rc = 2;
        } else {
            printf("{\"user_id\": \"%s\", \"n_events\": %zu, \"vector\": [", u->id, n);
            for (size_t j = 0; j < g_dim; j++)
                printf(j ? ", %.9g" : "%.9g", (double)out[j]);
            puts("]}");
        }
        free(order);
        free(sorted);
    }
    for (size_t i = 0; i < n_users; i++) {
        for (size_t e = 0; e < users[i].n; e++) {
            free((void *)(uintptr_t)users[i].events[e].item_vec);
            free((void *)(uintptr_t)users[i].events[e].text_vec);
        }
        free(users[i].events);
        free(users[i].line);
        free(users[i].id);
    }
    free(users);
    for (size_t i = 0; i < g_n_items; i++) {
        free(g_items[i].id);
        free(g_items[i].vec);
    }
    free(g_items);
    free(out);
    dr_aligned_free(ws);
    dr_interest_destroy(model);
    return rc;
}
