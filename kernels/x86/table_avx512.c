/* table_avx512.c: the AVX-512 and AVX-512 VNNI tables.  They differ only where VNNI's
 * vpdpbusd replaces the vpmaddubsw + vpmaddwd pair: the int8 GEMM and dot_s8. */
#include "../tables.h"
#include "x86.h"

#define DR_AVX512_COMMON                                                                           \
    .gemm_f32_nn = dr_gemm_f32_nn__avx512, .gemm_f32_nt = dr_gemm_f32_nt__avx512,                  \
    .transpose_f32 = dr_transpose_f32__avx512, .quantize_rows_s8 = dr_quantize_rows_s8__avx512,    \
    .dequantize_rows_s8 = dr_dequantize_rows_s8__avx512,                                           \
    .layernorm_f32 = dr_layernorm_f32__avx512, .gelu_f32 = dr_gelu_f32__avx512,                    \
    .softmax_f32 = dr_softmax_f32__avx512, .lstm_cell_f32 = dr_lstm_cell_f32__avx512,              \
    .l2sq_s8 = dr_l2sq_s8__avx512, .dot_f32 = dr_dot_f32__avx512, .l2sq_f32 = dr_l2sq_f32__avx512, \
    .topk_f32 = dr_topk_f32__avx512

const struct dr_kernels dr__kernels_avx512 = {
    .isa = DR_ISA_AVX512,
    .gemm_s8_tile = "8x32",
    .gemm_s8s8s32 = dr_gemm_s8s8s32__avx512,
    .gemm_s8s8f32 = dr_gemm_s8s8f32__avx512,
    .dot_s8 = dr_dot_s8__avx512,
    DR_AVX512_COMMON,
};

const struct dr_kernels dr__kernels_avx512vnni = {
    .isa = DR_ISA_AVX512VNNI,
    .gemm_s8_tile = "8x32",
    .gemm_s8s8s32 = dr_gemm_s8s8s32__avx512vnni,
    .gemm_s8s8f32 = dr_gemm_s8s8f32__avx512vnni,
    .dot_s8 = dr_dot_s8__avx512vnni,
    DR_AVX512_COMMON,
};
