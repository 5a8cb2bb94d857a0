"""The one decoder: any action vector of ``encoding`` -> a feasible ``Allocation``.

``decode_action`` takes any vector (NaN, negative, above 1, all zero) to an ``Allocation`` that
passes ``check_allocation``. Per RU:

1. shares are cleaned (NaN -> 0, clipped to [0, 1]) and scaled down to sum to at most 1;
2. PRB counts n_u by largest remainder of K * share (the total is round(K * sum of shares)); a UE
   with PRBs but no power share gets none;
3. which PRBs: the assignment of UE slots to PRBs (``scipy.optimize.linear_sum_assignment``)
   maximising sum_u w_u min(r[u,k,l_u], cap_u / n_u), r the snapshot problem's per-PRB rate table
   at the power level l_u nearest the UE's mean power per PRB, cap_u the rate beyond which more is
   worth nothing (``encoding.rate_cap_bps``); between PRBs of equal value the snapshot problem's
   tie cost (its tier 4, ``SnapshotProblem.choice_tie_cost``) decides, as it does for the optimum;
4. UE u's power, its share of P_r, is spent over its PRBs: they start at the lowest power level
   and take level upgrades in order of rate gained per watt while the UE's power lasts (a UE whose
   mean power per PRB is below the lowest level spreads it equally), at most
   ``spec.max_prb_power_factor`` P_r / K per PRB;
5. a second assignment pass ranks PRBs at the RU's price of power mu (the median over its UEs of
   w_u times the rate per watt of the first upgrade each could not afford): a PRB is worth
   w_u max_l (r[u,k,l] - mu p_l); then step 4 again;
6. the snapshot problem's own order (``SnapshotProblem``: shortfall V, objective F, power P, tie
   cost T) polishes each RU's result (``decoder_fast.polish_rows``, one compiled implementation that
   the numpy path calls too). First, in a one-RU cell without slice caps, a PRB below the lowest
   level is lifted to it while the RU's power lasts. Then each sweep, while any of its parts changes
   something (at most 2 x ``SWEEPS``): moves of one PRB to an idle PRB or exchanges of two PRBs' owners (each UE keeps
   its PRB count and levels); one joint placement of all the RU's owned PRBs (an assignment whose
   value of a PRB to its UE is, the UE's other PRBs held, its shortfall, then its counted objective,
   then its power steps, each PRB at its level or, in a one-RU cell without slice caps, a lower one),
   or else one assignment of least tie cost that keeps every UE's rate up to its share of the rate
   it has to spare; then each owned PRB handed to another UE of the RU (its level kept) or left idle
   (when nothing is lost without it); then, in a one-RU cell without slice caps, PRB levels move
   up or down within the RU budget, and each UE with PRBs in turn takes its PRBs and levels again among its
   own and the idle PRBs (``decoder_fast._refill``: an exact knapsack over power steps, the least
   shortfall, then the most counted objective, then the fewest steps for that UE, the others held),
   so a UE can gain an idle PRB or trade its PRBs for fewer or lower ones where each single removal
   would lose rate (on validation paper-cell states it took the served agreement checkpoint from 33
   to 39 of 40 states decoded to the optimum's very allocation). Last, where some UE has rate past what it can use (max(need,
   counted rate): never under ``rate``), the least-tie-cost covers (``decoder_fast._tie_place``):
   the RU's owned PRBs placed again, each with its UE and level, for the least tie cost among the
   placements that keep every UE's rate up to that bound (its rate where below), so a set of PRBs
   that reaches a UE's cap only together is chosen as the optimum's tier 4 chooses it (Lagrangian
   prices on the UEs' bounds, each round one assignment repaired into a cover and improved by single
   moves; exact when the prices' dual bound meets the best cover). Each change is
   taken only when the RU's (V, F, P, T) improves in that order. Steps 3-5 rank PRBs by per-PRB
   values (a UE's cap split evenly over its PRBs), which cannot see that two PRBs together reach a
   cap, nor the shortfall; without this step the optimum's own served labels came back at R^2 0.82.
   With it, a policy's shares need only be near the optimum's: on validation paper-cell states the
   joint placement and hand-overs took Diffusion-QL's pooled cosine with the optimum from 0.918 to
   0.964 (served) and 0.946 to 0.970 (rate); the covers took the optimum's own served round trip
   from 31 to 37 of 40 validation states decoded to its very allocation (cosine 0.976 -> 0.991);
7. ``simcore.contracts.repair_allocation`` (the one repair) enforces per-slice power caps where the
   scenario sets them (the RU budget holds by construction); every UE stays with its serving RU.

``decode_actions`` decodes many states at once (the vector env): the work is done on rows (one
per state and RU), all together with numpy except one ``linear_sum_assignment`` per row and pass.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.optimize import linear_sum_assignment

from simcore.contracts import Allocation, Observation, repair_allocation
from simcore.snapshot import SnapshotProblem, tie_cost

from . import decoder_fast
from .encoding import EncodingMismatch, EncodingSpec, need_bps, rate_cap_bps, snapshot_problem

#: Assignment passes (the second ranks PRBs at the RU's price of power found by the first).
PASSES = 2
#: Sweeps of step 6 (moves of PRBs between a row's UEs by the problem's order) at most.
SWEEPS = 4
#: Weight of the problem's tie cost (scaled to (0, 1]) in the assignment, relative to the row's
#: largest value: it only decides between PRBs whose values are equal (a UE at its rate cap, a
#: saturated spectral efficiency), so the choice there is the optimum's rather than arbitrary.
TIE_BREAK_REL = 1e-9


def clean_shares(x: np.ndarray) -> np.ndarray:
    """NaN -> 0, then clip to [0, 1] (so -inf -> 0, +inf -> 1); a float64 copy."""
    x = np.asarray(x, dtype=float)
    return np.clip(np.where(x == x, x, 0.0), 0.0, 1.0)


class DecodeContext:
    """What the decoder needs of one observation besides the action (reusable across actions).

    Per RU r with UEs: ``rows[r]`` = (UE indices padded to ``max_ues`` with -1, their rate table
    (n_r, L, K) at the ascending power levels (n_r its UEs; no padding rows: the decoder reads the
    table only for UEs with PRBs), weights, rate caps, rate needs and the rates that count in the
    objective (inf under rate), padded with zeros).
    ``tie_keys[r]`` = what the tie cost of a choice needs (``DecodeRows.tie_index``).
    """

    def __init__(self, obs: Observation, spec: EncodingSpec, objective: str = "served",
                 problem: SnapshotProblem | None = None, joint: bool = True):
        spec.check(obs)
        self.obs, self.spec, self.objective = obs, spec, objective
        #: step 6 with its joint placement and hand-overs (False: each UE keeps the PRB count of step 2)
        self.joint = bool(joint)
        if problem is not None:
            self.problem = problem
        # what depends on the RUs' power ladder only (the same at every decision of a run), from the
        # snapshot problem once per ladder: the problem itself is built only when read (``problem``)
        order, self.levels, self.top, self.steps, levels_w = _ladder(obs, spec, lambda: self.problem, problem is None)
        if problem is not None and problem.objective == objective:  # the same need and counted rate
            need, counted = problem.need_bps, problem.cap_bps
        else:  # what the problem under ``objective`` holds
            need = need_bps(obs, objective)
            counted = obs.buffer_bits / (obs.interval_tti * obs.link.tti_s) if objective == "served" else np.full(obs.n_ues, np.inf)
        cap = rate_cap_bps(obs, objective, need)
        self.need_repair = bool(np.isfinite(obs.slice_power_cap_w).any())
        #: step 6 may change PRB power levels: one RU (no interference the rate table leaves out), no slice cap
        self.free_power = obs.n_rus == 1 and not self.need_repair
        # the rows, packed (one compiled call: ``DecodeRows.of([self])`` would give the same arrays)
        f64 = np.float64
        parts = decoder_fast._context_rows(  # the rate table (U, K, L) at the problem's levels, then taken ascending
            np.ascontiguousarray(obs.serving_ru, dtype=np.int64), obs.n_rus, _rate_table(obs, levels_w, lambda: self.problem),
            np.ascontiguousarray(order[0]), np.asarray(obs.ue_weight, f64), np.asarray(cap, f64),
            np.asarray(need, f64), np.asarray(counted, f64), self.levels, np.asarray(self.top, f64),
            np.asarray(obs.ru_max_power_w, f64), np.ascontiguousarray(self.steps, dtype=np.int64), self.free_power,
            np.ascontiguousarray(order, dtype=np.int64), spec.max_ues)
        rus, rows = parts[0], DecodeRows.wrap(spec, parts[1:])
        rows.joint[:] = self.joint
        self.rows, self.tie_keys = {}, {}
        for i, r in enumerate(rus.tolist()):
            n_r = int(np.count_nonzero(rows.ues[i] >= 0))
            self.rows[r] = (rows.ues[i], rows.table[i, :n_r], rows.weight[i], rows.cap[i], rows.need[i], rows.counted[i])
            self.tie_keys[r] = (rows.tie_ue[i], int(rows.tie_prb[i]), rows.tie_level[i])
        #: its own rows packed (``DecodeRows.of``): the rows, each row's context (0) and RU
        self.packed = (rows, np.zeros(rus.size, dtype=np.int64), rus)

    @functools.cached_property
    def problem(self) -> SnapshotProblem:
        """The observation's snapshot problem under the context's objective (built on first use: a
        single candidate's decode never reads it)."""
        return snapshot_problem(self.obs, self.objective)


#: per power ladder: (order, ascending levels, top, ascending tier-3 steps, levels), keyed by what they depend on
_LADDERS: dict = {}


def _ladder(obs: Observation, spec: EncodingSpec, problem, memo: bool = True) -> tuple:
    """``DecodeContext``'s ladder constants of ``obs`` (``problem()`` gives its snapshot problem):
    the levels' ascending order (R, L), the levels, each RU's per-PRB power ceiling ``top`` (R,),
    the tier-3 steps in that order, and the problem's levels (R, L). With ``memo`` (the problem is
    ``encoding.snapshot_problem``'s, whose levels follow from the RUs' powers and K) memoised on those."""
    key = (obs.ru_max_power_w.tobytes(), obs.n_prbs, spec.max_prb_power_factor)
    hit = _LADDERS.get(key) if memo else None
    if hit is None:
        prob = problem()
        order = np.argsort(prob.levels_w, axis=1)
        rr = np.arange(obs.n_rus)[:, None]
        levels = prob.levels_w[rr, order]  # (R, L) ascending
        top = np.minimum(levels[:, -1], spec.max_prb_power_factor * obs.ru_max_power_w / obs.n_prbs)
        hit = (order, levels, top, prob.level_steps[rr, order], prob.levels_w)  # (shared: read, never written)
        if memo:
            if len(_LADDERS) >= 64:
                _LADDERS.clear()
            _LADDERS[key] = hit
    return hit


def _rate_table(obs: Observation, levels_w: np.ndarray, problem) -> np.ndarray:
    """(U, K, L) the snapshot problem's ``single_ru_rate_table`` (the same values): for a one-RU Shannon
    link without finite-blocklength slices, the link's compiled path (``LinkModel.one_ru_rates_bps``,
    as ``LinkModel.estimated_prb_rate_bps`` uses it) at every level, else ``problem().single_ru_rate_table()``."""
    link, gain = obs.link, obs.gain
    if not (link.one_ru_shannon(gain) and gain.flags.c_contiguous):
        return np.ascontiguousarray(problem().single_ru_rate_table(), dtype=np.float64)
    n_ue, _, n_prb = gain.shape
    rate = np.empty((levels_w.shape[1], n_ue, n_prb))
    link.one_ru_rates_bps(gain.reshape(n_ue, n_prb), levels_w[0], np.empty((n_ue, n_prb)), rate)
    return rate.transpose(1, 2, 0)


class DecodeRows:
    """The decoder's constants of many rows (one per state and RU with UEs, all with K PRBs), stacked.

    Row i: ``ues`` (M,) UE indices (-1 padding), ``table`` (W, L, K) their rate tables (W >= its UEs), ``weight``,
    ``cap``, ``need`` and ``counted`` (M,), the RU's ascending ``levels`` (L,), PRB power ceiling ``top`` and power budget
    ``ru_power``, and the parts of its choices' tie-cost index (``tie_index``). ``put`` copies a
    context's rows in (a pool fills its rows as its states are first
    used, and with ``adopt`` points the context at them, so the tables are held once).
    """

    def __init__(self, n_rows: int, spec: EncodingSpec, n_prbs: int, n_levels: int, width: int | None = None):
        m = spec.max_ues
        self.spec, self.n_prbs = spec, n_prbs
        self.ues = np.full((n_rows, m), -1, dtype=np.int64)
        self.table = np.zeros((n_rows, m if width is None else width, n_levels, n_prbs))  # width: UEs a row holds at most
        self.weight = np.zeros((n_rows, m))
        self.cap = np.zeros((n_rows, m))
        self.need = np.zeros((n_rows, m))
        self.counted = np.zeros((n_rows, m))
        self.levels = np.ones((n_rows, n_levels))
        self.top = np.zeros(n_rows)
        self.steps = np.ones((n_rows, n_levels), dtype=np.int64)
        self.free_power = np.zeros(n_rows, dtype=bool)
        self.joint = np.ones(n_rows, dtype=bool)
        self.ru_power = np.zeros(n_rows)
        self.tie_ue = np.zeros((n_rows, m), dtype=np.int64)
        self.tie_prb = np.zeros(n_rows, dtype=np.int64)
        self.tie_level = np.zeros((n_rows, n_levels), dtype=np.int64)

    @staticmethod
    def wrap(spec: EncodingSpec, arrays: tuple) -> "DecodeRows":
        """Rows from their arrays (ues, table, weight, cap, need, counted, levels, top, steps, free_power,
        ru_power, tie_ue, tie_prb, tie_level: the attributes' order and shapes), not copied."""
        rows = DecodeRows.__new__(DecodeRows)
        rows.spec, rows.n_prbs = spec, arrays[1].shape[3]
        (rows.ues, rows.table, rows.weight, rows.cap, rows.need, rows.counted, rows.levels, rows.top, rows.steps,
         rows.free_power, rows.ru_power, rows.tie_ue, rows.tie_prb, rows.tie_level) = arrays
        rows.joint = np.ones(rows.ues.shape[0], dtype=bool)
        return rows

    def tie_index(self, row: np.ndarray, own: np.ndarray, level: np.ndarray, prb: np.ndarray) -> np.ndarray:
        """The snapshot problem's choice index of UE slot ``own`` of rows ``row`` on PRB ``prb`` at
        ascending level ``level`` (broadcastable int arrays; ``tie_cost`` of it is the tier-4 cost)."""
        return self.tie_level[row, level] + self.tie_ue[row, own] + self.tie_prb[row] * prb

    def put(self, first: int, ctx: DecodeContext, adopt: bool = False) -> list[int]:
        """Copy ``ctx``'s rows in from row ``first`` on (in RU order); returns their RUs."""
        rus = sorted(ctx.rows)
        for i, r in enumerate(rus, start=first):
            ues, table, w, cap, need, counted = ctx.rows[r]
            self.ues[i], self.table[i, :table.shape[0]], self.weight[i], self.cap[i] = ues, table, w, cap
            self.need[i], self.counted[i] = need, counted
            self.levels[i], self.top[i], self.ru_power[i] = ctx.levels[r], ctx.top[r], ctx.obs.ru_max_power_w[r]
            self.steps[i], self.free_power[i], self.joint[i] = ctx.steps[r], ctx.free_power, ctx.joint
            self.tie_ue[i], self.tie_prb[i], self.tie_level[i] = ctx.tie_keys[r]
            if adopt:
                ctx.rows[r] = (self.ues[i], self.table[i], self.weight[i], self.cap[i], self.need[i], self.counted[i])
        return rus

    @staticmethod
    def of(contexts: list[DecodeContext]) -> tuple["DecodeRows", np.ndarray, np.ndarray]:
        """Rows of ``contexts`` (all with the same K): the rows, and each row's context and RU."""
        c0 = contexts[0]
        width = max(v[1].shape[0] for c in contexts for v in c.rows.values())
        rows = DecodeRows(sum(len(c.rows) for c in contexts), c0.spec, c0.obs.n_prbs, c0.levels.shape[1], width)
        state, ru = [], []
        for b, c in enumerate(contexts):
            rus = rows.put(len(ru), c)
            state += [b] * len(rus)
            ru += rus
        return rows, np.array(state, dtype=np.int64), np.array(ru, dtype=np.int64)


def decode_action(action, obs: Observation, spec: EncodingSpec, objective: str = "served",
                  context: DecodeContext | None = None, fast: bool = True, joint: bool = True) -> Allocation:
    """Turn any action vector into a feasible ``Allocation`` (see the module docstring).

    ``context`` (a ``DecodeContext`` of ``obs``) may be passed in when the caller decodes several
    actions for the same observation; ``fast`` as in ``decode_rows``; ``joint`` as in ``DecodeContext``.
    """
    ctx = context if context is not None else DecodeContext(obs, spec, objective, joint=joint)
    owner, power = decode_candidates(np.asarray(action, dtype=float).reshape(1, -1), ctx, fast)
    return finish(ctx, owner[0], power[0])


def decode_candidates(actions: np.ndarray, ctx: DecodeContext, fast: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-6 of C actions (C, action_dim) for the one observation of ``ctx``: PRB owners and
    powers (C, R, K), before ``finish`` (what ``decode_actions`` with C copies of ``ctx`` gives,
    its rows packed once: one compiled call for every candidate and RU)."""
    a = check_actions(actions, ctx.spec)
    n_c, obs = a.shape[0], ctx.obs
    owner = np.full((n_c, obs.n_rus, obs.n_prbs), -1, dtype=np.int64)
    power = np.zeros((n_c, obs.n_rus, obs.n_prbs))
    if ctx.rows:
        rows, _, ru = ctx.packed
        n = ru.size
        j = np.arange(n_c * n)  # row j: the context's row j % n for candidate j // n
        o, p = decode_rows(a, rows, j % n, j // n, fast)
        owner[:, ru] = o.reshape(n_c, n, -1)
        power[:, ru] = p.reshape(n_c, n, -1)
    return owner, power


def decode_actions(actions: np.ndarray, contexts: list[DecodeContext], fast: bool = True) -> list[Allocation]:
    """``decode_action`` of many states at once: actions (B, action_dim), one context per state.

    The work is done on *rows* (one per state and RU with UEs), all at once except the PRB
    assignment, one ``linear_sum_assignment`` per row and pass.
    """
    spec = contexts[0].spec
    a = check_actions(actions, spec)
    n_prb = {c.obs.n_prbs for c in contexts}
    if len(n_prb) > 1:  # rows must share K: decode each group of equal K apart
        out = [None] * len(contexts)
        for k in n_prb:
            idx = [i for i, c in enumerate(contexts) if c.obs.n_prbs == k]
            for i, alloc in zip(idx, decode_actions(a[idx], [contexts[i] for i in idx], fast)):
                out[i] = alloc
        return out
    n_prb = n_prb.pop()
    owners = [np.full((c.obs.n_rus, n_prb), -1, dtype=np.int64) for c in contexts]
    powers = [np.zeros((c.obs.n_rus, n_prb)) for c in contexts]
    if any(c.rows for c in contexts):
        rows, state, ru = DecodeRows.of(contexts)
        owner, power = decode_rows(a, rows, np.arange(len(state)), state, fast)
        for i, (b, r) in enumerate(zip(state, ru)):
            owners[b][r], powers[b][r] = owner[i], power[i]
    return [finish(c, owner, power) for c, owner, power in zip(contexts, owners, powers)]


def check_actions(actions, spec: EncodingSpec) -> np.ndarray:
    """Actions as a float64 (B, action_dim) array; ``EncodingMismatch`` if the shape does not fit."""
    a = np.asarray(actions, dtype=float)
    if a.ndim != 2 or a.shape[1] != spec.action_dim:
        raise EncodingMismatch(f"actions of shape {a.shape}, the encoding expects (B, {spec.action_dim})")
    return a


def finish(ctx: DecodeContext, owner: np.ndarray, power: np.ndarray) -> Allocation:
    """The allocation of decoded owners and powers (R, K): step 7 of the module docstring."""
    if ctx.need_repair:
        return repair_allocation(ctx.obs.serving_ru, owner, power, ctx.obs)
    return Allocation(ctx.obs.serving_ru.astype(np.int64), owner, power)


def decode_rows(actions: np.ndarray, rows: DecodeRows, sel: np.ndarray, state: np.ndarray,
                fast: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-6 on rows ``sel`` of ``rows``, row j taking the action of state ``state[j]``:
    actions (B, action_dim) float64. Returns the rows' PRB owners (UE index, -1 idle) and powers, (N, K).
    ``fast``: steps 1-6 in one compiled call (``decoder_fast.decode_rows``, identical output); else
    numpy, the reference."""
    if fast:
        return decoder_fast.decode_rows(actions, rows, sel, state, PASSES, TIE_BREAK_REL, SWEEPS)
    m, n_prb = rows.spec.max_ues, rows.n_prbs
    shares = np.concatenate([clean_shares(actions).reshape(-1, 2, m), np.zeros((actions.shape[0], 2, 1))], axis=2)
    ues = rows.ues[sel]  # (N, M), -1 padding
    sh = shares[state[:, None], :, np.where(ues >= 0, ues, m)]  # (N, M, 2)
    s, p = sh[..., 0], sh[..., 1]
    s = s / np.maximum(s.sum(axis=1, keepdims=True), 1.0)
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1.0)
    counts = _largest_remainder_rows(s, n_prb)
    counts[p <= 0] = 0
    n = sel.size
    owner = np.full((n, n_prb), -1, dtype=np.int64)
    power = np.zeros((n, n_prb))
    row_of, own, col, p_w = _assign_rows(counts, rows.ru_power[sel, None] * p, rows, sel)
    slot_own = np.full((n, n_prb), -1, dtype=np.int64)
    slot_own[row_of, col] = own
    power[row_of, col] = p_w
    decoder_fast.polish_rows(slot_own, power, rows, sel, SWEEPS)  # step 6: one compiled implementation
    owned = slot_own >= 0
    owner[owned] = ues[np.nonzero(owned)[0], slot_own[owned]]
    return owner, power


def _largest_remainder_rows(shares: np.ndarray, total: int) -> np.ndarray:
    """``largest_remainder`` of each row of ``shares`` (N, M)."""
    want = total * shares
    n = np.floor(want + 1e-9).astype(np.int64)
    extra = np.minimum(np.round(want.sum(axis=1)), total).astype(np.int64) - n.sum(axis=1)
    order = np.argsort(n - want, axis=1, kind="stable")  # largest remainder first
    rank = np.empty_like(order)
    rank[np.arange(n.shape[0])[:, None], order] = np.arange(n.shape[1])
    return n + (rank < extra[:, None])  # the first ``extra`` in that order get one more


def _assign_rows(counts, budget, rows: DecodeRows, sel):
    """PRBs and powers of rows ``sel`` of ``rows`` from their UEs' PRB ``counts`` and power
    ``budget`` (W), both (N, M). Returns, over all assigned PRBs: row, owner (index in the row), PRB, power.

    Pass 1 ranks PRBs for each UE by its (capped, weighted) rate at the power level nearest its
    mean power per PRB; each UE's power is then spent over its PRBs (``_split_power``), which prices
    each UE's power. Pass 2 ranks PRBs again at the row's price of power (the median of its UEs'
    positive weighted prices, where any): a PRB is worth w_u max_l (r[u,k,l] - mu p_l). In both
    passes the problem's tie cost, at ``TIE_BREAK_REL`` times the row's largest value, decides
    between PRBs of equal value (as the optimum's tier 4 does).
    Values are worked out only for the UEs with PRBs (``pairs``); the rows of a UE's value repeat
    once per PRB it gets (its slots), and each row's slots are one ``linear_sum_assignment``.
    """
    n_rows, m = counts.shape
    n_prb = rows.n_prbs
    levels, top, w, cap = rows.levels[sel], rows.top[sel], rows.weight[sel], rows.cap[sel]
    per = np.maximum(counts, 1)
    mean_w = np.minimum(budget / per, top[:, None])
    cap_per = cap / per  # rate beyond which a UE's PRB is worth nothing more, (N, M)
    mids = np.sqrt(levels[:, :-1] * levels[:, 1:])[:, None, :] < mean_w[:, :, None]  # (N, M, L-1): past a midpoint
    pr, pu = np.nonzero(counts > 0)  # the UEs with PRBs, row by row
    near = np.zeros(pr.size, dtype=np.int64)  # the level nearest the mean power per PRB
    for j in range(mids.shape[2]):
        near += mids[pr, pu, j]
    c_pair, w_pair = cap_per[pr, pu][:, None], w[pr, pu][:, None]
    value = w_pair * np.minimum(rows.table[sel[pr], pu, near], c_pair)  # (P, K)
    # tier 4: the problem's tie cost in (0, 1], at a weight that only separates equal values
    prbs = np.arange(n_prb)[None, :]
    tie_w = np.ones(n_rows)
    np.maximum.at(tie_w, pr, value.max(axis=1, initial=0.0))
    tie_w = (TIE_BREAK_REL * tie_w)[pr][:, None]  # (P, 1)
    value -= tie_w * _tie(rows, sel[pr][:, None], pu[:, None], near[:, None], prbs)
    per_pair = counts[pr, pu]
    slot = np.repeat(np.arange(pr.size), per_pair)  # the pair of each slot
    ends = np.cumsum(counts.sum(axis=1))
    bounds = list(zip((ends - counts.sum(axis=1)).tolist(), ends.tolist()))  # the slots of row i
    redo = np.ones(n_rows, dtype=bool)
    cols = [np.zeros(0, dtype=np.int64)] * n_rows
    row_of, own = pr[slot], pu[slot]
    # what the power split needs of each slot and UE, the same in every pass
    slot_row, slot_cap = sel[row_of], cap_per[row_of, own][:, None]
    slot_levels, slot_top, slot_ue = levels[row_of], top[row_of], row_of * m + own
    per_ue = (budget.ravel(), mean_w.ravel(), counts.ravel(), np.repeat(levels[:, 0], m))
    for it in range(PASSES):
        vs = value[slot]  # (slots, K)
        for i in np.flatnonzero(redo).tolist():
            a, b = bounds[i]
            if b > a:
                _, cols[i] = linear_sum_assignment(vs[a:b], maximize=True)
        # a row has at most K slots, so every slot gets a PRB, in slot order
        col = np.concatenate(cols)
        rate = np.minimum(rows.table[slot_row, own, :, col], slot_cap)  # (S, L)
        p_w, price = _split_power(rate, slot_levels, slot_top, slot_ue, *per_ue)
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
        mu = np.where(redo, mu, 0.0)[pr]
        table = rows.table[sel[pr], pu]  # (P, L, K)
        lv = levels[pr]
        full = w_pair[:, :, None] * np.minimum(table, c_pair[:, :, None]) - (mu[:, None] * lv)[:, :, None]  # (P, L, K)
        best = full.argmax(axis=1)  # (P, K), the first of equal levels
        value = np.take_along_axis(full, best[:, None, :], axis=1)[:, 0]
        value -= tie_w * _tie(rows, sel[pr][:, None], pu[:, None], best, prbs)
    return row_of, own, col, p_w


def _tie(rows: DecodeRows, row, own, level, prb) -> np.ndarray:
    """The problem's tie cost of these choices (``DecodeRows.tie_index``) scaled to (0, 1]."""
    return tie_cost(rows.tie_index(row, own, level, prb)) * 2.0**-24


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
    idx = np.flatnonzero(out >= levels[:, 0])
    if n_lvl < 2 or idx.size == 0:
        return out, price
    if idx.size == out.size:  # the usual case: every PRB's UE affords the lowest level
        lv, r, tp = levels, rate, top
    else:
        lv, r, tp = levels[idx], rate[idx], top[idx]
    dp = lv[:, 1:] - lv[:, :-1]  # (m, L-1)
    gain = (r[:, 1:] - r[:, :-1]) / dp
    for j in range(1, n_lvl - 1):  # running minimum along the ladder: the concave hull
        np.minimum(gain[:, j - 1], gain[:, j], out=gain[:, j])
    gain[lv[:, 1:] > tp[:, None] * (1 + 1e-12)] = -np.inf
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
        firsts = np.concatenate(([True], o[1:] != o[:-1]))
        price[o[firsts]] = np.maximum(g[left[firsts]], 0.0)
    return out, price
