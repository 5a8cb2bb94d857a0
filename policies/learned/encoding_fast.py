"""The state encoding compiled: ``encoding.encode_state``'s arithmetic in two numba calls, the same bytes.

The numpy encoder makes about 70 small array calls per state, which at the paper cell's size (30 UEs x
30 PRBs) cost more than the arithmetic. Here everything but the transcendental functions runs in
two compiled calls; the logarithms stay numpy's (``np.log10``, ``np.log1p``, two calls on arrays
the first kernel fills), because numpy's vectorised logarithms and the C library's differ in the
last bit on some inputs. Sums are numpy's pairwise summation (``simcore.pairwise_sum``: the eight
partial sums numpy keeps for up to 128 terms, halves beyond), so each float64 value, and the float32 it is
rounded to, is the reference's; ``tests/test_learning_encoding.py`` compares the bytes.

Layout of ``logs`` (float64): the U x K per-PRB SINRs, the U wideband SINRs, the RUs' mean power,
the S slice power caps (1 where none), each floored at 1e-30 (``encoding._db``); of ``log1p_args``:
the U buffers / 1 kbit, then the U recent throughputs / max(min rate, 1 kbit/s).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simcore.pairwise_sum import pairwise_sum as _pairwise

_JIT = dict(cache=True, error_model="numpy")
_TINY = 1e-30


@njit(**_JIT)
def _max(a, b):
    """np.maximum of two floats (NaN propagates)."""
    return a if (a != a or a >= b) else b


@njit(**_JIT)
def _min(a, b):
    """np.minimum of two floats (NaN propagates)."""
    return a if (a != a or a <= b) else b


@njit(**_JIT)
def _clip(v, lo, hi):
    return _min(_max(v, lo), hi)


@njit(**_JIT)
def log_args(sinr, buffer_bits, avg_bps, min_rate_bps, ru_power_w, caps_w, logs, log1p_args):
    """Fill ``logs`` and ``log1p_args`` (module docstring) from the observation's arrays."""
    n, k = sinr.shape
    for u in range(n):
        row = sinr[u]
        for j in range(k):
            logs[u * k + j] = _max(row[j], _TINY)
        logs[n * k + u] = _max(_pairwise(row, 0, k) / k, _TINY)
        log1p_args[u] = buffer_bits[u] / 1e3
        log1p_args[n + u] = avg_bps[u] / _max(min_rate_bps[u], 1e3)
    r = ru_power_w.size
    logs[n * k + n] = _max(_pairwise(ru_power_w, 0, r) / r, _TINY)
    for s in range(caps_w.size):
        c = caps_w[s]
        logs[n * k + n + 1 + s] = _max(c if np.isfinite(c) else 1.0, _TINY)


@njit(**_JIT)
def fill(x, logs, log1p, rate_bps, slice_id, hol_delay_ms, max_delay_ms, qos_met_last, buffer_bits,
         min_rate_bps, max_rate_bps, slice_weight, caps_w, starts, widths, max_ues, n_features,
         interval_s, g3):
    """The state vector x (float32, zeroed here) from the logarithms and the observation's arrays:
    ``encoding._encode_numpy``'s expressions in its order of operations."""
    n, k = rate_bps.shape
    n_sl, n_sub = slice_weight.size, starts.size
    x[:] = 0.0
    w_max = slice_weight[0]
    for s in range(1, n_sl):
        w_max = _max(w_max, slice_weight[s])
    db = np.empty(k)
    k_div = max(k, 1)
    for u in range(n):
        row = u * n_features
        x[row] = 1.0
        x[row + 1 + slice_id[u]] = 1.0
        col = 1 + n_sl
        wide = 10.0 * logs[n * k + u]
        x[row + col] = _clip((wide - 10.0) / 20.0, -3.0, 3.0)
        col += 1
        for j in range(k):
            db[j] = 10.0 * logs[u * k + j]
        for c in range(n_sub):  # np.add.reduceat: the first term, then the rest pairwise
            lo = starts[c]
            hi = (starts[c + 1] if starts[c] < starts[c + 1] else lo + 1) if c + 1 < n_sub else k
            sub = (db[lo] + _pairwise(db, lo + 1, hi - lo - 1)) / widths[c]
            x[row + col + c] = _clip((sub - wide) / 10.0, -3.0, 3.0)
        col += n_sub
        per_prb = _max(_pairwise(rate_bps[u], 0, k) / k, 1.0)
        x[row + col] = log1p[u] / 10.0
        x[row + col + 1] = _clip(hol_delay_ms[u] / max_delay_ms[u], 0.0, 10.0)
        x[row + col + 2] = log1p[n + u] / 5.0
        x[row + col + 3] = 1.0 * qos_met_last[u]  # (a bool, or whatever number the reference copies)
        b = buffer_bits[u]
        need = _min(_max(min_rate_bps[u], b / (max_delay_ms[u] * 1e-3)), max_rate_bps[u]) if b > 0 else 0.0
        x[row + col + 4] = _clip(need / per_prb / k_div, 0.0, 2.0)
        x[row + col + 5] = _clip(_max(b / interval_s, need) / per_prb / k_div, 0.0, 2.0)
        x[row + col + 6] = slice_weight[slice_id[u]] / w_max
    g = max_ues * n_features
    x[g] = (10.0 * logs[n * k + n] + 30.0 - 40.0) / 10.0
    x[g + 1] = n / max_ues
    x[g + 2] = k / 100.0
    x[g + 3] = g3
    for s in range(n_sl):
        x[g + 4 + s] = slice_weight[s] / w_max
        x[g + 4 + n_sl + s] = (10.0 * logs[n * k + n + 1 + s] + 30.0 - 40.0) / 10.0 if np.isfinite(caps_w[s]) else 1.0
    bound = np.float32(10.0)
    for i in range(x.size):
        x[i] = _clip(x[i], -bound, bound)
