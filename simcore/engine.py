"""The SimPy engine: one O-RAN downlink, TTI by TTI.

Processes (SimPy time unit: integer nanoseconds, so TTI boundaries never drift):

- ``traffic``: at the start of each TTI window, draws every slice's arrivals in that window and
  passes them through the CU and then the DU processing queues (``processing.FifoServer``).
- ``tti``: at each TTI boundary moves the fading on, admits packets that left the DU into the UE
  buffers (tail drop on overflow) and drops expired packets; at decision TTIs fires
  ``decision_due`` and waits for it to be handled; then puts the TTI on air: hands the current
  allocation to the PHY backend and serves the UE FIFOs with the bits each UE's PRBs carried.
- ``ric``: on ``decision_due`` (every decision period), builds an
  ``Observation``, asks the policy for an ``Allocation`` and checks it.

The ``ric`` waits on ``decision_due`` before the ``tti`` process fires it and yields it, and SimPy
resumes the processes waiting on an event in the order they started waiting: the ``ric`` decides
first, and a decision made at TTI k is used from TTI k on. A TTI without a decision is one SimPy
event (the ``tti`` process's timeout): the per-TTI work is a few compiled calls, not events.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np
import simpy

from . import decision_fast as fast
from . import tti_fast
from .buffers import DELIVERED, DROP_HARQ, DROPPED, PROCESSING, QUEUED, PacketTable, UeBuffers
from .channel import Channel, drop_ues
from .contracts import (POWER_RTOL, RECORD_KEY, Allocation, DecisionArrays, InfeasibleAllocation, Observation,
                        Policy, check_allocation, weighted_sum_rate)
from .l2s import LinkToSystem
from .phy import LinkModel
from .processing import FifoServer
from .records import PACKET_CHUNK, DecisionRecorder, PacketRecorder, TableSink, TtiRecorder, ues_frame
from .scenario import Scenario
from .traffic import make_source
from .units import dbm_to_w

#: Time constant (TTIs) of the per-UE throughput average in the observation (textbook PF t_c).
EWMA_TTI = 100
#: Per TTI the throughput average decays by this factor (the EWMA with time constant EWMA_TTI).
_EWMA_DECAY = 1.0 - 1.0 / EWMA_TTI
#: ``tti_fast.finish``'s PRB bits when the link-to-system model gives each UE's capacity instead.
_NO_PRB_BITS = np.zeros((0, 0))
#: TTIs of traffic drawn (and passed through CU/DU processing) at a time.
TRAFFIC_BLOCK_TTI = 16
#: Every this many TTIs, finished packets are written out of the packet table.
HOUSEKEEPING_TTI = 1024
#: The output tables, in the order they are written.
TABLES = ("packets", "tti", "decisions", "timing")


class SimulationError(RuntimeError):
    """The run could not go on (e.g. a policy returned an infeasible allocation)."""


class RunResult:
    """What a run produced. The tables are read from their sinks on first access (from the
    staging folder's Parquet files when the run was spooled to disk)."""

    def __init__(self, scenario: Scenario, policy_name: str, phy_name: str, sinks: dict[str, TableSink],
                 ues, counts: dict, wall_s: float, phy_info: dict | None = None, spool_dir=None,
                 policy_info: dict | None = None):
        self.scenario, self.policy_name, self.phy_name = scenario, policy_name, phy_name
        self.sinks, self.ues, self.counts, self.wall_s = sinks, ues, counts, wall_s
        self.phy_info = phy_info or {}  # what the PHY backend reports of itself (e.g. ns-3 version)
        self.spool_dir = spool_dir  # folder holding the spooled tables, or None (in memory)
        self.policy_info = policy_info or {}  # what the policy reports of the run (Policy.summary)
        self._frames: dict = {}

    def table(self, name: str):
        if name not in self._frames:
            self._frames[name] = self.sinks[name].frame()
        return self._frames[name]

    @property
    def packets(self):
        return self.table("packets")

    @property
    def tti(self):
        return self.table("tti")

    @property
    def decisions(self):
        return self.table("decisions")

    @property
    def timing(self):
        """Per decision: wall time of the policy (the one table that is not reproducible)."""
        return self.table("timing")


class Engine:
    """One run. ``spool_dir``: write the packets, tti, decisions and timing tables there chunk by
    chunk as Parquet files (``oransim run`` passes the run folder's staging directory), instead
    of keeping them in memory."""

    def __init__(self, scenario: Scenario, policy: Policy, phy, progress: Callable[[int, int], None] | None = None,
                 spool_dir=None):
        s = self.s = scenario
        self.policy = policy
        self.phy = phy
        self.progress = progress
        seq = np.random.SeedSequence(s.seed)
        rng_geo, rng_chan, rng_traffic, rng_proc, rng_policy = (np.random.default_rng(x) for x in seq.spawn(5))
        self.policy_seed = int(rng_policy.integers(2**63))

        # --- topology, channel, link
        self.geo = drop_ues(s, rng_geo)
        self.channel = Channel(s, self.geo, rng_chan)
        self.link = LinkModel.from_scenario(s, ue_slice=self.geo.ue_slice)
        self.n_ues, self.n_rus, self.n_prbs = self.geo.ue_slice.size, s.n_ru, s.cell.prbs_per_ru
        self.tti_s = s.cell.tti_s
        self.tti_ns = int(round(self.tti_s * 1e9))
        self.n_tti = s.n_tti
        self.fh_latency_s = s.fronthaul.latency_us * 1e-6

        ue_slice = self.geo.ue_slice
        sl = s.slices
        per_slice = lambda f: np.array([f(x) for x in sl], dtype=float)[ue_slice]  # noqa: E731
        self.slice_weight = np.array([x.weight for x in sl], dtype=float)
        self.slice_names = tuple(x.name for x in sl)
        self.min_rate_bps = per_slice(lambda x: x.min_rate_mbps * 1e6)
        self.max_rate_bps = per_slice(lambda x: x.max_rate_mbps * 1e6)
        self.max_delay_ms = per_slice(lambda x: x.max_delay_ms)
        self.ru_max_power_w = dbm_to_w([ru.max_power_dbm for ru in s.cell.rus])
        self._equal_w = self.ru_max_power_w / self.n_prbs  # equal power per PRB (R,), the believed SINR's reference
        self._equal_power_w = float(self._equal_w[0])  # RU 0's, as a float (_objective, one RU)
        self._owner_rates = np.zeros(self.n_ues)  # _objective's per-UE rates
        self._rate_out = (np.empty((self.n_ues, self.n_prbs)), np.empty((self.n_ues, self.n_prbs)))  # _decision_arrays
        self.slice_power_cap_w = np.array(
            [dbm_to_w(x.power_cap_dbm) if x.power_cap_dbm is not None else np.inf for x in sl], dtype=float)
        self.serving_ru = np.argmax(self.channel.large_scale_gain, axis=1) if self.n_ues else np.zeros(0, int)
        for const in (self.geo.ue_slice, self.serving_ru, self.min_rate_bps, self.max_rate_bps, self.max_delay_ms,
                      self.slice_weight, self.ru_max_power_w, self.slice_power_cap_w):
            const.flags.writeable = False  # shared with every Observation: policies must not change them

        # --- traffic and processing
        traffic_rngs = [np.random.default_rng(x) for x in np.random.SeedSequence(rng_traffic.integers(2**63)).spawn(len(sl))]
        self.sources = [make_source(x.traffic, np.flatnonzero(ue_slice == i), traffic_rngs[i]) for i, x in enumerate(sl)]
        rng_cu, rng_du = (np.random.default_rng(x) for x in np.random.SeedSequence(rng_proc.integers(2**63)).spawn(2))
        self.cu = FifoServer(s.processing.cu.service_rate_pps, s.processing.cu.service, rng_cu)
        self.du = FifoServer(s.processing.du.service_rate_pps, s.processing.du.service, rng_du)
        self.packets = PacketTable()
        self.buffers = UeBuffers(
            self.n_ues,
            buffer_limit_bits=per_slice(lambda x: x.buffer_limit_kbytes * 8000.0),
            ue_slice=ue_slice,
            slice_deadline_s=np.array([x.max_delay_ms * 1e-3 for x in sl]),
            slice_drop_late=np.array([x.drop_late for x in sl], dtype=bool),
            packets=self.packets,
        )

        # --- MAC / RIC state
        self.allocation = Allocation.empty(self.n_ues, self.n_rus, self.n_prbs)
        # per UE: bits served in the TTI (scratch), none (zeros, never written), served in total and in the
        # interval, throughput average: rows of one array (the compiled end of TTI takes one; l2s_fast.E_*)
        self._ue_f = np.zeros((5, self.n_ues))
        self._served, self._no_served, self.served_bits_total, self.served_in_interval, self.avg_tput_bps = self._ue_f
        self.qos_met_last = np.ones(self.n_ues, dtype=bool)
        self.decision_period = policy.decision_period_tti or s.scheduling.interval_tti
        # a policy that decides from DecisionArrays gets them instead of an Observation (_decision_arrays)
        self.array_policy = callable(getattr(policy, "decide_arrays", None))
        self.ue_weight = self.slice_weight[ue_slice]
        self.ue_weight.flags.writeable = False
        self._plan = None  # _decide_compiled's constants (_compiled_plan, after the first decision)
        self._plan_tried = False
        # see PhyBackend; channel.draw_all_gains: the same draws for any PHY (the same realization as ns3-shm)
        self.phy_needs_full_gain = bool(getattr(phy, "needs_full_gain", False)) or scenario.channel.draw_all_gains
        self._ewma_per_bit = 1.0 / (EWMA_TTI * self.tti_s)  # served bits -> the average's increment (bit/s)

        # --- CSI reports (phy.csi) and the link-to-system model (phy.l2s)
        csi = s.phy.csi
        self.csi_period, self.csi_delay = csi.period_tti, csi.delay_tti
        self.csi_ideal = csi.period_tti == 1 and csi.delay_tti == 0
        self._reports: deque = deque()  # (TTI measured, gain, prb_rate, prb_sinr), oldest first
        self.l2s = None
        if s.phy.l2s.enabled:
            rng_l2s = np.random.default_rng(seq.spawn(1)[0])  # after the five above: they draw as before
            self.l2s = LinkToSystem(s.phy.l2s, s.cell.prb_bandwidth_hz, self.tti_s, self.n_ues, self.buffers,
                                    rng_l2s, DROP_HARQ)
        # LinkToSystem.tti: the whole TTI after the PHY in three compiled calls (worst-PRB MCS, no HARQ)
        self._whole_tti = self.l2s is not None and self.l2s.whole_tti

        # --- records: chunk by chunk, in memory or spooled to Parquet files
        self.spool_dir = None if spool_dir is None else Path(spool_dir)
        self.sinks = {t: TableSink(None if spool_dir is None else self.spool_dir / f"{t}.parquet") for t in TABLES}
        self.tti_rec = TtiRecorder(self.n_ues, self.n_rus, self.n_prbs, s.record.tti, self.tti_s, self.sinks["tti"])
        # wall time of each decide() goes to the timing table, kept apart from the reproducible ones
        self.decision_rec = DecisionRecorder(self.n_ues, self.n_rus, self.n_prbs, self.tti_s,
                                             self.sinks["decisions"], self.sinks["timing"])
        self.packet_rec = PacketRecorder(self.packets, ue_slice, self.slice_names, self.fh_latency_s,
                                         s.record.packets, self.sinks["packets"])

        self._staged: Observation | None = None  # built by step_to_decision, used by the RIC at that TTI
        self.env = simpy.Environment()
        self._decision_due = self.env.event()  # fired at decision TTIs, before the TTI goes on air; the RIC waits on it

    # ------------------------------------------------------------------------------- processes
    def _traffic_process(self):
        # Arrivals are drawn TRAFFIC_BLOCK_TTI TTIs ahead: their times are exact either way, and
        # nothing downstream feeds back into the sources or the CU/DU queues.
        block = TRAFFIC_BLOCK_TTI
        for k0 in range(0, self.n_tti, block):
            t0, t1 = k0 * self.tti_s, min(k0 + block, self.n_tti) * self.tti_s
            batches = [src.arrivals(t0, t1) for src in self.sources]
            t = np.concatenate([b[0] for b in batches])
            if t.size:
                order = np.argsort(t, kind="stable")
                t = t[order]
                ue = np.concatenate([b[1] for b in batches])[order]
                size = np.concatenate([b[2] for b in batches])[order]
                cu_dep = self.cu.serve(t)
                du_dep = self.du.serve(cu_dep)
                self.packets.add(ue, size, t, cu_dep, du_dep)
            yield self.env.timeout(block * self.tti_ns)

    def _tti_process(self):
        step = max(1, self.n_tti // 200)
        interval = self.s.scheduling.interval_tti
        for k in range(self.n_tti):
            if k:
                self.channel.advance()
                if k % interval == 0:
                    self._close_qos_interval(interval)
            if not self.csi_ideal:
                self._csi_report(k)
            now = k * self.tti_s
            self.buffers.arrive(now)  # admit the packets the DU finished, drop expired ones
            if k % HOUSEKEEPING_TTI == 0 and k:
                self._write_finished_packets()
            if self.progress is not None and k % step == 0:
                self.progress(k, self.n_tti)
            if k % self.decision_period == 0:  # the RIC (waiting on it already) decides first
                due, self._decision_due = self._decision_due, self.env.event()
                yield due.succeed(k)
            self._transmit(k)
            yield self.env.timeout(self.tti_ns)

    def _write_finished_packets(self) -> None:
        """Hand the finished packets before the oldest unfinished one to the packet recorder, once
        there are enough of them to be worth a chunk."""
        upto = self.buffers.first_queued()
        if upto - self.packets.base >= PACKET_CHUNK:
            self.packet_rec.flush(upto)

    def _ric_process(self):
        while True:
            k = yield self._decision_due
            self._decide(k)

    # ------------------------------------------------------------------------------ the steps
    def _csi_report(self, k: int) -> None:
        """Measure a CSI report at report TTIs; keep as the front of ``_reports`` the latest report
        usable at TTI ``k`` (measured at least ``delay`` TTIs ago; before the first one is, the first)."""
        reports = self._reports
        if k % self.csi_period == 0:
            gain, prb_rate, sinr = self._measure_csi()
            reports.append((k, gain, prb_rate, sinr))
        while len(reports) > 1 and reports[1][0] + self.csi_delay <= k:
            reports.popleft()

    def _measure_csi(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Full CSI of this TTI: a snapshot of every gain (the live array moves on with the fading)
        and the per-PRB rate and SINR estimated from it (serving RU, equal power per PRB)."""
        self.channel.refresh_all()
        snapshot = self.link.csi_snapshot(self.channel.gain, self.ru_max_power_w)  # (one RU, Shannon: compiled)
        if snapshot is not None:
            gain, prb_rate, sinr = snapshot
        else:
            gain = self.channel.gain.copy()
            prb_rate, sinr = self.link.estimated_prb_rate_bps(gain, self.serving_ru, self.ru_max_power_w)
        for a in (gain, prb_rate, sinr):
            # read-only: a CSI report's are shared by the observations of every decision it serves,
            # and the recorded objective reads the rate table (_objective)
            a.flags.writeable = False
        return gain, prb_rate, sinr

    def observation(self, k: int) -> Observation:
        if not self.csi_ideal:  # the latest CSI report (phy.csi)
            _, gain, prb_rate, sinr = self._reports[0]
        else:  # full CSI of this TTI: every entry drawn now
            gain, prb_rate, sinr = self._measure_csi()
        now = k * self.tti_s
        hol = self.buffers.hol_arrival_s
        return Observation(
            tti=k, time_s=now, slice_id=self.geo.ue_slice, serving_ru=self.serving_ru, gain=gain,
            prb_sinr=sinr, prb_rate_bps=prb_rate,
            buffer_bits=self.buffers.backlog_bits,
            hol_delay_ms=np.where(np.isfinite(hol), (now - hol) * 1e3, 0.0),
            avg_throughput_bps=self.avg_tput_bps.copy(), qos_met_last=self.qos_met_last.copy(),
            min_rate_bps=self.min_rate_bps, max_rate_bps=self.max_rate_bps, max_delay_ms=self.max_delay_ms,
            slice_weight=self.slice_weight, slice_names=self.slice_names, ru_max_power_w=self.ru_max_power_w,
            slice_power_cap_w=self.slice_power_cap_w, interval_tti=self.s.scheduling.interval_tti, link=self.link,
        )

    def _decision_arrays(self, k: int) -> DecisionArrays:
        """What an ``ArrayPolicy`` reads at the decision at TTI ``k``, without an ``Observation``: the
        channel part as the Observation's (every entry drawn with ideal CSI, else the latest report)."""
        backlog = self.buffers.backlog_bits
        if not self.csi_ideal:  # the latest CSI report (phy.csi)
            _, gain, rate, _ = self._reports[0]
        else:
            self.channel.refresh_all()
            gain = self.channel.gain  # (read before the channel moves on: no copy)
            # written into the same arrays at every decision (valid until it returns), the rows of the
            # UEs with data only (the others are not read: DecisionArrays)
            rate = self.link.estimated_prb_rate_bps(gain, self.serving_ru, self.ru_max_power_w, out=self._rate_out,
                                                    data_bits=backlog)[0]
        return self._arrays_of(k, backlog, rate, gain)

    def _arrays_of(self, k: int, backlog: np.ndarray, rate: np.ndarray, gain: np.ndarray) -> DecisionArrays:
        """``DecisionArrays`` of the decision at TTI ``k`` around its buffers, rate table and gains."""
        return DecisionArrays(k, self.geo.ue_slice, self.serving_ru, backlog, self.avg_tput_bps,
                              self.max_rate_bps, rate, gain, self.ue_weight, self.slice_weight, self.slice_names,
                              self.ru_max_power_w, self.slice_power_cap_w, self.s.scheduling.interval_tti, self.link)

    def _decide(self, k: int) -> None:
        staged, self._staged = self._staged, None
        if self._plan is not None and staged is None:
            return self._decide_compiled(k)
        policy = self.policy
        from_arrays = self.array_policy and (staged is None or staged.tti != k)
        if from_arrays:  # the classic schedulers: no Observation
            src, decide = self._decision_arrays(k), policy.decide_arrays
        else:
            src, decide = (staged if staged is not None and staged.tti == k else self.observation(k)), policy.decide
        t0 = time.perf_counter()
        try:
            alloc = decide(src)
        except (ValueError, RuntimeError, ArithmeticError) as exc:  # e.g. ESA refusing a space too large
            raise SimulationError(f"policy '{policy.name}' failed at TTI {k}: {exc}") from exc
        solve_ms = (time.perf_counter() - t0) * 1e3
        try:
            check_allocation(alloc, src)
        except InfeasibleAllocation as exc:
            raise SimulationError(f"policy '{policy.name}' returned an infeasible allocation at TTI {k}: {exc}") from None
        if not from_arrays:
            # a private copy: the PHY and channel cache work per allocation object, and a policy may
            # reuse (and later mutate) the arrays it returned (decide_arrays hands fresh ones over)
            alloc = Allocation(alloc.ue_ru.copy(), alloc.prb_owner.copy(), alloc.power_w.copy(), alloc.info)
        self.allocation = alloc
        self.decision_rec.record(k, self._objective(alloc, src), solve_ms, alloc.ue_ru, alloc.prb_owner, alloc.power_w,
                                 alloc.info.get(RECORD_KEY))  # the policy's own columns (e.g. xApp fallbacks)
        if from_arrays and self._plan is None and not self._plan_tried:
            self._plan_tried = True
            self._plan = self._compiled_plan(src)

    def _compiled_plan(self, src: DecisionArrays) -> tuple | None:
        """The constants of ``_decide_compiled`` when the policy is a metric scheduler that can run
        there (``compiled_plan``: the engine's read-only arrays, no slice power caps) and records no
        columns of its own; else None (every decision goes through ``decide_arrays``)."""
        plan_of = getattr(self.policy, "compiled_plan", None)
        if plan_of is None or not self.n_ues or self.decision_rec.extra_names:
            return None
        plan = plan_of(src)
        if plan is None:
            return None
        per_ue, serving_ru, ru_power_w, horizon_s, pf = plan
        return (per_ue, serving_ru, ru_power_w, float(horizon_s), bool(pf), self.ru_max_power_w * (1 + POWER_RTOL))

    def _decide_compiled(self, k: int) -> None:
        """``_decide`` for a metric scheduler (PF, max-CQI) in one compiled call
        (``decision_fast.metric_decision``): its ``decide_arrays`` on the same arrays, the feasibility
        check, the objective's per-UE rates and the decision record's row; the same values. The
        timing table's solve time is that call's (the policy's arithmetic and the check)."""
        buf = self.buffers
        if not self.csi_ideal:  # the latest CSI report (phy.csi)
            _, gain, rate, _ = self._reports[0]
        else:  # as _decision_arrays: every entry drawn, the rate rows of the UEs with data
            self.channel.refresh_all()
            gain = self.channel.gain
            rate = self.link.estimated_prb_rate_bps(gain, self.serving_ru, self.ru_max_power_w,
                                                    out=self._rate_out, data_bits=buf.backlog_bits)[0]
        per_ue, serving_ru, ru_power_w, horizon_s, pf, limit = self._plan
        rec = self.decision_rec
        i = rec.n
        t0 = time.perf_counter()
        ue_ru, owner, power, status = fast.metric_decision(
            rate, buf.enq_bits, buf.out_bits, self.avg_tput_bps, per_ue, serving_ru, ru_power_w, horizon_s, pf, limit,
            self._equal_power_w, self._owner_rates, i, k, rec.tti, rec.power_w, rec.ue_ru, rec.owner, rec.power)
        solve_ms = (time.perf_counter() - t0) * 1e3
        alloc = Allocation(ue_ru, owner, power)
        if status == 0:  # the full check decides (and names the broken budget)
            src = self._arrays_of(k, buf.backlog_bits, rate, gain)
            try:
                check_allocation(alloc, src)
            except InfeasibleAllocation as exc:
                raise SimulationError(f"policy '{self.policy.name}' returned an infeasible allocation at TTI {k}: "
                                      f"{exc}") from None
            self.allocation = alloc
            rec.record(k, self._objective(alloc, src), solve_ms, ue_ru, owner, power)
            return
        self.allocation = alloc
        if status == 2:
            objective = float(np.dot(self.ue_weight, self._owner_rates))
        else:
            objective = weighted_sum_rate(alloc, self._arrays_of(k, buf.backlog_bits, rate, gain))
        rec.commit(objective, solve_ms)

    def _objective(self, alloc: Allocation, src: Observation | DecisionArrays) -> float:
        """``weighted_sum_rate(alloc, src)``, the objective recorded with each decision. One RU with
        every active PRB at the equal share of the RU's power (the classic schedulers): the decision's
        rate table (computed from ``src.gain`` at that very power by the same SINR and rate functions)
        already holds each PRB's rate, so it is read, not recomputed:
        the same values, bit for bit."""
        if self.n_rus == 1 and self.n_ues:
            # per UE its PRBs' rates summed in PRB order (np.bincount's), compiled; False: other powers
            if fast.one_ru_owner_rates(alloc.prb_owner[0], alloc.power_w[0], src.prb_rate_bps, self._equal_power_w,
                                       self._owner_rates):
                return float(np.dot(self.ue_weight, self._owner_rates))
        return weighted_sum_rate(alloc, src)

    def _transmit(self, k: int) -> None:
        alloc = self.allocation
        now = k * self.tti_s
        owner = alloc.prb_owner
        if self.phy_needs_full_gain:  # e.g. ns-3 computes every UE's CQI from the whole table
            if k % self.decision_period:  # at decisions the observation has refreshed every entry
                self.channel.refresh_all()
        else:
            next_decision = min(self.n_tti, (k // self.decision_period + 1) * self.decision_period)
            self.channel.refresh_prbs(owner, until_tti=next_decision)  # the gains the PHY reads, at this TTI
        res = self.phy.step(k, alloc, self.channel.gain)
        done_at = now + self.tti_s + self.fh_latency_s
        rec = self.tti_rec
        if self._whole_tti:  # the link-to-system step, the FIFO service and the TTI record compiled
            self.l2s.tti(k, owner, res.prb_sinr, alloc.power_w, None if self.csi_ideal else self._reports[0][3],
                         self._equal_w, now, done_at, self._ue_f, _EWMA_DECAY, self._ewma_per_bit, rec.row(k), rec)
            rec.filled(k)
            return
        if self.l2s is not None:
            capacity, served_here = self.l2s.step(k, owner, res.prb_sinr, self._believed_sinr(alloc, res.prb_sinr),
                                                  now, done_at)
            prb_bits = _NO_PRB_BITS
        else:  # each UE served with the bits its PRBs carried
            capacity = served_here = self._no_served
            prb_bits = np.ascontiguousarray(res.prb_bits, dtype=float)
        # serve the FIFOs, count the served bits (totals, interval, throughput average) and write the
        # TTI record's row in one compiled call: the numpy operations it replaces, in their order
        pk, buf = self.packets, self.buffers
        tti_fast.finish(owner, prb_bits, capacity, served_here, self._served, now, done_at, pk.f, pk.i, pk.c,
                        pk.base, buf.uf, buf.ui, self.served_bits_total, self.served_in_interval, self.avg_tput_bps,
                        _EWMA_DECAY, self._ewma_per_bit, rec.row(k), rec.served_bits, rec.buffer_bits, rec.prb_owner,
                        rec.prb_sinr, rec.prb_power_w, res.prb_sinr, alloc.power_w)
        rec.filled(k)

    def _believed_sinr(self, alloc: Allocation, actual_sinr: np.ndarray) -> np.ndarray:
        """(R, K) SINR the MCS of each active PRB is chosen from: with ideal CSI the PRB's own SINR
        in this TTI; otherwise the latest report's (serving RU, equal power per PRB) scaled by the
        PRB's power against the equal share."""
        if self.csi_ideal:
            return actual_sinr
        _, _, _, sinr = self._reports[0]
        if self.l2s.fast:  # the same operations compiled
            return self.l2s.believed_sinr_fast(alloc.prb_owner, alloc.power_w, sinr, self.ru_max_power_w / self.n_prbs)
        owner = alloc.prb_owner
        active = owner >= 0
        equal = (self.ru_max_power_w / self.n_prbs)[:, None]
        return np.where(active, sinr[np.where(active, owner, 0), np.arange(self.n_prbs)] * alloc.power_w / equal, np.nan)

    def _close_qos_interval(self, interval: int) -> None:
        """qos_met_last = (served over the interval / its length >= min rate) | (buffer empty), compiled."""
        self.qos_met_last = np.empty(self.n_ues, dtype=bool)  # a fresh array: earlier ones may be held
        tti_fast.close_interval(self.served_in_interval, interval * self.tti_s, self.min_rate_bps, self.buffers.uf,
                                self.qos_met_last)

    # ------------------------------------------------------------------------------------ run
    def run(self) -> RunResult:
        t0 = time.perf_counter()
        self.start()
        try:
            self.env.run(until=self.n_tti * self.tti_ns)
            counts = self.conservation()
            self.tti_rec.close()
            self.decision_rec.close()
            self.packet_rec.close()
        except BaseException:
            for sink in self.sinks.values():
                sink.abort()
            raise
        finally:
            try:
                self.phy.close()
            finally:
                self.policy.close()
        if self.progress is not None:
            self.progress(self.n_tti, self.n_tti)
        wall = time.perf_counter() - t0
        phy_info = self.phy.info() if hasattr(self.phy, "info") else {}
        ues = ues_frame(self.geo, self.channel, self.serving_ru, self.slice_names)
        return RunResult(self.s, self.policy.name, getattr(self.phy, "name", "?"), self.sinks, ues, counts, wall,
                         phy_info, self.spool_dir, self.policy.summary())

    # ------------------------------------------------- stepping from outside (Gymnasium env)
    def start(self) -> None:
        """Reset the policy, open the PHY and start the processes (``run`` does it; so does a caller
        that steps the engine decision by decision with ``step_to_decision``, then closes the PHY)."""
        self.policy.reset(self.policy_seed)
        self.phy.open(self.s, self.geo, self.link, channel=self.channel, serving_ru=self.serving_ru)
        env = self.env
        env.process(self._ric_process())
        env.process(self._traffic_process())
        env.process(self._tti_process())

    def step_to_decision(self) -> Observation | None:
        """Process events until the RIC is due to decide (the TTI process has fired the decision, the
        RIC has not handled it); return the Observation the RIC will hand to its policy, or None
        once the run's last TTI is done. The policy's allocation applies from that TTI on."""
        due, end = self._decision_due, self.n_tti * self.tti_ns
        while self._decision_due is due:
            if self.env.peek() >= end:
                return None
            self.env.step()
        self._staged = self.observation(due.value)
        return self._staged

    def conservation(self) -> dict:
        """Packet and bit accounting at the current time: generated = delivered + dropped + queued + processing."""
        by_status = self.packet_rec.counts_by_status()
        out = {"generated_packets": sum(n for n, _ in by_status.values()),
               "generated_bits": float(sum(b for _, b in by_status.values()))}
        for code, name in ((DELIVERED, "delivered"), (DROPPED, "dropped"), (QUEUED, "queued"), (PROCESSING, "processing")):
            out[f"{name}_packets"], out[f"{name}_bits"] = by_status[code]
        out["buffer_bits"] = float(self.buffers.backlog_bits.sum())
        out["served_bits"] = float(self.served_bits_total.sum())
        if self.l2s is not None:  # bits in the buffers that are in blocks not yet delivered
            out["harq_bits"] = self.l2s.in_flight_bits
            out.update({f"l2s_{k}": v for k, v in self.l2s.stats.items()})
        return out
