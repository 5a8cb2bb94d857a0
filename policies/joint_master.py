"""The restricted master LP of the joint relaxation (``policies.joint_bound``) over the columns generated so far.

Variables: the columns' weights x (n_c,), the shortfalls s of the UEs with a need, under ``served`` the
counted rates y, and with the zero-slot rows their d (one per UE with a need, in [0, 1]). Rows, all as
``<=``: one column at most per PRB, each RU's power budget and slice caps, the clipped need rows, the
shortfall budget (objective bound only), the served rows, the need rows' rounding cuts and the zero-slot
rows (``joint_bound``'s module docstring gives each and why it is valid). HiGHS solves it; its duals are the
multipliers of the Lagrangian bound, which is valid for any of them.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix, hstack, identity, vstack

#: Cost (per kbit/s-scaled unit) of an elastic variable on a branch-and-price node's soft rows: far above what
#: any column gives, so the LP meets the rows wherever the columns can; its duals are multipliers like any other.
ELASTIC_PENALTY = 1e5


def column_arrays(relax):
    """What each column gives each UE, as sparse (U, n_c) kbit/s: its rate, and its rate clipped to the need
    and to the cap slot by slot (as the pricing counts them); each UE's cut coefficient and its number of
    slots, summed slot by slot; power (R, n_c), slice power (S, R, n_c), PRB (n_c,). Vectorised over
    the columns, one pass per RU."""
    obs, prob = relax.obs, relax.prob
    n_c, n_ue = len(relax.cols), obs.n_ues
    prb = np.fromiter((c[0] for c in relax.cols), dtype=np.int64, count=n_c)
    vec = np.fromiter((c[1] for c in relax.cols), dtype=np.int64, count=n_c)
    owner = np.array([c[2] for c in relax.cols], dtype=np.int64).reshape(n_c, obs.n_rus)
    pos = np.full(n_ue, -1)
    pos[relax.useful] = np.arange(relax.useful.size)
    power = np.zeros((obs.n_rus, n_c))
    sl_power = np.zeros((obs.slice_power_cap_w.size, obs.n_rus, n_c))
    uu, jj, rate, cut = [], [], [], []
    for r in range(obs.n_rus):
        lvl = relax.vectors[vec, r]
        j = np.flatnonzero((lvl > 0) & (owner[:, r] >= 0))
        u = owner[j, r]
        power[r, j] = prob.levels_w[r, lvl[j] - 1]
        np.add.at(sl_power, (obs.slice_id[u], r, j), power[r, j])
        uu.append(u)
        jj.append(j)
        ok = pos[u] >= 0  # a UE that can take nothing (an allocation's empty UE under served) gets 0
        idx = (r, np.maximum(pos[u], 0), prb[j], lvl[j] - 1, relax.others[vec[j], r])
        rate.append(np.where(ok, relax.rate[idx], 0.0))
        cut.append(np.where(ok, relax.cut[idx], 0.0))
    uu, jj, rate, cut = (np.concatenate(v) for v in (uu, jj, rate, cut))

    def per_ue(values):  # duplicates (a UE owning slots of several RUs in one column) are summed
        return csr_matrix((values, (uu, jj)), shape=(n_ue, n_c))

    return (per_ue(rate), per_ue(np.minimum(rate, relax.need[uu])), per_ue(np.minimum(rate, relax.cap[uu])),
            per_ue(cut), per_ue(np.ones(uu.size)), power, sl_power, prb)


def allowed_columns(relax, node) -> np.ndarray:
    """(n_c,) bool: the columns a branch-and-price node (``policies.joint_branch.Node``) allows: no banned slot,
    and every RU the node forces onto a PRB transmitting there."""
    n_c = len(relax.cols)
    if node is None:
        return np.ones(n_c, dtype=bool)
    prb = np.fromiter((c[0] for c in relax.cols), dtype=np.int64, count=n_c)
    owner = np.array([c[2] for c in relax.cols], dtype=np.int64).reshape(n_c, relax.obs.n_rus)
    pos = np.full(relax.obs.n_ues, -1)
    pos[relax.useful] = np.arange(relax.useful.size)
    ok = np.ones(n_c, dtype=bool)
    for r in range(relax.obs.n_rus):
        p = np.where(owner[:, r] >= 0, pos[np.maximum(owner[:, r], 0)], -1)
        banned = np.where(p >= 0, node.ban[r, np.maximum(p, 0), prb] | node.silent[r, prb],
                          node.forced[r, prb] | ((owner[:, r] >= 0) & node.silent[r, prb]))
        ok &= ~banned
    return ok


def solve_master(relax, v_max, zero_slot: bool = True, node=None):
    """The restricted master LP (with the zero-slot rows where ``zero_slot`` and ``v_max`` is given) over the
    columns ``node`` allows (None: all; a PRB it forces an RU onto must be used); its value (kbit/s), the
    non-negative multipliers (mu, nu, pi, theta, sigma, pi_cut, lam, kappa) and the column weights x (n_c,);
    (None, None, None) where the LP fails or the columns so far cannot meet its rows."""
    obs = relax.obs
    n_ru, n_prb, n_ue = obs.n_rus, obs.n_prbs, obs.n_ues
    rho, to_need, to_cap, to_cut, slots, power, sl_power, prb = column_arrays(relax)
    n_c, n_s, n_y = len(relax.cols), relax.need_ues.size, relax.y_ues.size
    member, count = relax.zero_slot_groups(v_max) if v_max is not None and zero_slot else \
        (np.zeros((0, n_ue), bool), np.zeros(0))
    n_d = n_s if count.size else 0  # d_u: UE u owns no slot (one per UE with a need)
    n_var = n_c + n_s + n_y + n_d
    s_cols, y_cols = n_c + np.arange(n_s), n_c + n_s + np.arange(n_y)
    blocks, rhs, elastic = [], [], []

    def rows(b, x=None, s_=None, y=None, d=None, soft=False):
        """Rows [x | s | y | d] <= b, each part a matrix (or None: zeros); ``soft``: in a branch-and-price node,
        a row the columns so far may not meet (an elastic variable at a penalty keeps the LP feasible)."""
        parts = [x, s_, y, d]
        n_rows = next(p.shape[0] for p in parts if p is not None)
        widths = (n_c, n_s, n_y, n_d)
        blocks.append(hstack([csr_matrix(p) if p is not None else csr_matrix((n_rows, wd))
                              for p, wd in zip(parts, widths)], format="csr"))
        if soft and node is not None:
            elastic.extend(len(rhs) + np.arange(n_rows))
        rhs.extend(np.broadcast_to(b, (n_rows,)))

    eye_s = identity(n_s, format="csr")
    rows(1.0, x=csr_matrix((np.ones(n_c), (prb, np.arange(n_c))), shape=(n_prb, n_c)))
    rows(obs.ru_max_power_w, x=power)
    caps = obs.slice_power_cap_w
    for s in relax.capped:
        rows(caps[s], x=sl_power[s])
    rows(-relax.need[relax.need_ues], x=-to_need[relax.need_ues], s_=-eye_s)
    if v_max is not None:
        rows(v_max, s_=np.ones((1, n_s)), soft=True)
    if n_y:
        rows(0.0, x=-to_cap[relax.y_ues], y=identity(n_y, format="csr"))
    n_cut = relax.cut_ues.size
    if n_cut:  # the cuts: sum_c coef x_c + s_u / (delta_u f_u) >= ceil(beta_u)
        s_of = np.searchsorted(relax.need_ues, relax.cut_ues)  # each cut UE's shortfall column
        on_s = csr_matrix((1.0 / (relax.cut_delta * relax.cut_frac), (np.arange(n_cut), s_of)), shape=(n_cut, n_s))
        rows(-relax.cut_rhs, x=-to_cut[relax.cut_ues], s_=-on_s)
    if n_d:  # zero-slot rows: slots_u + d_u >= 1, and per group sum d_u <= n_t
        rows(-1.0, x=-slots[relax.need_ues], d=-eye_s)
        rows(count, d=member[:, relax.need_ues].astype(float), soft=True)
    ok = allowed_columns(relax, node)
    if node is not None and node.forced.any():  # a forced PRB carries a column: -sum x <= -1 (rows last: the
        must = np.flatnonzero(node.forced.any(axis=0))  # multipliers below are read by position before them)
        used = np.isin(prb, must)
        rows(-1.0, x=csr_matrix((-np.ones(used.sum()), (np.searchsorted(must, prb[used]), np.flatnonzero(used))),
                                shape=(must.size, n_c)), soft=True)
    w = obs.ue_weight.astype(float)
    if v_max is None:
        c = np.zeros(n_var)
        c[s_cols] = 1.0
    else:
        c = np.zeros(n_var)
        if relax.prob.objective == "served":
            c[y_cols] = -w[relax.y_ues]
        else:
            c[:n_c] = -(rho.T @ w)
    bounds = np.c_[np.zeros(n_var), np.r_[np.where(ok, np.inf, 0.0), relax.need[relax.need_ues], relax.cap[relax.y_ues],
                                          np.ones(n_d)]]
    a_ub = vstack(blocks).tocsr()
    if elastic:  # e >= 0 per soft row: row - e <= b, at a cost far above any column's value
        n_e = len(elastic)
        a_ub = hstack([a_ub, csr_matrix((-np.ones(n_e), (elastic, np.arange(n_e))), shape=(a_ub.shape[0], n_e))],
                      format="csr")
        c = np.r_[c, np.full(n_e, ELASTIC_PENALTY)]
        bounds = np.r_[bounds, np.c_[np.zeros(n_e), np.full(n_e, np.inf)]]
    res = linprog(c, A_ub=a_ub, b_ub=np.asarray(rhs, dtype=float), bounds=bounds, method="highs")
    if res.status != 0:
        return None, None, None
    dual = np.maximum(-res.ineqlin.marginals, 0.0)  # a <= row's multiplier in the maximisation (or of -min)
    o = n_prb
    mu = dual[o:o + n_ru]
    o += n_ru
    nu = np.zeros((n_ru, caps.size))
    for s in relax.capped:
        nu[:, s] = dual[o:o + n_ru]
        o += n_ru
    pi = np.zeros(n_ue)
    pi[relax.need_ues] = dual[o:o + n_s]
    o += n_s
    theta = 0.0
    if v_max is not None:
        theta = float(dual[o])
        o += 1
    sigma = np.zeros(n_ue)
    sigma[relax.y_ues] = dual[o:o + n_y]
    o += n_y
    pi_cut = dual[o:o + n_cut]
    o += n_cut
    lam = np.zeros(n_ue)
    if n_d:
        lam[relax.need_ues] = dual[o:o + n_s]
        o += n_s
    kappa = dual[o:o + (count.size if n_d else 0)]
    if not n_d:
        kappa = np.zeros(count.size)
    return (res.fun if v_max is None else -res.fun), (mu, nu, pi, theta, sigma, pi_cut, lam, kappa), res.x[:n_c]
