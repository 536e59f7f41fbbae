/* math_avx2.h: vector exp, sigmoid, tanh and GELU for the AVX2 float kernels.
 *
 * Approximations with stated error (checked against libm in tests/kernels):
 *   exp:  Cephes-style range reduction + degree-6 polynomial, about 2 ulp over the clamped
 *         range [-87.3, 88.3]; inputs outside are clamped (exp(-87.3) ~ 1e-38).
 *   GELU, tanh, sigmoid: rational functions of x^2 (rational_act.h): errors 2.3e-7 *
 *         max(1, |x|), 2.9e-7 and 1.5e-7 absolute.
 * Internal header: include only from files compiled with the AVX2 flags.
 */
#ifndef DR_MATH_AVX2_H
#define DR_MATH_AVX2_H

#include "../rational_act.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

static inline __m256 dr__exp_avx2(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* x - fx * ln2 in two parts so the reduction stays exact. */
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i pow2 =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2));
}

/* clamp(xc * P(t) / Q(t), +-lim), xc = clamp(x, +-xmax), t = xc^2: the odd rational form of
 * rational_act.h (coefficients from the constant term up).  Both clamps take x (or the
 * quotient) as maxps's second operand, which it returns for NaN, so NaN propagates. */
static inline __attribute__((always_inline)) __m256 dr__odd_rational_avx2(__m256 x, float xmax,
                                                                          const float *p, size_t np,
                                                                          const float *q, size_t nq,
                                                                          float lim)
{
    __m256 xc = _mm256_min_ps(_mm256_set1_ps(xmax), _mm256_max_ps(_mm256_set1_ps(-xmax), x));
    __m256 t = _mm256_mul_ps(xc, xc);
    __m256 num = _mm256_set1_ps(p[np - 1]), den = _mm256_set1_ps(q[nq - 1]);
#pragma GCC unroll 8
    for (size_t i = np - 1; i-- > 0;)
        num = _mm256_fmadd_ps(num, t, _mm256_set1_ps(p[i]));
#pragma GCC unroll 8
    for (size_t i = nq - 1; i-- > 0;)
        den = _mm256_fmadd_ps(den, t, _mm256_set1_ps(q[i]));
    __m256 r = _mm256_div_ps(_mm256_mul_ps(xc, num), den);
    return _mm256_min_ps(_mm256_set1_ps(lim), _mm256_max_ps(_mm256_set1_ps(-lim), r));
}

static inline __m256 dr__tanh_avx2(__m256 x)
{
    return dr__odd_rational_avx2(x, DR_TANH_XMAX, dr_tanh_p, DR_RATIONAL_LEN(dr_tanh_p), dr_tanh_q,
                                 DR_RATIONAL_LEN(dr_tanh_q), 1.0f);
}

static inline __m256 dr__sigmoid_avx2(__m256 x)
{
    __m256 half = _mm256_set1_ps(0.5f);
    return _mm256_fmadd_ps(dr__tanh_avx2(_mm256_mul_ps(x, half)), half, half);
}

static inline __m256 dr__gelu_avx2(__m256 x)
{
    __m256 half_erf = dr__odd_rational_avx2(x, DR_GELU_XMAX, dr_gelu_p, DR_RATIONAL_LEN(dr_gelu_p),
                                            dr_gelu_q, DR_RATIONAL_LEN(dr_gelu_q), 0.5f);
    return _mm256_fmadd_ps(x, half_erf, _mm256_mul_ps(x, _mm256_set1_ps(0.5f)));
}

static inline float dr__hsum_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t dr__hsum_epi32_avx2(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline float dr__hmax_avx2(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Lanes [0, n) set, for masked loads and stores of a tail of n < 8 floats. */
static inline __m256i dr__tail_mask_avx2(size_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#endif /* DR_MATH_AVX2_H */
