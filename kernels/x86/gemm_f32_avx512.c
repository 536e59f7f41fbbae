/* gemm_f32_avx512.c: fp32 matrix products on AVX-512.
 * _nn: an 8x32 tile (16 zmm accumulators), A broadcast per element, B rows loaded from the
 * caller's layout, column tails through __mmask16.  _nt: a 4x4 tile of dot products along k,
 * 16 lanes at a time, reduced at the end.  Bounds against __ref as for AVX2.
 * transpose: 16 x 16 blocks in registers (unpack, then two rounds of in-lane and cross-lane
 * shuffles), edges through masks; exact. */
#include "math_avx512.h"
#include "x86.h"

#define NN_MR 8
#define NN_NR 32

static inline __attribute__((always_inline)) void nn_tile(size_t mr, size_t nr, size_t k,
                                                          const float *a, size_t lda,
                                                          const float *b, size_t ldb,
                                                          const float *bias, float *c, size_t ldc)
{
    __m512 acc[NN_MR][2];
    for (size_t r = 0; r < NN_MR; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    __mmask16 m0 = dr__tail_mask16(nr > 16 ? 16 : nr), m1 = dr__tail_mask16(nr > 16 ? nr - 16 : 0);
    for (size_t kk = 0; kk < k; kk++) {
        const float *brow = b + kk * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, brow), b1 = _mm512_maskz_loadu_ps(m1, brow + 16);
        for (size_t r = 0; r < mr; r++) {
            __m512 av = _mm512_set1_ps(a[r * lda + kk]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias);
        bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
    for (size_t r = 0; r < mr; r++) {
        _mm512_mask_storeu_ps(c + r * ldc, m0, _mm512_add_ps(acc[r][0], bias0));
        _mm512_mask_storeu_ps(c + r * ldc + 16, m1, _mm512_add_ps(acc[r][1], bias1));
    }
}

/* A single row: the output row itself accumulates, B's rows read in order, whole (see the
 * AVX2 version).  The same sums in the same order as the tile, the zero bias included. */
static void nn_row(size_t n, size_t k, const float *a, const float *b, size_t ldb,
                   const float *bias, float *c)
{
    size_t n16 = n & ~(size_t)15;
    __mmask16 tail = dr__tail_mask16(n - n16);
    for (size_t j = 0; j < n; j++)
        c[j] = 0.0f;
    for (size_t kk = 0; kk < k; kk++) {
        __m512 av = _mm512_set1_ps(a[kk]);
        const float *brow = b + kk * ldb;
        for (size_t j = 0; j < n16; j += 16)
            _mm512_storeu_ps(
                c + j, _mm512_fmadd_ps(av, _mm512_loadu_ps(brow + j), _mm512_loadu_ps(c + j)));
        if (n16 < n)
            _mm512_mask_storeu_ps(c + n16, tail,
                                  _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(tail, brow + n16),
                                                  _mm512_maskz_loadu_ps(tail, c + n16)));
    }
    for (size_t j = 0; j < n; j++)
        c[j] += bias ? bias[j] : 0.0f;
}

/* Column strips outer, as on AVX2: a strip of B (k x 32) is read from memory once and serves
 * every row tile from cache.  Tail rows run one at a time (nn_row). */
void dr_gemm_f32_nn__avx512(size_t m, size_t n, size_t k, const float *a, size_t lda,
                            const float *b, size_t ldb, const float *bias, float *c, size_t ldc)
{
    size_t rows = m / NN_MR * NN_MR;
    for (size_t j = 0; j < n; j += NN_NR) {
        size_t nr = n - j < NN_NR ? n - j : NN_NR;
        for (size_t i = 0; i < rows; i += NN_MR)
            nn_tile(NN_MR, nr, k, a + i * lda, lda, b + j, ldb, bias ? bias + j : NULL,
                    c + i * ldc + j, ldc);
    }
    for (size_t i = rows; i < m; i++)
        nn_row(n, k, a + i * lda, b, ldb, bias, c + i * ldc);
}

#define NT_MR 4
#define NT_NR 4

static inline __attribute__((always_inline)) void nt_tile(size_t mr, size_t nr, size_t k,
                                                          const float *a, size_t lda,
                                                          const float *b, size_t ldb,
                                                          const float *bias, float *c, size_t ldc)
{
    __m512 acc[NT_MR][NT_NR];
    for (size_t r = 0; r < NT_MR; r++)
        for (size_t j = 0; j < NT_NR; j++)
            acc[r][j] = _mm512_setzero_ps();
    for (size_t kk = 0; kk < k; kk += 16) {
        __mmask16 mask = dr__tail_mask16(k - kk);
        __m512 bv[NT_NR];
        for (size_t j = 0; j < nr; j++)
            bv[j] = _mm512_maskz_loadu_ps(mask, b + j * ldb + kk);
        for (size_t r = 0; r < mr; r++) {
            __m512 av = _mm512_maskz_loadu_ps(mask, a + r * lda + kk);
            for (size_t j = 0; j < nr; j++)
                acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);
        }
    }
    for (size_t r = 0; r < mr; r++)
        for (size_t j = 0; j < nr; j++)
            c[r * ldc + j] = _mm512_reduce_add_ps(acc[r][j]) + (bias ? bias[j] : 0.0f);
}

static inline __attribute__((always_inline)) void nt_rows(size_t mr, size_t n, size_t k,
                                                          const float *a, size_t lda,
                                                          const float *b, size_t ldb,
                                                          const float *bias, float *c, size_t ldc)
{
    size_t j = 0;
    for (; j + NT_NR <= n; j += NT_NR)
        nt_tile(mr, NT_NR, k, a, lda, b + j * ldb, ldb, bias ? bias + j : NULL, c + j, ldc);
    for (; j < n; j++)
        nt_tile(mr, 1, k, a, lda, b + j * ldb, ldb, bias ? bias + j : NULL, c + j, ldc);
}

void dr_gemm_f32_nt__avx512(size_t m, size_t n, size_t k, const float *a, size_t lda,
                            const float *b, size_t ldb, const float *bias, float *c, size_t ldc)
{
    size_t i = 0;
    for (; i + NT_MR <= m; i += NT_MR)
        nt_rows(NT_MR, n, k, a + i * lda, lda, b, ldb, bias, c + i * ldc, ldc);
    for (; i < m; i++)
        nt_rows(1, n, k, a + i * lda, lda, b, ldb, bias, c + i * ldc, ldc);
}

/* One block of up to 16 x 16: rows past `rows` read as 0 and columns past `cols` are never
 * stored, so the edges need no separate path. */
static inline void transpose_block16(size_t rows, size_t cols, const float *src, size_t ld_src,
                                     float *dst, size_t ld_dst)
{
    __mmask16 col_mask = dr__tail_mask16(cols), row_mask = dr__tail_mask16(rows);
    __m512 r[16], t[16];
    for (size_t i = 0; i < 16; i++)
        r[i] = i < rows ? _mm512_maskz_loadu_ps(col_mask, src + i * ld_src) : _mm512_setzero_ps();
    /* t[2i], t[2i+1]: rows 2i and 2i+1 interleaved, within each 128-bit lane. */
    for (size_t i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4g + c], lane L: column 4L + c of rows 4g .. 4g + 3. */
    for (size_t g = 0; g < 4; g++) {
        r[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        r[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        r[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        r[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    /* Column 4L + c gathers lane L of r[c], r[4 + c], r[8 + c], r[12 + c]. */
    for (size_t c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44);
        __m512 v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
        __m512 v2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
        __m512 v3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
        __m512 col[4] = {_mm512_shuffle_f32x4(v0, v2, 0x88), _mm512_shuffle_f32x4(v0, v2, 0xDD),
                         _mm512_shuffle_f32x4(v1, v3, 0x88), _mm512_shuffle_f32x4(v1, v3, 0xDD)};
        for (size_t l = 0; l < 4; l++) {
            if (4 * l + c < cols)
                _mm512_mask_storeu_ps(dst + (4 * l + c) * ld_dst, row_mask, col[l]);
        }
    }
}

void dr_transpose_f32__avx512(size_t rows, size_t cols, const float *src, size_t ld_src, float *dst,
                              size_t ld_dst)
{
    for (size_t i = 0; i < rows; i += 16)
        for (size_t j = 0; j < cols; j += 16)
            transpose_block16(rows - i < 16 ? rows - i : 16, cols - j < 16 ? cols - j : 16,
                              src + i * ld_src + j, ld_src, dst + j * ld_dst + i, ld_dst);
}
