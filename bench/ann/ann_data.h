/* ann_data.h: the ANN benchmark's data sets and exact ground truth (C, shared with the C++
 * driver).  See docs/ann.md for the recipes. */
#ifndef DR_ANN_DATA_H
#define DR_ANN_DATA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct dr_ann_dataset {
    char name[64];
    size_t n, nq, dim;
    float *base;    /* n x dim, owned */
    float *queries; /* nq x dim, owned */
    uint32_t *gt;   /* nq x gt_k exact inner-product neighbours, best first, owned */
    size_t gt_k;
};

/* The clustered synthetic recipe: n_clusters centres c ~ N(0, I); each point (and query)
 * x = normalise(c_k + A_k z + 0.3 eps), A_k dim x 64 with N(0, 1/64) entries, z ~ N(0, I_64),
 * eps ~ N(0, I_dim), k uniform.  Deterministic in seed.  Returns 0 on success. */
int dr_ann_data_synthetic(struct dr_ann_dataset *ds, size_t n, size_t nq, size_t dim,
                          size_t n_clusters, uint64_t seed);

/* Item vectors from a rank-dim truncated SVD (randomised, symmetric) of the item
 * co-occurrence matrix of a "user item" per line file (grouped by user, in order): the
 * vectors are U sqrt(S), not normalised.  Queries: nq users spread over the file, each the
 * sum of the vectors of their items but the last.  Returns 0, or -1 with a message. */
int dr_ann_data_cooccurrence_svd(struct dr_ann_dataset *ds, const char *path, size_t dim, size_t nq,
                                 uint64_t seed);

/* Exact top-k by inner product in double precision over n_threads threads; cached in
 * cache_path when not NULL (read if it matches, else written).  Returns 0 on success. */
int dr_ann_data_ground_truth(struct dr_ann_dataset *ds, size_t k, unsigned n_threads,
                             const char *cache_path);

void dr_ann_data_free(struct dr_ann_dataset *ds);

#ifdef __cplusplus
}
#endif

#endif /* DR_ANN_DATA_H */
