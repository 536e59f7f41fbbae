/* quantize_avx2.c: per-row int8 quantisation and dequantisation, AVX2.
 * Bit-exact with quantize_ref.c: the same multiply by 127 / max|x| (computed in scalar, as
 * there), round half to even, then the clamp; _mm256_max_ps(v, lo) returns lo for NaN as
 * fmaxf does.  32 values per step, packed to bytes with one cross-lane permute. */
#include "../ref/ref.h"
#include "math_avx2.h"
#include "x86.h"

#include <math.h>

static inline __m256i quant8(const float *x, __m256 inv, __m256 lo, __m256 hi)
{
    __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), inv),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    return _mm256_cvttps_epi32(v);
}

void dr_quantize_rows_s8__avx2(size_t m, size_t k, const float *x, size_t ldx, int8_t *q,
                               size_t ldq, float *scales)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        int8_t *out = q + i * ldq;
        __m256 vmax = _mm256_setzero_ps();
        size_t kk = 0;
        for (; kk + 8 <= k; kk += 8)
            vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(row + kk), abs_mask), vmax);
        float max_abs = dr__hmax_avx2(vmax);
        for (; kk < k; kk++) {
            float v = fabsf(row[kk]);
            if (v > max_abs)
                max_abs = v;
        }
        float inv = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
        scales[i] = max_abs / 127.0f;
        __m256 vinv = _mm256_set1_ps(inv);
        kk = 0;
        for (; kk + 32 <= k; kk += 32) {
            __m256i q0 = quant8(row + kk, vinv, lo, hi), q1 = quant8(row + kk + 8, vinv, lo, hi);
            __m256i q2 = quant8(row + kk + 16, vinv, lo, hi);
            __m256i q3 = quant8(row + kk + 24, vinv, lo, hi);
            __m256i w01 = _mm256_packs_epi32(q0, q1), w23 = _mm256_packs_epi32(q2, q3);
            __m256i bytes = _mm256_packs_epi16(w01, w23);
            _mm256_storeu_si256((__m256i *)(out + kk), _mm256_permutevar8x32_epi32(bytes, order));
        }
        for (; kk < k; kk++) {
            float v = nearbyintf(row[kk] * inv);
            v = fminf(fmaxf(v, -127.0f), 127.0f);
            out[kk] = (int8_t)v;
        }
    }
}

void dr_dequantize_rows_s8__avx2(size_t m, size_t k, const int8_t *q, size_t ldq,
                                 const float *scales, float *x, size_t ldx)
{
    for (size_t i = 0; i < m; i++) {
        const int8_t *row = q + i * ldq;
        float *out = x + i * ldx;
        __m256 s = _mm256_set1_ps(scales[i]);
        size_t kk = 0;
        for (; kk + 8 <= k; kk += 8) {
            __m128i b = _mm_loadl_epi64((const __m128i *)(row + kk));
            __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
            _mm256_storeu_ps(out + kk, _mm256_mul_ps(v, s));
        }
        for (; kk < k; kk++)
            out[kk] = (float)row[kk] * scales[i];
    }
}
