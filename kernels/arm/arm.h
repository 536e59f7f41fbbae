/* arm.h: the NEON kernels (internal; reach them through dr_kernels). */
#ifndef DR_ARM_H
#define DR_ARM_H

#include "../kernels.h"

void dr_gemm_s8s8s32__neon(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                           int32_t *c, size_t ldc);
void dr_gemm_s8s8f32__neon(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                           float *c, size_t ldc, const struct dr_gemm_epilogue *ep);
void dr_gemm_s8s8s32__neondot(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                              int32_t *c, size_t ldc);
void dr_gemm_s8s8f32__neondot(size_t m, const int8_t *a, size_t lda, const struct dr_packed_s8 *b,
                              float *c, size_t ldc, const struct dr_gemm_epilogue *ep);
void dr_gemm_f32_nn__neon(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                          size_t ldb, const float *bias, float *c, size_t ldc);
void dr_transpose_f32__neon(size_t rows, size_t cols, const float *src, size_t ld_src, float *dst,
                            size_t ld_dst);
void dr_gemm_f32_nt__neon(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                          size_t ldb, const float *bias, float *c, size_t ldc);
void dr_quantize_rows_s8__neon(size_t m, size_t k, const float *x, size_t ldx, int8_t *q,
                               size_t ldq, float *scales);
void dr_dequantize_rows_s8__neon(size_t m, size_t k, const int8_t *q, size_t ldq,
                                 const float *scales, float *x, size_t ldx);
void dr_layernorm_f32__neon(size_t m, size_t n, const float *x, size_t ldx, const float *gamma,
                            const float *beta, float eps, float *y, size_t ldy);
void dr_gelu_f32__neon(size_t n, const float *x, float *y);
void dr_softmax_f32__neon(size_t m, size_t n, float *x, size_t ldx, size_t n_valid, float scale);
void dr_lstm_cell_f32__neon(size_t batch, size_t hidden, const float *gates, size_t ld_gates,
                            float *c, float *h, size_t ld_state);
void dr_dot_s8__neon(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                     const uint32_t *ids, size_t n, int32_t *out);
void dr_dot_s8__neondot(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                        const uint32_t *ids, size_t n, int32_t *out);
void dr_l2sq_s8__neon(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                      const uint32_t *ids, size_t n, int32_t *out);
void dr_dot_f32__neon(size_t dim, const float *q, const float *base, size_t ld, const uint32_t *ids,
                      size_t n, float *out);
void dr_l2sq_f32__neon(size_t dim, const float *q, const float *base, size_t ld,
                       const uint32_t *ids, size_t n, float *out);
size_t dr_topk_f32__neon(size_t n, const float *scores, size_t k, uint32_t *out_ids,
                         float *out_scores);

#endif /* DR_ARM_H */
