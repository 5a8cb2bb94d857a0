"""The ``oransim`` command line called from tests: in this process (``cli``; no interpreter start-up,
numpy/torch/numba already loaded) or as a real ``python -m oransim`` process (``cli_process``: for
what only a process shows, such as the exit code reaching the shell)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, cwd=None) -> SimpleNamespace:
    """Run ``oransim ARGS`` in this process: ``.returncode``, ``.stdout``, ``.stderr`` as a process
    would give them. An exception the command did not turn into an exit code is raised here."""
    from typer.testing import CliRunner

    from oransim.cli import app

    here = os.getcwd()
    os.chdir(cwd or ROOT)
    try:
        res = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(here)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return SimpleNamespace(returncode=res.exit_code, stdout=res.stdout, stderr=res.stderr)


def cli_process(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run ``python -m oransim ARGS`` as a child process."""
    return subprocess.run([sys.executable, "-m", "oransim", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=600)
