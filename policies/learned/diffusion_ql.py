"""Diffusion-QL (Wang, Hunt, Zhou 2022): a conditional denoising-diffusion policy improved by a critic.

Read top to bottom: the config (the paper's Table I values as defaults), the networks (the noise
predictor and the double-Q critic), the diffusion process (DDPM over the action vector), the
agent's update, the trainer (online, offline, or offline then online) and the ``Policy`` adapter.
``docs/learning.md`` explains the choices; the equations, with a = the action vector mapped to
x0 in [-1, 1]^(U_max x 2) (per UE its PRB and power share; x0 = 2a - 1 for the canonical or absolute
share map, 2 sqrt(a) - 1 for sqrt: ``Config.share_map``, ``to_x``):

    forward      x_i = sqrt(abar_i) x0 + sqrt(1 - abar_i) e,    e ~ N(0, I),  i = 1..N
    denoising    L_d = E || e - e_theta(x_i, i, s) ||^2          (over real UEs only)
    reverse      x0^ = clip((x_i - sqrt(1 - abar_i) e_theta) / sqrt(abar_i), -1, 1)
                 x_{i-1} = c1_i x0^ + c2_i x_i + sigma_i z       (DDPM posterior, no noise at i = 1)
    actor        L_pi = L_d - eta Q_k(s, a~pi(.|s)) / mean |Q_j(s, a~pi)|   (k random of {1, 2}, j the other)
    critic       y = r + gamma min_k Q'_k(s', a'),  a' ~ pi_ema(.|s');   L_Q = sum_k (Q_k(s, a) - y)^2

The noise predictor reads the state as a set of UEs: ``nets.UeSetEncoder`` gives each UE an
embedding and the decision a context; a *trunk* (Table I: 16 layers x 128, residual, Mish) maps the
context and the sinusoidal step embedding to a step code, and a small per-UE *head* maps a UE's
embedding, its noisy shares, the per-slice sums of all noisy shares and the step code to that UE's
noise. The trunk does not read x_i, so one pass computes it for all N steps; only the head runs N
times. The same weights serve any number of UEs up to ``max_ues`` in any order.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import LearnedPolicy
from .decoder import DecodeContext, decode_action, decode_candidates, finish
from .encoding import EncodingSpec, encode_state, need_bps, split_state
from .nets import UeSetEncoder, mlp

#: Beta schedules the diffusion accepts (``Config.beta_schedule``).
BETA_SCHEDULES = ("vp", "linear", "cosine")
#: vp schedule's beta range (the variance-preserving SDE's discretisation, Xiao et al. 2021; as the original).
VP_BETA_MIN, VP_BETA_MAX = 0.1, 10.0
#: linear schedule's beta range (Ho et al. 2020, scaled to N steps by the caller's N).
LINEAR_BETA_START, LINEAR_BETA_END = 1e-4, 2e-2
#: cosine schedule's offset s and largest beta (Nichol and Dhariwal 2021).
COSINE_S, COSINE_MAX_BETA = 0.008, 0.999
#: Period scale of the sinusoidal step embedding (as in transformers' position embedding).
EMBED_MAX_PERIOD = 10_000.0
#: The action vector lies in [0, 1]; the diffusion works on x = 2a - 1 in [-1, 1].
X_CLIP = 1.0
#: Largest share below which a column of shares counts as all zero (``canonical``).
CANONICAL_FLOOR = 1e-6
#: Posterior variance floor before the log (the first step's variance is 0).
MIN_POSTERIOR_VAR = 1e-20
#: How a decision picks among its sampled candidates (``Config.select``).
SELECTS = ("critic", "objective")
#: How the step sizes move over training (``Config.lr_schedule``, ``lr_scale``).
LR_SCHEDULES = ("constant", "cosine", "linear")
#: How the diffusion's x in [-1, 1] maps to shares (``Config.share_map``; ``to_shares``, ``to_x``).
SHARE_MAPS = ("canonical", "absolute", "sqrt")
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "diffusion_ql_paper_default.pt"


@dataclass(frozen=True)
class Config:
    episodes: int = 2000
    """Episodes of online training (Table I: 2000)."""
    episode_steps: int = 100
    """Decisions per episode (Table I: 100); env steps = episodes x episode_steps."""
    diffusion_steps: int = 20
    """N, denoising steps of the actor (Table I: 20)."""
    beta_schedule: str = "vp"
    """Noise schedule: vp (as the original), linear or cosine; anything else is an error."""
    layers: int = 16
    """Hidden layers of the noise predictor's trunk, each ``hidden`` wide (Table I: 16)."""
    hidden: int = 128
    """Width of the trunk's layers (Table I: 128 neurons per layer)."""
    step_embed_dim: int = 16
    """Size of the sinusoidal step embedding (the original's 16)."""
    ue_hidden: int = 64
    """Width of the per-UE encoder, the per-UE noise head and the critic's per-UE layers."""
    critic_hidden: int = 256
    """Width of the critic's three hidden layers after pooling (the original's 3 x 256)."""
    learning_rate: float = 6e-4
    """Adam step size of the actor (Table I: 0.0006)."""
    critic_learning_rate: float = 6e-4
    """Adam step size of the critic (Table I's 0.0006; a field, not a hidden constant)."""
    lr_schedule: str = "constant"
    """How both step sizes move over training (``lr_scale``): constant (as the original), cosine or
    linear decay from the full rate to ``lr_final_ratio`` of it at the end of training, the end being
    the planned gradient steps or, under ``max_wall_minutes``, the budget, whichever comes first: the
    last steps are then small and the end of training is a settled point rather than a lucky one."""
    lr_warmup_steps: int = 0
    """Gradient steps over which both step sizes rise linearly from 0 to their rate (0: none)."""
    lr_final_ratio: float = 0.0
    """Step size at the end of a decaying ``lr_schedule``, as a share of the rate."""
    gamma: float = 0.98
    """Discount (Table I: 0.98). In the snapshot env the next state does not depend on the action,
    so gamma adds the same E[V(s')] to every action's Q: it leaves the greedy action unchanged but
    inflates |Q|, which divides the actor's Q term; 0 makes the problem the bandit it is."""
    batch_size: int = 128
    """Minibatch of each gradient step (Table I: 128)."""
    epsilon: float = 0.1
    """Probability of a uniformly random action while collecting (Table I: 0.1)."""
    eta: float = 1.0
    """Weight of the actor's Q term against the denoising loss."""
    tau: float = 0.005
    """Soft-update rate of the target critics."""
    ema_decay: float = 0.995
    """Decay of the EMA copy of the actor (used for targets and decisions)."""
    ema_start: int = 1000
    """Gradient steps before the EMA starts tracking (it copies the actor until then)."""
    ema_every: int = 5
    """Gradient steps between EMA updates."""
    grad_clip: float = 1.0
    """Largest gradient norm of actor and critic updates (0: no clipping)."""
    q_batch: int = 0
    """States of the batch whose sampled actions enter the actor's Q term (0: the whole batch, as the
    original). The Q term backpropagates through all N denoising steps, the most expensive part of a
    gradient step; a smaller share cuts that cost in proportion (the denoising loss keeps the batch)."""
    candidates: int = 8
    """Actions sampled per decision, of which one is taken by ``select`` (1: no choice)."""
    share_map: str = "canonical"
    """How the diffusion's x0 in [-1, 1] maps to each UE's shares a: canonical (a = (x + 1) / 2, then
    each column divided by its largest entry, so the UEs' relative weights are learned and the decoder
    uses every PRB and all the power; labels are canonicalised alike), absolute (a = (x + 1) / 2, the
    shares themselves: a state where the optimum leaves PRBs or power unused keeps that) or sqrt
    (a = ((x + 1) / 2)^2: absolute shares with more of x's range for small shares, x = 2 sqrt(a) - 1).
    Checkpoints without the field are canonical (their training's map)."""
    select: str = "critic"
    """How a decision picks among its candidates: critic (the largest target-critic min-Q, as the
    original) or objective (decode every candidate and take the first in the snapshot problem's
    order: least shortfall, then largest objective, as the optimum ranks allocations; it reads only
    the observation, and costs a decode and an evaluation per candidate)."""
    share_scales: tuple[float, ...] = (1.0,)
    """With ``select: objective``, each candidate is also decoded with its shares multiplied by each
    of these factors (clipped to 1; the decoder scales an RU's shares down to sum 1), and the choice
    is among all of them: an actor that imitates an optimum leaving PRBs idle gets, where a UE falls
    just short of its need, the same shares with more PRBs and power to pick instead (the problem's
    order keeps the unscaled one unless scaling meets more needs or serves more). Costs a decode and
    an evaluation per candidate and factor."""
    need_floor: bool = False
    """With ``select: objective`` (and an absolute ``share_map``), each candidate also gets a copy in
    which every UE with a rate need has at least one PRB's share (1 / K) of the PRBs and of the power,
    before ``share_scales``: a UE with a small need (an mMTC report) that the actor gave a share just
    below one PRB, which the decoder's rounding turns into none, has a candidate that serves it (the
    problem's order takes it only if it meets more needs or serves more). Doubles the candidates."""
    mode: str = "online"
    """online (replay from the env, epsilon-exploration; label-free), offline (only the dataset's
    transitions) or offline_online (offline steps first, then online)."""
    offline_actions: str = "driver"
    """Actions of the offline transitions: driver (the scenario's policy on each state; label-free)
    or optimal (the dataset's optimum labels; the policy then learns from labels)."""
    offline_steps: int = 5000
    """Gradient steps on the offline transitions (modes offline and offline_online)."""
    offline_eta: float = -1.0
    """eta of the offline steps (negative: ``eta``). 0 makes them behaviour cloning of the dataset's
    actions (the critic still learns), which skips the Q term's pass through the sampling chain."""
    bc_on_dataset: bool = False
    """Online steps take the denoising loss on the offline transitions (the dataset's actions) rather
    than on the replay's: the actor keeps imitating the labels while the critic, trained on
    everything collected, pulls it towards better actions (a BC-regularised Q improvement)."""
    init_checkpoint: str = ""
    """A Diffusion-QL checkpoint to start from (its EMA actor and target critics become both the
    networks and their copies; its encoding and network fields must match this config's), to train
    a shipped policy further; empty: fresh networks."""
    offline_critic: bool = True
    """Offline steps also train the critic. False (with ``offline_eta`` 0): the offline steps are pure
    behaviour cloning, about 2.4 times cheaper, and the critic keeps its initial (or loaded) weights, so
    such a checkpoint should decide with ``select: objective``, which does not read the critic."""
    keep_best: bool = False
    """The checkpoint holds the EMA actor and target critics of the held-out evaluation with the
    best ``best_score`` (the held-out states are validation states then: report on others)."""
    best_score: str = "ratio_qos"
    """What ``keep_best`` ranks: ratio_qos (weighted-objective ratio + QoS share) or ratio_qos_r2
    (the same plus the R^2 of the decision vector against the optimum's, for agreement)."""
    n_envs: int = 16
    """Snapshot envs stepped together while collecting."""
    updates_per_step: float = 0.125
    """Gradient steps per env step (one per 8 transitions by default)."""
    learning_starts: int = 2000
    """Env steps of collection before the first online gradient step."""
    buffer_size: int = 200_000
    """Replay capacity in transitions (states are stored as indices into the pool)."""
    objective: str = "served"
    """Snapshot objective of the reward: served or rate."""
    need_penalty: float = 4.0
    """Reward penalty on the mean share of their rate need the UEs miss (``envs.reward``)."""
    max_ues: int = 0
    """Rows of the state encoding (0: the largest number of UEs among the training states)."""
    train_states: int = 2000
    """States generated for training when no dataset file is given."""
    loads: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    """Load factors of the generated training states."""
    train_ues_per_slice: tuple[int, ...] = ()
    """UEs per slice of the generated training states, one drawn per run (empty: the scenario's)."""
    train_power_dbm: tuple[float, ...] = ()
    """RU powers of the generated training states, one drawn per run (empty: the scenario's)."""
    max_wall_minutes: float = 0.0
    """Wall-time budget of the training steps (0: none): each phase stops where it is once spent
    (the offline phase at ``offline_wall_share`` of it), then the final evaluation and checkpoint."""
    offline_wall_share: float = 0.75
    """Share of ``max_wall_minutes`` after which the offline phase stops (mode offline_online)."""
    eval_every_steps: int = 20_000
    """Env steps (gradient steps offline) between held-out evaluations against the optimum."""
    save_every_steps: int = 50_000
    """Env steps between saves of the training state (for --resume)."""


def lr_scale(cfg: Config, step: int, planned_steps: int, wall_share: float = 0.0) -> float:
    """Factor on both step sizes at gradient ``step`` (``Config.lr_schedule``): a linear warm-up over
    ``lr_warmup_steps``, then the schedule's decay by progress, the larger of the share of the
    ``planned_steps`` done and the share of the wall budget spent (``wall_share``; 0 without one)."""
    warm = min(1.0, (step + 1) / cfg.lr_warmup_steps) if cfg.lr_warmup_steps > 0 else 1.0
    if cfg.lr_schedule == "constant":
        return warm
    after = max(planned_steps - cfg.lr_warmup_steps, 1)
    progress = min(1.0, max((step - cfg.lr_warmup_steps) / after, wall_share, 0.0))
    decay = 0.5 * (1.0 + math.cos(math.pi * progress)) if cfg.lr_schedule == "cosine" else 1.0 - progress
    return warm * (cfg.lr_final_ratio + (1.0 - cfg.lr_final_ratio) * decay)


def _activation() -> nn.Module:
    return nn.Mish()


# ----------------------------------------------------------------------------------- networks
def step_embedding(i: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) step indices -> (B, dim) sinusoidal embedding [sin(i w_k), cos(i w_k)]."""
    half = dim // 2
    w = torch.exp(-math.log(EMBED_MAX_PERIOD) * torch.arange(half, device=i.device) / max(half - 1, 1))
    arg = i.float()[:, None] * w[None, :]
    return torch.cat([arg.sin(), arg.cos()], dim=1)


def rows(s: torch.Tensor, spec: EncodingSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of flat states (B, state_dim) as per-UE rows (B, U, F), mask (B, U) and globals (B, G),
    U the batch's largest number of real UEs: the encoding puts real UEs first, so the rows dropped
    are padding in every state and every network below gives the same result without them (its
    normalisations use U_max), at a cost proportional to U instead of U_max."""
    ue, mask, glob = split_state(s, spec)
    u = max(int(mask.sum(dim=1).max().item()), 1) if s.shape[0] else 1
    return ue[:, :u], mask[:, :u], glob


class NoiseNet(nn.Module):
    """e_theta(x_i, i, s): (B, U, 2) noisy shares, (B,) steps, state rows (``rows``) -> (B, U, 2) noise."""

    def __init__(self, spec: EncodingSpec, cfg: Config):
        super().__init__()
        self.spec, self.n_steps, self.embed_dim = spec, cfg.diffusion_steps, cfg.step_embed_dim
        h, e, s = cfg.hidden, cfg.ue_hidden, spec.n_slices
        self.encoder = UeSetEncoder(spec, e)
        self.step_mlp = nn.Sequential(nn.Linear(cfg.step_embed_dim, 2 * cfg.step_embed_dim), _activation(),
                                      nn.Linear(2 * cfg.step_embed_dim, cfg.step_embed_dim))
        self.trunk_in = nn.Linear(self.encoder.out_dim + cfg.step_embed_dim, h)
        self.trunk = nn.ModuleList(nn.Linear(h, h) for _ in range(cfg.layers - 1))  # residual layers
        self.act = _activation()
        self.head_ue = nn.Linear(e, e, bias=False)
        self.head_code = nn.Linear(h, e)
        self.head_x = nn.Linear(2, e, bias=False)
        self.head_pool = nn.Linear(2 * s, e, bias=False)
        self.head = nn.Sequential(_activation(), nn.Linear(e, e), _activation(), nn.Linear(e, 2))

    def condition(self, state):
        """Per-decision part of the state rows (ue, mask, glob): UE embeddings (B, U, E) projected for
        the head, mask (B, U), slice one-hot of the real UEs (B, U, S), and the context (B, C)."""
        ue, mask, glob = state
        emb = self.encoder.phi(ue) * mask.unsqueeze(-1)
        onehot = ue[..., 1:1 + self.spec.n_slices] * mask.unsqueeze(-1)
        return self.head_ue(emb), mask, onehot, self.encoder.from_rows(ue, mask, glob, emb)

    def step_codes(self, context: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Trunk: context (B, C) and steps (T,) -> head input of the step code (B, T, E)."""
        b, t = context.shape[0], steps.shape[0]
        emb = self.step_mlp(step_embedding(steps, self.embed_dim))
        z = self.act(self.trunk_in(torch.cat([context[:, None, :].expand(b, t, -1),
                                              emb[None, :, :].expand(b, t, -1)], dim=2)))
        for layer in self.trunk:
            z = z + self.act(layer(z))
        return self.head_code(z)

    def head_noise(self, x: torch.Tensor, ue_proj, mask, onehot, code) -> torch.Tensor:
        """Per-UE head: x (B, U, 2), code (B, E) -> noise (B, U, 2), zero on padding rows."""
        shares = (x + 1.0) * 0.5
        pool = torch.einsum("bus,bud->bsd", onehot, shares).flatten(1)  # per-slice sums of the shares
        pre = ue_proj + self.head_x(x) + (code + self.head_pool(pool))[:, None, :]
        return self.head(pre) * mask.unsqueeze(-1)

    def forward(self, x: torch.Tensor, i: torch.Tensor, state) -> torch.Tensor:
        ue_proj, mask, onehot, context = self.condition(state)
        emb = self.step_mlp(step_embedding(i, self.embed_dim))
        z = self.act(self.trunk_in(torch.cat([context, emb], dim=1)))
        for layer in self.trunk:
            z = z + self.act(layer(z))
        return self.head_noise(x, ue_proj, mask, onehot, self.head_code(z))


class QNet(nn.Module):
    """Q(s, a): per-UE MLP of (features, shares), summed per slice, with globals and share totals."""

    def __init__(self, spec: EncodingSpec, cfg: Config):
        super().__init__()
        self.spec = spec
        e, s = cfg.ue_hidden, spec.n_slices
        self.psi = mlp([spec.n_ue_features + 2, e, e], nn.Mish, last_activation=True)
        self.q = mlp([s * e + spec.n_globals + 2 * s, cfg.critic_hidden, cfg.critic_hidden,
                      cfg.critic_hidden, 1], nn.Mish)

    def forward(self, state, shares: torch.Tensor) -> torch.Tensor:
        """State rows (``rows``), shares (B, U, 2) in [0, 1] -> (B,) Q."""
        ue, mask, glob = state
        shares = shares * mask.unsqueeze(-1)
        h = self.psi(torch.cat([ue, shares], dim=2)) * mask.unsqueeze(-1)
        onehot = ue[..., 1:1 + self.spec.n_slices] * mask.unsqueeze(-1)
        pooled = torch.einsum("bus,buh->bsh", onehot, h) / self.spec.max_ues
        totals = torch.einsum("bus,bud->bsd", onehot, shares)
        return self.q(torch.cat([pooled.flatten(1), glob, totals.flatten(1)], dim=1)).squeeze(1)


class Critic(nn.Module):
    def __init__(self, spec: EncodingSpec, cfg: Config):
        super().__init__()
        self.q1, self.q2 = QNet(spec, cfg), QNet(spec, cfg)

    def forward(self, state, shares):
        return self.q1(state, shares), self.q2(state, shares)


# --------------------------------------------------------------------------- diffusion process
def beta_schedule(name: str, n: int) -> np.ndarray:
    """(n,) float64 betas of the named schedule; ValueError for an unknown name."""
    i = np.arange(1, n + 1, dtype=float)
    if name == "vp":
        return 1.0 - np.exp(-VP_BETA_MIN / n - 0.5 * (VP_BETA_MAX - VP_BETA_MIN) * (2 * i - 1) / n**2)
    if name == "linear":
        return np.linspace(LINEAR_BETA_START, LINEAR_BETA_END, n)
    if name == "cosine":
        f = np.cos((np.arange(n + 1) / n + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
        return np.minimum(1.0 - f[1:] / f[:-1], COSINE_MAX_BETA)
    raise ValueError(f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)} (got {name!r})")


class Diffusion(nn.Module):
    """DDPM over x in [-1, 1]^(U x 2), wrapping a noise predictor (see the module docstring)."""

    def __init__(self, net: NoiseNet, n_steps: int, schedule: str):
        super().__init__()
        self.net, self.n_steps = net, int(n_steps)
        betas = beta_schedule(schedule, self.n_steps)
        abar = np.cumprod(1.0 - betas)
        abar_prev = np.r_[1.0, abar[:-1]]
        var = betas * (1.0 - abar_prev) / (1.0 - abar)
        coef = {"sqrt_abar": np.sqrt(abar), "sqrt_1m_abar": np.sqrt(1.0 - abar),
                "c1": betas * np.sqrt(abar_prev) / (1.0 - abar),
                "c2": (1.0 - abar_prev) * np.sqrt(1.0 - betas) / (1.0 - abar),
                "sigma": np.where(np.arange(self.n_steps) > 0, np.exp(0.5 * np.log(np.maximum(var, MIN_POSTERIOR_VAR))), 0.0)}
        for k, v in coef.items():
            self.register_buffer(k, torch.tensor(v, dtype=torch.float32))

    def loss(self, x0: torch.Tensor, state, gen: torch.Generator) -> torch.Tensor:
        """L_d on a batch: x0 (B, U, 2), state rows (``rows``; its mask (B, U) marks the real UEs)."""
        mask = state[1]
        i = torch.randint(0, self.n_steps, (x0.shape[0],), generator=gen, device=x0.device)
        e = torch.randn(x0.shape, generator=gen, device=x0.device)
        xi = self.sqrt_abar[i, None, None] * x0 + self.sqrt_1m_abar[i, None, None] * e
        err = ((self.net(xi, i, state) - e) ** 2).sum(dim=2) * mask
        return err.sum() / (2.0 * mask.sum()).clamp(min=1.0)

    def sample(self, state, noise: torch.Tensor, hoisted: bool = True) -> torch.Tensor:
        """x0 (B, U, 2) for state rows (``rows``) from noise (N + 1, B, U, 2): noise[0] is x_N,
        noise[k] the z of the k-th step. ``hoisted`` computes the state's and the steps' parts once
        (same result as the plain loop)."""
        x, dev = noise[0], noise.device
        if hoisted:
            ue_proj, mask, onehot, context = self.net.condition(state)
            codes = self.net.step_codes(context, torch.arange(self.n_steps, device=dev))
        for k, i in enumerate(range(self.n_steps - 1, -1, -1)):
            if hoisted:
                eps = self.net.head_noise(x, ue_proj, mask, onehot, codes[:, i])
            else:
                eps = self.net(x, torch.full((x.shape[0],), i, device=dev), state)
            x0 = ((x - self.sqrt_1m_abar[i] * eps) / self.sqrt_abar[i]).clamp(-X_CLIP, X_CLIP)
            x = self.c1[i] * x0 + self.c2[i] * x + self.sigma[i] * noise[k + 1]
        return x


def to_shares(x: torch.Tensor, mask: torch.Tensor, share_map: str = "canonical") -> torch.Tensor:
    """x (B, U, 2) in [-1, 1] -> shares (B, U, 2) in [0, 1] by ``share_map`` (``Config.share_map``),
    0 on padding rows."""
    a = (x + 1.0) * 0.5 * mask.unsqueeze(-1)
    if share_map == "sqrt":
        a = a * a
    return canonical(a) if share_map == "canonical" else a


def to_x(shares: torch.Tensor, share_map: str = "canonical") -> torch.Tensor:
    """Shares (B, U, 2) in [0, 1] (canonical ones under ``canonical``) -> the diffusion's x0 in [-1, 1]."""
    if share_map == "sqrt":
        shares = shares.clamp(min=0.0).sqrt()
    return shares * 2.0 - 1.0


def label_actions(a: np.ndarray, max_ues: int, share_map: str) -> np.ndarray:
    """Env actions (B, 2 U_max) as the actor learns them: canonicalised under ``canonical``, else as they are."""
    return canonical_action(a, max_ues) if share_map == "canonical" else np.asarray(a, dtype=np.float32)


def canonical(shares: torch.Tensor) -> torch.Tensor:
    """Shares (B, U, 2) with each column divided by its largest entry (so that entry is 1; an all-zero
    column stays 0). The decoder scales an RU's shares down to sum 1, so with one RU the canonical
    form decodes as the shares would if they used every PRB and all the power: what is learned is
    the UEs' relative weights, values of order 1 rather than of order 1 / U, which the diffusion's
    noise would otherwise swamp (a UE's share of 0.03 and 0 differ by less than the sampling noise)."""
    return shares / shares.amax(dim=1, keepdim=True).clamp(min=CANONICAL_FLOOR)


def canonical_action(a: np.ndarray, max_ues: int) -> np.ndarray:
    """``canonical`` for env actions (B, 2 U_max) in numpy."""
    b = a.reshape(a.shape[0], 2, max_ues)
    return (b / np.maximum(b.max(axis=2, keepdims=True), CANONICAL_FLOOR)).reshape(a.shape).astype(np.float32)


def to_action(shares: torch.Tensor, max_ues: int) -> torch.Tensor:
    """Shares (B, U, 2), U <= U_max -> the env's action (B, 2 U_max): PRB shares then power shares."""
    out = shares.new_zeros((shares.shape[0], 2, max_ues))
    out[:, :, :shares.shape[1]] = shares.transpose(1, 2)
    return out.flatten(1)


def from_action(a: torch.Tensor, max_ues: int, u: int) -> torch.Tensor:
    """The env's action (B, 2 U_max) -> shares (B, u, 2) of the first u rows."""
    return a.reshape(a.shape[0], 2, max_ues)[:, :, :u].transpose(1, 2)


# ---------------------------------------------------------------------------------- the agent
def _flat_optimizer(opt) -> dict:
    """An optimiser's state as a flat name -> tensor dict (what a weights-only checkpoint holds)."""
    return {f"{pid}.{k}": (v if torch.is_tensor(v) else torch.tensor(v))
            for pid, st in opt.state_dict()["state"].items() for k, v in st.items()}


def _load_optimizer(opt, flat: dict) -> None:
    sd = opt.state_dict()
    sd["state"] = {}
    for key, v in flat.items():
        pid, k = key.split(".", 1)
        sd["state"].setdefault(int(pid), {})[k] = v
    opt.load_state_dict(sd)


class Agent:
    """Actor (diffusion), its EMA copy, the double-Q critic and its targets, both optimisers."""

    def __init__(self, spec: EncodingSpec, cfg: Config, device, seed: int):
        self.spec, self.cfg, self.device = spec, cfg, torch.device(device)
        self.gen = torch.Generator(self.device).manual_seed(int(seed))
        self.actor = Diffusion(NoiseNet(spec, cfg), cfg.diffusion_steps, cfg.beta_schedule).to(self.device)
        self.actor_ema = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = Critic(spec, cfg).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.learning_rate)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_learning_rate)
        self.steps = 0

    def noise(self, b: int, u: int) -> torch.Tensor:
        return torch.randn((self.cfg.diffusion_steps + 1, b, u, 2), generator=self.gen, device=self.device)

    def sample_shares(self, state, actor: Diffusion) -> torch.Tensor:
        """Shares (B, U, 2) sampled from ``actor`` for state rows (``rows``)."""
        mask = state[1]
        return to_shares(actor.sample(state, self.noise(mask.shape[0], mask.shape[1])), mask, self.cfg.share_map)

    def sample(self, s: torch.Tensor, actor: Diffusion | None = None, candidates: int = 1) -> torch.Tensor:
        """Actions (B, 2 U_max) for states (B, state_dim); with candidates > 1 the best by target min-Q."""
        actor = actor if actor is not None else self.actor_ema
        b = s.shape[0]
        state = rows(s.repeat_interleave(candidates, dim=0) if candidates > 1 else s, self.spec)
        shares = self.sample_shares(state, actor)
        if candidates > 1:
            q = torch.min(*self.critic_target(state, shares)).view(b, candidates)
            shares = shares.view(b, candidates, *shares.shape[1:])[torch.arange(b, device=s.device), q.argmax(dim=1)]
        return to_action(shares, self.spec.max_ues)

    def _clip_step(self, opt, params) -> None:
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        opt.step()

    def update(self, s, a, r, s2, eta: float | None = None, bc: tuple | None = None, critic: bool = True) -> dict:
        """One gradient step of critic, then actor, then targets and EMA; returns the losses. ``eta``
        overrides the config's (0: no Q term); ``bc`` = (states, actions) for the denoising loss
        instead of the batch's own; ``critic`` False skips the critic's step (pure cloning with eta 0)."""
        cfg = self.cfg
        eta = cfg.eta if eta is None else eta
        state = rows(s, self.spec)
        shares = from_action(a, self.spec.max_ues, state[1].shape[1])
        critic_loss = torch.zeros((), device=self.device)
        if critic:
            with torch.no_grad():
                y = r
                if cfg.gamma > 0:
                    state2 = rows(s2, self.spec)
                    y = r + cfg.gamma * torch.min(*self.critic_target(state2, self.sample_shares(state2, self.actor_ema)))
            q1, q2 = self.critic(state, shares)
            critic_loss = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
            self.critic_opt.zero_grad()
            critic_loss.backward()
            self._clip_step(self.critic_opt, self.critic.parameters())

        if bc is None:
            bc_loss = self.actor.loss(to_x(shares, cfg.share_map), state, self.gen)
        else:
            bc_state = rows(bc[0], self.spec)
            bc_loss = self.actor.loss(to_x(from_action(bc[1], self.spec.max_ues, bc_state[1].shape[1]), cfg.share_map),
                                      bc_state, self.gen)
        ql_loss = torch.zeros((), device=self.device)
        sub = state if cfg.q_batch <= 0 else tuple(t[:cfg.q_batch] for t in state)  # the batch is shuffled
        if eta != 0:
            qa, qb = self.critic(sub, self.sample_shares(sub, self.actor))
            if torch.rand((), generator=self.gen, device=self.device) < 0.5:
                qa, qb = qb, qa
            ql_loss = -qa.mean() / qb.abs().mean().detach().clamp(min=1e-6)
        else:  # the same draws as the Q term's, without its passes: eta 0 and eta > 0 see the same noise
            self.noise(sub[1].shape[0], sub[1].shape[1])
            torch.rand((), generator=self.gen, device=self.device)
        actor_loss = bc_loss + eta * ql_loss
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self._clip_step(self.actor_opt, self.actor.parameters())

        with torch.no_grad():
            for p, pt in zip(self.critic.parameters(), self.critic_target.parameters()):
                pt.lerp_(p, cfg.tau)
            if self.steps < cfg.ema_start:
                self.actor_ema.load_state_dict(self.actor.state_dict())
            elif self.steps % cfg.ema_every == 0:
                for p, pe in zip(self.actor.parameters(), self.actor_ema.parameters()):
                    pe.lerp_(p, 1.0 - cfg.ema_decay)
        self.steps += 1
        return {"losses/critic_loss": critic_loss.item(), "losses/bc_loss": bc_loss.item(),
                "losses/ql_loss": ql_loss.item(), "losses/actor_loss": actor_loss.item(),
                "values/q": q1.mean().item() if critic else 0.0}

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "actor_ema": self.actor_ema.state_dict(),
                "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
                "actor_opt": _flat_optimizer(self.actor_opt), "critic_opt": _flat_optimizer(self.critic_opt),
                "agent": {"steps": torch.tensor(self.steps), "generator": self.gen.get_state()}}

    def load_state_dict(self, sd: dict) -> None:
        for name in ("actor", "actor_ema", "critic", "critic_target"):
            getattr(self, name).load_state_dict(sd[name])
        _load_optimizer(self.actor_opt, sd["actor_opt"])
        _load_optimizer(self.critic_opt, sd["critic_opt"])
        self.steps = int(sd["agent"]["steps"])
        self.gen.set_state(sd["agent"]["generator"])


# ------------------------------------------------------------------------------------ training
class Replay:
    """Transitions with states as pool indices (the snapshot env's next state ignores the action)."""

    def __init__(self, capacity: int, action_dim: int):
        self.s = np.zeros(capacity, dtype=np.int64)
        self.s2 = np.zeros(capacity, dtype=np.int64)
        self.a = np.zeros((capacity, action_dim), dtype=np.float32)
        self.r = np.zeros(capacity, dtype=np.float32)
        self.n, self.head = 0, 0

    def add(self, s, a, r, s2) -> None:
        for j in range(len(s)):
            self.s[self.head], self.a[self.head], self.r[self.head], self.s2[self.head] = s[j], a[j], r[j], s2[j]
            self.head = (self.head + 1) % len(self.s)
            self.n = min(self.n + 1, len(self.s))

    def sample(self, b: int, rng: np.random.Generator):
        j = rng.integers(self.n, size=b)
        return self.s[j], self.a[j], self.r[j], self.s2[j]


def _check(cfg: Config) -> None:
    """A config that cannot train is a ``TrainError`` naming the field (one line on the command line)."""
    from .train import TrainError

    for field, value, allowed in (("beta_schedule", cfg.beta_schedule, BETA_SCHEDULES),
                                  ("mode", cfg.mode, ("online", "offline", "offline_online")),
                                  ("offline_actions", cfg.offline_actions, ("driver", "optimal")),
                                  ("objective", cfg.objective, ("served", "rate")),
                                  ("select", cfg.select, SELECTS),
                                  ("share_map", cfg.share_map, SHARE_MAPS),
                                  ("lr_schedule", cfg.lr_schedule, LR_SCHEDULES),
                                  ("best_score", cfg.best_score, ("ratio_qos", "ratio_qos_r2"))):
        if value not in allowed:
            raise TrainError(f"config: {field} must be one of {', '.join(allowed)} (got {value!r})")
    for field in ("diffusion_steps", "layers", "hidden", "batch_size", "n_envs", "candidates"):
        if getattr(cfg, field) < 1:
            raise TrainError(f"config: {field} must be at least 1 (got {getattr(cfg, field)})")
    if cfg.lr_warmup_steps < 0:
        raise TrainError(f"config: lr_warmup_steps must be at least 0 (got {cfg.lr_warmup_steps})")
    if not 0.0 <= cfg.lr_final_ratio <= 1.0:
        raise TrainError(f"config: lr_final_ratio must be in [0, 1] (got {cfg.lr_final_ratio})")


def _offline_transitions(ctx, cfg: Config, pool, coder, rng) -> tuple:
    """(s, a, r, s2) of every dataset state with the driver's or the optimum's action."""
    from simcore.plugins import make_policy

    from .dataset import load_states
    from .encoding import encode_allocation
    from .train import TrainError

    if cfg.offline_actions == "optimal":
        if ctx.data is None:
            raise TrainError("offline_actions optimal needs a labelled dataset file (--data)")
        labels = load_states(ctx.data).labels
        if labels is None:
            raise TrainError(f"{ctx.data}: offline_actions optimal needs a labelled dataset (--label optimal)")
        allocs = labels
    else:
        driver = make_policy(ctx.scenario.policy.name, ctx.scenario.policy.params)
        driver.reset(ctx.seed)
        allocs = [driver.decide(o) for o in pool.obs]
    actions = label_actions(np.stack([encode_allocation(al, o, pool.spec) for al, o in zip(allocs, pool.obs)]),
                            pool.spec.max_ues, cfg.share_map)
    idx = np.arange(len(pool))
    rewards = np.concatenate([pool.outcomes(idx[j:j + 256], coder, actions[j:j + 256])[0]
                              for j in range(0, len(idx), 256)])
    return idx, actions, rewards, rng.integers(len(pool), size=len(pool))


def _start_from(agent: Agent, path: str) -> None:
    """Networks and their copies from a checkpoint's EMA actor and target critics (``init_checkpoint``)."""
    from .encoding import EncodingSpec
    from .train import TrainError

    try:
        ckpt = torch.load(path, map_location=agent.device, weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise TrainError(f"config: init_checkpoint: cannot read {path} ({str(exc).splitlines()[0][:120]})") from None
    if ckpt.get("policy") != "diffusion_ql" or EncodingSpec.from_dict(ckpt["encoding"]) != agent.spec:
        raise TrainError(f"config: init_checkpoint: {path} is not a Diffusion-QL checkpoint of this encoding")
    try:
        for nets, key in (((agent.actor, agent.actor_ema), "actor_ema"), ((agent.critic, agent.critic_target), "critic_target")):
            for net in nets:
                net.load_state_dict(ckpt["state"][key])
    except (KeyError, RuntimeError) as exc:
        raise TrainError(f"config: init_checkpoint: {path}: weights do not fit this config "
                         f"({str(exc).strip().splitlines()[0][:120]})") from None


def train(ctx, cfg: Config):
    from .envs import SnapshotVectorEnv, StatePool
    from .train import TAG_RETURN, TAG_SPS, TrainResult

    _check(cfg)
    kw = dict(loads=cfg.loads, ues_per_slice=cfg.train_ues_per_slice, ru_power_dbm=cfg.train_power_dbm)
    pool = StatePool.from_source(scenario=ctx.scenario, data=ctx.data, n_states=cfg.train_states, seed=ctx.seed,
                                 max_ues=cfg.max_ues or None, objective=cfg.objective,
                                 need_penalty=cfg.need_penalty, **kw)
    spec, dev = pool.spec, ctx.device
    agent = Agent(spec, cfg, dev, ctx.seed)
    if cfg.init_checkpoint:
        _start_from(agent, cfg.init_checkpoint)
    rng = np.random.default_rng(ctx.seed)
    venv = SnapshotVectorEnv(cfg.n_envs, pool, actions="shares", episode_steps=cfg.episode_steps)
    replay = Replay(cfg.buffer_size, spec.action_dim)
    states = torch.as_tensor(pool.states, device=dev)
    total = cfg.episodes * cfg.episode_steps if cfg.mode != "offline" else 0
    state_file = ctx.run_dir / "train_state.pt"
    done = {"env_steps": 0, "episodes": 0, "offline_steps": 0}
    if ctx.resume and state_file.exists():
        saved = torch.load(state_file, map_location=dev, weights_only=False)
        agent.load_state_dict(saved["agent"])
        replay.__dict__.update(saved["replay"])
        done.update(saved["done"])
        rng.bit_generator.state = saved["rng"]
    t0, cpu0 = time.perf_counter(), time.process_time()

    def decide(obs):
        from .decoder import decode_action

        s = torch.as_tensor(encode_state(obs, spec), device=dev)[None]
        with torch.no_grad():
            if cfg.select == "objective":
                a = agent.sample(s.expand(cfg.candidates, -1), agent.actor_ema).cpu().numpy()
                a = need_floored(a, obs, spec, cfg.objective) if cfg.need_floor else a
                return best_by_objective(scaled(a, cfg.share_scales), obs, spec, cfg.objective)
            a = agent.sample(s, agent.actor_ema, cfg.candidates)[0].cpu().numpy()
        return decode_action(a, obs, spec, cfg.objective)

    def over_budget(share: float) -> bool:
        return cfg.max_wall_minutes > 0 and time.perf_counter() - t0 > 60.0 * share * cfg.max_wall_minutes

    offline = {}  # the dataset's transitions (bc_on_dataset: the online steps' denoising loss reads them)
    best = {"score": -math.inf, "weights": None, "metrics": None}

    def evaluate(step: int) -> dict:
        """Held-out evaluation (once per step); with ``keep_best`` the weights of the best so far are kept."""
        if best.get("last_step") == step:
            return best["last"]
        m = ctx.evaluate(decide, cfg.objective, step)
        best.update(last_step=step, last=m)
        score = m["throughput_ratio"] + m["qos_pct"] / 100.0 + (m["r2"] if cfg.best_score == "ratio_qos_r2" else 0.0)
        if cfg.keep_best and score > best["score"]:
            best.update(score=score, metrics=m, step=step,
                        weights={k: copy.deepcopy(v) for k, v in agent.state_dict().items()
                                 if k in ("actor_ema", "critic_target")})
        return m

    # the schedule's horizon: every planned gradient step (offline, then online at updates_per_step)
    planned = (cfg.offline_steps if cfg.mode != "online" else 0) + int(
        max(total - cfg.learning_starts, 0) * cfg.updates_per_step)

    def gradient_step(step: int, online: bool = True) -> None:
        wall = (time.perf_counter() - t0) / (60.0 * cfg.max_wall_minutes) if cfg.max_wall_minutes > 0 else 0.0
        f = lr_scale(cfg, agent.steps, planned, wall)
        for opt, rate in ((agent.actor_opt, cfg.learning_rate), (agent.critic_opt, cfg.critic_learning_rate)):
            for group in opt.param_groups:
                group["lr"] = rate * f
        s, a, r, s2 = replay.sample(cfg.batch_size, rng)
        eta = cfg.eta if online or cfg.offline_eta < 0 else cfg.offline_eta
        bc = None
        if online and cfg.bc_on_dataset and offline:
            j = rng.integers(len(offline["s"]), size=cfg.batch_size)
            bc = (states[offline["s"][j]], torch.as_tensor(offline["a"][j], device=dev))
        m = agent.update(states[s], torch.as_tensor(a, device=dev), torch.as_tensor(r, device=dev), states[s2],
                         eta=eta, bc=bc, critic=online or cfg.offline_critic or eta != 0)
        if step % 100 == 0:
            for k, v in m.items():
                ctx.log.scalar(k, v, step)
            ctx.log.scalar("charts/learning_rate", cfg.learning_rate * f, step)
            ctx.log.scalar("charts/cpu_s", time.process_time() - cpu0, step)

    def save_state() -> None:
        torch.save({"agent": agent.state_dict(), "replay": replay.__dict__, "done": done,
                    "rng": rng.bit_generator.state}, state_file)

    if cfg.init_checkpoint and cfg.keep_best and agent.steps == 0:
        evaluate(0)  # the starting point is a candidate too
    if cfg.mode != "online" and (done["offline_steps"] < cfg.offline_steps or cfg.bc_on_dataset):
        s_off, a_off, r_off, s2_off = _offline_transitions(ctx, cfg, pool, venv.coder, rng)
        offline.update(s=s_off, a=a_off)
        if done["offline_steps"] < cfg.offline_steps:
            replay.add(s_off, a_off, r_off, s2_off)
        share = cfg.offline_wall_share if cfg.mode == "offline_online" else 1.0
        for step in range(done["offline_steps"], cfg.offline_steps):
            if over_budget(share):
                break
            gradient_step(step, online=False)
            done["offline_steps"] = step + 1
            if ctx.progress is not None:
                ctx.progress(step + 1, cfg.offline_steps + total)
            if (step + 1) % cfg.eval_every_steps == 0:
                evaluate(step + 1)
    obs, info = venv.reset(seed=ctx.seed)
    idx, ret, owed, n0 = info["state"], np.zeros(cfg.n_envs), 0.0, done["env_steps"]
    while done["env_steps"] < total and not over_budget(1.0):
        with torch.no_grad():
            a = agent.sample(states[idx], agent.actor).cpu().numpy()
        explore = rng.random(cfg.n_envs) < cfg.epsilon
        real = np.tile(split_state(pool.states[idx[explore]], spec)[1], 2)  # padding stays 0
        a[explore] = label_actions(rng.random(real.shape, dtype=np.float32) * real, spec.max_ues, cfg.share_map)
        obs, r, term, trunc, info = venv.step(a)
        replay.add(idx, a, r, info["state"])
        idx, ret = info["state"], ret + r
        for e in np.flatnonzero(term | trunc):
            done["episodes"] += 1
            ctx.log.scalar(TAG_RETURN, ret[e], done["episodes"])
            ret[e] = 0.0
        before, done["env_steps"] = done["env_steps"], done["env_steps"] + cfg.n_envs
        step = done["env_steps"]
        if step >= cfg.learning_starts:
            owed += cfg.n_envs * cfg.updates_per_step
            while owed >= 1.0:
                gradient_step(agent.steps)
                owed -= 1.0
        if step // 1000 > before // 1000:
            ctx.log.scalar(TAG_SPS, (step - n0) / max(time.perf_counter() - t0, 1e-9), step)
        if ctx.progress is not None:
            ctx.progress(min(step, total) + cfg.offline_steps * (cfg.mode != "online"), total + cfg.offline_steps * (cfg.mode != "online"))
        if step // cfg.eval_every_steps > before // cfg.eval_every_steps:
            evaluate(step)
        if step // cfg.save_every_steps > before // cfg.save_every_steps:
            save_state()
    metrics = evaluate(max(done["env_steps"], agent.steps))
    labels = cfg.mode != "online" and cfg.offline_actions == "optimal"
    # the checkpoint keeps what decisions need (the EMA actor, the target critics); the optimisers
    # and online networks stay in the run folder's training state (--resume)
    save_state()
    weights = {k: v for k, v in agent.state_dict().items() if k in ("actor_ema", "critic_target")}
    extra = {}
    if cfg.keep_best and best["weights"] is not None:
        weights, metrics, extra = best["weights"], best["metrics"], {"kept_eval_step": best["step"]}
    return TrainResult(weights, done["env_steps"] or agent.steps, spec, cfg.objective, metrics,
                       {"episodes": done["episodes"], "gradient_steps": agent.steps, "train_states": len(pool),
                        "cpu_s": round(time.process_time() - cpu0, 1), "uses_labels": labels, **extra})


# -------------------------------------------------------------------------------------- policy
def best_by_objective(actions: np.ndarray, obs, spec: EncodingSpec, objective: str, fast: bool = True,
                      joint: bool = True):
    """The allocation, among the decoded candidate actions (C, action_dim), that comes first in the
    snapshot problem's order (least shortfall, largest objective, then power and tie cost): what
    ``select: objective`` takes. Reads only the observation, as any policy may. The candidates are
    decoded together (``decode_candidates``) and ranked together (``SnapshotProblem.keys_many``, what
    ``evaluate`` reports of each); only the chosen one becomes an ``Allocation``, unless slice
    power caps need the repair, which works on allocations. ``joint`` as in ``DecodeContext``."""
    ctx = DecodeContext(obs, spec, objective, joint=joint)
    owner, power = decode_candidates(actions, ctx, fast=fast)
    if len(owner) == 1:
        return finish(ctx, owner[0], power[0])
    if ctx.need_repair:
        allocs = [finish(ctx, o, p) for o, p in zip(owner, power)]
        owner, power = np.stack([a.prb_owner for a in allocs]), np.stack([a.power_w for a in allocs])
        return allocs[ctx.problem.best_index(*ctx.problem.keys_many(owner, power)[:4])]
    best = ctx.problem.best_index(*ctx.problem.keys_many(owner, power)[:4])
    return finish(ctx, owner[best].copy(), power[best].copy())


def scaled(actions: np.ndarray, factors) -> np.ndarray:
    """Candidates (C, action_dim) and their copies with shares times each factor, clipped to 1:
    (C x len(factors), action_dim), the factors' copies in order (``Config.share_scales``)."""
    factors = tuple(factors) or (1.0,)
    if factors == (1.0,):
        return actions
    return np.concatenate([np.minimum(actions * np.float32(f), np.float32(1.0)) for f in factors])


def need_floored(actions: np.ndarray, obs, spec: EncodingSpec, objective: str) -> np.ndarray:
    """Candidates (C, action_dim), then their copies in which every UE with a rate need has at least
    one PRB's share (1 / K) of the PRBs and of the power: (2C, action_dim) (``Config.need_floor``)."""
    n, m = obs.n_ues, spec.max_ues
    floor = np.zeros(spec.action_dim, dtype=np.float32)
    one = np.where(need_bps(obs, objective) > 0, 1.0 / max(obs.n_prbs, 1), 0.0)
    floor[:n], floor[m:m + n] = one, one
    return np.concatenate([actions, np.maximum(actions, floor[None, :])])


def config_of(ckpt: dict) -> Config:
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()})


class DiffusionQlPolicy(LearnedPolicy):
    """``policy: {name: diffusion_ql, params: {checkpoint: PATH}}`` (default: the shipped
    ``models/diffusion_ql_paper_default.pt``). Each decision samples ``candidates`` actions from the
    EMA actor (noise from a generator seeded by the run's policy seed) and takes the one the target
    critics rate best, or with ``select: objective`` the one whose decoded allocation comes first in
    the snapshot problem's order (default: the checkpoint's ``Config.select``); ``fast`` (default)
    runs the compiled sampler of ``diffusion_fast``, equal to the PyTorch loop within float32
    rounding, and the compiled decoder; ``fast: false`` the PyTorch loop and the numpy decoder (the
    references)."""

    name = "diffusion_ql"

    def __init__(self, checkpoint: str = str(SHIPPED), device: str = "cpu", threads: int = 1,
                 candidates: int | None = None, fast: bool = True, select: str | None = None,
                 scales: list[float] | str | None = None, need_floor: bool | None = None):
        self.fast, self._candidates, self._select, self._floor = bool(fast), candidates, select, need_floor
        self._scales = tuple(float(f) for f in (scales.split(",") if isinstance(scales, str) else scales)) if scales else None
        super().__init__(checkpoint, device, threads)

    def build(self, ckpt: dict) -> None:
        from .checkpoint import CheckpointMismatch
        from .diffusion_fast import FastSampler

        self.cfg = config_of(ckpt)
        self.candidates = int(self._candidates or self.cfg.candidates)
        if self.candidates < 1:
            raise CheckpointMismatch("policy.params.candidates: must be at least 1")
        if self.cfg.share_map not in SHARE_MAPS:
            raise CheckpointMismatch(f"policy.params.checkpoint: {self.checkpoint_path}: unknown share_map "
                                     f"{self.cfg.share_map!r} (one of {', '.join(SHARE_MAPS)})")
        self.select = self._select or self.cfg.select
        # canonical shares under served ask for every PRB and all the power (each UE's largest share is 1):
        # the decoder keeps their PRB counts (no joint placement nor hand-overs: ``DecodeContext.joint``), the
        # rule the default checkpoint beats PF with in the simulator; absolute shares and rate take step 6 whole
        self.joint = not (self.cfg.share_map == "canonical" and self.objective == "served")
        self.scales = self._scales or tuple(self.cfg.share_scales)
        self.need_floor = self.cfg.need_floor if self._floor is None else str(self._floor).lower() in ("1", "true", "yes")
        if any(not f > 0 for f in self.scales):
            raise CheckpointMismatch(f"policy.params.scales: factors must be positive (got {list(self.scales)})")
        if self.select not in SELECTS:
            raise CheckpointMismatch(f"policy.params.select: must be one of {', '.join(SELECTS)} (got {self.select!r})")
        self.actor = Diffusion(NoiseNet(self.spec, self.cfg), self.cfg.diffusion_steps, self.cfg.beta_schedule)
        self.critic = Critic(self.spec, self.cfg)
        try:
            self.actor.load_state_dict(ckpt["state"]["actor_ema"])
            self.critic.load_state_dict(ckpt["state"]["critic_target"])
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0][:160]
            raise CheckpointMismatch(f"policy.params.checkpoint: {self.checkpoint_path}: weights do not fit its "
                                     f"config ({first})") from None
        self.actor.eval().to(self.device)
        self.critic.eval().to(self.device)
        self.sampler = FastSampler(self.actor, self.critic, self.cfg.share_map) if self.fast else None
        self.reset(0)

    def reset(self, seed: int | None = None) -> None:
        self.gen = torch.Generator().manual_seed(int(seed or 0))

    def warm_up(self) -> None:
        x = np.zeros(self.spec.state_dim, dtype=np.float32)
        self.sample(x, 1)

    def sample(self, x: np.ndarray, n_ues: int) -> np.ndarray:
        """(candidates, 2U) actions for the encoded state x with ``n_ues`` real UEs, and the index of the
        best by the target critics' min-Q (0 with ``select: objective``, which does not ask the
        critics), from the next noise of the policy's generator."""
        c, n, m = self.candidates, n_ues, self.spec.max_ues
        critics = c > 1 and self.select == "critic"
        noise = torch.randn((self.cfg.diffusion_steps + 1, c, n, 2), generator=self.gen)
        if self.sampler is not None:
            return self.sampler.sample(x, n, noise.numpy(), critics)
        with torch.no_grad():
            state = split_state(torch.from_numpy(x)[None].expand(c, -1).to(self.device), self.spec)
            full = torch.zeros((noise.shape[0], c, m, 2))
            full[:, :, :n] = noise
            shares = to_shares(self.actor.sample(state, full.to(self.device), hoisted=False), state[1], self.cfg.share_map)
            q = torch.min(*self.critic(state, shares)) if critics else torch.zeros(1)
            return to_action(shares, m).cpu().numpy(), int(q.argmax())

    def act(self, x: np.ndarray, obs) -> np.ndarray:
        actions, best = self.sample(x, obs.n_ues)
        return actions[best]

    def decide(self, obs):
        """Encode, sample the candidates, choose (``select``), decode: with ``fast`` every step's
        compiled path (encoder, sampler, decoder), else every step's reference."""
        self.check(obs)
        actions, best = self.sample(encode_state(obs, self.spec, out=self._x, fast=self.fast), obs.n_ues)
        if self.select == "objective":
            if self.need_floor:
                actions = need_floored(actions, obs, self.spec, self.objective)
            alloc = best_by_objective(scaled(actions, self.scales), obs, self.spec, self.objective, fast=self.fast,
                                      joint=self.joint)
        else:
            alloc = decode_action(actions[best], obs, self.spec, self.objective, fast=self.fast, joint=self.joint)
        alloc.info["policy"] = self.name
        return alloc
