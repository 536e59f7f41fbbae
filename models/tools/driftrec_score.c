/* driftrec-score: ranks held-out target items through a bundle, as the server would score
 * them; the training pipeline's measure of the exported (int8) model through the C library.
 *
 *   driftrec-score BUNDLE --events EVENTS.jsonl --targets TARGETS.jsonl [--k 10] [--ann]
 *                  [--ef N] [--precision auto|fp32|int8] [--max-events N | --all]
 *                  [--threads N] > OUT.jsonl
 *
 * EVENTS.jsonl: events in the docs/data.md format (user_id, item_id, ts, event_type, dwell_s,
 * amount, rating), parsed and ordered as driftrec-user does: by ts, line order breaking ties.
 * Items are resolved through the bundle's ids; an event whose item is not in the bundle is
 * skipped and counted on stderr.  dwell_s and amount are clipped at the bundle's
 * preprocessing.clip bounds.  Event text is ignored: no text encoder runs, so every event has
 * no text vector.  TARGETS.jsonl: {"user_id": ..., "target": ITEM_ID} per line; an unknown
 * target is an error naming the line.
 *
 * For each target line, in order: the user's last max-events events (default: the interest
 * model's max_events; --all: every event) are replayed from scratch (dr_interest_run, many
 * users per call), then
 *   exact (default): rank = the number of candidates that score higher than the target, or
 *     equal with a lower row; candidates are all items except the user's history items other
 *     than the target (the whole history in EVENTS.jsonl, not only the replayed window);
 *     top = the k best candidates (ties to the lower row);
 *   --ann: the index is searched (ef, the same exclusions); top = the k ids it returns, rank
 *     = the target's position in them or -1.
 * Output, one line per target: {"user_id", "target", "rank", "n_candidates", "top": [ids]}.
 * A target user with no events (none in the file, or all skipped) is ranked from the empty
 * history and counted on stderr.  Work is split over --threads threads (default: online
 * CPUs) in blocks of targets; progress goes to stderr on long runs.  Exit status 2 on bad
 * input or a bad bundle, with a message.
 */
#include "bundle.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK_TARGETS 32   /* targets per interest-model call and per GEMM */
#define MAX_K         4096 /* the index's cap on k and ef */

struct event {
    int64_t ts;
    size_t line; /* tie-break: the earlier line happened first */
    uint32_t row;
    int32_t type;
    float dwell_s, amount, rating;
};

struct user {
    char *id;
    struct event *events;
    size_t n_events, cap_events;
    uint32_t *seen; /* distinct history rows, sorted */
    size_t n_seen;
};

struct target {
    size_t user;
    uint32_t row;
};

struct result {
    long rank;
    size_t n_candidates, n_top;
};

struct app {
    const struct dr_bundle *bundle;
    const struct dr_interest *model;
    const struct dr_kernels *kern;
    size_t n_items, dim, k, ef, max_events, n_threads;
    bool use_ann;
    struct user *users;
    size_t n_users, cap_users;
    size_t *slots; /* open addressing: user index + 1, 0 empty */
    size_t cap_slots;
    struct target *targets;
    size_t n_targets, cap_targets;
    struct result *results; /* n_targets */
    uint32_t *top;          /* n_targets x k */
    /* the work loop */
    atomic_size_t next_block;
    atomic_size_t n_done;
    atomic_llong last_report_ms;
    long long start_ms;
    atomic_int failed;
    char fail_msg[256];
    pthread_mutex_t fail_lock;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *xrealloc(void *p, size_t n, size_t size)
{
    void *q = n > SIZE_MAX / size ? NULL : realloc(p, n * size);
    if (!q) {
        fputs("driftrec-score: out of memory\n", stderr);
        exit(1);
    }
    return q;
}

static bool is_blank(const char *line)
{
    return strspn(line, " \t\r\n") == strlen(line);
}

/* A string id, or an integer read as its decimal string (docs/data.md); owned, or NULL. */
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

static float num_or_nan(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? (float)v->valuedouble : NAN;
}

static bool parse_size(const char *s, size_t min, size_t max, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return false;
    *out = (size_t)v;
    return true;
}

/* ---- users: id -> index (FNV-1a, linear probing) ------------------------------------------ */

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot holding id, or the empty slot where it would go. */
static size_t find_slot(const struct app *a, const char *id)
{
    size_t mask = a->cap_slots - 1;
    for (size_t i = (size_t)hash_id(id) & mask;; i = (i + 1) & mask) {
        if (a->slots[i] == 0 || strcmp(a->users[a->slots[i] - 1].id, id) == 0)
            return i;
    }
}

static bool find_user(const struct app *a, const char *id, size_t *index)
{
    if (a->cap_slots == 0)
        return false;
    size_t slot = a->slots[find_slot(a, id)];
    if (slot == 0)
        return false;
    *index = slot - 1;
    return true;
}

/* The user called id (taken: freed when it is not new), added if new; returns its index. */
static size_t intern_user(struct app *a, char *id)
{
    if (2 * (a->n_users + 1) > a->cap_slots) {
        free(a->slots);
        a->cap_slots = a->cap_slots ? 2 * a->cap_slots : 1024;
        a->slots = xrealloc(NULL, a->cap_slots, sizeof *a->slots);
        memset(a->slots, 0, a->cap_slots * sizeof *a->slots);
        for (size_t u = 0; u < a->n_users; u++)
            a->slots[find_slot(a, a->users[u].id)] = u + 1;
    }
    size_t slot = find_slot(a, id);
    if (a->slots[slot]) {
        free(id);
        return a->slots[slot] - 1;
    }
    if (a->n_users == a->cap_users) {
        a->cap_users = a->cap_users ? 2 * a->cap_users : 1024;
        a->users = xrealloc(a->users, a->cap_users, sizeof *a->users);
    }
    a->users[a->n_users] = (struct user){.id = id};
    a->slots[slot] = ++a->n_users;
    return a->n_users - 1;
}

/* ---- input ------------------------------------------------------------------------------- */

static int input_error(const char *path, size_t line, const char *what, const char *detail)
{
    fprintf(stderr, "driftrec-score: %s:%zu: %s%s%s%s\n", path, line, what, detail ? " \"" : "",
            detail ? detail : "", detail ? "\"" : "");
    return 2;
}

static int read_targets(struct app *a, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "driftrec-score: %s: %s\n", path, strerror(errno));
        return 2;
    }
    char *line = NULL;
    size_t cap = 0, line_no = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        line_no++;
        if (is_blank(line))
            continue;
        cJSON *obj = cJSON_Parse(line);
        char *uid = id_string(cJSON_GetObjectItemCaseSensitive(obj, "user_id"));
        char *tid = id_string(cJSON_GetObjectItemCaseSensitive(obj, "target"));
        size_t row = 0;
        if (!cJSON_IsObject(obj))
            rc = input_error(path, line_no, "not a JSON object", NULL);
        else if (!uid || !tid)
            rc = input_error(path, line_no, "needs user_id and target", NULL);
        else if (!dr_bundle_item_row(a->bundle, tid, strlen(tid), &row))
            rc = input_error(path, line_no, "unknown target item (not in the bundle's ids)", tid);
        cJSON_Delete(obj);
        free(tid);
        if (rc != 0) {
            free(uid);
            break;
        }
        if (a->n_targets == a->cap_targets) {
            a->cap_targets = a->cap_targets ? 2 * a->cap_targets : 1024;
            a->targets = xrealloc(a->targets, a->cap_targets, sizeof *a->targets);
        }
        a->targets[a->n_targets++] =
            (struct target){.user = intern_user(a, uid), .row = (uint32_t)row};
    }
    free(line);
    fclose(f);
    return rc;
}

static int cmp_event(const void *pa, const void *pb)
{
    const struct event *x = pa, *y = pb;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int cmp_u32(const void *pa, const void *pb)
{
    uint32_t x = *(const uint32_t *)pa, y = *(const uint32_t *)pb;
    return x < y ? -1 : x > y;
}

static int read_events(struct app *a, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "driftrec-score: %s: %s\n", path, strerror(errno));
        return 2;
    }
    float clip_dwell = dr_bundle_clip_dwell_s(a->bundle),
          clip_amount = dr_bundle_clip_amount(a->bundle);
    char *line = NULL, first_unknown[128] = "";
    size_t cap = 0, line_no = 0, n_unknown = 0, first_unknown_line = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        line_no++;
        if (is_blank(line))
            continue;
        cJSON *obj = cJSON_Parse(line);
        if (!cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            rc = input_error(path, line_no, "not a JSON object", NULL);
            break;
        }
        char *uid = id_string(cJSON_GetObjectItemCaseSensitive(obj, "user_id"));
        char *iid = id_string(cJSON_GetObjectItemCaseSensitive(obj, "item_id"));
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(obj, "ts");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "event_type");
        int32_t type_id = -1;
        bool known_type =
            cJSON_IsString(type) && dr_bundle_event_type(a->bundle, type->valuestring, &type_id);
        size_t row = 0, u = 0;
        if (!uid)
            rc = input_error(path, line_no, "user_id missing", NULL);
        else if (!iid)
            rc = input_error(path, line_no, "item_id missing", NULL);
        else if (!cJSON_IsNumber(ts) || !(fabs(ts->valuedouble) < 9e18))
            rc = input_error(path, line_no, "ts missing or not a number", NULL);
        else if (!known_type)
            rc = input_error(path, line_no, "event_type not one of the bundle's event_types",
                             cJSON_IsString(type) ? type->valuestring : NULL);
        else if (!dr_bundle_item_row(a->bundle, iid, strlen(iid), &row)) {
            if (n_unknown++ == 0) {
                first_unknown_line = line_no;
                snprintf(first_unknown, sizeof first_unknown, "%s", iid);
            }
        } else if (find_user(a, uid, &u)) {
            struct user *usr = &a->users[u];
            if (usr->n_events == usr->cap_events) {
                usr->cap_events = usr->cap_events ? 2 * usr->cap_events : 16;
                usr->events = xrealloc(usr->events, usr->cap_events, sizeof *usr->events);
            }
            struct event ev = {
                .ts = (int64_t)ts->valuedouble,
                .line = line_no,
                .row = (uint32_t)row,
                .type = type_id,
                .dwell_s = num_or_nan(obj, "dwell_s"),
                .amount = num_or_nan(obj, "amount"),
                .rating = num_or_nan(obj, "rating"),
            };
            ev.dwell_s = ev.dwell_s > clip_dwell ? clip_dwell : ev.dwell_s;
            ev.amount = ev.amount > clip_amount ? clip_amount : ev.amount;
            usr->events[usr->n_events++] = ev;
        }
        free(uid);
        free(iid);
        cJSON_Delete(obj);
    }
    free(line);
    fclose(f);
    if (rc != 0)
        return rc;
    if (n_unknown)
        fprintf(stderr,
                "driftrec-score: %zu events skipped: item not in the bundle (first: %s:%zu, "
                "item \"%s\")\n",
                n_unknown, path, first_unknown_line, first_unknown);
    for (size_t u = 0; u < a->n_users; u++) {
        struct user *usr = &a->users[u];
        if (usr->n_events == 0)
            continue;
        qsort(usr->events, usr->n_events, sizeof *usr->events, cmp_event);
        usr->seen = xrealloc(NULL, usr->n_events, sizeof *usr->seen);
        for (size_t e = 0; e < usr->n_events; e++)
            usr->seen[e] = usr->events[e].row;
        qsort(usr->seen, usr->n_events, sizeof *usr->seen, cmp_u32);
        size_t n = 0;
        for (size_t e = 0; e < usr->n_events; e++) {
            if (n == 0 || usr->seen[n - 1] != usr->seen[e])
                usr->seen[n++] = usr->seen[e];
        }
        usr->n_seen = n;
    }
    return 0;
}

/* ---- scoring ------------------------------------------------------------------------------ */

struct worker {
    struct app *app;
    pthread_t thread;
    void *ws;
    size_t ws_size;
    float *user_vecs; /* BLOCK_TARGETS x dim */
    float *scores;    /* BLOCK_TARGETS x n_items (exact) */
    struct dr_interest_event *events;
    size_t cap_events;
    uint32_t *exclude; /* ann: the history rows other than the target */
    size_t cap_exclude;
    struct dr_ann_searcher *searcher;
};

/* The first failure's message wins; every worker stops at its next block. */
__attribute__((format(printf, 2, 3))) static void fail_run(struct app *a, const char *fmt, ...)
{
    pthread_mutex_lock(&a->fail_lock);
    if (!atomic_load_explicit(&a->failed, memory_order_relaxed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(a->fail_msg, sizeof a->fail_msg, fmt, ap);
        va_end(ap);
    }
    atomic_store_explicit(&a->failed, 1, memory_order_relaxed);
    pthread_mutex_unlock(&a->fail_lock);
}

static bool is_seen(const struct user *u, uint32_t row)
{
    return u->n_seen > 0 && bsearch(&row, u->seen, u->n_seen, sizeof *u->seen, cmp_u32) != NULL;
}

/* The exact rank and top-k of one target from its user's scores over every item. */
static void rank_exact(const struct app *a, const struct user *u, uint32_t target, float *s,
                       struct result *r, uint32_t *top)
{
    for (size_t e = 0; e < u->n_seen; e++) {
        if (u->seen[e] != target)
            s[u->seen[e]] = NAN; /* never counted, never chosen */
    }
    float t = s[target];
    size_t rank = 0;
    for (size_t i = 0; i < target; i++)
        rank += s[i] >= t;
    for (size_t i = target + 1; i < a->n_items; i++)
        rank += s[i] > t;
    r->rank = (long)rank;
    r->n_candidates = a->n_items - (u->n_seen - (is_seen(u, target) ? 1 : 0));
    float top_scores[MAX_K];
    r->n_top = a->kern->topk_f32(a->n_items, s, a->k, top, top_scores);
}

static void rank_ann(struct worker *w, const struct user *u, uint32_t target, const float *vec,
                     struct result *r, uint32_t *top)
{
    const struct app *a = w->app;
    size_t n_ex = 0;
    for (size_t e = 0; e < u->n_seen; e++) {
        if (u->seen[e] != target)
            w->exclude[n_ex++] = u->seen[e];
    }
    struct dr_ann_query_opts q = {.ef = a->ef, .exclude = w->exclude, .n_exclude = n_ex};
    size_t n_out = 0;
    if (dr_ann_search(w->searcher, vec, a->k, &q, top, NULL, &n_out) != DR_OK) {
        fail_run(w->app, "the index refused the query of user %s", u->id);
        n_out = 0;
    }
    r->rank = -1;
    for (size_t i = 0; i < n_out; i++) {
        if (top[i] == target)
            r->rank = (long)i;
    }
    r->n_candidates = a->n_items - n_ex;
    r->n_top = n_out;
}

static void run_block(struct worker *w, size_t first, size_t n)
{
    struct app *a = w->app;
    const struct dr_interest_event *ev_ptr[BLOCK_TARGETS] = {0};
    size_t n_ev[BLOCK_TARGETS] = {0}, total = 0;
    for (size_t b = 0; b < n; b++) {
        const struct user *u = &a->users[a->targets[first + b].user];
        n_ev[b] = a->max_events && u->n_events > a->max_events ? a->max_events : u->n_events;
        total += n_ev[b];
    }
    if (total > w->cap_events) {
        w->cap_events = total;
        w->events = xrealloc(w->events, total, sizeof *w->events);
    }
    struct dr_interest_event *out = w->events;
    for (size_t b = 0; b < n; b++) {
        const struct user *u = &a->users[a->targets[first + b].user];
        ev_ptr[b] = out;
        for (size_t e = u->n_events - n_ev[b]; e < u->n_events; e++) {
            const struct event *x = &u->events[e];
            *out++ = (struct dr_interest_event){
                .item_vec = dr_bundle_item_vector(a->bundle, x->row),
                .text_vec = NULL,
                .ts = x->ts,
                .event_type = x->type,
                .dwell_s = x->dwell_s,
                .amount = x->amount,
                .rating = x->rating,
            };
        }
    }
    if (dr_interest_run(a->model, n, ev_ptr, n_ev, NULL, w->user_vecs, a->dim, w->ws, w->ws_size) !=
        DR_OK) {
        fail_run(a, "the interest model refused the events of user %s",
                 a->users[a->targets[first].user].id);
        return;
    }
    for (size_t b = 0; b < n; b++) {
        for (size_t j = 0; j < a->dim; j++) {
            if (!isfinite(w->user_vecs[b * a->dim + j])) {
                fail_run(a, "user %s: the user vector is not finite",
                         a->users[a->targets[first + b].user].id);
                return;
            }
        }
    }
    if (!a->use_ann && dr_bundle_score_exact(a->bundle, w->user_vecs, n, a->dim, 0, a->n_items,
                                             w->scores, a->n_items) != DR_OK) {
        fail_run(a, "exact scoring failed");
        return;
    }
    for (size_t b = 0; b < n; b++) {
        const struct target *t = &a->targets[first + b];
        struct result *r = &a->results[first + b];
        uint32_t *top = a->top + (first + b) * a->k;
        if (a->use_ann)
            rank_ann(w, &a->users[t->user], t->row, w->user_vecs + b * a->dim, r, top);
        else
            rank_exact(a, &a->users[t->user], t->row, w->scores + b * a->n_items, r, top);
    }
}

static void report_progress(struct app *a, size_t done)
{
    long long now = now_ms(), last = atomic_load_explicit(&a->last_report_ms, memory_order_relaxed);
    if (now - last < 2000 && done != a->n_targets)
        return;
    /* One thread claims each report; relaxed: the value orders nothing else. */
    if (!atomic_compare_exchange_strong_explicit(&a->last_report_ms, &last, now,
                                                 memory_order_relaxed, memory_order_relaxed))
        return;
    fprintf(stderr, "driftrec-score: %zu/%zu targets, %.1f s\n", done, a->n_targets,
            (double)(now - a->start_ms) / 1000.0);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct app *a = w->app;
    size_t n_blocks = (a->n_targets + BLOCK_TARGETS - 1) / BLOCK_TARGETS;
    for (;;) {
        /* Relaxed: each block is claimed once; the results are read after pthread_join. */
        size_t block = atomic_fetch_add_explicit(&a->next_block, 1, memory_order_relaxed);
        if (block >= n_blocks || atomic_load_explicit(&a->failed, memory_order_relaxed))
            break;
        size_t first = block * BLOCK_TARGETS;
        size_t n = a->n_targets - first < BLOCK_TARGETS ? a->n_targets - first : BLOCK_TARGETS;
        run_block(w, first, n);
        size_t done = atomic_fetch_add_explicit(&a->n_done, n, memory_order_relaxed) + n;
        if (a->n_targets >= 20000)
            report_progress(a, done);
    }
    return NULL;
}

static bool worker_init(struct worker *w, struct app *a)
{
    size_t max_seen = 0;
    for (size_t u = 0; u < a->n_users; u++)
        max_seen = a->users[u].n_seen > max_seen ? a->users[u].n_seen : max_seen;
    w->app = a;
    w->ws_size = dr_interest_workspace_size(a->model, BLOCK_TARGETS);
    w->ws = dr_aligned_alloc(w->ws_size);
    w->user_vecs = dr_aligned_alloc(BLOCK_TARGETS * a->dim * sizeof(float));
    if (!w->ws || !w->user_vecs)
        return false;
    if (a->use_ann) {
        w->cap_exclude = max_seen;
        w->exclude = malloc((max_seen + 1) * sizeof *w->exclude);
        return w->exclude &&
               dr_ann_searcher_create(dr_bundle_index(a->bundle), &w->searcher) == DR_OK;
    }
    w->scores = dr_aligned_alloc(BLOCK_TARGETS * a->n_items * sizeof(float));
    return w->scores != NULL;
}

static void worker_deinit(struct worker *w)
{
    dr_ann_searcher_destroy(w->searcher);
    free(w->exclude);
    free(w->events);
    dr_aligned_free(w->scores);
    dr_aligned_free(w->user_vecs);
    dr_aligned_free(w->ws);
}

static int score_all(struct app *a)
{
    a->results = xrealloc(NULL, a->n_targets + 1, sizeof *a->results);
    a->top = xrealloc(NULL, a->n_targets * a->k + 1, sizeof *a->top);
    size_t n_blocks = (a->n_targets + BLOCK_TARGETS - 1) / BLOCK_TARGETS;
    size_t n_threads = a->n_threads < n_blocks ? a->n_threads : n_blocks;
    if (n_threads == 0)
        return 0;
    struct worker *w = calloc(n_threads, sizeof *w);
    if (!w) {
        fputs("driftrec-score: out of memory\n", stderr);
        return 1;
    }
    a->start_ms = now_ms();
    atomic_store(&a->last_report_ms, a->start_ms);
    size_t started = 0;
    int rc = 0;
    for (; started < n_threads; started++) {
        if (!worker_init(&w[started], a) ||
            pthread_create(&w[started].thread, NULL, worker_main, &w[started]) != 0) {
            worker_deinit(&w[started]);
            fputs("driftrec-score: out of memory or threads\n", stderr);
            atomic_store(&a->failed, 1);
            rc = 1;
            break;
        }
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(w[i].thread, NULL);
        worker_deinit(&w[i]);
    }
    free(w);
    if (rc == 0 && atomic_load(&a->failed)) {
        fprintf(stderr, "driftrec-score: %s\n", a->fail_msg);
        rc = 2;
    }
    return rc;
}

/* ---- output ------------------------------------------------------------------------------- */

static void put_json_string(const char *s, FILE *f)
{
    putc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            putc(c, f);
    }
    putc('"', f);
}

static int write_results(const struct app *a)
{
    for (size_t i = 0; i < a->n_targets; i++) {
        const struct target *t = &a->targets[i];
        const struct result *r = &a->results[i];
        fputs("{\"user_id\": ", stdout);
        put_json_string(a->users[t->user].id, stdout);
        fputs(", \"target\": ", stdout);
        put_json_string(dr_bundle_item_id(a->bundle, t->row, NULL), stdout);
        printf(", \"rank\": %ld, \"n_candidates\": %zu, \"top\": [", r->rank, r->n_candidates);
        for (size_t j = 0; j < r->n_top; j++) {
            if (j)
                fputs(", ", stdout);
            put_json_string(dr_bundle_item_id(a->bundle, a->top[i * a->k + j], NULL), stdout);
        }
        fputs("]}\n", stdout);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "driftrec-score: writing the output: %s\n", strerror(errno));
        return 2;
    }
    return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static int usage(void)
{
    fputs("usage: driftrec-score BUNDLE --events EVENTS.jsonl --targets TARGETS.jsonl [--k 10] "
          "[--ann] [--ef N]\n"
          "                      [--precision auto|fp32|int8] [--max-events N | --all] "
          "[--threads N] > OUT.jsonl\n",
          stderr);
    return 2;
}

static void report_empty_users(const struct app *a)
{
    size_t n_empty = 0, first = 0;
    for (size_t i = 0; i < a->n_targets; i++) {
        if (a->users[a->targets[i].user].n_events == 0 && n_empty++ == 0)
            first = i;
    }
    if (n_empty)
        fprintf(stderr,
                "driftrec-score: %zu targets have a user with no events (first: user \"%s\"); "
                "they are ranked from the empty history\n",
                n_empty, a->users[a->targets[first].user].id);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-')
        return usage();
    struct dr_model_opts opts = {.precision = DR_PRECISION_AUTO};
    const char *events_path = NULL, *targets_path = NULL;
    size_t k = 10, ef = 0, threads = 0, max_events = SIZE_MAX;
    bool use_ann = false;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(arg, "--ann") == 0) {
            use_ann = true;
            continue;
        }
        if (strcmp(arg, "--all") == 0) {
            max_events = 0;
            continue;
        }
        if (!val) {
            fprintf(stderr, "driftrec-score: %s: unknown argument or missing value\n", arg);
            return usage();
        }
        i++;
        if (strcmp(arg, "--events") == 0)
            events_path = val;
        else if (strcmp(arg, "--targets") == 0)
            targets_path = val;
        else if (strcmp(arg, "--k") == 0)
            ok = parse_size(val, 1, MAX_K, &k);
        else if (strcmp(arg, "--ef") == 0)
            ok = parse_size(val, 1, MAX_K, &ef);
        else if (strcmp(arg, "--threads") == 0)
            ok = parse_size(val, 1, 1024, &threads);
        else if (strcmp(arg, "--max-events") == 0)
            ok = parse_size(val, 1, SIZE_MAX - 1, &max_events);
        else if (strcmp(arg, "--precision") == 0) {
            ok = strcmp(val, "auto") == 0 || strcmp(val, "fp32") == 0 || strcmp(val, "int8") == 0;
            opts.precision = strcmp(val, "fp32") == 0   ? DR_PRECISION_FP32
                             : strcmp(val, "int8") == 0 ? DR_PRECISION_INT8
                                                        : DR_PRECISION_AUTO;
        } else {
            fprintf(stderr, "driftrec-score: unknown argument %s\n", arg);
            return usage();
        }
        if (!ok) {
            fprintf(stderr, "driftrec-score: %s: bad value \"%s\"\n", arg, val);
            return 2;
        }
    }
    if (!events_path || !targets_path) {
        fputs("driftrec-score: --events and --targets are required\n", stderr);
        return usage();
    }

    struct dr_error err = {0};
    struct dr_bundle *bundle = NULL;
    if (dr_bundle_load(argv[1], &opts, &bundle, &err) != DR_OK) {
        fprintf(stderr, "driftrec-score: %s\n", err.msg);
        return 2;
    }
    struct app a = {
        .bundle = bundle,
        .model = dr_bundle_interest(bundle),
        .kern = dr_kernels_get(),
        .n_items = dr_bundle_n_items(bundle),
        .dim = dr_bundle_item_dim(bundle),
        .k = k,
        .ef = ef ? ef : dr_bundle_ef_search(bundle),
        .use_ann = use_ann,
    };
    a.max_events = max_events == SIZE_MAX ? dr_interest_max_events(a.model) : max_events;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    a.n_threads = threads ? threads : online > 0 ? (size_t)online : 1;
    pthread_mutex_init(&a.fail_lock, NULL);

    int rc = read_targets(&a, targets_path);
    if (rc == 0)
        rc = read_events(&a, events_path);
    if (rc == 0) {
        report_empty_users(&a);
        rc = score_all(&a);
    }
    if (rc == 0)
        rc = write_results(&a);

    for (size_t u = 0; u < a.n_users; u++) {
        free(a.users[u].id);
        free(a.users[u].events);
        free(a.users[u].seen);
    }
    free(a.users);
    free(a.slots);
    free(a.targets);
    free(a.results);
    free(a.top);
    pthread_mutex_destroy(&a.fail_lock);
    dr_bundle_destroy(bundle);
    return rc;
}
