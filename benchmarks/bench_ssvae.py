"""Decision time of the shipped SS-VAE checkpoint on the paper cell, one torch thread.

Times ``decide`` (state encoding, one network pass, the one decoder) of ``ssvae`` on paper-cell
states against PF (the classic reference, measured in the same run) and the shipped DQN, and
splits the SS-VAE's time into the network pass and the decoder. The machine is often shared:
compare the ratios.

    python benchmarks/bench_ssvae.py [--states 100] [--checkpoint models/ssvae_paper_default.pt]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn, states, repeat: int = 1) -> list[float]:
    """Per-call milliseconds of ``fn(state)`` (one warm-up call first)."""
    fn(states[0])
    ms = []
    for _ in range(repeat):
        for o in states:
            t0 = time.perf_counter()
            fn(o)
            ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=100, help="paper-cell states (seeds 5000...)")
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "ssvae_paper_default.pt"))
    ap.add_argument("--dqn", default=str(ROOT / "models" / "dqn_paper_default.pt"))
    args = ap.parse_args()

    import torch

    from oransim.evaluate import sample_states
    from policies.learned.encoding import encode_state
    from simcore.plugins import make_policy
    from simcore.scenario import load_scenario

    torch.set_num_threads(1)
    scenario = load_scenario(ROOT / "scenarios" / "paper_default.yaml")
    states = sample_states(scenario, args.states, 5000)
    policies = {"pf": make_policy("pf"), "ssvae": make_policy("ssvae", {"checkpoint": args.checkpoint})}
    if Path(args.dqn).exists():
        policies["dqn"] = make_policy("dqn", {"checkpoint": args.dqn})
    times = {name: timed(p.decide, states) for name, p in policies.items()}
    ss = policies["ssvae"]
    xs = {id(o): encode_state(o, ss.spec) for o in states}
    times["ssvae: network pass"] = timed(lambda o: ss.act(xs[id(o)], o), states)
    print(f"decision time, paper cell ({scenario.n_ues} UEs, {scenario.cell.prbs_per_ru} PRBs), "
          f"{len(states)} states, torch {torch.__version__}, 1 thread:")
    ref = statistics.median(times["pf"])
    for name, ms in times.items():
        med = statistics.median(ms)
        print(f"  {name:20s} median {med:7.3f} ms  p99 {float(np.quantile(ms, 0.99)):7.3f} ms  "
              f"({med / ref:5.1f} x pf)")


if __name__ == "__main__":
    main()
