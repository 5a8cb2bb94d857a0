"""One checkpoint on cells it was not trained for: the paper cell with 3 x 5 ... 3 x 50 UEs and RU
powers 40-50 dBm, each policy's weighted-objective ratio to the exact optimum and QoS satisfaction.

States come from engine runs of the varied scenario with seeds ``--seed``, ``--seed`` + 1, ...
(default the scenario's seed, 1; never used in training: training states use seeds >= 2^32; pass
seeds that the checkpoint's choice on held-out states did not use either, e.g. 5000); the optimum is the exact MILP of the snapshot problem. The
optimum of each cell can be kept in ``--cache DIR`` (a pickle per cell) so that further policies
are scored without solving it again.

    python benchmarks/generalisation.py [--states 10] [--seed 5000] [--objective served]
        [--policies diffusion_ql:models/diffusion_ql_paper_default.pt,dqn:models/dqn_paper_default.pt,pf]
        [--select objective] [--candidates 16] [--scales 1,1.2] [--roundtrip]

``--roundtrip`` adds a row ``roundtrip``: the optimum's own allocation encoded as shares
(``encode_allocation``) and decoded (``decode_action``), scored against the optimum: the most any
policy acting through this encoding and decoder can agree with it.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: (UEs per slice, RU power dBm) of the cells: the UE sweep at the paper's 46 dBm, then the power sweep.
CELLS = [(5, 46.0), (10, 46.0), (20, 46.0), (30, 46.0), (50, 46.0), (10, 40.0), (10, 43.0), (10, 50.0)]


def cell(base, ues: int, power_dbm: float):
    data = base.model_dump(mode="python")
    for sl in data["slices"]:
        sl["ues"] = ues
    for ru in data["cell"]["rus"]:
        ru["max_power_dbm"] = power_dbm
    from simcore.scenario import parse_scenario

    return parse_scenario(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=10, help="held-out states per cell")
    ap.add_argument("--objective", default="served", help="served or rate")
    ap.add_argument("--seed", type=int, default=None, help="first seed of the states (default: the scenario's)")
    ap.add_argument("--policies", default="diffusion_ql:models/diffusion_ql_paper_default.pt,"
                                          "dqn:models/dqn_paper_default.pt,pf")
    ap.add_argument("--cells", default="", help="indices into the cell list to run (default: all)")
    ap.add_argument("--cache", type=Path, default=None, help="folder keeping each cell's held-out optimum")
    ap.add_argument("--table", action="store_true", help="also print every agreement metric of each policy")
    ap.add_argument("--select", default=None, choices=("critic", "objective"),
                    help="diffusion_ql's choice among its candidates (default: the checkpoint's)")
    ap.add_argument("--candidates", type=int, default=None, help="diffusion_ql's candidates (default: the checkpoint's)")
    ap.add_argument("--need-floor", default=None, choices=("true", "false"),
                    help="diffusion_ql's need-floor copies with select objective (default: the checkpoint's)")
    ap.add_argument("--roundtrip", action="store_true", help="also score the optimum's own allocation encoded and decoded")
    ap.add_argument("--scales", default=None, help="diffusion_ql's share scales with select objective, e.g. 1,1.2 "
                                                   "(default: the checkpoint's)")
    args = ap.parse_args()

    import torch

    from policies.learned.train import HeldOut
    from simcore.plugins import PluginError, make_policy, policy_spec
    from simcore.scenario import load_scenario

    torch.set_num_threads(1)
    base = load_scenario(ROOT / "scenarios" / "paper_default.yaml")
    names = [n for n in args.policies.split(",") if n]
    cells = [CELLS[int(i)] for i in args.cells.split(",")] if args.cells else CELLS
    first = base.seed if args.seed is None else args.seed
    print(f"objective {args.objective}, {args.states} held-out states per cell (seeds {first}...)")
    print(f"{'UEs':>8} {'P_RU dBm':>8} " + " ".join(f"{policy_spec(n)[0]:>22}" for n in names) + "   optimum QoS %")
    for ues, power in cells:
        scn = cell(base, ues, power)
        path = args.cache / f"{args.objective}-{ues}-{power:g}-{first}-{args.states}.pkl" if args.cache else None
        t0 = time.perf_counter()
        held, opt_qos = None, None
        if path is not None and path.exists():
            held = pickle.loads(path.read_bytes())
            try:  # a cache pickled by an older oransim may lack fields its Observations now have
                opt_qos = held.evaluate(lambda o, a=iter(held.opt): next(a))["qos_pct"]
            except (AttributeError, KeyError) as exc:
                print(f"  {path.name}: written by another version ({exc!r}); solving again", flush=True)
                held = None
        if held is None:
            held = HeldOut.sample(scn, args.states, args.objective, first_seed=first)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(pickle.dumps(held))
            opt_qos = held.evaluate(lambda o, a=iter(held.opt): next(a))["qos_pct"]
        row, full = [], {}
        if args.roundtrip:
            from policies.learned.decoder import decode_action
            from policies.learned.encoding import EncodingSpec, encode_allocation

            spec = EncodingSpec.for_scenario(scn)
            opt_of = {id(o): a for o, a in zip(held.states, held.opt)}
            full["roundtrip"] = held.evaluate(lambda o: decode_action(encode_allocation(opt_of[id(o)], o, spec), o, spec,
                                                                      args.objective))
        for n in names:
            name, params = policy_spec(n)
            if name == "diffusion_ql":
                params.update({k: v for k, v in (("select", args.select), ("candidates", args.candidates),
                                                 ("scales", args.scales)) if v})
                if args.need_floor is not None:
                    params["need_floor"] = args.need_floor == "true"
            try:
                pol = make_policy(name, params)
                pol.reset(0)
                m = held.evaluate(pol.decide)
                full[n if sum(policy_spec(o)[0] == name for o in names) > 1 else name] = m  # the spec when a name repeats
                row.append(f"{m['throughput_ratio']:8.4f} ({m['qos_pct']:5.1f}% QoS)")
            except PluginError as exc:
                row.append(f"{'does not fit':>22}")
        print(f"{f'3 x {ues}':>8} {power:8g} " + " ".join(f"{r:>22}" for r in row)
              + f"   {opt_qos:5.1f}   ({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.table:
            import pandas as pd

            print(pd.DataFrame(full).T.round(4).to_string(), flush=True)


if __name__ == "__main__":
    main()
