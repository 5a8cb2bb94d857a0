"""The one decoder: any action vector of ``encoding`` -> a feasible ``Allocation``.

``decode_action`` takes any vector (NaN, negative, above 1, all zero) to an ``Allocation`` that
passes ``check_allocation``. Per RU:

1. shares are cleaned (NaN -> 0, clipped to [0, 1]) and scaled down to sum to at most 1;
2. PRB counts n_u by largest remainder of K * share (the total is round(K * sum of shares)); a UE
   with PRBs but no power share gets none;
3. which PRBs: the assignment of UE slots to PRBs (``scipy.optimize.linear_sum_assignment``)
   maximising sum_u w_u min(r[u,k,l_u], cap_u / n_u), r the snapshot problem's per-PRB rate table
   at the power level l_u nearest the UE's mean power per PRB, cap_u the rate beyond which more is
   worth nothing (``encoding.rate_cap_bps``);
4. UE u's power, its share of P_r, is spent over its PRBs: they start at the lowest power level
   and take level upgrades in order of rate gained per watt while the UE's power lasts (a UE whose
   mean power per PRB is below the lowest level spreads it equally), at most
   ``spec.max_prb_power_factor`` P_r / K per PRB;
5. a second assignment pass ranks PRBs at the RU's price of power mu (the median over its UEs of
   w_u times the rate per watt of the first upgrade each could not afford): a PRB is worth
   w_u max_l (r[u,k,l] - mu p_l); then step 4 again;
6. ``simcore.contracts.repair_allocation`` (the one repair) enforces per-slice power caps where the
   scenario sets them (the RU budget holds by construction); every UE stays with its serving RU.

``decode_actions`` decodes many states at once (the vector env): the work is done on rows (one
per state and RU), all together with numpy except one ``linear_sum_assignment`` per row and pass.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from simcore.contracts import Allocation, Observation, repair_allocation
from simcore.snapshot import SnapshotProblem

from .encoding import EncodingMismatch, EncodingSpec, rate_cap_bps, snapshot_problem

#: Assignment passes (the second ranks PRBs at the RU's price of power found by the first).
PASSES = 2


def clean_shares(x: np.ndarray) -> np.ndarray:
    """NaN -> 0, then clip to [0, 1] (so -inf -> 0, +inf -> 1); a float64 copy."""
    x = np.asarray(x, dtype=float)
    return np.clip(np.where(x == x, x, 0.0), 0.0, 1.0)


class DecodeContext:
    """What the decoder needs of one observation besides the action (reusable across actions).

    Per RU r with UEs: ``rows[r]`` = (UE indices padded to ``max_ues`` with -1, their rate table
    (max_ues, K, L) at the ascending power levels, weights, rate caps; padding rows are zero).
    """

    def __init__(self, obs: Observation, spec: EncodingSpec, objective: str = "served",
                 problem: SnapshotProblem | None = None):
        spec.check(obs)
        self.obs, self.spec, self.objective = obs, spec, objective
        self.problem = problem if problem is not None else snapshot_problem(obs, objective)
        order = np.argsort(self.problem.levels_w, axis=1)
        self.levels = np.take_along_axis(self.problem.levels_w, order, axis=1)  # (R, L) ascending
        rates = self.problem.single_ru_rate_table()[:, :, order[0]]  # (U, K, L) at those levels
        self.top = np.minimum(self.levels[:, -1], spec.max_prb_power_factor * obs.ru_max_power_w / obs.n_prbs)
        cap, weight, m = rate_cap_bps(obs, objective), obs.ue_weight, spec.max_ues
        self.rows = {}
        for r in range(obs.n_rus):
            ues = np.flatnonzero(obs.serving_ru == r)
            if ues.size:
                pad = np.full(m, -1, dtype=np.int64)
                pad[:ues.size] = ues
                table = np.zeros((m, *rates.shape[1:]))
                table[:ues.size] = rates[ues]
                self.rows[r] = (pad, table, np.r_[weight[ues], np.zeros(m - ues.size)],
                                np.r_[cap[ues], np.zeros(m - ues.size)])
        self.need_repair = bool(np.isfinite(obs.slice_power_cap_w).any())


def decode_action(action, obs: Observation, spec: EncodingSpec, objective: str = "served",
                  context: DecodeContext | None = None) -> Allocation:
    """Turn any action vector into a feasible ``Allocation`` (see the module docstring).

    ``context`` (a ``DecodeContext`` of ``obs``) may be passed in when the caller decodes several
    actions for the same observation.
    """
    ctx = context if context is not None else DecodeContext(obs, spec, objective)
    return decode_actions(np.asarray(action, dtype=float).reshape(1, -1), [ctx])[0]


def decode_actions(actions: np.ndarray, contexts: list[DecodeContext]) -> list[Allocation]:
    """``decode_action`` of many states at once: actions (B, action_dim), one context per state.

    The work is done on *rows* (one per state and RU with UEs), all at once with numpy except the
    PRB assignment, one ``linear_sum_assignment`` per row and pass.
    """
    spec = contexts[0].spec
    a = np.asarray(actions, dtype=float)
    if a.ndim != 2 or a.shape[1] != spec.action_dim:
        raise EncodingMismatch(f"actions of shape {a.shape}, the encoding expects (B, {spec.action_dim})")
    n_prb = {c.obs.n_prbs for c in contexts}
    if len(n_prb) > 1:  # rows must share K: decode each group of equal K apart
        out = [None] * len(contexts)
        for k in n_prb:
            idx = [i for i, c in enumerate(contexts) if c.obs.n_prbs == k]
            for i, alloc in zip(idx, decode_actions(a[idx], [contexts[i] for i in idx])):
                out[i] = alloc
        return out
    n_prb = n_prb.pop()
    m = spec.max_ues
    shares = np.concatenate([clean_shares(a).reshape(-1, 2, m), np.zeros((a.shape[0], 2, 1))], axis=2)
    owners = [np.full((c.obs.n_rus, n_prb), -1, dtype=np.int64) for c in contexts]
    powers = [np.zeros((c.obs.n_rus, n_prb)) for c in contexts]
    rows = [(b, r) for b, c in enumerate(contexts) for r in c.rows]
    if rows:
        ues = np.stack([contexts[b].rows[r][0] for b, r in rows])  # (N, M), -1 padding
        sh = shares[np.array([b for b, _ in rows])[:, None], :, np.where(ues >= 0, ues, m)]  # (N, M, 2)
        s, p = sh[..., 0], sh[..., 1]
        s = s / np.maximum(s.sum(axis=1, keepdims=True), 1.0)
        p = p / np.maximum(p.sum(axis=1, keepdims=True), 1.0)
        counts = _largest_remainder_rows(s, n_prb)
        counts[p <= 0] = 0
        ru_power = np.array([contexts[b].obs.ru_max_power_w[r] for b, r in rows])
        levels = np.stack([contexts[b].levels[r] for b, r in rows])  # (N, L)
        top = np.array([contexts[b].top[r] for b, r in rows])
        table = np.stack([contexts[b].rows[r][1] for b, r in rows])  # (N, M, K, L)
        w = np.stack([contexts[b].rows[r][2] for b, r in rows])
        cap = np.stack([contexts[b].rows[r][3] for b, r in rows])
        cols, who, p_w, row_of = _assign_rows(counts, ru_power[:, None] * p, levels, top, table, w, cap)
        for i, (b, r) in enumerate(rows):
            sel = row_of == i
            owners[b][r, cols[sel]] = ues[i, who[sel]]
            powers[b][r, cols[sel]] = p_w[sel]
    out = []
    for c, owner, power in zip(contexts, owners, powers):
        if c.need_repair:
            out.append(repair_allocation(c.obs.serving_ru, owner, power, c.obs))
        else:
            out.append(Allocation(c.obs.serving_ru.astype(np.int64), owner, power))
    return out


def _largest_remainder_rows(shares: np.ndarray, total: int) -> np.ndarray:
    """``largest_remainder`` of each row of ``shares`` (N, M)."""
    want = total * shares
    n = np.floor(want + 1e-9).astype(np.int64)
    extra = np.minimum(np.round(want.sum(axis=1)), total).astype(np.int64) - n.sum(axis=1)
    order = np.argsort(n - want, axis=1, kind="stable")
    bump = np.arange(n.shape[1])[None, :] < extra[:, None]
    np.put_along_axis(n, order, np.take_along_axis(n, order, axis=1) + bump, axis=1)
    return n


def _assign_rows(counts, budget, levels, top, table, w, cap):
    """PRBs and powers of each row (state, RU) from its UEs' PRB ``counts`` and power ``budget``
    (W), both (N, M). Returns, over all assigned PRBs: PRB, owner (index in the row), power, row.

    Pass 1 ranks PRBs for each UE by its (capped, weighted) rate at the power level nearest its
    mean power per PRB; each UE's power is then spent over its PRBs (``_split_power``), which prices
    each UE's power. Pass 2 ranks PRBs again at the row's price of power (the median of its UEs'
    positive weighted prices, where any): a PRB is worth w_u max_l (r[u,k,l] - mu p_l).
    """
    n_rows, m = counts.shape
    per = np.maximum(counts, 1)
    mean_w = np.minimum(budget / per, top[:, None])
    capped = np.minimum(table, (cap / per)[:, :, None, None])  # (N, M, K, L)
    mids = np.sqrt(levels[:, :-1] * levels[:, 1:])  # (N, L-1) geometric midpoints
    near = (mids[:, None, :] < mean_w[:, :, None]).sum(axis=2)
    value = w[:, :, None] * capped[np.arange(n_rows)[:, None], np.arange(m)[None, :], :, near]
    slots = [np.repeat(np.arange(m), c) for c in counts]
    redo = np.ones(n_rows, dtype=bool)
    cols, who = [None] * n_rows, [None] * n_rows
    for it in range(PASSES):
        for i in np.flatnonzero(redo):
            if slots[i].size:
                rr, cc = linear_sum_assignment(value[i][slots[i]], maximize=True)
                cols[i], who[i] = cc, slots[i][rr]
            else:
                cols[i] = who[i] = np.zeros(0, dtype=np.int64)
        row_of = np.repeat(np.arange(n_rows), [c.size for c in cols])
        col, own = np.concatenate(cols), np.concatenate(who)
        p_w, price = _split_power(capped[row_of, own, col], levels[row_of], top[row_of], row_of * m + own,
                                  budget.ravel(), mean_w.ravel(), counts.ravel(), np.repeat(levels[:, 0], m))
        if it == PASSES - 1:
            break
        wp = np.where(price.reshape(n_rows, m) > 0, w * price.reshape(n_rows, m), np.nan)
        n_pos = (wp > 0).sum(axis=1)
        redo = n_pos > 0
        if not redo.any():
            break
        srt = np.sort(wp, axis=1)  # NaN last
        lo, hi = np.maximum((n_pos - 1) // 2, 0), n_pos // 2
        mu = 0.5 * (srt[np.arange(n_rows), lo] + srt[np.arange(n_rows), np.minimum(hi, m - 1)])  # the median
        mu = np.where(redo, mu, 0.0)
        value = (w[:, :, None, None] * capped - mu[:, None, None, None] * levels[:, None, None, :]).max(axis=3)
    return col, own, p_w, row_of


def _split_power(rate, levels, top, who, budget, mean_w, counts, level0):
    """Per-PRB power of the PRBs of many UEs, each within its budget; and each UE's price.

    rate, levels (N, L): rate of PRB i's owner at each (ascending) power level and those levels;
    top (N,) the PRB's power ceiling; who (N,) its owner, an index into the per-UE arrays budget,
    mean_w (mean power per PRB), counts and level0 (lowest level). A UE whose mean power per PRB is
    below the lowest level spreads it equally; otherwise its PRBs start at the lowest level and take
    level upgrades in order of rate gained per watt while its budget lasts (greedy multiple-choice
    knapsack over each PRB's concave rate-power curve). A UE's price is the rate per watt of its
    first upgrade not taken (0 if it took all).
    """
    n_lvl = levels.shape[1]
    out = mean_w[who]
    price = np.zeros(budget.size)
    idx = np.flatnonzero(mean_w[who] >= levels[:, 0])
    if n_lvl < 2 or idx.size == 0:
        return out, price
    lv = levels[idx]
    dp = np.diff(lv, axis=1)  # (m, L-1)
    gain = np.minimum.accumulate(np.diff(rate[idx], axis=1) / dp, axis=1)  # concave hull
    gain[lv[:, 1:] > top[idx, None] * (1 + 1e-12)] = -np.inf
    flat = gain.ravel()
    step_owner = np.repeat(who[idx], n_lvl - 1)
    sort = np.lexsort((-flat, step_owner))  # by owner, then the best gain first (stable: ladder order)
    cost = dp.ravel()[sort]
    owner_sorted = step_owner[sort]
    cum = np.cumsum(cost)
    first = np.searchsorted(owner_sorted, owner_sorted, side="left")
    used = cum - (cum[first] - cost[first])  # cost of this UE's upgrades so far, this one included
    spare = budget - counts * level0
    g = flat[sort]
    take = (used <= spare[owner_sorted] * (1 + 1e-12)) & (g > 0)
    steps = np.bincount(sort[take] // (n_lvl - 1), minlength=idx.size)
    out[idx] = lv[np.arange(idx.size), steps]
    left = np.flatnonzero(~take & (g > -np.inf))
    if left.size:
        o = owner_sorted[left]
        firsts = np.r_[True, o[1:] != o[:-1]]
        price[o[firsts]] = np.maximum(g[left[firsts]], 0.0)
    return out, price
