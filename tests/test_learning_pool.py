"""The snapshot envs' batched step (``pool.StatePool``) against the per-state path it replaces.

The batch decodes and scores many states at once; every number must be the one the state-by-state
definitions give: the allocation is ``decode_action``'s (and feasible), its objective and shortfall
are ``SnapshotProblem.evaluate``'s, and the reward is ``reward`` of that evaluation. The pools mix
UE counts (padding up to ``max_ues``), links (two noise figures, a finite-blocklength slice),
slice power caps (the repair), and one or two RUs.
"""

import dataclasses

import numpy as np
import pytest

from policies.learned.encoding import EncodingSpec
from policies.learned.envs import ActionCoder, SnapshotVectorEnv, StatePool, reward
from simcore.contracts import check_allocation
from simcore.phy import fbl_penalty

from learning_helpers import observation, subset

MAX_UES = 14


def with_link(obs, **link):
    return dataclasses.replace(obs, link=dataclasses.replace(obs.link, **link))


def fbl(obs, slice_index=0):
    """``obs`` with the UEs of one slice on the finite-blocklength rate."""
    pen = np.where(obs.slice_id == slice_index, fbl_penalty(1e-5), np.nan)
    return with_link(obs, ue_fbl_penalty=pen)


def one_ru_states():
    a = observation(seed=11, ues=(3, 3, 3), prbs=12)
    b = observation(seed=12, load=2.0, ues=(4, 2, 3), prbs=12)
    c = observation(seed=13, ues=(2, 2, 2), prbs=12, caps=(None, 30.0, 20.0))
    return [a, subset(a, [0, 4, 8]), b, with_link(b, noise_w=b.link.noise_w * 4.0), fbl(a), c, subset(b, [1])]


def two_ru_states():
    a = observation(seed=14, n_rus=2, ues=(2, 2, 2), prbs=12)
    return [a, subset(a, [0, 2, 3, 5])]


def actions_for(coder, rng, n):
    if coder.mode == "templates":
        return rng.integers(coder.space.n, size=n)
    out = rng.random((n, coder.spec.action_dim)) * rng.choice([0.2, 1.0, 3.0], size=(n, 1))
    out[0::5] = 0.0
    out[1::5, ::3] = np.nan
    out[2::5] -= 0.5
    out[3::5, 1] = np.inf
    return out.astype(np.float32)


@pytest.mark.parametrize("states", [one_ru_states, two_ru_states])
@pytest.mark.parametrize("objective", ["served", "rate"])
@pytest.mark.parametrize("mode", ["shares", "templates"])
def test_batched_step_equals_the_per_state_definitions(states, objective, mode):
    obs = states()
    spec = EncodingSpec(max_ues=MAX_UES, slice_names=obs[0].slice_names)
    pool = StatePool(obs, spec, objective)
    assert pool.batched
    coder = ActionCoder(spec, mode, objective)
    rng = np.random.default_rng(len(obs))
    idx = rng.integers(len(obs), size=40)
    acts = actions_for(coder, rng, idx.size)
    rewards, objective_bps, violation_bps = pool.outcomes(idx, coder, acts)
    for got, ref in zip((rewards, objective_bps, violation_bps), pool.outcomes(idx, coder, acts, per_state=True)):
        assert np.array_equal(got, ref)
    for j, (i, alloc) in enumerate(zip(idx, pool.allocations(idx, coder, acts))):
        o = obs[i]
        check_allocation(alloc, o)
        single = coder.allocation(acts[j], o)
        assert np.array_equal(alloc.prb_owner, single.prb_owner) and np.array_equal(alloc.power_w, single.power_w)
        assert np.array_equal(alloc.ue_ru, single.ue_ru)
        ev = pool.context(int(i)).problem.evaluate(single)
        assert objective_bps[j] == ev.objective_bps and violation_bps[j] == ev.violation_bps, j
        r, _ = reward(ev.objective_bps, ev.rates_bps, ev.need_bps, pool.scale[i], pool.need_penalty)
        assert rewards[j] == r, j
    assert (objective_bps > 0).any()
    assert mode == "templates" or (violation_bps > 0).any()  # zero actions leave needs unmet: the penalty counts


def test_states_of_different_shapes_take_the_per_state_path():
    a = observation(seed=11, ues=(3, 3, 3), prbs=12)
    b = observation(seed=14, n_rus=2, ues=(2, 2, 2), prbs=12)
    spec = EncodingSpec(max_ues=MAX_UES, slice_names=a.slice_names)
    mixed, alone = StatePool([a, b], spec), StatePool([a], spec)
    assert not mixed.batched
    coder = ActionCoder(spec, "shares", "served")
    acts = actions_for(coder, np.random.default_rng(3), 6)
    idx = np.array([0, 1, 0, 1, 0, 0])
    r_mixed, f_mixed, _ = mixed.outcomes(idx, coder, acts)
    r_alone, f_alone, _ = alone.outcomes(np.zeros(4, dtype=np.int64), coder, acts[idx == 0])
    assert np.array_equal(r_mixed[idx == 0], r_alone) and np.array_equal(f_mixed[idx == 0], f_alone)
    for alloc, i in zip(mixed.allocations(idx, coder, acts), idx):
        check_allocation(alloc, mixed.obs[i])


def test_vector_env_rewards_are_the_pools_outcomes():
    obs = one_ru_states()
    pool = StatePool(obs, EncodingSpec(max_ues=MAX_UES, slice_names=obs[0].slice_names))
    venv = SnapshotVectorEnv(5, pool=pool, actions="templates", episode_steps=3)
    venv.reset(seed=4)
    for a in np.random.default_rng(0).integers(100, size=(4, 5)):
        idx = venv._idx.copy()
        _, r, _, _, info = venv.step(a)
        expected, f, _ = pool.outcomes(idx, venv.coder, a)
        assert np.array_equal(r, expected) and np.array_equal(info["objective_bps"], f)
