/* distance_avx512.c: one query against many vectors on AVX-512, and the top-k pre-filter.
 *
 * dot_s8: AVX-512 has no vpsignb, so q's signs move onto the row with a masked subtract
 * (v -> -v where q < 0), then |q| (u8) x signed row.  Without VNNI: vpmaddubsw + vpmaddwd;
 * values in [-127, 127] keep the int16 pair sums exact (127 * 127 * 2).  With VNNI the same
 * operands go through vpdpbusd (distance_avx512vnni.c).  l2sq_s8 widens to int16 and takes
 * the whole int8 range.  Rows reached through an id list are prefetched two ahead.
 */
#include "../ref/ref.h"
#include "math_avx512.h"
#include "x86.h"

#ifndef DR_DIST_VNNI
#define DR_DIST_VNNI 0
#endif

static inline __mmask64 tail_mask64(size_t n)
{
    return n >= 64 ? ~(__mmask64)0 : (__mmask64)((1ULL << n) - 1);
}

static inline const char *row_at(const void *base, size_t row_bytes, const uint32_t *ids, size_t i)
{
    return (const char *)base + (ids ? ids[i] : i) * row_bytes;
}

static inline void prefetch_rows(const void *base, size_t row_bytes, size_t used_bytes,
                                 const uint32_t *ids, size_t i, size_t n)
{
    if (ids && i + 2 < n) {
        const char *p = row_at(base, row_bytes, ids, i + 2);
        for (size_t off = 0; off < used_bytes; off += 64)
            _mm_prefetch(p + off, _MM_HINT_T0);
    }
}

#if DR_DIST_VNNI
void dr_dot_s8__avx512vnni(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                           const uint32_t *ids, size_t n, int32_t *out)
#else
void dr_dot_s8__avx512(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                       const uint32_t *ids, size_t n, int32_t *out)
#endif
{
    for (size_t i = 0; i < n; i++) {
        prefetch_rows(base, ld, dim, ids, i, n);
        const int8_t *v = (const int8_t *)row_at(base, ld, ids, i);
        __m512i acc = _mm512_setzero_si512();
        for (size_t d = 0; d < dim; d += 64) {
            __mmask64 mask = tail_mask64(dim - d);
            __m512i qv = _mm512_maskz_loadu_epi8(mask, q + d);
            __m512i vv = _mm512_maskz_loadu_epi8(mask, v + d);
            __mmask64 neg = _mm512_movepi8_mask(qv);
            vv = _mm512_mask_sub_epi8(vv, neg, _mm512_setzero_si512(), vv);
#if DR_DIST_VNNI
            acc = _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(qv), vv);
#else
            __m512i pairs = _mm512_maddubs_epi16(_mm512_abs_epi8(qv), vv);
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
#endif
        }
        out[i] = _mm512_reduce_add_epi32(acc);
    }
}

#if !DR_DIST_VNNI
void dr_l2sq_s8__avx512(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                        const uint32_t *ids, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        prefetch_rows(base, ld, dim, ids, i, n);
        const int8_t *v = (const int8_t *)row_at(base, ld, ids, i);
        __m512i acc = _mm512_setzero_si512();
        for (size_t d = 0; d < dim; d += 32) {
            __mmask32 mask = (__mmask32)tail_mask64(dim - d > 32 ? 32 : dim - d);
            __m512i qv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, q + d));
            __m512i vv = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, v + d));
            __m512i diff = _mm512_sub_epi16(qv, vv);
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(diff, diff));
        }
        out[i] = _mm512_reduce_add_epi32(acc);
    }
}

void dr_dot_f32__avx512(size_t dim, const float *q, const float *base, size_t ld,
                        const uint32_t *ids, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        prefetch_rows(base, ld * sizeof(float), dim * sizeof(float), ids, i, n);
        const float *v = (const float *)row_at(base, ld * sizeof(float), ids, i);
        __m512 acc = _mm512_setzero_ps();
        for (size_t d = 0; d < dim; d += 16) {
            __mmask16 mask = dr__tail_mask16(dim - d);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, q + d),
                                  _mm512_maskz_loadu_ps(mask, v + d), acc);
        }
        out[i] = _mm512_reduce_add_ps(acc);
    }
}

void dr_l2sq_f32__avx512(size_t dim, const float *q, const float *base, size_t ld,
                         const uint32_t *ids, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        prefetch_rows(base, ld * sizeof(float), dim * sizeof(float), ids, i, n);
        const float *v = (const float *)row_at(base, ld * sizeof(float), ids, i);
        __m512 acc = _mm512_setzero_ps();
        for (size_t d = 0; d < dim; d += 16) {
            __mmask16 mask = dr__tail_mask16(dim - d);
            __m512 e = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask, q + d),
                                     _mm512_maskz_loadu_ps(mask, v + d));
            acc = _mm512_fmadd_ps(e, e, acc);
        }
        out[i] = _mm512_reduce_add_ps(acc);
    }
}

/* Same contract as topk_ref.c; 16 scores compared with the heap's worst at a time. */
size_t dr_topk_f32__avx512(size_t n, const float *scores, size_t k, uint32_t *out_ids,
                           float *out_scores)
{
    struct dr_topk_heap heap = {.ids = out_ids, .scores = out_scores, .len = 0, .cap = k};
    size_t i = dr__topk_heap_fill(&heap, scores, n);
    if (k == 0)
        return 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(scores + i);
        unsigned mask = _mm512_cmp_ps_mask(v, _mm512_set1_ps(heap.scores[0]), _CMP_GT_OQ);
        while (mask) {
            unsigned lane = (unsigned)__builtin_ctz(mask);
            mask &= mask - 1;
            dr__topk_heap_offer(&heap, scores[i + lane], (uint32_t)(i + lane));
        }
    }
    dr__topk_heap_offer_range(&heap, scores, i, n);
    return dr__topk_heap_finish(&heap);
}
#endif
