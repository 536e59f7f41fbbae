// peer_hnswlib.cc: hnswlib (header-only), inner-product space, built with -march=native as
// its users build it (bench/ann/CMakeLists.txt), M and efConstruction as given.
#include "peers.h"

#include <atomic>
#include <hnswlib/hnswlib.h>
#include <thread>
#include <vector>

namespace
{

struct Hnswlib : AnnIndex {
    size_t dim, n;
    unsigned m, efc;
    hnswlib::InnerProductSpace space;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> index;

    Hnswlib(size_t dim_, size_t n_, unsigned m_, unsigned efc_)
        : dim(dim_), n(n_), m(m_), efc(efc_), space(dim_)
    {
    }
    std::string name() const override
    {
        return "hnswlib";
    }
    void build(const float *x, size_t count, size_t d, unsigned n_threads) override
    {
        index.reset(new hnswlib::HierarchicalNSW<float>(&space, count, m, efc, 100));
        // as hnswlib's Python binding does: the first point alone, then a shared counter
        index->addPoint(x, 0);
        std::atomic<size_t> next(1);
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < n_threads; t++)
            threads.emplace_back([&] {
                for (;;) {
                    size_t i = next.fetch_add(1);
                    if (i >= count)
                        break;
                    index->addPoint(x + i * d, i);
                }
            });
        for (auto &t : threads)
            t.join();
    }
    void save(const std::string &path) override
    {
        index->saveIndex(path);
    }
    void load(const std::string &path) override
    {
        index.reset(new hnswlib::HierarchicalNSW<float>(&space, path));
    }
    void set_ef(size_t ef) override
    {
        index->setEf(ef);
    }
    void search(const float *q, size_t k, uint32_t *ids) override
    {
        auto res = index->searchKnn(q, k);
        size_t got = res.size();
        for (size_t i = got; i-- > 0;) {
            ids[i] = (uint32_t)res.top().second;
            res.pop();
        }
        for (size_t i = got; i < k; i++)
            ids[i] = UINT32_MAX;
    }
};

} // namespace

std::unique_ptr<AnnIndex> make_hnswlib(size_t dim, size_t n, unsigned m, unsigned ef_construction)
{
    return std::unique_ptr<AnnIndex>(new Hnswlib(dim, n, m, ef_construction));
}
