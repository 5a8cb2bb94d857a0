"""Agreement of a policy's allocations with the optimum's (docs/architecture.md, section 5): the one implementation.

Decision vector of an allocation (U UEs, R RUs, K PRBs per RU):
- binary activations: association one-hot (U x R) then PRB assignment one-hot (U x R x K);
- continuous parts, normalised to [0, 1]: each UE's share of all PRBs, and its share of the total
  RU power budget.
The *normalised vector* is the concatenation of both; MAE, R^2 and cosine similarity are computed
on it, BAEP on the binary activations. Over a test set every metric is pooled: the vectors of all
states are concatenated first (so states with more UEs weigh more), R^2 taking the optimum as the
truth: 1 - sum (policy - opt)^2 / sum (opt - mean(opt))^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simcore.contracts import Allocation, Observation


@dataclass(frozen=True)
class DecisionVector:
    binary: np.ndarray  # (U*R + U*R*K,) 0/1
    continuous: np.ndarray  # (2U,) in [0, 1]

    @property
    def normalized(self) -> np.ndarray:
        return np.concatenate([self.binary, self.continuous])


def decision_vector(alloc: Allocation, obs: Observation) -> DecisionVector:
    n_ue, n_ru, n_prb = obs.n_ues, obs.n_rus, obs.n_prbs
    assoc = np.zeros((n_ue, n_ru))
    served = alloc.ue_ru >= 0
    assoc[np.flatnonzero(served), alloc.ue_ru[served]] = 1.0
    prb = np.zeros((n_ue, n_ru, n_prb))
    r, k = np.nonzero(alloc.prb_owner >= 0)
    prb[alloc.prb_owner[r, k], r, k] = 1.0
    prb_share = prb.sum(axis=(1, 2)) / (n_ru * n_prb)
    power = np.zeros(n_ue)
    np.add.at(power, alloc.prb_owner[r, k], alloc.power_w[r, k])
    power_share = power / obs.ru_max_power_w.sum()
    return DecisionVector(np.concatenate([assoc.ravel(), prb.ravel()]), np.concatenate([prb_share, power_share]))


def mae(policy: np.ndarray, optimum: np.ndarray) -> float:
    return float(np.mean(np.abs(policy - optimum)))


def r2(policy: np.ndarray, optimum: np.ndarray) -> float:
    ss_tot = float(np.sum((optimum - optimum.mean()) ** 2))
    ss_res = float(np.sum((policy - optimum) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else float("-inf")
    return 1.0 - ss_res / ss_tot


def cosine(policy: np.ndarray, optimum: np.ndarray) -> float:
    na, nb = np.linalg.norm(policy), np.linalg.norm(optimum)
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(policy @ optimum / (na * nb))


def baep(policy_binary: np.ndarray, optimum_binary: np.ndarray) -> float:
    """Binary activation error percentage: % of binary activations that differ from the optimum's."""
    return float(100.0 * np.mean(policy_binary != optimum_binary))


def agreement(policy_vectors: list[DecisionVector], optimum_vectors: list[DecisionVector]) -> dict:
    """MAE, R^2, cosine and BAEP of a policy against the optimum, pooled over a test set."""
    a = np.concatenate([v.normalized for v in policy_vectors])
    b = np.concatenate([v.normalized for v in optimum_vectors])
    ab = np.concatenate([v.binary for v in policy_vectors])
    bb = np.concatenate([v.binary for v in optimum_vectors])
    return {"mae": mae(a, b), "r2": r2(a, b), "cosine": cosine(a, b), "baep_pct": baep(ab, bb)}


def agreement_table(records: list[dict]) -> pd.DataFrame:
    """One row per policy from per-state records.

    Each record: ``policy``, ``vector`` (DecisionVector), ``opt_vector``, ``objective_bps``,
    ``opt_objective_bps``, ``qos_met`` (UEs meeting their rate need), ``ues_with_need``,
    ``decide_ms``. Columns: states, weighted-throughput ratio to the optimum (sum over states of
    the policy's objective / the optimum's), QoS satisfaction (% of UEs with a rate need that
    meet it), MAE, R^2, cosine, BAEP %, mean decision time.
    """
    rows = []
    for name in dict.fromkeys(r["policy"] for r in records):
        rs = [r for r in records if r["policy"] == name]
        opt = sum(r["opt_objective_bps"] for r in rs)
        with_need = sum(r["ues_with_need"] for r in rs)
        row = {"policy": name, "states": len(rs),
               "throughput_ratio": sum(r["objective_bps"] for r in rs) / opt if opt > 0 else float("nan"),
               "qos_pct": 100.0 * sum(r["qos_met"] for r in rs) / with_need if with_need else float("nan")}
        row.update(agreement([r["vector"] for r in rs], [r["opt_vector"] for r in rs]))
        row["decide_ms"] = float(np.mean([r["decide_ms"] for r in rs]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("policy")
