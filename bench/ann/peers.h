// peers.h: the indexes the ANN benchmark compares, behind one interface (C++: the peers are
// C++ libraries).  driftrec's own index is driven through the same interface (ann_bench.cc).
#ifndef DR_ANN_PEERS_H
#define DR_ANN_PEERS_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct AnnIndex {
    virtual ~AnnIndex() = default;
    virtual std::string name() const = 0;
    // Builds over n x dim floats (inner product) with n_threads threads.
    virtual void build(const float *x, size_t n, size_t dim, unsigned n_threads) = 0;
    virtual void save(const std::string &path) = 0;
    // Drops the built index and loads the saved one (what a server would run).
    virtual void load(const std::string &path) = 0;
    virtual bool has_ef() const
    {
        return true;
    }
    virtual void set_ef(size_t ef) = 0;
    // One query, one thread: the k best ids, best first.
    virtual void search(const float *q, size_t k, uint32_t *ids) = 0;
    // Extra bytes kept outside the saved file (re-rank tier), reported separately.
    virtual size_t extra_bytes() const
    {
        return 0;
    }
};

std::unique_ptr<AnnIndex> make_hnswlib(size_t dim, size_t n, unsigned m, unsigned ef_construction);
// kind: "hnsw_flat", "hnsw_sq8", "flat"
std::unique_ptr<AnnIndex> make_faiss(const std::string &kind, size_t dim, unsigned m,
                                     unsigned ef_construction);
// FAISS flat, all queries in one call (BLAS): seconds for nq queries, ids nq x k.
double faiss_flat_batched(const float *x, size_t n, size_t dim, const float *q, size_t nq, size_t k,
                          uint32_t *ids);

#endif
