"""oransim sweep: sweep files (strict schema, dotted paths), jobs in this process and on Ray, the
results table, failures recorded, resuming, a stop leaving nothing half-written, report on a sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from oransim.sweep import SweepError, expand, load_sweep, parse_path, set_path

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quick.yaml"


def _write(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    p = tmp_path / name
    p.write_text(body.replace("QUICK", str(QUICK)), encoding="utf-8")
    return p


TINY = """
name: tiny
scenario: QUICK
set: {duration_s: 0.1}
grid:
  "slices[*].ues": [1, 2]
seeds: [1, 2]
policies: [pf, rr]
run: {}
evaluate: {states: 1, objective: rate, optimum: optimal, warmup_tti: 10}
"""


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _main(capsys, *args):
    """The oransim command in this process (saves a Python start per call)."""
    from oransim.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return _Result(code, cap.out, cap.err)


def test_paths():
    assert parse_path("cell.rus[0].max_power_dbm") == ["cell", "rus", 0, "max_power_dbm"]
    assert parse_path("slices[*].ues") == ["slices", "*", "ues"]
    for bad in ("cell..x", "[0].x", "cell.", "cell.rus[x]", "a b"):
        with pytest.raises(ValueError):
            parse_path(bad)
    data = {"slices": [{"ues": 1}, {"ues": 2}], "phy": {"params": {}}, "seed": 1}
    set_path(data, "slices[*].ues", 7)
    set_path(data, "phy.params.new_key", 3)  # params mappings take new keys
    assert data["slices"] == [{"ues": 7}, {"ues": 7}] and data["phy"]["params"] == {"new_key": 3}
    for path, msg in (("slices[5].ues", "has 2 element"), ("slices[0].nope", "no field 'nope'"),
                      ("seed", "set by the sweep's 'seeds'")):
        with pytest.raises(ValueError, match=msg):
            set_path(data, path, 1)


@pytest.mark.parametrize("body, field, message", [
    ("bogus: 1", "bogus", "unknown field"),
    ("grid: {'slices[*].ues': []}", "grid", "has no values"),
    ("seeds: [1, 1]", "seeds", "listed twice"),
    ("policies: [pf, pf]", "policies", "named twice"),
    ("name: 'a/b'", "name", "cannot name a folder"),
    ("evaluate: {states: 0}", "evaluate.states", "greater than or equal to 1"),
])
def test_schema_errors_name_the_field(tmp_path, body, field, message):
    base = {"name": "t", "scenario": "QUICK", "seeds": "[1]", "policies": "[pf]", "run": "{}"}
    key = body.split(":")[0]
    text = "\n".join(f"{k}: {v}" for k, v in base.items() if k != key) + "\n" + body + "\n"
    with pytest.raises(SweepError) as exc:
        load_sweep(_write(tmp_path, text))
    assert any(f == field and message in m for f, m in exc.value.problems), exc.value.problems


def test_expand_errors_and_jobs(tmp_path):
    def problems(extra: str, policies: str = "[pf]"):
        path = _write(tmp_path, f"name: t\nscenario: QUICK\nseeds: [1]\npolicies: {policies}\nrun: {{}}\n{extra}\n")
        with pytest.raises(SweepError) as exc:
            expand(load_sweep(path), path)
        return exc.value.problems

    assert problems("grid: {'cell.nope': [1]}") == [("grid['cell.nope']", "the scenario has no field 'nope' in cell")]
    # a value the scenario schema refuses: the point and the scenario field are both named
    (where, msg), = problems("grid: {'cell.rus[0].max_power_dbm': [40, 99]}")
    assert where.startswith("point 1 (cell.rus[0].max_power_dbm=99)") and "cell.rus[0].max_power_dbm" in msg
    assert problems("", "[pf, nope]")[0][0] == "policies[1]" and "unknown policy 'nope'" in problems("", "[pf, nope]")[0][1]
    spec = load_sweep(_write(tmp_path, TINY))
    points, jobs = expand(spec, tmp_path / "s.yaml")
    assert [p.scenario.slices[2].ues for p in points] == [1, 2]
    assert len(jobs) == 2 * 2 * (2 + 1) and len({j.key for j in jobs}) == len(jobs)
    # the key follows the job's definition only: the same file expands to the same keys
    assert [j.key for j in expand(spec, tmp_path / "s.yaml")[1]] == [j.key for j in jobs]


def test_keys_follow_the_code_and_the_checkpoints(tmp_path, monkeypatch):
    """A job's key changes when the code that computes it changes (the source fingerprint) or when
    a checkpoint it loads is replaced by another file of the same name; not otherwise."""
    import oransim.sweep as sw

    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"one")
    body = TINY.replace("policies: [pf, rr]", f"policies: [pf, 'dqn:{ckpt}']").replace("run: {}\n", "")
    spec = load_sweep(_write(tmp_path, body))
    keys = [j.key for j in expand(spec, tmp_path / "s.yaml")[1]]
    assert keys == [j.key for j in expand(spec, tmp_path / "s.yaml")[1]]
    ckpt.write_bytes(b"two")  # retrained under the same name
    assert not set(keys) & {j.key for j in expand(spec, tmp_path / "s.yaml")[1]}
    ckpt.write_bytes(b"one")
    assert [j.key for j in expand(spec, tmp_path / "s.yaml")[1]] == keys
    fp = sw.code_fingerprint()
    assert len(fp) == 16 and fp == sw.code_fingerprint()
    monkeypatch.setattr(sw, "code_fingerprint", lambda: "another-revision")
    assert not set(keys) & {j.key for j in expand(spec, tmp_path / "s.yaml")[1]}


def test_fingerprint_covers_the_source(tmp_path, monkeypatch):
    """The fingerprint hashes every .py of the packages that compute results: a changed byte in one
    of them (a copy of the tree here) changes it, a changed byte elsewhere does not."""
    import shutil

    import oransim.sweep as sw

    tree = tmp_path / "tree"
    for pkg in sw.CODE_PACKAGES:
        shutil.copytree(ROOT / pkg, tree / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "oransim").mkdir()
    for m in sw.CODE_MODULES:
        shutil.copy(ROOT / m, tree / m)
    (tree / "oransim" / "reporting.py").write_text("x = 1\n")
    fake = tree / "oransim" / "sweep.py"
    monkeypatch.setattr(sw, "__file__", str(fake))

    def fingerprint():
        sw.code_fingerprint.cache_clear()
        return sw.code_fingerprint()

    base = fingerprint()
    (tree / "oransim" / "reporting.py").write_text("x = 2\n")  # not in the packages that compute
    assert fingerprint() == base
    plots = tree / "analysis" / "sweep_plots.py"  # draws only
    plots.write_text(plots.read_text() + "\n# changed\n")
    assert fingerprint() == base
    target = tree / "simcore" / "snapshot.py"
    target.write_text(target.read_text() + "\n# changed\n")
    assert fingerprint() != base
    monkeypatch.undo()
    sw.code_fingerprint.cache_clear()


def test_evaluations_share_states_and_optima(tmp_path):
    """A second sweep over the same points with other policies samples and solves nothing again
    (the process's memo) and gives the same table as a process without the memo."""
    import oransim.sweep_jobs as sj
    from oransim.sweep_run import run_sweep

    def run(policies: str, out: str) -> pd.DataFrame:
        body = TINY.replace("policies: [pf, rr]", f"policies: {policies}").replace("run: {}\n", "")
        body = body.replace("seeds: [1, 2]", "seeds: [2]")
        path = _write(tmp_path, body.replace("name: tiny", f"name: {out}"), f"{out}.yaml")
        spec = load_sweep(path)
        points, jobs = expand(spec, path)
        assert run_sweep(spec, path, points, jobs, tmp_path / out)["failed"] == 0
        return pd.read_parquet(tmp_path / out / "results.parquet")

    sj._STATES.clear(), sj._SOLVED.clear()
    run("[pf, optimal]", "a")
    n_states, n_solved = len(sj._STATES), len(sj._SOLVED)
    assert n_states == n_solved == 2  # 2 points x 1 seed, one state each
    shared = run("[rr, optimal]", "b")
    assert (len(sj._STATES), len(sj._SOLVED)) == (n_states, n_solved)
    sj._STATES.clear(), sj._SOLVED.clear()
    fresh = run("[rr, optimal]", "c")
    timing = [c for c in shared.columns if c.endswith("decide_ms")]
    pd.testing.assert_frame_equal(shared.drop(columns=timing), fresh.drop(columns=timing))


def test_stale_install_says_reinstall(tmp_path, monkeypatch):
    """A policy declared in pyproject.toml with its module in the tree, but missing from the
    environment's entry points (installed from an older tree), is reported as needing a reinstall,
    in sweeps and in the reproduction's list of learned policies; a name the tree lacks is unknown."""
    import oransim.reproduce as rp
    import oransim.sweep as sw
    import simcore.plugins as plugins

    real = plugins.available
    monkeypatch.setattr(plugins, "available", lambda group: [n for n in real(group) if n != "diffusion_ql"])
    hint = sw.stale_install("diffusion_ql")
    assert "policies/learned/diffusion_ql.py" in hint and "make install" in hint and "pip install -e ." in hint
    assert sw.stale_install("nope") is None
    path = _write(tmp_path, "name: t\nscenario: QUICK\nseeds: [1]\npolicies: [pf, diffusion_ql, nope]\nrun: {}\n")
    with pytest.raises(SweepError) as exc:
        expand(load_sweep(path), path)
    assert exc.value.problems[0] == ("policies[1]", hint)
    assert exc.value.problems[1][0] == "policies[2]" and "unknown policy 'nope'" in exc.value.problems[1][1]
    dql = next(lp for lp in rp.learned_policies() if lp.name == "diffusion_ql")
    assert not dql.available and dql.why == hint


def test_sweep_in_process_failures_resume_and_report(tmp_path, capsys, monkeypatch):
    """--workers 0: the table has a row per point x seed x policy; a policy whose checkpoint is
    missing fails in every job that uses it, recorded with its error while the others finish; a
    re-run runs only the failed jobs; report plots a KPI against the swept field."""
    monkeypatch.chdir(tmp_path)
    body = TINY.replace("policies: [pf, rr]", "policies: [pf, 'dqn:missing.pt']").replace("seeds: [1, 2]", "seeds: [1]")
    sweep = _write(tmp_path, body)
    r = _main(capsys, "sweep", sweep, "--workers", "0", "--out", tmp_path / "out")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "failed: " in r.stderr and "no such file" in r.stderr
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(df) == 2 * 2 and set(df["policy"]) == {"pf", "dqn:missing.pt"}
    pf = df[df["policy"] == "pf"]
    assert pf["run_error"].isna().all() and pf["eval_error"].isna().all()
    assert (pf["run_tput_mbps"] > 0).all() and pf["eval_tput_mbps"].notna().all()
    assert (pf["eval_beats_opt"] == 0).all()
    dqn = df[df["policy"] != "pf"]
    assert dqn["run_error"].str.contains("no such file").all() and dqn["eval_error"].str.contains("no such file").all()
    for _, row in pf.iterrows():  # the run folder is a complete oransim run folder
        assert json.loads((tmp_path / "out" / row["run_dir"] / "manifest.json").read_text())["seed"] == row["seed"]
    # 6 jobs: 2 evaluations (pf evaluated, dqn's row carries its error), 2 pf runs, 2 failed dqn runs
    again = _main(capsys, "sweep", sweep, "--workers", "0", "--out", tmp_path / "out")
    assert "0 run now, 4 finished before, 2 failed" in again.stdout, again.stdout
    rep = _main(capsys, "report", tmp_path / "out", "--kpi", "run_tput_mbps")
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "out" / "run_tput_mbps-vs-slices_.ues.png").read_bytes()[:4] == b"\x89PNG"
    bad = _main(capsys, "report", tmp_path / "out", "--kpi", "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("--kpi: 'nope' is not a column")
    other = _write(tmp_path, body.replace("name: tiny", "name: other"), "o.yaml")
    clash = _main(capsys, "sweep", other, "--workers", "0", "--out", tmp_path / "out")
    assert clash.returncode == 2 and "holds sweep 'tiny', not 'other'" in clash.stderr


def test_stop_leaves_nothing_half_written(tmp_path, capsys, monkeypatch):
    """SIGINT while a run is being written: exit 130, no staging folder, the finished jobs' table;
    the same command then finishes the rest."""
    body = f"name: stop\nscenario: {QUICK}\nset: {{duration_s: 1.0}}\nseeds: [1, 2]\npolicies: [pf]\nrun: {{}}\n"
    sweep = _write(tmp_path, body)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "oransim", "sweep", str(sweep), "--workers", "0", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for the second job's staging folder (the first job is finished)
        runs = out / "runs"
        if runs.is_dir() and len([e for e in os.listdir(runs) if not e.startswith(".")]) >= 1 and \
                any(e.startswith(".") for e in os.listdir(runs)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped" in err and "Traceback" not in err
    leftovers = [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
    done = pd.read_parquet(out / "results.parquet")
    assert len(done) == 1 and done["run_tput_mbps"].notna().all()
    monkeypatch.chdir(tmp_path)
    r = _main(capsys, "sweep", sweep, "--workers", "0", "--out", out)
    assert r.returncode == 0 and f"{len(done)} finished before" in r.stdout, r.stdout + r.stderr
    assert len(pd.read_parquet(out / "results.parquet")) == 2


def test_ray_matches_in_process(tmp_path):
    """The same sweep on a local Ray instance (1 CPU, started and stopped by run_sweep) gives the
    same table as in this process."""
    pytest.importorskip("ray")
    from oransim.sweep_run import run_sweep

    body = TINY.replace('"slices[*].ues": [1, 2]', '"slices[*].ues": [1]').replace("seeds: [1, 2]", "seeds: [3]")
    sweep = _write(tmp_path, body)
    spec = load_sweep(sweep)
    points, jobs = expand(spec, sweep)
    a = run_sweep(spec, sweep, points, jobs, tmp_path / "a", workers=0)
    b = run_sweep(spec, sweep, points, jobs, tmp_path / "b", workers=1)
    assert a["failed"] == b["failed"] == 0 and a["ray_start_s"] is None and b["ray_start_s"] > 0
    import ray

    assert not ray.is_initialized()  # stopped again
    ta, tb = (pd.read_parquet(tmp_path / d / "results.parquet") for d in "ab")
    timing = [c for c in ta.columns if c.endswith("wall_s") or c.endswith("decide_ms")]
    pd.testing.assert_frame_equal(ta.drop(columns=timing), tb.drop(columns=timing))


PHYSICS = """
name: NAME
scenario: {paper}
set: {{"slices[*].ues": 3}}
grid:
  "FIELD": VALUES
seeds: [1]
policies: POLICIES
evaluate: {{states: 3, objective: rate, optimum: optimal, warmup_tti: 10}}
"""


@pytest.mark.parametrize("name, field, values, policies", [
    ("power", "cell.rus[0].max_power_dbm", [34, 40, 46], "[pf, maxcqi, optimal]"),
    ("cap", "slices[*].power_cap_dbm", [20, 30, 46], "[optimal]"),
])
def test_what_physics_guarantees(tmp_path, name, field, values, policies):
    """The optimum never gets worse (less shortfall first, then a larger objective) when the RU's
    power rises (every allocation, scaled, gives each UE at least its rate: SINR rises with power,
    quantization noise included) or when the slices' power cap loosens by 3 dB or more (the tighter
    optimum, its levels below the looser problem's lowest raised to it, keeps that cap: test_reproduce.py).
    Without slice caps the classic schedulers put P_RU/K on each PRB, one of the optimum's own power
    levels, so none may rank above it on any state. States after 10 TTIs are the same drop and
    fading whatever the budgets (the warm-up's first decision interval), so the check is paired."""
    from oransim.sweep_run import run_sweep

    text = PHYSICS.format(paper=ROOT / "scenarios" / "paper_default.yaml").replace("NAME", name)
    path = _write(tmp_path, text.replace("FIELD", field).replace("VALUES", str(values)).replace("POLICIES", policies))
    spec = load_sweep(path)
    points, jobs = expand(spec, path)
    summary = run_sweep(spec, path, points, jobs, tmp_path / "out")
    assert summary["failed"] == 0, summary["errors"]
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert (df["eval_beats_opt"] == 0).all()
    opt = df[df["policy"] == "optimal"].pivot(index="seed", columns=field, values=["eval_wtput_mbps",
                                                                                    "eval_opt_violation_mbps"])
    f, v = opt["eval_wtput_mbps"][values].to_numpy(), opt["eval_opt_violation_mbps"][values].to_numpy()
    tol = 1e-6
    assert (v[:, 1:] <= v[:, :-1] * (1 + tol) + 1e-8).all(), (field, v)  # shortfall never grows
    compared = 0
    for lo in range(len(values) - 1):
        met = v[:, lo] <= 1e-9
        compared += int(met.sum())
        assert (f[met, lo + 1] >= f[met, lo] * (1 - tol)).all(), (field, f, v)
    # not vacuous: the objective is compared somewhere, or the shortfall strictly falls somewhere
    assert compared >= 1 or (v[:, 1:] < v[:, :-1] - 1e-3).any()


def test_a_signal_surfacing_inside_compiled_code_stops_the_job(monkeypatch):
    """A Ctrl-C that lands while a numba kernel runs comes back as SystemError with the signal as its
    cause: the job runner must stop (re-raise the signal), not record a failed job."""
    import oransim.sweep_jobs as sweep_jobs
    from oransim.guard import Stopped, signal_in

    def wrapped(signal_exc):
        try:
            try:
                raise signal_exc
            except BaseException as inner:
                raise SystemError("CPUDispatcher(...) returned a result with an exception set") from inner
        except SystemError as outer:
            return outer

    assert isinstance(signal_in(wrapped(Stopped(signal.SIGINT))), Stopped)
    assert isinstance(signal_in(wrapped(KeyboardInterrupt())), KeyboardInterrupt)
    assert signal_in(wrapped(ValueError("a real failure"))) is None

    job = {"key": "k", "job_id": "j", "mode": "run", "policies": ["pf"]}

    def interrupted(job, out_dir):
        raise wrapped(Stopped(signal.SIGINT))

    monkeypatch.setattr(sweep_jobs, "_run_rows", interrupted)
    with pytest.raises(Stopped):
        sweep_jobs.run_job(job, "unused")

    def failing(job, out_dir):
        raise wrapped(ValueError("a real failure"))

    monkeypatch.setattr(sweep_jobs, "_run_rows", failing)
    out = sweep_jobs.run_job(job, "unused")
    assert not out["ok"] and "SystemError" in out["error"]
