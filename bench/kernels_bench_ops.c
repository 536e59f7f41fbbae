/* kernels_bench_ops.c: the measured work, in C, so the C++ main only drives and reports.
 * Inputs are random but fixed (seeded), weights packed once, outside the timed region. */
#include "kernels_bench_ops.h"

#ifdef DR_HAVE_ONEDNN
#include "onednn.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct dr_bench_case {
    const struct dr_kernels *kern;
    int is_lstm, is_s32;
    size_t m, n, k, hidden, input;
    int8_t *a, *w_plain;
    int32_t *c32, *c32_onednn;
    void *onednn; /* struct dr_onednn_matmul *, when prepared */
    void *onednn_ws;
    float *a_scale, *w_scale, *w_scale2, *bias, *c, *h, *cell;
    struct dr_packed_s8 w, w2;
    void *workspace;
};

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static int rand_in(int lo, int hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (int)(rng % (uint64_t)(hi - lo + 1));
}

/* Packs random weights; keeps the plain copy in *plain when plain is not NULL. */
static enum dr_status pack_random(struct dr_packed_s8 *p, size_t n, size_t k, int8_t **plain)
{
    int8_t *w = malloc(n * k);
    if (!w)
        return DR_ERR_NOMEM;
    for (size_t i = 0; i < n * k; i++)
        w[i] = (int8_t)rand_in(DR_S8_WEIGHT_MIN, DR_S8_WEIGHT_MAX);
    enum dr_status st = dr_packed_s8_init(p, n, k, w, k, NULL);
    if (plain)
        *plain = w;
    else
        free(w);
    return st;
}

static float *floats(size_t n, float value)
{
    float *p = dr_aligned_alloc(n * sizeof(float));
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = value;
    return p;
}

struct dr_bench_case *dr_bench_case_create(const char *op, const struct dr_kernels *kern, size_t m,
                                           size_t n, size_t k, int with_onednn)
{
    struct dr_bench_case *bc = calloc(1, sizeof *bc);
    if (!bc)
        return NULL;
    bc->kern = kern;
    bc->m = m;
    bc->n = n;
    bc->k = k;
    if (strcmp(op, "lstm_s8") == 0) {
        if (n % 4 || k <= n / 4)
            goto fail;
        bc->is_lstm = 1;
        bc->hidden = n / 4;
        bc->input = k - bc->hidden;
        if (pack_random(&bc->w, n, bc->input, NULL) || pack_random(&bc->w2, n, bc->hidden, NULL))
            goto fail;
        bc->a = dr_aligned_alloc(m * bc->input);
        bc->h = floats(m * bc->hidden, 0.1f);
        bc->cell = floats(m * bc->hidden, 0.2f);
        bc->workspace = dr_aligned_alloc(dr_lstm_step_workspace_size(m, bc->hidden));
        bc->w_scale2 = floats(n, 0.01f);
        if (!bc->a || !bc->h || !bc->cell || !bc->workspace || !bc->w_scale2)
            goto fail;
        for (size_t i = 0; i < m * bc->input; i++)
            bc->a[i] = (int8_t)rand_in(-127, 127);
    } else if (strcmp(op, "gemm_s8") == 0 || strcmp(op, "gemm_s8_f32") == 0) {
        bc->is_s32 = strcmp(op, "gemm_s8") == 0;
        if (pack_random(&bc->w, n, k, &bc->w_plain))
            goto fail;
        bc->a = dr_aligned_alloc(m * k);
        bc->c = floats(m * n, 0.0f);
        bc->c32 = dr_aligned_alloc(m * n * sizeof(int32_t));
        bc->c32_onednn = dr_aligned_alloc(m * n * sizeof(int32_t));
        if (!bc->a || !bc->c || !bc->c32 || !bc->c32_onednn)
            goto fail;
        for (size_t i = 0; i < m * k; i++)
            bc->a[i] = (int8_t)rand_in(-128, 127);
#ifdef DR_HAVE_ONEDNN
        if (with_onednn && bc->is_s32) {
            struct dr_onednn_matmul *mm = NULL;
            struct dr_error err;
            if (dr_onednn_matmul_create_s8(n, k, bc->w_plain, k, &m, 1, &mm, &err) != DR_OK) {
                fprintf(stderr, "kernels_bench: oneDNN %zux%zux%zu: %s\n", m, n, k, err.msg);
                goto fail;
            }
            bc->onednn = mm;
            bc->onednn_ws = dr_aligned_alloc(dr_onednn_matmul_workspace_size(mm, m) + 64);
            if (!bc->onednn_ws)
                goto fail;
        }
#else
        (void)with_onednn;
#endif
    } else {
        goto fail;
    }
    bc->a_scale = floats(m, 0.02f);
    bc->w_scale = floats(n, 0.01f);
    bc->bias = floats(n, 0.5f);
    if (!bc->a_scale || !bc->w_scale || !bc->bias)
        goto fail;
    return bc;
fail:
    dr_bench_case_destroy(bc);
    return NULL;
}

void dr_bench_case_run(struct dr_bench_case *bc)
{
    if (bc->is_lstm) {
        struct dr_lstm_weights w = {.w_ih = &bc->w,
                                    .w_hh = &bc->w2,
                                    .w_ih_scale = bc->w_scale,
                                    .w_hh_scale = bc->w_scale2,
                                    .bias = bc->bias};
        dr_lstm_step_s8(bc->kern, &w, bc->m, bc->a, bc->input, bc->a_scale, bc->h, bc->cell,
                        bc->hidden, bc->workspace);
        return;
    }
    if (bc->is_s32) {
        bc->kern->gemm_s8s8s32(bc->m, bc->a, bc->k, &bc->w, bc->c32, bc->n);
        return;
    }
    struct dr_gemm_epilogue ep = {
        .a_scale = bc->a_scale, .w_scale = bc->w_scale, .bias = bc->bias, .act = DR_ACT_NONE};
    bc->kern->gemm_s8s8f32(bc->m, bc->a, bc->k, &bc->w, bc->c, bc->n, &ep);
}

int dr_bench_case_has_onednn(const struct dr_bench_case *bc)
{
    return bc->onednn != NULL;
}

void dr_bench_case_run_onednn(struct dr_bench_case *bc)
{
#ifdef DR_HAVE_ONEDNN
    dr_onednn_matmul_run_s8(bc->onednn, bc->m, bc->a, bc->k, bc->c32_onednn, bc->n, bc->onednn_ws);
#else
    (void)bc;
#endif
}

const char *dr_bench_case_onednn_impl(const struct dr_bench_case *bc)
{
#ifdef DR_HAVE_ONEDNN
    if (bc->onednn)
        return dr_onednn_matmul_impl(bc->onednn, bc->m);
#else
    (void)bc;
#endif
    return "-";
}

int dr_bench_case_onednn_agrees(struct dr_bench_case *bc)
{
    if (!bc->onednn)
        return 0;
    memset(bc->c32, 0, bc->m * bc->n * sizeof(int32_t));
    memset(bc->c32_onednn, 0xff, bc->m * bc->n * sizeof(int32_t));
    bc->kern->gemm_s8s8s32(bc->m, bc->a, bc->k, &bc->w, bc->c32, bc->n);
    dr_bench_case_run_onednn(bc);
    return memcmp(bc->c32, bc->c32_onednn, bc->m * bc->n * sizeof(int32_t)) == 0;
}

double dr_bench_case_ops(const struct dr_bench_case *bc)
{
    return 2.0 * (double)bc->m * (double)bc->n * (double)bc->k;
}

void dr_bench_case_destroy(struct dr_bench_case *bc)
{
    if (!bc)
        return;
    dr_packed_s8_deinit(&bc->w);
    dr_packed_s8_deinit(&bc->w2);
    void *bufs[] = {bc->a, bc->a_scale, bc->w_scale, bc->w_scale2, bc->bias,
                    bc->c, bc->h,       bc->cell,    bc->workspace};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dr_aligned_free(bufs[i]);
    free(bc);
}
