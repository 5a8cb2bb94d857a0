"""What a run will need before it starts: memory and disk, estimated from the scenario alone.

``oransim validate`` and ``oransim run`` (and ``evaluate`` for its sampling runs) refuse a
scenario whose estimate does not fit, naming the fields that drive it, instead of dying hours
later in ``MemoryError`` or on a full disk. Each term is a count the scenario fixes (TTIs, UEs,
PRBs, mean packet arrivals) times bytes per item, set from the engine's arrays and checked against
measured peak memory by ``benchmarks/bench_memory.py``:

- per-TTI records (``record.tti``): one chunk of them (``simcore.records``: the run writes them
  out chunk by chunk), served bits and buffer per UE, PRB owner/SINR/power per RU and PRB, and the
  chunk's table with its Arrow copy;
- packets: the ``PacketTable`` holds the packets from the oldest one still queued on (finished
  ones are written out in chunks); at worst, if one packet stays queued the whole run, every
  packet's row, so the term counts a row per arrival;
- channel: fading state and gains per (UE, RU, PRB) plus the observation's copies at a decision;
- fading trajectories: the fading of every allocated PRB drawn for a whole decision period at once;
- decisions: one chunk of rows with the allocation's arrays.

The figures hold for ``oransim run``, which spools the tables to the run folder's staging folder;
``simulate()`` without ``spool_dir`` keeps every table in memory as frames (for short runs).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .records import DECISION_CHUNK, TTI_CHUNK
from .scenario import Scenario

#: Bytes per (TTI, UE) row of the tti records: recorder (16), table (42), its build and Arrow copy.
TTI_UE_BYTES = 120
#: Bytes per (TTI, RU, PRB): owner, SINR and power while running (12) plus the aggregation's temporaries.
TTI_PRB_BYTES = 40
#: Bytes per packet held: table row (~100) with growth headroom; FIFO lists are trimmed and finished
#: packets written out in chunks (typically only the packets in flight are held: this is the worst case).
PACKET_BYTES = 200
#: Bytes per (UE, RU, PRB): fading state and gains (24), the observation's copies and a policy's work arrays.
CHANNEL_BYTES = 120
#: Bytes per pre-drawn (TTI, PRB, RU) fading entry of an allocation (draws, AR(1) filter, gains).
TRAJECTORY_BYTES = 64
#: Bytes per decision besides its arrays (a dict and numpy headers).
DECISION_BYTES = 1000
#: Python, numpy, pandas, pyarrow and the engine before any of the above.
BASELINE_BYTES = 250 << 20
#: Bytes on disk per packet row and per (TTI, UE) row of the zstd Parquet tables (measured, rounded up).
DISK_PACKET_BYTES = 25
DISK_TTI_UE_BYTES = 7


@dataclass
class Term:
    what: str
    nbytes: float
    fields: str  # the scenario fields that drive it, as the user writes them


@dataclass
class Estimate:
    memory: list[Term] = field(default_factory=list)
    disk_bytes: float = 0.0
    packets: float = 0.0

    @property
    def memory_bytes(self) -> float:
        return BASELINE_BYTES + sum(t.nbytes for t in self.memory)


def estimate(s: Scenario, decision_period_tti: int | None = None) -> Estimate:
    """Peak memory terms and output size of running ``s`` (decisions every ``decision_period_tti``
    TTIs; default the scenario's ``scheduling.interval_tti``)."""
    period = min(decision_period_tti or s.scheduling.interval_tti, s.n_tti)
    n_tti, u, r, k = s.n_tti, s.n_ues, s.n_ru, s.cell.prbs_per_ru
    sim_s = n_tti * s.cell.tti_s
    est = Estimate()
    if s.record.tti:
        chunk = min(n_tti, max(1, min(TTI_CHUNK, (1 << 18) // max(u, 1))))  # as TtiRecorder
        est.memory.append(Term("per-TTI records", chunk * (u * TTI_UE_BYTES + r * k * TTI_PRB_BYTES),
                               "duration_s, cell.numerology, slices[*].ues, cell.prbs_per_ru, record.tti"))
        est.disk_bytes += n_tti * u * DISK_TTI_UE_BYTES
    per_slice = [(sl.traffic.packets_per_s * sl.ues * r * sim_s, i) for i, sl in enumerate(s.slices)]
    est.packets = sum(n for n, _ in per_slice)
    if est.packets:
        n, i = max(per_slice)
        drivers = ", ".join(f"slices[{i}].traffic.{f}" for f in s.slices[i].traffic.RATE_FIELDS)
        est.memory.append(Term("packets", est.packets * PACKET_BYTES,
                               f"{drivers}, slices[{i}].ues, duration_s"))
        est.disk_bytes += est.packets * DISK_PACKET_BYTES * s.record.packets
    est.memory.append(Term("channel state", u * r * k * CHANNEL_BYTES, "slices[*].ues, cell.rus, cell.prbs_per_ru"))
    est.memory.append(Term("fading trajectories", period * r * k * r * TRAJECTORY_BYTES,
                           "scheduling.interval_tti, policy.params.period_tti, cell.rus, cell.prbs_per_ru"))
    n_dec = math.ceil(n_tti / period)
    est.memory.append(Term("decisions", min(n_dec, DECISION_CHUNK) * (DECISION_BYTES + 2 * (2 * u + 6 * r * k)),
                           "duration_s, scheduling.interval_tti, cell.prbs_per_ru"))
    return est


def memory_available_bytes() -> float | None:
    """Memory this process may still use: MemAvailable, capped by a cgroup limit if there is one."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 1 << 60:
                limits.append(int(limit) - int(Path(usage_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    if not limits and hasattr(os, "sysconf"):
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError):
            pass
    return float(min(limits)) if limits else None


def gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"


def memory_problems(s: Scenario, decision_period_tti: int | None = None,
                    available: float | None = None) -> list[tuple[str, str]]:
    """``[(field, message)]`` if the run's estimated peak memory exceeds what is available."""
    est = estimate(s, decision_period_tti)
    avail = memory_available_bytes() if available is None else available
    if avail is None or est.memory_bytes <= avail:
        return []
    terms = sorted(est.memory, key=lambda t: -t.nbytes)
    top = terms[0]
    shown = "; ".join(f"{t.what} {gib(t.nbytes)} ({t.fields})" for t in terms if t.nbytes >= 0.05 * est.memory_bytes)
    return [(top.fields.split(",")[0].strip(),
             f"the run needs about {gib(est.memory_bytes)} of memory, more than the {gib(avail)} available: {shown}")]
