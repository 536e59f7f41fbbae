/* gemm_s8_avx512.c: int8 x int8 matrix product on AVX-512, 8x32 register tile.
 *
 * Same scheme and packed bytes as the AVX2 kernel (kernels.h): weights stored as u8 w + 64,
 * activations s8, bias removed with 64 * row sum.  One 64-byte packed group (16 columns x 4 k)
 * is exactly one zmm, so a tile of 8 rows x 2 panels holds 16 zmm accumulators and each
 * broadcast 4-byte group of a row meets two zmm of weights.
 *   DR_GEMM_S8_VNNI = 1 (gemm_s8_avx512vnni.c): vpdpbusd multiplies u8 x s8 and adds four
 *   products into int32 in one instruction: no int16 stage, no saturation to avoid.
 *   otherwise: vpmaddubsw + vpmaddwd(ones) + vpaddd, exact for the same reason as on AVX2
 *   (7-bit unsigned weights: pair sums <= 127 * 128 * 2).
 * Tails: columns past n are written through __mmask16 stores; k past k reads 0 activations.
 * One row (m == 1, a recurrent LSTM step at batch 1): the 8x32 tile would keep only two
 * accumulators busy, each a chain of dependent vpdpbusd (latency ~5 cycles), so the row runs
 * 8 panels at a time instead (8 chains, one broadcast per 8 weight loads): the same sums and
 * epilogue, bit for bit, about twice as fast on the LSTM's 1024 x 256 (see docs/models.md).
 * With the one-row layout (kernels.h) those 8 panels are one contiguous stream: another 1.5x
 * there, the weights coming from L2 at about 44 instead of 29 bytes per cycle (Zen 5).
 * Blocking: 24 KiB of A rows, row tiles sweeping 16 KiB chunks of panels, so both stay in a
 * 48 KiB L1 together.  Measured (VNNI, AMD Zen 5, BERT-mini and BERT-base shapes at M = 128
 * and 1024, medians of 3) against 32 + 32 KiB (the earlier choice: BERT-base ffn_up at
 * M = 1024 fell to 670 GOPS as the two evicted each other), 16 + 16, 16 + 32, 64 + 16 and an
 * extra 256 KiB - 1 MiB L2 level of panel chunks (no gain): the best or within 3% of it on
 * every shape, 870-935 GOPS.
 */
#include "math_avx512.h"
#include "x86.h"

#include <string.h>

#ifndef DR_GEMM_S8_VNNI
#define DR_GEMM_S8_VNNI      0
#define GEMM_S8_SUFFIX(name) name##__avx512
#else
#define GEMM_S8_SUFFIX(name) name##__avx512vnni
#endif

/* A 4-byte group of an activation row: any alignment, may alias the int8 row. */
typedef int32_t dr_unaligned_i32 __attribute__((aligned(1), may_alias));

#define MR 8
#define NR DR_PACK_S8_NR
#ifndef DR_TUNE_A_BLOCK_BYTES /* build-time tuning knobs, for measuring other blockings */
#define A_BLOCK_BYTES (24 * 1024)
#else
#define A_BLOCK_BYTES DR_TUNE_A_BLOCK_BYTES
#endif
#define MAX_BLOCK_ROWS 512
#ifndef DR_TUNE_B_CHUNK_BYTES
#define B_CHUNK_BYTES (16 * 1024) /* packed weights per chunk: see the comment at the top */
#else
#define B_CHUNK_BYTES DR_TUNE_B_CHUNK_BYTES
#endif

static inline __m512i madd_u8s8(__m512i acc, __m512i w_u8, __m512i a_s8)
{
#if DR_GEMM_S8_VNNI
    /* Not _mm512_dpbusd_epi32: GCC 12 copies every accumulator of the tile to a fresh
     * register and back around each of those (about 34 extra moves and 2 stack spills per
     * 16 vpdpbusd of the 8x32 tile: 65% of the VNNI peak instead of 88-94%).  The asm ties
     * the accumulator to its register. */
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w_u8), "v"(a_s8));
    return acc;
#else
    __m512i pairs = _mm512_maddubs_epi16(w_u8, a_s8);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
#endif
}

static int32_t row_sum_s8(const int8_t *row, size_t k)
{
    __m512i acc = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
    size_t kk = 0;
    for (; kk + 64 <= k; kk += 64)
        acc = madd_u8s8(acc, ones, _mm512_loadu_si512(row + kk));
    if (kk < k) {
        __mmask64 tail = (__mmask64)(~0ULL >> (64 - (k - kk)));
        acc = madd_u8s8(acc, ones, _mm512_maskz_loadu_epi8(tail, row + kk));
    }
    return _mm512_reduce_add_epi32(acc);
}

/* One column panel's epilogue operands; columns past n are masked off. */
struct panel_out {
    size_t j0;
    __mmask16 mask;
    __m512 w_scale, bias;
};

static inline __attribute__((always_inline)) struct panel_out
panel_out_load(const struct dr_packed_s8 *b, size_t panel_idx, const struct dr_gemm_epilogue *ep)
{
    struct panel_out po = {.j0 = panel_idx * NR};
    po.mask = dr__tail_mask16(b->n - po.j0 < NR ? b->n - po.j0 : NR);
    po.w_scale = po.bias = _mm512_setzero_ps();
    if (ep) {
        po.w_scale = _mm512_maskz_loadu_ps(po.mask, ep->w_scale + po.j0);
        if (ep->bias)
            po.bias = _mm512_maskz_loadu_ps(po.mask, ep->bias + po.j0);
    }
    return po;
}

/* Row `row` of C (at c_row) in panel po: remove the weight bias, then store int32 (ep NULL)
 * or run the fp32 epilogue. */
static inline __attribute__((always_inline)) void store_row(__m512i acc, int32_t row_sum,
                                                            const struct panel_out *po, void *c_row,
                                                            const struct dr_gemm_epilogue *ep,
                                                            size_t row)
{
    __m512i v = _mm512_sub_epi32(acc, _mm512_set1_epi32(DR_PACK_S8_BIAS * row_sum));
    if (!ep) {
        _mm512_mask_storeu_epi32((int32_t *)c_row + po->j0, po->mask, v);
        return;
    }
    float *out = (float *)c_row + po->j0;
    __m512 s = _mm512_mul_ps(_mm512_set1_ps(ep->a_scale[row]), po->w_scale);
    __m512 y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), s, po->bias);
    if (ep->act == DR_ACT_GELU)
        y = dr__gelu_avx512(y);
    if (ep->accumulate)
        y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(po->mask, out));
    _mm512_mask_storeu_ps(out, po->mask, y);
}

static inline __attribute__((always_inline)) void
tile(size_t mr, size_t np, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
     size_t panel_idx, const int32_t *row_sums, void *c, size_t ldc,
     const struct dr_gemm_epilogue *ep, size_t row0)
{
    __m512i acc[MR][2];
    for (size_t r = 0; r < MR; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    const uint8_t *p0 = b->data + panel_idx * b->k_padded * NR;
    const uint8_t *p1 = p0 + b->k_padded * NR;
    size_t k = b->k, k_full = k & ~(size_t)3;
    for (size_t kk = 0; kk < k_full; kk += 4, p0 += 64, p1 += 64) {
        __m512i b0 = _mm512_load_si512(p0);
        __m512i b1 = np > 1 ? _mm512_load_si512(p1) : b0;
        for (size_t r = 0; r < mr; r++) {
            /* Broadcast straight from memory (a load-port op); through a general register
             * it would take the port vpdpbusd needs. */
            __m512i av = _mm512_set1_epi32(*(const dr_unaligned_i32 *)(a + r * lda + kk));
            acc[r][0] = madd_u8s8(acc[r][0], b0, av);
            if (np > 1)
                acc[r][1] = madd_u8s8(acc[r][1], b1, av);
        }
    }
    if (k_full < k) {
        __m512i b0 = _mm512_load_si512(p0);
        __m512i b1 = np > 1 ? _mm512_load_si512(p1) : b0;
        for (size_t r = 0; r < mr; r++) {
            int32_t word = 0;
            memcpy(&word, a + r * lda + k_full, k - k_full);
            __m512i av = _mm512_set1_epi32(word);
            acc[r][0] = madd_u8s8(acc[r][0], b0, av);
            if (np > 1)
                acc[r][1] = madd_u8s8(acc[r][1], b1, av);
        }
    }

    for (size_t h = 0; h < np; h++) {
        struct panel_out po = panel_out_load(b, panel_idx + h, ep);
        for (size_t r = 0; r < mr; r++)
            store_row(acc[r][h], row_sums[r], &po, (char *)c + r * ldc * 4, ep, row0 + r);
    }
}

/* m == 1: np panels from panel_idx, one accumulator each (see the comment at the top).  Panel
 * h's k-group g is at base + h * panel_stride + g * k_step: the panel layout (stride
 * 16 * k_padded, step 64) or the one-row layout (stride 64, step np * 64, kernels.h). */
#define ROW_PANELS DR_PACK_S8_ROW_PANELS
static inline __attribute__((always_inline)) void
row_tile(size_t np, const int8_t *a, const uint8_t *base, size_t panel_stride, size_t k_step,
         const struct dr_packed_s8 *b, size_t panel_idx, int32_t row_sum, void *c,
         const struct dr_gemm_epilogue *ep)
{
    __m512i acc[ROW_PANELS];
    for (size_t h = 0; h < np; h++)
        acc[h] = _mm512_setzero_si512();
    const uint8_t *p = base;
    size_t k = b->k, k_full = k & ~(size_t)3;
    for (size_t kk = 0; kk < k_full; kk += 4, p += k_step) {
        __m512i av = _mm512_set1_epi32(*(const dr_unaligned_i32 *)(a + kk));
        for (size_t h = 0; h < np; h++)
            acc[h] = madd_u8s8(acc[h], _mm512_load_si512(p + h * panel_stride), av);
    }
    if (k_full < k) {
        int32_t word = 0;
        memcpy(&word, a + k_full, k - k_full);
        __m512i av = _mm512_set1_epi32(word);
        for (size_t h = 0; h < np; h++)
            acc[h] = madd_u8s8(acc[h], _mm512_load_si512(p + h * panel_stride), av);
    }
    for (size_t h = 0; h < np; h++) {
        struct panel_out po = panel_out_load(b, panel_idx + h, ep);
        store_row(acc[h], row_sum, &po, c, ep, 0);
    }
}

/* The one-row layout: each group of up to 8 panels is one contiguous stream.  Backward
 * (row_backward) visits the groups last to first, for a caller that alternates: a step then
 * starts on the 32 KiB the previous one ended on, still in L1. */
static void gemv_row_layout(const int8_t *a, const struct dr_packed_s8 *b, int32_t row_sum, void *c,
                            const struct dr_gemm_epilogue *ep)
{
    size_t n_panels = b->n_padded / NR, panel_bytes = b->k_padded * NR;
    size_t n_groups = (n_panels + ROW_PANELS - 1) / ROW_PANELS;
    for (size_t i = 0; i < n_groups; i++) {
        size_t p = (b->row_backward ? n_groups - 1 - i : i) * ROW_PANELS;
        size_t gp = n_panels - p < ROW_PANELS ? n_panels - p : ROW_PANELS;
        const uint8_t *base = b->row_data + p * panel_bytes;
        switch (gp) {
#define ROW_GROUP(np)                                                                              \
    case np:                                                                                       \
        row_tile(np, a, base, 64, np * 64, b, p, row_sum, c, ep);                                  \
        break;
            ROW_GROUP(8)
            ROW_GROUP(7)
            ROW_GROUP(6)
            ROW_GROUP(5)
            ROW_GROUP(4)
            ROW_GROUP(3)
            ROW_GROUP(2)
            ROW_GROUP(1)
#undef ROW_GROUP
        default:
            break;
        }
    }
}

static void gemv(const int8_t *a, const struct dr_packed_s8 *b, void *c,
                 const struct dr_gemm_epilogue *ep)
{
    int32_t row_sum = row_sum_s8(a, b->k);
    if (b->row_data) {
        gemv_row_layout(a, b, row_sum, c, ep);
        return;
    }
    size_t n_panels = b->n_padded / NR, p = 0, stride = b->k_padded * NR;
    for (; p + ROW_PANELS <= n_panels; p += ROW_PANELS)
        row_tile(ROW_PANELS, a, b->data + p * stride, stride, 64, b, p, row_sum, c, ep);
    if (p + 4 <= n_panels) {
        row_tile(4, a, b->data + p * stride, stride, 64, b, p, row_sum, c, ep);
        p += 4;
    }
    if (p + 2 <= n_panels) {
        row_tile(2, a, b->data + p * stride, stride, 64, b, p, row_sum, c, ep);
        p += 2;
    }
    if (p < n_panels)
        row_tile(1, a, b->data + p * stride, stride, 64, b, p, row_sum, c, ep);
}

/* One row tile of mr rows across panels [p0, p_end): pairs of panels, then a last single. */
static inline __attribute__((always_inline)) void
panel_sweep(size_t mr, size_t p0, size_t p_end, const int8_t *a, size_t lda,
            const struct dr_packed_s8 *b, const int32_t *row_sums, void *c, size_t ldc,
            const struct dr_gemm_epilogue *ep, size_t row0)
{
    size_t p = p0;
    for (; p + 2 <= p_end; p += 2)
        tile(mr, 2, a, lda, b, p, row_sums, c, ldc, ep, row0);
    if (p < p_end)
        tile(mr, 1, a, lda, b, p, row_sums, c, ldc, ep, row0);
}

static void gemm(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b, void *c,
                 size_t ldc, const struct dr_gemm_epilogue *ep)
{
    if (m == 1) {
        gemv(a, b, c, ep);
        return;
    }
    size_t n_panels = b->n_padded / NR;
    size_t block = A_BLOCK_BYTES / b->k / MR * MR;
    block = block < MR ? MR : block > MAX_BLOCK_ROWS ? MAX_BLOCK_ROWS : block;
    size_t panels_per_chunk = B_CHUNK_BYTES / (b->k_padded * NR) / 2 * 2;
    panels_per_chunk = panels_per_chunk ? panels_per_chunk : 2;
    int32_t row_sums[MAX_BLOCK_ROWS];
    for (size_t i0 = 0; i0 < m; i0 += block) {
        size_t i_end = i0 + block < m ? i0 + block : m;
        for (size_t i = i0; i < i_end; i++)
            row_sums[i - i0] = row_sum_s8(a + i * lda, b->k);
        /* Row tiles sweep a chunk of panels (B_CHUNK_BYTES) before the next chunk. */
        for (size_t p0 = 0; p0 < n_panels; p0 += panels_per_chunk) {
            size_t p_end = p0 + panels_per_chunk < n_panels ? p0 + panels_per_chunk : n_panels;
            size_t i = i0;
            for (; i + MR <= i_end; i += MR)
                panel_sweep(MR, p0, p_end, a + i * lda, lda, b, row_sums + (i - i0),
                            (char *)c + i * ldc * 4, ldc, ep, i);
            const int32_t *rs = row_sums + (i - i0);
            char *ci = (char *)c + i * ldc * 4;
            const int8_t *ai = a + i * lda;
            switch (i_end - i) {
            case 7:
                panel_sweep(7, p0, p_end, ai, lda, b, rs, ci, ldc, ep, i);
                break;
            case 6:
                panel_sweep(6, p0, p_end, ai, lda, b, rs, ci, ldc, ep, i);
                break;
            case 5:
                panel_sweep(5, p0, p_end, ai, lda, b, rs, ci, ldc, ep, i);
                break;
            case 4:
                panel_sweep(4, p0, p_end, ai, lda, b, rs, ci, ldc, ep, i);
                break;
            case 3:
                panel_sweep(3, p0, p_end, ai, lda, b, rs, ci, ldc, ep, i);
                break;
            case 2:
                panel_sweep(2, p0, p_end, ai, lda, b, rs, ci, ldc, ep, i);
                break;
            case 1:
                panel_sweep(1, p0, p_end, ai, lda, b, rs, ci, ldc, ep, i);
                break;
            default:
                break;
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
