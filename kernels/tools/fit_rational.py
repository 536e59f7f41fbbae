#!/usr/bin/python3
"""Fit the rational GELU and tanh of kernels/rational_act.h; print coefficients and error.

Both are odd functions fitted as f(z) ~ z * P(z^2) / Q(z^2) on 0 <= z <= ZMAX (Q(0) = 1) by
linearised least squares (Sanathanan-Koerner) with Lawson reweighting towards the minimax
error, then checked in float32 arithmetic, step by step as the kernels evaluate them, against
float64 references:
  gelu: f = erf, rewritten in x (z = x / sqrt 2, halved) so that
        gelu(x) = x * (1/2 + clamp(xc * P(t) / Q(t), +-1/2)),  xc = clamp(x, +-XMAX), t = xc^2;
  tanh: f = tanh, tanh(x) = clamp(xc * P(t) / Q(t), +-1) (sigmoid(x) = 1/2 + tanh(x / 2) / 2).
The clamp point XMAX is the largest float32 near ZMAX (in x) where the float32 rational reaches
the limit, so beyond it the results are exactly 0 and x (GELU) and +-1 (tanh), as the functions
round in float32.

    /usr/bin/python3 kernels/tools/fit_rational.py gelu   # (5, 5), ZMAX 3.92
    /usr/bin/python3 kernels/tools/fit_rational.py tanh   # (4, 4), ZMAX 9
"""
import argparse
import math

import numpy as np

DEFAULTS = {"gelu": (5, 5, 3.92), "tanh": (4, 4, 9.0)}


def fit(fn, kp: int, kq: int, zmax: float, iters: int = 80):
    z = np.linspace(0.0, zmax, 20001)
    t = z * z
    f = np.array([fn(v) for v in z])
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
    """Horner's rule in float32 with fused multiply-adds (the product of two float32 values is
    exact in float64; one rounding per step, as vfmadd does)."""
    acc = np.full_like(t, coef[-1])
    for c in coef[-2::-1]:
        acc = (acc.astype(np.float64) * t.astype(np.float64) + float(c)).astype(np.float32)
    return acc


def rational32(p: np.ndarray, q: np.ndarray, xc: np.ndarray) -> np.ndarray:
    t = (xc * xc).astype(np.float32)
    return ((xc * horner32(p, t)).astype(np.float32) / horner32(q, t)).astype(np.float32)


def clamp_point(p: np.ndarray, q: np.ndarray, xmax: np.float32, lim: np.float32) -> np.float32:
    """The largest float32 at most xmax (within the last 2% of the fitted range) where the
    rational reaches lim, so that every x beyond the clamp gives exactly the limit."""
    cand = np.arange(-4096, 1, dtype=np.int32) + np.array([xmax], np.float32).view(np.int32)[0]
    xs = cand.view(np.float32)
    xs = xs[xs >= xmax * np.float32(0.98)]
    ok = xs[rational32(p, q, xs) >= lim]
    if not len(ok):
        raise SystemExit(f"no clamp point reaches {lim}: change --zmax")
    return np.float32(ok[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fn", choices=sorted(DEFAULTS))
    ap.add_argument("--p", type=int)
    ap.add_argument("--q", type=int)
    ap.add_argument("--zmax", type=float)
    args = ap.parse_args()
    kp, kq, zmax = DEFAULTS[args.fn]
    kp, kq, zmax = args.p or kp, args.q or kq, args.zmax or zmax
    name = args.fn.upper()
    if args.fn == "gelu":
        p, q, err64 = fit(math.erf, kp, kq, zmax)
        s = 1.0 / math.sqrt(2.0)
        p = np.array([p[i] * s ** (2 * i + 1) * 0.5 for i in range(len(p))], np.float32)
        q = np.array([q[i] * 0.5 ** i for i in range(len(q))], np.float32)
        xmax = np.float32(zmax * math.sqrt(2.0))
        x = np.linspace(-20.0, 20.0, 800001).astype(np.float32)
        exact = np.array([0.5 * float(v) * (1.0 + math.erf(float(v) * s)) for v in x])
    else:
        p, q, err64 = fit(math.tanh, kp, kq, zmax)
        p, q = p.astype(np.float32), q.astype(np.float32)
        xmax = np.float32(zmax)
        x = np.linspace(-30.0, 30.0, 1200001).astype(np.float32)
        exact = np.tanh(x.astype(np.float64))
    lim = np.float32(0.5 if args.fn == "gelu" else 1.0)
    xmax = clamp_point(p, q, xmax, lim)
    xc = np.clip(x, -xmax, xmax)
    r = np.clip(rational32(p, q, xc), -lim, lim)
    if args.fn == "gelu":
        y = (x * np.float32(0.5) + x * r).astype(np.float32)
        bound = np.maximum(1.0, np.abs(x))
        what = "* max(1, |x|)"
    else:
        y, bound, what = r, 1.0, f"absolute; max |tanh| {float(np.abs(r).max()):.9g}"
    err32 = (np.abs(y - exact) / bound).max()
    print(f"/* fit error (float64) {err64:.3g}; float32 evaluation {err32:.3g} {what} */")
    xmax_c = f"{float(xmax):.9g}"
    print(f"#define DR_{name}_XMAX {xmax_c if '.' in xmax_c else xmax_c + '.0'}f")
    for part, coef in (("p", p), ("q", q)):
        print(f"static const float dr_{args.fn}_{part}[{len(coef)}] __attribute__((unused)) = {{")
        for c in coef:
            print(f"    {float(c):.9e}f,")
        print("};")


if __name__ == "__main__":
    main()
