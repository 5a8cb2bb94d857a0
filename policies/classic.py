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
    def _metric(self, obs: Observation, cand: np.ndarray, rate: np.ndarray) -> np.ndarray:
        """(C, K) metric of candidate UEs ``cand`` on each PRB; ``rate`` = ``obs.prb_rate_bps[cand]``."""

    def decide(self, obs: Observation) -> Allocation:
        n_ru, n_prb = obs.n_rus, obs.n_prbs
        need = self._need_bits(obs)
        horizon_s = self._horizon_tti(obs) * obs.link.tti_s
        backlogged = need > 0
        rows = []  # per RU: the owner of each PRB, -1 idle
        for r in range(n_ru):
            cand = (backlogged & (obs.serving_ru == r) if n_ru > 1 else backlogged).nonzero()[0]
            if cand.size == 0:
                rows.append([-1] * n_prb)
                continue
            rate = obs.prb_rate_bps[cand]  # (C, K)
            metric = self._metric(obs, cand, rate)  # (C, K)
            bits = rate * horizon_s  # (C, K) each PRB carries over the horizon
            metric[bits <= 0] = -np.inf
            ues = cand.tolist()
            rows.append([ues[i] if i >= 0 else -1 for i in _greedy(metric, bits, need[cand])])
        if n_ru == 1 and _no_caps(obs):  # feasible as built (see _finish): build it from the lists
            p = float(obs.ru_max_power_w[0] / n_prb)  # the same P_RU / K as _finish
            owner = np.array(rows, dtype=np.int64)
            power = np.array([[p if o >= 0 else 0.0 for o in rows[0]]])
            return Allocation(np.array(obs.serving_ru, dtype=np.int64), owner, power)
        return self._finish(obs, np.array(rows, dtype=np.int64).reshape(n_ru, n_prb))


def greedy_by_prb(metric: np.ndarray, bits: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Sequential greedy over PRBs k = 0..K-1: PRB k goes to the candidate with the highest
    ``metric[:, k]`` (ties: lowest index) among those whose ``need`` is not yet covered by the bits
    of the PRBs they already got; -inf metrics never get a PRB. Returns (K,) candidate index or -1.
    ``metric`` (C, K) may be overwritten; ``bits`` (C, K) and ``need`` (C,) are read only.

    Vectorised: the best candidate of every PRB is one argmax; only when a candidate turns out to be
    covered are the remaining PRBs ranked again without it, so the cost is one numpy pass per
    candidate whose need gets covered, not one per PRB. With every metric finite (PF, max-CQI with
    positive rates) the walk reads no metric entry and keeps no bit count for candidates whose need
    exceeds all their bits; otherwise it reads single entries (``item``).
    """
    return np.array(_greedy(metric, bits, need), dtype=np.int64)


def _greedy(metric: np.ndarray, bits: np.ndarray, need: np.ndarray) -> list[int]:
    """``greedy_by_prb`` as a list."""
    n_c, n_prb = metric.shape
    if n_c == 0 or n_prb == 0 or not metric.min() > -np.inf:  # (NaN too)
        return _greedy_general(metric, bits, need)
    # Every metric finite: a best that is -inf can only be a candidate covered already, so no entry
    # needs checking. A candidate whose need exceeds all the bits it could get on every PRB is
    # never covered: its bits need no bookkeeping (the margin dwarfs the sums' rounding).
    left = need.tolist()
    never = (need > np.maximum(bits, 0.0).sum(axis=1) * (1.0 + 1e-6)).tolist()
    uncovered = sum(1 for x in left if x > 0)
    by_prb = metric.T.copy()  # (K, C): ranking PRBs k.. is an argmax over contiguous rows
    best = by_prb.argmax(axis=1).tolist()
    out = [-1] * n_prb
    bits_item = bits.item
    neg_inf = -np.inf
    k = 0
    while k < n_prb:
        i = best[k]
        if left[i] > 0:
            out[k] = i
            if not never[i]:
                left[i] -= bits_item(i, k)
                if not left[i] > 0:
                    uncovered -= 1
            k += 1
        elif uncovered == 0:
            break  # every candidate is covered: PRBs k.. stay idle
        else:  # i is covered: rank PRBs k.. again without it
            by_prb[k:, i] = neg_inf
            best[k:] = by_prb[k:].argmax(axis=1).tolist()
    return out


def _greedy_general(metric: np.ndarray, bits: np.ndarray, need: np.ndarray) -> list[int]:
    """``greedy_by_prb`` for any metric (-inf entries, NaN)."""
    n_prb = metric.shape[1]
    best = metric.argmax(axis=0).tolist()
    left = need.tolist()
    out = [-1] * n_prb
    neg_inf = -np.inf
    item, bits_item = metric.item, bits.item
    k = 0
    while k < n_prb:
        i = best[k]
        if not item(i, k) > neg_inf:
            k += 1  # no candidate can use PRB k (the best is -inf)
        elif left[i] > 0:
            out[k] = i
            left[i] -= bits_item(i, k)
            k += 1
        else:  # i is covered: rank PRBs k.. again without it
            metric[i, k:] = neg_inf
            best[k:] = metric[:, k:].argmax(axis=0).tolist()
    return out


class ProportionalFair(_MetricScheduler):
    name = "pf"

    def _metric(self, obs, cand, rate):
        avg = np.maximum(obs.avg_throughput_bps[cand], 1.0)  # 1 bit/s floor: a new UE gets served first
        return (self._weights(obs)[cand] / avg)[:, None] * rate


class MaxCqi(_MetricScheduler):
    name = "maxcqi"

    def _metric(self, obs, cand, rate):
        return self._weights(obs)[cand][:, None] * rate


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
        wideband_bits = obs.prb_rate_bps.mean(axis=1) * horizon_s  # per PRB, RR ignores frequency
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
