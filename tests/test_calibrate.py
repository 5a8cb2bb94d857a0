"""``oransim calibrate``: the built-in PHY against ns3-shm, per slice, with ratios.

The comparison is checked on two built-in runs standing in for the two PHYs (no ns-3 needed): its
figures must be the analysis module's own on each side. The calibration itself (marked ``ns3``)
runs one short scenario on both PHYs and holds the throughput of every slice to 10 % of ns-3's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.kpis import load_run, slice_kpis
from oransim.calibrate import FAST, REFERENCE, compare, plot_cdfs, profile_problems, reference_problem, sweep_spec
from simcore.run import save_run, simulate
from simcore.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quick.yaml"


def _fake_sweep(tmp_path: Path) -> Path:
    """A calibration folder whose 'ns3-shm' runs are built-in runs with the CQI rate model."""
    rows = []
    for phy, rate_model in ((FAST, "shannon"), (REFERENCE, "cqi")):
        for seed in (1, 2):
            data = load_scenario(QUICK).with_overrides(duration_s=0.04, seed=seed).model_dump(mode="python")
            data["phy"]["rate_model"] = rate_model
            from simcore.scenario import parse_scenario

            res = simulate(parse_scenario(data))
            d = f"runs/{phy}-{seed}"
            save_run(res, tmp_path / d)
            rows.append({"phy.backend": phy, "seed": seed, "run_dir": d, "run_wall_s": 1.0 if phy == FAST else 30.0})
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    return tmp_path


def test_compare_gives_each_phys_pooled_figures_and_their_ratios(tmp_path):
    folder = _fake_sweep(tmp_path)
    table, stats, wall = compare(folder, {"tput": 0.05, "delay": 0.2})
    assert wall == {FAST: 2.0, REFERENCE: 60.0}
    runs = {phy: [load_run(folder / f"runs/{phy}-{s}") for s in (1, 2)] for phy in (FAST, REFERENCE)}
    t = table.set_index(["slice", "metric"])
    for s in runs[FAST][0].slices:
        for phy, col in ((FAST, "builtin"), (REFERENCE, "ns3")):
            tput = np.mean([slice_kpis(r).loc[s, "throughput_mbps"] for r in runs[phy]])
            d = np.concatenate([r.packets.loc[(r.packets["slice"] == s) & (r.packets["status"] == "delivered"),
                                              "delay_ms"].to_numpy() for r in runs[phy]])
            assert t.loc[(s, "tput_mbps"), col] == pytest.approx(tput)
            assert t.loc[(s, "p95_ms"), col] == pytest.approx(np.percentile(d, 95))
            assert t.loc[(s, "mean_ms"), col] == pytest.approx(d.mean())
            assert t.loc[(s, "drops"), col] == sum(int(slice_kpis(r).loc[s, "dropped"]) for r in runs[phy])
        row = t.loc[(s, "tput_mbps")]
        assert row["ratio"] == pytest.approx(row["builtin"] / row["ns3"])
        assert row["within"] == (abs(row["ratio"] - 1) <= 0.05)
        assert t.loc[(s, "p99_ms"), "within"] is None  # no target on p99
    # shannon carries more than the CQI table: eMBB (backlogged) is faster under "builtin" here
    assert t.loc[("embb", "tput_mbps"), "ratio"] > 1.0
    png = plot_cdfs(stats, tmp_path / "cdf.png", "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_folder_supplies_the_ns3_side(tmp_path):
    # the ns-3 side read from another folder: the same figures as from one folder holding both
    folder = _fake_sweep(tmp_path / "both")
    res = pd.read_parquet(folder / "results.parquet")
    ref = tmp_path / "ref"
    ref.mkdir()
    res.to_parquet(ref / "results.parquet")  # the same rows: only its ns3-shm ones are read
    (ref / "runs").symlink_to(folder / "runs")
    res[res["phy.backend"] == FAST].to_parquet(folder / "results.parquet")
    table, _, wall = compare(folder, None, ref)
    both = tmp_path / "check"
    both.mkdir()
    res.to_parquet(both / "results.parquet")
    (both / "runs").symlink_to(folder / "runs")
    pd.testing.assert_frame_equal(table, compare(both)[0])
    assert wall == {FAST: 2.0, REFERENCE: 60.0}
    # an earlier calibration stands in only for the same scenario content, settings, seeds and ns3-shm point
    spec = sweep_spec(QUICK, "calibrate-quick", [3, 4], "pf", 0.5, ("phy.l2s.enabled",), {"scenario": {"a": 1}})
    assert reference_problem(spec, dict(spec)) is None
    assert "seeds" in reference_problem(spec, {**spec, "seeds": [3]})
    assert "set" in reference_problem(spec, {**spec, "set": {}})
    assert "ns3-shm point" in reference_problem(spec, {**spec, "points": spec["points"][:1]})
    other = tmp_path / "quick.yaml"
    other.write_text(QUICK.read_text() + "\n# edited\n")
    assert "differs" in reference_problem(spec, {**spec, "scenario": str(other)})
    assert "cannot be read" in reference_problem(spec, {**spec, "scenario": str(tmp_path / "gone.yaml")})


def test_sweep_spec_runs_both_phys_on_the_same_seeds():
    profile = {"scenario": {"phy.csi.delay_tti": 6}, "builtin": {"phy.l2s.enabled": True}}
    assert profile_problems(profile) == []
    spec = sweep_spec(QUICK, "calibrate-quick", [3, 4, 5], "pf", 0.5, ("phy.l2s.enabled",), profile)
    assert spec["set"] == {"phy.csi.delay_tti": 6}  # the policy sees the same CSI under both PHYs
    assert spec["points"] == [{"phy.l2s.enabled": True, "phy.backend": FAST},
                              {"phy.backend": REFERENCE, "phy.l2s.enabled": False}]
    # a scenario written for ns3-shm keeps its server parameters there, the built-in side gets none
    other = sweep_spec(QUICK, "c", [1], "pf", None, (), None, {"timeout_s": 30.0}, REFERENCE)
    assert other["points"] == [{"phy.backend": FAST, "phy.params": {}}, {"phy.backend": REFERENCE}]
    assert profile_problems({"builtin": {"phy.backend": "x"}, "both": {}}) == [
        "unknown key 'both' (scenario, builtin)", "builtin: phy.backend is calibrate's to set"]
    assert spec["seeds"] == [3, 4, 5] and spec["policies"] == ["pf"]
    assert spec["run"] == {"duration_s": 0.5, "record_packets": True}
    assert Path(spec["scenario"]).is_absolute()


def test_calibrate_refuses_bad_input_in_one_line(tmp_path, capsys):
    from oransim.cli import main

    assert main(["calibrate", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nope.yaml" in err
    assert main(["calibrate", str(QUICK), str(QUICK), "--out", str(tmp_path / "c")]) == 2
    assert "given twice" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_builtin_side_draws_the_channel_ns3_shm_sees():
    """``channel.draw_all_gains`` (the shipped profile's built-in side) makes the engine draw the
    fading as it does for a PHY reading the whole gain table, as ns3-shm: the same seed then gives
    the built-in PHY the very channel realization (without it, another one of the same law)."""
    import yaml

    from simcore.engine import Engine
    from simcore.phy import BuiltinPhy
    from simcore.plugins import make_policy
    from oransim.calibrate import apply_profile

    class WholeTable(BuiltinPhy):  # the built-in PHY, declaring ns3-shm's need for every entry
        needs_full_gain = True

    profile = yaml.safe_load((ROOT / "scenarios" / "calibration" / "ns3_lte.yaml").read_text())
    assert profile["builtin"]["channel.draw_all_gains"] is True
    base = load_scenario(QUICK).with_overrides(duration_s=0.03)
    paired = apply_profile(base, profile, FAST)
    plain = apply_profile(base, {**profile, "builtin": {**profile["builtin"], "channel.draw_all_gains": False}}, FAST)

    def gains(scn, phy):
        seen = []

        class Spy(type(phy)):
            def step(self, tti, allocation, gain):
                seen.append(gain.copy())
                return super().step(tti, allocation, gain)

        spy = Spy()
        Engine(scn, make_policy("pf"), spy).run()
        return np.stack(seen)

    whole = gains(plain, WholeTable())
    assert np.array_equal(gains(paired, BuiltinPhy()), whole)
    lazy = gains(plain, BuiltinPhy())
    assert not np.array_equal(lazy, whole)  # the default draws only what the PHY reads


@pytest.mark.ns3
def test_calibration_short_quick_run_throughput_within_10_percent(tmp_path, capsys):
    """The CI calibration check: quick.yaml, one seed, a short run, the built-in PHY with the
    ns-3-like profile against ns3-shm; every slice's throughput within 10 % of ns-3's."""
    pytest.importorskip("ns3_bridge.build")
    from ns3_bridge import build

    try:
        build.ns3_root()
    except build.Ns3BuildError as exc:
        pytest.skip(str(exc))
    from oransim.cli import main

    code = main(["calibrate", str(QUICK), "--seeds", "1", "--duration", "0.5", "--tput-tol", "0.10",
                 "--profile", str(ROOT / "scenarios" / "calibration" / "ns3_lte.yaml"), "--out", str(tmp_path / "c")])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(tmp_path / "c" / "calibration.csv")
    tput = table[table["metric"] == "tput_mbps"].set_index("slice")
    assert set(tput.index) == {"embb", "urllc", "mmtc"}
    assert (tput["ratio"] - 1).abs().max() <= 0.10, tput[["builtin", "ns3", "ratio"]]
    assert (tmp_path / "c" / "quick-delay-cdf.png").is_file()
