"""The engine's array path (docs/architecture.md, section 10): the classic schedulers decide from
``DecisionArrays`` (no ``Observation``, one compiled call) with the same decisions and records as
on the ``Observation`` path, and ``check_allocation``'s compiled core agrees with its full check."""

import numpy as np
import pytest

from simcore.contracts import Allocation, InfeasibleAllocation, check_allocation, feasible_kernel

from core_helpers import Recording, run_engine, small


def _variant(name: str):
    data = small(ues=4, duration_s=0.06).model_dump()
    data["scheduling"]["interval_tti"] = 1 if name != "every3" else 3
    if name == "multi_ru":
        data["cell"]["rus"] = [dict(data["cell"]["rus"][0]), dict(data["cell"]["rus"][0], x_m=600.0)]
    if name == "caps":
        data["slices"][0]["power_cap_dbm"] = 30.0
    if name == "csi":
        data["phy"]["csi"] = {"period_tti": 3, "delay_tti": 1}
    return data


@pytest.mark.parametrize("policy,variant", [("pf", "one_ru"), ("maxcqi", "one_ru"), ("rr", "one_ru"),
                                            ("pf", "multi_ru"), ("rr", "multi_ru"), ("maxcqi", "caps"),
                                            ("pf", "caps"), ("pf", "csi"), ("rr", "every3")])
def test_array_path_records_what_the_observation_path_records(policy, variant):
    """One run through decide_arrays (the engine's array path) and one through decide(Observation)
    (the same policy behind a wrapper that has no decide_arrays): the decisions and tti tables and
    the conservation counts are identical."""
    from simcore.scenario import parse_scenario

    scn = parse_scenario(dict(_variant(variant), policy={"name": policy, "params": {}}))
    from simcore.plugins import make_policy

    eng_a, by_arrays = run_engine(scn, make_policy(policy, {}))
    assert eng_a.array_policy
    eng_o, by_obs = run_engine(scn, Recording(policy))
    assert not eng_o.array_policy
    assert by_arrays.counts == by_obs.counts
    for table in ("decisions", "tti"):
        a, b = by_arrays.table(table), by_obs.table(table)
        assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
        for col in a.columns:
            assert a[col].equals(b[col]), (table, col)


def test_compiled_row_sum_is_numpys():
    """The RU totals of the compiled feasibility core are numpy's sums (np.add.reduce), bit for bit."""
    pairwise_sum = feasible_kernel().pairwise_sum
    rng = np.random.default_rng(0)
    for n in [*range(0, 40), 64, 127, 128, 129, 200, 273, 300, 1000]:
        p = rng.random((20, n)) * 10.0 ** rng.uniform(-3, 3, (20, n))
        want = np.add.reduce(p, 1)
        assert [0.0 + pairwise_sum(row, 0, n) for row in p] == want.tolist(), n


def test_compiled_feasibility_core_agrees_with_the_full_check(base_arrays):
    """Random allocations, feasible and not (indices out of range, wrong RU, negative, NaN, idle
    power, budgets at and beyond their edge): the compiled core passes exactly those the full check
    passes, and check_allocation names the broken budget either way."""
    from simcore import contracts

    a = base_arrays
    n_ue, n_ru, n_prb = a.n_ues, a.n_rus, a.n_prbs
    feasible = feasible_kernel()
    limit = a.ru_max_power_w * (1 + contracts.POWER_RTOL)
    rng = np.random.default_rng(1)
    seen = {True: 0, False: 0}
    for trial in range(1500):
        ue_ru = rng.integers(-1, n_ru + (trial % 7 == 0), n_ue)
        owner = rng.integers(-1 - (trial % 11 == 0), n_ue + (trial % 13 == 0), (n_ru, n_prb))
        owned = (owner >= 0) & (owner < n_ue)
        ok_ru = owned & (ue_ru[np.where(owned, owner, 0)] == np.arange(n_ru)[:, None])
        owner = np.where(owned & ~ok_ru & (rng.random(owner.shape) < 0.9), -1, owner)
        share = a.ru_max_power_w[:, None] / n_prb * rng.choice([0.5, 1.0, 1.0 + 1e-10, 1.0 + 2e-9], (n_ru, 1))
        p = np.where(owner >= 0, np.broadcast_to(share, owner.shape), 0.0)
        if trial % 5 == 0:
            p[tuple(rng.integers(0, s) for s in p.shape)] = rng.choice([-1.0, np.nan, np.inf, 1e-3])
        alloc = Allocation(ue_ru, owner, p)
        try:
            _full_check(alloc, a)
            want = True
        except InfeasibleAllocation:
            want = False
        assert feasible(ue_ru, owner, p, n_ue, limit) == want, trial
        seen[want] += 1
        if not want:
            with pytest.raises(InfeasibleAllocation):
                check_allocation(alloc, a)
    assert min(seen.values()) > 150


def _full_check(alloc, a):
    """check_allocation without its compiled core (the core declines a non-contiguous power array)."""
    strided = np.repeat(alloc.power_w, 2, axis=1)[:, ::2]  # the same values, every other column
    assert not strided.flags.c_contiguous
    check_allocation(Allocation(alloc.ue_ru, alloc.prb_owner, strided), a)


@pytest.fixture(scope="module")
def base_arrays():
    """DecisionArrays of a 2-RU, 8-PRB cell with 6 UEs."""
    from simcore.contracts import DecisionArrays
    from simcore.engine import Engine
    from simcore.plugins import make_phy, make_policy
    from simcore.scenario import parse_scenario

    data = _variant("multi_ru")
    data["cell"]["prbs_per_ru"] = 8
    for sl in data["slices"]:
        sl["ues"] = 1
    eng = Engine(parse_scenario(data), make_policy("pf", {}), make_phy("builtin", {}))
    return DecisionArrays.from_observation(eng.observation(0))
