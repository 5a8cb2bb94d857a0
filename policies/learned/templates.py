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
        need, usable = demands(obs, objective)
        rows = np.full((obs.n_rus, spec.max_ues), -1, dtype=np.int64)
        for r in range(obs.n_rus):
            ues = np.flatnonzero(obs.serving_ru == r)
            rows[r, :ues.size] = ues
        pad = lambda x: np.r_[x, np.zeros(spec.max_ues - obs.n_ues, dtype=x.dtype)]  # noqa: E731
        return self.actions(np.array([a]), pad(obs.slice_id)[None], pad(need)[None], pad(usable)[None],
                            rows, np.zeros(obs.n_rus, dtype=np.int64), spec)[0]

    def actions(self, a: np.ndarray, slice_id: np.ndarray, need: np.ndarray, usable: np.ndarray,
                rows: np.ndarray, row_state: np.ndarray, spec: EncodingSpec) -> np.ndarray:
        """(B, action_dim) float32 action vectors of templates ``a`` (B,) on B states at once.

        Per state, padded to ``max_ues``: slice_id, and the ``demands`` need and usable (B, M).
        rows (N, M): the UEs of each RU (with UEs) of the states, padded with -1; row_state (N,) its state.
        """
        v = self.weights[np.asarray(a, dtype=np.int64)[:, None], slice_id]  # (B, M)
        real = rows >= 0
        b, u = row_state[:, None], np.where(real, rows, 0)
        weight = np.where(real, v[b, u], 1.0)
        base = water_fill_rows(np.where(real, need[b, u], 0.0), weight, np.ones(rows.shape[0]))  # needs first
        left = 1.0 - _row_sums(base)
        more = left > 1e-12
        if more.any():
            base[more] += water_fill_rows(np.where(real, usable[b, u], 0.0)[more] - base[more], weight[more], left[more])
        out = np.zeros((v.shape[0], spec.action_dim), dtype=np.float32)
        rb, ru = np.nonzero(real)
        out[row_state[rb], rows[rb, ru]] = base[rb, ru]
        out[:, spec.max_ues:] = out[:, :spec.max_ues]
        return out


def demands(obs: Observation, objective: str) -> tuple[np.ndarray, np.ndarray]:
    """(U,) each UE's rate need and what it can use, as shares of K PRBs (whole PRBs at its mean
    per-PRB rate): the demands of the two water-filling rounds."""
    k = max(obs.n_prbs, 1)
    per_prb = np.maximum(mean_prb_rate_bps(obs), 1.0)
    need = in_prbs(need_bps(obs, objective), per_prb, k)
    return need, np.maximum(in_prbs(rate_cap_bps(obs, objective), per_prb, k), need)


def in_prbs(rate_bps: np.ndarray, per_prb_bps: np.ndarray, k: int) -> np.ndarray:
    """Share of K PRBs (whole PRBs, at most all) that carries ``rate_bps`` at ``per_prb_bps`` each."""
    return np.clip(np.ceil(np.minimum(rate_bps / per_prb_bps, k) - 1e-9), 0.0, k) / k


def water_fill(demand: np.ndarray, weight: np.ndarray, total: float = 1.0) -> np.ndarray:
    """Shares x_u = min(d_u, lambda w_u) with sum x = total, or x = d if the demands fit."""
    return water_fill_rows(np.asarray(demand, dtype=float)[None], np.asarray(weight, dtype=float)[None],
                           np.array([total], dtype=float))[0]


def _row_sums(x: np.ndarray) -> np.ndarray:
    """Sums along each row, left to right (zero padding at the end of a row changes nothing)."""
    return np.cumsum(x, axis=1)[:, -1] if x.shape[1] else np.zeros(x.shape[0])


def water_fill_rows(demand: np.ndarray, weight: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``water_fill`` of each row (N, M) with its ``total`` (N,) > 0; entries of zero demand (padding
    too, with any positive weight) get nothing and change nothing."""
    if demand.shape[1] == 0:
        return demand.copy()
    fits = _row_sums(demand) <= total
    if fits.all():
        return demand.copy()
    t = demand / weight  # lambda at which each UE's share reaches its demand
    order = np.argsort(t, axis=1, kind="stable")
    row = np.arange(demand.shape[0])[:, None]
    d_sorted, w_sorted, t_sorted = demand[row, order], weight[row, order], t[row, order]
    filled = np.cumsum(d_sorted, axis=1) - d_sorted  # demand of the UEs capped before UE i
    w_left = np.cumsum(w_sorted[:, ::-1], axis=1)[:, ::-1]  # weight of UE i and those after it
    at_t = filled + t_sorted * w_left  # sum of shares when lambda = t_i
    # the first breakpoint where the shares overflow
    i = np.minimum((at_t < total[:, None]).sum(axis=1), demand.shape[1] - 1)[:, None]
    lam = (total[:, None] - filled[row, i]) / w_left[row, i]
    return np.where(fits[:, None], demand, np.minimum(demand, lam * weight))
