"""The oransim.e2/2 messages without sockets: round trips, refusals, the documentation, the CLI's input."""

from __future__ import annotations

import dataclasses
import json
import re
import struct

import numpy as np
import pytest
from typer.testing import CliRunner
from xapp_helpers import ROOT, observation

from oransim.cli import app
from oransim.xapp import UsageError, XappServer, parse_params, policy_handler
from policies.xapp import XappPolicy
from simcore.contracts import Allocation, Observation
from simcore.e2 import CONSTANT_ARRAYS, OBS_ARRAYS, SCHEMA, SchemaError, encode_control, encode_error, encode_indication
from simcore.e2_decode import decode_indication, decode_reply, read_header
from simcore.phy import LinkModel
from simcore.plugins import make_policy


@pytest.fixture(scope="module")
def obs():
    return observation()


def _same(a, b) -> bool:
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def test_indication_round_trip_keeps_every_field(obs):
    prop = {"ue_ru": obs.serving_ru.copy(), "prb_owner": np.arange(obs.n_rus * obs.n_prbs).reshape(obs.n_rus, -1) % obs.n_ues}
    for role, proposal in (("full", None), ("prb", None), ("power", prop)):
        ind = decode_indication(encode_indication(obs, run_id="r1", seq=7, role=role, proposal=proposal,
                                                  deadline_ms=25.0, policy_seed=2**63 - 1))
        assert (ind.run_id, ind.seq, ind.role, ind.deadline_ms, ind.policy_seed) == ("r1", 7, role, 25.0, 2**63 - 1)
        for f in dataclasses.fields(Observation):
            a, b = getattr(obs, f.name), getattr(ind.obs, f.name)
            if isinstance(a, np.ndarray):
                assert _same(np.asarray(a), b) and a.dtype.kind == b.dtype.kind, f.name
            elif f.name == "link":
                for lf in dataclasses.fields(LinkModel):
                    x, y = getattr(a, lf.name), getattr(b, lf.name)
                    assert _same(x, y) if isinstance(x, np.ndarray) else x == y, lf.name
            else:
                assert a == b, f.name
        assert ind.obs.n_ues == obs.n_ues and ind.obs.n_rus == obs.n_rus == 2
        assert set(vars(ind.obs)) == {f.name for f in dataclasses.fields(Observation)}  # built without __init__
        np.testing.assert_array_equal(ind.obs.cqi, obs.cqi)  # derived views agree too
        if proposal is not None:
            for k in prop:
                assert _same(prop[k], ind.proposal[k])
        else:
            assert ind.proposal == {}


def test_arrays_of_other_dtypes_or_layouts_encode_to_the_same_bytes(obs):
    """The encoder joins the arrays' own buffers: one of another dtype, not C-contiguous (a
    transposed view, a Fortran-ordered copy) or a plain list is converted first, so the bytes on the
    wire are those of the canonical array."""
    want = encode_indication(obs, run_id="r", seq=3)
    odd = dataclasses.replace(
        obs, slice_id=obs.slice_id.astype(np.int32), buffer_bits=obs.buffer_bits.tolist(),
        prb_rate_bps=np.asfortranarray(obs.prb_rate_bps), prb_sinr=np.ascontiguousarray(obs.prb_sinr.T).T, gain=obs.gain[:, :, ::-1].copy()[:, :, ::-1], qos_met_last=obs.qos_met_last.astype(np.int8))
    assert not odd.gain.flags.c_contiguous and not odd.prb_rate_bps.flags.c_contiguous
    assert encode_indication(odd, run_id="r", seq=3) == want
    alloc = make_policy("pf").decide(obs)
    ctl = encode_control(alloc, run_id="r", seq=3)
    alloc_odd = Allocation(alloc.ue_ru.astype(np.int16).tolist(), np.asfortranarray(alloc.prb_owner.astype(np.int32)),
                           np.asfortranarray(alloc.power_w), alloc.info)
    assert encode_control(alloc_odd, run_id="r", seq=3) == ctl


def test_a_finite_blocklength_link_travels_with_its_nan_entries():
    from core_helpers import small

    from simcore.scenario import Scenario

    slices = Scenario().model_dump()["slices"]
    for sl in slices:
        sl["ues"] = 2
    slices[1]["rate_model"] = "fbl"
    o = observation(small(ues=2, duration_s=0.02, slices=slices))
    pen = o.link.ue_fbl_penalty
    assert pen is not None and np.isnan(pen).any() and not np.isnan(pen).all()
    got = decode_indication(encode_indication(o, run_id="r", seq=1)).obs
    assert _same(got.link.ue_fbl_penalty, pen)
    np.testing.assert_array_equal(got.link.spectral_efficiency(o.prb_sinr, np.arange(o.n_ues)[:, None]),
                                  o.link.spectral_efficiency(o.prb_sinr, np.arange(o.n_ues)[:, None]))


def test_control_round_trip_and_foreign_dtypes(obs):
    alloc = make_policy("pf").decide(obs)
    alloc.info = {"note": "x", "n": np.int64(3), "arr": np.arange(2), "bad": object(), "inf": float("inf")}
    dims = dict(n_ues=obs.n_ues, n_rus=obs.n_rus, n_prbs=obs.n_prbs)
    r = decode_reply(encode_control(alloc, run_id="r", seq=3, decide_ms=1.5), **dims)
    assert (r.kind, r.run_id, r.seq, r.decide_ms) == ("control", "r", 3, 1.5)
    for k in ("ue_ru", "prb_owner", "power_w"):
        assert _same(getattr(alloc, k), getattr(r, k))
    assert r.info == {"note": "x", "n": 3, "arr": [0, 1]}  # what JSON cannot hold is dropped
    # an xApp in another language may send int32 indices and float32 power, laid out by hand
    # (here in reverse order, after a gap, with no decide_ms: NaN)
    small = [("power_w", alloc.power_w.astype("<f4")), ("prb_owner", alloc.prb_owner.astype("<i2")),
             ("ue_ru", alloc.ue_ru.astype("<i4"))]
    entries, parts, offset = [], [struct.pack("<qd", 3, float("nan")), bytes(16)], 32
    for name, a in small:
        entries.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape), "offset": offset})
        parts += [a.tobytes(), bytes(-a.nbytes % 8)]
        offset += a.nbytes + (-a.nbytes % 8)
    head = {"schema": SCHEMA, "kind": "control", "run_id": "r", "arrays": entries}
    r = decode_reply([json.dumps(head).encode(), b"".join(parts)], **dims)
    assert (r.seq, r.decide_ms) == (3, None)
    assert r.ue_ru.dtype == np.int64 and _same(r.prb_owner, alloc.prb_owner) and _same(r.ue_ru, alloc.ue_ru)
    np.testing.assert_allclose(r.power_w, alloc.power_w, rtol=1e-6)
    # role-specific answers: the PRB xApp need not send power, the power xApp only power
    assert decode_reply(encode_control(alloc, run_id="r", seq=1, role="prb"), **dims, role="prb").power_w is None
    with pytest.raises(SchemaError, match="missing array.*ue_ru"):
        decode_reply(encode_control(alloc, run_id="r", seq=1, role="power"), **dims, role="full")
    err = decode_reply(encode_error(run_id="r", seq=4, reason="cannot"), **dims)
    assert (err.kind, err.seq, err.reason) == ("error", 4, "cannot")


def _edit(frames, fn):
    """``fn(header, buffers)`` edits both in place, or returns new buffers."""
    head, bufs = json.loads(frames[0]), list(frames[1:])
    out = fn(head, bufs)
    return [json.dumps(head).encode(), *(out if isinstance(out, list) else bufs)]


def _set_entry(name, key, value):
    def fn(head, bufs):
        next(e for e in head["arrays"] if e["name"] == name)[key] = value
    return fn


MALFORMED = [
    ("old version", lambda h, b: h.update(schema="oransim.e2/1"),
     r"schema version 'oransim.e2/1' is not supported \(this side speaks 'oransim.e2/2'\)"),
    ("other schema", lambda h, b: h.update(schema="e2ap"), r"not an oransim.e2 message"),
    ("no run_id", lambda h, b: h.pop("run_id"), r"'run_id' missing"),
    ("missing array", lambda h, b: h["arrays"].pop(0), r"missing array\(s\) slice_id"),
    ("unknown array", lambda h, b: h["arrays"][0].update(name="slice"), r"unknown array 'slice'"),
    ("big-endian", _set_entry("gain", "dtype", ">f8"), r"'gain' has dtype '>f8'"),
    ("float for int", _set_entry("slice_id", "dtype", "<f8"), r"'slice_id' has dtype '<f8'"),
    ("wrong shape", _set_entry("buffer_bits", "shape", [3]), r"'buffer_bits' has shape \[3\], expected \[12\]"),
    ("bad shape", _set_entry("buffer_bits", "shape", "12"), r"'buffer_bits' has shape '12'"),
    ("short payload", lambda h, b: [bytes(b[0])[:-1]], r"payload frame has \d+ bytes, the header and prelude need"),
    ("no prelude", lambda h, b: [b"\0" * 7], r"payload frame has 7 bytes"),
    ("no payload", lambda h, b: [], r"1 frame\(s\); expected the header and one payload frame"),
    ("extra frame", lambda h, b: [*b, b"x"], r"3 frame\(s\)"),
    ("offset", _set_entry("gain", "offset", 4), r"'gain' has offset 4, expected a multiple of 8 from 24"),
    ("in the prelude", _set_entry("slice_id", "offset", 16), r"'slice_id' has offset 16, expected a multiple of 8 from 24 \(after the 24-byte prelude\)"),
    ("duplicate", lambda h, b: h["arrays"].__setitem__(1, dict(h["arrays"][0])), r"declared twice"),
    ("dims", lambda h, b: h["dims"].pop("K"), r"'dims' must map"),
    ("slice names", lambda h, b: h["observation"].update(slice_names=["a"]), r"slice_names has 1 names"),
    ("interval type", lambda h, b: h["observation"].update(interval_tti="10"), r"observation.interval_tti missing or not a int"),
    ("link field", lambda h, b: h["observation"]["link"].pop("noise_w"), r"observation.link.noise_w missing"),
    ("role", lambda h, b: h.update(role="both"), r"role 'both' is not one of"),
    ("kind", lambda h, b: h.update(kind="control"), r"expected an indication, got kind 'control'"),
]


@pytest.mark.parametrize("label,edit,reason", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_indications_are_refused_with_the_reason(obs, label, edit, reason):
    frames = _edit(encode_indication(obs, run_id="r", seq=1), edit)
    with pytest.raises(SchemaError, match=reason):
        decode_indication(frames)


def test_header_must_be_json_object():
    with pytest.raises(SchemaError, match="not UTF-8 JSON"):
        read_header([b"\xff\x00"])
    with pytest.raises(SchemaError, match="JSON list, expected an object"):
        read_header([b"[1]"])
    with pytest.raises(SchemaError, match="no frames"):
        read_header([])


def test_a_header_is_checked_once_and_the_constants_decoded_again_when_they_change(obs):
    """Within a run the header repeats byte for byte: it is checked once. The payload is read at every
    message: the per-decision arrays are the policy's own (writable) copies, the scenario's constants
    are shared read-only while their bytes stay the same and decoded again when they change."""
    one, two = (encode_indication(obs, run_id="cache", seq=s) for s in (1, 2))
    assert one[0] == two[0] and one[1] != two[1]  # only the prelude (seq) differs
    a, b = decode_indication(one), decode_indication(two)
    assert (a.seq, b.seq) == (1, 2)
    assert b.obs.min_rate_bps is a.obs.min_rate_bps and b.obs.link is a.obs.link
    assert not a.obs.min_rate_bps.flags.writeable and b.obs.gain.flags.writeable and b.obs.gain is not a.obs.gain
    other = Observation(**{**{f.name: getattr(obs, f.name) for f in dataclasses.fields(Observation)},
                           "min_rate_bps": obs.min_rate_bps * 2, "buffer_bits": obs.buffer_bits + 1, "tti": obs.tti + 10})
    c = decode_indication(encode_indication(other, run_id="cache", seq=3))
    assert _same(c.obs.min_rate_bps, obs.min_rate_bps * 2) and _same(c.obs.buffer_bits, obs.buffer_bits + 1)
    assert c.obs.tti == obs.tti + 10 and _same(decode_indication(one).obs.min_rate_bps, obs.min_rate_bps)
    # the same header bytes with a payload too short for them are still refused
    with pytest.raises(SchemaError, match="payload frame has 100 bytes"):
        decode_indication([one[0], one[1][:100]])
    assert set(CONSTANT_ARRAYS) < set(OBS_ARRAYS)


def test_malformed_controls_are_refused(obs):
    alloc = make_policy("pf").decide(obs)
    dims = dict(n_ues=obs.n_ues, n_rus=obs.n_rus, n_prbs=obs.n_prbs)
    frames = encode_control(alloc, run_id="r", seq=1)
    with pytest.raises(SchemaError, match=r"'prb_owner' has shape \[12\], expected \[2, 12\]"):
        decode_reply(_edit(frames, _set_entry("prb_owner", "shape", [12])), **dims)
    with pytest.raises(SchemaError, match="schema version"):
        decode_reply(_edit(frames, lambda h, b: h.update(schema="oransim.e2/1")), **dims)
    with pytest.raises(SchemaError, match="expected a control or an error"):
        decode_reply(encode_indication(obs, run_id="r", seq=1), **dims)


def test_the_xapp_server_answers_a_bad_message_with_the_reason(obs):
    srv = XappServer("inproc://schema-test", policy_handler("pf"), say=lambda line: None)
    try:
        dims = dict(n_ues=obs.n_ues, n_rus=obs.n_rus, n_prbs=obs.n_prbs)
        bad = _edit(encode_indication(obs, run_id="r", seq=5), lambda h, b: h.update(schema="oransim.e2/1"))
        err = decode_reply(srv.answer(bad), **dims)
        assert (err.kind, err.run_id, err.seq) == ("error", "r", 5) and "'oransim.e2/1' is not supported" in err.reason
        err = decode_reply(srv.answer([b"garbage"]), **dims)
        assert (err.kind, err.run_id, err.seq) == ("error", "", -1)
        # the policy decides whole allocations: it refuses to be the power half of a pair
        prop = {"ue_ru": obs.serving_ru, "prb_owner": np.full((obs.n_rus, obs.n_prbs), -1)}
        err = decode_reply(srv.answer(encode_indication(obs, run_id="r", seq=6, role="power", proposal=prop)), **dims)
        assert err.kind == "error" and err.seq == 6 and "role 'power'" in err.reason
        ok = decode_reply(srv.answer(encode_indication(obs, run_id="r", seq=7)), n_ues=obs.n_ues, n_rus=obs.n_rus,
                          n_prbs=obs.n_prbs)
        assert ok.kind == "control" and srv.refused == 3 and srv.answered == 1
    finally:
        srv.close()


def test_docs_describe_every_field():
    doc = (ROOT / "docs" / "xapp.md").read_text()
    missing = [f.name for f in dataclasses.fields(Observation) if f"`{f.name}`" not in doc]
    missing += [f"link.{f.name}" for f in dataclasses.fields(LinkModel) if f"`{f.name}`" not in doc]
    missing += [k for k in ("schema", "kind", "run_id", "seq", "role", "deadline_ms", "policy_seed", "dims",
                            "observation", "arrays", "dtype", "shape", "info", "decide_ms", "reason", "proposal")
                if f"`{k}`" not in doc]
    assert not missing, f"docs/xapp.md does not describe {missing}"
    assert SCHEMA in doc and set(OBS_ARRAYS) <= set(re.findall(r"`(\w+)`", doc))


def test_params_parsing():
    assert parse_params(["a=1", "b=0.5", "c=true", "d=[1, 2]", "e=runs/x.pt", "f="]) == \
        {"a": 1, "b": 0.5, "c": True, "d": [1, 2], "e": "runs/x.pt", "f": ""}
    assert parse_params(["{a: 1, b: {c: x}}", "a=2"]) == {"a": 2, "b": {"c": "x"}}
    for bad in ("x", "=1", "{a: [", "{1, 2"):
        with pytest.raises(UsageError, match="--params"):
            parse_params([bad])


@pytest.mark.parametrize("args,msg", [
    (["nosuch"], "POLICY: unknown name 'nosuch'"),
    (["pf", "--params", "bogus=1"], "--params.bogus: unknown parameter"),
    (["pf", "--params", "nokey"], "expected KEY=VALUE"),
    (["pf", "--bind", "http://x"], "--bind: 'http://x' is not a ZeroMQ endpoint"),
    (["xapp"], "'xapp' is the RIC side"),
])
def test_serve_refuses_bad_input_in_one_line(args, msg):
    res = CliRunner().invoke(app, ["xapp", "serve", *args])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and msg in lines[0], res.output


@pytest.mark.parametrize("params,msg", [
    ({}, "exactly one of endpoint"),
    ({"endpoint": "tcp://127.0.0.1:1", "endpoints": {}}, "exactly one of endpoint"),
    ({"endpoint": "localhost:5555"}, "not a ZeroMQ endpoint"),
    ({"endpoints": {"prb": "ipc:///tmp/a"}}, "endpoints must map exactly prb and power"),
    ({"endpoint": "ipc:///tmp/a", "timeout_ms": 0}, "timeout_ms must be a positive"),
    ({"endpoint": "ipc:///tmp/a", "fallback": "nosuch"}, "unknown name 'nosuch'"),
    ({"endpoint": "ipc:///tmp/a", "fallback": "xapp"}, "cannot be its own fallback"),
    ({"endpoint": "ipc:///tmp/a", "period_tti": 0}, "period_tti must be an integer"),
])
def test_policy_params_are_checked(params, msg):
    from simcore.plugins import PluginError

    with pytest.raises((ValueError, PluginError), match=msg):
        make_policy("xapp", params)
    assert isinstance(make_policy("xapp", {"endpoint": "tcp://127.0.0.1:5555"}), XappPolicy)
