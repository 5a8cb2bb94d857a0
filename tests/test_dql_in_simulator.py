"""benchmarks/dql_in_simulator.py's per-packet view: the pooled share's interval, and on a real run of
the paper cell the URLLC delay floor (one TTI + fronthaul) that no delivered packet beats."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import cli

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("dql_in_simulator", ROOT / "benchmarks" / "dql_in_simulator.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pooled_share_is_the_t_interval_of_the_runs_when_they_end_equally_many_packets():
    from analysis.sweep_plots import t_interval

    bench = _bench()
    hits, totals = np.array([12, 30, 21, 18]), np.full(4, 100)
    share, lo, hi = bench.pooled_share(hits, totals)
    assert share == pytest.approx(20.25)
    assert (lo, hi) == pytest.approx(t_interval(hits), rel=1e-12)  # percent of 100 packets = the hits
    # unequal runs: the pooled share weighs packets, not runs; the interval holds it
    share, lo, hi = bench.pooled_share([1, 30], [10, 100])
    assert share == pytest.approx(100 * 31 / 110) and lo < share < hi
    assert bench.pooled_share([0, 0, 0], [50, 60, 70]) == (0.0, 0.0, 0.0)


def test_no_urllc_packet_beats_one_tti_plus_the_fronthaul_on_the_paper_cell(tmp_path):
    """A 50-TTI PF run of paper_default: each delivered URLLC packet's parts add up to its delay,
    it spent exactly one TTI on the air and the fronthaul latency after it, so its delay exceeds the
    1 ms deadline: delay QoS 0 % is the cell's physics, not the policy's."""
    bench = _bench()
    res = cli("run", "scenarios/paper_default.yaml", "--policy", "pf", "--duration", 0.05, "--seed", 3,
              "--out", tmp_path / "runs" / "pf")
    assert res.returncode == 0, res.stderr
    pd.DataFrame({"policy": ["pf"], "seed": [3], "run_dir": ["runs/pf"]}).to_parquet(tmp_path / "results.parquet")
    counts, parts, limits = bench.run_packets(tmp_path, "urllc")
    assert limits == {"deadline_ms": 1.0, "floor_ms": pytest.approx(1.05)}
    assert len(parts) > 10 and counts.loc[0, "delivered"] == len(parts) and counts.loc[0, "on_time"] == 0
    assert np.allclose(parts["tx_ms"], 1.0, rtol=0, atol=1e-9) and np.allclose(parts["fh_ms"], 0.05, rtol=0, atol=1e-12)
    assert parts[["cu_ms", "du_ms", "queue_ms", "tx_ms", "fh_ms"]].sum(axis=1).to_numpy() == pytest.approx(
        parts["delay_ms"].to_numpy(), abs=1e-9)
    assert parts["delay_ms"].min() > limits["floor_ms"] and parts["queue_ms"].max() < 1.0
    text = bench.per_packet(counts, parts, limits, "urllc")
    assert "no packet can meet it" in text and "0.00 [0.00, 0.00]" in text and "delay_ms" in text
