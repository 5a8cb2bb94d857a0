"""Check that two source trees produce identical run tables for the same scenarios and seeds.

Speed work on the engine, the PHY or the schedulers must not change a single result. This script
runs a set of cases (the shipped scenarios, some with the decision interval, policy or rate model
changed) once with each tree, each run in its own process with that tree first on ``sys.path``,
and compares the tables a run writes (packets, tti, decisions, ues: every column, exactly, NaN
where NaN) and the conservation counts. The timing table (wall time of each decision) is the one
table that is not reproducible and is left out.

    python scripts/same_results.py --ref /path/to/reference/checkout [--new .] [--cases quick,paper_tti]

A reference checkout of main: ``git archive main | tar -x -C /tmp/oransim-main``. Exit status 0
when every case is identical, 1 when one differs (the differing columns of the first differing table are named).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent

#: name -> (scenario file, {dotted field: value} overrides)
CASES: dict[str, tuple[str, dict]] = {
    "quick": ("quick.yaml", {}),
    "quick_rr": ("quick.yaml", {"policy.name": "rr"}),
    "quick_maxcqi": ("quick.yaml", {"policy.name": "maxcqi"}),
    "quick_cqi_fbl_caps": ("quick.yaml", {"phy.rate_model": "cqi", "slices.1.rate_model": "fbl",
                                          "slices.0.power_cap_dbm": 40.0}),
    "paper_default": ("paper_default.yaml", {"duration_s": 2.0}),
    "paper_tti": ("paper_default.yaml", {"duration_s": 1.0, "scheduling.interval_tti": 1}),
    "multi_ru": ("multi_ru.yaml", {}),
    "multi_ru_tti": ("multi_ru.yaml", {"duration_s": 0.5, "scheduling.interval_tti": 1}),
    "multi_ru_rr": ("multi_ru.yaml", {"duration_s": 0.5, "policy.name": "rr"}),
    # the link-to-system model: its defaults (MIESM, HARQ, OLLA) and ns-3-like settings with stale CSI
    "quick_l2s": ("quick.yaml", {"duration_s": 1.0, "phy.rate_model": "cqi", "phy.l2s.enabled": True,
                                 "phy.csi.period_tti": 2, "phy.csi.delay_tti": 3}),
    "multi_ru_l2s_lte": ("multi_ru.yaml", {"duration_s": 0.5, "phy.l2s.enabled": True, "phy.l2s.mcs_selection": "worst_prb",
                                           "phy.l2s.below_range": "lowest_mcs", "phy.l2s.harq.enabled": False,
                                           "phy.l2s.olla.enabled": False, "phy.l2s.control_errors": True,
                                           "phy.csi.period_tti": 2, "phy.csi.delay_tti": 6}),
}
# the built-in PHY as calibrated against ns-3 LTE (its profile's scenario and builtin parts): the
# whole TTI compiled (LinkToSystem.tti)
_PROFILE = yaml.safe_load((ROOT / "scenarios" / "calibration" / "ns3_lte.yaml").read_text())
_LTE = {**_PROFILE["scenario"], **_PROFILE["builtin"]}
CASES["quick_lte"] = ("quick.yaml", {"duration_s": 1.0, **_LTE})
CASES["multi_ru_lte"] = ("multi_ru.yaml", {"duration_s": 0.5, **_LTE})
CASES["paper_lte"] = ("paper_default.yaml", {"duration_s": 1.0, **_LTE})
TABLES = ("packets", "tti", "decisions", "ues")

CHILD = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from simcore.run import simulate
from simcore.scenario import load_scenario, parse_scenario
scn = load_scenario(sys.argv[2])
data = scn.model_dump()
for key, value in json.loads(sys.argv[3]).items():
    *path, last = key.split(".")
    node = data
    for p in path:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
res = simulate(parse_scenario(data))
out = Path(sys.argv[4])
for name in sys.argv[5].split(","):
    frame = res.ues if name == "ues" else res.table(name)
    frame.to_parquet(out / f"{name}.parquet", index=False)
(out / "counts.json").write_text(json.dumps(res.counts, sort_keys=True))
"""


def run_case(tree: Path, case: str, out: Path) -> None:
    scenario, overrides = CASES[case]
    out.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", CHILD, str(tree), str(ROOT / "scenarios" / scenario),
                    json.dumps(overrides), str(out), ",".join(TABLES)], check=True)


def compare(old: Path, new: Path) -> str | None:
    """None if the two run outputs are identical, else what differs first."""
    a, b = json.loads((old / "counts.json").read_text()), json.loads((new / "counts.json").read_text())
    if a != b:
        return f"conservation counts differ: {a} vs {b}"
    for name in TABLES:
        x, y = pd.read_parquet(old / f"{name}.parquet"), pd.read_parquet(new / f"{name}.parquet")
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            return f"{name}: columns or rows differ ({list(x.columns)} x {len(x)} vs {list(y.columns)} x {len(y)})"
        differ = []
        for col in x.columns:
            try:
                pd.testing.assert_series_equal(x[col], y[col], check_exact=True)
            except AssertionError as exc:
                differ.append(f"{name}.{col} differs: {str(exc).splitlines()[0]}")
        if differ:  # every differing column of the first table that differs
            return "; ".join(differ)
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, type=Path, help="reference source tree (e.g. a checkout of main)")
    ap.add_argument("--new", default=ROOT, type=Path, help="tree under test (default: this one)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from: {', '.join(CASES)}")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    bad = 0
    with tempfile.TemporaryDirectory(prefix="same-results-") as tmp:
        for case in cases:
            run_case(args.ref.resolve(), case, Path(tmp) / case / "ref")
            run_case(args.new.resolve(), case, Path(tmp) / case / "new")
            diff = compare(Path(tmp) / case / "ref", Path(tmp) / case / "new")
            print(f"{case:<20} {'identical' if diff is None else 'DIFFERENT: ' + diff}", flush=True)
            bad += diff is not None
    print(f"{len(cases) - bad} of {len(cases)} cases identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
