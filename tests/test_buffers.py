"""The compiled UE buffers (simcore.buffers, simcore.buffers_fast) against a plain-Python FIFO model.

Random sequences of arrivals, admissions (with tail drops), deadline drops, serving, marking bits
as sent and dropping through an offset (what the link-to-system model does), with the packet table
released as packets finish (so ids and row indices part): after every operation each packet's
status, drop reason, times, the bit counters and the head-of-line arrivals must equal the model's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simcore.buffers import (DELIVERED, DROP_BUFFER_FULL, DROP_DEADLINE, DROP_HARQ, DROPPED, PROCESSING, QUEUED,
                             PacketTable, UeBuffers)

EPS = 1e-6


class Model:
    """Each UE's FIFO as a Python list of packet ids; packets as dicts."""

    def __init__(self, n_ues, limit, ue_slice, deadline, drop_late):
        self.limit, self.ue_slice, self.deadline, self.drop_late = limit, ue_slice, deadline, drop_late
        self.enq, self.out = [0.0] * n_ues, [0.0] * n_ues
        self.fifo: list[list[int]] = [[] for _ in range(n_ues)]
        self.p: dict[int, dict] = {}
        self.n = 0

    def add(self, ue, size, arrival, du):
        for u, b, a, d in zip(ue.tolist(), size.tolist(), arrival.tolist(), du.tolist()):
            self.p[self.n] = dict(ue=u, size=b, arrival=a, du=d, status=PROCESSING, reason=0, done=math.nan,
                                  first=math.nan, start=0.0, end=0.0)
            self.n += 1

    def admit(self, now):
        for i in sorted(self.p):
            q = self.p[i]
            if q["status"] != PROCESSING or q["du"] > now:
                continue
            u = q["ue"]
            e = self.enq[u] + q["size"]
            if e - self.out[u] <= self.limit[u] + EPS:
                q.update(status=QUEUED, start=self.enq[u], end=e)
                self.enq[u] = e
                self.fifo[u].append(i)
            else:
                q.update(status=DROPPED, reason=DROP_BUFFER_FULL, done=now)

    def expire(self, now):
        for u, f in enumerate(self.fifo):
            sl = self.ue_slice[u]
            while self.drop_late[sl] and f and self.p[f[0]]["arrival"] < now - self.deadline[sl]:
                q = self.p[f.pop(0)]
                self.out[u] = max(self.out[u], q["end"])
                q.update(status=DROPPED, reason=DROP_DEADLINE, done=now)

    def serve(self, cap, now, at):
        served = [min(c, max(e - o, 0.0)) for c, e, o in zip(cap.tolist(), self.enq, self.out)]
        for u, s in enumerate(served):
            self.out[u] += s
            if not s > 0:
                continue
            f = self.fifo[u]
            while f and self.p[f[0]]["end"] <= self.out[u] + EPS:
                q = self.p[f.pop(0)]
                q.update(status=DELIVERED, done=at, first=now if math.isnan(q["first"]) else q["first"])
            if not f:
                self.out[u] = self.enq[u]
            elif (h := self.p[f[0]])["end"] - h["size"] < self.out[u] - EPS and math.isnan(h["first"]):
                h["first"] = now
        return served

    def mark_sent(self, u, upto, now):
        if upto <= self.out[u] + EPS:
            return
        for i in self.fifo[u]:  # every packet that starts below the offset went on air
            q = self.p[i]
            if i != self.fifo[u][0] and q["start"] >= upto - EPS:
                break
            if math.isnan(q["first"]):
                q["first"] = now

    def drop_through(self, u, offset, now):
        f = self.fifo[u]
        if offset <= self.out[u] + EPS or not f:
            return
        while f:
            q = self.p[f.pop(0)]
            q.update(status=DROPPED, reason=DROP_HARQ, done=now)
            self.out[u] = max(self.out[u], q["end"])
            if q["end"] >= offset - EPS:
                break

    def hol(self, u):
        return self.p[self.fifo[u][0]]["arrival"] if self.fifo[u] else math.inf


def _check(buf: UeBuffers, pk: PacketTable, m: Model):
    for i in range(pk.base, pk.n):
        q, r = m.p[i], i - pk.base
        assert pk.status[r] == q["status"], i
        assert pk.drop_reason[r] == q["reason"], i
        for got, want in ((pk.done_s[r], q["done"]), (pk.first_tx_s[r], q["first"])):
            assert (math.isnan(got) and math.isnan(want)) or got == want, i
    assert buf.enq_bits.tolist() == m.enq and buf.out_bits.tolist() == m.out
    assert buf.hol_arrival_s.tolist() == [m.hol(u) for u in range(len(m.fifo))]


@pytest.mark.parametrize("seed", range(6))
def test_compiled_buffers_match_a_plain_fifo_model(seed):
    rng = np.random.default_rng(seed)
    n_ues, n_slices = 5, 2
    ue_slice = np.array([0, 0, 1, 1, 1])
    limit = rng.choice([3000.0, 1e9], n_ues)
    deadline, drop_late = np.array([0.004, 0.002]), np.array([False, True])
    pk = PacketTable(capacity=8)  # small: the table grows and shrinks on the way
    buf = UeBuffers(n_ues, limit, ue_slice, deadline, drop_late, pk)
    m = Model(n_ues, limit.tolist(), ue_slice.tolist(), deadline.tolist(), drop_late.tolist())
    tti, du_last, checks, seen = 1e-3, 0.0, 0, set()
    for k in range(120):
        now = k * tti
        n = int(rng.poisson(3))
        if n:  # arrivals in this TTI, leaving the DU in order
            arrival = np.sort(now + tti * rng.random(n))
            du = np.maximum.accumulate(np.maximum(arrival + 1e-4 * rng.random(n), du_last))
            du_last = float(du[-1])
            ue = rng.integers(0, n_ues, n)
            size = rng.choice([96.0, 800.0, 1500.0 * 8], n)
            pk.add(ue, size, arrival, arrival, du)
            m.add(ue, size, arrival, du)
        if seed % 2:  # the engine's single call, or its two parts
            buf.arrive(now)
        else:
            buf.admit_ready(now)
            buf.expire(now)
        m.admit(now)
        m.expire(now)
        _check(buf, pk, m)
        op = rng.random()
        if op < 0.6:
            cap = rng.choice([0.0, 500.0, 5000.0, 20000.0], n_ues)
            if seed % 2:  # the engine's call: the capacity of each UE summed over its PRBs
                owner = np.repeat(np.arange(n_ues), 2)[None]
                served = buf.serve_prbs(owner, np.repeat(cap / 2, 2)[None], now, now + tti)
            else:
                served = buf.serve(cap, now, now + tti)
            assert served.tolist() == m.serve(cap, now, now + tti)
        elif op < 0.8:
            us = rng.choice(n_ues, 2, replace=False)
            upto = [float(buf.out_bits[u] + rng.choice([0.0, 700.0, 4000.0])) for u in us]
            buf.mark_sent(us.tolist(), upto, now)
            for u, x in zip(us.tolist(), upto):
                m.mark_sent(u, x, now)
        else:
            u = int(rng.integers(n_ues))
            x = float(buf.out_bits[u] + rng.choice([0.0, 100.0, 3000.0]))
            buf.drop_through(u, x, now, DROP_HARQ)
            m.drop_through(u, x, now)
        _check(buf, pk, m)
        checks += 1
        seen |= {q["status"] for q in m.p.values()}
        if k % 7 == 0:  # write out the finished prefix, as the engine's housekeeping does
            pk.release(buf.first_queued())
    assert checks == 120 and pk.base > 0
    assert {QUEUED, DELIVERED, DROPPED} <= seen
    assert {q["reason"] for q in m.p.values()} >= {DROP_DEADLINE, DROP_HARQ}
