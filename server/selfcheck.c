/* selfcheck.c: what this host runs, and proof that the chosen kernels compute the spec.
 *
 * A deployment sees in one screen the CPU features, the DR_ISA_MAX cap, the table picked,
 * and PASS/FAIL of the chosen integer kernels against __ref on random inputs (the same
 * integers are the scheme's promise on every ISA).  Single-threaded; allocates freely.
 */
#include "selfcheck.h"

#include "kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef DR_VERSION
#define DR_VERSION "0.0.0"
#endif
#ifndef DR_GIT_SHA
#define DR_GIT_SHA "unknown"
#endif

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static int rand_in(int lo, int hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (int)(rng_state % (uint64_t)(hi - lo + 1));
}

static int check_gemm(const struct dr_kernels *kern, const struct dr_kernels *ref)
{
    enum { M = 13, N = 77, K = 259 };
    int8_t *a = malloc(M * K), *w = malloc(N * K);
    int32_t *c = malloc(M * N * sizeof(int32_t)), *c_ref = malloc(M * N * sizeof(int32_t));
    int ok = 0;
    struct dr_packed_s8 packed;
    if (!a || !w || !c || !c_ref)
        goto out;
    for (int i = 0; i < M * K; i++)
        a[i] = (int8_t)rand_in(-128, 127);
    for (int i = 0; i < N * K; i++)
        w[i] = (int8_t)rand_in(DR_S8_WEIGHT_MIN, DR_S8_WEIGHT_MAX);
    if (dr_packed_s8_init(&packed, N, K, w, K, NULL) != DR_OK)
        goto out;
    kern->gemm_s8s8s32(M, a, K, &packed, c, N);
    ref->gemm_s8s8s32(M, a, K, &packed, c_ref, N);
    ok = memcmp(c, c_ref, M * N * sizeof(int32_t)) == 0;
    dr_packed_s8_deinit(&packed);
out:
    free(a);
    free(w);
    free(c);
    free(c_ref);
    return ok;
}

static int check_dot(const struct dr_kernels *kern, const struct dr_kernels *ref)
{
    enum { DIM = 131, ROWS = 50 };
    int8_t q[DIM], base[ROWS * DIM];
    int32_t out[ROWS], out_ref[ROWS];
    for (int i = 0; i < DIM; i++)
        q[i] = (int8_t)rand_in(-127, 127);
    for (int i = 0; i < ROWS * DIM; i++)
        base[i] = (int8_t)rand_in(-127, 127);
    kern->dot_s8(DIM, q, base, DIM, NULL, ROWS, out);
    ref->dot_s8(DIM, q, base, DIM, NULL, ROWS, out_ref);
    return memcmp(out, out_ref, sizeof out) == 0;
}

static int check_quantize(const struct dr_kernels *kern, const struct dr_kernels *ref)
{
    enum { M = 3, K = 301 };
    float x[M * K], s[M], s_ref[M];
    int8_t q[M * K], q_ref[M * K];
    for (int i = 0; i < M * K; i++)
        x[i] = (float)rand_in(-100000, 100000) / 977.0f;
    kern->quantize_rows_s8(M, K, x, K, q, K, s);
    ref->quantize_rows_s8(M, K, x, K, q_ref, K, s_ref);
    return memcmp(q, q_ref, sizeof q) == 0 && memcmp(s, s_ref, sizeof s) == 0;
}

int dr_selfcheck_run(FILE *out)
{
    const struct dr_cpu_features *cpu = dr_cpu_features_get();
    fprintf(out, "driftrec %s (commit %s)\n", DR_VERSION, DR_GIT_SHA);
    fprintf(out, "cpu: %s\n", cpu->model_name[0] ? cpu->model_name : "unknown");
    fprintf(out,
            "cpu features: avx2=%d fma=%d avx512f=%d avx512bw=%d avx512vl=%d "
            "avx512vnni=%d neon=%d neon_dotprod=%d neon_i8mm=%d\n",
            cpu->has_avx2, cpu->has_fma, cpu->has_avx512f, cpu->has_avx512bw, cpu->has_avx512vl,
            cpu->has_avx512vnni, cpu->has_neon, cpu->has_neon_dotprod, cpu->has_neon_i8mm);
    fprintf(out, "kernel tables:");
    for (int i = 0; i < DR_ISA_COUNT; i++) {
        enum dr_isa isa = (enum dr_isa)i;
        const char *state = !dr__kernels_table(isa)         ? "not built"
                            : dr_cpu_supports_isa(cpu, isa) ? "usable"
                                                            : "cpu lacks it";
        fprintf(out, " %s(%s)", dr_isa_name(isa), state);
    }
    fprintf(out, "\n");
    const char *cap = getenv("DR_ISA_MAX");
    const struct dr_kernels *kern = dr_kernels_get();
    fprintf(out, "kernels: isa=%s gemm=%s (DR_ISA_MAX=%s)\n", dr_isa_name(kern->isa),
            kern->gemm_s8_tile, cap && *cap ? cap : "unset");

    const struct dr_kernels *ref = dr__kernels_table(DR_ISA_REF);
    struct {
        const char *name;
        int (*check)(const struct dr_kernels *, const struct dr_kernels *);
    } checks[] = {
        {"gemm_s8s8s32", check_gemm}, {"dot_s8", check_dot}, {"quantize_rows_s8", check_quantize}};
    int failed = 0;
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        int ok = checks[i].check(kern, ref);
        fprintf(out, "self-test %-17s %s vs ref: %s\n", checks[i].name, dr_isa_name(kern->isa),
                ok ? "PASS (bit-exact)" : "FAIL");
        failed += !ok;
    }
    return failed ? 1 : 0;
}
