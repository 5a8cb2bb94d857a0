"""Sweep files: a base scenario, the scenario fields to vary, seeds, policies, what to run per point.

A sweep file is YAML read as strictly as a scenario (``simcore.yamlio``) and validated by
``SweepSpec``::

    name: ues_sweep
    scenario: ../paper_default.yaml        # relative to this file
    set: {duration_s: 2.0}                 # fixed changes to the base scenario
    grid:                                  # every combination (cartesian product) ...
      "slices[*].ues": [5, 10, 20]
      "cell.rus[0].max_power_dbm": [40, 46]
    points:                                # ... times each of these listed points (optional)
      - {"slices[0].power_cap_dbm": 30}
    seeds: {first: 1, count: 5}            # or a list: [1, 2, 3]
    policies: [pf, rr, optimal, "dqn:../../models/dqn_paper_default.pt"]
    run: {duration_s: 2.0}                 # a DES run per point x seed x policy (omit: none)
    evaluate: {states: 10, objective: rate} # policies vs the optimum on sampled states (omit: none)

Fields are named by dotted paths into the scenario as ``oransim validate`` names them:
``cell.rus[0].max_power_dbm``; ``[*]`` stands for every element (``slices[*].ues``: UEs per
slice, in every slice). ``seed`` and ``policy`` are not paths: they come from ``seeds`` and
``policies``. Paths (relative file names, checkpoints) in the file are relative to the file.

``expand`` turns a spec into ``Point``s (each a validated ``Scenario``) and ``Job``s: a DES job
per point x seed x policy and an evaluate job per point x seed (every policy on the same states,
the optimum solved once). A job's ``key`` hashes everything that decides its result (the resolved
scenario, seed, policy, mode and its options), so a re-run recognises finished jobs even after
the file was edited, and reruns only those whose definition changed. The key also holds the
code that computes a result (``code_fingerprint``: a hash of the source of the packages that
simulate, decide and score, and the versions of the numerical libraries) and the content of each
checkpoint a policy loads, so results of an older version or of a retrained model are not reused.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import Field, ValidationError, field_validator

from simcore.scenario import NAME_PATTERN, Scenario, ScenarioError, _Strict, load_scenario, parse_scenario
from simcore.yamlio import YamlError, load_yaml_text, read_text_file

#: Version of a job record's layout (its KPI columns); results of the code itself are told apart by
#: ``code_fingerprint`` in every key. 2: keys hold the code fingerprint and checkpoint contents.
JOB_FORMAT = 2
#: What decides a job's numbers: these packages' source (every .py file and the ns-3 server's .cc) ...
CODE_PACKAGES = ("simcore", "policies", "analysis", "ns3_bridge")
#: ... but their modules that only draw ...
CODE_EXCLUDED = ("analysis/plots.py", "analysis/sweep_plots.py")
#: ... and these modules of the command-line package (the rest of it only runs and reports) ...
CODE_MODULES = ("oransim/evaluate.py", "oransim/sweep_jobs.py")
#: ... and the versions of the libraries the numbers come from (those installed).
CODE_LIBRARIES = ("numpy", "scipy", "pandas", "highspy", "torch", "stable-baselines3", "simpy")
#: Jobs one sweep may hold (a typo such as a 1,000-value list should not start a week of work).
MAX_JOBS = 100_000
_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\*|[0-9]+)\]|(\.)")


class SweepError(ScenarioError):
    """A sweep file failed to load or validate. ``problems`` holds ``(field, message)`` pairs; the
    same one-line-per-problem form as a scenario's (``lines()``)."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "<sweep>"):
        super().__init__(problems, source)


class SeedRange(_Strict):
    first: int = Field(ge=0, lt=2**62)
    count: int = Field(ge=1, le=10_000)


class RunSpec(_Strict):
    """A DES run (``oransim run``) per point x seed x policy."""

    duration_s: float | None = Field(None, gt=0, le=3600, description="simulated seconds (default: the scenario's)")
    record_packets: bool = Field(True, description="keep the packets table in each run folder")


class EvaluateSpec(_Strict):
    """``oransim evaluate`` per point x seed: every policy and the optimum on the same sampled states.
    Seed s samples states with seeds s*states ... s*states+states-1 (disjoint across seeds)."""

    states: int = Field(10, ge=1, le=100_000)
    objective: Literal["served", "rate"] = "served"
    optimum: Literal["auto", "esa", "optimal"] = "auto"
    warmup_tti: int = Field(200, ge=1, le=1_000_000)


class SweepSpec(_Strict):
    name: str = Field(description="names the output folder sweeps/NAME")
    scenario: str = Field(min_length=1, description="base scenario file, relative to the sweep file")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted path -> value for every point")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted path -> values (every combination)")
    points: list[dict[str, Any]] = Field(default_factory=list, description="listed points (dotted path -> value)")
    seeds: Union[list[int], SeedRange] = Field(description="a list of seeds or {first, count}")
    policies: list[str] = Field(min_length=1, max_length=64, description="NAME or NAME:CHECKPOINT")
    run: RunSpec | None = None
    evaluate: EvaluateSpec | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not NAME_PATTERN.match(v):
            raise ValueError(f"'{v[:80]}' cannot name a folder: use 1-64 letters, digits, '.', '_' or '-'")
        return v

    @field_validator("grid")
    @classmethod
    def _non_empty(cls, v: dict) -> dict:
        for path, values in v.items():
            if not values:
                raise ValueError(f"'{path}' has no values")
        return v

    @property
    def seed_list(self) -> list[int]:
        if isinstance(self.seeds, SeedRange):
            return list(range(self.seeds.first, self.seeds.first + self.seeds.count))
        return list(self.seeds)


# ------------------------------------------------------------------------------ dotted paths
def parse_path(path: str) -> list[str | int]:
    """``'cell.rus[0].max_power_dbm'`` -> ``['cell', 'rus', 0, 'max_power_dbm']`` (``'*'`` kept);
    ``ValueError`` naming the first character that does not fit."""
    parts: list[str | int] = []
    pos, expect_name = 0, True
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            raise ValueError(f"cannot read the path at '{path[pos:pos + 20]}'")
        name, index, dot = m.groups()
        if name is not None:
            if not expect_name:
                raise ValueError(f"a '.' must separate the names in '{path}'")
            parts.append(name)
            expect_name = False
        elif index is not None:
            if expect_name:
                raise ValueError(f"'[{index}]' must follow a name in '{path}'")
            parts.append("*" if index == "*" else int(index))
        else:
            if expect_name:
                raise ValueError(f"empty name in '{path}'")
            expect_name = True
        pos = m.end()
    if not parts or expect_name:
        raise ValueError(f"'{path}' does not end with a name or an index")
    return parts


def set_path(data: dict, path: str, value: Any) -> None:
    """Set ``path`` in a scenario as a plain mapping (``Scenario.model_dump``), in place. A name
    must exist there (the dump holds every field), except as a new key of a ``params`` mapping."""
    parts = parse_path(path)
    if parts[0] in ("seed", "policy"):
        raise ValueError(f"'{parts[0]}' is set by the sweep's '{parts[0]}s', not by a path")

    def walk(node, i: int, where: str):
        key = parts[i]
        last = i == len(parts) - 1
        if isinstance(key, str) and key != "*":
            if not isinstance(node, dict):
                raise ValueError(f"{where or 'the scenario'} is not a mapping: '{key}' cannot follow it")
            if key not in node and not where.endswith("params"):
                raise ValueError(f"the scenario has no field '{key}'" + (f" in {where}" if where else ""))
            here = f"{where}.{key}" if where else key
            if last:
                node[key] = value
            else:
                walk(node[key], i + 1, here)
            return
        if not isinstance(node, list):
            raise ValueError(f"{where} is not a list: it has no [{key}]")
        items = range(len(node)) if key == "*" else [key]
        for j in items:
            if j >= len(node):
                raise ValueError(f"{where} has {len(node)} element(s): no [{j}]")
            if last:
                node[j] = value
            else:
                walk(node[j], i + 1, f"{where}[{j}]")

    walk(data, 0, "")


# ------------------------------------------------------------------------------ expansion
@dataclass(frozen=True)
class Point:
    index: int
    values: dict  # dotted path -> value (the swept fields only)
    scenario: Scenario  # seed and policy still the base scenario's


@dataclass(frozen=True)
class Job:
    """One unit of work: ``mode`` is ``run`` (one policy) or ``evaluate`` (every policy)."""

    key: str
    job_id: str  # file and folder name: readable, unique within a sweep
    mode: str
    point: int
    seed: int
    policies: tuple[str, ...]
    scenario: dict = field(repr=False)  # resolved scenario (JSON-able), seed and policy set for ``run``
    options: dict = field(default_factory=dict)


def _label(policy: str) -> str:
    name = policy.partition(":")[0]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:24] or "policy"


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash (16 hex digits) of the code that computes a job's result: the source of
    ``CODE_PACKAGES`` but ``CODE_EXCLUDED``, and ``CODE_MODULES`` (relative path and bytes of each
    file, sorted) and the
    installed versions of ``CODE_LIBRARIES``. Any edit there, a pulled commit or an upgraded
    library changes every key, so a re-run recomputes rather than reuses; an edit elsewhere (the
    command line, reporting, docs) keeps finished results."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    files = {f.relative_to(root).as_posix(): f for pkg in CODE_PACKAGES for pattern in ("*.py", "*.cc")
             for f in (root / pkg).rglob(pattern)}
    files.update({m: root / m for m in CODE_MODULES})
    for rel in sorted(set(files) - set(CODE_EXCLUDED)):
        h.update(rel.encode() + b"\0" + files[rel].read_bytes() + b"\0")
    for lib in CODE_LIBRARIES:
        try:
            version = metadata.version(lib)
        except metadata.PackageNotFoundError:
            version = "-"
        h.update(f"{lib}={version}\0".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def checkpoint_digest(policy: str) -> str | None:
    """Hash of the file a ``NAME:CHECKPOINT`` policy loads (None without one, "missing" if absent):
    a retrained checkpoint under the same name is a different job."""
    _, sep, path = policy.partition(":")
    if not sep:
        return None
    try:
        st = os.stat(path)
        return _file_digest(path, st.st_size, st.st_mtime_ns)
    except OSError:
        return "missing"


def stale_install(name: str, group: str = "oransim.policies") -> str | None:
    """Why plug-in ``name`` is missing although this source tree has it: the ``pyproject.toml``
    beside the package declares it and its module file is there, but the environment's entry
    points were installed from an older tree. None if the tree does not have it either."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    try:
        declared = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
        target = declared["project"]["entry-points"][group][name]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    module = root / (target.partition(":")[0].replace(".", "/") + ".py")
    if not module.is_file():
        return None
    return (f"'{name}' is in this source tree ({module.relative_to(root).as_posix()}) but not registered in this "
            f"environment, whose entry points are older: reinstall (`make install` or `pip install -e .`)")


def unknown_policy(name: str, known: list[str]) -> str:
    """The one-line reason a policy name is refused (with the reinstall hint where it applies)."""
    return stale_install(name) or f"unknown policy '{name}' (available: {', '.join(known)})"


def _key(payload: dict) -> str:
    text = json.dumps({"format": JOB_FORMAT, "code": code_fingerprint(), **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _resolve_policy(spec: str, base: Path) -> str:
    """``NAME:CHECKPOINT`` with the checkpoint made absolute (relative to the sweep file)."""
    name, sep, path = spec.partition(":")
    if not sep:
        return spec
    p = Path(path)
    return f"{name}:{p if p.is_absolute() else (base / p).resolve()}"


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; ``SweepError`` with ``(field, message)`` pairs."""
    source = str(path)
    try:
        data = load_yaml_text(read_text_file(path))
    except YamlError as exc:
        raise SweepError([(exc.where, exc.message)], source) from None
    if not isinstance(data, dict):
        raise SweepError([("(top level)", f"expected a mapping of fields, got {type(data).__name__}")], source)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith(("list[", "SeedRange")))
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            problems.append((loc or "(top level)", msg))
        raise SweepError(problems, source) from None
    problems = []
    if spec.run is None and spec.evaluate is None:
        problems.append(("run", "nothing to do: give run, evaluate or both"))
    if len(set(spec.policies)) != len(spec.policies):
        problems.append(("policies", "a policy is named twice"))
    if len(set(spec.seed_list)) != len(spec.seed_list):
        problems.append(("seeds", "a seed is listed twice"))
    if problems:
        raise SweepError(problems, source)
    return spec


def expand(spec: SweepSpec, sweep_file: str | Path) -> tuple[list[Point], list[Job]]:
    """Points and jobs of a sweep; ``SweepError`` naming the field (and point) at fault."""
    from simcore.plugins import available, policy_spec

    source = str(sweep_file)
    base_dir = Path(sweep_file).resolve().parent
    scn_path = base_dir / spec.scenario
    try:
        base = load_scenario(scn_path)
    except ScenarioError as exc:
        raise SweepError([("scenario", f"{spec.scenario}: {p}: {m}") for p, m in exc.problems], source) from None
    known = available("oransim.policies")
    problems = [(f"policies[{i}]", unknown_policy(policy_spec(p)[0], known))
                for i, p in enumerate(spec.policies) if policy_spec(p)[0] not in known]
    for where, paths in (("set", spec.set), ("grid", spec.grid), *((f"points[{i}]", p) for i, p in enumerate(spec.points))):
        for path in paths:
            try:
                parse_path(path)
                set_path(base.model_dump(mode="python"), path, None)  # the path exists (value checked below)
            except ValueError as exc:
                problems.append((f"{where}['{path}']", str(exc)))
    if problems:
        raise SweepError(problems, source)
    policies = [_resolve_policy(p, base_dir) for p in spec.policies]

    combos = [dict(zip(spec.grid, values)) for values in itertools.product(*spec.grid.values())]
    listed = spec.points or [{}]
    n_jobs = len(combos) * len(listed) * len(spec.seed_list) * ((len(policies) if spec.run else 0) + bool(spec.evaluate))
    if n_jobs > MAX_JOBS:
        raise SweepError([("grid", f"{n_jobs:,} jobs (points x seeds x policies) is more than {MAX_JOBS:,}")], source)
    points: list[Point] = []
    for listed_values, combo in itertools.product(listed, combos):
        values = {**listed_values, **combo}
        data = base.model_dump(mode="python")
        for path, value in {**spec.set, **values}.items():
            set_path(data, path, value)
        if spec.run is not None:
            if spec.run.duration_s is not None:
                data["duration_s"] = spec.run.duration_s
            if not spec.run.record_packets:
                data["record"]["packets"] = False
        try:
            scn = parse_scenario(data)
        except ScenarioError as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "the base scenario with set"
            raise SweepError([(f"point {len(points)} ({shown})", f"{p}: {m}") for p, m in exc.problems], source) from None
        points.append(Point(len(points), values, scn))

    jobs: list[Job] = []
    for pt in points:
        for seed in spec.seed_list:
            if spec.run is not None:
                for pol in policies:
                    name, params = policy_spec(pol)
                    data = pt.scenario.model_dump(mode="json")
                    data["seed"] = seed
                    data["policy"] = {"name": name, "params": params}
                    key = _key({"mode": "run", "scenario": data, "checkpoints": [checkpoint_digest(pol)]})
                    jobs.append(Job(key, f"p{pt.index:04d}-{_label(pol)}-s{seed}-{key[:8]}", "run", pt.index, seed,
                                    (pol,), data))
            if spec.evaluate is not None:
                data = pt.scenario.model_dump(mode="json")
                data["seed"] = seed
                options = spec.evaluate.model_dump()
                key = _key({"mode": "evaluate", "scenario": data, "policies": policies, "options": options,
                            "checkpoints": [checkpoint_digest(p) for p in policies]})
                jobs.append(Job(key, f"p{pt.index:04d}-evaluate-s{seed}-{key[:8]}", "evaluate", pt.index, seed,
                                tuple(policies), data, options))
    return points, jobs
