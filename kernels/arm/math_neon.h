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

/* tanh and sigmoid: the rational form of rational_act.h (FMAX/FMIN propagate NaN). */
static inline float32x4_t dr__tanh_neon(float32x4_t x)
{
    float32x4_t xc = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-DR_TANH_XMAX)), vdupq_n_f32(DR_TANH_XMAX));
    float32x4_t t = vmulq_f32(xc, xc);
    float32x4_t p = vfmaq_f32(vdupq_n_f32(DR_TANH_P3), vdupq_n_f32(DR_TANH_P4), t);
    p = vfmaq_f32(vdupq_n_f32(DR_TANH_P2), p, t);
    p = vfmaq_f32(vdupq_n_f32(DR_TANH_P1), p, t);
    p = vfmaq_f32(vdupq_n_f32(DR_TANH_P0), p, t);
    float32x4_t q = vfmaq_f32(vdupq_n_f32(DR_TANH_Q3), vdupq_n_f32(DR_TANH_Q4), t);
    q = vfmaq_f32(vdupq_n_f32(DR_TANH_Q2), q, t);
    q = vfmaq_f32(vdupq_n_f32(DR_TANH_Q1), q, t);
    q = vfmaq_f32(vdupq_n_f32(1.0f), q, t);
    float32x4_t y = vdivq_f32(vmulq_f32(xc, p), q);
    return vminq_f32(vmaxq_f32(y, vdupq_n_f32(-1.0f)), vdupq_n_f32(1.0f));
}

static inline float32x4_t dr__sigmoid_neon(float32x4_t x)
{
    float32x4_t half = vdupq_n_f32(0.5f);
    return vfmaq_f32(half, half, dr__tanh_neon(vmulq_f32(x, half)));
}

/* GELU: the rational form of rational_act.h. */
static inline float32x4_t dr__gelu_neon(float32x4_t x)
{
    float32x4_t xc = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-DR_GELU_XMAX)), vdupq_n_f32(DR_GELU_XMAX));
    float32x4_t t = vmulq_f32(xc, xc);
    float32x4_t p = vfmaq_f32(vdupq_n_f32(DR_GELU_P4), vdupq_n_f32(DR_GELU_P5), t);
    p = vfmaq_f32(vdupq_n_f32(DR_GELU_P3), p, t);
    p = vfmaq_f32(vdupq_n_f32(DR_GELU_P2), p, t);
    p = vfmaq_f32(vdupq_n_f32(DR_GELU_P1), p, t);
    p = vfmaq_f32(vdupq_n_f32(DR_GELU_P0), p, t);
    float32x4_t q = vfmaq_f32(vdupq_n_f32(DR_GELU_Q4), vdupq_n_f32(DR_GELU_Q5), t);
    q = vfmaq_f32(vdupq_n_f32(DR_GELU_Q3), q, t);
    q = vfmaq_f32(vdupq_n_f32(DR_GELU_Q2), q, t);
    q = vfmaq_f32(vdupq_n_f32(DR_GELU_Q1), q, t);
    q = vfmaq_f32(vdupq_n_f32(1.0f), q, t);
    float32x4_t half_erf = vdivq_f32(vmulq_f32(xc, p), q);
    half_erf = vminq_f32(vmaxq_f32(half_erf, vdupq_n_f32(-0.5f)), vdupq_n_f32(0.5f));
    return vfmaq_f32(vmulq_n_f32(x, 0.5f), x, half_erf);
}

#endif /* DR_MATH_NEON_H */
