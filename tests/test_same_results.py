"""scripts/same_results.py, the check that speed work changes no result, tells identical run tables
from ones that differ in a single value (NaN equal to NaN, but not to a number)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("same_results", ROOT / "scripts" / "same_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(folder: Path, tables: dict, counts: dict) -> Path:
    folder.mkdir()
    for name, df in tables.items():
        df.to_parquet(folder / f"{name}.parquet", index=False)
    (folder / "counts.json").write_text(json.dumps(counts))
    return folder


def test_compare_finds_one_changed_value(tmp_path):
    mod = _module()
    base = pd.DataFrame({"tti": np.arange(4), "sinr_db": [1.0, np.nan, 3.0, 4.0]})
    tables = {name: base for name in mod.TABLES}
    counts = {"generated_packets": 4}
    a = _write(tmp_path / "a", tables, counts)
    assert mod.compare(a, _write(tmp_path / "b", tables, counts)) is None
    changed = base.copy()
    changed.loc[2, "sinr_db"] = np.nextafter(3.0, 4.0)  # one ulp
    diff = mod.compare(a, _write(tmp_path / "c", tables | {"decisions": changed}, counts))
    assert diff is not None and diff.startswith("decisions.sinr_db")
    nan_for_number = base.copy()
    nan_for_number.loc[0, "sinr_db"] = np.nan
    assert mod.compare(a, _write(tmp_path / "d", tables | {"tti": nan_for_number}, counts)).startswith("tti.sinr_db")
    assert "counts" in mod.compare(a, _write(tmp_path / "e", tables, {"generated_packets": 5}))
