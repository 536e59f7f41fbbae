/* distance_neon.c: one query against many vectors on NEON, and the top-k pre-filter.
 *
 * dot_s8: s8 x s8 products widen to int16 (smull, |p| <= 128 * 128) and pairwise-add into
 * int32 (sadalp): exact for the whole int8 range.  With dotprod (distance_neondot.c) one sdot
 * does 16 products into four int32 lanes.  l2sq_s8: differences widen to int16 (ssubl),
 * squares accumulate with smlal into int32.  Rows reached through an id list are prefetched
 * two ahead.
 */
#include "../ref/ref.h"
#include "arm.h"

#include <arm_neon.h>
#include <string.h>

#ifndef DR_DIST_DOTPROD
#define DR_DIST_DOTPROD 0
#endif

static inline const void *row_at(const void *base, size_t row_bytes, const uint32_t *ids, size_t i)
{
    return (const char *)base + (ids ? ids[i] : i) * row_bytes;
}

static inline void prefetch_rows(const void *base, size_t row_bytes, size_t used_bytes,
                                 const uint32_t *ids, size_t i, size_t n)
{
    if (ids && i + 2 < n) {
        const char *p = row_at(base, row_bytes, ids, i + 2);
        for (size_t off = 0; off < used_bytes; off += 64)
            __builtin_prefetch(p + off);
    }
}

#if DR_DIST_DOTPROD
void dr_dot_s8__neondot(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                        const uint32_t *ids, size_t n, int32_t *out)
#else
void dr_dot_s8__neon(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                     const uint32_t *ids, size_t n, int32_t *out)
#endif
{
    for (size_t i = 0; i < n; i++) {
        prefetch_rows(base, ld, dim, ids, i, n);
        const int8_t *v = row_at(base, ld, ids, i);
        int32x4_t acc = vdupq_n_s32(0);
        size_t d = 0;
        for (; d + 16 <= dim; d += 16) {
            int8x16_t qv = vld1q_s8(q + d), vv = vld1q_s8(v + d);
#if DR_DIST_DOTPROD
            acc = vdotq_s32(acc, qv, vv);
#else
            acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(qv), vget_low_s8(vv)));
            acc = vpadalq_s16(acc, vmull_high_s8(qv, vv));
#endif
        }
        int32_t sum = vaddvq_s32(acc);
        for (; d < dim; d++)
            sum += (int32_t)q[d] * (int32_t)v[d];
        out[i] = sum;
    }
}

#if !DR_DIST_DOTPROD
void dr_l2sq_s8__neon(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                      const uint32_t *ids, size_t n, int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        prefetch_rows(base, ld, dim, ids, i, n);
        const int8_t *v = row_at(base, ld, ids, i);
        int32x4_t acc = vdupq_n_s32(0);
        size_t d = 0;
        for (; d + 8 <= dim; d += 8) {
            int16x8_t diff = vsubl_s8(vld1_s8(q + d), vld1_s8(v + d));
            acc = vmlal_s16(acc, vget_low_s16(diff), vget_low_s16(diff));
            acc = vmlal_high_s16(acc, diff, diff);
        }
        int32_t sum = vaddvq_s32(acc);
        for (; d < dim; d++) {
            int32_t diff = (int32_t)q[d] - (int32_t)v[d];
            sum += diff * diff;
        }
        out[i] = sum;
    }
}

void dr_dot_f32__neon(size_t dim, const float *q, const float *base, size_t ld, const uint32_t *ids,
                      size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        prefetch_rows(base, ld * sizeof(float), dim * sizeof(float), ids, i, n);
        const float *v = row_at(base, ld * sizeof(float), ids, i);
        float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
        size_t d = 0;
        for (; d + 8 <= dim; d += 8) {
            acc0 = vfmaq_f32(acc0, vld1q_f32(q + d), vld1q_f32(v + d));
            acc1 = vfmaq_f32(acc1, vld1q_f32(q + d + 4), vld1q_f32(v + d + 4));
        }
        float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
        for (; d < dim; d++)
            sum += q[d] * v[d];
        out[i] = sum;
    }
}

void dr_l2sq_f32__neon(size_t dim, const float *q, const float *base, size_t ld,
                       const uint32_t *ids, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        prefetch_rows(base, ld * sizeof(float), dim * sizeof(float), ids, i, n);
        const float *v = row_at(base, ld * sizeof(float), ids, i);
        float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
        size_t d = 0;
        for (; d + 8 <= dim; d += 8) {
            float32x4_t e0 = vsubq_f32(vld1q_f32(q + d), vld1q_f32(v + d));
            float32x4_t e1 = vsubq_f32(vld1q_f32(q + d + 4), vld1q_f32(v + d + 4));
            acc0 = vfmaq_f32(acc0, e0, e0);
            acc1 = vfmaq_f32(acc1, e1, e1);
        }
        float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
        for (; d < dim; d++) {
            float e = q[d] - v[d];
            sum += e * e;
        }
        out[i] = sum;
    }
}

/* Same contract as topk_ref.c; 4 scores compared with the heap's worst at a time. */
size_t dr_topk_f32__neon(size_t n, const float *scores, size_t k, uint32_t *out_ids,
                         float *out_scores)
{
    struct dr_topk_heap heap = {.ids = out_ids, .scores = out_scores, .len = 0, .cap = k};
    size_t i = dr__topk_heap_fill(&heap, scores, n);
    if (k == 0)
        return 0;
    for (; i + 4 <= n; i += 4) {
        uint32x4_t pass = vcgtq_f32(vld1q_f32(scores + i), vdupq_n_f32(heap.scores[0]));
        if (vmaxvq_u32(pass) == 0) /* ordered compare: NaN lanes never pass */
            continue;
        for (size_t l = 0; l < 4; l++)
            dr__topk_heap_offer(&heap, scores[i + l], (uint32_t)(i + l));
    }
    dr__topk_heap_offer_range(&heap, scores, i, n);
    return dr__topk_heap_finish(&heap);
}
#endif
