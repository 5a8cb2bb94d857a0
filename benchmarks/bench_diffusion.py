"""Diffusion-QL's costs on the paper cell (1 RU, 30 PRBs, 3 x 10 UEs), torch on one thread.

Prints, each with a reference measured in the same run:

- decision latency (median, p99 of the thread's CPU time per decision, which a shared machine
  inflates far less than wall time; the wall median is printed too) of the policy with 5, 10 and
  20 denoising steps and the Table I network (16 x 128), with 1, 2, 4, 8 and 12 candidates, and
  with more than one under both selection rules (``select: critic``: the target critics' min-Q;
  ``select: objective``: every candidate decoded and ranked in the snapshot problem): the sampling
  alone (the compiled fast path, and the plain PyTorch loop as the reference, on the same noise;
  the critics run only for ``critic``; its arithmetic in GFLOP/s next to the machine's single-thread
  matrix product at the trunk's shape and at 512^3), the shared encoding (compiled, and the numpy
  reference: the same bytes or not), the decode of the chosen candidate or
  the decode and ranking of all (compiled, and the numpy reference), and the whole decision as
  ``oransim run`` calls it (encode, sample the candidates, choose, decode): fast path against the
  PyTorch loop with the numpy encoder and decoder, and against PF's decision on the same states.
  How far the fast path is from the loop: the largest difference of their actions (the tolerance
  the tests hold is 1e-4), on how many states both pick the same candidate and decode to the same
  allocation; the compiled decoder's output (every candidate's owners and powers) is compared with
  the numpy one's (identical or not).
  Weights are the shipped checkpoint's for 20 steps when it is there, else freshly initialised
  (the cost does not depend on the weights); ``--checkpoints`` adds shipped checkpoints timed at
  their own configuration (candidates, select, share map, need-floor copies, joint placement: what
  ``oransim run`` does with them);
- with ``--cold-compile``: the compiled path's first call in a fresh process with an empty numba
  cache (what the first run on a machine pays once; later runs load the cached machine code);
- training throughput: gradient steps/s at the Table I size with the original's settings (gamma
  0.98, the Q term on the whole batch) and with gamma 0 and the Q term on 32 of the 128 states;
- the evaluate table (diffusion_ql, dqn, pf against the optimum) on ``--eval-states`` held-out
  states (seeds 1, 2, ...), both objectives, with the shipped checkpoints (skipped with 0).

The first line is the machine reference of ``bench_engine.py`` (one small numpy call) and the
load average; the machine is often shared, so compare ratios.

    python benchmarks/bench_diffusion.py [--states 30] [--eval-states 200] [--train-steps 10] [--steps 5,10,20]
                                         [--candidates 1,2,4,8,12] [--select critic,objective] [--cold-compile]
                                         [--checkpoints diffusion_ql_paper_default_agreement.pt,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

# one BLAS thread, as torch's one thread (set before numpy loads OpenBLAS): on a busy machine a
# second BLAS thread only waits for a core
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import machine_reference  # noqa: E402

MODELS = ROOT / "models"


def stats_ms(times: np.ndarray) -> str:
    """Median and p99 of the thread's CPU time per call, and the median wall time (waits included)."""
    cpu, wall = times[:, 0] * 1e3, times[:, 1] * 1e3
    return f"cpu median {np.median(cpu):7.3f} ms  p99 {np.percentile(cpu, 99):7.3f} ms  (wall median {np.median(wall):7.3f})"


def timed(fn, items, repeat: int = 3) -> np.ndarray:
    """(calls, 2) thread CPU seconds and wall seconds of each call (one warm-up call first)."""
    fn(items[0])
    out = []
    for _ in range(repeat):
        for it in items:
            t0, c0 = time.perf_counter(), time.thread_time()
            fn(it)
            out.append((time.thread_time() - c0, time.perf_counter() - t0))
    return np.asarray(out)


def checkpoint_for(steps: int, folder: Path, scenario) -> Path:
    """The shipped checkpoint for 20 steps when present, else a freshly initialised Table I agent."""
    shipped = MODELS / "diffusion_ql_paper_default.pt"
    if steps == 20 and shipped.exists():
        return shipped
    import torch

    from policies.learned.checkpoint import save_checkpoint
    from policies.learned.diffusion_ql import Agent, Config
    from policies.learned.encoding import EncodingSpec

    torch.manual_seed(0)
    cfg = replace(Config(), diffusion_steps=steps, max_ues=150)
    spec = EncodingSpec.for_scenario(scenario, 150)
    agent = Agent(spec, cfg, "cpu", 0)
    state = {k: v for k, v in agent.state_dict().items() if k in ("actor_ema", "critic_target")}
    path = folder / f"init{steps}.pt"
    save_checkpoint(path, policy="diffusion_ql", spec=spec, objective="served", config=asdict(cfg),
                    scenario=scenario, seed=0, state=state, metrics={}, training={})
    return path


def same_allocations(a, b, exact: bool = False) -> bool:
    """Same PRB owners, and powers equal (``exact``) or equal to float32 rounding of the shares they come from."""
    if exact:
        return np.array_equal(a.prb_owner, b.prb_owner) and np.array_equal(a.power_w, b.power_w)
    return np.array_equal(a.prb_owner, b.prb_owner) and np.allclose(a.power_w, b.power_w, rtol=1e-5, atol=0.0)


def cold_compile() -> None:
    """The compiled path's first decision in a fresh process with an empty numba cache."""
    import subprocess

    code = ("import time, os; t0 = time.process_time(); w0 = time.perf_counter()\n"
            "from policies.learned.diffusion_ql import DiffusionQlPolicy\n"
            "from policies.learned.decoder import decode_action\n"
            "from oransim.evaluate import sample_states\n"
            "from simcore.scenario import load_scenario\n"
            "o = sample_states(load_scenario('scenarios/paper_default.yaml'), 1, 10_000, 200)[0]\n"
            "t1 = time.process_time(); w1 = time.perf_counter()\n"
            "p = DiffusionQlPolicy(candidates=8); p.decide(o)\n"
            "print(f'{time.process_time() - t1:.1f} s CPU ({time.perf_counter() - w1:.1f} s wall) after imports')\n")
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("empty cache (compiles)", "cache filled (loads)"):
            out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr.strip().splitlines()[-1])
            print(f"first decision of a fresh process, {label}: {out.stdout.strip()}")


def matmul_reference() -> None:
    """The machine's single-thread float32 matrix product speed, at the trunk's shape (20 steps x 129
    inputs (bias row) x 128 outputs, as the sampler calls it) and at 512^3: what the sampling's
    GFLOP/s compares with."""
    rng = np.random.default_rng(0)
    for m, k, n, reps in ((20, 129, 128, 15), (512, 512, 512, 1)):
        a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
        t = timed(lambda _: [np.dot(a, b) for _ in range(reps)], [None] * 20, repeat=5)
        print(f"matrix product ({m} x {k}) @ ({k} x {n}) x {reps}, numpy one thread: {stats_ms(t)}"
              f"  {2e-9 * m * k * n * reps / np.median(t[:, 0]):.0f} GFLOP/s")


def sampler_macs(policy, n_ues: int) -> int:
    """Multiply-adds of one compiled sampling (``diffusion_fast``) of ``policy``'s candidates for n_ues
    UEs: trunk (all steps at once), the steps' head projection, and per step and candidate the head's
    input, hidden and output layers (the encoder and the critics are left out: a few percent)."""
    w = policy.sampler._weights
    hid, n_steps = w[7].shape  # the steps' share of the first layer, (H, N)
    trunk, code_w, w2 = w[8], w[9], w[14]  # trunk: (layers - 1, H, H + 1), transposed
    e = w2.shape[0]
    rows = policy.candidates * n_ues
    return (n_steps * (trunk.shape[0] * trunk.shape[2] * hid + hid * code_w.shape[1])
            + n_steps * rows * (e * e + 2 * e + 4 * e))


def latency(states, scenario, folder: Path, step_counts=(5, 10, 20), candidates=(1, 8),
            selects=("critic", "objective"), checkpoints=()) -> None:
    from policies.learned.decoder import DecodeContext, decode_action, decode_candidates
    from policies.learned.diffusion_ql import DiffusionQlPolicy, best_by_objective, need_floored, scaled
    from policies.learned.encoding import encode_state, snapshot_problem
    from simcore.plugins import make_policy

    pf = make_policy("pf")
    t_pf = timed(pf.decide, states)
    print(f"PF decision (reference)                         {stats_ms(t_pf)}")
    matmul_reference()
    runs = [(checkpoint_for(steps, folder, scenario), c, select) for steps in step_counts for c in candidates
            for select in (selects if c > 1 else selects[:1])]
    runs += [(MODELS / name, None, None) for name in checkpoints]  # each at its own configuration
    for path, c, select in runs:
        fast = DiffusionQlPolicy(str(path), threads=1, candidates=c, select=select)
        slow = DiffusionQlPolicy(str(path), threads=1, candidates=c, select=select, fast=False)
        steps, c, select = fast.cfg.diffusion_steps, fast.candidates, fast.select
        where = f"shipped weights {path.name}" if path.parent == MODELS else "initialised weights"
        if c == 1:
            select = "either"
        xs = [(encode_state(o, fast.spec), o) for o in states]
        diff, same_best, same_alloc, obj_diff = 0.0, 0, 0, 0.0
        for i, (x, o) in enumerate(xs):
            fast.reset(i)
            slow.reset(i)
            (a_f, b_f), (a_s, b_s) = fast.sample(x, o.n_ues), slow.sample(x, o.n_ues)
            diff = max(diff, float(np.abs(a_f - a_s).max()))
            same_best += b_f == b_s
            fast.reset(i)
            slow.reset(i)
            al_f, al_s = fast.decide(o), slow.decide(o)
            if same_allocations(al_f, al_s):
                same_alloc += 1
            else:  # a share within float32 rounding of a rounding boundary of the decoder
                problem = snapshot_problem(o, fast.objective)
                f_f, f_s = problem.evaluate(al_f).objective_bps, problem.evaluate(al_s).objective_bps
                obj_diff = max(obj_diff, abs(f_f - f_s) / max(abs(f_s), 1.0))
        t_slow = timed(lambda xo: slow.sample(xo[0], xo[1].n_ues), xs)
        t_fast = timed(lambda xo: fast.sample(xo[0], xo[1].n_ues), xs)
        acts = [(fast.sample(x, o.n_ues)[0], o) for x, o in xs]
        t_enc = timed(lambda o: encode_state(o, fast.spec, out=fast._x), states)
        t_enc_ref = timed(lambda o: encode_state(o, fast.spec, out=fast._x, fast=False), states)
        same_enc = sum(encode_state(o, fast.spec).tobytes() == encode_state(o, fast.spec, fast=False).tobytes()
                       for o in states)
        if fast.select == "critic" or c == 1:  # the chosen candidate's decode
            def choose(ao, quick):
                return decode_action(ao[0][0], ao[1], fast.spec, fast.objective, fast=quick, joint=fast.joint)
            what = "decode"
        else:  # every candidate (need-floor copies and scalings too) decoded and ranked in the snapshot problem
            def choose(ao, quick):
                a = need_floored(ao[0], ao[1], fast.spec, fast.objective) if fast.need_floor else ao[0]
                return best_by_objective(scaled(a, fast.scales), ao[1], fast.spec, fast.objective, fast=quick,
                                         joint=fast.joint)
            what = "decode + rank"
        t_dec_ref = timed(lambda ao: choose(ao, False), acts)
        t_dec = timed(lambda ao: choose(ao, True), acts)
        same_dec = 0
        for a, o in acts:  # every candidate's owners and powers, compiled against numpy
            ctx = DecodeContext(o, fast.spec, fast.objective, joint=fast.joint)
            (of, pf_), (os_, ps) = decode_candidates(a, ctx), decode_candidates(a, ctx, fast=False)
            same_dec += np.array_equal(of, os_) and np.array_equal(pf_, ps)
        t_ref = timed(slow.decide, states)
        t_all = timed(fast.decide, states)
        extra = (f", need-floor copies" if fast.need_floor else "") + (f", scales {fast.scales}" if fast.scales != (1.0,) else "")
        print(f"{steps:2d} steps, 16 x 128, {c} candidate(s){extra}, select {select}, objective {fast.objective} ({where}):")
        print(f"   sampling, PyTorch loop (reference)            {stats_ms(t_slow)}")
        print(f"   sampling, fast path                           {stats_ms(t_fast)}"
              f"  x{np.median(t_slow[:, 0]) / np.median(t_fast[:, 0]):.1f} less CPU;"
              f" {2e-9 * sampler_macs(fast, states[0].n_ues) / np.median(t_fast[:, 0]):.0f} GFLOP/s")
        print(f"     actions: max |fast - loop| {diff:.1e}; same choice among candidates on {same_best}/{len(xs)}"
              f" states; same decoded allocation (powers within 1e-5) on {same_alloc}/{len(xs)},"
              f" objective within {obj_diff:.1e} (relative) on the others")
        print(f"   encode, numpy (reference)                     {stats_ms(t_enc_ref)}")
        print(f"   encode, compiled                              {stats_ms(t_enc)}"
              f"  x{np.median(t_enc_ref[:, 0]) / np.median(t_enc[:, 0]):.1f} less CPU; same bytes on"
              f" {same_enc}/{len(states)} states")
        print(f"   {what + ', numpy (reference)':46s}{stats_ms(t_dec_ref)}")
        print(f"   {what + ', compiled':46s}{stats_ms(t_dec)}"
              f"  x{np.median(t_dec_ref[:, 0]) / np.median(t_dec[:, 0]):.1f} less CPU; every candidate"
              f" decoded identically on {same_dec}/{len(acts)} states")
        print(f"   whole decision, PyTorch loop + numpy decoder  {stats_ms(t_ref)}")
        print(f"   whole decision, fast path                     {stats_ms(t_all)}"
              f"  x{np.median(t_ref[:, 0]) / np.median(t_all[:, 0]):.1f} less CPU; "
              f"{np.median(t_all[:, 0]) / np.median(t_pf[:, 0]):.1f} x PF")


def training_rate(scenario, n_steps: int) -> None:
    import torch

    from policies.learned.diffusion_ql import Agent, Config
    from policies.learned.encoding import EncodingSpec, encode_state
    from oransim.evaluate import sample_states

    spec = EncodingSpec.for_scenario(scenario, 150)
    obs = sample_states(scenario, 8, 1, 200)
    s = torch.as_tensor(np.stack([encode_state(obs[i % 8], spec) for i in range(128)]))
    a = torch.rand(128, spec.action_dim)
    r = torch.rand(128)
    for label, cfg in (("original settings (gamma 0.98, Q term on 128)", Config(max_ues=150)),
                       ("gamma 0, Q term on 32 of 128", Config(max_ues=150, gamma=0.0, q_batch=32))):
        agent = Agent(spec, cfg, "cpu", 0)
        agent.update(s, a, r, s)
        t0 = time.perf_counter()
        for _ in range(n_steps):
            agent.update(s, a, r, s)
        dt = (time.perf_counter() - t0) / n_steps
        print(f"training, Table I network, {label}: {1 / dt:5.2f} gradient steps/s ({dt * 1e3:.0f} ms each)")


def eval_table(scenario_path: Path, n: int) -> None:
    from oransim.evaluate import evaluate, sample_states
    from simcore.scenario import load_scenario

    scn = load_scenario(scenario_path)
    states = sample_states(scn, n, scn.seed, 200)
    for objective, suffix in (("served", ""), ("rate", "_rate")):
        names = [f"{p}:{MODELS / f'{p}_paper_default{suffix}.pt'}" for p in ("diffusion_ql", "dqn")
                 if (MODELS / f"{p}_paper_default{suffix}.pt").exists()]
        table, _ = evaluate(states, names + ["pf"], objective=objective)
        table.index = [i.split(":")[0] for i in table.index]
        print(f"\nevaluate, {n} held-out states (seeds {scn.seed}-{scn.seed + n - 1}), objective {objective}, "
              f"optimum {table.attrs['optimum']}:")
        print(table.round(4).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=30, help="paper-cell states timed for latency (0: skip)")
    ap.add_argument("--train-steps", type=int, default=10, help="gradient steps timed per setting (0: skip)")
    ap.add_argument("--eval-states", type=int, default=200, help="held-out states of the evaluate table (0: skip)")
    ap.add_argument("--steps", default="5,10,20", help="denoising step counts timed (comma-separated)")
    ap.add_argument("--candidates", default="1,2,4,8,12", help="candidate counts timed (comma-separated)")
    ap.add_argument("--select", default="critic,objective",
                    help="selection rules timed with more than one candidate (comma-separated)")
    ap.add_argument("--checkpoints", default="",
                    help="shipped checkpoints (file names under models/) also timed at their own configuration "
                         "(candidates, select, share map, need floor), e.g. diffusion_ql_paper_default_rate.pt")
    ap.add_argument("--cold-compile", action="store_true", help="time the compiled path's first call (empty cache)")
    args = ap.parse_args()

    import torch

    from oransim.evaluate import sample_states
    from simcore.scenario import load_scenario

    torch.set_num_threads(1)
    per_call, _ = machine_reference()
    print(f"machine reference: {per_call:.2f} us per small numpy call; torch threads 1; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.cold_compile:
        cold_compile()
    path = ROOT / "scenarios" / "paper_default.yaml"
    scn = load_scenario(path)
    if args.states > 0:
        states = sample_states(scn, args.states, 10_000, 200)
        with tempfile.TemporaryDirectory() as tmp:
            latency(states, scn, Path(tmp), tuple(int(v) for v in args.steps.split(",")),
                    tuple(int(v) for v in args.candidates.split(",") if v), tuple(args.select.split(",")),
                    tuple(v for v in args.checkpoints.split(",") if v))
        print(f"load average after the latency tables: {os.getloadavg()[0]:.1f}")
    if args.train_steps > 0:
        training_rate(scn, args.train_steps)
    if args.eval_states > 0:
        eval_table(path, args.eval_states)


if __name__ == "__main__":
    main()
