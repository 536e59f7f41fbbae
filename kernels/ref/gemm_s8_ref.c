/* gemm_s8_ref.c: the int8 matrix product and its epilogue, written to be read.
 * The specification every ISA's gemm_s8 must match bit for bit (int32) or within the
 * float bound of tests/kernels (fp32 epilogue). */
#include "ref.h"

#include <math.h>

void dr_gemm_s8s8s32__ref(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                          int32_t *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < b->n; j++) {
            int32_t acc = 0;
            for (size_t kk = 0; kk < b->k; kk++)
                acc += (int32_t)a[i * lda + kk] * (int32_t)dr_packed_s8_at(b, j, kk);
            c[i * ldc + j] = acc;
        }
    }
}

float dr__gelu_scalar(float x)
{
    return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
}

void dr_gemm_s8s8f32__ref(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                          float *c, size_t ldc, const struct dr_gemm_epilogue *ep)
{
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < b->n; j++) {
            int32_t acc = 0;
            for (size_t kk = 0; kk < b->k; kk++)
                acc += (int32_t)a[i * lda + kk] * (int32_t)dr_packed_s8_at(b, j, kk);
            float v = (float)acc * (ep->a_scale[i] * ep->w_scale[j]);
            if (ep->bias)
                v += ep->bias[j];
            if (ep->act == DR_ACT_GELU)
                v = dr__gelu_scalar(v);
            if (ep->accumulate)
                v += c[i * ldc + j];
            c[i * ldc + j] = v;
        }
    }
}
