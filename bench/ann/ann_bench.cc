// ann_bench.cc: driftrec's ANN index against hnswlib and FAISS on the same data, in one run.
//
// For each data set: exact ground truth (double precision, cached), then for each index a
// build with --threads threads (timed), a save (bytes per vector = file size / n), a load of
// the saved file, and single-thread queries over one ef grid shared by every index: recall@10
// and queries per second (median of --repeats passes over all queries).  driftrec also runs
// with 50 seen items excluded per query (recall against the exact filtered top-10, and every
// answer checked: exactly k items, none seen).  Writes one JSON file; bench/ann/report.py
// draws the plot and the table.  Flags: --sets synthetic,real,scale  --json PATH
// --work DIR  --data DIR  --threads 2  --repeats 3  --indexes a,b,...  --quick
#include "peers.h"

extern "C" {
#include "ann.h"
#include "ann_data.h"
#include "kernels.h"
}

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace
{

double now_s()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

size_t file_size(const std::string &path)
{
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? (size_t)st.st_size : 0;
}

struct Driftrec : AnnIndex {
    std::string label;
    dr_ann_build_opts opts;
    size_t rerank_depth;
    dr_ann_index *index = nullptr;
    dr_ann_searcher *searcher = nullptr;
    size_t ef = 64;
    size_t tier_bytes = 0;

    Driftrec(const std::string &label_, dr_ann_scale scale, dr_ann_rerank rerank, size_t depth)
        : label(label_), rerank_depth(depth)
    {
        dr_ann_build_opts_default(&opts);
        opts.scale = scale;
        opts.rerank = rerank;
    }
    ~Driftrec() override
    {
        reset();
    }
    void reset()
    {
        dr_ann_searcher_destroy(searcher);
        dr_ann_destroy(index);
        searcher = nullptr;
        index = nullptr;
    }
    std::string name() const override
    {
        return label;
    }
    void build(const float *x, size_t n, size_t dim, unsigned n_threads) override
    {
        opts.n_threads = n_threads;
        dr_error err{};
        if (dr_ann_build(x, n, dim, dim, &opts, &index, &err) != DR_OK) {
            fprintf(stderr, "driftrec build: %s\n", err.msg);
            exit(1);
        }
    }
    void save(const std::string &path) override
    {
        dr_error err{};
        if (dr_ann_save(index, path.c_str(), &err) != DR_OK) {
            fprintf(stderr, "driftrec save: %s\n", err.msg);
            exit(1);
        }
    }
    void load(const std::string &path) override
    {
        reset();
        dr_error err{};
        if (dr_ann_load(path.c_str(), nullptr, &index, &err) != DR_OK ||
            dr_ann_searcher_create(index, &searcher) != DR_OK) {
            fprintf(stderr, "driftrec load: %s\n", err.msg);
            exit(1);
        }
        dr_ann_info info;
        dr_ann_get_info(index, &info);
        tier_bytes = info.rerank_bytes;
    }
    void set_ef(size_t e) override
    {
        ef = e;
    }
    void search(const float *q, size_t k, uint32_t *ids) override
    {
        dr_ann_query_opts o{};
        o.ef = ef;
        o.rerank = rerank_depth ? std::min(ef, rerank_depth) : 0;
        size_t got = 0;
        dr_ann_search(searcher, q, k, &o, ids, nullptr, &got);
        for (size_t i = got; i < k; i++)
            ids[i] = UINT32_MAX;
    }
    size_t extra_bytes() const override
    {
        return tier_bytes;
    }
};

struct Point {
    size_t ef;
    double recall, qps;
};

struct Result {
    std::string name;
    double build_s = 0;
    size_t file_bytes = 0, extra_bytes = 0;
    std::vector<Point> points;
};

struct ExclusionPoint {
    size_t ef;
    double recall, qps;
    size_t short_answers, seen_returned;
};

double recall_at(const dr_ann_dataset &ds, const std::vector<uint32_t> &ids, size_t k)
{
    size_t hits = 0;
    for (size_t q = 0; q < ds.nq; q++) {
        const uint32_t *truth = ds.gt + q * ds.gt_k;
        for (size_t i = 0; i < k; i++)
            for (size_t j = 0; j < k; j++)
                if (ids[q * k + i] == truth[j]) {
                    hits++;
                    break;
                }
    }
    return (double)hits / (double)(ds.nq * k);
}

Result run_index(AnnIndex &ix, const dr_ann_dataset &ds, const std::vector<size_t> &grid,
                 const std::string &work, unsigned threads, int repeats, size_t nq_limit)
{
    const size_t k = 10;
    Result r;
    r.name = ix.name();
    double t0 = now_s();
    ix.build(ds.base, ds.n, ds.dim, threads);
    r.build_s = now_s() - t0;
    std::string path = work + "/" + ds.name + "-" + r.name + ".index";
    ix.save(path);
    r.file_bytes = file_size(path);
    ix.load(path);
    r.extra_bytes = ix.extra_bytes();
    fprintf(stderr, "%-18s build %.1f s (%u threads), %zu bytes = %.1f per vector\n",
            r.name.c_str(), r.build_s, threads, r.file_bytes, (double)r.file_bytes / ds.n);
    size_t nq = std::min(ds.nq, nq_limit);
    std::vector<uint32_t> ids(ds.nq * k);
    std::vector<size_t> efs = ix.has_ef() ? grid : std::vector<size_t>{0};
    for (size_t ef : efs) {
        ix.set_ef(ef);
        for (size_t q = 0; q < nq; q++) // warm-up pass, also the answers
            ix.search(ds.queries + q * ds.dim, k, &ids[q * k]);
        std::vector<double> qps;
        for (int rep = 0; rep < repeats; rep++) {
            double s0 = now_s();
            for (size_t q = 0; q < nq; q++)
                ix.search(ds.queries + q * ds.dim, k, &ids[q * k]);
            qps.push_back((double)nq / (now_s() - s0));
        }
        std::sort(qps.begin(), qps.end());
        dr_ann_dataset sub = ds;
        sub.nq = nq;
        Point p{ef, recall_at(sub, ids, k), qps[qps.size() / 2]};
        r.points.push_back(p);
        fprintf(stderr, "  ef %4zu recall@10 %.4f %8.0f QPS\n", ef, p.recall, p.qps);
    }
    remove(path.c_str());
    return r;
}

// 50 seen items per query: 25 of the true top 50 (every other one) and 25 spread over the
// catalogue.  The exact filtered top-10 is then the first 10 of the top 50 not seen.
std::vector<ExclusionPoint> run_exclusion(Driftrec &ix, const dr_ann_dataset &ds,
                                          const std::vector<size_t> &efs)
{
    const size_t k = 10, n_seen = 50;
    std::vector<ExclusionPoint> out;
    std::vector<uint32_t> seen(ds.nq * n_seen), truth(ds.nq * k);
    for (size_t q = 0; q < ds.nq; q++) {
        std::set<uint32_t> s;
        for (size_t j = 0; j < n_seen / 2; j++)
            s.insert(ds.gt[q * ds.gt_k + 2 * j]);
        for (size_t j = 0; s.size() < n_seen; j++)
            s.insert((uint32_t)((q * 7919 + j * 104729) % ds.n));
        std::copy(s.begin(), s.end(), &seen[q * n_seen]);
        size_t got = 0;
        for (size_t j = 0; j < ds.gt_k && got < k; j++)
            if (!s.count(ds.gt[q * ds.gt_k + j]))
                truth[q * k + got++] = ds.gt[q * ds.gt_k + j];
    }
    for (size_t ef : efs) {
        ExclusionPoint p{ef, 0, 0, 0, 0};
        size_t hits = 0;
        double s0 = now_s();
        for (size_t q = 0; q < ds.nq; q++) {
            dr_ann_query_opts o{};
            o.ef = ef;
            o.exclude = &seen[q * n_seen];
            o.n_exclude = n_seen;
            uint32_t ids[10];
            size_t got = 0;
            dr_ann_search(ix.searcher, ds.queries + q * ds.dim, k, &o, ids, nullptr, &got);
            if (got != k)
                p.short_answers++;
            std::set<uint32_t> s(&seen[q * n_seen], &seen[q * n_seen] + n_seen);
            for (size_t i = 0; i < got; i++) {
                if (s.count(ids[i]))
                    p.seen_returned++;
                for (size_t j = 0; j < k; j++)
                    if (ids[i] == truth[q * k + j]) {
                        hits++;
                        break;
                    }
            }
        }
        p.qps = (double)ds.nq / (now_s() - s0);
        p.recall = (double)hits / (double)(ds.nq * k);
        fprintf(stderr, "  exclusion ef %4zu recall@10 %.4f %8.0f QPS, short %zu, seen %zu\n", ef,
                p.recall, p.qps, p.short_answers, p.seen_returned);
        out.push_back(p);
    }
    return out;
}

std::vector<std::string> split(const std::string &s)
{
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string::npos)
            end = s.size();
        if (end > start)
            out.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

} // namespace

int main(int argc, char **argv)
{
    std::string sets = "synthetic,real", json = "ann.json", work = ".", data;
    std::string wanted = "driftrec,driftrec-rerank,driftrec-perdim,hnswlib,faiss-hnsw-flat,"
                         "faiss-hnsw-sq8,faiss-flat";
    unsigned threads = 2;
    int repeats = 3;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--sets")
            sets = next();
        else if (a == "--json")
            json = next();
        else if (a == "--work")
            work = next();
        else if (a == "--data")
            data = next();
        else if (a == "--threads")
            threads = (unsigned)atoi(next().c_str());
        else if (a == "--repeats")
            repeats = atoi(next().c_str());
        else if (a == "--indexes")
            wanted = next();
        else if (a == "--quick")
            quick = true;
        else {
            fprintf(stderr, "ann_bench: unknown flag %s\n", a.c_str());
            return 2;
        }
    }
    if (data.empty()) {
        const char *env = getenv("DR_DATA_DIR");
        data = env ? env : DR_REPO_DIR "/../shared/data";
    }
    std::set<std::string> want;
    for (auto &w : split(wanted))
        want.insert(w);
    std::vector<size_t> grid = {10, 12, 14, 16, 18,  20,  24,  28,  32,  40, 48,
                                56, 64, 80, 96, 128, 160, 200, 256, 320, 400};
    const dr_kernels *kern = dr_kernels_get();
    FILE *out = fopen(json.c_str(), "w");
    if (!out) {
        fprintf(stderr, "ann_bench: cannot write %s\n", json.c_str());
        return 1;
    }
    fprintf(out, "{\"cpu\": \"%s\", \"isa\": \"%s\", \"threads_build\": %u, \"repeats\": %d,\n",
            dr_cpu_features_get()->model_name, dr_isa_name(kern->isa), threads, repeats);
    fprintf(out, " \"m\": 16, \"ef_construction\": 200, \"datasets\": [\n");
    bool first_set = true;
    for (auto &set : split(sets)) {
        dr_ann_dataset ds{};
        double t0 = now_s();
        if (set == "synthetic") {
            dr_ann_data_synthetic(&ds, quick ? 20000 : 100000, 1000, 128, 100, 20240601);
        } else if (set == "scale") {
            dr_ann_data_synthetic(&ds, quick ? 100000 : 1000000, 1000, 64, 100, 20240602);
        } else if (set == "real") {
            std::string path = data + "/bert4rec-amazon-beauty/beauty.txt";
            if (file_size(path) == 0) {
                fprintf(stderr, "SKIP real: %s is absent (set DR_DATA_DIR)\n", path.c_str());
                continue;
            }
            if (dr_ann_data_cooccurrence_svd(&ds, path.c_str(), 64, 1000, 20240603) != 0)
                return 1;
        } else {
            fprintf(stderr, "ann_bench: unknown set %s\n", set.c_str());
            return 2;
        }
        double t1 = now_s();
        std::string cache = work + "/" + ds.name + ".gt";
        dr_ann_data_ground_truth(&ds, 50, threads, cache.c_str());
        fprintf(stderr, "== %s: %zu x %zu, %zu queries (data %.1f s, ground truth %.1f s)\n",
                ds.name, ds.n, ds.dim, ds.nq, t1 - t0, now_s() - t1);
        double norm_min = 1e30, norm_max = 0;
        for (size_t i = 0; i < ds.n; i++) {
            double s = 0;
            for (size_t d = 0; d < ds.dim; d++)
                s += (double)ds.base[i * ds.dim + d] * ds.base[i * ds.dim + d];
            norm_min = std::min(norm_min, std::sqrt(s));
            norm_max = std::max(norm_max, std::sqrt(s));
        }

        std::vector<Result> results;
        std::vector<ExclusionPoint> exclusion;
        for (auto &name : split(wanted)) {
            if (set == "scale" && name == "faiss-flat")
                continue;
            std::unique_ptr<AnnIndex> ix;
            if (name == "driftrec")
                ix.reset(new Driftrec(name, DR_ANN_SCALE_PER_VECTOR, DR_ANN_RERANK_NONE, 0));
            else if (name == "driftrec-perdim")
                ix.reset(new Driftrec(name, DR_ANN_SCALE_PER_DIM, DR_ANN_RERANK_NONE, 0));
            else if (name == "driftrec-rerank")
                ix.reset(new Driftrec(name, DR_ANN_SCALE_PER_VECTOR, DR_ANN_RERANK_F16, 100));
            else if (name == "hnswlib")
                ix = make_hnswlib(ds.dim, ds.n, 16, 200);
            else if (name == "faiss-hnsw-flat")
                ix = make_faiss("hnsw_flat", ds.dim, 16, 200);
            else if (name == "faiss-hnsw-sq8")
                ix = make_faiss("hnsw_sq8", ds.dim, 16, 200);
            else if (name == "faiss-flat")
                ix = make_faiss("flat", ds.dim, 16, 200);
            else {
                fprintf(stderr, "ann_bench: unknown index %s\n", name.c_str());
                return 2;
            }
            size_t nq_limit = name == "faiss-flat" ? 200 : ds.nq;
            results.push_back(run_index(*ix, ds, grid, work, threads, repeats, nq_limit));
            if (name == "driftrec") // the same loaded index, with 50 seen items per query
                exclusion = run_exclusion(static_cast<Driftrec &>(*ix), ds, {16, 32, 64, 128});
        }
        double flat_batched_qps = 0;
        if (want.count("faiss-flat") && set != "scale") {
            std::vector<uint32_t> ids(ds.nq * 10);
            double s = faiss_flat_batched(ds.base, ds.n, ds.dim, ds.queries, ds.nq, 10, ids.data());
            flat_batched_qps = ds.nq / s;
            fprintf(stderr, "faiss-flat batched (BLAS): %.0f QPS, recall %.4f\n", flat_batched_qps,
                    recall_at(ds, ids, 10));
        }

        fprintf(out, "%s  {\"name\": \"%s\", \"n\": %zu, \"dim\": %zu, \"nq\": %zu,",
                first_set ? "" : ",\n", ds.name, ds.n, ds.dim, ds.nq);
        fprintf(out, " \"norm_min\": %.4f, \"norm_max\": %.4f, \"flat_batched_qps\": %.1f,\n",
                norm_min, norm_max, flat_batched_qps);
        first_set = false;
        fprintf(out, "   \"indexes\": [\n");
        for (size_t i = 0; i < results.size(); i++) {
            const Result &r = results[i];
            fprintf(out,
                    "    {\"name\": \"%s\", \"build_s\": %.2f, \"file_bytes\": %zu, "
                    "\"bytes_per_vector\": %.2f, \"extra_bytes\": %zu, \"points\": [",
                    r.name.c_str(), r.build_s, r.file_bytes, (double)r.file_bytes / ds.n,
                    r.extra_bytes);
            for (size_t p = 0; p < r.points.size(); p++)
                fprintf(out, "%s{\"ef\": %zu, \"recall\": %.4f, \"qps\": %.1f}", p ? ", " : "",
                        r.points[p].ef, r.points[p].recall, r.points[p].qps);
            fprintf(out, "]}%s\n", i + 1 < results.size() ? "," : "");
        }
        fprintf(out, "   ],\n   \"exclusion\": [");
        for (size_t p = 0; p < exclusion.size(); p++)
            fprintf(out,
                    "%s{\"ef\": %zu, \"recall\": %.4f, \"qps\": %.1f, \"short_answers\": %zu, "
                    "\"seen_returned\": %zu}",
                    p ? ", " : "", exclusion[p].ef, exclusion[p].recall, exclusion[p].qps,
                    exclusion[p].short_answers, exclusion[p].seen_returned);
        fprintf(out, "]}");
        dr_ann_data_free(&ds);
    }
    fprintf(out, "\n]}\n");
    fclose(out);
    fprintf(stderr, "wrote %s\n", json.c_str());
    return 0;
}
