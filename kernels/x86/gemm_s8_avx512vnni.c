/* gemm_s8_avx512vnni.c: the AVX-512 int8 GEMM with vpdpbusd (see gemm_s8_avx512.c). */
#define DR_GEMM_S8_VNNI 1
#include "gemm_s8_avx512.c"
