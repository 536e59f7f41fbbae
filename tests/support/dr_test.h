/* dr_test.h: the small harness every C test uses.
 *
 * Each test binary is its own ctest entry.  Exit 0 = pass, 1 = fail, 77 = skip (ctest's
 * SKIP_RETURN_CODE), so an ISA the host lacks shows as skipped, never as passed.  Random
 * inputs come from one seed (DR_TEST_SEED, else the time), printed with every failure so a
 * failure can be replayed.
 */
#ifndef DR_TEST_H
#define DR_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define DR_TEST_SKIP 77

static uint64_t dr_test_seed;
static uint64_t dr_test_rng_state;
static int dr_test_failures;

static inline void dr_test_init_seed(void)
{
    const char *env = getenv("DR_TEST_SEED");
    dr_test_seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    dr_test_rng_state = dr_test_seed;
}

/* splitmix64: tiny, good enough for test data, identical on every platform. */
static inline uint64_t dr_test_rand_u64(void)
{
    uint64_t z = (dr_test_rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform integer in [lo, hi]. */
static inline int dr_test_rand_int(int lo, int hi)
{
    return lo + (int)(dr_test_rand_u64() % (uint64_t)(hi - lo + 1));
}

/* Uniform float in [lo, hi). */
static inline float dr_test_rand_float(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(dr_test_rand_u64() >> 40) / (double)(1ULL << 24));
}

/* Roughly normal (sum of uniforms), for activation-like data. */
static inline float dr_test_rand_normal(void)
{
    float s = 0.0f;
    for (int i = 0; i < 4; i++)
        s += dr_test_rand_float(-1.0f, 1.0f);
    return s * 0.8660254f;
}

/* The largest |a[j] - b[j]| and the cosine of two vectors of dim floats, in double. */
static inline void dr_test_compare_rows(const float *a, const float *b, size_t dim, double *max_abs,
                                        double *cosine)
{
    double worst = 0, dot = 0, na = 0, nb = 0;
    for (size_t j = 0; j < dim; j++) {
        double x = a[j], y = b[j];
        worst = fmax(worst, fabs(x - y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    *max_abs = worst;
    *cosine = dot / sqrt(na * nb);
}

#define DR_TEST_FAIL(...)                                                                          \
    do {                                                                                           \
        fprintf(stderr, "FAIL %s:%d (seed %" PRIu64 "): ", __FILE__, __LINE__, dr_test_seed);      \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        dr_test_failures++;                                                                        \
    } while (0)

#define DR_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            DR_TEST_FAIL(__VA_ARGS__);                                                             \
    } while (0)

#endif /* DR_TEST_H */
