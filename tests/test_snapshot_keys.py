"""``SnapshotProblem.keys_many`` (what ``evaluate`` reports and ``select: objective`` ranks by) gives,
for a batch of allocations, exactly what the link model and the problem's tiers give for each one."""

import numpy as np
import pytest

from learning_helpers import scenario
from simcore.contracts import Allocation
from simcore.engine import Engine
from simcore.plugins import make_phy, make_policy
from simcore.scenario import parse_scenario
from simcore.snapshot import SnapshotProblem, objective_and_shortfall


def _observation(rate_model="shannon", fbl=False, **kw):
    data = scenario(**kw).model_dump(mode="python")
    data["phy"]["rate_model"] = rate_model
    if fbl:
        data["slices"][1]["rate_model"] = "fbl"
    eng = Engine(parse_scenario(data), make_policy("pf"), make_phy("builtin"))
    eng.run()
    return eng.observation(eng.n_tti - 1)


def _random_allocations(obs, prob, rng, n):
    """n allocations: random owners (some idle), powers on the level grid, a third of them off it."""
    owner = np.where(rng.random((n, obs.n_rus, obs.n_prbs)) < 0.8,
                     rng.integers(0, obs.n_ues, (n, obs.n_rus, obs.n_prbs)), -1)
    level = rng.integers(0, prob.n_levels, owner.shape)
    power = prob.levels_w[np.arange(obs.n_rus)[None, :, None], level]
    power[::3] *= rng.uniform(0.5, 1.0, power[::3].shape)
    return owner, np.where(owner >= 0, power, 0.0)


@pytest.mark.parametrize("kw", [dict(seed=1, ues=(5, 5, 5)), dict(seed=2, rate_model="cqi", load=2.0),
                                dict(seed=3, fbl=True, prbs=12), dict(seed=4, n_rus=2, ues=(3, 4, 3), prbs=12)])
def test_keys_many_is_each_allocations_link_rates_and_tiers(kw):
    obs = _observation(**kw)
    rng = np.random.default_rng(kw["seed"])
    for objective in ("served", "rate"):
        prob = SnapshotProblem(obs, objective=objective)
        owner, power = _random_allocations(obs, prob, rng, 24)
        v, f, steps, cost, rates, served = prob.keys_many(owner, power)
        for j in range(len(owner)):
            alloc = Allocation(obs.serving_ru.astype(np.int64), owner[j], power[j])
            r = obs.link.ue_rates_bps(obs.gain, alloc.ue_ru, alloc.prb_owner, alloc.power_w)
            np.testing.assert_array_equal(rates[j], r)
            f_j, v_j = objective_and_shortfall(prob.served(r), np.maximum(prob.need_bps - r, 0.0), obs.ue_weight)
            assert (f[j], v[j]) == (f_j, v_j)
            try:
                p_j, t_j = prob.tiers_3_4(owner[j], prob.levels_of(alloc))
            except ValueError:  # a power off the grid: no tiers 3 and 4
                p_j, t_j = -1, -1
            assert (steps[j], cost[j]) == (p_j, t_j)
            assert prob.evaluate(alloc).key == (v[j], f[j], steps[j], cost[j])
        assert (steps == -1).sum() == 8 and len(set(f.tolist())) > 10  # the batch is varied
