/* math_neon.h: the vector exp, sigmoid, tanh and GELU of math_avx2.h on NEON.
 * Same approximations and error bounds (see math_avx2.h).  AArch64 only. */
#ifndef DR_MATH_NEON_H
#define DR_MATH_NEON_H

#include "../rational_act.h"

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

static inline float32x4_t dr__exp_neon(float32x4_t x)
{
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.3f));
    float32x4_t fx = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    x = vfmsq_f32(x, fx, vdupq_n_f32(0.693359375f));
    x = vfmsq_f32(x, fx, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t y = vdupq_n_f32(1.9875691500e-4f);
    y = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), y, x);
    y = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), y, x);
    y = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), y, x);
    y = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), y, x);
    y = vfmaq_f32(vaddq_f32(x, vdupq_n_f32(1.0f)), y, vmulq_f32(x, x));
    int32x4_t pow2 = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(fx), vdupq_n_s32(127)), 23);
    return vmulq_f32(y, vreinterpretq_f32_s32(pow2));
}

/* clamp(xc * P(t) / Q(t), +-lim), xc = clamp(x, +-xmax), t = xc^2: the odd rational form of
 * rational_act.h (coefficients from the constant term up).  FMAX/FMIN propagate NaN. */
static inline __attribute__((always_inline)) float32x4_t
dr__odd_rational_neon(float32x4_t x, float xmax, const float *p, size_t np, const float *q,
                      size_t nq, float lim)
{
    float32x4_t xc = vminq_f32(vdupq_n_f32(xmax), vmaxq_f32(vdupq_n_f32(-xmax), x));
    float32x4_t t = vmulq_f32(xc, xc);
    float32x4_t num = vdupq_n_f32(p[np - 1]), den = vdupq_n_f32(q[nq - 1]);
#pragma GCC unroll 8
    for (size_t i = np - 1; i-- > 0;)
        num = vfmaq_f32(vdupq_n_f32(p[i]), num, t);
#pragma GCC unroll 8
    for (size_t i = nq - 1; i-- > 0;)
        den = vfmaq_f32(vdupq_n_f32(q[i]), den, t);
    float32x4_t r = vdivq_f32(vmulq_f32(xc, num), den);
    return vminq_f32(vdupq_n_f32(lim), vmaxq_f32(vdupq_n_f32(-lim), r));
}

static inline float32x4_t dr__tanh_neon(float32x4_t x)
{
    return dr__odd_rational_neon(x, DR_TANH_XMAX, dr_tanh_p, DR_RATIONAL_LEN(dr_tanh_p), dr_tanh_q,
                                 DR_RATIONAL_LEN(dr_tanh_q), 1.0f);
}

static inline float32x4_t dr__sigmoid_neon(float32x4_t x)
{
    float32x4_t half = vdupq_n_f32(0.5f);
    return vfmaq_f32(half, half, dr__tanh_neon(vmulq_f32(x, half)));
}

static inline float32x4_t dr__gelu_neon(float32x4_t x)
{
    float32x4_t half_erf =
        dr__odd_rational_neon(x, DR_GELU_XMAX, dr_gelu_p, DR_RATIONAL_LEN(dr_gelu_p), dr_gelu_q,
                              DR_RATIONAL_LEN(dr_gelu_q), 0.5f);
    return vfmaq_f32(vmulq_f32(x, vdupq_n_f32(0.5f)), x, half_erf);
}

#endif /* DR_MATH_NEON_H */
