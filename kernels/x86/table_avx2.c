/* table_avx2.c: the AVX2 + FMA table. */
#include "../tables.h"
#include "x86.h"

const struct dr_kernels dr__kernels_avx2 = {
    .isa = DR_ISA_AVX2,
    .gemm_s8_tile = "4x16",
    .gemm_s8s8s32 = dr_gemm_s8s8s32__avx2,
    .gemm_s8s8f32 = dr_gemm_s8s8f32__avx2,
    .gemm_f32_nn = dr_gemm_f32_nn__avx2,
    .gemm_f32_nt = dr_gemm_f32_nt__avx2,
    .transpose_f32 = dr_transpose_f32__avx2,
    .quantize_rows_s8 = dr_quantize_rows_s8__avx2,
    .dequantize_rows_s8 = dr_dequantize_rows_s8__avx2,
    .layernorm_f32 = dr_layernorm_f32__avx2,
    .gelu_f32 = dr_gelu_f32__avx2,
    .softmax_f32 = dr_softmax_f32__avx2,
    .lstm_cell_f32 = dr_lstm_cell_f32__avx2,
    .dot_s8 = dr_dot_s8__avx2,
    .l2sq_s8 = dr_l2sq_s8__avx2,
    .dot_f32 = dr_dot_f32__avx2,
    .l2sq_f32 = dr_l2sq_f32__avx2,
    .topk_f32 = dr_topk_f32__avx2,
};
