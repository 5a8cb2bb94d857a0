"""A bound on the multi-RU optimum that keeps the interference: the joint problem's per-PRB relaxation.

``optimal``'s certified mode (``policies.optimal``) needs an upper bound on the objective, and a lower
bound on the shortfall, of every allocation of the snapshot problem with several RUs. Ignoring the
other RUs' signals (the interference-free relaxation) is loose where RUs interfere strongly. This
module bounds the problem with the interference kept.

**The relaxation.** Per PRB k, a *column* is the joint state of every RU on k: its power state
(silent, or one of its L levels) and, where it transmits, the UE that owns the PRB. Its rates are
the PHY's SINR (``LinkModel.sinr``) with every other RU that transmits on k radiating its power and its
fronthaul noise. Three things are relaxed, each only raising what an allocation can reach:

1. an RU silent on k radiates nothing there (in the true problem its fronthaul noise reaches every
   PRB as soon as it transmits anywhere): every rate at least the true one;
2. a UE may own PRBs of several RUs (the true problem allows one), though never the same PRB of two RUs
   (a column's owners are distinct, as in every allocation);
3. the columns of PRB k may be mixed with fractional weights summing to at most 1 (the linear
   relaxation of choosing one; the integral choices are among them).

The rows are the snapshot problem's (``policies.optimal``): per RU its power budget and per-slice
caps; per UE its need, sum_k min(r_uk, need_u) + s_u >= need_u (clipping each PRB's rate to the need
keeps every integral point: if one PRB alone covers the need both sides reach it); under ``served``
y_u <= sum_k min(r_uk, c_u), y_u <= c_u. Every allocation of the snapshot problem maps to a feasible
point of this relaxation whose objective F and shortfall V are at least as good as its true ones.

**Rounding cuts on the needs.** Mixing columns lets the LP meet a need with a fraction of a PRB; a
whole PRB is what an allocation gives. Per UE u with a need, let delta_u be the most one slot (one RU's
PRB at one level, any other RUs' powers) gives it, clipped to the need, beta_u = need_u / delta_u with
fractional part f_u, and for a slot of rate r, alpha = min(r, need_u) / delta_u. Dividing the need row
by delta_u and rounding it (mixed-integer rounding: integral column weights, continuous shortfall) gives

    sum over the slots u owns of F_u(alpha) + s_u / (delta_u f_u) >= ceil(beta_u),
    F_u(alpha) = floor(alpha) + min(alpha - floor(alpha), f_u) / f_u,

valid for every integral point of the relaxation (F_u is subadditive, so summing it slot by slot only
weakens the cut where a UE owns several slots of one column). It is added where f_u is not 0 (where one
slot can cover the need, the clipped need row is already this tight). Each slot's coefficient depends
only on its own rate, so the pricing below stays exact with the cut's multiplier pi'_u added.

**Zero-slot rows (the shortfall budget's integrality).** The objective bound is taken over allocations
with total shortfall at most V. The LP spends V on fractions of needs: a tenth of a small need frees a
tenth of a slot. An allocation frees a slot only by leaving a UE without any: such a UE's shortfall is its
whole need. With slots_u the number of slots UE u owns (an integer) and d_u = 1 where it owns none,
d_u >= 1 - slots_u, and the UEs without a slot fall short by the sum of their needs, at most V; so among
the UEs G_t needing at least t, at most n_t own no slot, n_t the largest count whose smallest needs in G_t
fit in V:

    slots_u + d_u >= 1 (every UE with a need),   sum over G_t of d_u <= n_t (each distinct need t), 0 <= d_u <= 1,

valid for every integral point (d_u as defined), kept where n_t < |G_t|. A slot's coefficient is 1 for its
owner whatever its rate, so the pricing stays exact with the row's multiplier lam_u added per slot.

**One-slot state rows** (``policies.joint_states``, ``STATE_ROWS``): per UE with a need, which of "one slot of
rate class j", "two slots or more", "no slot" it is in, with the shortfall each implies; a UE on one slot of a
rate below its need falls short by the difference, where the need row would let it take a little more than one
slot. Valid for every allocation (that module's docstring); each slot's coefficient depends only on its own rate.

**Bounds from any multipliers (why they are valid).** Take multipliers mu_r, nu_rs >= 0 for the power
rows, pi_u >= 0 for the needs, sigma_u >= 0 for the served rows and theta >= 0 for sum_u s_u <= V.
For the largest F with shortfall at most V, the Lagrangian

    L = sum_k max(0, max_c h_k(c)) + sum_u need_u max(0, pi_u - theta) - pi . need + mu . P + nu . C
        + theta V + sum_u c_u max(0, w_u - sigma_u)            [last term: served only]

    h_k(c) = sum over the RUs r transmitting in column c of
             a_u r_u + pi_u min(r_u, need_u) + sigma_u min(r_u, c_u) - (mu_r + nu_{r,s(u)}) p_r
             (u the owner, r_u its rate in c; a_u = w_u under ``rate``, 0 under ``served``)

is at least the relaxation's optimum (weak duality: every feasible point adds only non-negative
terms), hence at least the true optimum, whatever the multipliers: the bound needs no solver to be
right. With the cuts' multipliers pi'_u >= 0, h_k gains pi'_u F_u(alpha) per owner, pi_u becomes
pi_u + pi'_u / (delta_u f_u) in the shortfall term, and L gains - pi' . ceil(beta). With the zero-slot
rows' multipliers lam_u, kappa_t >= 0 (objective bound only), h_k gains lam_u per slot u owns and L gains
sum_u max(0, lam_u - sum_{t: u in G_t} kappa_t) - sum_u lam_u + kappa . n (each d_u at 0 or 1); with the state
rows' multipliers, the terms of ``policies.joint_states`` (one per UE, and delta_u on s_u). Likewise the least
shortfall is at least

    sum_u need_u min(0, 1 - pi_u - pi'_u / (delta_u f_u)) + pi . need + pi' . ceil(beta) - mu . P - nu . C
        - sum_k max(0, max_c g_k(c))

g_k the same as h_k with a_u = sigma_u = 0. **Pricing is exact and cheap**: given the power vector of
PRB k (one of (L + 1)^R), the SINR of each owner depends only on the other RUs' powers, not on whom they
serve, so
max_c h_k(c) = max over power vectors of the sum over transmitting RUs of their owners' terms, the owners
distinct: each RU's R best owners hold the best distinct choice (a UE taken by another RU leaves at least one
of them free), so at most R^R combinations per power vector are compared; the (L + 1)^R * R * U * L rates are
precomputed once per problem.

**Multipliers** come from the restricted master (``policies.joint_master``: the relaxation's LP over the
columns generated so far, kept live in HiGHS and re-solved from its last basis): its duals, then the best column of
each PRB is added and the LP solved again (column generation) until the bound meets the LP's value (the LP's optimum: the bound is then the
relaxation's own), ``MAX_ROUNDS`` or the time limit (CPU seconds). The best bound of any round is kept. A run stopped early is
still valid, only looser. After the root, ``nodes`` of branch-and-price (``policies.joint_branch``: a UE's RU, an
RU's transmitting on a PRB, a PRB's owner) can tighten it; the default budget is 0 (measured: on the crowded small
cells it closes a few points in hundreds of nodes, on the 3-RU cell nothing in 32 nodes; ``docs/multi_ru.md``).
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from numba import njit
from scipy.sparse import csr_matrix

from policies.interference import IDLE, Choices, _joint_rows
from policies.joint_master import MasterLP
from policies.joint_states import UeStates
from simcore.contracts import Allocation
from simcore.snapshot import SnapshotProblem

#: Largest precomputed rate table (R * U * K * L * (L + 1)^(R - 1) entries) the relaxation builds.
MAX_TABLE = 4_000_000
#: Columns added per PRB and round: the best power vectors' best owners.
COLUMNS_PER_PRB = 3
#: Rounds of column generation at most (each one LP and one pricing): the bound does not depend on the
#: machine's load; the time limit is a safety net above it.
MAX_ROUNDS = 40
#: Branch-and-price nodes (``policies.joint_branch``) after the root, per bound: a count, not a time.
OBJECTIVE_NODES = 0
SHORTFALL_NODES = 0
#: The one-slot state rows (``policies.joint_states``) in the master and the Lagrangian.
STATE_ROWS = True
#: A need row's cut is left out where need / delta is this close to an integer (it would cut nothing).
CUT_MIN_FRACTION = 1e-6


@njit(cache=True, error_model="numpy")
def _priced_top(rate, rate_to_need, cut, cls, coef, cap, slot_value, price, levels, ban, use, top, top_val):
    """The pricing's priced table and each RU's best owners in one pass, the table never stored: each entry
    (r, i, k, l, m) of the rate tables (R, U', K, L, M) is priced as ``JointRelaxation._price`` says (in that order of
    terms: pi min(rate, need), a rate, sigma min(rate, cap), the cut's multiplier times its coefficient, the per-slot
    value, the state rows' slot value of its class, less the power's price; -inf where ``ban`` (R, U', K)), and per (r, k, l, m)
    the T largest over the UEs (T = top.shape[1]), largest first, ties to the lower UE, go to ``top`` (R, T, K, L, M)
    int64 and ``top_val``. coef (5, U'): pi, a, sigma, cut multiplier, per-slot value; cap (U',); slot_value (U', C);
    price (R, U'); levels (R, L); use (6,) bool: a, sigma, cut, per-slot, states, ban terms present."""
    n_r, n_u, n_k, n_l, n_m = rate.shape
    n_t = top.shape[1]
    for r in range(n_r):
        for t in range(n_t):
            for k in range(n_k):
                for l in range(n_l):
                    for m in range(n_m):
                        top[r, t, k, l, m] = t
                        top_val[r, t, k, l, m] = -np.inf
        for u in range(n_u):
            for k in range(n_k):
                for l in range(n_l):
                    power_price = price[r, u] * levels[r, l]
                    for m in range(n_m):
                        v = coef[0, u] * rate_to_need[r, u, k, l, m]
                        if use[0]:
                            v += coef[1, u] * rate[r, u, k, l, m]
                        if use[1]:
                            v += coef[2, u] * min(rate[r, u, k, l, m], cap[u])
                        if use[2]:
                            v += coef[3, u] * cut[r, u, k, l, m]
                        if use[3]:
                            v += coef[4, u]
                        if use[4]:
                            v += slot_value[u, cls[r, u, k, l, m]]
                        v -= power_price
                        if use[5] and ban[r, u, k]:
                            v = -np.inf
                        if v > top_val[r, n_t - 1, k, l, m]:
                            j = n_t - 1
                            while j > 0 and v > top_val[r, j - 1, k, l, m]:
                                top_val[r, j, k, l, m] = top_val[r, j - 1, k, l, m]
                                top[r, j, k, l, m] = top[r, j - 1, k, l, m]
                                j -= 1
                            top_val[r, j, k, l, m] = v
                            top[r, j, k, l, m] = u


class JointRelaxation:
    """The relaxation of the module docstring for one snapshot problem (rates in bit/s / ``unit_bps``)."""

    def __init__(self, prob: SnapshotProblem, unit_bps: float = 1e3):
        obs = prob.obs
        self.prob, self.obs, self.unit = prob, obs, unit_bps
        n_ru, n_lvl = obs.n_rus, prob.n_levels
        self.useful = np.flatnonzero((prob.cap_bps > 0) | (prob.need_bps > 0))  # served: an empty UE takes nothing
        n_m = (n_lvl + 1) ** (n_ru - 1)
        self.size = n_ru * self.useful.size * obs.n_prbs * n_lvl * n_m
        self.fits = self.size <= MAX_TABLE
        self.need = prob.need_bps / unit_bps
        self.cap = prob.cap_bps / unit_bps
        self.need_ues = np.flatnonzero(self.need > 0)
        self.y_ues = np.flatnonzero(self.cap > 0) if prob.objective == "served" else np.zeros(0, dtype=np.int64)
        caps = obs.slice_power_cap_w
        self.capped = np.flatnonzero(np.isfinite(caps))
        self.cols: list[tuple] = []  # (k, power vector index, owners (R,) with -1 where silent)
        self.last_x: np.ndarray | None = None  # the last master LP's column weights
        self.shortfall_x: np.ndarray | None = None  # the least-shortfall bound's last LP's
        self.last_multipliers: tuple | None = None  # and its multipliers
        self._keys: set = set()
        self.states: UeStates | None = None  # the one-slot state rows (policies.joint_states)
        if self.fits:
            self._tables()
            self._cuts()
            if STATE_ROWS:
                self.states = UeStates(self)

    def _tables(self) -> None:
        """rate (R, U', K, L, M): UE useful[i] owning PRB k of RU r at level l while the other RUs are in
        power state m (each silent or at a level, fronthaul noise with it), and rate_to_need the same clipped to
        each UE's need; power vectors (N, R)."""
        obs, prob = self.obs, self.prob
        n_ru, n_lvl = obs.n_rus, prob.n_levels
        ue = self.useful
        power = np.c_[np.zeros(n_ru), prob.levels_w]  # (R, L + 1): state 0 silent
        radiated = power + np.where(np.arange(n_lvl + 1) > 0, 1.0, 0.0)[None, :] * obs.link.quant_noise_w[:, None]
        others_states = np.array(list(itertools.product(range(n_lvl + 1), repeat=n_ru - 1)), dtype=np.int64)
        self.rate = np.empty((n_ru, ue.size, obs.n_prbs, n_lvl, others_states.shape[0]))
        for r in range(n_ru):
            interference = np.zeros((ue.size, obs.n_prbs, others_states.shape[0]))
            for j, q in enumerate(q for q in range(n_ru) if q != r):
                interference += obs.gain[ue, q, :, None] * radiated[q][others_states[:, j]][None, None, :]
            sinr = obs.link.sinr(obs.gain[ue, r, :, None, None], prob.levels_w[r][None, None, :, None], r,
                                 interference[:, :, None, :])
            self.rate[r] = obs.link.prb_rate_bps(sinr, ue[:, None, None, None]) / self.unit
        # each entry clipped to its UE's need (what a slot counts on the need row), kept for every pricing round
        self.rate_to_need = np.minimum(self.rate, self.need[ue][None, :, None, None, None])
        self.vectors = np.array(list(itertools.product(range(n_lvl + 1), repeat=n_ru)), dtype=np.int64)  # (N, R)
        shape = (n_lvl + 1,) * (n_ru - 1)
        self.others = np.stack([np.ravel_multi_index(np.delete(self.vectors, r, axis=1).T, shape) if n_ru > 1
                                else np.zeros(len(self.vectors), dtype=np.int64) for r in range(n_ru)], axis=1)

    def _cuts(self) -> None:
        """The need rows' mixed-integer rounding cuts (module docstring): per UE with a need, its scale
        delta_u (the most one slot can give it, clipped to the need), and the cut's coefficient of every
        slot of the rate table, ``cut`` (R, U', K, L, M); cut_ues the UEs whose cut is not trivial."""
        need = self.need[self.useful]
        clipped = self.rate_to_need
        delta = clipped.max(axis=(0, 2, 3, 4)) if clipped.size else np.zeros(self.useful.size)
        beta = np.divide(need, delta, out=np.zeros_like(need), where=delta > 0)
        frac = beta - np.floor(beta)
        ok = (need > 0) & (delta > 0) & (frac > CUT_MIN_FRACTION) & (frac < 1 - CUT_MIN_FRACTION)
        self.cut_ues = self.useful[ok]
        self.cut_delta = np.where(ok, delta, 1.0)[ok]
        self.cut_frac = frac[ok]
        self.cut_rhs = np.ceil(beta[ok])
        alpha = clipped / np.where(ok, delta, 1.0)[None, :, None, None, None]
        f = np.where(ok, frac, 1.0)[None, :, None, None, None]
        part = alpha - np.floor(alpha)
        self.cut = np.where(ok[None, :, None, None, None], np.floor(alpha) + np.minimum(part, f) / f, 0.0)

    def zero_slot_groups(self, v_max: float) -> tuple[np.ndarray, np.ndarray]:
        """The zero-slot cardinality cuts at shortfall budget ``v_max`` (kbit/s, module docstring): per
        distinct need t, a row over G_t = the UEs needing at least t: member (n_g, U) bool, and n_t, how many
        of them can go without any slot (the most whose smallest needs fit in v_max). Rows that cut nothing
        (n_t = |G_t|) are left out."""
        need = self.need[self.need_ues]
        member, count = [], []
        for t in np.unique(need):
            group = np.sort(need[need >= t])
            n_t = int(np.searchsorted(np.cumsum(group), v_max * (1 + 1e-9) + 1e-9, side="right"))
            if n_t < group.size:
                row = np.zeros(self.obs.n_ues, dtype=bool)
                row[self.need_ues[need >= t]] = True
                member.append(row)
                count.append(n_t)
        return np.array(member, dtype=bool).reshape(-1, self.obs.n_ues), np.array(count, dtype=float)

    # ------------------------------------------------------------------------------ columns
    def add_allocation(self, alloc: Allocation) -> None:
        """The columns of a feasible allocation (one per PRB): the master starts feasible from them."""
        level = self.prob.levels_of(alloc)
        shape = (self.prob.n_levels + 1,) * self.obs.n_rus
        for k in range(self.obs.n_prbs):
            owners = tuple(int(u) for u in alloc.prb_owner[:, k])
            self._add(k, int(np.ravel_multi_index(level[:, k] + 1, shape)), owners)

    def _add(self, k: int, vec: int, owners: tuple) -> bool:
        key = (k, vec, owners)
        if key in self._keys:
            return False
        self._keys.add(key)
        self.cols.append(key)
        return True

    def choices(self) -> Choices:
        """The columns generated so far as choices of the joint MILP (``policies.optimal``), each UE on at
        most one RU: a search for good allocations among them (exact for none, feasible for all)."""
        obs = self.obs
        keep = [c for c in self.cols if len({u for u in c[2] if u >= 0}) == sum(u >= 0 for u in c[2])]
        slots = [(j, r, k, u, self.vectors[vec, r] - 1) for j, (k, vec, owners) in enumerate(keep)
                 for r, u in enumerate(owners) if u >= 0]
        sx, sr, sk, su, sl = (np.array(a, dtype=np.int64) for a in zip(*slots)) if slots else \
            (np.zeros(0, dtype=np.int64) for _ in range(5))
        pos = np.full(obs.n_ues, -1)
        pos[self.useful] = np.arange(self.useful.size)
        vec = np.array([c[1] for c in keep], dtype=np.int64)
        rate = np.where(pos[su] >= 0, self.rate[sr, np.maximum(pos[su], 0), sk, sl, self.others[vec[sx], sr]], 0.0)
        group = np.array([c[0] for c in keep], dtype=np.int64)
        owner = np.array([[u if u >= 0 else IDLE for u in c[2]] for c in keep], dtype=np.int64).reshape(-1, obs.n_rus)
        n_z, extra = _joint_rows(self.prob, owner, group, sx, sr, sk, su)
        return Choices(csr_matrix((rate, (su, sx)), shape=(obs.n_ues, group.size)), group, sx, sr, sk, su, sl,
                       n_z=n_z, extra=extra)

    def power_patterns(self) -> list[np.ndarray]:
        """(R, K) power states (0 silent, l + 1 level l) near the last master LP's mean power on each PRB:
        the nearest level, and the nearest not below it; then, where the least-shortfall bound was solved, the
        nearest level to its LP's (which silences an RU on a PRB where that lets two cell-edge UEs of the others
        reach their need on one PRB each; measured on the 3-RU cell: a start 10 kb/s of shortfall below the
        others on one state of two); patterns to start a search from."""
        patterns = self._patterns(self.last_x)
        if self.shortfall_x is not None:
            extra = self._patterns(self.shortfall_x)[0]
            if not any((extra == p).all() for p in patterns):
                patterns.append(extra)
        return patterns

    def shortfall_pattern(self) -> np.ndarray:
        """(R, K) the nearest power state to the least-shortfall bound's LP (solved: ``shortfall_x`` set)."""
        return self._patterns(self.shortfall_x)[0]

    def shortfall_association(self) -> np.ndarray | None:
        """(U,) RU of each UE in the least-shortfall bound's LP: the RU whose slots give it the most column weight
        (its serving RU where it has none), or None where that bound was not solved or moves no UE. The LP may
        serve a cell-edge UE from a neighbour while its own RU is silent on that PRB (measured on the 3-RU cell),
        which no start on the serving RUs reaches."""
        if self.shortfall_x is None:
            return None
        obs = self.obs
        weight = np.zeros((obs.n_ues, obs.n_rus))
        for x, (_, _, owners) in zip(self.shortfall_x, self.cols):
            for r, u in enumerate(owners):
                if u >= 0:
                    weight[u, r] += x
        ue_ru = np.where(weight.max(axis=1) > 1e-9, weight.argmax(axis=1), obs.serving_ru)
        return None if (ue_ru == obs.serving_ru).all() else ue_ru

    def _patterns(self, x) -> list[np.ndarray]:
        if x is None:
            return []
        obs, levels = self.obs, self.prob.levels_w
        mean = np.zeros((obs.n_rus, obs.n_prbs))
        for weight, (k, vec, _) in zip(x, self.cols):
            s = self.vectors[vec]
            mean[:, k] += weight * np.where(s > 0, levels[np.arange(obs.n_rus), np.maximum(s - 1, 0)], 0.0)
        diff = levels[:, None, :] - mean[:, :, None]  # (R, K, L)
        nearest = np.argmin(np.abs(diff), axis=2)
        above = np.argmin(np.where(diff >= -1e-12, diff, np.inf), axis=2)
        on = mean > 1e-9 * levels.max()
        return [np.where(on, nearest + 1, 0), np.where(on, above + 1, 0)]

    # ------------------------------------------------------------------------------ pricing
    def _price(self, a, pi, sigma, mu, nu, pi_cut=None, per_slot=None, node=None, states=None):
        """Per PRB and power vector, the best column's value h (K, N) and its owners (R, K, N) (-1: RU silent), no
        UE owning two RUs' slots of one PRB;
        ``per_slot`` (U,): a value each slot a UE owns adds whatever its rate (the zero-slot rows' multipliers);
        ``node`` (``policies.joint_branch.Node``): only the columns it allows (-inf where none is);
        ``states``: the state rows' multipliers (each slot adds its class's value)."""
        obs = self.obs
        ue = self.useful
        r_ = self.rate
        if not ue.size:  # no UE can take anything: every column is idle
            return np.zeros((obs.n_prbs, len(self.vectors))), np.full((obs.n_rus, obs.n_prbs, len(self.vectors)), -1)
        n_ue = ue.size
        coef = np.zeros((5, n_ue))
        coef[0] = pi[ue]
        use = np.zeros(6, dtype=np.bool_)
        use[0] = a[ue].any()  # under rate's objective bound; 0 in the least-shortfall bound (and under served)
        coef[1] = a[ue]
        if sigma is not None:
            use[1], coef[2] = True, sigma[ue]
        if pi_cut is not None and self.cut_ues.size:
            weight = np.zeros(self.obs.n_ues)
            weight[self.cut_ues] = pi_cut
            use[2], coef[3] = True, weight[ue]
        if per_slot is not None:
            use[3], coef[4] = True, per_slot[ue]
        slot_value = np.zeros((n_ue, 1))
        cls = np.zeros((1, 1, 1, 1, 1), dtype=np.int8)
        if states is not None and self.states is not None:
            use[4], slot_value, cls = True, self.states.slot_values(states)[ue], self.states.cls
        ban = np.zeros((1, 1, 1), dtype=np.bool_)
        if node is not None:
            use[5], ban = True, node.ban
        price = mu[:, None] + nu[:, obs.slice_id[ue]]  # (R, U')
        # each RU's T best owners per (PRB, level, others' state): enough for R distinct owners among R RUs
        n_top = min(obs.n_rus, n_ue)
        top = np.empty((obs.n_rus, n_top) + r_.shape[2:], dtype=np.int64)
        top_val = np.empty(top.shape)
        _priced_top(r_, self.rate_to_need, self.cut, cls, coef, self.cap[ue], slot_value, price, self.prob.levels_w,
                    ban, use, top, top_val)
        n_vec, n_prb = len(self.vectors), obs.n_prbs
        cand_val = np.zeros((obs.n_rus, n_top, n_prb, n_vec))  # per RU its candidates in each column (silent: 0, nobody)
        cand_own = np.full((obs.n_rus, n_top, n_prb, n_vec), -1)
        for r in range(obs.n_rus):
            on = np.flatnonzero(self.vectors[:, r] > 0)
            lvl, oth = self.vectors[on, r] - 1, self.others[on, r]
            cand_val[r][:, :, on] = top_val[r][:, :, lvl, oth]
            cand_own[r][:, :, on] = ue[top[r][:, :, lvl, oth]]
            cand_val[r, 1:, :, self.vectors[:, r] == 0] = -np.inf  # a silent RU: its one candidate, nobody
        # the best column of each (PRB, power vector) with distinct owners (one RU per UE: never two slots of a PRB)
        h = np.full((n_prb, n_vec), -np.inf)
        owner = np.full((obs.n_rus, n_prb, n_vec), -1)
        for pick in itertools.product(range(n_top), repeat=obs.n_rus):
            v = sum(cand_val[r, t] for r, t in enumerate(pick))
            own = np.stack([cand_own[r, t] for r, t in enumerate(pick)])  # (R, K, N)
            for r in range(obs.n_rus):
                for q in range(r):
                    v = np.where((own[r] >= 0) & (own[r] == own[q]), -np.inf, v)
            better = v > h
            h = np.where(better, v, h)
            owner = np.where(better[None], own, owner)
        if node is not None:  # an RU that must transmit on PRB k is never silent there, and conversely
            for r in range(obs.n_rus):
                on = self.vectors[:, r] > 0
                h[np.ix_(node.forced[r], ~on)] = -np.inf
                h[np.ix_(node.silent[r], on)] = -np.inf
        return h, owner

    @staticmethod
    def _prb_terms(h, node=None) -> np.ndarray:
        """Each PRB's best priced choice (K,): its best column, or nothing (0) where the node lets it stay empty."""
        best = h.max(axis=1)
        if node is None:
            return np.maximum(best, 0.0)
        return np.where(node.forced.any(axis=0), best, np.maximum(best, 0.0))

    def _add_best(self, h, owner, node=None) -> int:
        added = 0
        for k in range(self.obs.n_prbs):
            must = node is not None and node.forced[:, k].any()  # a PRB that must be used: its best columns
            for vec in np.argsort(-h[k], kind="stable")[:COLUMNS_PER_PRB]:
                if not np.isfinite(h[k, vec]) or (h[k, vec] <= 1e-9 and not must):
                    break
                owners = tuple(int(owner[r, k, vec]) if s > 0 else -1 for r, s in enumerate(self.vectors[vec]))
                added += self._add(k, int(vec), owners)
        return added

    # ------------------------------------------------------------------------------ bounds
    def shortfall_lower_bound(self, time_limit_s: float, rel_tol: float = 1e-4, nodes: int | None = None) -> float:
        """No allocation has less total shortfall (bit/s); ``nodes`` (default ``SHORTFALL_NODES``) of
        branch-and-price (``policies.joint_branch``) after the root."""
        if not self.need_ues.size:
            return 0.0
        nodes = SHORTFALL_NODES if nodes is None else nodes
        bound = max(0.0, self._bound(None, time_limit_s, rel_tol, nodes) * self.unit)
        self.shortfall_x = self.last_x
        return bound

    def objective_upper_bound(self, violation_bps: float, time_limit_s: float, rel_tol: float = 1e-4,
                              nodes: int | None = None) -> float:
        """No allocation whose shortfall is at most ``violation_bps`` has a larger objective (bit/s);
        ``nodes`` (default ``OBJECTIVE_NODES``) of branch-and-price after the root."""
        nodes = OBJECTIVE_NODES if nodes is None else nodes
        return self._bound(violation_bps / self.unit, time_limit_s, rel_tol, nodes) * self.unit

    def _bound(self, v_max, time_limit_s, rel_tol, nodes) -> float:
        from policies.joint_branch import branch_and_price

        t_end = time.process_time() + time_limit_s
        return branch_and_price(self, v_max, nodes, rel_tol, t_end)

    def _generate(self, v_max, t_end, rel_tol, node=None, start=None) -> float:
        """Column generation (within ``node``'s restrictions, None: none); v_max None: the least shortfall (a
        lower bound), else the largest objective with shortfall at most v_max (an upper bound). ``start``:
        multipliers (a parent node's) whose bound and columns come first. Returns the best Lagrangian bound
        found (kbit/s); the last master LP's column weights are left in ``last_x``."""
        lower = v_max is None
        best = -np.inf if lower else np.inf
        if start is not None:
            bound, h, owner = self.lagrangian(v_max, *start, node=node)
            best = bound
            self._add_best(h, owner, node)
        masters = {}  # live LPs (warm-started round after round): with the zero-slot rows, and without them
        for _ in range(MAX_ROUNDS):
            lp, multipliers = self._master(v_max, node=node, masters=masters)
            if lp is None and v_max is not None:  # the zero-slot rows have no slack: without them, until
                lp, multipliers = self._master(v_max, zero_slot=False, node=node, masters=masters)  # the pool meets them
            if lp is None:  # the LP failed (numerics, or the pool cannot meet the rows): the bound so far, or none
                return best if np.isfinite(best) else (0.0 if lower else np.inf)
            bound, h, owner = self.lagrangian(v_max, *multipliers, node=node)
            self.last_multipliers = multipliers
            if lower:
                best = max(best, bound)
                done = lp - best <= rel_tol * max(abs(lp), 1.0)
            else:
                best = min(best, bound)
                done = best - lp <= rel_tol * max(abs(best), 1.0)
            if done or time.process_time() > t_end or not self._add_best(h, owner, node):
                break
        return best

    def lagrangian(self, v_max, mu, nu, pi, theta, sigma, pi_cut=None, lam=None, kappa=None, states=None, node=None):
        """The module docstring's bound (kbit/s) for multipliers mu (R,), nu (R, S), pi (U,), theta, sigma (U,),
        pi_cut (one per cut UE, ``cut_ues``; None: 0), lam (U,) and kappa (one per row of
        ``zero_slot_groups(v_max)``; None: 0), all >= 0: with ``v_max`` None a lower bound on the
        least shortfall, else an upper bound on the objective of every allocation with shortfall at most
        ``v_max`` (kbit/s); with ``node``, over the allocations it allows only (each PRB's best allowed column,
        or nothing where the node allows that). Also the pricing's values (K, N) and best owners."""
        obs = self.obs
        w = obs.ue_weight.astype(float)
        pi = np.where(self.need > 0, pi, 0.0)  # rows that exist only: no need, no multiplier
        nu = np.where(np.isfinite(obs.slice_power_cap_w)[None, :], nu, 0.0)
        pi_cut = np.zeros(self.cut_ues.size) if pi_cut is None else np.asarray(pi_cut, dtype=float)
        on_s = np.zeros(obs.n_ues)  # what the cuts put on each shortfall s_u
        on_s[self.cut_ues] = pi_cut / (self.cut_delta * self.cut_frac)
        state_term = 0.0
        if states is not None and self.states is not None:  # the state rows' per-UE term, and delta_u on s_u
            state_term, on_s_states = self.states.lagrangian_term(states)
            on_s = on_s + on_s_states
        else:
            states = None
        if v_max is None:
            h, owner = self._price(np.zeros(obs.n_ues), pi, None, mu, nu, pi_cut, node=node, states=states)
            bound = (self.need * np.minimum(0.0, 1.0 - pi - on_s)).sum() + pi @ self.need + pi_cut @ self.cut_rhs \
                - mu @ obs.ru_max_power_w - self._nu_cap(nu) - self._prb_terms(h, node).sum() - state_term
            return bound, h, owner
        served = self.prob.objective == "served"
        sigma = np.where(self.cap > 0, sigma, 0.0) if served else None
        member, count = self.zero_slot_groups(v_max)
        lam = np.zeros(obs.n_ues) if lam is None else np.where(self.need > 0, lam, 0.0)
        kappa = np.zeros(count.size) if kappa is None else np.asarray(kappa, dtype=float)
        h, owner = self._price(np.zeros(obs.n_ues) if served else w, pi, sigma, mu, nu, pi_cut, lam, node, states)
        bound = self._prb_terms(h, node).sum() + (self.need * np.maximum(pi + on_s - theta, 0.0)).sum() \
            - pi @ self.need - pi_cut @ self.cut_rhs + mu @ obs.ru_max_power_w + self._nu_cap(nu) + theta * v_max \
            + state_term
        # zero-slot rows: d_u in [0, 1] earns lam_u - (kappa of u's rows); lam . 1 and kappa . n are constants
        bound += np.maximum(lam - kappa @ member, 0.0).sum() - lam.sum() + kappa @ count
        if served:
            bound += (self.cap * np.maximum(w - sigma, 0.0))[self.y_ues].sum()
        return bound, h, owner

    def _nu_cap(self, nu) -> float:
        caps = self.obs.slice_power_cap_w
        return float((nu[:, self.capped] * caps[self.capped][None, :]).sum())

    def _master(self, v_max, zero_slot: bool = True, node=None, masters: dict | None = None):
        """The restricted master LP (``policies.joint_master``): its value and multipliers; its x kept in ``last_x``.
        ``masters``: the live LPs of this column generation by ``zero_slot`` (re-solved from their last basis with
        the columns added since); None: a cold solve."""
        masters = {} if masters is None else masters
        if zero_slot not in masters:
            masters[zero_slot] = MasterLP(self, v_max, zero_slot, node)
        lp, multipliers, x = masters[zero_slot].solve()
        if x is not None:
            self.last_x = x
        return lp, multipliers
