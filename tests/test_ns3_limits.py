"""ns3-shm's limits as `oransim validate` sees them, its seed mapping, and the PHY's view of the gains.

No ns-3 here: these run everywhere. That the server refuses exactly what ``scenario_problems``
refuses is checked against the compiled server in test_ns3_shm.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from ns3_bridge import shm
from simcore.engine import Engine
from simcore.phy import BuiltinPhy
from simcore.plugins import make_policy
from simcore.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quick.yaml"


def variant(**changes):
    """quick.yaml with dotted fields replaced, e.g. variant(**{"cell.prbs_per_ru": 25})."""
    data = load_scenario(QUICK).model_dump(mode="python")
    for key, value in changes.items():
        *path, last = key.split(".")
        node = data
        for p in path:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value
    return parse_scenario(data)


def three_rus(ues_per_slice):
    rus = [{"x_m": x, "y_m": 0.0, "height_m": 25.0, "max_power_dbm": 46.0} for x in (0.0, 800.0, 1600.0)]
    s = variant(**{"cell.rus": rus})
    data = s.model_dump(mode="python")
    for sl, n in zip(data["slices"], ues_per_slice):
        sl["ues"] = n
    return parse_scenario(data)


def fields(s):
    return [f for f, _ in shm.scenario_problems(s)]


def test_ue_limit_is_on_the_total_over_rus():
    assert fields(three_rus((35, 35, 35))) == []  # 3 x 105 = 315
    problems = shm.scenario_problems(three_rus((40, 40, 40)))  # 3 x 120 = 360: used to validate, then fail
    assert [f for f, _ in problems] == ["slices"]
    assert "316 UEs in total" in problems[0][1] and "360" in problems[0][1]
    assert fields(variant(**{"slices.0.ues": 100, "slices.1.ues": 100, "slices.2.ues": 116})) == []
    assert fields(variant(**{"slices.0.ues": 100, "slices.1.ues": 100, "slices.2.ues": 117})) == ["slices"]


@pytest.mark.parametrize("prbs, ok", [(6, True), (25, False), (192, True), (198, True), (270, True), (274, False)])
def test_prbs_multiple_of_six_and_more_than_32_blocks_run(prbs, ok):
    problems = shm.scenario_problems(variant(**{"cell.prbs_per_ru": prbs}))
    if ok:
        assert problems == []
    else:
        assert [f for f, _ in problems] == ["cell.prbs_per_ru"] and "multiple of 6" in problems[0][1]


def test_carrier_range_of_the_3gpp_models_and_other_fields():
    assert fields(variant(**{"cell.carrier_ghz": 0.45})) == ["cell.carrier_ghz"]  # ns-3 asserts 0.5-100 GHz
    assert fields(variant(**{"cell.carrier_ghz": 0.5, "channel.pathloss": "umi"})) == []
    assert fields(variant(**{"cell.carrier_ghz": 0.45, "channel.pathloss": "log_distance"})) == []
    assert fields(variant(**{"channel.pathloss": "cost231_128_1"})) == ["channel.pathloss"]
    assert fields(variant(**{"cell.numerology": 4})) == []  # same REs and PSD at any numerology
    assert fields(variant(**{"phy.params": {"timeout_s": 0, "warmup_max_ms": 5.5, "colour": 1}})) == [
        "phy.params.timeout_s", "phy.params.warmup_max_ms", "phy.params.colour"]
    assert fields(variant(**{"phy.params": {"timeout_s": 5, "startup_timeout_s": 30.0, "warmup_max_ms": 10}})) == []
    with pytest.raises(ValueError, match="timeout_s must be a number > 0"):
        shm.Ns3ShmPhy(timeout_s=-1)


def test_other_cpus_are_refused_by_name(monkeypatch):
    monkeypatch.setattr(shm.platform, "machine", lambda: "aarch64")
    problems = shm.scenario_problems(variant())
    assert [f for f, _ in problems] == ["phy.backend"] and "aarch64" in problems[0][1]


def test_validate_names_the_field_in_one_line(tmp_path):
    text = QUICK.read_text().replace("backend: builtin", "backend: ns3-shm")
    rus = "\n".join(f"    - {{x_m: {x}, y_m: 0, height_m: 25, max_power_dbm: 46}}" for x in (0, 800, 1600))
    text = text.replace("    - {x_m: 0, y_m: 0, height_m: 25, max_power_dbm: 46}", rus).replace("ues: 4", "ues: 40")
    (tmp_path / "big.yaml").write_text(text)
    res = cli("validate", "big.yaml", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "big.yaml: slices: ns3-shm: at most 316 UEs in total over all RUs (one LTE SRS periodicity for every "
        "eNB), got 3 RU(s) x 120 = 360"]


def test_ns3_seed_and_run_are_one_to_one_and_in_range():
    m = shm.NS3_SEED_MODULUS
    assert shm.ns3_seed_run(0) == (1, 1) and shm.ns3_seed_run(7) == (8, 1)  # small seeds: unchanged
    assert shm.ns3_seed_run(m - 1) == (m, 1) and shm.ns3_seed_run(m) == (1, 2)
    assert shm.ns3_seed_run(2**32 + 7) != shm.ns3_seed_run(7)  # a uint32 cast would have wrapped these
    seen = set()
    for seed in [0, 1, m - 1, m, m + 1, 2**32 - 1, 2**32, 2**32 + 7, 2**62, 2**63 - 1]:
        ns3_seed, run = shm.ns3_seed_run(seed)
        assert 1 <= ns3_seed <= 2**31 - 1 and 1 <= run <= 2**32 + 3
        assert (run - 1) * m + ns3_seed - 1 == seed
        seen.add((ns3_seed, run))
    assert len(seen) == 10
    with pytest.raises(ValueError):
        shm.ns3_seed_run(2**63)


def test_association_other_than_the_serving_ru_is_refused():
    phy = shm.Ns3ShmPhy()
    phy.serving_ru = np.array([0, 1, 1])
    phy._check_association(np.array([[0, -1, 0], [1, 2, -1]]))
    with pytest.raises(shm.Ns3PhyError, match="UE 2 to its serving RU 1 .* PRB 2 of RU 0"):
        phy._check_association(np.array([[0, -1, 2], [1, 2, -1]]))


class GainSpy(BuiltinPhy):
    """The built-in PHY, keeping a copy of the gain table and the PRB owners of every TTI."""

    def __init__(self, full: bool):
        super().__init__()
        self.needs_full_gain = full
        self.seen = []

    def step(self, tti, allocation, gain):
        self.seen.append((tti, gain.copy(), allocation.prb_owner.copy()))
        return super().step(tti, allocation, gain)


@pytest.mark.parametrize("full", [False, True])
def test_phy_sees_the_gain_entries_its_contract_promises(full):
    """PhyBackend: by default only the owners' entries are redrawn between decisions; with
    ``needs_full_gain`` every entry is redrawn at every TTI (ns3-shm computes CQI from all of them)."""
    s = variant(**{"scheduling.interval_tti": 5, "duration_s": 0.02})  # 40 TTIs, decisions every 5
    phy = GainSpy(full)
    Engine(s, make_policy("pf"), phy).run()
    n_ue, n_ru, n_prb = phy.seen[0][1].shape
    stale_seen = 0
    for (k0, g0, _), (k1, g1, owner) in zip(phy.seen, phy.seen[1:]):
        assert k1 == k0 + 1
        used = np.zeros(g1.shape, bool)
        r, k = np.nonzero(owner >= 0)
        used[owner[r, k], :, k] = True  # the entries the owners' SINR needs
        assert np.all(g1[used] != g0[used]), k1  # always current
        if full:
            assert np.all(g1 != g0), k1
        elif k1 % 5:  # between decisions (at decisions the UEs with data, and whatever a policy reads)
            assert np.array_equal(g1[~used], g0[~used]), k1
            stale_seen += int((~used).sum())
    assert full or stale_seen > 0
