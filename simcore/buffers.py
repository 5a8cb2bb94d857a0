"""Packets and the per-UE FIFO buffers at the DU.

Every packet lives in one ``PacketTable`` row from its arrival to the end of the run, so
conservation is a count over one table: generated = delivered + dropped + queued + processing.

Each UE buffer is a FIFO served by bit counters: ``enq_bits[u]`` counts the bits ever admitted,
``out_bits[u]`` the bits ever removed (served or dropped). A packet occupies
[end_offset - size, end_offset) of its UE's admitted bits, so it is delivered in the TTI in which
``out_bits`` reaches its ``end_offset``. The queued packets of all UEs are kept as one set of
arrays in arrival order (the CU/DU FIFOs keep that order), which makes every buffer operation a
handful of numpy calls per TTI whatever the number of packets. Deadline drops remove packets from
a UE's head only: exact, because all packets of a UE share its slice's deadline.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

# status codes
PROCESSING, QUEUED, DELIVERED, DROPPED = 0, 1, 2, 3
STATUS_NAMES = ("processing", "queued", "delivered", "dropped")
# drop reasons
NO_DROP, DROP_DEADLINE, DROP_BUFFER_FULL = 0, 1, 2
DROP_REASON_NAMES = ("", "deadline", "buffer_full")

_EPS_BITS = 1e-6


class PacketTable:
    """Growable struct-of-arrays, one row per packet, in order of arrival at the CU."""

    _FIELDS = {
        "ue": np.int64, "size_bits": np.float64, "arrival_s": np.float64, "cu_depart_s": np.float64,
        "du_depart_s": np.float64, "first_tx_s": np.float64, "done_s": np.float64,
        "status": np.int8, "drop_reason": np.int8, "end_offset": np.float64,
    }

    def __init__(self, capacity: int = 4096):
        self.n = 0
        self._cap = capacity
        for name, dt in self._FIELDS.items():
            setattr(self, name, np.zeros(capacity, dtype=dt))

    def _grow(self, need: int) -> None:
        cap = self._cap
        while cap < need:
            cap *= 2
        for name in self._FIELDS:
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        self._cap = cap

    def add(self, ue, size_bits, arrival_s, cu_depart_s, du_depart_s) -> None:
        m = ue.size
        if m == 0:
            return
        if self.n + m > self._cap:
            self._grow(self.n + m)
        sl = slice(self.n, self.n + m)
        self.ue[sl] = ue
        self.size_bits[sl] = size_bits
        self.arrival_s[sl] = arrival_s
        self.cu_depart_s[sl] = cu_depart_s
        self.du_depart_s[sl] = du_depart_s
        self.first_tx_s[sl] = np.nan
        self.done_s[sl] = np.nan
        self.status[sl] = PROCESSING
        self.drop_reason[sl] = NO_DROP
        self.n += m

    def view(self, name: str) -> np.ndarray:
        return getattr(self, name)[: self.n]


class UeBuffers:
    """The DU-side FIFO buffers of all UEs.

    Per UE: the table rows it ever admitted (``rows[u]``), their end offsets (``ends[u]``, strictly
    increasing) and the index of its head packet (``head[u]``). Serving a UE is one ``bisect`` of
    its bit counter into ``ends[u]``, so a TTI costs O(UEs served), whatever the queue lengths.
    """

    def __init__(self, n_ues: int, buffer_limit_bits: np.ndarray, ue_slice: np.ndarray,
                 slice_deadline_s: np.ndarray, slice_drop_late: np.ndarray, packets: PacketTable):
        self.pk = packets
        self.n_ues = n_ues
        self.limit_bits = buffer_limit_bits
        self.ue_slice = ue_slice
        self.slice_deadline_s = slice_deadline_s
        # per slice that drops late packets: first table row not yet checked for expiry
        self.expiry_cursor = {int(s): 0 for s in np.flatnonzero(slice_drop_late)}
        self.enq_bits = np.zeros(n_ues)
        self.out_bits = np.zeros(n_ues)
        self.rows: list[list[int]] = [[] for _ in range(n_ues)]
        self.ends: list[list[float]] = [[] for _ in range(n_ues)]
        self.head = np.zeros(n_ues, dtype=np.int64)
        self.pos = np.zeros(0, dtype=np.int64)  # per table row: its index in rows[ue]
        self.n_admitted = 0  # rows before this one have left CU/DU processing

    @property
    def backlog_bits(self) -> np.ndarray:
        return self.enq_bits - self.out_bits

    @property
    def hol_arrival_s(self) -> np.ndarray:
        """(U,) arrival time of each UE's head-of-line packet; inf if its buffer is empty."""
        hol = np.full(self.n_ues, np.inf)
        for u, (rows, h) in enumerate(zip(self.rows, self.head.tolist())):
            if h < len(rows):
                hol[u] = self.pk.arrival_s[rows[h]]
        return hol

    # ------------------------------------------------------------------------- operations
    def admit_ready(self, now_s: float) -> None:
        """Move packets that finished DU processing by ``now_s`` into their UE buffer (tail drop)."""
        pk = self.pk
        # DU departures are non-decreasing (FIFO server), so the ready packets are a prefix.
        start = self.n_admitted
        end = start + int(np.searchsorted(pk.du_depart_s[start: pk.n], now_s, side="right"))
        if end == start:
            return
        self.n_admitted = end
        if self.pos.size < pk.n:
            self.pos = np.concatenate([self.pos, np.zeros(max(pk.n, 2 * self.pos.size) - self.pos.size, np.int64)])
        enq, out, limit = self.enq_bits, self.out_bits, self.limit_bits
        status, offset, pos = pk.status, pk.end_offset, self.pos
        for i, (u, b) in enumerate(zip(pk.ue[start:end].tolist(), pk.size_bits[start:end].tolist()), start):
            e = enq[u] + b
            if e - out[u] <= limit[u] + _EPS_BITS:
                enq[u] = e
                offset[i] = e
                status[i] = QUEUED
                pos[i] = len(self.rows[u])
                self.rows[u].append(i)
                self.ends[u].append(e)
            else:
                status[i] = DROPPED
                pk.drop_reason[i] = DROP_BUFFER_FULL
                pk.done_s[i] = now_s

    def expire(self, now_s: float) -> None:
        """Drop queued packets older than their slice deadline (slices with ``drop_late``).

        Rows are in arrival order, so per slice the rows that can have expired are those between
        the slice's cursor and the first row with arrival >= now - deadline; each is at the head
        of its UE's FIFO (a UE's packets share one deadline).
        """
        pk = self.pk
        arrival = pk.arrival_s
        for sl, cursor in self.expiry_cursor.items():
            horizon = now_s - self.slice_deadline_s[sl]
            if cursor >= self.n_admitted or arrival[cursor] >= horizon:
                continue
            cut = cursor + int(np.searchsorted(pk.arrival_s[cursor: self.n_admitted], horizon, side="left"))
            if cut == cursor:
                continue
            self.expiry_cursor[sl] = cut
            queued = pk.status[cursor:cut] == QUEUED
            if not queued.any():
                continue
            rows = np.flatnonzero(queued & (self.ue_slice[pk.ue[cursor:cut]] == sl)) + cursor
            if rows.size == 0:
                continue
            ue = pk.ue[rows]
            # bits of a dropped packet leave the buffer, including any part already sent
            np.maximum.at(self.out_bits, ue, pk.end_offset[rows])
            np.maximum.at(self.head, ue, self.pos[rows] + 1)
            pk.status[rows] = DROPPED
            pk.drop_reason[rows] = DROP_DEADLINE
            pk.done_s[rows] = now_s

    def serve(self, capacity_bits: np.ndarray, now_s: float, delivered_at_s: float) -> np.ndarray:
        """Serve up to ``capacity_bits`` (U,) from each FIFO in this TTI; returns bits served (U,)."""
        served = np.minimum(capacity_bits, np.maximum(self.enq_bits - self.out_bits, 0.0))
        active = np.flatnonzero(served > 0)
        if active.size == 0:
            return served
        self.out_bits += served
        head, out_bits, enq_bits, pk = self.head, self.out_bits, self.enq_bits, self.pk
        delivered: list[int] = []
        touched: list[int] = []  # rows that got bits this TTI (first transmission if not yet set)
        for u in active.tolist():
            rows, ends, h = self.rows[u], self.ends[u], int(head[u])
            out = out_bits[u]
            new_h = bisect_right(ends, out + _EPS_BITS, h)
            delivered.extend(rows[h:new_h])
            touched.extend(rows[h:new_h])
            head[u] = new_h
            if new_h == len(rows):
                out_bits[u] = enq_bits[u]  # emptied: absorb the float residue of the bit counters
            elif ends[new_h] - pk.size_bits[rows[new_h]] < out - _EPS_BITS:
                touched.append(rows[new_h])  # the new head got its first bits
        touched_rows = np.array(touched, dtype=np.int64)
        first = pk.first_tx_s[touched_rows]
        pk.first_tx_s[touched_rows] = np.where(np.isnan(first), now_s, first)
        if delivered:
            d = np.array(delivered, dtype=np.int64)
            pk.status[d] = DELIVERED
            pk.done_s[d] = delivered_at_s
        return served
