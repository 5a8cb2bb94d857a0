"""DQN's discrete action set: |A| enumerated slice templates, expanded to UEs, then decoded.

The paper's DQN picks one of |A| = 100 actions. Ours are *slice templates*: template a gives each
slice s a priority weight v_s, slice 0 fixed at 1 and every other slice at one of ``levels``
values spaced geometrically in [1/span, span] (defaults 10 and 8): with three slices that is
10 x 10 = 100 templates, from "eMBB first" (v = 1, 1/8, 1/8) to "URLLC and mMTC first" (1, 8, 8).

A template is expanded to the per-UE action vector of ``encoding`` in two rounds of weighted
water-filling with demand caps (``water_fill``: UE u gets min(d_u, lambda * v_s(u)), lambda chosen
so the shares fill what is left of the RU's PRBs, or every demand is met), demands in whole PRBs
at the UE's mean per-PRB rate: first every UE's rate need (the snapshot problem's, under the
objective), so needs come first as in the problem's order; then, with the PRBs left, what each UE
can still use (``encoding.rate_cap_bps``: under ``served`` its buffer over the decision interval,
under ``rate`` everything). Power shares equal PRB shares (the decoder then
spends each UE's power over its PRBs). The result goes through the one decoder, so a template
can never break a budget.
"""

from __future__ import annotations

import itertools

import numpy as np

from simcore.contracts import Observation

from .encoding import EncodingSpec, mean_prb_rate_bps, need_bps, rate_cap_bps

#: Largest template set accepted (levels ** (slices - 1)).
MAX_TEMPLATES = 1000


class SliceTemplates:
    """The enumerated templates of a scenario with ``n_slices`` slices."""

    def __init__(self, n_slices: int, levels: int = 10, span: float = 8.0):
        if levels < 1 or span < 1:
            raise ValueError("template levels must be >= 1 and span >= 1")
        n = levels ** max(n_slices - 1, 0)
        if n > MAX_TEMPLATES:
            raise ValueError(f"{levels} levels and {n_slices} slices make {n} templates (at most {MAX_TEMPLATES})")
        grid = np.geomspace(1.0 / span, span, levels) if levels > 1 else np.ones(1)
        rows = [(1.0, *combo) for combo in itertools.product(grid, repeat=max(n_slices - 1, 0))]
        #: (A, S) slice priority weights of each template
        self.weights = np.array(rows, dtype=float)[:, :n_slices]

    @property
    def n_actions(self) -> int:
        return self.weights.shape[0]

    def describe(self, a: int) -> str:
        return "slice weights " + ", ".join(f"{w:.3g}" for w in self.weights[a])

    def action(self, obs: Observation, a: int, spec: EncodingSpec, objective: str = "served") -> np.ndarray:
        """(action_dim,) action vector of template ``a`` on ``obs``."""
        out = np.zeros(spec.action_dim, dtype=np.float32)
        v = self.weights[int(a)][obs.slice_id]  # (U,)
        k = max(obs.n_prbs, 1)
        per_prb = np.maximum(mean_prb_rate_bps(obs), 1.0)
        need = in_prbs(need_bps(obs, objective), per_prb, k)
        usable = np.maximum(in_prbs(rate_cap_bps(obs, objective), per_prb, k), need)
        share = np.zeros(obs.n_ues)
        for r in range(obs.n_rus):
            ues = np.flatnonzero(obs.serving_ru == r)
            base = water_fill(need[ues], v[ues])  # needs first (all of them when they fit)
            left = 1.0 - base.sum()
            if left > 1e-12:
                base += water_fill(usable[ues] - base, v[ues], left)
            share[ues] = base
        out[:obs.n_ues] = share
        out[spec.max_ues:spec.max_ues + obs.n_ues] = share
        return out


def in_prbs(rate_bps: np.ndarray, per_prb_bps: np.ndarray, k: int) -> np.ndarray:
    """Share of K PRBs (whole PRBs, at most all) that carries ``rate_bps`` at ``per_prb_bps`` each."""
    return np.clip(np.ceil(np.minimum(rate_bps / per_prb_bps, k) - 1e-9), 0.0, k) / k


def water_fill(demand: np.ndarray, weight: np.ndarray, total: float = 1.0) -> np.ndarray:
    """Shares x_u = min(d_u, lambda w_u) with sum x = total, or x = d if the demands fit."""
    if demand.sum() <= total:
        return demand.copy()
    t = demand / weight  # lambda at which each UE's share reaches its demand
    order = np.argsort(t, kind="stable")
    d_sorted, w_sorted, t_sorted = demand[order], weight[order], t[order]
    filled = np.cumsum(d_sorted) - d_sorted  # demand of the UEs capped before UE i
    w_left = np.cumsum(w_sorted[::-1])[::-1]  # weight of UE i and those after it
    at_t = filled + t_sorted * w_left  # sum of shares when lambda = t_i
    i = min(int(np.searchsorted(at_t, total)), demand.size - 1)  # first breakpoint where the shares overflow
    lam = (total - filled[i]) / w_left[i]
    return np.minimum(demand, lam * weight)
