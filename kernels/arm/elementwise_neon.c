/* elementwise_neon.c: fp32 products, quantisation, layernorm, GELU, masked softmax and the
 * LSTM cell on AArch64 NEON.  Quantisation is bit-exact with __ref: the same multiply,
 * round half even (frintn), then a clamp with fmaxnm/fminnm, which return the number when
 * the other operand is NaN, as fmaxf does.  Float ops keep the bounds of tests/kernels.
 * Tails of fewer than 4 run the same math on a zero-padded copy.  transpose: 4 x 4 blocks
 * through trn1/trn2 and half-register moves, exact. */
#include "arm.h"
#include "math_neon.h"

#include <math.h>
#include <string.h>

static inline float32x4_t load_tail(const float *p, size_t n)
{
    float buf[4] = {0};
    memcpy(buf, p, (n < 4 ? n : 4) * sizeof(float));
    return vld1q_f32(buf);
}

static inline void store_tail(float *p, float32x4_t v, size_t n)
{
    float buf[4];
    vst1q_f32(buf, v);
    memcpy(p, buf, (n < 4 ? n : 4) * sizeof(float));
}

/* ---- fp32 products: nn 4x16 tile (16 accumulators), nt 2x4 dot products ------------ */

static inline __attribute__((always_inline)) void nn_tile(size_t mr, size_t nr, size_t k,
                                                          const float *a, size_t lda,
                                                          const float *b, size_t ldb,
                                                          const float *bias, float *c, size_t ldc)
{
    float32x4_t acc[4][4];
    for (size_t r = 0; r < 4; r++)
        for (size_t q = 0; q < 4; q++)
            acc[r][q] = vdupq_n_f32(0.0f);
    for (size_t kk = 0; kk < k; kk++) {
        const float *brow = b + kk * ldb;
        float32x4_t bv[4];
        for (size_t q = 0; q < 4; q++)
            bv[q] = nr >= 4 * q + 4 ? vld1q_f32(brow + 4 * q)
                    : nr > 4 * q    ? load_tail(brow + 4 * q, nr - 4 * q)
                                    : vdupq_n_f32(0.0f);
        for (size_t r = 0; r < mr; r++) {
            float av = a[r * lda + kk];
            for (size_t q = 0; q < 4; q++)
                acc[r][q] = vfmaq_n_f32(acc[r][q], bv[q], av);
        }
    }
    for (size_t r = 0; r < mr; r++)
        for (size_t q = 0; q < 4 && 4 * q < nr; q++) {
            float32x4_t v = acc[r][q];
            if (bias)
                v = vaddq_f32(v, nr >= 4 * q + 4 ? vld1q_f32(bias + 4 * q)
                                                 : load_tail(bias + 4 * q, nr - 4 * q));
            if (nr >= 4 * q + 4)
                vst1q_f32(c + r * ldc + 4 * q, v);
            else
                store_tail(c + r * ldc + 4 * q, v, nr - 4 * q);
        }
}

void dr_gemm_f32_nn__neon(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                          size_t ldb, const float *bias, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i += 4) {
        size_t mr = m - i < 4 ? m - i : 4;
        for (size_t j = 0; j < n; j += 16) {
            size_t nr = n - j < 16 ? n - j : 16;
            const float *bj = bias ? bias + j : NULL;
            if (mr == 4)
                nn_tile(4, nr, k, a + i * lda, lda, b + j, ldb, bj, c + i * ldc + j, ldc);
            else
                nn_tile(mr, nr, k, a + i * lda, lda, b + j, ldb, bj, c + i * ldc + j, ldc);
        }
    }
}

void dr_gemm_f32_nt__neon(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                          size_t ldb, const float *bias, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        const float *ai = a + i * lda;
        for (size_t j = 0; j < n; j++) {
            const float *bj = b + j * ldb;
            float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
            size_t kk = 0;
            for (; kk + 8 <= k; kk += 8) {
                acc0 = vfmaq_f32(acc0, vld1q_f32(ai + kk), vld1q_f32(bj + kk));
                acc1 = vfmaq_f32(acc1, vld1q_f32(ai + kk + 4), vld1q_f32(bj + kk + 4));
            }
            for (; kk < k; kk += 4)
                acc0 = vfmaq_f32(acc0, load_tail(ai + kk, k - kk), load_tail(bj + kk, k - kk));
            c[i * ldc + j] = vaddvq_f32(vaddq_f32(acc0, acc1)) + (bias ? bias[j] : 0.0f);
        }
    }
}

void dr_transpose_f32__neon(size_t rows, size_t cols, const float *src, size_t ld_src, float *dst,
                            size_t ld_dst)
{
    for (size_t i = 0; i < rows; i += 4) {
        size_t nr = rows - i < 4 ? rows - i : 4;
        for (size_t j = 0; j < cols; j += 4) {
            size_t nc = cols - j < 4 ? cols - j : 4;
            float32x4_t r[4];
            for (size_t q = 0; q < 4; q++) {
                const float *p = src + (i + q) * ld_src + j;
                r[q] = q >= nr ? vdupq_n_f32(0.0f) : nc == 4 ? vld1q_f32(p) : load_tail(p, nc);
            }
            float32x4x2_t p0 = vtrnq_f32(r[0], r[1]), p1 = vtrnq_f32(r[2], r[3]);
            float32x4_t col[4] = {vcombine_f32(vget_low_f32(p0.val[0]), vget_low_f32(p1.val[0])),
                                  vcombine_f32(vget_low_f32(p0.val[1]), vget_low_f32(p1.val[1])),
                                  vcombine_f32(vget_high_f32(p0.val[0]), vget_high_f32(p1.val[0])),
                                  vcombine_f32(vget_high_f32(p0.val[1]), vget_high_f32(p1.val[1]))};
            for (size_t q = 0; q < nc; q++) {
                if (nr == 4)
                    vst1q_f32(dst + (j + q) * ld_dst + i, col[q]);
                else
                    store_tail(dst + (j + q) * ld_dst + i, col[q], nr);
            }
        }
    }
}

/* ---- quantisation ---------------------------------------------------------------------- */

void dr_quantize_rows_s8__neon(size_t m, size_t k, const float *x, size_t ldx, int8_t *q,
                               size_t ldq, float *scales)
{
    const float32x4_t lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        float32x4_t vmax = vdupq_n_f32(0.0f);
        size_t kk = 0;
        for (; kk + 4 <= k; kk += 4)
            vmax = vmaxnmq_f32(vmax, vabsq_f32(vld1q_f32(row + kk)));
        float max_abs = vmaxvq_f32(vmax);
        for (; kk < k; kk++) {
            float v = fabsf(row[kk]);
            if (v > max_abs)
                max_abs = v;
        }
        float inv = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
        scales[i] = max_abs / 127.0f;
        int8_t *out = q + i * ldq;
        for (kk = 0; kk + 4 <= k; kk += 4) {
            float32x4_t v = vrndnq_f32(vmulq_n_f32(vld1q_f32(row + kk), inv));
            v = vminnmq_f32(vmaxnmq_f32(v, lo), hi);
            int32x4_t w = vcvtq_s32_f32(v);
            int16x4_t h = vmovn_s32(w);
            int8x8_t bytes = vmovn_s16(vcombine_s16(h, h));
            int32_t word = vget_lane_s32(vreinterpret_s32_s8(bytes), 0);
            memcpy(out + kk, &word, 4);
        }
        for (; kk < k; kk++) {
            float v = nearbyintf(row[kk] * inv);
            v = fminf(fmaxf(v, -127.0f), 127.0f);
            out[kk] = (int8_t)v;
        }
    }
}

void dr_dequantize_rows_s8__neon(size_t m, size_t k, const int8_t *q, size_t ldq,
                                 const float *scales, float *x, size_t ldx)
{
    for (size_t i = 0; i < m; i++) {
        const int8_t *row = q + i * ldq;
        float *out = x + i * ldx;
        size_t kk = 0;
        for (; kk + 8 <= k; kk += 8) {
            int16x8_t h = vmovl_s8(vld1_s8(row + kk));
            vst1q_f32(out + kk, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), scales[i]));
            vst1q_f32(out + kk + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(h)), scales[i]));
        }
        for (; kk < k; kk++)
            out[kk] = (float)row[kk] * scales[i];
    }
}

/* ---- layernorm, GELU, softmax, LSTM cell -------------------------------------------------- */

void dr_layernorm_f32__neon(size_t m, size_t n, const float *x, size_t ldx, const float *gamma,
                            const float *beta, float eps, float *y, size_t ldy)
{
    for (size_t i = 0; i < m; i++) {
        const float *row = x + i * ldx;
        float32x4_t s = vdupq_n_f32(0.0f);
        for (size_t j = 0; j < n; j += 4)
            s = vaddq_f32(s, load_tail(row + j, n - j));
        float mean = vaddvq_f32(s) / (float)n;
        float32x4_t vmean = vdupq_n_f32(mean), v = vdupq_n_f32(0.0f);
        for (size_t j = 0; j < n; j += 4) {
            float32x4_t d = vsubq_f32(load_tail(row + j, n - j), vmean);
            if (n - j < 4) { /* padded lanes must not add (0 - mean)^2 */
                float lanes[4] = {0};
                vst1q_f32(lanes, d);
                for (size_t l = n - j; l < 4; l++)
                    lanes[l] = 0.0f;
                d = vld1q_f32(lanes);
            }
            v = vfmaq_f32(v, d, d);
        }
        float var = vaddvq_f32(v) / (float)n;
        float inv_std = (float)(1.0 / sqrt((double)var + (double)eps));
        for (size_t j = 0; j < n; j += 4) {
            float32x4_t d = vmulq_n_f32(vsubq_f32(load_tail(row + j, n - j), vmean), inv_std);
            float32x4_t r = vfmaq_f32(load_tail(beta + j, n - j), d, load_tail(gamma + j, n - j));
            store_tail(y + i * ldy + j, r, n - j);
        }
    }
}

void dr_gelu_f32__neon(size_t n, const float *x, float *y)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, dr__gelu_neon(vld1q_f32(x + i)));
    if (i < n)
        store_tail(y + i, dr__gelu_neon(load_tail(x + i, n - i)), n - i);
}

void dr_softmax_f32__neon(size_t m, size_t n, float *x, size_t ldx, size_t n_valid, float scale)
{
    if (n_valid > n)
        n_valid = n;
    for (size_t i = 0; i < m; i++) {
        float *row = x + i * ldx;
        if (n_valid > 0) {
            float max = row[0];
            size_t j = 0;
            float32x4_t vmax = vdupq_n_f32(max);
            for (; j + 4 <= n_valid; j += 4)
                vmax = vmaxq_f32(vmax, vld1q_f32(row + j));
            max = vmaxvq_f32(vmax);
            for (; j < n_valid; j++)
                max = fmaxf(max, row[j]);
            float32x4_t sum = vdupq_n_f32(0.0f);
            for (j = 0; j < n_valid; j += 4) {
                size_t len = n_valid - j < 4 ? n_valid - j : 4;
                float32x4_t e = dr__exp_neon(
                    vmulq_n_f32(vsubq_f32(load_tail(row + j, len), vdupq_n_f32(max)), scale));
                store_tail(row + j, e, len);
                float lanes[4];
                vst1q_f32(lanes, e);
                for (size_t l = len; l < 4; l++)
                    lanes[l] = 0.0f;
                sum = vaddq_f32(sum, vld1q_f32(lanes));
            }
            float inv = 1.0f / vaddvq_f32(sum);
            for (j = 0; j < n_valid; j++)
                row[j] *= inv;
        }
        for (size_t j = n_valid; j < n; j++)
            row[j] = 0.0f;
    }
}

void dr_lstm_cell_f32__neon(size_t batch, size_t hidden, const float *gates, size_t ld_gates,
                            float *c, float *h, size_t ld_state)
{
    for (size_t b = 0; b < batch; b++) {
        const float *g = gates + b * ld_gates;
        float *cb = c + b * ld_state, *hb = h + b * ld_state;
        for (size_t j = 0; j < hidden; j += 4) {
            size_t len = hidden - j < 4 ? hidden - j : 4;
            float32x4_t in = dr__sigmoid_neon(load_tail(g + j, len));
            float32x4_t forget = dr__sigmoid_neon(load_tail(g + hidden + j, len));
            float32x4_t cell = dr__tanh_neon(load_tail(g + 2 * hidden + j, len));
            float32x4_t out = dr__sigmoid_neon(load_tail(g + 3 * hidden + j, len));
            float32x4_t c_new = vfmaq_f32(vmulq_f32(in, cell), forget, load_tail(cb + j, len));
            store_tail(cb + j, c_new, len);
            store_tail(hb + j, vmulq_f32(out, dr__tanh_neon(c_new)), len);
        }
    }
}
