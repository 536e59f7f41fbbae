/* onednn.h: oneDNN 2.6 matmul primitives as a second backend for the matrix products.
 *
 * One object per weight matrix: primitives are created, and the weights reordered into the
 * layout oneDNN picks, once per M bucket at load, then warmed; the request path only runs
 * them.  A call whose m is not a bucket runs the next larger bucket on a zero-padded copy
 * in the caller's workspace.  The int8 form takes the same int8 scheme as the native
 * kernels (s8 activations, weights in [-64, 63]; oneDNN's AVX2 path shifts activations to
 * u8 and would saturate with 8-bit weights) and returns int32: oneDNN 2.6 cannot fuse
 * per-row x per-column scales, so the dequantisation stays with the caller.
 *
 * Threads: an object owns one oneDNN stream; run it from one thread at a time (a worker
 * owns its objects).  oneDNN here uses OpenMP: set OMP_NUM_THREADS before the process
 * starts to choose its thread count.
 */
#ifndef DR_ONEDNN_H
#define DR_ONEDNN_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

enum dr_gemm_backend { DR_GEMM_NATIVE = 0, DR_GEMM_ONEDNN };
/* DR_GEMM=native|onednn (default native); an unknown value is reported and ignored. */
enum dr_gemm_backend dr_gemm_backend_from_env(void);

struct dr_onednn_matmul;

/* w: n x k row-major int8 (borrowed; copied).  m_buckets: ascending M values to prepare.
 * Returns owned (free with dr_onednn_matmul_destroy). */
enum dr_status dr_onednn_matmul_create_s8(size_t n, size_t k, const int8_t *w, size_t ld_w,
                                          const size_t *m_buckets, size_t n_buckets,
                                          struct dr_onednn_matmul **out, struct dr_error *err);
/* fp32: c = a w^T + bias, w n x k row-major (a torch Linear weight), bias n or NULL. */
enum dr_status dr_onednn_matmul_create_f32(size_t n, size_t k, const float *w, size_t ld_w,
                                           const float *bias, const size_t *m_buckets,
                                           size_t n_buckets, struct dr_onednn_matmul **out,
                                           struct dr_error *err);
void dr_onednn_matmul_destroy(struct dr_onednn_matmul *mm); /* NULL is a no-op */

/* Bytes of workspace run needs for m rows (0 when m is a bucket and strides are dense). */
size_t dr_onednn_matmul_workspace_size(const struct dr_onednn_matmul *mm, size_t m);
/* c (m x n, ldc) = a (m x k, lda) times w^T.  DR_ERR_INVALID_ARG if m exceeds the largest
 * bucket or the object's type differs; workspace borrowed, 64-byte aligned. */
enum dr_status dr_onednn_matmul_run_s8(struct dr_onednn_matmul *mm, size_t m, const int8_t *a,
                                       size_t lda, int32_t *c, size_t ldc, void *workspace);
enum dr_status dr_onednn_matmul_run_f32(struct dr_onednn_matmul *mm, size_t m, const float *a,
                                        size_t lda, float *c, size_t ldc, void *workspace);
/* oneDNN's implementation name for the bucket that serves m (e.g. "brg:avx512_core_vnni");
 * a "ref" name means oneDNN fell back to its reference code. */
const char *dr_onednn_matmul_impl(const struct dr_onednn_matmul *mm, size_t m);

#ifdef __cplusplus
}
#endif

#endif /* DR_ONEDNN_H */
