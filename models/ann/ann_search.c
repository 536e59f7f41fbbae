/* ann_search.c: queries against a built or loaded index.
 *
 * A query is normalised (cosine), multiplied by the per-dimension scales (that mode), and
 * quantised per row to int8 once; then HNSW's greedy descent through the upper levels and
 * the ef-bounded walk on level 0 (ann_graph.h) over the file's interleaved records.
 * Excluded items (the user's seen items) and items outside the allowed categories still
 * guide the walk but never enter the results, so k results come back; if the walk ends with
 * fewer than k (nearly everything excluded), or the filter leaves fewer than exact_below * n
 * items, or the caller asks, the answer comes from an exact scan of the allowed items'
 * codes instead (dot_s8 over the records, top-k kernel).  The optional re-rank re-scores
 * the best candidates on the fp16/fp32 tier and keeps the k best.
 *
 * The index is read-only and shared; a searcher is one thread's workspace (visited and
 * exclusion marks as epochs, heaps, buffers), sized at creation so a query allocates nothing.
 */
#include "ann_graph.h"
#include "ann_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_EF        4096 /* ef, k and the re-rank depth are capped here (the graph walk) */
#define EXACT_N       1024 /* catalogues this small are always scanned */
#define SCAN_CHUNK    1024
#define DEFAULT_EF    64
#define DEFAULT_EXACT 0.02
#define MAX_LINKS     256

struct dr_ann_searcher {
    const struct dr_ann_index *ix;
    struct dr__ann_view view;
    struct dr__ann_work work;
    uint32_t *excluded_tag; /* n */
    uint32_t ex_epoch;
    uint64_t *allowed_bits; /* one bit per category */
    size_t n_words;
    float *qf;                 /* dim: the query as scored (normalised for cosine) */
    float *qs;                 /* dim: scaled for quantising */
    int8_t *q8;                /* dim */
    float *rr_row;             /* dim: one re-rank row in fp32 */
    float *sims;               /* MAX_LINKS + SCAN_CHUNK */
    int32_t *scan_dots;        /* SCAN_CHUNK */
    float *scan_scores;        /* n */
    uint32_t *scan_ids;        /* n */
    struct dr__ann_pair *best; /* MAX_EF */
    uint32_t *top_ids;         /* MAX_EF */
    float *top_scores;         /* MAX_EF */
};

static size_t file_links(const void *ctx, uint32_t node, uint32_t level, uint32_t *out)
{
    const struct dr_ann_index *ix = ctx;
    const struct dr_ann_header *h = &ix->hdr;
    const uint8_t *p;
    size_t cnt, max_cnt;
    if (level == 0) {
        const uint8_t *rec = ix->nodes + (size_t)node * h->node_stride;
        cnt = rec[h->off_count];
        p = rec + h->off_links;
        max_cnt = h->m0;
    } else {
        size_t lo = 0, hi = h->n_upper;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (ix->upper_index[mid].node < node)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo >= h->n_upper || ix->upper_index[lo].node != node)
            return 0;
        uint32_t first = ix->upper_index[lo].first;
        if (level > ix->upper_index[lo + 1].first - first)
            return 0;
        const uint8_t *rec = ix->upper_links + (size_t)(first + level - 1) * h->upper_stride;
        cnt = rec[0];
        p = rec + 1;
        max_cnt = h->m;
    }
    if (cnt > max_cnt)
        cnt = max_cnt; /* only an unverified, corrupt file gets here */
    size_t n_out = 0;
    for (size_t j = 0; j < cnt; j++) {
        uint32_t id = dr__ann_link_get(p, h->id_bits, j);
        if (id < h->n)
            out[n_out++] = id;
    }
    return n_out;
}

enum dr_status dr_ann_searcher_create(const struct dr_ann_index *ix, struct dr_ann_searcher **out)
{
    struct dr_ann_searcher *s = calloc(1, sizeof *s);
    if (!s)
        return DR_ERR_NOMEM;
    size_t n = ix->hdr.n, dim = ix->hdr.dim;
    s->ix = ix;
    s->view.kern = ix->kern;
    s->view.dim = dim;
    s->view.codes = (const int8_t *)ix->nodes;
    s->view.stride = ix->hdr.node_stride;
    s->view.scale = ix->hdr.off_scale != DR_ANN_NO_OFFSET ? ix->nodes + ix->hdr.off_scale : NULL;
    s->view.bias = ix->hdr.off_bias != DR_ANN_NO_OFFSET ? ix->nodes + ix->hdr.off_bias : NULL;
    s->view.f32 = NULL;
    s->view.links = file_links;
    s->view.ctx = ix;
    s->work.visited = calloc(n, sizeof(uint32_t));
    s->work.cand = malloc((n + 1) * sizeof(struct dr__ann_pair));
    s->work.res = malloc((MAX_EF + MAX_LINKS + 1) * sizeof(struct dr__ann_pair));
    s->work.ids = malloc(MAX_LINKS * sizeof(uint32_t));
    s->work.links = malloc(MAX_LINKS * sizeof(uint32_t));
    s->work.dots = malloc(MAX_LINKS * sizeof(int32_t));
    s->excluded_tag = calloc(n, sizeof(uint32_t));
    s->n_words = ((size_t)ix->hdr.n_categories + 63) / 64 + 1;
    s->allowed_bits = calloc(s->n_words, sizeof(uint64_t));
    s->qf = malloc(dim * sizeof(float));
    s->qs = malloc(dim * sizeof(float));
    s->q8 = malloc(dim);
    s->rr_row = malloc(dim * sizeof(float));
    s->sims = malloc((MAX_LINKS + SCAN_CHUNK) * sizeof(float));
    s->scan_dots = malloc(SCAN_CHUNK * sizeof(int32_t));
    s->scan_scores = malloc(n * sizeof(float));
    s->scan_ids = malloc(n * sizeof(uint32_t));
    s->best = malloc(MAX_EF * sizeof(struct dr__ann_pair));
    s->top_ids = malloc(MAX_EF * sizeof(uint32_t));
    s->top_scores = malloc(MAX_EF * sizeof(float));
    if (!s->work.visited || !s->work.cand || !s->work.res || !s->work.ids || !s->work.links ||
        !s->work.dots || !s->excluded_tag || !s->allowed_bits || !s->qf || !s->qs || !s->q8 ||
        !s->rr_row || !s->sims || !s->scan_dots || !s->scan_scores || !s->scan_ids || !s->best ||
        !s->top_ids || !s->top_scores) {
        dr_ann_searcher_destroy(s);
        return DR_ERR_NOMEM;
    }
    *out = s;
    return DR_OK;
}

void dr_ann_searcher_destroy(struct dr_ann_searcher *s)
{
    if (!s)
        return;
    free(s->work.visited);
    free(s->work.cand);
    free(s->work.res);
    free(s->work.ids);
    free(s->work.links);
    free(s->work.dots);
    free(s->excluded_tag);
    free(s->allowed_bits);
    free(s->qf);
    free(s->qs);
    free(s->q8);
    free(s->rr_row);
    free(s->sims);
    free(s->scan_dots);
    free(s->scan_scores);
    free(s->scan_ids);
    free(s->best);
    free(s->top_ids);
    free(s->top_scores);
    free(s);
}

/* f16 -> f32 for finite values (the build stores only finite ones): shift the exponent and
 * mantissa into place and rescale by 2^112, which also handles subnormals exactly. */
static void f16_row_to_f32(const uint16_t *h, size_t dim, float *out)
{
    for (size_t d = 0; d < dim; d++) {
        uint32_t bits = (uint32_t)(h[d] & 0x7fffu) << 13;
        float mag;
        memcpy(&mag, &bits, 4);
        mag *= 0x1p112f;
        out[d] = (h[d] & 0x8000u) ? -mag : mag;
    }
}

/* Re-rank key: larger is better (the dot product, or minus the squared distance). */
static float rerank_key(struct dr_ann_searcher *s, uint32_t id)
{
    const struct dr_ann_index *ix = s->ix;
    size_t dim = ix->hdr.dim;
    const float *row;
    if (ix->hdr.rerank_kind == DR_ANN_RERANK_F16) {
        f16_row_to_f32((const uint16_t *)ix->rerank + (size_t)id * dim, dim, s->rr_row);
        row = s->rr_row;
    } else {
        row = (const float *)ix->rerank + (size_t)id * dim;
    }
    float v;
    if (ix->hdr.metric == DR_ANN_METRIC_L2) {
        ix->kern->l2sq_f32(dim, s->qf, row, dim, NULL, 1, &v);
        return -v;
    }
    ix->kern->dot_f32(dim, s->qf, row, dim, NULL, 1, &v);
    return v;
}

static int cmp_pair_desc(const void *pa, const void *pb)
{
    const struct dr__ann_pair *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Exact scan over the allowed items (ids, or all when NULL) into s->best (n_best, sorted). */
static size_t exact_scan(struct dr_ann_searcher *s, const struct dr__ann_query *q,
                         const struct dr__ann_filter *filter, const uint32_t *ids, size_t n_ids,
                         size_t want)
{
    const struct dr_ann_index *ix = s->ix;
    size_t n = ids ? n_ids : ix->hdr.n;
    for (size_t done = 0; done < n; done += SCAN_CHUNK) {
        size_t chunk = n - done < SCAN_CHUNK ? n - done : SCAN_CHUNK;
        if (ids) {
            dr__ann_score(&s->view, q, ids + done, chunk, s->scan_dots, s->scan_scores + done);
        } else {
            for (size_t i = 0; i < chunk; i++)
                s->scan_ids[i] = (uint32_t)(done + i);
            dr__ann_score(&s->view, q, s->scan_ids, chunk, s->scan_dots, s->scan_scores + done);
        }
        for (size_t i = 0; i < chunk; i++) {
            uint32_t id = ids ? ids[done + i] : (uint32_t)(done + i);
            if (!dr__ann_allowed(filter, id))
                s->scan_scores[done + i] = NAN;
        }
    }
    size_t got = ix->kern->topk_f32(n, s->scan_scores, want, s->top_ids, s->top_scores);
    for (size_t i = 0; i < got; i++) {
        s->best[i].key = s->top_scores[i];
        s->best[i].id = ids ? ids[s->top_ids[i]] : s->top_ids[i];
    }
    return got;
}

enum dr_status dr_ann_search(struct dr_ann_searcher *s, const float *query, size_t k,
                             const struct dr_ann_query_opts *opts, uint32_t *out_ids,
                             float *out_scores, size_t *n_out)
{
    static const struct dr_ann_query_opts defaults = {0};
    const struct dr_ann_index *ix = s->ix;
    const struct dr_ann_header *h = &ix->hdr;
    size_t n = h->n, dim = h->dim;
    if (!opts)
        opts = &defaults;
    *n_out = 0;
    if (k == 0)
        return DR_OK;
    if (k > MAX_EF)
        return DR_ERR_INVALID_ARG;

    /* the query: as scored (qf), and as quantised (q8) */
    double norm2 = 0.0;
    for (size_t d = 0; d < dim; d++)
        norm2 += (double)query[d] * (double)query[d];
    if (!isfinite(norm2))
        return DR_ERR_INVALID_ARG;
    float inv =
        (h->metric == DR_ANN_METRIC_COSINE && norm2 > 0.0) ? (float)(1.0 / sqrt(norm2)) : 1.0f;
    for (size_t d = 0; d < dim; d++) {
        s->qf[d] = query[d] * inv;
        s->qs[d] = ix->dim_scales ? s->qf[d] * ix->dim_scales[d] : s->qf[d];
    }
    struct dr__ann_query q;
    q.q8 = s->q8;
    ix->kern->quantize_rows_s8(1, dim, s->qs, dim, s->q8, dim, &q.q_scale);
    q.qf = s->qf;
    q.q8_lo = NULL; /* a second, residual query byte was measured: +0.001 recall, not kept */
    q.dots_lo = NULL;
    q.q_scale_lo = 0.0f;
    q.q_bias = 0.0f;

    /* the filter */
    struct dr__ann_filter filter = {0};
    bool has_filter = opts->n_exclude > 0 || opts->categories;
    size_t n_allowed = n;
    if (opts->n_exclude > 0) {
        if (++s->ex_epoch == 0) {
            memset(s->excluded_tag, 0, n * sizeof(uint32_t));
            s->ex_epoch = 1;
        }
        for (size_t i = 0; i < opts->n_exclude; i++) {
            if (opts->exclude[i] >= n)
                return DR_ERR_INVALID_ARG;
            if (s->excluded_tag[opts->exclude[i]] != s->ex_epoch) {
                s->excluded_tag[opts->exclude[i]] = s->ex_epoch;
                n_allowed--; /* an upper bound on the allowed count is all the check needs */
            }
        }
        filter.excluded_tag = s->excluded_tag;
        filter.epoch = s->ex_epoch;
    }
    if (opts->categories) {
        if (!ix->categories)
            return DR_ERR_INVALID_ARG;
        memset(s->allowed_bits, 0, s->n_words * sizeof(uint64_t));
        size_t in_categories = 0;
        for (size_t i = 0; i < opts->n_categories; i++) {
            uint32_t c = opts->categories[i];
            if (c >= h->n_categories)
                return DR_ERR_INVALID_ARG;
            if (!((s->allowed_bits[c >> 6] >> (c & 63)) & 1u)) {
                s->allowed_bits[c >> 6] |= 1ull << (c & 63);
                in_categories += ix->category_counts[c];
            }
        }
        filter.categories = ix->categories;
        filter.allowed_bits = s->allowed_bits;
        if (in_categories < n_allowed)
            n_allowed = in_categories;
    }

    bool has_rerank = ix->rerank && opts->rerank > 0;
    size_t ef = opts->ef ? opts->ef : DEFAULT_EF;
    if (ef < k)
        ef = k;
    if (ef > MAX_EF)
        ef = MAX_EF;
    size_t want = has_rerank ? (opts->rerank > k ? opts->rerank : k) : k;
    if (want > ef)
        want = ef;
    double exact_below = opts->exact_below > 0.0 ? opts->exact_below : DEFAULT_EXACT;
    bool exact = opts->exact || n <= EXACT_N ||
                 (opts->categories && (double)n_allowed < exact_below * (double)n);

    size_t n_best = 0;
    if (!exact) {
        struct dr__ann_work *w = &s->work;
        uint32_t ep = h->entry;
        float ep_sim = dr__ann_score1(&s->view, &q, ep);
        for (uint32_t l = h->max_level; l > 0; l--)
            dr__ann_greedy(&s->view, &q, l, w, &ep, &ep_sim);
        dr__ann_epoch_next(w, n);
        w->n_cand = w->n_res = 0;
        w->visited[ep] = w->epoch;
        dr__ann_heap_push(w->cand, &w->n_cand, -ep_sim, ep);
        if (dr__ann_allowed(has_filter ? &filter : NULL, ep))
            dr__ann_heap_push(w->res, &w->n_res, ep_sim, ep);
        dr__ann_search_level(&s->view, &q, 0, ef, w, has_filter ? &filter : NULL, s->sims);
        if (w->n_res < k && w->n_res < n_allowed) {
            exact = true; /* the walk could not find k allowed items: scan */
        } else {
            /* drop the worst until `want` remain, then sort best first */
            while (w->n_res > want)
                dr__ann_heap_pop(w->res, &w->n_res);
            n_best = w->n_res;
            memcpy(s->best, w->res, n_best * sizeof(*s->best));
            qsort(s->best, n_best, sizeof(*s->best), cmp_pair_desc);
        }
    }
    if (exact) {
        const uint32_t *ids = NULL;
        size_t n_ids = 0;
        if (opts->categories) {
            for (size_t i = 0; i < n; i++) {
                if (dr__ann_allowed(&filter, (uint32_t)i))
                    s->scan_ids[n_ids++] = (uint32_t)i;
            }
            ids = s->scan_ids;
        }
        size_t want_exact = has_rerank ? (opts->rerank > k ? opts->rerank : k) : k;
        if (want_exact > MAX_EF)
            want_exact = MAX_EF;
        n_best = exact_scan(s, &q, has_filter ? &filter : NULL, ids, n_ids, want_exact);
    }

    if (has_rerank) {
        for (size_t i = 0; i < n_best; i++)
            s->best[i].key = rerank_key(s, s->best[i].id);
        qsort(s->best, n_best, sizeof(*s->best), cmp_pair_desc);
    }
    size_t n_ret = n_best < k ? n_best : k;
    for (size_t i = 0; i < n_ret; i++) {
        out_ids[i] = s->best[i].id;
        if (out_scores) {
            float key = s->best[i].key;
            if (h->metric == DR_ANN_METRIC_L2)
                out_scores[i] = has_rerank ? -key : (float)norm2 - 2.0f * key;
            else
                out_scores[i] = key;
        }
    }
    *n_out = n_ret;
    return DR_OK;
}

struct batch_job {
    const struct dr_ann_index *ix;
    size_t nq, k, ldq;
    const float *queries;
    const struct dr_ann_query_opts *opts;
    uint32_t *out_ids;
    float *out_scores;
    size_t *n_out;
    _Atomic size_t next;
    _Atomic int status; /* the first failure */
};

static void *batch_worker(void *arg)
{
    struct batch_job *job = arg;
    struct dr_ann_searcher *s = NULL;
    enum dr_status st = dr_ann_searcher_create(job->ix, &s);
    if (st != DR_OK) {
        int expected = DR_OK;
        atomic_compare_exchange_strong(&job->status, &expected, (int)st);
        return NULL;
    }
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (i >= job->nq)
            break;
        st = dr_ann_search(s, job->queries + i * job->ldq, job->k, job->opts,
                           job->out_ids + i * job->k,
                           job->out_scores ? job->out_scores + i * job->k : NULL, &job->n_out[i]);
        if (st != DR_OK) {
            int expected = DR_OK;
            atomic_compare_exchange_strong(&job->status, &expected, (int)st);
        }
    }
    dr_ann_searcher_destroy(s);
    return NULL;
}

enum dr_status dr_ann_search_batch(const struct dr_ann_index *index, size_t nq,
                                   const float *queries, size_t ldq, size_t k,
                                   const struct dr_ann_query_opts *opts, uint32_t n_threads,
                                   uint32_t *out_ids, float *out_scores, size_t *n_out)
{
    struct batch_job job = {.ix = index,
                            .nq = nq,
                            .k = k,
                            .ldq = ldq,
                            .queries = queries,
                            .opts = opts,
                            .out_ids = out_ids,
                            .out_scores = out_scores,
                            .n_out = n_out};
    atomic_init(&job.next, 0);
    atomic_init(&job.status, DR_OK);
    if (n_threads == 0) {
        long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = (uint32_t)(n_cpu > 0 ? n_cpu : 1);
    }
    if (n_threads > nq)
        n_threads = nq > 0 ? (uint32_t)nq : 1;
    if (n_threads > 64)
        n_threads = 64;
    pthread_t threads[64];
    uint32_t started = 0;
    for (uint32_t t = 1; t < n_threads; t++, started++) {
        if (pthread_create(&threads[started], NULL, batch_worker, &job) != 0)
            break;
    }
    batch_worker(&job); /* this thread works too, so the batch runs even if none started */
    for (uint32_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    return (enum dr_status)atomic_load(&job.status);
}
