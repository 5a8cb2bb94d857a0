"""The one state/action encoding of the learned policies (versioned).

Every learned policy shares this module (DQN, SS-VAE and Diffusion-QL), so they differ only in how they learn.

State (``encode_state``): a flat float32 vector ``U_max * F + G``. Per UE, padded with zero rows
up to ``max_ues`` (``spec.n_ue_features`` = F columns, in this order):

    present (the mask: 1 for a real UE, 0 for padding) | slice one-hot (S) | wideband SINR
    (dB - 10) / 20 | channel profile: mean SINR dB of each of C sub-bands minus the wideband
    value, / 10 | log1p(buffer / 1 kbit) / 10 | head-of-line delay / slice deadline (<= 10) |
    log1p(recent throughput / slice minimum rate) / 5 | QoS met last interval | rate need in
    PRBs / K | rate the buffer can use before the next decision in PRBs / K | slice weight / max

("in PRBs" = divided by the UE's mean per-PRB rate on its serving RU; both <= 2.) Then G globals:
RU power (dBm - 40) / 10, UEs / max_ues, K / 100, decision interval (ms) / 10, slice weights / max
(S), slice power caps (dBm - 40) / 10 or 1 where none (S). Nothing depends on the order of UEs
except the row each lands in, so a set-based network (``nets.UeSetEncoder``) is invariant to it;
a scenario with fewer UEs than ``max_ues`` fills fewer rows, one with more does not fit.

Action (``ACTION_LOW``..``ACTION_HIGH`` = [0, 1], shape ``2 * max_ues``): per UE its share of its
RU's PRBs, then its share of its RU's power budget (the continuous half of the decision vector of
``analysis.agreement``). Padding entries are ignored.

The one decoder from any action vector to a feasible ``Allocation`` is ``decoder.decode_action``.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

from simcore.contracts import Allocation, Observation
from simcore.snapshot import DEFAULT_LEVEL_FACTORS, OBJECTIVES, SnapshotProblem, rate_need_bps, share_levels_w

from . import encoding_fast

#: Bumped whenever the meaning or layout of a state or action vector changes; checkpoints carry it.
ENCODING_VERSION = 1
ACTION_LOW, ACTION_HIGH = 0.0, 1.0
#: Every state feature lies in [-STATE_BOUND, STATE_BOUND] (clipped).
STATE_BOUND = 10.0
#: Number of global features besides the per-slice ones.
_N_FIXED_GLOBALS = 4
#: Per-UE features besides the slice one-hot and the channel profile.
_N_FIXED_UE_FEATURES = 9


class EncodingMismatch(ValueError):
    """An observation (or checkpoint) does not fit an encoding spec; the message says why."""


@dataclass(frozen=True)
class EncodingSpec:
    """Everything that fixes the vectors' shapes; stored in datasets and checkpoints."""

    max_ues: int
    """Rows of per-UE features (UEs beyond it do not fit)."""
    slice_names: tuple[str, ...]
    """Slices in the order of the one-hot columns; a scenario must have the same ones."""
    n_subbands: int = 6
    """Sub-bands of the compressed per-PRB channel profile."""
    max_prb_power_factor: float = max(DEFAULT_LEVEL_FACTORS)
    """The decoder's per-PRB power ceiling, a multiple of P_RU / K."""
    version: int = ENCODING_VERSION

    @property
    def n_slices(self) -> int:
        return len(self.slice_names)

    @property
    def n_ue_features(self) -> int:
        return _N_FIXED_UE_FEATURES + self.n_slices + self.n_subbands

    @property
    def n_globals(self) -> int:
        return _N_FIXED_GLOBALS + 2 * self.n_slices

    @property
    def state_dim(self) -> int:
        return self.max_ues * self.n_ue_features + self.n_globals

    @property
    def action_dim(self) -> int:
        return 2 * self.max_ues

    def to_dict(self) -> dict:
        d = asdict(self)
        d["slice_names"] = list(self.slice_names)
        return d

    @staticmethod
    def from_dict(d: dict) -> "EncodingSpec":
        d = dict(d)
        version = int(d.get("version", -1))
        if version != ENCODING_VERSION:
            raise EncodingMismatch(f"encoding version {version}, this oransim reads version {ENCODING_VERSION}")
        d["slice_names"] = tuple(d["slice_names"])
        return EncodingSpec(**d)

    def check(self, obs: Observation) -> None:
        """Raise ``EncodingMismatch`` naming what differs if ``obs`` does not fit."""
        if tuple(obs.slice_names) != self.slice_names:
            raise EncodingMismatch(f"trained for slices {list(self.slice_names)}, the scenario has "
                                   f"{list(obs.slice_names)}")
        if obs.n_ues > self.max_ues:
            raise EncodingMismatch(f"trained for at most {self.max_ues} UEs, the scenario has {obs.n_ues}")

    @staticmethod
    def for_scenario(scenario, max_ues: int | None = None, **kw) -> "EncodingSpec":
        return EncodingSpec(max_ues=int(max_ues or scenario.n_ues),
                            slice_names=tuple(s.name for s in scenario.slices), **kw)


def _db(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.maximum(x, 1e-30))


def mean_prb_rate_bps(obs: Observation) -> np.ndarray:
    """(U,) each UE's mean per-PRB rate on its serving RU (the observation's CSI view)."""
    return obs.prb_rate_bps.sum(axis=1) / obs.n_prbs if obs.n_prbs else np.zeros(obs.n_ues)  # = .mean(axis=1)


def need_bps(obs: Observation, objective: str) -> np.ndarray:
    """(U,) the snapshot problem's rate need under ``objective``: under ``served`` what a UE with
    data needs (``simcore.snapshot.rate_need_bps``), under ``rate`` every UE's slice minimum rate."""
    if objective == "rate":
        return np.asarray(obs.min_rate_bps, dtype=float)
    if objective != "served":
        raise ValueError(f"objective must be one of {OBJECTIVES} (got {objective!r})")
    return rate_need_bps(obs)


def rate_cap_bps(obs: Observation, objective: str, need: np.ndarray | None = None) -> np.ndarray:
    """(U,) rate beyond which more is worth nothing under ``objective``: under ``served`` the larger
    of the UE's rate need (``need_bps``; pass it when already at hand) and what its buffer can use
    before the next decision (what counts in the objective); under ``rate`` unbounded (every bit/s
    counts)."""
    if objective == "rate":
        return np.full(obs.n_ues, np.inf)
    return np.maximum(obs.buffer_bits / (obs.interval_tti * obs.link.tti_s),
                      need_bps(obs, objective) if need is None else need)


@functools.lru_cache(maxsize=64)
def _subbands(n_prbs: int, n_subbands: int) -> tuple[np.ndarray, np.ndarray]:
    """First PRB and width of each of the channel profile's sub-bands (the same for every state of a cell)."""
    bounds = np.linspace(0, n_prbs, n_subbands + 1).round().astype(int)
    starts, widths = np.minimum(bounds[:-1], n_prbs - 1), np.maximum(np.diff(bounds), 1)
    starts.flags.writeable = widths.flags.writeable = False
    return starts, widths


def encode_state(obs: Observation, spec: EncodingSpec, out: np.ndarray | None = None,
                 fast: bool = True) -> np.ndarray:
    """(state_dim,) float32 state vector of ``obs`` (see the module docstring); ``out`` (state_dim,)
    float32 is filled and returned when given. ``fast``: the compiled path (``_encode_fast``, the same
    bytes); False: the numpy reference (``_encode_numpy``)."""
    spec.check(obs)
    x = np.zeros(spec.state_dim, dtype=np.float32) if out is None else out
    if fast and 0 < obs.n_prbs and x.dtype == np.float32 and x.flags.c_contiguous:
        return _encode_fast(obs, spec, x)
    return _encode_numpy(obs, spec, x)


def _encode_fast(obs: Observation, spec: EncodingSpec, x: np.ndarray) -> np.ndarray:
    """The state vector in two compiled calls and two numpy logarithms (``encoding_fast``): the
    bytes of ``_encode_numpy``."""
    sinr = obs.prb_sinr
    n, k = sinr.shape
    caps = obs.slice_power_cap_w
    logs = np.empty(n * k + n + 1 + caps.size)
    log1p = np.empty(2 * n)
    encoding_fast.log_args(sinr, obs.buffer_bits, obs.avg_throughput_bps, obs.min_rate_bps, obs.ru_max_power_w,
                           caps, logs, log1p)
    np.log10(logs, out=logs)
    np.log1p(log1p, out=log1p)
    starts, widths = _subbands(k, spec.n_subbands)
    interval_s = obs.interval_tti * obs.link.tti_s
    encoding_fast.fill(x, logs, log1p, obs.prb_rate_bps, obs.slice_id, obs.hol_delay_ms, obs.max_delay_ms,
                       obs.qos_met_last, obs.buffer_bits, obs.min_rate_bps, obs.max_rate_bps, obs.slice_weight, caps,
                       starts, widths, spec.max_ues, spec.n_ue_features, interval_s, interval_s * 1e3 / 10.0)
    return x


def _encode_numpy(obs: Observation, spec: EncodingSpec, x: np.ndarray) -> np.ndarray:
    """The state vector with numpy (the reference of ``_encode_fast``)."""
    n, s, c = obs.n_ues, spec.n_slices, spec.n_subbands
    x[:] = 0.0
    ue = x[: spec.max_ues * spec.n_ue_features].reshape(spec.max_ues, spec.n_ue_features)[:n]
    ue[:, 0] = 1.0
    ue[np.arange(n), 1 + obs.slice_id] = 1.0
    col = 1 + s
    sinr_db = _db(obs.prb_sinr)  # (U, K)
    wide = _db(obs.prb_sinr.sum(axis=1) / obs.n_prbs) if obs.n_prbs else np.zeros(n)  # = .mean(axis=1)
    ue[:, col] = np.clip((wide - 10.0) / 20.0, -3.0, 3.0)
    col += 1
    if obs.n_prbs:
        starts, widths = _subbands(obs.n_prbs, c)
        sub = np.add.reduceat(sinr_db, starts, axis=1) / widths
        ue[:, col:col + c] = np.clip((sub - wide[:, None]) / 10.0, -3.0, 3.0)
    col += c
    per_prb = np.maximum(mean_prb_rate_bps(obs), 1.0)
    k = max(obs.n_prbs, 1)
    ue[:, col] = np.log1p(obs.buffer_bits / 1e3) / 10.0
    ue[:, col + 1] = np.clip(obs.hol_delay_ms / obs.max_delay_ms, 0.0, 10.0)
    ue[:, col + 2] = np.log1p(obs.avg_throughput_bps / np.maximum(obs.min_rate_bps, 1e3)) / 5.0
    ue[:, col + 3] = obs.qos_met_last
    need = rate_need_bps(obs)
    ue[:, col + 4] = np.clip(need / per_prb / k, 0.0, 2.0)
    ue[:, col + 5] = np.clip(rate_cap_bps(obs, "served", need) / per_prb / k, 0.0, 2.0)
    ue[:, col + 6] = obs.slice_weight[obs.slice_id] / obs.slice_weight.max()
    g = x[spec.max_ues * spec.n_ue_features:]
    g[0] = (_db(obs.ru_max_power_w.mean()) + 30.0 - 40.0) / 10.0
    g[1] = n / spec.max_ues
    g[2] = obs.n_prbs / 100.0
    g[3] = obs.interval_tti * obs.link.tti_s * 1e3 / 10.0
    g[4:4 + s] = obs.slice_weight / obs.slice_weight.max()
    caps = obs.slice_power_cap_w
    g[4 + s:4 + 2 * s] = np.where(np.isfinite(caps), (_db(np.where(np.isfinite(caps), caps, 1.0)) + 30.0 - 40.0) / 10.0, 1.0)
    np.clip(x, -STATE_BOUND, STATE_BOUND, out=x)
    return x


def split_state(x, spec: EncodingSpec):
    """View a (..., state_dim) batch as per-UE features (..., U_max, F), mask (..., U_max), globals (..., G)."""
    n_ue_cols = spec.max_ues * spec.n_ue_features
    ue = x[..., :n_ue_cols].reshape(*x.shape[:-1], spec.max_ues, spec.n_ue_features)
    return ue, ue[..., 0], x[..., n_ue_cols:]


def encode_allocation(alloc: Allocation, obs: Observation, spec: EncodingSpec) -> np.ndarray:
    """(action_dim,) action vector of an allocation: each UE's share of its RU's PRBs and power."""
    spec.check(obs)
    n = obs.n_ues
    a = np.zeros(spec.action_dim, dtype=np.float32)
    owned = alloc.prb_owner >= 0
    rr, kk = np.nonzero(owned)
    u = alloc.prb_owner[rr, kk]
    prbs = np.bincount(u, minlength=n)[:n].astype(float)
    power = np.bincount(u, weights=alloc.power_w[rr, kk], minlength=n)[:n]
    ru = np.where(alloc.ue_ru >= 0, alloc.ue_ru, obs.serving_ru)
    a[:n] = prbs / obs.n_prbs
    a[spec.max_ues:spec.max_ues + n] = power / obs.ru_max_power_w[ru]
    return a


def snapshot_problem(obs: Observation, objective: str = "served") -> SnapshotProblem:
    """The snapshot problem of ``obs`` under ``objective`` (rewards and labels come from it), at the
    default levels times P_RU / K whatever the slice caps: the decoder's power ladder stays the one
    the policies were trained with, and every state of a pool has the same L (under a cap the repair
    scales a slice's powers, as for the classic schedulers). Rewards, labels and held-out metrics use
    only tiers 1 and 2, which do not depend on the levels; without a cap below P_RU this is the
    optimum's own problem (``simcore.snapshot.default_levels_w``)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES} (got {objective!r})")
    return SnapshotProblem(obs, levels_w=share_levels_w(obs), objective=objective)


