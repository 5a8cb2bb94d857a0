"""Oracle datasets: deterministic for a seed, resumable, labelled with the optimum, reloadable."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_helpers import cli

from policies.learned.dataset import (DATASET_SEED_FLOOR, DatasetConfig, _states_of_run, generate, load_states,
                                      make_shard, run_plan)
from policies.learned.encoding import snapshot_problem
from simcore.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
BASE = load_scenario(ROOT / "scenarios/esa_small.yaml")
CFG = DatasetConfig(n_states=6, seed=3, label="optimal", objective="served", loads=(0.5, 2.0), states_per_run=2,
                    shard_runs=1, warmup_tti=50)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate(BASE, CFG, tmp_path_factory.mktemp("ds") / "set.parquet")


def test_same_seed_same_table_and_resume_finishes_the_same_set(dataset, tmp_path):
    out = tmp_path / "again.parquet"
    parts = out.with_name(out.name + ".parts")
    parts.mkdir()
    meta = {"format": 1, "config": dataclasses.asdict(CFG), "scenario": BASE.model_dump(mode="json")}
    (parts / "meta.json").write_text(json.dumps(meta, sort_keys=True))
    base_json, cfg_json = json.dumps(BASE.model_dump(mode="json")), json.dumps(dataclasses.asdict(CFG))
    pq.write_table(make_shard(base_json, cfg_json, 1), parts / "shard-00001.parquet")  # an interrupted run
    seen = []
    generate(BASE, CFG, out, resume=True, progress=lambda done, total: seen.append(done))
    assert seen[0] == 2 and seen[-1] == 6  # shard 1 was kept, not recomputed
    a, b = pq.read_table(dataset), pq.read_table(out)
    assert a.equals(b) and a.schema.metadata == b.schema.metadata and not parts.exists()
    other = generate(BASE, dataclasses.replace(CFG, seed=4), tmp_path / "other.parquet")
    assert not np.array_equal(pq.read_table(other)["gain"].to_pylist()[0], a["gain"].to_pylist()[0])


def test_states_reload_as_the_engine_gave_them_with_their_optimum(dataset):
    ss = load_states(dataset)
    assert len(ss.observations) == 6 and (ss.run_seeds >= DATASET_SEED_FLOOR).all()
    original = _states_of_run(load_scenario(ROOT / "scenarios/esa_small.yaml"), CFG, run_plan(CFG, 0))
    for got, want in zip(ss.observations[:2], original):
        for f in dataclasses.fields(want):
            a, b = getattr(got, f.name), getattr(want, f.name)
            if isinstance(b, np.ndarray):
                assert np.array_equal(a, b), f.name
            elif f.name != "link":
                assert a == b, f.name
    for obs, label, value in zip(ss.observations, ss.labels, ss.opt_objective_bps):
        assert snapshot_problem(obs, "served").evaluate(label).objective_bps == pytest.approx(value, rel=1e-12)
    loads = {run_plan(CFG, i)["load"] for i in range(CFG.n_runs)}
    assert loads <= {0.5, 2.0}


def test_several_files_read_as_one_set(dataset, tmp_path):
    """``a.parquet,b.parquet``: the states of both in order; files of other scenarios or objectives are refused."""
    from policies.learned.dataset import DatasetError

    one = load_states(dataset)
    both = load_states(f"{dataset},{dataset}")
    assert len(both.observations) == len(both.labels) == len(both.run_seeds) == 12
    assert both.labels[7].prb_owner.tolist() == one.labels[1].prb_owner.tolist()
    np.testing.assert_array_equal(both.opt_objective_bps, np.r_[one.opt_objective_bps, one.opt_objective_bps])
    assert len(load_states(f"{dataset},{dataset}", limit=8).observations) == 8
    table = pq.read_table(dataset)
    meta = json.loads(table.schema.metadata[b"oransim_dataset"])
    meta["config"]["objective"] = "rate"
    pq.write_table(table.replace_schema_metadata({b"oransim_dataset": json.dumps(meta).encode()}), tmp_path / "r.parquet")
    with pytest.raises(DatasetError, match="same objective"):
        load_states(f"{dataset},{tmp_path / 'r.parquet'}")
    meta["config"]["objective"] = "served"
    meta["scenario"]["slices"][0]["weight"] += 1.0
    pq.write_table(table.replace_schema_metadata({b"oransim_dataset": json.dumps(meta).encode()}), tmp_path / "s.parquet")
    with pytest.raises(DatasetError, match="different base scenarios"):
        load_states(f"{dataset},{tmp_path / 's.parquet'}")


def test_dataset_command(tmp_path):
    out = tmp_path / "u.parquet"
    res = cli("dataset", "scenarios/esa_small.yaml", "--states", 4, "--label", "none", "--out", out,
              "--states-per-run", 2, "--warmup-tti", 20, "--jobs", 1)
    assert res.returncode == 0, res.stderr
    assert pq.read_table(out).num_rows == 4 and "opt_objective_bps" not in pq.read_table(out).column_names
    res = cli("dataset", "scenarios/esa_small.yaml", "--states", 4, "--label", "none", "--out", out)
    assert res.returncode == 2 and "already exists" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = cli("dataset", "scenarios/esa_small.yaml", "--states", 4, "--label", "best", "--out", tmp_path / "x.parquet")
    assert res.returncode == 2 and "label must be" in res.stderr
