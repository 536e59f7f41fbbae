/* elementwise_avx512.c: quantisation, layernorm, GELU, masked softmax and the LSTM cell on
 * AVX-512.  Same operations in the same order as the AVX2 versions: quantisation stays
 * bit-exact with __ref (one multiply, round half even, clamp with max(v, lo) returning lo
 * for NaN); the float ops keep the bounds of tests/kernels.  Tails use __mmask16. */
#include "math_avx512.h"
#include "x86.h"

#include <math.h>

void dr_quantize_rows_s8__avx512(size_t m, size_t k, const float *x, size_t ldx, int8_t *q,
                                 size_t ldq, float *scales)
{
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        __m512 vmax = _mm512_setzero_ps();
        for (size_t kk = 0; kk < k; kk += 16) {
            __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(dr__tail_mask16(k - kk), row + kk));
            vmax = _mm512_max_ps(v, vmax); /* NaN lanes keep vmax, as `v > max` does */
        }
        float max_abs = _mm512_reduce_max_ps(vmax);
        float inv = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
        scales[i] = max_abs / 127.0f;
        __m512 vinv = _mm512_set1_ps(inv);
        for (size_t kk = 0; kk < k; kk += 16) {
            __mmask16 mask = dr__tail_mask16(k - kk);
            __m512 v =
                _mm512_roundscale_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row + kk), vinv),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            _mm512_mask_cvtepi32_storeu_epi8(q + i * ldq + kk, mask, _mm512_cvttps_epi32(v));
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

void dr_layernorm_f32__avx512(size_t m, size_t n, const float *x, size_t ldx, const float *gamma,
                              const float *beta, float eps, float *y, size_t ldy)
{
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        __m512 s = _mm512_setzero_ps();
        for (size_t j = 0; j < n; j += 16)
            s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(dr__tail_mask16(n - j), row + j));
        __m512 vmean = _mm512_set1_ps(_mm512_reduce_add_ps(s) / (float)n);
        __m512 v = _mm512_setzero_ps();
        for (size_t j = 0; j < n; j += 16) {
            __mmask16 mask = dr__tail_mask16(n - j);
            __m512 d = _mm512_maskz_sub_ps(mask, _mm512_maskz_loadu_ps(mask, row + j), vmean);
            v = _mm512_fmadd_ps(d, d, v);
        }
        float var = _mm512_reduce_add_ps(v) / (float)n;
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
