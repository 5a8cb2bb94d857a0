"""What a run records, chunk by chunk: packets, per-TTI state, decisions, and the UE drop.

Records are never allocated for the whole run up front. Each recorder fills a chunk of rows
(``TTI_CHUNK`` TTIs, ``DECISION_CHUNK`` decisions, finished packets in batches) and hands the
chunk, as a pandas frame, to a ``TableSink``: kept in memory (``simulate()`` from Python), or
appended as a row group to a Parquet file in the run's staging folder (``oransim run``), so an
hour-long run holds only the chunks being filled and the packets still in flight.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .buffers import DELIVERED, DROP_REASON_NAMES, DROPPED, PROCESSING, QUEUED, STATUS_NAMES, PacketTable
from .decision_fast import record_decision

#: TTIs per chunk of per-TTI records (fewer with many UEs: at most ~256k (TTI, UE) rows per chunk).
TTI_CHUNK = 1024
#: Decisions per chunk of the decisions and timing tables.
DECISION_CHUNK = 4096
_I64, _F64 = np.dtype(np.int64), np.dtype(np.float64)
#: Finished packets written out at a time.
PACKET_CHUNK = 65536


class TableSink:
    """One output table, appended chunk by chunk: in memory, or to a Parquet file at ``path``."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.rows = 0
        self._chunks: list[pd.DataFrame] = []
        self._writer: pq.ParquetWriter | None = None
        self._closed = False

    def append(self, df: pd.DataFrame) -> None:
        if self.path is None:
            self._chunks.append(df)
        else:
            table = pa.Table.from_pandas(df, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            self._writer.write_table(table)
        self.rows += len(df)

    def close(self, empty: pd.DataFrame) -> None:
        """Finish the table; ``empty`` (no rows) gives the columns of a table that got no chunk."""
        if self._closed:
            return
        if not self._chunks and self._writer is None:
            self.append(empty)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._closed = True

    def abort(self) -> None:
        """Close the file without finishing the table (the run failed)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def frame(self) -> pd.DataFrame:
        """The whole table (read back from the file when spooled)."""
        if self.path is not None:
            return pd.read_parquet(self.path)
        if len(self._chunks) == 1:
            return self._chunks[0]
        return pd.concat(self._chunks, ignore_index=True)


# ------------------------------------------------------------------------------ per-TTI records
class TtiRecorder:
    """Per TTI: served bits and buffer per UE (T, U), and the raw PRB state (T, R, K) from which the
    per-UE PRB count, mean SINR and power are aggregated, one chunk of TTIs at a time."""

    def __init__(self, n_ues: int, n_rus: int, n_prbs: int, enabled: bool, tti_s: float, sink: TableSink):
        self.enabled, self.sink, self.tti_s = enabled, sink, tti_s
        self.n_ues, self.n_rus, self.n_prbs = n_ues, n_rus, n_prbs
        self.chunk = max(1, min(TTI_CHUNK, (1 << 18) // max(n_ues, 1)))
        self.k0 = 0  # first TTI of the chunk being filled
        self.n = 0  # TTIs recorded
        self._new_chunk()

    def _new_chunk(self) -> None:
        c = self.chunk if self.enabled else 0
        # per dtype one array, the columns its views (a compiled caller takes three arrays, not five)
        self.ue_f64 = np.zeros((2, c, self.n_ues))
        self.served_bits, self.buffer_bits = self.ue_f64
        self.prb_owner = np.full((c, self.n_rus, self.n_prbs), -1, dtype=np.int32)
        self.prb_f32 = np.zeros((2, c, self.n_rus, self.n_prbs), dtype=np.float32)
        self.prb_sinr, self.prb_power_w = self.prb_f32

    def row(self, k: int) -> int:
        """Row of TTI ``k`` in the chunk's arrays, for a caller that fills it itself (the engine's
        compiled end of TTI, ``simcore.tti_fast.finish``), then calls ``filled(k)``; -1 when off."""
        return k - self.k0 if self.enabled else -1

    def filled(self, k: int) -> None:
        """TTI ``k``'s row (``row(k)``) has been written."""
        if self.enabled:
            self.n = k + 1
            if k + 1 - self.k0 == self.chunk:
                self.flush()

    def flush(self) -> None:
        n = self.n - self.k0
        if n <= 0:
            return
        self.sink.append(self._frame(n))
        self.k0 = self.n
        self._new_chunk()

    def _frame(self, n: int) -> pd.DataFrame:
        n_ues = self.n_ues
        owner = self.prb_owner[:n]
        active = owner >= 0
        key = (np.arange(n)[:, None, None] * n_ues + owner)[active]
        size = n * n_ues
        prbs = np.bincount(key, minlength=size)
        with np.errstate(divide="ignore", invalid="ignore"):
            sinr_sum = np.bincount(key, weights=10 * np.log10(self.prb_sinr[:n][active].astype(float)), minlength=size)
            sinr_db = np.where(prbs > 0, sinr_sum / np.maximum(prbs, 1), np.nan)
        power = np.bincount(key, weights=self.prb_power_w[:n][active].astype(float), minlength=size)
        tti = np.repeat(np.arange(self.k0, self.k0 + n, dtype=np.int32), n_ues)
        return pd.DataFrame({
            "tti": tti,
            "time_s": tti * self.tti_s,
            "ue": np.tile(np.arange(n_ues, dtype=np.int32), n),
            "served_bits": self.served_bits[:n].ravel(),
            "prbs": prbs.astype(np.int16),
            "sinr_db": sinr_db.astype(np.float32),
            "power_w": power.astype(np.float32),
            "buffer_bits": self.buffer_bits[:n].ravel(),
        })

    def close(self) -> None:
        self.flush()
        self.sink.close(self._frame(0))


# ---------------------------------------------------------------------------------- decisions
class DecisionRecorder:
    """Per decision: TTI, predicted objective, the allocation (association, PRB owners and powers)
    and the policy's wall time, filled into preallocated chunk arrays (no per-decision objects),
    plus the policy's own scalar columns (``Allocation.info[RECORD_KEY]``), which must appear from
    the first decision on when the table is spooled (a Parquet file has one schema)."""

    def __init__(self, n_ues: int, n_rus: int, n_prbs: int, tti_s: float, sink: TableSink, timing: TableSink):
        self.n_ues, self.n_cells, self.tti_s = n_ues, n_rus * n_prbs, tti_s
        self.sink, self.timing = sink, timing
        self.n = 0  # decisions in the chunk being filled
        self.extra_names: list[str] = []  # the policy's own columns, in order of first appearance
        self._new_chunk()

    def _new_chunk(self) -> None:
        c = DECISION_CHUNK
        self.tti = np.zeros(c, dtype=np.int64)
        self.objective = np.zeros(c)
        self.solve_ms = np.zeros(c)
        self.power_w = np.zeros(c)  # total, summed in full precision (the per-PRB powers are float32)
        self.ue_ru = np.zeros((c, self.n_ues), dtype=np.int16)
        self.owner = np.zeros((c, self.n_cells), dtype=np.int16)
        self.power = np.zeros((c, self.n_cells), dtype=np.float32)
        self.extra: dict[str, list] = {name: [] for name in self.extra_names}

    def record(self, k: int, objective_bps: float, solve_ms: float, ue_ru, prb_owner, power_w,
               extra: dict | None = None) -> None:
        i = self.n
        for name, value in (extra or {}).items():
            if name not in self.extra:
                self.extra_names.append(name)
                self.extra[name] = [None] * i
            self.extra[name].append(value)
        for name, values in self.extra.items():
            if len(values) == i:  # absent from this decision
                values.append(None)
        self.tti[i] = k
        self.objective[i] = objective_bps
        self.solve_ms[i] = solve_ms
        if (ue_ru.dtype == _I64 and prb_owner.dtype == _I64 and power_w.dtype == _F64 and ue_ru.shape == (self.n_ues,)
                and prb_owner.size == power_w.size == self.n_cells and prb_owner.flags.c_contiguous
                and power_w.flags.c_contiguous):
            # the same casts and sum in one compiled call (a decision every TTI records every TTI)
            self.power_w[i] = record_decision(i, ue_ru, prb_owner, power_w, self.ue_ru, self.owner, self.power)
        else:
            self.power_w[i] = power_w.sum()
            self.ue_ru[i] = ue_ru
            self.owner[i] = prb_owner.ravel()
            self.power[i] = power_w.ravel()
        self.n = i + 1
        if self.n == DECISION_CHUNK:
            self.flush()

    def commit(self, objective_bps: float, solve_ms: float) -> None:
        """Finish row ``n`` whose TTI, total power and allocation columns a compiled decision wrote
        (``decision_fast.metric_decision``: ``record``'s casts and sum), with no columns of the policy's own."""
        i = self.n
        self.objective[i] = objective_bps
        self.solve_ms[i] = solve_ms
        self.n = i + 1
        if self.n == DECISION_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.n == 0:
            return
        self.sink.append(self._frame(self.n))
        self.timing.append(pd.DataFrame({"tti": self.tti[: self.n], "solve_ms": self.solve_ms[: self.n]}))
        self.n = 0
        self._new_chunk()

    def _frame(self, n: int) -> pd.DataFrame:
        owner, power = self.owner[:n], self.power[:n]
        extra = {name: values[:n] for name, values in self.extra.items()}
        return pd.DataFrame({
            "tti": self.tti[:n], "time_s": self.tti[:n] * self.tti_s, "objective_bps": self.objective[:n],
            "served_ues": (self.ue_ru[:n] >= 0).sum(axis=1), "active_prbs": (owner >= 0).sum(axis=1),
            "power_w": self.power_w[:n],
            "ue_ru": list(self.ue_ru[:n]), "prb_owner": list(owner), "prb_power_w": list(power), **extra,
        })

    def close(self) -> None:
        self.flush()
        self.sink.close(self._frame(0))
        self.timing.close(pd.DataFrame({"tti": np.zeros(0, np.int64), "solve_ms": np.zeros(0)}))


# -------------------------------------------------------------------------------------- packets
class PacketRecorder:
    """Writes finished packets out of the ``PacketTable`` (in id order) and keeps the counts of
    those written, so that the table holds only the packets from the oldest unfinished one on."""

    def __init__(self, pk: PacketTable, ue_slice, slice_names, fh_latency_s: float, enabled: bool, sink: TableSink):
        self.pk, self.enabled, self.sink = pk, enabled, sink
        self.ue_slice, self.slice_names, self.fh_latency_s = ue_slice, slice_names, fh_latency_s
        self.counts = {code: [0, 0.0] for code in range(len(STATUS_NAMES))}  # status -> [packets, bits] written

    def flush(self, upto: int) -> None:
        """Write out packets with id < ``upto`` (all finished), ``PACKET_CHUNK`` at a time, and
        release them from the table."""
        pk = self.pk
        n = upto - pk.base
        if n <= 0:
            return
        status, size = pk.status[:n], pk.size_bits[:n]
        for code in (DELIVERED, DROPPED, QUEUED, PROCESSING):
            m = status == code
            self.counts[code][0] += int(m.sum())
            self.counts[code][1] += float(size[m].sum())
        if self.enabled:
            for lo in range(0, n, PACKET_CHUNK):
                self.sink.append(packets_frame(pk, lo, min(n, lo + PACKET_CHUNK), self.ue_slice, self.slice_names,
                                               self.fh_latency_s))
        pk.release(upto)

    def counts_by_status(self) -> dict[int, tuple[int, float]]:
        """status -> (packets, bits) over every packet ever generated (written out or held)."""
        pk = self.pk
        st, size = pk.view("status"), pk.view("size_bits")
        out = {}
        for code, (n, bits) in self.counts.items():
            m = st == code
            out[code] = (n + int(m.sum()), bits + float(size[m].sum()))
        return out

    def close(self) -> None:
        self.flush(self.pk.n)
        self.sink.close(packets_frame(self.pk, 0, 0, self.ue_slice, self.slice_names, self.fh_latency_s))


def packets_frame(pk: PacketTable, lo: int, hi: int, ue_slice: np.ndarray, slice_names,
                  fh_latency_s: float) -> pd.DataFrame:
    """Rows ``lo`` .. ``hi``-1 held (ids base+lo ..), one per packet, with the delay split into
    components (ms); NaN where not applicable."""
    r = slice(lo, hi)
    ue = pk.ue[r]
    status = pk.status[r]
    arrival, cu, du = pk.arrival_s[r], pk.cu_depart_s[r], pk.du_depart_s[r]
    first_tx, done = pk.first_tx_s[r], pk.done_s[r]
    delivered = status == DELIVERED
    processed = status != PROCESSING
    fh_ms = np.where(delivered, fh_latency_s * 1e3, np.nan)
    tx_end = done - fh_latency_s
    cats = pd.CategoricalDtype(list(slice_names))
    return pd.DataFrame({
        "packet_id": np.arange(pk.base + lo, pk.base + hi, dtype=np.int64),
        "ue": ue.copy(),
        "slice": pd.Categorical.from_codes(ue_slice[ue], dtype=cats),
        "size_bytes": (pk.size_bits[r] / 8).astype(np.int64),
        "arrival_s": arrival.copy(),
        "cu_ms": np.where(processed, (cu - arrival) * 1e3, np.nan),
        "du_ms": np.where(processed, (du - cu) * 1e3, np.nan),
        "queue_ms": np.where(delivered, (first_tx - du) * 1e3, np.nan),
        "tx_ms": np.where(delivered, (tx_end - first_tx) * 1e3, np.nan),
        "fh_ms": fh_ms,
        "delay_ms": np.where(delivered, (done - arrival) * 1e3, np.nan),
        "delivered_s": np.where(delivered, done, np.nan),
        "dropped_s": np.where(status == DROPPED, done, np.nan),
        "drop_reason": pd.Categorical.from_codes(pk.drop_reason[r], categories=list(DROP_REASON_NAMES)),
        "status": pd.Categorical.from_codes(status, categories=list(STATUS_NAMES)),
    })


# ------------------------------------------------------------------------------------ the drop
def ues_frame(geo, channel, serving_ru: np.ndarray, slice_names) -> pd.DataFrame:
    """One row per (UE, RU): the UE's position, slice, home and serving RU, and the link's 2-D
    distance, LOS state, path loss, shadowing and large-scale gain (dB)."""
    n_ues, n_rus = geo.dist2d_m.shape
    ue = np.repeat(np.arange(n_ues, dtype=np.int32), n_rus)
    ru = np.tile(np.arange(n_rus, dtype=np.int32), n_ues)
    pl, sh = channel.pathloss_db.ravel(), channel.shadowing_db.ravel()
    return pd.DataFrame({
        "ue": ue,
        "slice": pd.Categorical.from_codes(geo.ue_slice[ue], dtype=pd.CategoricalDtype(list(slice_names))),
        "x_m": geo.ue_xy_m[ue, 0], "y_m": geo.ue_xy_m[ue, 1],
        "home_ru": geo.ue_home_ru[ue].astype(np.int32),
        "serving_ru": serving_ru[ue].astype(np.int32),
        "ru": ru,
        "distance_m": geo.dist2d_m.ravel(),
        "los": geo.los.ravel(),
        "pathloss_db": pl,
        "shadowing_db": sh,
        "gain_db": -(pl + sh),
    })
