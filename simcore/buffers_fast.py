"""The per-TTI buffer operations of ``simcore.buffers`` compiled with numba.

State is columnar (``UeBuffers`` docstring): the packet table as three 2-D arrays (float fields,
int64 fields, int8 codes; rows named below, columns = packets held, id - base), and per UE two
2-D arrays (bit counters and head-of-line arrival; head, tail and last-sent packet ids). Each UE's
FIFO is a linked list through the packets' ``next_id`` (global ids, -1 at the tail), so every
operation walks only the packets it admits, delivers, marks or drops: O(packets touched) per TTI,
whatever the queue lengths. One call per operation and TTI replaces the per-packet Python loop
and the handful of numpy calls each operation made; the arithmetic is the same float64
operations in the same order, so every table is the same bit for bit (``tests/test_buffers.py``
drives the kernels and a plain-Python FIFO model through random operation sequences; whole runs
are compared with ``scripts/same_results.py``).

numba compiles on first use (``cache=True``: once per machine, then read from ``__pycache__``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_JIT = dict(cache=True, error_model="numpy")
EPS_BITS = 1e-6
# float rows of the packet table
F_SIZE, F_ARRIVAL, F_CU, F_DU, F_FIRST_TX, F_DONE, F_END = range(7)
# int64 rows of the packet table
I_UE, I_NEXT = range(2)
# int8 rows of the packet table
C_STATUS, C_REASON = range(2)
# per-UE float rows: bits ever admitted, bits ever removed, arrival of the head-of-line packet (inf: empty)
U_ENQ, U_OUT, U_HOL = range(3)
# per-UE int64 rows: id of the head packet, of the tail packet (-1: empty), of the last one sent (mark_sent)
U_HEAD, U_TAIL, U_SENT = range(3)
# status codes and drop reasons (as simcore.buffers)
QUEUED, DELIVERED, DROPPED = 1, 2, 3
DROP_DEADLINE, DROP_BUFFER_FULL = 1, 2


@njit(**_JIT)
def admit(pf, pi, pc, base, start, held, now, uf, ui, limit):
    """Move the packets that left DU processing by ``now`` (indices ``start`` .. of the rows held;
    DU departures are non-decreasing) into their UE's FIFO, or drop them if it is full. Returns
    the index of the first packet not admitted."""
    end = start
    while end < held and pf[F_DU, end] <= now:
        end += 1
    for i in range(start, end):
        u = pi[I_UE, i]
        e = uf[U_ENQ, u] + pf[F_SIZE, i]
        if e - uf[U_OUT, u] <= limit[u] + EPS_BITS:
            uf[U_ENQ, u] = e
            pf[F_END, i] = e
            pc[C_STATUS, i] = QUEUED
            pi[I_NEXT, i] = -1
            gid = i + base
            if ui[U_HEAD, u] < 0:  # the buffer was empty: the new packet is its head
                ui[U_HEAD, u] = gid
                uf[U_HOL, u] = pf[F_ARRIVAL, i]
            else:
                pi[I_NEXT, ui[U_TAIL, u] - base] = gid
            ui[U_TAIL, u] = gid
        else:
            pc[C_STATUS, i] = DROPPED
            pc[C_REASON, i] = DROP_BUFFER_FULL
            pf[F_DONE, i] = now
    return end


@njit(**_JIT)
def _pop_through(pf, pi, base, uf, ui, u, gid):
    """UE ``u``'s head moves past packet ``gid`` (the packets before it are finished)."""
    h = ui[U_HEAD, u]
    while 0 <= h <= gid:
        h = pi[I_NEXT, h - base]
    ui[U_HEAD, u] = h
    uf[U_HOL, u] = pf[F_ARRIVAL, h - base] if h >= 0 else math.inf


@njit(**_JIT)
def expire(pf, pi, pc, base, n_adm, now, uf, ui, ue_slice, deadline, drop_late, cursor):
    """Drop queued packets older than their slice's deadline (slices with ``drop_late``). Per slice,
    the candidates are the admitted packets from the slice's cursor (a packet id) to the first with
    arrival >= now - deadline (arrivals are non-decreasing); each is at its UE's head (a UE's
    packets share one deadline), so the head moves past it."""
    for sl in range(deadline.size):
        if not drop_late[sl]:
            continue
        c0 = max(cursor[sl] - base, 0)  # packets before base are finished
        horizon = now - deadline[sl]
        if c0 >= n_adm or pf[F_ARRIVAL, c0] >= horizon:
            continue
        cut = c0
        while cut < n_adm and pf[F_ARRIVAL, cut] < horizon:
            cut += 1
        cursor[sl] = cut + base
        for i in range(c0, cut):
            if pc[C_STATUS, i] != QUEUED:
                continue
            u = pi[I_UE, i]
            if ue_slice[u] != sl:
                continue
            # bits of a dropped packet leave the buffer, including any part already sent
            uf[U_OUT, u] = max(uf[U_OUT, u], pf[F_END, i])
            pc[C_STATUS, i] = DROPPED
            pc[C_REASON, i] = DROP_DEADLINE
            pf[F_DONE, i] = now
            _pop_through(pf, pi, base, uf, ui, u, i + base)


@njit(**_JIT)
def serve(capacity, served, now, delivered_at, pf, pi, pc, base, uf, ui):
    """Serve up to ``capacity`` (U,) bits from each FIFO; ``served`` (U,) receives the bits served.
    A packet is delivered in the TTI its UE's out counter reaches its end offset; a packet that
    gets bits (delivered, or the new head partly sent) has its first transmission time set."""
    n = capacity.size
    for u in range(n):
        served[u] = min(capacity[u], max(uf[U_ENQ, u] - uf[U_OUT, u], 0.0))
        uf[U_OUT, u] += served[u]
    for u in range(n):
        if not served[u] > 0:
            continue
        out = uf[U_OUT, u]
        h = ui[U_HEAD, u]
        moved = False
        while h >= 0:
            j = h - base
            if pf[F_END, j] > out + EPS_BITS:
                break
            if math.isnan(pf[F_FIRST_TX, j]):
                pf[F_FIRST_TX, j] = now
            pc[C_STATUS, j] = DELIVERED
            pf[F_DONE, j] = delivered_at
            h = pi[I_NEXT, j]
            moved = True
        ui[U_HEAD, u] = h
        if h < 0:
            if moved:
                uf[U_HOL, u] = math.inf
            uf[U_OUT, u] = uf[U_ENQ, u]  # emptied: absorb the float residue of the bit counters
        else:
            j = h - base
            if moved:
                uf[U_HOL, u] = pf[F_ARRIVAL, j]
            if pf[F_END, j] - pf[F_SIZE, j] < out - EPS_BITS and math.isnan(pf[F_FIRST_TX, j]):
                pf[F_FIRST_TX, j] = now  # the new head got its first bits


@njit(**_JIT)
def arrive(pf, pi, pc, base, start, held, now, uf, ui, limit, ue_slice, deadline, drop_late, cursor):
    """``admit`` then ``expire`` at a TTI boundary, in one call; returns ``admit``'s index."""
    end = admit(pf, pi, pc, base, start, held, now, uf, ui, limit) if start < held else start
    expire(pf, pi, pc, base, end, now, uf, ui, ue_slice, deadline, drop_late, cursor)
    return end


@njit(**_JIT)
def serve_prbs(owner, prb_bits, served, now, delivered_at, pf, pi, pc, base, uf, ui):
    """``serve`` with each UE's capacity the bits its PRBs carried (``prb_capacity``)."""
    serve(prb_capacity(owner, prb_bits, served.size), served, now, delivered_at, pf, pi, pc, base, uf, ui)


@njit(**_JIT)
def prb_capacity(owner, prb_bits, n_ues):
    """(U,) bits the PRBs carry for each UE: ``prb_bits`` (R, K) summed by ``owner`` (R, K), -1 idle,
    in PRB order (as ``np.bincount`` sums them)."""
    cap = np.zeros(n_ues)
    n_ru, n_k = owner.shape
    for r in range(n_ru):
        for k in range(n_k):
            u = owner[r, k]
            if u >= 0:
                cap[u] += prb_bits[r, k]
    return cap


@njit(**_JIT)
def mark_sent(ues, upto, now, pf, pi, base, uf, ui):
    """Packets of UE ``ues[i]`` with bits below offset ``upto[i]`` went on air: set their first
    transmission time if not set yet (each packet is walked once: from after the last one marked).
    (Until 2026-11-28 the packet after the last one marked was marked even when ``upto`` did not
    reach it, e.g. in a TTI with only a HARQ retransmission: its queueing time came out short.)"""
    for x in range(ues.size):
        u = ues[x]
        up = upto[x]
        if up <= uf[U_OUT, u] + EPS_BITS:
            continue
        h = ui[U_HEAD, u]
        if h < 0:
            continue
        t = ui[U_SENT, u]
        if t < h:
            j = h  # the head starts at or below the out counter: it went on air
        elif pf[F_END, t - base] >= up - EPS_BITS:
            continue  # the last packet marked reaches the offset: no packet after it has bits below
        else:
            j = pi[I_NEXT, t - base]
        while j >= 0:
            r = j - base
            if math.isnan(pf[F_FIRST_TX, r]):
                pf[F_FIRST_TX, r] = now
            ui[U_SENT, u] = j
            if pf[F_END, r] >= up - EPS_BITS:
                break
            j = pi[I_NEXT, r]


@njit(**_JIT)
def drop_through(u, offset, now, reason, pf, pi, pc, base, uf, ui):
    """Drop UE ``u``'s packets from its head through the first that ends at or beyond ``offset``."""
    if offset <= uf[U_OUT, u] + EPS_BITS:
        return
    j = ui[U_HEAD, u]
    if j < 0:
        return
    last_end = 0.0
    while j >= 0:
        r = j - base
        pc[C_STATUS, r] = DROPPED
        pc[C_REASON, r] = reason
        pf[F_DONE, r] = now
        last_end = pf[F_END, r]
        j = pi[I_NEXT, r]
        if last_end >= offset - EPS_BITS:
            break
    ui[U_HEAD, u] = j
    uf[U_OUT, u] = max(uf[U_OUT, u], last_end)
    uf[U_HOL, u] = pf[F_ARRIVAL, j - base] if j >= 0 else math.inf
