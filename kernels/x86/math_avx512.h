/* math_avx512.h: the vector exp, sigmoid, tanh and GELU of math_avx2.h on zmm.
 * Same approximations and error bounds (see math_avx2.h); tails use __mmask16.
 * Internal header: include only from files compiled with the AVX-512 flags.
 */
#ifndef DR_MATH_AVX512_H
#define DR_MATH_AVX512_H

#include "../rational_act.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

static inline __m512 dr__exp_avx512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    __m512i pow2 =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fx), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(pow2));
}

/* clamp(xc * P(t) / Q(t), +-lim), xc = clamp(x, +-xmax), t = xc^2: the odd rational form of
 * rational_act.h (coefficients from the constant term up).  Both clamps take x (or the
 * quotient) as maxps's second operand, which it returns for NaN, so NaN propagates. */
static inline __attribute__((always_inline)) __m512
dr__odd_rational_avx512(__m512 x, float xmax, const float *p, size_t np, const float *q, size_t nq,
                        float lim)
{
    __m512 xc = _mm512_min_ps(_mm512_set1_ps(xmax), _mm512_max_ps(_mm512_set1_ps(-xmax), x));
    __m512 t = _mm512_mul_ps(xc, xc);
    __m512 num = _mm512_set1_ps(p[np - 1]), den = _mm512_set1_ps(q[nq - 1]);
#pragma GCC unroll 8
    for (size_t i = np - 1; i-- > 0;)
        num = _mm512_fmadd_ps(num, t, _mm512_set1_ps(p[i]));
#pragma GCC unroll 8
    for (size_t i = nq - 1; i-- > 0;)
        den = _mm512_fmadd_ps(den, t, _mm512_set1_ps(q[i]));
    __m512 r = _mm512_div_ps(_mm512_mul_ps(xc, num), den);
    return _mm512_min_ps(_mm512_set1_ps(lim), _mm512_max_ps(_mm512_set1_ps(-lim), r));
}

static inline __m512 dr__tanh_avx512(__m512 x)
{
    return dr__odd_rational_avx512(x, DR_TANH_XMAX, dr_tanh_p, DR_RATIONAL_LEN(dr_tanh_p),
                                   dr_tanh_q, DR_RATIONAL_LEN(dr_tanh_q), 1.0f);
}

static inline __m512 dr__sigmoid_avx512(__m512 x)
{
    __m512 half = _mm512_set1_ps(0.5f);
    return _mm512_fmadd_ps(dr__tanh_avx512(_mm512_mul_ps(x, half)), half, half);
}

static inline __m512 dr__gelu_avx512(__m512 x)
{
    __m512 half_erf =
        dr__odd_rational_avx512(x, DR_GELU_XMAX, dr_gelu_p, DR_RATIONAL_LEN(dr_gelu_p), dr_gelu_q,
                                DR_RATIONAL_LEN(dr_gelu_q), 0.5f);
    return _mm512_fmadd_ps(x, half_erf, _mm512_mul_ps(x, _mm512_set1_ps(0.5f)));
}

/* Lanes [0, n) of 16. */
static inline __mmask16 dr__tail_mask16(size_t n)
{
    unsigned bits = n >= 16 ? 0xffffu : (1u << n) - 1u;
    return (__mmask16)bits;
}

#endif /* DR_MATH_AVX512_H */
