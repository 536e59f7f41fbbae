/* peak_x86.c: the int8 multiply-accumulate rate this core reaches right now, measured with a
 * hand loop of independent chains (no loads), for the benchmark's "% of measured peak".
 * On a shared host the theoretical peak (ops/cycle x clock) overstates what is available
 * when a sibling hyperthread or a throttled clock takes vector throughput; this loop sees
 * the same conditions the kernels do.  Timed in thread CPU time, best of 5. */
#include "bench_clock.h"

#include <immintrin.h>
#include <time.h>

static double thread_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* 6 independent vpmaddubsw + vpmaddwd + vpaddd chains, each with its own operand so the
 * compiler cannot share a product between them: 6 x 64 int8 ops per iteration.  (16 ymm
 * registers: 6 accumulators, 6 operands, a, ones.) */
__attribute__((target("avx2"))) static double avx2_loop(long iters)
{
    __m256i a = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i b0 = _mm256_set1_epi8(1), b1 = _mm256_set1_epi8(2), b2 = _mm256_set1_epi8(3);
    __m256i b3 = _mm256_set1_epi8(4), b4 = _mm256_set1_epi8(5), b5 = _mm256_set1_epi8(6);
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (long it = 0; it < iters; it++) {
        c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b0), ones));
        c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b1), ones));
        c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b2), ones));
        c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b3), ones));
        c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b4), ones));
        c5 = _mm256_add_epi32(c5, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b5), ones));
        /* The operands "change" every iteration: no product can be hoisted out of the loop. */
        __asm__ volatile("" : "+x"(a), "+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3), "+x"(b4), "+x"(b5));
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3));
    s = _mm256_add_epi32(s, _mm256_add_epi32(c4, c5));
    return (double)_mm256_extract_epi32(s, 0);
}

/* 12 independent vpdpbusd zmm chains (enough to cover its latency at two per cycle):
 * 12 x 128 int8 ops per iteration. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static double vnni_loop(long iters)
{
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);
    __m512i acc[12];
    for (int i = 0; i < 12; i++)
        acc[i] = _mm512_setzero_si512();
    for (long it = 0; it < iters; it++) {
        for (int i = 0; i < 12; i++)
            acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
        __asm__ volatile("" : "+v"(a), "+v"(b));
    }
    __m512i s = acc[0];
    for (int i = 1; i < 12; i++)
        s = _mm512_add_epi32(s, acc[i]);
    return (double)_mm512_reduce_add_epi32(s);
}

double dr_bench_measure_int8_peak_gops(enum dr_isa isa)
{
    if (!dr_kernels_for_isa(isa))
        return 0.0;
    double (*loop)(long) = NULL;
    double ops_per_iter = 0;
    if (isa == DR_ISA_AVX2) {
        loop = avx2_loop;
        ops_per_iter = 6 * 64;
    } else if (isa == DR_ISA_AVX512VNNI) {
        loop = vnni_loop;
        ops_per_iter = 12 * 128; /* vpdpbusd zmm: 64 multiply-adds */
    } else {
        return 0.0;
    }
    long iters = 2 * 1000 * 1000;
    double best = 0.0, sink = 0.0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = thread_ns();
        sink += loop(iters);
        double gops = ops_per_iter * (double)iters / (thread_ns() - t0);
        if (gops > best)
            best = gops;
    }
    return sink == -1.0 ? 0.0 : best;
}
