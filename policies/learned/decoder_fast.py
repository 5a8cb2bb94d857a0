"""The decoder's PRB and power steps (``decoder._assign_rows``) compiled: the same output, fewer calls.

``assign_rows`` is ``decoder._assign_rows`` with its array work in numba (``cache=True``) and the
PRB assignment still one ``scipy.optimize.linear_sum_assignment`` per row and pass. Every value is
computed by the same float64 operations in the same order (element-wise products and minima, the
running sum of the power upgrades, the median), sorts are stable where the numpy code's are, so the
output is identical, not merely close: ``tests/test_learning_encoding.py`` decodes random vectors
both ways and compares owners and powers exactly. The numpy code stays the reference
(``decode_actions(..., fast=False)``).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy.optimize import linear_sum_assignment

_JIT = dict(cache=True, error_model="numpy")
_MASK24 = (1 << 24) - 1
_SLACK = 1 + 1e-12  # as the numpy code's budget and ceiling comparisons


@njit(**_JIT)
def _tie_cost(index):
    """``simcore.snapshot.tie_cost`` of one index, scaled to (0, 1] as ``decoder._tie``."""
    x = (index ^ (index >> 24)) & _MASK24
    x ^= x >> 12
    x = (x * 0x9E3779) & _MASK24
    x ^= x >> 11
    x = (x * 0x85EBCB) & _MASK24
    x ^= x >> 12
    return float(1 + x) * 2.0**-24


@njit(**_JIT)
def _first_values(counts, levels, top, w, cap_per, mean_w, table_rows, sel, tie_ue, tie_prb, tie_level, tie_rel):
    """Pass 1 of ``_assign_rows``: the UEs with PRBs (row, UE slot), the level nearest each one's
    mean power per PRB, their PRB values (P, K) less the tie cost, and each pair's tie weight."""
    n_rows, m = counts.shape
    n_lvl = levels.shape[1]
    n_prb = table_rows.shape[3]
    n_pairs = 0
    for i in range(n_rows):
        for u in range(m):
            if counts[i, u] > 0:
                n_pairs += 1
    pr = np.empty(n_pairs, np.int64)
    pu = np.empty(n_pairs, np.int64)
    near = np.zeros(n_pairs, np.int64)
    value = np.empty((n_pairs, n_prb))
    tie_w = np.ones(n_rows)
    p = 0
    for i in range(n_rows):
        for u in range(m):
            if counts[i, u] > 0:
                pr[p], pu[p] = i, u
                for j in range(n_lvl - 1):
                    if np.sqrt(levels[i, j] * levels[i, j + 1]) < mean_w[i, u]:
                        near[p] += 1
                top_v = 0.0
                for k in range(n_prb):
                    v = w[i, u] * min(table_rows[sel[i], u, near[p], k], cap_per[i, u])
                    value[p, k] = v
                    top_v = max(top_v, v)
                tie_w[i] = max(tie_w[i], top_v)
                p += 1
    pair_w = np.empty(n_pairs)
    for p in range(n_pairs):
        i, u = pr[p], pu[p]
        pair_w[p] = tie_rel * tie_w[i]
        base = tie_level[sel[i], near[p]] + tie_ue[sel[i], u]
        for k in range(n_prb):
            value[p, k] -= pair_w[p] * _tie_cost(base + tie_prb[sel[i]] * k)
    return pr, pu, near, value, pair_w


@njit(**_JIT)
def _split_power(rate, levels, top, who, budget, mean_w, counts, level0):
    """``decoder._split_power`` (same arguments, same results)."""
    n_slots, n_lvl = levels.shape
    out = np.empty(n_slots)
    for s in range(n_slots):
        out[s] = mean_w[who[s]]
    price = np.zeros(budget.size)
    n_idx = 0
    for s in range(n_slots):
        if out[s] >= levels[s, 0]:
            n_idx += 1
    if n_lvl < 2 or n_idx == 0:
        return out, price
    idx = np.empty(n_idx, np.int64)
    q = 0
    for s in range(n_slots):
        if out[s] >= levels[s, 0]:
            idx[q] = s
            q += 1
    ladder = n_lvl - 1
    flat = np.empty(n_idx * ladder)
    cost_all = np.empty(n_idx * ladder)
    step_owner = np.empty(n_idx * ladder, np.int64)
    for q in range(n_idx):
        s = idx[q]
        for j in range(ladder):
            dp = levels[s, j + 1] - levels[s, j]
            g = (rate[s, j + 1] - rate[s, j]) / dp
            if j > 0:
                g = min(flat[q * ladder + j - 1], g)  # running minimum: the concave hull
            flat[q * ladder + j] = g
            cost_all[q * ladder + j] = dp
            step_owner[q * ladder + j] = who[s]
        for j in range(ladder):
            if levels[s, j + 1] > top[s] * _SLACK:
                flat[q * ladder + j] = -np.inf
    # np.lexsort((-flat, step_owner)): by owner, then the best gain first, ties in ladder order
    order = np.argsort(-flat, kind="mergesort")
    sort = order[np.argsort(step_owner[order], kind="mergesort")]
    n_steps = sort.size
    cum = 0.0
    first_cum, first_cost = 0.0, 0.0
    steps = np.zeros(n_idx, np.int64)
    prev_owner = -1
    priced = -1
    for t in range(n_steps):
        st = sort[t]
        o = step_owner[st]
        cost = cost_all[st]
        cum += cost
        if o != prev_owner:
            first_cum, first_cost = cum, cost
            prev_owner = o
        used = cum - (first_cum - first_cost)
        g = flat[st]
        if used <= (budget[o] - counts[o] * level0[o]) * _SLACK and g > 0:
            steps[st // ladder] += 1
        elif g > -np.inf and o != priced:
            price[o] = max(g, 0.0)
            priced = o
    for q in range(n_idx):
        out[idx[q]] = levels[idx[q], steps[q]]
    return out, price


@njit(**_JIT)
def _second_values(price, w, pr, pu, levels, cap_per, table_rows, sel, pair_w, tie_ue, tie_prb, tie_level):
    """Pass 2 of ``_assign_rows``: each row's price of power mu (the median of its UEs' positive
    weighted prices), the PRB values at it (P, K) less the tie cost, and which rows to assign again."""
    n_rows, m = w.shape
    n_lvl = levels.shape[1]
    n_prb = table_rows.shape[3]
    mu = np.zeros(n_rows)
    redo = np.zeros(n_rows, np.bool_)
    wp = np.empty(m)
    for i in range(n_rows):
        n_val, n_pos = 0, 0
        for u in range(m):
            if price[i * m + u] > 0:
                v = w[i, u] * price[i * m + u]
                wp[n_val] = v
                n_val += 1
                if v > 0:
                    n_pos += 1
        if n_pos > 0:
            redo[i] = True
            srt = np.sort(wp[:n_val])  # the NaN of the numpy code's unpriced UEs sort after these
            lo, hi = max((n_pos - 1) // 2, 0), n_pos // 2
            mu[i] = 0.5 * (srt[lo] + srt[min(hi, m - 1)])
    n_pairs = pr.size
    value = np.empty((n_pairs, n_prb))
    for p in range(n_pairs):
        i, u = pr[p], pu[p]
        for k in range(n_prb):
            best_v, best_l = -np.inf, 0
            for lv in range(n_lvl):
                v = w[i, u] * min(table_rows[sel[i], u, lv, k], cap_per[i, u]) - mu[i] * levels[i, lv]
                if v > best_v or lv == 0:
                    best_v, best_l = v, lv
            value[p, k] = best_v - pair_w[p] * _tie_cost(tie_level[sel[i], best_l] + tie_ue[sel[i], u] + tie_prb[sel[i]] * k)
    return value, redo


@njit(**_JIT)
def _slot_rates(table_rows, slot_row, own, col, slot_cap):
    """(S, L) rate of each slot's UE on its PRB at each level, capped."""
    n_slots = slot_row.size
    n_lvl = table_rows.shape[2]
    rate = np.empty((n_slots, n_lvl))
    for s in range(n_slots):
        for lv in range(n_lvl):
            rate[s, lv] = min(table_rows[slot_row[s], own[s], lv, col[s]], slot_cap[s])
    return rate


@njit(**_JIT)
def _prepare(counts, budget, levels_all, top_all, weight_all, cap_all, sel):
    """The per-row and per-UE constants of rows ``sel``: levels (N, L), PRB power ceiling (N,),
    weights, rate cap per PRB and mean power per PRB (N, M), each UE's lowest level (N M,)."""
    n_rows, m = counts.shape
    n_lvl = levels_all.shape[1]
    levels, top = np.empty((n_rows, n_lvl)), np.empty(n_rows)
    w, cap_per, mean_w, level0 = np.empty((n_rows, m)), np.empty((n_rows, m)), np.empty((n_rows, m)), np.empty(n_rows * m)
    for i in range(n_rows):
        r = sel[i]
        levels[i] = levels_all[r]
        top[i] = top_all[r]
        for u in range(m):
            per = max(counts[i, u], 1)
            mean_w[i, u] = min(budget[i, u] / per, top[i])
            cap_per[i, u] = cap_all[r, u] / per
            w[i, u] = weight_all[r, u]
            level0[i * m + u] = levels[i, 0]
    return levels, top, w, cap_per, mean_w, level0


@njit(**_JIT)
def _slots(counts, pr, pu, sel, cap_per, levels, top):
    """One slot per PRB a UE gets, row by row: its pair, row, UE slot, table row, rate cap, levels,
    ceiling, per-UE index; and where each row's slots start (N + 1,)."""
    n_rows, m = counts.shape
    n_slots = 0
    starts = np.zeros(n_rows + 1, np.int64)
    for p in range(pr.size):
        n_slots += counts[pr[p], pu[p]]
        starts[pr[p] + 1] += counts[pr[p], pu[p]]
    for i in range(n_rows):
        starts[i + 1] += starts[i]
    pair, row_of, own = np.empty(n_slots, np.int64), np.empty(n_slots, np.int64), np.empty(n_slots, np.int64)
    q = 0
    for p in range(pr.size):
        for _ in range(counts[pr[p], pu[p]]):
            pair[q], row_of[q], own[q] = p, pr[p], pu[p]
            q += 1
    slot_row, slot_cap, slot_top, slot_ue = np.empty(n_slots, np.int64), np.empty(n_slots), np.empty(n_slots), np.empty(n_slots, np.int64)
    slot_levels = np.empty((n_slots, levels.shape[1]))
    for q in range(n_slots):
        i, u = row_of[q], own[q]
        slot_row[q], slot_cap[q], slot_top[q], slot_ue[q] = sel[i], cap_per[i, u], top[i], i * m + u
        slot_levels[q] = levels[i]
    return pair, row_of, own, slot_row, slot_cap, slot_levels, slot_top, slot_ue, starts


def assign_rows(counts, budget, rows, sel, passes: int, tie_rel: float):
    """``decoder._assign_rows`` (same arguments and results; see its docstring)."""
    n_rows = counts.shape[0]
    sel = np.ascontiguousarray(sel, dtype=np.int64)
    levels, top, w, cap_per, mean_w, level0 = _prepare(counts, budget, rows.levels, rows.top, rows.weight, rows.cap, sel)
    pr, pu, near, value, pair_w = _first_values(counts, levels, top, w, cap_per, mean_w, rows.table, sel,
                                                rows.tie_ue, rows.tie_prb, rows.tie_level, tie_rel)
    pair, row_of, own, slot_row, slot_cap, slot_levels, slot_top, slot_ue, starts = _slots(counts, pr, pu, sel, cap_per, levels, top)
    per_ue = (budget.ravel(), mean_w.ravel(), counts.ravel(), level0)
    cols = [np.zeros(0, dtype=np.int64)] * n_rows
    redo = np.ones(n_rows, dtype=bool)
    for it in range(passes):
        vs = value[pair]
        for i in range(n_rows):
            a, b = starts[i], starts[i + 1]
            if redo[i] and b > a:
                cols[i] = linear_sum_assignment(vs[a:b], maximize=True)[1]
        col = cols[0] if n_rows == 1 else np.concatenate(cols)
        rate = _slot_rates(rows.table, slot_row, own, col, slot_cap)
        p_w, price = _split_power(rate, slot_levels, slot_top, slot_ue, *per_ue)
        if it == passes - 1:
            break
        value, redo = _second_values(price, w, pr, pu, levels, cap_per, rows.table, sel, pair_w,
                                     rows.tie_ue, rows.tie_prb, rows.tie_level)
        if not redo.any():
            break
    return row_of, own, col, p_w
