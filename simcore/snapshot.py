"""The snapshot problem: one scheduling decision as an optimisation problem, and its unique optimum.

Given an ``Observation``, choose for every PRB k of every RU r an owner UE (or none) and a power
level from a discrete set (``levels_w`` (R, L), by default 0.5, 1 and 2 times P_r / K, and under a
slice cap below P_r the same halved until the cap spread over every PRB is reached:
``default_levels_w``), each UE on at most one RU. r[u] is the UE's PHY rate with the SINR of the built-in PHY (``LinkModel``:
fronthaul quantization noise, interference between RUs). Constraints:

    PRB exclusivity                          one owner per PRB (structural)
    sum_k p[r,k] <= P_r                      RU power budget
    sum_{k owned by slice s} p[r,k] <= C_s   per-slice power cap per RU, where set
    r[u] >= need[u]                          rate need (soft: shortfall is minimised, then reported)

Two objectives (``objective``):

- ``served`` (buffer-aware; the default in the simulator): a UE's rate counts only up to what it
  can use before the next decision, c[u] = B[u] / T_dec with B[u] its buffered bits and T_dec =
  ``interval_tti`` TTIs. Maximise F = sum_u w_s(u) min(r[u], c[u]). The need of a UE with data is
  min(max(R_min,s, B / D_s), R_max,s) (its slice minimum rate, raised to what drains its queue
  within the slice delay target, never above its maximum rate); an empty UE needs nothing.
- ``rate`` (the paper's full-buffer objective, as in its reference model): maximise
  F = sum_u w_s(u) r[u], every bit/s of PHY rate counting; every UE needs R_min,s whatever its buffer.

The optimum is unique: allocations are ranked by four tiers, each deciding only among those tied
on the tiers before it, and ``esa`` and ``optimal`` return the same allocation, not only the same
objective:

1. least total shortfall V = sum_u max(0, need[u] - r[u]) (when every need can be met, V = 0);
2. largest objective F;
3. least transmit power, counted in power-level steps: P = sum_r p_r / s_r, with s_r the largest
   power dividing every level of RU r (P / (0.5 P_r / K) by default, P over the smallest level when
   a cap halved them; the total power in watts whenever the RUs' levels are equal). So no PRB goes to a UE that gains nothing from it (an empty
   UE under ``served``, one already at its cap c[u], a PRB past the spectral-efficiency cap): that
   PRB stays idle, and a PRB carries the lowest level that gives its rate;
4. smallest tie cost T = sum over the owned PRBs of t(u, r, k, l), a fixed pseudo-random integer
   per choice: t = 1 + h(i), i = l + L (u + U (k + K r)) the choice's index and h a bijective
   mixer of 24 bits (``tie_cost``), so every choice has its own t in 1..2^24. A tier-3 tie is
   a set of equally good allocations, often large (UEs at their cap that could use any of several
   PRBs, equal gains, identical UEs, a saturated spectral efficiency, the CQI table's steps); the
   pseudo-random t makes a second allocation of the same T an exact coincidence of sums of 24-bit
   integers, and keeps the MILP's last phase a plain problem for the solver (costs with a
   structure, such as ranks, made it up to ten times slower). Such a coincidence is the one case
   the order leaves open: ESA then keeps the first in its enumeration order.

Tiers 1 and 2 compare floats: values within ``TIE_RTOL`` (relative) or ``TIE_ABS_BPS`` count as
tied (float rounding, and the MIP solver's tolerances). Tiers 3 and 4 are integers, compared exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .contracts import Allocation, Observation, slice_power_w

#: Default power levels per PRB as multiples of the equal share P_RU / K.
DEFAULT_LEVEL_FACTORS = (0.5, 1.0, 2.0)
#: Relative tolerance when comparing objectives or violations (ties, feasibility).
REL_TOL = 1e-9
#: Tiers 1 and 2 (shortfall, objective) count as tied within TIE_RTOL (relative) or TIE_ABS_BPS (bit/s),
#: whichever is larger: float rounding, and ten times the MIP solver's feasibility tolerance.
TIE_RTOL = 1e-9
TIE_ABS_BPS = 1e-2
#: The objectives, first the default.
OBJECTIVES = ("served", "rate")
_MASK24 = (1 << 24) - 1
#: Largest denominator of a power-level ratio (levels must be multiples of a common step).
_MAX_LEVEL_DENOMINATOR = 1000


@dataclass
class Evaluation:
    """How an allocation fares in the snapshot problem. Arrays are (U,)."""

    objective_bps: float  # F: weighted sum of the rates that count (served: min(r, c); rate: r)
    rates_bps: np.ndarray  # PHY rate r[u]
    need_bps: np.ndarray  # rate need
    violation_bps: float  # V: total rate shortfall sum_u max(0, need - r)
    slack: dict = field(default_factory=dict)  # constraint name -> min slack (negative = broken)
    feasible: bool = True  # every budget kept and every need met
    served_bps: np.ndarray | None = None  # rate that counts: min(r, c) under served, r under rate
    power_steps: int = 0  # tier 3: transmit power in power-level steps
    tie_cost: int = 0  # tier 4: T

    @property
    def qos_met(self) -> np.ndarray:
        """(U,) bool: rate need met (UEs without a need count as met)."""
        return self.rates_bps >= self.need_bps - np.maximum(self.need_bps * REL_TOL, TIE_ABS_BPS)

    @property
    def key(self) -> tuple:
        """(V, F, P, T): the four tiers of the optimum's order."""
        return self.violation_bps, self.objective_bps, self.power_steps, self.tie_cost


class SnapshotProblem:
    """The problem of one observation; ``levels_w`` (R, L) are the allowed per-PRB powers of each RU."""

    def __init__(self, obs: Observation, level_factors=DEFAULT_LEVEL_FACTORS, levels_w=None,
                 objective: str = "served"):
        self.obs = obs
        self.objective = objective_checked(objective)
        if levels_w is None:
            levels_w = default_levels_w(obs, level_factors)
        self.levels_w = np.atleast_2d(np.asarray(levels_w, dtype=float))
        if self.levels_w.shape[0] == 1 and obs.n_rus > 1:
            self.levels_w = np.repeat(self.levels_w, obs.n_rus, axis=0)
        if (self.levels_w <= 0).any():
            raise ValueError("power levels must be positive (an idle PRB is the zero-power choice)")
        #: (R, L) int: each level in steps of its RU's power step (tier 3)
        self.level_steps = np.stack([_power_steps(row) for row in self.levels_w])
        #: seconds until the next decision: what a UE's buffer is drained over under ``served``
        self.decision_interval_s = obs.interval_tti * obs.link.tti_s
        if self.objective == "served":
            self.need_bps = rate_need_bps(obs)
            self.cap_bps = obs.buffer_bits / self.decision_interval_s
        else:
            self.need_bps = np.array(obs.min_rate_bps, dtype=float)
            self.cap_bps = np.full(obs.n_ues, np.inf)

    @property
    def n_levels(self) -> int:
        return self.levels_w.shape[1]

    # ---------------------------------------------------------------------------- the order
    def choice_tie_cost(self, u, r, k, level) -> np.ndarray:
        """t(u, r, k, l) of choices given as broadcastable int arrays (tier 4; see the module docstring)."""
        return tie_cost(level + self.n_levels * (u + self.obs.n_ues * (k + self.obs.n_prbs * r)))

    def tiers_3_4(self, owner: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Power steps P and tie cost T of allocations given as owners and level indices (..., R, K)."""
        owned = owner >= 0
        rr = np.arange(self.obs.n_rus)[:, None]
        kk = np.arange(self.obs.n_prbs)[None, :]
        lv = np.where(owned, level, 0)
        steps = np.where(owned, self.level_steps[rr, lv], 0).sum(axis=(-2, -1))
        cost = np.where(owned, self.choice_tie_cost(np.where(owned, owner, 0), rr, kk, lv), 0).sum(axis=(-2, -1))
        return steps, cost

    def served(self, rates: np.ndarray) -> np.ndarray:
        """(..., U) the part of each rate that counts in the objective."""
        return np.minimum(rates, self.cap_bps) if self.objective == "served" else rates

    @property
    def violation_tol(self) -> float:
        """Tier-1 tie tolerance (bit/s): shortfalls within it of the least count as tied (and as needs met)."""
        return max(TIE_ABS_BPS, TIE_RTOL * float(self.need_bps.sum()))

    def objective_tol(self, best_objective: float) -> float:
        """Tier-2 tie tolerance (bit/s) next to the best objective."""
        return max(TIE_ABS_BPS, TIE_RTOL * abs(float(best_objective)))

    def tied_best(self, violation, objective) -> np.ndarray:
        """(N,) bool: the candidates tied for the best on tiers 1 and 2 (shortfall, objective)."""
        violation = np.asarray(violation, dtype=float)
        objective = np.asarray(objective, dtype=float)
        keep = violation <= violation.min() + self.violation_tol
        f_best = objective[keep].max()
        return keep & (objective >= f_best - self.objective_tol(f_best))

    def best_index(self, violation, objective, power_steps, tie_cost) -> int:
        """Index of the optimum among N candidates given as (N,) arrays of V, F, P, T (the tiers in order).

        The first of candidates tied on all four tiers is kept (only ESA can meet such a tie).
        """
        keep = self.tied_best(violation, objective)
        big = np.iinfo(np.int64).max
        steps = np.where(keep, power_steps, big)
        keep &= steps == steps.min()
        return int(np.argmin(np.where(keep, tie_cost, big)))

    def is_better(self, a: "Evaluation", b: "Evaluation") -> bool:
        """True if ``a`` comes strictly before ``b`` in the optimum's order."""
        return self.best_index([b.violation_bps, a.violation_bps], [b.objective_bps, a.objective_bps],
                               [b.power_steps, a.power_steps], [b.tie_cost, a.tie_cost]) == 1

    # ---------------------------------------------------------------------------- evaluation
    def rates(self, alloc: Allocation) -> np.ndarray:
        return self.obs.link.ue_rates_bps(self.obs.gain, alloc.ue_ru, alloc.prb_owner, alloc.power_w)

    def rates_many(self, owner: np.ndarray, power: np.ndarray) -> np.ndarray:
        """(N, U) every UE's rate under N allocations given as PRB owners and powers (N, R, K); row j
        equals ``rates`` of allocation j bit for bit. One RU: all the owned PRBs at once through the
        link's own formula (``LinkModel.sinr``, ``prb_rate_bps``), summed per allocation and UE in
        PRB order as ``LinkModel.ue_rates_bps`` sums them; several RUs (interference couples the
        PRBs): allocation by allocation."""
        obs, n = self.obs, owner.shape[0]
        if obs.n_rus != 1:
            out = np.zeros((n, obs.n_ues))
            for j in range(n):
                out[j] = obs.link.ue_rates_bps(obs.gain, obs.serving_ru, owner[j], power[j])
            return out
        own = owner[:, 0]
        jj, kk = np.nonzero(own >= 0)  # allocation by allocation, PRBs in order
        ue = own[jj, kk]
        rate = obs.link.prb_rate_bps(obs.link.sinr(obs.gain[ue, 0, kk], power[jj, 0, kk], 0), ue)
        return np.bincount(jj * obs.n_ues + ue, weights=rate, minlength=n * obs.n_ues).reshape(n, obs.n_ues)

    def levels_many(self, owner: np.ndarray, power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Level index (N, R, K) of each owned PRB's power (-1 idle) of N allocations, and (N,) bool:
        every owned PRB's power is one of the problem's levels."""
        owned = owner >= 0
        diff = np.abs(power[..., None] - self.levels_w[None, :, None, :])
        level = np.argmin(diff, axis=-1)
        close = np.take_along_axis(diff, level[..., None], axis=-1)[..., 0] <= 1e-9 * self.levels_w.max()
        return np.where(owned, level, -1), ~(owned & ~close).any(axis=(-2, -1))

    def levels_of(self, alloc: Allocation) -> np.ndarray:
        """(R, K) level index of each owned PRB's power (-1 idle); ValueError if a power is not a level."""
        level, on_grid = self.levels_many(alloc.prb_owner[None], alloc.power_w[None])
        if not on_grid[0]:
            raise ValueError("allocation uses a power that is not one of the problem's levels")
        return level[0]

    def keys_many(self, owner: np.ndarray, power: np.ndarray):
        """The four tiers (V, F, P, T), each (N,), of N allocations given as PRB owners and powers
        (N, R, K), and their rates (N, U) and served rates (N, U): what ``evaluate`` reports of each,
        bit for bit (it calls this with N = 1). P and T are -1 where a power is off the level grid
        (a classic scheduler's equal split). ``select: objective`` of the learned policies ranks its
        candidates with it (``best_index`` of the tiers)."""
        rates = self.rates_many(owner, power)
        served = self.served(rates)
        objective, violation = objective_and_shortfall(served, np.maximum(self.need_bps - rates, 0.0), self.obs.ue_weight)
        level, on_grid = self.levels_many(owner, power)
        steps, cost = self.tiers_3_4(owner, np.maximum(level, 0))
        steps, cost = np.where(on_grid, steps, -1), np.where(on_grid, cost, -1)
        return violation, objective, steps, cost, rates, served

    def evaluate(self, alloc: Allocation) -> Evaluation:
        """Objective, shortfall and slacks of any allocation; tiers 3 and 4 where its powers are levels."""
        obs = self.obs
        violation, objective, steps, cost, rates, served = self.keys_many(alloc.prb_owner[None], alloc.power_w[None])
        rates, served, violation = rates[0], served[0], float(violation[0])
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
        return Evaluation(float(objective[0]), rates, self.need_bps, violation, slack,
                          budgets_ok and violation <= self.violation_tol, served, int(steps[0]), int(cost[0]))

    def outcome(self, ev: "Evaluation") -> dict:
        """What an optimum reports of its answer; says so when no allocation meets every need."""
        info = {"objective": self.objective, "objective_bps": ev.objective_bps, "violation_bps": ev.violation_bps,
                "needs_met": ev.violation_bps <= self.violation_tol, "power_steps": ev.power_steps,
                "tie_cost": ev.tie_cost}
        if not info["needs_met"]:
            info["message"] = (f"no allocation meets every rate need; returning the least total shortfall "
                               f"({ev.violation_bps:.6g} bit/s)")
        return info

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


def objective_and_shortfall(served: np.ndarray, shortfall: np.ndarray, weight: np.ndarray):
    """Tiers 1 and 2 of rates given per UE on the last axis (..., U): the objective F = sum_u w_u
    served_u and the total shortfall V = sum_u shortfall_u (``SnapshotProblem.served`` and
    max(0, need - r)). The one definition: ``evaluate`` and the batched rewards of the snapshot envs
    (``SnapshotBatch``) both call it.

    The sums run left to right (``np.cumsum``), so UEs padded with zeros at the end of the axis
    change nothing: a row of a padded batch gives its state's values bit for bit.
    """
    if served.shape[-1] == 0:
        zero = np.zeros(served.shape[:-1])
        return zero, zero.copy()
    return np.cumsum(weight * served, axis=-1)[..., -1], np.cumsum(shortfall, axis=-1)[..., -1]


def tie_cost(index: np.ndarray) -> np.ndarray:
    """t = 1 + h(i mod 2^24), h a fixed bijective 24-bit mixer (xor-shifts, odd multipliers): 1..2^24 (int64).

    Distinct for distinct choice indices below 2^24 (every instance with U R K L below 16.7 million).
    """
    x = np.asarray(index).astype(np.int64)
    x = (x ^ (x >> 24)) & _MASK24
    for shift, mult in ((12, 0x9E3779), (11, 0x85EBCB)):
        x ^= x >> shift
        x = (x * mult) & _MASK24
    x ^= x >> 12
    return 1 + x


def objective_checked(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)} (got {objective!r})")
    return objective


def level_factors_checked(level_factors) -> tuple[float, ...]:
    """Power levels as multiples of P_RU / K, validated (a policy parameter)."""
    try:
        factors = tuple(float(f) for f in level_factors)
    except (TypeError, ValueError):
        raise ValueError(f"level_factors must be a list of numbers (got {level_factors!r:.60})") from None
    if not factors or not all(0 < f < float("inf") for f in factors):
        raise ValueError("level_factors must be positive, finite multiples of P_RU / K")
    _power_steps(np.asarray(factors))
    return factors


def _power_steps(levels: np.ndarray) -> np.ndarray:
    """(L,) int: each level as a multiple of the largest power dividing all of them."""
    return np.array(_power_steps_of(tuple(float(v) for v in levels)), dtype=np.int64)


@functools.lru_cache(maxsize=256)
def _power_steps_of(levels: tuple[float, ...]) -> tuple[int, ...]:
    """``_power_steps`` of the levels as a tuple, memoised: every decision of a run has the same levels,
    and the exact fractions cost more than the rest of building its problem."""
    levels = np.asarray(levels)
    base = float(levels.min())
    ratios = [Fraction(float(v) / base).limit_denominator(_MAX_LEVEL_DENOMINATOR) for v in levels]
    if any(abs(float(q) * base - v) > 1e-9 * v for q, v in zip(ratios, levels)):
        raise ValueError(f"power levels must be multiples of a common step (ratios of small integers, "
                         f"e.g. 0.5, 1, 2); got {[float(v) for v in levels]}")
    den = np.lcm.reduce([q.denominator for q in ratios])
    steps = np.array([q.numerator * (den // q.denominator) for q in ratios], dtype=np.int64)
    return tuple(int(v) for v in steps // np.gcd.reduce(steps))


def cap_halvings(obs: Observation) -> int:
    """m: how many times the level set is halved so that the tightest slice cap can be spread over
    every PRB, the least m >= 0 with P_r 2^-m <= C_s for every RU r and capped slice s (0 without a
    cap below an RU's budget)."""
    caps = obs.slice_power_cap_w[np.isfinite(obs.slice_power_cap_w)]
    if caps.size == 0 or obs.n_rus == 0:
        return 0
    ratio = float(obs.ru_max_power_w.max()) / float(caps.min())
    return max(0, int(np.ceil(np.log2(ratio) - 1e-9)))


def default_levels_w(obs: Observation, level_factors=DEFAULT_LEVEL_FACTORS) -> np.ndarray:
    """(R, L) the problem's power levels: the factors times P_r / K, and under a slice cap below the
    RU budget the same factors halved j = 1..m times as well (``cap_halvings``), each value once.

    Levels relative to P_r / K alone let a slice capped below them use few PRBs or none, while any
    scheduler may spread the cap thinly over many; the halvings give a capped slice levels from the
    factors times C_s / K (its cap spread over every PRB) up to the RU's own, a factor of two apart
    as the default factors are, so it can spend its cap on few PRBs or many. Without such a cap
    (m = 0) the levels are the factors times P_r / K exactly, in the factors' order; added levels
    follow by halving j, then in the factors' order. Every RU has the same L (m is the largest any
    RU needs)."""
    factors = np.asarray(level_factors, dtype=float)
    ladder = list(factors)
    for j in range(1, cap_halvings(obs) + 1):
        for f in factors * 0.5 ** j:
            if not np.isclose(ladder, f, rtol=1e-12, atol=0.0).any():
                ladder.append(float(f))
    return share_levels_w(obs, ladder)


def share_levels_w(obs: Observation, level_factors=DEFAULT_LEVEL_FACTORS) -> np.ndarray:
    """(R, L) the level factors times each RU's equal share P_r / K, no halving: the problem's
    levels without a slice cap, and the learned policies' ladder whatever the caps."""
    share = obs.ru_max_power_w / obs.n_prbs
    return share[:, None] * np.asarray(level_factors, dtype=float)[None, :]


def rate_need_bps(obs: Observation) -> np.ndarray:
    """(U,) rate each UE needs under ``served``: min(max(R_min, B / D), R_max) if it has data, else 0."""
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
