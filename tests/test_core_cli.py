"""The command line: bad scenario files (clear one-line errors, exit 2), run + report end to end."""

import json
from pathlib import Path

import pytest
from cli_helpers import cli, cli_process

ROOT = Path(__file__).resolve().parent.parent


BAD = {
    "syntax": ("cell:\n  prbs_per_ru: 30\n   numerology: 1\n", "line 3"),
    "wrong_type": ("duration_s: fast\n", "duration_s:"),
    "unknown_top": ("colour: red\n", "colour: unknown field"),
    "unknown_nested": ("cell: {prbz: 30}\n", "cell.prbz: unknown field"),
    "negative_power": ("cell:\n  rus:\n    - {max_power_dbm: -10}\n", "cell.rus[0].max_power_dbm:"),
    "too_many_ues": ("slices:\n  - {name: a, ues: 2001, traffic: {model: sporadic, rate_pps: 1}}\n", "slices: 2001 UEs"),
    "bad_traffic": ("slices:\n  - {name: a, traffic: {model: sporadic, rate_pps: -1}}\n", "slices[0].traffic.rate_pps:"),
    "unknown_policy": ("policy: {name: nope}\n", "policy.name: unknown"),
    "not_a_mapping": ("- 1\n- 2\n", "(top level):"),
    "min_above_max": ("slices:\n  - {name: a, min_rate_mbps: 5, max_rate_mbps: 1, traffic: {model: sporadic, rate_pps: 1}}\n",
                      "slices[0].min_rate_mbps:"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_scenarios_give_clear_errors(tmp_path, case, command):
    text, expected = BAD[case]
    f = tmp_path / f"{case}.yaml"
    f.write_text(text)
    res = cli(command, f, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert any(line.startswith(f"{f}: ") and expected in line for line in lines), res.stderr
    assert not (tmp_path / "runs").exists()  # nothing written


def test_missing_file(tmp_path):
    """Through a real process: the exit code and the one line reach the shell."""
    res = cli_process("validate", tmp_path / "nope.yaml")
    assert res.returncode == 2 and "cannot read" in res.stderr and "Traceback" not in res.stderr


def test_every_shipped_scenario_validates():
    for f in sorted((ROOT / "scenarios").glob("*.yaml")):
        res = cli("validate", f)
        assert res.returncode == 0, (f, res.stderr)


def test_run_then_report(tmp_path):
    out = tmp_path / "run"
    res = cli("run", ROOT / "scenarios" / "quick.yaml", "--duration", "0.3", "--out", out)
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "manifest.json").read_text())
    for key in ("scenario", "seed", "policy", "versions", "git_revision", "phy", "counts"):
        assert key in m
    assert m["scenario"]["duration_s"] == 0.3 and m["policy"]["name"] == "pf"
    for t in ("packets", "tti", "decisions", "timing"):
        assert (out / f"{t}.parquet").stat().st_size > 0
    rep = cli("report", out)
    assert rep.returncode == 0, rep.stderr
    for name in ("embb", "urllc", "mmtc", "p99.9", "Per-slice KPIs"):
        assert name in rep.stdout
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    # an existing folder is never clobbered without --overwrite
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = cli("run", ROOT / "scenarios" / "quick.yaml", "--duration", "0.3", "--out", out)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    ok = cli("run", ROOT / "scenarios" / "quick.yaml", "--duration", "0.2", "--out", out, "--overwrite", "--seed", "3")
    assert ok.returncode == 0, ok.stderr
    assert json.loads((out / "manifest.json").read_text())["seed"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_report_on_a_non_run_folder(tmp_path):
    res = cli("report", tmp_path)
    assert res.returncode == 2 and "not a run folder" in res.stderr


def test_failed_run_leaves_nothing(tmp_path):
    """A policy whose parameters are wrong fails before anything is written."""
    f = tmp_path / "s.yaml"
    f.write_text("duration_s: 0.05\npolicy: {name: pf, params: {period_tti: 0}}\n")
    res = cli("run", f, "--out", tmp_path / "run", cwd=tmp_path)
    assert res.returncode == 2 and "policy.params" in res.stderr and "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == [f]


def test_policy_failing_mid_run_gives_one_line(tmp_path):
    """ESA refuses the paper cell's search space at its first decision: one line naming the size, exit 1."""
    f = tmp_path / "s.yaml"
    f.write_text("duration_s: 0.05\npolicy: {name: esa}\n")
    res = cli("run", f, "--out", tmp_path / "run", cwd=tmp_path)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if "warning" not in ln]
    assert len(lines) == 1 and "policy 'esa' failed at TTI 0" in lines[0] and "max_space=5,000,000" in lines[0]
    assert list(tmp_path.iterdir()) == [f]


def test_analysis_functions(tmp_path):
    from analysis.kpis import delay_percentiles, load_run, slice_kpis
    from simcore.run import save_run, simulate
    from simcore.scenario import load_scenario

    scn = load_scenario(ROOT / "scenarios" / "quick.yaml").with_overrides(duration_s=0.4)
    res = simulate(scn)
    run = load_run(save_run(res, tmp_path / "r"))
    k = slice_kpis(run)
    assert list(k.index) == ["embb", "urllc", "mmtc"]
    total_mbps = run.tti["served_bits"].sum() / run.simulated_s / 1e6
    assert k["throughput_mbps"].sum() == pytest.approx(total_mbps)
    assert k["packets"].sum() == res.counts["generated_packets"]
    p = delay_percentiles(run)
    assert (p["p50"] <= p["p95"]).all() and (p["p95"] <= p["p99"]).all() and (p["p99"] <= p["p99.9"]).all()
    assert ((k["delay_qos_pct"] >= 0) & (k["delay_qos_pct"] <= 100)).all()
