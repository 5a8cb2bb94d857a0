"""Every number a scenario holds, fed random finite and non-finite values.

The numeric fields are found by walking the pydantic schema from ``Scenario`` through a small
scenario that uses every model (every traffic model, an RU, processing stages...), plus the
hinted numeric parameters of the scenario's policy; a field added later is fuzzed without
touching this file (``test_every_model_is_reached`` fails if a new model is not reached, e.g. a
new traffic model missing from ``SMALL``).

For each field and value, through the CLI in-process: either ``validate`` refuses (exit 2, every
line in FILE: field: message form, one naming the field) or ``validate`` accepts and ``run``
completes (exit 0) with packet conservation in the run folder. Values are drawn by hypothesis
(derandomised, so the suite is deterministic); NaN and both infinities are also tried on every
float field directly, where nothing but a refusal is right.
"""

from __future__ import annotations

import math
import re
import types
import typing

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from fault_helpers import SMALL, assert_conserved_folder, invoke, scenario_text
from simcore.plugins import _params_model, _load
from simcore.scenario import Scenario, parse_scenario

#: The run branch simulates at most this long (a drawn duration_s above it is run shortened).
RUN_S = 0.05


def _numeric_kind(annotation) -> str | None:
    """'int' or 'float' for int/float fields (also inside Optional/Annotated), else None; never bool."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _numeric_kind(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = {_numeric_kind(a) for a in typing.get_args(annotation)} - {None}
        return "float" if "float" in kinds else kinds.pop() if kinds else None
    return {int: "int", float: "float"}.get(annotation)


def _walk(model: BaseModel, prefix: str, found: dict, seen: set) -> None:
    seen.add(type(model))
    for name, info in type(model).model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _walk(value, path, found, seen)
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            for i, v in enumerate(value):
                _walk(v, f"{path}[{i}]", found, seen)
        elif (kind := _numeric_kind(info.annotation)) is not None:
            finite_only = not (info.json_schema_extra or {}).get("allow_inf_nan", False) and not any(
                getattr(m, "allow_inf_nan", False) for m in info.metadata)
            found[path] = (kind, finite_only)


def numeric_fields() -> tuple[dict, set]:
    base = parse_scenario(yaml.safe_load(scenario_text()))
    found: dict = {}
    seen: set = set()
    _walk(base, "", found, seen)
    model = _params_model(_load("oransim.policies", base.policy.name, "policy.name"))
    for name, info in (model.model_fields.items() if model is not None else ()):
        if (kind := _numeric_kind(info.annotation)) is not None:
            found[f"policy.params.{name}"] = (kind, True)
    return found, seen


FIELDS, SEEN = numeric_fields()


def _models_in(annotation, out: set) -> None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in out:
            out.add(annotation)
            for info in annotation.model_fields.values():
                _models_in(info.annotation, out)
        return
    for arg in typing.get_args(annotation):
        _models_in(arg, out)


def test_every_model_is_reached():
    reachable: set = set()
    _models_in(Scenario, reachable)
    assert reachable <= SEEN, f"models no field of the fuzzed scenario reaches: {reachable - SEEN}"
    assert len(FIELDS) > 50


def _wild(path: str) -> str:
    return re.sub(r"\[\d+\]", "[*]", path)


def _check(capsys, tmp_path, path: str, value) -> str:
    """Validate, and run if valid; returns 'refused' or 'ran'. Fails the test on any other outcome."""
    f = tmp_path / "s.yaml"
    f.write_text(scenario_text({path: value}))
    res = invoke(capsys, "validate", f)
    assert "Traceback" not in res.err and "internal error" not in res.err, (path, value, res.err)
    if res.code != 0:
        assert res.code == 2, (path, value, res.err)
        lines = [ln for ln in res.lines if ": warning: " not in ln]
        assert lines and all(ln.startswith(f"{f}: ") for ln in lines), (path, value, res.err)
        assert any(path in ln or _wild(path) in ln for ln in lines), (path, value, res.err)
        return "refused"
    args = ["run", f, "--out", tmp_path / "r", "--overwrite"]
    if path == "duration_s" and value > RUN_S:
        args += ["--duration", RUN_S]
    res = invoke(capsys, *args)
    assert res.code == 0 and "Traceback" not in res.err, (path, value, res.err)
    assert_conserved_folder(tmp_path / "r")
    return "ran"


NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("path", sorted(p for p, (kind, finite) in FIELDS.items() if kind == "float" and finite))
def test_non_finite_values_are_refused_naming_the_field(path, tmp_path, capsys):
    for value in NON_FINITE:
        assert _check(capsys, tmp_path, path, value) == "refused", (path, value)


VALUES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324, -5e-324, 1e-300, 1e300, -1e300,
                     1.7976931348623157e308, 2**63, -(2**63), 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e4, max_value=1e4),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=300),
)


@pytest.mark.parametrize("path", sorted(FIELDS))
@settings(max_examples=6, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(value=VALUES)
def test_random_values_are_refused_or_run(path, value, tmp_path, capsys):
    _check(capsys, tmp_path, path, value)


def test_the_small_scenario_itself_runs(tmp_path, capsys):
    """The base every fuzz case changes one field of is valid and runs (so a refusal is the field's)."""
    assert _check(capsys, tmp_path, "seed", SMALL["seed"]) == "ran"
