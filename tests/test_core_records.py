"""Records: written chunk by chunk (in memory or spooled to Parquet) they are the same tables as
written at once; the packet table keeps only packets in flight; the run folder has ues.parquet."""

import numpy as np
import pandas as pd
import pytest

import simcore.engine
import simcore.records
from analysis.kpis import load_run
from simcore.channel import los_probability
from simcore.outputs import staging_folder as staging_dir
from simcore.run import save_run, simulate
from simcore.scenario import parse_scenario

from core_helpers import Recording, assert_conserved, run_engine, small

TABLES = ("packets", "tti", "decisions", "timing")


def _scenario():
    data = small(ues=3, duration_s=0.25, seed=5).model_dump()
    data["cell"]["rus"] = [{"x_m": 0.0}, {"x_m": 400.0}]
    data["scheduling"]["interval_tti"] = 3
    data["slices"][1]["drop_late"] = True  # deadline drops, so packets finish out of order
    return parse_scenario(data)


def _tiny_chunks(monkeypatch):
    monkeypatch.setattr(simcore.records, "TTI_CHUNK", 7)
    monkeypatch.setattr(simcore.records, "DECISION_CHUNK", 5)
    monkeypatch.setattr(simcore.engine, "PACKET_CHUNK", 40)
    monkeypatch.setattr(simcore.engine, "HOUSEKEEPING_TTI", 9)


def test_chunked_and_spooled_records_equal_the_whole_tables(tmp_path, monkeypatch):
    scn = _scenario()
    whole = simulate(scn)
    _tiny_chunks(monkeypatch)
    eng, chunked = run_engine(scn, Recording("pf"))
    assert eng.packets.base > 0 and eng.packets.held < chunked.counts["generated_packets"] / 2
    assert_conserved(chunked)
    assert chunked.counts == whole.counts
    spool = staging_dir(tmp_path / "run")
    spooled = simulate(scn, spool_dir=spool)
    for t in TABLES:
        if t == "timing":
            pd.testing.assert_series_equal(chunked.timing["tti"], whole.timing["tti"])
            continue
        pd.testing.assert_frame_equal(chunked.table(t), whole.table(t), check_exact=True)
        pd.testing.assert_frame_equal(spooled.table(t), whole.table(t), check_exact=True)
    assert len(chunked.sinks["tti"]._chunks) == -(-scn.n_tti // 7)
    out = save_run(spooled, tmp_path / "run")
    assert out == tmp_path / "run" and not spool.exists()
    run = load_run(out)
    pd.testing.assert_frame_equal(run.packets, whole.packets, check_exact=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{t}.parquet" for t in (*TABLES, "ues")] + ["manifest.json"])


def test_ues_table(tmp_path):
    scn = _scenario()
    res = simulate(scn)
    save_run(res, tmp_path / "r")
    ues = load_run(tmp_path / "r").ues
    n_ues, n_ru = scn.n_ues, scn.n_ru
    assert len(ues) == n_ues * n_ru
    assert list(ues.columns) == ["ue", "slice", "x_m", "y_m", "home_ru", "serving_ru", "ru", "distance_m", "los",
                                 "pathloss_db", "shadowing_db", "gain_db"]
    ru_xy = np.array([[ru.x_m, ru.y_m] for ru in scn.cell.rus])
    d = np.hypot(ues["x_m"] - ru_xy[ues["ru"], 0], ues["y_m"] - ru_xy[ues["ru"], 1])
    np.testing.assert_allclose(ues["distance_m"], d, rtol=1e-12)
    np.testing.assert_allclose(ues["gain_db"], -(ues["pathloss_db"] + ues["shadowing_db"]))
    # the serving RU is the one with the largest large-scale gain, the same for every row of a UE
    best = ues.loc[ues.groupby("ue")["gain_db"].idxmax(), ["ue", "ru"]].set_index("ue")["ru"]
    assert (ues.groupby("ue")["serving_ru"].first() == best).all()
    assert (ues.groupby("ue")["serving_ru"].nunique() == 1).all()
    assert set(ues["slice"].astype(str)) == {s.name for s in scn.slices}
    assert ues["los"].dtype == bool and (los_probability("uma", ues["distance_m"]) > 0).all()
