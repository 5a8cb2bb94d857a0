"""Find policies and PHY backends by name through Python entry points.

Groups: ``oransim.policies`` and ``oransim.phy``. The engine never imports a plug-in by name, so a
third-party package adds its own by declaring an entry point in its ``pyproject.toml``.

A plug-in's parameters (``policy.params``, ``phy.params``) are checked against its constructor's
signature before it is built: unknown names are refused, and every parameter with a type hint is
validated by pydantic (scalars strictly: ``"false"`` is not a bool, ``2.0`` is not an int; every
float finite), so the scenario schema's rules hold for plug-ins too. Ranges are the constructor's own
business (it raises ``ValueError``). A plug-in class may also declare
``check_scenario(scenario) -> [(field, message)]`` for what it cannot run; ``oransim validate``
and ``oransim run`` both ask it before anything starts.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from importlib import metadata
from typing import Annotated, Any

from pydantic import ConfigDict, Field, ValidationError, create_model

GROUPS = {"policy": "oransim.policies", "phy": "oransim.phy"}


class PluginError(LookupError):
    """A plug-in could not be found or built; the message names the field to fix."""


def available(group: str) -> list[str]:
    return sorted({ep.name for ep in metadata.entry_points(group=group)})


def _load(group: str, name: str, field: str):
    eps = [ep for ep in metadata.entry_points(group=group) if ep.name == name]
    if not eps:
        raise PluginError(f"{field}: unknown name '{name}' (available: {', '.join(available(group)) or 'none'})")
    return eps[0].load()


_SCALARS = (bool, int, float, str, type(None))


def _scalar_hint(hint) -> bool:
    """``bool``, ``int``, ``float``, ``str`` or a union of them (``int | None``): validated strictly.
    Other hints (``Path``, ``list[float]``) keep pydantic's usual conversions from YAML values."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return all(_scalar_hint(a) for a in typing.get_args(hint))
    return hint in _SCALARS


@functools.lru_cache(maxsize=None)
def _params_model(cls):
    """A strict pydantic model of the constructor's keyword parameters (hinted ones only), or None."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable hints: leave the checks to the constructor
        hints = {}
    fields = {}
    for name, p in inspect.signature(cls).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or name not in hints:
            continue
        hint = hints[name]
        if _scalar_hint(hint):
            hint = Annotated[hint, Field(strict=True)]
        fields[name] = (hint, p.default if p.default is not p.empty else ...)
    if not fields:
        return None
    config = ConfigDict(allow_inf_nan=False, arbitrary_types_allowed=True, extra="ignore")
    return create_model(f"{cls.__name__}Params", __config__=config, **fields)


def check_params(cls, params: Any, field: str) -> None:
    """Raise ``PluginError`` naming ``FIELD.params.NAME`` if ``params`` do not fit ``cls``'s constructor."""
    if not isinstance(params, dict):
        raise PluginError(f"{field}.params: expected a mapping of parameters, got {type(params).__name__}")
    sig = inspect.signature(cls)
    named = {n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    for key in params:
        if not isinstance(key, str) or (key not in named and not takes_any):
            known = ", ".join(sorted(named)) or "none"
            raise PluginError(f"{field}.params.{key}: unknown parameter (known: {known})")
    model = _params_model(cls)
    if model is None:
        return
    try:
        model.model_validate({k: v for k, v in params.items() if k in model.model_fields})
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"])
        raise PluginError(f"{field}.params.{where}: {e['msg']} (got {e.get('input')!r:.40})") from None


def _build(cls, params: dict, field: str):
    check_params(cls, params, field)
    try:
        return cls(**params)
    except (TypeError, ValueError, ArithmeticError) as exc:
        msg = str(exc)
        name = msg.split(" ", 1)[0]  # "period_tti must be >= 1": the parameter goes into the path too
        raise PluginError(f"{field}.params{'.' + name if name in params else ''}: {msg}") from None


def make_policy(name: str, params: dict | None = None):
    return _build(_load("oransim.policies", name, "policy.name"), params or {}, "policy")


def policy_spec(text: str) -> tuple[str, dict]:
    """``NAME`` or ``NAME:CHECKPOINT`` (a learned policy and its checkpoint file) -> (name, params)."""
    name, sep, path = text.strip().partition(":")
    return name, ({"checkpoint": path} if sep else {})


def make_phy(name: str, params: dict | None = None):
    return _build(_load("oransim.phy", name, "phy.backend"), params or {}, "phy")


def phy_scenario_problems(scenario) -> list[tuple[str, str]]:
    """(field, message) for what the scenario's PHY backend cannot run (its ``check_scenario``, if any)."""
    cls = _load("oransim.phy", scenario.phy.backend, "phy.backend")
    check = getattr(cls, "check_scenario", None)
    return list(check(scenario)) if check is not None else []


def plugin_problems(scenario) -> list[tuple[str, str]]:
    """Everything about the scenario's policy and PHY that would stop ``run``: names, parameters
    (each plug-in is built, which is cheap and has no side effects), and each class's
    ``check_scenario``. ``[(field, message)]``, empty when both can run."""
    out: list[tuple[str, str]] = []
    for field, name, params in (("policy", scenario.policy.name, scenario.policy.params),
                                ("phy", scenario.phy.backend, scenario.phy.params)):
        label = "policy.name" if field == "policy" else "phy.backend"
        try:
            cls = _load(GROUPS[field], name, label)
            built = _build(cls, params, field)
        except PluginError as exc:
            path, _, msg = str(exc).partition(": ")
            out.append((path, msg))
            continue
        check = getattr(cls, "check_scenario", None)
        if check is not None:
            out.extend(check(scenario))
        fits = getattr(built, "scenario_problems", None)  # what this instance (e.g. its checkpoint) cannot run
        if fits is not None:
            out.extend(fits(scenario))
    return out
