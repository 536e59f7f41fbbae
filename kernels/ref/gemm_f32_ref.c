/* gemm_f32_ref.c: fp32 matrix products (the models' fp32 path and attention) and the
 * transpose attention needs for its keys, plain loops. */
#include "ref.h"

void dr_gemm_f32_nn__ref(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                         size_t ldb, const float *bias, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            float acc = 0.0f;
            for (size_t kk = 0; kk < k; kk++)
                acc += a[i * lda + kk] * b[kk * ldb + j];
            c[i * ldc + j] = bias ? acc + bias[j] : acc;
        }
    }
}

void dr_gemm_f32_nt__ref(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                         size_t ldb, const float *bias, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            float acc = 0.0f;
            for (size_t kk = 0; kk < k; kk++)
                acc += a[i * lda + kk] * b[j * ldb + kk];
            c[i * ldc + j] = bias ? acc + bias[j] : acc;
        }
    }
}

void dr_transpose_f32__ref(size_t rows, size_t cols, const float *src, size_t ld_src, float *dst,
                           size_t ld_dst)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++)
            dst[j * ld_dst + i] = src[i * ld_src + j];
}
