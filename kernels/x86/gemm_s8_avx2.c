/* gemm_s8_avx2.c: int8 x int8 -> int32 matrix product, AVX2, 4x16 register tile.
 *
 * Preconditions (the int8 scheme of kernels.h): weights packed by dr_packed_s8_init, so in
 * [-64, 63]; activations any int8.  Activations are shifted to u8 on the fly (x ^ 0x80 ==
 * x + 128) for vpmaddubsw (u8 x s8, pair sums in int16: 255 * 64 * 2 = 32640, never
 * saturates), vpmaddwd with ones widens to int32, and the packer's 128 * sum(w) is
 * subtracted at the end: exact, bit-identical to the reference.
 *
 * Tile: 4 rows x 16 columns (8 ymm accumulators) over the whole k, so the epilogue runs once
 * on registers.  Each 4-byte group of a row is broadcast and meets one 64-byte packed group
 * (two ymm).  Rows are blocked so an M block of A (about 128 KiB) and one packed panel stay
 * in L2 while the panel is reused by every row of the block.
 */
#include "x86.h"
#include "math_avx2.h"

#include <string.h>

#define MR 4
#define NR DR_PACK_S8_NR
#define A_BLOCK_BYTES (128 * 1024)

static inline __m256i load_group_u8(const int8_t *row, size_t kk, size_t k)
{
    int32_t word = 0;
    if (kk + 4 <= k)
        memcpy(&word, row + kk, 4);
    else
        memcpy(&word, row + kk, k - kk); /* k tail: the packed weights there are zero */
    return _mm256_xor_si256(_mm256_set1_epi32(word), _mm256_set1_epi8((char)0x80));
}

/* acc[r][h] += A[r][k-group] . W[group][cols 8h..8h+8) for one panel, r < mr. */
static inline __attribute__((always_inline)) void
tile_accumulate(size_t mr, const int8_t *a, size_t lda, const int8_t *panel, size_t k,
                __m256i acc[MR][2])
{
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_si256();

    size_t k_full = k & ~(size_t)3;
    size_t kk = 0;
    for (; kk < k_full; kk += 4, panel += 64) {
        __m256i b0 = _mm256_load_si256((const __m256i *)panel);
        __m256i b1 = _mm256_load_si256((const __m256i *)(panel + 32));
        for (size_t r = 0; r < mr; r++) {
            int32_t word;
            memcpy(&word, a + r * lda + kk, 4);
            __m256i av = _mm256_xor_si256(_mm256_set1_epi32(word), _mm256_set1_epi8((char)0x80));
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones);
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones);
            acc[r][0] = _mm256_add_epi32(acc[r][0], p0);
            acc[r][1] = _mm256_add_epi32(acc[r][1], p1);
        }
    }
    if (kk < k) {
        __m256i b0 = _mm256_load_si256((const __m256i *)panel);
        __m256i b1 = _mm256_load_si256((const __m256i *)(panel + 32));
        for (size_t r = 0; r < mr; r++) {
            __m256i av = load_group_u8(a + r * lda, kk, k);
            acc[r][0] = _mm256_add_epi32(acc[r][0],
                                         _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1],
                                         _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones));
        }
    }
}

static size_t rows_per_block(size_t k)
{
    size_t rows = A_BLOCK_BYTES / (k ? k : 1);
    rows = rows / MR * MR;
    return rows < MR ? MR : rows;
}

/* ---- int32 output ---------------------------------------------------------------------- */

static inline __attribute__((always_inline)) void
tile_s32(size_t mr, const int8_t *a, size_t lda, const struct dr_packed_s8 *b, size_t panel_idx,
         int32_t *c, size_t ldc)
{
    __m256i acc[MR][2];
    const int8_t *panel = b->data + panel_idx * b->k_padded * NR;
    tile_accumulate(mr, a, lda, panel, b->k, acc);
    size_t j0 = panel_idx * NR;
    size_t nr = b->n - j0 < NR ? b->n - j0 : NR;
    __m256i comp0 = _mm256_load_si256((const __m256i *)(b->col_comp + j0));
    __m256i comp1 = _mm256_load_si256((const __m256i *)(b->col_comp + j0 + 8));
    for (size_t r = 0; r < mr; r++) {
        __m256i v0 = _mm256_sub_epi32(acc[r][0], comp0);
        __m256i v1 = _mm256_sub_epi32(acc[r][1], comp1);
        int32_t *out = c + r * ldc + j0;
        if (nr == NR) {
            _mm256_storeu_si256((__m256i *)out, v0);
            _mm256_storeu_si256((__m256i *)(out + 8), v1);
        } else {
            int32_t tmp[NR];
            _mm256_storeu_si256((__m256i *)tmp, v0);
            _mm256_storeu_si256((__m256i *)(tmp + 8), v1);
            memcpy(out, tmp, nr * sizeof(int32_t));
        }
    }
}

void dr_gemm_s8s8s32__avx2(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                           int32_t *c, size_t ldc)
{
    size_t n_panels = b->n_padded / NR;
    size_t block = rows_per_block(b->k);
    for (size_t i0 = 0; i0 < m; i0 += block) {
        size_t i_end = i0 + block < m ? i0 + block : m;
        for (size_t p = 0; p < n_panels; p++) {
            size_t i = i0;
            for (; i + MR <= i_end; i += MR)
                tile_s32(MR, a + i * lda, lda, b, p, c + i * ldc, ldc);
            switch (i_end - i) {
            case 3:
                tile_s32(3, a + i * lda, lda, b, p, c + i * ldc, ldc);
                break;
            case 2:
                tile_s32(2, a + i * lda, lda, b, p, c + i * ldc, ldc);
                break;
            case 1:
                tile_s32(1, a + i * lda, lda, b, p, c + i * ldc, ldc);
                break;
            default:
                break;
            }
        }
    }
}

/* ---- fp32 output with the fused epilogue ------------------------------------------------ */

static inline __m256 epilogue8(__m256i acc, __m256i comp, __m256 a_scale, const float *w_scale,
                               const float *bias, const struct dr_gemm_epilogue *ep,
                               const float *c_old)
{
    __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, comp));
    __m256 s = _mm256_mul_ps(a_scale, _mm256_loadu_ps(w_scale));
    v = bias ? _mm256_fmadd_ps(v, s, _mm256_loadu_ps(bias)) : _mm256_mul_ps(v, s);
    if (ep->act == DR_ACT_GELU)
        v = dr__gelu_avx2(v);
    if (ep->accumulate)
        v = _mm256_add_ps(v, _mm256_loadu_ps(c_old));
    return v;
}

static inline __attribute__((always_inline)) void
tile_f32(size_t mr, const int8_t *a, size_t lda, const struct dr_packed_s8 *b, size_t panel_idx,
         float *c, size_t ldc, const struct dr_gemm_epilogue *ep, size_t row0)
{
    __m256i acc[MR][2];
    const int8_t *panel = b->data + panel_idx * b->k_padded * NR;
    tile_accumulate(mr, a, lda, panel, b->k, acc);
    size_t j0 = panel_idx * NR;
    size_t nr = b->n - j0 < NR ? b->n - j0 : NR;
    __m256i comp0 = _mm256_load_si256((const __m256i *)(b->col_comp + j0));
    __m256i comp1 = _mm256_load_si256((const __m256i *)(b->col_comp + j0 + 8));

    /* The last panel may hold fewer than 16 real columns: stage scales, bias and the old
     * outputs through padded copies so every vector load stays inside its array. */
    float w_scale_pad[NR] = {0}, bias_pad[NR] = {0};
    const float *w_scale = ep->w_scale + j0, *bias = ep->bias ? ep->bias + j0 : NULL;
    if (nr < NR) {
        memcpy(w_scale_pad, w_scale, nr * sizeof(float));
        w_scale = w_scale_pad;
        if (bias) {
            memcpy(bias_pad, bias, nr * sizeof(float));
            bias = bias_pad;
        }
    }
    for (size_t r = 0; r < mr; r++) {
        float *out = c + r * ldc + j0;
        __m256 a_scale = _mm256_set1_ps(ep->a_scale[row0 + r]);
        float old_pad[NR] = {0};
        const float *old = out;
        if (nr < NR) {
            if (ep->accumulate)
                memcpy(old_pad, out, nr * sizeof(float));
            old = old_pad;
        }
        __m256 v0 = epilogue8(acc[r][0], comp0, a_scale, w_scale, bias, ep, old);
        __m256 v1 = epilogue8(acc[r][1], comp1, a_scale, w_scale + 8, bias ? bias + 8 : NULL,
                              ep, old + 8);
        if (nr == NR) {
            _mm256_storeu_ps(out, v0);
            _mm256_storeu_ps(out + 8, v1);
        } else {
            float tmp[NR];
            _mm256_storeu_ps(tmp, v0);
            _mm256_storeu_ps(tmp + 8, v1);
            memcpy(out, tmp, nr * sizeof(float));
        }
    }
}

void dr_gemm_s8s8f32__avx2(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                           float *c, size_t ldc, const struct dr_gemm_epilogue *ep)
{
    size_t n_panels = b->n_padded / NR;
    size_t block = rows_per_block(b->k);
    for (size_t i0 = 0; i0 < m; i0 += block) {
        size_t i_end = i0 + block < m ? i0 + block : m;
        for (size_t p = 0; p < n_panels; p++) {
            size_t i = i0;
            for (; i + MR <= i_end; i += MR)
                tile_f32(MR, a + i * lda, lda, b, p, c + i * ldc, ldc, ep, i);
            switch (i_end - i) {
            case 3:
                tile_f32(3, a + i * lda, lda, b, p, c + i * ldc, ldc, ep, i);
                break;
            case 2:
                tile_f32(2, a + i * lda, lda, b, p, c + i * ldc, ldc, ep, i);
                break;
            case 1:
                tile_f32(1, a + i * lda, lda, b, p, c + i * ldc, ldc, ep, i);
                break;
            default:
                break;
            }
        }
    }
}
