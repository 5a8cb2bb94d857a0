"""The E2-style messages between the near-RT RIC loop and an xApp (schema ``oransim.e2/1``).

An **indication** carries one ``Observation`` to an xApp; a **control** carries its ``Allocation``
back; an **error** says why an xApp refused an indication. ``docs/xapp.md`` is the reference for
writing an xApp in any language; this module is the Python side of it.

A message is one or two ZeroMQ frames: frame 0 is a UTF-8 JSON header; frame 1, the payload, holds
the raw bytes of every array the header's ``arrays`` list declares, each at its ``offset`` (a
multiple of 8 bytes), in C (row-major) order, with the declared ``dtype`` (numpy type strings,
little-endian) and ``shape``. Nothing is pickled. One payload frame rather than one frame per array:
ZeroMQ's per-frame cost in Python was most of a round trip. Dimension symbols in shapes: U UEs,
R RUs, K PRBs per RU, S slices (the header's ``dims``).

Every decoder checks what it reads and raises ``SchemaError`` with one line naming the field and the
cause (wrong schema version, missing or unknown array, wrong dtype, shape or byte count, ...).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

import numpy as np

from .contracts import Allocation, Observation
from .phy import LinkModel

#: Name and version of the schema; a message with another version is refused.
SCHEMA = "oransim.e2/1"
SCHEMA_FAMILY = "oransim.e2/"
#: Roles an xApp can be asked to play: the whole allocation, the PRBs only, the power only.
ROLES = ("full", "prb", "power")

#: Observation arrays: name -> (kind, shape). Kinds: i integer, f float, b bool.
OBS_ARRAYS = {
    "slice_id": ("i", ("U",)),
    "serving_ru": ("i", ("U",)),
    "gain": ("f", ("U", "R", "K")),
    "prb_sinr": ("f", ("U", "K")),
    "prb_rate_bps": ("f", ("U", "K")),
    "buffer_bits": ("f", ("U",)),
    "hol_delay_ms": ("f", ("U",)),
    "avg_throughput_bps": ("f", ("U",)),
    "qos_met_last": ("b", ("U",)),
    "min_rate_bps": ("f", ("U",)),
    "max_rate_bps": ("f", ("U",)),
    "max_delay_ms": ("f", ("U",)),
    "slice_weight": ("f", ("S",)),
    "ru_max_power_w": ("f", ("R",)),
    "slice_power_cap_w": ("f", ("S",)),
}
#: Observation fields carried in the header's ``observation`` object.
OBS_SCALARS = {"tti": int, "time_s": float, "interval_tti": int, "slice_names": list}
#: Arrays of a control message (the Allocation).
CONTROL_ARRAYS = {"ue_ru": ("i", ("U",)), "prb_owner": ("i", ("R", "K")), "power_w": ("f", ("R", "K"))}
#: Arrays each role must return; the others may be present and are ignored.
ROLE_RETURNS = {"full": ("ue_ru", "prb_owner", "power_w"), "prb": ("ue_ru", "prb_owner"), "power": ("power_w",)}
#: The PRB decision a power xApp is given (the PRB xApp's answer), prefixed ``proposal.``.
PROPOSAL_ARRAYS = ("ue_ru", "prb_owner")

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


# ------------------------------------------------------------------------------------ encoding
def _dims(obs: Observation) -> dict:
    return {"U": obs.n_ues, "R": obs.n_rus, "K": obs.n_prbs, "S": int(obs.slice_weight.shape[0])}


def _wire(kind: str, value) -> np.ndarray:
    return np.ascontiguousarray(value, dtype=CANONICAL[kind])


#: Alignment of each array in the payload (bytes): a C reader can cast a pointer to any element type.
ALIGN = 8
#: Per layout of recent messages (names, dtypes, shapes): the ``arrays`` JSON text and the padding
#: after each array. The layout is the same at every decision of a run; building it is most of a header's cost.
_LAYOUTS: dict = {}
#: One encoder for every header (json.dumps with options builds a new one per call).
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
_PAD = bytes(ALIGN)


def _layout(key: tuple) -> tuple[str, list]:
    entries, pads, offset = [], [], 0
    for name, dt, shape in key:
        nbytes = math.prod(shape) * dt.itemsize
        entries.append({"name": name, "dtype": dt.str, "shape": list(shape), "offset": offset})
        pad = -nbytes % ALIGN
        pads.append(_PAD[:pad])
        offset += nbytes + pad
    if len(_LAYOUTS) >= 64:
        _LAYOUTS.clear()
    _LAYOUTS[key] = out = (_JSON.encode(entries), pads)
    return out


def _header(kind: str, run_id: str, seq: int, names_arrays, **extra) -> list:
    key = tuple([(n, a.dtype, a.shape) for n, a in names_arrays])  # dtype objects: hashing them is cheaper than .str
    arrays_text, pads = _LAYOUTS.get(key) or _layout(key)
    head = {"schema": SCHEMA, "kind": kind, "run_id": run_id, "seq": int(seq), **extra}
    try:
        text = _JSON.encode(head)
    except ValueError as exc:  # a non-finite scalar: JSON has no Infinity / NaN
        raise SchemaError(f"{kind}: header holds a non-finite number ({exc})") from None
    text = f'{text[:-1]},"arrays":{arrays_text}}}'
    if not names_arrays:
        return [text.encode()]
    payload = b"".join([part for (_, a), pad in zip(names_arrays, pads) for part in (a, pad)])
    return [text.encode(), payload]


_LINK_PARTS: tuple = (None, None)  # the last link model encoded and its parts: a run has one


def _link_parts(link: LinkModel) -> tuple[dict, list]:
    """Scalars of the link model for the header, and its arrays as ``link.NAME``."""
    global _LINK_PARTS
    last_link, parts = _LINK_PARTS  # one read: another thread may replace it meanwhile
    if last_link is link:
        return parts
    scalars, arrays = {}, []
    for f in LINK_FIELDS:
        v = getattr(link, f.name)
        if isinstance(v, np.ndarray):
            arrays.append((f"link.{f.name}", _wire("f" if v.dtype.kind == "f" else "i", v)))
        elif isinstance(v, (bool, int, float, str, np.generic)) or v is None:
            scalars[f.name] = v.item() if isinstance(v, np.generic) else v
        else:
            raise SchemaError(f"indication: LinkModel.{f.name} of type {type(v).__name__} has no wire form")
    _LINK_PARTS = (link, (scalars, arrays))
    return scalars, arrays


def encode_indication(obs: Observation, *, run_id: str, seq: int, role: str = "full", proposal: dict | None = None,
                      deadline_ms: float | None = None, policy_seed: int | None = None) -> list:
    """Frames of an indication carrying ``obs``. ``proposal`` (role ``power``): the PRB decision."""
    if role not in ROLES:
        raise SchemaError(f"indication: role '{role}' is not one of {', '.join(ROLES)}")
    link_scalars, link_arrays = _link_parts(obs.link)
    arrays = [(name, _wire(kind, getattr(obs, name))) for name, (kind, _) in OBS_ARRAYS.items()]
    arrays += link_arrays
    if role == "power":
        if proposal is None:
            raise SchemaError("indication: role 'power' needs the PRB proposal (ue_ru, prb_owner)")
        arrays += [(f"proposal.{n}", _wire("i", proposal[n])) for n in PROPOSAL_ARRAYS]
    observation = {"tti": int(obs.tti), "time_s": float(obs.time_s), "interval_tti": int(obs.interval_tti),
                   "slice_names": list(obs.slice_names), "link": link_scalars}
    return _header("indication", run_id, seq, arrays, role=role,
                   deadline_ms=None if deadline_ms is None else float(deadline_ms),
                   policy_seed=None if policy_seed is None else int(policy_seed),
                   dims=_dims(obs), observation=observation)


def encode_control(alloc: Allocation, *, run_id: str, seq: int, role: str = "full",
                   decide_ms: float | None = None) -> list:
    """Frames of a control carrying the arrays ``role`` returns, plus the JSON-safe part of ``alloc.info``."""
    arrays = [(n, _wire(CONTROL_ARRAYS[n][0], getattr(alloc, n))) for n in ROLE_RETURNS[role]]
    return _header("control", run_id, seq, arrays, info=json_safe(alloc.info),
                   decide_ms=None if decide_ms is None else float(decide_ms))


def encode_error(*, run_id: str, seq: int, reason: str) -> list:
    """Frames of an error reply: the xApp refuses the indication ``seq`` and says why."""
    return _header("error", run_id, seq, [], reason=str(reason))


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
def read_header(frames) -> dict:
    """The JSON header of a message, with its schema name and version checked."""
    if not frames:
        raise SchemaError("message has no frames")
    head = _parse_known_tail(bytes(frames[0]))
    if head is None:
        head = _parse(bytes(frames[0]))
    if not isinstance(head, dict):
        raise SchemaError(f"header (frame 0) is a JSON {type(head).__name__}, expected an object")
    schema = head.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_FAMILY):
        raise SchemaError(f"not an {SCHEMA_FAMILY[:-1]} message (header field 'schema' is {schema!r})")
    if schema != SCHEMA:
        raise SchemaError(f"schema version '{schema}' is not supported (this side speaks '{SCHEMA}')")
    for key, typ in (("kind", str), ("run_id", str), ("seq", int)):
        if not isinstance(head.get(key), typ) or isinstance(head.get(key), bool):
            raise SchemaError(f"header field '{key}' missing or not a {typ.__name__}")
    return head


def _parse(raw: bytes):
    try:
        head = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SchemaError(f"header (frame 0) is not UTF-8 JSON: {exc}") from None
    i = raw.rfind(_ARRAYS_KEY)
    if isinstance(head, dict) and isinstance(head.get("arrays"), list) and i > 0 and raw.endswith(b"}"):
        try:  # remember the tail if it is exactly the last member "arrays" of the object
            tail_ok = json.loads(raw[i + len(_ARRAYS_KEY):-1].decode("utf-8")) == head["arrays"]
        except ValueError:
            tail_ok = False
        if tail_ok:
            if len(_TAILS) >= 16:
                _TAILS.clear()
            _TAILS[raw[i:]] = head["arrays"]
    return head


#: ``,"arrays":[...]}`` ending a header seen before -> its parsed list. The ``arrays`` list (most of an
#: indication's header) is the same at every decision of a run; when a header ends with a known tail,
#: only the part before it is parsed. The bytes ``,"arrays":`` cannot occur inside a JSON string (a
#: quote there is escaped), so the tail is the object's last member whenever the rest parses as an
#: object with at least one member.
_TAILS: dict = {}
_ARRAYS_KEY = b',"arrays":'


def _parse_known_tail(raw: bytes):
    i = raw.rfind(_ARRAYS_KEY)
    entries = _TAILS.get(raw[i:]) if i > 0 else None
    if entries is None or raw[:i].rstrip()[-1:] in (b"{", b","):
        return None
    try:
        head = json.loads((raw[:i] + b"}").decode("utf-8"))
    except ValueError:  # (UnicodeDecodeError is one) the full parse says what is wrong
        return None
    if not isinstance(head, dict):
        return None
    head["arrays"] = entries  # shared between messages: decoders only read it
    return head


#: The last validated ``arrays`` list per message type, with its decoding plan (it repeats every decision).
_PLANS: dict = {}


def _arrays(head: dict, frames, allowed: dict, dims: dict | None) -> dict:
    """name -> decoded array for every entry of ``head['arrays']``; ``allowed``: name -> (kind, shape or None)."""
    kind_name = head["kind"]
    entries = head.get("arrays")
    if not isinstance(entries, list):
        raise SchemaError(f"{kind_name}: header field 'arrays' missing or not a list")
    if len(frames) > 2 or (entries and len(frames) != 2):
        raise SchemaError(f"{kind_name}: {len(frames)} frame(s); expected the header and "
                          f"{'one payload frame' if entries else 'no other frame'}")
    last = _PLANS.get(id(allowed))
    if last is not None and last[0] == entries and last[1] == dims:
        plan, end = last[2], last[3]
    else:
        plan, end = _plan(kind_name, entries, allowed, dims)
        _PLANS[id(allowed)] = (entries, dims, plan, end)
    if not entries:
        return {}
    payload = bytearray(frames[1])  # one copy: the arrays below are the policy's own and writable
    if len(payload) < end:
        raise SchemaError(f"{kind_name}: payload frame has {len(payload)} bytes, the declared arrays need {end}")
    out = {}
    for name, dtype, shape, offset, canonical in plan:
        a = np.ndarray(shape, dtype, payload, offset)
        out[name] = a if dtype == canonical else a.astype(canonical)
    return out


def _plan(kind_name: str, entries: list, allowed: dict, dims: dict | None) -> tuple[list, int]:
    """Check every entry of an ``arrays`` list: (name, dtype, shape, offset, decoded dtype) for each,
    and the payload bytes they need."""
    plan, seen, end = [], set(), 0
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise SchemaError(f"{kind_name}: arrays[{i}] is not an object with a 'name'")
        name = e["name"]
        if name in seen:
            raise SchemaError(f"{kind_name}: array '{name}' declared twice")
        seen.add(name)
        spec = allowed.get(name)
        if spec is None:
            raise SchemaError(f"{kind_name}: unknown array '{name}' (expected {', '.join(allowed)})")
        kind, sym = spec
        dt, shape, offset = e.get("dtype"), e.get("shape"), e.get("offset")
        dtype = _DTYPES.get(dt) if dt in WIRE_DTYPES[kind] else None
        if dtype is None:
            raise SchemaError(f"{kind_name}: array '{name}' has dtype {dt!r}, expected one of {', '.join(WIRE_DTYPES[kind])}")
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise SchemaError(f"{kind_name}: array '{name}' has shape {shape!r}, expected a list of non-negative integers")
        if sym is not None and dims is not None:
            want = [dims[s] for s in sym]
            if shape != want:
                raise SchemaError(f"{kind_name}: array '{name}' has shape {shape}, expected {want} "
                                  f"({', '.join(f'{s}={dims[s]}' for s in sym)})")
        if type(offset) is not int or offset < 0 or offset % ALIGN:
            raise SchemaError(f"{kind_name}: array '{name}' has offset {offset!r}, expected a non-negative multiple of {ALIGN}")
        canonical = CANONICAL[dtype.kind if kind == "n" else kind]
        plan.append((name, dtype, tuple(shape), offset, canonical))
        end = max(end, offset + math.prod(shape) * dtype.itemsize)
    return plan, end


def _require(kind_name: str, got: dict, names) -> None:
    missing = [n for n in names if n not in got]
    if missing:
        raise SchemaError(f"{kind_name}: missing array(s) {', '.join(missing)}")


def _dims_of(head: dict) -> dict:
    dims = head.get("dims")
    if not isinstance(dims, dict) or any(not isinstance(dims.get(s), int) or isinstance(dims.get(s), bool)
                                         or dims[s] < 0 for s in "URKS"):
        raise SchemaError("indication: header field 'dims' must map U, R, K and S to non-negative integers")
    return {s: dims[s] for s in "URKS"}


def _link_from(head_link, arrays: dict) -> LinkModel:
    if not isinstance(head_link, dict):
        raise SchemaError("indication: observation.link missing or not an object")
    kw = {}
    for f in LINK_FIELDS:
        if f"link.{f.name}" in arrays:
            kw[f.name] = arrays[f"link.{f.name}"]
        elif f.name in head_link:
            kw[f.name] = head_link[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SchemaError(f"indication: observation.link.{f.name} missing")
    unknown = set(head_link) - {f.name for f in LINK_FIELDS}
    if unknown:
        raise SchemaError(f"indication: unknown field(s) observation.link.{', '.join(sorted(unknown))}")
    return LinkModel(**kw)


_INDICATION_ARRAYS = {False: {**OBS_ARRAYS, **{f"link.{f.name}": ("n", None) for f in LINK_FIELDS}}}
_INDICATION_ARRAYS[True] = {**_INDICATION_ARRAYS[False], **{f"proposal.{n}": CONTROL_ARRAYS[n] for n in PROPOSAL_ARRAYS}}


def decode_indication(frames) -> Indication:
    """The ``Indication`` in ``frames``; raises ``SchemaError`` naming what is wrong."""
    head = read_header(frames)
    if head["kind"] != "indication":
        raise SchemaError(f"expected an indication, got kind '{head['kind']}'")
    role = head.get("role", "full")
    if role not in ROLES:
        raise SchemaError(f"indication: role {role!r} is not one of {', '.join(ROLES)}")
    dims = _dims_of(head)
    arrays = _arrays(head, frames, _INDICATION_ARRAYS[role == "power"], dims)
    _require("indication", arrays, OBS_ARRAYS)
    if role == "power":
        _require("indication", arrays, [f"proposal.{n}" for n in PROPOSAL_ARRAYS])
    ob = head.get("observation")
    if not isinstance(ob, dict):
        raise SchemaError("indication: header field 'observation' missing or not an object")
    scalars = {}
    for key, typ in OBS_SCALARS.items():
        v = ob.get(key)
        ok = isinstance(v, (int, float) if typ is float else typ) and not isinstance(v, bool)
        if not ok:
            raise SchemaError(f"indication: observation.{key} missing or not a {'number' if typ is float else typ.__name__}")
        scalars[key] = typ(v) if typ is not list else tuple(str(x) for x in v)
    if len(scalars["slice_names"]) != dims["S"]:
        raise SchemaError(f"indication: observation.slice_names has {len(scalars['slice_names'])} names for S={dims['S']}")
    obs = Observation(**scalars, **{n: arrays[n] for n in OBS_ARRAYS}, link=_link_from(ob.get("link"), arrays))
    seed, deadline = head.get("policy_seed"), head.get("deadline_ms")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise SchemaError("indication: policy_seed must be a non-negative integer or null")
    if deadline is not None and (not isinstance(deadline, (int, float)) or isinstance(deadline, bool)):
        raise SchemaError("indication: deadline_ms must be a number or null")
    proposal = {n: arrays[f"proposal.{n}"] for n in PROPOSAL_ARRAYS} if role == "power" else {}
    return Indication(obs, head["run_id"], head["seq"], role, proposal, deadline, seed)


def decode_reply(frames, *, n_ues: int, n_rus: int, n_prbs: int, role: str = "full", head: dict | None = None) -> Reply:
    """The control (or error) in ``frames``, with the arrays ``role`` needs checked against U, R, K.
    ``head``: ``read_header(frames)`` if the caller has already read it (the RIC does, to match ``seq``)."""
    if head is None:
        head = read_header(frames)
    kind = head["kind"]
    if kind == "error":
        reason = head.get("reason")
        if not isinstance(reason, str):
            raise SchemaError("error: header field 'reason' missing or not a string")
        return Reply("error", head["run_id"], head["seq"], reason=reason)
    if kind != "control":
        raise SchemaError(f"expected a control or an error, got kind '{kind}'")
    arrays = _arrays(head, frames, CONTROL_ARRAYS, {"U": n_ues, "R": n_rus, "K": n_prbs})
    _require("control", arrays, ROLE_RETURNS[role])
    info = head.get("info", {})
    if not isinstance(info, dict):
        raise SchemaError("control: header field 'info' must be an object")
    decide_ms = head.get("decide_ms")
    if decide_ms is not None and (not isinstance(decide_ms, (int, float)) or isinstance(decide_ms, bool)):
        raise SchemaError("control: decide_ms must be a number or null")
    return Reply("control", head["run_id"], head["seq"], arrays.get("ue_ru"), arrays.get("prb_owner"),
                 arrays.get("power_w"), info, decide_ms)
