"""Agreement metrics (MAE, R^2, cosine, BAEP) by hand, and `oransim evaluate` end to end."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import cli

from analysis.agreement import DecisionVector, agreement, baep, cosine, decision_vector, mae, r2
from simcore.contracts import Allocation

from test_optimum import observe

ROOT = Path(__file__).resolve().parent.parent


def test_metrics_by_hand():
    opt = np.array([1.0, 0.0, 1.0, 0.0])
    pol = np.array([1.0, 1.0, 0.0, 0.0])
    assert mae(pol, opt) == pytest.approx(0.5)  # |0|+|1|+|1|+|0| over 4
    # mean(opt) = 0.5, SS_tot = 4 * 0.25 = 1, SS_res = 2  ->  R^2 = 1 - 2 = -1
    assert r2(pol, opt) == pytest.approx(-1.0)
    assert cosine(pol, opt) == pytest.approx(1 / 2)  # dot 1, norms sqrt2 * sqrt2
    assert baep(pol, opt) == pytest.approx(50.0)
    a = DecisionVector(np.array([1.0, 0.0]), np.array([0.5, 0.25]))
    b = DecisionVector(np.array([1.0, 1.0]), np.array([0.5, 0.75]))
    m = agreement([a], [b])
    # normalised vectors [1, 0, .5, .25] vs [1, 1, .5, .75]
    assert m["mae"] == pytest.approx((0 + 1 + 0 + 0.5) / 4)
    assert m["baep_pct"] == pytest.approx(50.0)
    ob = np.array([1, 1, 0.5, 0.75])
    assert m["r2"] == pytest.approx(1 - (1 + 0.25) / np.sum((ob - ob.mean()) ** 2))
    assert m["cosine"] == pytest.approx((1 + 0.25 + 0.1875) / (np.linalg.norm([1, 0, .5, .25]) * np.linalg.norm(ob)))


def test_identical_allocations_agree_perfectly():
    obs = observe(seed=2, prbs=3)
    from simcore.plugins import make_policy

    alloc = make_policy("optimal").decide(obs)
    v = decision_vector(alloc, obs)
    m = agreement([v, v], [v, v])
    assert m == {"mae": 0.0, "r2": 1.0, "cosine": pytest.approx(1.0), "baep_pct": 0.0}


def test_decision_vector_layout():
    obs = observe(seed=2, prbs=3)  # 3 UEs, 1 RU, 3 PRBs
    owner = np.array([[2, -1, 2]])
    power = np.where(owner >= 0, obs.ru_max_power_w[0] / 3, 0.0)
    v = decision_vector(Allocation(np.array([0, 0, 0]), owner, power), obs)
    assert v.binary.shape == (3 * 1 + 3 * 1 * 3,)
    assert v.binary[:3].tolist() == [1, 1, 1]  # association
    prb = v.binary[3:].reshape(3, 1, 3)
    assert prb[2, 0].tolist() == [1, 0, 1] and prb[:2].sum() == 0
    assert v.continuous.tolist() == pytest.approx([0, 0, 2 / 3, 0, 0, 2 / 3])


def test_evaluate_command(tmp_path):
    out = tmp_path / "eval.csv"
    res = cli("evaluate", ROOT / "scenarios" / "esa_small.yaml", "--policies", "pf,maxcqi,optimal", "--states", "3",
              "--warmup-tti", "50", "--objective", "served", "--out", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "against the optimum (esa, objective served)" in res.stdout
    t = pd.read_csv(out, index_col="policy")
    assert list(t.index) == ["pf", "maxcqi", "optimal"]
    assert (t["states"] == 3).all()
    # the exact MILP returns ESA's very allocation on every state (the optimum is unique)
    assert t.loc["optimal", "throughput_ratio"] == pytest.approx(1.0, rel=1e-6)
    assert t.loc["optimal", "baep_pct"] == 0.0 and t.loc["optimal", "mae"] == 0.0
    assert t.loc["optimal", "mode"] == "single_ru" and t.loc["optimal", "gap_pct"] == 0.0 and "gap %" in res.stdout
    assert ((t["baep_pct"] >= 0) & (t["baep_pct"] <= 100)).all()
    bad = cli("evaluate", ROOT / "scenarios" / "esa_small.yaml", "--policies", "pf", "--objective", "full", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "--objective: unknown objective 'full' (available: served, rate)"
    bad = cli("evaluate", ROOT / "scenarios" / "esa_small.yaml", "--policies", "pf,nope", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown policy 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_evaluate_rate_objective():
    """The paper's full-buffer objective: the optimum (ESA) and the MILP solving it agree; every UE has a need."""
    from oransim.evaluate import evaluate, sample_states
    from simcore.scenario import load_scenario

    states = sample_states(load_scenario(ROOT / "scenarios" / "esa_small.yaml"), 2, seed=1, warmup_tti=50)
    table, records = evaluate(states, ["pf", "optimal"], objective="rate")
    assert table.attrs["optimum"] == "esa" and table.attrs["objective"] == "rate"
    assert table.attrs["optimum_modes"] == ["exhaustive"] and table.attrs["optimum_gap_pct"] == 0.0
    assert table.loc["optimal", "mode"] == "single_ru" and table.loc["optimal", "gap_pct"] == 0.0
    assert table.loc["optimal", "baep_pct"] == 0.0 and table.loc["optimal", "throughput_ratio"] == pytest.approx(1.0)
    assert all(r["ues_with_need"] == 3 for r in records)  # R_min for every UE, whatever its buffer
    with pytest.raises(ValueError, match="objective must be one of served, rate"):
        evaluate(states, ["pf"], objective="full")
