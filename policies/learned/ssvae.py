"""SS-VAE (the paper's second baseline): a semi-supervised VAE regressing the optimum's decision.

Nouri et al. (arXiv:2401.08861) do not publish their architecture; this one is ours. Read top to
bottom: the config (every loss weight), the augmentations, the network, the losses, the training
and the ``Policy`` adapter that loads a checkpoint and decides.

Network (``SsVae``), on the shared encoding (per-UE rows with a mask, globals):

- encoder q(z|x): an MLP embeds each UE row (with its buffer, rate need and usable rate again on a
  log scale, ``small_columns``), then ``set_layers`` set blocks let the UEs see each
  other (each UE's row is updated from itself plus a linear map of the per-slice means over the
  UEs, the slice counts and the globals); each UE u gets a Gaussian latent z_u (``latent_dim``);
- state decoder p(x|z): each UE's features from its z_u, the globals from the mean of the z_u;
- decision decoder: ``decision_layers`` set blocks over the z_u, then per UE a PRB logit, a power
  logit and an activation logit (is the UE given any PRB), and per state the total PRB and power
  shares. A UE's share is total x softmax over the UEs; at decision time only UEs whose
  activation probability is at least 1/2 take part, each with at least one PRB and the lowest
  power level on it (``with_floors``; ``floors=False`` turns it off). The one decoder makes the
  action an allocation. The softmax runs over all UEs: exact for one RU (the paper's cell); with
  several RUs the decoder scales each RU's shares, which this network does not see.

Everything is permutation-equivariant in the UEs and takes any number of them up to ``max_ues``.
Set blocks instead of self-attention: on the shared 2-core machine one step (64 labelled states and
2 x 128 views, 36 UE rows) took 1.4-2.0 s with two attention layers and 0.6-0.8 s with set blocks.

Losses (weights in ``Config``): on labelled states the shares' squared error (in units of an equal
share, 1 / UEs) and the activations' binary cross-entropy; on all states the reconstruction error
and the KL term (beta-VAE); and InfoNCE between two augmented views of every state in the batch
(``augment_observation``: UE permutation, resampled history features, small CSI noise).
The snapshot problem does not read the history features (head-of-line delay, recent throughput,
last QoS flag), so resampling them among a state's UEs keeps the canonical optimum exactly. A UE
permutation keeps tiers 1-3 of the optimum (shortfall, objective, power) and, on every state
tested, each UE's PRB and power shares (the label); which PRBs a UE gets can change, since the
canonical tie-break (tier 4) is indexed by UE. CSI noise of ``csi_noise_db`` (0.25 dB) kept the
canonical optimum on 19 of 20 small states and at least 11 of 12 in the tests (6 dB does not).
The permutation changes nothing for this equivariant network; it is kept so the views do not
depend on the network. Labelled states are trained on with their history features resampled
(label-exact, in tensor space). ``contrastive=False`` (``--no-contrastive``) is the ablation
without InfoNCE.

Data: ``labelled`` is a dataset file made by ``oransim dataset --label optimal`` (or several,
comma-separated; ``labelled_states`` keeps the first L) or a number of states drawn from the
scenario and solved with the exact optimum; ``unlabelled`` likewise (labels ignored).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from simcore.contracts import Observation

from .augment import augment_observation, history_columns, resample_history, small_columns  # noqa: F401
from .checkpoint import LearnedPolicy
from .encoding import EncodingSpec, encode_allocation, encode_state


@dataclass(frozen=True)
class Config:
    labelled: str = ""
    """Labelled states: dataset file(s) made by ``oransim dataset --label optimal`` (comma-separated),
    or a number N of states drawn from the scenario and solved with the exact optimum; empty: the
    harness's ``--data`` file, else 500 drawn."""
    labelled_states: int = 0
    """Use only the first L states of the labelled file(s) (0: all)."""
    unlabelled: str = ""
    """Unlabelled states: dataset file(s) (labels, if any, are ignored), or a number N drawn from the
    scenario; empty: none (the unsupervised terms then see the labelled states)."""
    unlabelled_states: int = 0
    """Use only the first N states of the unlabelled file(s) (0: all)."""
    objective: str = "served"
    """Snapshot objective the labels were solved for: ``served`` or ``rate``."""
    max_ues: int = 0
    """Rows of the state encoding (0: the most UEs of any training state or the scenario)."""
    loads: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    """Load factors of states drawn from the scenario (no data file)."""
    steps: int = 400
    """Gradient steps."""
    batch_labelled: int = 32
    """Labelled states per step."""
    batch_unlabelled: int = 32
    """States per step for the unsupervised terms (unlabelled, or labelled when there are none)."""
    learning_rate: float = 1e-3
    """Adam step size (cosine-decayed to 5 % over the steps)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    hidden: int = 64
    """Width of the per-UE embeddings and set blocks."""
    set_layers: int = 2
    """Set blocks of the encoder (each UE sees the per-slice means of the others)."""
    decision_layers: int = 1
    """Set blocks of the decision decoder."""
    latent_dim: int = 16
    """Per-UE latent size."""
    w_shares: float = 1.0
    """Weight of the shares' squared error (labelled)."""
    w_active: float = 1.0
    """Weight of the activations' binary cross-entropy (labelled)."""
    w_recon: float = 0.1
    """Weight of the state reconstruction error (all states)."""
    beta_kl: float = 1e-3
    """Weight of the KL term, per latent dimension (all states)."""
    contrastive: bool = True
    """InfoNCE between augmented views; False is the ablation without it."""
    w_contrastive: float = 0.1
    """Weight of InfoNCE."""
    temperature: float = 0.2
    """InfoNCE temperature."""
    csi_noise_db: float = 0.25
    """Std of the log-normal CSI noise of the contrastive views (dB, per UE, RU and PRB)."""
    views: int = 2
    """Augmented views kept per state for InfoNCE (two of them are drawn at each step)."""
    floors: bool = True
    """At decision time an active UE gets at least one PRB and the lowest power level on its PRBs
    (``with_floors``); False: the regressed shares as they are."""
    label_augment: bool = True
    """Resample the history features of labelled states each step (keeps the label exactly)."""
    eval_every_steps: int = 100
    """Steps between held-out evaluations (logged; the final model is the one saved)."""


# ------------------------------------------------------------------------------------ network
def build_network(spec: EncodingSpec, cfg: Config):
    """The SS-VAE of the module docstring (torch imported here: lazily)."""
    import torch
    from torch import nn

    from .encoding import split_state
    from .nets import mlp

    h, d, n_s = cfg.hidden, cfg.latent_dim, spec.n_slices
    ctx_dim = n_s * h + n_s + spec.n_globals

    def masked_mean(t, mask):
        return (t * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)

    class SetBlock(nn.Module):
        """h_u <- h_u + MLP(LayerNorm(h_u) + c): c a linear map of the per-slice means of h, the slice
        counts and the globals, the same for every UE of the state (so the block is equivariant)."""

        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(h)
            self.context = nn.Linear(ctx_dim, h)
            self.update = mlp([h, h, h])

        def forward(self, hid, onehot, count, glob, mask):
            pooled = torch.einsum("bus,buh->bsh", onehot, hid) / count.clamp(min=1.0).unsqueeze(-1)
            c = self.context(torch.cat([pooled.flatten(1), count / spec.max_ues, glob], dim=1))
            return hid + self.update(torch.relu(self.norm(hid) + c.unsqueeze(1))) * mask.unsqueeze(-1)

    class SsVae(nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = spec
            self.embed_ue = mlp([spec.n_ue_features + len(small_columns(spec)), h, h], last_activation=True)
            self.encoder = nn.ModuleList(SetBlock() for _ in range(cfg.set_layers))
            self.to_latent = nn.Linear(h, 2 * d)
            self.recon_ue = mlp([d, h, spec.n_ue_features])
            self.recon_glob = mlp([d, h, spec.n_globals])
            self.lift = nn.Linear(d, h)
            self.decision = nn.ModuleList(SetBlock() for _ in range(cfg.decision_layers))
            self.ue_head = mlp([h, h, 3])  # PRB logit, power logit, activation logit
            self.total_head = mlp([h + spec.n_globals, h, 2])  # total PRB share, total power share (logits)
            self.projection = mlp([d, h, h])  # InfoNCE head

        def _set(self, x):
            ue, mask, glob = split_state(x, spec)
            onehot = ue[..., 1:1 + n_s] * mask.unsqueeze(-1)
            return ue, mask, glob, onehot, onehot.sum(1)

        def encode(self, x):
            """(mu, logvar) of the per-UE latents, each (B, U, d), and the mask (B, U)."""
            ue, mask, glob, onehot, count = self._set(x)
            # buffer, rate need and usable rate again on a log scale: an mMTC need is ~1e-3 of a PRB,
            # next to nothing on the encoding's linear scale, yet it decides whether the UE is served
            small = (torch.log10(ue[..., small_columns(spec)].clamp(min=0.0) + 1e-5) + 5.0) / 5.0
            hid = self.embed_ue(torch.cat([ue, small], dim=-1)) * mask.unsqueeze(-1)
            for block in self.encoder:
                hid = block(hid, onehot, count, glob, mask)
            mu, logvar = self.to_latent(hid).chunk(2, dim=-1)
            return mu, logvar.clamp(-8.0, 8.0), mask

        def decide(self, z, x):
            """Per-UE logits (B, U, 3) and total-share logits (B, 2) from latents (B, U, d) of ``x``."""
            _, mask, glob, onehot, count = self._set(x)
            hid = self.lift(z) * mask.unsqueeze(-1)
            for block in self.decision:
                hid = block(hid, onehot, count, glob, mask)
            return self.ue_head(hid), self.total_head(torch.cat([masked_mean(hid, mask), glob], dim=1))

        def reconstruct(self, z, mask):
            return self.recon_ue(z), self.recon_glob(masked_mean(z, mask))

        def embed(self, mu, mask):
            return nn.functional.normalize(self.projection(masked_mean(mu, mask)), dim=-1)

        @torch.no_grad()
        def act(self, x):
            """(B, action_dim) action vectors: the latents' means, active UEs only."""
            mu, _, mask = self.encode(x)
            logits, totals = self.decide(mu, x)
            active = (logits[..., 2] >= 0) & (mask > 0.5)
            return shares_from_logits(logits, totals, active.float())

    net = SsVae()
    net.split_state = lambda x: split_state(x, spec)
    return net


def shares_from_logits(logits, totals, mask):
    """(B, 2 U) PRB shares then power shares: total x softmax over the UEs in ``mask`` (B, U)."""
    import torch

    neg = torch.finfo(logits.dtype).min
    parts = []
    for j in range(2):
        w = torch.softmax(logits[..., j].masked_fill(mask < 0.5, neg), dim=1) * mask
        parts.append(torch.sigmoid(totals[:, j:j + 1]) * w)
    return torch.cat(parts, dim=1)


def with_floors(a: np.ndarray, obs: Observation, spec: EncodingSpec) -> np.ndarray:
    """A copy of the action ``a`` (action_dim,) in which every active UE (PRB share > 0) has at least
    one PRB (share 1/K) and at least the lowest power level on its PRBs. The activation head decides
    who is served; a share regressed a little under 1/K would otherwise round to no PRB at all."""
    from simcore.snapshot import DEFAULT_LEVEL_FACTORS

    out = np.array(a, dtype=np.float32)
    n, m = obs.n_ues, spec.max_ues
    prb, power = out[:n], out[m:m + n]  # views into ``out``
    on = prb > 0
    prb[on] = np.maximum(prb[on], 1.0 / max(obs.n_prbs, 1))
    power[on] = np.maximum(power[on], min(DEFAULT_LEVEL_FACTORS) * prb[on])
    return out


# ------------------------------------------------------------------------------------- losses
def losses(net, cfg: Config, x_lab, y_lab, views, generator=None) -> dict:
    """Loss terms of one step: labelled states ``x_lab`` (B, state_dim) with target actions ``y_lab``
    (B, action_dim); ``views`` (2, B', state_dim) two augmented views of B' states (or None)."""
    import torch
    import torch.nn.functional as F

    spec = net.spec
    out = {}
    if x_lab is not None and len(x_lab):
        if cfg.label_augment:
            x_lab = resample_history(x_lab, spec, generator)
        # the decision decoder reads the latents' means, as at decision time (sampling them here
        # measured slower to learn: at the start the noise, std ~1, drowns the state)
        mu, _, mask = net.encode(x_lab)
        logits, totals = net.decide(mu, x_lab)
        pred = shares_from_logits(logits, totals, mask)
        n_real = mask.sum(1, keepdim=True).clamp(min=1.0)
        err = ((pred - y_lab) * n_real) ** 2 * mask.repeat(1, 2)  # in units of an equal share
        out["shares"] = err.sum() / (2 * mask.sum())
        active = (y_lab[:, : spec.max_ues] > 0).float()
        bce = F.binary_cross_entropy_with_logits(logits[..., 2], active, reduction="none")
        out["active"] = (bce * mask).sum() / mask.sum()
    unsup = views.flatten(0, 1) if views is not None else x_lab
    mu, logvar, mask = net.encode(unsup)
    z = mu + torch.randn(mu.shape, generator=generator, device=mu.device) * (0.5 * logvar).exp()
    rec_ue, rec_glob = net.reconstruct(z, mask)
    ue, _, glob = net.split_state(unsup)
    out["recon"] = (((rec_ue - ue) ** 2).mean(-1) * mask).sum() / mask.sum() + ((rec_glob - glob) ** 2).mean()
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).mean(-1)
    out["kl"] = (kl * mask).sum() / mask.sum()
    if cfg.contrastive and views is not None:
        e = net.embed(mu, mask).view(2, views.shape[1], -1)
        sim = e[0] @ e[1].T / cfg.temperature  # (B', B'): positives on the diagonal
        target = torch.arange(sim.shape[0], device=sim.device)
        out["infonce"] = 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target))
    weights = {"shares": cfg.w_shares, "active": cfg.w_active, "recon": cfg.w_recon, "kl": cfg.beta_kl,
               "infonce": cfg.w_contrastive}
    out["total"] = sum(weights[k] * v for k, v in out.items())
    return out


# ----------------------------------------------------------------------------------- training
def _source(text: str) -> tuple[list[str], int]:
    """(files, 0) for comma-separated dataset files, ([], N) for a number of states to draw."""
    text = str(text).strip()
    if text.isdigit():
        return [], int(text)
    return [f.strip() for f in text.split(",") if f.strip()], 0


def _load_data(ctx, cfg: Config):
    """(labelled observations, their optimum allocations, unlabelled observations)."""
    from policies.optimal import ExactOptimum

    from .dataset import DatasetConfig, load_states, make_states
    from .train import TrainError

    def read(files, field, limit, labelled):
        obs, labels = [], []
        for f in files:
            ss = load_states(f, limit=limit - len(obs) if limit else None)
            if labelled and ss.labels is None:
                raise TrainError(f"{field} {f}: no labels (make it with oransim dataset --label optimal)")
            if labelled and ss.config.objective != cfg.objective:
                raise TrainError(f"{field} {f}: labelled for objective {ss.config.objective!r}, "
                                 f"the config says {cfg.objective!r}")
            obs += ss.observations
            labels += ss.labels or []
            if limit and len(obs) >= limit:
                break
        return obs, labels

    def draw(n, seed):
        return make_states(ctx.scenario, DatasetConfig(n_states=n, seed=seed, label="none", loads=cfg.loads))

    files, n_lab = _source(cfg.labelled or (str(ctx.data) if ctx.data is not None else "500"))
    if files:
        lab_obs, labels = read(files, "labelled:", cfg.labelled_states, True)
    else:
        lab_obs = draw(max(n_lab, 1), ctx.seed)
        opt = ExactOptimum(objective=cfg.objective)
        labels = []
        for i, o in enumerate(lab_obs):
            labels.append(opt.decide(o))
            if ctx.progress is not None:
                ctx.progress(i + 1, len(lab_obs))
    files, n_unl = _source(cfg.unlabelled)
    if files:
        unl_obs, _ = read(files, "unlabelled:", cfg.unlabelled_states, False)
    else:
        unl_obs = draw(n_unl, ctx.seed + 1) if n_unl else []
    return lab_obs, labels, unl_obs


def train(ctx, cfg: Config):
    import torch

    from .decoder import decode_action
    from .encoding import EncodingMismatch
    from .train import TAG_SPS, TrainError, TrainResult

    lab_obs, labels, unl_obs = _load_data(ctx, cfg)
    if not lab_obs:
        raise TrainError("labelled: no labelled states")
    max_ues = cfg.max_ues or max([ctx.scenario.n_ues] + [o.n_ues for o in lab_obs + unl_obs])
    spec = EncodingSpec.for_scenario(ctx.scenario, max_ues)
    try:
        x_lab = np.stack([encode_state(o, spec) for o in lab_obs])
        y_lab = np.stack([encode_allocation(a, o, spec) for a, o in zip(labels, lab_obs)])
        # the unsupervised pool: every state, the original encoding then ``views`` augmented ones
        rng = np.random.default_rng(ctx.seed)
        pool = lab_obs + unl_obs if unl_obs else lab_obs
        views = np.stack([[encode_state(o, spec)] + [encode_state(augment_observation(o, rng, cfg.csi_noise_db)[0], spec)
                                                     for _ in range(cfg.views)] for o in pool])
    except EncodingMismatch as exc:
        raise TrainError(f"training states do not fit the scenario: {exc}") from None
    dev = ctx.device
    x_lab, y_lab, views = (torch.as_tensor(a, device=dev) for a in (x_lab, y_lab, views))
    torch.manual_seed(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed)
    net = build_network(spec, cfg).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * min(s, cfg.steps) / max(cfg.steps, 1))))
    state_file, start = ctx.run_dir / "train_state.pt", 0
    if ctx.resume and state_file.exists():
        saved = torch.load(state_file, map_location=dev, weights_only=True)
        net.load_state_dict(saved["net"]), opt.load_state_dict(saved["opt"]), sched.load_state_dict(saved["sched"])
        gen.set_state(saved["gen"])
        start = int(saved["step"])

    def decide(obs):
        net.eval()
        a = net.act(torch.as_tensor(encode_state(obs, spec), device=dev)[None])[0].cpu().numpy()
        net.train()
        return decode_action(with_floors(a, obs, spec) if cfg.floors else a, obs, spec, cfg.objective)

    n_lab, n_pool = len(x_lab), len(views)
    t0, metrics = time.perf_counter(), {}
    for step in range(start + 1, cfg.steps + 1):
        i = torch.randint(n_lab, (min(cfg.batch_labelled, n_lab),), generator=gen).to(dev)
        j = torch.randint(n_pool, (min(cfg.batch_unlabelled, n_pool),), generator=gen).to(dev)
        pick = torch.rand(len(j), cfg.views + 1, generator=gen).argsort(dim=1)[:, :2].to(dev)  # two distinct views
        pair = torch.stack([views[j, pick[:, 0]], views[j, pick[:, 1]]])
        terms = losses(net, cfg, x_lab[i], y_lab[i], pair, gen)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps:
            for k, v in terms.items():
                ctx.log.scalar(f"losses/{k}", float(v.detach()), step)
            ctx.log.scalar(TAG_SPS, (step - start) / max(time.perf_counter() - t0, 1e-9), step)
        if ctx.progress is not None:
            ctx.progress(step, cfg.steps)
        if step % cfg.eval_every_steps == 0 and step < cfg.steps:
            ctx.evaluate(decide, cfg.objective, step)
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "gen": gen.get_state(), "step": step}, state_file)
    metrics = ctx.evaluate(decide, cfg.objective, cfg.steps)
    return TrainResult({"ssvae": net.state_dict()}, cfg.steps, spec, cfg.objective, metrics,
                       {"labelled_states": n_lab, "unlabelled_states": len(unl_obs), "pool_states": n_pool})


# ------------------------------------------------------------------------------------- policy
def config_from_dict(d: dict) -> Config:
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class SsVaePolicy(LearnedPolicy):
    """``policy: {name: ssvae, params: {checkpoint: PATH}}``: the trained SS-VAE's decision."""

    name = "ssvae"

    def build(self, ckpt: dict) -> None:
        import torch

        cfg = config_from_dict(ckpt["config"])
        self.floors = cfg.floors
        self.net = build_network(self.spec, cfg).to(self.device)
        self.net.load_state_dict(ckpt["state"]["ssvae"])
        self.net.eval()
        self._torch = torch

    def warm_up(self) -> None:
        x = self._torch.zeros(1, self.spec.state_dim, device=self.device)
        x[0, 0] = 1.0  # one present UE (attention over no UE at all is undefined)
        self.net.act(x)

    def act(self, x: np.ndarray, obs) -> np.ndarray:
        a = self.net.act(self._torch.from_numpy(x).to(self.device)[None])[0].cpu().numpy()
        return with_floors(a, obs, self.spec) if self.floors else a
