"""DQN through stable-baselines3: a tiny training beats rr; checkpoints load, decide and refuse misfits."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from policies.learned.train import HeldOut, run_training
from simcore.plugins import make_policy
from simcore.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(episodes=24, episode_steps=50, n_envs=4, train_freq=2, gradient_steps=2, learning_starts=200,
            target_update_interval=200, train_states=200, eval_every_steps=10**9, save_every_steps=10**9,
            exploration_fraction=0.3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """DQN on esa_small (3 UEs, 4 PRBs), 1,200 steps: the CI-sized training (well under a minute)."""
    folder = tmp_path_factory.mktemp("dqn")
    path, metrics = run_training("dqn", ROOT / "scenarios/esa_small.yaml", folder / "tiny.pt", seed=0, device="cpu",
                                 overrides=TINY, eval_states=20, run_dir=folder / "run")
    return path, metrics, folder


def test_tiny_dqn_beats_round_robin_on_held_out_states(tiny):
    path, metrics, folder = tiny
    held = HeldOut.sample(load_scenario(ROOT / "scenarios/esa_small.yaml"), 20, "served")
    rr = held.evaluate(make_policy("rr").decide)
    dqn = held.evaluate(make_policy("dqn", {"checkpoint": str(path)}).decide)
    assert dqn["throughput_ratio"] > rr["throughput_ratio"] and dqn["qos_pct"] >= rr["qos_pct"], (dqn, rr)
    # the loaded policy decides as the trained network did (same held-out states and seeds)
    assert dqn["throughput_ratio"] == pytest.approx(metrics["throughput_ratio"], rel=1e-9)
    assert (folder / "run" / "learning_curve.png").stat().st_size > 0
    assert "charts/episodic_return" in (folder / "run" / "scalars.csv").read_text()


def cli(*args):
    """The command line in this process (what a subprocess would print; no interpreter start-up)."""
    from typer.testing import CliRunner

    from oransim.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    return SimpleNamespace(returncode=res.exit_code, stderr=res.stderr, stdout=res.stdout)


def test_checkpoints_that_do_not_fit_are_one_line_errors(tiny, tmp_path):
    import torch

    path = tiny[0]
    res = cli("run", "scenarios/quick.yaml", "--policy", f"dqn:{path}", "--out", tmp_path / "r")
    assert res.returncode == 2 and "trained for at most 3 UEs, the scenario has 12" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    blob = torch.load(path, weights_only=True)
    blob["encoding"]["version"] = 999
    torch.save(blob, tmp_path / "future.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for bad, message in (("future.pt", "encoding version 999"), ("junk.pt", "not a checkpoint"),
                         ("missing.pt", "no such file")):
        res = cli("evaluate", "scenarios/esa_small.yaml", "--policies", f"rr,dqn:{tmp_path / bad}", "--states", 1,
                  "--out", tmp_path / "e.csv")
        assert res.returncode == 2 and message in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    res = cli("train", "dqn", "scenarios/esa_small.yaml", "--out", tmp_path / "x.pt", "--gama", "0.5")
    assert res.returncode == 2 and "unknown field 'gama'" in res.stderr
    res = cli("train", "nope", "scenarios/esa_small.yaml", "--out", tmp_path / "x.pt")
    assert res.returncode == 2 and "no trainer for 'nope'" in res.stderr


def test_a_run_with_the_tiny_checkpoint(tiny, tmp_path):
    res = cli("run", "scenarios/esa_small.yaml", "--policy", f"dqn:{tiny[0]}", "--duration", 0.1, "--out",
              tmp_path / "run")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run" / "manifest.json").exists()


@pytest.mark.parametrize("name,objective", [("dqn_paper_default.pt", "served"), ("dqn_paper_default_rate.pt", "rate")])
def test_shipped_checkpoints_beat_round_robin_on_fresh_states(name, objective):
    """20 paper-cell states from seeds never used in training (dataset seeds are >= 2^32) nor in
    the training's held-out evaluation (seeds 1-50)."""
    path = ROOT / "models" / name
    if not path.exists():
        pytest.skip(f"models/{name} is not there")
    from learning_helpers import paper_held_out

    held = paper_held_out(objective)
    rr = held.evaluate(make_policy("rr").decide)
    dqn = held.evaluate(make_policy("dqn", {"checkpoint": str(path)}).decide)
    assert dqn["throughput_ratio"] > rr["throughput_ratio"] and dqn["qos_pct"] >= rr["qos_pct"] - 5, (dqn, rr)
