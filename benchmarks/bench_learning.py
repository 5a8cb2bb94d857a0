"""The learning stack's costs on the paper cell (1 RU, 30 PRBs, 3 x 10 UEs), one core.

Prints, each with a reference measured in the same run:

- snapshot-env steps/s (one decode + one snapshot-problem evaluation per step), single env with
  random share actions and with DQN's template actions, and the vector env (8 and 64 copies,
  whose step is one batched decode and evaluation, ``pool.StatePool``). References in the same
  run: the snapshot problem's ``evaluate`` alone, and the per-state path (each copy's template
  vector, decode, ``evaluate`` and reward one by one: how a vector step was computed before the
  batch). Each rate is the best of ``--repeats`` windows, per second of this process's CPU time
  ("one core": time the process waited for a shared CPU does not count) and of wall time;
- engine-env steps/s (one step = one decision interval of 10 TTIs of the real engine), against
  the plain engine running PF over the same TTIs;
- states/s of ``oransim dataset`` generation, unlabelled and labelled with the optimum (MILP);
- the round trip of the optimum through the encoding (optimum -> action vector -> decoder) as the
  ratio of objectives, under both objectives: the ceiling of any learned policy;
- DQN training: environment steps/s of SB3's DQN with the default (Table I) config over a short
  budget, and the wall time that makes for the paper's 2000 x 100 steps;
- decision time of a DQN checkpoint (the shipped one if present, else a briefly trained one)
  against PF's on the same states.

The first line is the machine reference of ``bench_engine.py`` (one small numpy call): the whole
stack is made of such calls, and the machine is often shared, so compare ratios.

    python benchmarks/bench_learning.py [--states 200] [--dqn-steps 3000] [--only snapshot]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import machine_reference  # noqa: E402
from cells import paper_cell  # noqa: E402


def rate(n: int, fn) -> float:
    """Calls of ``fn`` per second over ``n`` calls (one warm-up call first)."""
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def best_rates(n: int, fn, repeats: int) -> tuple[float, float]:
    """(calls per CPU second, calls per wall second) of ``fn``: the best of ``repeats`` windows of
    ``n`` calls each (one warm-up call first). The best window is the least disturbed by the
    machine's other work; CPU time leaves out the time the process waited for a core."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            fn()
        cpu.append(n / max(time.process_time() - c0, 1e-9))
        wall.append(n / (time.perf_counter() - w0))
    return max(cpu), max(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=200, help="pool of paper-cell states for the snapshot env")
    ap.add_argument("--steps", type=int, default=2000, help="env steps timed per case")
    ap.add_argument("--dqn-steps", type=int, default=3000, help="DQN training steps timed")
    ap.add_argument("--labelled", type=int, default=40, help="labelled states (timing and round trip)")
    ap.add_argument("--repeats", type=int, default=5, help="timing windows per snapshot-env case (the best counts)")
    ap.add_argument("--only", choices=["snapshot"], help="run only this section")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from policies.learned.dataset import DatasetConfig, generate, make_states
    from policies.learned.encoding import EncodingSpec
    from policies.learned.envs import EngineEnv, SnapshotEnv, SnapshotVectorEnv, StatePool
    from simcore.engine import Engine
    from simcore.plugins import make_phy, make_policy

    per_call, per_step = machine_reference()
    print(f"machine: {per_call:.2f} us per small numpy call, {per_step:.0f} ns per Python loop step")
    scn = paper_cell(10)

    # ------------------------------------------------------------------ snapshot env
    t0 = time.perf_counter()
    obs = make_states(scn, DatasetConfig(n_states=args.states, seed=7, label="none"))
    gen_s = time.perf_counter() - t0
    spec = EncodingSpec.for_scenario(scn)
    pool = StatePool(obs, spec, "served")
    for i in range(len(pool)):
        pool.context(i)  # built once per state, as in training
    rng = np.random.default_rng(0)
    from simcore.contracts import Allocation

    empty = [Allocation.empty(o.n_ues, o.n_rus, o.n_prbs) for o in obs]
    it = iter(range(10**9))
    ref, ref_wall = best_rates(args.steps, lambda: pool.context(next(it) % len(pool)).problem.evaluate(empty[0]),
                               args.repeats)
    print(f"\nsnapshot env, paper cell ({args.states} states); best of {args.repeats} windows, per CPU second "
          f"(one core) and per wall second:")
    print(f"  reference: SnapshotProblem.evaluate alone        {ref:9,.0f} /s   wall {ref_wall:9,.0f} /s")

    def vector_case(n_envs: int, actions: str, per_state: bool = False):
        venv = SnapshotVectorEnv(n_envs, pool=pool, actions=actions)
        venv.reset(seed=0)
        batch = [venv.action_space.sample() for _ in range(16)]
        k = iter(range(10**9))
        if per_state:  # the same work state by state
            step = lambda: pool.outcomes(venv._idx, venv.coder, batch[next(k) % 16], per_state=True)  # noqa: E731
        else:
            step = lambda: venv.step(batch[next(k) % 16])  # noqa: E731
        cpu, wall = best_rates(max(2, args.steps // n_envs), step, args.repeats)
        return n_envs * cpu, n_envs * wall

    old8, old8_wall = vector_case(8, "templates", per_state=True)
    print(f"  reference: per-state path x 8, templates         {old8:9,.0f} steps/s  wall {old8_wall:9,.0f}")
    for actions in ("shares", "templates"):
        env = SnapshotEnv(pool=pool, actions=actions)
        env.reset(seed=0)
        acts = [env.action_space.sample() for _ in range(64)]
        k = iter(range(10**9))
        sps, wall = best_rates(args.steps // 4, lambda: env.step(acts[next(k) % 64]), args.repeats)
        print(f"  SnapshotEnv, {actions:9s}                         {sps:9,.0f} steps/s  wall {wall:9,.0f}  "
              f"({sps / ref:.2f} x evaluate)")
    best = {}
    for n_envs in (8, 64):
        for actions in ("shares", "templates"):
            sps, wall = vector_case(n_envs, actions)
            best[n_envs] = min(best.get(n_envs, np.inf), sps)
            print(f"  SnapshotVectorEnv x {n_envs:<3d} {actions:9s}           {sps:9,.0f} steps/s  wall {wall:9,.0f}  "
                  f"({sps / ref:.2f} x evaluate, {sps / old8:.1f} x per-state path)")
    verdict = ", ".join(f"x {n}: {'met' if v >= 5000 else 'not met'} ({v:,.0f})" for n, v in best.items())
    print(f"  target >= 5,000 snapshot-env steps/s on one core (slower of the two action kinds): {verdict}")
    if args.only == "snapshot":
        return

    # -------------------------------------------------------------------- engine env
    steps = 100
    env = EngineEnv(scn, episode_steps=steps, actions="templates")
    env.reset(seed=1)
    t0 = time.perf_counter()
    for a in rng.integers(100, size=steps):
        env.step(a)
    env_sps = steps / (time.perf_counter() - t0)
    s = scn.with_overrides(duration_s=steps * scn.scheduling.interval_tti * scn.cell.tti_s)
    t0 = time.perf_counter()
    Engine(s, make_policy("pf"), make_phy("builtin")).run()
    pf_sps = steps / (time.perf_counter() - t0)
    print(f"\nengine env, paper cell (1 step = {scn.scheduling.interval_tti} TTIs):")
    print(f"  reference: the engine with PF                {pf_sps:9,.0f} decisions/s")
    print(f"  EngineEnv, template actions                  {env_sps:9,.0f} steps/s  ({env_sps / pf_sps:.2f} x reference)")

    # ---------------------------------------------------------------------- datasets
    from policies.learned.dataset import load_states

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = generate(scn, DatasetConfig(n_states=args.labelled, seed=1, label="optimal", objective="served"),
                        Path(tmp) / "l.parquet")
        lab_s = (time.perf_counter() - t0) / args.labelled
        labelled = load_states(path)
    print("\ndataset generation, one process:")
    print(f"  unlabelled  {args.states / gen_s:7.1f} states/s")
    print(f"  labelled    {1 / lab_s:7.1f} states/s (the optimum's MILP per state)")

    # ------------------------------------------------------- round trip of the optimum
    from policies.learned.decoder import decode_action
    from policies.learned.encoding import encode_allocation, snapshot_problem
    from policies.optimal import ExactOptimum

    print(f"\nround trip optimum -> encode -> decode, objective ratio on {args.labelled} paper-cell states:")
    for objective in ("served", "rate"):
        ratios = []
        for o, label in zip(labelled.observations, labelled.labels):
            opt = label if objective == "served" else ExactOptimum(objective=objective).decide(o)
            prob = snapshot_problem(o, objective)
            back = decode_action(encode_allocation(opt, o, spec), o, spec, objective)
            ratios.append(prob.evaluate(back).objective_bps / prob.evaluate(opt).objective_bps)
        r = np.array(ratios)
        print(f"  {objective:6s} median {np.median(r):.5f}  min {r.min():.5f}  states >= 0.999: "
              f"{(r >= 0.999).sum()}/{r.size}")

    # -------------------------------------------------------------------------- DQN
    from policies.learned.train import run_training

    with tempfile.TemporaryDirectory() as tmp:
        eps = max(1, args.dqn_steps // 100)
        t0 = time.perf_counter()
        path, m = run_training("dqn", ROOT / "scenarios/paper_default.yaml", Path(tmp) / "d.pt", device="cpu",
                               overrides={"episodes": eps, "train_states": 200, "eval_every_steps": 10**9,
                                          "save_every_steps": 10**9}, eval_states=5, run_dir=Path(tmp) / "run")
        wall = time.perf_counter() - t0
        import pandas as pd

        sc = pd.read_csv(Path(tmp) / "run" / "scalars.csv")
        sps = sc[sc.tag == "charts/SPS"].value.iloc[-1]
        print(f"\nDQN training (SB3, Table I config, {eps * 100} steps, 1 thread): {wall:.0f} s in all, "
              f"{sps:,.0f} env steps/s while learning")
        print(f"  paper budget 2000 x 100 steps at that rate: {200_000 / sps / 60:.0f} min")
        shipped = ROOT / "models" / "dqn_paper_default.pt"
        ckpt = str(shipped if shipped.exists() else path)
        dqn = make_policy("dqn", {"checkpoint": ckpt})
        pf = make_policy("pf")
        times = {}
        for name, pol in (("pf", pf), ("dqn", dqn)):
            ms = []
            for o in obs[:100]:
                t0 = time.perf_counter()
                pol.decide(o)
                ms.append((time.perf_counter() - t0) * 1e3)
            times[name] = ms
        q = lambda v, p: float(np.quantile(v, p))  # noqa: E731
        print(f"\ndecision time, paper cell, 1 thread ({Path(ckpt).name}):")
        for name, ms in times.items():
            print(f"  {name:4s} median {statistics.median(ms):6.3f} ms  p99 {q(ms, 0.99):6.3f} ms")


if __name__ == "__main__":
    main()
