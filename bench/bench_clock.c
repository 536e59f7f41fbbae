/* bench_clock.c: the core's real clock, for the benchmarks' "% of peak" columns. */
#include "bench_clock.h"

#include <stdint.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* immune to other processes' turns */
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

double dr_bench_measure_ghz(void)
{
#if defined(__x86_64__)
    /* 8 dependent imuls per iteration, 3 cycles each on every x86 core since Nehalem and
     * on AMD Zen.  (Chains of add-immediate are no clock: newer Intel cores fold them at
     * rename.)  Best of 5. */
    double best = 0.0;
    for (int rep = 0; rep < 5; rep++) {
        uint64_t iters = 10 * 1000 * 1000, x = 1;
        double t0 = now_ns();
        __asm__ volatile("1:\n\t"
                         "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0\n\t"
                         "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0\n\t"
                         "dec %1\n\tjnz 1b"
                         : "+r"(x), "+r"(iters));
        double ghz = 3.0 * 8.0 * 10e6 / (now_ns() - t0);
        if (ghz > best)
            best = ghz;
    }
    return best;
#else
    return 0.0; /* unknown: the report then omits % of peak */
#endif
}
