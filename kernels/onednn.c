/* onednn.c: oneDNN matmul primitives per M bucket, created and warmed at load.
 *
 * Per bucket: a matmul primitive desc with the weights' format left to oneDNN ("any"), the
 * primitive, and the weights reordered into that format.  Buckets whose chosen weights
 * layout equals an earlier bucket's share its reordered weights.  run() wraps the caller's
 * buffers in memory objects (no allocation besides oneDNN's own handles), pads m up to the
 * bucket in the workspace when needed, executes and waits.
 */
#include "onednn.h"

#include "kernels.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 32

struct bucket {
    size_t m;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t weights; /* owned unless shared_weights */
    int shared_weights;
};

struct dr_onednn_matmul {
    dnnl_data_type_t src_type, dst_type;
    size_t n, k, elem_in, elem_out;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_memory_t bias; /* fp32 only, or NULL */
    size_t n_buckets;
    struct bucket buckets[MAX_BUCKETS];
};

enum dr_gemm_backend dr_gemm_backend_from_env(void)
{
    const char *env = getenv("DR_GEMM");
    if (!env || !*env || strcmp(env, "native") == 0)
        return DR_GEMM_NATIVE;
    if (strcmp(env, "onednn") == 0)
        return DR_GEMM_ONEDNN;
    fprintf(stderr, "driftrec: DR_GEMM=%s is not native or onednn; using native\n", env);
    return DR_GEMM_NATIVE;
}

static enum dr_status fail(struct dr_error *err, const char *what, dnnl_status_t st)
{
    return dr_error_set(err, st == dnnl_out_of_memory ? DR_ERR_NOMEM : DR_ERR_INTERNAL,
                        "onednn: %s failed (dnnl status %d)", what, (int)st);
}

void dr_onednn_matmul_destroy(struct dr_onednn_matmul *mm)
{
    if (!mm)
        return;
    for (size_t i = 0; i < mm->n_buckets; i++) {
        struct bucket *b = &mm->buckets[i];
        if (b->weights && !b->shared_weights)
            dnnl_memory_destroy(b->weights);
        if (b->prim)
            dnnl_primitive_destroy(b->prim);
        if (b->pd)
            dnnl_primitive_desc_destroy(b->pd);
    }
    if (mm->bias)
        dnnl_memory_destroy(mm->bias);
    if (mm->stream)
        dnnl_stream_destroy(mm->stream);
    if (mm->engine)
        dnnl_engine_destroy(mm->engine);
    free(mm);
}

/* Reorders plain n x k weights (as the k x n matrix oneDNN wants, via strides) into want. */
static dnnl_status_t reorder_weights(struct dr_onednn_matmul *mm, const void *w, size_t ld_w,
                                     const dnnl_memory_desc_t *want, dnnl_memory_t *out)
{
    dnnl_memory_desc_t plain;
    dnnl_dims_t dims = {(dnnl_dim_t)mm->k, (dnnl_dim_t)mm->n};
    dnnl_dims_t strides = {1, (dnnl_dim_t)ld_w}; /* w[j][kk] is element (kk, j) */
    dnnl_status_t st = dnnl_memory_desc_init_by_strides(
        &plain, 2, dims, mm->src_type == dnnl_s8 ? dnnl_s8 : dnnl_f32, strides);
    dnnl_memory_t src = NULL, dst = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    if (st == dnnl_success)
        st = dnnl_memory_create(&src, &plain, mm->engine, (void *)(uintptr_t)w);
    if (st == dnnl_success)
        st = dnnl_memory_create(&dst, want, mm->engine, DNNL_MEMORY_ALLOCATE);
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&rpd, &plain, mm->engine, want, mm->engine, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&reorder, rpd);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}};
        st = dnnl_primitive_execute(reorder, mm->stream, 2, args);
    }
    if (st == dnnl_success)
        st = dnnl_stream_wait(mm->stream);
    if (reorder)
        dnnl_primitive_destroy(reorder);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (src)
        dnnl_memory_destroy(src);
    if (st == dnnl_success)
        *out = dst;
    else if (dst)
        dnnl_memory_destroy(dst);
    return st;
}

static enum dr_status run(struct dr_onednn_matmul *mm, dnnl_data_type_t type, size_t m,
                          const void *a, size_t lda, void *c, size_t ldc, void *workspace);

static enum dr_status create(dnnl_data_type_t src_type, dnnl_data_type_t dst_type, size_t n,
                             size_t k, const void *w, size_t ld_w, const float *bias,
                             const size_t *m_buckets, size_t n_buckets,
                             struct dr_onednn_matmul **out, struct dr_error *err)
{
    if (n == 0 || k == 0 || !w || ld_w < k || n_buckets == 0 || n_buckets > MAX_BUCKETS)
        return dr_error_set(err, DR_ERR_INVALID_ARG,
                            "onednn: bad shape n=%zu k=%zu ld_w=%zu buckets=%zu (max %d)", n, k,
                            ld_w, n_buckets, MAX_BUCKETS);
    for (size_t i = 0; i < n_buckets; i++)
        if (m_buckets[i] == 0 || (i > 0 && m_buckets[i] <= m_buckets[i - 1]))
            return dr_error_set(err, DR_ERR_INVALID_ARG,
                                "onednn: M buckets must be positive and ascending");
    if (src_type == dnnl_s8) {
        const int8_t *w8 = w;
        for (size_t j = 0; j < n; j++)
            for (size_t kk = 0; kk < k; kk++)
                if (w8[j * ld_w + kk] < DR_S8_WEIGHT_MIN || w8[j * ld_w + kk] > DR_S8_WEIGHT_MAX)
                    return dr_error_set(err, DR_ERR_INVALID_ARG,
                                        "onednn: weight [%zu][%zu] = %d outside [%d, %d]", j, kk,
                                        w8[j * ld_w + kk], DR_S8_WEIGHT_MIN, DR_S8_WEIGHT_MAX);
    }

    struct dr_onednn_matmul *mm = calloc(1, sizeof *mm);
    if (!mm)
        return dr_error_set(err, DR_ERR_NOMEM, "onednn: out of memory");
    mm->src_type = src_type;
    mm->dst_type = dst_type;
    mm->n = n;
    mm->k = k;
    mm->elem_in = src_type == dnnl_s8 ? 1 : 4;
    mm->elem_out = 4;
    dnnl_status_t st = dnnl_engine_create(&mm->engine, dnnl_cpu, 0);
    if (st == dnnl_success)
        st = dnnl_stream_create(&mm->stream, mm->engine, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        dr_onednn_matmul_destroy(mm);
        return fail(err, "engine/stream", st);
    }

    dnnl_memory_desc_t bias_md;
    memset(&bias_md, 0, sizeof bias_md);
    if (bias) {
        dnnl_dims_t bdims = {1, (dnnl_dim_t)n};
        st = dnnl_memory_desc_init_by_tag(&bias_md, 2, bdims, dnnl_f32, dnnl_ab);
        if (st == dnnl_success)
            st = dnnl_memory_create(&mm->bias, &bias_md, mm->engine, DNNL_MEMORY_ALLOCATE);
        void *handle = NULL;
        if (st == dnnl_success)
            st = dnnl_memory_get_data_handle(mm->bias, &handle);
        if (st != dnnl_success) {
            dr_onednn_matmul_destroy(mm);
            return fail(err, "bias memory", st);
        }
        memcpy(handle, bias, n * sizeof(float));
    }

    for (size_t i = 0; i < n_buckets; i++) {
        struct bucket *b = &mm->buckets[i];
        b->m = m_buckets[i];
        mm->n_buckets = i + 1;
        dnnl_memory_desc_t src_md, w_md, dst_md;
        dnnl_dims_t sdims = {(dnnl_dim_t)b->m, (dnnl_dim_t)k};
        dnnl_dims_t wdims = {(dnnl_dim_t)k, (dnnl_dim_t)n};
        dnnl_dims_t ddims = {(dnnl_dim_t)b->m, (dnnl_dim_t)n};
        dnnl_matmul_desc_t desc;
        st = dnnl_memory_desc_init_by_tag(&src_md, 2, sdims, src_type, dnnl_ab);
        if (st == dnnl_success)
            st = dnnl_memory_desc_init_by_tag(&w_md, 2, wdims, src_type, dnnl_format_tag_any);
        if (st == dnnl_success)
            st = dnnl_memory_desc_init_by_tag(&dst_md, 2, ddims, dst_type, dnnl_ab);
        if (st == dnnl_success)
            st = dnnl_matmul_desc_init(&desc, &src_md, &w_md, bias ? &bias_md : NULL, &dst_md);
        if (st == dnnl_success)
            st = dnnl_primitive_desc_create(&b->pd, &desc, NULL, mm->engine, NULL);
        if (st == dnnl_success)
            st = dnnl_primitive_create(&b->prim, b->pd);
        if (st != dnnl_success) {
            dr_onednn_matmul_destroy(mm);
            return fail(err, "matmul primitive", st);
        }
        const dnnl_memory_desc_t *want =
            dnnl_primitive_desc_query_md(b->pd, dnnl_query_weights_md, 0);
        for (size_t j = 0; j < i; j++) {
            const dnnl_memory_desc_t *have =
                dnnl_primitive_desc_query_md(mm->buckets[j].pd, dnnl_query_weights_md, 0);
            if (dnnl_memory_desc_equal(want, have)) {
                b->weights = mm->buckets[j].weights;
                b->shared_weights = 1;
                break;
            }
        }
        if (!b->weights) {
            st = reorder_weights(mm, w, ld_w, want, &b->weights);
            if (st != dnnl_success) {
                dr_onednn_matmul_destroy(mm);
                return fail(err, "weights reorder", st);
            }
        }
    }
    /* Warm every bucket once (oneDNN's JIT and first-touch costs stay out of requests). */
    size_t max_m = mm->buckets[mm->n_buckets - 1].m;
    void *a0 = dr_aligned_alloc(max_m * k * mm->elem_in);
    void *c0 = dr_aligned_alloc(max_m * n * mm->elem_out);
    enum dr_status warm = a0 && c0 ? DR_OK : DR_ERR_NOMEM;
    if (warm == DR_OK) {
        memset(a0, 0, max_m * k * mm->elem_in);
        for (size_t i = 0; i < mm->n_buckets && warm == DR_OK; i++)
            warm = run(mm, src_type, mm->buckets[i].m, a0, k, c0, n, NULL);
    }
    dr_aligned_free(a0);
    dr_aligned_free(c0);
    if (warm != DR_OK) {
        dr_onednn_matmul_destroy(mm);
        return dr_error_set(err, warm, "onednn: warm-up run failed: %s", dr_status_str(warm));
    }
    *out = mm;
    return DR_OK;
}

enum dr_status dr_onednn_matmul_create_s8(size_t n, size_t k, const int8_t *w, size_t ld_w,
                                          const size_t *m_buckets, size_t n_buckets,
                                          struct dr_onednn_matmul **out, struct dr_error *err)
{
    return create(dnnl_s8, dnnl_s32, n, k, w, ld_w, NULL, m_buckets, n_buckets, out, err);
}

enum dr_status dr_onednn_matmul_create_f32(size_t n, size_t k, const float *w, size_t ld_w,
                                           const float *bias, const size_t *m_buckets,
                                           size_t n_buckets, struct dr_onednn_matmul **out,
                                           struct dr_error *err)
{
    return create(dnnl_f32, dnnl_f32, n, k, w, ld_w, bias, m_buckets, n_buckets, out, err);
}

static const struct bucket *bucket_for(const struct dr_onednn_matmul *mm, size_t m)
{
    for (size_t i = 0; i < mm->n_buckets; i++)
        if (mm->buckets[i].m >= m)
            return &mm->buckets[i];
    return NULL;
}

size_t dr_onednn_matmul_workspace_size(const struct dr_onednn_matmul *mm, size_t m)
{
    const struct bucket *b = bucket_for(mm, m);
    if (!b)
        return 0;
    /* Padded copies of A and C, used when m is not the bucket or strides are not dense. */
    return dr_round_up(b->m * mm->k * mm->elem_in, DR_ALIGNMENT) +
           dr_round_up(b->m * mm->n * mm->elem_out, DR_ALIGNMENT);
}

static enum dr_status run(struct dr_onednn_matmul *mm, dnnl_data_type_t type, size_t m,
                          const void *a, size_t lda, void *c, size_t ldc, void *workspace)
{
    if (type != mm->src_type)
        return DR_ERR_INVALID_ARG;
    const struct bucket *b = bucket_for(mm, m);
    if (!b || m == 0)
        return DR_ERR_INVALID_ARG;
    int direct = b->m == m && lda == mm->k && ldc == mm->n;
    const void *src = a;
    void *dst = c;
    char *ws_a = workspace;
    char *ws_c = ws_a + dr_round_up(b->m * mm->k * mm->elem_in, DR_ALIGNMENT);
    if (!direct) {
        if (!workspace)
            return DR_ERR_INVALID_ARG;
        for (size_t i = 0; i < m; i++)
            memcpy(ws_a + i * mm->k * mm->elem_in, (const char *)a + i * lda * mm->elem_in,
                   mm->k * mm->elem_in);
        memset(ws_a + m * mm->k * mm->elem_in, 0, (b->m - m) * mm->k * mm->elem_in);
        src = ws_a;
        dst = ws_c;
    }
    const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(b->pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dst_md = dnnl_primitive_desc_query_md(b->pd, dnnl_query_dst_md, 0);
    dnnl_memory_t src_mem = NULL, dst_mem = NULL;
    dnnl_status_t st = dnnl_memory_create(&src_mem, src_md, mm->engine, (void *)(uintptr_t)src);
    if (st == dnnl_success)
        st = dnnl_memory_create(&dst_mem, dst_md, mm->engine, dst);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, src_mem},
                                   {DNNL_ARG_WEIGHTS, b->weights},
                                   {DNNL_ARG_DST, dst_mem},
                                   {DNNL_ARG_BIAS, mm->bias}};
        st = dnnl_primitive_execute(b->prim, mm->stream, mm->bias ? 4 : 3, args);
    }
    if (st == dnnl_success)
        st = dnnl_stream_wait(mm->stream);
    if (src_mem)
        dnnl_memory_destroy(src_mem);
    if (dst_mem)
        dnnl_memory_destroy(dst_mem);
    if (st != dnnl_success)
        return st == dnnl_out_of_memory ? DR_ERR_NOMEM : DR_ERR_INTERNAL;
    if (!direct)
        for (size_t i = 0; i < m; i++)
            memcpy((char *)c + i * ldc * mm->elem_out, ws_c + i * mm->n * mm->elem_out,
                   mm->n * mm->elem_out);
    return DR_OK;
}

enum dr_status dr_onednn_matmul_run_s8(struct dr_onednn_matmul *mm, size_t m, const int8_t *a,
                                       size_t lda, int32_t *c, size_t ldc, void *workspace)
{
    return run(mm, dnnl_s8, m, a, lda, c, ldc, workspace);
}

enum dr_status dr_onednn_matmul_run_f32(struct dr_onednn_matmul *mm, size_t m, const float *a,
                                        size_t lda, float *c, size_t ldc, void *workspace)
{
    return run(mm, dnnl_f32, m, a, lda, c, ldc, workspace);
}

const char *dr_onednn_matmul_impl(const struct dr_onednn_matmul *mm, size_t m)
{
    const struct bucket *b = bucket_for(mm, m);
    const char *impl = NULL;
    if (!b || dnnl_primitive_desc_query(b->pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success)
        return "unknown";
    return impl;
}
