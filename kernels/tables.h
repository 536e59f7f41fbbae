/* tables.h: the per-ISA kernel tables, defined next to their kernels (internal). */
#ifndef DR_TABLES_H
#define DR_TABLES_H

#include "kernels.h"

extern const struct dr_kernels dr__kernels_ref;
#ifdef DR_HAVE_X86_AVX2
extern const struct dr_kernels dr__kernels_avx2;
#endif
#ifdef DR_HAVE_X86_AVX512
extern const struct dr_kernels dr__kernels_avx512;
extern const struct dr_kernels dr__kernels_avx512vnni;
#endif
#ifdef DR_HAVE_ARM_NEON
extern const struct dr_kernels dr__kernels_neon;
extern const struct dr_kernels dr__kernels_neondot;
#endif

#endif /* DR_TABLES_H */
