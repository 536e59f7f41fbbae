/* kernels_bench_ops.h: benchmark bodies in C, driven by the C++ Google Benchmark main. */
#ifndef DR_KERNELS_BENCH_OPS_H
#define DR_KERNELS_BENCH_OPS_H

#include <stddef.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dr_bench_case;

/* op: "gemm_s8" (int8 GEMM with the fp32 epilogue: scales + bias) or "lstm_s8" (one
 * batched LSTM step, n = 4 * hidden, k = input + hidden).  Returns NULL on a bad op or
 * shape, or when memory runs out. */
struct dr_bench_case *dr_bench_case_create(const char *op, const struct dr_kernels *kern, size_t m,
                                           size_t n, size_t k);
void dr_bench_case_run(struct dr_bench_case *bc);
double dr_bench_case_ops(const struct dr_bench_case *bc); /* integer ops per run */
void dr_bench_case_destroy(struct dr_bench_case *bc);

/* The core's real clock in GHz, from a chain of dependent adds (1 cycle each). */
double dr_bench_measure_ghz(void);

#ifdef __cplusplus
}
#endif

#endif /* DR_KERNELS_BENCH_OPS_H */
