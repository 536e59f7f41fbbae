/* gemm_s8_avx2.c: int8 x int8 matrix product, AVX2, 4x16 register tile, int32 or fp32 out.
 *
 * Preconditions (the int8 scheme of kernels.h): weights packed by dr_packed_s8_init, so
 * stored as u8 w + 64 in [0, 127]; activations any int8.  vpmaddubsw multiplies the u8
 * weights by the s8 activations with pair sums in int16 that cannot saturate
 * (127 * 128 * 2 = 32512), vpmaddwd with ones widens to int32, and 64 * sum(row of A)
 * removes the bias at the end: exact, bit-identical to the reference.
 *
 * Tile: 4 rows x 16 columns (8 ymm accumulators) over the whole k, so the epilogue runs once
 * on registers.  Each 4-byte group of a row is broadcast and meets one 64-byte packed group
 * (two ymm): per group 16 multiplies on the two vector-multiply ports and 8 adds elsewhere.
 * Blocking: 128 KiB blocks of A rows; row tiles sweep 256 KiB chunks of packed panels, so
 * output rows are written left to right.  Measurements disagree across shared hosts (runs
 * differ by up to 2x): on the 2-core development VM this order beat panel-at-a-time order
 * with 64 KiB blocks in two alternating runs (medians over 9 BERT shapes, M >= 128: 111 and
 * 95 GOPS against 87 and 80); on a 16-core Xeon VM panel-at-a-time with 32-64 KiB blocks
 * came out ahead (118-138 against 80).  DR_TUNE_A_BLOCK_BYTES and DR_TUNE_B_CHUNK_BYTES
 * (1 = one panel per chunk) rebuild either variant for measurement.
 */
#include "math_avx2.h"
#include "x86.h"

#include <string.h>

#define MR 4
#define NR DR_PACK_S8_NR
#ifndef DR_TUNE_A_BLOCK_BYTES /* build-time tuning knobs, for measuring other blockings */
#define A_BLOCK_BYTES (128 * 1024)
#else
#define A_BLOCK_BYTES DR_TUNE_A_BLOCK_BYTES
#endif
#define MAX_BLOCK_ROWS 256
#ifndef DR_TUNE_B_CHUNK_BYTES
#define B_CHUNK_BYTES (256 * 1024) /* packed weights per chunk: see the comment at the top */
#else
#define B_CHUNK_BYTES DR_TUNE_B_CHUNK_BYTES
#endif

static int32_t row_sum_s8(const int8_t *row, size_t k)
{
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    size_t kk = 0;
    for (; kk + 32 <= k; kk += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(row + kk));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v), ones16));
    }
    int32_t sum = dr__hsum_epi32_avx2(acc);
    for (; kk < k; kk++)
        sum += row[kk];
    return sum;
}

/* acc[r][h] = sum over k of A[r][k] * (W[k][8h + lane] + 64), for r < mr. */
static inline __attribute__((always_inline)) void tile_accumulate(size_t mr, const int8_t *a,
                                                                  size_t lda, const uint8_t *panel,
                                                                  size_t k, __m256i acc[MR][2])
{
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_si256();

    size_t k_full = k & ~(size_t)3;
    for (size_t kk = 0; kk < k_full; kk += 4, panel += 64) {
        __m256i b0 = _mm256_load_si256((const __m256i *)panel);
        __m256i b1 = _mm256_load_si256((const __m256i *)(panel + 32));
        for (size_t r = 0; r < mr; r++) {
            int32_t word;
            memcpy(&word, a + r * lda + kk, 4);
            __m256i av = _mm256_set1_epi32(word);
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(b0, av), ones);
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(b1, av), ones);
            acc[r][0] = _mm256_add_epi32(acc[r][0], p0);
            acc[r][1] = _mm256_add_epi32(acc[r][1], p1);
        }
    }
    if (k_full < k) { /* k tail: activations past k read as 0, so padding adds nothing */
        __m256i b0 = _mm256_load_si256((const __m256i *)panel);
        __m256i b1 = _mm256_load_si256((const __m256i *)(panel + 32));
        for (size_t r = 0; r < mr; r++) {
            int32_t word = 0;
            memcpy(&word, a + r * lda + k_full, k - k_full);
            __m256i av = _mm256_set1_epi32(word);
            acc[r][0] =
                _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(b0, av), ones));
            acc[r][1] =
                _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(b1, av), ones));
        }
    }
}

/* The k loop in its own function per row count, so the epilogue's registers never crowd
 * the accumulators (inlined together, the fp32 path spilled and ran ~40% slower). */
#define DEFINE_ACCUMULATE(R)                                                                       \
    static __attribute__((noinline)) void accumulate_##R(                                          \
        const int8_t *a, size_t lda, const uint8_t *panel, size_t k, __m256i acc[MR][2])           \
    {                                                                                              \
        __m256i local[MR][2]; /* address never escapes: stays in registers */                      \
        tile_accumulate(R, a, lda, panel, k, local);                                               \
        for (size_t r = 0; r < R; r++) {                                                           \
            acc[r][0] = local[r][0];                                                               \
            acc[r][1] = local[r][1];                                                               \
        }                                                                                          \
    }
DEFINE_ACCUMULATE(1)
DEFINE_ACCUMULATE(2)
DEFINE_ACCUMULATE(3)
DEFINE_ACCUMULATE(4)

static inline __attribute__((always_inline)) void accumulate(size_t mr, const int8_t *a, size_t lda,
                                                             const uint8_t *panel, size_t k,
                                                             __m256i acc[MR][2])
{
    if (mr == 4)
        accumulate_4(a, lda, panel, k, acc);
    else if (mr == 3)
        accumulate_3(a, lda, panel, k, acc);
    else if (mr == 2)
        accumulate_2(a, lda, panel, k, acc);
    else
        accumulate_1(a, lda, panel, k, acc);
}

/* The fp32 epilogue for 8 columns: act(acc * a_scale * w_scale + bias) (+ old c). */
static inline __m256 epilogue8(__m256i acc, __m256 a_scale, const float *w_scale, const float *bias,
                               const struct dr_gemm_epilogue *ep, const float *c_old)
{
    __m256 v = _mm256_cvtepi32_ps(acc);
    __m256 s = _mm256_mul_ps(a_scale, _mm256_loadu_ps(w_scale));
    v = bias ? _mm256_fmadd_ps(v, s, _mm256_loadu_ps(bias)) : _mm256_mul_ps(v, s);
    if (ep->act == DR_ACT_GELU)
        v = dr__gelu_avx2(v);
    if (ep->accumulate)
        v = _mm256_add_ps(v, _mm256_loadu_ps(c_old));
    return v;
}

/* One 4x16 (or mr x 16) tile: accumulate, remove the bias, write int32 (ep == NULL) or run
 * the fp32 epilogue.  The last panel may hold fewer than 16 real columns: scales, bias and
 * old outputs then go through padded copies so every vector access stays in bounds. */
static inline __attribute__((always_inline)) void
tile(size_t mr, const int8_t *a, size_t lda, const struct dr_packed_s8 *b, size_t panel_idx,
     const int32_t *row_sums, void *c, size_t ldc, const struct dr_gemm_epilogue *ep, size_t row0)
{
    __m256i acc[MR][2];
    accumulate(mr, a, lda, b->data + panel_idx * b->k_padded * NR, b->k, acc);
    size_t j0 = panel_idx * NR;
    size_t nr = b->n - j0 < NR ? b->n - j0 : NR;

    float w_scale_pad[NR] = {0}, bias_pad[NR] = {0};
    const float *w_scale = NULL, *bias = NULL;
    if (ep) {
        w_scale = ep->w_scale + j0;
        bias = ep->bias ? ep->bias + j0 : NULL;
        if (nr < NR) {
            memcpy(w_scale_pad, w_scale, nr * sizeof(float));
            w_scale = w_scale_pad;
            if (bias) {
                memcpy(bias_pad, bias, nr * sizeof(float));
                bias = bias_pad;
            }
        }
    }
    for (size_t r = 0; r < mr; r++) {
        __m256i bias_fix = _mm256_set1_epi32(DR_PACK_S8_BIAS * row_sums[r]);
        __m256i v0 = _mm256_sub_epi32(acc[r][0], bias_fix);
        __m256i v1 = _mm256_sub_epi32(acc[r][1], bias_fix);
        union {
            int32_t i[NR];
            float f[NR];
        } out_tmp;
        char *out = (char *)c + ((r * ldc) + j0) * 4; /* int32 and float are both 4 bytes */
        char *dst = nr == NR ? out : (char *)&out_tmp;
        if (!ep) {
            _mm256_storeu_si256((__m256i *)dst, v0);
            _mm256_storeu_si256((__m256i *)(dst + 32), v1);
        } else {
            float old_pad[NR] = {0};
            const float *old = (const float *)out;
            if (nr < NR) {
                if (ep->accumulate)
                    memcpy(old_pad, out, nr * sizeof(float));
                old = old_pad;
            }
            __m256 a_scale = _mm256_set1_ps(ep->a_scale[row0 + r]);
            _mm256_storeu_ps((float *)dst, epilogue8(v0, a_scale, w_scale, bias, ep, old));
            _mm256_storeu_ps((float *)(dst + 32), epilogue8(v1, a_scale, w_scale + 8,
                                                            bias ? bias + 8 : NULL, ep, old + 8));
        }
        if (nr < NR)
            memcpy(out, &out_tmp, nr * 4);
    }
}

static inline __attribute__((always_inline)) void gemm(size_t m, const int8_t *a, size_t lda,
                                                       const struct dr_packed_s8 *b, void *c,
                                                       size_t ldc,
                                                       const struct dr_gemm_epilogue *ep)
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
        /* Row tiles sweep a chunk of panels before the next chunk (B_CHUNK_BYTES; with one
         * panel per chunk this is panel-outer order, the measured best for AVX2). */
        for (size_t p0 = 0; p0 < n_panels; p0 += panels_per_chunk) {
            size_t p_end = p0 + panels_per_chunk < n_panels ? p0 + panels_per_chunk : n_panels;
            size_t i = i0;
            for (; i + MR <= i_end; i += MR)
                for (size_t p = p0; p < p_end; p++)
                    tile(MR, a + i * lda, lda, b, p, row_sums + (i - i0), (char *)c + i * ldc * 4,
                         ldc, ep, i);
            size_t rest = i_end - i;
            const int32_t *rs = row_sums + (i - i0);
            char *ci = (char *)c + i * ldc * 4;
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

void dr_gemm_s8s8s32__avx2(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                           int32_t *c, size_t ldc)
{
    gemm(m, a, lda, b, c, ldc, NULL);
}

void dr_gemm_s8s8f32__avx2(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                           float *c, size_t ldc, const struct dr_gemm_epilogue *ep)
{
    gemm(m, a, lda, b, c, ldc, ep);
}
