"""The E2-style messages between the near-RT RIC loop and an xApp (schema ``oransim.e2/2``).

An **indication** carries one ``Observation`` to an xApp; a **control** carries its ``Allocation``
back; an **error** says why an xApp refused an indication. ``docs/xapp.md`` is the reference for
writing an xApp in any language; this module is the Python side of it.

A message is two ZeroMQ frames. Frame 0, the **header**, is a UTF-8 JSON object holding only what
stays the same at every decision of a run (ids, dimensions, the scenario's scalar constants, and
the ``arrays`` list that lays out the payload); frame 1, the **payload**, starts with a fixed
little-endian **prelude** of the per-message scalars (``seq`` first, then e.g. ``tti`` and
``time_s``) and holds the raw bytes of every array the header declares, each at its ``offset`` (a
multiple of 8 bytes), in C (row-major) order, with the declared ``dtype`` (numpy type strings,
little-endian) and ``shape``. Nothing is pickled.

Why this split (schema 2; schema 1 put ``seq``/``tti``/``time_s`` in the header): a header repeats
byte for byte within a run, so each side checks it once and afterwards only looks it up, and a
message costs a lookup, one unpack of the prelude and one numpy view of the payload (a structured
dtype whose fields are the arrays). The scenario's constant arrays (slice ids, rate and delay
targets, budgets, the link's arrays) are decoded again only when their bytes change, and are then
shared read-only, as in-process.
Dimension symbols in shapes: U UEs, R RUs, K PRBs per RU, S slices (the header's ``dims``).

Every decoder checks what it reads and raises ``SchemaError`` with one line naming the field and the
cause (wrong schema version, missing or unknown array, wrong dtype, shape or byte count, ...).
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import struct
import threading
from dataclasses import dataclass, field

import numpy as np

from .contracts import Allocation, Observation
from .phy import LinkModel

#: Name and version of the schema; a message with another version is refused.
SCHEMA = "oransim.e2/2"
SCHEMA_FAMILY = "oransim.e2/"
#: Roles an xApp can be asked to play: the whole allocation, the PRBs only, the power only.
ROLES = ("full", "prb", "power")

#: Observation arrays: name -> (kind, shape). Kinds: i integer, f float, b bool. The scenario's
#: constants come first (the encoder lays them out in this order, the per-decision state after them).
OBS_ARRAYS = {
    "slice_id": ("i", ("U",)),
    "serving_ru": ("i", ("U",)),
    "min_rate_bps": ("f", ("U",)),
    "max_rate_bps": ("f", ("U",)),
    "max_delay_ms": ("f", ("U",)),
    "slice_weight": ("f", ("S",)),
    "ru_max_power_w": ("f", ("R",)),
    "slice_power_cap_w": ("f", ("S",)),
    "gain": ("f", ("U", "R", "K")),
    "prb_sinr": ("f", ("U", "K")),
    "prb_rate_bps": ("f", ("U", "K")),
    "buffer_bits": ("f", ("U",)),
    "hol_delay_ms": ("f", ("U",)),
    "avg_throughput_bps": ("f", ("U",)),
    "qos_met_last": ("b", ("U",)),
}
#: Arrays a decoder may share between the indications of a run while their bytes do not change
#: (in-process they are the scenario's own read-only arrays); the link model's arrays are too.
CONSTANT_ARRAYS = ("slice_id", "serving_ru", "min_rate_bps", "max_rate_bps", "max_delay_ms", "slice_weight",
                   "ru_max_power_w", "slice_power_cap_w")
#: Observation fields carried in the header's ``observation`` object (tti and time_s: in the prelude).
OBS_SCALARS = {"interval_tti": int, "slice_names": list}
#: Arrays of a control message (the Allocation).
CONTROL_ARRAYS = {"ue_ru": ("i", ("U",)), "prb_owner": ("i", ("R", "K")), "power_w": ("f", ("R", "K"))}
#: Arrays each role must return; the others may be present and are ignored.
ROLE_RETURNS = {"full": ("ue_ru", "prb_owner", "power_w"), "prb": ("ue_ru", "prb_owner"), "power": ("power_w",)}
#: The PRB decision a power xApp is given (the PRB xApp's answer), prefixed ``proposal.``.
PROPOSAL_ARRAYS = ("ue_ru", "prb_owner")

#: The payload's prelude per kind: (struct format, field names). Arrays start at or after its end.
PRELUDES = {
    "indication": ("<qqd", ("seq", "tti", "time_s")),
    "control": ("<qd", ("seq", "decide_ms")),  # decide_ms NaN: not reported
    "error": ("<q", ("seq",)),
}
_PRELUDE = {k: struct.Struct(fmt) for k, (fmt, _) in PRELUDES.items()}

#: dtypes allowed on the wire, per kind (numpy type strings; little-endian only).
WIRE_DTYPES = {
    "i": ("<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1"),
    "f": ("<f8", "<f4"),
    "b": ("|b1",),
}
WIRE_DTYPES["n"] = WIRE_DTYPES["f"] + WIRE_DTYPES["i"]  # numeric: link-model arrays keep their kind
#: What each kind becomes after decoding (and is sent as by this side); by kind letter of numpy too.
CANONICAL = {"i": np.dtype("<i8"), "f": np.dtype("<f8"), "b": np.dtype("|b1"), "u": np.dtype("<i8")}
_DTYPES = {s: np.dtype(s) for s in WIRE_DTYPES["n"] + WIRE_DTYPES["b"]}
#: The link model's fields (each travels as a header scalar or a ``link.NAME`` array).
LINK_FIELDS = dataclasses.fields(LinkModel)
#: Alignment of each array in the payload (bytes): a C reader can cast a pointer to any element type.
ALIGN = 8
#: Decoded headers and encoders kept per process; a run uses one or two, so this only bounds memory.
CACHE_SIZE = 32
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


class SchemaError(ValueError):
    """A message is malformed or of another schema version; the message says which field and why."""


@dataclass
class Indication:
    """A decoded indication: the observation and what the RIC asks of the xApp."""

    obs: Observation
    run_id: str
    seq: int
    role: str = "full"
    proposal: dict = field(default_factory=dict)  # role "power": {"ue_ru": (U,), "prb_owner": (R, K)}
    deadline_ms: float | None = None
    policy_seed: int | None = None


@dataclass
class Reply:
    """A decoded control or error. Arrays the xApp did not send are None."""

    kind: str  # "control" | "error"
    run_id: str
    seq: int
    ue_ru: np.ndarray | None = None
    prb_owner: np.ndarray | None = None
    power_w: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    decide_ms: float | None = None
    reason: str = ""


def _remember(cache: dict, key, value):
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


# ------------------------------------------------------------------------------------ encoding
def _layout(kind: str, arrays: list) -> tuple[list, int]:
    """``arrays``: (name, dtype, shape). The ``arrays`` entries (packed in order after the prelude,
    each at a multiple of ALIGN) and the payload's size (no padding after the last array)."""
    entries, offset = [], -_PRELUDE[kind].size % ALIGN + _PRELUDE[kind].size
    end = _PRELUDE[kind].size
    for name, dt, shape in arrays:
        entries.append({"name": name, "dtype": dt.str, "shape": list(shape), "offset": offset})
        end = offset + math.prod(shape) * dt.itemsize
        offset = end + (-end % ALIGN)
    return entries, end


def _header_bytes(kind: str, head: dict) -> bytes:
    try:
        return _JSON.encode({"schema": SCHEMA, "kind": kind, **head}).encode()
    except ValueError as exc:  # a non-finite scalar: JSON has no Infinity / NaN
        raise SchemaError(f"{kind}: header holds a non-finite number ({exc})") from None


class _Encoder:
    """The header bytes and a payload buffer with one numpy view per array, for one message layout
    (one per run and role: every message of it copies the arrays into the views and the buffer out)."""

    def __init__(self, kind: str, head: dict, arrays: list):
        entries, size = _layout(kind, arrays)
        self.header = _header_bytes(kind, {**head, "arrays": entries})
        self.buf = bytearray(size)
        self.prelude = _PRELUDE[kind]
        self.views = [np.ndarray(shape, dt, self.buf, e["offset"]) for (_, dt, shape), e in zip(arrays, entries)]
        self.checks = [(view, view.shape, name) for view, (name, _, _) in zip(self.views, arrays)]
        self.lock = threading.Lock()

    def frames(self, prelude: tuple, values) -> list:
        with self.lock:  # threads of one process (a RIC and a test's xApp) may share an encoder
            self.prelude.pack_into(self.buf, 0, *prelude)
            for (view, shape, name), value in zip(self.checks, values):
                if type(value) is not np.ndarray:
                    value = np.asarray(value)
                if value.shape != shape:  # no silent broadcasting onto the declared shape
                    raise SchemaError(f"array '{name}' has shape {value.shape}, its message declares {shape}")
                view[...] = value
            return [self.header, bytes(self.buf)]  # a copy: the buffer is refilled by the next message


_ENCODERS: dict = {}
_STATE_ARRAYS = tuple(n for n in OBS_ARRAYS if n not in CONSTANT_ARRAYS)
_I8 = CANONICAL["i"]
#: The observation's arrays in the order the encoder lays them out (the link's arrays go between).
_GET_CONSTANTS, _GET_STATE = operator.attrgetter(*CONSTANT_ARRAYS), operator.attrgetter(*_STATE_ARRAYS)


def _link_parts(link: LinkModel) -> tuple[dict, list]:
    """Scalars of the link model for the header, and its arrays as ``(link.NAME, value)``."""
    scalars, arrays = {}, []
    for f in LINK_FIELDS:
        v = getattr(link, f.name)
        if isinstance(v, np.ndarray):
            arrays.append((f"link.{f.name}", v))
        elif isinstance(v, (bool, int, float, str, np.generic)) or v is None:
            scalars[f.name] = v.item() if isinstance(v, np.generic) else v
        else:
            raise SchemaError(f"indication: LinkModel.{f.name} of type {type(v).__name__} has no wire form")
    return scalars, arrays


def _indication_encoder(obs: Observation, run_id: str, role: str, deadline_ms, policy_seed) -> tuple:
    link_scalars, link_arrays = _link_parts(obs.link)
    dims = {"U": obs.n_ues, "R": obs.n_rus, "K": obs.n_prbs, "S": int(obs.slice_weight.shape[0])}
    spec = {n: (n, CANONICAL[k], tuple(dims[s] for s in sym)) for n, (k, sym) in OBS_ARRAYS.items()}
    specs = [spec[n] for n in CONSTANT_ARRAYS]
    specs += [(n, CANONICAL["f" if v.dtype.kind == "f" else "i"], v.shape) for n, v in link_arrays]
    specs += [spec[n] for n in _STATE_ARRAYS]
    if role == "power":
        specs += [(f"proposal.{n}", _I8, tuple(dims[s] for s in CONTROL_ARRAYS[n][1])) for n in PROPOSAL_ARRAYS]
    head = {"run_id": run_id, "role": role, "deadline_ms": deadline_ms, "policy_seed": policy_seed, "dims": dims,
            "observation": {"interval_tti": int(obs.interval_tti), "slice_names": list(obs.slice_names),
                            "link": link_scalars}}
    # the link object is kept to make its id in the key safe; its arrays are copied at every message
    return obs.link, tuple(v for _, v in link_arrays), _Encoder("indication", head, specs)


def encode_indication(obs: Observation, *, run_id: str, seq: int, role: str = "full", proposal: dict | None = None,
                      deadline_ms: float | None = None, policy_seed: int | None = None) -> list:
    """Frames of an indication carrying ``obs``. ``proposal`` (role ``power``): the PRB decision."""
    if role not in ROLES:
        raise SchemaError(f"indication: role '{role}' is not one of {', '.join(ROLES)}")
    if role == "power" and proposal is None:
        raise SchemaError("indication: role 'power' needs the PRB proposal (ue_ru, prb_owner)")
    deadline_ms = None if deadline_ms is None else float(deadline_ms)
    policy_seed = None if policy_seed is None else int(policy_seed)
    key = (run_id, role, deadline_ms, policy_seed, id(obs.link), obs.slice_names, obs.interval_tti,
           obs.slice_id.shape, obs.gain.shape, obs.slice_weight.shape)
    enc = _ENCODERS.get(key)
    if enc is None or enc[0] is not obs.link:
        enc = _remember(_ENCODERS, key, _indication_encoder(obs, run_id, role, deadline_ms, policy_seed))
    values = _GET_CONSTANTS(obs) + enc[1] + _GET_STATE(obs)
    if role == "power":
        values += tuple(proposal[n] for n in PROPOSAL_ARRAYS)
    return enc[2].frames((seq, obs.tti, obs.time_s), values)


def encode_control(alloc: Allocation, *, run_id: str, seq: int, role: str = "full",
                   decide_ms: float | None = None) -> list:
    """Frames of a control carrying the arrays ``role`` returns, plus the JSON-safe part of ``alloc.info``.
    Arrays are sent with the shapes they have (a wrong one is the RIC's to refuse)."""
    names = ROLE_RETURNS[role]
    values = [getattr(alloc, n) for n in names]
    info = alloc.info
    info_key = _JSON.encode(json_safe(info)) if info else "{}"
    key = ("control", run_id, role, info_key, *[np.shape(v) for v in values])
    enc = _ENCODERS.get(key)
    if enc is None:
        specs = [(n, CANONICAL[CONTROL_ARRAYS[n][0]], np.shape(v)) for n, v in zip(names, values)]
        enc = _remember(_ENCODERS, key, _Encoder("control", {"run_id": run_id, "info": json.loads(info_key)}, specs))
    return enc.frames((seq, math.nan if decide_ms is None else float(decide_ms)), values)


def encode_error(*, run_id: str, seq: int, reason: str) -> list:
    """Frames of an error reply: the xApp refuses the indication ``seq`` and says why."""
    return [_header_bytes("error", {"run_id": str(run_id), "reason": str(reason), "arrays": []}),
            _PRELUDE["error"].pack(int(seq))]


def json_safe(value):
    """``value`` with numpy scalars and arrays turned into JSON types; what JSON cannot hold is dropped."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = json_safe(v)
            if v is not _DROP:
                out[str(k)] = v
        return out
    if isinstance(value, (list, tuple)):
        return [v for v in (json_safe(x) for x in value) if v is not _DROP]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return _DROP
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return _DROP


_DROP = object()


# ------------------------------------------------------------------------------------ decoding
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
