"""Faults that need real processes: SIGTERM, SIGHUP and SIGINT mid-run and mid-save (``run``,
``evaluate``, ``run --phy ns3-shm``), and two runs racing for one folder.

Each signalled process runs the real ``oransim`` entry point under a small harness that writes a
marker file once the process is where the signal should hit (a TTI of the simulation, or between
two tables of the run folder), so the signal never lands during start-up. Expected: exit code
128 + signal, one stderr line naming the signal and saying nothing was written, no run folder or
table, an existing run folder unchanged, no temporary left (``.NAME.tmp-*``, the ns-3 server's
``oransim-ns3-*`` folder and its shared-memory segment).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fault_helpers import assert_conserved_folder, scenario_text, snapshot, temporaries

HARNESS = r"""
import sys, time
from pathlib import Path
marker, stage = Path(sys.argv[1]), sys.argv[2]
if stage == "tti":
    import simcore.engine as engine
    real_transmit = engine.Engine._transmit
    def transmit(self, k):
        if k == 20:
            marker.write_text("mid-run")
        return real_transmit(self, k)
    engine.Engine._transmit = transmit
elif stage == "save":
    import simcore.recorder as recorder
    real_write = recorder._write_table
    def write(df, path):
        real_write(df, path)
        marker.write_text("mid-save")
        time.sleep(60)
    recorder._write_table = write
from oransim.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _start(tmp: Path, stage: str, *args) -> tuple[subprocess.Popen, Path]:
    marker = tmp / "marker"
    proc = subprocess.Popen([sys.executable, "-c", HARNESS, str(marker), stage, *map(str, args)], cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, marker


def _wait_for(proc: subprocess.Popen, ready, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"never reached {what}: exit {proc.returncode}\n{out}\n{err}")
        time.sleep(0.02)


def _stop(proc: subprocess.Popen, signum: int) -> tuple[int, list[str]]:
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, [ln for ln in err.splitlines() if ln.strip()]


SIGNAL_CASES = {  # (where the signal lands, the signal, the command, whether a run folder is there already)
    "run_sigterm": ("tti", signal.SIGTERM, ("run", "s.yaml", "--out", "r"), False),
    "run_overwrite_sighup": ("tti", signal.SIGHUP, ("run", "s.yaml", "--out", "r", "--overwrite"), True),
    "run_sigint": ("tti", signal.SIGINT, ("run", "s.yaml", "--out", "r"), False),
    "save_sigterm_new": ("save", signal.SIGTERM, ("run", "s.yaml", "--out", "r"), False),
    "save_sighup_overwrite": ("save", signal.SIGHUP, ("run", "s.yaml", "--out", "r", "--overwrite"), True),
    "evaluate_sigterm": ("tti", signal.SIGTERM, ("evaluate", "s.yaml", "--states", "500", "--out", "t.csv"), False),
}


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    from simcore.run import save_run, simulate
    from simcore.scenario import parse_scenario

    import yaml

    return save_run(simulate(parse_scenario(yaml.safe_load(scenario_text()))), tmp_path_factory.mktemp("old") / "r")


@pytest.mark.parametrize("case", sorted(SIGNAL_CASES))
def test_signal_unwinds_cleanly(case, tmp_path, old_run):
    import shutil

    stage, signum, args, existing = SIGNAL_CASES[case]
    long = stage == "tti" and args[0] == "run"
    (tmp_path / "s.yaml").write_text(scenario_text({"duration_s": 60.0} if long else {}))
    if existing:
        shutil.copytree(old_run, tmp_path / "r")
    before = snapshot(tmp_path)
    proc, marker = _start(tmp_path, stage, *args)
    _wait_for(proc, marker.exists, f"the {stage} stage")
    code, lines = _stop(proc, signum)
    name = signal.Signals(signum).name
    assert code == 128 + signum, lines
    assert lines == [f"oransim: stopped by signal {int(signum)} ({name}); nothing was written, existing outputs "
                     f"are unchanged"], lines
    after = {p: h for p, h in snapshot(tmp_path).items() if p != "marker"}
    assert after == before, "a file changed, appeared or was lost"
    assert not temporaries(tmp_path)


def test_two_runs_into_one_folder(tmp_path):
    """Both start before either has written: exactly one run folder results, the other run says why."""
    (tmp_path / "s.yaml").write_text(scenario_text({"duration_s": 0.3}))
    cmd = [sys.executable, "-m", "oransim", "run", "s.yaml", "--out", "r"]
    procs = [subprocess.Popen(cmd + ["--seed", str(seed)], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (21, 22)]
    results = [(p.wait(timeout=300), p.communicate()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] in (1, 2), results
    loser_err = next(err for code, (_, err) in results if code != 0)
    lines = [ln for ln in loser_err.splitlines() if ln.strip()]
    assert len(lines) == 1 and ("appeared while this run was working" in lines[0] or "already exists" in lines[0]), lines
    winner_seed = (21, 22)[[code for code, _ in results].index(0)]
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["seed"] == winner_seed
    assert_conserved_folder(tmp_path / "r")
    assert not temporaries(tmp_path)


@pytest.mark.ns3
def test_sighup_stops_the_ns3_server_and_removes_its_files(tmp_path):
    pytest.importorskip("ns3_bridge.build")
    from ns3_bridge import build

    try:
        build.server_binary()
    except build.Ns3BuildError as exc:
        pytest.skip(str(exc))
    (tmp_path / "s.yaml").write_text(scenario_text({"duration_s": 60.0}))
    proc, marker = _start(tmp_path, "tti", "run", "s.yaml", "--phy", "ns3-shm", "--out", "r")
    _wait_for(proc, marker.exists, "a TTI of the ns-3 run", timeout_s=300)
    segments = [n for n in os.listdir("/dev/shm") if n.startswith(f"oransim_{proc.pid}_")]
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    servers = {c: Path(a.decode()) for c in children for a in Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0")
               if a.endswith(b".cfg")}  # the ns-3 server is started with its config file
    assert segments and len(servers) == 1, (segments, servers)
    server, config = servers.popitem()
    assert config.parent.name.startswith("oransim-ns3-"), config
    code, lines = _stop(proc, signal.SIGHUP)
    assert code == 129 and len(lines) == 1 and "stopped by signal 1 (SIGHUP)" in lines[0], lines
    assert not any(n.startswith(f"oransim_{proc.pid}_") for n in os.listdir("/dev/shm"))
    assert not config.parent.exists(), "the server's temporary folder was left behind"
    assert not Path(f"/proc/{server}").exists(), "the ns-3 server outlived the run"
    assert not (tmp_path / "r").exists()
