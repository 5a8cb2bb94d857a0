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
    """The DU-side FIFO buffers of all UEs."""

    def __init__(self, n_ues: int, buffer_limit_bits: np.ndarray, deadline_s: np.ndarray,
                 drop_late: np.ndarray, packets: PacketTable):
        self.pk = packets
        self.n_ues = n_ues
        self.limit_bits = buffer_limit_bits
        self.deadline_s = deadline_s
        self.drop_late = drop_late
        self.any_drop_late = bool(drop_late.any())
        self.enq_bits = np.zeros(n_ues)
        self.out_bits = np.zeros(n_ues)
        self.hol_arrival_s = np.full(n_ues, np.inf)  # arrival time of each UE's head packet; inf if empty
        # queued packets, all UEs, arrival order: id, UE, start/end offsets, arrival, first transmission
        self.q_id = np.zeros(0, dtype=np.int64)
        self.q_ue = np.zeros(0, dtype=np.int64)
        self.q_start = np.zeros(0)
        self.q_end = np.zeros(0)
        self.q_arrival = np.zeros(0)
        self.q_first_tx = np.zeros(0)
        self._next_admit = 0  # packets before this index have left CU/DU processing

    @property
    def backlog_bits(self) -> np.ndarray:
        return self.enq_bits - self.out_bits

    # ----------------------------------------------------------------------------- helpers
    def _keep(self, keep: np.ndarray) -> None:
        for name in ("q_id", "q_ue", "q_start", "q_end", "q_arrival", "q_first_tx"):
            setattr(self, name, getattr(self, name)[keep])
        self._refresh_hol()

    def _refresh_hol(self) -> None:
        self.hol_arrival_s.fill(np.inf)
        if self.q_ue.size:
            np.minimum.at(self.hol_arrival_s, self.q_ue, self.q_arrival)

    def _leave(self, mask: np.ndarray, status: int, reason: int, t_s: float) -> None:
        """Mark the queued packets under ``mask`` as gone and drop them from the queue arrays."""
        ids = self.q_id[mask]
        pk = self.pk
        pk.status[ids] = status
        pk.drop_reason[ids] = reason
        pk.done_s[ids] = t_s
        pk.first_tx_s[ids] = self.q_first_tx[mask]
        self._keep(~mask)

    # ------------------------------------------------------------------------- operations
    def admit_ready(self, now_s: float) -> None:
        """Move packets that finished DU processing by ``now_s`` into their UE buffer (tail drop)."""
        pk = self.pk
        # DU departures are non-decreasing (FIFO server), so the ready packets are a prefix.
        start = self._next_admit
        end = start + int(np.searchsorted(pk.du_depart_s[start: pk.n], now_s, side="right"))
        if end == start:
            return
        self._next_admit = end
        ids = np.arange(start, end)
        ue = pk.ue[start:end]
        size = pk.size_bits[start:end]
        # end offset of each packet if all are admitted: per-UE running sum in arrival order
        order = np.argsort(ue, kind="stable")
        ue_s, size_s = ue[order], size[order]
        csum = np.cumsum(size_s)
        first = np.r_[True, ue_s[1:] != ue_s[:-1]]
        base = np.maximum.accumulate(np.where(first, csum - size_s, 0.0))
        end_s = self.enq_bits[ue_s] + (csum - base)
        fits = end_s - self.out_bits[ue_s] <= self.limit_bits[ue_s] + _EPS_BITS
        if fits.all():
            ok = np.ones(ids.size, dtype=bool)
            offs = np.empty(ids.size)
            offs[order] = end_s
            self.enq_bits += np.bincount(ue, weights=size, minlength=self.n_ues)
        else:  # some buffer overflows: decide packet by packet, in arrival order
            ok = np.empty(ids.size, dtype=bool)
            offs = np.zeros(ids.size)
            for i in range(ids.size):
                u = ue[i]
                if self.enq_bits[u] - self.out_bits[u] + size[i] <= self.limit_bits[u] + _EPS_BITS:
                    self.enq_bits[u] += size[i]
                    offs[i] = self.enq_bits[u]
                    ok[i] = True
                else:
                    ok[i] = False
        rejected = ids[~ok]
        pk.status[rejected] = DROPPED
        pk.drop_reason[rejected] = DROP_BUFFER_FULL
        pk.done_s[rejected] = now_s
        acc = ids[ok]
        pk.status[acc] = QUEUED
        pk.end_offset[acc] = offs[ok]
        self.q_id = np.concatenate([self.q_id, acc])
        self.q_ue = np.concatenate([self.q_ue, ue[ok]])
        self.q_start = np.concatenate([self.q_start, offs[ok] - size[ok]])
        self.q_end = np.concatenate([self.q_end, offs[ok]])
        self.q_arrival = np.concatenate([self.q_arrival, pk.arrival_s[acc]])
        self.q_first_tx = np.concatenate([self.q_first_tx, np.full(acc.size, np.nan)])
        if acc.size:
            np.minimum.at(self.hol_arrival_s, ue[ok], self.q_arrival[-acc.size:])

    def expire(self, now_s: float) -> None:
        """Drop queued packets older than their slice deadline (slices with ``drop_late``)."""
        if not self.any_drop_late or not (self.drop_late & (now_s - self.hol_arrival_s > self.deadline_s)).any():
            return
        q_ue = self.q_ue
        late = self.drop_late[q_ue] & (now_s - self.q_arrival > self.deadline_s[q_ue])
        # bits of a dropped packet leave the buffer, including any part already sent
        np.maximum.at(self.out_bits, q_ue[late], self.q_end[late])
        self._leave(late, DROPPED, DROP_DEADLINE, now_s)

    def serve(self, capacity_bits: np.ndarray, now_s: float, delivered_at_s: float) -> np.ndarray:
        """Serve up to ``capacity_bits`` (U,) from each FIFO in this TTI; returns bits served (U,)."""
        served = np.minimum(capacity_bits, np.maximum(self.enq_bits - self.out_bits, 0.0))
        if not served.any():
            return served
        self.out_bits += served
        out = self.out_bits[self.q_ue]
        started = (self.q_start < out) & np.isnan(self.q_first_tx)
        self.q_first_tx[started] = now_s
        done = self.q_end <= out + _EPS_BITS
        if done.any():
            self._leave(done, DELIVERED, NO_DROP, delivered_at_s)
            # an emptied buffer: absorb the float residue of the bit counters
            empty = ~np.isfinite(self.hol_arrival_s) & (served > 0)
            self.out_bits[empty] = self.enq_bits[empty]
        return served

    def queued_ids(self) -> np.ndarray:
        return self.q_id
