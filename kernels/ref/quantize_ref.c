/* quantize_ref.c: per-row symmetric int8 quantisation of activations, and its inverse.
 * Bit-exact spec: the same fp32 operations in the same order on every ISA (one multiply by
 * 127 / max|x|, round half to even, clamp; NaN clamps to -127 as fmaxf does). */
#include "ref.h"

#include <math.h>

void dr_quantize_rows_s8__ref(size_t m, size_t k, const float *x, size_t ldx, int8_t *q, size_t ldq,
                              float *scales)
{
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        float max_abs = 0.0f;
        for (size_t kk = 0; kk < k; kk++) {
            float v = fabsf(row[kk]);
            if (v > max_abs)
                max_abs = v;
        }
        float inv = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
        scales[i] = max_abs / 127.0f;
        for (size_t kk = 0; kk < k; kk++) {
            float v = nearbyintf(row[kk] * inv);
            v = fminf(fmaxf(v, -127.0f), 127.0f);
            q[i * ldq + kk] = (int8_t)v;
        }
    }
}

void dr_dequantize_rows_s8__ref(size_t m, size_t k, const int8_t *q, size_t ldq,
                                const float *scales, float *x, size_t ldx)
{
    for (size_t i = 0; i < m; i++)
        for (size_t kk = 0; kk < k; kk++)
            x[i * ldx + kk] = (float)q[i * ldq + kk] * scales[i];
}
