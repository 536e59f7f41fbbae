/* cpu_features.c: what this CPU and its OS let driftrec run.
 *
 * x86: CPUID says what the core implements; XGETBV says whether the OS saves the YMM and
 * ZMM state on a context switch.  Both must agree before an AVX2 or AVX-512 path is used,
 * or the first vector instruction faults (or silently loses state under a hypervisor).
 * Arm: getauxval(AT_HWCAP/AT_HWCAP2), the kernel's own view of the features.
 * Read once through call_once; the cached struct is read-only afterwards.
 */
#include "kernels.h"

#include <string.h>
#include <threads.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(struct dr_cpu_features *f)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return;
    bool has_osxsave = (ecx >> 27) & 1;
    bool has_fma = (ecx >> 12) & 1;
    bool has_avx = (ecx >> 28) & 1;
    uint64_t xcr0 = has_osxsave ? read_xcr0() : 0;
    bool os_ymm = (xcr0 & 0x6) == 0x6;             /* SSE + AVX state */
    bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */

    unsigned int max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        f->has_avx2 = has_avx && os_ymm && ((ebx >> 5) & 1);
        f->has_fma = has_fma && os_ymm;
        f->has_avx512f = os_zmm && ((ebx >> 16) & 1);
        f->has_avx512dq = os_zmm && ((ebx >> 17) & 1);
        f->has_avx512bw = os_zmm && ((ebx >> 30) & 1);
        f->has_avx512vl = os_zmm && ((ebx >> 31) & 1);
        f->has_avx512vnni = os_zmm && ((ecx >> 11) & 1);
    }

    unsigned int brand[12];
    if (__get_cpuid_max(0x80000000, NULL) >= 0x80000004) {
        for (unsigned int i = 0; i < 3; i++)
            __cpuid(0x80000002 + i, brand[4 * i], brand[4 * i + 1], brand[4 * i + 2],
                    brand[4 * i + 3]);
        memcpy(f->model_name, brand, sizeof brand);
        f->model_name[sizeof brand] = '\0';
        /* The brand string is padded with leading and trailing spaces on some parts. */
        char *start = f->model_name;
        while (*start == ' ')
            start++;
        memmove(f->model_name, start, strlen(start) + 1);
        size_t len = strlen(f->model_name);
        while (len > 0 && f->model_name[len - 1] == ' ')
            f->model_name[--len] = '\0';
    }
}

#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif

static void detect(struct dr_cpu_features *f)
{
    unsigned long hwcap = getauxval(AT_HWCAP);
    unsigned long hwcap2 = getauxval(AT_HWCAP2);
    f->has_neon = (hwcap & HWCAP_ASIMD) != 0;
    f->has_neon_dotprod = f->has_neon && (hwcap & HWCAP_ASIMDDP) != 0;
    f->has_neon_i8mm = f->has_neon && (hwcap2 & HWCAP2_I8MM) != 0;
    strcpy(f->model_name, "aarch64");
}

#else
static void detect(struct dr_cpu_features *f)
{
    (void)f;
}
#endif

static struct dr_cpu_features g_features;
static once_flag g_features_once = ONCE_FLAG_INIT;

static void detect_once(void)
{
    detect(&g_features);
}

const struct dr_cpu_features *dr_cpu_features_get(void)
{
    call_once(&g_features_once, detect_once);
    return &g_features;
}

bool dr_cpu_supports_isa(const struct dr_cpu_features *cpu, enum dr_isa isa)
{
    bool avx512 = cpu->has_avx512f && cpu->has_avx512bw && cpu->has_avx512vl && cpu->has_avx512dq &&
                  cpu->has_fma;
    switch (isa) {
    case DR_ISA_REF:
        return true;
    case DR_ISA_AVX2:
        return cpu->has_avx2 && cpu->has_fma;
    case DR_ISA_AVX512:
        return avx512;
    case DR_ISA_AVX512VNNI:
        return avx512 && cpu->has_avx512vnni;
    case DR_ISA_NEON:
        return cpu->has_neon;
    case DR_ISA_NEONDOT:
        return cpu->has_neon_dotprod;
    case DR_ISA_COUNT:
        break;
    }
    return false;
}
