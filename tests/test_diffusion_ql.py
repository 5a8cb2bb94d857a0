"""Diffusion-QL: losses fall, sampling is seeded and feasible, the fast path equals the PyTorch loop,
checkpoints load or fail in one line, a tiny training beats rr, the shipped checkpoint runs."""

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from learning_helpers import observation, scenario
from policies.learned.checkpoint import save_checkpoint
from policies.learned.diffusion_ql import Agent, Config, DiffusionQlPolicy
from policies.learned.encoding import EncodingSpec, encode_state
from simcore.contracts import check_allocation
from simcore.plugins import make_policy

ROOT = Path(__file__).resolve().parent.parent
SMALL = Config(diffusion_steps=5, layers=3, hidden=32, step_embed_dim=8, ue_hidden=16, critic_hidden=32,
               learning_rate=3e-3, critic_learning_rate=3e-3, gamma=0.0, batch_size=32, candidates=4)
STEPS = 30  # gradient steps of the Q-term test
OBS_KW = [dict(ues=(3, 3, 3), seed=1), dict(ues=(2, 3, 1), seed=2), dict(ues=(3, 3, 3), seed=3, load=2.0)]


def small_spec(max_ues=9) -> EncodingSpec:
    return EncodingSpec.for_scenario(scenario(ues=(3, 3, 3)), max_ues)


def batch(spec, n=32, seed=0):
    """(s, a, r) of n states cycling over a few observations, random actions, reward = mean PRB share
    of the URLLC UEs (a smooth target a critic can fit)."""
    rng = np.random.default_rng(seed)
    states = np.stack([encode_state(observation(**OBS_KW[i % len(OBS_KW)]), spec) for i in range(n)])
    mask = states[:, : spec.max_ues * spec.n_ue_features].reshape(n, spec.max_ues, -1)[:, :, 0]
    a = rng.random((n, spec.action_dim), dtype=np.float32) * np.tile(mask, 2)
    r = a[:, : spec.max_ues].mean(axis=1)
    return torch.as_tensor(states), torch.as_tensor(a), torch.as_tensor(r, dtype=torch.float32)


def test_losses_are_finite_and_fall_on_a_fixed_batch():
    torch.manual_seed(0)
    spec = small_spec()
    agent = Agent(spec, SMALL, "cpu", seed=0)
    s, a, r = batch(spec)
    hist = [agent.update(s, a, r, s) for _ in range(30)]
    for key in ("losses/critic_loss", "losses/bc_loss", "losses/ql_loss", "losses/actor_loss"):
        assert all(np.isfinite(h[key]) for h in hist), key
    first = {k: np.mean([h[k] for h in hist[:10]]) for k in hist[0]}
    last = {k: np.mean([h[k] for h in hist[-10:]]) for k in hist[0]}
    assert last["losses/bc_loss"] < 0.8 * first["losses/bc_loss"], (first, last)
    assert last["losses/critic_loss"] < 0.5 * first["losses/critic_loss"], (first, last)
    # eta 0 (behaviour cloning) skips the Q term; ``bc`` puts other (state, action) pairs under the denoising loss
    bc = agent.update(s, a, r, s, eta=0.0, bc=(s[:8], a[:8]))
    assert bc["losses/ql_loss"] == 0.0 and bc["losses/actor_loss"] == bc["losses/bc_loss"]


def urllc_share(agent, s, spec) -> float:
    """Mean PRB share the actor's samples give the URLLC UEs (slice 1) of the batch's states."""
    with torch.no_grad():
        a = agent.sample(s, agent.actor).numpy()
    ue = s.numpy()[:, : spec.max_ues * spec.n_ue_features].reshape(len(s), spec.max_ues, -1)
    urllc = ue[:, :, 2] > 0
    return float(a[:, : spec.max_ues][urllc].mean())


def test_the_q_term_moves_the_actor_towards_what_the_critic_values():
    """Same batch, seed and steps with and without the Q term (eta): the reward is the URLLC UEs'
    mean PRB share, so the Q term must raise that share above what the denoising loss alone gives."""
    spec = small_spec()
    s, a, r = batch(spec)
    ue = s.numpy()[:, : spec.max_ues * spec.n_ue_features].reshape(len(s), spec.max_ues, -1)
    urllc = torch.as_tensor(ue[:, :, 2] > 0)
    r = torch.stack([a[j, : spec.max_ues][urllc[j]].mean() for j in range(len(s))])
    shares = {}
    for eta in (0.0, 1.0):
        torch.manual_seed(0)
        agent = Agent(spec, replace(SMALL, eta=eta), "cpu", seed=0)
        for _ in range(STEPS):
            agent.update(s, a, r, s)
        shares[eta] = urllc_share(agent, s, spec)
    assert shares[1.0] > shares[0.0], shares


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory):
    """A checkpoint of a freshly initialised agent (shapes of the 3 x 3 paper cell, max 9 UEs)."""
    torch.manual_seed(0)
    spec = small_spec()
    agent = Agent(spec, SMALL, "cpu", seed=0)
    path = tmp_path_factory.mktemp("dql") / "init.pt"
    state = {k: v for k, v in agent.state_dict().items() if k in ("actor_ema", "critic_target")}
    save_checkpoint(path, policy="diffusion_ql", spec=spec, objective="served", config=asdict(SMALL),
                    scenario=scenario(ues=(3, 3, 3)), seed=0, state=state, metrics={}, training={})
    return path


@pytest.mark.parametrize("kw", OBS_KW)
def test_sampling_is_seeded_feasible_and_the_fast_path_equals_the_loop(untrained_checkpoint, kw):
    obs = observation(**kw)
    fast = make_policy("diffusion_ql", {"checkpoint": str(untrained_checkpoint)})
    slow = DiffusionQlPolicy(str(untrained_checkpoint), fast=False)
    x = encode_state(obs, fast.spec)
    fast.reset(7)
    slow.reset(7)
    (a_fast, best_fast), (a_slow, best_slow) = fast.sample(x, obs.n_ues), slow.sample(x, obs.n_ues)
    assert a_fast.shape == (SMALL.candidates, fast.spec.action_dim)
    np.testing.assert_allclose(a_fast, a_slow, atol=1e-4)
    assert best_fast == best_slow
    m, n = fast.spec.max_ues, obs.n_ues
    assert (a_fast >= 0).all() and (a_fast <= 1).all()
    assert not a_fast[:, n:m].any() and not a_fast[:, m + n:].any()  # padding rows stay 0
    fast.reset(3)
    first = fast.decide(obs)
    check_allocation(first, obs)
    fast.reset(3)
    again = fast.decide(obs)
    np.testing.assert_array_equal(first.prb_owner, again.prb_owner)
    np.testing.assert_array_equal(first.power_w, again.power_w)


def test_the_fast_path_equals_the_loop_with_no_ue(untrained_checkpoint):
    fast = DiffusionQlPolicy(str(untrained_checkpoint))
    slow = DiffusionQlPolicy(str(untrained_checkpoint), fast=False)
    x = np.zeros(fast.spec.state_dim, dtype=np.float32)
    (a_fast, best_fast), (a_slow, best_slow) = fast.sample(x, 0), slow.sample(x, 0)
    assert a_fast.shape == a_slow.shape == (SMALL.candidates, fast.spec.action_dim)
    assert not a_fast.any() and not a_slow.any() and best_fast == best_slow


def test_the_compiled_mish_is_torchs_within_float32_rounding():
    from policies.learned.diffusion_fast import _mish2d

    x = np.concatenate([np.linspace(-120, 120, 4001), [0.0, -0.0, 1e-30, -1e-30, 19.99, 20.01, -86.9, -87.1]])
    x = x.astype(np.float32)[None, :]
    out = np.empty_like(x)
    _mish2d(x, out)
    ref = torch.nn.functional.mish(torch.from_numpy(x).double()).numpy()
    np.testing.assert_allclose(out, ref, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("candidates", [1, 8])
def test_the_fast_path_equals_the_loop_at_the_table_i_size(tmp_path, candidates):
    """Table I's network (20 steps, 16 x 128) on a 3 x 10 paper cell, freshly initialised: the
    compiled path's actions within 1e-4 of the PyTorch loop's, the same candidate chosen."""
    torch.manual_seed(1)
    cfg = Config(candidates=candidates)
    spec = EncodingSpec.for_scenario(scenario(ues=(10, 10, 10)), 32)
    agent = Agent(spec, cfg, "cpu", seed=0)
    path = tmp_path / "table1.pt"
    state = {k: v for k, v in agent.state_dict().items() if k in ("actor_ema", "critic_target")}
    save_checkpoint(path, policy="diffusion_ql", spec=spec, objective="served", config=asdict(cfg),
                    scenario=scenario(ues=(10, 10, 10)), seed=0, state=state, metrics={}, training={})
    fast, slow = DiffusionQlPolicy(str(path)), DiffusionQlPolicy(str(path), fast=False)
    for seed in (4, 5):
        obs = observation(ues=(10, 10, 10), seed=seed)
        x = encode_state(obs, spec)
        fast.reset(seed)
        slow.reset(seed)
        (a_fast, best_fast), (a_slow, best_slow) = fast.sample(x, obs.n_ues), slow.sample(x, obs.n_ues)
        np.testing.assert_allclose(a_fast, a_slow, atol=1e-4)
        assert best_fast == best_slow


def cli(*args):
    from typer.testing import CliRunner

    from oransim.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, res.stderr


def test_checkpoints_that_do_not_fit_are_one_line_errors(untrained_checkpoint, tmp_path, monkeypatch):
    code, err = cli("run", "scenarios/quick.yaml", "--policy", f"diffusion_ql:{untrained_checkpoint}",
                    "--out", tmp_path / "r")
    assert code == 2 and "trained for at most 9 UEs" in err and len(err.strip().splitlines()) == 1, err
    blob = torch.load(untrained_checkpoint, weights_only=True)
    blob["config"]["layers"] = 5  # the weights no longer fit the config
    torch.save(blob, tmp_path / "layers.pt")
    code, err = cli("evaluate", "scenarios/esa_small.yaml", "--policies", f"rr,diffusion_ql:{tmp_path / 'layers.pt'}",
                    "--states", 1, "--out", tmp_path / "e.csv")
    assert code == 2 and "weights do not fit its config" in err and len(err.strip().splitlines()) == 1, err
    code, err = cli("run", "scenarios/esa_small.yaml", "--policy", f"dqn:{untrained_checkpoint}", "--out", tmp_path / "d")
    assert code == 2 and "a 'diffusion_ql' checkpoint, not 'dqn'" in err, err
    monkeypatch.chdir(tmp_path)  # train's default run folder (runs/train/...) goes to the working directory
    code, err = cli("train", "diffusion-ql", ROOT / "scenarios/esa_small.yaml", "--out", tmp_path / "x.pt",
                    "--beta_schedule", "sigmoid")
    assert code == 2 and "beta_schedule must be one of" in err, err
    assert not (tmp_path / "runs").exists()  # refused input leaves no run folder behind


def test_training_can_start_from_a_checkpoint(untrained_checkpoint):
    """init_checkpoint: actor, EMA actor, critics and targets take the checkpoint's weights; a
    checkpoint of another encoding or network is a one-line TrainError."""
    from policies.learned.diffusion_ql import _start_from
    from policies.learned.train import TrainError

    blob = torch.load(untrained_checkpoint, weights_only=True)
    agent = Agent(small_spec(), SMALL, "cpu", seed=1)  # another seed: other weights until loaded
    _start_from(agent, str(untrained_checkpoint))
    for net, key in ((agent.actor, "actor_ema"), (agent.actor_ema, "actor_ema"), (agent.critic, "critic_target"),
                     (agent.critic_target, "critic_target")):
        for name, value in net.state_dict().items():
            assert torch.equal(value, blob["state"][key][name]), (key, name)
    with pytest.raises(TrainError, match="not a Diffusion-QL checkpoint of this encoding"):
        _start_from(Agent(small_spec(max_ues=12), SMALL, "cpu", seed=0), str(untrained_checkpoint))
    with pytest.raises(TrainError, match="weights do not fit this config"):
        _start_from(Agent(small_spec(), replace(SMALL, layers=4), "cpu", seed=0), str(untrained_checkpoint))


def test_lr_schedule_warms_up_decays_to_its_end_by_steps_or_wall_budget():
    """lr_scale: constant keeps the rate (the earlier checkpoints' training); warm-up rises linearly;
    cosine and linear reach lr_final_ratio at the planned end or when the wall budget is spent."""
    from policies.learned.diffusion_ql import _check, lr_scale
    from policies.learned.train import TrainError

    assert [lr_scale(SMALL, k, 100, w) for k, w in ((0, 0.0), (99, 0.5), (500, 1.0))] == [1.0, 1.0, 1.0]
    warm = replace(SMALL, lr_warmup_steps=10)
    assert lr_scale(warm, 0, 100) == pytest.approx(0.1) and lr_scale(warm, 4, 100) == pytest.approx(0.5)
    assert lr_scale(warm, 9, 100) == 1.0
    for name, mid in (("cosine", 0.55), ("linear", 0.55)):
        cfg = replace(SMALL, lr_schedule=name, lr_warmup_steps=10, lr_final_ratio=0.1)
        assert lr_scale(cfg, 10, 110) == pytest.approx(1.0)
        assert lr_scale(cfg, 60, 110) == pytest.approx(mid)  # halfway: 0.1 + 0.9 / 2 for both
        assert lr_scale(cfg, 110, 110) == pytest.approx(0.1) and lr_scale(cfg, 10**6, 110) == pytest.approx(0.1)
        assert lr_scale(cfg, 10, 110, wall_share=1.0) == pytest.approx(0.1)  # the budget ends first
        assert lr_scale(cfg, 10, 110, wall_share=0.5) == pytest.approx(mid)
    cos, lin = (replace(SMALL, lr_schedule=n) for n in ("cosine", "linear"))
    assert lr_scale(cos, 25, 100) == pytest.approx(0.5 * (1 + np.cos(np.pi / 4))) and lr_scale(lin, 25, 100) == 0.75
    for bad, match in ((dict(lr_schedule="step"), "lr_schedule must be one of"),
                       (dict(lr_final_ratio=1.5), "lr_final_ratio must be in"),
                       (dict(lr_warmup_steps=-1), "lr_warmup_steps must be at least 0")):
        with pytest.raises(TrainError, match=match):
            _check(replace(SMALL, **bad))


TINY = dict(mode="offline_online", offline_steps=20, episodes=4, episode_steps=25, n_envs=4, learning_starts=40,
            updates_per_step=0.5, train_states=40, eval_every_steps=50, save_every_steps=10**9, max_ues=3,
            offline_eta=0.0, bc_on_dataset=True, keep_best=True,
            **{k: v for k, v in asdict(SMALL).items() if k in ("diffusion_steps", "layers", "hidden", "step_embed_dim",
                                                                 "ue_hidden", "critic_hidden", "gamma", "batch_size")})


def test_a_tiny_training_end_to_end(tmp_path):
    """Offline steps on the driver's actions (behaviour cloning), then online steps with the denoising
    loss kept on those actions: checkpoint (the best held-out evaluation's weights), logs, curve, a run."""
    import pandas as pd

    from policies.learned.train import run_training

    path, metrics = run_training("diffusion-ql", ROOT / "scenarios/esa_small.yaml", tmp_path / "tiny.pt", seed=0,
                                 device="cpu", overrides=TINY, eval_states=3, run_dir=tmp_path / "run")
    assert 0 < metrics["throughput_ratio"] <= 1.0 + 1e-9 and metrics["steps"] == 100
    scalars = (tmp_path / "run" / "scalars.csv").read_text()
    for tag in ("charts/episodic_return", "losses/bc_loss", "eval/throughput_ratio"):
        assert tag in scalars, tag
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 0
    blob = torch.load(path, weights_only=True)
    df = pd.read_csv(tmp_path / "run" / "scalars.csv")
    ratio, qos = (df[df["tag"] == f"eval/{k}"].set_index("step")["value"] for k in ("throughput_ratio", "qos_pct"))
    kept = blob["training"]["kept_eval_step"]
    assert len(ratio) == 2 and (ratio + qos / 100).idxmax() == kept  # at env steps 52 and 100 (the last)
    assert blob["metrics"]["throughput_ratio"] == pytest.approx(ratio[kept])
    assert set(blob["state"]) == {"actor_ema", "critic_target"} and blob["policy"] == "diffusion_ql"
    code, err = cli("run", "scenarios/esa_small.yaml", "--policy", f"diffusion_ql:{path}", "--duration", 0.05,
                    "--out", tmp_path / "r")
    assert code == 0, err


@pytest.mark.parametrize("name", ["diffusion_ql_paper_default.pt", "diffusion_ql_paper_default_rate.pt"])
def test_shipped_checkpoints_run_through_evaluate(name, tmp_path):
    """Two paper-cell states from seeds no training used (training states: seeds >= 2^32; the
    training's held-out monitoring: seeds 1-50), against the exact optimum."""
    path = ROOT / "models" / name
    if not path.exists():
        pytest.skip(f"models/{name} is not there")
    import pandas as pd

    blob = torch.load(path, weights_only=True)
    code, err = cli("evaluate", "scenarios/paper_default.yaml", "--policies", f"diffusion_ql:{path},rr",
                    "--states", 2, "--seed", 5000, "--objective", blob["objective"], "--out", tmp_path / "e.csv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "e.csv", index_col=0)
    row = table.loc[[i for i in table.index if i.startswith("diffusion_ql")][0]]
    assert 0 < row["throughput_ratio"] <= 1.0 + 1e-6


@pytest.fixture(scope="module")
def fresh_paper_states():
    """20 paper-cell states from seeds 7000-7019, which no training, held-out monitoring or README
    table uses (those: seeds >= 2^32, 1-50, 5000-5099)."""
    from oransim.evaluate import sample_states
    from simcore.scenario import load_scenario

    return sample_states(load_scenario(ROOT / "scenarios" / "paper_default.yaml"), 20, 7000, 200)


@pytest.mark.parametrize("name", ["diffusion_ql_paper_default.pt", "diffusion_ql_paper_default_rate.pt",
                                  "diffusion_ql_paper_default_agreement.pt"])
def test_shipped_checkpoint_beats_pf_on_20_fresh_states(name, fresh_paper_states):
    """State by state, in the snapshot problem's own order under the checkpoint's objective (less total
    rate shortfall first, then a larger weighted objective; ties within the problem's tolerances):
    the checkpoint's allocation must come first on more states than pf's."""
    path = ROOT / "models" / name
    if not path.exists():
        pytest.skip(f"models/{name} is not there")
    from policies.learned.encoding import snapshot_problem

    dql = make_policy("diffusion_ql", {"checkpoint": str(path)})
    pf = make_policy("pf")
    wins = losses = 0
    for obs in fresh_paper_states:
        problem = snapshot_problem(obs, dql.objective)
        mine, theirs = problem.evaluate(dql.decide(obs)), problem.evaluate(pf.decide(obs))
        first = problem.tied_best([mine.violation_bps, theirs.violation_bps], [mine.objective_bps, theirs.objective_bps])
        wins += bool(first[0] and not first[1])
        losses += bool(first[1] and not first[0])
    assert wins > losses, (name, wins, losses)


def test_select_objective_takes_the_candidate_first_in_the_problems_order(untrained_checkpoint):
    """``select: objective`` decodes every candidate and keeps the one the snapshot problem ranks
    first (least shortfall, then largest objective); a bad ``select`` is a one-line error."""
    from policies.learned.checkpoint import CheckpointMismatch
    from policies.learned.decoder import decode_action
    from policies.learned.encoding import snapshot_problem

    pol = DiffusionQlPolicy(str(untrained_checkpoint), select="objective")
    for kw in OBS_KW:
        obs = observation(**kw)
        pol.reset(5)
        chosen = pol.decide(obs)
        check_allocation(chosen, obs)
        pol.reset(5)
        actions, _ = pol.sample(encode_state(obs, pol.spec), obs.n_ues)
        problem = snapshot_problem(obs, pol.objective)
        evs = [problem.evaluate(decode_action(a, obs, pol.spec, pol.objective, joint=pol.joint)) for a in actions]
        best = evs[problem.best_index(*(np.array(t) for t in zip(*(e.key for e in evs))))]
        assert problem.evaluate(chosen).key == best.key
        assert all(not problem.is_better(e, best) for e in evs)
    with pytest.raises(CheckpointMismatch, match="policy.params.select"):
        DiffusionQlPolicy(str(untrained_checkpoint), select="q")


@pytest.mark.parametrize("share_map", ["absolute", "sqrt"])
def test_share_maps_keep_absolute_shares_and_the_fast_path_follows(tmp_path, share_map):
    """Under ``absolute`` and ``sqrt`` the actor's x maps to shares without rescaling (a state whose
    shares sum below 1 keeps that), ``to_x`` inverts ``to_shares``, the compiled path equals the loop,
    and a pure cloning step (``critic=False``) leaves the critic as it was."""
    from policies.learned.diffusion_ql import to_shares, to_x

    x = torch.tensor([[[-1.0, 0.2], [-0.5, -1.0], [0.0, 0.0]]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    a = to_shares(x, mask, share_map)
    assert float(a[0, 2].abs().sum()) == 0.0 and float(a[0, :, 0].max()) < 0.6  # no rescaling to a max of 1
    torch.testing.assert_close(to_x(a, share_map)[0, :2], x[0, :2], atol=1e-6, rtol=0)
    cfg = replace(SMALL, share_map=share_map)
    spec = small_spec()
    agent = Agent(spec, cfg, "cpu", seed=0)
    s, acts, r = batch(spec)
    before = [p.detach().clone() for p in agent.critic.parameters()]
    agent.update(s, acts, r, s, eta=0.0, critic=False)
    assert all(torch.equal(p, q) for p, q in zip(before, agent.critic.parameters()))
    path = tmp_path / "m.pt"
    state = {k: v for k, v in agent.state_dict().items() if k in ("actor_ema", "critic_target")}
    save_checkpoint(path, policy="diffusion_ql", spec=spec, objective="served", config=asdict(cfg),
                    scenario=scenario(ues=(3, 3, 3)), seed=0, state=state, metrics={}, training={})
    fast, slow = DiffusionQlPolicy(str(path)), DiffusionQlPolicy(str(path), fast=False)
    for kw in OBS_KW:
        obs = observation(**kw)
        x = encode_state(obs, spec)
        fast.reset(2)
        slow.reset(2)
        (a_fast, best_fast), (a_slow, best_slow) = fast.sample(x, obs.n_ues), slow.sample(x, obs.n_ues)
        np.testing.assert_allclose(a_fast, a_slow, atol=1e-4)
        assert best_fast == best_slow and (a_fast >= 0).all() and (a_fast <= 1).all()
        check_allocation(fast.decide(obs), obs)


def test_share_scales_add_scaled_copies_of_each_candidate(untrained_checkpoint):
    """``scaled`` appends each factor's copy of the candidates (clipped to 1); with ``select:
    objective`` the policy chooses among them all, so its choice is never behind the unscaled one's
    in the problem's order; a non-positive factor is a one-line error."""
    from policies.learned.checkpoint import CheckpointMismatch
    from policies.learned.diffusion_ql import scaled
    from policies.learned.encoding import snapshot_problem

    a = np.array([[0.2, 0.8, 0.5, 0.1]], dtype=np.float32)
    out = scaled(a, (1.0, 1.5))
    np.testing.assert_allclose(out, [[0.2, 0.8, 0.5, 0.1], [0.3, 1.0, 0.75, 0.15]], rtol=1e-6)
    assert scaled(a, (1.0,)) is a
    plain = DiffusionQlPolicy(str(untrained_checkpoint), select="objective")
    wide = DiffusionQlPolicy(str(untrained_checkpoint), select="objective", scales="1,1.3,2")
    for kw in OBS_KW:
        obs = observation(**kw)
        plain.reset(5)
        wide.reset(5)
        problem = snapshot_problem(obs, plain.objective)
        mine, base = problem.evaluate(wide.decide(obs)), problem.evaluate(plain.decide(obs))
        assert not problem.is_better(base, mine)
    with pytest.raises(CheckpointMismatch, match="policy.params.scales"):
        DiffusionQlPolicy(str(untrained_checkpoint), select="objective", scales=[1.0, 0.0])


def test_need_floor_gives_every_ue_with_a_need_one_prb_in_a_copy(untrained_checkpoint):
    from policies.learned.diffusion_ql import need_floored
    from policies.learned.encoding import need_bps

    pol = DiffusionQlPolicy(str(untrained_checkpoint), select="objective", need_floor=True)
    obs = observation(ues=(3, 3, 3), seed=1)
    spec, m, n = pol.spec, pol.spec.max_ues, obs.n_ues
    a = np.zeros((2, spec.action_dim), dtype=np.float32)
    a[:, 0] = 0.5
    out = need_floored(a, obs, spec, pol.objective)
    assert out.shape == (4, spec.action_dim)
    np.testing.assert_array_equal(out[:2], a)
    has_need = need_bps(obs, pol.objective) > 0
    assert has_need.any()
    one = 1.0 / obs.n_prbs
    for cols in (slice(0, n), slice(m, m + n)):
        assert (out[2:, cols][:, has_need] >= np.float32(one) - 1e-7).all()
        assert (out[2:, cols][:, ~has_need] == a[:, cols][:, ~has_need]).all()
    assert out[2, 0] == 0.5
    pol.reset(1)
    check_allocation(pol.decide(obs), obs)
