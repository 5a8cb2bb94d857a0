"""One-slot state rows of the joint relaxation (``policies.joint_bound``): a UE on one PRB falls short by that PRB's deficit.

The relaxation's need row counts a UE's PRBs linearly: a cell-edge UE whose PRBs each carry 935 kbit/s
meets a 1,000 kbit/s need with 1.07 PRBs' worth of columns, where an allocation gives it either one PRB
(65 kbit/s short) or two (a PRB taken from another UE). On the 3-RU cell this is most of what the
least-shortfall bound missed: its LP gave five such UEs 1.01-1.13 PRBs of rates below 990 kbit/s.

**The states.** Per UE u with a need, fix thresholds 0 < theta_1 < ... < theta_J (``STATE_FRACTIONS`` of its
need) and theta_0 = c_u = max(0, need_u - delta_u) (delta_u: the most one slot gives it, clipped to the need,
as for the rounding cuts). A slot is of *class* i (1 <= i <= J + 1) where i is the least with clipped rate
>= need_u - theta_i (class J + 1: none). Every allocation puts u in exactly one state:

- O_j (1 <= j <= J + 1): exactly one slot, of class j: its shortfall is at least theta_{j-1} (its slot's
  rate is below need_u - theta_{j-1}; the relaxed rate is at least the true one; class 1: at least c_u);
- M: two slots or more (shortfall at least 0); Z: no slot (shortfall need_u).

With slots_u the number of slots u owns and slots_u^{<=i} those of class at most i (both sums over the
columns, each column counting its slots of u), the rows

    (a) sum_j O_j + M + Z >= 1                      (b_i) sum_{j <= i} O_j <= slots_u^{<=i}   (i = 1..J)
    (c) sum_j O_j + 2 M <= slots_u                    (d) s_u >= sum_j theta_{j-1} O_j + need_u Z

hold at every allocation with the states as defined (0/1) and s_u its shortfall: (a) one state holds;
(b_i) a UE whose one slot is of class <= i owns such a slot; (c) the states count slots; (d) is the
shortfall each state implies. So they cut no allocation, and the relaxation with them is still a
relaxation: every bound of ``joint_bound`` stays valid (its Lagrangian gains the terms below). What they
cut is the LP's 1.07 PRBs: with no slot of a good class, u is in O_J+1 (shortfall theta_J), or M (two slots,
taken from UEs that then fall to Z), or Z.

**In the Lagrangian** (``joint_bound``'s docstring; maximisation form, multipliers alpha, beta_i, gamma,
delta >= 0 of (a), (b_i), (c), (d)): the bound gains, per UE,

    - alpha + sum_j max(0, alpha - sum_{i=j..J} beta_i - gamma - delta theta_{j-1})
            + max(0, alpha - 2 gamma) + max(0, alpha - delta need_u)

(each state variable at 0 or 1, whichever is larger), s_u's coefficient gains delta_u, and each slot of u
of class c adds sum_{i=c..J} beta_i + gamma to its column's priced value: a function of that slot's own rate,
so the pricing stays exact. The least-shortfall bound is minus the maximisation of -V, so it loses the same
per-UE term.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix, vstack

#: Thresholds theta_i as fractions of each UE's need: a UE on one slot of class i falls short by at least
#: theta_{i-1} x need. Six classes between 0.1 % and 30 % of the need.
STATE_FRACTIONS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


class UeStates:
    """The state rows of the module docstring for the UEs with a need of a ``JointRelaxation``."""

    def __init__(self, relax):
        self.relax = relax
        self.ues = relax.need_ues  # (n_s,): the rows' UEs (those with a need, some slot of class > 1)
        self.n_j = len(STATE_FRACTIONS)
        need = relax.need[relax.useful]  # (U',)
        clipped = relax.rate_to_need
        delta = clipped.max(axis=(0, 2, 3, 4)) if clipped.size else np.zeros(need.size)
        theta = need[:, None] * np.asarray(STATE_FRACTIONS)[None, :]  # (U', J)
        # class of each table entry: 1 + the number of thresholds its rate misses (rate >= need - theta_i)
        self.cls = np.ones(relax.rate.shape, dtype=np.int8)
        for i in range(self.n_j):
            self.cls += clipped < need[None, :, None, None, None] - theta[None, :, i, None, None, None]
        pos = np.full(relax.obs.n_ues, -1)
        pos[relax.useful] = np.arange(relax.useful.size)
        # a UE every one of whose slots is of class 1 gains nothing from the rows (its need row says as much): left out
        worst = self.cls.max(axis=(0, 2, 3, 4)) if self.cls.size else np.ones(relax.useful.size, dtype=np.int8)
        self.ues = self.ues[worst[pos[self.ues]] > 1]
        self.n_s = self.ues.size
        self.s_col = np.searchsorted(relax.need_ues, self.ues)  # each row UE's shortfall in the master
        p = pos[self.ues]
        self.need = relax.need[self.ues]
        # cost (n_s, J + 1) of O_1..O_{J+1}: c_u, theta_1, ..., theta_J
        self.cost = np.c_[np.maximum(self.need - delta[p], 0.0), theta[p]] if self.n_s else np.zeros((0, self.n_j + 1))

    @property
    def n_vars(self) -> int:
        """State variables per UE: O_1..O_{J+1}, M, Z."""
        return self.n_j + 3

    # ------------------------------------------------------------------------------ master LP
    def rows(self):
        """The rows' state part (n_rows, n_s * n_vars) CSR, their shortfall part (n_rows, UEs with a need) CSR and right-hand
        sides, in the order (a) (n_s), (b_i) (J * n_s, i major), (c) (n_s), (d) (n_s), all as <=."""
        n_s, n_j, nv = self.n_s, self.n_j, self.n_vars
        base = np.arange(n_s) * nv
        o = base[:, None] + np.arange(n_j + 1)[None, :]  # (n_s, J + 1) columns of O_j
        m, z = base + n_j + 1, base + n_j + 2
        r_, c_, v_ = [], [], []

        def put(row, col, val):
            r_.append(np.broadcast_to(row, np.shape(col)).ravel())
            c_.append(np.ravel(col))
            v_.append(np.broadcast_to(val, np.shape(col)).ravel().astype(float))

        e = np.arange(n_s)
        put(e[:, None], o, -1.0)  # (a): -(sum O + M + Z) <= -1
        put(e, m, -1.0)
        put(e, z, -1.0)
        for i in range(1, n_j + 1):  # (b_i): sum_{j <= i} O_j - slots of class <= i <= 0
            put((n_s + (i - 1) * n_s + e)[:, None], o[:, :i], 1.0)
        row_c = n_s + n_j * n_s
        put((row_c + e)[:, None], o, 1.0)  # (c): sum O + 2 M - slots <= 0
        put(row_c + e, m, 2.0)
        row_d = row_c + n_s
        put((row_d + e)[:, None], o, self.cost)  # (d): sum theta O + need Z - s <= 0
        put(row_d + e, z, self.need)
        n_rows = row_d + n_s
        q = csr_matrix((np.concatenate(v_), (np.concatenate(r_), np.concatenate(c_))), shape=(n_rows, n_s * nv))
        s = csr_matrix((-np.ones(n_s), (row_d + e, self.s_col)), shape=(n_rows, self.relax.need_ues.size))
        rhs = np.r_[-np.ones(n_s), np.zeros(n_rows - n_s)]
        return q, s, rhs

    def column_rows(self, slots, by_class):
        """The rows' column part (n_rows, n_c) CSR from ``slots`` (U, n_c) (each column's slots of each UE) and
        ``by_class`` (list of J (U, n_c): its slots of class <= i)."""
        n_c = slots.shape[1]
        zero = csr_matrix((self.n_s, n_c))
        return vstack([zero, *[-b[self.ues] for b in by_class], -slots[self.ues], zero], format="csr")

    def split_duals(self, dual):
        """(alpha (n_s,), beta (J, n_s), gamma (n_s,), delta (n_s,)) from the rows' duals in ``rows`` order."""
        n_s, n_j = self.n_s, self.n_j
        return (dual[:n_s], dual[n_s:n_s + n_j * n_s].reshape(n_j, n_s), dual[(n_j + 1) * n_s:(n_j + 2) * n_s],
                dual[(n_j + 2) * n_s:(n_j + 3) * n_s])

    # ------------------------------------------------------------------------------ Lagrangian
    def slot_values(self, states) -> np.ndarray:
        """(U, J + 2): what one slot of class c of UE u adds to its column's priced value (c = 0 unused)."""
        alpha, beta, gamma, delta = states
        value = np.zeros((self.relax.obs.n_ues, self.n_j + 2))
        # sum_{i = c..J} beta_i + gamma for c = 1..J + 1
        tail = np.cumsum(beta[::-1], axis=0)[::-1]  # (J, n_s): tail[c - 1] = sum_{i >= c} beta_i
        value[self.ues, 1:self.n_j + 1] = tail.T + gamma[:, None]
        value[self.ues, self.n_j + 1] = gamma
        return value

    def lagrangian_term(self, states) -> tuple[float, np.ndarray]:
        """The per-UE term of the module docstring summed over the UEs (maximisation form), and delta (U,), what
        each shortfall's coefficient gains."""
        alpha, beta, gamma, delta = states
        tail = np.r_[np.cumsum(beta[::-1], axis=0)[::-1], np.zeros((1, self.n_s))]  # (J + 1, n_s)
        o_gain = np.maximum(alpha[None, :] - tail - gamma[None, :] - delta[None, :] * self.cost.T, 0.0).sum(axis=0)
        term = (-alpha + o_gain + np.maximum(alpha - 2 * gamma, 0.0) + np.maximum(alpha - delta * self.need, 0.0)).sum()
        on_s = np.zeros(self.relax.obs.n_ues)
        on_s[self.ues] = delta
        return float(term), on_s

    def zero(self):
        """Multipliers that add nothing."""
        return (np.zeros(self.n_s), np.zeros((self.n_j, self.n_s)), np.zeros(self.n_s), np.zeros(self.n_s))
