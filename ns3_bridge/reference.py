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


_LTE_CPP = r"""
#include "ns3/core-module.h"
#include "ns3/lte-module.h"
#include "ns3/mobility-module.h"
#include "ns3/propagation-module.h"
#include <map>
#include <vector>

namespace oransim_ref {
using namespace ns3;

struct SinrSink : public SimpleRefCount<SinrSink> {
    std::vector<double> sum;  // per RB, linear SINR summed over reports
    int n = 0;
    size_t nRb = 0;
    void Report(const SpectrumValue& v) {
        // before it has read the cell's bandwidth the UE listens on the central 6 RBs: skip those
        if (v.GetValuesN() != nRb) return;
        if (sum.empty()) sum.assign(nRb, 0.0);
        size_t i = 0;
        for (auto it = v.ConstValuesBegin(); it != v.ConstValuesEnd(); ++it, ++i) sum[i] += *it;
        n++;
    }
};

// Mean per-RB SINR (linear) of the control channel (full band, the eNB's power split evenly over
// its RBs) at UEs placed at 2-D distances d2d from one eNB: rows UE, columns RB.
std::vector<std::vector<double>> LteDlSinr(std::vector<double> d2d, double hBs, double hUt, double fcHz,
                                           double txDbm, double nfDb, int nRb, bool los, bool uma,
                                           int durationMs) {
    Config::SetDefault("ns3::LteUePhy::NoiseFigure", DoubleValue(nfDb));
    Config::SetDefault("ns3::LteEnbPhy::TxPower", DoubleValue(txDbm));
    Config::SetDefault("ns3::LteUePhy::EnableRlfDetection", BooleanValue(false));
    Ptr<LteHelper> lte = CreateObject<LteHelper>();
    lte->SetSchedulerType("ns3::RrFfMacScheduler");  // no data is sent; PF's teardown trips over that
    lte->SetPathlossModelType(uma ? ThreeGppUmaPropagationLossModel::GetTypeId()
                                  : ThreeGppUmiStreetCanyonPropagationLossModel::GetTypeId());
    lte->SetPathlossModelAttribute("ShadowingEnabled", BooleanValue(false));
    Ptr<ChannelConditionModel> cond;
    if (los) cond = CreateObject<AlwaysLosChannelConditionModel>();
    else cond = CreateObject<NeverLosChannelConditionModel>();
    lte->SetPathlossModelAttribute("ChannelConditionModel", PointerValue(cond));
    lte->SetEnbDeviceAttribute("DlBandwidth", UintegerValue(nRb));
    lte->SetEnbDeviceAttribute("UlBandwidth", UintegerValue(nRb));
    NodeContainer enbNodes, ueNodes;
    enbNodes.Create(1);
    ueNodes.Create(d2d.size());
    MobilityHelper mob;
    mob.SetMobilityModel("ns3::ConstantPositionMobilityModel");
    mob.Install(enbNodes);
    mob.Install(ueNodes);
    enbNodes.Get(0)->GetObject<MobilityModel>()->SetPosition(Vector(0, 0, hBs));
    for (size_t i = 0; i < d2d.size(); ++i)
        ueNodes.Get(i)->GetObject<MobilityModel>()->SetPosition(Vector(d2d[i], 0, hUt));
    NetDeviceContainer enbDevs = lte->InstallEnbDevice(enbNodes);
    NetDeviceContainer ueDevs = lte->InstallUeDevice(ueNodes);
    lte->Attach(ueDevs, enbDevs.Get(0));
    lte->GetDownlinkSpectrumChannel()->GetPropagationLossModel()->SetAttribute("Frequency", DoubleValue(fcHz));
    std::vector<Ptr<SinrSink>> sinks;
    for (size_t i = 0; i < d2d.size(); ++i) {
        Ptr<SinrSink> s = Create<SinrSink>();
        s->nRb = size_t(nRb);
        Ptr<LteChunkProcessor> p = Create<LteChunkProcessor>();
        p->AddCallback(MakeCallback(&SinrSink::Report, s));
        DynamicCast<LteUeNetDevice>(ueDevs.Get(i))->GetPhy()->GetDownlinkSpectrumPhy()->AddCtrlSinrChunkProcessor(p);
        sinks.push_back(s);
    }
    Simulator::Stop(MilliSeconds(durationMs));
    Simulator::Run();
    Simulator::Destroy();
    std::vector<std::vector<double>> out;
    for (auto& s : sinks) {
        std::vector<double> row(s->sum.size());
        for (size_t k = 0; k < row.size(); ++k) row[k] = s->n ? s->sum[k] / s->n : 0.0;
        out.push_back(row);
    }
    return out;
}
}  // namespace oransim_ref
"""


@functools.lru_cache(maxsize=1)
def _lte_cpp():
    import cppyy

    ns()
    cppyy.cppdef(_LTE_CPP)
    return cppyy.gbl.oransim_ref


def lte_downlink_sinr(kind: str, d2d_m, fc_ghz: float = 3.5, h_bs_m: float = 25.0, h_ut_m: float = 1.5,
                      tx_power_dbm: float = 46.0, noise_figure_db: float = 9.0, n_rb: int = 25,
                      los: bool = True, duration_ms: int = 100) -> np.ndarray:
    """(U, n_rb) mean linear SINR per RB that ns-3's LTE downlink computes at UEs ``d2d_m`` from one eNB.

    A short LTE simulation (ns-3's LteHelper, 3GPP UMa/UMi path loss with the LOS state fixed and
    shadowing off, no fading): the SINR is read off each UE's control-channel chunk processor, where
    the eNB spreads its power evenly over its RBs.
    """
    if kind not in ("uma", "umi"):
        raise ValueError(f"no LTE reference for path-loss model '{kind}'")
    fn = _lte_cpp().LteDlSinr
    import cppyy

    d = cppyy.gbl.std.vector["double"]([float(x) for x in np.atleast_1d(d2d_m)])
    rows = fn(d, h_bs_m, h_ut_m, fc_ghz * 1e9, tx_power_dbm, noise_figure_db, n_rb, los, kind == "uma", duration_ms)
    return np.array([[float(x) for x in row] for row in rows])
