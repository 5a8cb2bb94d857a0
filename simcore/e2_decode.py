"""Decoding of the E2-style messages of ``simcore.e2`` (schema ``oransim.e2/2``): an xApp decodes
indications, the RIC decodes controls and errors.

Both sides see the same header at every decision of a run, so each header is checked once
(``_parse_header``, then ``_plan`` for its ``arrays`` list) and afterwards only looked up; a message
then costs one unpack of its prelude and one structured numpy view of its payload (``_Record``).
Every check raises ``SchemaError`` with one line naming the field and the cause.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct

import numpy as np

from .contracts import Observation
from .e2 import (_DTYPES, _PRELUDE, ALIGN, CANONICAL, CONSTANT_ARRAYS, CONTROL_ARRAYS, LINK_FIELDS, OBS_ARRAYS, OBS_SCALARS,
                 PROPOSAL_ARRAYS, ROLE_RETURNS, ROLES, SCHEMA, SCHEMA_FAMILY, WIRE_DTYPES, Indication, Reply,
                 SchemaError, _remember)
from .phy import LinkModel


def _raw(frame) -> bytes:
    return frame if type(frame) is bytes else bytes(frame)  # bytes, bytearray, memoryview or zmq.Frame


#: Header bytes -> the header checked by ``_parse_header`` (a run sends the same header every decision).
_HEADERS: dict = {}


def read_header(frames) -> dict:
    """The JSON header of a message, with its schema name and version, kind, run_id and arrays
    list's type checked. Headers seen before are returned from a cache: treat the dict as read-only."""
    if not frames:
        raise SchemaError("message has no frames")
    raw = _raw(frames[0])
    head = _HEADERS.get(raw)
    return head if head is not None else _remember(_HEADERS, raw, _parse_header(raw))


def _parse_header(raw: bytes) -> dict:
    try:
        head = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SchemaError(f"header (frame 0) is not UTF-8 JSON: {exc}") from None
    if not isinstance(head, dict):
        raise SchemaError(f"header (frame 0) is a JSON {type(head).__name__}, expected an object")
    schema = head.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_FAMILY):
        raise SchemaError(f"not an {SCHEMA_FAMILY[:-1]} message (header field 'schema' is {schema!r})")
    if schema != SCHEMA:
        raise SchemaError(f"schema version '{schema}' is not supported (this side speaks '{SCHEMA}')")
    if head.get("kind") not in _PRELUDE:
        raise SchemaError(f"header field 'kind' is {head.get('kind')!r}, expected one of {', '.join(_PRELUDE)}")
    if not isinstance(head.get("run_id"), str):
        raise SchemaError("header field 'run_id' missing or not a str")
    if not isinstance(head.get("arrays"), list):
        raise SchemaError(f"{head['kind']}: header field 'arrays' missing or not a list")
    return head


def _payload(frames, kind: str, end: int) -> tuple[memoryview, tuple]:
    """The payload frame and its prelude, with the frame count and the payload's size checked."""
    if len(frames) != 2:
        raise SchemaError(f"{kind}: {len(frames)} frame(s); expected the header and one payload frame")
    payload = memoryview(frames[1])
    if payload.nbytes < end:
        raise SchemaError(f"{kind}: payload frame has {payload.nbytes} bytes, the header and prelude need {end}")
    return payload, _PRELUDE[kind].unpack_from(payload)


def _plan(kind: str, entries: list, allowed: dict, dims: dict | None) -> tuple[dict, int]:
    """Check every entry of an ``arrays`` list: name -> (dtype, shape, offset, decoded dtype), and the
    payload bytes they need (prelude included)."""
    plan, start = {}, _PRELUDE[kind].size
    end = start
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise SchemaError(f"{kind}: arrays[{i}] is not an object with a 'name'")
        name = e["name"]
        if name in plan:
            raise SchemaError(f"{kind}: array '{name}' declared twice")
        spec = allowed.get(name)
        if spec is None:
            raise SchemaError(f"{kind}: unknown array '{name}' (expected {', '.join(allowed)})")
        ak, sym = spec
        dt, shape, offset = e.get("dtype"), e.get("shape"), e.get("offset")
        dtype = _DTYPES.get(dt) if dt in WIRE_DTYPES[ak] else None
        if dtype is None:
            raise SchemaError(f"{kind}: array '{name}' has dtype {dt!r}, expected one of {', '.join(WIRE_DTYPES[ak])}")
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise SchemaError(f"{kind}: array '{name}' has shape {shape!r}, expected a list of non-negative integers")
        if sym is not None and dims is not None:
            want = [dims[s] for s in sym]
            if shape != want:
                raise SchemaError(f"{kind}: array '{name}' has shape {shape}, expected {want} "
                                  f"({', '.join(f'{s}={dims[s]}' for s in sym)})")
        if type(offset) is not int or offset < start or offset % ALIGN:
            raise SchemaError(f"{kind}: array '{name}' has offset {offset!r}, expected a multiple of {ALIGN} "
                              f"from {start} (after the {start}-byte prelude)")
        plan[name] = (dtype, tuple(shape), offset, CANONICAL[dtype.kind if ak == "n" else ak])
        end = max(end, offset + math.prod(shape) * dtype.itemsize)
    return plan, end


def _require(kind: str, got, names) -> None:
    missing = [n for n in names if n not in got]
    if missing:
        raise SchemaError(f"{kind}: missing array(s) {', '.join(missing)}")


class _Record:
    """Arrays at fixed offsets of a buffer read as the fields of one structured numpy dtype: one view
    of the buffer per message, then a field lookup per array (a third of a view per array)."""

    def __init__(self, plan_items: list, base: int = 0):
        self.names = [n for n, _ in plan_items]
        ends = [o + math.prod(sh) * d.itemsize for _, (d, sh, o, _) in plan_items]
        self.dtype = np.dtype({"names": self.names, "formats": [(d, sh) for _, (d, sh, _, _) in plan_items],
                               "offsets": [o - base for _, (_, _, o, _) in plan_items],
                               "itemsize": max(ends, default=base) - base})
        self.convert = [(n, c) for n, (d, _, _, c) in plan_items if d != c]  # foreign dtypes: to the canonical one

    def read(self, buf) -> dict:
        rec = np.ndarray((), self.dtype, buf)
        out = {n: rec[n] for n in self.names}
        for n, c in self.convert:
            out[n] = out[n].astype(c)
        return out


def _new_observation_maker():
    """Observation(**fields), or the same object built without the frozen dataclass's __init__ (one
    object.__setattr__ per field cost a quarter of a decode) while Observation has nothing else to run."""
    names = {f.name for f in dataclasses.fields(Observation)}
    if hasattr(Observation, "__post_init__") or names != {*OBS_ARRAYS, *OBS_SCALARS, "tti", "time_s", "link"}:
        return lambda fields: Observation(**fields)

    def make(fields: dict) -> Observation:
        obs = object.__new__(Observation)
        obs.__dict__.update(fields)
        return obs
    return make


_new_observation = _new_observation_maker()


_INDICATION_ARRAYS = {False: {**OBS_ARRAYS, **{f"link.{f.name}": ("n", None) for f in LINK_FIELDS}}}
_INDICATION_ARRAYS[True] = {**_INDICATION_ARRAYS[False], **{f"proposal.{n}": CONTROL_ARRAYS[n] for n in PROPOSAL_ARRAYS}}
_SHARED = frozenset(CONSTANT_ARRAYS) | {f"link.{f.name}" for f in LINK_FIELDS}


class _IndicationPlan:
    """Everything an indication's header fixes, checked once: the arrays' plan split into the
    per-decision ones and the constants, and the constants last decoded (reused while their bytes
    stay the same)."""

    def __init__(self, head: dict):
        if head["kind"] != "indication":
            raise SchemaError(f"expected an indication, got kind '{head['kind']}'")
        self.run_id = head["run_id"]
        self.role = role = head.get("role", "full")
        if role not in ROLES:
            raise SchemaError(f"indication: role {role!r} is not one of {', '.join(ROLES)}")
        d = head.get("dims")
        if not isinstance(d, dict) or any(type(d.get(s)) is not int or d[s] < 0 for s in "URKS"):
            raise SchemaError("indication: header field 'dims' must map U, R, K and S to non-negative integers")
        dims = {s: d[s] for s in "URKS"}
        plan, self.end = _plan("indication", head["arrays"], _INDICATION_ARRAYS[role == "power"], dims)
        _require("indication", plan, OBS_ARRAYS)
        if role == "power":
            _require("indication", plan, [f"proposal.{n}" for n in PROPOSAL_ARRAYS])
        ob = head.get("observation")
        if not isinstance(ob, dict):
            raise SchemaError("indication: header field 'observation' missing or not an object")
        self.scalars = {}
        for key, typ in OBS_SCALARS.items():
            v = ob.get(key)
            if not isinstance(v, typ) or isinstance(v, bool):
                raise SchemaError(f"indication: observation.{key} missing or not a {typ.__name__}")
            self.scalars[key] = v if typ is not list else tuple(str(x) for x in v)
        if len(self.scalars["slice_names"]) != dims["S"]:
            raise SchemaError(f"indication: observation.slice_names has {len(self.scalars['slice_names'])} names "
                              f"for S={dims['S']}")
        self.link_scalars = _link_scalars(ob.get("link"), plan)
        seed, deadline = head.get("policy_seed"), head.get("deadline_ms")
        if seed is not None and (type(seed) is not int or seed < 0):
            raise SchemaError("indication: policy_seed must be a non-negative integer or null")
        if deadline is not None and (not isinstance(deadline, (int, float)) or isinstance(deadline, bool)):
            raise SchemaError("indication: deadline_ms must be a number or null")
        self.deadline_ms, self.policy_seed = deadline, seed
        state = [(n, p) for n, p in plan.items() if n not in _SHARED]
        shared = [(n, p) for n, p in plan.items() if n in _SHARED]
        self.state = _Record(state)
        # the constants are compared as one span of bytes when no per-decision array lies inside it
        lo = min(p[2] for _, p in shared)
        hi = max(p[2] + math.prod(p[1]) * p[0].itemsize for _, p in shared)
        inside = any(lo < p[2] + math.prod(p[1]) * p[0].itemsize and p[2] < hi for _, p in state)
        self.span = None if inside else (lo, hi)
        self.shared = _Record(shared, 0 if inside else lo)
        self.last = (None, None, None)  # (bytes of the span, arrays, link): one attribute, replaced whole
        self.fields = {**self.scalars, "tti": 0, "time_s": 0.0, "link": None}

    def constants(self, payload: memoryview) -> tuple[dict, LinkModel]:
        if self.span is not None:
            lo, hi = self.span
            raw = payload[lo:hi].tobytes()
            last_raw, last_arrays, last_link = self.last
            if raw == last_raw:
                return last_arrays, last_link
            arrays = self.shared.read(raw)
        else:
            arrays = self.shared.read(payload.tobytes())
        for a in arrays.values():  # shared between decisions, as the scenario's own arrays are in-process
            a.flags.writeable = False
        kw = dict(self.link_scalars)
        kw.update({n[5:]: arrays.pop(n) for n in list(arrays) if n.startswith("link.")})
        link = LinkModel(**kw)
        if self.span is not None:
            self.last = (raw, arrays, link)
        return arrays, link


def _link_scalars(head_link, plan: dict) -> dict:
    if not isinstance(head_link, dict):
        raise SchemaError("indication: observation.link missing or not an object")
    unknown = set(head_link) - {f.name for f in LINK_FIELDS}
    if unknown:
        raise SchemaError(f"indication: unknown field(s) observation.link.{', '.join(sorted(unknown))}")
    for f in LINK_FIELDS:
        if f"link.{f.name}" not in plan and f.name not in head_link and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"indication: observation.link.{f.name} missing")
    return {k: v for k, v in head_link.items() if f"link.{k}" not in plan}


_IND_PLANS: dict = {}
_LAST_PLAN: tuple = (None, None)


def decode_indication(frames) -> Indication:
    """The ``Indication`` in ``frames``; raises ``SchemaError`` naming what is wrong."""
    if not frames:
        raise SchemaError("message has no frames")
    global _LAST_PLAN
    raw = _raw(frames[0])
    last_raw, plan = _LAST_PLAN  # one read: another thread may replace it meanwhile
    if raw != last_raw:  # comparing with the last header is cheaper than hashing it for the lookup
        plan = _IND_PLANS.get(raw)
        if plan is None:
            plan = _remember(_IND_PLANS, raw, _IndicationPlan(read_header([raw])))
        _LAST_PLAN = (raw, plan)
    payload, (seq, tti, time_s) = _payload(frames, "indication", plan.end)
    shared, link = plan.constants(payload)
    arrays = plan.state.read(bytearray(payload))  # one copy: the per-decision arrays are the policy's own
    proposal = {n: arrays.pop(f"proposal.{n}") for n in PROPOSAL_ARRAYS} if plan.role == "power" else {}
    fields = {**plan.fields, **shared, **arrays}
    fields["tti"], fields["time_s"], fields["link"] = tti, time_s, link
    obs = _new_observation(fields)
    return Indication(obs, plan.run_id, seq, plan.role, proposal, plan.deadline_ms, plan.policy_seed)


_REPLY_PLANS: dict = {}


def decode_reply(frames, *, n_ues: int, n_rus: int, n_prbs: int, role: str = "full") -> Reply:
    """The control (or error) in ``frames``, with the arrays ``role`` needs checked against U, R, K."""
    if not frames:
        raise SchemaError("message has no frames")
    key = (_raw(frames[0]), role, n_ues, n_rus, n_prbs)
    got = _REPLY_PLANS.get(key)
    if got is None:
        got = _remember(_REPLY_PLANS, key, _reply_plan(read_header([key[0]]), role, n_ues, n_rus, n_prbs))
    head, plan, end = got
    kind = head["kind"]
    payload, prelude = _payload(frames, kind, end)
    if kind == "error":
        return Reply("error", head["run_id"], prelude[0], reason=head["reason"])
    arrays = plan.read(bytearray(payload))
    seq, decide_ms = prelude
    return Reply("control", head["run_id"], seq, arrays.get("ue_ru"), arrays.get("prb_owner"), arrays.get("power_w"),
                 dict(head["info"]), None if math.isnan(decide_ms) else decide_ms)


def _reply_plan(head: dict, role: str, n_ues: int, n_rus: int, n_prbs: int) -> tuple:
    kind = head["kind"]
    if kind == "error":
        if not isinstance(head.get("reason"), str):
            raise SchemaError("error: header field 'reason' missing or not a string")
        return head, None, _PRELUDE["error"].size
    if kind != "control":
        raise SchemaError(f"expected a control or an error, got kind '{kind}'")
    plan, end = _plan("control", head["arrays"], CONTROL_ARRAYS, {"U": n_ues, "R": n_rus, "K": n_prbs})
    _require("control", plan, ROLE_RETURNS[role])
    info = head.get("info", {})
    if not isinstance(info, dict):
        raise SchemaError("control: header field 'info' must be an object")
    head = {**head, "info": info}
    return head, _Record([(n, p) for n, p in plan.items() if n in ROLE_RETURNS[role]]), end


def message_ids(frames) -> tuple[str, int]:
    """run_id and seq of a message as far as they can be read ("" and -1 where they cannot), e.g. to
    address an error about a message that failed to decode, or to drop a late reply unread."""
    try:
        head = json.loads(_raw(frames[0]))
        run_id = head.get("run_id") if isinstance(head, dict) else None
    except (ValueError, IndexError, TypeError):
        run_id = None
    try:
        seq = struct.unpack_from("<q", memoryview(frames[1]))[0]
    except (IndexError, TypeError, struct.error):
        seq = -1
    return (run_id if isinstance(run_id, str) else "", seq)
