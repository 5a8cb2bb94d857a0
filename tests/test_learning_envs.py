"""The Gymnasium environments: API checks, determinism, and the engine env driving the real MAC."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from policies.learned.encoding import EncodingSpec
from policies.learned.envs import ENGINE_ENV_ID, SNAPSHOT_ENV_ID, EngineEnv, SnapshotEnv, SnapshotVectorEnv, StatePool

from learning_helpers import observation, scenario


@pytest.fixture(scope="module")
def pool():
    obs = [observation(seed=s, load=l, ues=(2, 2, 2), prbs=12) for s, l in ((1, 1.0), (2, 2.0), (3, 0.5))]
    return StatePool(obs, EncodingSpec(max_ues=8, slice_names=obs[0].slice_names))


def small_engine_env(**kw):
    return EngineEnv(scenario(ues=(2, 2, 2), prbs=12), episode_steps=4, **kw)


@pytest.mark.parametrize("actions", ["shares", "templates"])
def test_snapshot_env_passes_the_checkers(pool, actions):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(SnapshotEnv(pool=pool, actions=actions, episode_steps=5), skip_render_check=True)
    sb3_check_env(SnapshotEnv(pool=pool, actions=actions, episode_steps=5), warn=False)


def test_engine_env_passes_the_checkers():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(small_engine_env(), skip_render_check=True)
    sb3_check_env(small_engine_env(actions="templates"), warn=False)


def test_registered_ids_make_the_envs(pool):
    env = gym.make(SNAPSHOT_ENV_ID, pool=pool, episode_steps=3)
    env.reset(seed=0)
    steps = 0
    while True:
        *_, term, trunc, _ = env.step(env.action_space.sample())
        steps += 1
        if term or trunc:
            break
    assert steps == 3
    env = gym.make(ENGINE_ENV_ID, scenario=scenario(ues=(1, 1, 1), prbs=6), episode_steps=2)
    assert env.reset(seed=0)[0].shape == env.observation_space.shape


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rewards = []
    for a in actions:
        obs, r, *_ = env.step(a)
        out.append(obs)
        rewards.append(r)
    return np.array(out), np.array(rewards)


@pytest.mark.parametrize("make", ["snapshot", "engine", "engine-delivered"])
def test_same_seed_and_actions_same_trajectory(pool, make):
    def new():
        if make == "snapshot":
            return SnapshotEnv(pool=pool, episode_steps=10)
        return small_engine_env(reward="delivered" if make.endswith("delivered") else "snapshot")

    env = new()
    acts = [np.random.default_rng(i).random(env.action_space.shape).astype(np.float32) for i in range(4)]
    o1, r1 = rollout(new(), 7, acts)
    o2, r2 = rollout(new(), 7, acts)
    assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.isfinite(r1).all()
    o3, _ = rollout(new(), 8, acts)
    assert not np.array_equal(o1, o3)


def test_engine_env_action_reaches_the_mac_from_the_decision_tti():
    """Each step's allocation is what the MAC hands the PHY from that decision's TTI on, until the next."""
    env = small_engine_env()
    env.reset(seed=3)
    eng = env.engine
    seen = {}
    step = eng.phy.step

    def recording_step(tti, allocation, gain):
        seen[tti] = allocation.prb_owner.copy()
        return step(tti, allocation, gain)

    eng.phy.step = recording_step
    interval = eng.s.scheduling.interval_tti
    rng = np.random.default_rng(0)
    for k in range(3):
        decision_tti = env._obs.tti
        action = rng.random(env.action_space.shape).astype(np.float32)
        expected = env.coder.allocation(action, env._obs).prb_owner
        env.step(action)
        assert decision_tti == k * interval
        for t in range(decision_tti, decision_tti + interval):
            assert np.array_equal(seen[t], expected), (k, t)
        assert eng.allocation.prb_owner.tolist() == expected.tolist()


def test_vector_env_steps_every_copy_and_truncates_together(pool):
    venv = SnapshotVectorEnv(4, pool=pool, episode_steps=2)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (4, pool.spec.state_dim)
    _, r, term, trunc, info = venv.step(venv.action_space.sample())
    assert r.shape == (4,) and not trunc.any() and (info["objective_bps"] >= 0).all() and np.isfinite(r).all()
    _, _, term, trunc, _ = venv.step(venv.action_space.sample())
    assert trunc.all() and not term.any()
