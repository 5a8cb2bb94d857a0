"""Packets and the per-UE FIFO buffers at the DU.

Every packet has one ``PacketTable`` row from its arrival until it is finished (delivered or
dropped) and written out, so conservation is a count: generated = delivered + dropped + queued +
processing, over the rows written out and the rows still held. Packet ids are global and never
reused; the table holds the rows from the oldest packet not yet written out (``base``) on, so a
long run keeps only the packets still in flight, not its whole history.

Each UE buffer is a FIFO served by bit counters: ``enq_bits[u]`` counts the bits ever admitted,
``out_bits[u]`` the bits ever removed (served or dropped). A packet occupies
[end_offset - size, end_offset) of its UE's admitted bits, so it is delivered in the TTI in which
``out_bits`` reaches its ``end_offset``. The state is columnar: the packet table is three 2-D
arrays (float fields, int64 fields, int8 codes), and a UE's FIFO is a linked list through its
packets' ``next_id`` from the UE's head to its tail (packets are admitted in id order, the CU/DU
FIFOs keep it). Each operation is one compiled call per TTI (``simcore.buffers_fast``) that walks
only the packets it touches. Deadline drops remove packets from a UE's head only: exact, because
all packets of a UE share its slice's deadline.
"""

from __future__ import annotations

import numpy as np

from . import buffers_fast as kern

# status codes
PROCESSING, QUEUED, DELIVERED, DROPPED = 0, 1, 2, 3
STATUS_NAMES = ("processing", "queued", "delivered", "dropped")
# drop reasons
NO_DROP, DROP_DEADLINE, DROP_BUFFER_FULL, DROP_HARQ = 0, 1, 2, 3
DROP_REASON_NAMES = ("", "deadline", "buffer_full", "harq")
assert (QUEUED, DELIVERED, DROPPED, DROP_DEADLINE, DROP_BUFFER_FULL) == (
    kern.QUEUED, kern.DELIVERED, kern.DROPPED, kern.DROP_DEADLINE, kern.DROP_BUFFER_FULL)


class PacketTable:
    """Growable struct-of-arrays, one column per packet, in order of arrival at the CU.

    Columns are addressed by packet id; the arrays hold ids [``base``, ``n``) at index id - ``base``.
    ``release(upto)`` forgets the columns before ``upto`` (once they have been written out). The
    fields are rows of three 2-D arrays by dtype (``f`` float64, ``i`` int64, ``c`` int8; row
    numbers in ``simcore.buffers_fast``), each also an attribute (a view: ``pk.arrival_s``).
    ``end_offset`` and ``next_id`` (the next packet of the same UE's FIFO, -1 at its tail) are set
    when a packet enters its UE buffer.
    """

    _FLOAT = ("size_bits", "arrival_s", "cu_depart_s", "du_depart_s", "first_tx_s", "done_s", "end_offset")
    _INT = ("ue", "next_id")
    _CODE = ("status", "drop_reason")

    def __init__(self, capacity: int = 4096):
        self.n = 0  # packets ever added (ids 0 .. n-1)
        self.base = 0  # id of the first row held
        self._alloc(capacity)

    def _alloc(self, cap: int) -> None:
        self._cap = cap
        self.f = np.zeros((len(self._FLOAT), cap))
        self.i = np.zeros((len(self._INT), cap), dtype=np.int64)
        self.c = np.zeros((len(self._CODE), cap), dtype=np.int8)
        for arr, names in ((self.f, self._FLOAT), (self.i, self._INT), (self.c, self._CODE)):
            for row, name in enumerate(names):
                setattr(self, name, arr[row])

    @property
    def held(self) -> int:
        """Rows held (ids base .. n-1)."""
        return self.n - self.base

    def _resize(self, cap: int) -> None:
        held = self.held
        old = self.f, self.i, self.c
        self._alloc(cap)
        for new, a in zip((self.f, self.i, self.c), old):
            new[:, :held] = a[:, :held]

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
        for a in (self.f, self.i, self.c):
            a[:, :keep] = a[:, drop: drop + keep]
        self.base = upto
        if self._cap > 4 * max(keep, 4096):  # give memory back after a burst
            self._resize(max(2 * keep, 4096))


class UeBuffers:
    """The DU-side FIFO buffers of all UEs (module docstring), columnar.

    Per UE: the bit counters and the arrival of its head-of-line packet (rows of ``uf`` (3, U):
    ``enq_bits``, ``out_bits`` and the head-of-line arrival are views of them), and the ids of its
    head and tail packets and of the last packet marked as sent (rows of ``ui`` (3, U), -1: none).
    The operations are the compiled kernels of ``simcore.buffers_fast``.
    """

    def __init__(self, n_ues: int, buffer_limit_bits: np.ndarray, ue_slice: np.ndarray,
                 slice_deadline_s: np.ndarray, slice_drop_late: np.ndarray, packets: PacketTable):
        self.pk = packets
        self.n_ues = n_ues
        self.limit_bits = np.ascontiguousarray(buffer_limit_bits, dtype=float)
        self.ue_slice = np.ascontiguousarray(ue_slice, dtype=np.int64)
        self.slice_deadline_s = np.ascontiguousarray(slice_deadline_s, dtype=float)
        self.slice_drop_late = np.ascontiguousarray(slice_drop_late, dtype=np.bool_)
        # per slice that drops late packets: first packet id not yet checked for expiry
        self.expiry_cursor = np.zeros(self.slice_deadline_s.size, dtype=np.int64)
        self.uf = np.zeros((3, n_ues))
        self.uf[kern.U_HOL] = np.inf
        self.ui = np.full((3, n_ues), -1, dtype=np.int64)
        self.enq_bits, self.out_bits = self.uf[kern.U_ENQ], self.uf[kern.U_OUT]
        self.n_admitted = 0  # packets with smaller ids have left CU/DU processing

    @property
    def backlog_bits(self) -> np.ndarray:
        return self.enq_bits - self.out_bits

    @property
    def hol_arrival_s(self) -> np.ndarray:
        """(U,) arrival time of each UE's head-of-line packet; inf if its buffer is empty (read-only view)."""
        view = self.uf[kern.U_HOL].view()
        view.flags.writeable = False
        return view

    def queued_packets(self) -> int:
        """Packets in the UE buffers."""
        return int((self.pk.view("status") == QUEUED).sum())

    def first_queued(self) -> int:
        """Id of the oldest packet still queued or in processing: every packet before it is finished."""
        pk = self.pk
        queued = pk.status[: self.n_admitted - pk.base] == QUEUED
        i = int(np.argmax(queued)) if queued.size else 0  # (argmax of nothing raises)
        return pk.base + i if queued.size and queued[i] else self.n_admitted

    # ------------------------------------------------------------------------- operations
    def admit_ready(self, now_s: float) -> None:
        """Move packets that finished DU processing by ``now_s`` into their UE buffer (tail drop)."""
        pk = self.pk
        base = pk.base
        start = self.n_admitted - base
        if start >= pk.held or pk.du_depart_s[start] > now_s:
            return
        end = kern.admit(pk.f, pk.i, pk.c, base, start, pk.held, float(now_s), self.uf, self.ui, self.limit_bits)
        self.n_admitted = end + base

    def expire(self, now_s: float) -> None:
        """Drop queued packets older than their slice deadline (slices with ``drop_late``)."""
        pk = self.pk
        kern.expire(pk.f, pk.i, pk.c, pk.base, self.n_admitted - pk.base, float(now_s), self.uf, self.ui,
                    self.ue_slice, self.slice_deadline_s, self.slice_drop_late, self.expiry_cursor)

    def arrive(self, now_s: float) -> None:
        """``admit_ready`` then ``expire`` (what the engine does at each TTI boundary) in one call."""
        pk = self.pk
        base = pk.base
        end = kern.arrive(pk.f, pk.i, pk.c, base, self.n_admitted - base, pk.held, float(now_s), self.uf, self.ui,
                          self.limit_bits, self.ue_slice, self.slice_deadline_s, self.slice_drop_late,
                          self.expiry_cursor)
        self.n_admitted = end + base

    def serve(self, capacity_bits: np.ndarray, now_s: float, delivered_at_s: float) -> np.ndarray:
        """Serve up to ``capacity_bits`` (U,) from each FIFO in this TTI; returns bits served (U,)."""
        pk = self.pk
        served = np.empty(self.n_ues)
        kern.serve(np.ascontiguousarray(capacity_bits, dtype=float), served, float(now_s), float(delivered_at_s),
                   pk.f, pk.i, pk.c, pk.base, self.uf, self.ui)
        return served

    def serve_prbs(self, prb_owner: np.ndarray, prb_bits: np.ndarray, now_s: float, delivered_at_s: float) -> np.ndarray:
        """``serve`` with each UE's capacity the bits its PRBs carried: ``prb_bits`` (R, K) of the
        owners ``prb_owner`` (R, K), -1 idle. Returns bits served (U,)."""
        pk = self.pk
        served = np.empty(self.n_ues)
        kern.serve_prbs(prb_owner, np.ascontiguousarray(prb_bits, dtype=float), served, float(now_s),
                        float(delivered_at_s), pk.f, pk.i, pk.c, pk.base, self.uf, self.ui)
        return served

    # ------------------------------------------------- for the link-to-system model (simcore.l2s)
    def serve_ue(self, u: int, bits: float, now_s: float, delivered_at_s: float) -> float:
        """Serve ``bits`` from UE ``u``'s FIFO alone (as ``serve``); returns the bits served."""
        capacity = np.zeros(self.n_ues)
        capacity[u] = bits
        return float(self.serve(capacity, now_s, delivered_at_s)[u])

    def mark_sent(self, ues, upto_bits, now_s: float) -> None:
        """Packets of UE ``ues[i]`` with bits below offset ``upto_bits[i]`` went on air (in a transport
        block, decoded or not): set their first transmission time if not set yet. (n,) int and
        float, lists or arrays."""
        pk = self.pk
        kern.mark_sent(np.asarray(ues, dtype=np.int64), np.asarray(upto_bits, dtype=float), float(now_s),
                       pk.f, pk.i, pk.base, self.uf, self.ui)

    def drop_through(self, u: int, offset_bits: float, now_s: float, reason: int) -> None:
        """Drop UE ``u``'s packets from its head that start below ``offset_bits`` (their bits were in
        a transport block that was lost); the buffer's out counter moves past them."""
        pk = self.pk
        kern.drop_through(int(u), float(offset_bits), float(now_s), int(reason), pk.f, pk.i, pk.c, pk.base,
                          self.uf, self.ui)
