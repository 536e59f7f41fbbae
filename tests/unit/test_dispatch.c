/* test_dispatch.c: the kernel table choice and its DR_ISA_MAX cap.
 * Usage: test_dispatch EXPECT   where EXPECT is "best" (the best usable table) or an ISA
 * name the table must be; ctest runs it under different DR_ISA_MAX values. */
#include "dr_test.h"
#include "kernels.h"

#include <string.h>

static enum dr_isa best_usable(void)
{
    static const enum dr_isa order[] = {DR_ISA_AVX512VNNI, DR_ISA_AVX512, DR_ISA_AVX2,
                                        DR_ISA_NEONDOT,    DR_ISA_NEON,   DR_ISA_REF};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (dr_kernels_for_isa(order[i]))
            return order[i];
    return DR_ISA_REF;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_dispatch best|ISA\n");
        return 2;
    }
    dr_test_init_seed();
    enum dr_isa want;
    if (strcmp(argv[1], "best") == 0) {
        want = best_usable();
    } else if (!dr_isa_parse(argv[1], &want)) {
        fprintf(stderr, "unknown ISA %s\n", argv[1]);
        return 2;
    } else if (!dr_kernels_for_isa(want)) {
        printf("SKIP: %s is not usable on this host\n", argv[1]);
        return DR_TEST_SKIP;
    }
    const struct dr_kernels *k = dr_kernels_get();
    DR_CHECK(k->isa == want, "DR_ISA_MAX=%s chose %s, want %s", getenv("DR_ISA_MAX"),
             dr_isa_name(k->isa), dr_isa_name(want));
    DR_CHECK(dr_kernels_get() == k, "second call returned another table");

    /* Every table this host can use is complete: no NULL entry. */
    for (int i = 0; i < DR_ISA_COUNT; i++) {
        const struct dr_kernels *t = dr_kernels_for_isa((enum dr_isa)i);
        if (!t)
            continue;
        DR_CHECK(t->gemm_s8s8s32 && t->gemm_s8s8f32 && t->gemm_f32_nn && t->gemm_f32_nt &&
                     t->quantize_rows_s8 && t->dequantize_rows_s8 && t->layernorm_f32 &&
                     t->gelu_f32 && t->softmax_f32 && t->lstm_cell_f32 && t->dot_s8 && t->l2sq_s8 &&
                     t->dot_f32 && t->l2sq_f32 && t->topk_f32 && t->gemm_s8_tile,
                 "table %s has a NULL entry", dr_isa_name((enum dr_isa)i));
        DR_CHECK(t->isa == (enum dr_isa)i, "table %d says isa %d", i, (int)t->isa);
    }
    /* Names round-trip; unknown names are refused. */
    for (int i = 0; i < DR_ISA_COUNT; i++) {
        enum dr_isa parsed;
        DR_CHECK(dr_isa_parse(dr_isa_name((enum dr_isa)i), &parsed) && parsed == (enum dr_isa)i,
                 "isa name %d does not round-trip", i);
    }
    enum dr_isa ignored;
    DR_CHECK(!dr_isa_parse("sse9", &ignored), "parsed an unknown ISA");
    DR_CHECK(strcmp(dr_status_str(DR_ERR_FORMAT), "bad format") == 0, "status string");
    printf("%s: DR_ISA_MAX=%s -> %s\n", dr_test_failures ? "FAIL" : "PASS",
           getenv("DR_ISA_MAX") ? getenv("DR_ISA_MAX") : "(unset)", dr_isa_name(k->isa));
    return dr_test_failures ? 1 : 0;
}
