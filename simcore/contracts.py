"""The contracts policies and PHY backends plug into (docs/architecture.md, section 5).

Shapes are per scheduling decision: U UEs, R RUs, K PRBs per RU, S slices.

- ``Observation``: what a policy sees.
- ``DecisionArrays``: the part of it a classic scheduler reads, handed to a policy with
  ``decide_arrays`` (``ArrayPolicy``) instead of an Observation.
- ``Allocation``: what a policy returns (association, PRB owners, power per PRB).
- ``Policy``: ``reset(seed)`` then ``decide(obs) -> Allocation`` every decision period.
- ``PhyBackend``: ``open(...)``, ``step(tti, allocation, gain) -> PhyTtiResult``, ``close()``.
- ``check_allocation``: the one feasibility check (raises ``InfeasibleAllocation`` naming the budget).
- ``repair_allocation``: the one repair of a raw (e.g. learned) output into a feasible allocation.
"""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple, Protocol

import numpy as np

from .phy import LinkModel, PhyTtiResult

#: Relative tolerance on power budgets (float rounding of sums).
POWER_RTOL = 1e-9
#: Key of ``Allocation.info`` whose {column: scalar} mapping is recorded with the decision.
RECORD_KEY = "record"
#: check_allocation calls numpy's reductions directly: the ndarray methods (.min, .any, ...) each run a
#: Python frame first, and an xApp's RIC runs the check on every answer (tests/test_xapp_check.py holds
#: the check as first written with the methods and shows both agree on random allocations).
_MIN, _MAX, _SUM, _ISFINITE, _COUNT = np.minimum.reduce, np.maximum.reduce, np.add.reduce, np.isfinite, np.count_nonzero


# The sizes of an Observation and of a DecisionArrays, written once for both (a NamedTuple takes
# no mixin): each class holds them as properties.
def _n_ues(arrays) -> int:
    """U, the number of UEs."""
    return arrays.slice_id.shape[0]


def _n_rus(arrays) -> int:
    """R, the number of RUs."""
    return arrays.ru_max_power_w.shape[0]


def _n_prbs(arrays) -> int:
    """K, the number of PRBs per RU."""
    return arrays.gain.shape[2]


@dataclass(frozen=True)
class Observation:
    """State of the network at a decision instant. Per-decision arrays are the policy's own copies;
    the scenario constants are shared and read-only."""

    tti: int
    time_s: float
    # per UE
    slice_id: np.ndarray  # (U,) int
    serving_ru: np.ndarray  # (U,) int: RU with the strongest large-scale gain
    gain: np.ndarray  # (U, R, K) linear channel power gain this TTI (perfect CSI at decision time)
    prb_sinr: np.ndarray  # (U, K) linear SINR on each PRB of the serving RU (equal power, full interference)
    prb_rate_bps: np.ndarray  # (U, K) rate the link model gives that SINR
    buffer_bits: np.ndarray  # (U,) bits queued at the DU for the UE
    hol_delay_ms: np.ndarray  # (U,) age of the head-of-line packet (0 if empty)
    avg_throughput_bps: np.ndarray  # (U,) EWMA of served rate, time constant EWMA_TTI TTIs
    qos_met_last: np.ndarray  # (U,) bool: rate target met (or buffer drained) over the last interval
    min_rate_bps: np.ndarray  # (U,)
    max_rate_bps: np.ndarray  # (U,)
    max_delay_ms: np.ndarray  # (U,)
    # constants of the scenario
    slice_weight: np.ndarray  # (S,)
    slice_names: tuple[str, ...]
    ru_max_power_w: np.ndarray  # (R,)
    slice_power_cap_w: np.ndarray  # (S,) per RU; inf where none
    interval_tti: int
    link: LinkModel

    n_ues = property(_n_ues)
    n_rus = property(_n_rus)
    n_prbs = property(_n_prbs)

    @functools.cached_property
    def cqi(self) -> np.ndarray:
        """(U, K) CQI 0..15 each UE would report for each PRB of its serving RU."""
        return self.link.cqi(self.prb_sinr)

    @functools.cached_property
    def wideband_sinr_db(self) -> np.ndarray:
        """(U,) mean over PRBs of the serving-RU SINR estimate, dB."""
        with np.errstate(divide="ignore"):
            return 10 * np.log10(self.prb_sinr.mean(axis=1))

    @property
    def ue_weight(self) -> np.ndarray:
        """(U,) slice weight of each UE."""
        return self.slice_weight[self.slice_id]


class DecisionArrays(NamedTuple):
    """What a scheduler that ranks the UEs with data by their per-PRB rates reads (the classic
    schedulers): a subset of ``Observation``, with the same meaning and shapes, built by the engine
    without an ``Observation`` (``ArrayPolicy``). ``prb_rate_bps`` rows are valid for the UEs with
    ``buffer_bits > 0``; the other rows may hold anything and must not be read. ``gain`` (U, R, K)
    likewise (the rows of the UEs with data, at the decision). Valid until the decision returns."""

    tti: int
    slice_id: np.ndarray  # (U,) int
    serving_ru: np.ndarray  # (U,) int
    buffer_bits: np.ndarray  # (U,)
    avg_throughput_bps: np.ndarray  # (U,)
    max_rate_bps: np.ndarray  # (U,)
    prb_rate_bps: np.ndarray  # (U, K) rows of the UEs with data
    gain: np.ndarray  # (U, R, K) rows of the UEs with data
    ue_weight: np.ndarray  # (U,) slice weight of each UE
    slice_weight: np.ndarray  # (S,)
    slice_names: tuple[str, ...]
    ru_max_power_w: np.ndarray  # (R,)
    slice_power_cap_w: np.ndarray  # (S,)
    interval_tti: int
    link: LinkModel

    @staticmethod
    def from_observation(obs: Observation) -> "DecisionArrays":
        return DecisionArrays(obs.tti, obs.slice_id, obs.serving_ru, obs.buffer_bits, obs.avg_throughput_bps,
                              obs.max_rate_bps, obs.prb_rate_bps, obs.gain, obs.ue_weight, obs.slice_weight,
                              obs.slice_names, obs.ru_max_power_w, obs.slice_power_cap_w, obs.interval_tti, obs.link)

    n_ues = property(_n_ues)
    n_rus = property(_n_rus)
    n_prbs = property(_n_prbs)


class ArrayPolicy(Protocol):
    """A policy that can decide from ``DecisionArrays`` as well as from an ``Observation``, with the
    same allocation for the same state (tests/test_core_schedulers.py). The engine then builds no
    ``Observation`` (``simcore.engine``: the rows of the UEs with data only, one compiled decision).
    ``decide_arrays`` returns fresh arrays it does not keep."""

    def decide_arrays(self, arrays: DecisionArrays) -> "Allocation": ...


@dataclass
class Allocation:
    """One decision. ``ue_ru`` (U,) int, -1 = not served; ``prb_owner`` (R, K) int UE index, -1 = idle;
    ``power_w`` (R, K) transmit power per PRB (W)."""

    ue_ru: np.ndarray
    prb_owner: np.ndarray
    power_w: np.ndarray
    info: dict = field(default_factory=dict)  # free-form notes from the policy (e.g. solver status)
    # info[RECORD_KEY], if present: {column: scalar} the engine adds to this decision's row of decisions.parquet

    @staticmethod
    def empty(n_ues: int, n_rus: int, n_prbs: int) -> "Allocation":
        return Allocation(np.full(n_ues, -1, dtype=np.int64), np.full((n_rus, n_prbs), -1, dtype=np.int64),
                          np.zeros((n_rus, n_prbs)))


class InfeasibleAllocation(ValueError):
    """An allocation breaks a budget; the message names it."""


def check_allocation(alloc: Allocation, obs: Observation) -> None:
    """Raise ``InfeasibleAllocation`` naming the first broken budget; return None if feasible."""
    if _feasible_fast(alloc, obs):
        return
    n_ue, n_ru, n_prb = obs.n_ues, obs.n_rus, obs.n_prbs
    if alloc.ue_ru.shape != (n_ue,):
        raise InfeasibleAllocation(f"ue_ru has shape {alloc.ue_ru.shape}, expected ({n_ue},)")
    if alloc.prb_owner.shape != (n_ru, n_prb) or alloc.power_w.shape != (n_ru, n_prb):
        raise InfeasibleAllocation(
            f"prb_owner {alloc.prb_owner.shape} / power_w {alloc.power_w.shape}, expected ({n_ru}, {n_prb})")
    ue_ru, owner, p = alloc.ue_ru, alloc.prb_owner, alloc.power_w
    if n_ue and (_MIN(ue_ru, None) < -1 or _MAX(ue_ru, None) >= n_ru):
        raise InfeasibleAllocation("association: ue_ru holds an RU index out of range")
    if _MIN(owner, None) < -1 or _MAX(owner, None) >= n_ue:
        raise InfeasibleAllocation("PRB assignment: prb_owner holds a UE index out of range")
    owned = owner >= 0
    if n_ue:  # (owner -1 reads the last UE's RU: masked by owned)
        ru_idx = _RU_INDEX[:n_ru] if n_ru <= _RU_INDEX.shape[0] else _ru_index(n_ru)
        wrong = owned & (ue_ru[owner] != ru_idx)
        if _COUNT(wrong):
            r, k = map(int, np.argwhere(wrong)[0])
            raise InfeasibleAllocation(
                f"PRB exclusivity: PRB {k} of RU {r} given to UE {owner[r, k]} which is not associated with RU {r}")
    ru_total = _SUM(p, 1)
    # finite RU sums and no negative power: every power is finite and non-negative
    if _COUNT(_ISFINITE(ru_total)) != ru_total.size or _MIN(p, None) < 0:
        raise InfeasibleAllocation("power: negative or non-finite power on some PRB")
    if _COUNT(p[~owned]):
        raise InfeasibleAllocation("power: idle PRBs must carry no power")
    over = ru_total > obs.ru_max_power_w * (1 + POWER_RTOL)
    if _COUNT(over):
        r = int(np.argmax(over))
        raise InfeasibleAllocation(
            f"RU power budget: RU {r} transmits {ru_total[r]:.6g} W > {obs.ru_max_power_w[r]:.6g} W")
    if _COUNT(_ISFINITE(obs.slice_power_cap_w)):
        per_slice = slice_power_w(alloc, obs)  # (R, S)
        over = per_slice > obs.slice_power_cap_w[None, :] * (1 + POWER_RTOL)
        if _COUNT(over):
            r, si = map(int, np.argwhere(over)[0])
            raise InfeasibleAllocation(
                f"slice power cap: slice '{obs.slice_names[si]}' on RU {r} uses {per_slice[r, si]:.6g} W "
                f"> {obs.slice_power_cap_w[si]:.6g} W")


def _feasible_fast(alloc: Allocation, obs) -> bool:
    """True only if ``check_allocation`` would pass; False when it may not (it then decides, and
    names the broken budget). The same conditions in one compiled call (``_feasible_kernel``): for
    the engine's decisions (a decision every TTI) a few dozen small numpy calls cost more than the
    work. Covers integer indices, float powers and no slice power caps; anything else is left to the
    full check."""
    ue_ru, owner, p = alloc.ue_ru, alloc.prb_owner, alloc.power_w
    n_ru = obs.ru_max_power_w.shape[0]
    n_ue = obs.slice_id.shape[0]
    if (n_ue == 0 or ue_ru.ndim != 1 or ue_ru.shape[0] != n_ue or owner.ndim != 2 or owner.shape[0] != n_ru
            or owner.shape[1] != obs.n_prbs or p.shape != owner.shape or ue_ru.dtype != _I64
            or owner.dtype != _I64 or p.dtype != _F64 or not p.flags.c_contiguous
            # read-only arrays (e.g. decoded from an xApp's answer) would need another compiled signature
            or not (ue_ru.flags.writeable and owner.flags.writeable and p.flags.writeable)):
        return False
    budget, caps = obs.ru_max_power_w, obs.slice_power_cap_w
    cache = _budget_cache
    if cache[0] is budget and cache[1] is caps:
        limit = cache[2]
    else:
        limit = budget * (1 + POWER_RTOL) if all(c == _INF for c in caps.tolist()) else None
        if all(x.base is None and not x.flags.writeable for x in (budget, caps)):  # (the engine's constants)
            cache[:] = budget, caps, limit
    if limit is None:
        return False  # slice caps: the full check
    return (_feasible_kernel or feasible_kernel())(ue_ru, owner, p, n_ue, limit)


_I64, _F64 = np.dtype(np.int64), np.dtype(np.float64)
_INF = float("inf")
_feasible_kernel = None
#: (RU budgets, slice caps, the kernel's budgets or None with caps) of the last read-only arrays seen:
#: their contents cannot change, so the engine's decisions reuse what they give
_budget_cache: list = [None, None, None]


def feasible_kernel():
    """The kernel of ``_feasible_fast``: ``(ue_ru, prb_owner, power_w, n_ue, (R,) budget x (1 + POWER_RTOL))
    -> bool``, with the RU totals' summation as ``.pairwise_sum(row, 0, n)``. Compiled on first use
    (numba; cached on disk after the first run)."""
    global _feasible_kernel
    if _feasible_kernel is None:
        _feasible_kernel = _compile_feasible()
    return _feasible_kernel


def _compile_feasible():
    # a module-level kernel: numba's disk cache keys a closure by its free variables, and a captured
    # dispatcher (pairwise_sum) hashes differently in every process, so a closure recompiled on every
    # run (0.6 s) and added a cache file each time
    from simcore.decision_fast import feasible_allocation

    return feasible_allocation


def _ru_index(n_ru: int) -> np.ndarray:
    """(R, 1) RU indices, to compare with (R, K) arrays."""
    return np.arange(n_ru)[:, None]


_RU_INDEX = _ru_index(64)  # the common case, built once


def slice_power_w(alloc: Allocation, obs: Observation) -> np.ndarray:
    """(R, S) power each slice uses on each RU."""
    n_s = obs.slice_weight.shape[0]
    owned = alloc.prb_owner >= 0
    sl = np.where(owned, obs.slice_id[np.where(owned, alloc.prb_owner, 0)], n_s)
    out = np.zeros((obs.n_rus, n_s + 1))
    np.add.at(out, (np.broadcast_to(np.arange(obs.n_rus)[:, None], sl.shape), sl), alloc.power_w)
    return out[:, :n_s]


def repair_allocation(ue_ru, prb_owner, power_w, obs: Observation) -> Allocation:
    """Turn a raw decision into a feasible one, changing as little as the budgets force.

    - association indices outside [-1, R) become -1 (not served);
    - a PRB owned by an invalid UE, or by a UE not associated with that RU, becomes idle;
    - negative / non-finite power becomes 0, idle PRBs carry no power;
    - each slice's power on each RU is scaled down to its cap, then each RU's total to its budget.
    """
    n_ue, n_ru, n_prb = obs.n_ues, obs.n_rus, obs.n_prbs
    ue_ru = np.asarray(ue_ru, dtype=np.int64).reshape(n_ue).copy()
    ue_ru[(ue_ru < -1) | (ue_ru >= n_ru)] = -1
    owner = np.asarray(prb_owner, dtype=np.int64).reshape(n_ru, n_prb).copy()
    owner[(owner < -1) | (owner >= n_ue)] = -1
    owned = owner >= 0
    owner[owned & (ue_ru[np.where(owned, owner, 0)] != _ru_index(n_ru))] = -1
    owned = owner >= 0
    p = np.asarray(power_w, dtype=float).reshape(n_ru, n_prb)
    p = np.where(owned & (p > 0) & np.isfinite(p), p, 0.0)
    alloc = Allocation(ue_ru, owner, p)
    caps = obs.slice_power_cap_w
    if np.isfinite(caps).any():
        per_slice = slice_power_w(alloc, obs)
        scale = np.where(per_slice > caps[None, :], caps[None, :] / np.maximum(per_slice, 1e-300), 1.0)
        sl = obs.slice_id[np.where(owned, owner, 0)]
        p *= np.where(owned, scale[np.broadcast_to(_ru_index(n_ru), sl.shape), sl], 1.0)
    total = p.sum(axis=1)
    over = total > obs.ru_max_power_w
    if over.any():
        p *= np.where(over, obs.ru_max_power_w / np.maximum(total, 1e-300), 1.0)[:, None]
    return alloc


def weighted_sum_rate(alloc: Allocation, obs: Observation) -> float:
    """Objective of the snapshot problem: sum_s w_s sum_{u in s} r[u] (bit/s) at decision-time CSI."""
    rates = obs.link.ue_rates_bps(obs.gain, alloc.ue_ru, alloc.prb_owner, alloc.power_w)
    return float(np.dot(obs.ue_weight, rates))


class Policy(abc.ABC):
    """An allocation policy. Found by name through the ``oransim.policies`` entry points.

    ``decision_period_tti``: None = decide every scheduling interval of the scenario (RIC xApps);
    an int overrides it (classic MAC schedulers decide every TTI).
    """

    name: ClassVar[str] = "policy"
    decision_period_tti: int | None = None

    def reset(self, seed: int | None = None) -> None:  # noqa: B027 - optional hook
        """Called once before the run with the run's policy seed."""

    @abc.abstractmethod
    def decide(self, obs: Observation) -> Allocation:
        """Return a feasible allocation for this observation."""

    def summary(self) -> dict:
        """What the policy reports of the run once it has ended; merged into the manifest's ``policy``."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Called once after the run (release sockets, processes)."""


class PhyBackend(Protocol):
    """Turns an allocation and the channel into per-PRB SINR and delivered bits, one TTI at a time.

    ``step(tti, allocation, gain)``: ``gain`` (U, R, K) is the engine's live channel. By default only
    the entries the SINR of the PRB owners needs are current at ``tti``, ``gain[prb_owner[r, k], :, k]``
    for every active PRB (r, k); the others may hold older draws. A backend that reads more (ns-3
    computes every UE's CQI from the whole table) sets ``needs_full_gain = True`` and then every
    entry is current at every TTI.
    """

    name: str
    needs_full_gain: bool  # optional; False if absent

    def open(self, scenario, geometry, link: LinkModel, *, channel=None, serving_ru=None) -> None:
        """Called once before the first TTI; ``channel`` (simcore.channel.Channel) and ``serving_ru`` (U,)
        are the engine's, for backends that model the network themselves."""

    def step(self, tti: int, allocation: Allocation, gain: np.ndarray) -> PhyTtiResult: ...

    def close(self) -> None: ...
