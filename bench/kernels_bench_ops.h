/* kernels_bench_ops.h: benchmark bodies in C, driven by the C++ Google Benchmark main. */
#ifndef DR_KERNELS_BENCH_OPS_H
#define DR_KERNELS_BENCH_OPS_H

#include <stddef.h>

#include "bench_clock.h"
#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dr_bench_case;

/* op: "gemm_s8" (int8 x int8 -> int32, the same work oneDNN's s8 matmul does),
 * "gemm_s8_f32" (with the fused epilogue: scales + bias), or "lstm_s8" (one batched LSTM
 * step, n = 4 * hidden, k = input + hidden).  with_onednn also prepares a oneDNN matmul
 * for "gemm_s8" (skipped, with a message, if oneDNN is not built in).  Returns NULL on a
 * bad op or shape, or when memory runs out. */
struct dr_bench_case *dr_bench_case_create(const char *op, const struct dr_kernels *kern, size_t m,
                                           size_t n, size_t k, int with_onednn);
void dr_bench_case_run(struct dr_bench_case *bc);
/* 1 if a oneDNN matmul was prepared; run it; its implementation name. */
int dr_bench_case_has_onednn(const struct dr_bench_case *bc);
void dr_bench_case_run_onednn(struct dr_bench_case *bc);
const char *dr_bench_case_onednn_impl(const struct dr_bench_case *bc);
/* 1 if oneDNN and native gave the same int32 results on this case's inputs. */
int dr_bench_case_onednn_agrees(struct dr_bench_case *bc);
double dr_bench_case_ops(const struct dr_bench_case *bc); /* integer ops per run */
void dr_bench_case_destroy(struct dr_bench_case *bc);

#ifdef __cplusplus
}
#endif

#endif /* DR_KERNELS_BENCH_OPS_H */
