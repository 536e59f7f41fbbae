/* test_bert.c: the C encoder against PyTorch on the golden batches (tests/golden).
 *
 * Usage: test_bert GOLDEN_DIR CASE
 *   mini_fp32       fp32 file, fp32 path: max abs error <= 1e-4
 *   mini_int8       int8 file: cosine >= 0.99 for every output vector (min and mean printed)
 *   mini_quantize   fp32 file quantised at load: the same as the int8 file, bit for bit
 *   base_int8       BERT-base-shaped int8 file: cosine >= 0.99
 *   batching        each sequence alone equals its row in the batch; bad inputs refused
 * Exit 77 (skip) when the golden files are missing.
 */
#include "bert.h"
#include "dr_test.h"
#include "model_file.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

struct golden {
    void *buf;
    struct dr_safetensors st;
    const int32_t *ids;
    size_t n_seqs, n_tokens, dim;
    size_t lens[64];
    const float *expected;
};

static bool golden_load(const char *path, struct golden *g)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    g->buf = malloc((size_t)size);
    if (fread(g->buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        return false;
    }
    fclose(f);
    struct dr_error err = {0};
    if (dr_safetensors_parse(g->buf, (size_t)size, path, &g->st, &err) != DR_OK) {
        DR_TEST_FAIL("%s", err.msg);
        exit(1);
    }
    const struct dr_tensor_info *ids = dr_safetensors_find(&g->st, "input_ids");
    const struct dr_tensor_info *lens = dr_safetensors_find(&g->st, "lengths");
    const struct dr_tensor_info *exp = dr_safetensors_find(&g->st, "expected");
    if (!ids || !lens || !exp || lens->n_elements > 64) {
        DR_TEST_FAIL("%s: missing tensors", path);
        exit(1);
    }
    /* The golden writer places I32/F32 tensors in name order; copy to be safe on alignment. */
    int32_t *idc = malloc(ids->n_elements * 4);
    memcpy(idc, ids->data, ids->n_elements * 4);
    float *expc = malloc(exp->n_elements * 4);
    memcpy(expc, exp->data, exp->n_elements * 4);
    g->ids = idc;
    g->expected = expc;
    g->n_tokens = ids->n_elements;
    g->n_seqs = lens->n_elements;
    g->dim = exp->shape[1];
    for (size_t i = 0; i < g->n_seqs; i++) {
        int32_t v;
        memcpy(&v, lens->data + 4 * i, 4);
        g->lens[i] = (size_t)v;
    }
    return true;
}

static void golden_free(struct golden *g)
{
    free((void *)(uintptr_t)g->ids);
    free((void *)(uintptr_t)g->expected);
    dr_safetensors_deinit(&g->st);
    free(g->buf);
}

static struct dr_bert *load(const char *dir, enum dr_precision prec)
{
    struct dr_bert *bert = NULL;
    struct dr_error err = {0};
    struct dr_model_opts opts = {.precision = prec};
    if (dr_bert_load(dir, &opts, &bert, &err) != DR_OK) {
        DR_TEST_FAIL("load %s: %s", dir, err.msg);
        exit(1);
    }
    return bert;
}

static float *encode(const struct dr_bert *bert, const struct golden *g)
{
    size_t max_len = 0;
    for (size_t i = 0; i < g->n_seqs; i++)
        max_len = g->lens[i] > max_len ? g->lens[i] : max_len;
    size_t ws_size = dr_bert_workspace_size(bert, g->n_tokens, max_len);
    void *ws = dr_aligned_alloc(ws_size);
    float *out = calloc(g->n_seqs * g->dim, sizeof *out);
    enum dr_status st = dr_bert_encode(bert, g->n_seqs, g->ids, g->lens, out, g->dim, ws, ws_size);
    DR_CHECK(st == DR_OK, "encode: %s", dr_status_str(st));
    dr_aligned_free(ws);
    return out;
}

static void compare(const char *label, const struct golden *g, const float *got, double max_abs,
                    double min_cos)
{
    double worst = 0.0, cos_min = 1.0, cos_sum = 0.0;
    for (size_t s = 0; s < g->n_seqs; s++) {
        double row_max, c;
        dr_test_compare_rows(got + s * g->dim, g->expected + s * g->dim, g->dim, &row_max, &c);
        worst = fmax(worst, row_max);
        cos_min = fmin(cos_min, c);
        cos_sum += c;
        if (c < min_cos || !(c == c))
            DR_TEST_FAIL("%s: sequence %zu (length %zu): cosine %.6f < %.2f", label, s, g->lens[s],
                         c, min_cos);
    }
    printf("%s: %zu vectors of %zu: max abs error %.3g, cosine min %.6f mean %.6f\n", label,
           g->n_seqs, g->dim, worst, cos_min, cos_sum / (double)g->n_seqs);
    if (max_abs > 0 && !(worst <= max_abs))
        DR_TEST_FAIL("%s: max abs error %.3g > %.1g", label, worst, max_abs);
}

int main(int argc, char **argv)
{
    dr_test_init_seed();
    if (argc != 3) {
        fprintf(stderr, "usage: test_bert GOLDEN_DIR CASE\n");
        return 2;
    }
    const char *dir = argv[1], *which = argv[2];
    char path[1024], model[1024];
    bool base = strcmp(which, "base_int8") == 0;
    snprintf(path, sizeof path, "%s/%s_golden.safetensors", dir, base ? "bert-base" : "bert-mini");
    struct golden g = {0};
    if (!golden_load(path, &g)) {
        printf("SKIP: %s not found (run tests/golden/generate.py)\n", path);
        return DR_TEST_SKIP;
    }

    if (strcmp(which, "mini_fp32") == 0) {
        snprintf(model, sizeof model, "%s/bert-mini-fp32", dir);
        struct dr_bert *bert = load(model, DR_PRECISION_AUTO);
        DR_CHECK(!dr_bert_is_int8(bert) && dr_bert_output_dim(bert) == g.dim, "fp32 model");
        float *out = encode(bert, &g);
        compare("bert-mini fp32 vs PyTorch fp32", &g, out, 1e-4, 0.9999);
        free(out);
        dr_bert_destroy(bert);
    } else if (strcmp(which, "mini_int8") == 0 || base) {
        snprintf(model, sizeof model, "%s/%s", dir, base ? "bert-base-int8" : "bert-mini-int8");
        struct dr_bert *bert = load(model, DR_PRECISION_AUTO);
        DR_CHECK(dr_bert_is_int8(bert), "int8 model");
        float *out = encode(bert, &g);
        compare(base ? "bert-base int8 vs PyTorch fp32" : "bert-mini int8 vs PyTorch fp32", &g, out,
                0, 0.99);
        free(out);
        /* The fp32 path cannot run an int8 file. */
        struct dr_bert *none = NULL;
        struct dr_error err = {0};
        struct dr_model_opts opts = {.precision = DR_PRECISION_FP32};
        DR_CHECK(dr_bert_load(model, &opts, &none, &err) == DR_ERR_INVALID_ARG && !none,
                 "fp32 from int8 file: %s", err.msg);
        dr_bert_destroy(bert);
    } else if (strcmp(which, "mini_quantize") == 0) {
        snprintf(model, sizeof model, "%s/bert-mini-fp32", dir);
        struct dr_bert *q = load(model, DR_PRECISION_INT8);
        snprintf(model, sizeof model, "%s/bert-mini-int8", dir);
        struct dr_bert *f = load(model, DR_PRECISION_AUTO);
        float *a = encode(q, &g), *b = encode(f, &g);
        DR_CHECK(memcmp(a, b, g.n_seqs * g.dim * sizeof *a) == 0,
                 "quantised at load and exported int8 differ");
        free(a);
        free(b);
        dr_bert_destroy(q);
        dr_bert_destroy(f);
    } else if (strcmp(which, "batching") == 0) {
        for (int prec = 0; prec < 2; prec++) {
            snprintf(model, sizeof model, "%s/bert-mini-%s", dir, prec ? "int8" : "fp32");
            struct dr_bert *bert = load(model, DR_PRECISION_AUTO);
            float *all = encode(bert, &g);
            size_t off = 0;
            double worst = 0;
            for (size_t s = 0; s < g.n_seqs; s++) {
                struct golden one = g;
                one.n_seqs = 1;
                one.ids = g.ids + off;
                one.n_tokens = g.lens[s];
                one.lens[0] = g.lens[s];
                float *single = encode(bert, &one);
                for (size_t j = 0; j < g.dim; j++)
                    worst = fmax(worst, fabs((double)single[j] - (double)all[s * g.dim + j]));
                free(single);
                off += g.lens[s];
            }
            DR_CHECK(worst <= 1e-5, "%s: alone vs in the batch differ by %.3g",
                     prec ? "int8" : "fp32", worst);
            printf("%s: a sequence alone vs in the batch: max abs difference %.3g\n",
                   prec ? "int8" : "fp32", worst);
            /* Refused inputs. */
            size_t ws_size = dr_bert_workspace_size(bert, 4, 4);
            void *ws = dr_aligned_alloc(ws_size);
            float out[256];
            int32_t ids[4] = {2, 7, 9, 3};
            size_t zero = 0, big = dr_bert_max_len(bert) + 1, two = 2;
            DR_CHECK(dr_bert_encode(bert, 1, ids, &zero, out, 256, ws, ws_size) ==
                         DR_ERR_INVALID_ARG,
                     "length 0");
            DR_CHECK(dr_bert_encode(bert, 1, ids, &big, out, 256, ws, ws_size) ==
                         DR_ERR_INVALID_ARG,
                     "length over the maximum");
            ids[1] = (int32_t)dr_bert_vocab_size(bert);
            DR_CHECK(dr_bert_encode(bert, 1, ids, &two, out, 256, ws, ws_size) ==
                         DR_ERR_INVALID_ARG,
                     "id out of the vocabulary");
            ids[1] = 7;
            DR_CHECK(dr_bert_encode(bert, 1, ids, &two, out, 256, ws, 64) == DR_ERR_INVALID_ARG,
                     "small workspace");
            DR_CHECK(dr_bert_encode(bert, 1, ids, &two, out, 256, ws, ws_size) == DR_OK, "ok");
            dr_aligned_free(ws);
            free(all);
            dr_bert_destroy(bert);
        }
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
