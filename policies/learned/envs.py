"""Gymnasium environments over oransim: the engine itself, and fast snapshots of it.

Registered ids (importing this module registers them; ``gymnasium.make("policies.learned.envs:
oransim/OranSlicing-v0", ...)`` imports it for you):

- ``oransim/OranSlicing-v0`` (``EngineEnv``): the real engine. One step = one RIC decision
  interval: the agent's action is decoded into the allocation the RIC applies from that decision's
  TTI on (the engine is stepped event by event up to each decision, ``Engine.step_to_decision``,
  and a stand-in policy hands the allocation over); the MAC, PHY, queues and traffic then run the
  interval. An episode is one run of ``episode_steps`` decisions with a fresh drop (seed from the
  env's generator, or ``options={"run_seed": N}``).
- ``oransim/OranSlicingSnapshot-v0`` (``SnapshotEnv``): states served from a pool sampled from
  engine runs (a dataset file, or generated at construction); the action changes the reward only,
  so an episode is ``episode_steps`` (Table I: 100) states drawn uniformly from the pool.
  ``SnapshotVectorEnv`` is the same for ``num_envs`` copies at once (its infos' ``state``: each
  returned observation's index in the pool, so a replay buffer can hold indices, not vectors).

Observation space: ``Box(-10, 10, (state_dim,))``, the state vector of ``encoding`` (per-UE
features padded to ``max_ues`` with a mask, then globals). Action space: ``actions="shares"``
gives ``Box(0, 1, (2 * max_ues,))`` (each UE's PRB and power share, any value is decoded into a
feasible allocation); ``actions="templates"`` gives ``Discrete(|A|)`` (``templates``, DQN's).

Reward (``reward="snapshot"``, the default): objective / scale - need_penalty * missed, with the
snapshot problem's objective (``served`` or ``rate``) of the decoded allocation at the decision's
CSI, ``scale`` the cell's peak weighted rate (RUs x K x B_PRB x top spectral efficiency x largest
slice weight) and ``missed`` the mean, over the UEs with a rate need, of the share of their need
they miss (``need_penalty`` 4: one UE of 30 left without its need costs more than the throughput
its PRBs could carry elsewhere, so needs come first as in the problem's order).
``reward="delivered"`` (engine env only) uses what the engine delivered over the interval instead
(weighted delivered bit/s, and the share of each need the delivered rate misses). Episodes end by
truncation only.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from simcore.contracts import Observation, Policy

from .decoder import DecodeContext, decode_action
from .encoding import STATE_BOUND, EncodingSpec, encode_state
from .pool import StatePool, reward, reward_scale_bps
from .templates import SliceTemplates

__all__ = ["ENGINE_ENV_ID", "SNAPSHOT_ENV_ID", "ActionCoder", "EngineEnv", "SnapshotEnv", "SnapshotVectorEnv",
           "StatePool", "reward", "reward_scale_bps"]

ENGINE_ENV_ID = "oransim/OranSlicing-v0"
SNAPSHOT_ENV_ID = "oransim/OranSlicingSnapshot-v0"


def _load_scenario(scenario):
    from simcore.scenario import Scenario, load_scenario

    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


class ActionCoder:
    """Action space and action -> Allocation for one encoding (shared by every env here)."""

    def __init__(self, spec: EncodingSpec, actions: str, objective: str, templates: SliceTemplates | None = None):
        if actions not in ("shares", "templates"):
            raise ValueError(f"actions must be 'shares' or 'templates' (got {actions!r})")
        self.spec, self.mode, self.objective = spec, actions, objective
        if actions == "templates":
            self.templates = templates or SliceTemplates(spec.n_slices)
            self.space = spaces.Discrete(self.templates.n_actions)
        else:
            self.templates = None
            self.space = spaces.Box(0.0, 1.0, (spec.action_dim,), dtype=np.float32)

    def vector(self, action, obs: Observation) -> np.ndarray:
        if self.templates is not None:
            return self.templates.action(obs, int(action), self.spec, self.objective)
        return np.asarray(action, dtype=np.float32)

    def allocation(self, action, obs: Observation, context: DecodeContext | None = None):
        return decode_action(self.vector(action, obs), obs, self.spec, self.objective, context)


def observation_space(spec: EncodingSpec) -> spaces.Box:
    return spaces.Box(-STATE_BOUND, STATE_BOUND, (spec.state_dim,), dtype=np.float32)


# -------------------------------------------------------------------------------- snapshots
class SnapshotEnv(gym.Env):
    """One snapshot env (see the module docstring). Pass ``pool`` or the arguments of
    ``StatePool.from_source`` (``scenario``, ``data``, ``n_states``, ...)."""

    metadata = {"render_modes": []}

    def __init__(self, pool: StatePool | None = None, actions: str = "shares", episode_steps: int = 100,
                 templates: SliceTemplates | None = None, **pool_kw):
        self.pool = pool if pool is not None else StatePool.from_source(**pool_kw)
        self.coder = ActionCoder(self.pool.spec, actions, self.pool.objective, templates)
        self.observation_space = observation_space(self.pool.spec)
        self.action_space = self.coder.space
        self.episode_steps = int(episode_steps)
        self._i, self._t = 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        self._i = int(self.np_random.integers(len(self.pool)))
        return self.pool.states[self._i].copy(), {"state": self._i}

    def step(self, action):
        reward, info = self.pool.outcome(self._i, self.coder, action)
        self._t += 1
        self._i = int(self.np_random.integers(len(self.pool)))
        return self.pool.states[self._i].copy(), reward, False, self._t >= self.episode_steps, info


class SnapshotVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` snapshot envs stepped together; finished episodes reset in the same step
    (``autoreset_mode`` SAME_STEP: the returned observation is the new episode's first)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, pool: StatePool | None = None, actions: str = "shares",
                 episode_steps: int = 100, templates: SliceTemplates | None = None, **pool_kw):
        self.pool = pool if pool is not None else StatePool.from_source(**pool_kw)
        self.coder = ActionCoder(self.pool.spec, actions, self.pool.objective, templates)
        self.num_envs = int(num_envs)
        self.single_observation_space = observation_space(self.pool.spec)
        self.single_action_space = self.coder.space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.episode_steps = int(episode_steps)
        self._idx = np.zeros(self.num_envs, dtype=np.int64)
        self._t = np.zeros(self.num_envs, dtype=np.int64)
        self._rng = np.random.default_rng()

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t[:] = 0
        self._idx = self._rng.integers(len(self.pool), size=self.num_envs)
        return self.pool.states[self._idx], {"state": self._idx.copy()}

    def step(self, actions):
        rewards, objective, _ = self.pool.outcomes(self._idx, self.coder, actions)
        self._t += 1
        truncated = self._t >= self.episode_steps
        self._t[truncated] = 0
        self._idx = self._rng.integers(len(self.pool), size=self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        return (self.pool.states[self._idx], rewards, terminated, truncated,
                {"objective_bps": objective, "state": self._idx.copy()})


# ----------------------------------------------------------------------------------- engine
class _HeldAllocation(Policy):
    """Stand-in policy of the engine env: hands the RIC the allocation the agent's action decoded to."""

    name = "gym-agent"

    def __init__(self):
        self.pending = None  # (observation, allocation)

    def decide(self, obs):
        if self.pending is None or self.pending[0] is not obs:
            raise RuntimeError("the engine env's RIC decided without an action for this observation")
        alloc, self.pending = self.pending[1], None
        return alloc


class EngineEnv(gym.Env):
    """The engine as a Gymnasium env (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, scenario="scenarios/paper_default.yaml", objective: str = "served", reward: str = "snapshot",
                 actions: str = "shares", episode_steps: int = 100, need_penalty: float = 4.0,
                 max_ues: int | None = None, templates: SliceTemplates | None = None):
        if reward not in ("snapshot", "delivered"):
            raise ValueError(f"reward must be 'snapshot' or 'delivered' (got {reward!r})")
        base = _load_scenario(scenario)
        duration = episode_steps * base.scheduling.interval_tti * base.cell.tti_s
        self.scenario = base.with_overrides(duration_s=duration)
        self.encoding = EncodingSpec.for_scenario(self.scenario, max_ues)
        self.coder = ActionCoder(self.encoding, actions, objective, templates)
        self.observation_space = observation_space(self.encoding)
        self.action_space = self.coder.space
        self.reward_mode, self.need_penalty, self.episode_steps = reward, float(need_penalty), int(episode_steps)
        self.engine = None
        self._obs: Observation | None = None

    def reset(self, *, seed=None, options=None):
        from simcore.engine import Engine
        from simcore.plugins import make_phy

        super().reset(seed=seed)
        self.close()
        run_seed = (options or {}).get("run_seed")
        if run_seed is None:
            run_seed = int(self.np_random.integers(2**32, 2**62))
        scn = self.scenario.with_overrides(seed=int(run_seed))
        self._stand_in = _HeldAllocation()
        self.engine = Engine(scn, self._stand_in, make_phy(scn.phy.backend, scn.phy.params))
        self.engine.start()
        self._obs = self.engine.step_to_decision()
        self._t = 0
        return encode_state(self._obs, self.encoding), {"tti": self._obs.tti, "run_seed": int(run_seed)}

    def step(self, action):
        eng, obs = self.engine, self._obs
        ctx = DecodeContext(obs, self.encoding, self.coder.objective)
        prob = ctx.problem
        alloc = self.coder.allocation(action, obs, ctx)
        self._stand_in.pending = (obs, alloc)
        served0 = eng.served_bits_total.copy()
        nxt = eng.step_to_decision()
        if self._stand_in.pending is not None:  # the run ended before the RIC took it
            raise RuntimeError("episode is over: call reset()")
        scale = reward_scale_bps(obs)
        if self.reward_mode == "snapshot":
            ev = prob.evaluate(alloc)
            r, missed = reward(ev.objective_bps, ev.rates_bps, ev.need_bps, scale, self.need_penalty)
            info = {"objective_bps": ev.objective_bps, "violation_bps": ev.violation_bps}
        else:
            elapsed_s = ((nxt.tti if nxt is not None else eng.n_tti) - obs.tti) * eng.tti_s
            rate = (eng.served_bits_total - served0) / elapsed_s
            delivered = float(np.dot(obs.ue_weight, rate))
            r, missed = reward(delivered, rate, prob.need_bps, scale, self.need_penalty)
            info = {"delivered_weighted_bps": delivered}
        info["need_missed"] = missed
        self._t += 1
        info["tti"] = obs.tti
        truncated = nxt is None or self._t >= self.episode_steps
        if nxt is not None:
            self._obs = nxt
        return encode_state(self._obs, self.encoding), float(r), False, truncated, info

    def close(self):
        if self.engine is not None:
            try:
                self.engine.phy.close()
            finally:
                self.engine.policy.close()
                self.engine = None


gym.register(id=ENGINE_ENV_ID, entry_point="policies.learned.envs:EngineEnv")
gym.register(id=SNAPSHOT_ENV_ID, entry_point="policies.learned.envs:SnapshotEnv")
