/* gemm_f32_avx2.c: fp32 matrix products, AVX2 + FMA.
 *
 * _nn (B is k x n): a 6x16 register tile, A broadcast one element at a time, B rows loaded
 * straight from the caller's layout (no packing, no workspace); 12 accumulators.
 * _nt (B is n x k, rows are dot products): a 2x4 tile of dot products along k, 8 lanes at a
 * time, summed horizontally at the end.  Tails use masked loads and stores.
 * Float results differ from __ref only by summation order (bound in tests/kernels).
 * transpose: 8 x 8 blocks in registers (unpack, in-lane shuffle, lane swap), edges through
 * masks; exact.
 */
#include "math_avx2.h"
#include "x86.h"

#define NN_MR 6
#define NN_NR 16

static inline __attribute__((always_inline)) void nn_tile(size_t mr, size_t nr, size_t k,
                                                          const float *a, size_t lda,
                                                          const float *b, size_t ldb,
                                                          const float *bias, float *c, size_t ldc)
{
    __m256 acc[NN_MR][2];
    for (size_t r = 0; r < NN_MR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    __m256i m0 = dr__tail_mask_avx2(nr > 8 ? 8 : nr);
    __m256i m1 = dr__tail_mask_avx2(nr > 8 ? nr - 8 : 0);
    for (size_t kk = 0; kk < k; kk++) {
        const float *brow = b + kk * ldb;
        __m256 b0, b1;
        if (nr == NN_NR) {
            b0 = _mm256_loadu_ps(brow);
            b1 = _mm256_loadu_ps(brow + 8);
        } else {
            b0 = _mm256_maskload_ps(brow, m0);
            b1 = _mm256_maskload_ps(brow + 8, m1);
        }
        for (size_t r = 0; r < mr; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * lda + kk);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
    if (bias) {
        bias0 = _mm256_maskload_ps(bias, m0);
        bias1 = _mm256_maskload_ps(bias + 8, m1);
    }
    for (size_t r = 0; r < mr; r++) {
        float *out = c + r * ldc;
        __m256 v0 = _mm256_add_ps(acc[r][0], bias0), v1 = _mm256_add_ps(acc[r][1], bias1);
        if (nr == NN_NR) {
            _mm256_storeu_ps(out, v0);
            _mm256_storeu_ps(out + 8, v1);
        } else {
            _mm256_maskstore_ps(out, m0, v0);
            _mm256_maskstore_ps(out + 8, m1, v1);
        }
    }
}

/* A single row: the output row itself accumulates, B's rows read in order, whole.  The tile's
 * one row would keep two FMA chains, each waiting on its previous FMA, and column strips read
 * B a piece of each row at a time, which the prefetchers follow badly once B is out of L2 (the
 * LSTM's recurrent weights).  The same sums in the same order as the tile,
 * the zero bias included. */
static void nn_row(size_t n, size_t k, const float *a, const float *b, size_t ldb,
                   const float *bias, float *c)
{
    size_t n8 = n & ~(size_t)7;
    __m256i tail = dr__tail_mask_avx2(n - n8);
    for (size_t j = 0; j < n; j++)
        c[j] = 0.0f;
    for (size_t kk = 0; kk < k; kk++) {
        __m256 av = _mm256_broadcast_ss(a + kk);
        const float *brow = b + kk * ldb;
        for (size_t j = 0; j < n8; j += 8)
            _mm256_storeu_ps(
                c + j, _mm256_fmadd_ps(av, _mm256_loadu_ps(brow + j), _mm256_loadu_ps(c + j)));
        if (n8 < n)
            _mm256_maskstore_ps(c + n8, tail,
                                _mm256_fmadd_ps(av, _mm256_maskload_ps(brow + n8, tail),
                                                _mm256_maskload_ps(c + n8, tail)));
    }
    for (size_t j = 0; j < n; j++)
        c[j] += bias ? bias[j] : 0.0f;
}

/* Rows [0, m) of one column strip (nr <= 16 columns at b, c): row tiles, then a tail tile. */
static inline __attribute__((always_inline)) void nn_strip(size_t m, size_t nr, size_t k,
                                                           const float *a, size_t lda,
                                                           const float *b, size_t ldb,
                                                           const float *bias, float *c, size_t ldc)
{
    size_t i = 0;
    for (; i + NN_MR <= m; i += NN_MR)
        nn_tile(NN_MR, nr, k, a + i * lda, lda, b, ldb, bias, c + i * ldc, ldc);
    switch (m - i) {
#define NN_TAIL(mr)                                                                                \
    case mr:                                                                                       \
        nn_tile(mr, nr, k, a + i * lda, lda, b, ldb, bias, c + i * ldc, ldc);                      \
        break;
        NN_TAIL(5)
        NN_TAIL(4)
        NN_TAIL(3)
        NN_TAIL(2)
        NN_TAIL(1)
#undef NN_TAIL
    default:
        break;
    }
}

/* Column strips outer: a strip of B (k x 16) is read from memory once and serves every row
 * tile from cache; row tiles outer would read all of B again for each (the fp32 linear layers'
 * 1 MiB W^T from L3, 64 bytes per 4 KiB row at a time).  A lone last row runs nn_row. */
void dr_gemm_f32_nn__avx2(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                          size_t ldb, const float *bias, float *c, size_t ldc)
{
    size_t rows = m % NN_MR == 1 ? m - 1 : m, j = 0;
    for (; j + NN_NR <= n; j += NN_NR)
        nn_strip(rows, NN_NR, k, a, lda, b + j, ldb, bias ? bias + j : NULL, c + j, ldc);
    if (j < n)
        nn_strip(rows, n - j, k, a, lda, b + j, ldb, bias ? bias + j : NULL, c + j, ldc);
    if (rows < m)
        nn_row(n, k, a + rows * lda, b, ldb, bias, c + rows * ldc);
}

#define NT_MR 2
#define NT_NR 4

static inline __attribute__((always_inline)) void nt_tile(size_t mr, size_t nr, size_t k,
                                                          const float *a, size_t lda,
                                                          const float *b, size_t ldb,
                                                          const float *bias, float *c, size_t ldc)
{
    __m256 acc[NT_MR][NT_NR];
    for (size_t r = 0; r < NT_MR; r++)
        for (size_t j = 0; j < NT_NR; j++)
            acc[r][j] = _mm256_setzero_ps();
    size_t kk = 0;
    for (; kk + 8 <= k; kk += 8) {
        __m256 bv[NT_NR];
        for (size_t j = 0; j < nr; j++)
            bv[j] = _mm256_loadu_ps(b + j * ldb + kk);
        for (size_t r = 0; r < mr; r++) {
            __m256 av = _mm256_loadu_ps(a + r * lda + kk);
            for (size_t j = 0; j < nr; j++)
                acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
        }
    }
    if (kk < k) {
        __m256i mask = dr__tail_mask_avx2(k - kk);
        __m256 bv[NT_NR];
        for (size_t j = 0; j < nr; j++)
            bv[j] = _mm256_maskload_ps(b + j * ldb + kk, mask);
        for (size_t r = 0; r < mr; r++) {
            __m256 av = _mm256_maskload_ps(a + r * lda + kk, mask);
            for (size_t j = 0; j < nr; j++)
                acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
        }
    }
    for (size_t r = 0; r < mr; r++)
        for (size_t j = 0; j < nr; j++)
            c[r * ldc + j] = dr__hsum_avx2(acc[r][j]) + (bias ? bias[j] : 0.0f);
}

static inline __attribute__((always_inline)) void
nt_row_block(size_t mr, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
             const float *bias, float *c, size_t ldc)
{
    size_t j = 0;
    for (; j + NT_NR <= n; j += NT_NR)
        nt_tile(mr, NT_NR, k, a, lda, b + j * ldb, ldb, bias ? bias + j : NULL, c + j, ldc);
    for (; j < n; j++)
        nt_tile(mr, 1, k, a, lda, b + j * ldb, ldb, bias ? bias + j : NULL, c + j, ldc);
}

void dr_gemm_f32_nt__avx2(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                          size_t ldb, const float *bias, float *c, size_t ldc)
{
    size_t i = 0;
    for (; i + NT_MR <= m; i += NT_MR)
        nt_row_block(NT_MR, n, k, a + i * lda, lda, b, ldb, bias, c + i * ldc, ldc);
    if (i < m)
        nt_row_block(1, n, k, a + i * lda, lda, b, ldb, bias, c + i * ldc, ldc);
}

/* One block of up to 8 x 8: rows past `rows` read as 0, columns past `cols` are not stored. */
static inline void transpose_block8(size_t rows, size_t cols, const float *src, size_t ld_src,
                                    float *dst, size_t ld_dst)
{
    __m256i col_mask = dr__tail_mask_avx2(cols), row_mask = dr__tail_mask_avx2(rows);
    __m256 r[8], t[8];
    for (size_t i = 0; i < 8; i++)
        r[i] = i < rows ? _mm256_maskload_ps(src + i * ld_src, col_mask) : _mm256_setzero_ps();
    for (size_t i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4g + c], lane L: column 4L + c of rows 4g .. 4g + 3. */
    for (size_t g = 0; g < 2; g++) {
        r[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        r[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        r[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        r[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    for (size_t c = 0; c < 4; c++) {
        if (c < cols)
            _mm256_maskstore_ps(dst + c * ld_dst, row_mask,
                                _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
        if (4 + c < cols)
            _mm256_maskstore_ps(dst + (4 + c) * ld_dst, row_mask,
                                _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
    }
}

void dr_transpose_f32__avx2(size_t rows, size_t cols, const float *src, size_t ld_src, float *dst,
                            size_t ld_dst)
{
    for (size_t i = 0; i < rows; i += 8)
        for (size_t j = 0; j < cols; j += 8)
            transpose_block8(rows - i < 8 ? rows - i : 8, cols - j < 8 ? cols - j : 8,
                             src + i * ld_src + j, ld_src, dst + j * ld_dst + i, ld_dst);
}
