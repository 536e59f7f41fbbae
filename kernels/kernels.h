/* kernels.h: the one header models/, the index and the server include for compute.
 *
 * Every op has a scalar reference (kernels/ref/, suffix __ref) that is its specification
 * and test oracle, and SIMD versions per ISA (kernels/x86/, kernels/arm/).  One table of
 * function pointers is chosen once from CPUID + XGETBV (HWCAP on Arm), capped by the
 * environment variable DR_ISA_MAX (ref, avx2, avx512, avx512vnni, neon, neondot), and
 * shared read-only by all threads.  Kernels never allocate, log, lock or block.
 *
 * The int8 scheme, the same integers on every ISA (docs/int8-scheme.md says why):
 *   - activations: int8 in [-128, 127] (the row quantiser emits [-127, 127]), one fp32
 *     scale per row, quantised on the fly;
 *   - weights: int8 in [-64, 63] (the weight quantiser emits [-63, 63]), one fp32 scale per
 *     output column, packed once at load into struct dr_packed_s8;
 *   - products accumulate exactly in int32.  The packer stores weights biased to u8
 *     (w + 64, in [0, 127]) because x86's byte multiplies (vpmaddubsw, vpdpbusd) take one
 *     unsigned operand: a 7-bit unsigned weight times a signed activation keeps AVX2's int16
 *     pair sums exact (127 * 128 * 2 = 32512), and 64 * sum(row of A) undoes the bias.
 *   - vectors in the ANN index: int8 in [-127, 127] (no -128, see dr_dot_s8_fn).
 */
#ifndef DR_KERNELS_H
#define DR_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- ISAs and CPU features ---------------------------------------------------------- */

enum dr_isa {
    DR_ISA_REF = 0,
    DR_ISA_AVX2,       /* AVX2 + FMA */
    DR_ISA_AVX512,     /* AVX-512 F/BW/VL/DQ */
    DR_ISA_AVX512VNNI, /* AVX-512 + VNNI (vpdpbusd) */
    DR_ISA_NEON,       /* AArch64 Advanced SIMD */
    DR_ISA_NEONDOT,    /* + sdot/udot */
    DR_ISA_COUNT
};

const char *dr_isa_name(enum dr_isa isa);
/* Parses "ref", "avx2", ... (case-insensitive); false if unknown. */
bool dr_isa_parse(const char *name, enum dr_isa *out);

struct dr_cpu_features {
    bool has_avx2, has_fma;                                     /* and the OS saves YMM */
    bool has_avx512f, has_avx512bw, has_avx512vl, has_avx512dq; /* and the OS saves ZMM */
    bool has_avx512vnni;
    bool has_neon, has_neon_dotprod, has_neon_i8mm;
    char model_name[64]; /* CPU brand string, "" if unknown */
};

/* Reads the features once; later calls return the cached copy. Thread-safe. */
const struct dr_cpu_features *dr_cpu_features_get(void);
bool dr_cpu_supports_isa(const struct dr_cpu_features *cpu, enum dr_isa isa);

/* ---- int8 weights, packed once at load ---------------------------------------------- */

#define DR_S8_WEIGHT_MIN   (-64)
#define DR_S8_WEIGHT_MAX   63
#define DR_S8_WEIGHT_QMAX  63  /* the weight quantiser's range: [-63, 63] */
#define DR_S8_ACT_QMAX     127 /* the activation quantiser's range: [-127, 127] */
#define DR_PACK_S8_NR      16  /* output columns per panel */
#define DR_PACK_S8_KR      4   /* consecutive k values per 32-bit group */
#define DR_PACK_S8_VERSION 1
#define DR_PACK_S8_BIAS    64 /* stored byte = weight + 64 */

/* Panel layout (version 1): panel p holds columns [16p, 16p + 16); inside it, group g holds
 * k in [4g, 4g + 4) as 16 columns x 4 bytes, so one 64-byte line feeds one zmm, two ymm or
 * four NEON registers.  Each byte is w + DR_PACK_S8_BIAS (u8 in [0, 127]); padding (columns
 * past n, k past k) holds weight 0. */
struct dr_packed_s8 {
    size_t n, k;               /* logical output columns, reduction length */
    size_t n_padded, k_padded; /* multiples of DR_PACK_S8_NR and DR_PACK_S8_KR */
    uint8_t *data;             /* owned, aligned; n_padded * k_padded bytes */
    uint8_t *row_data;         /* owned or NULL: the one-row layout, same bytes reordered */
    bool row_backward;         /* one-row products visit the groups last to first (same sums) */
};

/* The one-row layout (dr_packed_s8_add_row_layout): a product with m == 1 reads every weight
 * once, from L2 when the matrix is larger than L1 (the LSTM's recurrent product at batch 1),
 * and the panel layout makes that 8 streams 16 * k_padded bytes apart.  Here panels go in
 * groups of DR_PACK_S8_ROW_PANELS; inside group q (panels 8q .. 8q + gp - 1, gp = 8 except
 * perhaps the last), k-group g holds the gp panels' 64-byte lines side by side at
 *   q * 8 * 16 * k_padded + g * gp * 64 + h * 64,
 * one contiguous stream.  Only the AVX-512 tables read it (1.5x on a 1024 x 256 one-row
 * product, docs/kernels.md); the others ignore it. */
#define DR_PACK_S8_ROW_PANELS 8

/* Packs w, an n x k row-major matrix (a torch Linear weight: [out][in]); ld_w >= k.
 * Fails with DR_ERR_INVALID_ARG if a weight is outside [DR_S8_WEIGHT_MIN, DR_S8_WEIGHT_MAX]
 * (err names it) and DR_ERR_NOMEM if allocation fails; on failure *packed is untouched. */
enum dr_status dr_packed_s8_init(struct dr_packed_s8 *packed, size_t n, size_t k, const int8_t *w,
                                 size_t ld_w, struct dr_error *err);
void dr_packed_s8_deinit(struct dr_packed_s8 *packed); /* zeroed or deinited: no-op */

/* Adds the one-row layout to packed weights (see above): for weights multiplied mostly one
 * row at a time.  DR_ERR_NOMEM leaves packed as it was; calling it twice is a no-op. */
enum dr_status dr_packed_s8_add_row_layout(struct dr_packed_s8 *packed, struct dr_error *err);

/* w[j][k] read back from the packed layout (the reference kernels read through this). */
static inline int8_t dr_packed_s8_at(const struct dr_packed_s8 *packed, size_t j, size_t k)
{
    size_t panel = j / DR_PACK_S8_NR, col = j % DR_PACK_S8_NR;
    size_t group = k / DR_PACK_S8_KR, lane = k % DR_PACK_S8_KR;
    return (
        int8_t)(packed->data[(panel * packed->k_padded + group * DR_PACK_S8_KR) * DR_PACK_S8_NR +
                             col * DR_PACK_S8_KR + lane] -
                DR_PACK_S8_BIAS);
}

/* Quantises fp32 weights (n x k, row-major) per output row to [-qmax, qmax]:
 * scale[j] = max|w[j][:]| / qmax, q = round-half-even(w / scale).  Load time only. */
void dr_quantize_weights_s8(size_t n, size_t k, const float *w, size_t ld_w, int qmax, int8_t *q,
                            size_t ld_q, float *scales);

/* ---- kernel signatures --------------------------------------------------------------- */

/* C[i][j] = sum_k A[i][k] * W[j][k] in int32, for i < m, j < b->n.  A is m x b->k int8
 * (row stride lda).  Exact for the scheme's ranges. */
typedef void (*dr_gemm_s8s8s32_fn)(size_t m, const int8_t *a, size_t lda,
                                   const struct dr_packed_s8 *b, int32_t *c, size_t ldc);

enum dr_activation { DR_ACT_NONE = 0, DR_ACT_GELU };

/* The fused epilogue: c = act(acc * a_scale[i] * w_scale[j] + bias[j]) (+ c if accumulate;
 * the addition comes after the activation). */
struct dr_gemm_epilogue {
    const float *a_scale; /* m per-row activation scales, borrowed */
    const float *w_scale; /* n per-column weight scales, borrowed */
    const float *bias;    /* n, or NULL */
    enum dr_activation act;
    bool accumulate;
};

typedef void (*dr_gemm_s8s8f32_fn)(size_t m, const int8_t *a, size_t lda,
                                   const struct dr_packed_s8 *b, float *c, size_t ldc,
                                   const struct dr_gemm_epilogue *ep);

/* C = A * B (+ bias[j] if bias), fp32.  A is m x k (lda).  In the _nn form B is k x n
 * (row stride ldb); in the _nt form B is n x k, a torch Linear weight or attention's K. */
typedef void (*dr_gemm_f32_fn)(size_t m, size_t n, size_t k, const float *a, size_t lda,
                               const float *b, size_t ldb, const float *bias, float *c, size_t ldc);

/* dst = src transposed: dst[j * ld_dst + i] = src[i * ld_src + j] for i < rows, j < cols.
 * Exact (data movement only); src and dst must not overlap. */
typedef void (*dr_transpose_f32_fn)(size_t rows, size_t cols, const float *src, size_t ld_src,
                                    float *dst, size_t ld_dst);

/* Per row: scale = max|x| / 127; q = round-half-even(x * (127 / max|x|)) in [-127, 127].
 * An all-zero row gets scale 0 and q = 0.  Bit-exact on every ISA. */
typedef void (*dr_quantize_rows_s8_fn)(size_t m, size_t k, const float *x, size_t ldx, int8_t *q,
                                       size_t ldq, float *scales);
/* x = q * scale[row]. */
typedef void (*dr_dequantize_rows_s8_fn)(size_t m, size_t k, const int8_t *q, size_t ldq,
                                         const float *scales, float *x, size_t ldx);

/* y = (x - mean) / sqrt(var + eps) * gamma + beta per row (biased variance, as BERT).
 * y may equal x when ldy == ldx. */
typedef void (*dr_layernorm_f32_fn)(size_t m, size_t n, const float *x, size_t ldx,
                                    const float *gamma, const float *beta, float eps, float *y,
                                    size_t ldy);

/* y = x * (1 + erf(x / sqrt 2)) / 2, BERT's exact GELU.  y may equal x. */
typedef void (*dr_gelu_f32_fn)(size_t n, const float *x, float *y);

/* In place, per row: x[0..n_valid) = softmax(scale * x[0..n_valid)), x[n_valid..n) = 0 (the
 * padding mask).  Subtracts the row maximum first.  n_valid == 0 gives an all-zero row. */
typedef void (*dr_softmax_f32_fn)(size_t m, size_t n, float *x, size_t ldx, size_t n_valid,
                                  float scale);

/* The LSTM state update for a batch: gates is batch x 4*hidden pre-activations in torch's
 * order (input, forget, cell, output); c and h are batch x hidden, updated in place:
 * c = sigmoid(f) * c + sigmoid(i) * tanh(g);  h = sigmoid(o) * tanh(c). */
typedef void (*dr_lstm_cell_f32_fn)(size_t batch, size_t hidden, const float *gates,
                                    size_t ld_gates, float *c, float *h, size_t ld_state);

/* One query against n vectors: out[i] = score(q, row i), where row i is base + ld*i, or
 * base + ld*ids[i] when ids is not NULL (an HNSW neighbour list).  dim elements each. */
/* dot_s8: values in [-127, 127] (AVX2 multiplies |q| by sign-adjusted rows).  l2sq_s8:
 * the whole int8 range.  Both exact in int32 for dim <= 32768. */
typedef void (*dr_dot_s8_fn)(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                             const uint32_t *ids, size_t n, int32_t *out);
typedef void (*dr_dot_f32_fn)(size_t dim, const float *q, const float *base, size_t ld,
                              const uint32_t *ids, size_t n, float *out);

/* The k best scores, highest first, ties to the lower index; NaN is never selected.
 * Writes min(k, number of non-NaN scores) entries and returns that count. */
typedef size_t (*dr_topk_f32_fn)(size_t n, const float *scores, size_t k, uint32_t *out_ids,
                                 float *out_scores);

/* ---- the dispatch table --------------------------------------------------------------- */

struct dr_kernels {
    enum dr_isa isa;
    const char *gemm_s8_tile; /* e.g. "4x16", for logs and stats */
    dr_gemm_s8s8s32_fn gemm_s8s8s32;
    dr_gemm_s8s8f32_fn gemm_s8s8f32;
    dr_gemm_f32_fn gemm_f32_nn;
    dr_gemm_f32_fn gemm_f32_nt;
    dr_transpose_f32_fn transpose_f32;
    dr_quantize_rows_s8_fn quantize_rows_s8;
    dr_dequantize_rows_s8_fn dequantize_rows_s8;
    dr_layernorm_f32_fn layernorm_f32;
    dr_gelu_f32_fn gelu_f32;
    dr_softmax_f32_fn softmax_f32;
    dr_lstm_cell_f32_fn lstm_cell_f32;
    dr_dot_s8_fn dot_s8;
    dr_dot_s8_fn l2sq_s8;
    dr_dot_f32_fn dot_f32;
    dr_dot_f32_fn l2sq_f32;
    dr_topk_f32_fn topk_f32;
};

/* The best table this CPU runs, capped by DR_ISA_MAX; chosen once, thread-safe.
 * An unknown DR_ISA_MAX value is reported on stderr and ignored. */
const struct dr_kernels *dr_kernels_get(void);
/* The table for one ISA, or NULL if it is not built in or the CPU lacks it. */
const struct dr_kernels *dr_kernels_for_isa(enum dr_isa isa);
/* The table for one ISA if built in, whether or not this CPU can run it (tests print
 * SKIP from this distinction); NULL if not built in. */
const struct dr_kernels *dr__kernels_table(enum dr_isa isa);

/* ---- composite ops over the table ---------------------------------------------------- */

/* One LSTM time step for a batch of users, int8 weight products with fp32 state:
 * gates = x_q W_ih^T (dequantised) + b + h_q W_hh^T (dequantised), then the cell update.
 * x_q is batch x w_ih->k int8 with per-row x_scale; h and c are batch x hidden (hidden ==
 * w_hh->k, 4*hidden == w_ih->n == w_hh->n).  workspace: dr_lstm_step_workspace_size bytes,
 * 64-byte aligned, borrowed. */
struct dr_lstm_weights {
    const struct dr_packed_s8 *w_ih, *w_hh; /* borrowed */
    const float *w_ih_scale, *w_hh_scale;   /* 4*hidden each */
    const float *bias;                      /* 4*hidden (b_ih + b_hh), or NULL */
};
size_t dr_lstm_step_workspace_size(size_t batch, size_t hidden);
void dr_lstm_step_s8(const struct dr_kernels *kern, const struct dr_lstm_weights *w, size_t batch,
                     const int8_t *x_q, size_t ld_x, const float *x_scale, float *h, float *c,
                     size_t ld_state, void *workspace);

#ifdef __cplusplus
}
#endif

#endif /* DR_KERNELS_H */
