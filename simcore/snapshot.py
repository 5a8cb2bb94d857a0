"""The snapshot problem: one scheduling decision as an optimisation problem (DESIGN.md §2).

Given an ``Observation``, choose for every PRB k of every RU r an owner UE (or none) and a power
level from a discrete set, each UE on at most one RU:

    maximise   sum_u w_s(u) r[u]                        (weighted sum rate, bit/s)
    subject to PRB exclusivity                          (one owner per PRB, structural)
               sum_k p[r,k] <= P_r                      (RU power budget)
               sum_{k owned by slice s} p[r,k] <= C_s   (per-slice power cap per RU, where set)
               r[u] >= need[u]                          (rate need, see below)

r[u] uses the SINR of DESIGN.md §2 with fronthaul quantization noise and interference between RUs
(``LinkModel``, the same code as the PHY). The rate need of a UE with B buffered bits is
need = min(max(R_min,s, B / D_s), R_max,s): its slice minimum rate, raised to what drains its
queue within the slice delay target, never above its maximum rate. A UE with an empty buffer
needs nothing. When no allocation meets every need, the problem's answer is the allocation with
the least total shortfall sum_u max(0, need[u] - r[u]) and, among those, the largest objective:
infeasible needs are reported (``Evaluation.violation_bps``), never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .contracts import Allocation, Observation, slice_power_w

#: Default power levels per PRB as multiples of the equal share P_RU / K.
DEFAULT_LEVEL_FACTORS = (0.5, 1.0, 2.0)
#: Relative tolerance when comparing objectives or violations (ties, feasibility).
REL_TOL = 1e-9


@dataclass
class Evaluation:
    """How an allocation fares in the snapshot problem."""

    objective_bps: float  # weighted sum rate
    rates_bps: np.ndarray  # (U,)
    need_bps: np.ndarray  # (U,)
    violation_bps: float  # total rate shortfall sum_u max(0, need - r)
    slack: dict = field(default_factory=dict)  # constraint name -> min slack (negative = broken)
    feasible: bool = True  # every budget kept and every need met

    @property
    def qos_met(self) -> np.ndarray:
        """(U,) bool: rate need met (UEs without a need count as met)."""
        return self.rates_bps >= self.need_bps * (1 - REL_TOL)


class SnapshotProblem:
    """The problem of one observation; ``levels_w`` (R, L) are the allowed per-PRB powers of each RU."""

    def __init__(self, obs: Observation, level_factors=DEFAULT_LEVEL_FACTORS, levels_w=None):
        self.obs = obs
        if levels_w is None:
            share = obs.ru_max_power_w / obs.n_prbs
            levels_w = share[:, None] * np.asarray(level_factors, dtype=float)[None, :]
        self.levels_w = np.atleast_2d(np.asarray(levels_w, dtype=float))
        if self.levels_w.shape[0] == 1 and obs.n_rus > 1:
            self.levels_w = np.repeat(self.levels_w, obs.n_rus, axis=0)
        if (self.levels_w <= 0).any():
            raise ValueError("power levels must be positive (an idle PRB is the zero-power choice)")
        self.need_bps = rate_need_bps(obs)

    @property
    def n_levels(self) -> int:
        return self.levels_w.shape[1]

    # ---------------------------------------------------------------------------- evaluation
    def rates(self, alloc: Allocation) -> np.ndarray:
        return self.obs.link.ue_rates_bps(self.obs.gain, alloc.ue_ru, alloc.prb_owner, alloc.power_w)

    def evaluate(self, alloc: Allocation) -> Evaluation:
        obs = self.obs
        rates = self.rates(alloc)
        shortfall = np.maximum(self.need_bps - rates, 0.0)
        slack = {"ru_power_w": float(np.min(obs.ru_max_power_w - alloc.power_w.sum(axis=1)))}
        caps = obs.slice_power_cap_w
        if np.isfinite(caps).any():
            used = slice_power_w(alloc, obs)
            finite = np.isfinite(caps)
            slack["slice_power_w"] = float(np.min(caps[finite][None, :] - used[:, finite]))
        owned = alloc.prb_owner >= 0
        ue_rus = np.zeros((obs.n_ues, obs.n_rus), dtype=bool)
        rr = np.broadcast_to(np.arange(obs.n_rus)[:, None], owned.shape)
        ue_rus[alloc.prb_owner[owned], rr[owned]] = True
        slack["one_ru_per_ue"] = float(1 - ue_rus.sum(axis=1).max(initial=0))
        slack["rate_need_bps"] = float(np.min(rates - self.need_bps, initial=0.0)) if obs.n_ues else 0.0
        budgets_ok = all(v >= -REL_TOL * max(1.0, float(obs.ru_max_power_w.max())) for k, v in slack.items()
                         if k != "rate_need_bps")
        violation = float(shortfall.sum())
        return Evaluation(float(np.dot(obs.ue_weight, rates)), rates, self.need_bps, violation, slack,
                          budgets_ok and violation <= self.violation_tol)

    @property
    def violation_tol(self) -> float:
        return REL_TOL * max(1.0, float(self.need_bps.sum()))

    def outcome(self, ev: "Evaluation") -> dict:
        """What an optimum reports of its answer; says so when no allocation meets every need."""
        info = {"objective_bps": ev.objective_bps, "violation_bps": ev.violation_bps,
                "needs_met": ev.violation_bps <= self.violation_tol}
        if not info["needs_met"]:
            info["message"] = (f"no allocation meets every rate need; returning the least total shortfall "
                               f"({ev.violation_bps:.6g} bit/s)")
        return info

    def is_better(self, violation: float, objective: float, best_violation: float, best_objective: float) -> bool:
        """The problem's order: less total shortfall first, then a larger objective."""
        tol_v = self.violation_tol
        if violation < best_violation - tol_v:
            return True
        if violation > best_violation + tol_v:
            return False
        return objective > best_objective * (1 + REL_TOL)

    # ------------------------------------------------------------------------- rate tables
    def single_ru_rate_table(self, interference_w: np.ndarray | None = None) -> np.ndarray:
        """(U, K, L) rate of UE u on PRB k of RU ``serving`` at each level, bit/s.

        Exact for one RU (no interference). For several RUs the caller passes the interference
        each UE sees on each PRB, ``interference_w`` (U, K), held fixed: an approximation.
        """
        obs = self.obs
        u_idx = np.arange(obs.n_ues)
        g = obs.gain[u_idx, obs.serving_ru, :]  # (U, K)
        p = self.levels_w[obs.serving_ru][:, None, :]  # (U, 1, L)
        interf = 0.0 if interference_w is None else interference_w[:, :, None]
        sinr = obs.link.sinr(g[:, :, None], p, obs.serving_ru[:, None, None], interf)
        return obs.link.prb_rate_bps(sinr, u_idx[:, None, None])


def level_factors_checked(level_factors) -> tuple[float, ...]:
    """Power levels as multiples of P_RU / K, validated (a policy parameter)."""
    try:
        factors = tuple(float(f) for f in level_factors)
    except (TypeError, ValueError):
        raise ValueError(f"level_factors must be a list of numbers (got {level_factors!r:.60})") from None
    if not factors or not all(0 < f < float("inf") for f in factors):
        raise ValueError("level_factors must be positive, finite multiples of P_RU / K")
    return factors


def rate_need_bps(obs: Observation) -> np.ndarray:
    """(U,) rate each UE needs: min(max(R_min, B / D), R_max) if it has data, else 0."""
    drain = obs.buffer_bits / (obs.max_delay_ms * 1e-3)
    need = np.minimum(np.maximum(obs.min_rate_bps, drain), obs.max_rate_bps)
    return np.where(obs.buffer_bits > 0, need, 0.0)


def allocation_from_choices(obs: Observation, owner: np.ndarray, level: np.ndarray, levels_w: np.ndarray) -> Allocation:
    """Build an Allocation from PRB owners (R, K) and level indices (R, K).

    A UE is associated with the RU whose PRBs it owns; a UE without PRBs stays with its serving
    RU (the convention every policy follows, so association differences mean something).
    """
    owner = np.asarray(owner, dtype=np.int64)
    power = np.where(owner >= 0, np.take_along_axis(levels_w, np.maximum(level, 0), axis=1), 0.0)
    ue_ru = np.array(obs.serving_ru, dtype=np.int64)
    rr, kk = np.nonzero(owner >= 0)
    ue_ru[owner[rr, kk]] = rr
    return Allocation(ue_ru, owner, power)
