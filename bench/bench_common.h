// bench_common.h: what the C++ benchmark mains share: the reporter that keeps each
// benchmark's median (thread CPU time and wall time), the default flags, list parsing and
// medians.  Header-only; included by kernels_bench.cc and models/models_bench.cc.
#ifndef DR_BENCH_COMMON_H
#define DR_BENCH_COMMON_H

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace dr_bench
{

struct Timing {
    double cpu_s = 0, wall_s = 0; // per run
    bool ok = false;
};

// Keeps each benchmark's median aggregate (or its single run without repetitions).  Thread
// CPU time is the figure to report: equal to wall time on a quiet machine, and unlike wall
// time not inflated when other processes take turns on this core.
class MedianReporter : public benchmark::BenchmarkReporter
{
  public:
    std::map<std::string, Timing> results;
    bool ReportContext(const Context &) override
    {
        return true;
    }
    void ReportRuns(const std::vector<Run> &runs) override
    {
        for (const auto &run : runs) {
            bool is_median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
            bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
            if ((!is_median && !single) || run.error_occurred)
                continue;
            Timing t;
            t.cpu_s = run.GetAdjustedCPUTime() / 1e9; // time unit is ns
            t.wall_s = run.GetAdjustedRealTime() / 1e9;
            t.ok = true;
            results[run.run_name.function_name] = t;
            std::fprintf(stderr, ".");
        }
    }
};

// Adds the defaults (0.1 s minimum time, `repetitions` repetitions, aggregates only) unless
// the caller's flags set them, then initialises Google Benchmark.  args[0] is the program.
inline void initialize(std::vector<char *> &args, int repetitions)
{
    bool has_min_time = false, has_reps = false;
    for (char *a : args) {
        has_min_time |= std::strncmp(a, "--benchmark_min_time", 20) == 0;
        has_reps |= std::strncmp(a, "--benchmark_repetitions", 23) == 0;
    }
    static char min_time[] = "--benchmark_min_time=0.1";
    static char reps[48];
    static char agg[] = "--benchmark_report_aggregates_only=true";
    std::snprintf(reps, sizeof reps, "--benchmark_repetitions=%d", repetitions);
    if (!has_min_time)
        args.push_back(min_time);
    if (!has_reps)
        args.push_back(reps);
    args.push_back(agg);
    int argc = static_cast<int>(args.size());
    benchmark::Initialize(&argc, args.data());
}

inline std::vector<size_t> parse_list(const std::string &s)
{
    std::vector<size_t> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ','))
        if (!item.empty())
            out.push_back(std::stoul(item));
    return out;
}

inline double median(std::vector<double> v)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

} // namespace dr_bench

#endif // DR_BENCH_COMMON_H
