"""Run folders: ``manifest.json`` + ``packets.parquet`` + ``tti.parquet`` + ``decisions.parquet``
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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .buffers import DROP_REASON_NAMES, STATUS_NAMES, PacketTable
from .outputs import OutputError, check_folder_target, publish_folder, staging_folder

TABLES = ("packets", "tti", "decisions", "timing")


RunExistsError = OutputError  # the name earlier code caught


class TtiRecorder:
    """Per TTI: served bits and buffer per UE (T, U), and the raw PRB state (T, R, K) from which
    the per-UE PRB count, mean SINR and power are aggregated once, at the end."""

    def __init__(self, n_tti: int, n_ues: int, n_rus: int, n_prbs: int, enabled: bool):
        self.enabled = enabled
        t = n_tti if enabled else 0
        self.n_ues = n_ues
        self.served_bits = np.zeros((t, n_ues))
        self.buffer_bits = np.zeros((t, n_ues))
        self.prb_owner = np.full((t, n_rus, n_prbs), -1, dtype=np.int32)
        self.prb_sinr = np.zeros((t, n_rus, n_prbs), dtype=np.float32)
        self.prb_power_w = np.zeros((t, n_rus, n_prbs), dtype=np.float32)
        self.n = 0

    def record(self, k, served, buffer_bits, prb_owner, prb_sinr, prb_power_w) -> None:
        if not self.enabled:
            return
        self.served_bits[k] = served
        self.buffer_bits[k] = buffer_bits
        self.prb_owner[k] = prb_owner
        self.prb_sinr[k] = prb_sinr
        self.prb_power_w[k] = prb_power_w
        self.n = k + 1

    def frame(self, tti_s: float) -> pd.DataFrame:
        n, n_ues = self.n, self.n_ues
        owner = self.prb_owner[:n]
        active = owner >= 0
        key = (np.arange(n)[:, None, None] * n_ues + owner)[active]
        size = n * n_ues
        prbs = np.bincount(key, minlength=size)
        with np.errstate(divide="ignore", invalid="ignore"):
            sinr_sum = np.bincount(key, weights=10 * np.log10(self.prb_sinr[:n][active].astype(float)), minlength=size)
            sinr_db = np.where(prbs > 0, sinr_sum / np.maximum(prbs, 1), np.nan)
        power = np.bincount(key, weights=self.prb_power_w[:n][active].astype(float), minlength=size)
        tti = np.repeat(np.arange(n, dtype=np.int32), n_ues)
        return pd.DataFrame({
            "tti": tti,
            "time_s": tti * tti_s,
            "ue": np.tile(np.arange(n_ues, dtype=np.int32), n),
            "served_bits": self.served_bits[:n].ravel(),
            "prbs": prbs.astype(np.int16),
            "sinr_db": sinr_db.astype(np.float32),
            "power_w": power.astype(np.float32),
            "buffer_bits": self.buffer_bits[:n].ravel(),
        })


def packets_frame(pk: PacketTable, ue_slice: np.ndarray, slice_names, fh_latency_s: float) -> pd.DataFrame:
    """One row per packet with its delay split into components (ms); NaN where not applicable."""
    ue = pk.view("ue")
    status = pk.view("status")
    arrival, cu, du = pk.view("arrival_s"), pk.view("cu_depart_s"), pk.view("du_depart_s")
    first_tx, done = pk.view("first_tx_s"), pk.view("done_s")
    delivered = status == 2
    processed = status != 0
    fh_ms = np.where(delivered, fh_latency_s * 1e3, np.nan)
    tx_end = done - fh_latency_s
    cats = pd.CategoricalDtype(list(slice_names))
    return pd.DataFrame({
        "packet_id": np.arange(pk.n, dtype=np.int64),
        "ue": ue,
        "slice": pd.Categorical.from_codes(ue_slice[ue], dtype=cats),
        "size_bytes": (pk.view("size_bits") / 8).astype(np.int64),
        "arrival_s": arrival,
        "cu_ms": np.where(processed, (cu - arrival) * 1e3, np.nan),
        "du_ms": np.where(processed, (du - cu) * 1e3, np.nan),
        "queue_ms": np.where(delivered, (first_tx - du) * 1e3, np.nan),
        "tx_ms": np.where(delivered, (tx_end - first_tx) * 1e3, np.nan),
        "fh_ms": fh_ms,
        "delay_ms": np.where(delivered, (done - arrival) * 1e3, np.nan),
        "delivered_s": np.where(delivered, done, np.nan),
        "dropped_s": np.where(status == 3, done, np.nan),
        "drop_reason": pd.Categorical.from_codes(pk.view("drop_reason"), categories=list(DROP_REASON_NAMES)),
        "status": pd.Categorical.from_codes(status, categories=list(STATUS_NAMES)),
    })


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
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------------------------- writing
def _write_table(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def write_run_folder(out_dir: str | Path, manifest: dict, tables: dict[str, pd.DataFrame],
                     overwrite: bool = False) -> Path:
    """Write a complete run folder atomically, never over anything but an oransim run folder
    (and over one only with ``overwrite``); see ``simcore.outputs``."""
    target = check_folder_target(out_dir, overwrite)
    staging = None
    try:
        staging = staging_folder(target)
        for name, df in tables.items():
            _write_table(df, staging / f"{name}.parquet")
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return publish_folder(target, staging, manifest, overwrite=overwrite)
