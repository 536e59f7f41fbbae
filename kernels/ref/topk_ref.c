/* topk_ref.c: the k best scores with a bounded min-heap (root = the worst kept).
 * Order: higher score first, ties to the lower index, NaN never kept.  The output arrays
 * are the heap's storage, so the kernel needs no workspace. */
#include "ref.h"

#include <math.h>

static void swap_at(struct dr_topk_heap *h, size_t a, size_t b)
{
    uint32_t id = h->ids[a];
    float s = h->scores[a];
    h->ids[a] = h->ids[b];
    h->scores[a] = h->scores[b];
    h->ids[b] = id;
    h->scores[b] = s;
}

/* "Worse" ranks nearer the root. */
static int worse(const struct dr_topk_heap *h, size_t a, size_t b)
{
    return dr__topk_better(h->scores[b], h->ids[b], h->scores[a], h->ids[a]);
}

static void sift_down(struct dr_topk_heap *h, size_t i, size_t len)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < len && worse(h, l, w))
            w = l;
        if (r < len && worse(h, r, w))
            w = r;
        if (w == i)
            return;
        swap_at(h, i, w);
        i = w;
    }
}

void dr__topk_heap_offer(struct dr_topk_heap *h, float score, uint32_t id)
{
    if (isnan(score) || h->cap == 0)
        return;
    if (h->len < h->cap) {
        size_t i = h->len++;
        h->ids[i] = id;
        h->scores[i] = score;
        while (i > 0) {
            size_t parent = (i - 1) / 2;
            if (!worse(h, i, parent))
                break;
            swap_at(h, i, parent);
            i = parent;
        }
        return;
    }
    if (!dr__topk_better(score, id, h->scores[0], h->ids[0]))
        return;
    h->ids[0] = id;
    h->scores[0] = score;
    sift_down(h, 0, h->len);
}

size_t dr__topk_heap_finish(struct dr_topk_heap *h)
{
    /* Heap sort: repeatedly move the worst to the end, leaving best-first order. */
    for (size_t end = h->len; end > 1; end--) {
        swap_at(h, 0, end - 1);
        sift_down(h, 0, end - 1);
    }
    return h->len;
}

void dr__topk_heap_offer_range(struct dr_topk_heap *heap, const float *scores, size_t begin,
                               size_t end)
{
    for (size_t i = begin; i < end; i++)
        dr__topk_heap_offer(heap, scores[i], (uint32_t)i);
}

size_t dr__topk_heap_fill(struct dr_topk_heap *heap, const float *scores, size_t n)
{
    size_t i = 0;
    for (; i < n && heap->len < heap->cap; i++)
        dr__topk_heap_offer(heap, scores[i], (uint32_t)i);
    return i;
}

size_t dr_topk_f32__ref(size_t n, const float *scores, size_t k, uint32_t *out_ids,
                        float *out_scores)
{
    struct dr_topk_heap heap = {.ids = out_ids, .scores = out_scores, .len = 0, .cap = k};
    dr__topk_heap_offer_range(&heap, scores, 0, n);
    return dr__topk_heap_finish(&heap);
}
