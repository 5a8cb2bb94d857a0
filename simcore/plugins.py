"""Find policies and PHY backends by name through Python entry points.

Groups: ``oransim.policies`` and ``oransim.phy``. The engine never imports a plug-in by name, so a
third-party package adds its own by declaring an entry point in its ``pyproject.toml``.
"""

from __future__ import annotations

import inspect
from importlib import metadata


class PluginError(LookupError):
    """A plug-in could not be found or built; the message names the field to fix."""


def available(group: str) -> list[str]:
    return sorted({ep.name for ep in metadata.entry_points(group=group)})


def _load(group: str, name: str, field: str):
    eps = [ep for ep in metadata.entry_points(group=group) if ep.name == name]
    if not eps:
        raise PluginError(f"{field}: unknown name '{name}' (available: {', '.join(available(group)) or 'none'})")
    return eps[0].load()


def _build(cls, params: dict, field: str):
    try:
        sig = inspect.signature(cls)
        sig.bind(**params)
    except TypeError as exc:
        raise PluginError(f"{field}.params: {exc}") from None
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{field}.params: {exc}") from None


def make_policy(name: str, params: dict | None = None):
    return _build(_load("oransim.policies", name, "policy.name"), params or {}, "policy")


def make_phy(name: str, params: dict | None = None):
    return _build(_load("oransim.phy", name, "phy.backend"), params or {}, "phy")


def phy_scenario_problems(scenario) -> list[tuple[str, str]]:
    """(field, message) for what the scenario's PHY backend cannot run (its ``check_scenario``, if any)."""
    cls = _load("oransim.phy", scenario.phy.backend, "phy.backend")
    check = getattr(cls, "check_scenario", None)
    return list(check(scenario)) if check is not None else []
