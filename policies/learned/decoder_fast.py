"""The decoder's steps 1-6 (``decoder.decode_rows``) compiled: the same output, one call.

``decode_rows`` is ``decoder.decode_rows`` as one numba call (``cache=True``), the PRB assignment
included: ``_assign_max`` solves each row's assignment by the algorithm of
``scipy.optimize.linear_sum_assignment`` (which the numpy reference calls), with its order of
scanning and its choice between equal costs, so it returns the same PRBs. Every value is
computed by the same float64 operations in the same order (element-wise products and minima, the
share totals summed as numpy sums (``_pairwise_sum``), the running sum of the power upgrades, the
median), sorts are stable where the numpy code's are, so the
output is identical, not merely close: ``tests/test_learning_encoding.py`` decodes random vectors
both ways and compares owners and powers exactly. The numpy code stays the reference
(``decode_actions(..., fast=False)``) of steps 1-5. Step 6 (``polish_rows``: moves by the snapshot
problem's order, loops over PRB pairs) exists once, compiled here; both paths call it. Step 6
depends only on a row's constants and its placement after step 5, so ``_decode`` polishes each
distinct placement of a context row once and copies the result to the rows that share it
(sampled candidates of one state often meet there: 16 of the rate checkpoint's give about 10);
the reference polishes every row, and the tests compare the two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simcore.pairwise_sum import pairwise_sum as _pairwise_sum

_JIT = dict(cache=True, error_model="numpy")
_MASK24 = (1 << 24) - 1
_SLACK = 1 + 1e-12  # as the numpy code's budget and ceiling comparisons
_FORBID = 1e15  # an assignment value below any sum of tie costs (at most 2^24 each)
#: assignments of step 6's least-tie-cost covers (``_tie_place``) at most
TIE_ROUNDS = 12


@njit(**_JIT)
def _tie_int(index):
    """``simcore.snapshot.tie_cost`` of one index (an int in 1..2^24)."""
    x = (index ^ (index >> 24)) & _MASK24
    x ^= x >> 12
    x = (x * 0x9E3779) & _MASK24
    x ^= x >> 11
    x = (x * 0x85EBCB) & _MASK24
    x ^= x >> 12
    return 1 + x


@njit(**_JIT)
def _tie_cost(index):
    """``simcore.snapshot.tie_cost`` of one index, scaled to (0, 1] as ``decoder._tie``."""
    return float(_tie_int(index)) * 2.0**-24


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


@njit(**_JIT)
def _assign_max(value, pair, a, b, col):
    """The PRB of each slot a..b-1 (slot s takes the row ``value[pair[s]]``), maximising the sum of
    the slots' values: ``scipy.optimize.linear_sum_assignment(..., maximize=True)`` of those rows,
    written into ``col[a:b]``. The same algorithm (shortest augmenting paths, Crouse 2016, on the
    negated values) with the same order of columns scanned and the same choice between equal path
    costs (a free column first), so the same assignment, ties included."""
    _assign_duals(value, pair, a, b, col, np.zeros(b - a), np.zeros(value.shape[1]))


@njit(**_JIT)
def _assign_duals(value, pair, a, b, col, u, v):
    """``_assign_max``, leaving the final dual variables of the negated problem in u (b - a,) and v (K,)
    (both zeros on entry): -value[pair[a + s], j] - u[s] - v[j] >= 0 for every s, j, with equality
    where slot s takes column j, and v[j] = 0 where no slot takes j (v <= 0): the certificate that
    the assignment is optimal (``_reassign`` reuses it)."""
    n_r, n_c = b - a, value.shape[1]
    dist = np.empty(n_c)
    path = np.full(n_c, -1, np.int64)
    col4row, row4col = np.full(n_r, -1, np.int64), np.full(n_c, -1, np.int64)
    seen_r, seen_c = np.zeros(n_r, np.bool_), np.zeros(n_c, np.bool_)
    todo = np.empty(n_c, np.int64)
    for start in range(n_r):
        for t in range(n_c):
            todo[t] = n_c - 1 - t  # scanned from the last column: a constant matrix gives the identity
        seen_r[:] = False
        seen_c[:] = False
        dist[:] = np.inf
        n_todo, low, i, sink = n_c, 0.0, start, -1
        while sink == -1:  # grow shortest paths from row ``start`` until one ends in a free column
            seen_r[i] = True
            best, best_t = np.inf, -1
            row, u_i = value[pair[a + i]], u[i]  # held in registers: the stores below cannot change them
            for t in range(n_todo):
                j = todo[t]
                d = low + -row[j] - u_i - v[j]
                dj = dist[j]
                if d < dj:
                    path[j], dist[j], dj = i, d, d
                if dj < best or (dj == best and row4col[j] == -1):
                    best, best_t = dj, t
            low = best
            j = todo[best_t]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            seen_c[j] = True
            n_todo -= 1
            todo[best_t] = todo[n_todo]
        u[start] += low  # dual update, then flip the path
        for r in range(n_r):
            if seen_r[r] and r != start:
                u[r] += low - dist[col4row[r]]
        for j in range(n_c):
            if seen_c[j]:
                v[j] -= low - dist[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            col4row[i], j = j, col4row[i]
            if i == start:
                break
    col[a:b] = col4row


@njit(**_JIT)
def _assign(counts, budget, levels_all, top_all, weight_all, cap_all, table, sel, tie_ue, tie_prb, tie_level,
            passes, tie_rel):
    """Steps 3-5 (``decoder._assign_rows``, same arguments and results): row, owner slot, PRB and power
    of every assigned PRB."""
    n_rows, m = counts.shape
    levels, top, w, cap_per, mean_w, level0 = _prepare(counts, budget, levels_all, top_all, weight_all, cap_all, sel)
    pr, pu, near, value, pair_w = _first_values(counts, levels, top, w, cap_per, mean_w, table, sel,
                                                tie_ue, tie_prb, tie_level, tie_rel)
    pair, row_of, own, slot_row, slot_cap, slot_levels, slot_top, slot_ue, starts = _slots(counts, pr, pu, sel, cap_per, levels, top)
    col = np.zeros(pair.size, np.int64)
    redo = np.ones(n_rows, np.bool_)
    p_w = np.zeros(pair.size)
    for it in range(passes):
        for i in range(n_rows):
            if redo[i] and starts[i + 1] > starts[i]:
                _assign_max(value, pair, starts[i], starts[i + 1], col)  # a row keeps its PRBs if not redone
        rate = _slot_rates(table, slot_row, own, col, slot_cap)
        p_w, price = _split_power(rate, slot_levels, slot_top, slot_ue, budget.ravel(), mean_w.ravel(),
                                  counts.ravel(), level0)
        if it == passes - 1:
            break
        value, redo = _second_values(price, w, pr, pu, levels, cap_per, table, sel, pair_w, tie_ue, tie_prb, tie_level)
        if not redo.any():
            break
    return row_of, own, col, p_w


@njit(**_JIT)
def _clean(v):
    """``decoder.clean_shares`` of one value: NaN -> 0, then clipped to [0, 1]."""
    return 0.0 if v != v else min(max(v, 0.0), 1.0)


@njit(**_JIT)
def _counts_and_budgets(actions, ues_all, ru_power, sel, state, n_prb):
    """Steps 1-2 of the decoder (``decoder.decode_rows`` before the assignment), row i taking the
    action of state ``state[i]``: PRB counts (N, M) by largest remainder and power budgets (W)."""
    n, m = sel.size, ues_all.shape[1]
    counts = np.zeros((n, m), np.int64)
    budget = np.zeros((n, m))
    s, p, want, diff = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    floor = np.empty(m, np.int64)
    for i in range(n):
        b, r = state[i], sel[i]
        for j in range(m):  # UE slots in the row's order, zeros for padding (the numpy sums' layout)
            u = ues_all[r, j]
            s[j] = _clean(actions[b, u]) if u >= 0 else 0.0
            p[j] = _clean(actions[b, m + u]) if u >= 0 else 0.0
        s_tot = max(0.0 + _pairwise_sum(s, 0, m), 1.0)
        p_tot = max(0.0 + _pairwise_sum(p, 0, m), 1.0)
        n_floor = 0
        for j in range(m):
            s[j] = s[j] / s_tot
            p[j] = p[j] / p_tot
            want[j] = n_prb * s[j]
            floor[j] = np.int64(np.floor(want[j] + 1e-9))
            diff[j] = floor[j] - want[j]
            n_floor += floor[j]
        extra = np.int64(min(np.rint(0.0 + _pairwise_sum(want, 0, m)), n_prb)) - n_floor
        order = np.argsort(diff, kind="mergesort")  # largest remainder first, ties in slot order
        for t in range(m):
            j = order[t]
            counts[i, j] = floor[j] + (1 if t < extra else 0)
        for j in range(m):
            if p[j] <= 0:
                counts[i, j] = 0
            budget[i, j] = ru_power[r] * p[j]
    return counts, budget


@njit(**_JIT)
def _better(dv, df, dt, tol_v, tol_f):
    """A change of (V, F, T) by (dv, df, dt) improves in the problem's order: less shortfall, else
    (shortfall tied) more objective, else (both tied) less tie cost."""
    if dv < -tol_v:
        return True
    if dv > tol_v:
        return False
    if df > tol_f:
        return True
    return df >= -tol_f and dt < 0


@njit(**_JIT)
def _ue_terms(need, cap, w, old, new):
    """Changes of one UE's shortfall and counted objective when its rate goes from ``old`` to ``new``."""
    return (max(need - new, 0.0) - max(need - old, 0.0)), w * (min(new, cap) - min(old, cap))


@njit(**_JIT)
def _polish(slot_own, power, levels_all, table, sel, weight, need, served_cap, tie_ue, tie_prb, tie_level, sweeps,
            free, ru_power, top, steps, ues_all, joint, shortcut):
    """Step 6 of the decoder, in place: each row's PRBs moved by the snapshot problem's own order
    (``decoder`` module docstring, step 6).

    slot_own (N, K): the UE slot owning each PRB (-1 idle); power (N, K) its power (it moves with its
    owner); the rest as in ``DecodeRows`` (``need`` the rate need, ``served_cap`` what counts in the
    objective: inf under rate; ``ues_all`` the rows' UE indices, -1 padding; ``joint`` False: the row keeps
    its counts, step 6 without the joint placement and hand-overs, as before them). A row with an owned PRB
    off its levels is left as it is. Each sweep: single moves (``_moves``: counts and levels kept),
    the joint placement (``_place``) or else the least-tie-cost assignment (``_reassign``), PRBs
    handed to another UE or left idle (``_hand_over``: counts change), and where ``free`` level moves
    (``_levels``) and each UE's PRBs and levels chosen again among its own and the idle PRBs (``_refill``:
    counts change); every change improves the row's (V, F, P, T); at most 2 ``sweeps`` sweeps, fewer
    when one changes nothing; then, where a UE has rate to spare, the least-tie-cost covers
    (``_tie_place``, then single moves again if it moved anything). Plain Python loops: the numpy reference runs this function as it is
    and ``_polish`` is the same function compiled (one text, the same float operations).
    ``shortcut``: ``_reassign`` skips assignments proven to return the placement it has (the compiled
    decoder's; the numpy reference solves each, so the tests compare the two).
    """
    n_rows, n_prb = slot_own.shape
    n_lvl = levels_all.shape[1]
    m = weight.shape[1]
    lvl = np.zeros(n_prb, np.int64)
    rate = np.zeros(m)
    memo = _reassign_memo(n_prb, m, shortcut)
    for i in range(n_rows):
        r = sel[i]
        if shortcut:
            memo[0][0] = 0  # no duals for this row yet
        used = 0.0
        for k in range(n_prb):
            used += power[i, k]
        if free[r]:  # a PRB below the lowest level is lifted to it while the RU's power lasts (PRB order)
            for k in range(n_prb):
                if slot_own[i, k] >= 0 and power[i, k] < levels_all[r, 0] and \
                        used + levels_all[r, 0] - power[i, k] <= ru_power[r] * _SLACK:
                    used += levels_all[r, 0] - power[i, k]
                    power[i, k] = levels_all[r, 0]
        on_grid = True
        for k in range(n_prb):
            if slot_own[i, k] >= 0:
                lvl[k] = -1
                for j in range(n_lvl):
                    if power[i, k] == levels_all[r, j]:
                        lvl[k] = j
                if lvl[k] < 0:
                    on_grid = False
        if not on_grid:
            continue
        rate[:] = 0.0
        for k in range(n_prb):
            if slot_own[i, k] >= 0:
                rate[slot_own[i, k]] += table[r, slot_own[i, k], lvl[k], k]
        tol_v, tol_f = 0.0, 0.0
        for u in range(m):
            tol_v += need[r, u]
            tol_f += weight[r, u] * min(rate[u], served_cap[r, u])
        tol_v, tol_f = max(1e-2, 1e-9 * tol_v), max(1e-2, 1e-9 * abs(tol_f))
        n_ue = 0
        for u in range(m):
            if ues_all[r, u] >= 0:
                n_ue = u + 1
        if not joint[r]:  # counts kept: moves and the least-tie-cost assignment, then levels (no joint placement)
            spare = ru_power[r] * _SLACK - used
            for _ in range(sweeps):
                _moves(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
                       sweeps, tol_v, tol_f)
                spared = False
                for u in range(weight.shape[1]):
                    if rate[u] > max(need[r, u], served_cap[r, u]):
                        spared = True
                placed = (_reassign(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue,
                                    tie_prb, tie_level, tol_v, tol_f, False, memo)
                          or (spared and _reassign(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap,
                                                   tie_ue, tie_prb, tie_level, tol_v, tol_f, True, memo)))
                if placed:
                    continue
                if not free[r]:
                    break
                before = spare
                spare = _levels(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb,
                                tie_level, sweeps, tol_v, tol_f, levels_all, spare, top[r], steps)
                if spare == before:
                    break
            continue
        for _ in range(2 * sweeps):  # placement (each PRB's level kept), counts, then levels; again while any moves
            _moves(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
                   sweeps, tol_v, tol_f)
            changed = _place(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb,
                             tie_level, tol_v, tol_f, levels_all, steps, free[r])
            if not changed:
                spared = False  # some UE has rate to spare (never under rate): splitting it is another try
                for u in range(weight.shape[1]):
                    if rate[u] > max(need[r, u], served_cap[r, u]):
                        spared = True
                changed = (_reassign(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue,
                                     tie_prb, tie_level, tol_v, tol_f, False, memo)
                           or (spared and _reassign(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap,
                                                    tie_ue, tie_prb, tie_level, tol_v, tol_f, True, memo)))
            for k in range(n_prb):  # counts: a PRB to another UE, or idle
                if slot_own[i, k] >= 0 and _hand_over(i, r, k, slot_own, power, lvl, rate, table, weight, need,
                                                      served_cap, tie_ue, tie_prb, tie_level, tol_v, tol_f, n_ue):
                    changed = True
            if free[r]:
                spare = ru_power[r] * _SLACK
                for k in range(n_prb):
                    spare -= power[i, k]
                if _levels(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb,
                           tie_level, sweeps, tol_v, tol_f, levels_all, spare, top[r], steps) != spare:
                    changed = True
                if _refill(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb,
                           tie_level, tol_v, tol_f, levels_all, ru_power, top[r], steps, n_ue):
                    changed = True
            if not changed:
                break
        spared = False  # a UE past what it can use: covers to choose (else _moves/_reassign saw every tie)
        for u in range(m):
            if rate[u] > max(need[r, u], served_cap[r, u]):
                spared = True
        if sweeps > 0 and spared and _tie_place(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
                      tol_v, tol_f, TIE_ROUNDS, sweeps, levels_all):
            _moves(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
                   sweeps, tol_v, tol_f)


@njit(**_JIT)
def _reassign(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
              tol_v, tol_f, split, memo):
    """Row i's owned PRBs (each a UE and level) placed again by one assignment of least tie cost,
    each allowed only on PRBs where its UE keeps its rate up to its share of the UE's slack above
    what it can use (max(need, counted rate); 0 for a UE below it): so chains and cycles of moves
    that keep (V, F) become one step. Taken if (V, F, T) improves (``_better``); True if taken.

    ``memo`` (``_reassign_memo``) carries, from one call to the next, dual variables that prove the
    row's placement the assignment's optimum (``_assign_duals``) while the placement is unchanged:
    when they still hold on this call's allowed PRBs, the assignment would return that placement
    (or one of equal tie cost: the same PRBs for each UE and level, unless two placements' tie
    costs sum exactly alike), which is never taken, so it is not solved. ``memo[0][0] < 0`` (the
    numpy reference's) solves every time."""
    n_prb = slot_own.shape[1]
    m = weight.shape[1]
    flag, own_m, lvl_m, u_m, v_m, ks, value, count, col, u_d, v_d = memo
    n_s = 0
    count[:] = 0
    for k in range(n_prb):
        if slot_own[i, k] >= 0:
            ks[n_s] = k
            n_s += 1
            count[slot_own[i, k]] += 1
    if n_s == 0:
        return False
    proven = flag[0] == 1
    if proven:  # the memo's duals are for this placement (tight on it) if nothing moved since
        for k in range(n_prb):
            if own_m[k] != slot_own[i, k] or (own_m[k] >= 0 and lvl_m[k] != lvl[k]):
                proven = False
                break
    for s in range(n_s):
        k = ks[s]
        u, lu = slot_own[i, k], lvl[k]
        room = max(rate[u] - max(need[r, u], served_cap[r, u]), 0.0) / (count[u] if split else 1)
        base = tie_level[r, lu] + tie_ue[r, u]
        floor = table[r, u, lu, k] - room
        for k2 in range(n_prb):
            if table[r, u, lu, k2] >= floor:
                t = float(_tie_int(base + tie_prb[r] * k2))
                value[s, k2] = -t
                if proven and t - u_m[k] - v_m[k2] < 0.0:
                    proven = False
            else:
                value[s, k2] = -_FORBID
    if proven:  # every allowed reduced cost >= 0: the placement is this assignment's optimum
        return False
    col[:n_s] = 0
    u_d[:n_s] = 0.0
    v_d[:] = 0.0
    _assign_duals(value, np.arange(n_s), 0, n_s, col, u_d, v_d)
    new_rate = rate.copy()
    dt = 0
    for s in range(n_s):
        k, k2 = ks[s], col[s]
        u, lu = slot_own[i, k], lvl[k]
        new_rate[u] += table[r, u, lu, k2] - table[r, u, lu, k]
        dt += _tie_int(tie_level[r, lu] + tie_ue[r, u] + tie_prb[r] * k2) - _tie_int(tie_level[r, lu] + tie_ue[r, u] + tie_prb[r] * k)
    dv, df = 0.0, 0.0
    for u in range(m):
        if count[u] > 0:
            a, b = _ue_terms(need[r, u], served_cap[r, u], weight[r, u], rate[u], new_rate[u])
            dv, df = dv + a, df + b
    taken = _better(dv, df, dt, tol_v, tol_f)
    if taken:
        own_old, p_old, l_old = slot_own[i].copy(), power[i].copy(), lvl.copy()
        slot_own[i, :] = -1
        power[i, :] = 0.0
        for s in range(n_s):
            slot_own[i, col[s]], power[i, col[s]], lvl[col[s]] = own_old[ks[s]], p_old[ks[s]], l_old[ks[s]]
        rate[:] = new_rate
    if flag[0] >= 0:  # the duals prove the new placement, or the old one if it was as cheap (dt = 0)
        flag[0] = 1 if taken or dt == 0 else 0
        for s in range(n_s):
            u_m[col[s] if taken else ks[s]] = u_d[s]
        v_m[:] = v_d
        own_m[:] = slot_own[i]
        lvl_m[:] = lvl
    return taken


@njit(**_JIT)
def _reassign_memo(n_prb, m, shortcut):
    """Buffers of ``_reassign`` for rows of K PRBs and M UE slots (its ``memo``); ``shortcut`` False:
    the duals are never used (every call solves its assignment)."""
    flag = np.zeros(1, np.int64)
    flag[0] = 0 if shortcut else -1
    return (flag, np.full(n_prb, -1, np.int64), np.zeros(n_prb, np.int64), np.zeros(n_prb), np.zeros(n_prb),
            np.zeros(n_prb, np.int64), np.empty((n_prb, n_prb)), np.zeros(m, np.int64), np.zeros(n_prb, np.int64),
            np.zeros(n_prb), np.zeros(n_prb))


@njit(**_JIT)
def _hand_over(i, r, k, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
               tol_v, tol_f, n_ue):
    """Row i's owned PRB k (its level kept) to the first other UE v < ``n_ue`` that improves (V, F, T),
    else left idle if (V, F) stay tied (its power steps saved: tier 3). True if k changed."""
    u, lu = slot_own[i, k], lvl[k]
    t_u = _tie_int(tie_level[r, lu] + tie_ue[r, u] + tie_prb[r] * k)
    ru_new = rate[u] - table[r, u, lu, k]
    dv_u, df_u = _ue_terms(need[r, u], served_cap[r, u], weight[r, u], rate[u], ru_new)
    if dv_u <= tol_v and df_u >= -tol_f:  # nothing lost without it: idle
        rate[u] = ru_new
        slot_own[i, k], power[i, k] = -1, 0.0
        return True
    for v in range(n_ue):
        if v == u:
            continue
        rv_new = rate[v] + table[r, v, lu, k]
        dv, df = _ue_terms(need[r, v], served_cap[r, v], weight[r, v], rate[v], rv_new)
        dt = _tie_int(tie_level[r, lu] + tie_ue[r, v] + tie_prb[r] * k) - t_u
        if _better(dv + dv_u, df + df_u, dt, tol_v, tol_f):
            rate[u], rate[v] = ru_new, rv_new
            slot_own[i, k] = v
            return True
    return False


@njit(**_JIT)
def _refill(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
            tol_v, tol_f, levels_all, ru_power, top, steps, n_ue):
    """Each UE u < ``n_ue`` with PRBs, in turn (the others held), takes its PRBs and their levels again
    among its own PRBs and the row's idle ones: an exact multiple-choice knapsack over power steps (each PRB idle or at
    one level within the ceiling ``top``; at most u's steps plus the RU's spare ones) gives u's largest
    rate for every number of steps, and u takes the fewest steps that reach its least shortfall and then
    its most counted objective. So a UE can gain an idle PRB (no other part adds one) or trade n PRBs
    for n - 1 better ones or for lower levels (a single removal loses rate). Taken where the row's
    (V, F, P, T) improves (``_better_p``); levels change, so only where they may (``_polish``'s ``free``).
    Returns True if anything changed."""
    n_prb = slot_own.shape[1]
    n_lvl = levels_all.shape[1]
    step_w = levels_all[r, 0] / steps[r, 0]  # the watts of one power step
    top_step = 0
    for j in range(n_lvl):
        if levels_all[r, j] <= top * _SLACK:
            top_step = max(top_step, steps[r, j])
    cand = np.empty(n_prb, np.int64)
    changed = False
    for u in range(n_ue):
        n_c, own_n, own_steps = 0, 0, 0
        used = 0.0
        for k in range(n_prb):
            used += power[i, k]
            if slot_own[i, k] == u:
                own_n += 1
                own_steps += steps[r, lvl[k]]
            if slot_own[i, k] == u or slot_own[i, k] < 0:
                cand[n_c] = k
                n_c += 1
        if own_n == 0:
            continue  # a UE without PRBs stays without: an action's zero share is kept (all zeros decode to idle)
        spare = int(np.floor(max(ru_power[r] * _SLACK - used, 0.0) / step_w * (1 + 1e-12)))
        n_s = min(own_steps + spare, n_c * top_step)
        best = np.zeros(n_s + 1)  # u's largest rate within s steps
        pick = np.full((n_c, n_s + 1), -1, np.int64)
        for c in range(n_c):
            k = cand[c]
            for s in range(n_s, 0, -1):  # descending: best[s - st] is still the previous PRBs' (each PRB once)
                for j in range(n_lvl):
                    st = steps[r, j]
                    if st > s or levels_all[r, j] > top * _SLACK:
                        continue
                    v = best[s - st] + table[r, u, j, k]
                    if v > best[s]:
                        best[s], pick[c, s] = v, j
        v_min = max(need[r, u] - best[n_s], 0.0)
        f_max = weight[r, u] * min(best[n_s], served_cap[r, u])
        s_new = n_s
        for s in range(n_s + 1):  # the fewest steps tied with the best on shortfall and objective
            if max(need[r, u] - best[s], 0.0) <= v_min + tol_v and weight[r, u] * min(best[s], served_cap[r, u]) >= f_max - tol_f:
                s_new = s
                break
        new_lvl = np.full(n_c, -1, np.int64)
        s = s_new
        new_rate = 0.0
        for c in range(n_c - 1, -1, -1):
            j = pick[c, s]
            if j >= 0:
                new_lvl[c] = j
                s -= steps[r, j]
        dt = 0
        for c in range(n_c):
            k = cand[c]
            if new_lvl[c] >= 0:
                new_rate += table[r, u, new_lvl[c], k]
                dt += _tie_int(tie_level[r, new_lvl[c]] + tie_ue[r, u] + tie_prb[r] * k)
            if slot_own[i, k] == u:
                dt -= _tie_int(tie_level[r, lvl[k]] + tie_ue[r, u] + tie_prb[r] * k)
        dv, df = _ue_terms(need[r, u], served_cap[r, u], weight[r, u], rate[u], new_rate)
        if not _better_p(dv, df, s_new - s - own_steps, dt, tol_v, tol_f):  # s_new - s: the steps taken
            continue
        for c in range(n_c):
            k = cand[c]
            if new_lvl[c] >= 0:
                slot_own[i, k], lvl[k], power[i, k] = u, new_lvl[c], levels_all[r, new_lvl[c]]
            else:
                slot_own[i, k], power[i, k] = -1, 0.0
        rate[u] = new_rate
        changed = True
    return changed


@njit(**_JIT)
def _owned_prbs(slot_own, i):
    """The PRBs row ``i`` owns (``slot_own[i, k] >= 0``), in increasing order: (n_owned,) int64."""
    n_prb = slot_own.shape[1]
    n_s = 0
    for k in range(n_prb):
        if slot_own[i, k] >= 0:
            n_s += 1
    ks = np.empty(n_s, np.int64)
    s = 0
    for k in range(n_prb):
        if slot_own[i, k] >= 0:
            ks[s] = k
            s += 1
    return ks


@njit(**_JIT)
def _place(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
           tol_v, tol_f, levels_all, steps, free):
    """Row i's owned PRBs (each a UE and level) placed again by one assignment, each at its level or,
    where ``free`` (levels may change: ``_polish``), a lower one (so within the budget): a PRB's value to its UE, the UE's other PRBs held where they
    are, is its shortfall (first, at a weight that puts it before the objective), its counted
    objective, then its power steps (at a weight below the objective's tolerance). Exact when every
    UE has one PRB; for several PRBs of one UE the sum of their changes is an estimate, so the result
    is taken only if (V, F, P, T) improves (``_better_p``). True if taken."""
    n_prb = slot_own.shape[1]
    m = weight.shape[1]
    ks = _owned_prbs(slot_own, i)
    n_s = ks.size
    if n_s == 0:
        return False
    w_v = 1.0  # shortfall before objective: a bit/s of shortfall outweighs any weighted objective change
    for u in range(m):
        w_v = max(w_v, 1e6 * weight[r, u])
    w_p = 0.1 * tol_f / (steps[r, steps.shape[1] - 1] * n_prb)  # all the power steps' weight below tol_f
    value = np.empty((n_s, n_prb))
    lv_of = np.empty((n_s, n_prb), np.int64)
    for s in range(n_s):
        k = ks[s]
        u = slot_own[i, k]
        lu = lvl[k]
        base = rate[u] - table[r, u, lu, k]
        for k2 in range(n_prb):
            best, best_l = -np.inf, lu
            for j in range(0 if free else lu, lu + 1):  # the lowest of equal values
                nr = base + table[r, u, j, k2]
                val = -w_v * max(need[r, u] - nr, 0.0) + weight[r, u] * min(nr, served_cap[r, u]) - w_p * steps[r, j]
                if val > best:
                    best, best_l = val, j
            value[s, k2], lv_of[s, k2] = best, best_l
    col = np.zeros(n_s, np.int64)
    _assign_max(value, np.arange(n_s), 0, n_s, col)
    new_rate = rate.copy()
    dt, dp = 0, 0
    same = True
    for s in range(n_s):
        k, k2 = ks[s], col[s]
        u, lu, j = slot_own[i, k], lvl[k], lv_of[s, col[s]]
        if k2 != k or j != lu:
            same = False
        new_rate[u] += table[r, u, j, k2] - table[r, u, lu, k]
        dp += steps[r, j] - steps[r, lu]
        dt += _tie_int(tie_level[r, j] + tie_ue[r, u] + tie_prb[r] * k2) - _tie_int(tie_level[r, lu] + tie_ue[r, u] + tie_prb[r] * k)
    if same:
        return False
    dv, df = 0.0, 0.0
    for u in range(m):
        if new_rate[u] != rate[u]:
            a, b = _ue_terms(need[r, u], served_cap[r, u], weight[r, u], rate[u], new_rate[u])
            dv, df = dv + a, df + b
    if not _better_p(dv, df, dp, dt, tol_v, tol_f):
        return False
    own_old, l_old = slot_own[i].copy(), lvl.copy()
    slot_own[i, :] = -1
    power[i, :] = 0.0
    for s in range(n_s):
        k2, j = col[s], lv_of[s, col[s]]
        slot_own[i, k2], power[i, k2], lvl[k2] = own_old[ks[s]], levels_all[r, j], j
    rate[:] = new_rate
    return True


@njit(**_JIT)
def _cover_descent(r, own, lk, rt, bound, table, tt, sweeps):
    """A placement of one row (``own`` (K,) UE slot per PRB, -1 idle; ``lk`` (K,) its level; ``rt`` (M,)
    the UEs' rates), in place: first each UE below its rate ``bound`` (the largest shortfall first)
    takes the single move or owner exchange of one of its PRBs that lifts it to the bound for the
    least tie cost (else the one that lifts it most), never taking another UE below its bound; then
    single moves and exchanges that lower the tie cost with every UE kept at its bound, at most
    ``sweeps`` sweeps. ``tt`` (M, L, K): the tie cost of each choice (``_tie_int``, as floats: exact).
    Returns (every bound kept, the placement's tie cost)."""
    n_prb = own.size
    m = rt.size
    for _ in range(n_prb):  # repair
        worst, gap = -1, 0.0
        for u in range(m):
            if bound[u] - rt[u] > gap:
                worst, gap = u, bound[u] - rt[u]
        if worst < 0:
            break
        u = worst
        best_k, best_k2, best_key, best_cover = -1, -1, np.inf, False
        for k in range(n_prb):
            if own[k] != u:
                continue
            lu = lk[k]
            t_k = tt[u, lu, k]
            for k2 in range(n_prb):
                v = own[k2]
                if v == u:
                    continue
                ru = rt[u] - table[r, u, lu, k] + table[r, u, lu, k2]
                if ru <= rt[u]:
                    continue
                dt = tt[u, lu, k2] - t_k
                if v >= 0:
                    lv = lk[k2]
                    rv = rt[v] - table[r, v, lv, k2] + table[r, v, lv, k]
                    if rv < bound[v] and rv < rt[v]:
                        continue
                    dt += tt[v, lv, k] - tt[v, lv, k2]
                cover = ru >= bound[u]
                key = dt if cover else -ru
                if (cover and not best_cover) or (cover == best_cover and key < best_key):
                    best_k, best_k2, best_key, best_cover = k, k2, key, cover
        if best_k < 0:
            return False, 0.0
        k, k2 = best_k, best_k2
        v, lu, lv = own[k2], lk[k], lk[k2]
        rt[u] += table[r, u, lu, k2] - table[r, u, lu, k]
        if v >= 0:
            rt[v] += table[r, v, lv, k] - table[r, v, lv, k2]
        own[k], lk[k], own[k2], lk[k2] = v, lv, u, lu
    for u in range(m):
        if rt[u] < bound[u]:
            return False, 0.0
    for _ in range(sweeps):  # descent in tie cost
        moved = False
        for k in range(n_prb):
            for k2 in range(n_prb):
                u, v = own[k], own[k2]
                if u < 0:
                    break
                if k2 == k or v == u:
                    continue
                lu, lv = lk[k], lk[k2]
                dt = tt[u, lu, k2] - tt[u, lu, k]
                if v >= 0:
                    dt += tt[v, lv, k] - tt[v, lv, k2]
                if dt >= 0:
                    continue
                ru = rt[u] - table[r, u, lu, k] + table[r, u, lu, k2]
                if ru < bound[u]:
                    continue
                rv = 0.0
                if v >= 0:
                    rv = rt[v] - table[r, v, lv, k2] + table[r, v, lv, k]
                    if rv < bound[v]:
                        continue
                rt[u] = ru
                if v >= 0:
                    rt[v] = rv
                own[k], lk[k], own[k2], lk[k2] = v, lv, u, lu
                moved = True
        if not moved:
            break
    t = 0.0
    for k in range(n_prb):
        if own[k] >= 0:
            t += tt[own[k], lk[k], k]
    return True, t


@njit(**_JIT)
def _tie_place(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
               tol_v, tol_f, rounds, sweeps, levels_all):
    """Row i's owned PRBs (each a UE and level) placed again for the least tie cost (tier 4) among the
    placements where every UE keeps its rate up to what it can use (its bound: max(need, counted
    rate), or its rate if below): a UE at or past that bound may take any PRBs whose rates together
    still reach it, so PRBs that reach a UE's cap only together are chosen as a set (a cover), as the
    optimum's tier 4 chooses them.

    Lagrangian search: each round one assignment maximising, over the PRBs, -t(u, k, l) + lambda_u
    r(u, k, l) (each PRB's UE and level kept with it to its new PRB), whose bounds it breaks
    repaired and its tie cost lowered by single moves (``_cover_descent``); the prices lambda_u take
    a subgradient step towards the best cover's tie cost (Polyak's rule); stop when the dual bound
    proves the best cover the least (exact then), else after ``rounds`` rounds. The best cover is
    taken if (V, F, T) improves (``_better``). True if taken."""
    n_prb = slot_own.shape[1]
    m = weight.shape[1]
    ks = _owned_prbs(slot_own, i)
    n_s = ks.size
    if n_s == 0:
        return False
    value = np.empty((n_s, n_prb))
    n_lvl = table.shape[2]
    tt = np.empty((m, n_lvl, n_prb))  # the tie cost of each choice of the UEs with PRBs (only theirs filled)
    have = np.zeros(m, np.bool_)
    for s in range(n_s):
        u = slot_own[i, ks[s]]
        if not have[u]:
            have[u] = True
            for lv in range(n_lvl):
                for k in range(n_prb):
                    tt[u, lv, k] = _tie_int(tie_level[r, lv] + tie_ue[r, u] + tie_prb[r] * k)
    bound, price, grad = np.zeros(m), np.zeros(m), np.zeros(m)
    t_now = 0.0  # the placement's own tie cost: what every cover must beat
    for s in range(n_s):
        k = ks[s]
        t_now += tt[slot_own[i, k], lvl[k], k]
    for u in range(m):
        bound[u] = min(rate[u], max(need[r, u], served_cap[r, u]))
        bound[u] -= 1e-9 * abs(bound[u])  # the rates' rounding: a cover summed in another order
    col = np.zeros(n_s, np.int64)
    best_own, best_lk = slot_own[i].copy(), lvl.copy()
    own, lk, rt = np.empty(n_prb, np.int64), np.empty(n_prb, np.int64), np.empty(m)
    best_t, step = t_now, 2.0
    for _ in range(rounds):
        for s in range(n_s):
            k = ks[s]
            u, lu = slot_own[i, k], lvl[k]
            for k2 in range(n_prb):
                value[s, k2] = -tt[u, lu, k2] + price[u] * table[r, u, lu, k2]
        _assign_max(value, np.arange(n_s), 0, n_s, col)
        own[:] = -1
        rt[:] = rate
        t_new, dual = 0.0, 0.0
        for s in range(n_s):
            k, k2 = ks[s], col[s]
            u, lu = slot_own[i, k], lvl[k]
            own[k2], lk[k2] = u, lu
            rt[u] += table[r, u, lu, k2] - table[r, u, lu, k]
            t_new += tt[u, lu, k2]
            dual -= value[s, k2]
        norm = 0.0
        for u in range(m):
            dual += price[u] * bound[u]
            grad[u] = bound[u] - rt[u]
            if grad[u] > 0 or price[u] > 0:
                norm += grad[u] * grad[u]
        if dual >= best_t - 0.5:  # the dual bound: no cover beats the best one
            break
        if t_new < best_t:  # a promising assignment: repaired into a cover, then descended
            ok, t = _cover_descent(r, own, lk, rt, bound, table, tt, sweeps)
            if ok and t < best_t:
                best_t = t
                best_own[:] = own
                best_lk[:] = lk
        if norm == 0.0 or dual >= best_t - 0.5:
            break
        for u in range(m):  # a Polyak step towards the best cover's tie cost
            if grad[u] > 0 or price[u] > 0:
                price[u] = max(price[u] + step * (best_t - dual) * grad[u] / norm, 0.0)
        step *= 0.8
    if best_t >= t_now:
        return False
    rt[:] = 0.0
    for k in range(n_prb):
        if best_own[k] >= 0:
            rt[best_own[k]] += table[r, best_own[k], best_lk[k], k]
    dv, df = 0.0, 0.0
    for u in range(m):
        if rt[u] != rate[u]:
            a, b = _ue_terms(need[r, u], served_cap[r, u], weight[r, u], rate[u], rt[u])
            dv, df = dv + a, df + b
    if not _better(dv, df, int(best_t - t_now), tol_v, tol_f):
        return False
    for k in range(n_prb):
        slot_own[i, k] = best_own[k]
        power[i, k] = levels_all[r, best_lk[k]] if best_own[k] >= 0 else 0.0
        if best_own[k] >= 0:
            lvl[k] = best_lk[k]
    rate[:] = rt
    return True


@njit(**_JIT)
def _better_p(dv, df, dp, dt, tol_v, tol_f):
    """``_better`` with the power steps (tier 3) between the objective and the tie cost."""
    if dv < -tol_v:
        return True
    if dv > tol_v:
        return False
    if df > tol_f:
        return True
    if df < -tol_f:
        return False
    return dp < 0 or (dp == 0 and dt < 0)


@njit(**_JIT)
def _moves(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level,
           sweeps, tol_v, tol_f):
    """Single moves of row i (``polish_rows``), at most ``sweeps`` sweeps; ``rate`` kept up to date."""
    n_prb = slot_own.shape[1]
    for _ in range(sweeps):
        moved = False
        for k in range(n_prb):
            for k2 in range(n_prb):
                u, v = slot_own[i, k], slot_own[i, k2]
                if u < 0:
                    break  # k is idle (it may have become so by a move)
                if k2 == k or (v == u and lvl[k2] == lvl[k]):
                    continue
                lu, lv = lvl[k], lvl[k2]
                ru_new = rate[u] - table[r, u, lu, k] + table[r, u, lu, k2]
                rv_new = 0.0
                if v == u:
                    ru_new = ru_new - table[r, u, lv, k2] + table[r, u, lv, k]
                elif v >= 0:
                    rv_new = rate[v] - table[r, v, lv, k2] + table[r, v, lv, k]
                dv, df = _ue_terms(need[r, u], served_cap[r, u], weight[r, u], rate[u], ru_new)
                if v >= 0 and v != u:
                    dv2, df2 = _ue_terms(need[r, v], served_cap[r, v], weight[r, v], rate[v], rv_new)
                    dv, df = dv + dv2, df + df2
                if dv > tol_v or (dv >= -tol_v and df < -tol_f):
                    continue  # worse on tier 1 or 2: the tie cost cannot make up for it
                dt = _tie_int(tie_level[r, lu] + tie_ue[r, u] + tie_prb[r] * k2) - \
                    _tie_int(tie_level[r, lu] + tie_ue[r, u] + tie_prb[r] * k)
                if v >= 0:
                    dt += _tie_int(tie_level[r, lv] + tie_ue[r, v] + tie_prb[r] * k) - \
                        _tie_int(tie_level[r, lv] + tie_ue[r, v] + tie_prb[r] * k2)
                if not _better(dv, df, dt, tol_v, tol_f):
                    continue
                rate[u] = ru_new
                if v >= 0 and v != u:
                    rate[v] = rv_new
                p_k = power[i, k]
                slot_own[i, k], power[i, k], lvl[k] = v, power[i, k2], lv
                slot_own[i, k2], power[i, k2], lvl[k2] = u, p_k, lu
                moved = True
        if not moved:
            break


@njit(**_JIT)
def _levels(i, r, slot_own, power, lvl, rate, table, weight, need, served_cap, tie_ue, tie_prb, tie_level, sweeps,
            tol_v, tol_f, levels_all, spare, top, steps):
    """Level moves of row i: each owned PRB (in order) to the first other level, lowest first, that
    improves (V, F, P, T) in the problem's order within the RU's ``spare`` power (W) and the PRB
    ceiling ``top``; at most ``sweeps`` sweeps. Returns the power still spare."""
    n_prb = slot_own.shape[1]
    n_lvl = levels_all.shape[1]
    for _ in range(sweeps):
        moved = False
        for k in range(n_prb):
            u = slot_own[i, k]
            if u < 0:
                continue
            for j in range(n_lvl):
                lu = lvl[k]
                if j == lu or levels_all[r, j] > top * _SLACK or levels_all[r, j] - levels_all[r, lu] > spare:
                    continue
                ru_new = rate[u] - table[r, u, lu, k] + table[r, u, j, k]
                dv, df = _ue_terms(need[r, u], served_cap[r, u], weight[r, u], rate[u], ru_new)
                if dv > tol_v or (dv >= -tol_v and df < -tol_f):
                    continue
                dp = steps[r, j] - steps[r, lu]
                if dv >= -tol_v and df <= tol_f:  # tied on tiers 1-2: less power, else less tie cost
                    if dp > 0:
                        continue
                    if dp == 0 and _tie_int(tie_level[r, j] + tie_ue[r, u] + tie_prb[r] * k) >= \
                            _tie_int(tie_level[r, lu] + tie_ue[r, u] + tie_prb[r] * k):
                        continue
                spare -= levels_all[r, j] - levels_all[r, lu]
                rate[u] = ru_new
                power[i, k], lvl[k] = levels_all[r, j], j
                moved = True
        if not moved:
            break
    return spare


def polish_rows(slot_own, power, rows, sel, sweeps: int) -> None:
    """Step 6 (``_polish``) of rows ``sel`` of ``rows`` (``decoder.DecodeRows``), in place: the one
    implementation, called by the numpy reference (here: every assignment of ``_reassign`` solved) and
    inside the compiled ``_decode`` (skipping those proven not to move anything) alike."""
    _polish(slot_own, power, rows.levels, rows.table, np.ascontiguousarray(sel, dtype=np.int64), rows.weight,
            rows.need, rows.counted, rows.tie_ue, rows.tie_prb, rows.tie_level, int(sweeps),
            rows.free_power, rows.ru_power, rows.top, rows.steps, rows.ues, rows.joint, False)


@njit(**_JIT)
def _same_rows(slot_own, power, sel):
    """For each row q, the first row with the same context row and the same placement (owners and
    powers, exactly), q itself if none: (N,), and how many rows are their own first."""
    n, n_prb = slot_own.shape
    rep = np.empty(n, np.int64)
    n_rep = 0
    for q in range(n):
        rep[q] = q
        for t in range(q):
            if rep[t] != t or sel[t] != sel[q]:
                continue
            same = True
            for k in range(n_prb):
                if slot_own[t, k] != slot_own[q, k] or power[t, k] != power[q, k]:
                    same = False
                    break
            if same:
                rep[q] = t
                break
        if rep[q] == q:
            n_rep += 1
    return rep, n_rep


@njit(**_JIT)
def _decode(actions, ues_all, ru_power, levels_all, top_all, weight_all, cap_all, need_all, counted_all, table,
            sel, state, tie_ue, tie_prb, tie_level, passes, tie_rel, sweeps, free_all, steps_all, joint_all):
    """Steps 1-6 of rows ``sel`` in one call: PRB owners (UE index, -1 idle) and powers, (N, K)."""
    n_prb = table.shape[3]
    counts, budget = _counts_and_budgets(actions, ues_all, ru_power, sel, state, n_prb)
    row_of, own, col, p_w = _assign(counts, budget, levels_all, top_all, weight_all, cap_all, table, sel,
                                    tie_ue, tie_prb, tie_level, passes, tie_rel)
    slot_own = np.full((sel.size, n_prb), -1, np.int64)
    power = np.zeros((sel.size, n_prb))
    for q in range(row_of.size):
        slot_own[row_of[q], col[q]] = own[q]
        power[row_of[q], col[q]] = p_w[q]
    rep, n_rep = _same_rows(slot_own, power, sel)
    if n_rep == sel.size:
        _polish(slot_own, power, levels_all, table, sel, weight_all, need_all, counted_all, tie_ue, tie_prb, tie_level,
                sweeps, free_all, ru_power, top_all, steps_all, ues_all, joint_all, True)
    else:  # step 6 is a function of the row's constants and its placement: each distinct one polished once
        first, at = np.empty(n_rep, np.int64), np.empty(sel.size, np.int64)
        t = 0
        for q in range(sel.size):
            if rep[q] == q:
                first[t], at[q] = q, t
                t += 1
        u_own, u_pow, u_sel = slot_own[first], power[first], sel[first]
        _polish(u_own, u_pow, levels_all, table, u_sel, weight_all, need_all, counted_all, tie_ue, tie_prb, tie_level,
                sweeps, free_all, ru_power, top_all, steps_all, ues_all, joint_all, True)
        for q in range(sel.size):
            slot_own[q], power[q] = u_own[at[rep[q]]], u_pow[at[rep[q]]]
    owner = np.full((sel.size, n_prb), -1, np.int64)
    for i in range(sel.size):
        for k in range(n_prb):
            if slot_own[i, k] >= 0:
                owner[i, k] = ues_all[sel[i], slot_own[i, k]]
    return owner, power


def decode_rows(actions, rows, sel, state, passes: int, tie_rel: float, sweeps: int):
    """``decoder.decode_rows`` (actions (B, action_dim) float64; same results): owners and powers (N, K)."""
    return _decode(np.ascontiguousarray(actions, dtype=np.float64), rows.ues, rows.ru_power, rows.levels, rows.top,
                   rows.weight, rows.cap, rows.need, rows.counted, rows.table, np.ascontiguousarray(sel, dtype=np.int64),
                   np.ascontiguousarray(state, dtype=np.int64), rows.tie_ue, rows.tie_prb, rows.tie_level,
                   passes, float(tie_rel), int(sweeps), rows.free_power, rows.steps, rows.joint)


@njit(**_JIT)
def _context_rows(serving_ru, n_rus, rates, order0, weight, cap, need, counted, levels, top, ru_power, steps, free,
                  order, max_ues):
    """``decoder.DecodeContext``'s rows, packed as ``decoder.DecodeRows`` holds them (one row per RU with
    UEs, RUs ascending; each row's UEs ascending): rates (U, K, L) at the problem's levels, order0 (L,)
    the ascending order of RU 0's levels (every RU's table is taken in it, as the numpy code does);
    the per-UE arrays (U,); levels, steps and order (R, L) ascending; top, ru_power (R,). Returns
    (rus, ues, table (N, W, L, K) with W the most UEs of a row, weight, cap, need, counted, levels,
    top, steps, free, ru_power, tie_ue, tie_prb, tie_level)."""
    n_ues, n_prb, n_lvl = rates.shape
    per_ru = np.zeros(n_rus, np.int64)
    for u in range(n_ues):
        per_ru[serving_ru[u]] += 1
    n_rows, width = 0, 0
    for r in range(n_rus):
        if per_ru[r] > 0:
            n_rows += 1
            width = max(width, per_ru[r])
    rus = np.empty(n_rows, np.int64)
    row_of = np.full(n_rus, -1, np.int64)
    i = 0
    for r in range(n_rus):
        if per_ru[r] > 0:
            rus[i], row_of[r] = r, i
            i += 1
    ues = np.full((n_rows, max_ues), -1, np.int64)
    table = np.zeros((n_rows, width, n_lvl, n_prb))
    w_o, cap_o, need_o, counted_o = (np.zeros((n_rows, max_ues)), np.zeros((n_rows, max_ues)),
                                     np.zeros((n_rows, max_ues)), np.zeros((n_rows, max_ues)))
    tie_ue = np.zeros((n_rows, max_ues), np.int64)
    filled = np.zeros(n_rows, np.int64)
    for u in range(n_ues):
        r = serving_ru[u]
        i = row_of[r]
        j = filled[i]
        filled[i] += 1
        ues[i, j], w_o[i, j], cap_o[i, j], need_o[i, j], counted_o[i, j] = u, weight[u], cap[u], need[u], counted[u]
        tie_ue[i, j] = n_lvl * (u + n_ues * n_prb * r)
        for lv in range(n_lvl):
            src = order0[lv]
            for k in range(n_prb):
                table[i, j, lv, k] = rates[u, k, src]
    lev_o, steps_o, tie_level = np.empty((n_rows, n_lvl)), np.empty((n_rows, n_lvl), np.int64), np.empty((n_rows, n_lvl), np.int64)
    top_o, ru_p, free_o, tie_prb = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows, np.bool_), np.empty(n_rows, np.int64)
    for i in range(n_rows):
        r = rus[i]
        lev_o[i], steps_o[i], tie_level[i] = levels[r], steps[r], order[r]
        top_o[i], ru_p[i], free_o[i], tie_prb[i] = top[r], ru_power[r], free, n_lvl * n_ues
    return (rus, ues, table, w_o, cap_o, need_o, counted_o, lev_o, top_o, steps_o, free_o, ru_p, tie_ue, tie_prb,
            tie_level)
