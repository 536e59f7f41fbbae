/* driftrec_index.c: the driftrec-index command: build, search and describe index files.
 *
 *   driftrec-index build  --input VECS --out INDEX [--dim D] [--metric ip|cosine|l2]
 *                         [--scale vector|dim] [--rerank none|f16|f32] [--m 16] [--m0 32]
 *                         [--ef-construction 200] [--threads N] [--seed S]
 *                         [--categories FILE --n-categories C]
 *   driftrec-index search --index INDEX --queries VECS [--dim D] [--k 10] [--ef 64]
 *                         [--rerank R] [--exclude ID,ID,...] [--exact] [--check] [--limit Q]
 *   driftrec-index info   --index INDEX
 *
 * VECS is .fvecs (each row: int32 dim, then dim float32) or raw little-endian float32 rows
 * (then --dim is required).  CATEGORIES is raw uint32, one per item.  build draws a progress
 * bar on stderr; search prints one line per query (ids and scores), or with --check the
 * recall@k against the exact scan of the same codes and the queries per second.
 */
#include "ann.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *arg_value(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    }
    return NULL;
}

static bool arg_flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], name) == 0)
            return true;
    }
    return false;
}

static unsigned long arg_ulong(int argc, char **argv, const char *name, unsigned long dflt)
{
    const char *v = arg_value(argc, argv, name);
    return v ? strtoul(v, NULL, 0) : dflt;
}

static void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "driftrec-index: cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(len > 0 ? (size_t)len : 1);
    if (!buf || len < 0 || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "driftrec-index: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *size = (size_t)len;
    return buf;
}

/* Rows of floats from .fvecs or raw f32; returns owned (free), NULL with a message. */
static float *read_vectors(const char *path, size_t dim_arg, size_t *n_out, size_t *dim_out)
{
    size_t size = 0;
    uint8_t *buf = read_file(path, &size);
    if (!buf)
        return NULL;
    size_t len = strlen(path);
    if (len > 6 && strcmp(path + len - 6, ".fvecs") == 0) {
        int32_t d;
        if (size < 4) {
            free(buf);
            fprintf(stderr, "driftrec-index: %s: empty\n", path);
            return NULL;
        }
        memcpy(&d, buf, 4);
        size_t row = 4 + (size_t)d * 4;
        if (d <= 0 || size % row != 0) {
            free(buf);
            fprintf(stderr, "driftrec-index: %s: not .fvecs (dim %d, %zu bytes)\n", path, d, size);
            return NULL;
        }
        size_t n = size / row;
        float *out = malloc(n * (size_t)d * sizeof(float));
        if (!out) {
            free(buf);
            return NULL;
        }
        for (size_t i = 0; i < n; i++)
            memcpy(out + i * (size_t)d, buf + i * row + 4, (size_t)d * 4);
        free(buf);
        *n_out = n;
        *dim_out = (size_t)d;
        return out;
    }
    if (dim_arg == 0 || size % (dim_arg * 4) != 0) {
        free(buf);
        fprintf(stderr, "driftrec-index: %s: raw float32 needs --dim dividing %zu bytes\n", path,
                size);
        return NULL;
    }
    *n_out = size / (dim_arg * 4);
    *dim_out = dim_arg;
    return (float *)buf;
}

struct progress {
    double t0;
    int last_pct;
};

static void draw_progress(void *ctx, size_t done, size_t total)
{
    struct progress *p = ctx;
    int pct = (int)(100.0 * (double)done / (double)total);
    if (pct == p->last_pct && done != total)
        return;
    p->last_pct = pct;
    char bar[41];
    int fill = pct * 40 / 100;
    for (int i = 0; i < 40; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[40] = '\0';
    fprintf(stderr, "\rbuilding [%s] %3d%% %zu/%zu %.1f s", bar, pct, done, total, now_s() - p->t0);
    if (done == total)
        fputc('\n', stderr);
    fflush(stderr);
}

static int cmd_build(int argc, char **argv)
{
    const char *in = arg_value(argc, argv, "--input"), *out = arg_value(argc, argv, "--out");
    if (!in || !out) {
        fprintf(stderr, "driftrec-index build: --input and --out are required\n");
        return 2;
    }
    struct dr_ann_build_opts opts;
    dr_ann_build_opts_default(&opts);
    const char *metric = arg_value(argc, argv, "--metric");
    if (metric && !dr_ann_metric_parse(metric, &opts.metric)) {
        fprintf(stderr, "driftrec-index: unknown metric %s (ip, cosine, l2)\n", metric);
        return 2;
    }
    const char *scale = arg_value(argc, argv, "--scale");
    if (scale)
        opts.scale = strcmp(scale, "dim") == 0 ? DR_ANN_SCALE_PER_DIM : DR_ANN_SCALE_PER_VECTOR;
    const char *rerank = arg_value(argc, argv, "--rerank");
    if (rerank)
        opts.rerank = strcmp(rerank, "f16") == 0   ? DR_ANN_RERANK_F16
                      : strcmp(rerank, "f32") == 0 ? DR_ANN_RERANK_F32
                                                   : DR_ANN_RERANK_NONE;
    opts.m = (uint32_t)arg_ulong(argc, argv, "--m", opts.m);
    opts.m0 = (uint32_t)arg_ulong(argc, argv, "--m0", opts.m0);
    opts.ef_construction =
        (uint32_t)arg_ulong(argc, argv, "--ef-construction", opts.ef_construction);
    opts.n_threads = (uint32_t)arg_ulong(argc, argv, "--threads", 0);
    opts.seed = arg_ulong(argc, argv, "--seed", opts.seed);
    size_t n = 0, dim = 0;
    float *x = read_vectors(in, arg_ulong(argc, argv, "--dim", 0), &n, &dim);
    if (!x)
        return 1;
    uint32_t *cats = NULL;
    const char *cat_path = arg_value(argc, argv, "--categories");
    if (cat_path) {
        size_t size = 0;
        cats = read_file(cat_path, &size);
        if (!cats || size != n * 4) {
            fprintf(stderr, "driftrec-index: %s: expected %zu uint32 categories\n", cat_path, n);
            free(cats);
            free(x);
            return 1;
        }
        opts.categories = cats;
        opts.n_categories = (uint32_t)arg_ulong(argc, argv, "--n-categories", 0);
    }
    struct progress prog = {now_s(), -1};
    opts.progress = draw_progress;
    opts.progress_ctx = &prog;
    struct dr_ann_index *index = NULL;
    struct dr_error err = {0};
    enum dr_status st = dr_ann_build(x, n, dim, dim, &opts, &index, &err);
    if (st == DR_OK)
        st = dr_ann_save(index, out, &err);
    free(x);
    free(cats);
    if (st != DR_OK) {
        fprintf(stderr, "driftrec-index: %s\n", err.msg);
        dr_ann_destroy(index);
        return 1;
    }
    struct dr_ann_info info;
    dr_ann_get_info(index, &info);
    fprintf(stderr, "%s: %zu x %zu, %.1f s, %zu bytes (%.1f per vector; re-rank tier %zu)\n", out,
            n, dim, now_s() - prog.t0, info.file_bytes, (double)info.file_bytes / (double)n,
            info.rerank_bytes);
    dr_ann_destroy(index);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    const char *path = arg_value(argc, argv, "--index");
    if (!path) {
        fprintf(stderr, "driftrec-index info: --index is required\n");
        return 2;
    }
    struct dr_ann_index *index = NULL;
    struct dr_error err = {0};
    if (dr_ann_load(path, NULL, &index, &err) != DR_OK) {
        fprintf(stderr, "driftrec-index: %s\n", err.msg);
        return 1;
    }
    struct dr_ann_info in;
    dr_ann_get_info(index, &in);
    static const char *rr[] = {"none", "f16", "f32"};
    printf("items %zu\ndim %zu\nmetric %s\nscale %s\nrerank %s (%zu bytes)\nm %u\nm0 %u\n"
           "ef_construction %u\nid_bits %u\nmax_level %u\nupper_nodes %zu\nnode_bytes %zu\n"
           "mean_degree0 %.2f\nfile_bytes %zu (%.1f per item)\ncategories %u\nsha256 ",
           in.n, in.dim, dr_ann_metric_name(in.metric),
           in.scale == DR_ANN_SCALE_PER_DIM ? "per-dim" : "per-vector", rr[in.rerank],
           in.rerank_bytes, in.m, in.m0, in.ef_construction, in.id_bits, in.max_level, in.n_upper,
           in.node_bytes, in.mean_degree0, in.file_bytes, (double)in.file_bytes / (double)in.n,
           in.n_categories);
    for (int i = 0; i < 32; i++)
        printf("%02x", in.sha256[i]);
    printf("\n");
    dr_ann_destroy(index);
    return 0;
}

static int cmd_search(int argc, char **argv)
{
    const char *path = arg_value(argc, argv, "--index"),
               *qpath = arg_value(argc, argv, "--queries");
    if (!path || !qpath) {
        fprintf(stderr, "driftrec-index search: --index and --queries are required\n");
        return 2;
    }
    struct dr_ann_index *index = NULL;
    struct dr_error err = {0};
    if (dr_ann_load(path, NULL, &index, &err) != DR_OK) {
        fprintf(stderr, "driftrec-index: %s\n", err.msg);
        return 1;
    }
    struct dr_ann_info info;
    dr_ann_get_info(index, &info);
    size_t nq = 0, dim = 0;
    float *q = read_vectors(qpath, info.dim, &nq, &dim);
    if (!q || dim != info.dim) {
        fprintf(stderr, "driftrec-index: queries have dim %zu, the index %zu\n", dim, info.dim);
        free(q);
        dr_ann_destroy(index);
        return 1;
    }
    size_t limit = arg_ulong(argc, argv, "--limit", nq);
    nq = limit < nq ? limit : nq;
    size_t k = arg_ulong(argc, argv, "--k", 10);
    struct dr_ann_query_opts opts = {0};
    opts.ef = arg_ulong(argc, argv, "--ef", 64);
    opts.rerank = arg_ulong(argc, argv, "--rerank", 0);
    opts.exact = arg_flag(argc, argv, "--exact");
    uint32_t exclude[1024];
    const char *ex = arg_value(argc, argv, "--exclude");
    for (const char *p = ex; p && *p && opts.n_exclude < 1024;) {
        char *end;
        exclude[opts.n_exclude++] = (uint32_t)strtoul(p, &end, 10);
        p = *end == ',' ? end + 1 : end + (*end != '\0');
    }
    opts.exclude = exclude;
    bool check = arg_flag(argc, argv, "--check");
    struct dr_ann_searcher *s = NULL;
    uint32_t *ids = malloc(k * sizeof(uint32_t) * 2);
    float *scores = malloc(k * sizeof(float));
    if (!ids || !scores || dr_ann_searcher_create(index, &s) != DR_OK) {
        fprintf(stderr, "driftrec-index: out of memory\n");
        free(ids);
        free(scores);
        free(q);
        dr_ann_destroy(index);
        return 1;
    }
    double t_search = 0.0, hits = 0.0, total = 0.0;
    int rc = 0;
    for (size_t i = 0; i < nq; i++) {
        size_t got = 0, got_exact = 0;
        double t0 = now_s();
        if (dr_ann_search(s, q + i * dim, k, &opts, ids, scores, &got) != DR_OK) {
            fprintf(stderr, "driftrec-index: query %zu: invalid argument\n", i);
            rc = 1;
            break;
        }
        t_search += now_s() - t0;
        if (!check) {
            printf("%zu:", i);
            for (size_t j = 0; j < got; j++)
                printf(" %" PRIu32 ":%.5g", ids[j], (double)scores[j]);
            printf("\n");
            continue;
        }
        struct dr_ann_query_opts exact = opts;
        exact.exact = true;
        dr_ann_search(s, q + i * dim, k, &exact, ids + k, NULL, &got_exact);
        for (size_t a = 0; a < got_exact; a++) {
            for (size_t b = 0; b < got; b++) {
                if (ids[k + a] == ids[b]) {
                    hits += 1.0;
                    break;
                }
            }
        }
        total += (double)got_exact;
    }
    if (check && rc == 0)
        printf("queries %zu k %zu ef %zu recall@%zu vs exact scan %.4f, %.0f queries/s\n", nq, k,
               opts.ef, k, total > 0 ? hits / total : 1.0, (double)nq / t_search);
    dr_ann_searcher_destroy(s);
    free(ids);
    free(scores);
    free(q);
    dr_ann_destroy(index);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "build") == 0)
        return cmd_build(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "search") == 0)
        return cmd_search(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "info") == 0)
        return cmd_info(argc - 1, argv + 1);
    fprintf(stderr, "usage: driftrec-index build|search|info ... (see models/ann/driftrec_index.c "
                    "or docs/ann.md)\n");
    return 2;
}
