"""What decides the last bits of a run's floating-point results on this machine (the manifest's ``numerics``).

A run is a pure function of scenario + seed *given the numeric code that executes it*, and that code is
chosen at run time by the CPU:

- numpy compiles its elementwise kernels (``exp``, ``log``, ``power``, ``log10``, ``arctan2``, ``tanh``,
  ...) several times, one per SIMD class (on x86-64 in numpy 2.4: the ``X86_V2`` baseline, then
  ``X86_V3`` = AVX2/FMA, ``X86_V4`` = AVX-512 with its SVML kernels, ``AVX512_ICL``, ``AVX512_SPR``),
  and dispatches to the best class the CPU has. The classes agree to within an ulp or so, not bit for
  bit, and one flipped last bit in a channel gain changes a scheduling decision sooner or later.
  ``NPY_DISABLE_CPU_FEATURES`` / ``NPY_ENABLE_CPU_FEATURES`` (read once, when numpy is imported) narrow
  the choice, which is how one machine reproduces another's class.
- glibc's libm picks FMA variants of ``exp``, ``log``, ``sin``, ``pow``, ... when the CPU has FMA (numpy's
  baseline kernels and numba's compiled code call libm; ``GLIBC_TUNABLES=glibc.cpu.hwcaps=-FMA,...`` masks it).
- numba compiles oransim's kernels for the host CPU (``NUMBA_CPU_NAME`` overrides), OpenBLAS picks a
  kernel per CPU core type (``OPENBLAS_CORETYPE``), torch one per CPU capability (``ATEN_CPU_CAPABILITY``).

``numeric_platform()`` records all of these (cheaply: nothing is imported that the run did not load),
so two runs whose ``versions`` and ``numerics`` entries match are expected bit-identical, and two runs
that differ can be told apart by them. docs/architecture.md ("Reproducibility") states the guarantee
and the measured effect of a different SIMD class.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

#: environment variables that change which numeric kernels run (recorded when set)
NUMERIC_ENV_VARS = ("NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES", "GLIBC_TUNABLES", "NUMBA_CPU_NAME",
                    "NUMBA_CPU_FEATURES", "OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "Model", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def numpy_simd() -> dict:
    """``{"baseline": [...], "dispatch": [targets this process uses], "not_used": [built, switched off or absent],
    "cpu_fma": the CPU has fused multiply-add}``."""
    try:
        from numpy._core import _multiarray_umath as mu  # numpy >= 2
    except ImportError:  # numpy 1.26
        from numpy.core import _multiarray_umath as mu
    found = mu.__cpu_features__
    dispatch = list(mu.__cpu_dispatch__)
    return {"baseline": list(mu.__cpu_baseline__), "dispatch": [t for t in dispatch if found.get(t)],
            "not_used": [t for t in dispatch if not found.get(t)],
            "cpu_fma": bool(found.get("FMA3") or found.get("ASIMD"))}  # what glibc's FMA variants key on


def openblas_cores() -> dict[str, str]:
    """``{library file: kernel core name}`` for the OpenBLAS builds loaded in this process (Linux)."""
    from simcore.threads import loaded_openblas

    out = {}
    for name, lib in loaded_openblas():
        for symbol in ("openblas_get_corename", "openblas_get_corename64_", "scipy_openblas_get_corename",
                       "scipy_openblas_get_corename64_"):
            if hasattr(lib, symbol):
                fn = getattr(lib, symbol)
                fn.restype = ctypes.c_char_p
                out[name] = fn().decode(errors="replace").strip()
                break
    return out


def numeric_platform() -> dict:
    """The manifest's ``numerics`` entry: CPU, libc, numpy's SIMD targets, and numba's / OpenBLAS's / torch's
    CPU-dependent choices for the libraries this process has loaded; ``env``: the variables above that are set."""
    import numpy as np

    out: dict = {"cpu": cpu_model(), "machine": platform.machine(), "libc": "-".join(platform.libc_ver()) or None,
                 "numpy": np.__version__, "numpy_simd": numpy_simd()}
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        name = numba.config.CPU_NAME
        if not name:
            import llvmlite.binding as llvm

            name = llvm.get_host_cpu_name()
        out["numba_cpu"] = name
    blas = openblas_cores()
    if blas:
        out["openblas_core"] = blas
    if "torch" in sys.modules:
        out["torch_cpu_capability"] = sys.modules["torch"].backends.cpu.get_cpu_capability()
    out["env"] = {v: os.environ[v] for v in NUMERIC_ENV_VARS if v in os.environ}
    return out
