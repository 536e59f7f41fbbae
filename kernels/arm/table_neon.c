/* table_neon.c: the NEON and NEON-dotprod tables.  They differ only where sdot replaces the
 * widening multiply: the int8 GEMM and dot_s8. */
#include "../tables.h"
#include "arm.h"

#define DR_NEON_COMMON                                                                             \
    .gemm_f32_nn = dr_gemm_f32_nn__neon, .gemm_f32_nt = dr_gemm_f32_nt__neon,                      \
    .transpose_f32 = dr_transpose_f32__neon, .quantize_rows_s8 = dr_quantize_rows_s8__neon,        \
    .dequantize_rows_s8 = dr_dequantize_rows_s8__neon, .layernorm_f32 = dr_layernorm_f32__neon,    \
    .gelu_f32 = dr_gelu_f32__neon, .softmax_f32 = dr_softmax_f32__neon,                            \
    .lstm_cell_f32 = dr_lstm_cell_f32__neon, .l2sq_s8 = dr_l2sq_s8__neon,                          \
    .dot_f32 = dr_dot_f32__neon, .l2sq_f32 = dr_l2sq_f32__neon, .topk_f32 = dr_topk_f32__neon

const struct dr_kernels dr__kernels_neon = {
    .isa = DR_ISA_NEON,
    .gemm_s8_tile = "4x16",
    .gemm_s8s8s32 = dr_gemm_s8s8s32__neon,
    .gemm_s8s8f32 = dr_gemm_s8s8f32__neon,
    .dot_s8 = dr_dot_s8__neon,
    DR_NEON_COMMON,
};

const struct dr_kernels dr__kernels_neondot = {
    .isa = DR_ISA_NEONDOT,
    .gemm_s8_tile = "4x16",
    .gemm_s8s8s32 = dr_gemm_s8s8s32__neondot,
    .gemm_s8s8f32 = dr_gemm_s8s8f32__neondot,
    .dot_s8 = dr_dot_s8__neondot,
    DR_NEON_COMMON,
};
