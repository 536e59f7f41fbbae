/* test_interest.c: the C interest model against PyTorch on the golden users, and step-by-step
 * against from-scratch.
 *
 * Usage: test_interest GOLDEN_DIR CASE
 *   fp32     fp32 file, from scratch: max abs error <= 1e-4 against PyTorch fp32
 *   int8     int8 file: cosine >= 0.99 for every user vector (min and mean printed)
 *   step     fp32 and int8: events applied one by one with dr_interest_step give, after
 *            every event, the from-scratch vector of that prefix within 1e-5; a state saved
 *            by dr_interest_run continues with step as if run over everything; a history
 *            longer than one chunk of dr_interest_run agrees with step too
 *   invalid  bad events are refused and leave states untouched
 * Exit 77 (skip) when the golden files are missing.
 */
#include "dr_test.h"
#include "interest.h"
#include "model_file.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define MAX_USERS 16

struct golden {
    void *buf;
    struct dr_safetensors st;
    size_t n_users, dim, n_events_total;
    size_t lens[MAX_USERS];
    struct dr_interest_event *events; /* all users back to back */
    const struct dr_interest_event *user_events[MAX_USERS];
    float *item, *text, *expected;
};

static void *copy_tensor(const struct dr_safetensors *st, const char *name, size_t elem_size,
                         size_t *n)
{
    const struct dr_tensor_info *t = dr_safetensors_find(st, name);
    if (!t) {
        DR_TEST_FAIL("golden: missing %s", name);
        exit(1);
    }
    void *p = malloc(t->n_elements * elem_size + 1);
    memcpy(p, t->data, t->n_elements * elem_size);
    if (n)
        *n = t->n_elements;
    return p;
}

static bool golden_load(const char *path, struct golden *g)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    g->buf = malloc((size_t)size);
    size_t got = fread(g->buf, 1, (size_t)size, f);
    fclose(f);
    struct dr_error err = {0};
    if (got != (size_t)size ||
        dr_safetensors_parse(g->buf, (size_t)size, path, &g->st, &err) != DR_OK) {
        DR_TEST_FAIL("%s: %s", path, err.msg);
        exit(1);
    }
    size_t n_exp = 0, n;
    int32_t *lens = copy_tensor(&g->st, "lengths", 4, &g->n_users);
    g->expected = copy_tensor(&g->st, "expected", 4, &n_exp);
    g->dim = n_exp / g->n_users;
    g->item = copy_tensor(&g->st, "item_vec", 4, NULL);
    g->text = copy_tensor(&g->st, "text_vec", 4, NULL);
    uint8_t *has_text = copy_tensor(&g->st, "has_text", 1, &g->n_events_total);
    int32_t *type = copy_tensor(&g->st, "event_type", 4, NULL);
    int64_t *ts = copy_tensor(&g->st, "ts", 8, NULL);
    float *dwell = copy_tensor(&g->st, "dwell_s", 4, NULL);
    float *amount = copy_tensor(&g->st, "amount", 4, NULL);
    float *rating = copy_tensor(&g->st, "rating", 4, &n);
    g->events = calloc(g->n_events_total + 1, sizeof *g->events);
    for (size_t e = 0; e < g->n_events_total; e++) {
        g->events[e] = (struct dr_interest_event){
            .item_vec = g->item + e * g->dim,
            .text_vec = has_text[e] ? g->text + e * g->dim : NULL,
            .ts = ts[e],
            .event_type = type[e],
            .dwell_s = dwell[e],
            .amount = amount[e],
            .rating = rating[e],
        };
    }
    size_t at = 0;
    for (size_t u = 0; u < g->n_users; u++) {
        g->lens[u] = (size_t)lens[u];
        g->user_events[u] = g->events + at;
        at += g->lens[u];
    }
    free(lens);
    free(has_text);
    free(type);
    free(ts);
    free(dwell);
    free(amount);
    free(rating);
    return true;
}

static void golden_free(struct golden *g)
{
    free(g->events);
    free(g->item);
    free(g->text);
    free(g->expected);
    dr_safetensors_deinit(&g->st);
    free(g->buf);
}

static struct dr_interest *load(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct dr_interest *m = NULL;
    struct dr_error err = {0};
    if (dr_interest_load(path, NULL, &m, &err) != DR_OK) {
        DR_TEST_FAIL("load %s: %s", path, err.msg);
        exit(1);
    }
    return m;
}

struct buffers {
    void *ws;
    size_t ws_size;
};

static struct buffers buffers_for(const struct dr_interest *m, size_t n_users)
{
    struct buffers b = {.ws_size = dr_interest_workspace_size(m, n_users)};
    b.ws = dr_aligned_alloc(b.ws_size);
    return b;
}

static void run(const struct dr_interest *m, size_t n_users,
                const struct dr_interest_event *const *events, const size_t *lens, void **states,
                float *out)
{
    struct buffers b = buffers_for(m, n_users);
    enum dr_status st = dr_interest_run(m, n_users, events, lens, states, out,
                                        dr_interest_item_dim(m), b.ws, b.ws_size);
    DR_CHECK(st == DR_OK, "run: %s", dr_status_str(st));
    dr_aligned_free(b.ws);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    return worst;
}

static void compare_golden(const char *label, const struct golden *g, const float *got,
                           double max_abs, double min_cos)
{
    double worst = 0, cmin = 1, csum = 0;
    for (size_t u = 0; u < g->n_users; u++) {
        double row_max, c;
        dr_test_compare_rows(got + u * g->dim, g->expected + u * g->dim, g->dim, &row_max, &c);
        worst = fmax(worst, row_max);
        cmin = fmin(cmin, c);
        csum += c;
        if (!(c >= min_cos))
            DR_TEST_FAIL("%s: user %zu (%zu events): cosine %.6f < %.2f", label, u, g->lens[u], c,
                         min_cos);
    }
    size_t longest = 0;
    for (size_t u = 0; u < g->n_users; u++)
        longest = g->lens[u] > longest ? g->lens[u] : longest;
    printf("%s: %zu users (0..%zu events): max abs error %.3g, cosine min %.6f mean %.6f\n", label,
           g->n_users, longest, worst, cmin, csum / (double)g->n_users);
    if (max_abs > 0 && !(worst <= max_abs))
        DR_TEST_FAIL("%s: max abs error %.3g > %.1g", label, worst, max_abs);
}

static void case_step(const struct golden *g, const char *dir, const char *name)
{
    struct dr_interest *m = load(dir, name);
    size_t d = g->dim, n = g->n_users, ssize = dr_interest_state_size(m);
    char *state_mem = calloc(n, ssize);
    void *states[MAX_USERS];
    for (size_t u = 0; u < n; u++) {
        states[u] = state_mem + u * ssize;
        dr_interest_state_init(m, states[u]);
    }
    struct buffers b = buffers_for(m, n);
    float *step_out = calloc(n * d, sizeof(float)), *scratch_out = calloc(d, sizeof(float));
    size_t max_len = 0;
    for (size_t u = 0; u < n; u++)
        max_len = g->lens[u] > max_len ? g->lens[u] : max_len;
    double worst = 0;
    /* Step t: every user with an event t advances by it, in one batched call. */
    for (size_t t = 0; t < max_len; t++) {
        struct dr_interest_event evs[MAX_USERS];
        void *active[MAX_USERS];
        size_t users[MAX_USERS], n_active = 0;
        for (size_t u = 0; u < n; u++) {
            if (g->lens[u] > t) {
                evs[n_active] = g->user_events[u][t];
                active[n_active] = states[u];
                users[n_active++] = u;
            }
        }
        enum dr_status st =
            dr_interest_step(m, n_active, evs, active, step_out, d, b.ws, b.ws_size);
        DR_CHECK(st == DR_OK, "step: %s", dr_status_str(st));
        for (size_t i = 0; i < n_active; i++) {
            size_t u = users[i], len = t + 1;
            const struct dr_interest_event *ev = g->user_events[u];
            run(m, 1, &ev, &len, NULL, scratch_out);
            worst = fmax(worst, max_abs_diff(step_out + i * d, scratch_out, d));
            DR_CHECK(dr_interest_state_n_events(states[u]) == len, "n_events");
        }
    }
    /* The final states' vectors equal from-scratch over everything. */
    float *all = calloc(n * d, sizeof(float)), *from_states = calloc(n * d, sizeof(float));
    run(m, n, g->user_events, g->lens, NULL, all);
    DR_CHECK(dr_interest_user_vectors(m, n, (const void *const *)states, from_states, d, b.ws,
                                      b.ws_size) == DR_OK,
             "user_vectors");
    worst = fmax(worst, max_abs_diff(all, from_states, n * d));
    printf("%s: step after every event vs from scratch: max abs difference %.3g\n", name, worst);
    DR_CHECK(worst <= 1e-5, "%s: step vs from scratch differ by %.3g", name, worst);

    /* run over the first half with states kept, then step through the rest. */
    size_t half[MAX_USERS];
    for (size_t u = 0; u < n; u++)
        half[u] = g->lens[u] / 2;
    run(m, n, g->user_events, half, states, step_out);
    for (size_t u = 0; u < n; u++) {
        for (size_t t = half[u]; t < g->lens[u]; t++) {
            DR_CHECK(dr_interest_step(m, 1, &g->user_events[u][t], &states[u], step_out + u * d, d,
                                      b.ws, b.ws_size) == DR_OK,
                     "step after run");
        }
    }
    DR_CHECK(dr_interest_user_vectors(m, n, (const void *const *)states, from_states, d, b.ws,
                                      b.ws_size) == DR_OK,
             "user_vectors");
    double resumed = max_abs_diff(all, from_states, n * d);
    printf("%s: run over half, then step: max abs difference %.3g\n", name, resumed);
    DR_CHECK(resumed <= 1e-5, "%s: resumed states differ by %.3g", name, resumed);
    free(all);
    free(from_states);
    free(step_out);
    free(scratch_out);
    free(state_mem);
    dr_aligned_free(b.ws);
    dr_interest_destroy(m);
}

/* A history longer than one chunk of dr_interest_run (64 rows of events x users): every
 * golden event as one user's history (user after user, time kept non-decreasing), from scratch
 * alone and batched with a 5-event user (the active rows then change inside a chunk), against
 * the same events applied one by one with dr_interest_step. */
static void case_long(const struct golden *g, const char *dir, const char *name)
{
    struct dr_interest *m = load(dir, name);
    size_t d = g->dim, n_ev = g->n_events_total, ssize = dr_interest_state_size(m);
    DR_CHECK(n_ev > 64, "golden: %zu events, want more than one chunk", n_ev);
    struct dr_interest_event *evs = calloc(n_ev, sizeof *evs);
    int64_t shift = 0, last = 0;
    size_t at = 0;
    for (size_t u = 0; u < g->n_users; u++) {
        for (size_t t = 0; t < g->lens[u]; t++, at++) {
            evs[at] = g->user_events[u][t];
            if (t == 0)
                shift = at ? last + 3600 - evs[at].ts : 0;
            evs[at].ts += shift;
            last = evs[at].ts;
        }
    }
    const struct dr_interest_event *seqs[2] = {evs, evs};
    size_t lens[2] = {n_ev, 5};
    float *batched = calloc(2 * d, sizeof(float)), *alone = calloc(d, sizeof(float));
    float *stepped = calloc(2 * d, sizeof(float));
    run(m, 2, seqs, lens, NULL, batched);
    run(m, 1, seqs, lens, NULL, alone);

    char *state_mem = calloc(2, ssize);
    void *states[2] = {state_mem, state_mem + ssize};
    struct buffers b = buffers_for(m, 2);
    for (size_t u = 0; u < 2; u++) {
        dr_interest_state_init(m, states[u]);
        for (size_t t = 0; t < lens[u]; t++)
            DR_CHECK(dr_interest_step(m, 1, &evs[t], &states[u], NULL, d, b.ws, b.ws_size) == DR_OK,
                     "step %zu", t);
    }
    DR_CHECK(dr_interest_user_vectors(m, 2, (const void *const *)states, stepped, d, b.ws,
                                      b.ws_size) == DR_OK,
             "user_vectors");
    double worst = fmax(max_abs_diff(batched, stepped, 2 * d), max_abs_diff(alone, stepped, d));
    printf("%s: %zu-event history, from scratch (alone and batched) vs step: max abs difference "
           "%.3g\n",
           name, n_ev, worst);
    DR_CHECK(worst <= 1e-5, "%s: long history: from scratch vs step differ by %.3g", name, worst);
    DR_CHECK(dr_interest_state_n_events(states[0]) == n_ev, "n_events");
    free(batched);
    free(alone);
    free(stepped);
    free(state_mem);
    free(evs);
    dr_aligned_free(b.ws);
    dr_interest_destroy(m);
}

static void case_invalid(const struct golden *g, const char *dir)
{
    struct dr_interest *m = load(dir, "interest-fp32");
    size_t d = g->dim, ssize = dr_interest_state_size(m);
    void *state = calloc(1, ssize), *copy = calloc(1, ssize);
    dr_interest_state_init(m, state);
    struct buffers b = buffers_for(m, 2);
    float out[2 * 512];
    struct dr_interest_event ev = g->events[0];
    DR_CHECK(dr_interest_step(m, 1, &ev, &state, out, d, b.ws, b.ws_size) == DR_OK, "first");
    memcpy(copy, state, ssize);
    struct dr_interest_event bad = ev;
    bad.event_type = 99;
    DR_CHECK(dr_interest_step(m, 1, &bad, &state, out, d, b.ws, b.ws_size) == DR_ERR_INVALID_ARG,
             "type out of range");
    bad = ev;
    bad.ts = ev.ts - 1;
    DR_CHECK(dr_interest_step(m, 1, &bad, &state, out, d, b.ws, b.ws_size) == DR_ERR_INVALID_ARG,
             "time going backwards");
    bad = ev;
    bad.item_vec = NULL;
    DR_CHECK(dr_interest_step(m, 1, &bad, &state, out, d, b.ws, b.ws_size) == DR_ERR_INVALID_ARG,
             "no item vector");
    DR_CHECK(memcmp(copy, state, ssize) == 0, "a refused event changed the state");
    DR_CHECK(dr_interest_step(m, 1, &ev, &state, out, d, b.ws, 16) == DR_ERR_INVALID_ARG,
             "small workspace");
    struct dr_interest_event two[2] = {ev, ev};
    two[1].ts = ev.ts - 10;
    const struct dr_interest_event *seq = two;
    size_t len = 2;
    DR_CHECK(dr_interest_run(m, 1, &seq, &len, NULL, out, d, b.ws, b.ws_size) == DR_ERR_INVALID_ARG,
             "run: time going backwards");
    /* A user with no events: h = 0 and long = 0; the vector is the fusion's bias path. */
    len = 0;
    DR_CHECK(dr_interest_run(m, 1, &seq, &len, NULL, out, d, b.ws, b.ws_size) == DR_OK,
             "empty history");
    free(state);
    free(copy);
    dr_aligned_free(b.ws);
    dr_interest_destroy(m);
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    if (argc != 3) {
        fprintf(stderr, "usage: test_interest GOLDEN_DIR CASE\n");
        return 2;
    }
    const char *dir = argv[1], *which = argv[2];
    char path[1024];
    snprintf(path, sizeof path, "%s/interest_golden.safetensors", dir);
    struct golden g = {0};
    if (!golden_load(path, &g)) {
        printf("SKIP: %s not found (run tests/golden/generate.py)\n", path);
        return DR_TEST_SKIP;
    }
    if (strcmp(which, "fp32") == 0 || strcmp(which, "int8") == 0) {
        bool int8 = which[0] == 'i';
        struct dr_interest *m = load(dir, int8 ? "interest-int8" : "interest-fp32");
        DR_CHECK(dr_interest_is_int8(m) == int8 && dr_interest_item_dim(m) == g.dim, "model");
        float *out = calloc(g.n_users * g.dim, sizeof(float));
        run(m, g.n_users, g.user_events, g.lens, NULL, out);
        compare_golden(int8 ? "interest int8 vs PyTorch fp32" : "interest fp32 vs PyTorch fp32", &g,
                       out, int8 ? 0 : 1e-4, int8 ? 0.99 : 0.9999);
        free(out);
        dr_interest_destroy(m);
    } else if (strcmp(which, "step") == 0) {
        case_step(&g, dir, "interest-fp32");
        case_step(&g, dir, "interest-int8");
        case_long(&g, dir, "interest-fp32");
        case_long(&g, dir, "interest-int8");
    } else if (strcmp(which, "invalid") == 0) {
        case_invalid(&g, dir);
    } else {
        fprintf(stderr, "unknown case %s\n", which);
        return 2;
    }
    golden_free(&g);
    if (dr_test_failures)
        return 1;
    printf("PASS\n");
    return 0;
}
