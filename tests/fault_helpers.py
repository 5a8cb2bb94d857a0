"""Helpers of the fault battery and the schema fuzz test: a small scenario, the CLI run in-process,
and the checks every fault case ends with (no traceback, no file lost, no temporary left)."""

from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

#: A cell small enough that `run` takes well under a second, with every traffic model in it.
SMALL = {
    "name": "small",
    "seed": 3,
    "duration_s": 0.02,
    "cell": {"numerology": 0, "prbs_per_ru": 6, "rus": [{"x_m": 0.0, "y_m": 0.0}]},
    "slices": [
        {"name": "embb", "ues": 2, "traffic": {"model": "poisson", "rate_mbps": 1.0, "packet_bytes": 1500}},
        {"name": "urllc", "ues": 2, "max_delay_ms": 5.0, "drop_late": True, "rate_model": "fbl",
         "traffic": {"model": "sporadic", "rate_pps": 200.0, "packet_bytes": 32}},
        {"name": "mmtc", "ues": 2, "traffic": {"model": "periodic", "period_ms": 5.0, "packet_bytes": 20}},
        {"name": "bulk", "ues": 1, "traffic": {"model": "ftp", "file_rate_hz": 50.0, "file_kbytes": 10.0}},
    ],
    "policy": {"name": "pf"},
}

#: Names that only temporary files and probes carry.
TEMP_MARKS = (".tmp-", ".oransim-probe-", "oransim-ns3-")


def set_path(data: dict, path: str, value) -> dict:
    """Set ``a.b[2].c`` (dots and [i]) in a nested dict/list, creating dicts on the way."""
    parts = path.replace("[", ".").replace("]", "").split(".")
    node = data
    for part, nxt in zip(parts, parts[1:]):
        key = int(part) if part.isdigit() else part
        if isinstance(node, dict) and key not in node:
            node[key] = {}
        node = node[key]
    last = parts[-1]
    node[int(last) if last.isdigit() else last] = value
    return data


def scenario_text(changes: dict | None = None, base: dict = SMALL) -> str:
    data = copy.deepcopy(base)
    for path, value in (changes or {}).items():
        set_path(data, path, value)
    return yaml.safe_dump(data, sort_keys=False)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


def invoke(capsys, *args) -> Result:
    """``oransim ARGS`` in this process (the script's own ``main``), with its exit code and output."""
    from oransim.cli import main
    from simcore import outputs

    capsys.readouterr()
    outputs.published.clear()
    code = main([str(a) for a in args])
    got = capsys.readouterr()
    return Result(code, got.out, got.err)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> content hash); folders as 'dir'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = "link" if os.path.islink(p) else hashlib.sha1(Path(p).read_bytes()).hexdigest()
    return out


def temporaries(root: Path) -> list[str]:
    return [p for p in snapshot(root) if any(m in p for m in TEMP_MARKS)]


def assert_clean_failure(res: Result, code: int, expect: str, n_lines: int = 1) -> None:
    """Exit ``code``, ``n_lines`` stderr lines, one of which holds ``expect``; no traceback, no bug line."""
    assert res.code == code, (res.code, res.err)
    assert "Traceback" not in res.err and "internal error" not in res.err, res.err
    assert len(res.lines) == n_lines, res.err
    assert any(expect in ln for ln in res.lines), (expect, res.err)


def assert_conserved_folder(folder: Path) -> None:
    """The run folder's manifest counts add up, and agree with its packets table when it has rows."""
    import json

    import pandas as pd

    c = json.loads((folder / "manifest.json").read_text())["counts"]
    parts = ("delivered", "dropped", "queued", "processing")
    assert c["generated_packets"] == sum(c[f"{p}_packets"] for p in parts)
    assert abs(c["generated_bits"] - sum(c[f"{p}_bits"] for p in parts)) <= 1e-6 * max(1.0, c["generated_bits"])
    pk = pd.read_parquet(folder / "packets.parquet")
    if len(pk):
        assert len(pk) == c["generated_packets"]
        for p in parts:
            assert int((pk["status"] == p).sum()) == c[f"{p}_packets"]
