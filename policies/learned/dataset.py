"""Oracle datasets: snapshot states drawn from engine runs, optionally labelled with the optimum.

A dataset is one Parquet file, one row per state. Each state is the ``Observation`` a RIC saw at a
decision of a real engine run: run i uses a *variant* of the scenario (a load factor scaling every
slice's offered traffic, and optionally another number of UEs per slice or RU power, drawn from the
given grids) and its own seed, runs ``warmup_tti`` TTIs under the driver policy (the scenario's, by
default), then ``states_per_run`` decisions ``stride_decisions`` apart are kept. With
``label="optimal"`` each state gets the canonical optimum of the snapshot problem under the chosen
objective (allocation, objective, shortfall, and ``opt_proven``: whether the solver proved it
within its time limit).

Seeds: run i has seed ``2**32 + hash(seed, i)`` (``numpy.random.SeedSequence``), never below 2^32:
held-out evaluation (``oransim evaluate``, the training's evaluation) uses the small seeds
``scenario.seed + j``, so training states never come from an evaluation drop.

Generation is split into shards of ``shard_runs`` runs, computed in worker processes and written
one file each (atomically) under ``OUT.parts/``; a shard depends only on (config, shard index), so
the result is the same whatever the number of processes and however often it was resumed. The
final file is assembled and renamed into place at the end. The file's metadata holds the base
scenario and the generation config; ``load_states`` rebuilds every ``Observation`` from it.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simcore.contracts import Observation, Policy
from simcore.scenario import Scenario, parse_scenario

#: Held-out evaluation seeds stay below this; dataset runs use seeds at or above it.
DATASET_SEED_FLOOR = 2**32
#: Metadata key of the generation config and base scenario in the Parquet file.
META_KEY = b"oransim_dataset"
FORMAT_VERSION = 1

_UE_ARRAYS = ("slice_id", "serving_ru", "buffer_bits", "hol_delay_ms", "avg_throughput_bps", "qos_met_last")


@dataclass(frozen=True)
class DatasetConfig:
    """How states are drawn and labelled (stored in the file)."""

    n_states: int
    """States to produce."""
    seed: int = 0
    """Seed of the whole set (run seeds and variants derive from it)."""
    label: str = "optimal"
    """``optimal`` (the canonical optimum) or ``none`` (unlabelled)."""
    objective: str = "served"
    """Snapshot objective of the labels: ``served`` or ``rate``."""
    loads: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    """Load factors: each slice's offered traffic is scaled by one of them per run."""
    ues_per_slice: tuple[int, ...] = ()
    """UEs per slice per run drawn from these (empty: the scenario's own counts)."""
    ru_power_dbm: tuple[float, ...] = ()
    """RU power budgets drawn from these (empty: the scenario's own)."""
    warmup_tti: int = 200
    """TTIs each run goes before its first state."""
    states_per_run: int = 10
    """States kept from each run."""
    stride_decisions: int = 5
    """Decisions between two kept states of a run."""
    driver: str | None = None
    """Policy that drives the runs (None: the scenario's)."""
    shard_runs: int = 4
    """Runs per shard (the unit of work, resumption and parallelism)."""

    def __post_init__(self):
        if self.label not in ("optimal", "none"):
            raise ValueError(f"label must be 'optimal' or 'none' (got {self.label!r})")
        if self.objective not in ("served", "rate"):
            raise ValueError(f"objective must be 'served' or 'rate' (got {self.objective!r})")
        if self.n_states < 1 or self.states_per_run < 1 or self.stride_decisions < 1 or self.shard_runs < 1:
            raise ValueError("n_states, states_per_run, stride_decisions and shard_runs must be >= 1")
        if not self.loads or min(self.loads) <= 0:
            raise ValueError("loads must be positive factors")

    @property
    def n_runs(self) -> int:
        return -(-self.n_states // self.states_per_run)

    @property
    def n_shards(self) -> int:
        return -(-self.n_runs // self.shard_runs)


# ------------------------------------------------------------------------------ variants
def scale_load(data: dict, factor: float) -> None:
    """Scale every slice's offered traffic in a scenario mapping by ``factor`` (in place)."""
    for sl in data["slices"]:
        t = sl["traffic"]
        if t["model"] == "poisson":
            t["rate_mbps"] *= factor
        elif t["model"] == "ftp":
            t["file_rate_hz"] *= factor
        elif t["model"] == "sporadic":
            t["rate_pps"] *= factor
        elif t["model"] == "periodic":
            t["period_ms"] /= factor
        else:
            raise ValueError(f"scale_load: unknown traffic model {t['model']!r}")


def variant_scenario(base: Scenario, seed: int, load: float, ues: int | None, power_dbm: float | None,
                     duration_s: float) -> Scenario:
    data = base.model_dump(mode="python")
    data.update(seed=int(seed), duration_s=float(duration_s))
    scale_load(data, load)
    if ues is not None:
        for sl in data["slices"]:
            sl["ues"] = int(ues)
    if power_dbm is not None:
        for ru in data["cell"]["rus"]:
            ru["max_power_dbm"] = float(power_dbm)
    data["record"] = {"packets": False, "tti": False}
    return parse_scenario(data)


def run_plan(cfg: DatasetConfig, run_index: int) -> dict:
    """Seed and variant of run ``run_index`` (a pure function of the config)."""
    ss = np.random.SeedSequence([cfg.seed, run_index])
    words = ss.generate_state(2, dtype=np.uint32)
    seed = DATASET_SEED_FLOOR + ((int(words[0]) << 30) ^ int(words[1])) % (2**62)
    rng = np.random.default_rng(ss.spawn(1)[0])
    return {"run_seed": seed,
            "load": float(rng.choice(cfg.loads)),
            "ues": int(rng.choice(cfg.ues_per_slice)) if cfg.ues_per_slice else None,
            "power_dbm": float(rng.choice(cfg.ru_power_dbm)) if cfg.ru_power_dbm else None}


# ---------------------------------------------------------------------------- generation
class _Keeper(Policy):
    """Driver policy wrapper that keeps the observations of the chosen decision TTIs (the states
    are the scenario's decisions, so it decides every scheduling interval whatever the driver)."""

    def __init__(self, inner, keep_ttis: set[int]):
        self.inner, self.keep, self.kept = inner, keep_ttis, []
        self.name = inner.name

    def reset(self, seed=None):
        self.inner.reset(seed)

    def decide(self, obs):
        if obs.tti in self.keep:
            self.kept.append(obs)
        return self.inner.decide(obs)

    def summary(self) -> dict:
        return self.inner.summary()

    def close(self) -> None:
        self.inner.close()


def _states_of_run(base: Scenario, cfg: DatasetConfig, plan: dict) -> list[Observation]:
    from simcore.engine import Engine
    from simcore.plugins import make_phy, make_policy

    interval = base.scheduling.interval_tti
    first = -(-cfg.warmup_tti // interval) * interval
    ttis = [first + j * cfg.stride_decisions * interval for j in range(cfg.states_per_run)]
    duration = (ttis[-1] + 1) * base.cell.tti_s
    scn = variant_scenario(base, plan["run_seed"], plan["load"], plan["ues"], plan["power_dbm"], duration)
    driver_name = cfg.driver or scn.policy.name
    params = scn.policy.params if driver_name == scn.policy.name else {}
    keeper = _Keeper(make_policy(driver_name, params), set(ttis))
    Engine(scn, keeper, make_phy(scn.phy.backend, scn.phy.params)).run()
    return keeper.kept


def _label(obs: Observation, objective: str):
    from policies.optimal import ExactOptimum

    from .encoding import snapshot_problem

    alloc = ExactOptimum(objective=objective).decide(obs)
    ev = snapshot_problem(obs, objective).evaluate(alloc)
    return alloc, ev


def _shard_states(base: Scenario, cfg: DatasetConfig, shard: int):
    """(index, run, j, plan, observation) of every state of shard ``shard``."""
    for run in range(shard * cfg.shard_runs, min((shard + 1) * cfg.shard_runs, cfg.n_runs)):
        plan = run_plan(cfg, run)
        for j, obs in enumerate(_states_of_run(base, cfg, plan)):
            index = run * cfg.states_per_run + j
            if index >= cfg.n_states:
                break
            yield index, run, j, plan, obs


def make_states(base: Scenario, cfg: DatasetConfig) -> list[Observation]:
    """The dataset's observations, in memory and unlabelled (for a training pool)."""
    return [obs for shard in range(cfg.n_shards) for *_, obs in _shard_states(base, cfg, shard)]


def make_shard(base_json: str, cfg_json: str, shard: int) -> pa.Table:
    """Rows of shard ``shard`` (runs shard*shard_runs ...): the unit of work of a worker process."""
    base = parse_scenario(json.loads(base_json))
    cfg = DatasetConfig(**_tuples(json.loads(cfg_json)))
    rows = []
    for index, run, j, plan, obs in _shard_states(base, cfg, shard):
        row = {"state": index, "run": run, "state_in_run": j, "tti": obs.tti, **plan,
               "n_ues": obs.n_ues, "n_rus": obs.n_rus, "n_prbs": obs.n_prbs,
               "gain": obs.gain.ravel().tolist()}
        for name in _UE_ARRAYS:
            row[name] = np.asarray(getattr(obs, name)).tolist()
        if cfg.label == "optimal":
            alloc, ev = _label(obs, cfg.objective)
            row.update(opt_ue_ru=alloc.ue_ru.tolist(), opt_prb_owner=alloc.prb_owner.ravel().tolist(),
                       opt_power_w=alloc.power_w.ravel().tolist(), opt_objective_bps=ev.objective_bps,
                       opt_violation_bps=ev.violation_bps, opt_proven=bool(alloc.info.get("proven_optimal", True)))
        rows.append(row)
    return pa.Table.from_pylist(rows)


def _tuples(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def generate(base: Scenario, cfg: DatasetConfig, out: str | Path, jobs: int = 1, resume: bool = False,
             progress=None) -> Path:
    """Write the dataset to ``out`` (see the module docstring); returns its path."""
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    meta = {"format": FORMAT_VERSION, "config": asdict(cfg), "scenario": base.model_dump(mode="json")}
    meta_json = json.dumps(meta, sort_keys=True)
    if parts.exists():
        same = (parts / "meta.json").exists() and (parts / "meta.json").read_text() == meta_json
        if not (resume and same):
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    (parts / "meta.json").write_text(meta_json)
    todo = [i for i in range(cfg.n_shards) if not (parts / f"shard-{i:05d}.parquet").exists()]
    done_states = (cfg.n_shards - len(todo)) * cfg.shard_runs * cfg.states_per_run
    base_json = json.dumps(base.model_dump(mode="json"))
    cfg_json = json.dumps(asdict(cfg))

    def finished(i, table):
        nonlocal done_states
        _write_atomic(table, parts / f"shard-{i:05d}.parquet")
        done_states += table.num_rows
        if progress is not None:
            progress(min(done_states, cfg.n_states), cfg.n_states)

    if progress is not None:
        progress(min(done_states, cfg.n_states), cfg.n_states)
    if jobs <= 1 or len(todo) <= 1:
        for i in todo:
            finished(i, make_shard(base_json, cfg_json, i))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(make_shard, base_json, cfg_json, i): i for i in todo}
            for fut in as_completed(futures):
                finished(futures[fut], fut.result())
    tables = [pq.read_table(parts / f"shard-{i:05d}.parquet") for i in range(cfg.n_shards)]
    table = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    table = table.replace_schema_metadata({META_KEY: meta_json.encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(table, out)
    shutil.rmtree(parts)
    return out


# ------------------------------------------------------------------------------- reading
@dataclass
class StateSet:
    """States of a dataset file as Observations, with their labels where present."""

    observations: list[Observation]
    config: DatasetConfig
    scenario: Scenario
    run_seeds: np.ndarray  # (N,)
    labels: list | None = None  # per state: Allocation of the optimum
    opt_objective_bps: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


class DatasetError(ValueError):
    """A dataset file cannot be read; the message names the file and the cause."""


def load_states(path: str | Path, limit: int | None = None) -> StateSet:
    """The states of a dataset file; ``path`` may also be several files joined by commas
    (``a.parquet,b.parquet``, e.g. sets drawn over other UE counts), read as one set in that order:
    they must share the base scenario and, where labelled, the objective."""
    if "," in str(path):
        return _concat([load_states(p) for p in str(path).split(",") if p], str(path), limit)
    return _load_one(path, limit)


def _concat(sets: list[StateSet], name: str, limit: int | None) -> StateSet:
    first = sets[0]
    for s in sets[1:]:
        if s.scenario.model_dump() != first.scenario.model_dump():  # parsed: fields added since read as defaults
            raise DatasetError(f"{name}: the files were drawn from different base scenarios")
        if (s.labels is None) != (first.labels is None) or (s.labels is not None and s.config.objective != first.config.objective):
            raise DatasetError(f"{name}: the files must all be labelled with the same objective, or all unlabelled")
    n = sum(len(s.observations) for s in sets) if limit is None else limit
    cat = lambda xs: np.concatenate(xs)[:n]  # noqa: E731
    return StateSet([o for s in sets for o in s.observations][:n], first.config, first.scenario,
                    cat([s.run_seeds for s in sets]),
                    [a for s in sets for a in s.labels][:n] if first.labels is not None else None,
                    cat([s.opt_objective_bps for s in sets]) if first.labels is not None else None, first.meta)


def _load_one(path: str | Path, limit: int | None = None) -> StateSet:
    from simcore.contracts import Allocation

    path = Path(path)
    try:
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[META_KEY])
    except (OSError, KeyError, TypeError, pa.ArrowException, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not an oransim dataset ({exc})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise DatasetError(f"{path}: dataset format {meta.get('format')}, this oransim reads {FORMAT_VERSION}")
    cfg = DatasetConfig(**_tuples(meta["config"]))
    base = parse_scenario(meta["scenario"])
    if limit is not None:
        table = table.slice(0, limit)
    cols = table.to_pydict()
    obs_list, labels = [], []
    for i in range(table.num_rows):
        scn, consts = _variant_cached(json.dumps(meta["scenario"]), cols["load"][i], cols["ues"][i], cols["power_dbm"][i])
        shape = (cols["n_ues"][i], cols["n_rus"][i], cols["n_prbs"][i])
        arrays = {name: np.asarray(cols[name][i]) for name in _UE_ARRAYS}
        obs_list.append(observation_from_arrays(scn, cols["tti"][i], np.asarray(cols["gain"][i]).reshape(shape), arrays,
                                                consts))
        if "opt_objective_bps" in cols:
            labels.append(Allocation(np.asarray(cols["opt_ue_ru"][i], dtype=np.int64),
                                     np.asarray(cols["opt_prb_owner"][i], dtype=np.int64).reshape(shape[1:]),
                                     np.asarray(cols["opt_power_w"][i], dtype=float).reshape(shape[1:])))
    has = "opt_objective_bps" in cols
    return StateSet(obs_list, cfg, base, np.asarray(cols["run_seed"], dtype=np.int64), labels if has else None,
                    np.asarray(cols["opt_objective_bps"]) if has else None, meta)


@lru_cache(maxsize=64)
def _variant_cached(base_json: str, load, ues, power_dbm) -> tuple[Scenario, dict]:
    scn = variant_scenario(parse_scenario(json.loads(base_json)), 0, load, ues, power_dbm, 1.0)
    return scn, _constants(scn)


def _constants(scn: Scenario) -> dict:
    """What an Observation takes from the scenario (as the engine builds it), per variant."""
    from simcore.units import dbm_to_w

    sl = scn.slices
    per = lambda f: np.array([f(x) for x in sl], dtype=float)  # noqa: E731
    consts = dict(
        min_rate=per(lambda x: x.min_rate_mbps * 1e6), max_rate=per(lambda x: x.max_rate_mbps * 1e6),
        max_delay=per(lambda x: x.max_delay_ms), weight=per(lambda x: x.weight),
        names=tuple(x.name for x in sl),
        ru_power=np.asarray(dbm_to_w([ru.max_power_dbm for ru in scn.cell.rus]), dtype=float),
        caps=np.array([dbm_to_w(x.power_cap_dbm) if x.power_cap_dbm is not None else np.inf for x in sl], dtype=float),
        links={})  # slice of each UE (bytes) -> LinkModel (per-UE finite-blocklength rates need it)
    for v in consts.values():
        if isinstance(v, np.ndarray):
            v.flags.writeable = False
    return consts


def observation_from_arrays(scn: Scenario, tti: int, gain: np.ndarray, arrays: dict,
                            consts: dict | None = None) -> Observation:
    """Rebuild the Observation the engine gave at ``tti`` from its stored per-UE arrays and gains."""
    from simcore.phy import LinkModel

    c = consts or _constants(scn)
    slice_id = np.asarray(arrays["slice_id"], dtype=np.int64)
    serving = np.asarray(arrays["serving_ru"], dtype=np.int64)
    key = slice_id.tobytes()
    if key not in c["links"]:
        c["links"][key] = LinkModel.from_scenario(scn, ue_slice=slice_id)
    link = c["links"][key]
    prb_rate, sinr = link.estimated_prb_rate_bps(gain, serving, c["ru_power"])
    return Observation(
        tti=int(tti), time_s=tti * scn.cell.tti_s, slice_id=slice_id, serving_ru=serving, gain=gain,
        prb_sinr=sinr, prb_rate_bps=prb_rate, buffer_bits=np.asarray(arrays["buffer_bits"], dtype=float),
        hol_delay_ms=np.asarray(arrays["hol_delay_ms"], dtype=float),
        avg_throughput_bps=np.asarray(arrays["avg_throughput_bps"], dtype=float),
        qos_met_last=np.asarray(arrays["qos_met_last"], dtype=bool),
        min_rate_bps=c["min_rate"][slice_id], max_rate_bps=c["max_rate"][slice_id],
        max_delay_ms=c["max_delay"][slice_id], slice_weight=c["weight"], slice_names=c["names"],
        ru_max_power_w=c["ru_power"], slice_power_cap_w=c["caps"], interval_tti=scn.scheduling.interval_tti,
        link=link)
