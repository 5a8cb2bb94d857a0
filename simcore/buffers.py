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

    Queued packets are the rows of the packet table with status QUEUED; they all lie in the window
    [q_lo, n_admitted) of the table (arrival order), so each operation is a few numpy calls on
    that window, with no per-packet Python and no copying of queues.
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
        self.q_lo = 0  # every packet before this row has left the buffers (or never entered)
        self.n_admitted = 0  # rows before this one have left CU/DU processing

    @property
    def backlog_bits(self) -> np.ndarray:
        return self.enq_bits - self.out_bits

    @property
    def hol_arrival_s(self) -> np.ndarray:
        """(U,) arrival time of each UE's head-of-line packet; inf if its buffer is empty."""
        w = slice(self.q_lo, self.n_admitted)
        q = self.pk.status[w] == QUEUED
        hol = np.full(self.n_ues, np.inf)
        np.minimum.at(hol, self.pk.ue[w][q], self.pk.arrival_s[w][q])
        return hol

    def queued_mask(self) -> tuple[slice, np.ndarray]:
        w = slice(self.q_lo, self.n_admitted)
        return w, self.pk.status[w] == QUEUED

    def _advance_lo(self) -> None:
        st = self.pk.status[self.q_lo: self.n_admitted]
        q = np.flatnonzero(st == QUEUED)
        self.q_lo += int(q[0]) if q.size else st.size

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
        enq, out, limit = self.enq_bits, self.out_bits, self.limit_bits
        ue = pk.ue[start:end].tolist()
        size = pk.size_bits[start:end].tolist()
        status, offset = pk.status, pk.end_offset
        for i, (u, b) in enumerate(zip(ue, size), start):
            e = enq[u] + b
            if e - out[u] <= limit[u] + _EPS_BITS:
                enq[u] = e
                offset[i] = e
                status[i] = QUEUED
            else:
                status[i] = DROPPED
                pk.drop_reason[i] = DROP_BUFFER_FULL
                pk.done_s[i] = now_s
        if self.q_lo == start:
            self._advance_lo()

    def expire(self, now_s: float) -> None:
        """Drop queued packets older than their slice deadline (slices with ``drop_late``).

        Rows are in arrival order, so per slice the rows that can have expired are those between
        the slice's cursor and the first row with arrival >= now - deadline.
        """
        pk = self.pk
        any_dropped = False
        for sl, cursor in self.expiry_cursor.items():
            horizon = now_s - self.slice_deadline_s[sl]
            cut = cursor + int(np.searchsorted(pk.arrival_s[cursor: self.n_admitted], horizon, side="left"))
            if cut == cursor:
                continue
            self.expiry_cursor[sl] = cut
            rows = np.arange(cursor, cut)
            rows = rows[(pk.status[cursor:cut] == QUEUED) & (self.ue_slice[pk.ue[cursor:cut]] == sl)]
            if rows.size == 0:
                continue
            # bits of a dropped packet leave the buffer, including any part already sent
            np.maximum.at(self.out_bits, pk.ue[rows], pk.end_offset[rows])
            pk.status[rows] = DROPPED
            pk.drop_reason[rows] = DROP_DEADLINE
            pk.done_s[rows] = now_s
            any_dropped = True
        if any_dropped:
            self._advance_lo()

    def serve(self, capacity_bits: np.ndarray, now_s: float, delivered_at_s: float) -> np.ndarray:
        """Serve up to ``capacity_bits`` (U,) from each FIFO in this TTI; returns bits served (U,)."""
        served = np.minimum(capacity_bits, np.maximum(self.enq_bits - self.out_bits, 0.0))
        if not served.any():
            return served
        self.out_bits += served
        pk = self.pk
        w, q = self.queued_mask()
        out = self.out_bits[pk.ue[w]]
        end = pk.end_offset[w]
        first = pk.first_tx_s[w]
        started = q & (end - pk.size_bits[w] < out) & np.isnan(first)
        first[started] = now_s
        done = q & (end <= out + _EPS_BITS)
        if done.any():
            pk.status[w][done] = DELIVERED
            pk.done_s[w][done] = delivered_at_s
            emptied = served > 0
            emptied[pk.ue[w][q & ~done]] = False
            # an emptied buffer: absorb the float residue of the bit counters
            self.out_bits[emptied] = self.enq_bits[emptied]
            self._advance_lo()
        return served
