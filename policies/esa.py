"""ESA: exhaustive search over the snapshot problem's discrete space (the paper's baseline).

Every PRB of every RU takes one of U * L + 1 choices (idle, or UE u at power level l), so the space
holds (U L + 1)^(R K) allocations. They are enumerated as base-(U L + 1) numbers in batches, each
batch scored with numpy (budgets, one RU per UE, rates with the full SINR of
``LinkModel`` including interference between RUs, rate-need shortfall, the objective, power steps
and index cost), and the best is kept in the snapshot problem's order (``simcore.snapshot``: least
shortfall, largest objective, least power, smallest index cost): the best of each batch, then the
best of those. Exact for any number of RUs, and exponential: instances above ``max_space`` are
refused before any work, with the size in the message.
"""

from __future__ import annotations

import numpy as np

from simcore.contracts import Observation, Policy
from simcore.snapshot import (DEFAULT_LEVEL_FACTORS, REL_TOL, SnapshotProblem, allocation_from_choices,
                              level_factors_checked, objective_and_shortfall, objective_checked)


class SearchSpaceTooLarge(ValueError):
    pass


def esa_space_size(n_ues: int, n_rus: int, n_prbs: int, n_levels: int) -> int:
    return (n_ues * n_levels + 1) ** (n_rus * n_prbs)


class ExhaustiveSearch(Policy):
    name = "esa"

    def __init__(self, level_factors=DEFAULT_LEVEL_FACTORS, max_space: int = 5_000_000, batch: int = 8192,
                 objective: str = "served"):
        self.level_factors = level_factors_checked(level_factors)
        self.objective = objective_checked(objective)
        self.max_space = int(max_space)
        self.batch = int(batch)

    def decide(self, obs: Observation):
        prob = SnapshotProblem(obs, self.level_factors, objective=self.objective)
        n_ue, n_ru, n_prb, n_lvl = obs.n_ues, obs.n_rus, obs.n_prbs, prob.n_levels
        size = esa_space_size(n_ue, n_ru, n_prb, n_lvl)
        if size > self.max_space:
            raise SearchSpaceTooLarge(
                f"ESA: the search space holds {size:,} allocations ((U*L+1)^(R*K) with U={n_ue}, L={n_lvl}, "
                f"R={n_ru}, K={n_prb}), above the limit max_space={self.max_space:,}")
        bests = []  # the best of each batch: (V, F, P, T, digits)
        base = n_ue * n_lvl + 1
        m = n_ru * n_prb
        weights = base ** np.arange(m, dtype=np.int64)
        for start in range(0, size, self.batch):
            idx = np.arange(start, min(size, start + self.batch), dtype=np.int64)
            digits = (idx[:, None] // weights[None, :]) % base  # (B, R*K)
            cand = self._score(prob, digits)
            if cand is not None:
                bests.append(cand)
        best = bests[prob.best_index(*(np.array([b[i] for b in bests]) for i in range(4)))]
        owner, level = _decode(best[4][None, :], n_lvl, n_ru, n_prb)
        alloc = allocation_from_choices(obs, owner[0], level[0], prob.levels_w)
        ev = prob.evaluate(alloc)
        alloc.info = {"policy": "esa", "space": size, **prob.outcome(ev), "exact": True, "proven_optimal": True,
                      "mode": "exhaustive", "gap": 0.0}
        return alloc

    # ------------------------------------------------------------------------------------
    def _score(self, prob: SnapshotProblem, digits: np.ndarray):
        """Best (V, F, P, T, digits) of a batch in the problem's order, or None if nothing in it keeps the budgets."""
        obs = prob.obs
        owner, level = _decode(digits, prob.n_levels, obs.n_rus, obs.n_prbs)  # (B, R, K)
        ok, violation, objective = score_batch(prob, owner, level)
        if not ok.any():
            return None
        idx = np.flatnonzero(ok)
        idx = idx[prob.tied_best(violation[idx], objective[idx])]  # tiers 3 and 4 only where 1 and 2 tie
        steps, cost = prob.tiers_3_4(owner[idx], level[idx])
        j = prob.best_index(violation[idx], objective[idx], steps, cost)
        i = idx[j]
        return float(violation[i]), float(objective[i]), int(steps[j]), int(cost[j]), digits[i].copy()


def score_batch(prob: SnapshotProblem, owner: np.ndarray, level: np.ndarray):
    """Allocations given as owners and level indices (B, R, K): (B,) whether each keeps the budgets (RU
    power, slice caps, one RU per UE), its shortfall V and objective F with the full SINR of ``LinkModel``."""
    obs = prob.obs
    n_ue, n_ru = obs.n_ues, obs.n_rus
    owned = owner >= 0
    power = np.where(owned, prob.levels_w[np.arange(n_ru)[None, :, None], np.where(owned, level, 0)], 0.0)
    ok = (power.sum(axis=2) <= obs.ru_max_power_w[None, :] * (1 + REL_TOL)).all(axis=1)
    own = np.where(owned, owner, 0)
    caps = obs.slice_power_cap_w
    if np.isfinite(caps).any():
        sl = obs.slice_id[own]
        for s in np.flatnonzero(np.isfinite(caps)):
            ok &= ((power * (owned & (sl == s))).sum(axis=2) <= caps[s] * (1 + REL_TOL)).all(axis=1)
    onehot = owned[..., None] & (own[..., None] == np.arange(n_ue))  # (B, R, K, U)
    if n_ru > 1:
        ok &= (onehot.any(axis=2).sum(axis=1) <= 1).all(axis=1)
    # SINR of every owned PRB (interference from the other RUs on the same PRB): the PHY's own formula
    sinr = obs.link.prb_sinr(obs.gain, owner, power)
    se = obs.link.spectral_efficiency(np.where(owned, sinr, 0.0), own)
    slot_rate = np.where(owned, se * obs.link.prb_bandwidth_hz, 0.0)
    rates = np.einsum("brk,brku->bu", slot_rate, onehot)
    objective, violation = objective_and_shortfall(prob.served(rates), np.maximum(prob.need_bps - rates, 0.0),
                                                   obs.ue_weight)
    return ok, violation, objective


def _decode(digits: np.ndarray, n_lvl: int, n_ru: int, n_prb: int):
    c = digits.reshape(digits.shape[0], n_ru, n_prb)
    owner = np.where(c > 0, (c - 1) // n_lvl, -1)
    level = np.where(c > 0, (c - 1) % n_lvl, 0)
    return owner, level

