"""The ns3-shm PHY backend: an ns-3 LTE server driven per TTI over shared memory.

Tolerances: ns-3 is fed the engine's shadowing and fading and computes its own path loss (which
agrees with the built-in models to < 0.1 dB, test_ns3_reference.py), the same thermal noise and
noise figure, and the same interference sum; so on the same allocation and gains the SINR of every
granted PRB must agree with the built-in PHY's to 0.1 dB.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from simcore.engine import Engine
from simcore.phy import BuiltinPhy
from simcore.plugins import make_policy
from simcore.scenario import load_scenario, parse_scenario

pytestmark = pytest.mark.ns3
ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quick.yaml"


@pytest.fixture(scope="module")
def shm():
    pytest.importorskip("ns3_bridge.build")
    from ns3_bridge import build, shm

    try:
        build.ns3_root()
    except build.Ns3BuildError as exc:
        pytest.skip(str(exc))
    build.server_binary()  # compile once (about 10 s cold)
    return shm


def _segments() -> set[str]:
    """This process's segments (other runs on the machine create and remove their own meanwhile)."""
    return {n for n in os.listdir("/dev/shm") if n.startswith(f"oransim_{os.getpid()}_")}


def test_one_second_of_quick_yaml_matches_builtin_sinr_and_conserves(shm):
    # decisions every 2 TTIs: in between, the engine must still send every gain entry fresh
    data = load_scenario(QUICK).with_overrides(duration_s=1.0).model_dump(mode="python")
    data["scheduling"]["interval_tti"] = 2
    scn = parse_scenario(data)
    seen = []
    tables = []

    class Twin(shm.Ns3ShmPhy):
        """ns3-shm, with the built-in PHY evaluated on the very same allocation and gains."""

        def open(self, scenario, geometry, link, **kw):
            self.ref = BuiltinPhy()
            self.ref.open(scenario, geometry, link, **kw)
            super().open(scenario, geometry, link, **kw)

        def step(self, tti, allocation, gain):
            res = super().step(tti, allocation, gain)
            ref = self.ref.step(tti, allocation, gain)
            if tti < 20:
                tables.append(self.gain.copy())  # what ns-3 applied this TTI (shadowing x fading)
                assert self.segment_name in _segments()
            m = allocation.prb_owner >= 0
            seen.append((allocation.prb_owner[m], res.prb_sinr[m], ref.prb_sinr[m], res.prb_bits[m]))
            return res

    before = _segments()
    phy = Twin()
    result = Engine(scn, make_policy("pf"), phy).run()
    assert _segments() == before, "the shared-memory segment must be gone after the run"

    c = result.counts
    assert c["generated_packets"] == c["delivered_packets"] + c["dropped_packets"] + c["queued_packets"] + c["processing_packets"]
    assert c["generated_bits"] == pytest.approx(
        c["delivered_bits"] + c["dropped_bits"] + c["queued_bits"] + c["processing_bits"], rel=1e-12)
    assert c["delivered_packets"] > 0.5 * c["generated_packets"]

    owner = np.concatenate([s[0] for s in seen])
    ns3 = np.concatenate([s[1] for s in seen])
    ref = np.concatenate([s[2] for s in seen])
    bits = np.concatenate([s[3] for s in seen])
    info = phy.info()
    assert info["tbs_sent"] > 1000 and info["tbs_decoded"] > 0.8 * info["tbs_sent"]
    # one ns-3 subframe per TTI: the grants go out in the subframe after they are handed over
    assert info["ns3_subframes"] - info["warmup_subframes"] == scn.n_tti
    # every granted PRB has ns-3's SINR, unless the UE missed the DCI (then it may have none)
    missing = ~np.isfinite(ns3)
    assert missing.sum() <= 6 * info["dci_lost"]
    ok = ~missing
    assert np.max(np.abs(10 * np.log10(ns3[ok] / ref[ok]))) < 0.1
    for u in np.unique(owner):
        m = ok & (owner == u)
        assert abs(10 * np.log10(ns3[m].mean() / ref[m].mean())) < 0.1, u
    assert np.all(bits[missing] == 0)
    # ns-3 computes every UE's CQI from the whole table: every entry is redrawn at every TTI
    for a, b in zip(tables, tables[1:]):
        assert np.all(a != b)


def test_run_records_the_phy_and_validate_checks_ns3_limits(shm, tmp_path):
    out = tmp_path / "run"
    res = cli("run", QUICK, "--phy", "ns3-shm", "--duration", "0.05", "--out", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    import json

    phy = json.loads((out / "manifest.json").read_text())["phy"]
    assert phy["backend"] == "ns3-shm" and phy["tbs_sent"] > 0 and phy["ns3_subframes"] > 0

    # 25 PRBs cannot be cut into 6-PRB LTE carriers: fine for the built-in PHY, refused for ns3-shm
    text = QUICK.read_text().replace("prbs_per_ru: 30", "prbs_per_ru: 25")
    assert "prbs_per_ru: 25" in text
    (tmp_path / "builtin.yaml").write_text(text)
    (tmp_path / "ns3.yaml").write_text(text.replace("backend: builtin", "backend: ns3-shm"))
    assert cli("validate", "builtin.yaml", cwd=tmp_path).returncode == 0
    for cmd in (["validate", "ns3.yaml"], ["run", "ns3.yaml", "--out", "x"],
                ["run", "builtin.yaml", "--phy", "ns3-shm", "--out", "y"]):
        res = cli(*cmd, cwd=tmp_path)
        assert res.returncode == 2, (cmd, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "cell.prbs_per_ru" in lines[0] and "multiple of 6" in lines[0], res.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.parametrize("how", ["kill", "hang"])
def test_dead_or_hung_server_gives_clear_error_and_no_stale_segment(shm, how):
    scn = load_scenario(QUICK).with_overrides(duration_s=0.5)

    class Sabotaged(shm.Ns3ShmPhy):
        def step(self, tti, allocation, gain):
            if tti == 100:
                self.victim = self.proc.pid
                self.segment = self.segment_name
                os.kill(self.proc.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
            return super().step(tti, allocation, gain)

    phy = Sabotaged(timeout_s=2.0)
    t0 = time.monotonic()
    with pytest.raises(shm.Ns3PhyError) as err:
        Engine(scn, make_policy("pf"), phy).run()
    waited = time.monotonic() - t0
    msg = str(err.value)
    if how == "kill":
        assert "died (killed by signal 9) during answer TTI 100" in msg
    else:
        assert "did not answer TTI 100 within 2 s" in msg
        assert waited > 2.0
    assert waited < 60
    assert phy.segment not in os.listdir("/dev/shm")
    with pytest.raises(ProcessLookupError):  # the child is gone (a hung one is killed)
        for _ in range(50):
            os.kill(phy.victim, 0)
            time.sleep(0.1)


def test_same_seed_same_tables(shm, monkeypatch):
    from simcore.run import simulate

    scn = load_scenario(QUICK).with_overrides(duration_s=0.1, phy="ns3-shm")
    a, b = simulate(scn), simulate(scn)
    for name in ("packets", "tti", "decisions"):
        assert getattr(a, name).equals(getattr(b, name)), name
    c = simulate(scn.with_overrides(seed=2**63 - 1))  # the largest seed reaches ns-3 as (seed, run)
    assert not a.tti.equals(c.tti)
    # ns-3's own draws follow its (seed, run): the same engine seed with another ns-3 run differs
    seed, run = shm.ns3_seed_run(scn.seed)
    monkeypatch.setattr(shm, "ns3_seed_run", lambda _: (seed, run + 1))
    d = simulate(scn)
    assert a.decisions["tti"].equals(d.decisions["tti"]) and not a.tti.equals(d.tti)


# (scenario changes, fields scenario_problems names): the server must refuse exactly these
LIMIT_CASES = [
    ({}, []),
    ({"cell.prbs_per_ru": 25}, ["cell.prbs_per_ru"]),
    ({"cell.prbs_per_ru": 198}, []),  # 33 blocks: refused before as "not a multiple of 6"
    ({"cell.prbs_per_ru": 270}, []),
    ({"slices.0.ues": 100, "slices.1.ues": 100, "slices.2.ues": 116}, []),
    ({"slices.0.ues": 100, "slices.1.ues": 100, "slices.2.ues": 117}, ["slices"]),
    ({"cell.rus": "3", "slices.0.ues": 35, "slices.1.ues": 35, "slices.2.ues": 35}, []),
    ({"cell.rus": "3", "slices.0.ues": 40, "slices.1.ues": 40, "slices.2.ues": 40}, ["slices"]),
    ({"channel.pathloss": "cost231_128_1"}, ["channel.pathloss"]),
    ({"cell.carrier_ghz": 0.45}, ["cell.carrier_ghz"]),
    ({"cell.carrier_ghz": 0.45, "channel.pathloss": "log_distance"}, []),
    ({"cell.carrier_ghz": 100.0, "channel.pathloss": "umi"}, []),
    ({"cell.numerology": 4}, []),
    ({"seed": 0}, []),
    ({"seed": 2**31 - 1}, []),
    ({"seed": 2**32 + 7}, []),
    ({"seed": 2**63 - 1}, []),
    ({"phy.params": {"timeout_s": 0}}, ["phy.params.timeout_s"]),
    ({"phy.params": {"warmup_max_ms": 9}}, ["phy.params.warmup_max_ms"]),
]
SERVER_KEY_FIELD = {"n_prb": "cell.prbs_per_ru", "n_ue": "slices", "pathloss": "channel.pathloss",
                    "carrier_hz": "cell.carrier_ghz", "timeout_s": "phy.params.timeout_s",
                    "warmup_max_ms": "phy.params.warmup_max_ms", "ns3_seed": "seed", "ns3_run": "seed"}


def _limit_scenario(changes):
    data = load_scenario(QUICK).model_dump(mode="python")
    for key, value in changes.items():
        if key == "cell.rus":
            value = [{"x_m": 800.0 * i, "y_m": 0.0, "height_m": 25.0, "max_power_dbm": 46.0} for i in range(int(value))]
        *path, last = key.split(".")
        node = data
        for p in path:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value
    return parse_scenario(data)


def test_validate_refuses_exactly_what_the_server_refuses(shm, tmp_path):
    """Each case's config goes to the compiled server's --check-config (its ConfigProblems)."""
    from ns3_bridge.build import server_binary
    from simcore.channel import drop_ues

    binary = str(server_binary())
    for i, (changes, expected) in enumerate(LIMIT_CASES):
        s = _limit_scenario(changes)
        ours = [f for f, _ in shm.scenario_problems(s)]
        assert ours == expected, (changes, shm.scenario_problems(s))
        geo = drop_ues(s, np.random.default_rng(i))
        lay = shm.segment_layout(geo.ue_slice.size, s.n_ru, s.cell.prbs_per_ru)
        params = {k: v for k, v in s.phy.params.items() if k in ("timeout_s", "warmup_max_ms")}
        cfg = tmp_path / f"case{i}.cfg"
        cfg.write_text(shm.server_config(s, geo, geo.ue_home_ru, "unused", lay, **params))
        res = subprocess.run([binary, str(cfg), "--check-config"], capture_output=True, text=True, timeout=60)
        server = [line.split(":", 1)[0] for line in res.stdout.splitlines()]
        assert res.returncode == (3 if server else 0), res
        assert sorted({SERVER_KEY_FIELD[k] for k in server}) == sorted(set(expected)), (changes, res.stdout)
    # what no scenario can produce is refused too: a seed or run out of range, or lines missing
    cfg.write_text(cfg.read_text().replace("ns3_seed ", "ns3_seed 0 #").replace("ns3_run ", "ns3_run -1 #"))
    res = subprocess.run([binary, str(cfg), "--check-config"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 3 and [ln.split(":")[0] for ln in res.stdout.splitlines()][:2] == ["ns3_seed", "ns3_run"]


def test_sigterm_unwinds_the_run(shm, tmp_path):
    """`docker stop` / `kill`: the CLI stops the server, removes the segment, writes no run folder."""
    proc = subprocess.Popen([sys.executable, "-m", "oransim", "run", str(QUICK), "--phy", "ns3-shm",
                             "--duration", "30", "--out", str(tmp_path / "run")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    prefix = f"oransim_{proc.pid}_"
    deadline = time.monotonic() + 120
    while not any(n.startswith(prefix) for n in os.listdir("/dev/shm")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)  # mid-run
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by signal 15" in err
    assert not any(n.startswith(prefix) for n in os.listdir("/dev/shm"))
    assert not (tmp_path / "run").exists()
