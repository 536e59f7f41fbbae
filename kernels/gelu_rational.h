/* gelu_rational.h: the coefficients of the SIMD GELU (math_avx2.h, math_avx512.h, math_neon.h).
 *
 *   gelu(x) = x * (1/2 + xc * P(t) / Q(t)),  xc = clamp(x, -DR_GELU_XMAX, DR_GELU_XMAX),  t = xc^2
 *
 * x * P / Q approximates erf(x / sqrt 2) / 2: a (5, 5) rational fit in t, near-minimax (Lawson
 * reweighting) over |x| <= DR_GELU_XMAX, where erf(x / sqrt 2) is within 2e-8 of +-1.  Fitted by
 * kernels/tools/fit_gelu.py.  Error of the fp32 evaluation: 2.3e-7 * max(1, |x|) against
 * the exact erf GELU (tests/kernels allow 1e-6).  It replaced erf by Abramowitz & Stegun 7.1.26,
 * which needs an exp and a division: 17 vector operations instead of about 30, and the
 * GELU epilogue of BERT's FFN is bound by their count (AVX-512: 18 -> 9 cycles per vector).
 */
#ifndef DR_GELU_RATIONAL_H
#define DR_GELU_RATIONAL_H

#define DR_GELU_XMAX 5.543717384f
#define DR_GELU_P0   3.989422321e-01f
#define DR_GELU_P1   3.407485783e-02f
#define DR_GELU_P2   4.689807072e-03f
#define DR_GELU_P3   1.709382777e-04f
#define DR_GELU_P4   6.351818229e-06f
#define DR_GELU_P5   2.247882946e-08f
#define DR_GELU_Q1   2.520788312e-01f
#define DR_GELU_Q2   2.877028845e-02f
#define DR_GELU_Q3   1.896431786e-03f
#define DR_GELU_Q4   7.424830255e-05f
#define DR_GELU_Q5   1.189600084e-06f

#endif /* DR_GELU_RATIONAL_H */
