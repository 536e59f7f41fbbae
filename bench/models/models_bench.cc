// models_bench.cc: driftrec's side of `make bench-models`: the BERT encoder and the interest
// model, timed by Google Benchmark on one thread.
//
// Reads the models and inputs bench/models/gen_models.py wrote into DIR (bert-mini-{int8,fp32},
// interest-{int8,fp32}, inputs.safetensors), times dr_bert_encode on the first B of its
// 64-token sequences and dr_interest_run on the first B of its 64-event users, and writes one
// JSON object to OUT_JSON: the ISA the kernels dispatched to (DR_ISA_MAX caps it), the
// measured clock, and per (model, batch, precision) the median over repetitions of thread
// CPU time and of wall time per call.  Each case's output vectors are written next to
// OUT_JSON as raw float32 for the driver (bench/models/run.py) to compare with PyTorch.
//
// Usage: models_bench DIR OUT_JSON [--no-fp32] [--bert-batches 1,16] [--interest-batches 1,8]
//                     [Google Benchmark flags...]
#include <benchmark/benchmark.h>
#include <cjson/cJSON.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bench_clock.h"
#include "bench_common.h"
#include "bert.h"
#include "interest.h"
#include "model_file.h"

namespace
{

struct Inputs {
    std::vector<uint8_t> buf;
    dr_safetensors st{};
    const dr_tensor_info *find(const char *name, dr_dtype dtype) const
    {
        const dr_tensor_info *t = dr_safetensors_find(&st, name);
        if (!t || t->dtype != dtype) {
            std::fprintf(stderr, "models_bench: inputs: tensor %s missing or not %s\n", name,
                         dr_dtype_name(dtype));
            std::exit(2);
        }
        return t;
    }
    template <typename T> std::vector<T> copy(const char *name, dr_dtype dtype) const
    {
        const dr_tensor_info *t = find(name, dtype);
        std::vector<T> v(t->n_elements);
        std::memcpy(v.data(), t->data, t->n_elements * sizeof(T));
        return v;
    }
};

bool read_file(const std::string &path, std::vector<uint8_t> &out)
{
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f)
        return false;
    std::fseek(f, 0, SEEK_END);
    long size = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    out.resize(static_cast<size_t>(size));
    size_t got = std::fread(out.data(), 1, out.size(), f);
    std::fclose(f);
    return got == out.size();
}

bool write_floats(const std::string &path, const float *v, size_t n)
{
    FILE *f = std::fopen(path.c_str(), "wb");
    if (!f)
        return false;
    bool ok = std::fwrite(v, sizeof(float), n, f) == n;
    return std::fclose(f) == 0 && ok;
}

struct Case {
    std::string model, impl, name, output;
    size_t batch = 0;
    std::vector<float> out;
    void *ws = nullptr;
    size_t ws_size = 0;
};

[[noreturn]] void die(const char *what, const dr_error &err)
{
    std::fprintf(stderr, "models_bench: %s: %s\n", what, err.msg);
    std::exit(2);
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 3) {
        std::fprintf(stderr,
                     "usage: %s DIR OUT_JSON [--no-fp32] [--bert-batches 1,16] "
                     "[--interest-batches 1,8] [--benchmark_* flags]\n",
                     argv[0]);
        return 2;
    }
    std::string dir = argv[1], json_path = argv[2];
    std::string out_dir = json_path.substr(0, json_path.find_last_of('/'));
    if (out_dir == json_path)
        out_dir = ".";
    bool with_fp32 = true;
    std::vector<size_t> bert_batches = {1, 16}, interest_batches = {1, 8};
    std::vector<char *> rest = {argv[0]};
    for (int i = 3; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--no-fp32")
            with_fp32 = false;
        else if (a == "--bert-batches" && i + 1 < argc)
            bert_batches = dr_bench::parse_list(argv[++i]);
        else if (a == "--interest-batches" && i + 1 < argc)
            interest_batches = dr_bench::parse_list(argv[++i]);
        else
            rest.push_back(argv[i]);
    }
    const dr_kernels *kern = dr_kernels_get();
    const std::string isa = dr_isa_name(kern->isa);

    Inputs in;
    std::string inputs_path = dir + "/inputs.safetensors";
    dr_error err{};
    if (!read_file(inputs_path, in.buf)) {
        std::fprintf(stderr, "models_bench: cannot read %s (run bench/models/gen_models.py)\n",
                     inputs_path.c_str());
        return 2;
    }
    if (dr_safetensors_parse(in.buf.data(), in.buf.size(), inputs_path.c_str(), &in.st, &err) !=
        DR_OK)
        die("inputs", err);

    // BERT: 16 sequences of 64 ids.
    const dr_tensor_info *ids_t = in.find("bert_ids", DR_DTYPE_I32);
    size_t max_seqs = ids_t->shape[0], seq = ids_t->shape[1];
    std::vector<int32_t> ids = in.copy<int32_t>("bert_ids", DR_DTYPE_I32);
    std::vector<size_t> lens(max_seqs, seq);

    // Interest: users of equal length, back to back.
    std::vector<int32_t> ulens = in.copy<int32_t>("lengths", DR_DTYPE_I32);
    std::vector<float> item = in.copy<float>("item_vec", DR_DTYPE_F32);
    std::vector<float> text = in.copy<float>("text_vec", DR_DTYPE_F32);
    std::vector<uint8_t> has_text = in.copy<uint8_t>("has_text", DR_DTYPE_U8);
    std::vector<int32_t> etype = in.copy<int32_t>("event_type", DR_DTYPE_I32);
    std::vector<int64_t> ts = in.copy<int64_t>("ts", DR_DTYPE_I64);
    std::vector<float> dwell = in.copy<float>("dwell_s", DR_DTYPE_F32);
    std::vector<float> amount = in.copy<float>("amount", DR_DTYPE_F32);
    std::vector<float> rating = in.copy<float>("rating", DR_DTYPE_F32);
    size_t n_events = has_text.size(), item_dim = item.size() / n_events;
    std::vector<dr_interest_event> events(n_events);
    for (size_t e = 0; e < n_events; e++)
        events[e] = dr_interest_event{item.data() + e * item_dim,
                                      has_text[e] ? text.data() + e * item_dim : nullptr,
                                      ts[e],
                                      etype[e],
                                      dwell[e],
                                      amount[e],
                                      rating[e]};
    std::vector<const dr_interest_event *> user_events;
    std::vector<size_t> user_n;
    for (size_t u = 0, at = 0; u < ulens.size(); u++) {
        user_events.push_back(events.data() + at);
        user_n.push_back(static_cast<size_t>(ulens[u]));
        at += static_cast<size_t>(ulens[u]);
    }

    // Defaults that keep the whole run near half a minute; flags given win.
    dr_bench::initialize(rest, 15);

    std::vector<Case *> cases;
    std::vector<dr_bert *> berts;
    std::vector<dr_interest *> interests;
    struct Prec {
        const char *impl, *file;
        dr_precision precision;
    };
    std::vector<Prec> precs = {{"driftrec-int8", "int8", DR_PRECISION_INT8}};
    if (with_fp32)
        precs.push_back({"driftrec-fp32", "fp32", DR_PRECISION_FP32});

    for (const Prec &p : precs) {
        dr_model_opts opts{p.precision, kern};
        dr_bert *bert = nullptr;
        std::string path = dir + "/bert-mini-" + p.file;
        if (dr_bert_load(path.c_str(), &opts, &bert, &err) != DR_OK)
            die(path.c_str(), err);
        berts.push_back(bert);
        for (size_t b : bert_batches) {
            if (b > max_seqs)
                continue;
            auto *c = new Case;
            c->model = "bert-mini";
            c->impl = p.impl;
            c->batch = b;
            c->name = c->model + "/" + c->impl + "/b" + std::to_string(b);
            c->out.assign(b * dr_bert_output_dim(bert), 0.0f);
            c->ws_size = dr_bert_workspace_size(bert, b * seq, seq);
            c->ws = dr_aligned_alloc(c->ws_size);
            size_t dim = dr_bert_output_dim(bert);
            auto run = [bert, c, &ids, &lens, dim] {
                return dr_bert_encode(bert, c->batch, ids.data(), lens.data(), c->out.data(), dim,
                                      c->ws, c->ws_size);
            };
            if (!c->ws || run() != DR_OK) {
                std::fprintf(stderr, "models_bench: %s failed\n", c->name.c_str());
                return 2;
            }
            cases.push_back(c);
            benchmark::RegisterBenchmark(c->name.c_str(), [run](benchmark::State &state) {
                for (auto _ : state)
                    benchmark::DoNotOptimize(run());
            })->Unit(benchmark::kNanosecond);
        }
        dr_interest *im = nullptr;
        path = dir + "/interest-" + p.file;
        if (dr_interest_load(path.c_str(), &opts, &im, &err) != DR_OK)
            die(path.c_str(), err);
        interests.push_back(im);
        for (size_t b : interest_batches) {
            if (b > user_events.size())
                continue;
            auto *c = new Case;
            c->model = "interest";
            c->impl = p.impl;
            c->batch = b;
            c->name = c->model + "/" + c->impl + "/b" + std::to_string(b);
            size_t dim = dr_interest_item_dim(im);
            c->out.assign(b * dim, 0.0f);
            c->ws_size = dr_interest_workspace_size(im, b);
            c->ws = dr_aligned_alloc(c->ws_size);
            auto run = [im, c, &user_events, &user_n, dim] {
                return dr_interest_run(im, c->batch, user_events.data(), user_n.data(), nullptr,
                                       c->out.data(), dim, c->ws, c->ws_size);
            };
            if (!c->ws || run() != DR_OK) {
                std::fprintf(stderr, "models_bench: %s failed\n", c->name.c_str());
                return 2;
            }
            cases.push_back(c);
            benchmark::RegisterBenchmark(c->name.c_str(), [run](benchmark::State &state) {
                for (auto _ : state)
                    benchmark::DoNotOptimize(run());
            })->Unit(benchmark::kNanosecond);
        }
    }

    // Outputs of the first call (the runs are deterministic) for the accuracy columns.
    for (Case *c : cases) {
        c->output = c->impl + "-" + isa + "-" + c->model + "-b" + std::to_string(c->batch) + ".f32";
        if (!write_floats(out_dir + "/" + c->output, c->out.data(), c->out.size())) {
            std::fprintf(stderr, "models_bench: cannot write %s/%s\n", out_dir.c_str(),
                         c->output.c_str());
            return 1;
        }
    }

    double ghz = dr_bench_measure_ghz();
    std::fprintf(stderr, "driftrec (isa %s): %zu benchmarks ", isa.c_str(), cases.size());
    dr_bench::MedianReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    std::fprintf(stderr, "\n");

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "isa", isa.c_str());
    cJSON_AddStringToObject(root, "gemm_s8_tile", kern->gemm_s8_tile);
    cJSON_AddStringToObject(root, "cpu", dr_cpu_features_get()->model_name);
    cJSON_AddNumberToObject(root, "ghz", ghz);
    cJSON *rows = cJSON_AddArrayToObject(root, "rows");
    for (Case *c : cases) {
        auto it = reporter.results.find(c->name);
        if (it == reporter.results.end() || !it->second.ok)
            continue;
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "model", c->model.c_str());
        cJSON_AddNumberToObject(row, "batch", static_cast<double>(c->batch));
        cJSON_AddStringToObject(row, "impl", c->impl.c_str());
        cJSON_AddStringToObject(row, "isa", isa.c_str());
        cJSON_AddNumberToObject(row, "cpu_ms", it->second.cpu_s * 1e3);
        cJSON_AddNumberToObject(row, "wall_ms", it->second.wall_s * 1e3);
        cJSON_AddStringToObject(row, "output", c->output.c_str());
        cJSON_AddItemToArray(rows, row);
    }
    char *text_json = cJSON_Print(root);
    cJSON_Delete(root);
    FILE *f = std::fopen(json_path.c_str(), "w");
    if (!f || std::fputs(text_json, f) < 0 || std::fclose(f) != 0) {
        std::fprintf(stderr, "models_bench: cannot write %s\n", json_path.c_str());
        std::free(text_json);
        return 1;
    }
    std::free(text_json);
    for (Case *c : cases) {
        dr_aligned_free(c->ws);
        delete c;
    }
    for (dr_bert *b : berts)
        dr_bert_destroy(b);
    for (dr_interest *m : interests)
        dr_interest_destroy(m);
    dr_safetensors_deinit(&in.st);
    benchmark::Shutdown();
    return 0;
}
