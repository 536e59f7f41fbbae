/* topk_avx2.c: top-k with a vector pre-filter in front of the reference heap.
 * Once the heap is full, only a score strictly above the current worst can enter (equal
 * scores arrive with higher indices, which rank lower), so 8 scores are compared at a time
 * and only lanes that pass reach the heap.  Same output as __ref, element for element. */
#include "../ref/ref.h"
#include "x86.h"

#include <immintrin.h>

size_t dr_topk_f32__avx2(size_t n, const float *scores, size_t k, uint32_t *out_ids,
                         float *out_scores)
{
    struct dr_topk_heap heap = {.ids = out_ids, .scores = out_scores, .len = 0, .cap = k};
    size_t i = dr__topk_heap_fill(&heap, scores, n);
    if (k == 0)
        return 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(scores + i);
        /* Ordered compare: NaN lanes never pass. */
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_set1_ps(heap.scores[0]), _CMP_GT_OQ));
        while (mask) {
            int lane = __builtin_ctz((unsigned)mask);
            mask &= mask - 1;
            dr__topk_heap_offer(&heap, scores[i + (size_t)lane], (uint32_t)(i + (size_t)lane));
        }
    }
    dr__topk_heap_offer_range(&heap, scores, i, n);
    return dr__topk_heap_finish(&heap);
}
