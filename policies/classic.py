"""Classic MAC schedulers: round robin, proportional fair, max-CQI.

Like every policy they decide once per scheduling interval (``scheduling.interval_tti``) and the
MAC applies the allocation every TTI of it; ``period_tti: 1`` makes them the per-TTI textbook MAC
schedulers. Each UE is served by its strongest RU, with the RU's power split equally over its PRBs
(constant PSD), every scheduler buffer-aware (no UE gets PRBs beyond what empties its buffer or
reaches its ``max_rate``).

How slices enter (one rule per scheduler, documented in the README):
- ``rr``  weighted round robin: each TTI the RU's PRBs are shared among backlogged UEs in
          proportion to their slice weight w_s (largest remainder), starting from a rotating
          pointer; PRBs a UE cannot use go to the next UEs in turn.
- ``pf``  weighted proportional fair: PRB k goes to argmax_u w_s * r[u,k] / Rbar[u], with r[u,k]
          the rate the UE's CQI supports on k and Rbar its EWMA throughput (t_c = 100 TTIs).
- ``maxcqi`` weighted max-rate: PRB k goes to argmax_u w_s * r[u,k].
``slice_aware: false`` sets every w_s to 1 (the plain textbook scheduler).
"""

from __future__ import annotations

import abc

import numpy as np

from simcore.contracts import Allocation, Observation, Policy, repair_allocation


class _ClassicScheduler(Policy):
    def __init__(self, period_tti: int | None = None, slice_aware: bool = True):
        if period_tti is not None and int(period_tti) < 1:
            raise ValueError(f"period_tti must be >= 1 (got {period_tti})")
        self.decision_period_tti = None if period_tti is None else int(period_tti)
        self.slice_aware = bool(slice_aware)

    def _weights(self, obs: Observation) -> np.ndarray:
        return obs.ue_weight if self.slice_aware else np.ones(obs.n_ues)

    def _horizon_tti(self, obs: Observation) -> int:
        """TTIs until the next decision."""
        return self.decision_period_tti or obs.interval_tti

    def _need_bits(self, obs: Observation) -> np.ndarray:
        """Bits each UE can use until the next decision: its buffer, capped by its max rate."""
        horizon_s = self._horizon_tti(obs) * obs.link.tti_s
        return np.minimum(obs.buffer_bits, obs.max_rate_bps * horizon_s)

    def _finish(self, obs: Observation, owner: np.ndarray) -> Allocation:
        """Associate every UE with its serving RU, equal power per PRB; repair enforces slice caps.

        Without slice caps the allocation is feasible as built (owners are served by the RU, at
        most K PRBs of P_RU / K each), so there is nothing to repair."""
        power = np.where(owner >= 0, (obs.ru_max_power_w / obs.n_prbs)[:, None], 0.0)
        if not _no_caps(obs):
            return repair_allocation(obs.serving_ru, owner, power, obs)
        return Allocation(np.array(obs.serving_ru, dtype=np.int64), owner, power)


def _no_caps(obs: Observation) -> bool:
    """No slice power cap is set (every cap infinite)."""
    return all(c == _INF for c in obs.slice_power_cap_w.tolist())


_INF = float("inf")


class _MetricScheduler(_ClassicScheduler):
    """Per PRB, give it to the UE with the highest metric; drop UEs whose need is covered."""

    @abc.abstractmethod
    def _scale(self, obs: Observation, cand: np.ndarray) -> np.ndarray:
        """(C,) factor of candidate UEs ``cand``: their metric on PRB k is factor * ``prb_rate_bps[cand, k]``."""

    def decide(self, obs: Observation) -> Allocation:
        n_ru, n_prb = obs.n_rus, obs.n_prbs
        need = self._need_bits(obs)
        horizon_s = self._horizon_tti(obs) * obs.link.tti_s
        backlogged = need > 0
        owner = np.full((n_ru, n_prb), -1, dtype=np.int64)
        for r in range(n_ru):
            cand = (backlogged & (obs.serving_ru == r) if n_ru > 1 else backlogged).nonzero()[0]
            if cand.size == 0:
                continue
            rate = obs.prb_rate_rows(cand)  # (C, K): a lazy observation completes no other row
            metric = self._scale(obs, cand)[:, None] * rate  # (C, K)
            bits = rate * horizon_s  # (C, K) each PRB carries over the horizon
            metric[bits <= 0] = -np.inf
            got = _greedy(metric, bits, need[cand])
            owner[r] = np.append(cand, -1)[got]  # (index -1: the appended -1, idle)
        if n_ru == 1 and _no_caps(obs):  # feasible as built (see _finish): no repair to try
            power = np.where(owner >= 0, float(obs.ru_max_power_w[0] / n_prb), 0.0)  # the same P_RU / K
            return Allocation(np.array(obs.serving_ru, dtype=np.int64), owner, power)
        return self._finish(obs, owner)


def greedy_by_prb(metric: np.ndarray, bits: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Sequential greedy over PRBs k = 0..K-1: PRB k goes to the candidate with the highest
    ``metric[:, k]`` (ties: lowest index) among those whose ``need`` is not yet covered by the bits
    of the PRBs they already got; -inf (and NaN) metrics never get a PRB. Returns (K,) candidate
    index or -1. ``metric`` (C, K), ``bits`` (C, K) and ``need`` (C,) are read only.

    Compiled (numba, cached after the first run): one call of C x K comparisons per decision, where
    the numpy version paid a few dozen small numpy calls (tests/test_core_schedulers.py compares it
    with the rule written out in Python).
    """
    return _greedy(np.ascontiguousarray(metric, dtype=float), np.ascontiguousarray(bits, dtype=float),
                   np.ascontiguousarray(need, dtype=float))


def _greedy(metric: np.ndarray, bits: np.ndarray, need: np.ndarray) -> np.ndarray:
    global _greedy_kernel
    if _greedy_kernel is None:
        _greedy_kernel = _compile_greedy()
    return _greedy_kernel(metric, bits, need)


_greedy_kernel = None


def _compile_greedy():
    """The kernel, compiled on first use (numba is imported only by runs that use these schedulers)."""
    from numba import njit

    @njit(cache=True, error_model="numpy")
    def greedy(metric, bits, need):
        n_c, n_prb = metric.shape
        left = need.copy()
        out = np.full(n_prb, -1, np.int64)
        for k in range(n_prb):
            best, best_m = -1, -np.inf
            for c in range(n_c):
                m = metric[c, k]
                if left[c] > 0 and m > best_m:  # strictly higher: ties keep the lowest index
                    best, best_m = c, m
            if best >= 0:
                out[k] = best
                left[best] -= bits[best, k]
        return out

    return greedy


class ProportionalFair(_MetricScheduler):
    name = "pf"

    def _scale(self, obs, cand):
        avg = np.maximum(obs.avg_throughput_bps[cand], 1.0)  # 1 bit/s floor: a new UE gets served first
        return self._weights(obs)[cand] / avg


class MaxCqi(_MetricScheduler):
    name = "maxcqi"

    def _scale(self, obs, cand):
        return self._weights(obs)[cand]


class RoundRobin(_ClassicScheduler):
    name = "rr"

    def __init__(self, period_tti: int | None = None, slice_aware: bool = True):
        super().__init__(period_tti, slice_aware)
        self._pointer = 0

    def reset(self, seed=None):
        self._pointer = 0

    def decide(self, obs: Observation) -> Allocation:
        owner = np.full((obs.n_rus, obs.n_prbs), -1, dtype=np.int64)
        need = self._need_bits(obs)
        horizon_s = self._horizon_tti(obs) * obs.link.tti_s
        # per PRB (RR ignores frequency), read for the UEs with data only (others stay 0: not served)
        wideband_bits = np.zeros(obs.n_ues)
        has_data = (need > 0).nonzero()[0]
        wideband_bits[has_data] = obs.prb_rate_rows(has_data).mean(axis=1) * horizon_s
        weights = self._weights(obs)
        n = obs.n_ues
        for r in range(obs.n_rus):
            backlogged = (obs.serving_ru == r) & (need > 0) & (wideband_bits > 0)
            order = (np.arange(n) + self._pointer) % n  # rotating start
            ues = order[backlogged[order]]
            if ues.size == 0:
                continue
            want = np.ceil(need[ues] / wideband_bits[ues]).astype(np.int64)  # PRBs that empty the buffer
            share = obs.n_prbs * weights[ues] / weights[ues].sum()
            quota = np.floor(share).astype(np.int64)
            extra = obs.n_prbs - quota.sum()
            if extra > 0:  # largest remainder; ties keep round-robin order
                quota[np.argsort(-(share - quota), kind="stable")[:extra]] += 1
            got = np.minimum(quota, want)
            spare = obs.n_prbs - got.sum()
            while spare > 0 and (got < want).any():  # hand unused PRBs on, in turn
                for i in np.flatnonzero(got < want):
                    if spare == 0:
                        break
                    got[i] += 1
                    spare -= 1
            owner[r, : got.sum()] = np.repeat(ues, got)
        self._pointer = (self._pointer + 1) % max(n, 1)
        return self._finish(obs, owner)
