/* test_ann.c: the ANN index (models/ann) on small clustered data, one case per ctest entry.
 *
 * Ground truth is an exact double-precision scan.  Recall bounds are loose enough for any
 * seed (the data are small: 4,000 x 32) and tight enough that a broken graph, filter or
 * quantiser fails.  Corrupt-file cases flip, truncate and rewrite a saved file (re-checksummed
 * where the structural checks are the target) and expect DR_ERR_FORMAT naming the problem.
 */
#include "ann.h"
#include "ann_internal.h"
#include "dr_test.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#define N   4000
#define DIM 32
#define NQ  60
#define K   10

static float *g_x, *g_q;

/* Clustered, not unit length: centre + noise, each row scaled by a norm in [0.5, 2]. */
static void make_data(size_t n, size_t nq, size_t dim, bool unit)
{
    size_t n_clusters = 20;
    float *centres = malloc(n_clusters * dim * sizeof(float));
    g_x = malloc(n * dim * sizeof(float));
    g_q = malloc(nq * dim * sizeof(float));
    for (size_t i = 0; i < n_clusters * dim; i++)
        centres[i] = dr_test_rand_normal();
    for (size_t i = 0; i < n + nq; i++) {
        float *row = i < n ? g_x + i * dim : g_q + (i - n) * dim;
        size_t c = (size_t)dr_test_rand_int(0, (int)n_clusters - 1);
        double s = 0.0;
        for (size_t d = 0; d < dim; d++) {
            row[d] = centres[c * dim + d] + 0.6f * dr_test_rand_normal();
            s += (double)row[d] * (double)row[d];
        }
        float scale = unit ? (float)(1.0 / sqrt(s)) : dr_test_rand_float(0.5f, 2.0f);
        for (size_t d = 0; d < dim; d++)
            row[d] *= scale;
    }
    free(centres);
}

static double true_score(enum dr_ann_metric metric, const float *q, const float *x, size_t dim)
{
    double dot = 0, qq = 0, xx = 0;
    for (size_t d = 0; d < dim; d++) {
        dot += (double)q[d] * (double)x[d];
        qq += (double)q[d] * (double)q[d];
        xx += (double)x[d] * (double)x[d];
    }
    if (metric == DR_ANN_METRIC_COSINE)
        return dot / sqrt(qq * xx);
    if (metric == DR_ANN_METRIC_L2)
        return -(qq + xx - 2 * dot);
    return dot;
}

/* The exact top-k (best first) among items not excluded and (when cats) in category cat. */
static size_t exact_topk(enum dr_ann_metric metric, const float *q, size_t n, size_t dim,
                         const bool *excluded, const uint32_t *cats, uint32_t cat, size_t k,
                         uint32_t *out)
{
    double best[64];
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        if ((excluded && excluded[i]) || (cats && cats[i] != cat))
            continue;
        double s = true_score(metric, q, g_x + i * dim, dim);
        if (got == k && s <= best[k - 1])
            continue;
        size_t j = got < k ? got++ : k - 1;
        while (j > 0 && best[j - 1] < s) {
            best[j] = best[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        best[j] = s;
        out[j] = (uint32_t)i;
    }
    return got;
}

static double overlap(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    size_t hit = 0;
    for (size_t i = 0; i < na; i++) {
        for (size_t j = 0; j < nb; j++) {
            if (a[i] == b[j]) {
                hit++;
                break;
            }
        }
    }
    return (double)hit;
}

static struct dr_ann_index *build(enum dr_ann_metric metric, enum dr_ann_scale scale,
                                  enum dr_ann_rerank rerank, uint32_t n_threads,
                                  const uint32_t *cats, uint32_t n_cats)
{
    struct dr_ann_build_opts o;
    dr_ann_build_opts_default(&o);
    o.metric = metric;
    o.scale = scale;
    o.rerank = rerank;
    o.ef_construction = 100;
    o.n_threads = n_threads;
    o.seed = 7;
    o.categories = cats;
    o.n_categories = n_cats;
    struct dr_ann_index *ix = NULL;
    struct dr_error err = {0};
    enum dr_status st = dr_ann_build(g_x, N, DIM, DIM, &o, &ix, &err);
    DR_CHECK(st == DR_OK, "build: %s", err.msg);
    return ix;
}

static double recall(struct dr_ann_index *ix, enum dr_ann_metric metric,
                     const struct dr_ann_query_opts *opts)
{
    struct dr_ann_searcher *s = NULL;
    DR_CHECK(dr_ann_searcher_create(ix, &s) == DR_OK, "searcher");
    double hits = 0;
    for (size_t i = 0; i < NQ; i++) {
        uint32_t ids[K], truth[K];
        float scores[K];
        size_t got = 0;
        DR_CHECK(dr_ann_search(s, g_q + i * DIM, K, opts, ids, scores, &got) == DR_OK, "search");
        DR_CHECK(got == K, "query %zu: %zu results", i, got);
        for (size_t j = 1; j < got; j++) {
            bool ordered = metric == DR_ANN_METRIC_L2 ? scores[j] >= scores[j - 1]
                                                      : scores[j] <= scores[j - 1];
            DR_CHECK(ordered, "query %zu: scores out of order at %zu", i, j);
        }
        /* the returned score is the metric's value, up to int8 error */
        double t = true_score(metric, g_q + i * DIM, g_x + (size_t)ids[0] * DIM, DIM);
        if (metric == DR_ANN_METRIC_L2)
            t = -t;
        DR_CHECK(fabs((double)scores[0] - t) <= 0.05 * (fabs(t) + 1.0),
                 "query %zu: score %g, true %g", i, (double)scores[0], t);
        exact_topk(metric, g_q + i * DIM, N, DIM, NULL, NULL, 0, K, truth);
        hits += overlap(truth, K, ids, got);
    }
    dr_ann_searcher_destroy(s);
    return hits / (NQ * K);
}

static void case_recall(enum dr_ann_metric metric, enum dr_ann_scale scale)
{
    make_data(N, NQ, DIM, false);
    struct dr_ann_index *ix = build(metric, scale, DR_ANN_RERANK_F16, 2, NULL, 0);
    if (!ix)
        return;
    struct dr_ann_query_opts o = {.ef = 64};
    double r = recall(ix, metric, &o);
    DR_CHECK(r >= 0.85, "%s: recall@10 %.3f at ef 64 (int8)", dr_ann_metric_name(metric), r);
    o.ef = 128;
    o.rerank = 40;
    double rr = recall(ix, metric, &o);
    DR_CHECK(rr >= 0.97, "%s: recall@10 %.3f at ef 128 + re-rank", dr_ann_metric_name(metric), rr);
    o.exact = true;
    double re = recall(ix, metric, &o);
    DR_CHECK(re >= 0.99, "%s: exact scan + re-rank recall %.3f", dr_ann_metric_name(metric), re);
    printf("%s %s: recall@10 int8 ef64 %.3f, ef128+rerank %.3f, exact+rerank %.3f\n",
           dr_ann_metric_name(metric), scale == DR_ANN_SCALE_PER_DIM ? "per-dim" : "per-vector", r,
           rr, re);
    dr_ann_destroy(ix);
}

static void case_deterministic(void)
{
    make_data(N, NQ, DIM, false);
    struct dr_ann_index *a = build(DR_ANN_METRIC_IP, DR_ANN_SCALE_PER_VECTOR, 0, 1, NULL, 0);
    struct dr_ann_index *b = build(DR_ANN_METRIC_IP, DR_ANN_SCALE_PER_VECTOR, 0, 3, NULL, 0);
    struct dr_ann_index *c = build(DR_ANN_METRIC_IP, DR_ANN_SCALE_PER_VECTOR, 0, 2, NULL, 0);
    if (a && b && c) {
        DR_CHECK(a->size_bytes == b->size_bytes && a->size_bytes == c->size_bytes, "sizes");
        DR_CHECK(memcmp(a->base, b->base, a->size_bytes) == 0, "1 vs 3 threads differ");
        DR_CHECK(memcmp(a->base, c->base, a->size_bytes) == 0, "1 vs 2 threads differ");
    }
    dr_ann_destroy(a);
    dr_ann_destroy(b);
    dr_ann_destroy(c);
}

static void case_exclude(void)
{
    make_data(N, NQ, DIM, false);
    struct dr_ann_index *ix = build(DR_ANN_METRIC_IP, DR_ANN_SCALE_PER_VECTOR, 0, 2, NULL, 0);
    struct dr_ann_searcher *s = NULL;
    if (!ix || dr_ann_searcher_create(ix, &s) != DR_OK)
        return;
    bool *excluded = calloc(N, 1);
    double hits = 0;
    for (size_t i = 0; i < NQ; i++) {
        const float *q = g_q + i * DIM;
        /* the 50 "seen" items: 25 of the true top 50 and 25 random, so exclusion matters */
        uint32_t top[50], seen[50], ids[K], truth[K];
        memset(excluded, 0, N);
        exact_topk(DR_ANN_METRIC_IP, q, N, DIM, NULL, NULL, 0, 50, top);
        for (size_t j = 0; j < 50; j++) {
            seen[j] = j < 25 ? top[2 * j] : (uint32_t)dr_test_rand_int(0, N - 1);
            excluded[seen[j]] = true;
        }
        struct dr_ann_query_opts o = {.ef = 64, .exclude = seen, .n_exclude = 50};
        size_t got = 0;
        DR_CHECK(dr_ann_search(s, q, K, &o, ids, NULL, &got) == DR_OK, "search");
        DR_CHECK(got == K, "query %zu: %zu results with 50 excluded", i, got);
        for (size_t j = 0; j < got; j++)
            DR_CHECK(!excluded[ids[j]], "query %zu: excluded item %u returned", i, ids[j]);
        exact_topk(DR_ANN_METRIC_IP, q, N, DIM, excluded, NULL, 0, K, truth);
        hits += overlap(truth, K, ids, got);
    }
    double r = hits / (NQ * K);
    printf("exclusion of 50: recall@10 against the exact filtered top-10 %.3f\n", r);
    DR_CHECK(r >= 0.85, "recall with exclusion %.3f", r);

    /* all but 3 items excluded: exactly those 3 come back (the walk falls back to a scan) */
    uint32_t *all = malloc(N * sizeof(uint32_t));
    size_t n_ex = 0;
    for (uint32_t i = 0; i < N; i++) {
        if (i != 17 && i != 1234 && i != 3999)
            all[n_ex++] = i;
    }
    struct dr_ann_query_opts o = {.ef = 32, .exclude = all, .n_exclude = n_ex};
    uint32_t ids[K];
    size_t got = 0;
    DR_CHECK(dr_ann_search(s, g_q, K, &o, ids, NULL, &got) == DR_OK, "search");
    DR_CHECK(got == 3, "%zu results with 3 allowed", got);
    for (size_t j = 0; j < got; j++)
        DR_CHECK(ids[j] == 17 || ids[j] == 1234 || ids[j] == 3999, "returned %u", ids[j]);
    uint32_t bad = N;
    o.exclude = &bad;
    o.n_exclude = 1;
    DR_CHECK(dr_ann_search(s, g_q, K, &o, ids, NULL, &got) == DR_ERR_INVALID_ARG,
             "exclusion id out of range accepted");
    free(all);
    free(excluded);
    dr_ann_searcher_destroy(s);
    dr_ann_destroy(ix);
}

static void case_categories(void)
{
    make_data(N, NQ, DIM, false);
    uint32_t *cats = malloc(N * sizeof(uint32_t));
    /* category 0: half the items; 1: 1%; 2..: the rest spread */
    for (size_t i = 0; i < N; i++)
        cats[i] = i % 2 == 0 ? 0 : (i % 100 == 1 ? 1 : 2 + (uint32_t)(i % 7));
    struct dr_ann_index *ix = build(DR_ANN_METRIC_IP, DR_ANN_SCALE_PER_VECTOR, 0, 2, cats, 9);
    struct dr_ann_searcher *s = NULL;
    if (!ix || dr_ann_searcher_create(ix, &s) != DR_OK) {
        free(cats);
        return;
    }
    for (uint32_t cat = 0; cat < 2; cat++) {
        double hits = 0;
        for (size_t i = 0; i < NQ; i++) {
            uint32_t ids[K], truth[K];
            size_t got = 0;
            struct dr_ann_query_opts o = {.ef = 64, .categories = &cat, .n_categories = 1};
            DR_CHECK(dr_ann_search(s, g_q + i * DIM, K, &o, ids, NULL, &got) == DR_OK, "search");
            DR_CHECK(got == K, "category %u: %zu results", cat, got);
            for (size_t j = 0; j < got; j++)
                DR_CHECK(cats[ids[j]] == cat, "item %u of category %u returned for %u", ids[j],
                         cats[ids[j]], cat);
            exact_topk(DR_ANN_METRIC_IP, g_q + i * DIM, N, DIM, NULL, cats, cat, K, truth);
            hits += overlap(truth, K, ids, got);
        }
        double r = hits / (NQ * K);
        printf("category %u (%s): recall@10 %.3f\n", cat, cat ? "1%, exact scan" : "50%, graph", r);
        DR_CHECK(r >= (cat ? 0.9 : 0.85), "category %u recall %.3f", cat, r);
    }
    uint32_t bad = 9;
    struct dr_ann_query_opts o = {.categories = &bad, .n_categories = 1};
    uint32_t ids[K];
    size_t got;
    DR_CHECK(dr_ann_search(s, g_q, K, &o, ids, NULL, &got) == DR_ERR_INVALID_ARG,
             "unknown category accepted");
    dr_ann_searcher_destroy(s);
    dr_ann_destroy(ix);
    free(cats);
}

static void case_batch(void)
{
    make_data(N, NQ, DIM, true);
    struct dr_ann_index *ix = build(DR_ANN_METRIC_COSINE, DR_ANN_SCALE_PER_VECTOR, 0, 2, NULL, 0);
    struct dr_ann_searcher *s = NULL;
    if (!ix || dr_ann_searcher_create(ix, &s) != DR_OK)
        return;
    uint32_t *ids = malloc(NQ * K * sizeof(uint32_t));
    float *scores = malloc(NQ * K * sizeof(float));
    size_t n_out[NQ];
    struct dr_ann_query_opts o = {.ef = 40};
    DR_CHECK(dr_ann_search_batch(ix, NQ, g_q, DIM, K, &o, 3, ids, scores, n_out) == DR_OK, "batch");
    for (size_t i = 0; i < NQ; i++) {
        uint32_t one[K];
        float one_scores[K];
        size_t got = 0;
        dr_ann_search(s, g_q + i * DIM, K, &o, one, one_scores, &got);
        DR_CHECK(got == n_out[i] && memcmp(one, ids + i * K, got * 4) == 0 &&
                     memcmp(one_scores, scores + i * K, got * 4) == 0,
                 "query %zu: batch and single differ", i);
    }
    free(ids);
    free(scores);
    dr_ann_searcher_destroy(s);
    dr_ann_destroy(ix);
}

static void case_small(void)
{
    make_data(N, NQ, DIM, false);
    struct dr_ann_build_opts o;
    dr_ann_build_opts_default(&o);
    o.n_threads = 2;
    for (size_t n = 1; n <= 1500; n = n * 7 + 1) {
        struct dr_ann_index *ix = NULL;
        struct dr_error err = {0};
        DR_CHECK(dr_ann_build(g_x, n, DIM, DIM, &o, &ix, &err) == DR_OK, "n=%zu: %s", n, err.msg);
        struct dr_ann_searcher *s = NULL;
        if (!ix || dr_ann_searcher_create(ix, &s) != DR_OK)
            continue;
        uint32_t ids[K], truth[K];
        size_t got = 0;
        DR_CHECK(dr_ann_search(s, g_q, K, NULL, ids, NULL, &got) == DR_OK, "search");
        size_t want = exact_topk(DR_ANN_METRIC_IP, g_q, n, DIM, NULL, NULL, 0, K, truth);
        DR_CHECK(got == want, "n=%zu: %zu results, want %zu", n, got, want);
        DR_CHECK(overlap(truth, want, ids, got) >= (double)want - 1, "n=%zu: wrong items", n);
        dr_ann_searcher_destroy(s);
        dr_ann_destroy(ix);
    }
    struct dr_error err = {0};
    struct dr_ann_index *ix = NULL;
    DR_CHECK(dr_ann_build(g_x, 0, DIM, DIM, &o, &ix, &err) == DR_ERR_INVALID_ARG, "n=0");
    g_x[5] = NAN;
    DR_CHECK(dr_ann_build(g_x, 10, DIM, DIM, &o, &ix, &err) == DR_ERR_INVALID_ARG, "NaN");
    DR_CHECK(strstr(err.msg, "vector 0 dim 5") != NULL, "message: %s", err.msg);
    o.m0 = 300;
    DR_CHECK(dr_ann_build(g_x, 10, DIM, DIM, &o, &ix, &err) == DR_ERR_INVALID_ARG, "m0=300");
}

static void case_f16(void)
{
    const float values[] = {0.0f,     -0.0f,          1.0f,           -2.5f,
                            65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f,
                            1e-9f,    70000.0f};
    const float expect[] = {0.0f,     -0.0f,          1.0f,           -2.5f,
                            65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f,
                            0.0f,     INFINITY};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        float back = dr__ann_f16_to_f32(dr__ann_f32_to_f16(values[i]));
        DR_CHECK(back == expect[i], "f16 round trip of %g gave %g", (double)values[i],
                 (double)back);
    }
    for (int i = 0; i < 1000; i++) {
        float v = dr_test_rand_float(-4.0f, 4.0f);
        float back = dr__ann_f16_to_f32(dr__ann_f32_to_f16(v));
        DR_CHECK(fabsf(back - v) <= fabsf(v) * 0x1p-11f, "f16 of %g gave %g", (double)v,
                 (double)back);
    }
}

/* ---- files ---------------------------------------------------------------------------------- */

static char g_path[256];

static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(*size);
    if (fread(buf, 1, *size, f) != *size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static enum dr_status load_image(const uint8_t *img, size_t size, const char *expect_msg)
{
    struct dr_ann_index *ix = NULL;
    struct dr_error err = {0};
    FILE *f = fopen(g_path, "wb");
    fwrite(img, 1, size, f);
    fclose(f);
    enum dr_status st = dr_ann_load(g_path, NULL, &ix, &err);
    if (expect_msg)
        DR_CHECK(st == DR_ERR_FORMAT && strstr(err.msg, expect_msg),
                 "expected a format error with \"%s\", got %s: %s", expect_msg, dr_status_str(st),
                 err.msg);
    dr_ann_destroy(ix);
    return st;
}

static void rechecksum(uint8_t *img, size_t size)
{
    uint8_t sum[32];
    dr__ann_image_sha256(img, size, sum);
    memcpy(img + offsetof(struct dr_ann_header, sha256), sum, 32);
}

static void case_file(void)
{
    snprintf(g_path, sizeof g_path, "test_ann_%d.dri", (int)getpid());
    make_data(N, NQ, DIM, false);
    uint32_t *cats = malloc(N * sizeof(uint32_t));
    for (size_t i = 0; i < N; i++)
        cats[i] = (uint32_t)(i % 5);
    struct dr_ann_index *built =
        build(DR_ANN_METRIC_L2, DR_ANN_SCALE_PER_DIM, DR_ANN_RERANK_F32, 2, cats, 5);
    struct dr_error err = {0};
    if (!built || dr_ann_save(built, g_path, &err) != DR_OK) {
        DR_TEST_FAIL("save: %s", err.msg);
        return;
    }
    struct dr_ann_index *loaded = NULL;
    DR_CHECK(dr_ann_load(g_path, NULL, &loaded, &err) == DR_OK, "load: %s", err.msg);
    if (loaded) {
        /* the same answers from the built and the mapped index */
        struct dr_ann_searcher *a = NULL, *b = NULL;
        dr_ann_searcher_create(built, &a);
        dr_ann_searcher_create(loaded, &b);
        for (size_t i = 0; i < NQ; i++) {
            uint32_t ia[K], ib[K];
            float sa[K], sb[K];
            size_t na = 0, nb = 0;
            struct dr_ann_query_opts o = {.ef = 50, .rerank = 20};
            dr_ann_search(a, g_q + i * DIM, K, &o, ia, sa, &na);
            dr_ann_search(b, g_q + i * DIM, K, &o, ib, sb, &nb);
            DR_CHECK(na == nb && memcmp(ia, ib, na * 4) == 0 && memcmp(sa, sb, na * 4) == 0,
                     "query %zu: built and loaded differ", i);
        }
        dr_ann_searcher_destroy(a);
        dr_ann_searcher_destroy(b);
        struct dr_ann_info info;
        dr_ann_get_info(loaded, &info);
        DR_CHECK(info.n == N && info.dim == DIM && info.rerank_bytes == N * DIM * 4, "info");
        dr_ann_destroy(loaded);
    }
    dr_ann_destroy(built);

    size_t size = 0;
    uint8_t *good = slurp(g_path, &size);
    uint8_t *img = malloc(size);
    struct dr_ann_header h;
    memcpy(&h, good, sizeof h);
    size_t nodes = h.sections[DR_ANN_SEC_NODES].offset;

    memcpy(img, good, size);
    img[0] = 'X';
    load_image(img, size, "bad magic");

    memcpy(img, good, size);
    img[offsetof(struct dr_ann_header, version)] = 9;
    load_image(img, size, "version 9");

    load_image(good, size - 100, "truncated");
    load_image(good, 100, "shorter than");

    memcpy(img, good, size); /* one bit in a code: only the checksum can tell */
    img[nodes + 5] ^= 1;
    load_image(img, size, "checksum");

    memcpy(img, good, size); /* a link count past m0, re-checksummed */
    img[nodes + h.off_count] = 250;
    rechecksum(img, size);
    load_image(img, size, "links, at most m0");

    memcpy(img, good, size); /* a link to an item that does not exist */
    memset(img + nodes + h.off_links, 0xff, 3);
    img[nodes + h.off_count] = 1;
    rechecksum(img, size);
    load_image(img, size, "link 0 to");

    memcpy(img, good, size); /* overlapping sections */
    struct dr_ann_header *hp = (struct dr_ann_header *)img;
    hp->sections[DR_ANN_SEC_UPPER_INDEX].offset = hp->sections[DR_ANN_SEC_NODES].offset;
    rechecksum(img, size);
    load_image(img, size, "overlaps");

    memcpy(img, good, size); /* a shape that does not match the records */
    hp->dim = DIM + 1;
    rechecksum(img, size);
    load_image(img, size, "stride");

    memcpy(img, good, size); /* an entry point past n */
    hp->entry = N;
    rechecksum(img, size);
    load_image(img, size, "entry");

    memcpy(img, good, size); /* a category past n_categories */
    uint32_t bad_cat = 77;
    memcpy(img + h.sections[DR_ANN_SEC_CATEGORIES].offset + 8, &bad_cat, 4);
    rechecksum(img, size);
    load_image(img, size, "category 77");

    DR_CHECK(load_image(good, size, NULL) == DR_OK, "the good image no longer loads");
    struct dr_ann_index *ix = NULL;
    DR_CHECK(dr_ann_load("no/such/index.dri", NULL, &ix, &err) == DR_ERR_IO, "missing file");
    free(img);
    free(good);
    free(cats);
    remove(g_path);
}

/* For the command-line test: n clustered rows of DIM floats, as .fvecs, from a fixed seed. */
static int write_fvecs(const char *path, size_t n)
{
    dr_test_rng_state = 42;
    make_data(n, 1, DIM, false);
    FILE *f = fopen(path, "wb");
    if (!f)
        return 1;
    int32_t d = DIM;
    for (size_t i = 0; i < n; i++) {
        fwrite(&d, 4, 1, f);
        fwrite(g_x + i * DIM, 4, DIM, f);
    }
    fclose(f);
    free(g_x);
    free(g_q);
    return 0;
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    const char *name = argc > 1 ? argv[1] : "";
    if (strcmp(name, "recall_ip") == 0)
        case_recall(DR_ANN_METRIC_IP, DR_ANN_SCALE_PER_VECTOR);
    else if (strcmp(name, "recall_ip_per_dim") == 0)
        case_recall(DR_ANN_METRIC_IP, DR_ANN_SCALE_PER_DIM);
    else if (strcmp(name, "recall_cosine") == 0)
        case_recall(DR_ANN_METRIC_COSINE, DR_ANN_SCALE_PER_VECTOR);
    else if (strcmp(name, "recall_l2") == 0)
        case_recall(DR_ANN_METRIC_L2, DR_ANN_SCALE_PER_VECTOR);
    else if (strcmp(name, "deterministic") == 0)
        case_deterministic();
    else if (strcmp(name, "exclude") == 0)
        case_exclude();
    else if (strcmp(name, "categories") == 0)
        case_categories();
    else if (strcmp(name, "batch") == 0)
        case_batch();
    else if (strcmp(name, "small") == 0)
        case_small();
    else if (strcmp(name, "f16") == 0)
        case_f16();
    else if (strcmp(name, "file") == 0)
        case_file();
    else if (strcmp(name, "write_fvecs") == 0 && argc == 4)
        return write_fvecs(argv[2], strtoul(argv[3], NULL, 10));
    else {
        fprintf(stderr, "unknown case '%s'\n", name);
        return 2;
    }
    free(g_x);
    free(g_q);
    if (dr_test_failures)
        return 1;
    printf("PASS %s\n", name);
    return 0;
}
