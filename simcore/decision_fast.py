"""The per-decision arithmetic of the engine compiled with numba: the fading draw, the AR(1) refresh
of every (UE, RU, PRB) entry, the estimated per-PRB rate table and the recorded objective.

A decision every TTI redraws the fading of every entry (2,700 at 3 x 30 UEs, 30 PRBs) and rebuilds
the rate table: a few dozen numpy calls whose fixed cost exceeds their arithmetic. Here the exact
operations (+, -, *, /, sqrt, comparisons, casts) run in one compiled loop each, in the same order
and at the same precision as the numpy code they replace (no fastmath, no reassociation), and the
transcendental functions (log1p, cos, sin, log2) stay numpy calls between the loops: numba's
versions can differ from numpy's vectorised ones in the last bit. Every result is therefore the
same bit for bit (``tests/test_decision_fast.py``; whole runs with ``scripts/same_results.py``).

**Uniforms.** ``Generator.random(shape, dtype=float32)`` on numpy's default ``PCG64`` takes 32 bits
per value: the low then the high half of each 64-bit output, ``(u32 >> 8) * 2**-24``. The kernel
steps the generator's own state (read and written in place through ``BitGenerator.ctypes``; the
128-bit LCG step and the XSL-RR output as in numpy's pcg64.h) and writes the same floats, leaving
the generator exactly as ``random`` would (``PcgState``). A generator holding a buffered 32-bit half,
or another bit generator, falls back to ``random``.

numba compiles on first use (``cache=True``: once per machine, then read from ``__pycache__``).
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .pairwise_sum import pairwise_sum

_JIT = dict(cache=True, error_model="numpy")
#: numpy's PCG64 multiplier (pcg64.h: PCG_DEFAULT_MULTIPLIER_HIGH, _LOW)
_PCG_MULT = (2549297995355413924 << 64) | 4865540595714422341
_TWO_PI = np.float32(2.0 * np.pi)  # (channel.complex_normal's constant)
_SCALE24 = np.float32(1.0 / 16777216.0)


def _join128(builder, hi, lo):
    i128 = ir.IntType(128)
    return builder.or_(builder.shl(builder.zext(hi, i128), ir.Constant(i128, 64)), builder.zext(lo, i128))


@intrinsic
def _affine128(typingctx, lo, hi, m_lo, m_hi, c_lo, c_hi):
    """(lo, hi) of s * m + c (mod 2^128) for 128-bit s, m, c given as (lo, hi) uint64 halves."""
    u64 = types.uint64
    sig = types.UniTuple(u64, 2)(u64, u64, u64, u64, u64, u64)

    def codegen(context, builder, signature, args):
        i64, i128 = ir.IntType(64), ir.IntType(128)
        s_lo, s_hi, a_lo, a_hi, b_lo, b_hi = args
        r = builder.add(builder.mul(_join128(builder, s_hi, s_lo), _join128(builder, a_hi, a_lo)),
                        _join128(builder, b_hi, b_lo))
        out = (builder.trunc(r, i64), builder.trunc(builder.lshr(r, ir.Constant(i128, 64)), i64))
        return context.make_tuple(builder, signature.return_type, out)

    return sig, codegen


_M_LO, _M_HI = np.uint64(_PCG_MULT & (2**64 - 1)), np.uint64(_PCG_MULT >> 64)


@njit(**_JIT)
def _xsl_rr(lo, hi):
    """PCG64's output of a state: rotr64(hi ^ lo, hi >> 58)."""
    x = hi ^ lo
    rot = hi >> np.uint64(58)
    return (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))


@njit(**_JIT)
def _put(flat, j, r):
    """The two float32 uniforms of output ``r`` (low half first) at flat[2j], flat[2j + 1]."""
    flat[2 * j] = np.float32(np.int64((r >> np.uint64(8)) & np.uint64(0xFFFFFF))) * _SCALE24
    flat[2 * j + 1] = np.float32(np.int64(r >> np.uint64(40))) * _SCALE24


@njit(**_JIT)
def uniform_f32(state, tail, out, polar):
    """Fill ``out`` (2, n) float32 as ``Generator.random((2, n), dtype=float32)`` would, stepping
    ``state`` (uint64 [state lo, state hi, inc lo, inc hi]) in place and leaving ``tail`` (uint32
    [has_uint32, uinteger]) as numpy leaves it. ``polar``: write -U for the first row and U * 2 pi
    (float32) for the second instead (the first steps of ``channel.complex_normal``)."""
    lo, hi, c_lo, c_hi = state[0], state[1], state[2], state[3]
    n = out.shape[1]
    flat = out.ravel()  # C order: row 0 then row 1, as numpy fills it
    for j in range(n):
        lo, hi = _affine128(lo, hi, _M_LO, _M_HI, c_lo, c_hi)
        _put(flat, j, _xsl_rr(lo, hi))
    state[0] = lo
    state[1] = hi
    if n:
        tail[1] = np.uint32(_xsl_rr(lo, hi) >> np.uint64(32))  # numpy keeps the last high half in uinteger
    if polar:
        a, b = out[0], out[1]
        for i in range(n):
            a[i] = -a[i]
            b[i] = b[i] * _TWO_PI


class PcgState:
    """Views of a ``PCG64`` generator's state for ``uniform_f32``; ``ok()`` says whether the kernel may
    draw now (no buffered 32-bit half). ``None`` from ``of()`` when the generator is not a PCG64 whose
    memory layout was verified against its ``state`` property."""

    def __init__(self, bitgen, state: np.ndarray, tail: np.ndarray):
        self.bitgen, self.state, self.tail = bitgen, state, tail  # (bitgen keeps the memory alive)

    @staticmethod
    def of(rng: np.random.Generator) -> "PcgState | None":
        bg = rng.bit_generator
        if type(bg) is not np.random.PCG64:
            return None
        addr = bg.ctypes.state_address
        ptr = ctypes.c_void_p.from_address(addr).value  # pcg64_state.pcg_state -> {state, inc} (128-bit each)
        state = np.ctypeslib.as_array((ctypes.c_uint64 * 4).from_address(ptr))
        tail = np.ctypeslib.as_array((ctypes.c_uint32 * 2).from_address(addr + 8))  # has_uint32, uinteger
        st = bg.state
        if (int(state[1]) << 64 | int(state[0]), int(state[3]) << 64 | int(state[2])) != (
                st["state"]["state"], st["state"]["inc"]) or (int(tail[0]), int(tail[1])) != (
                st["has_uint32"], st["uinteger"]):
            return None  # another layout: the generator's own methods
        return PcgState(bg, state, tail)

    def ok(self) -> bool:
        return self.tail[0] == 0

    def __reduce__(self):
        # the views point into this generator's memory: a copy or a pickle of the owner gets None
        # (its generator's own methods) rather than views of the original's state
        return _no_state, ()


def _no_state() -> None:
    return None


@njit(**_JIT)
def ar1_refresh(h, u, cos, a, s, large_scale, n_prb, gain):
    """The AR(1) step of every entry after ``channel.complex_normal``'s transcendental calls, then the
    gains: ``u[0]`` holds log1p(-U1), ``cos`` cos(2 pi U2), ``u[1]`` sin(2 pi U2) (float32, (2, n) / (n,)).
    w = sqrt(-u[0]) * (cos, sin) * s; h = h * a + w (float32, in place, (2, n)), a and s float32 for
    every entry; then gain[i] = large_scale[i // n_prb] * (h_re^2 + h_im^2) (float64 times the float32
    sum), as ``Channel.refresh_all`` computes them. (Flat loops from 0: numba then vectorises them.)"""
    h0, h1, lg, ph = h[0], h[1], u[0], u[1]
    for i in range(h0.shape[0]):
        amp = np.float32(np.sqrt(-lg[i]))  # (float32 sqrt: correctly rounded either way)
        x = h0[i] * a + (amp * cos[i]) * s
        y = h1[i] * a + (amp * ph[i]) * s
        h0[i] = x
        h1[i] = y
        gain[i] = np.float64(x * x + y * y)
    _scale_rows(gain, large_scale, n_prb)


@njit(**_JIT)
def ar1_refresh_gaps(h, u, cos, tti, drawn_at, decay, innov, large_scale, n_prb, gain):
    """``ar1_refresh`` with each entry's own gap tti - drawn_at[i] (< len(decay)): a = decay[gap],
    s = innov[gap] (``Channel``'s float32 tables)."""
    h0, h1, lg, ph = h[0], h[1], u[0], u[1]
    for i in range(h0.shape[0]):
        g = tti - drawn_at[i]
        a, s = decay[g], innov[g]
        amp = np.float32(np.sqrt(-lg[i]))
        x = h0[i] * a + (amp * cos[i]) * s
        y = h1[i] * a + (amp * ph[i]) * s
        h0[i] = x
        h1[i] = y
        gain[i] = np.float64(x * x + y * y)
    _scale_rows(gain, large_scale, n_prb)


@njit(**_JIT)
def _scale_rows(gain, large_scale, n_prb):
    """gain[j * n_prb + k] = large_scale[j] * gain[j * n_prb + k]."""
    m = large_scale.shape[0]
    g2 = gain.reshape((m, n_prb))
    for j in range(m):
        ls = large_scale[j]
        for k in range(n_prb):
            g2[j, k] = ls * g2[j, k]


@njit(**_JIT)
def one_ru_sinr(gain, power, noise_w, quant_w, snr_gap, sinr, x):
    """``LinkModel.sinr`` of every (UE, PRB) of a one-RU cell at one power per PRB: sinr = g p /
    (N + g q) (with N + 0 interference); then x = 1 + fmax(sinr, 0) / gap, the argument of the
    Shannon rate's log2. gain, sinr, x: (U, K) float64; sinr and x C-contiguous."""
    g, out_s, out_x = gain.ravel(), sinr.ravel(), x.ravel()
    noise = noise_w + 0.0
    for i in range(g.shape[0]):
        out_s[i] = g[i] * power / (noise + g[i] * quant_w)
    if snr_gap == 1.0:  # (v / 1.0 is v exactly: one division per entry less)
        for i in range(g.shape[0]):
            v = out_s[i]
            out_x[i] = 1.0 + (v if v > 0.0 else 0.0)  # fmax(v, 0): NaN gives 0 (v is never < 0)
    else:
        for i in range(g.shape[0]):
            v = out_s[i]
            out_x[i] = 1.0 + (v if v > 0.0 else 0.0) / snr_gap


@njit(**_JIT)
def one_ru_csi(gain, power, noise_w, quant_w, snr_gap):
    """A CSI snapshot of a one-RU cell: (a copy of ``gain`` (U, 1, K), then ``one_ru_sinr``'s (U, K)
    sinr and log2 argument x of the copy), all three fresh arrays."""
    n_ue, _, n_prb = gain.shape
    copy = gain.copy()
    sinr = np.empty((n_ue, n_prb))
    x = np.empty((n_ue, n_prb))
    one_ru_sinr(copy.reshape((n_ue, n_prb)), power, noise_w, quant_w, snr_gap, sinr, x)
    return copy, sinr, x


@njit(**_JIT)
def shannon_rate(se, max_se, bandwidth_hz, out):
    """out = minimum(se, max_se) * bandwidth (np.minimum: NaN propagates), elementwise (U, K),
    both C-contiguous (may be the same array)."""
    a, b = se.ravel(), out.ravel()
    for i in range(a.shape[0]):
        v = a[i]
        b[i] = (max_se if v > max_se else v) * bandwidth_hz


@njit(**_JIT)
def one_ru_rate_rows(gain, power, noise_w, quant_w, snr_gap, data_bits, x):
    """``one_ru_sinr``'s log2 arguments for the rows u with data_bits[u] > 0 only, packed: row j of
    ``x`` for the j-th such UE. Returns the number of rows m (x[:m] then holds them)."""
    n_ue, n_prb = gain.shape
    noise = noise_w + 0.0
    m = 0
    for u in range(n_ue):
        if data_bits[u] > 0:
            for k in range(n_prb):
                g = gain[u, k]
                v = g * power / (noise + g * quant_w)
                x[m, k] = v if v > 0.0 else 0.0  # fmax(v, 0): NaN gives 0 (v is never < 0)
            m += 1
    xs = x[:m].ravel()
    if snr_gap == 1.0:  # (v / 1.0 is v exactly)
        for i in range(xs.shape[0]):
            xs[i] = 1.0 + xs[i]
    else:
        for i in range(xs.shape[0]):
            xs[i] = 1.0 + xs[i] / snr_gap
    return m


@njit(**_JIT)
def shannon_rate_rows(se, data_bits, max_se, bandwidth_hz, out):
    """``shannon_rate`` of the packed rows ``se`` (``one_ru_sinr_rows``) into the rows u with
    data_bits[u] > 0 of ``out`` (U, K)."""
    j = 0
    for u in range(data_bits.shape[0]):
        if data_bits[u] > 0:
            for k in range(out.shape[1]):
                v = se[j, k]
                out[u, k] = (max_se if v > max_se else v) * bandwidth_hz
            j += 1


@njit(**_JIT)
def one_ru_owner_rates(owner, power, rate, equal_power, rates):
    """Per UE the sum of ``rate[u, k]`` over the PRBs k it owns (RU 0), in PRB order as ``np.bincount``
    adds them, into ``rates`` (U,) (zeroed first). False (``rates`` unusable) if some owned PRB's
    power is not ``equal_power``: the rate table holds that power's rates only."""
    rates[:] = 0.0
    for k in range(owner.shape[0]):
        u = owner[k]
        if u >= 0:
            if power[k] != equal_power:
                return False
            rates[u] += rate[u, k]
    return True


@njit(**_JIT)
def record_decision(i, ue_ru, owner, power, rec_ue_ru, rec_owner, rec_power):
    """Row ``i`` of ``records.DecisionRecorder``'s chunk arrays: ``ue_ru`` (U,) and ``owner`` (R, K) cast
    to int16 (wrapping as numpy's assignment does), ``power`` (R, K) to float32; returns power.sum()
    summed in numpy's order (``pairwise_sum`` over the contiguous values)."""
    for u in range(ue_ru.shape[0]):
        rec_ue_ru[i, u] = np.int16(ue_ru[u])
    o, p = owner.ravel(), power.ravel()
    for j in range(o.shape[0]):
        rec_owner[i, j] = np.int16(o[j])
        rec_power[i, j] = np.float32(p[j])
    return pairwise_sum(p, 0, p.shape[0])


@njit(cache=True)
def feasible_allocation(ue_ru, owner, p, n_ue, limit):
    """The compiled core of ``simcore.contracts.check_allocation`` (``feasible_kernel``): every UE's RU
    in range; each owned PRB's UE in range, associated with that RU and given finite non-negative
    power; idle PRBs carry none; each RU's total power, summed in numpy's pairwise order, within
    ``limit[r]`` (its budget with the check's tolerance). True when all hold."""
    n_ru, n_prb = owner.shape
    for u in range(ue_ru.shape[0]):
        if ue_ru[u] < -1 or ue_ru[u] >= n_ru:
            return False
    for r in range(n_ru):
        for k in range(n_prb):
            o, x = owner[r, k], p[r, k]
            if o >= 0:
                # owned: a UE in range associated with this RU, finite non-negative power
                if o >= n_ue or ue_ru[o] != r or not (0.0 <= x < np.inf):
                    return False
            elif o != -1 or x != 0.0:  # idle carries no power (NaN != 0 too)
                return False
        if not 0.0 + pairwise_sum(p[r], 0, n_prb) <= limit[r]:  # the budget as the full check sums it
            return False
    return True


feasible_allocation.pairwise_sum = pairwise_sum  # (for the test of the summation)


@njit(**_JIT)
def metric_allocate(rate, per_ue, serving_ru, ru_power_w, horizon_s, pf):
    """The metric schedulers' allocation (``policies.classic``: PF and max-CQI): sequential greedy
    over the PRBs k = 0..K-1 of each RU r: PRB k goes to the UE u served by r with the highest metric
    (ties: lowest index) among those whose need, min(buffer, max rate x horizon), is not covered by
    the bits of the PRBs they already got; a PRB that carries no bits over the horizon (rate x
    horizon <= 0, or NaN) never goes to anyone. The owners get the RU's power over its K PRBs each.
    ``per_ue`` (4, U): buffer bits, max rate, weight, average throughput; the metric is weight x
    rate (/ max(average, 1) for PF: 1 bit/s floor, new UEs first). Reads ``rate[u]`` only for UEs
    with a need. Returns ((R, K) int64 owner, (R, K) float power)."""
    n_ue, n_prb = rate.shape
    n_ru = ru_power_w.shape[0]
    buffer_bits, max_rate_bps, weight, avg_bps = per_ue[0], per_ue[1], per_ue[2], per_ue[3]
    left = np.empty(n_ue)
    scale = np.empty(n_ue)
    for u in range(n_ue):
        left[u] = min(buffer_bits[u], max_rate_bps[u] * horizon_s)
        scale[u] = weight[u] / max(avg_bps[u], 1.0) if pf else weight[u]
    owner = np.full((n_ru, n_prb), -1, np.int64)
    power = np.zeros((n_ru, n_prb))
    cand = np.empty(n_ue, np.int64)
    for r in range(n_ru):
        p = ru_power_w[r] / n_prb
        n_cand = 0  # the UEs of RU r with a need, in index order (a need only shrinks: none joins later)
        for u in range(n_ue):
            if left[u] > 0 and serving_ru[u] == r:
                cand[n_cand] = u
                n_cand += 1
        for k in range(n_prb):
            best, best_m = -1, -np.inf
            for j in range(n_cand):
                u = cand[j]
                if left[u] > 0:
                    x = rate[u, k]
                    if x * horizon_s > 0:
                        m = scale[u] * x
                        if m > best_m:  # strictly higher: ties keep the lowest index
                            best, best_m = u, m
            if best >= 0:
                owner[r, k] = best
                power[r, k] = p
                left[best] -= rate[best, k] * horizon_s
    return owner, power


@njit(**_JIT)
def metric_decision(rate, enq_bits, out_bits, avg_bps, per_ue, serving_ru, ru_power_w, horizon_s, pf, limit,
                    equal_power, owner_rates, i, k, rec_tti, rec_power_w, rec_ue_ru, rec_owner, rec_power):
    """A metric scheduler's whole decision at TTI ``k`` in one call (``Engine._decide``'s compiled
    path): the buffers (enq_bits - out_bits) and average throughputs into rows 0 and 3 of the
    policy's ``per_ue``; ``metric_allocate``; ``feasible_allocation`` (``limit``: the RU budgets with
    the check's tolerance, no slice caps); with one RU at ``equal_power`` on every owned PRB, the
    objective's per-UE rates (``one_ru_owner_rates`` into ``owner_rates``); the decision record's
    row ``i`` (``record_decision``, its TTI and total power). The same operations as the policy's
    ``decide_arrays``, ``check_allocation``, ``Engine._objective`` and ``DecisionRecorder.record``.
    Returns (ue_ru, owner, power, status): status 0 infeasible (nothing recorded), 1 feasible and
    recorded (objective left to the caller), 2 also ``owner_rates`` filled."""
    for u in range(enq_bits.shape[0]):
        per_ue[0, u] = enq_bits[u] - out_bits[u]
        per_ue[3, u] = avg_bps[u]
    owner, power = metric_allocate(rate, per_ue, serving_ru, ru_power_w, horizon_s, pf)
    ue_ru = serving_ru.copy()
    if not feasible_allocation(ue_ru, owner, power, serving_ru.shape[0], limit):
        return ue_ru, owner, power, 0
    status = 1
    if owner.shape[0] == 1 and one_ru_owner_rates(owner[0], power[0], rate, equal_power, owner_rates):
        status = 2
    rec_tti[i] = k
    rec_power_w[i] = record_decision(i, ue_ru, owner, power, rec_ue_ru, rec_owner, rec_power)
    return ue_ru, owner, power, status
