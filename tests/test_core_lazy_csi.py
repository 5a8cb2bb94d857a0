"""Lazy CSI (docs/architecture.md, section 10): at a decision the engine draws the fading of the UEs
with data only, and the other UEs' when a policy first reads them, at the decision's TTI. A
different random stream from drawing everything at every decision, the same law: the lazily
advanced process has the eager one's mean, variance and lag correlations; a PF decision is the same
whether or not the rows it does not rank were read."""

import dataclasses

import numpy as np
import pytest

from policies.classic import MaxCqi, ProportionalFair, RoundRobin
from simcore.channel import Channel, StaleCsi, drop_ues
from simcore.engine import Engine
from simcore.phy import BuiltinPhy
from simcore.scenario import parse_scenario

from core_helpers import small

RHO = 0.8
LAGS = (1, 3)


def _channel(seed: int):
    data = small(ues=30).model_dump()  # 90 UEs
    data["channel"].update(fading_correlation=RHO, shadowing_sigma_db=0.0)
    data["cell"]["prbs_per_ru"] = 12
    s = parse_scenario(data)
    rng = np.random.default_rng(seed)
    return Channel(s, drop_ues(s, rng), rng)


def _stats(x: np.ndarray) -> np.ndarray:
    """x (T, n) = |h|^2 per TTI and entry -> (mean, variance, corr at each lag) per block of entries."""
    blocks = np.array_split(np.arange(x.shape[1]), 20)
    out = []
    for b in blocks:
        y = x[:, b]
        row = [y.mean(), y.var()]
        for lag in LAGS:
            row.append(np.corrcoef(y[:-lag].ravel(), y[lag:].ravel())[0, 1])
        out.append(row)
    return np.array(out)  # (blocks, 2 + lags)


def _eager(seed: int, n_tti: int) -> np.ndarray:
    ch = _channel(seed)
    xs = []
    for t in range(n_tti):
        if t:
            ch.advance()
        ch.refresh_all()
        xs.append((ch.gain / ch.large_scale_gain[:, :, None]).ravel().copy())
    return np.stack(xs)


def _lazy(seed: int, n_tti: int) -> np.ndarray:
    """The engine's pattern with a decision every TTI: UEs with data (a random third, changing) drawn
    at the decision, PRB owners among them; the other UEs read one TTI late (``at_tti`` in the past)."""
    ch = _channel(seed)
    rng = np.random.default_rng(seed + 100)
    n_ue, n_prb = ch.gain.shape[0], ch.gain.shape[2]
    xs = []
    pending = None  # (TTI, UEs not drawn at it, the gain rows of the others)
    for t in range(n_tti + 1):
        if t:
            ch.advance()
        if pending is not None:  # read the previous decision's other rows now, at its TTI
            t0, rest, x = pending
            ch.refresh_ues(rest, at_tti=t0)
            x[rest] = ch.gain[rest]
            xs.append((x / ch.large_scale_gain[:, :, None]).ravel())
        if t == n_tti:
            break
        with_data = np.sort(rng.choice(n_ue, n_ue // 3, replace=False))
        ch.refresh_ues(with_data)
        owner = rng.choice(with_data, (1, n_prb))  # PRBs go to UEs with data: already current
        ch.refresh_prbs(owner, until_tti=t + 1)
        x = ch.gain.copy()
        pending = (t, np.setdiff1d(np.arange(n_ue), with_data), x)
    return np.stack(xs)


def test_lazily_advanced_fading_has_the_eager_law():
    """Mean, variance and lag-1/lag-3 correlation of |h|^2 (theory 1, 1, rho^2, rho^6): the lazy and
    eager processes agree within 4 standard errors, the errors estimated from the spread over blocks
    of entries; each also sits within 4 standard errors of the theory."""
    n_tti = 150
    eager, lazy = _stats(_eager(1, n_tti)), _stats(_lazy(2, n_tti))
    m_e, m_l = eager.mean(axis=0), lazy.mean(axis=0)
    se = np.sqrt(eager.var(axis=0, ddof=1) / len(eager) + lazy.var(axis=0, ddof=1) / len(lazy))
    assert np.all(np.abs(m_e - m_l) < 4 * se), (m_e, m_l, se)
    theory = np.array([1.0, 1.0] + [RHO ** (2 * lag) for lag in LAGS])
    for st in (eager, lazy):
        se1 = st.std(axis=0, ddof=1) / np.sqrt(len(st))
        assert np.all(np.abs(st.mean(axis=0) - theory) < 4 * se1 + 0.01), (st.mean(axis=0), theory, se1)


def test_reading_after_the_entries_moved_on_is_refused():
    ch = _channel(3)
    ch.advance()
    ch.refresh_ues(np.array([0, 1]))
    ch.advance()
    ch.refresh_ues(np.array([1, 2]))  # UE 1 drawn at TTI 2
    ch.refresh_ues(np.array([0, 3]), at_tti=1)  # UEs 0 (drawn at 1) and 3 (at 0): fine
    with pytest.raises(StaleCsi, match="UE 2"):
        ch.refresh_ues(np.array([2]), at_tti=1)


def _engine(policy, seed=5):
    data = small(ues=10).model_dump()
    data.update(seed=seed, duration_s=0.05)
    data["scheduling"]["interval_tti"] = 1
    return Engine(parse_scenario(data), policy, BuiltinPhy())


@pytest.mark.parametrize("make", [ProportionalFair, MaxCqi, RoundRobin])
def test_classic_decisions_do_not_depend_on_the_rows_they_skip(make):
    """Stepping an engine decision by decision: the policy's allocation on the lazy observation equals
    its allocation on the same observation completed (every row read), and the completed rows of the
    UEs with data are the ones the lazy observation held."""
    eng = _engine(make())
    eng.start()
    seen_lazy = 0
    while (obs := eng.step_to_decision()) is not None:
        lazy = obs.lazy_csi
        if lazy is not None and not lazy.fresh.all():
            seen_lazy += 1
        twin = make()
        twin.__dict__.update(copy_state(eng.policy))
        rows = obs.__dict__["prb_rate_bps"].copy()
        fresh = obs.buffer_bits > 0
        a = twin.decide(obs)  # reads the UEs with data only
        assert obs.lazy_csi is None or not obs.lazy_csi.fresh.all() or fresh.all()
        full = dataclasses.replace(obs)  # reads every field: completes the rest
        assert np.array_equal(full.prb_rate_bps[fresh], rows[fresh])
        b = make()
        b.__dict__.update(copy_state(eng.policy))
        b = b.decide(full)
        assert np.array_equal(a.prb_owner, b.prb_owner) and np.array_equal(a.power_w, b.power_w)
    assert seen_lazy > 5


def copy_state(policy) -> dict:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in policy.__dict__.items()}


def test_lazy_rows_read_while_deciding_are_the_channel_at_the_decision():
    """A lazily read row equals the channel's gain at the decision TTI as the PHY then sees it: a
    policy giving a PRB to a UE without data reads the very gain the PHY uses."""
    eng = _engine(ProportionalFair(), seed=7)
    eng.start()
    checked = 0
    while (obs := eng.step_to_decision()) is not None and checked < 20:
        empty = (obs.buffer_bits <= 0).nonzero()[0]
        if empty.size:
            g = obs.gain[empty]  # completes at this TTI
            assert np.array_equal(g, eng.channel.gain[empty])
            assert eng.channel.rows_current(empty)
            checked += 1
    assert checked >= 5
