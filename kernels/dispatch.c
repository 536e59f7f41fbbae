/* dispatch.c: picks the kernel table once, best ISA first, __ref last.
 *
 * The ordered list below is the whole policy.  DR_ISA_MAX caps it (for A/B runs and bug
 * reproduction: DR_ISA_MAX=ref runs the scalar spec everywhere).  The choice is made once
 * through call_once and reported by dr_kernels_get's callers (server log, self-check, bench).
 */
#include "kernels.h"
#include "tables.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <threads.h>

static const char *const isa_names[DR_ISA_COUNT] = {
    [DR_ISA_REF] = "ref",       [DR_ISA_AVX2] = "avx2",
    [DR_ISA_AVX512] = "avx512", [DR_ISA_AVX512VNNI] = "avx512vnni",
    [DR_ISA_NEON] = "neon",     [DR_ISA_NEONDOT] = "neondot",
};

const char *dr_isa_name(enum dr_isa isa)
{
    return (unsigned)isa < DR_ISA_COUNT ? isa_names[isa] : "unknown";
}

bool dr_isa_parse(const char *name, enum dr_isa *out)
{
    for (int i = 0; i < DR_ISA_COUNT; i++) {
        if (strcasecmp(name, isa_names[i]) == 0) {
            *out = (enum dr_isa)i;
            return true;
        }
    }
    return false;
}

const struct dr_kernels *dr__kernels_table(enum dr_isa isa)
{
    switch (isa) {
    case DR_ISA_REF:
        return &dr__kernels_ref;
#ifdef DR_HAVE_X86_AVX2
    case DR_ISA_AVX2:
        return &dr__kernels_avx2;
#endif
#ifdef DR_HAVE_X86_AVX512
    case DR_ISA_AVX512:
        return &dr__kernels_avx512;
    case DR_ISA_AVX512VNNI:
        return &dr__kernels_avx512vnni;
#endif
#ifdef DR_HAVE_ARM_NEON
    case DR_ISA_NEON:
        return &dr__kernels_neon;
    case DR_ISA_NEONDOT:
        return &dr__kernels_neondot;
#endif
    default:
        return NULL;
    }
}

const struct dr_kernels *dr_kernels_for_isa(enum dr_isa isa)
{
    const struct dr_kernels *table = dr__kernels_table(isa);
    if (!table || !dr_cpu_supports_isa(dr_cpu_features_get(), isa))
        return NULL;
    return table;
}

/* Best first.  An ISA may appear here before its table is built in; it is then skipped. */
static const enum dr_isa preference[] = {
    DR_ISA_AVX512VNNI, DR_ISA_AVX512, DR_ISA_AVX2, DR_ISA_NEONDOT, DR_ISA_NEON, DR_ISA_REF,
};

static const struct dr_kernels *g_chosen;
static once_flag g_chosen_once = ONCE_FLAG_INIT;

/* An ISA's rank in the cap's family: x86 and Arm caps only compare within their family. */
static bool isa_within_cap(enum dr_isa isa, enum dr_isa cap)
{
    if (isa == DR_ISA_REF)
        return true;
    bool isa_x86 = isa <= DR_ISA_AVX512VNNI, cap_x86 = cap <= DR_ISA_AVX512VNNI;
    if (cap == DR_ISA_REF)
        return false;
    if (isa_x86 != cap_x86)
        return false;
    return isa <= cap;
}

static void choose_once(void)
{
    enum dr_isa cap = DR_ISA_COUNT;
    const char *env = getenv("DR_ISA_MAX");
    if (env && *env) {
        if (!dr_isa_parse(env, &cap)) {
            fprintf(stderr,
                    "driftrec: DR_ISA_MAX=%s is not an ISA (ref, avx2, avx512, avx512vnni, "
                    "neon, neondot); ignoring it\n",
                    env);
            cap = DR_ISA_COUNT;
        }
    }
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++) {
        enum dr_isa isa = preference[i];
        if (cap != DR_ISA_COUNT && !isa_within_cap(isa, cap))
            continue;
        const struct dr_kernels *table = dr_kernels_for_isa(isa);
        if (table) {
            g_chosen = table;
            return;
        }
    }
    g_chosen = &dr__kernels_ref;
}

const struct dr_kernels *dr_kernels_get(void)
{
    call_once(&g_chosen_once, choose_once);
    return g_chosen;
}
