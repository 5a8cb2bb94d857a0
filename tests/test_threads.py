"""The command line pins the numeric libraries' threads (ORANSIM_THREADS, default 1) and the manifest
records what they used (simcore/threads.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simcore.threads import DEFAULT_THREADS, ENV_VAR, POOL_VARS, ThreadsError, requested_threads

ROOT = Path(__file__).resolve().parent.parent
QUICK = str(ROOT / "scenarios" / "quick.yaml")


def test_requested_threads_parses_the_variable():
    assert requested_threads({}) == DEFAULT_THREADS == 1
    assert requested_threads({ENV_VAR: " 3 "}) == 3
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(ThreadsError, match=ENV_VAR):
            requested_threads({ENV_VAR: bad})


def test_cli_entry_pins_the_pools_before_numpy_and_torch_start(tmp_path):
    """The ``oransim`` script imports oransim.cli first: set then, before numpy and torch start,
    ORANSIM_THREADS wins over a pool variable the caller had set, in BLAS's pool and torch's."""
    env = {k: v for k, v in os.environ.items() if k not in POOL_VARS}
    env.update({ENV_VAR: "2", "OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "3"})
    code = ("import json, oransim.cli, numpy, torch\n"
            "from simcore.threads import thread_counts\n"
            "print(json.dumps(thread_counts()))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    threads = json.loads(proc.stdout)
    assert threads["requested"] == 2 and threads["torch"] == 2
    assert threads["blas"] and set(threads["blas"].values()) == {2}, threads  # numpy's OpenBLAS found and pinned


def test_in_process_call_resizes_running_pools_and_rejects_bad_values(tmp_path, monkeypatch, capsys):
    """numpy (and maybe torch) are loaded already here: main() resizes their pools to the default, and
    the run's manifest records the counts."""
    from oransim.cli import main

    for var in (ENV_VAR, *POOL_VARS):  # restored after the test
        monkeypatch.delenv(var, raising=False)
    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch else None
    from simcore.threads import _openblas_calls, thread_counts

    blas_before = {name: get() for name, (get, _set) in _openblas_calls().items()}
    try:
        for _name, (_get, set_threads) in _openblas_calls().items():
            set_threads(2)  # as if the process had started with two
        assert main(["run", QUICK, "--duration", "0.01", "--out", str(tmp_path / "run")]) == 0
        threads = json.loads((tmp_path / "run" / "manifest.json").read_text())["threads"]
        assert threads["requested"] == 1 and set(threads["blas"].values()) == {1}, threads
        assert threads["torch"] in (None, 1)
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"  # inherited by the processes a command starts
        assert thread_counts()["requested"] == 1

        monkeypatch.setenv(ENV_VAR, "two")
        capsys.readouterr()
        assert main(["validate", QUICK]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ENV_VAR in err[0] and "'two'" in err[0]
    finally:
        for name, (_get, set_threads) in _openblas_calls().items():
            set_threads(blas_before.get(name, 1))
        if torch is not None:
            torch.set_num_threads(torch_before)
