/* ann.h: the approximate nearest-neighbour index over int8 item vectors (HNSW).
 *
 * An index is built once from a model's fp32 item vectors (dr_ann_build), saved next to the
 * model (dr_ann_save) and loaded read-only with mmap (dr_ann_load).  A loaded or built index
 * is immutable: any number of threads search it at once, each through its own
 * struct dr_ann_searcher (the per-thread workspace: visited marks, heaps, buffers).
 *
 * Scores: every metric is served by one int8 inner product per visited item,
 *   sim(q, x) = dot_s8(q8, x8) * q_scale * x_scale + x_bias
 * with x_bias = -|x|^2 / 2 for L2 (so ranking by sim is ranking by -|q - x|^2) and the
 * vectors normalised at build (and queries at search) for cosine.  Inner product on vectors
 * that are not unit length needs no transform: the graph is built from the fp32 vectors with
 * the inner product itself as the similarity (HNSW's neighbour heuristic included, as
 * hnswlib does); the extra-coordinate lift to L2 was measured and lost (docs/ann.md).
 * docs/ann.md gives the graph, the file format and the measurements.
 */
#ifndef DR_ANN_H
#define DR_ANN_H

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum dr_ann_metric {
    DR_ANN_METRIC_IP = 0, /* largest q.x first; returned scores are q.x */
    DR_ANN_METRIC_COSINE, /* largest cosine first; returned scores are cosines */
    DR_ANN_METRIC_L2,     /* smallest |q - x|^2 first; returned scores are |q - x|^2 */
};

/* How the int8 codes are scaled. */
enum dr_ann_scale {
    DR_ANN_SCALE_PER_VECTOR = 0, /* x8 = round(x * 127 / max|x|), one fp32 scale per item */
    DR_ANN_SCALE_PER_DIM, /* one scale per dimension, max over the items; no per-item scale */
};

/* The optional re-rank tier: the item vectors again, at higher precision, scanned only for the
 * best candidates of each query. */
enum dr_ann_rerank {
    DR_ANN_RERANK_NONE = 0,
    DR_ANN_RERANK_F16,
    DR_ANN_RERANK_F32,
};

const char *dr_ann_metric_name(enum dr_ann_metric metric);
bool dr_ann_metric_parse(const char *name, enum dr_ann_metric *out);

struct dr_ann_build_opts {
    enum dr_ann_metric metric;
    enum dr_ann_scale scale;
    enum dr_ann_rerank rerank;
    uint32_t m;               /* links per node on the upper levels and chosen at insertion (16) */
    uint32_t m0;              /* links per node on level 0, at most 255 (32) */
    uint32_t ef_construction; /* candidates kept while inserting (200) */
    uint32_t n_threads;       /* 0: one per online CPU.  The file does not depend on it. */
    uint64_t seed;            /* levels are drawn from it: same seed, same file */
    /* Optional category per item (n entries, each < n_categories), borrowed during the build
     * and copied into the index; NULL for none. */
    const uint32_t *categories;
    uint32_t n_categories;
    /* Optional progress report (done, total items), from the building thread; may be NULL. */
    void (*progress)(void *ctx, size_t done, size_t total);
    void *progress_ctx;
};

/* The defaults above: inner product, per-vector scales, no re-rank tier, M 16, M0 32,
 * efConstruction 200, all CPUs, seed 1. */
void dr_ann_build_opts_default(struct dr_ann_build_opts *opts);

struct dr_ann_index; /* opaque; defined in models/ann/ann_internal.h */

/* Builds an index over n vectors of dim floats (row stride ld >= dim), borrowed.
 * Item ids are row numbers.  Fails with DR_ERR_INVALID_ARG on a bad shape or option or a
 * non-finite value (err names it) and DR_ERR_NOMEM.  *out: returns owned (free with
 * dr_ann_destroy). */
enum dr_status dr_ann_build(const float *vectors, size_t n, size_t dim, size_t ld,
                            const struct dr_ann_build_opts *opts, struct dr_ann_index **out,
                            struct dr_error *err);

/* Writes the index file (format in docs/ann.md and ann_internal.h); DR_ERR_IO names the path. */
enum dr_status dr_ann_save(const struct dr_ann_index *index, const char *path,
                           struct dr_error *err);

struct dr_ann_load_opts {
    bool skip_verify; /* false: check the SHA-256 and every link before use */
};

/* Maps path read-only (MAP_SHARED, so processes share the pages too).  opts may be NULL.
 * DR_ERR_IO: cannot open or map; DR_ERR_FORMAT: not an index, another version, truncated,
 * inconsistent or corrupt (err says which field or section).  *out: returns owned (free with
 * dr_ann_destroy). */
enum dr_status dr_ann_load(const char *path, const struct dr_ann_load_opts *opts,
                           struct dr_ann_index **out, struct dr_error *err);

/* The same from a file image in memory (borrowed; must outlive the index). */
enum dr_status dr_ann_load_buffer(const void *data, size_t size_bytes,
                                  const struct dr_ann_load_opts *opts, struct dr_ann_index **out,
                                  struct dr_error *err);

void dr_ann_destroy(struct dr_ann_index *index); /* NULL is a no-op */

struct dr_ann_info {
    size_t n, dim;
    enum dr_ann_metric metric;
    enum dr_ann_scale scale;
    enum dr_ann_rerank rerank;
    uint32_t m, m0, ef_construction, id_bits, max_level, n_categories;
    size_t n_upper;      /* nodes above level 0 */
    size_t node_bytes;   /* one level-0 record: codes, scale, links */
    size_t file_bytes;   /* the whole file image */
    size_t rerank_bytes; /* of which the re-rank tier */
    double mean_degree0; /* level-0 links per node */
    uint8_t sha256[32];  /* the file's checksum */
};
void dr_ann_get_info(const struct dr_ann_index *index, struct dr_ann_info *info);

/* ---- search ------------------------------------------------------------------------------ */

struct dr_ann_searcher; /* one per thread; borrows its index */

/* *out: returns owned (free with dr_ann_searcher_destroy); the index must outlive it. */
enum dr_status dr_ann_searcher_create(const struct dr_ann_index *index,
                                      struct dr_ann_searcher **out);
void dr_ann_searcher_destroy(struct dr_ann_searcher *searcher); /* NULL is a no-op */

struct dr_ann_query_opts {
    size_t ef;     /* candidates kept at level 0 (raised to k when smaller); 0: 64 */
    size_t rerank; /* re-score the best this many candidates on the re-rank tier (0: off;
                      ignored without a tier) */
    /* Items never returned (the user's seen items), borrowed, any order, may repeat.  They
     * still guide the walk, and k results still come back when enough other items exist. */
    const uint32_t *exclude;
    size_t n_exclude;
    /* Only items whose category is listed (borrowed) may be returned; NULL: all.  When the
     * allowed items are fewer than exact_below * n the search is an exact scan of them. */
    const uint32_t *categories;
    size_t n_categories;
    double exact_below; /* 0: 0.02 */
    bool exact;         /* exact scan of every allowed item (int8 codes, then the re-rank) */
};

/* The k best items for one query of dim floats (borrowed), best first, into out_ids and
 * out_scores (k entries each, borrowed; out_scores may be NULL); *n_out = min(k, allowed
 * items).  opts may be NULL (defaults).  Returns DR_ERR_INVALID_ARG for a bad argument
 * (category or exclusion id out of range).  Allocates nothing. */
enum dr_status dr_ann_search(struct dr_ann_searcher *searcher, const float *query, size_t k,
                             const struct dr_ann_query_opts *opts, uint32_t *out_ids,
                             float *out_scores, size_t *n_out);

/* nq queries (row stride ldq), each as dr_ann_search with the same opts, spread over
 * n_threads threads (0: one per online CPU).  out_ids / out_scores are nq x k (scores may be
 * NULL), n_out has nq entries.  Allocates one searcher per thread. */
enum dr_status dr_ann_search_batch(const struct dr_ann_index *index, size_t nq,
                                   const float *queries, size_t ldq, size_t k,
                                   const struct dr_ann_query_opts *opts, uint32_t n_threads,
                                   uint32_t *out_ids, float *out_scores, size_t *n_out);

#ifdef __cplusplus
}
#endif

#endif /* DR_ANN_H */
