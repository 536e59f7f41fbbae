"""Process set-up for the training commands: BLAS kernel choice and thread counts.

Import this module before numpy or torch. Debian's OpenBLAS picks its slowest x86 kernels
(Prescott) on CPUs it does not recognise, which makes every fp32 matmul 3-4x slower (measured
on a 2-core AVX-512 VM: 30 GFLOPS against 108 with the Haswell kernels and 130 with SkylakeX).
``OPENBLAS_CORETYPE`` is read once, when the library loads, so it is set here, from the CPU's
flags, unless the user has set it.
"""

from __future__ import annotations

import os


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _choose_coretype() -> str | None:
    flags = _cpu_flags()
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


# One BLAS thread: torch parallelises around the BLAS calls, and OpenBLAS threads that spin
# while the CPUs are shared made training steps 10x slower (measured on a 2-core VM).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep, not spin

if "OPENBLAS_CORETYPE" not in os.environ:
    _core = _choose_coretype()
    if _core:
        os.environ["OPENBLAS_CORETYPE"] = _core


def set_threads(n: int = 0) -> int:
    """Use n threads in torch (0: every CPU this process may run on). Returns the count."""
    import torch

    if n <= 0:
        try:
            n = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = os.cpu_count() or 1
    torch.set_num_threads(n)
    return n
