/* table_ref.c: the reference table: the spec, the fallback on every CPU, the test oracle. */
#include "../tables.h"
#include "ref.h"

const struct dr_kernels dr__kernels_ref = {
    .isa = DR_ISA_REF,
    .gemm_s8_tile = "1x1",
    .gemm_s8s8s32 = dr_gemm_s8s8s32__ref,
    .gemm_s8s8f32 = dr_gemm_s8s8f32__ref,
    .gemm_f32_nn = dr_gemm_f32_nn__ref,
    .gemm_f32_nt = dr_gemm_f32_nt__ref,
    .transpose_f32 = dr_transpose_f32__ref,
    .quantize_rows_s8 = dr_quantize_rows_s8__ref,
    .dequantize_rows_s8 = dr_dequantize_rows_s8__ref,
    .layernorm_f32 = dr_layernorm_f32__ref,
    .gelu_f32 = dr_gelu_f32__ref,
    .softmax_f32 = dr_softmax_f32__ref,
    .lstm_cell_f32 = dr_lstm_cell_f32__ref,
    .dot_s8 = dr_dot_s8__ref,
    .l2sq_s8 = dr_l2sq_s8__ref,
    .dot_f32 = dr_dot_f32__ref,
    .l2sq_f32 = dr_l2sq_f32__ref,
    .topk_f32 = dr_topk_f32__ref,
};
