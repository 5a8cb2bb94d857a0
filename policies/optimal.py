"""The exact optimum of the snapshot problem at scale: a mixed-integer program solved by HiGHS.

Formulation (one RU, where it is exact). Binary x[u,k,l] = UE u gets PRB k at power level l;
continuous s[u] >= 0 = rate shortfall of UE u. With the rate table r[u,k,l] (bit/s; the SINR
of UE u on PRB k depends only on its own power there when there is one RU):

    PRB exclusivity   sum_{u,l} x[u,k,l] <= 1                      for every PRB k
    RU power          sum_{u,k,l} p_l x[u,k,l] <= P_RU
    slice power cap   sum_{u in s,k,l} p_l x[u,k,l] <= C_s           where set
    rate need         sum_{k,l} r[u,k,l] x[u,k,l] + s[u] >= need[u] for UEs with a need

Phase 1 minimises sum_u s[u] (the least total shortfall, 0 when every need can be met); phase 2
maximises sum_u w_u sum r x subject to sum s <= phase-1 optimum: the snapshot problem's
lexicographic order, the same ESA uses. HiGHS reports whether optimality was proven within the
requested relative gap (``mip_gap``) and time limit (``time_limit_s``, per phase).

Several RUs: UEs stay with their serving RU and the interference each sees on each PRB is held
fixed while the MIP is solved, then recomputed from the solution's powers (start: every RU at full
power on every PRB) until the allocation repeats or ``max_iterations`` is reached. The result is
reported as approximate (``exact: False``); its objective is re-evaluated with the true SINR.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from simcore.contracts import Observation, Policy
from simcore.snapshot import DEFAULT_LEVEL_FACTORS, SnapshotProblem, allocation_from_choices, level_factors_checked

_STATUS = {0: "optimal", 1: "limit_reached", 2: "infeasible", 3: "unbounded", 4: "error"}


class ExactOptimum(Policy):
    name = "optimal"

    def __init__(self, level_factors=DEFAULT_LEVEL_FACTORS, time_limit_s: float = 30.0, mip_gap: float = 1e-6,
                 max_iterations: int = 8):
        self.level_factors = level_factors_checked(level_factors)
        self.time_limit_s = float(time_limit_s)
        self.mip_gap = float(mip_gap)
        self.max_iterations = int(max_iterations)

    def decide(self, obs: Observation):
        prob = SnapshotProblem(obs, self.level_factors)
        if obs.n_rus == 1:
            alloc, info = self._solve(prob, None)
            info.update(exact=True, iterations=1)
        else:
            alloc, info = self._fixed_point(prob)
        ev = prob.evaluate(alloc)
        info.update(policy="optimal", **prob.outcome(ev))
        alloc.info = info
        return alloc

    # ---------------------------------------------------------------------------------------
    def _fixed_point(self, prob: SnapshotProblem):
        obs = prob.obs
        power = np.repeat((obs.ru_max_power_w / obs.n_prbs)[:, None], obs.n_prbs, axis=1)  # full load
        best, best_ev, seen, info = None, None, [], {}
        for it in range(1, self.max_iterations + 1):
            alloc, info = self._solve(prob, obs.link.interference_w(obs.gain, obs.serving_ru, power))
            info["iterations"] = it
            ev = prob.evaluate(alloc)
            if best is None or prob.is_better(ev.violation_bps, ev.objective_bps, best_ev.violation_bps, best_ev.objective_bps):
                best, best_ev = alloc, ev
            key = alloc.prb_owner.tobytes() + alloc.power_w.tobytes()
            if key in seen:
                break
            seen.append(key)
            power = alloc.power_w
        info.update(exact=False, proven_optimal=False,
                    method="fixed point on inter-RU interference (approximate)")
        return best, info

    def _solve(self, prob: SnapshotProblem, interference_w):
        """Two-phase MIP with the interference (U, K) held fixed (None: one RU, exact)."""
        obs = prob.obs
        n_ue, n_prb, n_lvl = obs.n_ues, obs.n_prbs, prob.n_levels
        rate = prob.single_ru_rate_table(interference_w) / 1e6  # (U, K, L) Mbit/s for conditioning
        need = prob.need_bps / 1e6
        ru = obs.serving_ru
        levels = prob.levels_w[ru]  # (U, L)
        n_x = n_ue * n_prb * n_lvl
        idx = np.arange(n_x).reshape(n_ue, n_prb, n_lvl)
        uu, kk, ll = np.meshgrid(np.arange(n_ue), np.arange(n_prb), np.arange(n_lvl), indexing="ij")
        uu, kk, ll = uu.ravel(), kk.ravel(), ll.ravel()
        r_flat = rate.ravel()
        p_flat = levels[uu, ll]
        x_ub = (r_flat > 0).astype(float)  # a choice that carries nothing never helps
        has_need = need > 0
        n_s = n_ue
        n_var = n_x + n_s

        rows, cols, vals, lo, hi = [], [], [], [], []
        row = 0

        def add(r_cols, r_vals, lb, ub):
            nonlocal row
            rows.extend([row] * len(r_cols))
            cols.extend(r_cols)
            vals.extend(r_vals)
            lo.append(lb)
            hi.append(ub)
            row += 1

        # PRB exclusivity per (RU, PRB): one constraint row per RU that has UEs
        for r in np.unique(ru):
            ues = np.flatnonzero(ru == r)
            for k in range(n_prb):
                c = idx[ues, k, :].ravel()
                add(c, np.ones(c.size), -np.inf, 1.0)
            c = idx[ues].ravel()
            add(c, p_flat[c], -np.inf, float(obs.ru_max_power_w[r]))
            for sl in np.flatnonzero(np.isfinite(obs.slice_power_cap_w)):
                c = idx[ues[obs.slice_id[ues] == sl]].ravel()
                if c.size:
                    add(c, p_flat[c], -np.inf, float(obs.slice_power_cap_w[sl]))
        for u in np.flatnonzero(has_need):
            c = idx[u].ravel()
            add(list(c) + [n_x + u], list(r_flat[c]) + [1.0], float(need[u]), np.inf)
        A = coo_matrix((vals, (rows, cols)), shape=(row, n_var)).tocsr()
        cons = LinearConstraint(A, np.array(lo), np.array(hi))
        integrality = np.r_[np.ones(n_x), np.zeros(n_s)]
        s_ub = np.where(has_need, need, 0.0)
        opts = {"time_limit": self.time_limit_s, "mip_rel_gap": self.mip_gap, "disp": False}
        status, gaps = [], []

        # phase 1: least total shortfall
        v_star = 0.0
        if has_need.any():
            c1 = np.r_[np.zeros(n_x), np.ones(n_s)]
            res1 = milp(c1, integrality=integrality, bounds=Bounds(0, np.r_[x_ub, s_ub]), constraints=cons, options=opts)
            if res1.x is None:
                raise RuntimeError(f"optimal: phase 1 failed ({res1.message})")
            v_star = float(res1.x[n_x:].sum())
            status.append(res1.status)
            gaps.append(getattr(res1, "mip_gap", np.nan))
        # phase 2: the largest weighted sum rate among the least-shortfall allocations
        w = obs.ue_weight[uu]
        c2 = np.r_[-w * r_flat, np.zeros(n_s)]
        tol = 1e-9 * max(1.0, float(need.sum()))
        cap_s = LinearConstraint(np.r_[np.zeros(n_x), np.ones(n_s)][None, :], -np.inf, v_star + tol)
        res2 = milp(c2, integrality=integrality, bounds=Bounds(0, np.r_[x_ub, s_ub]), constraints=[cons, cap_s],
                    options=opts)
        if res2.x is None:
            raise RuntimeError(f"optimal: phase 2 failed ({res2.message})")
        status.append(res2.status)
        gaps.append(getattr(res2, "mip_gap", np.nan))

        x = res2.x[:n_x] > 0.5
        owner = np.full((obs.n_rus, n_prb), -1, dtype=np.int64)
        level = np.zeros((obs.n_rus, n_prb), dtype=np.int64)
        owner[ru[uu[x]], kk[x]] = uu[x]
        level[ru[uu[x]], kk[x]] = ll[x]
        alloc = allocation_from_choices(obs, owner, level, prob.levels_w)
        proven = all(s == 0 for s in status)
        info = {"status": _STATUS.get(status[-1], str(status[-1])) if proven else
                "+".join(_STATUS.get(s, str(s)) for s in status),
                "proven_optimal": proven, "mip_gap": float(np.nanmax(gaps)) if gaps else 0.0,
                "requested_gap": self.mip_gap, "binaries": int(x_ub.sum())}
        return alloc, info
