"""check_allocation, which the RIC runs on every xApp answer, calls numpy's reductions directly for
speed; this shows it decides exactly as the check as first written (kept here as the reference) on
random allocations that break each budget in turn, with and without slice power caps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from xapp_helpers import observation

from simcore.contracts import POWER_RTOL, Allocation, InfeasibleAllocation, check_allocation, slice_power_w


def reference_check(alloc: Allocation, obs) -> None:
    """check_allocation as it was before the fast path (ndarray methods), the oracle."""
    n_ue, n_ru, n_prb = obs.n_ues, obs.n_rus, obs.n_prbs
    if alloc.ue_ru.shape != (n_ue,):
        raise InfeasibleAllocation(f"ue_ru has shape {alloc.ue_ru.shape}, expected ({n_ue},)")
    if alloc.prb_owner.shape != (n_ru, n_prb) or alloc.power_w.shape != (n_ru, n_prb):
        raise InfeasibleAllocation(
            f"prb_owner {alloc.prb_owner.shape} / power_w {alloc.power_w.shape}, expected ({n_ru}, {n_prb})")
    ue_ru, owner, p = alloc.ue_ru, alloc.prb_owner, alloc.power_w
    if n_ue and (ue_ru.min() < -1 or ue_ru.max() >= n_ru):
        raise InfeasibleAllocation("association: ue_ru holds an RU index out of range")
    if owner.min() < -1 or owner.max() >= n_ue:
        raise InfeasibleAllocation("PRB assignment: prb_owner holds a UE index out of range")
    owned = owner >= 0
    if n_ue:
        wrong = owned & (ue_ru[owner] != np.arange(n_ru)[:, None])
        if wrong.any():
            r, k = map(int, np.argwhere(wrong)[0])
            raise InfeasibleAllocation(
                f"PRB exclusivity: PRB {k} of RU {r} given to UE {owner[r, k]} which is not associated with RU {r}")
    ru_total = p.sum(axis=1)
    if not np.isfinite(ru_total).all() or p.min() < 0:
        raise InfeasibleAllocation("power: negative or non-finite power on some PRB")
    if p[~owned].any():
        raise InfeasibleAllocation("power: idle PRBs must carry no power")
    over = ru_total > obs.ru_max_power_w * (1 + POWER_RTOL)
    if over.any():
        r = int(np.argmax(over))
        raise InfeasibleAllocation(
            f"RU power budget: RU {r} transmits {ru_total[r]:.6g} W > {obs.ru_max_power_w[r]:.6g} W")
    if np.isfinite(obs.slice_power_cap_w).any():
        per_slice = slice_power_w(alloc, obs)
        over = per_slice > obs.slice_power_cap_w[None, :] * (1 + POWER_RTOL)
        if over.any():
            r, si = map(int, np.argwhere(over)[0])
            raise InfeasibleAllocation(
                f"slice power cap: slice '{obs.slice_names[si]}' on RU {r} uses {per_slice[r, si]:.6g} W "
                f"> {obs.slice_power_cap_w[si]:.6g} W")


def verdict(check, alloc, obs) -> str:
    try:
        check(alloc, obs)
    except InfeasibleAllocation as exc:
        return str(exc)
    return "ok"


def random_allocation(rng, obs) -> Allocation:
    """A feasible-looking allocation, then with probability about 1/2 one budget broken at random."""
    n_ue, n_ru, n_prb = obs.n_ues, obs.n_rus, obs.n_prbs
    ue_ru = obs.serving_ru.copy()
    owner = np.full((n_ru, n_prb), -1, dtype=np.int64)
    for r in range(n_ru):
        mine = np.flatnonzero(ue_ru == r)
        if mine.size:
            owner[r] = np.where(rng.random(n_prb) < 0.8, rng.choice(mine, n_prb), -1)
    share = rng.uniform(0.5, 1.2) * obs.ru_max_power_w[:, None] / n_prb
    p = np.where(owner >= 0, share * rng.random((n_ru, n_prb)) * 2, 0.0)
    r, k = rng.integers(n_ru), rng.integers(n_prb)
    match rng.integers(12):
        case 0:
            ue_ru[rng.integers(n_ue)] = rng.choice([-2, n_ru, -5])
        case 1:
            owner[r, k] = rng.choice([-2, n_ue, n_ue + 3])
        case 2:
            ue_ru[rng.integers(n_ue)] = -1  # its PRBs now break exclusivity
        case 3:
            p[r, k] = rng.choice([np.nan, np.inf, -np.inf, -1e-3, -0.0])
        case 4:
            owner[r, k] = -1  # its power is now on an idle PRB (unless it had none)
        case 5:
            p *= 3.0
        case 6:
            return Allocation(ue_ru[:-1], owner, p)
        case 7:
            return Allocation(ue_ru, owner[:, :-1], p)
    return Allocation(ue_ru, owner, p)


@pytest.mark.parametrize("caps", ["none", "tight"])
def test_fast_check_decides_as_the_reference(caps):
    obs = observation()
    if caps == "tight":  # per-slice caps that bind often
        obs = dataclasses.replace(obs, slice_power_cap_w=np.array([5.0, 3.0, np.inf]))
    rng = np.random.default_rng(14)
    seen = {}
    for _ in range(1500):
        alloc = random_allocation(rng, obs)
        want = verdict(reference_check, alloc, obs)
        assert verdict(check_allocation, alloc, obs) == want
        seen[want.split(":")[0]] = seen.get(want.split(":")[0], 0) + 1
    # every outcome was exercised (the test can tell the checks apart wherever they could differ)
    expected = {"ok", "association", "PRB assignment", "PRB exclusivity", "power", "RU power budget"}
    expected |= {"slice power cap"} if caps == "tight" else set()
    assert expected <= {k.split(" has shape")[0] for k in seen}, seen
