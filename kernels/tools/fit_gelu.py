#!/usr/bin/python3
"""Fit the rational GELU of kernels/gelu_rational.h and print its coefficients and error.

erf(z) ~ z * P(z^2) / Q(z^2) on 0 <= z <= ZMAX (Q(0) = 1), by linearised least squares
(Sanathanan-Koerner) with Lawson reweighting towards the minimax error; then rewritten in x
(z = x / sqrt 2, halved) so that gelu(x) = x * (1/2 + xc * P2(t) / Q2(t)), t = xc^2, and checked
in float32 arithmetic, step by step as the kernels evaluate it, against the exact erf GELU.

    /usr/bin/python3 kernels/tools/fit_gelu.py [--p 5] [--q 5] [--zmax 3.92]
"""
import argparse
import math

import numpy as np


def fit(kp: int, kq: int, zmax: float, iters: int = 60):
    z = np.linspace(0.0, zmax, 20001)
    t = z * z
    f = np.array([math.erf(v) for v in z])
    q_val = np.ones_like(t)
    w = np.ones_like(t)
    for _ in range(iters):
        a = np.concatenate([z[:, None] * t[:, None] ** np.arange(kp + 1),
                            -(f[:, None] * t[:, None] ** np.arange(1, kq + 1))], axis=1)
        scale = w / np.abs(q_val)
        sol, *_ = np.linalg.lstsq(a * scale[:, None], f * scale, rcond=None)
        p, q = sol[:kp + 1], np.concatenate([[1.0], sol[kp + 1:]])
        q_val = np.polyval(q[::-1], t)
        err = z * np.polyval(p[::-1], t) / q_val - f
        w = w * np.sqrt(np.abs(err) + 1e-30)
        w /= w.mean()
    return p, q, float(np.abs(err).max())


def horner32(coef: np.ndarray, t: np.ndarray) -> np.ndarray:
    acc = np.full_like(t, coef[-1])
    for c in coef[-2::-1]:
        acc = (acc * t + c).astype(np.float32)
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p", type=int, default=5)
    ap.add_argument("--q", type=int, default=5)
    ap.add_argument("--zmax", type=float, default=3.92)
    args = ap.parse_args()
    p, q, err64 = fit(args.p, args.q, args.zmax)
    s = 1.0 / math.sqrt(2.0)
    p2 = np.array([p[i] * s ** (2 * i + 1) * 0.5 for i in range(len(p))], np.float32)
    q2 = np.array([q[i] * 0.5 ** i for i in range(len(q))], np.float32)
    xmax = np.float32(args.zmax * math.sqrt(2.0))
    x = np.linspace(-20.0, 20.0, 800001).astype(np.float32)
    xc = np.clip(x, -xmax, xmax)
    t = (xc * xc).astype(np.float32)
    half_erf = ((xc * horner32(p2, t)).astype(np.float32) / horner32(q2, t)).astype(np.float32)
    y = (x * np.float32(0.5) + x * half_erf).astype(np.float32)
    exact = np.array([0.5 * float(v) * (1.0 + math.erf(float(v) * s)) for v in x])
    rel = (np.abs(y - exact) / np.maximum(1.0, np.abs(x))).max()
    print(f"erf fit error (float64): {err64:.3g}; GELU error in float32: {rel:.3g} * max(1, |x|)")
    print(f"#define DR_GELU_XMAX {float(xmax):.9g}f")
    for i, c in enumerate(p2):
        print(f"#define DR_GELU_P{i}   {float(c):.9e}f")
    for i, c in enumerate(q2[1:], 1):
        print(f"#define DR_GELU_Q{i}   {float(c):.9e}f")


if __name__ == "__main__":
    main()
