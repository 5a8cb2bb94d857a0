"""Several RUs on the same PRBs: the formulations ``optimal`` solves when RUs interfere.

With one RU the SINR of a PRB depends only on its own owner and power, and the MILP of
``policies.optimal`` is exact. With several RUs the SINR of UE u on PRB k of RU r is

    p[r,k] g[u,r,k] / (N0 B + sum_{r' != r} g[u,r',k] (p[r',k] + sigma_q^2[r'] on[r']) + g[u,r,k] sigma_q^2[r])

(``simcore.phy.LinkModel``): it depends on what every other RU does on PRB k, and, through the
fronthaul noise sigma_q^2 that an RU radiates on every PRB whenever it transmits at all (on[r']),
on whether each other RU is active anywhere. Three ways to handle it (``ExactOptimum(interference=...)``):

- ``joint`` (exact): one binary per PRB and *joint state of every RU* on it. Each RU is, on PRB k,
  ``off`` (the RU transmits nowhere; only where sigma_q^2 > 0, else merged with idle), ``idle``
  (transmits elsewhere) or gives the PRB to some UE u at some level l; a combination of these over
  the R RUs is one choice, its true SINR precomputed for every owner. Rows: exactly one combination
  per PRB; per RU the power budget and slice caps; an RU is off on every PRB or on none (binary
  o[r]), and when not off owns at least one PRB; each UE on at most one RU (binaries a[u,r]); the
  need and served rows of the single-RU MILP. Every allocation of the snapshot problem is one point
  of this MILP with its exact rates, so the four-tier order gives the same unique optimum as ESA.
  The number of combinations, K * prod_r (U L + 1 + [sigma_q^2[r] > 0]), is computed before any
  work (``joint_size``) and the mode refuses above ``max_joint_choices``, naming the size.
- ``worst_case`` (the reference model's bound, Motalleb et al.): R-bar, the rate of UE u on PRB k
  of its serving RU with every other RU radiating its top usable power level and its fronthaul
  noise on that PRB. R-bar does not depend on the other RUs' decisions, so the problem separates
  into one exact MILP per RU (solved as one, UEs on their serving RU). Its allocation is feasible and
  every UE's true rate is at least its bounded rate (interference only falls): exact *for the
  bounded problem*, a lower bound on the true one.
- ``certified`` (large cells): the best of several feasible allocations (the worst-case optimum, on
  small enough relaxations a MILP over the joint relaxation's columns, each RU's MILP under power
  patterns of the joint bound, each improved by best responses and ``policies.local_search``) next to bounds on the true optimum: the smaller of two
  upper bounds, the joint problem's per-PRB relaxation (``policies.joint_bound``: interference
  kept, PRBs mixed fractionally; Lagrangian bounds valid for any multipliers) and the
  interference-free problem (every rate at least the true one; each UE may take PRBs of every RU;
  integral) solved by HiGHS, whose dual bound is valid even when it stops early. The gap says how
  far from optimal the answer can be (``optimal``'s module).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import LinearConstraint
from scipy.sparse import csr_matrix

from simcore.snapshot import SnapshotProblem

#: State codes of an RU on a PRB in a joint combination (owners are UE indices >= 0).
OFF, IDLE = -2, -1


class JointTooLarge(ValueError):
    pass


@dataclass
class Choices:
    """The binary choices x of a MIP and what each one does; n_x choices, U UEs, R RUs.

    A choice gives PRBs to UEs: a single (UE, PRB, level) when UEs stay on their serving RU, or,
    in the joint formulation, the state of every RU on one PRB. Its ``slot_*`` entries (one per
    PRB it gives) say which: choice ``slot_x`` gives PRB ``slot_k`` of RU ``slot_r`` to UE
    ``slot_u`` at level ``slot_l``. ``rate`` is what each UE gets from it (that choice's SINR).
    """

    rate: csr_matrix  # (U, n_x) kbit/s
    group: np.ndarray  # (n_x,) int: the PRB a choice decides; at most one choice per group
    slot_x: np.ndarray
    slot_r: np.ndarray
    slot_k: np.ndarray
    slot_u: np.ndarray
    slot_l: np.ndarray
    exact_groups: bool = False  # exactly one choice per group (the joint formulation's idle states are choices)
    n_z: int = 0  # further binaries z (the joint formulation's association and RU-off variables)
    extra: LinearConstraint | None = None  # rows over (x, z)
    rate_table: np.ndarray | None = None  # (U, K, L) kbit/s when UEs stay on their serving RU (greedy shortcuts)
    ues: np.ndarray | None = None  # the UEs these choices decide for (None: all); others' needs are not counted

    @property
    def n_x(self) -> int:
        return self.group.size


# ------------------------------------------------------------------------------- worst case
def worst_case_power_w(prob: SnapshotProblem) -> np.ndarray:
    """(R, K) the most each RU can put on one PRB: its top level within its budget (0 if none fits)."""
    lv = np.where(prob.levels_w <= prob.obs.ru_max_power_w[:, None] * (1 + 1e-12), prob.levels_w, 0.0)
    return np.repeat(lv.max(axis=1)[:, None], prob.obs.n_prbs, axis=1)


def worst_case_interference_w(prob: SnapshotProblem) -> np.ndarray:
    """(U, K) interference on each UE's serving-RU PRBs with every other RU at its top power (R-bar's)."""
    obs = prob.obs
    return obs.link.interference_w(obs.gain, obs.serving_ru, worst_case_power_w(prob))


# ------------------------------------------------------------------------------- joint
def _ru_states(prob: SnapshotProblem) -> list[np.ndarray]:
    """Per RU, (n_r, 2) int rows (owner or OFF/IDLE, level): its possible states on one PRB."""
    obs = prob.obs
    useful = np.flatnonzero((prob.cap_bps > 0) | (prob.need_bps > 0))  # served: an empty UE takes nothing
    out = []
    for r in range(obs.n_rus):
        lv = np.flatnonzero(prob.levels_w[r] <= obs.ru_max_power_w[r] * (1 + 1e-12))
        owners = np.array([(u, l) for u in useful for l in lv], dtype=np.int64).reshape(-1, 2)
        idle = [(OFF, 0), (IDLE, 0)] if obs.link.quant_noise_w[r] > 0 else [(IDLE, 0)]
        out.append(np.r_[np.array(idle, dtype=np.int64), owners])
    return out


def joint_size(prob: SnapshotProblem) -> int:
    """Number of joint combinations the exact formulation enumerates: K * prod_r (states of RU r)."""
    return prob.obs.n_prbs * int(np.prod([len(s) for s in _ru_states(prob)], dtype=object))


def joint_choices(prob: SnapshotProblem, max_choices: int, unit_bps: float) -> Choices:
    """The joint formulation's choices and rows (module docstring); rates in bit/s / ``unit_bps``."""
    obs = prob.obs
    n_ru, n_prb, n_ue = obs.n_rus, obs.n_prbs, obs.n_ues
    size = joint_size(prob)
    if size > max_choices:
        raise JointTooLarge(f"optimal: the joint multi-RU formulation needs {size:,} combinations "
                            f"(K * prod_r (U*L + idle states) with U={n_ue}, R={n_ru}, K={n_prb}, "
                            f"L={prob.n_levels}), above the limit max_joint_choices={max_choices:,}")
    states = _ru_states(prob)
    idx = np.stack(np.meshgrid(*[np.arange(len(s)) for s in states], indexing="ij"), -1).reshape(-1, n_ru)
    owner = np.stack([states[r][idx[:, r], 0] for r in range(n_ru)], 1)  # (C, R)
    level = np.stack([states[r][idx[:, r], 1] for r in range(n_ru)], 1)
    owned = owner >= 0
    # one RU per UE: no combination gives one UE a PRB on two RUs
    dup = np.zeros(len(owner), dtype=bool)
    for r in range(n_ru):
        for q in range(r + 1, n_ru):
            dup |= owned[:, r] & (owner[:, r] == owner[:, q])
    owner, level, owned = owner[~dup], level[~dup], owned[~dup]
    rr = np.arange(n_ru)[None, :]
    power = np.where(owned, prob.levels_w[rr, level], 0.0)  # (C, R)
    rad = power + np.where(owner != OFF, obs.link.quant_noise_w[None, :], 0.0)  # what each RU radiates on the PRB
    own = np.maximum(owner, 0)
    xs, groups, rate_rows = [], [], []
    cols_r, cols_k, cols_u, cols_l, cols_x, vals = [], [], [], [], [], []
    n_x = 0
    for k in range(n_prb):
        g = obs.gain[own, :, k]  # (C, R, R'): gain from RU r' to the owner of RU r's state
        diag = np.take_along_axis(g, rr[:, :, None].repeat(len(own), 0), axis=2)[..., 0]  # (C, R)
        interf = np.maximum(np.einsum("crq,cq->cr", g, rad) - diag * rad, 0.0)
        sinr = obs.link.sinr(diag, power, rr, interf)
        rate = np.where(owned, obs.link.prb_rate_bps(np.where(owned, sinr, 0.0), own), 0.0)
        keep = ~(owned & (rate <= 0)).any(axis=1)  # an owner gaining nothing: dominated by leaving it idle
        c_idx = np.flatnonzero(keep)
        ids = n_x + np.arange(c_idx.size)
        cc, rsel = np.nonzero(owned[c_idx])
        cols_x.append(ids[cc])
        cols_r.append(rsel)
        cols_k.append(np.full(cc.size, k))
        cols_u.append(owner[c_idx][cc, rsel])
        cols_l.append(level[c_idx][cc, rsel])
        vals.append(rate[c_idx][cc, rsel] / unit_bps)
        xs.append((c_idx, k))
        groups.append(np.full(c_idx.size, k))
        n_x += c_idx.size
    slot_x, slot_r, slot_k, slot_u, slot_l = (np.concatenate(a).astype(np.int64)
                                             for a in (cols_x, cols_r, cols_k, cols_u, cols_l))
    rate_m = csr_matrix((np.concatenate(vals), (slot_u, slot_x)), shape=(n_ue, n_x))
    group = np.concatenate(groups)
    ch_owner = np.concatenate([owner[c] for c, _ in xs])  # (n_x, R): each RU's state in each choice
    n_z, extra = _joint_rows(prob, ch_owner, group, slot_x, slot_r, slot_k, slot_u)
    return Choices(rate_m, group, slot_x, slot_r, slot_k, slot_u, slot_l, exact_groups=True, n_z=n_z, extra=extra)


def _joint_rows(prob, ch_owner, group, slot_x, slot_r, slot_k, slot_u):
    """RU-off consistency and one RU per UE: the number of z binaries and rows over (x, z)."""
    obs = prob.obs
    n_x = group.size
    rows, cols, vals, lo, hi = [], [], [], [], []
    n_z = 0

    def add(c, v, low, high):
        rows.append(np.full(len(c), len(lo)))
        cols.append(np.asarray(c, dtype=np.int64))
        vals.append(np.asarray(v, dtype=float))
        lo.append(low)
        hi.append(high)

    for r in range(obs.n_rus):
        off = ch_owner[:, r] == OFF
        if not off.any():
            continue
        o = n_x + n_z  # o[r] = 1: RU r transmits on no PRB
        n_z += 1
        for k in range(obs.n_prbs):
            c = np.flatnonzero(off & (group == k))
            add(np.r_[c, o], np.r_[np.ones(c.size), -1.0], 0.0, 0.0)
        c = np.flatnonzero(ch_owner[:, r] >= 0)
        add(np.r_[c, o], np.ones(c.size + 1), 1.0, np.inf)
    for u in np.unique(slot_u):
        mine = slot_u == u
        rus = np.unique(slot_r[mine])
        if rus.size < 2:
            continue
        a = n_x + n_z + np.arange(rus.size)  # a[u, r] = 1: UE u may take PRBs of RU r
        n_z += rus.size
        add(a, np.ones(rus.size), -np.inf, 1.0)
        for j, r in enumerate(rus):
            for k in np.unique(slot_k[mine & (slot_r == r)]):
                c = slot_x[mine & (slot_r == r) & (slot_k == k)]
                add(np.r_[c, a[j]], np.r_[np.ones(c.size), -1.0], -np.inf, 0.0)
    if not lo:
        return 0, None
    mat = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(lo), n_x + n_z))
    return n_z, LinearConstraint(mat, np.array(lo), np.array(hi))


# ------------------------------------------------------------------------------- certified
def interference_free_choices(prob: SnapshotProblem, unit_bps: float, allowed) -> Choices:
    """Choices (u, r, k, l) of every UE on every RU with no interference from the other RUs: every
    rate at least the true one, and a UE may take PRBs of several RUs (a relaxation: an upper bound)."""
    obs = prob.obs
    u_idx = np.arange(obs.n_ues)
    parts = []
    for r in range(obs.n_rus):
        levels = np.repeat(prob.levels_w[r][None, :], obs.n_ues, axis=0)  # (U, L)
        sinr = obs.link.sinr(obs.gain[:, r, :, None], levels[:, None, :], r, 0.0)
        rate = obs.link.prb_rate_bps(sinr, u_idx[:, None, None]) / unit_bps  # (U, K, L)
        uu, kk, ll = np.nonzero(allowed(prob, rate, levels))
        parts.append((uu, np.full(uu.size, r), kk, ll, rate[uu, kk, ll]))
    uu, rr, kk, ll, val = (np.concatenate(a) for a in zip(*parts))
    xs = np.arange(uu.size)
    return Choices(csr_matrix((val, (uu, xs)), shape=(obs.n_ues, uu.size)), rr * obs.n_prbs + kk,
                   xs, rr, kk, uu, ll)
