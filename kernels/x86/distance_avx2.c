/* distance_avx2.c: one query against many vectors, int8 and fp32, AVX2.
 *
 * dot_s8 multiplies |q| (u8) by the row with q's signs moved onto it (vpsignb), so one
 * vpmaddubsw does 32 products; pair sums stay in int16 because values are in [-127, 127]
 * (127 * 127 * 2 = 32258).  l2sq_s8 widens to int16 first (differences reach 254) and
 * squares with vpmaddwd: exact for the whole int8 range.  Rows reached through an id list
 * are prefetched two ahead, the access pattern of an HNSW neighbour list.
 */
#include "math_avx2.h"
#include "x86.h"

static inline const void *row_ptr(const void *base, size_t elem_size, size_t ld,
                                  const uint32_t *ids, size_t i)
{
    return (const char *)base + (ids ? ids[i] : i) * ld * elem_size;
}

static inline void prefetch_row(const void *base, size_t elem_size, size_t ld, const uint32_t *ids,
                                size_t i, size_t n, size_t dim)
{
    if (ids && i + 2 < n) {
        const char *p = row_ptr(base, elem_size, ld, ids, i + 2);
        for (size_t off = 0; off < dim * elem_size; off += 64)
            _mm_prefetch(p + off, _MM_HINT_T0);
    }
}

void dr_dot_s8__avx2(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                     const uint32_t *ids, size_t n, int32_t *out)
{
    const __m256i ones = _mm256_set1_epi16(1);
    size_t d32 = dim & ~(size_t)31;
    for (size_t i = 0; i < n; i++) {
        prefetch_row(base, 1, ld, ids, i, n, dim);
        const int8_t *v = row_ptr(base, 1, ld, ids, i);
        __m256i acc = _mm256_setzero_si256();
        for (size_t d = 0; d < d32; d += 32) {
            __m256i qv = _mm256_loadu_si256((const __m256i *)(q + d));
            __m256i vv = _mm256_loadu_si256((const __m256i *)(v + d));
            __m256i prod = _mm256_maddubs_epi16(_mm256_abs_epi8(qv), _mm256_sign_epi8(vv, qv));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(prod, ones));
        }
        int32_t sum = dr__hsum_epi32_avx2(acc);
        for (size_t d = d32; d < dim; d++)
            sum += (int32_t)q[d] * (int32_t)v[d];
        out[i] = sum;
    }
}

void dr_l2sq_s8__avx2(size_t dim, const int8_t *q, const int8_t *base, size_t ld,
                      const uint32_t *ids, size_t n, int32_t *out)
{
    size_t d16 = dim & ~(size_t)15;
    for (size_t i = 0; i < n; i++) {
        prefetch_row(base, 1, ld, ids, i, n, dim);
        const int8_t *v = row_ptr(base, 1, ld, ids, i);
        __m256i acc = _mm256_setzero_si256();
        for (size_t d = 0; d < d16; d += 16) {
            __m256i qv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + d)));
            __m256i vv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(v + d)));
            __m256i diff = _mm256_sub_epi16(qv, vv);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(diff, diff));
        }
        int32_t sum = dr__hsum_epi32_avx2(acc);
        for (size_t d = d16; d < dim; d++) {
            int32_t diff = (int32_t)q[d] - (int32_t)v[d];
            sum += diff * diff;
        }
        out[i] = sum;
    }
}

void dr_dot_f32__avx2(size_t dim, const float *q, const float *base, size_t ld, const uint32_t *ids,
                      size_t n, float *out)
{
    size_t d8 = dim & ~(size_t)7;
    __m256i tail = dr__tail_mask_avx2(dim - d8);
    for (size_t i = 0; i < n; i++) {
        prefetch_row(base, sizeof(float), ld, ids, i, n, dim);
        const float *v = row_ptr(base, sizeof(float), ld, ids, i);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        size_t d = 0;
        for (; d + 16 <= d8; d += 16) {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(v + d), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(v + d + 8), acc1);
        }
        if (d < d8)
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(v + d), acc0);
        if (d8 < dim)
            acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(q + d8, tail),
                                   _mm256_maskload_ps(v + d8, tail), acc1);
        out[i] = dr__hsum_avx2(_mm256_add_ps(acc0, acc1));
    }
}

void dr_l2sq_f32__avx2(size_t dim, const float *q, const float *base, size_t ld,
                       const uint32_t *ids, size_t n, float *out)
{
    size_t d8 = dim & ~(size_t)7;
    __m256i tail = dr__tail_mask_avx2(dim - d8);
    for (size_t i = 0; i < n; i++) {
        prefetch_row(base, sizeof(float), ld, ids, i, n, dim);
        const float *v = row_ptr(base, sizeof(float), ld, ids, i);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        size_t d = 0;
        for (; d + 16 <= d8; d += 16) {
            __m256 e0 = _mm256_sub_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(v + d));
            __m256 e1 = _mm256_sub_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(v + d + 8));
            acc0 = _mm256_fmadd_ps(e0, e0, acc0);
            acc1 = _mm256_fmadd_ps(e1, e1, acc1);
        }
        if (d < d8) {
            __m256 e0 = _mm256_sub_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(v + d));
            acc0 = _mm256_fmadd_ps(e0, e0, acc0);
        }
        if (d8 < dim) {
            __m256 e1 =
                _mm256_sub_ps(_mm256_maskload_ps(q + d8, tail), _mm256_maskload_ps(v + d8, tail));
            acc1 = _mm256_fmadd_ps(e1, e1, acc1);
        }
        out[i] = dr__hsum_avx2(_mm256_add_ps(acc0, acc1));
    }
}
