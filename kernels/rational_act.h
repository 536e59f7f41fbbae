/* rational_act.h: coefficients of the SIMD GELU, tanh and sigmoid (math_avx2.h,
 * math_avx512.h, math_neon.h), printed by kernels/tools/fit_rational.py.
 *
 *   gelu(x)    = x * (1/2 + clamp(xc * P(t) / Q(t), +-1/2)),  xc = clamp(x, +-DR_GELU_XMAX)
 *   tanh(x)    = clamp(xc * P(t) / Q(t), +-1),                xc = clamp(x, +-DR_TANH_XMAX)
 *   sigmoid(x) = 1/2 + tanh(x / 2) / 2,                        t = xc^2
 *
 * P and Q are listed from the constant term up (Q's is 1).
 *
 * Near-minimax rational fits of erf (GELU: (5, 5) in t over |x / sqrt 2| <= 3.92, where erf
 * is within 2e-8 of +-1) and tanh ((4, 4) over |x| <= 9, within 3e-8 of +-1).  Both reach
 * their limit at XMAX in float32, so past it the clamps give exactly 0 or x (GELU) and +-1
 * (tanh), as the exact functions round.  Errors of the float32 evaluation: GELU
 * 2.1e-7 * max(1, |x|), tanh 2.9e-7 absolute, sigmoid half that; tests/kernels allow 1e-6.
 * They replaced Abramowitz & Stegun's erf and exp-based tanh and sigmoid: no exp, half the
 * vector operations (GELU 19 instead of about 30), and both BERT's GELU epilogue and the LSTM
 * cell are bound by that count (AVX-512 GELU: 18 -> 9 cycles per vector).
 */
#ifndef DR_RATIONAL_ACT_H
#define DR_RATIONAL_ACT_H

/* Coefficients in one of the arrays below (the evaluators take them with their counts). */
#define DR_RATIONAL_LEN(coef) (sizeof(coef) / sizeof((coef)[0]))

#define DR_GELU_XMAX 5.54371309f
#define DR_TANH_XMAX 9.0f

/* `unused`: a file may include an ISA's math header and use neither function. */
/* clang-format off */
static const float dr_gelu_p[6] __attribute__((unused)) = {
    3.989422321e-01f,
    3.407549486e-02f,
    4.689858761e-03f,
    1.709466014e-04f,
    6.352039691e-06f,
    2.247932507e-08f,
};
static const float dr_gelu_q[6] __attribute__((unused)) = {
    1.0f,
    2.520804405e-01f,
    2.877068706e-02f,
    1.896477537e-03f,
    7.425186050e-05f,
    1.189631348e-06f,
};
static const float dr_tanh_p[5] __attribute__((unused)) = {
    9.999998808e-01f,
    1.337318867e-01f,
    3.486568807e-03f,
    2.047156340e-05f,
    1.318378118e-08f,
};
static const float dr_tanh_q[5] __attribute__((unused)) = {
    1.0f,
    4.670648575e-01f,
    2.584193274e-02f,
    3.271361638e-04f,
    7.702496418e-07f,
};
/* clang-format on */

#endif /* DR_RATIONAL_ACT_H */
