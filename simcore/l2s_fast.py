"""The per-TTI work of the link-to-system model (``simcore.l2s``) compiled with numba: same results.

``LinkToSystem.step`` spends its time on a few dozen numpy calls and a Python loop per transport
block (about 15 blocks per TTI at 30 UEs with ``tb_prbs: 6``): grouping the PRBs into blocks, the
MIESM effective SINR, the block sizes, the error probabilities and the first-transmission
bookkeeping. Three kernels do that work in one call each, around the MCS choice (which stays the
model's ``_choose_mcs``):

- ``blocks_of_tti``: which PRBs count (their UE has something to send), the blocks (one per UE, or
  per UE and group of ``tb_prbs`` PRBs, ordered by UE then group as ``np.unique`` orders them), the
  mean mutual information of each block per modulation and its MIESM inverse (dB), and which
  blocks are retransmissions due now or new blocks that may go;
- ``new_blocks``: for the new blocks, MCS floor, data bits (LTE TBS or nominal less CRC) and error
  probability; then the model draws one uniform per block from its generator, as the reference;
- ``send_blocks``: the error outcomes, HARQ process, OLLA offset, where each UE's blocks end and
  the bits decoded in order; blocks that must wait in HARQ are returned to Python, which keeps the
  per-block objects.

Every value is computed by the same float64 operations in the same order as the numpy/Python
reference (``LinkToSystem(..., fast=False)``): numba's scalar ``log10``, ``pow``, ``erfc`` are the
C library's, as Python's ``math``; the two array operations whose numpy versions are vectorised
differently (``log10`` of the PRB SINRs, ``10 ** (dB / 10)`` of the effective SINRs) stay in numpy.
``tests/test_l2s.py`` runs both paths on whole scenarios and compares every table exactly.

numba compiles the kernels on first use (``cache=True``: once per machine, then read from
``__pycache__``); without numba the reference path runs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .buffers_fast import U_ENQ, U_OUT, mark_sent
from .decision_fast import _M_HI, _M_LO, _affine128, _xsl_rr
from .tti_fast import finish

_JIT = dict(cache=True, error_model="numpy")
_SQRT2 = math.sqrt(2.0)
_LOG2_E_SQ = (1.0 / math.log(2.0)) ** 2  # as l2s.LOG2_E**2
_EPS_BITS = 1e-6  # "nothing left to send" in the reference's comparisons

# params_i layout (int64): the model's switches and TTI
P_TB_PRBS, P_HARQ, P_OLLA, P_ERRORS, P_CONTROL, P_LTE, P_LOWEST, P_CRC, P_CODE_BLOCK, P_RTT, P_MAX_TX, \
    P_REQUEUE, P_K = range(13)
# params_f layout (float64)
F_STEP_UP, F_STEP_DOWN, F_MAX_OFFSET, F_GRID_LO, F_GRID_STEP = range(5)
# per-MCS table rows (5, 15): data channel uses per PRB, efficiency, modulation index, linear gap, I_TBS
M_USES, M_EFF, M_MOD, M_GAP, M_ITBS = range(5)
# stats layout (int64), in the order of l2s.FAST_STATS
S_BLOCKS, S_TX, S_FIRST_NACKS, S_NACKS, S_NO_PROC, S_NO_MCS, S_NO_PAYLOAD = range(7)
# a new block: one row of ``new_blocks``' (n, 9) output
N_BLOCK, N_MCS, N_USES, N_BITS, N_PAYLOAD, N_INFO, N_SPREAD, N_PROB, N_CHASE = range(9)
_INT64_MAX = np.iinfo(np.int64).max


@njit(**_JIT)
def _interp(x, xp, fp, n):
    """``np.interp(x, xp[:n], fp[:n])`` for one value, the same arithmetic (numpy's arr_interp)."""
    if x != x:
        return x
    if x < xp[0]:
        return fp[0]
    if x > xp[n - 1]:
        return fp[n - 1]
    lo, hi = 0, n - 1  # the largest j with xp[j] <= x
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if xp[mid] <= x:
            lo = mid
        else:
            hi = mid
    j = hi if xp[hi] <= x else lo
    if j == n - 1 or xp[j] == x:
        return fp[j]
    slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j])
    out = slope * (x - xp[j]) + fp[j]
    if out != out:
        out = slope * (x - xp[j + 1]) + fp[j + 1]
        if out != out and fp[j] == fp[j + 1]:
            out = fp[j]
    return out


@njit(**_JIT)
def blocks_of_tti(owner, actual_db, believed, enq, out, sent, retx_at, proc_free_at, mi_table, mi_top, grid_db,
                  params_i, params_f):
    """The blocks of one TTI (module docstring). ``owner`` (R, K); ``actual_db`` (R, K)
    10 log10(max(SINR, tiny)) of the PRBs; ``believed`` (R, K) SINR the MCS is chosen from.
    Returns per active PRB (P,): its UE, block and believed SINR; per block (A,): UE, PRB count,
    effective SINR per modulation (A, 3) in dB, due (a NACKed block goes now), go (a new block
    may go); and the number of blocks left without a free HARQ process."""
    n_ru, n_k = owner.shape
    n_ues = enq.shape[0]
    k = params_i[P_K]
    tb = params_i[P_TB_PRBS]
    harq = params_i[P_HARQ] != 0
    unsent = np.empty(n_ues)
    wants = np.empty(n_ues, dtype=np.bool_)
    for u in range(n_ues):
        unsent[u] = enq[u] - max(sent[u], out[u])
        wants[u] = unsent[u] > _EPS_BITS or retx_at[u] <= k
    per_ru = 1 if tb == 0 else (n_k + tb - 1) // tb
    n_groups = n_ru * per_ru
    slot = np.full(n_ues * n_groups, -1, dtype=np.int64)
    prb_key = np.empty(n_ru * n_k, dtype=np.int64)
    prb_db = np.empty(n_ru * n_k)
    prb_bel = np.empty(n_ru * n_k)
    p = 0
    for r in range(n_ru):
        for kk in range(n_k):
            u = owner[r, kk]
            if u >= 0 and wants[u]:
                g = 0 if tb == 0 else r * per_ru + kk // tb
                key = u * n_groups + g
                slot[key] = 0
                prb_key[p] = key
                prb_db[p] = actual_db[r, kk]
                prb_bel[p] = believed[r, kk]
                p += 1
    a = 0
    for key in range(slot.size):  # blocks in key order: by UE, then group
        if slot[key] == 0:
            slot[key] = a
            a += 1
    ues = np.empty(a, dtype=np.int64)
    n_prb = np.zeros(a, dtype=np.int64)
    total = np.zeros((3, a))
    row_of = np.empty(p, dtype=np.int64)
    ue_of = np.empty(p, dtype=np.int64)
    lo_db, step_db = params_f[F_GRID_LO], params_f[F_GRID_STEP]
    last = grid_db.size - 1.0
    for i in range(p):
        b = slot[prb_key[i]]
        row_of[i] = b
        u = prb_key[i] // n_groups
        ue_of[i] = u
        ues[b] = u
        n_prb[b] += 1
        x = prb_db[i]
        if not x >= lo_db:  # below the grid (and SINR 0): no information
            continue
        pos = min(max((x - lo_db) / step_db, 0.0), last)
        j = min(np.int64(pos), grid_db.size - 2)
        f = pos - j
        for m in range(3):
            total[m, b] += mi_table[m, j] * (1.0 - f) + mi_table[m, j + 1] * f
    eff_db = np.empty((a, 3))
    for m in range(3):
        for b in range(a):
            eff_db[b, m] = _interp(total[m, b] / n_prb[b], mi_table[m], grid_db, mi_top[m])
    due = np.zeros(a, dtype=np.bool_)
    go = np.zeros(a, dtype=np.bool_)
    no_proc = 0
    for b in range(a):
        u = ues[b]
        lead = b == 0 or ues[b - 1] != u
        due[b] = lead and retx_at[u] <= k
        has_proc = True
        if harq:
            has_proc = False
            for q in range(proc_free_at.shape[1]):
                if proc_free_at[u, q] <= k:
                    has_proc = True
                    break
        more = unsent[u] > _EPS_BITS
        if not due[b] and not has_proc and more:
            no_proc += 1
        go[b] = not due[b] and has_proc and more
    return ue_of, row_of, prb_bel[:p].copy(), ues, n_prb, eff_db, due, go, no_proc


@njit(**_JIT)
def _mi(table, m, sinr, lo_db, step_db):
    """``l2s._mi_scalar``: the MI of modulation ``m`` at linear SINR ``sinr``."""
    if not sinr > 0:
        return 0.0
    pos = (10.0 * math.log10(sinr) - lo_db) / step_db
    if pos < 0.0:
        return 0.0
    n = table.shape[1]
    if pos >= n - 1.0:
        return table[m, n - 1]
    i = int(pos)
    f = pos - i
    return table[m, i] * (1.0 - f) + table[m, i + 1] * f


@njit(**_JIT)
def _control_loss(x_db, xs, ps):
    """``l2s._control_loss_scalar``."""
    if x_db <= xs[0]:
        return ps[0]
    n = xs.size
    if x_db >= xs[n - 1]:
        return ps[n - 1]
    i = 0
    while i + 1 < n and xs[i + 1] <= x_db:  # bisect_right - 1
        i += 1
    return ps[i] + (ps[i + 1] - ps[i]) * (x_db - xs[i]) / (xs[i + 1] - xs[i])


@njit(**_JIT)
def new_blocks(go, mcs_all, n_prb, eff_act, mcs_table, lte_tbs, mi_table, control_db, control_p, params_i,
               params_f):
    """The new blocks of one TTI up to their error probability (``LinkToSystem.step`` from the MCS
    choice on, and the first half of ``_first_transmissions``). ``go`` (A,) the blocks that may go,
    ``mcs_all`` (A,) their chosen MCS (0: none), ``n_prb`` (A,) their PRBs, ``eff_act`` (A, 3) their
    effective SINR per modulation (linear). Returns the blocks that are sent, one row each (n, 9),
    columns N_*, and the counters of blocks left out (7,), S_* order."""
    errors = params_i[P_ERRORS] != 0
    control = params_i[P_CONTROL] != 0
    lte = params_i[P_LTE] != 0
    crc_bits = params_i[P_CRC]
    cbb = float(params_i[P_CODE_BLOCK])
    lo_db, step_db = params_f[F_GRID_LO], params_f[F_GRID_STEP]
    stats = np.zeros(7, dtype=np.int64)
    a = go.size
    blk = np.empty((a, 9))
    n = 0
    for b in range(a):
        if not go[b]:
            continue
        mcs = mcs_all[b]
        if mcs == 0:
            stats[S_NO_MCS] += 1
            if params_i[P_LOWEST] != 0:
                mcs = 1
        if mcs <= 0:
            continue
        uses = n_prb[b] * mcs_table[M_USES, mcs - 1]
        nominal = mcs_table[M_EFF, mcs - 1] * uses
        if lte:
            itbs = np.int64(mcs_table[M_ITBS, mcs - 1])
            nb = n_prb[b]
            if nb <= 6:
                pay = lte_tbs[itbs, max(nb, 1) - 1]
            else:
                pay = lte_tbs[itbs, 5] * nb / 6.0
        elif crc_bits == 0:
            pay = nominal
        else:  # the block's CRC and, when segmented, each code block's, in whole bytes
            c = max(1.0, math.ceil(nominal / cbb))
            crc = crc_bits * (c + 1 if c > 1 else 1.0)
            pay = max(0.0, math.floor((nominal - crc) / 8.0) * 8.0)
            if not pay > 0:
                stats[S_NO_PAYLOAD] += 1
                continue
        mod = np.int64(mcs_table[M_MOD, mcs - 1])
        r = eff_act[b, mod] / mcs_table[M_GAP, mcs - 1]
        info = uses * _mi(mi_table, mod, r, lo_db, step_db)
        one = 1.0 + r
        spread = uses * (_LOG2_E_SQ * (1.0 - 1.0 / (one * one)))
        prob = 0.0
        if errors:
            c = max(1.0, math.ceil(nominal / cbb))
            if spread > 0:
                q = 0.5 * math.erfc((info - nominal) / math.sqrt(spread * c) / _SQRT2)
            else:
                q = 0.0 if info > nominal else 1.0
            prob = 1.0 - (1.0 - q) ** c
            if control:
                e = eff_act[b, 0]  # the control channel: QPSK effective SINR of the block's PRBs
                x_db = 10.0 * math.log10(e) if e > 0 else -np.inf
                prob = 1.0 - (1.0 - prob) * (1.0 - _control_loss(x_db, control_db, control_p))
        row = blk[n]
        row[N_BLOCK] = b
        row[N_MCS] = mcs
        row[N_USES] = uses
        row[N_BITS] = nominal
        row[N_PAYLOAD] = pay
        row[N_INFO] = info
        row[N_SPREAD] = spread
        row[N_PROB] = prob
        row[N_CHASE] = eff_act[b, mod]
        n += 1
    return blk[:n], stats


@njit(**_JIT)
def send_blocks(blk, draws, ues, enq, out, sent, proc_free_at, has_pending, offset_db, capacity, stats, params_i,
                params_f):
    """The bookkeeping of the new blocks ``blk`` (``new_blocks``' rows) in order, the second half of
    ``_first_transmissions``: a block fails when its draw (``draws`` (n,) uniforms, or none without
    block errors) is below its error probability. Updates ``sent``, ``proc_free_at``, ``has_pending``,
    ``offset_db``, ``capacity`` (bits of blocks decoded with nothing before them in HARQ) and
    ``stats`` in place. Returns the UEs that transmitted, in order of their first block, the end of
    what each sent, and the rows of ``blk`` to keep in HARQ with (UE, lo, hi, process, failed)."""
    harq = params_i[P_HARQ] != 0
    olla = params_i[P_OLLA] != 0
    k = params_i[P_K]
    rtt = params_i[P_RTT]
    n = blk.shape[0]
    n_ues = enq.shape[0]
    upto_ue = np.empty(n, dtype=np.int64)
    upto_hi = np.empty(n)
    n_up = 0
    where = np.full(n_ues, -1, dtype=np.int64)  # UE -> its row in upto_ue
    direct_hi = np.full(n_ues, -np.inf)
    pend = np.empty((n, 6))
    n_pend = 0
    for i in range(n):
        u = ues[np.int64(blk[i, N_BLOCK])]
        lo = max(sent[u], out[u])
        if enq[u] - lo <= _EPS_BITS:  # an earlier block of this TTI took the rest: nothing to send
            continue
        proc = 0
        if harq:  # the UE's first free process
            proc = -1
            for q in range(proc_free_at.shape[1]):
                if proc_free_at[u, q] <= k:
                    proc = q
                    break
            if proc < 0:
                stats[S_NO_PROC] += 1
                continue
        failed = draws.size > 0 and draws[i] < blk[i, N_PROB]
        stats[S_BLOCKS] += 1
        stats[S_TX] += 1
        if failed:
            stats[S_FIRST_NACKS] += 1
            stats[S_NACKS] += 1
        if olla:
            step = params_f[F_STEP_UP] if failed else -params_f[F_STEP_DOWN]
            offset_db[u] = min(max(offset_db[u] + step, -params_f[F_MAX_OFFSET]), params_f[F_MAX_OFFSET])
        hi = lo + min(blk[i, N_PAYLOAD], enq[u] - lo)
        if where[u] < 0:
            where[u] = n_up
            upto_ue[n_up] = u
            upto_hi[n_up] = hi
            n_up += 1
        else:
            upto_hi[where[u]] = max(upto_hi[where[u]], hi)
        if not harq and failed:  # no HARQ: the bits go back to the head of the queue
            sent[u] = lo
            continue
        sent[u] = hi
        if not failed and not has_pending[u]:  # decoded, nothing before it in HARQ: to the RLC now
            direct_hi[u] = max(direct_hi[u], hi)
            if harq:
                proc_free_at[u, proc] = k + rtt
            continue
        # the block waits in HARQ (failed, or decoded behind an unresolved one): Python keeps it
        pend[n_pend, 0] = i
        pend[n_pend, 1] = u
        pend[n_pend, 2] = lo
        pend[n_pend, 3] = hi
        pend[n_pend, 4] = proc
        pend[n_pend, 5] = 1.0 if failed else 0.0
        n_pend += 1
        has_pending[u] = True
        if harq:  # as _nacked will set it: held until resolved, unless a lone transmission is lost
            if failed and not (params_i[P_MAX_TX] <= 1 and params_i[P_REQUEUE] == 0):
                proc_free_at[u, proc] = _INT64_MAX
            else:
                proc_free_at[u, proc] = k + rtt
    for u in range(n_ues):  # a UE's direct blocks follow each other in its queue: the last end counts
        if direct_hi[u] > -np.inf:
            capacity[u] = max(capacity[u], direct_hi[u] - out[u])
    return upto_ue[:n_up], upto_hi[:n_up], pend[:n_pend]


@njit(**_JIT)
def worst_prb_mcs(row_of, sinr_db, offset_db, ue_of, thr1, n_blocks):
    """``mcs_selection: worst_prb``: per PRB the number of one-PRB thresholds ``thr1`` (sorted) at or
    below its believed SINR (dB) less its UE's OLLA offset (``np.searchsorted(..., side="right")``,
    NaN above all); per block the lowest over its PRBs (``row_of``), 15 for a block without PRBs."""
    out = np.full(n_blocks, 15, dtype=np.int64)
    for i in range(row_of.size):
        x = sinr_db[i] - offset_db[ue_of[i]]
        m = thr1.size
        if x == x:
            m = 0
            while m < thr1.size and thr1[m] <= x:
                m += 1
        b = row_of[i]
        if m < out[b]:
            out[b] = m
    return out


@njit(**_JIT)
def believed_sinr(owner, power_w, report_sinr, equal_w):
    """(R, K) SINR the MCS is chosen from with CSI reports: the report's SINR (U, K) of each PRB's
    owner, scaled by the PRB's power against the equal share ``equal_w`` (R,); NaN where idle."""
    n_ru, n_k = owner.shape
    out = np.empty((n_ru, n_k))
    for r in range(n_ru):
        for k in range(n_k):
            u = owner[r, k]
            out[r, k] = report_sinr[u, k] * power_w[r, k] / equal_w[r] if u >= 0 else np.nan
    return out


# ------------------------------------------------------------------------------------------------
# The whole TTI without HARQ in three compiled calls (``LinkToSystem.tti``): the link-to-system step
# with ``mcs_selection: worst_prb`` and ``harq.enabled: false`` (the ns-3 LTE calibration profile),
# the FIFO service and the TTI record. Between the calls, the two numpy operations the reference
# vectorises: ``np.log10`` of the PRB SINRs (actual and believed, in one call) and ``10 ** (dB / 10)``
# of the blocks' effective SINRs. The block errors' uniforms are drawn here from the model's PCG64
# generator (numpy's ``random``: (next64 >> 11) * 2**-53), the same values and generator state.

# rows of the (4, R K) int64 scratch: per PRB in use its block and UE; per block its UE and PRB count
W_ROW, W_UE, W_BLOCK_UE, W_BLOCK_PRBS = range(4)
# the model's constants in one float64 array: offsets of params_f (5), the one-PRB thresholds (15), the
# per-MCS table (5, 15), LTE's block sizes (27, 6), the control-loss curve (8 + 8), then the SINR grid
# (G) and the MI tables (3, G)
C_PF, C_THR1, C_MCS, C_TBS, C_CTRL_DB, C_CTRL_P, C_GRID = 0, 5, 20, 95, 257, 265, 273
P_MI_TOP = 13  # params_i[13:16]: the end of each MI table's increasing part
# rows of the model's (3, U) per-UE state: OLLA offset, end of what went into blocks, bits to serve
U_OFFSET, U_SENT, U_CAPACITY = range(3)
# rows of the engine's (5, U) per-UE counters: served in the TTI, none (zeros), total, interval, average
E_SERVED, E_NONE, E_TOTAL, E_INTERVAL, E_AVG = range(5)
_TINY = 1e-300  # as l2s._TINY
_DOUBLE = 1.0 / 9007199254740992.0  # 2**-53


@njit(**_JIT)
def _next_double(state):
    """numpy's ``PCG64`` ``random()``: one step of the 128-bit LCG, its XSL-RR output's top 53 bits."""
    lo, hi = _affine128(state[0], state[1], _M_LO, _M_HI, state[2], state[3])
    state[0] = lo
    state[1] = hi
    return np.float64(_xsl_rr(lo, hi) >> np.uint64(11)) * _DOUBLE


@njit(**_JIT)
def _max_tiny(x):
    """``np.maximum(x, tiny)`` of one value (NaN stays NaN)."""
    return x if (x != x or x > _TINY) else _TINY


@njit(**_JIT)
def _tables(consts):
    """Views of ``consts``: params_f, one-PRB thresholds, per-MCS table, LTE sizes, control-loss curve,
    SINR grid, MI tables."""
    g = (consts.size - C_GRID) // 4
    return (consts[C_PF:C_THR1], consts[C_THR1:C_MCS], consts[C_MCS:C_TBS].reshape((5, 15)),
            consts[C_TBS:C_CTRL_DB].reshape((27, 6)), consts[C_CTRL_DB:C_CTRL_P], consts[C_CTRL_P:C_GRID],
            consts[C_GRID:C_GRID + g], consts[C_GRID + g:].reshape((3, g)))


@njit(**_JIT)
def tti_sinr(owner, actual, power_w, report_sinr, equal_w, ideal, floats):
    """``floats[:2 R K]`` as (2, R, K): max(actual SINR, tiny) and max(believed SINR, tiny), the
    argument of the numpy ``log10`` that follows. The believed SINR is the actual one with ideal CSI,
    else ``believed_sinr``'s (NaN where idle)."""
    n_ru, n_k = owner.shape
    out = floats[:2 * n_ru * n_k].reshape((2, n_ru, n_k))
    for r in range(n_ru):
        for k in range(n_k):
            a = actual[r, k]
            out[0, r, k] = _max_tiny(a)
            if ideal:
                out[1, r, k] = _max_tiny(a)
            else:
                u = owner[r, k]
                out[1, r, k] = _max_tiny(report_sinr[u, k] * power_w[r, k] / equal_w[r] if u >= 0 else np.nan)


@njit(**_JIT)
def tti_blocks(owner, floats, uf, ue_state, consts, params_i, work):
    """``blocks_of_tti`` (without HARQ) on ``floats[:2 R K]``, ``tti_sinr``'s after numpy's log10:
    per PRB in use its block and UE (``work``) and believed SINR in dB (``floats[2n:3n]``), per block
    its UE and PRB count (``work``) and effective SINR per modulation in dB / 10 (``floats[3n:6n]``
    as (n, 3): the exponent of ``10 **``), n = R K. Returns (PRBs in use, blocks, blocks that may go)."""
    n_ru, n_k = owner.shape
    n = n_ru * n_k
    log10_sinr = floats[:2 * n].reshape((2, n_ru, n_k))
    params_f, _, _, _, _, _, grid_db, mi_table = _tables(consts)
    actual_db = np.empty((n_ru, n_k))
    bel = np.empty((n_ru, n_k))
    for r in range(n_ru):
        for k in range(n_k):
            actual_db[r, k] = 10.0 * log10_sinr[0, r, k]
            bel[r, k] = log10_sinr[1, r, k]
    n_ues = uf.shape[1]
    never = np.full(n_ues, _INT64_MAX)  # without HARQ no retransmission is ever due, no process is read
    ue_of, row_of, prb_bel, ues, n_prb, eff_db, due, go, no_proc = blocks_of_tti(
        owner, actual_db, bel, uf[U_ENQ], uf[U_OUT], ue_state[U_SENT], never, np.zeros((n_ues, 1), np.int64),
        mi_table, params_i[P_MI_TOP:P_MI_TOP + 3], grid_db, params_i, params_f)
    p, a = row_of.size, ues.size
    bel_db = floats[2 * n:3 * n]
    for i in range(p):
        work[W_ROW, i] = row_of[i]
        work[W_UE, i] = ue_of[i]
        bel_db[i] = 10.0 * prb_bel[i]
    eff_tenth = floats[3 * n:6 * n].reshape((n, 3))
    n_go = 0
    for b in range(a):
        work[W_BLOCK_UE, b] = ues[b]
        work[W_BLOCK_PRBS, b] = n_prb[b]
        for m in range(3):
            eff_tenth[b, m] = eff_db[b, m] / 10.0
        n_go += go[b]
    return p, a, n_go


@njit(**_JIT)
def tti_send(p, a, work, floats, ue_state, consts, params_i, pcg, stats, uf, ui, pf, pi, pc, base, now, delivered_at,
             owner, ue_f, decay, per_bit, row, rec_f64, rec_owner, rec_f32, prb_sinr, power):
    """The rest of the TTI: MCS (worst PRB), the new blocks, their error draws, the bookkeeping
    (``new_blocks``, ``send_blocks``; no HARQ: a failed block's bits go back to the head of the queue),
    the packets that went on air, then ``tti_fast.finish`` (FIFO service, counters, TTI record).
    ``stats`` (7,) accumulates the counters (S_* order); ``ue_f`` (5, U) the engine's rows E_*;
    ``rec_f64`` (2, chunk, U) and ``rec_f32`` (2, chunk, R, K) the TTI record's served and buffer bits,
    PRB SINR and power."""
    n = owner.size
    capacity = ue_state[U_CAPACITY]
    capacity[:] = 0.0
    if a > 0 and p > 0:
        params_f, thr1, mcs_table, lte_tbs, control_db, control_p, _, mi_table = _tables(consts)
        enq, out, sent = uf[U_ENQ], uf[U_OUT], ue_state[U_SENT]
        go = np.empty(a, dtype=np.bool_)
        any_go = False
        for b in range(a):
            u = work[W_BLOCK_UE, b]
            go[b] = enq[u] - max(sent[u], out[u]) > _EPS_BITS
            any_go = any_go or go[b]
        if any_go:
            ues = work[W_BLOCK_UE, :a]
            eff_act = floats[6 * n:9 * n].reshape((n, 3))[:a]
            mcs = worst_prb_mcs(work[W_ROW, :p], floats[2 * n:2 * n + p], ue_state[U_OFFSET], work[W_UE, :p], thr1, a)
            blk, st = new_blocks(go, mcs, work[W_BLOCK_PRBS, :a], eff_act, mcs_table, lte_tbs, mi_table, control_db,
                                 control_p, params_i, params_f)
            m = blk.shape[0]
            if m:
                draws = np.empty(m if params_i[P_ERRORS] != 0 else 0)
                for i in range(draws.size):  # the model's rng.random(m), in row order
                    draws[i] = _next_double(pcg)
                # (without HARQ no block waits: no process table, nothing pending)
                up_ue, up_hi, _ = send_blocks(blk, draws, ues, enq, out, sent, np.zeros((enq.size, 1), np.int64),
                                              np.zeros(enq.size, dtype=np.bool_), ue_state[U_OFFSET], capacity, st,
                                              params_i, params_f)
                if up_ue.size:
                    mark_sent(up_ue, up_hi, now, pf, pi, base, uf, ui)
            for j in range(7):
                stats[j] += st[j]
    finish(owner, np.empty((0, 0)), capacity, ue_f[E_NONE], ue_f[E_SERVED], now, delivered_at, pf, pi, pc, base, uf,
           ui, ue_f[E_TOTAL], ue_f[E_INTERVAL], ue_f[E_AVG], decay, per_bit, row, rec_f64[0], rec_f64[1], rec_owner,
           rec_f32[0], rec_f32[1], prb_sinr, power)
