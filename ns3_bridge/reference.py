"""ns-3 propagation loss between two nodes, in-process: the reference for ``simcore.channel``.

    >>> from ns3_bridge.reference import ns3_pathloss_db
    >>> ns3_pathloss_db("uma", [100, 500], fc_ghz=3.5, h_bs_m=25, h_ut_m=1.5, los=True)

Models: ``uma`` / ``umi`` (``ThreeGppUmaPropagationLossModel`` /
``ThreeGppUmiStreetCanyonPropagationLossModel`` with shadowing off and an always-LOS or always-NLOS
channel condition) and ``log_distance`` (``LogDistancePropagationLossModel``).
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def ns():
    """The flat ns-3 namespace (imported once per process)."""
    from ns import ns as _ns

    return _ns


def _model(kind: str, fc_ghz: float, los: bool, exponent: float, d0_m: float, l0_db: float | None):
    n = ns()
    if kind in ("uma", "umi"):
        cls = n.ThreeGppUmaPropagationLossModel if kind == "uma" else n.ThreeGppUmiStreetCanyonPropagationLossModel
        m = n.CreateObject[cls]()
        m.SetAttribute("Frequency", n.DoubleValue(fc_ghz * 1e9))
        m.SetAttribute("ShadowingEnabled", n.BooleanValue(False))
        cond = n.CreateObject[n.AlwaysLosChannelConditionModel]() if los else \
            n.CreateObject[n.NeverLosChannelConditionModel]()
        m.SetChannelConditionModel(cond)
        return m
    if kind == "log_distance":
        from simcore.channel import friis_loss_db

        m = n.CreateObject[n.LogDistancePropagationLossModel]()
        m.SetAttribute("Exponent", n.DoubleValue(exponent))
        m.SetAttribute("ReferenceDistance", n.DoubleValue(d0_m))
        m.SetAttribute("ReferenceLoss", n.DoubleValue(friis_loss_db(d0_m, fc_ghz) if l0_db is None else l0_db))
        return m
    raise ValueError(f"no ns-3 reference for path-loss model '{kind}'")


def ns3_pathloss_db(kind: str, d2d_m, fc_ghz: float = 3.5, h_bs_m: float = 25.0, h_ut_m: float = 1.5,
                    los: bool = True, exponent: float = 3.0, reference_distance_m: float = 1.0,
                    reference_loss_db: float | None = None) -> np.ndarray:
    """Path loss (dB) ns-3 computes between an RU at height ``h_bs_m`` and UEs at 2-D distances ``d2d_m``."""
    n = ns()
    model = _model(kind, fc_ghz, los, exponent, reference_distance_m, reference_loss_db)
    ru = n.CreateObject[n.ConstantPositionMobilityModel]()
    ru.SetPosition(n.Vector(0.0, 0.0, h_bs_m))
    out = []
    for d in np.atleast_1d(np.asarray(d2d_m, dtype=float)):
        ue = n.CreateObject[n.ConstantPositionMobilityModel]()
        ue.SetPosition(n.Vector(float(d), 0.0, h_ut_m))
        out.append(-model.CalcRxPower(0.0, ru, ue))
    return np.array(out)
