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

import numpy as np

from simcore.contracts import Allocation, DecisionArrays, Observation, Policy, repair_allocation


class _ClassicScheduler(Policy):
    """Decides from ``DecisionArrays`` (``simcore.contracts.ArrayPolicy``): the engine hands them over
    without building an ``Observation``; ``decide(obs)`` reads the same arrays from the observation,
    so both give the same allocation for the same state."""

    def __init__(self, period_tti: int | None = None, slice_aware: bool = True):
        if period_tti is not None and int(period_tti) < 1:
            raise ValueError(f"period_tti must be >= 1 (got {period_tti})")
        self.decision_period_tti = None if period_tti is None else int(period_tti)
        self.slice_aware = bool(slice_aware)

    def decide(self, obs: Observation) -> Allocation:
        return self.decide_arrays(DecisionArrays.from_observation(obs))

    def _weights(self, a: DecisionArrays) -> np.ndarray:
        return a.ue_weight if self.slice_aware else np.ones(a.n_ues)

    def _horizon_s(self, a: DecisionArrays) -> float:
        """Seconds until the next decision."""
        return (self.decision_period_tti or a.interval_tti) * a.link.tti_s

    def _need_bits(self, a: DecisionArrays) -> np.ndarray:
        """Bits each UE can use until the next decision: its buffer, capped by its max rate."""
        return np.minimum(a.buffer_bits, a.max_rate_bps * self._horizon_s(a))

    def _finish(self, a: DecisionArrays, owner: np.ndarray) -> Allocation:
        """Associate every UE with its serving RU, equal power per PRB; repair enforces slice caps.

        Without slice caps the allocation is feasible as built (owners are served by the RU, at
        most K PRBs of P_RU / K each), so there is nothing to repair."""
        power = np.where(owner >= 0, (a.ru_max_power_w / a.n_prbs)[:, None], 0.0)
        if not _no_caps(a):
            return repair_allocation(a.serving_ru, owner, power, a)
        return Allocation(np.array(a.serving_ru, dtype=np.int64), owner, power)


def _no_caps(a: DecisionArrays) -> bool:
    """No slice power cap is set (every cap infinite)."""
    return all(c == _INF for c in a.slice_power_cap_w.tolist())


_INF = float("inf")


class _MetricScheduler(_ClassicScheduler):
    """Per PRB, give it to the UE with the highest metric w_s * r[u, k] * (1 / max(Rbar[u], 1) for PF)
    among those whose need is not covered yet: one compiled call (``_metric_kernel``)."""

    _pf: bool  # the metric divides by the UE's average throughput
    _const = None  # _constants' cache

    def decide_arrays(self, a: DecisionArrays) -> Allocation:
        c = self._const
        if (c is None or c[0] is not a.serving_ru or c[1] is not a.max_rate_bps or c[2] is not a.ue_weight
                or c[3] is not a.ru_max_power_w or c[4] is not a.slice_power_cap_w):
            c = self._constants(a)
        per_ue, serving_ru, ru_power_w, no_caps = c[5:]
        if per_ue is None:  # arrays that may change between decisions: everything fresh
            owner, power = _metric_allocate(a.prb_rate_bps, a.buffer_bits, a.max_rate_bps, self._weights(a),
                                            a.avg_throughput_bps, a.serving_ru, a.ru_max_power_w,
                                            self._horizon_s(a), self._pf)
        else:
            per_ue[0] = a.buffer_bits
            per_ue[3] = a.avg_throughput_bps
            owner, power = _metric_kernel_call(a.prb_rate_bps, per_ue, serving_ru, ru_power_w, self._horizon_s(a), self._pf)
        if not no_caps:
            return repair_allocation(a.serving_ru, owner, power, a)
        return Allocation(np.array(a.serving_ru, dtype=np.int64), owner, power)

    def compiled_plan(self, a: DecisionArrays) -> tuple | None:
        """What the engine's compiled decision (``simcore.decision_fast.metric_decision``) needs to run
        this scheduler's ``decide_arrays`` on the engine's arrays: (per-UE rows as ``_constants``
        keeps them, int64 serving RU, float RU power, horizon (s), PF or not); None when ``a``'s
        constants are not the engine's read-only ones or slice power caps are set (then the
        engine calls ``decide_arrays``)."""
        per_ue, serving_ru, ru_power_w, no_caps = self._constants(a)[5:]
        if per_ue is None or not no_caps:
            return None
        return per_ue, serving_ru, ru_power_w, self._horizon_s(a), self._pf

    def _constants(self, a: DecisionArrays) -> tuple:
        """The scenario constants of ``a`` as the kernel takes them, kept while the same read-only
        arrays come back (the engine's: set read-only at its start; then only the buffers and the
        average throughputs change): (the arrays themselves, (4, U) per-UE rows with the max rates
        and weights filled, int64 serving RU, float RU power, no slice caps). Other arrays: None for
        the three converted ones (``_metric_allocate`` converts them at every decision)."""
        keys = (a.serving_ru, a.max_rate_bps, a.ue_weight, a.ru_max_power_w, a.slice_power_cap_w)
        fixed = all(isinstance(x, np.ndarray) and x.base is None and not x.flags.writeable for x in keys)
        if fixed:
            per_ue = np.empty((4, a.n_ues))
            per_ue[1], per_ue[2] = a.max_rate_bps, self._weights(a)
            self._const = (*keys, per_ue, np.array(a.serving_ru, dtype=np.int64),
                           np.array(a.ru_max_power_w, dtype=float), _no_caps(a))
            return self._const
        return (*keys, None, None, None, _no_caps(a))


def _metric_allocate(rate, buffer_bits, max_rate_bps, weight, avg_bps, serving_ru, ru_power_w, horizon_s: float,
                     pf: bool) -> tuple[np.ndarray, np.ndarray]:
    """((R, K) owner, (R, K) power) of the metric schedulers; see ``_compile_metric``. The inputs go in
    as fresh writable arrays of one layout (the engine's constants are read-only, an xApp's decoded
    arrays too), so that one compiled signature serves every caller: numba compiles a new one for
    each combination of read-only flags, which would cost a first decision seconds."""
    per_ue = np.array((buffer_bits, max_rate_bps, weight, avg_bps), dtype=float)  # (4, U)
    return _metric_kernel_call(rate, per_ue, np.array(serving_ru, dtype=np.int64), np.array(ru_power_w, dtype=float),
                               horizon_s, pf)


def _metric_kernel_call(rate, per_ue, serving_ru, ru_power_w, horizon_s: float, pf: bool):
    """The kernel on ``rate`` made a writable C float64 array if it is not one; the others as it takes them."""
    global _metric_kernel
    if _metric_kernel is None:
        _metric_kernel = _compile_metric()
    if rate.dtype != _F64 or not rate.flags.c_contiguous or not rate.flags.writeable:
        rate = np.array(rate, dtype=float, order="C")
    return _metric_kernel(rate, per_ue, serving_ru, ru_power_w, horizon_s, pf)


_F64 = np.dtype(np.float64)
_metric_kernel = None


def _compile_metric():
    """The kernel (``simcore.decision_fast.metric_allocate``), imported on first use (numba is imported
    only by runs that use these schedulers; compiled once per machine, then read from the disk cache)."""
    from simcore.decision_fast import metric_allocate

    return metric_allocate


class ProportionalFair(_MetricScheduler):
    name = "pf"
    _pf = True


class MaxCqi(_MetricScheduler):
    name = "maxcqi"
    _pf = False


class RoundRobin(_ClassicScheduler):
    name = "rr"

    def __init__(self, period_tti: int | None = None, slice_aware: bool = True):
        super().__init__(period_tti, slice_aware)
        self._pointer = 0

    def reset(self, seed=None):
        self._pointer = 0

    def decide_arrays(self, a: DecisionArrays) -> Allocation:
        owner = np.full((a.n_rus, a.n_prbs), -1, dtype=np.int64)
        need = self._need_bits(a)
        horizon_s = self._horizon_s(a)
        # per PRB (RR ignores frequency), read for the UEs with data only (others stay 0: not served)
        wideband_bits = np.zeros(a.n_ues)
        has_data = (need > 0).nonzero()[0]
        wideband_bits[has_data] = a.prb_rate_bps[has_data].mean(axis=1) * horizon_s
        weights = self._weights(a)
        n = a.n_ues
        for r in range(a.n_rus):
            backlogged = (a.serving_ru == r) & (need > 0) & (wideband_bits > 0)
            order = (np.arange(n) + self._pointer) % n  # rotating start
            ues = order[backlogged[order]]
            if ues.size == 0:
                continue
            want = np.ceil(need[ues] / wideband_bits[ues]).astype(np.int64)  # PRBs that empty the buffer
            share = a.n_prbs * weights[ues] / weights[ues].sum()
            quota = np.floor(share).astype(np.int64)
            extra = a.n_prbs - quota.sum()
            if extra > 0:  # largest remainder; ties keep round-robin order
                quota[np.argsort(-(share - quota), kind="stable")[:extra]] += 1
            got = np.minimum(quota, want)
            spare = a.n_prbs - got.sum()
            while spare > 0 and (got < want).any():  # hand unused PRBs on, in turn
                for i in np.flatnonzero(got < want):
                    if spare == 0:
                        break
                    got[i] += 1
                    spare -= 1
            owner[r, : got.sum()] = np.repeat(ues, got)
        self._pointer = (self._pointer + 1) % max(n, 1)
        return self._finish(a, owner)
