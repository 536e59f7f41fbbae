/* gemm_s8_neondot.c: the NEON int8 GEMM with sdot (see gemm_s8_neon.c). */
#define DR_GEMM_S8_DOTPROD 1
#include "gemm_s8_neon.c"
