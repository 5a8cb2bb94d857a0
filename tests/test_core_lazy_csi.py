"""Lazy CSI (docs/architecture.md, section 10): at a decision of a classic scheduler the engine draws
the fading of the UEs with data only; the others' entries are drawn, skipped ahead exactly, when they
are next read. A different random stream from drawing everything at every decision, the same law:
the lazily advanced process has the eager one's mean and variance, and the correlation between two
draws of an entry n TTIs apart is rho^(2n) whatever happened in between."""

import numpy as np

from simcore.channel import Channel, drop_ues
from simcore.scenario import parse_scenario

from core_helpers import small

RHO = 0.8
GAPS = (1, 3)
BLOCKS = 15


def _channel(seed: int):
    data = small(ues=30).model_dump()  # 90 UEs
    data["channel"].update(fading_correlation=RHO, shadowing_sigma_db=0.0)
    data["cell"]["prbs_per_ru"] = 12
    s = parse_scenario(data)
    rng = np.random.default_rng(seed)
    return Channel(s, drop_ues(s, rng), rng)


def _draws(seed: int, n_tti: int, lazy: bool):
    """|h|^2 of every entry drawn at each TTI, by UE: {TTI: (UEs, (n, R*K) values)}. Lazy: the engine's
    pattern with a decision every TTI, a random third of the UEs (changing) drawn at the decision and
    the PRBs given to some of them; eager: every entry drawn every TTI."""
    ch = _channel(seed)
    rng = np.random.default_rng(seed + 100)
    n_ue, n_prb = ch.gain.shape[0], ch.gain.shape[2]
    out = {}
    for t in range(n_tti):
        if t:
            ch.advance()
        if lazy:
            ues = np.sort(rng.choice(n_ue, n_ue // 3, replace=False))
            ch.refresh_ues(ues)
            ch.refresh_prbs(rng.choice(ues, (1, n_prb)), until_tti=t + 1)  # owners among them: already current
        else:
            ues = np.arange(n_ue)
            ch.refresh_all()
        out[t] = (ues, (ch.gain[ues] / ch.large_scale_gain[ues][:, :, None]).reshape(ues.size, -1).copy())
    return out


def _stats(draws: dict, n_ue: int) -> np.ndarray:
    """(blocks of UEs, 2 + gaps): mean and variance of the draws, and the correlation between two
    draws of an entry ``gap`` TTIs apart (drawn or not in between), per block of UEs."""
    blocks = np.array_split(np.arange(n_ue), BLOCKS)
    block_of = np.empty(n_ue, dtype=int)
    for i, b in enumerate(blocks):
        block_of[b] = i
    hist: list[dict[int, np.ndarray]] = [{} for _ in range(n_ue)]  # per UE: TTI -> its draw
    vals = [[] for _ in blocks]
    pairs = {g: [([], []) for _ in blocks] for g in GAPS}
    for t in sorted(draws):
        ues, x = draws[t]
        for u, row in zip(ues.tolist(), x):
            b = block_of[u]
            vals[b].append(row)
            for g in GAPS:
                if t - g in hist[u]:
                    pairs[g][b][0].append(hist[u][t - g])
                    pairs[g][b][1].append(row)
            hist[u][t] = row
    out = []
    for b in range(len(blocks)):
        v = np.concatenate(vals[b])
        row = [v.mean(), v.var()]
        for g in GAPS:
            a, c = (np.concatenate(z) for z in pairs[g][b])
            row.append(np.corrcoef(a, c)[0, 1])
        out.append(row)
    return np.array(out)


def test_lazily_advanced_fading_has_the_eager_law():
    """Mean, variance and the correlation of draws 1 and 3 TTIs apart (theory 1, 1, rho^2, rho^6): the
    lazy and eager processes agree within 4 standard errors, the errors estimated from the spread over
    blocks of UEs; each also sits within 4 standard errors of the theory."""
    n_tti, n_ue = 150, 90
    eager, lazy = _stats(_draws(1, n_tti, False), n_ue), _stats(_draws(2, n_tti, True), n_ue)
    m_e, m_l = eager.mean(axis=0), lazy.mean(axis=0)
    se = np.sqrt(eager.var(axis=0, ddof=1) / len(eager) + lazy.var(axis=0, ddof=1) / len(lazy))
    assert np.all(np.abs(m_e - m_l) < 4 * se), (m_e, m_l, se)
    theory = np.array([1.0, 1.0] + [RHO ** (2 * g) for g in GAPS])
    for st in (eager, lazy):
        se1 = st.std(axis=0, ddof=1) / np.sqrt(len(st))
        assert np.all(np.abs(st.mean(axis=0) - theory) < 4 * se1 + 0.01), (st.mean(axis=0), theory, se1)
