"""Branch-and-price on the joint relaxation (``policies.joint_bound``): the LP's mixing of columns, branched away.

The joint relaxation mixes the columns of a PRB fractionally; an allocation picks one. Where the LP's
optimum gives RU r's PRB k to UE u in part (the weight z_ruk of the columns in which u owns it is strictly
between 0 and 1), the allocations split in two: those in which u owns PRB k of RU r, and those in which it
does not. A **node** is such a set of decisions: for each RU and PRB the UEs it may not give the PRB to
(``ban``) and whether it must transmit there (``forced``, to the one UE not banned). Within a node:

- the pricing (``JointRelaxation._price``) takes each PRB's best column among those the node allows, and
  a PRB an RU must transmit on cannot stay empty: the Lagrangian bound of ``joint_bound``'s docstring
  with these maxima is a bound over every allocation of the node (weak duality, any multipliers), so a
  node's bound is valid without any LP solving to optimality;
- the restricted master LP (``joint_master.MasterLP``) uses only the allowed columns, and a forced PRB's
  columns sum to one; column generation runs as at the root, starting from the parent's multipliers
  (their bound on the node is valid too, and its columns give the master a start).

Every allocation of the true problem lies in the relaxation's integral points, and each branching splits a
node's integral points into its two children, so at any time the open nodes (not yet branched) cover them
all: **the largest open bound** (objective; the smallest, for the shortfall) **is a certified bound**. A
node's bound is also capped by its parent's (valid for a superset). Best-bound search expands the open node
with the loosest bound; a node whose LP mixes no owner is not branched further (its bound stands). The
search stops after ``nodes`` evaluated nodes (a count: the bound does not depend on the machine's load),
when the loosest open bound is within ``rel_tol`` of the LP value of an unbranchable node, or at ``t_end``
(CPU seconds; a safety net).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

import numpy as np

#: A column weight this close to 0 or 1 counts as integral for branching.
INTEGRAL_TOL = 1e-6


@dataclass
class Node:
    """Branching decisions: ban (R, U', K) bool, RU r may not give PRB k to UE useful[i]; forced (R, K) bool,
    RU r must transmit on PRB k (to its one UE not banned there)."""

    ban: np.ndarray
    forced: np.ndarray
    silent: np.ndarray

    def child(self, r: int, i: int, k: int, owns: bool) -> "Node":
        """The node with RU r's PRB k given to UE useful[i] (``owns``), or not; i = -1: RU r transmitting on
        PRB k (to any UE the node allows), or silent there; k = -1: UE useful[i] served by RU r only (no PRB of
        another RU), or never by RU r."""
        ban, forced, silent = self.ban.copy(), self.forced.copy(), self.silent.copy()
        if k < 0:
            if owns:
                ban[np.arange(ban.shape[0]) != r, i, :] = True
            else:
                ban[r, i, :] = True
        elif i < 0:
            (forced if owns else silent)[r, k] = True
        elif owns:
            ban[r, :, k] = True
            ban[r, i, k] = False
            forced[r, k] = True
        else:
            ban[r, i, k] = True
        return Node(ban, forced, silent)


def owner_weights(relax, x: np.ndarray) -> np.ndarray:
    """z (R, U', K): the weight of the columns in which RU r gives PRB k to UE useful[i] in column weights x."""
    obs = relax.obs
    pos = np.full(obs.n_ues, -1)
    pos[relax.useful] = np.arange(relax.useful.size)
    z = np.zeros((obs.n_rus, relax.useful.size, obs.n_prbs))
    for j in np.flatnonzero(x > INTEGRAL_TOL):
        k, _, owners = relax.cols[j]
        for r, u in enumerate(owners):
            if u >= 0 and pos[u] >= 0:
                z[r, pos[u], k] += x[j]
    return z


def branching_slot(relax, x: np.ndarray | None):
    """What to branch on: the most fractional (r, -1, k) of the LP's transmit weights (RU r on PRB k, whoever
    owns it: the interference the LP mixes), else the most fractional (r, i, k) of its owner weights; None
    where all are integral."""
    if x is None or not relax.useful.size:
        return None
    z = owner_weights(relax, np.r_[x, np.zeros(len(relax.cols) - x.size)])  # columns added since: weight 0
    on_ru = z.sum(axis=2)  # (R, U'): a UE on several RUs, which no allocation does (one RU per UE)
    split = np.sort(on_ru, axis=0)[-2] if on_ru.shape[0] > 1 else np.zeros(on_ru.shape[1])
    if split.max() > INTEGRAL_TOL:
        i = int(np.argmax(split))
        return int(np.argmax(on_ru[:, i])), i, -1
    for w in (z.sum(axis=1), z):
        frac = np.minimum(w, 1.0 - w)
        flat = int(np.argmax(frac))
        if frac.flat[flat] > INTEGRAL_TOL:
            at = np.unravel_index(flat, w.shape)
            return (at[0], -1, at[1]) if w.ndim == 2 else at
    return None


def branch_and_price(relax, v_max, nodes: int, rel_tol: float, t_end: float) -> float:
    """The relaxation's bound (kbit/s) after best-bound branch-and-price of at most ``nodes`` nodes beyond
    the root (module docstring); v_max None: a lower bound on the least shortfall, else an upper bound on
    the objective of every allocation with shortfall at most v_max."""
    lower = v_max is None
    sign = 1.0 if lower else -1.0  # the heap pops the loosest bound: the smallest sign * bound
    obs = relax.obs
    root = Node(np.zeros((obs.n_rus, relax.useful.size, obs.n_prbs), dtype=bool),
                np.zeros((obs.n_rus, obs.n_prbs), dtype=bool), np.zeros((obs.n_rus, obs.n_prbs), dtype=bool))
    relax.last_multipliers = None
    bound = relax._generate(v_max, t_end, rel_tol)
    if nodes <= 0 or not np.isfinite(bound):
        return bound
    heap = [(sign * bound, 0, root, relax.last_x, relax.last_multipliers)]
    counter = 1
    evaluated = 0
    while heap and evaluated < nodes and time.process_time() <= t_end:
        key, _, node, x, multipliers = heap[0]
        slot = branching_slot(relax, x) if multipliers is not None else None
        if slot is None:  # nothing left to branch on in the loosest node: its bound is the answer
            break
        heapq.heappop(heap)
        for owns in (True, False):
            child = node.child(*(int(v) for v in slot), owns)
            relax.last_x, relax.last_multipliers = None, None
            b = relax._generate(v_max, t_end, rel_tol, child, multipliers)
            b = max(b, sign * key) if lower else min(b, -key)  # never looser than the parent's
            evaluated += 1
            heapq.heappush(heap, (sign * b, counter, child, relax.last_x, relax.last_multipliers))
            counter += 1
    return sign * heap[0][0] if heap else bound
