"""The E2-style messages between the near-RT RIC loop and an xApp (schema ``oransim.e2/2``).

An **indication** carries one ``Observation`` to an xApp; a **control** carries its ``Allocation``
back; an **error** says why an xApp refused an indication. ``docs/xapp.md`` is the reference for
writing an xApp in any language; this module (the schema and the encoders) and ``simcore.e2_decode``
(the decoders) are the Python side of it.

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

Every decoder (``simcore.e2_decode``) checks what it reads and raises ``SchemaError`` with one line
naming the field and the cause (wrong schema version, missing or unknown array, wrong dtype, shape
or byte count, ...).
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
import struct
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
    """The header bytes and the payload's layout for one message layout (one per run and role).

    A payload is the prelude, then each array's raw bytes followed by the zero bytes that bring the
    next one to a multiple of ALIGN, joined in one pass (``bytes.join`` reads each array's buffer: no
    numpy call per array). An array of another dtype than the one declared, or not C-contiguous, is
    converted first."""

    def __init__(self, kind: str, head: dict, arrays: list):
        entries, size = _layout(kind, arrays)
        self.header = _header_bytes(kind, {**head, "arrays": entries})
        self.prelude = _PRELUDE[kind]
        ends = [e["offset"] for e in entries[1:]] + [size]
        self.parts = []  # (name, dtype, shape, padding after it)
        for (name, dt, shape), e, nxt in zip(arrays, entries, ends):
            self.parts.append((name, dt, tuple(shape), bytes(nxt - e["offset"] - math.prod(shape) * dt.itemsize)))
        first = entries[0]["offset"] if entries else self.prelude.size
        self.lead = bytes(first - self.prelude.size)  # after the prelude, up to the first array

    def frames(self, prelude: tuple, values) -> list:
        out = [self.prelude.pack(*prelude), self.lead]
        for (name, dt, shape, pad), value in zip(self.parts, values):
            if type(value) is not np.ndarray:
                value = np.asarray(value)
            if value.shape != shape:  # no silent broadcasting onto the declared shape
                raise SchemaError(f"array '{name}' has shape {value.shape}, its message declares {shape}")
            if value.dtype is not dt and value.dtype != dt:  # (equal dtypes need not be one object: unpickled ones)
                value = np.ascontiguousarray(value, dt)
            out.append(value)
            out.append(pad)
        try:
            payload = b"".join(out)
        except TypeError:  # an array that is not C-contiguous: no single buffer to read
            payload = b"".join(np.ascontiguousarray(v) if type(v) is np.ndarray else v for v in out)
        return [self.header, payload]


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
    key = ("control", run_id, role, info_key, *[v.shape if type(v) is np.ndarray else np.shape(v) for v in values])
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
