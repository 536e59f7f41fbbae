/* gemm_s8_neon.c: int8 x int8 matrix product on AArch64 NEON, 4x16 register tile.
 *
 * Same scheme and packed bytes as x86 (kernels.h): weights stored as w + 64, which is in
 * [0, 127] and so also a valid *signed* byte; activations s8; the bias is removed with
 * 64 * row sum.  A 64-byte packed group is four q registers of 4 columns x 4 k.
 *   DR_GEMM_S8_DOTPROD = 1 (gemm_s8_neondot.c): sdot adds four s8 x s8 products into each
 *   int32 lane, one instruction per 4 columns x 4 k.
 *   otherwise: smull/smull2 to int16 (|w * a| <= 127 * 128), addp pairs (<= 32512, exact in
 *   int16), sadalp into int32.
 */
#include "arm.h"
#include "math_neon.h"

#include <arm_neon.h>
#include <string.h>

#ifndef DR_GEMM_S8_DOTPROD
#define DR_GEMM_S8_DOTPROD   0
#define GEMM_S8_SUFFIX(name) name##__neon
#else
#define GEMM_S8_SUFFIX(name) name##__neondot
#endif

#define MR             4
#define NR             DR_PACK_S8_NR
#define A_BLOCK_BYTES  (128 * 1024)
#define MAX_BLOCK_ROWS 256
#define B_CHUNK_BYTES  (256 * 1024) /* packed weights kept in L2 per chunk */

static inline int32x4_t madd4(int32x4_t acc, int8x16_t w, int8x16_t a4)
{
#if DR_GEMM_S8_DOTPROD
    return vdotq_s32(acc, w, a4);
#else
    int16x8_t lo = vmull_s8(vget_low_s8(w), vget_low_s8(a4));
    int16x8_t hi = vmull_high_s8(w, a4);
    return vpadalq_s16(acc, vpaddq_s16(lo, hi));
#endif
}

static int32_t row_sum_s8(const int8_t *row, size_t k)
{
    int32_t sum = 0;
    size_t kk = 0;
    int32x4_t acc = vdupq_n_s32(0);
    for (; kk + 16 <= k; kk += 16)
        acc = vpadalq_s16(acc, vpaddlq_s8(vld1q_s8(row + kk)));
    sum = vaddvq_s32(acc);
    for (; kk < k; kk++)
        sum += row[kk];
    return sum;
}

static inline __attribute__((always_inline)) void
tile(size_t mr, const int8_t *a, size_t lda, const struct dr_packed_s8 *b, size_t panel_idx,
     const int32_t *row_sums, void *c, size_t ldc, const struct dr_gemm_epilogue *ep, size_t row0)
{
    int32x4_t acc[MR][4];
    for (size_t r = 0; r < MR; r++)
        for (size_t q = 0; q < 4; q++)
            acc[r][q] = vdupq_n_s32(0);
    const int8_t *panel = (const int8_t *)(b->data + panel_idx * b->k_padded * NR);
    size_t k = b->k;
    for (size_t kk = 0; kk < k; kk += 4, panel += 64) {
        int8x16_t w0 = vld1q_s8(panel), w1 = vld1q_s8(panel + 16);
        int8x16_t w2 = vld1q_s8(panel + 32), w3 = vld1q_s8(panel + 48);
        for (size_t r = 0; r < mr; r++) {
            int32_t word = 0;
            memcpy(&word, a + r * lda + kk, k - kk < 4 ? k - kk : 4); /* k tail reads 0 */
            int8x16_t a4 = vreinterpretq_s8_s32(vdupq_n_s32(word));
            acc[r][0] = madd4(acc[r][0], w0, a4);
            acc[r][1] = madd4(acc[r][1], w1, a4);
            acc[r][2] = madd4(acc[r][2], w2, a4);
            acc[r][3] = madd4(acc[r][3], w3, a4);
        }
    }
    size_t j0 = panel_idx * NR;
    size_t nr = b->n - j0 < NR ? b->n - j0 : NR;
    for (size_t r = 0; r < mr; r++) {
        int32x4_t fix = vdupq_n_s32(DR_PACK_S8_BIAS * row_sums[r]);
        union {
            int32_t i[NR];
            float f[NR];
        } tmp;
        for (size_t q = 0; q < 4; q++) {
            int32x4_t v = vsubq_s32(acc[r][q], fix);
            if (!ep) {
                vst1q_s32(tmp.i + 4 * q, v);
                continue;
            }
            float ws[4] = {0}, bs[4] = {0};
            size_t valid = nr > 4 * q ? (nr - 4 * q < 4 ? nr - 4 * q : 4) : 0;
            memcpy(ws, ep->w_scale + j0 + 4 * q, valid * sizeof(float));
            if (ep->bias)
                memcpy(bs, ep->bias + j0 + 4 * q, valid * sizeof(float));
            float32x4_t s = vmulq_n_f32(vld1q_f32(ws), ep->a_scale[row0 + r]);
            float32x4_t y = vfmaq_f32(vld1q_f32(bs), vcvtq_f32_s32(v), s);
            if (ep->act == DR_ACT_GELU)
                y = dr__gelu_neon(y);
            vst1q_f32(tmp.f + 4 * q, y);
        }
        if (ep) {
            float *out = (float *)c + r * ldc + j0;
            for (size_t j = 0; j < nr; j++)
                out[j] = ep->accumulate ? tmp.f[j] + out[j] : tmp.f[j];
        } else {
            memcpy((int32_t *)c + r * ldc + j0, tmp.i, nr * sizeof(int32_t));
        }
    }
}

static void gemm(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b, void *c,
                 size_t ldc, const struct dr_gemm_epilogue *ep)
{
    size_t n_panels = b->n_padded / NR;
    size_t block = A_BLOCK_BYTES / b->k / MR * MR;
    block = block < MR ? MR : block > MAX_BLOCK_ROWS ? MAX_BLOCK_ROWS : block;
    size_t panels_per_chunk = B_CHUNK_BYTES / (b->k_padded * NR);
    panels_per_chunk = panels_per_chunk ? panels_per_chunk : 1;
    int32_t row_sums[MAX_BLOCK_ROWS];
    for (size_t i0 = 0; i0 < m; i0 += block) {
        size_t i_end = i0 + block < m ? i0 + block : m;
        for (size_t i = i0; i < i_end; i++)
            row_sums[i - i0] = row_sum_s8(a + i * lda, b->k);
        /* Row tiles sweep a chunk of panels (weights kept in L2): C rows are written left
         * to right instead of down columns at the row stride. */
        for (size_t p0 = 0; p0 < n_panels; p0 += panels_per_chunk) {
            size_t p_end = p0 + panels_per_chunk < n_panels ? p0 + panels_per_chunk : n_panels;
            size_t i = i0;
            for (; i + MR <= i_end; i += MR)
                for (size_t p = p0; p < p_end; p++)
                    tile(MR, a + i * lda, lda, b, p, row_sums + (i - i0), (char *)c + i * ldc * 4,
                         ldc, ep, i);
            const int32_t *rs = row_sums + (i - i0);
            char *ci = (char *)c + i * ldc * 4;
            size_t rest = i_end - i;
            for (size_t p = p0; p < p_end; p++) {
                if (rest == 3)
                    tile(3, a + i * lda, lda, b, p, rs, ci, ldc, ep, i);
                else if (rest == 2)
                    tile(2, a + i * lda, lda, b, p, rs, ci, ldc, ep, i);
                else if (rest == 1)
                    tile(1, a + i * lda, lda, b, p, rs, ci, ldc, ep, i);
            }
        }
    }
}

void GEMM_S8_SUFFIX(dr_gemm_s8s8s32)(size_t m, const int8_t *a, size_t lda,
                                     const struct dr_packed_s8 *b, int32_t *c, size_t ldc)
{
    gemm(m, a, lda, b, c, ldc, NULL);
}

void GEMM_S8_SUFFIX(dr_gemm_s8s8f32)(size_t m, const int8_t *a, size_t lda,
                                     const struct dr_packed_s8 *b, float *c, size_t ldc,
                                     const struct dr_gemm_epilogue *ep)
{
    gemm(m, a, lda, b, c, ldc, ep);
}
