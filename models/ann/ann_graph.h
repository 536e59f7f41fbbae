/* ann_graph.h: the HNSW walk shared by the build (over its growing arrays) and the search
 * (over the file's packed records).  Both see the graph through struct dr__ann_view: codes,
 * scales and biases at a byte stride, and a function that lists a node's links on a level.
 *
 * One visit of a node scores all its unvisited neighbours in one gathered dot_s8 call (the
 * rows are prefetched first), then offers them to the candidate and result heaps.  The
 * workspace (visited marks as epochs, heaps, buffers) belongs to one thread.
 */
#ifndef DR_ANN_GRAPH_H
#define DR_ANN_GRAPH_H

#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define DR_ANN_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#else
#define DR_ANN_PREFETCH(p) __builtin_prefetch(p)
#endif

struct dr__ann_view {
    const struct dr_kernels *kern;
    size_t dim;
    const int8_t *codes;  /* item i at codes + i * stride */
    size_t stride;        /* bytes between items (codes, scale and bias alike) */
    const uint8_t *scale; /* f32 per item at the same stride, or NULL (1) */
    const uint8_t *bias;  /* f32 per item, or NULL (0) */
    const float *f32;     /* build only: fp32 rows, dim apart, scored instead of the codes */
    /* Writes node's links on level into out (at most max_links) and returns their number. */
    size_t (*links)(const void *ctx, uint32_t node, uint32_t level, uint32_t *out);
    const void *ctx;
};

struct dr__ann_query {
    const int8_t *q8;
    const int8_t *q8_lo; /* the residual q - q8 * q_scale, quantised again (or NULL) */
    int32_t *dots_lo;    /* its products, max_links entries */
    const float *qf;     /* with view->f32 */
    float q_scale, q_scale_lo, q_bias;
};

struct dr__ann_pair {
    float key; /* heaps are min-heaps on key */
    uint32_t id;
};

/* Which items may be results (NULL filter: all). */
struct dr__ann_filter {
    const uint32_t *excluded_tag; /* == epoch: excluded */
    uint32_t epoch;
    const uint32_t *categories;   /* per item, or NULL */
    const uint64_t *allowed_bits; /* per category */
};

struct dr__ann_work {
    uint32_t *visited; /* n entries; == epoch: visited in this walk */
    uint32_t epoch;
    struct dr__ann_pair *cand, *res; /* capacity >= ef + max_links each */
    size_t n_cand, n_res;
    uint32_t *ids;   /* max_links */
    uint32_t *links; /* max_links */
    int32_t *dots;   /* max_links */
    size_t n_dist;   /* distance computations, for statistics */
};

static inline void dr__ann_heap_push(struct dr__ann_pair *h, size_t *n, float key, uint32_t id)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent].key <= key)
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i].key = key;
    h[i].id = id;
}

static inline void dr__ann_heap_pop(struct dr__ann_pair *h, size_t *n)
{
    struct dr__ann_pair last = h[--(*n)];
    size_t i = 0, len = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= len)
            break;
        if (c + 1 < len && h[c + 1].key < h[c].key)
            c++;
        if (last.key <= h[c].key)
            break;
        h[i] = h[c];
        i = c;
    }
    if (len > 0)
        h[i] = last;
}

static inline void dr__ann_epoch_next(struct dr__ann_work *w, size_t n)
{
    if (++w->epoch == 0) {
        memset(w->visited, 0, n * sizeof(uint32_t));
        w->epoch = 1;
    }
}

static inline float dr__ann_read_f32(const uint8_t *p)
{
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* sims[i] for the n items ids[i]. */
static inline void dr__ann_score(const struct dr__ann_view *v, const struct dr__ann_query *q,
                                 const uint32_t *ids, size_t n, int32_t *dots, float *sims)
{
    if (v->f32) {
        v->kern->dot_f32(v->dim, q->qf, v->f32, v->dim, ids, n, sims);
        for (size_t i = 0; i < n; i++) {
            float s = sims[i] + q->q_bias;
            if (v->bias)
                s += dr__ann_read_f32(v->bias + (size_t)ids[i] * v->stride);
            sims[i] = s;
        }
        return;
    }
    v->kern->dot_s8(v->dim, q->q8, v->codes, v->stride, ids, n, dots);
    if (q->q8_lo)
        v->kern->dot_s8(v->dim, q->q8_lo, v->codes, v->stride, ids, n, q->dots_lo);
    for (size_t i = 0; i < n; i++) {
        size_t off = (size_t)ids[i] * v->stride;
        float s = (float)dots[i] * q->q_scale;
        if (q->q8_lo)
            s += (float)q->dots_lo[i] * q->q_scale_lo;
        if (v->scale)
            s *= dr__ann_read_f32(v->scale + off);
        if (v->bias)
            s += dr__ann_read_f32(v->bias + off);
        sims[i] = s + q->q_bias;
    }
}

static inline float dr__ann_score1(const struct dr__ann_view *v, const struct dr__ann_query *q,
                                   uint32_t id)
{
    int32_t dot;
    float sim;
    dr__ann_score(v, q, &id, 1, &dot, &sim);
    return sim;
}

static inline void dr__ann_prefetch(const struct dr__ann_view *v, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const int8_t *p = v->codes + (size_t)ids[i] * v->stride;
        for (size_t off = 0; off < v->dim; off += 64)
            DR_ANN_PREFETCH(p + off);
    }
}

/* Greedy walk on one upper level from *ep (similarity *ep_sim) to a local best. */
static inline void dr__ann_greedy(const struct dr__ann_view *v, const struct dr__ann_query *q,
                                  uint32_t level, struct dr__ann_work *w, uint32_t *ep,
                                  float *ep_sim)
{
    float sims[256];
    for (;;) {
        size_t n_links = v->links(v->ctx, *ep, level, w->links);
        uint32_t best = *ep;
        for (size_t done = 0; done < n_links; done += 256) {
            size_t chunk = n_links - done < 256 ? n_links - done : 256;
            dr__ann_score(v, q, w->links + done, chunk, w->dots, sims);
            w->n_dist += chunk;
            for (size_t i = 0; i < chunk; i++) {
                if (sims[i] > *ep_sim) {
                    *ep_sim = sims[i];
                    best = w->links[done + i];
                }
            }
        }
        if (best == *ep)
            return;
        *ep = best;
    }
}

static inline int dr__ann_allowed(const struct dr__ann_filter *f, uint32_t id)
{
    if (!f)
        return 1;
    if (f->excluded_tag && f->excluded_tag[id] == f->epoch)
        return 0;
    if (f->categories) {
        uint32_t c = f->categories[id];
        return (int)((f->allowed_bits[c >> 6] >> (c & 63)) & 1u);
    }
    return 1;
}

/* The ef-bounded best-first search on one level from the entries already in w->cand (keys
 * -sim) and w->res (keys sim, allowed items only), as HNSW's SEARCH-LAYER.  The caller bumped
 * the epoch and marked the entries visited.  On return w->res holds at most ef items. */
static inline void dr__ann_search_level(const struct dr__ann_view *v, const struct dr__ann_query *q,
                                        uint32_t level, size_t ef, struct dr__ann_work *w,
                                        const struct dr__ann_filter *filter, float *sims)
{
    float lower = w->n_res >= ef ? w->res[0].key : -INFINITY;
    while (w->n_cand > 0) {
        struct dr__ann_pair c = w->cand[0];
        if (-c.key < lower && w->n_res >= ef)
            break;
        dr__ann_heap_pop(w->cand, &w->n_cand);
        size_t n_links = v->links(v->ctx, c.id, level, w->links);
        size_t n_new = 0;
        for (size_t i = 0; i < n_links; i++) {
            uint32_t id = w->links[i];
            if (w->visited[id] != w->epoch) {
                w->visited[id] = w->epoch;
                w->ids[n_new++] = id;
            }
        }
        if (n_new == 0)
            continue;
        dr__ann_prefetch(v, w->ids, n_new);
        dr__ann_score(v, q, w->ids, n_new, w->dots, sims);
        w->n_dist += n_new;
        for (size_t i = 0; i < n_new; i++) {
            float s = sims[i];
            if (w->n_res < ef || s > lower) {
                uint32_t id = w->ids[i];
                dr__ann_heap_push(w->cand, &w->n_cand, -s, id);
                if (dr__ann_allowed(filter, id)) {
                    dr__ann_heap_push(w->res, &w->n_res, s, id);
                    if (w->n_res > ef)
                        dr__ann_heap_pop(w->res, &w->n_res);
                    if (w->n_res >= ef)
                        lower = w->res[0].key;
                }
            }
        }
    }
}

#endif /* DR_ANN_GRAPH_H */
