/* elementwise_avx512.c: quantisation, layernorm, GELU, masked softmax and the LSTM cell on
 * AVX-512.  Same operations in the same order as the AVX2 versions: quantisation stays
 * bit-exact with __ref (one multiply, round half even, clamp with max(v, lo) returning lo
 * for NaN); the float ops keep the bounds of tests/kernels.  Tails use __mmask16. */
#include "math_avx512.h"
#include "x86.h"

#include <math.h>
#include <stdbool.h>

/* max |x| over a row: four independent chains (one would wait on the max latency). */
static float row_max_abs(const float *row, size_t k)
{
    __m512 m0 = _mm512_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
    size_t kk = 0;
    /* NaN lanes keep the running max (vmaxps returns its second operand), as `v > max` does. */
    for (; kk + 64 <= k; kk += 64) {
        m0 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(row + kk)), m0);
        m1 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(row + kk + 16)), m1);
        m2 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(row + kk + 32)), m2);
        m3 = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(row + kk + 48)), m3);
    }
    for (; kk < k; kk += 16)
        m0 = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(dr__tail_mask16(k - kk), row + kk)),
                           m0);
    return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
}

/* 16 codes of x * inv: round to nearest even (as nearbyintf), NaN -> INT32_MIN, clamped later. */
static inline __m512i codes16(const float *x, __mmask16 mask, __m512 inv)
{
    return _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x), inv),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

void dr_quantize_rows_s8__avx512(size_t m, size_t k, const float *x, size_t ldx, int8_t *q,
                                 size_t ldq, float *scales)
{
    /* The packs work per 128-bit lane: dword l of their result holds 4-code group l / 4 of
     * source l % 4; this permutation puts the 64 codes back in order. */
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    const __m512i lo = _mm512_set1_epi8(-127);
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        float max_abs = row_max_abs(row, k);
        float inv = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
        scales[i] = max_abs / 127.0f;
        __m512 vinv = _mm512_set1_ps(inv);
        /* |x * inv| <= 127 by construction, so the saturating packs lose nothing; NaN's code
         * saturates to -128 and is lifted to -127, as the reference's fmaxf does. */
        for (size_t kk = 0; kk < k; kk += 64) {
            size_t left = k - kk;
            __m512i c0 = codes16(row + kk, dr__tail_mask16(left), vinv);
            __m512i c1 = codes16(row + kk + 16, dr__tail_mask16(left > 16 ? left - 16 : 0), vinv);
            __m512i c2 = codes16(row + kk + 32, dr__tail_mask16(left > 32 ? left - 32 : 0), vinv);
            __m512i c3 = codes16(row + kk + 48, dr__tail_mask16(left > 48 ? left - 48 : 0), vinv);
            __m512i b = _mm512_packs_epi16(_mm512_packs_epi32(c0, c1), _mm512_packs_epi32(c2, c3));
            b = _mm512_max_epi8(_mm512_permutexvar_epi32(order, b), lo);
            __mmask64 keep = left >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << left) - 1;
            _mm512_mask_storeu_epi8(q + i * ldq + kk, keep, b);
        }
    }
}

void dr_dequantize_rows_s8__avx512(size_t m, size_t k, const int8_t *q, size_t ldq,
                                   const float *scales, float *x, size_t ldx)
{
    for (size_t i = 0; i < m; i++) {
        __m512 s = _mm512_set1_ps(scales[i]);
        for (size_t kk = 0; kk < k; kk += 16) {
            __mmask16 mask = dr__tail_mask16(k - kk);
            __m128i b = _mm_maskz_loadu_epi8(mask, q + i * ldq + kk);
            __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
            _mm512_mask_storeu_ps(x + i * ldx + kk, mask, _mm512_mul_ps(v, s));
        }
    }
}

/* Sum of row[j] - shift (squared when `square`) over a row: four independent chains, so a
 * 256-wide row is not 16 dependent additions long. */
static inline float row_sum_centred(const float *row, size_t n, __m512 shift, bool square)
{
    __m512 s[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
    size_t j = 0;
    for (; j + 64 <= n; j += 64) {
        for (size_t u = 0; u < 4; u++) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(row + j + 16 * u), shift);
            s[u] = square ? _mm512_fmadd_ps(d, d, s[u]) : _mm512_add_ps(s[u], d);
        }
    }
    for (; j < n; j += 16) {
        __mmask16 mask = dr__tail_mask16(n - j);
        __m512 d = _mm512_maskz_sub_ps(mask, _mm512_maskz_loadu_ps(mask, row + j), shift);
        s[0] = square ? _mm512_fmadd_ps(d, d, s[0]) : _mm512_add_ps(s[0], d);
    }
    return _mm512_reduce_add_ps(
        _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
}

void dr_layernorm_f32__avx512(size_t m, size_t n, const float *x, size_t ldx, const float *gamma,
                              const float *beta, float eps, float *y, size_t ldy)
{
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        __m512 vmean =
            _mm512_set1_ps(row_sum_centred(row, n, _mm512_setzero_ps(), false) / (float)n);
        float var = row_sum_centred(row, n, vmean, true) / (float)n;
        __m512 inv_std = _mm512_set1_ps((float)(1.0 / sqrt((double)var + (double)eps)));
        for (size_t j = 0; j < n; j += 16) {
            __mmask16 mask = dr__tail_mask16(n - j);
            __m512 d =
                _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + j), vmean), inv_std);
            __m512 r = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mask, gamma + j),
                                       _mm512_maskz_loadu_ps(mask, beta + j));
            _mm512_mask_storeu_ps(y + i * ldy + j, mask, r);
        }
    }
}

void dr_gelu_f32__avx512(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mask = dr__tail_mask16(n - i);
        _mm512_mask_storeu_ps(y + i, mask, dr__gelu_avx512(_mm512_maskz_loadu_ps(mask, x + i)));
    }
}

void dr_softmax_f32__avx512(size_t m, size_t n, float *x, size_t ldx, size_t n_valid, float scale)
{
    if (n_valid > n)
        n_valid = n;
    __m512 vscale = _mm512_set1_ps(scale);
    for (size_t i = 0; i < m; i++) {
        float *row = x + i * ldx;
        if (n_valid > 0) {
            __m512 vmax = _mm512_set1_ps(row[0]);
            for (size_t j = 0; j < n_valid; j += 16)
                vmax = _mm512_mask_max_ps(
                    vmax, dr__tail_mask16(n_valid - j), vmax,
                    _mm512_maskz_loadu_ps(dr__tail_mask16(n_valid - j), row + j));
            __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
            __m512 sum = _mm512_setzero_ps();
            for (size_t j = 0; j < n_valid; j += 16) {
                __mmask16 mask = dr__tail_mask16(n_valid - j);
                __m512 e = dr__exp_avx512(
                    _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + j), vm), vscale));
                e = _mm512_maskz_mov_ps(mask, e);
                _mm512_mask_storeu_ps(row + j, mask, e);
                sum = _mm512_add_ps(sum, e);
            }
            __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
            for (size_t j = 0; j < n_valid; j += 16) {
                __mmask16 mask = dr__tail_mask16(n_valid - j);
                _mm512_mask_storeu_ps(row + j, mask,
                                      _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row + j), inv));
            }
        }
        for (size_t j = n_valid; j < n; j++)
            row[j] = 0.0f;
    }
}

void dr_lstm_cell_f32__avx512(size_t batch, size_t hidden, const float *gates, size_t ld_gates,
                              float *c, float *h, size_t ld_state)
{
    for (size_t b = 0; b < batch; b++) {
        const float *g = gates + b * ld_gates;
        float *cb = c + b * ld_state, *hb = h + b * ld_state;
        for (size_t j = 0; j < hidden; j += 16) {
            __mmask16 mask = dr__tail_mask16(hidden - j);
            __m512 in = dr__sigmoid_avx512(_mm512_maskz_loadu_ps(mask, g + j));
            __m512 forget = dr__sigmoid_avx512(_mm512_maskz_loadu_ps(mask, g + hidden + j));
            __m512 cell = dr__tanh_avx512(_mm512_maskz_loadu_ps(mask, g + 2 * hidden + j));
            __m512 out = dr__sigmoid_avx512(_mm512_maskz_loadu_ps(mask, g + 3 * hidden + j));
            __m512 c_new = _mm512_fmadd_ps(forget, _mm512_maskz_loadu_ps(mask, cb + j),
                                           _mm512_mul_ps(in, cell));
            _mm512_mask_storeu_ps(cb + j, mask, c_new);
            _mm512_mask_storeu_ps(hb + j, mask, _mm512_mul_ps(out, dr__tanh_avx512(c_new)));
        }
    }
}
