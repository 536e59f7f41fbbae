/* linear.c: loading and running linear layers (linear.h).
 *
 * Load time: weights are fetched with their shapes checked, concatenated along the output
 * dimension when there are several parts, and packed for the int8 GEMM (int8) or transposed
 * for the nn fp32 product (fp32; the mapped file is not read after load).  Run time: one
 * quantisation of the input rows and one fused int8 product, or one fp32 product; nothing
 * allocates.  A loaded layer is read-only and shared by all threads.
 */
#include "linear.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *dr__owned_alloc(struct dr__owned *owned, size_t size_bytes)
{
    if (owned->n == owned->cap) {
        size_t cap = owned->cap ? 2 * owned->cap : 32;
        void **ptrs = realloc(owned->ptrs, cap * sizeof *ptrs);
        if (!ptrs)
            return NULL;
        owned->ptrs = ptrs;
        owned->cap = cap;
    }
    void *p = dr_aligned_alloc(size_bytes);
    if (p)
        owned->ptrs[owned->n++] = p;
    return p;
}

void dr__owned_free_all(struct dr__owned *owned)
{
    for (size_t i = 0; i < owned->n; i++)
        dr_aligned_free(owned->ptrs[i]);
    free(owned->ptrs);
    memset(owned, 0, sizeof *owned);
}

enum dr_status dr__linear_load(struct dr_model_file *mf, struct dr__owned *owned, size_t n_parts,
                               const char *const *weight_names, const char *const *bias_names,
                               size_t n_each, size_t k, bool int8, struct dr__linear *out,
                               struct dr_error *err)
{
    bool file_int8 = dr_model_file_is_int8(mf);
    if (file_int8 && !int8)
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "%s: the file holds int8 weights; the fp32 path needs an fp32 file",
                            weight_names[0]);
    size_t n = n_parts * n_each;
    struct dr__linear l = {.n = n, .k = k, .is_int8 = int8};
    enum dr_status st;

    bool has_bias = false;
    for (size_t p = 0; bias_names && p < n_parts; p++)
        has_bias |= bias_names[p] != NULL;
    if (has_bias) {
        float *bias = dr__owned_alloc(owned, n * sizeof *bias);
        if (!bias)
            return dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory", weight_names[0]);
        for (size_t p = 0; p < n_parts; p++) {
            const void *b = NULL;
            if (!bias_names[p]) {
                memset(bias + p * n_each, 0, n_each * sizeof *bias);
                continue;
            }
            st = dr_model_file_tensor(mf, bias_names[p], DR_DTYPE_F32, 1, (size_t[]){n_each}, 4, &b,
                                      err);
            if (st != DR_OK)
                return st;
            memcpy(bias + p * n_each, b, n_each * sizeof *bias);
        }
        l.bias = bias;
    }

    if (!int8) {
        /* The parts side by side as columns of W^T; exact on every ISA, so any table gives
         * the same bytes. */
        float *w_t = dr__owned_alloc(owned, n * k * sizeof *w_t);
        if (!w_t)
            return dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory", weight_names[0]);
        for (size_t p = 0; p < n_parts; p++) {
            const void *part = NULL;
            st = dr_model_file_tensor(mf, weight_names[p], DR_DTYPE_F32, 2, (size_t[]){n_each, k},
                                      4, &part, err);
            if (st != DR_OK)
                return st;
            dr_kernels_get()->transpose_f32(n_each, k, part, k, w_t + p * n_each, n);
        }
        l.w_t = w_t;
        *out = l;
        return DR_OK;
    }

    int8_t *q = malloc(n * k);
    float *scale = dr__owned_alloc(owned, n * sizeof *scale);
    if (!q || !scale) {
        free(q);
        return dr_error_set(err, DR_ERR_NOMEM, "%s: out of memory", weight_names[0]);
    }
    for (size_t p = 0; p < n_parts; p++) {
        const void *w = NULL;
        if (file_int8) {
            char scale_name[512];
            snprintf(scale_name, sizeof scale_name, "%s_scale", weight_names[p]);
            const void *s = NULL;
            st = dr_model_file_tensor(mf, weight_names[p], DR_DTYPE_I8, 2, (size_t[]){n_each, k}, 1,
                                      &w, err);
            if (st == DR_OK)
                st = dr_model_file_tensor(mf, scale_name, DR_DTYPE_F32, 1, (size_t[]){n_each}, 4,
                                          &s, err);
            if (st != DR_OK) {
                free(q);
                return st;
            }
            memcpy(q + p * n_each * k, w, n_each * k);
            memcpy(scale + p * n_each, s, n_each * sizeof *scale);
            for (size_t j = 0; j < n_each * k; j++) {
                int v = q[p * n_each * k + j];
                if (v < -DR_S8_WEIGHT_QMAX || v > DR_S8_WEIGHT_QMAX) {
                    free(q);
                    return dr_error_set(
                        err, DR_ERR_FORMAT, "%s: weight [%zu][%zu] = %d is outside [-%d, %d]",
                        weight_names[p], j / k, j % k, v, DR_S8_WEIGHT_QMAX, DR_S8_WEIGHT_QMAX);
                }
            }
        } else {
            st = dr_model_file_tensor(mf, weight_names[p], DR_DTYPE_F32, 2, (size_t[]){n_each, k},
                                      4, &w, err);
            if (st != DR_OK) {
                free(q);
                return st;
            }
            dr_quantize_weights_s8(n_each, k, w, k, DR_S8_WEIGHT_QMAX, q + p * n_each * k, k,
                                   scale + p * n_each);
        }
    }
    st = dr_packed_s8_init(&l.packed, n, k, q, k, err);
    free(q);
    if (st != DR_OK)
        return st;
    l.scale = scale;
    *out = l;
    return DR_OK;
}

void dr__linear_deinit(struct dr__linear *l)
{
    dr_packed_s8_deinit(&l->packed);
}

void dr__linear_product_f32(const struct dr_kernels *kern, const struct dr__linear *l, size_t m,
                            const float *x, size_t ldx, const float *bias, float *y, size_t ldy)
{
    kern->gemm_f32_nn(m, l->n, l->k, x, ldx, l->w_t, l->n, bias, y, ldy);
}

void dr__linear_apply(const struct dr_kernels *kern, const struct dr__linear *l, size_t m,
                      const float *x, size_t ldx, float *y, size_t ldy, enum dr_activation act,
                      bool accumulate, const struct dr__linear_scratch *scratch)
{
    if (m == 0)
        return;
    if (l->is_int8) {
        kern->quantize_rows_s8(m, l->k, x, ldx, scratch->qa, l->k, scratch->qs);
        struct dr_gemm_epilogue ep = {.a_scale = scratch->qs,
                                      .w_scale = l->scale,
                                      .bias = l->bias,
                                      .act = act,
                                      .accumulate = accumulate};
        kern->gemm_s8s8f32(m, scratch->qa, l->k, &l->packed, y, ldy, &ep);
        return;
    }
    float *dst = accumulate ? scratch->tmp : y;
    size_t ld_dst = accumulate ? l->n : ldy;
    dr__linear_product_f32(kern, l, m, x, ldx, l->bias, dst, ld_dst);
    if (act == DR_ACT_GELU) {
        for (size_t i = 0; i < m; i++)
            kern->gelu_f32(l->n, dst + i * ld_dst, dst + i * ld_dst);
    }
    if (accumulate) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < l->n; j++)
                y[i * ldy + j] += dst[i * ld_dst + j];
    }
}
