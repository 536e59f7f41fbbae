// peer_faiss.cc: FAISS (Debian's libfaiss-dev 1.7.3: a generic build, scalar distances):
// IndexHNSWFlat, IndexHNSWSQ with 8-bit codes, IndexFlatIP, all for inner product.
#include "peers.h"

#include <chrono>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/index_io.h>
#include <omp.h>
#include <vector>

namespace
{

using idx_t = faiss::Index::idx_t;

struct Faiss : AnnIndex {
    std::string kind;
    size_t dim;
    unsigned m, efc;
    std::unique_ptr<faiss::Index> index;
    std::vector<float> dist;
    std::vector<idx_t> labels;

    Faiss(const std::string &kind_, size_t dim_, unsigned m_, unsigned efc_)
        : kind(kind_), dim(dim_), m(m_), efc(efc_)
    {
    }
    std::string name() const override
    {
        return kind == "hnsw_flat" ? "faiss-hnsw-flat"
                                   : (kind == "hnsw_sq8" ? "faiss-hnsw-sq8" : "faiss-flat");
    }
    bool has_ef() const override
    {
        return kind != "flat";
    }
    void build(const float *x, size_t n, size_t d, unsigned n_threads) override
    {
        omp_set_num_threads((int)n_threads);
        if (kind == "hnsw_flat") {
            auto *ix = new faiss::IndexHNSWFlat((int)d, (int)m, faiss::METRIC_INNER_PRODUCT);
            ix->hnsw.efConstruction = (int)efc;
            index.reset(ix);
        } else if (kind == "hnsw_sq8") {
            auto *ix = new faiss::IndexHNSWSQ((int)d, faiss::ScalarQuantizer::QT_8bit, (int)m,
                                              faiss::METRIC_INNER_PRODUCT);
            ix->hnsw.efConstruction = (int)efc;
            index.reset(ix);
            index->train((idx_t)n, x);
        } else {
            index.reset(new faiss::IndexFlatIP((int)d));
        }
        index->add((idx_t)n, x);
        omp_set_num_threads(1);
    }
    void save(const std::string &path) override
    {
        faiss::write_index(index.get(), path.c_str());
    }
    void load(const std::string &path) override
    {
        index.reset();
        index.reset(faiss::read_index(path.c_str()));
        omp_set_num_threads(1);
    }
    void set_ef(size_t ef) override
    {
        if (auto *h = dynamic_cast<faiss::IndexHNSW *>(index.get()))
            h->hnsw.efSearch = (int)ef;
    }
    void search(const float *q, size_t k, uint32_t *ids) override
    {
        dist.resize(k);
        labels.resize(k);
        index->search(1, q, (idx_t)k, dist.data(), labels.data());
        for (size_t i = 0; i < k; i++)
            ids[i] = labels[i] < 0 ? UINT32_MAX : (uint32_t)labels[i];
    }
};

} // namespace

std::unique_ptr<AnnIndex> make_faiss(const std::string &kind, size_t dim, unsigned m,
                                     unsigned ef_construction)
{
    return std::unique_ptr<AnnIndex>(new Faiss(kind, dim, m, ef_construction));
}

double faiss_flat_batched(const float *x, size_t n, size_t dim, const float *q, size_t nq, size_t k,
                          uint32_t *ids)
{
    using idx_t = faiss::Index::idx_t;
    omp_set_num_threads(1);
    faiss::IndexFlatIP index((int)dim);
    index.add((idx_t)n, x);
    std::vector<float> dist(nq * k);
    std::vector<idx_t> labels(nq * k);
    auto t0 = std::chrono::steady_clock::now();
    index.search((idx_t)nq, q, (idx_t)k, dist.data(), labels.data());
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t i = 0; i < nq * k; i++)
        ids[i] = (uint32_t)labels[i];
    return s;
}
