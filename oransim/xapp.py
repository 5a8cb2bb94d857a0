"""The xApp side: answer the RIC's indications over ZeroMQ (``oransim xapp serve``).

``XappServer`` binds a ROUTER socket and answers every indication (``simcore.e2``) with a control
built by a handler, or with an error saying why it cannot. It keeps one handler per run of the
simulator (the indication's ``run_id``), built with that run's policy seed, so a policy behaves as
it would in-process and an xApp restarted mid-run starts afresh on the next indication. When
several indications of the same RIC are waiting (the xApp fell behind), only the newest is answered:
the RIC has already given up on the others.

``policy_handler(name, params)`` turns any registered policy (``oransim.policies`` entry points:
classic, optimum, learned with its checkpoint) into such a handler; it decides whole allocations,
so it serves the roles ``full`` and ``prb`` and refuses ``power``.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections import OrderedDict
from typing import Callable

import zmq

from simcore.contracts import Allocation
from simcore.e2 import SCHEMA, Indication, SchemaError, encode_control, encode_error
from simcore.e2_decode import decode_indication, message_ids

#: Plain ints: pyzmq's enum flags cost an enum operation at every use.
_POLLIN, _EVENTS = int(zmq.POLLIN), int(zmq.EVENTS)
_poll = zmq.zmq_poll
#: Runs whose handler (policy state) an xApp keeps at once; the oldest is dropped beyond this.
MAX_RUNS = 8

Handler = Callable[[Indication], Allocation]


class XappRefusal(ValueError):
    """A handler cannot answer this indication (e.g. a role it does not play); the text says why."""


class UsageError(ValueError):
    """Bad command-line input for ``oransim xapp serve``; one line naming the option."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class XappServer:
    """Answers indications on ``bind`` with ``make_handler(policy_seed)(indication) -> Allocation``.

    For the role ``power`` the returned allocation's ``power_w`` is the answer (its other arrays are
    not sent). ``tcp://127.0.0.1:*`` binds a free port; ``endpoint`` is then the one bound.
    """

    def __init__(self, bind: str, make_handler: Callable[[int | None], Handler], label: str = "xapp",
                 say: Callable[[str], None] = _stderr, max_runs: int = MAX_RUNS):
        self.make_handler, self.label, self.say, self.max_runs = make_handler, label, say, max_runs
        self.runs: OrderedDict[str, Handler] = OrderedDict()
        self.answered = self.refused = self.skipped = 0
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        try:
            self.sock.bind(bind)
        except zmq.ZMQError as exc:
            self.sock.close()
            raise UsageError(f"--bind {bind}: {exc}") from None
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def close(self) -> None:
        if not self.sock.closed:
            self.sock.close(linger=0)
            if self.endpoint.startswith("ipc://"):  # libzmq may leave the socket file behind
                try:
                    os.unlink(self.endpoint[len("ipc://"):])
                except OSError:
                    pass

    def serve(self, stop: threading.Event | None = None, poll_ms: int = 100) -> None:
        """Answer until ``stop`` is set (or forever); closes the socket on the way out."""
        from policies.xapp import recv_frames, send_frames

        sock, items = self.sock, [(self.sock, _POLLIN)]
        get = sock.get
        try:
            while stop is None or not stop.is_set():
                if not _poll(items, poll_ms):
                    continue
                newest: dict[bytes, list] = {}
                while True:  # drain: per RIC, only the newest waiting indication is still wanted
                    msg = recv_frames(sock)
                    peer = msg[0].bytes
                    self.skipped += peer in newest
                    newest[peer] = msg
                    if not get(_EVENTS) & _POLLIN:  # nothing else waiting (a poll without a syscall)
                        break
                for msg in newest.values():
                    delim = len(msg) > 1 and len(msg[1]) == 0
                    envelope = (msg[0], b"") if delim else (msg[0],)
                    send_frames(sock, self.answer(msg[2:] if delim else msg[1:]), envelope)
        finally:
            self.close()

    def answer(self, frames) -> list:
        """The reply frames (control or error) to one request's frames."""
        try:
            ind = decode_indication(frames)
        except SchemaError as exc:
            self.refused += 1
            self.say(f"{self.label}: rejected a message: {exc}")
            run_id, seq = message_ids(frames)
            return encode_error(run_id=run_id, seq=seq, reason=str(exc))
        handler = self.runs.get(ind.run_id)
        if handler is None:
            try:
                handler = self.make_handler(ind.policy_seed)
            except Exception as exc:  # noqa: BLE001 - the RIC is told, the xApp keeps serving
                self.refused += 1
                self.say(f"{self.label}: cannot start run {ind.run_id[:8]}: {exc}")
                return encode_error(run_id=ind.run_id, seq=ind.seq, reason=f"xApp cannot start: {exc}")
            self.runs[ind.run_id] = handler
            while len(self.runs) > self.max_runs:
                self.runs.popitem(last=False)
            self.say(f"{self.label}: run {ind.run_id[:8]} started (policy seed {ind.policy_seed})")
        self.runs.move_to_end(ind.run_id)
        t0 = time.perf_counter()
        try:
            alloc = handler(ind)
        except XappRefusal as exc:
            self.refused += 1
            return encode_error(run_id=ind.run_id, seq=ind.seq, reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - a failing decision is reported to the RIC, not fatal here
            self.refused += 1
            self.say(f"{self.label}: decision {ind.seq} of run {ind.run_id[:8]} failed: {type(exc).__name__}: {exc}")
            return encode_error(run_id=ind.run_id, seq=ind.seq, reason=f"{type(exc).__name__}: {exc}")
        ms = (time.perf_counter() - t0) * 1e3
        self.answered += 1
        return encode_control(alloc, run_id=ind.run_id, seq=ind.seq, role=ind.role, decide_ms=ms)


def policy_handler(name: str, params: dict | None = None) -> Callable[[int | None], Handler]:
    """``make_handler`` for ``XappServer`` running the registered policy ``name`` (built once per run)."""
    from simcore.plugins import make_policy

    make_policy(name, params)  # fail now, with the plug-in's message, not at the first indication

    def make(seed):
        policy = make_policy(name, params)
        policy.reset(seed)

        def handle(ind: Indication) -> Allocation:
            if ind.role == "power":
                raise XappRefusal(f"policy '{name}' decides whole allocations; it cannot decide power for a given "
                                  "PRB assignment (role 'power')")
            return policy.decide(ind.obs)

        return handle

    return make


def parse_params(items: list[str]) -> dict:
    """``--params`` values: KEY=VALUE pairs (VALUE read as YAML: 3, 0.5, true, [1, 2], text) or a
    YAML/JSON mapping ``{key: value, ...}``; later ones win."""
    import yaml

    out: dict = {}
    for item in items:
        text = item.strip()
        if text.startswith("{"):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise UsageError(f"--params {item!r}: not a YAML mapping ({str(exc).splitlines()[0]})") from None
            if not isinstance(value, dict):
                raise UsageError(f"--params {item!r}: not a mapping")
            out.update({str(k): v for k, v in value.items()})
            continue
        key, eq, raw = text.partition("=")
        if not eq or not key.strip().isidentifier():
            raise UsageError(f"--params {item!r}: expected KEY=VALUE or a mapping {{key: value}}")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw  # not YAML: keep the text as it is
    return out


def serve_policy(name: str, params_items: list[str], bind: str, say: Callable[[str], None] = _stderr) -> None:
    """``oransim xapp serve``: bad input raises ``UsageError`` (one line); runs until interrupted."""
    from policies.xapp import check_endpoint
    from simcore.plugins import PluginError

    if name == "xapp":
        raise UsageError("POLICY: 'xapp' is the RIC side; serve an in-process policy (e.g. pf)")
    try:
        check_endpoint(bind, "--bind")
    except ValueError as exc:
        if not bind.endswith(":*"):
            raise UsageError(str(exc)) from None
    params = parse_params(params_items)
    try:
        make = policy_handler(name, params)
    except (PluginError, OSError, ValueError) as exc:  # unknown name, bad params, unreadable checkpoint
        raise UsageError(str(exc).replace("policy.name", "POLICY").replace("policy.params", "--params")) from None
    server = XappServer(bind, make, label=f"xapp {name}", say=say)
    # What is loaded by now (numpy, the policy, its checkpoint) lives as long as the xApp: keep it out
    # of the garbage collector's full passes, which would otherwise walk it all now and then mid-decision.
    gc.freeze()
    say(f"xapp: serving policy '{name}' on {server.endpoint} (schema {SCHEMA}); Ctrl-C stops")
    server.serve()
