"""Run folders: ``manifest.json`` + ``packets.parquet`` + ``tti.parquet`` + ``decisions.parquet``
+ ``ues.parquet``
(+ ``timing.parquet``: wall time of each policy decision, the only table that differs between two
runs of the same scenario and seed).

A run folder is built in a temporary sibling directory and renamed into place only when every
file is complete (``simcore.outputs``), so a failed run never leaves a half-written table, two runs
never silently replace each other, and an existing run folder is replaced only by a complete one.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .outputs import OutputError, check_folder_target, publish_folder, staging_folder

TABLES = ("packets", "tti", "decisions", "timing", "ues")


RunExistsError = OutputError  # the name earlier code caught


# ------------------------------------------------------------------------------- manifest
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("oransim", "simpy", "numpy", "scipy", "pandas", "pyarrow", "pydantic", "torch", "ns3"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_revision() -> str:
    """HEAD of the repository holding this source tree, '+dirty' if it has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if not rev:
            return "unknown"
        # --no-optional-locks: status must not take index.lock (killed at the timeout, it would leave it behind
        # and block the user's next commit)
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------------------------- writing
def _write_table(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def write_run_folder(out_dir: str | Path, manifest: dict, tables: dict[str, pd.DataFrame],
                     overwrite: bool = False, staging: Path | None = None) -> Path:
    """Write a complete run folder atomically, never over anything but an oransim run folder
    (and over one only with ``overwrite``); see ``simcore.outputs``. ``staging``: a folder from
    ``staging_folder(out_dir)`` that already holds some tables (a spooled run's), completed with
    ``tables`` and published; it is gone afterwards either way."""
    target = check_folder_target(out_dir, overwrite)
    try:
        if staging is None:
            staging = staging_folder(target)
        for name, df in tables.items():
            _write_table(df, staging / f"{name}.parquet")
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return publish_folder(target, staging, manifest, overwrite=overwrite)
