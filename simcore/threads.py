"""Thread counts of the numeric libraries a run uses: BLAS/OpenMP under numpy and scipy, torch, numba.

A TTI is many small numpy calls and a decision a few small matrix products: more threads per pool
only add synchronisation, and a sweep already runs one process per core, so by default every pool
gets one thread. ``ORANSIM_THREADS=N`` (a positive integer, default 1) sets them all to N.

The pools take their size when their library starts, so the command line calls ``pin_threads``
before anything imports numpy (and again in ``main``, which covers a caller that imported numpy
first: then threadpoolctl, where installed, resizes the BLAS/OpenMP pools already running, and
torch is set with ``torch.set_num_threads``). The environment variables it sets are inherited by
the processes a command starts (sweep workers, the ns-3 server). A learned policy sets torch's
count itself from its ``threads`` parameter (default 1). ``thread_counts`` is what the manifest
records: the count asked for and what each loaded library reports.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "ORANSIM_THREADS"
DEFAULT_THREADS = 1
#: the variables each numeric library reads for its pool size when it starts
POOL_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


class ThreadsError(ValueError):
    """``ORANSIM_THREADS`` is not a positive integer."""


def requested_threads(environ=None) -> int:
    """The count ``ORANSIM_THREADS`` asks for (``DEFAULT_THREADS`` when unset or empty)."""
    raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ThreadsError(f"{ENV_VAR}: '{raw}' is not a positive integer (threads per numeric library; default "
                           f"{DEFAULT_THREADS})")
    return n


def pin_threads(n: int | None = None) -> int:
    """Give every numeric pool ``n`` threads (default: ``requested_threads()``); returns ``n``."""
    n = requested_threads() if n is None else int(n)
    os.environ[ENV_VAR] = str(n)
    for var in POOL_VARS:
        os.environ[var] = str(n)
    if "numpy" in sys.modules or "scipy" in sys.modules:  # started already: resize what is running
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            for _name, (_get, set_threads) in _openblas_calls().items():
                set_threads(n)
        else:
            threadpool_limits(limits=n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return n  # numba reads NUMBA_NUM_THREADS when imported (oransim's compiled code runs serially anyway)


def thread_counts() -> dict:
    """``{"requested": N or None, "blas": {library file: threads}, "torch": n or None, "numba": n or None}``;
    ``blas`` from threadpoolctl when installed, else from the OpenBLAS libraries loaded (``_openblas_calls``)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    out: dict = {"requested": int(raw) if raw.isdigit() else None, "blas": {}, "torch": None, "numba": None}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        out["blas"] = {name: int(get()) for name, (get, _set) in _openblas_calls().items()}
    else:
        for pool in threadpool_info():
            out["blas"][os.path.basename(pool["filepath"])] = int(pool["num_threads"])
    if "torch" in sys.modules:
        out["torch"] = int(sys.modules["torch"].get_num_threads())
    if "numba" in sys.modules:  # the size of its pool (asking get_num_threads would start the pool)
        out["numba"] = int(sys.modules["numba"].config.NUMBA_NUM_THREADS)
    return out


#: OpenBLAS's getter and setter under the names its builds export (plain, 64-bit ints, numpy's and scipy's own)
_OPENBLAS_SYMBOLS = [(f"{p}openblas_get_num_threads{q}", f"{p}openblas_set_num_threads{q}")
                     for p in ("", "scipy_") for q in ("", "64_")]


def loaded_openblas() -> list[tuple[str, object]]:
    """``[(library file name, ctypes handle)]`` for the OpenBLAS builds loaded in this process (numpy
    and scipy each bundle one), found in ``/proc/self/maps`` and opened without loading anything; empty
    elsewhere. Shared by the thread pinning here and the manifest's ``numerics`` entry."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return []
    libs = []
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            libs.append((os.path.basename(path), ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0))))
        except OSError:
            continue
    return libs


def _openblas_calls() -> dict:
    """``{library file name: (get_num_threads, set_num_threads)}`` for the loaded OpenBLAS builds."""
    import ctypes

    out = {}
    for name, lib in loaded_openblas():
        for get_name, set_name in _OPENBLAS_SYMBOLS:
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                getter, setter = getattr(lib, get_name), getattr(lib, set_name)
                setter.argtypes = [ctypes.c_int]
                out[name] = (getter, setter)
                break
    return out
