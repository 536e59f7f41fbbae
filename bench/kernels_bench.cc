// kernels_bench.cc: the thin C++ main around Google Benchmark for the C kernel bodies.
//
// Reads shapes from bench/shapes/*.txt, registers one benchmark per (op, shape, M, ISA)
// for every ISA this CPU runs (the scalar reference only when asked: it is the spec, not
// a contender), measures the core's real clock, and prints one table -- op, M, N, K, ISA,
// GOPS, % of int8 peak -- then writes it as JSON (default build/bench/kernels.json).
// One thread: the kernels are single-threaded; the server splits work across cores.
//
// The int8 GEMM rows also run oneDNN's s8 matmul on the same inputs (both produce int32),
// checked equal before timing, with oneDNN capped to the native row's ISA
// (ONEDNN_MAX_CPU_ISA; --onednn-isa max lifts the cap) and one OpenMP thread; the process
// re-executes itself once to set those variables, which oneDNN and OpenMP read at load.
//
// Usage: kernels_bench [--shapes DIR] [--json PATH] [--isa LIST] [--quick]
//                      [--onednn-isa same|max|NAME] [--no-onednn] [Google Benchmark flags...]
#include <benchmark/benchmark.h>
#include <cjson/cJSON.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "bench_common.h"
#include "kernels_bench_ops.h"

#ifndef DR_GIT_SHA
#define DR_GIT_SHA "unknown"
#endif

namespace
{

struct Spec {
    std::string op, shape;
    size_t m, n, k;
    dr_isa isa;
};

// int8 multiply-accumulate peak per cycle and core: AVX2 one vpmaddubsw+vpmaddwd+vpaddd
// triple per cycle (32 MACs = 64 ops); AVX-512 VNNI two vpdpbusd per cycle (256 ops).
double peak_ops_per_cycle(dr_isa isa)
{
    switch (isa) {
    case DR_ISA_AVX2:
        return 64;
    case DR_ISA_AVX512:
        return 128;
    case DR_ISA_AVX512VNNI:
        return 256;
    case DR_ISA_NEONDOT:
        return 64;
    case DR_ISA_NEON:
        return 32;
    default:
        return 0;
    }
}

bool read_shapes(const std::string &dir, std::vector<Spec> &specs, std::vector<dr_isa> isas,
                 bool quick)
{
    DIR *d = opendir(dir.c_str());
    if (!d) {
        std::fprintf(stderr, "kernels_bench: cannot open shapes directory %s\n", dir.c_str());
        return false;
    }
    std::vector<std::string> files;
    while (dirent *e = readdir(d)) {
        std::string name = e->d_name;
        if (name.size() > 4 && name.substr(name.size() - 4) == ".txt")
            files.push_back(dir + "/" + name);
    }
    closedir(d);
    std::sort(files.begin(), files.end());
    for (const auto &path : files) {
        std::ifstream in(path);
        std::string line;
        int lineno = 0;
        while (std::getline(in, line)) {
            lineno++;
            if (line.empty() || line[0] == '#')
                continue;
            std::stringstream ss(line);
            std::string op, shape, ms;
            size_t n = 0, k = 0;
            if (!(ss >> op >> shape >> n >> k >> ms) || n == 0 || k == 0) {
                std::fprintf(stderr, "%s:%d: expected 'op name N K M1,M2,...'\n", path.c_str(),
                             lineno);
                return false;
            }
            for (size_t m : dr_bench::parse_list(ms)) {
                if (quick && m > 128)
                    continue;
                for (dr_isa isa : isas)
                    specs.push_back({op, shape, m, n, k, isa});
            }
        }
    }
    return true;
}

std::string bench_name(const Spec &s)
{
    return s.op + "/" + s.shape + "/M=" + std::to_string(s.m) + "/" + dr_isa_name(s.isa);
}

// oneDNN's name for the ISA a native table uses.
const char *onednn_isa_for(dr_isa isa)
{
    switch (isa) {
    case DR_ISA_AVX2:
        return "AVX2";
    case DR_ISA_AVX512:
        return "AVX512_CORE";
    case DR_ISA_AVX512VNNI:
        return "AVX512_CORE_VNNI";
    default:
        return nullptr;
    }
}

double measure_loop_peak(dr_isa isa)
{
#ifdef DR_HAVE_PEAK_LOOP
    return dr_bench_measure_int8_peak_gops(isa);
#else
    (void)isa;
    return 0.0;
#endif
}

} // namespace

int main(int argc, char **argv)
{
    std::string shapes_dir = "bench/shapes", json_path = "build/bench/kernels.json";
    std::string isa_list, onednn_isa = "same";
    bool quick = false, with_onednn = true;
    std::vector<char *> rest = {argv[0]};
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--shapes" && i + 1 < argc)
            shapes_dir = argv[++i];
        else if (a == "--json" && i + 1 < argc)
            json_path = argv[++i];
        else if (a == "--isa" && i + 1 < argc)
            isa_list = argv[++i];
        else if (a == "--quick")
            quick = true;
        else if (a == "--onednn-isa" && i + 1 < argc)
            onednn_isa = argv[++i];
        else if (a == "--no-onednn")
            with_onednn = false;
        else if (a == "--help" || a == "-h") {
            std::printf("usage: %s [--shapes DIR] [--json PATH] [--isa ref,avx2,...] [--quick] "
                        "[--onednn-isa same|max|NAME] [--no-onednn] [--benchmark_* flags]\n",
                        argv[0]);
            return 0;
        } else
            rest.push_back(argv[i]);
    }

    std::vector<dr_isa> isas;
    if (isa_list.empty()) {
        isas.push_back(dr_kernels_get()->isa); // what the server would run
    } else {
        for (const auto &name : [&] {
                 std::vector<std::string> v;
                 std::stringstream ss(isa_list);
                 std::string t;
                 while (std::getline(ss, t, ','))
                     v.push_back(t);
                 return v;
             }()) {
            dr_isa isa;
            if (!dr_isa_parse(name.c_str(), &isa)) {
                std::fprintf(stderr, "kernels_bench: unknown ISA '%s'\n", name.c_str());
                return 2;
            }
            if (!dr_kernels_for_isa(isa)) {
                std::printf("SKIP: isa %s (not built in or this CPU lacks it)\n", name.c_str());
                continue;
            }
            isas.push_back(isa);
        }
    }

    if (isas.empty())
        return 0;
    dr_isa top_isa = *std::max_element(isas.begin(), isas.end());

    // oneDNN and OpenMP read their variables once, at load: set them, then start again.
    if (!getenv("DR_BENCH_ENV_SET")) {
        setenv("DR_BENCH_ENV_SET", "1", 1);
        setenv("OMP_NUM_THREADS", "1", 0);
        const char *cap = onednn_isa == "same"  ? onednn_isa_for(top_isa)
                          : onednn_isa == "max" ? nullptr
                                                : onednn_isa.c_str();
        if (cap)
            setenv("ONEDNN_MAX_CPU_ISA", cap, 1);
        else if (onednn_isa == "max")
            unsetenv("ONEDNN_MAX_CPU_ISA");
        execv("/proc/self/exe", argv);
        std::perror("kernels_bench: re-exec");
        return 2;
    }
#ifndef DR_HAVE_ONEDNN
    if (with_onednn)
        std::printf("SKIP: oneDNN peer (libdnnl-dev not found at build time)\n");
    with_onednn = false;
#endif

    std::vector<Spec> specs;
    if (!read_shapes(shapes_dir, specs, isas, quick))
        return 2;

    // Defaults that keep the whole run near a minute on 2 cores; flags given win.
    dr_bench::initialize(rest, 3);

    std::vector<dr_bench_case *> cases;
    int mismatches = 0;
    for (const auto &s : specs) {
        dr_bench_case *bc = dr_bench_case_create(s.op.c_str(), dr_kernels_for_isa(s.isa), s.m, s.n,
                                                 s.k, with_onednn);
        if (!bc) {
            std::fprintf(stderr, "kernels_bench: cannot set up %s\n", bench_name(s).c_str());
            return 2;
        }
        cases.push_back(bc);
        benchmark::RegisterBenchmark(bench_name(s).c_str(), [bc](benchmark::State &state) {
            for (auto _ : state)
                dr_bench_case_run(bc);
        })->Unit(benchmark::kNanosecond);
        if (dr_bench_case_has_onednn(bc)) {
            if (!dr_bench_case_onednn_agrees(bc)) {
                std::fprintf(stderr, "kernels_bench: MISMATCH oneDNN vs native on %s\n",
                             bench_name(s).c_str());
                mismatches++;
            }
            benchmark::RegisterBenchmark((bench_name(s) + "/onednn").c_str(),
                                         [bc](benchmark::State &state) {
                                             for (auto _ : state)
                                                 dr_bench_case_run_onednn(bc);
                                         })
                ->Unit(benchmark::kNanosecond);
        }
    }

    const dr_cpu_features *cpu = dr_cpu_features_get();
    double ghz = dr_bench_measure_ghz();
    std::map<int, double> loop_peak; // hand-loop int8 GOPS per ISA, measured before and after
    for (dr_isa isa : isas)
        loop_peak[isa] = measure_loop_peak(isa);
    std::fprintf(stderr, "running %zu benchmarks", specs.size());
    dr_bench::MedianReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    std::fprintf(stderr, "\n");
    for (dr_isa isa : isas) // the better of the two: conditions change during a long run
        loop_peak[isa] = std::max(loop_peak[isa], measure_loop_peak(isa));

    std::printf("driftrec kernels_bench  commit %s  cpu \"%s\"  clock %.2f GHz (measured)  "
                "one thread\n",
                DR_GIT_SHA, cpu->model_name, ghz);
    std::printf("chosen table: isa=%s gemm=%s; oneDNN peer: %s, ONEDNN_MAX_CPU_ISA=%s, "
                "OMP_NUM_THREADS=%s\n",
                dr_isa_name(dr_kernels_get()->isa), dr_kernels_get()->gemm_s8_tile,
                with_onednn ? "on" : "off",
                getenv("ONEDNN_MAX_CPU_ISA") ? getenv("ONEDNN_MAX_CPU_ISA") : "(no cap)",
                getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(unset)");
    for (dr_isa isa : isas)
        if (loop_peak[isa] > 0)
            std::printf("int8 peak %s: %.0f ops/cycle x %.2f GHz = %.0f GOPS; hand loop of "
                        "independent chains %.0f GOPS (%%loop column)\n",
                        dr_isa_name(isa), peak_ops_per_cycle(isa), ghz,
                        peak_ops_per_cycle(isa) * ghz, loop_peak[isa]);
    std::printf("%-8s %-18s %5s %5s %5s %-10s %9s %7s %6s %6s %8s %6s  %s\n", "op", "shape", "M",
                "N", "K", "isa", "us/call", "GOPS", "%peak", "%loop", "oneDNN", "ratio",
                "oneDNN impl");
    std::vector<double> ratios_small, ratios_large;
    int ref_rows = 0;

    cJSON *rows = cJSON_CreateArray();
    int n_rows = 0;
    for (size_t i = 0; i < specs.size(); i++) {
        const Spec &s = specs[i];
        auto it = reporter.results.find(bench_name(s));
        if (it == reporter.results.end() || !it->second.ok)
            continue;
        double secs = it->second.cpu_s;
        double gops = dr_bench_case_ops(cases[i]) / secs / 1e9;
        double peak = peak_ops_per_cycle(s.isa) * ghz;
        double pct = peak > 0 ? 100.0 * gops / peak : 0.0;
        double pct_loop = loop_peak[s.isa] > 0 ? 100.0 * gops / loop_peak[s.isa] : 0.0;
        char loop_col[16] = "-";
        if (pct_loop > 0)
            std::snprintf(loop_col, sizeof loop_col, "%.1f%%", pct_loop);
        double onednn_gops = 0, ratio = 0;
        std::string impl = "-";
        auto od = reporter.results.find(bench_name(s) + "/onednn");
        if (od != reporter.results.end() && od->second.ok) {
            onednn_gops = dr_bench_case_ops(cases[i]) / od->second.cpu_s / 1e9;
            ratio = gops / onednn_gops;
            impl = dr_bench_case_onednn_impl(cases[i]);
            if (impl.rfind("ref", 0) == 0)
                ref_rows++;
            else if (s.shape.rfind("bert-mini", 0) == 0 && s.m <= 128)
                ratios_small.push_back(ratio);
            else if (s.m >= 512)
                ratios_large.push_back(ratio);
        }
        if (onednn_gops > 0)
            std::printf("%-8s %-18s %5zu %5zu %5zu %-10s %9.2f %7.1f %5.1f%% %6s %8.1f %6.2f  %s\n",
                        s.op.c_str(), s.shape.c_str(), s.m, s.n, s.k, dr_isa_name(s.isa),
                        secs * 1e6, gops, pct, loop_col, onednn_gops, ratio, impl.c_str());
        else
            std::printf("%-8s %-18s %5zu %5zu %5zu %-10s %9.2f %7.1f %5.1f%% %6s %8s %6s  -\n",
                        s.op.c_str(), s.shape.c_str(), s.m, s.n, s.k, dr_isa_name(s.isa),
                        secs * 1e6, gops, pct, loop_col, "-", "-");
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "op", s.op.c_str());
        cJSON_AddStringToObject(row, "shape", s.shape.c_str());
        cJSON_AddNumberToObject(row, "M", static_cast<double>(s.m));
        cJSON_AddNumberToObject(row, "N", static_cast<double>(s.n));
        cJSON_AddNumberToObject(row, "K", static_cast<double>(s.k));
        cJSON_AddStringToObject(row, "isa", dr_isa_name(s.isa));
        cJSON_AddNumberToObject(row, "native_gops", gops);
        if (onednn_gops > 0) {
            cJSON_AddNumberToObject(row, "onednn_gops", onednn_gops);
            cJSON_AddNumberToObject(row, "ratio", ratio);
            cJSON_AddStringToObject(row, "onednn_impl", impl.c_str());
        } else {
            cJSON_AddNullToObject(row, "onednn_gops");
            cJSON_AddNullToObject(row, "ratio");
        }
        if (peak > 0)
            cJSON_AddNumberToObject(row, "pct_peak", pct);
        else
            cJSON_AddNullToObject(row, "pct_peak");
        if (pct_loop > 0)
            cJSON_AddNumberToObject(row, "pct_loop_peak", pct_loop);
        cJSON_AddItemToArray(rows, row);
        n_rows++;
    }
    for (auto *bc : cases)
        dr_bench_case_destroy(bc);
    if (!ratios_small.empty() || !ratios_large.empty())
        std::printf("native/oneDNN int8 GEMM: median ratio %.2f over BERT-mini shapes with M <= "
                    "128 (%zu rows), %.2f at M >= 512 (%zu rows); oneDNN rows on a ref "
                    "implementation: %d; oneDNN/native mismatches: %d\n",
                    dr_bench::median(ratios_small), ratios_small.size(),
                    dr_bench::median(ratios_large), ratios_large.size(), ref_rows, mismatches);
    // A hand loop well below the ISA's peak means the core was shared (a sibling thread of
    // another machine) or throttled: measured here, the native GEMM then loses more at large
    // M than oneDNN does (docs/kernels.md), so such a run does not stand for the kernels.
    for (dr_isa isa : isas) {
        double peak = peak_ops_per_cycle(isa) * ghz;
        if (loop_peak[isa] > 0 && peak > 0 && loop_peak[isa] < 0.9 * peak)
            std::printf("WARNING: the %s hand loop reached %.0f%% of its peak in this run: the "
                        "core was shared or throttled; compare runs on a quiet core\n",
                        dr_isa_name(isa), 100.0 * loop_peak[isa] / peak);
    }

    char *text = cJSON_Print(rows);
    cJSON_Delete(rows);
    std::string dir = json_path.substr(0, json_path.find_last_of('/'));
    if (dir != json_path)
        std::system(("mkdir -p '" + dir + "'").c_str());
    FILE *f = std::fopen(json_path.c_str(), "w");
    if (!f || std::fputs(text, f) < 0 || std::fclose(f) != 0) {
        std::fprintf(stderr, "kernels_bench: cannot write %s\n", json_path.c_str());
        std::free(text);
        return 1;
    }
    std::free(text);
    std::printf("wrote %s (%d rows); %% of peak = GOPS / (int8 ops per cycle of the ISA x "
                "%.2f GHz); avx2: 64 ops/cycle = %.0f GOPS\n",
                json_path.c_str(), n_rows, ghz, 64 * ghz);
    benchmark::Shutdown();
    return 0;
}
