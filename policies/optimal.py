"""The exact optimum of the snapshot problem at scale: a mixed-integer program solved by HiGHS.

Formulation (one RU, where it is exact). Binary x[u,k,l] = UE u gets PRB k at power level l;
continuous s[u] >= 0 = rate shortfall of UE u; under ``served``, continuous 0 <= y[u] <= c[u] =
the part of UE u's rate that counts. With the rate table r[u,k,l] (bit/s; the SINR of UE u on
PRB k depends only on its own power there when there is one RU):

    PRB exclusivity   sum_{u,l} x[u,k,l] <= 1                      for every PRB k
    RU power          sum_{u,k,l} p_l x[u,k,l] <= P_RU
    slice power cap   sum_{u in s,k,l} p_l x[u,k,l] <= C_s           where set
    rate need         sum_{k,l} r[u,k,l] x[u,k,l] + s[u] >= need[u] for UEs with a need
    served rate       y[u] <= sum_{k,l} r[u,k,l] x[u,k,l]           (served only)

The snapshot problem's order (``simcore.snapshot``) is followed tier by tier, each phase keeping
the ones before it as constraints: phase 1 minimises sum_u s[u] = V; phase 2 maximises F
(sum_u w_u y[u], or sum w r x under ``rate``) with sum s <= V*; phase 3 minimises the power steps
P with F >= F* as well; phase 4 minimises the tie cost T with P <= P* as well. Phases 3 and 4 have
integer objectives, which the solver rounds its bounds to: they are solved to integrality.
Shortcuts that change no answer: an allocation built greedily (each UE its best free PRBs at the
highest level not above P_RU / K) that meets every need proves V* = 0, so phase 1 is skipped and
the needs become hard rows; under ``served``, one that gives every UE with data max(need, c)
proves V* = 0 and F* = sum_u w_u c[u] (the most F can be), so phases 1 and 2 are skipped and the
later phases keep y = c (per-UE rows, far tighter than one row on F). Choices the order never
picks are left out before the solve: those that carry nothing, a level that gives no more rate
than a cheaper one on the same PRB (past the spectral-efficiency cap), and under ``served`` any
PRB for a UE that neither needs nor can use anything (empty buffer). Need and served rows use
the rate clipped to the need or cap (same integer points, a tighter relaxation).

HiGHS reports whether optimality was proven within the requested relative gap (``mip_gap``,
phases 1 and 2) and time limit (``time_limit_s``, per phase). A later phase that finds no feasible
point within the limit keeps the previous phase's solution (it meets every row added so far), and
the result is reported as not proven (``proven_optimal: False``). A later phase that HiGHS calls
infeasible or a solve error (numerical: the models are feasible) is solved again with presolve on,
then with a 10x tighter feasibility tolerance; only if both fail too is the previous solution kept
(reported as not proven), or, in the first phase, the decision an error.
ESA and this MILP return the same allocation when the gap is below the distance between the best
objective and the next one (the tests use 1e-9).

Several RUs (``interference``; the formulations are in ``policies.interference``):

- ``joint``: exact. One binary per PRB and joint state of every RU, the true SINR precomputed; the
  number of combinations is checked before any work and above ``max_joint_choices`` the mode
  refuses, naming it. Returns ESA's allocation (``info["exact"]``, ``info["gap"]`` = 0).
- ``worst_case``: the reference model's R-bar (every other RU at its top level on the PRB), each UE on
  its serving RU, one MILP per RU: exact for that bounded problem (``info["exact_for"]``), feasible,
  every true rate at least its bounded one (``info["bounded_rates_bps"]``); ``info["exact"]`` is false.
- ``certified`` (``policies.certified``): the best feasible allocation of several starts and a local
  search, next to an upper bound on the true optimum: ``info["gap"]`` says how far from optimal it can be.
- ``auto`` (the default): ``joint`` when it fits, else ``certified``; ``info["mode"]`` says which.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import warnings

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix, vstack

from simcore.contracts import Allocation, Observation, Policy
from policies.interference import Choices, joint_choices, joint_size, worst_case_interference_w
from simcore.snapshot import (DEFAULT_LEVEL_FACTORS, REL_TOL, SnapshotProblem, allocation_from_choices,
                              level_factors_checked, objective_and_shortfall, objective_checked)

_STATUS = {0: "optimal", 1: "limit_reached", 2: "infeasible", 3: "unbounded", 4: "error"}
#: Rates enter the MIP in kbit/s: per-PRB coefficients of 10..1000, and HiGHS's absolute
#: feasibility tolerance (1e-6) far below the tie tolerance of the objective.
_UNIT_BPS = 1e3
#: HiGHS's integrality and row tolerance (default 1e-6) in phases 3 and 4: tighter, so that tie costs
#: of up to 2^24 per choice are compared on integral solutions.
_MIP_FEASIBILITY_TOL = 1e-9
#: MIP gap of the certified mode's starts (``policies.certified``: a search follows and the bound judges them).
CANDIDATE_GAP = 1e-3


#: The ways ``optimal`` handles several RUs (``policies.interference``); auto: joint where it fits, else certified.
INTERFERENCE_MODES = ("auto", "joint", "worst_case", "certified")


class ExactOptimum(Policy):
    name = "optimal"

    def __init__(self, level_factors=DEFAULT_LEVEL_FACTORS, time_limit_s: float = 30.0, mip_gap: float = 1e-6,
                 max_iterations: int = 8, objective: str = "served", interference: str = "auto",
                 max_joint_choices: int = 20_000, bound_time_limit_s: float = 2.0, gap_target: float = 0.02):
        self.level_factors = level_factors_checked(level_factors)
        self.time_limit_s = float(time_limit_s)
        self.mip_gap = float(mip_gap)
        self.max_iterations = int(max_iterations)
        self.objective = objective_checked(objective)
        if interference not in INTERFERENCE_MODES:
            raise ValueError(f"interference must be one of {', '.join(INTERFERENCE_MODES)} (got {interference!r})")
        self.interference = interference
        self.max_joint_choices = int(max_joint_choices)
        self.bound_time_limit_s = float(bound_time_limit_s)
        if not 0.0 <= float(gap_target) < 1.0:
            raise ValueError(f"gap_target must be in [0, 1) (got {gap_target!r})")
        self.gap_target = float(gap_target)  # certified: no more starts once the gap is proven within it

    def decide(self, obs: Observation):
        prob = SnapshotProblem(obs, self.level_factors, objective=self.objective)
        if obs.n_rus == 1:
            alloc, info = self._solve(prob, serving_ru_choices(prob, prob.single_ru_rate_table() / _UNIT_BPS))
            info.update(exact=True, mode="single_ru", gap=0.0 if info["proven_optimal"] else float("nan"))
        else:
            mode = self.interference
            if mode == "auto":
                mode = "joint" if joint_size(prob) <= self.max_joint_choices else "certified"
            alloc, info = {"joint": self._joint, "worst_case": self._worst_case, "certified": self._certified}[mode](prob)
            info["interference"] = self.interference
        ev = prob.evaluate(alloc)
        info.update(policy="optimal", **prob.outcome(ev))
        alloc.info = info
        return alloc

    # ------------------------------------------------------------------------------ several RUs
    def _joint(self, prob: SnapshotProblem):
        """Exact: one binary per PRB and joint state of every RU (``policies.interference``)."""
        size = joint_size(prob)
        alloc, info = self._solve(prob, joint_choices(prob, self.max_joint_choices, _UNIT_BPS))
        info.update(mode="joint", exact=True, joint_choices=size,
                    gap=0.0 if info["proven_optimal"] else float("nan"))
        return alloc, info

    def _worst_case(self, prob: SnapshotProblem, candidate: bool = False):
        """The reference model's bounded problem R-bar: exact for it, each UE on its serving RU."""
        table = prob.single_ru_rate_table(worst_case_interference_w(prob))
        alloc, info = self._solve_per_ru(prob, table / _UNIT_BPS, candidate)
        obs = prob.obs
        owned = alloc.prb_owner >= 0
        rr, kk = np.nonzero(owned)
        uu = alloc.prb_owner[rr, kk]
        bounded = np.bincount(uu, weights=table[uu, kk, prob.levels_of(alloc)[rr, kk]], minlength=obs.n_ues)
        f_bounded, v_bounded = objective_and_shortfall(prob.served(bounded), np.maximum(prob.need_bps - bounded, 0.0),
                                                       obs.ue_weight)
        info.update(mode="worst_case", exact=False, exact_for="worst_case", bounded_rates_bps=bounded,
                    bounded_objective_bps=float(f_bounded), bounded_violation_bps=float(v_bounded))
        return alloc, info

    def _certified(self, prob: SnapshotProblem):
        """Best feasible allocation found, with an upper bound on the true optimum and the gap between them."""
        from policies.certified import solve_certified  # it builds on this module's MILP: imported here, one-way

        return solve_certified(self, prob)

    def _solve_per_ru(self, prob: SnapshotProblem, table: np.ndarray, candidate: bool = False, solve=None):
        """Each UE on its serving RU with the rate table ``table`` (U, K, L) kbit/s fixed: the RUs' problems
        are independent (every tier is a sum over RUs), so each is solved as its own MILP and the
        allocations joined. Exact for that table; ``solve(prob, choices, candidate)`` -> (allocation, info)
        in place of ``_solve`` (the certified mode's starts solve the two first tiers at once)."""
        solve = self._solve if solve is None else solve
        obs = prob.obs
        owner = np.full((obs.n_rus, obs.n_prbs), -1, dtype=np.int64)
        power = np.zeros((obs.n_rus, obs.n_prbs))
        infos = []
        for r in range(obs.n_rus):
            alloc, info = solve(prob, serving_ru_choices(prob, table, ru=r), candidate)
            owner[r], power[r] = alloc.prb_owner[r], alloc.power_w[r]
            infos.append(info)
        level = np.maximum(prob.levels_of(Allocation(obs.serving_ru.copy(), owner, power)), 0)
        proven = all(i["proven_optimal"] for i in infos)
        info = {"status": "optimal" if proven else "+".join(i["status"] for i in infos), "proven_optimal": proven,
                "mip_gap": max(i["mip_gap"] for i in infos), "requested_gap": self.mip_gap,
                "binaries": sum(i["binaries"] for i in infos), "phases": sum(i["phases"] for i in infos),
                "shortcut": "+".join(sorted({i["shortcut"] for i in infos}))}
        return allocation_from_choices(obs, owner, level, prob.levels_w), info

    def _solve(self, prob: SnapshotProblem, choices: Choices, candidate: bool = False,
               node_limit: int | None = None):
        """The phases of the module docstring over the given choices (exact for them). A ``candidate``
        (a start for the certified mode's search) stops after the objective (or, when a shortcut
        skips it, the least power), to a looser gap, within ``node_limit`` branch-and-bound nodes per phase
        when given (a count: the answer does not depend on the machine's load)."""
        obs = prob.obs
        m = _Mip(prob, choices)
        opts = self._opts(candidate=candidate)
        if node_limit is not None:
            opts["node_limit"] = int(node_limit)
        served = prob.objective == "served"
        shortcut = "none"
        x = np.zeros(m.n_x, dtype=bool)
        if m.n_x:  # else nothing can be given to anyone: every PRB idle
            w = obs.ue_weight
            demand = np.where(m.cap > 0, np.maximum(m.need, m.cap), m.need) if served else m.need
            if served and m.greedy_covers(demand):
                shortcut = "every UE at its cap"
                m.lift_y(m.cap)  # y = c: every rate at least max(need, c); F = F*, V = 0
                m.fix_shortfall()
            else:
                if m.greedy_covers(m.need):
                    shortcut = "every need met"
                    m.fix_shortfall()
                elif m.n_s:  # phase 1: least total shortfall
                    short = np.maximum(m.need - m.rates_of(m.solve(m.sum_s, opts)), 0.0)
                    v_star = float(short[m.need_ues].sum())
                    m.rows.append((m.sum_s, -np.inf, v_star + prob.violation_tol / _UNIT_BPS))
                # phase 2: the largest objective among the least-shortfall allocations
                f_coef = m.f_coef(w)
                sol = m.solve(-f_coef, opts)
                if candidate:  # a start for the local search, which lowers power itself
                    return self._allocation(prob, m, sol[:m.n_x] > 0.5, shortcut)
                f_star = float(w @ np.minimum(m.rates_of(sol), m.cap))
                m.rows.append((f_coef, f_star - prob.objective_tol(f_star * _UNIT_BPS) / _UNIT_BPS, np.inf))
            x = self._tiers_3_4(m, candidate)
        return self._allocation(prob, m, x, shortcut)

    def _opts(self, exact: bool = False, candidate: bool = False) -> dict:
        # no presolve: these models are small and already reduced (allowed choices, clipped rates);
        # measured 1.2-2.4x less CPU on paper-cell states with it off, and the same answers
        gap = max(self.mip_gap, CANDIDATE_GAP) if candidate else self.mip_gap
        opts = {"time_limit": self.time_limit_s, "mip_rel_gap": gap, "disp": False, "presolve": False}
        if exact:
            opts.update(mip_rel_gap=0.0, mip_feasibility_tolerance=_MIP_FEASIBILITY_TOL)
        return opts

    def _tiers_3_4(self, m: "_Mip", candidate: bool = False) -> np.ndarray:
        """Least power steps, then smallest tie cost: two solves of integer objectives."""
        steps = m.pad(m.steps)
        if candidate:
            return m.solve(steps, self._opts(candidate=True))[:m.n_x] > 0.5
        p_star = round(float(steps @ m.solve(steps, self._opts(exact=True))))
        m.rows.append((steps, -np.inf, p_star + 0.5))
        return m.solve(m.pad(m.tie), self._opts(exact=True))[:m.n_x] > 0.5

    def _allocation(self, prob: SnapshotProblem, m: "_Mip", x: np.ndarray, shortcut: str):
        obs = prob.obs
        owner = np.full((obs.n_rus, obs.n_prbs), -1, dtype=np.int64)
        level = np.zeros((obs.n_rus, obs.n_prbs), dtype=np.int64)
        ch = m.ch
        on = x[ch.slot_x]  # the slots of the chosen choices
        owner[ch.slot_r[on], ch.slot_k[on]] = ch.slot_u[on]
        level[ch.slot_r[on], ch.slot_k[on]] = ch.slot_l[on]
        alloc = allocation_from_choices(obs, owner, level, prob.levels_w)
        proven = all(s == 0 for s in m.status)
        status = "+".join(_STATUS.get(s, str(s)) for s in m.status) or "optimal"
        info = {"status": "optimal" if proven else status, "proven_optimal": proven,
                "mip_gap": float(np.nanmax(m.gaps)) if m.gaps else 0.0, "requested_gap": self.mip_gap,
                "binaries": int(m.n_x), "phases": len(m.status), "shortcut": shortcut}
        return alloc, info


def serving_ru_choices(prob: SnapshotProblem, rate: np.ndarray, ru: int | None = None) -> Choices:
    """Choices (u, k, l) of every UE on its serving RU, from its rate table ``rate`` (U, K, L) kbit/s;
    with ``ru``, only the UEs that RU serves (one RU's separate problem)."""
    obs = prob.obs
    allowed = _allowed(prob, rate, prob.levels_w[obs.serving_ru])
    ues = None
    if ru is not None:
        ues = np.flatnonzero(obs.serving_ru == ru)
        allowed[obs.serving_ru != ru] = False
    uu, kk, ll = np.nonzero(allowed)
    xs = np.arange(uu.size)
    rus = obs.serving_ru[uu]
    return Choices(csr_matrix((rate[uu, kk, ll], (uu, xs)), shape=(obs.n_ues, uu.size)), rus * obs.n_prbs + kk,
                   xs, rus, kk, uu, ll, rate_table=rate, ues=ues)


class _Mip:
    """The MIP of one snapshot problem: variables x (the choices), z (further binaries), s (shortfall),
    y (served credit)."""

    def __init__(self, prob: SnapshotProblem, choices: Choices):
        obs = prob.obs
        self.obs, self.prob, self.ch = obs, prob, choices
        self.ru = obs.serving_ru
        self.need = prob.need_bps / _UNIT_BPS
        self.cap = prob.cap_bps / _UNIT_BPS
        self.rate_table = choices.rate_table
        self.n_x, self.n_z = choices.n_x, choices.n_z
        self.rate = choices.rate.tocsr()
        sx, sr, sl = choices.slot_x, choices.slot_r, choices.slot_l
        slot_w = prob.levels_w[sr, sl]
        #: (R, n_x) W each choice spends on each RU
        self.power = csr_matrix((slot_w, (sr, sx)), shape=(obs.n_rus, self.n_x))
        self.steps = np.bincount(sx, weights=prob.level_steps[sr, sl], minlength=self.n_x).astype(np.int64)
        self.tie = np.bincount(sx, weights=prob.choice_tie_cost(choices.slot_u, sr, choices.slot_k, sl),
                               minlength=self.n_x).astype(np.int64)
        #: the UEs this MIP decides for (the others are another MIP's: their needs are not counted here)
        self.member = np.ones(obs.n_ues, dtype=bool) if choices.ues is None else np.isin(np.arange(obs.n_ues), choices.ues)
        self.need_ues = np.flatnonzero((self.need > 0) & self.member)
        self.y_ues = (np.flatnonzero((self.cap > 0) & self.member) if prob.objective == "served"
                      else np.zeros(0, dtype=np.int64))
        self.n_s, self.n_y = self.need_ues.size, self.y_ues.size
        self.n_var = self.n_x + self.n_z + self.n_s + self.n_y
        self.lb = np.zeros(self.n_var)
        self.ub = np.r_[np.ones(self.n_x + self.n_z), self.need[self.need_ues], self.cap[self.y_ues]]
        self.sum_s = self.pad(np.zeros(self.n_x), s=np.ones(self.n_s))
        self.base = self._base_rows()
        self.rows: list[tuple] = []  # tier rows added by the phases: (coefficients, low, high)
        self.status, self.gaps = [], []
        self.last_x: np.ndarray | None = None  # the last phase's solution

    def pad(self, x_part, s=None, y=None) -> np.ndarray:
        """A full-length coefficient vector from its x, s and y parts (missing parts, and z, are zero)."""
        return np.r_[x_part, np.zeros(self.n_z), np.zeros(self.n_s) if s is None else s,
                     np.zeros(self.n_y) if y is None else y]

    def _base_rows(self) -> LinearConstraint | None:
        """PRB exclusivity, RU power, slice caps, rate needs, served rates, and the choices' own rows."""
        obs, ch, n_x = self.obs, self.ch, self.n_x
        blocks, lo, hi = [], [], []

        def block(mat, low, high):  # rows over x (then z, s and y as columns of their own)
            blocks.append(csr_matrix(mat))
            lo.extend(np.broadcast_to(low, (mat.shape[0],)))
            hi.extend(np.broadcast_to(high, (mat.shape[0],)))

        def over_x(row_of, col, val, n_rows):
            return csr_matrix((val, (row_of, col)), shape=(n_rows, self.n_var))

        if n_x:
            _, grp = np.unique(ch.group, return_inverse=True)
            n_grp = grp.max() + 1
            block(over_x(grp, np.arange(n_x), np.ones(n_x), n_grp), 1.0 if ch.exact_groups else -np.inf, 1.0)
            block(over_x(*self.power.nonzero(), self.power.data, obs.n_rus), -np.inf, obs.ru_max_power_w)
            capped = np.flatnonzero(np.isfinite(obs.slice_power_cap_w))
            n_sl = obs.slice_power_cap_w.size
            if capped.size:  # per RU and slice: the power of the slots given to the slice's UEs
                sl = obs.slice_id[ch.slot_u]
                on = np.isin(sl, capped)
                row = ch.slot_r[on] * n_sl + sl[on]
                w = self.prob.levels_w[ch.slot_r[on], ch.slot_l[on]]
                mat = over_x(row, ch.slot_x[on], w, obs.n_rus * n_sl)
                used = np.unique(row)
                block(mat[used], -np.inf, obs.slice_power_cap_w[used % n_sl])
        if ch.extra is not None:
            a = csr_matrix(ch.extra.A)
            block(csr_matrix((a.data, a.indices, a.indptr), shape=(a.shape[0], self.n_var)), ch.extra.lb, ch.extra.ub)
        # rate needs: sum r x + s >= need (r clipped to the need: same integer points, tighter LP)
        off_s = n_x + self.n_z
        if self.n_s:
            r = self.rate[self.need_ues].tocoo()
            val = np.minimum(r.data, self.need[self.need_ues][r.row])
            block(over_x(np.r_[r.row, np.arange(self.n_s)], np.r_[r.col, off_s + np.arange(self.n_s)],
                         np.r_[val, np.ones(self.n_s)], self.n_s), self.need[self.need_ues], np.inf)
        # served: y - sum r x <= 0 (r clipped to the cap, which bounds y anyway)
        if self.n_y:
            r = self.rate[self.y_ues].tocoo()
            val = np.minimum(r.data, self.cap[self.y_ues][r.row])
            block(over_x(np.r_[r.row, np.arange(self.n_y)], np.r_[r.col, off_s + self.n_s + np.arange(self.n_y)],
                         np.r_[-val, np.ones(self.n_y)], self.n_y), -np.inf, 0.0)
        if not lo:
            return None
        return LinearConstraint(vstack(blocks).tocsr(), np.array(lo, dtype=float), np.array(hi, dtype=float))

    def f_coef(self, w: np.ndarray) -> np.ndarray:
        """Coefficients of the objective F (kbit/s)."""
        if self.prob.objective == "served":
            return self.pad(np.zeros(self.n_x), y=w[self.y_ues])
        return self.pad(np.asarray(self.rate.T @ w).ravel())

    def rates_of(self, sol: np.ndarray) -> np.ndarray:
        """(U,) kbit/s of a solution's rounded choices: what the tiers compare."""
        return np.asarray(self.rate @ (sol[:self.n_x] > 0.5).astype(float)).ravel()

    def lift_y(self, low: np.ndarray) -> None:
        self.lb[self.n_x + self.n_z + self.n_s:] = low[self.y_ues]

    def fix_shortfall(self) -> None:
        self.ub[self.n_x + self.n_z:self.n_x + self.n_z + self.n_s] = 0.0

    def greedy_covers(self, demand: np.ndarray) -> bool:
        """Whether a greedy allocation gives every UE at least ``demand`` (U,) kbit/s within the budgets."""
        obs = self.obs
        if not (demand > 0).any():
            return True
        if self.rate_table is None:  # joint choices: no per-UE table to build the greedy allocation from
            return False
        share = obs.ru_max_power_w / obs.n_prbs
        power = np.zeros((obs.n_rus, obs.n_prbs))
        owner = np.full((obs.n_rus, obs.n_prbs), -1)
        demand = np.where(self.member, demand, 0.0)
        for u in np.argsort(-demand, kind="stable"):
            if demand[u] <= 0:
                break
            r = self.ru[u]
            fit = np.flatnonzero(self.prob.levels_w[r] <= share[r] * (1 + 1e-12))
            if fit.size == 0:
                return False
            lv = fit[np.argmax(self.prob.levels_w[r][fit])]
            rate = np.where(owner[r] < 0, self.rate_table[u, :, lv], 0.0)
            ranked = np.argsort(-rate, kind="stable")
            got = np.cumsum(rate[ranked])
            n = int(np.searchsorted(got, demand[u] * (1 + 1e-9))) + 1
            if n > obs.n_prbs or got[n - 1] < demand[u] * (1 + 1e-9):
                return False
            owner[r, ranked[:n]] = u
            power[r, ranked[:n]] = self.prob.levels_w[r][lv]
        caps = obs.slice_power_cap_w
        for sl in np.flatnonzero(np.isfinite(caps)):
            mine = (owner >= 0) & (obs.slice_id[np.maximum(owner, 0)] == sl)
            if (np.where(mine, power, 0.0).sum(axis=1) > caps[sl]).any():
                return False
        return True

    def solve(self, c: np.ndarray, options: dict) -> np.ndarray:
        cons = [LinearConstraint(np.asarray(a)[None, :], lo, hi) for a, lo, hi in self.rows]
        if self.base is not None:
            cons.insert(0, self.base)
        with warnings.catch_warnings(), _quiet_c_stdout():
            # scipy passes options it does not know to HiGHS, with a warning
            warnings.filterwarnings("ignore", "Unrecognized options detected", RuntimeWarning)
            res = milp(c, integrality=self.integrality, bounds=Bounds(self.lb, self.ub), constraints=cons,
                       options=options)
        if res.x is None and res.status in (2, 4) and not options.get("presolve", False):
            # "infeasible" or "solve error" on a feasible model is numerical (seen: a later phase
            # whose previous solution meets every row, with mip_feasibility_tolerance 1e-9; a first
            # phase ending in HiGHS status 4). Presolve, or a 10x tighter feasibility tolerance, takes
            # HiGHS down another path (each alone fixed one of the cases seen): retry with each.
            tol = options.get("mip_feasibility_tolerance", 1e-6) / 10
            for retry in ({"presolve": True}, {"mip_feasibility_tolerance": tol}):
                with warnings.catch_warnings(), _quiet_c_stdout():
                    warnings.filterwarnings("ignore", "Unrecognized options detected", RuntimeWarning)
                    res = milp(c, integrality=self.integrality, bounds=Bounds(self.lb, self.ub), constraints=cons,
                               options={**options, **retry})
                if res.x is not None:
                    break
        if res.x is None:
            if res.status not in (1, 2) or self.last_x is None:
                raise RuntimeError(f"optimal: phase {len(self.status) + 1} failed ({res.message})")
            # no feasible point within the time limit, or "infeasible" twice though the previous
            # phase's solution meets every tier row added so far (each was built from it): keep
            # that solution; reported as not proven
            self.status.append(res.status)
            self.gaps.append(np.nan)
            return self.last_x
        self.status.append(res.status)
        self.gaps.append(getattr(res, "mip_gap", np.nan))
        self.last_x = res.x
        return res.x

    def bound(self, c: np.ndarray, options: dict) -> float:
        """A lower bound on min c.v (valid when the solver stops early): HiGHS's dual bound, else the LP's."""
        cons = [LinearConstraint(np.asarray(a)[None, :], lo, hi) for a, lo, hi in self.rows]
        if self.base is not None:
            cons.insert(0, self.base)
        for integrality in (self.integrality, np.zeros(self.n_var)):
            with warnings.catch_warnings(), _quiet_c_stdout():
                warnings.filterwarnings("ignore", "Unrecognized options detected", RuntimeWarning)
                res = milp(c, integrality=integrality, bounds=Bounds(self.lb, self.ub), constraints=cons,
                           options=options)
            value = getattr(res, "mip_dual_bound", None) if integrality.any() else res.fun
            if value is not None and np.isfinite(value):
                return float(value)
        raise RuntimeError(f"optimal: no bound from the interference-free relaxation ({res.message})")

    @property
    def integrality(self) -> np.ndarray:
        return np.r_[np.ones(self.n_x + self.n_z), np.zeros(self.n_s + self.n_y)]


@contextlib.contextmanager
def _quiet_c_stdout():
    """Send the C library's stdout to /dev/null for the duration: HiGHS (1.12, inside scipy) prints a
    debug line there ("...transformNewIntegerFeasibleSolution tmpSolver.run();") whenever it repairs
    a solution after presolve, whatever its logging options; it must not reach a user's terminal or
    a piped table. Python's own output is flushed first; without a real stdout nothing is changed."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # e.g. stdout replaced by an in-memory stream
        yield
        return
    sys.stdout.flush()
    saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        if _LIBC is not None:
            _LIBC.fflush(None)  # what HiGHS left in the C buffer goes to /dev/null, not to the restored fd
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _load_libc():
    try:
        return ctypes.CDLL(None)
    except OSError:  # no C library to flush (not on Linux or macOS): only the redirection
        return None


_LIBC = _load_libc()


def _allowed(prob: SnapshotProblem, rate: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(U, K, L) bool: the choices the problem's order can pick (see the module docstring)."""
    ok = rate > 0
    # a level is dominated where a cheaper level of the same UE on the same PRB carries as much
    cheaper = levels[:, None, :] < levels[:, :, None]  # (U, L, L'): level l' cheaper than l
    best_cheaper = np.where(cheaper[:, None, :, :], rate[:, :, None, :], -np.inf).max(axis=3, initial=-np.inf)
    ok &= rate > best_cheaper
    ok[(prob.cap_bps <= 0) & (prob.need_bps <= 0)] = False  # under served: an empty buffer
    # a level above the UE's slice cap breaks the cap on its own (the halved levels, ``default_levels_w``,
    # are there for such a slice): the cap rows would exclude it, ESA's check does
    cap = prob.obs.slice_power_cap_w[prob.obs.slice_id]  # (U,)
    ok &= (levels <= cap[:, None] * (1 + REL_TOL))[:, None, :]
    return ok
