/* norm_act_avx2.c: layernorm, GELU, masked softmax and the LSTM cell update, AVX2 + FMA.
 * Float kernels: they match __ref within the bounds tests/kernels states (summation order
 * and the approximations of math_avx2.h).  Tails of fewer than 8 use masked loads/stores. */
#include "math_avx2.h"
#include "x86.h"

#include <math.h>

void dr_layernorm_f32__avx2(size_t m, size_t n, const float *x, size_t ldx, const float *gamma,
                            const float *beta, float eps, float *y, size_t ldy)
{
    size_t n8 = n & ~(size_t)7;
    __m256i tail = dr__tail_mask_avx2(n - n8);
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        float *out = y + i * ldy;
        __m256 s = _mm256_setzero_ps();
        for (size_t j = 0; j < n8; j += 8)
            s = _mm256_add_ps(s, _mm256_loadu_ps(row + j));
        if (n8 < n)
            s = _mm256_add_ps(s, _mm256_maskload_ps(row + n8, tail));
        float mean = dr__hsum_avx2(s) / (float)n;
        __m256 vmean = _mm256_set1_ps(mean);
        __m256 v = _mm256_setzero_ps();
        for (size_t j = 0; j < n8; j += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(row + j), vmean);
            v = _mm256_fmadd_ps(d, d, v);
        }
        if (n8 < n) {
            __m256 d = _mm256_sub_ps(_mm256_maskload_ps(row + n8, tail), vmean);
            d = _mm256_and_ps(d, _mm256_castsi256_ps(tail));
            v = _mm256_fmadd_ps(d, d, v);
        }
        float var = dr__hsum_avx2(v) / (float)n;
        __m256 inv_std = _mm256_set1_ps((float)(1.0 / sqrt((double)var + (double)eps)));
        for (size_t j = 0; j < n8; j += 8) {
            __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + j), vmean), inv_std);
            _mm256_storeu_ps(
                out + j, _mm256_fmadd_ps(d, _mm256_loadu_ps(gamma + j), _mm256_loadu_ps(beta + j)));
        }
        if (n8 < n) {
            __m256 d =
                _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(row + n8, tail), vmean), inv_std);
            __m256 r = _mm256_fmadd_ps(d, _mm256_maskload_ps(gamma + n8, tail),
                                       _mm256_maskload_ps(beta + n8, tail));
            _mm256_maskstore_ps(out + n8, tail, r);
        }
    }
}

void dr_gelu_f32__avx2(size_t n, const float *x, float *y)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, dr__gelu_avx2(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i tail = dr__tail_mask_avx2(n - i);
        _mm256_maskstore_ps(y + i, tail, dr__gelu_avx2(_mm256_maskload_ps(x + i, tail)));
    }
}

void dr_softmax_f32__avx2(size_t m, size_t n, float *x, size_t ldx, size_t n_valid, float scale)
{
    if (n_valid > n)
        n_valid = n;
    size_t v8 = n_valid & ~(size_t)7;
    __m256i tail = dr__tail_mask_avx2(n_valid - v8);
    __m256 vscale = _mm256_set1_ps(scale);
    for (size_t i = 0; i < m; i++) {
        float *row = x + i * ldx;
        if (n_valid > 0) {
            __m256 vmax = _mm256_set1_ps(row[0]);
            for (size_t j = 0; j < v8; j += 8)
                vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + j));
            float max = dr__hmax_avx2(vmax);
            for (size_t j = v8; j < n_valid; j++)
                max = fmaxf(max, row[j]);
            __m256 vm = _mm256_set1_ps(max);
            __m256 sum = _mm256_setzero_ps();
            for (size_t j = 0; j < v8; j += 8) {
                __m256 e = dr__exp_avx2(
                    _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm), vscale));
                _mm256_storeu_ps(row + j, e);
                sum = _mm256_add_ps(sum, e);
            }
            if (v8 < n_valid) {
                __m256 e = dr__exp_avx2(
                    _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(row + v8, tail), vm), vscale));
                e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
                _mm256_maskstore_ps(row + v8, tail, e);
                sum = _mm256_add_ps(sum, e);
            }
            __m256 inv = _mm256_set1_ps(1.0f / dr__hsum_avx2(sum));
            for (size_t j = 0; j < v8; j += 8)
                _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), inv));
            for (size_t j = v8; j < n_valid; j++)
                row[j] *= _mm256_cvtss_f32(inv);
        }
        for (size_t j = n_valid; j < n; j++)
            row[j] = 0.0f;
    }
}

void dr_lstm_cell_f32__avx2(size_t batch, size_t hidden, const float *gates, size_t ld_gates,
                            float *c, float *h, size_t ld_state)
{
    for (size_t b = 0; b < batch; b++) {
        const float *g = gates + b * ld_gates;
        float *cb = c + b * ld_state, *hb = h + b * ld_state;
        for (size_t j = 0; j < hidden; j += 8) {
            __m256i mask = dr__tail_mask_avx2(hidden - j < 8 ? hidden - j : 8);
            __m256 in = dr__sigmoid_avx2(_mm256_maskload_ps(g + j, mask));
            __m256 forget = dr__sigmoid_avx2(_mm256_maskload_ps(g + hidden + j, mask));
            __m256 cell = dr__tanh_avx2(_mm256_maskload_ps(g + 2 * hidden + j, mask));
            __m256 out = dr__sigmoid_avx2(_mm256_maskload_ps(g + 3 * hidden + j, mask));
            __m256 c_new =
                _mm256_fmadd_ps(forget, _mm256_maskload_ps(cb + j, mask), _mm256_mul_ps(in, cell));
            _mm256_maskstore_ps(cb + j, mask, c_new);
            _mm256_maskstore_ps(hb + j, mask, _mm256_mul_ps(out, dr__tanh_avx2(c_new)));
        }
    }
}
