"""The restricted master LP of the joint relaxation (``policies.joint_bound``) over the columns generated so far.

Variables: the shortfalls s of the UEs with a need, under ``served`` the counted rates y, with the zero-slot
rows their d (one per UE with a need, in [0, 1]), in a branch-and-price node an elastic variable per soft row,
then the columns' weights x (n_c,). Rows, all as ``<=``: one column at most per PRB, each RU's power budget
and slice caps, the clipped need rows, the shortfall budget (objective bound only), the served rows, the need
rows' rounding cuts and the zero-slot rows (``joint_bound``'s module docstring gives each and why it is
valid). Its duals are the multipliers of the Lagrangian bound, which is valid for any of them.

**Warm starts.** Column generation only adds columns: the rows stay, so the last optimal basis stays a
feasible basis of the grown LP (the new columns enter non-basic at 0) and the primal simplex goes on from it.
``MasterLP`` keeps one live HiGHS model (``highspy``) per column generation and appends each round's new
columns to it; measured on the 3-RU cell, the re-solves take a fraction of the cold ones' simplex iterations
(``docs/multi_ru.md``). A cold solve of the same LP has the same optimal value; the duals may differ where
the LP is degenerate, and the bound is valid for any of them.
"""

from __future__ import annotations

import highspy
import numpy as np
from scipy.sparse import csr_matrix, hstack, identity, vstack

#: HiGHS's ``simplex_strategy`` for the re-solves after the first (cold) one: 4, the primal simplex. The last optimal
#: basis stays primal feasible when columns are added, so the primal simplex goes on from it, where the default (dual)
#: simplex has to restore dual feasibility first. Measured on the bench's five 3-RU ``rate`` states, both runs at the
#: same time: the bound's CPU (both tiers) 16.2 s against 19.5 s (``docs/multi_ru.md``); the first solve stays dual.
WARM_SIMPLEX_STRATEGY = 4
#: Cost (per kbit/s-scaled unit) of an elastic variable on a branch-and-price node's soft rows: far above what
#: any column gives, so the LP meets the rows wherever the columns can; its duals are multipliers like any other.
ELASTIC_PENALTY = 1e5


def column_arrays(relax, start: int = 0):
    """What each column from ``start`` on gives each UE, as sparse (U, n_c) kbit/s: its rate, and its rate
    clipped to the need and to the cap slot by slot (as the pricing counts them); each UE's cut coefficient
    and its number of slots, summed slot by slot; power (R, n_c), slice power (S, R, n_c), PRB (n_c,); and with
    the state rows (``policies.joint_states``) per threshold i its slots of class <= i (list of (U, n_c)).
    Vectorised over the columns, one pass per RU."""
    obs, prob = relax.obs, relax.prob
    cols = relax.cols[start:]
    n_c, n_ue = len(cols), obs.n_ues
    prb = np.fromiter((c[0] for c in cols), dtype=np.int64, count=n_c)
    vec = np.fromiter((c[1] for c in cols), dtype=np.int64, count=n_c)
    owner = np.array([c[2] for c in cols], dtype=np.int64).reshape(n_c, obs.n_rus)
    pos = np.full(n_ue, -1)
    pos[relax.useful] = np.arange(relax.useful.size)
    power = np.zeros((obs.n_rus, n_c))
    sl_power = np.zeros((obs.slice_power_cap_w.size, obs.n_rus, n_c))
    uu, jj, rate, cut, cls = [], [], [], [], []
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
        cls.append(np.where(ok, relax.states.cls[idx], 127) if relax.states is not None else np.zeros(u.size))
    uu, jj, rate, cut, cls = (np.concatenate(v) for v in (uu, jj, rate, cut, cls))

    def per_ue(values):  # duplicates (a UE owning slots of several RUs in one column) are summed
        return csr_matrix((values, (uu, jj)), shape=(n_ue, n_c))

    by_class = [per_ue((cls <= i).astype(float)) for i in range(1, relax.states.n_j + 1)] \
        if relax.states is not None else []
    return (per_ue(rate), per_ue(np.minimum(rate, relax.need[uu])), per_ue(np.minimum(rate, relax.cap[uu])),
            per_ue(cut), per_ue(np.ones(uu.size)), power, sl_power, prb, by_class)


def allowed_columns(relax, node, start: int = 0) -> np.ndarray:
    """(n_c,) bool for the columns from ``start`` on: those a branch-and-price node (``policies.joint_branch.Node``)
    allows: no banned slot, and every RU the node forces onto a PRB transmitting there."""
    cols = relax.cols[start:]
    n_c = len(cols)
    if node is None:
        return np.ones(n_c, dtype=bool)
    prb = np.fromiter((c[0] for c in cols), dtype=np.int64, count=n_c)
    owner = np.array([c[2] for c in cols], dtype=np.int64).reshape(n_c, relax.obs.n_rus)
    pos = np.full(relax.obs.n_ues, -1)
    pos[relax.useful] = np.arange(relax.useful.size)
    ok = np.ones(n_c, dtype=bool)
    for r in range(relax.obs.n_rus):
        p = np.where(owner[:, r] >= 0, pos[np.maximum(owner[:, r], 0)], -1)
        banned = np.where(p >= 0, node.ban[r, np.maximum(p, 0), prb] | node.silent[r, prb],
                          node.forced[r, prb] | ((owner[:, r] >= 0) & node.silent[r, prb]))
        ok &= ~banned
    return ok


class MasterLP:
    """The restricted master LP (with the zero-slot rows where ``zero_slot`` and ``v_max`` is given) over the
    columns ``node`` allows (None: all; a PRB it forces an RU onto must be used), kept live in HiGHS: ``solve``
    first appends the columns generated since the last solve, then re-solves from the last basis."""

    def __init__(self, relax, v_max, zero_slot: bool = True, node=None):
        obs = relax.obs
        self.relax, self.v_max, self.node = relax, v_max, node
        n_ue = obs.n_ues
        self.n_s, self.n_y = relax.need_ues.size, relax.y_ues.size
        self.member, self.count = relax.zero_slot_groups(v_max) if v_max is not None and zero_slot else \
            (np.zeros((0, n_ue), bool), np.zeros(0))
        self.n_d = self.n_s if self.count.size else 0  # d_u: UE u owns no slot (one per UE with a need)
        # the Lagrangian takes one kappa per zero-slot row at v_max, 0 for the rows this LP leaves out
        self.n_groups = relax.zero_slot_groups(v_max)[1].size if v_max is not None else 0
        self.must = np.flatnonzero(node.forced.any(axis=0)) if node is not None else np.zeros(0, dtype=np.int64)
        self.states = relax.states
        self.n_q = self.states.n_s * self.states.n_vars if self.states is not None else 0  # the UE-state variables
        n_s, n_y, n_d, n_q = self.n_s, self.n_y, self.n_d, self.n_q
        # rows without the columns' part: [s | y | d | q] per block, its right-hand side, and whether it is soft
        blocks, rhs, soft = [], [], []

        def rows(n, b, s_=None, y=None, d=None, q=None, is_soft=False):
            parts = [s_, y, d, q]
            blocks.append(hstack([csr_matrix(p) if p is not None else csr_matrix((n, wd))
                                  for p, wd in zip(parts, (n_s, n_y, n_d, n_q))], format="csr"))
            rhs.extend(np.broadcast_to(b, (n,)))
            soft.extend([is_soft and node is not None] * n)

        eye_s = identity(n_s, format="csr")
        rows(obs.n_prbs, 1.0)
        rows(obs.n_rus, obs.ru_max_power_w)
        caps = obs.slice_power_cap_w
        for s in relax.capped:
            rows(obs.n_rus, caps[s])
        rows(n_s, -relax.need[relax.need_ues], s_=-eye_s)
        if v_max is not None:
            rows(1, v_max, s_=np.ones((1, n_s)), is_soft=True)
        if n_y:
            rows(n_y, 0.0, y=identity(n_y, format="csr"))
        n_cut = relax.cut_ues.size
        if n_cut:  # the cuts: sum_c coef x_c + s_u / (delta_u f_u) >= ceil(beta_u)
            s_of = np.searchsorted(relax.need_ues, relax.cut_ues)  # each cut UE's shortfall column
            rows(n_cut, -relax.cut_rhs,
                 s_=-csr_matrix((1.0 / (relax.cut_delta * relax.cut_frac), (np.arange(n_cut), s_of)), shape=(n_cut, n_s)))
        if n_d:  # zero-slot rows: slots_u + d_u >= 1, and per group sum d_u <= n_t
            rows(n_s, -1.0, d=-eye_s)
            rows(self.count.size, self.count, d=self.member[:, relax.need_ues].astype(float), is_soft=True)
        if n_q:  # the one-slot state rows (policies.joint_states)
            q_part, s_part, q_rhs = self.states.rows()
            rows(q_rhs.size, q_rhs, s_=s_part, q=q_part)
        if self.must.size:  # a forced PRB carries a column: -sum x <= -1
            rows(self.must.size, -1.0, is_soft=True)
        aux = vstack(blocks).tocsr()
        n_row = aux.shape[0]
        elastic = np.flatnonzero(soft)  # e >= 0 per soft row: row - e <= b, at a cost far above any column's value
        n_e = elastic.size
        aux = hstack([aux, csr_matrix((-np.ones(n_e), (elastic, np.arange(n_e))), shape=(n_row, n_e))], format="csc")
        w = obs.ue_weight.astype(float)
        cost = np.zeros(n_s + n_y + n_d + n_q + n_e)
        if v_max is None:
            cost[:n_s] = 1.0
        elif relax.prob.objective == "served":
            cost[n_s:n_s + n_y] = -w[relax.y_ues]
        cost[n_s + n_y + n_d + n_q:] = ELASTIC_PENALTY
        upper = np.r_[relax.need[relax.need_ues], relax.cap[relax.y_ues], np.ones(n_d), np.ones(n_q),
                      np.full(n_e, highspy.kHighsInf)]
        self.n_aux, self.n_row, self.n_cut = aux.shape[1], n_row, n_cut
        self.n_x = 0  # columns of relax.cols in the model so far
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = self.n_aux, n_row
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, np.zeros(self.n_aux), upper
        lp.row_lower_, lp.row_upper_ = np.full(n_row, -highspy.kHighsInf), np.asarray(rhs, dtype=float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = aux.indptr, aux.indices, aux.data
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = self.n_aux, n_row
        # the plain solver object: no callback machinery, prints nothing (the ``Highs`` wrapper prints a banner)
        self.highs = highspy._Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.passModel(lp)
        self.warm = False  # solved once: the re-solves use WARM_SIMPLEX_STRATEGY

    def _x_rows(self, start: int):
        """The rows' entries (n_row, n_new) CSC, cost and upper bound of the columns relax.cols[start:]."""
        relax, obs = self.relax, self.relax.obs
        rho, to_need, to_cap, to_cut, slots, power, sl_power, prb, by_class = column_arrays(relax, start)
        n_c = prb.size
        parts = [csr_matrix((np.ones(n_c), (prb, np.arange(n_c))), shape=(obs.n_prbs, n_c)), csr_matrix(power)]
        parts += [csr_matrix(sl_power[s]) for s in relax.capped]
        parts.append(-to_need[relax.need_ues])
        if self.v_max is not None:
            parts.append(csr_matrix((1, n_c)))
        if self.n_y:
            parts.append(-to_cap[relax.y_ues])
        if self.n_cut:
            parts.append(-to_cut[relax.cut_ues])
        if self.n_d:
            parts += [-slots[relax.need_ues], csr_matrix((self.count.size, n_c))]
        if self.n_q:
            parts.append(self.states.column_rows(slots, by_class))
        if self.must.size:
            used = np.isin(prb, self.must)
            parts.append(csr_matrix((-np.ones(used.sum()), (np.searchsorted(self.must, prb[used]), np.flatnonzero(used))),
                                    shape=(self.must.size, n_c)))
        a = vstack(parts).tocsc()
        cost = -(rho.T @ obs.ue_weight.astype(float)) if self.v_max is not None and relax.prob.objective == "rate" \
            else np.zeros(n_c)
        upper = np.where(allowed_columns(relax, self.node, start), highspy.kHighsInf, 0.0)
        return a, cost, upper

    def solve(self):
        """Its value (kbit/s), the non-negative multipliers (mu, nu, pi, theta, sigma, pi_cut, lam, kappa, states) and the
        column weights x (n_c,); (None, None, None) where the LP fails or the columns so far cannot meet its rows."""
        relax, obs = self.relax, self.relax.obs
        if len(relax.cols) > self.n_x:
            a, cost, upper = self._x_rows(self.n_x)
            self.highs.addCols(a.shape[1], cost, np.zeros(a.shape[1]), upper, a.nnz, a.indptr[:-1].astype(np.int32),
                               a.indices.astype(np.int32), a.data)
            self.n_x = len(relax.cols)
        self.highs.run()
        if not self.warm:  # later solves start from this basis with columns added: primal feasible
            self.highs.setOptionValue("simplex_strategy", WARM_SIMPLEX_STRATEGY)
            self.warm = True
        if self.highs.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None, None, None
        sol = self.highs.getSolution()
        dual = np.maximum(-np.asarray(sol.row_dual), 0.0)  # a <= row's multiplier in the maximisation (or of -min)
        n_ru, n_ue, n_s = obs.n_rus, obs.n_ues, self.n_s
        o = obs.n_prbs
        mu = dual[o:o + n_ru]
        o += n_ru
        nu = np.zeros((n_ru, obs.slice_power_cap_w.size))
        for s in relax.capped:
            nu[:, s] = dual[o:o + n_ru]
            o += n_ru
        pi = np.zeros(n_ue)
        pi[relax.need_ues] = dual[o:o + n_s]
        o += n_s
        theta = 0.0
        if self.v_max is not None:
            theta = float(dual[o])
            o += 1
        sigma = np.zeros(n_ue)
        sigma[relax.y_ues] = dual[o:o + self.n_y]
        o += self.n_y
        pi_cut = dual[o:o + self.n_cut]
        o += self.n_cut
        lam = np.zeros(n_ue)
        kappa = np.zeros(self.n_groups)
        if self.n_d:
            lam[relax.need_ues] = dual[o:o + n_s]
            o += n_s
            kappa = dual[o:o + self.count.size]
            o += self.count.size
        states = None
        if self.states is not None:
            n_rows = self.states.n_s * self.states.n_vars
            states = self.states.split_duals(dual[o:o + n_rows])
            o += n_rows
        value = self.highs.getInfo().objective_function_value
        x = np.asarray(sol.col_value)[self.n_aux:]
        return (value if self.v_max is None else -value), (mu, nu, pi, theta, sigma, pi_cut, lam, kappa, states), x

