"""Packets and the per-UE FIFO buffers at the DU.

Every packet has one ``PacketTable`` row from its arrival until it is finished (delivered or
dropped) and written out, so conservation is a count: generated = delivered + dropped + queued +
processing, over the rows written out and the rows still held. Packet ids are global and never
reused; the table holds the rows from the oldest packet not yet written out (``base``) on, so a
long run keeps only the packets still in flight, not its whole history.

Each UE buffer is a FIFO served by bit counters: ``enq_bits[u]`` counts the bits ever admitted,
``out_bits[u]`` the bits ever removed (served or dropped). A packet occupies
[end_offset - size, end_offset) of its UE's admitted bits, so it is delivered in the TTI in which
``out_bits`` reaches its ``end_offset``. The queued packets of all UEs are kept as one set of
arrays in arrival order (the CU/DU FIFOs keep that order), which makes every buffer operation a
handful of numpy calls per TTI whatever the number of packets. Deadline drops remove packets from
a UE's head only: exact, because all packets of a UE share its slice's deadline.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np

# status codes
PROCESSING, QUEUED, DELIVERED, DROPPED = 0, 1, 2, 3
STATUS_NAMES = ("processing", "queued", "delivered", "dropped")
# drop reasons
NO_DROP, DROP_DEADLINE, DROP_BUFFER_FULL, DROP_HARQ = 0, 1, 2, 3
DROP_REASON_NAMES = ("", "deadline", "buffer_full", "harq")

_EPS_BITS = 1e-6
#: Up to this many packets touched in a TTI, ``serve`` updates them one by one (fewer numpy calls).
_FEW = 32


class PacketTable:
    """Growable struct-of-arrays, one row per packet, in order of arrival at the CU.

    Rows are addressed by packet id; the arrays hold ids [``base``, ``n``) at index id - ``base``.
    ``release(upto)`` forgets the rows before ``upto`` (once they have been written out).
    """

    _FIELDS = {
        "ue": np.int64, "size_bits": np.float64, "arrival_s": np.float64, "cu_depart_s": np.float64,
        "du_depart_s": np.float64, "first_tx_s": np.float64, "done_s": np.float64,
        "status": np.int8, "drop_reason": np.int8, "end_offset": np.float64,
        "fifo_pos": np.int64,  # position of the packet in its UE's FIFO (counting every packet it ever held)
    }

    def __init__(self, capacity: int = 4096):
        self.n = 0  # packets ever added (ids 0 .. n-1)
        self.base = 0  # id of the first row held
        self._cap = capacity
        for name, dt in self._FIELDS.items():
            setattr(self, name, np.zeros(capacity, dtype=dt))

    @property
    def held(self) -> int:
        """Rows held (ids base .. n-1)."""
        return self.n - self.base

    def _resize(self, cap: int) -> None:
        held = self.held
        for name in self._FIELDS:
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[:held] = old[:held]
            setattr(self, name, new)
        self._cap = cap

    def add(self, ue, size_bits, arrival_s, cu_depart_s, du_depart_s) -> None:
        m = ue.size
        if m == 0:
            return
        held = self.held
        if held + m > self._cap:
            cap = self._cap
            while cap < held + m:
                cap *= 2
            self._resize(cap)
        sl = slice(held, held + m)
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
        """The rows held (ids base .. n-1) of one field."""
        return getattr(self, name)[: self.held]

    def release(self, upto: int) -> None:
        """Forget rows with id < ``upto`` (they must be finished and written out)."""
        drop = upto - self.base
        if drop <= 0:
            return
        keep = self.n - upto
        for name in self._FIELDS:
            a = getattr(self, name)
            a[:keep] = a[drop: drop + keep]
        self.base = upto
        if self._cap > 4 * max(keep, 4096):  # give memory back after a burst
            self._resize(max(2 * keep, 4096))


#: A UE's FIFO lists drop their served prefix once it is this long and at least half the list.
TRIM_MIN = 1024


class UeBuffers:
    """The DU-side FIFO buffers of all UEs.

    Per UE: the ids of the packets it admitted (``rows[u]``) and their end offsets (``ends[u]``,
    strictly increasing), from which the served prefix is trimmed now and then (``trim[u]`` entries
    so far), and the FIFO position of its head packet (``head[u]``, counting trimmed entries).
    Serving a UE is one ``bisect`` of its bit counter into ``ends[u]``, so a TTI costs O(UEs
    served), whatever the queue lengths.
    """

    def __init__(self, n_ues: int, buffer_limit_bits: np.ndarray, ue_slice: np.ndarray,
                 slice_deadline_s: np.ndarray, slice_drop_late: np.ndarray, packets: PacketTable):
        self.pk = packets
        self.n_ues = n_ues
        self.limit_bits = buffer_limit_bits
        self.ue_slice = ue_slice
        self.slice_deadline_s = slice_deadline_s
        # per slice that drops late packets: first packet id not yet checked for expiry
        self.expiry_cursor = {int(s): 0 for s in np.flatnonzero(slice_drop_late)}
        self.enq_bits = np.zeros(n_ues)
        self.out_bits = np.zeros(n_ues)
        self.rows: list[list[int]] = [[] for _ in range(n_ues)]
        self.ends: list[list[float]] = [[] for _ in range(n_ues)]
        self.trim = [0] * n_ues
        self.head = np.zeros(n_ues, dtype=np.int64)
        self.tx_mark = [0] * n_ues  # FIFO position up to which packets have had bits sent (mark_sent)
        self.n_admitted = 0  # packets with smaller ids have left CU/DU processing
        # arrival of each head packet, kept as heads move (deadline drops only mark it stale)
        self._hol = np.full(n_ues, np.inf)
        self._hol_stale = np.zeros(n_ues, dtype=bool)

    @property
    def backlog_bits(self) -> np.ndarray:
        return self.enq_bits - self.out_bits

    @property
    def hol_arrival_s(self) -> np.ndarray:
        """(U,) arrival time of each UE's head-of-line packet; inf if its buffer is empty (read-only view)."""
        if self._hol_stale.any():
            for u in np.flatnonzero(self._hol_stale).tolist():
                self._set_hol(u)
            self._hol_stale[:] = False
        view = self._hol.view()
        view.flags.writeable = False
        return view

    def first_queued(self) -> int:
        """Id of the oldest packet still queued or in processing: every packet before it is finished."""
        pk = self.pk
        queued = pk.status[: self.n_admitted - pk.base] == QUEUED
        i = int(np.argmax(queued))
        return pk.base + i if queued.size and queued[i] else self.n_admitted

    def _trim(self, u: int, h: int) -> int:
        """Drop the first ``h`` (served or dropped) entries of UE ``u``'s lists if worth it; returns
        the list index of the head afterwards."""
        rows = self.rows[u]
        if h >= TRIM_MIN and 2 * h >= len(rows):
            del rows[:h]
            del self.ends[u][:h]
            self.trim[u] += h
            return 0
        return h

    def trim_all(self) -> None:
        """Trim every UE's lists (serving trims as it goes; this catches UEs that only expire)."""
        for u in range(self.n_ues):
            self._trim(u, int(self.head[u]) - self.trim[u])

    def _set_hol(self, u: int) -> None:
        rows = self.rows[u]
        h = self._trim(u, int(self.head[u]) - self.trim[u])
        self._hol[u] = self.pk.arrival_s[rows[h] - self.pk.base] if h < len(rows) else np.inf

    # ------------------------------------------------------------------------- operations
    def admit_ready(self, now_s: float) -> None:
        """Move packets that finished DU processing by ``now_s`` into their UE buffer (tail drop)."""
        pk = self.pk
        base = pk.base
        # DU departures are non-decreasing (FIFO server), so the ready packets are a prefix.
        start = self.n_admitted - base
        end = start + int(np.searchsorted(pk.du_depart_s[start: pk.held], now_s, side="right"))
        if end == start:
            return
        self.n_admitted = end + base
        enq, out, limit, head, trim = self.enq_bits, self.out_bits, self.limit_bits, self.head, self.trim
        status, offset, pos, arrival = pk.status, pk.end_offset, pk.fifo_pos, pk.arrival_s
        for i, (u, b) in enumerate(zip(pk.ue[start:end].tolist(), pk.size_bits[start:end].tolist()), start):
            e = enq[u] + b
            if e - out[u] <= limit[u] + _EPS_BITS:
                enq[u] = e
                offset[i] = e
                status[i] = QUEUED
                rows = self.rows[u]
                p = len(rows) + trim[u]
                pos[i] = p
                if p == head[u]:  # the buffer was empty: the new packet is its head
                    self._hol[u] = arrival[i]
                rows.append(i + base)
                self.ends[u].append(e)
            else:
                status[i] = DROPPED
                pk.drop_reason[i] = DROP_BUFFER_FULL
                pk.done_s[i] = now_s

    def expire(self, now_s: float) -> None:
        """Drop queued packets older than their slice deadline (slices with ``drop_late``).

        Packets are in arrival order, so per slice the ones that can have expired are those between
        the slice's cursor and the first with arrival >= now - deadline; each is at the head of its
        UE's FIFO (a UE's packets share one deadline).
        """
        pk = self.pk
        base = pk.base
        arrival = pk.arrival_s
        n_adm = self.n_admitted - base
        for sl, cursor in self.expiry_cursor.items():
            c0 = max(cursor - base, 0)  # packets before base are finished
            horizon = now_s - self.slice_deadline_s[sl]
            if c0 >= n_adm or arrival[c0] >= horizon:
                continue
            cut = c0 + int(np.searchsorted(arrival[c0: n_adm], horizon, side="left"))
            self.expiry_cursor[sl] = cut + base
            queued = pk.status[c0:cut] == QUEUED
            if not queued.any():
                continue
            rows = (queued & (self.ue_slice[pk.ue[c0:cut]] == sl)).nonzero()[0] + c0
            if rows.size == 0:
                continue
            ue = pk.ue[rows]
            # bits of a dropped packet leave the buffer, including any part already sent
            np.maximum.at(self.out_bits, ue, pk.end_offset[rows])
            np.maximum.at(self.head, ue, pk.fifo_pos[rows] + 1)
            self._hol_stale[ue] = True
            pk.status[rows] = DROPPED
            pk.drop_reason[rows] = DROP_DEADLINE
            pk.done_s[rows] = now_s

    def serve(self, capacity_bits: np.ndarray, now_s: float, delivered_at_s: float) -> np.ndarray:
        """Serve up to ``capacity_bits`` (U,) from each FIFO in this TTI; returns bits served (U,)."""
        served = np.minimum(capacity_bits, np.maximum(self.enq_bits - self.out_bits, 0.0))
        active = (served > 0).nonzero()[0]
        if active.size == 0:
            return served
        self.out_bits += served
        pk, trim, all_rows, all_ends = self.pk, self.trim, self.rows, self.ends
        base = pk.base
        hol, arrival, size = self._hol, pk.arrival_s, pk.size_bits
        delivered: list[int] = []
        touched: list[int] = []  # packets that got bits this TTI (first transmission if not yet set)
        emptied: list[int] = []
        new_head: list[int] = []
        # per-UE scalars as Python numbers: the loop reads no numpy scalars it can avoid
        for u, hd, out in zip(active.tolist(), self.head[active].tolist(), self.out_bits[active].tolist()):
            rows, ends, t = all_rows[u], all_ends[u], trim[u]
            h = hd - t
            new_h = bisect_right(ends, out + _EPS_BITS, h)
            delivered.extend(rows[h:new_h])
            touched.extend(rows[h:new_h])
            if new_h == len(rows):
                emptied.append(u)
                if new_h != h:
                    hol[u] = np.inf
            else:
                nxt = rows[new_h] - base
                if new_h != h:
                    hol[u] = arrival[nxt]
                if ends[new_h] - size[nxt] < out - _EPS_BITS:
                    touched.append(rows[new_h])  # the new head got its first bits
            new_head.append(new_h + t)
            if new_h >= TRIM_MIN:
                self._trim(u, new_h)
        self.head[active] = new_head
        if emptied:  # emptied: absorb the float residue of the bit counters
            self.out_bits[emptied] = self.enq_bits[emptied]
        if len(touched) <= _FEW:  # a few packets: entry by entry costs less than numpy calls
            first_tx = pk.first_tx_s
            for i in touched:
                i -= base
                if first_tx[i] != first_tx[i]:  # NaN: no bits sent before
                    first_tx[i] = now_s
            status, done = pk.status, pk.done_s
            for i in delivered:
                status[i - base] = DELIVERED
                done[i - base] = delivered_at_s
            return served
        touched_rows = np.array(touched, dtype=np.int64) - base
        first = pk.first_tx_s[touched_rows]
        pk.first_tx_s[touched_rows] = np.where(np.isnan(first), now_s, first)
        if delivered:
            d = np.array(delivered, dtype=np.int64) - base
            pk.status[d] = DELIVERED
            pk.done_s[d] = delivered_at_s
        return served

    # ------------------------------------------------- for the link-to-system model (simcore.l2s)
    def serve_ue(self, u: int, bits: float, now_s: float, delivered_at_s: float) -> float:
        """Serve ``bits`` from UE ``u``'s FIFO alone (as ``serve``); returns the bits served."""
        capacity = np.zeros(self.n_ues)
        capacity[u] = bits
        return float(self.serve(capacity, now_s, delivered_at_s)[u])

    def mark_sent(self, ues: list[int], upto_bits: list[float], now_s: float) -> None:
        """Packets of UE ``ues[i]`` with bits below offset ``upto_bits[i]`` went on air (in a transport
        block, decoded or not): set their first transmission time if not set yet."""
        pk, base = self.pk, self.pk.base
        rows_out: list[int] = []
        for u, upto in zip(ues, upto_bits):
            rows, ends, t = self.rows[u], self.ends[u], self.trim[u]
            if upto <= self.out_bits[u] + _EPS_BITS:
                continue
            start = max(self.tx_mark[u], int(self.head[u])) - t
            # packet i starts at ends[i - 1]: the packets starting below the offset end before index stop
            stop = min(bisect_left(ends, upto - _EPS_BITS, start) + 1, len(rows))
            if stop > start:
                rows_out.extend(rows[start:stop])
                self.tx_mark[u] = stop + t
        if rows_out:
            r = np.array(rows_out, dtype=np.int64) - base
            first = pk.first_tx_s[r]
            pk.first_tx_s[r] = np.where(np.isnan(first), now_s, first)

    def drop_through(self, u: int, offset_bits: float, now_s: float, reason: int) -> None:
        """Drop UE ``u``'s packets from its head that start below ``offset_bits`` (their bits were in
        a transport block that was lost); the buffer's out counter moves past them."""
        if offset_bits <= self.out_bits[u] + _EPS_BITS:
            return  # already past (e.g. its packets expired meanwhile)
        rows, ends, t = self.rows[u], self.ends[u], self.trim[u]
        h = int(self.head[u]) - t
        stop = min(bisect_left(ends, offset_bits - _EPS_BITS, h) + 1, len(rows))
        if stop <= h:
            return
        r = np.array(rows[h:stop], dtype=np.int64) - self.pk.base
        self.pk.status[r] = DROPPED
        self.pk.drop_reason[r] = reason
        self.pk.done_s[r] = now_s
        self.out_bits[u] = max(self.out_bits[u], ends[stop - 1])
        self.head[u] = stop + t
        self._hol_stale[u] = True
