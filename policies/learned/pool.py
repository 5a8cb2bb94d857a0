"""The snapshot envs' state pool: states, their encodings, and the outcome of actions on them.

A step of the vectorised snapshot env is one call of ``StatePool.outcomes`` for the whole batch,
done on arrays over the batch rather than state by state:

- each state's constants are worked out once, on its first use, and kept stacked: its decoder rows
  (``decoder.DecodeRows``: rate tables, weights, caps, levels), DQN's template demands
  (``templates.demands``) and what its reward needs (``SnapshotBatch``);
- template actions become action vectors for the whole batch (``SliceTemplates.actions``), the
  vectors become PRB owners and powers for the whole batch (``decoder.decode_rows``: one
  ``linear_sum_assignment`` per state, RU and pass is the only per-state work left), and the
  rewards are computed for the whole batch (``SnapshotBatch``).

Every number is the one the per-state path gives, bit for bit: the allocation is
``decode_action``'s, its objective and shortfall are ``SnapshotProblem.evaluate``'s (both call
``simcore.snapshot.objective_and_shortfall``), and the reward is ``reward`` of those
(``tests/test_learning_pool.py`` checks all three). A pool whose states differ in RUs or PRBs
takes the per-state path.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from simcore.contracts import Allocation, Observation, repair_allocation
from simcore.snapshot import SnapshotProblem, objective_and_shortfall

from .decoder import DecodeContext, DecodeRows, check_actions, decode_actions, decode_rows
from .encoding import EncodingSpec, encode_state
from .templates import demands


def reward_scale_bps(obs: Observation) -> float:
    """The cell's peak weighted rate: the reward's unit."""
    link = obs.link
    return float(obs.n_rus * obs.n_prbs * link.prb_bandwidth_hz * link.max_se * obs.slice_weight.max())


def reward(objective_bps, rates_bps: np.ndarray, need_bps: np.ndarray, scale_bps, need_penalty: float):
    """(reward, mean relative shortfall): objective / scale - need_penalty * the mean over the UEs
    with a rate need of the share of it they miss. One state ((U,) arrays: two floats) or many
    ((B, U) arrays padded with zeros, (B,) objectives and scales: two (B,) arrays)."""
    has = need_bps > 0
    miss = np.where(has, np.maximum(need_bps - rates_bps, 0.0) / np.where(has, need_bps, 1.0), 0.0)
    # summed left to right, so padding changes nothing
    total = np.cumsum(miss, axis=-1)[..., -1] if miss.shape[-1] else np.zeros(miss.shape[:-1])
    missed = total / np.maximum(1, has.sum(axis=-1))
    r = objective_bps / scale_bps - need_penalty * missed
    return (float(r), float(missed)) if np.ndim(r) == 0 else (r, missed)


class SnapshotBatch:
    """Objective and shortfall of one allocation each for many snapshot problems at once, equal bit
    for bit to each problem's ``evaluate`` (its tiers 1 and 2).

    Slot i (filled by ``put``) keeps its problem's per-UE constants padded to ``max_ues``: weights,
    needs, caps, and for one-RU problems the serving gains (U_max, K). The PRB rates of all the
    batch's one-RU allocations are then computed in one go by the link's own methods
    (``LinkModel.sinr``, ``prb_rate_bps``): the batch is seen as one ``LinkModel`` with an RU per
    problem (``quant_noise_w`` per slot, ``ue_fbl_penalty`` per padded UE), one per set of equal
    link scalars. With several RUs interference couples the PRBs: each allocation then goes
    through ``SnapshotProblem.rates``.
    """

    def __init__(self, n: int, max_ues: int, n_rus: int, n_prbs: int):
        self.m, self.n_rus = max_ues, n_rus
        self.problems: list[SnapshotProblem | None] = [None] * n
        self.weight, self.need, self.cap = np.zeros((n, max_ues)), np.zeros((n, max_ues)), np.zeros((n, max_ues))
        if n_rus == 1:
            self.gain = np.zeros((n, max_ues, n_prbs))
            self.quant = np.zeros(n)
            self.penalty = np.full(n * max_ues, np.nan)
            self.group = np.zeros(n, dtype=np.int64)
            self._groups: dict[tuple, int] = {}
            self._links: list = []  # a link of each group, and the stacked link built from it
            self._fbl = False

    def put(self, i: int, problem: SnapshotProblem) -> None:
        obs, u = problem.obs, problem.obs.n_ues
        self.problems[i] = problem
        self.weight[i, :u], self.need[i, :u], self.cap[i, :u] = obs.ue_weight, problem.need_bps, problem.cap_bps
        if self.n_rus != 1:
            return
        link = obs.link
        self.gain[i, :u] = obs.gain[:, 0, :]
        self.quant[i] = link.quant_noise_w[0]
        if link.ue_fbl_penalty is not None:
            self.penalty[i * self.m:i * self.m + u] = link.ue_fbl_penalty
            if not self._fbl:
                self._fbl = True
                self._links = [(one, self._stacked(one)) for one, _ in self._links]
        key = (link.rate_model, link.prb_bandwidth_hz, link.noise_w, link.snr_gap, link.max_se, link.cqi_gap)
        if key not in self._groups:
            self._groups[key] = len(self._links)
            self._links.append((link, self._stacked(link)))
        self.group[i] = self._groups[key]

    def _stacked(self, link):
        return dataclasses.replace(link, quant_noise_w=self.quant, ue_fbl_penalty=self.penalty if self._fbl else None)

    def evaluate(self, idx: np.ndarray, owner: np.ndarray, power: np.ndarray):
        """Objective F (B,), shortfall V (B,) and rates (B, U_max) of allocation j (PRB owners and
        powers (B, R, K)) in problem ``idx[j]``."""
        n, m = idx.size, self.m
        if self.n_rus == 1:
            own = owner[:, 0]
            bb, kk = np.nonzero(own >= 0)  # state by state, PRBs in order: the order evaluate sums in
            ue, slot = own[bb, kk], idx[bb]
            gain, p = self.gain[slot, ue, kk], power[bb, 0, kk]
            group = self.group[slot]
            rate = np.empty(bb.size)
            for g in range(1) if len(self._links) == 1 else np.unique(group):
                sel = slice(None) if len(self._links) == 1 else group == g
                link = self._links[g][1]
                rate[sel] = link.prb_rate_bps(link.sinr(gain[sel], p[sel], slot[sel], 0.0), slot[sel] * m + ue[sel])
            rates = np.bincount(bb * m + ue, weights=rate, minlength=n * m).reshape(n, m)
        else:
            rates = np.zeros((n, m))
            for j, i in enumerate(idx):
                prob = self.problems[i]
                r = prob.rates(Allocation(prob.obs.serving_ru.astype(np.int64), owner[j], power[j]))
                rates[j, :r.size] = r
        need = self.need[idx]
        f, v = objective_and_shortfall(np.minimum(rates, self.cap[idx]), np.maximum(need - rates, 0.0), self.weight[idx])
        return f, v, rates, need


class StatePool:
    """Snapshot states with their encodings and what their outcomes need (built on first use)."""

    def __init__(self, observations: list[Observation], spec: EncodingSpec, objective: str = "served",
                 need_penalty: float = 4.0):
        if not observations:
            raise ValueError("the state pool is empty")
        self.obs, self.spec, self.objective, self.need_penalty = list(observations), spec, objective, float(need_penalty)
        self.states = np.stack([encode_state(o, spec) for o in self.obs])  # (N, state_dim) float32
        self._contexts: list = [None] * len(self.obs)
        self._built = np.zeros(len(self.obs), dtype=bool)
        self.scale = np.array([reward_scale_bps(o) for o in self.obs])
        shapes = {(o.n_rus, o.n_prbs) for o in self.obs}
        self.batched = len(shapes) == 1  # else outcomes go state by state
        if self.batched:
            n, m = len(self.obs), spec.max_ues
            self.n_rus, self.n_prbs = shapes.pop()
            n_rows = np.array([np.unique(o.serving_ru).size for o in self.obs], dtype=np.int64)
            self._first_row = np.r_[0, np.cumsum(n_rows)[:-1]]
            self._n_rows = n_rows
            self._one_row = bool((n_rows == 1).all())  # one RU with UEs per state: row i is state i
            self._row_ru = np.zeros(int(n_rows.sum()), dtype=np.int64)
            self._rows: DecodeRows | None = None  # allocated with the first context (it knows L)
            self._batch = SnapshotBatch(n, m, self.n_rus, self.n_prbs)
            self._slice_id = np.zeros((n, m), dtype=np.int64)
            self._need_share, self._usable_share = np.zeros((n, m)), np.zeros((n, m))
            self._repair = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return len(self.obs)

    def context(self, i: int) -> DecodeContext:
        """State i's decoder context (with its snapshot problem), built on first use."""
        if self._contexts[i] is None:
            ctx = DecodeContext(self.obs[i], self.spec, self.objective)
            if self.batched:
                self._add(i, ctx)
            self._contexts[i] = ctx
            self._built[i] = True
        return self._contexts[i]

    def _build(self, idx: np.ndarray) -> None:
        """Build the contexts of states ``idx`` not built yet."""
        if not self._built[idx].all():
            for i in np.unique(idx[~self._built[idx]]).tolist():
                self.context(i)

    def _add(self, i: int, ctx: DecodeContext) -> None:
        if self._rows is None:
            self._rows = DecodeRows(self._row_ru.size, self.spec, self.n_prbs, ctx.levels.shape[1])
        first = int(self._first_row[i])
        rus = self._rows.put(first, ctx, adopt=True)
        self._row_ru[first:first + len(rus)] = rus
        self._batch.put(i, ctx.problem)
        obs, u = ctx.obs, ctx.obs.n_ues
        self._slice_id[i, :u] = obs.slice_id
        self._need_share[i, :u], self._usable_share[i, :u] = demands(obs, self.objective)
        self._repair[i] = ctx.need_repair

    def outcome(self, i: int, coder, action) -> tuple[float, dict]:
        """Reward and info of ``action`` on state ``i``."""
        rewards, objective, violation = self.outcomes(np.array([i]), coder, [action])
        return float(rewards[0]), {"objective_bps": objective[0], "violation_bps": violation[0], "state": i}

    def outcomes(self, idx: np.ndarray, coder, actions, per_state: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rewards, objectives and shortfalls of ``actions[j]`` on states ``idx[j]`` (decoded together).
        ``per_state``: take the state-by-state path (``coder.vector``, ``decode_actions``, ``evaluate``
        and ``reward`` of each state), the reference the batch is tested and benchmarked against."""
        idx = np.asarray(idx, dtype=np.int64)
        if per_state or not self.batched or coder.objective != self.objective:
            return self._outcomes_one_by_one(idx, [self.context(int(i)) for i in idx], coder, actions)
        self._build(idx)
        owner, power = self._decoded(idx, coder, actions)
        objective, violation, rates, need = self._batch.evaluate(idx, owner, power)
        rewards, _ = reward(objective, rates, need, self.scale[idx], self.need_penalty)
        return rewards, objective, violation

    def allocations(self, idx: np.ndarray, coder, actions) -> list[Allocation]:
        """The allocations ``actions[j]`` decode to on states ``idx[j]``, by the path ``outcomes``
        takes (the same allocations as ``coder.allocation`` state by state)."""
        idx = np.asarray(idx, dtype=np.int64)
        contexts = [self.context(int(i)) for i in idx]
        if not self.batched or coder.objective != self.objective:
            vectors = np.stack([coder.vector(a, self.obs[int(i)]) for a, i in zip(actions, idx)])
            return decode_actions(vectors, contexts)
        owner, power = self._decoded(idx, coder, actions)
        return [Allocation(c.obs.serving_ru.astype(np.int64), o, p) for c, o, p in zip(contexts, owner, power)]

    def _decoded(self, idx: np.ndarray, coder, actions) -> tuple[np.ndarray, np.ndarray]:
        """PRB owners and powers (B, R, K) of ``actions`` on states ``idx`` (contexts built), batched."""
        counts = self._n_rows[idx]
        if self._one_row:
            state, sel = np.arange(idx.size), self._first_row[idx]
        else:  # the batch's rows: state by state, RU order
            state = np.repeat(np.arange(idx.size), counts)
            sel = np.repeat(self._first_row[idx], counts) + np.arange(state.size) - np.repeat(np.cumsum(counts) - counts, counts)
        if coder.templates is not None:
            vectors = coder.templates.actions(np.asarray(actions), self._slice_id[idx], self._need_share[idx],
                                              self._usable_share[idx], self._rows.ues[sel], state, self.spec)
        else:
            vectors = np.asarray(actions, dtype=np.float32)  # as ``ActionCoder.vector``
        owner_rows, power_rows = decode_rows(check_actions(vectors, self.spec), self._rows, sel, state)
        owner = np.full((idx.size, self.n_rus, self.n_prbs), -1, dtype=np.int64)
        power = np.zeros((idx.size, self.n_rus, self.n_prbs))
        owner[state, self._row_ru[sel]], power[state, self._row_ru[sel]] = owner_rows, power_rows
        for j in np.flatnonzero(self._repair[idx]):
            obs = self.obs[int(idx[j])]
            fixed = repair_allocation(obs.serving_ru, owner[j], power[j], obs)
            owner[j], power[j] = fixed.prb_owner, fixed.power_w
        return owner, power

    def _outcomes_one_by_one(self, idx, contexts, coder, actions):
        vectors = np.stack([coder.vector(a, self.obs[int(i)]) for a, i in zip(actions, idx)])
        rewards, objective, violation = np.zeros(len(idx)), np.zeros(len(idx)), np.zeros(len(idx))
        for j, (ctx, alloc, i) in enumerate(zip(contexts, decode_actions(vectors, contexts), idx)):
            ev = ctx.problem.evaluate(alloc)
            objective[j], violation[j] = ev.objective_bps, ev.violation_bps
            rewards[j], _ = reward(ev.objective_bps, ev.rates_bps, ev.need_bps, self.scale[i], self.need_penalty)
        return rewards, objective, violation

    @staticmethod
    def from_source(scenario=None, data: str | Path | None = None, n_states: int = 2000, seed: int = 0,
                    max_ues: int | None = None, objective: str = "served", need_penalty: float = 4.0,
                    **dataset_kw) -> "StatePool":
        """A pool from a dataset file, or ``n_states`` unlabelled states generated from ``scenario``."""
        from .dataset import DatasetConfig, load_states, make_states
        from .envs import _load_scenario

        if data is not None:
            ss = load_states(data)
            obs, scn = ss.observations, ss.scenario
        else:
            scn = _load_scenario(scenario)
            obs = make_states(scn, DatasetConfig(n_states=n_states, seed=seed, label="none", **dataset_kw))
        spec = EncodingSpec.for_scenario(scn, max_ues or max(o.n_ues for o in obs))
        return StatePool(obs, spec, objective, need_penalty)
