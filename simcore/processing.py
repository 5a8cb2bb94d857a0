"""CU and DU processing: single-server FIFO queues with a configured service rate.

A packet's departure follows Lindley's recursion, d_n = max(a_n, d_{n-1}) + s_n, which is exactly
what a ``simpy.Resource(capacity=1)`` does when each packet requests it, holds it for s_n and
releases it (tests/test_queueing.py checks the two agree packet by packet). Written out in closed
form, d_n = C_n + max(d_0, max_{k<=n}(a_k - C_{k-1})) with C the running sum of service times, it
runs over a whole TTI's batch of packets as two numpy scans instead of three SimPy events per packet.
"""

from __future__ import annotations

import numpy as np


class FifoServer:
    """One processing stage. ``serve`` takes arrival times (sorted) and returns departure times."""

    def __init__(self, service_rate_pps: float, service: str, rng: np.random.Generator):
        self.mean_service_s = 1.0 / service_rate_pps
        self.exponential = service == "exponential"
        self.rng = rng
        self.last_departure_s = 0.0
        self.last_arrival_s = -np.inf

    def service_times(self, n: int) -> np.ndarray:
        if self.exponential:
            return self.rng.exponential(self.mean_service_s, n)
        return np.full(n, self.mean_service_s)

    def serve(self, arrival_s: np.ndarray) -> np.ndarray:
        """Departure times (s) of packets arriving at ``arrival_s`` (non-decreasing), in order.

        Raises ``ValueError`` if the arrivals go back in time, within the batch or against the
        previous batch: the recursion would silently give wrong waiting times.
        """
        if arrival_s.size == 0:
            return arrival_s.copy()
        if arrival_s[0] < self.last_arrival_s or (arrival_s.size > 1 and (np.diff(arrival_s) < 0).any()):
            raise ValueError("FIFO server: arrival times must be non-decreasing across and within batches")
        self.last_arrival_s = float(arrival_s[-1])
        s = self.service_times(arrival_s.size)
        c = np.cumsum(s)
        start_floor = np.maximum.accumulate(arrival_s - (c - s))
        departure = c + np.maximum(start_floor, self.last_departure_s)
        self.last_departure_s = float(departure[-1])
        return departure
