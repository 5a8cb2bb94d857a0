"""The power half of a cooperating xApp pair: water-filling over the PRBs the PRB xApp assigned.

The RIC asks the PRB xApp first, then this one with that decision attached (``ind.proposal``), and
applies this xApp's power on the assigned PRBs (docs/xapp.md, "Two cooperating xApps"):

    oransim xapp serve pf --bind tcp://127.0.0.1:5555          # the PRB xApp
    python examples/xapp_power.py tcp://127.0.0.1:5556         # this power xApp
    policy: {name: xapp, params: {endpoints: {prb: tcp://127.0.0.1:5555, power: tcp://127.0.0.1:5556}}}

Per RU, p_k = max(0, mu - (N / g_k + q)) over its assigned PRBs, with the water level mu set so
that the powers add up to the RU's budget (N the noise per PRB, g_k the owner's gain on PRB k, q the
RU's fronthaul noise per PRB: SINR = p_k / (N / g_k + q) without interference); per-slice caps are
then enforced by scaling (``repair_allocation``).
"""

import sys

import numpy as np

from oransim.xapp import XappRefusal, XappServer
from simcore.contracts import Allocation, repair_allocation


def water_level(inv_cnr: np.ndarray, budget_w: float) -> float:
    """mu with sum(max(0, mu - inv_cnr)) = budget_w (inv_cnr: noise over gain per PRB, W)."""
    inv = np.sort(inv_cnr)
    for n in range(inv.size, 1, -1):  # drop the worst PRBs until every remaining one gets power
        mu = (budget_w + inv[:n].sum()) / n
        if mu > inv[n - 1]:
            return mu
    return inv[0] + budget_w  # only the best PRB gets power


def waterfill(ind) -> Allocation:
    if ind.role != "power":
        raise XappRefusal("this xApp decides power only (role 'power')")
    obs, ue_ru, owner = ind.obs, ind.proposal["ue_ru"], ind.proposal["prb_owner"]
    power = np.zeros(owner.shape)
    for r in range(obs.n_rus):
        k = np.flatnonzero(owner[r] >= 0)
        if k.size:
            inv_cnr = obs.link.noise_w / np.maximum(obs.gain[owner[r, k], r, k], 1e-300) + obs.link.quant_noise_w[r]
            power[r, k] = np.maximum(water_level(inv_cnr, obs.ru_max_power_w[r]) - inv_cnr, 0.0)
    return repair_allocation(ue_ru, owner, power, obs)


if __name__ == "__main__":
    XappServer(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5556", lambda seed: waterfill,
               label="xapp power").serve()
