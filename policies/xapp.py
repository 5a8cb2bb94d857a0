"""The RIC side of an xApp: a policy that asks one xApp (or a PRB xApp and a power xApp) over ZeroMQ.

Every decision the RIC sends the ``Observation`` as an E2-style indication (``simcore.e2``) on a
DEALER socket and waits for the control until ``timeout_ms`` after the decision began. A late,
missing, malformed, refused or infeasible answer applies the declared ``fallback`` policy to that
decision, and the decision's row in ``decisions.parquet`` says so (``xapp_status``,
``xapp_fallback``); the manifest's ``policy.xapp`` entry counts them by reason.

- Deadlines: the whole decision (both xApps of a pair) has ``timeout_ms``. Replies carry the
  indication's ``seq``; a late reply to an earlier indication is read and dropped.
- Dead xApps: the socket queues messages only on a live connection (ZMQ_IMMEDIATE), so an xApp that
  is gone costs no wait: the decision falls back at once (``unreachable``). ZeroMQ keeps reconnecting
  in the background, and a restarted xApp is asked again from the first decision after it is back.
  At the start of a run the RIC waits up to ``connect_timeout_ms`` for the xApp(s) to be reachable.
- Coordination of a pair (``endpoints: {prb: ..., power: ...}``): the PRB xApp is asked first
  (role ``prb``) and decides ``ue_ru`` and ``prb_owner``; the power xApp is then asked (role
  ``power``) with that decision attached as ``proposal`` and decides ``power_w``. The allocation is
  the PRB xApp's association and PRB owners with the power xApp's power on the PRBs that have an
  owner (power on idle PRBs is dropped). If either answer fails, the whole decision is the fallback's.
- Every answer from outside passes ``check_allocation``; one that does not is ``invalid``.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid

import numpy as np
import zmq

from simcore.contracts import RECORD_KEY, Allocation, InfeasibleAllocation, Observation, Policy, check_allocation
from simcore.e2 import SchemaError, encode_indication
from simcore.e2_decode import decode_reply
from simcore.plugins import PluginError, make_policy

log = logging.getLogger("oransim.xapp")

#: Outcomes of one decision, as recorded in ``xapp_status``.
STATUSES = ("ok", "timeout", "unreachable", "invalid", "error")
#: ZeroMQ endpoints the RIC can connect to.
ENDPOINT_RE = re.compile(r"^(tcp://[^\s]+:\d+|ipc://[^\s]+|inproc://[^\s]+)$")
#: Plain ints: pyzmq's enum flags cost an enum operation at every use, and this is the per-decision path.
_NOBLOCK, _POLLIN, _POLLOUT = int(zmq.NOBLOCK), int(zmq.POLLIN), int(zmq.POLLOUT)
_SNDMORE_NB = int(zmq.SNDMORE) | _NOBLOCK
#: zmq_poll itself: Socket.poll builds a Poller object at every call.
_poll = zmq.zmq_poll
#: The compiled send: zmq.Socket.send is a Python method (routing_id / group handling) around it.
_send = zmq.backend.Socket.send
#: Wall time between reconnection attempts to a vanished xApp (ZeroMQ's default is 100 ms).
RECONNECT_MS = 50


def check_endpoint(endpoint, field: str) -> str:
    if not isinstance(endpoint, str) or not ENDPOINT_RE.match(endpoint):
        raise ValueError(f"{field}: {endpoint!r} is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH or inproc://NAME)")
    return endpoint


class _Link:
    """One DEALER connection to one xApp, with the per-request deadline logic."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.sock = None
        self.up = False  # reachable at the last look: a request may then wait for a reconnection

    def open(self):
        if self.sock is None:
            self.sock = zmq.Context.instance().socket(zmq.DEALER)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection: a dead xApp costs no wait
            self.sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
            self.sock.connect(self.endpoint)
            self.pollin, self.pollout = [(self.sock, _POLLIN)], [(self.sock, _POLLOUT)]

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None

    def wait_connected(self, timeout_s: float) -> bool:
        self.open()
        return bool(self.sock.poll(max(0, math.ceil(timeout_s * 1e3)), zmq.POLLOUT))

    def request(self, frames: list, deadline: float, run_id: str, seq: int, shape: tuple, role: str):
        """('reply', Reply) or (status, reason) with status 'unreachable' / 'timeout' / 'invalid'.
        ``shape``: (U, R, K) the reply's arrays must have; replies to other indications (late ones)
        are dropped."""
        self.open()
        sock = self.sock
        # Sending without waiting succeeds whenever the connection is live (ZMQ_IMMEDIATE); only when it
        # is not, wait for it (up to the deadline if it was up at the last look).
        if not send_frames(sock, frames):
            wait_s = deadline - time.perf_counter() if self.up else 0.0
            if not _poll(self.pollout, max(0, math.ceil(wait_s * 1e3))) or not send_frames(sock, frames):
                return "unreachable", f"{self.endpoint}: no connection"
        while True:
            left_ms = (deadline - time.perf_counter()) * 1e3
            if left_ms <= 0 or not _poll(self.pollin, math.ceil(left_ms)):
                return "timeout", f"{self.endpoint}: no answer within the deadline"
            msg = recv_frames(sock)
            if msg and len(msg[0]) == 0:
                msg = msg[1:]  # the delimiter a REP (or our ROUTER) puts back
            try:
                reply = decode_reply(msg, n_ues=shape[0], n_rus=shape[1], n_prbs=shape[2], role=role)
            except SchemaError as exc:
                return "invalid", f"{self.endpoint}: {exc}"
            if reply.seq == seq and reply.run_id == run_id:
                return "reply", reply
            # a late answer to an earlier indication: drop it and keep waiting for ours


def send_frames(sock, frames: list, prefix: tuple = (b"",)) -> bool:
    """Send ``prefix`` (the envelope) then ``frames`` as one message without blocking; False if the
    socket cannot take it now. (Socket.send_multipart's checks cost more than the sends themselves.)"""
    try:
        for f in prefix:
            _send(sock, f, _SNDMORE_NB)
        for f in frames[:-1]:
            _send(sock, f, _SNDMORE_NB)
        _send(sock, frames[-1], _NOBLOCK)
    except zmq.Again:  # only the first part can be refused: ZeroMQ takes a message whole or not at all
        return False
    return True


def recv_frames(sock) -> list:
    """The frames of one waiting message, as ``zmq.Frame`` (whose ``more`` flag is read without the
    socket-option call ``recv_multipart`` makes per frame)."""
    recv = sock.recv
    f = recv(_NOBLOCK, False)
    out = [f]
    while f.more:
        f = recv(_NOBLOCK, False)
        out.append(f)
    return out


class XappPolicy(Policy):
    """``policy: {name: xapp, params: {endpoint: ..., timeout_ms: ..., fallback: pf}}``.

    endpoint: ZeroMQ endpoint of an xApp deciding whole allocations; or endpoints: {prb: ..., power: ...}
    for a cooperating pair. timeout_ms: deadline of one decision (wall time). fallback: policy name (or
    {name, params}) applied when the xApp does not answer in time or validly. connect_timeout_ms: wait
    for the xApp(s) at the start of the run. period_tti: decide every N TTIs instead of every
    scheduling interval (give the xApp's policy the same).
    """

    name = "xapp"

    def __init__(self, endpoint: str | None = None, endpoints: dict | None = None, timeout_ms: float = 50.0,
                 fallback="pf", connect_timeout_ms: float = 5000.0, period_tti: int | None = None):
        if (endpoint is None) == (endpoints is None):
            raise ValueError("give exactly one of endpoint (one xApp) or endpoints ({prb: ..., power: ...})")
        if endpoint is not None:
            self.roles = {"full": check_endpoint(endpoint, "endpoint")}
        else:
            if not isinstance(endpoints, dict) or set(endpoints) != {"prb", "power"}:
                raise ValueError(f"endpoints must map exactly prb and power to ZeroMQ endpoints (got {endpoints!r})")
            self.roles = {r: check_endpoint(endpoints[r], f"endpoints.{r}") for r in ("prb", "power")}
        for key, v in (("timeout_ms", timeout_ms), ("connect_timeout_ms", connect_timeout_ms)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
                raise ValueError(f"{key} must be a positive number of milliseconds (got {v!r})")
        if period_tti is not None and (isinstance(period_tti, bool) or not isinstance(period_tti, int) or period_tti < 1):
            raise ValueError(f"period_tti must be an integer >= 1 (got {period_tti!r})")
        self.timeout_s = timeout_ms / 1e3
        self.connect_timeout_s = connect_timeout_ms / 1e3
        self.decision_period_tti = period_tti
        fb = {"name": fallback} if isinstance(fallback, str) else fallback
        if not isinstance(fb, dict) or not isinstance(fb.get("name"), str) or set(fb) - {"name", "params"}:
            raise ValueError(f"fallback must be a policy name or {{name, params}} (got {fallback!r})")
        if fb["name"] == "xapp":
            raise ValueError("fallback: an xApp cannot be its own fallback; name an in-process policy")
        self.fallback_spec = {"name": fb["name"], "params": dict(fb.get("params") or {})}
        try:
            self.fallback = make_policy(self.fallback_spec["name"], self.fallback_spec["params"])
        except PluginError as exc:  # its message names policy.name / policy.params: say it is the fallback's
            raise ValueError(f"fallback: {str(exc).split(': ', 1)[-1]}") from None
        self.links = {role: _Link(ep) for role, ep in self.roles.items()}
        self._reset_counts()

    def _reset_counts(self):
        self.run_id = uuid.uuid4().hex
        self.seed: int | None = None
        self.seq = 0
        self.counts = dict.fromkeys(STATUSES, 0)
        self.reasons: list[str] = []  # the first few, for the manifest
        self.rtt_ms: list[float] = []  # answered decisions: wall time of the exchange
        self.remote_ms: list[float] = []  # ... of which the xApp reported deciding
        self._failing = False
        self._connected_once = False

    # ------------------------------------------------------------------------------ lifecycle
    def reset(self, seed=None):
        self._reset_counts()
        self.seed = seed
        self.fallback.reset(seed)
        self._connect()

    def _connect(self):
        """Wait (up to connect_timeout_ms) for every xApp to be reachable; go on without those that are not."""
        self._connected_once = True
        for link in self.links.values():
            link.up = link.wait_connected(self.connect_timeout_s)
            if not link.up:
                log.warning(f"xapp: {link.endpoint} not reachable after {self.connect_timeout_s * 1e3:g} ms; "
                            f"using the fallback '{self.fallback_spec['name']}' until it is")

    def wait_connected(self, timeout_s: float) -> bool:
        """True once every xApp of this policy is reachable (waits at most ``timeout_s``)."""
        end = time.perf_counter() + timeout_s
        return all(link.wait_connected(max(0.0, end - time.perf_counter())) for link in self.links.values())

    def close(self):
        for link in self.links.values():
            link.close()
        n_fb = sum(v for k, v in self.counts.items() if k != "ok")
        if n_fb:
            log.warning(f"xapp: {n_fb} of {self.seq} decisions used the fallback '{self.fallback_spec['name']}' ("
                        + ", ".join(f"{k} {v}" for k, v in self.counts.items() if k != "ok" and v) + ")")

    def summary(self) -> dict:
        def q(x, p):
            return float(np.percentile(x, p)) if x else None

        return {"xapp": {
            "endpoints": dict(self.roles), "timeout_ms": self.timeout_s * 1e3, "fallback": self.fallback_spec,
            "decisions": self.seq, "answered": self.counts["ok"],
            "fallbacks": sum(v for k, v in self.counts.items() if k != "ok"),
            "by_status": dict(self.counts), "first_reasons": list(self.reasons),
            "rtt_ms": {"p50": q(self.rtt_ms, 50), "p99": q(self.rtt_ms, 99), "max": q(self.rtt_ms, 100)},
        }}

    # ------------------------------------------------------------------------------- deciding
    def decide(self, obs: Observation) -> Allocation:
        if not self._connected_once:  # used without reset(): connect now
            self._connect()
        t0 = time.perf_counter()
        self.seq += 1
        status, result = self._ask(obs, t0 + self.timeout_s)
        if status == "ok":
            alloc, remote_ms = result
            self.rtt_ms.append((time.perf_counter() - t0) * 1e3)
            self.remote_ms.append(remote_ms)
            if self._failing:
                log.warning(f"xapp: answering again at TTI {obs.tti}")
        else:
            if not self._failing:
                log.warning(f"xapp: {status} at TTI {obs.tti} ({result}); fallback '{self.fallback_spec['name']}' "
                            "applied and counted; asking again at the next decision")
            if len(self.reasons) < 10:
                self.reasons.append(f"TTI {obs.tti}: {status}: {result}")
            alloc = self.fallback.decide(obs)
        self._failing = status != "ok"
        self.counts[status] += 1
        alloc.info = {**alloc.info, RECORD_KEY: {"xapp_status": status, "xapp_fallback": status != "ok"}}
        return alloc

    def _exchange(self, role: str, obs: Observation, deadline: float, proposal=None):
        """(status, Reply or reason) of one indication to the xApp playing ``role``."""
        link = self.links[role]
        frames = encode_indication(obs, run_id=self.run_id, seq=self.seq, role=role, proposal=proposal,
                                   deadline_ms=self.timeout_s * 1e3, policy_seed=self.seed)
        status, reply = link.request(frames, deadline, self.run_id, self.seq, (obs.n_ues, obs.n_rus, obs.n_prbs), role)
        link.up = status in ("reply", "invalid")
        if status != "reply":
            return status, reply
        if reply.kind == "error":
            return "error", f"{link.endpoint} refused: {reply.reason}"
        return "ok", reply

    def _ask(self, obs: Observation, deadline: float):
        if "full" in self.roles:
            status, reply = self._exchange("full", obs, deadline)
            if status != "ok":
                return status, reply
            alloc, remote_ms = Allocation(reply.ue_ru, reply.prb_owner, reply.power_w, dict(reply.info)), reply.decide_ms
        else:
            status, prb = self._exchange("prb", obs, deadline)
            if status != "ok":
                return status, f"PRB xApp: {prb}"
            proposal = {"ue_ru": prb.ue_ru, "prb_owner": prb.prb_owner}
            status, pw = self._exchange("power", obs, deadline, proposal)
            if status != "ok":
                return status, f"power xApp: {pw}"
            power = np.where(prb.prb_owner >= 0, pw.power_w, 0.0)  # the pair's rule: power only where a PRB has an owner
            alloc = Allocation(prb.ue_ru, prb.prb_owner, power, {"prb": dict(prb.info), "power": dict(pw.info)})
            remote_ms = (prb.decide_ms or 0.0) + (pw.decide_ms or 0.0)
        try:
            check_allocation(alloc, obs)
        except InfeasibleAllocation as exc:
            return "invalid", f"infeasible allocation: {exc}"
        return "ok", (alloc, remote_ms or 0.0)
