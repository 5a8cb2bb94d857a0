"""DQN (the paper's first learned baseline) through stable-baselines3, over the snapshot env.

Read top to bottom: the config (the paper's Table I values as defaults), the network (the shared
``UeSetEncoder`` then an MLP to one Q-value per template), the training (SB3's ``DQN`` on
``SnapshotVectorEnv`` with ``actions="templates"``: |A| = 100 slice templates, see ``templates``),
and the ``Policy`` adapter that loads a checkpoint and decides (no SB3 needed at run time).

Training states come from the harness (a dataset file, or states generated from the scenario over
many seeds and the load factors ``loads``); every ``eval_every_steps`` the greedy policy is scored
on the held-out states against the optimum. ``--resume`` continues from the SB3 model and replay
buffer saved every ``save_every_steps`` in the run folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from .checkpoint import LearnedPolicy
from .templates import SliceTemplates


@dataclass(frozen=True)
class Config:
    episodes: int = 2000
    """Episodes of training (Table I: 2000)."""
    episode_steps: int = 100
    """Decisions per episode (Table I: 100); total steps = episodes x episode_steps."""
    learning_rate: float = 6e-4
    """Adam step size (Table I: 0.0006)."""
    gamma: float = 0.98
    """Discount factor (Table I: 0.98)."""
    batch_size: int = 128
    """Minibatch of each gradient step (Table I: 128)."""
    exploration_final_eps: float = 0.1
    """epsilon of epsilon-greedy after the decay (Table I: 0.1)."""
    exploration_initial_eps: float = 1.0
    """epsilon at the start, decayed linearly over ``exploration_fraction`` of the steps."""
    exploration_fraction: float = 0.1
    """Share of the steps over which epsilon decays."""
    buffer_size: int = 50_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 1000
    """Steps of pure exploration before the first gradient step."""
    train_freq: int = 4
    """Env steps (per env) between gradient updates."""
    gradient_steps: int = 8
    """Gradient steps per update (8 with 8 envs and train_freq 4: one per 4 transitions)."""
    target_update_interval: int = 1000
    """Steps between hard updates of the target network."""
    hidden: int = 64
    """Width of the per-UE encoder."""
    net_arch: tuple[int, ...] = (128, 128)
    """Hidden layers of the Q head."""
    n_envs: int = 8
    """Snapshot envs stepped together."""
    objective: str = "served"
    """Snapshot objective of the reward: ``served`` or ``rate``."""
    need_penalty: float = 4.0
    """Reward penalty on the mean share of their rate need the UEs miss (``envs.reward``)."""
    template_levels: int = 10
    """Priority levels per non-reference slice (10 x 10 = 100 templates with three slices)."""
    template_span: float = 8.0
    """Template slice weights range over [1/span, span] relative to slice 0."""
    max_ues: int = 0
    """Rows of the state encoding (0: the scenario's number of UEs)."""
    train_states: int = 2000
    """States generated for training when no dataset file is given."""
    loads: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    """Load factors of the generated training states."""
    eval_every_steps: int = 20_000
    """Steps between held-out evaluations against the optimum."""
    save_every_steps: int = 50_000
    """Steps between saves of the training state (for --resume)."""


# ----------------------------------------------------------------------------------- network
def q_network(spec, cfg: Config, n_actions: int):
    """UeSetEncoder then the MLP head: (B, state_dim) -> (B, |A|) Q-values."""
    from torch import nn

    from .nets import UeSetEncoder, mlp

    class QNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = UeSetEncoder(spec, cfg.hidden)
            self.head = mlp([self.encoder.out_dim, *cfg.net_arch, n_actions])

        def forward(self, x):
            return self.head(self.encoder(x))

    return QNet()


def _sb3_extractor():
    """SB3 features extractor class holding the shared encoder (built lazily: SB3 import)."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from .nets import UeSetEncoder

    class SetExtractor(BaseFeaturesExtractor):
        def __init__(self, observation_space, spec, hidden: int):
            enc = UeSetEncoder(spec, hidden)
            super().__init__(observation_space, enc.out_dim)
            self.encoder = enc

        def forward(self, x):
            return self.encoder(x)

    return SetExtractor


def _qnet_state(model) -> dict:
    """SB3's online Q-network weights under the names of ``q_network``."""
    out = {}
    for k, v in model.q_net.state_dict().items():
        if k.startswith("features_extractor.encoder."):
            out["encoder." + k[len("features_extractor.encoder."):]] = v
        elif k.startswith("q_net."):
            out["head." + k[len("q_net."):]] = v
    return out


# ---------------------------------------------------------------------------------- training
def _vec_env(venv, on_episode):
    """SB3 ``VecEnv`` over a ``SnapshotVectorEnv`` (same-step autoreset, as SB3 expects)."""
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class Adapter(VecEnv):
        def __init__(self):
            super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
            self._ret = np.zeros(venv.num_envs)
            self._actions = None

        def reset(self):
            obs, _ = venv.reset(seed=int(self._seeds[0]) if self._seeds and self._seeds[0] is not None else None)
            self._seeds = []
            self._ret[:] = 0.0
            return obs

        def step_async(self, actions):
            self._actions = actions

        def step_wait(self):
            obs, rew, term, trunc, _ = venv.step(self._actions)
            self._ret += rew
            infos = [{} for _ in range(self.num_envs)]
            for e in np.flatnonzero(term | trunc):
                infos[e] = {"terminal_observation": obs[e], "TimeLimit.truncated": bool(trunc[e] and not term[e])}
                on_episode(float(self._ret[e]))
                self._ret[e] = 0.0
            return obs, rew.astype(np.float32), term | trunc, infos

        def close(self):
            pass

        def get_attr(self, name, indices=None):
            return [getattr(venv, name)] * len(self._get_indices(indices))

        def set_attr(self, name, value, indices=None):
            setattr(venv, name, value)

        def env_method(self, name, *args, indices=None, **kwargs):
            return [getattr(venv, name)(*args, **kwargs)] * len(self._get_indices(indices))

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._get_indices(indices))

    return Adapter()


def train(ctx, cfg: Config):
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    from .envs import SnapshotVectorEnv, StatePool
    from .train import TAG_RETURN, TAG_SPS, TrainResult

    pool = StatePool.from_source(scenario=ctx.scenario, data=ctx.data, n_states=cfg.train_states, seed=ctx.seed,
                                 max_ues=cfg.max_ues or ctx.scenario.n_ues, objective=cfg.objective,
                                 need_penalty=cfg.need_penalty, loads=cfg.loads)
    templates = SliceTemplates(pool.spec.n_slices, cfg.template_levels, cfg.template_span)
    venv = SnapshotVectorEnv(cfg.n_envs, pool, actions="templates", episode_steps=cfg.episode_steps,
                             templates=templates)
    total = cfg.episodes * cfg.episode_steps
    state_dir = ctx.run_dir / "train_state"
    episodes = []
    env = _vec_env(venv, lambda r: (episodes.append(r), ctx.log.scalar(TAG_RETURN, r, len(episodes))))
    env.seed(ctx.seed)
    kwargs = dict(learning_rate=cfg.learning_rate, gamma=cfg.gamma, batch_size=cfg.batch_size,
                  buffer_size=cfg.buffer_size, learning_starts=cfg.learning_starts, train_freq=cfg.train_freq,
                  gradient_steps=cfg.gradient_steps, target_update_interval=cfg.target_update_interval,
                  exploration_fraction=cfg.exploration_fraction, exploration_initial_eps=cfg.exploration_initial_eps,
                  exploration_final_eps=cfg.exploration_final_eps, seed=ctx.seed, device=ctx.device, verbose=0)
    policy_kwargs = dict(features_extractor_class=_sb3_extractor(), net_arch=list(cfg.net_arch),
                         features_extractor_kwargs=dict(spec=pool.spec, hidden=cfg.hidden))
    if ctx.resume and (state_dir / "model.zip").exists():
        model = DQN.load(state_dir / "model.zip", env=env, device=ctx.device,
                         custom_objects={"policy_kwargs": policy_kwargs})
        model.load_replay_buffer(state_dir / "replay_buffer.pkl")
        done = json.loads((state_dir / "progress.json").read_text())
        episodes.extend([0.0] * done["episodes"])
    else:
        model = DQN("MlpPolicy", env, policy_kwargs=policy_kwargs, **kwargs)

    def decide(obs):
        from .decoder import decode_action
        from .encoding import encode_state

        x = torch.as_tensor(encode_state(obs, pool.spec), device=ctx.device)[None]
        with torch.no_grad():
            a = int(model.q_net(x).argmax(dim=1).item())
        vec = templates.action(obs, a, pool.spec, cfg.objective)
        return decode_action(vec, obs, pool.spec, cfg.objective)

    class Hooks(BaseCallback):
        def _on_training_start(self):
            self._t0, self._n0 = time.perf_counter(), self.num_timesteps

        def _on_step(self) -> bool:
            n = self.num_timesteps
            if ctx.progress is not None:
                ctx.progress(min(n, total), total)
            if n % (cfg.n_envs * 250) < cfg.n_envs:
                ctx.log.scalar(TAG_SPS, (n - self._n0) / max(time.perf_counter() - self._t0, 1e-9), n)
                loss = self.model.logger.name_to_value.get("train/loss")
                if loss is not None:
                    ctx.log.scalar("losses/td_loss", loss, n)
                ctx.log.scalar("charts/epsilon", self.model.exploration_rate, n)
            if n % cfg.eval_every_steps < cfg.n_envs:
                ctx.evaluate(decide, cfg.objective, n)
            if n % cfg.save_every_steps < cfg.n_envs:
                state_dir.mkdir(parents=True, exist_ok=True)
                self.model.save(state_dir / "model.zip")
                self.model.save_replay_buffer(state_dir / "replay_buffer.pkl")
                (state_dir / "progress.json").write_text(json.dumps({"steps": n, "episodes": len(episodes)}))
            return True

    model.learn(total_timesteps=max(total - model.num_timesteps, 0), callback=Hooks(),
                reset_num_timesteps=not ctx.resume)
    metrics = ctx.evaluate(decide, cfg.objective, model.num_timesteps)
    return TrainResult({"q_net": _qnet_state(model)}, int(model.num_timesteps), pool.spec, cfg.objective, metrics,
                       {"episodes": len(episodes), "train_states": len(pool)})


# ------------------------------------------------------------------------------------ policy
class DqnPolicy(LearnedPolicy):
    """``policy: {name: dqn, params: {checkpoint: PATH}}``: the greedy template of a trained DQN."""

    name = "dqn"

    def build(self, ckpt: dict) -> None:
        import torch

        cfg = Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()})
        self.templates = SliceTemplates(self.spec.n_slices, cfg.template_levels, cfg.template_span)
        self.net = q_network(self.spec, cfg, self.templates.n_actions).to(self.device)
        self.net.load_state_dict(ckpt["state"]["q_net"])
        self.net.eval()
        self._torch = torch

    def warm_up(self) -> None:
        with self._torch.no_grad():
            self.net(self._torch.zeros(1, self.spec.state_dim, device=self.device))

    def act(self, x: np.ndarray, obs) -> np.ndarray:
        with self._torch.no_grad():
            q = self.net(self._torch.from_numpy(x).to(self.device)[None])
        return self.templates.action(obs, int(q.argmax(dim=1).item()), self.spec, self.objective)
