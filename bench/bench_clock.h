/* bench_clock.h: what the core delivers while a benchmark runs: its clock and the int8 rate
 * of a hand loop (bench_clock.c, peak_x86.c).  Shared by the benchmark mains. */
#ifndef DR_BENCH_CLOCK_H
#define DR_BENCH_CLOCK_H

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The int8 rate a hand loop of independent multiply-accumulate chains reaches now, in GOPS
 * (AVX2 and AVX-512 VNNI; 0 for other ISAs or when the CPU lacks it). */
double dr_bench_measure_int8_peak_gops(enum dr_isa isa);

/* The core's real clock in GHz, from a chain of dependent imuls (3 cycles each). */
double dr_bench_measure_ghz(void);

#ifdef __cplusplus
}
#endif

#endif /* DR_BENCH_CLOCK_H */
