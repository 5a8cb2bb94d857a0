"""Per-slice traffic sources, generated one TTI window at a time (vectorized over UEs).

Each source returns the packets that arrive in [t0, t1): arrival times (s), UE indices and sizes
(bits). Arrival times are exact (continuous); batching by TTI only decides when they are drawn.
The windows are consecutive and every returned arrival lies inside its window, so the arrivals
reach the CU in time order across windows (the CU/DU Lindley recursion and the buffers' deadline
search rely on it). A source whose draws can fall after the window (periodic reports with jitter)
keeps them until the window they fall in.
"""

from __future__ import annotations

import numpy as np

from .scenario import FtpTraffic, PeriodicTraffic, PoissonTraffic, SporadicTraffic

_EMPTY = (np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0))


class PoissonSource:
    """Poisson arrivals of fixed-size packets (eMBB ``poisson``, URLLC ``sporadic``).

    The slice's UEs have equal rates, so their superposition is one Poisson process whose arrivals
    each belong to a uniformly drawn UE: one draw per TTI instead of one per UE.
    """

    def __init__(self, ues: np.ndarray, rate_pps: float, packet_bits: float, rng: np.random.Generator):
        self.ues, self.rate_pps, self.packet_bits, self.rng = ues, rate_pps, packet_bits, rng
        self.total_rate_pps = rate_pps * ues.size

    def arrivals(self, t0: float, t1: float):
        n = int(self.rng.poisson(self.total_rate_pps * (t1 - t0))) if self.ues.size else 0
        if n == 0:
            return _EMPTY
        ue = self.ues[self.rng.integers(0, self.ues.size, n)]
        t = t0 + (t1 - t0) * self.rng.uniform(size=n)
        return t, ue, np.full(n, self.packet_bits)


class FtpSource:
    """Files arrive as a Poisson process per UE; exponential size; split into MTU-size packets that
    all arrive with the file (the last one carries the remainder)."""

    def __init__(self, ues, cfg: FtpTraffic, rng):
        self.ues, self.rng = ues, rng
        self.file_rate_hz = cfg.file_rate_hz
        self.mean_file_bits = cfg.file_kbytes * 8000.0
        self.packet_bits = cfg.packet_bytes * 8.0

    def arrivals(self, t0, t1):
        counts = self.rng.poisson(self.file_rate_hz * (t1 - t0), self.ues.size)
        n_files = int(counts.sum())
        if n_files == 0:
            return _EMPTY
        file_ue = np.repeat(self.ues, counts)
        file_t = t0 + (t1 - t0) * self.rng.uniform(size=n_files)
        file_bits = np.maximum(8.0, np.round(self.rng.exponential(self.mean_file_bits, n_files) / 8.0) * 8.0)
        n_pkts = np.ceil(file_bits / self.packet_bits).astype(np.int64)
        t = np.repeat(file_t, n_pkts)
        ue = np.repeat(file_ue, n_pkts)
        size = np.full(t.size, self.packet_bits)
        last = np.cumsum(n_pkts) - 1
        size[last] = file_bits - (n_pkts - 1) * self.packet_bits
        return t, ue, size


class PeriodicSource:
    """One report every ``period`` per device, random phase per device, optional uniform jitter.

    A report's nominal time is drawn once; its jitter may push it past the window being drawn (by
    up to ``jitter_ms``, possibly several windows and periods): such reports wait in ``_late_*``
    until the window that holds them.
    """

    def __init__(self, ues, cfg: PeriodicTraffic, rng):
        self.ues, self.rng = ues, rng
        self.period_s = cfg.period_ms * 1e-3
        self.jitter_s = cfg.jitter_ms * 1e-3
        self.packet_bits = cfg.packet_bytes * 8.0
        self.next_s = rng.uniform(0.0, self.period_s, ues.size)  # nominal time of the next report
        self._next_min = float(self.next_s.min()) if ues.size else np.inf
        self._late_t = np.zeros(0)  # jittered reports due after the last window drawn
        self._late_ue = np.zeros(0, dtype=np.int64)

    def arrivals(self, t0, t1):
        if self._next_min >= t1 and (self._late_t.size == 0 or self._late_t.min() >= t1):
            return _EMPTY
        times, ues = [self._late_t], [self._late_ue]
        while self._next_min < t1:
            due = self.next_s < t1
            t = self.next_s[due]
            times.append(t + self.rng.uniform(0.0, self.jitter_s, t.size) if self.jitter_s > 0 else t)
            ues.append(self.ues[due])
            self.next_s[due] += self.period_s
            self._next_min = float(self.next_s.min())
        t, ue = np.concatenate(times), np.concatenate(ues)
        now = t < t1
        if not now.all():
            self._late_t, self._late_ue = t[~now], ue[~now]
            t, ue = t[now], ue[now]
        else:
            self._late_t, self._late_ue = _EMPTY[0], _EMPTY[1]
        if t.size == 0:
            return _EMPTY
        return t, ue, np.full(t.size, self.packet_bits)


def make_source(cfg, ues: np.ndarray, rng: np.random.Generator):
    if isinstance(cfg, PoissonTraffic):
        return PoissonSource(ues, cfg.rate_mbps * 1e6 / (8.0 * cfg.packet_bytes), cfg.packet_bytes * 8.0, rng)
    if isinstance(cfg, SporadicTraffic):
        return PoissonSource(ues, cfg.rate_pps, cfg.packet_bytes * 8.0, rng)
    if isinstance(cfg, FtpTraffic):
        return FtpSource(ues, cfg, rng)
    if isinstance(cfg, PeriodicTraffic):
        return PeriodicSource(ues, cfg, rng)
    raise TypeError(f"unknown traffic model {cfg!r}")


def offered_load_bps(cfg) -> float:
    """Mean offered load of one UE (bit/s)."""
    if isinstance(cfg, PoissonTraffic):
        return cfg.rate_mbps * 1e6
    if isinstance(cfg, SporadicTraffic):
        return cfg.rate_pps * cfg.packet_bytes * 8.0
    if isinstance(cfg, FtpTraffic):
        return cfg.file_rate_hz * cfg.file_kbytes * 8000.0
    return cfg.packet_bytes * 8.0 / (cfg.period_ms * 1e-3)
