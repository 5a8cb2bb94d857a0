"""The engine's per-TTI work outside decisions, compiled with numba: one call where numpy took many.

A TTI without a decision used to be some thirty small numpy calls (the PHY's SINR of the active
PRBs, their bits, the FIFO service, the served-bit counters, the throughput average, the TTI
record's row); each costs the fixed overhead of a numpy call, far more than its arithmetic on 30
PRBs and 90 UEs. These kernels do the same float64 operations in the same order, so every result
is the same bit for bit (``scripts/same_results.py``). Transcendental functions (the rate's log2)
stay numpy calls between two kernels: numpy's vectorised log2 and a compiled one may differ in the
last bit.

- ``one_ru_sinr``: the built-in PHY's SINR on one RU (``LinkModel.sinr``, no interference) for the
  PRBs an allocation uses, and the argument 1 + SINR / Gamma of the Shannon rate's log2.
- ``shannon_bits``: min(log2(...), SE_max) * B_PRB T_TTI scattered onto the (R, K) PRB grid.
- ``finish``: the FIFO service of the TTI (``buffers_fast.serve``), the engine's served-bit counters
  and throughput average, and the TTI record's row, in one call.
- ``close_interval``: whether each UE met its rate target over the scheduling interval.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .buffers_fast import U_ENQ, U_OUT, prb_capacity, serve

_JIT = dict(cache=True, error_model="numpy")


@njit(**_JIT)
def one_ru_sinr(gain, owner, power, noise_w, quant_w, gap, out_sinr, x):
    """SINR of each PRB of RU 0 at its owner (``out_sinr`` (1, K), NaN where idle), as
    ``LinkModel.sinr(g, p, 0)``: g p / (N0 B + 0 + g sigma_q^2). ``x`` (K,) receives, for the active
    PRBs in PRB order, 1 + max(SINR, 0) / gap (the Shannon rate's log2 argument). Returns how many."""
    n = 0
    for k in range(owner.shape[1]):
        u = owner[0, k]
        if u < 0:
            out_sinr[0, k] = np.nan
            continue
        g = gain[u, 0, k]
        s = g * power[0, k] / (noise_w + 0.0 + g * quant_w)
        out_sinr[0, k] = s
        x[n] = 1.0 + (s if s > 0.0 else 0.0) / gap  # np.fmax(s, 0): NaN -> 0
        n += 1
    return n


@njit(**_JIT)
def shannon_bits(log2_x, owner, max_se, bits_per_se, out):
    """``out`` (1, K): min(log2_x, max_se) * bits_per_se on the active PRBs of ``owner`` (in PRB
    order, as ``one_ru_sinr`` listed them), 0 where idle."""
    n = 0
    for k in range(owner.shape[1]):
        if owner[0, k] < 0:
            out[0, k] = 0.0
            continue
        se = log2_x[n]
        out[0, k] = (se if se < max_se else max_se) * bits_per_se  # np.minimum (no NaN here)
        n += 1


@njit(**_JIT)
def finish(owner, prb_bits, capacity, served_here, served, now, delivered_at, pf, pi, pc, base, uf, ui,
           total, in_interval, avg, decay, per_bit, row, rec_served, rec_buffer, rec_owner, rec_sinr, rec_power,
           prb_sinr, power):
    """The end of a TTI. Serve each UE's FIFO with ``capacity`` (U,), or, when ``prb_bits`` has rows,
    with the bits its PRBs carried (``buffers_fast.serve_prbs``); ``served`` (U,) gets the bits
    served plus ``served_here`` (bits the link-to-system model delivered itself). Then, as the
    engine did in numpy: total += served; in_interval += served; avg *= decay; avg += served *
    per_bit; and, when ``row`` >= 0, the TTI record's row: served, backlog, PRB owners, SINR and
    power (float32, as numpy casts)."""
    n_ues = served.size
    if prb_bits.shape[0]:
        capacity = prb_capacity(owner, prb_bits, n_ues)
    serve(capacity, served, now, delivered_at, pf, pi, pc, base, uf, ui)
    for u in range(n_ues):
        s = served[u] + served_here[u]
        served[u] = s
        total[u] += s
        in_interval[u] += s
        avg[u] *= decay
        avg[u] += s * per_bit
    if row < 0:
        return
    for u in range(n_ues):
        rec_served[row, u] = served[u]
        rec_buffer[row, u] = uf[U_ENQ, u] - uf[U_OUT, u]
    n_ru, n_k = owner.shape
    for r in range(n_ru):
        for k in range(n_k):
            rec_owner[row, r, k] = owner[r, k]
            rec_sinr[row, r, k] = np.float32(prb_sinr[r, k])
            rec_power[row, r, k] = np.float32(power[r, k])


@njit(**_JIT)
def close_interval(in_interval, interval_s, min_rate, uf, qos_met):
    """qos_met = (in_interval / interval_s >= min_rate) | (backlog <= 0); in_interval = 0."""
    for u in range(in_interval.size):
        qos_met[u] = in_interval[u] / interval_s >= min_rate[u] or uf[U_ENQ, u] - uf[U_OUT, u] <= 0
        in_interval[u] = 0.0

