// oransim ns-3 PHY server: the LTE downlink of an oransim scenario, driven one TTI at a time
// through a shared-memory segment created by ns3_bridge/shm.py (which documents the protocol).
//
// Model, per scenario:
//   - every RU is a set of co-located LTE eNBs, one per block of 6 PRBs (an LTE 1.4 MHz carrier,
//     whose resource block group is one PRB, so PRB-level ownership maps onto DCI type 0);
//     block b of every RU uses the same carrier, so RUs interfere PRB by PRB;
//   - every UE is a set of co-located LTE UEs, one per block, each attached to its serving RU's
//     eNB of that block (the union of their grants is the UE's grant);
//   - path loss: ns-3's 3GPP UMa / UMi street canyon (shadowing off, the drop's LOS state per
//     link through OransimCondition) or log-distance, at the scenario's carrier frequency;
//   - shadowing and small-scale fading: the engine's realisation, applied per PRB per TTI by
//     OransimFading (a SpectrumPropagationLossModel reading the request's gain table);
//   - MAC: OransimScheduler wraps ns-3's round-robin scheduler (which keeps doing random access,
//     RRC and uplink) and removes its downlink data grants; it keeps the UEs' CQI reports. The
//     engine's allocation is handed to each eNB's PHY directly (Inject): one DCI and one transport
//     block per UE per block, MCS from ns-3's AMC on the UE's latest CQI, power per PRB via P_A;
//   - timing (one ns-3 subframe per engine TTI): a request is injected between two subframes into
//     the front of the eNB PHY's queues (the slot the next subframe sends; the MAC itself fills
//     them two subframes ahead), so its DCIs and data go out in the very next subframe and are
//     received (decoded or not) by its end. A CQI measured in subframe n reaches the scheduler's
//     reports at n + 5 (the UE's 4-subframe uplink control queue, then the next subframe indication),
//     so a grant of TTI t uses a CQI measured on TTI t - 6 or t - 7's channel (UEs report every 2 subframes);
//   - results: per PRB the SINR ns-3 computed for the owner's reception (LteChunkProcessor) and
//     the bits of its transport block when ns-3's error model decoded it (DlPhyReception).
//
// Usage: oransim_phy_server CONFIG_FILE   (key value lines written by ns3_bridge/shm.py)
//        oransim_phy_server CONFIG_FILE --lte-only MS
//            the same network run by ns-3 alone for MS subframes after set-up (its round-robin
//            scheduler grants every PRB, full buffer, no engine, no shared memory); prints one JSON
//            line with the wall times: the reference of benchmarks/bench_ns3.py
//        oransim_phy_server CONFIG_FILE --check-config
//            prints every limit of ConfigProblems() the config breaks, one "key: message" per
//            line, and exits 3 if there is one (0 otherwise); the tests hold shm.scenario_problems
//            to the same verdicts
//
// Limits (ConfigProblems; shm.scenario_problems checks the same on the scenario): PRBs a positive
// multiple of 6 and at most MAX_BLOCKS blocks; at most MAX_UES UEs in total; a path-loss model
// ns-3 has; the 3GPP models' carrier range; RNG seed and run in range; positive timeouts.

#include "ns3/core-module.h"
#include "ns3/lte-module.h"
#include "ns3/mobility-module.h"
#include "ns3/network-module.h"
#include "ns3/propagation-module.h"
#include "ns3/spectrum-module.h"

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace ns3;
namespace bip = boost::interprocess;

static const int BLOCK_PRBS = 6;  // LTE 1.4 MHz carrier: 6 RBs, RBG size 1
// Block b uses DL EARFCN 100 + 20 b and UL EARFCN 18100 + 20 b (TS 36.101 Table 5.7.3-1): blocks
// 0-24 fall in band 1, 25-54 in band 2, 55-92 in band 3, all 2 MHz apart; block 93 would land in
// band 4, whose carriers overlap band 1's (DL) and band 3's (UL), so blocks would interfere
static const int MAX_BLOCKS = 93;
// LteEnbRrc::SrsPeriodicity is one value for every eNB, at most 320; it is chosen here from the
// total UE count with 4 indices to spare, so the total over all RUs is bounded
static const int MAX_UES = 316;
static const uint8_t DRB_LCID = 3; // first data radio bearer
// The eNB PHY's queues of control messages and data, one slot per subframe ahead (LtePhy keeps them
// protected; the using-declarations make pointers to those members, applied to an LteEnbPhy)
struct PhyQueues : public LteEnbPhy
{
    using LtePhy::m_controlMessagesQueue;
    using LtePhy::m_packetBurstQueue;
};

// Queue a DCI or a transport block for the next subframe of this eNB: the front slot, which the PHY
// sends at the start of that subframe (what the MAC queues goes to the back, two subframes ahead)
static void
SendNextCtrl(Ptr<LteEnbPhy> phy, Ptr<LteControlMessage> msg)
{
    (PeekPointer(phy)->*(&PhyQueues::m_controlMessagesQueue)).at(0).push_back(msg);
}

static void
SendNextData(Ptr<LteEnbPhy> phy, Ptr<Packet> pdu)
{
    (PeekPointer(phy)->*(&PhyQueues::m_packetBurstQueue)).at(0)->AddPacket(pdu);
}

// ------------------------------------------------------------------------- shared memory
enum : uint64_t { ST_STARTING = 0, ST_READY = 1, ST_ERROR = 2, ST_EXIT = 3 };

struct ShmHeader // 256 bytes at offset 0; the layout shm.py writes (see HEADER there)
{
    uint64_t magic;
    uint64_t version;
    uint64_t req_seq;  // Python -> ns-3: incremented after a request is written
    uint64_t rsp_seq;  // ns-3 -> Python: set to req_seq once the response is written
    uint64_t state;    // ST_*
    uint64_t tti;      // engine TTI of the request
    uint64_t command;  // 1 = step, 2 = exit
    uint64_t server_pid;
    uint64_t ns3_subframes; // ns-3 subframes simulated so far
    uint64_t tbs_sent;      // transport blocks granted so far
    uint64_t tbs_decoded;   // ... that ns-3's error model decoded
    uint64_t dci_lost;      // ... whose DCI the UE did not decode (no reception at all)
    char error[160];
};
static_assert(sizeof(ShmHeader) == 256, "header layout");

struct ServerConfig
{
    std::map<std::string, std::string> kv;
    std::vector<std::vector<double>> rus; // x y h power_dbm
    std::vector<std::vector<double>> ues; // x y serving_ru los_0 .. los_{R-1}
    double Get(const std::string& k) const
    {
        auto it = kv.find(k);
        if (it == kv.end())
        {
            std::cerr << "config: missing key " << k << std::endl;
            std::exit(2);
        }
        return std::stod(it->second);
    }
    std::string Str(const std::string& k) const
    {
        auto it = kv.find(k);
        if (it == kv.end())
        {
            std::cerr << "config: missing key " << k << std::endl;
            std::exit(2);
        }
        return it->second;
    }
};

static ServerConfig
ReadConfig(const std::string& path)
{
    ServerConfig c;
    std::ifstream f(path);
    if (!f)
    {
        std::cerr << "cannot read config " << path << std::endl;
        std::exit(2);
    }
    std::string line;
    while (std::getline(f, line))
    {
        std::istringstream is(line);
        std::string key;
        if (!(is >> key) || key[0] == '#')
        {
            continue;
        }
        if (key == "ru" || key == "ue")
        {
            std::vector<double> v;
            double x;
            while (is >> x)
            {
                v.push_back(x);
            }
            (key == "ru" ? c.rus : c.ues).push_back(v);
        }
        else
        {
            std::string value;
            is >> value;
            c.kv[key] = value;
        }
    }
    return c;
}

// ------------------------------------------------------------------------------ the world
struct SubUe
{
    int ue;    // engine UE index
    int block; // PRB block
    int ru;    // serving RU
    Ptr<LteUeNetDevice> dev;
    std::vector<double> sinr; // last data SINR per RB of its block (linear)
    int64_t sinrAtNs = -1;
};

struct Grant
{
    int sub;               // SubUe index
    uint32_t rbMask;       // RBs of the block
    std::vector<int> rbs;  // RB indices within the block
    double paDb;           // P_A applied to its RBs
};

struct Expected
{
    int ru, block, sub;
    std::vector<int> rbs;
    int mcs;
    int tbBytes;
    bool done = false;
};

struct World
{
    int nUe, nRu, nPrb, nBlocks;
    uint8_t* base = nullptr;
    size_t offOwner, offPower, offGain, offSinr, offBits, offMcs, offTbOk;
    std::map<const MobilityModel*, int> ueOfMobility;          // sub-UE node -> engine UE
    std::map<const MobilityModel*, std::pair<int, int>> ruOfMobility; // eNB node -> (RU, block)
    std::vector<std::vector<bool>> los;                        // [ue][ru]
    std::vector<SubUe> subs;                                   // index = ue * nBlocks + block
    std::vector<Expected> expected;
    std::map<int, int> expectedOfSub;
    int64_t dciAtNs = -1; // when this TTI's grants were injected
    bool passThrough = false; // --lte-only: the round-robin scheduler's own grants go out

    const int32_t* Owner() const { return reinterpret_cast<const int32_t*>(base + offOwner); }
    const double* Power() const { return reinterpret_cast<const double*>(base + offPower); }
    const float* Gain() const { return reinterpret_cast<const float*>(base + offGain); }
    double* Sinr() { return reinterpret_cast<double*>(base + offSinr); }
    double* Bits() { return reinterpret_cast<double*>(base + offBits); }
    int32_t* Mcs() { return reinterpret_cast<int32_t*>(base + offMcs); }
    int32_t* TbOk() { return reinterpret_cast<int32_t*>(base + offTbOk); }
};

static World g;
static ShmHeader* H = nullptr;
static const bool DEBUG = std::getenv("ORANSIM_NS3_DEBUG") != nullptr;

// ------------------------------------------------------------ LOS state of the drop, per link
class OransimCondition : public ChannelConditionModel
{
  public:
    static TypeId GetTypeId()
    {
        static TypeId tid = TypeId("ns3::OransimCondition")
                                .SetParent<ChannelConditionModel>()
                                .AddConstructor<OransimCondition>();
        return tid;
    }

    Ptr<ChannelCondition> GetChannelCondition(Ptr<const MobilityModel> a,
                                              Ptr<const MobilityModel> b) const override
    {
        int ue = -1;
        int ru = -1;
        for (auto m : {a, b})
        {
            auto u = g.ueOfMobility.find(PeekPointer(m));
            if (u != g.ueOfMobility.end())
            {
                ue = u->second;
            }
            auto r = g.ruOfMobility.find(PeekPointer(m));
            if (r != g.ruOfMobility.end())
            {
                ru = r->second.first;
            }
        }
        NS_ABORT_MSG_IF(ue < 0 || ru < 0, "OransimCondition: link is not UE-RU");
        return CreateObject<ChannelCondition>(g.los[ue][ru] ? ChannelCondition::LOS
                                                            : ChannelCondition::NLOS);
    }

    int64_t AssignStreams(int64_t) override
    {
        return 0;
    }
};

NS_OBJECT_ENSURE_REGISTERED(OransimCondition);

// ------------------------------------- shadowing x small-scale fading of the engine, per PRB
class OransimFading : public SpectrumPropagationLossModel
{
  public:
    static TypeId GetTypeId()
    {
        static TypeId tid = TypeId("ns3::OransimFading")
                                .SetParent<SpectrumPropagationLossModel>()
                                .AddConstructor<OransimFading>();
        return tid;
    }

  private:
    Ptr<SpectrumValue> DoCalcRxPowerSpectralDensity(Ptr<const SpectrumSignalParameters> params,
                                                    Ptr<const MobilityModel> a,
                                                    Ptr<const MobilityModel> b) const override
    {
        Ptr<SpectrumValue> rx = params->psd->Copy();
        auto tx = g.ruOfMobility.find(PeekPointer(a));
        auto ue = g.ueOfMobility.find(PeekPointer(b));
        if (tx == g.ruOfMobility.end() || ue == g.ueOfMobility.end())
        {
            return rx; // not a downlink RU -> UE link
        }
        const int ru = tx->second.first;
        const int block = tx->second.second;
        const float* gain = g.Gain() + (size_t(ue->second) * g.nRu + ru) * g.nPrb + block * BLOCK_PRBS;
        size_t i = 0;
        for (auto it = rx->ValuesBegin(); it != rx->ValuesEnd() && i < BLOCK_PRBS; ++it, ++i)
        {
            *it *= gain[i];
        }
        return rx;
    }

    int64_t DoAssignStreams(int64_t) override
    {
        return 0;
    }
};

NS_OBJECT_ENSURE_REGISTERED(OransimFading);

// -------------------------------------------------------------------------- the scheduler
// Wraps RrFfMacScheduler: random access, RRC and uplink go through it untouched; its downlink data
// grants are replaced by the engine's allocation (or by nothing between requests).
class OransimScheduler;

class SchedProviderShim : public FfMacSchedSapProvider
{
  public:
    OransimScheduler* owner = nullptr;
    FfMacSchedSapProvider* inner = nullptr;
    void SchedDlRlcBufferReq(const SchedDlRlcBufferReqParameters& p) override { inner->SchedDlRlcBufferReq(p); }
    void SchedDlPagingBufferReq(const SchedDlPagingBufferReqParameters& p) override { inner->SchedDlPagingBufferReq(p); }
    void SchedDlMacBufferReq(const SchedDlMacBufferReqParameters& p) override { inner->SchedDlMacBufferReq(p); }
    void SchedDlTriggerReq(const SchedDlTriggerReqParameters& p) override;
    void SchedDlRachInfoReq(const SchedDlRachInfoReqParameters& p) override { inner->SchedDlRachInfoReq(p); }
    void SchedDlCqiInfoReq(const SchedDlCqiInfoReqParameters& p) override;
    void SchedUlTriggerReq(const SchedUlTriggerReqParameters& p) override { inner->SchedUlTriggerReq(p); }
    void SchedUlNoiseInterferenceReq(const SchedUlNoiseInterferenceReqParameters& p) override { inner->SchedUlNoiseInterferenceReq(p); }
    void SchedUlSrInfoReq(const SchedUlSrInfoReqParameters& p) override { inner->SchedUlSrInfoReq(p); }
    void SchedUlMacCtrlInfoReq(const SchedUlMacCtrlInfoReqParameters& p) override { inner->SchedUlMacCtrlInfoReq(p); }
    void SchedUlCqiInfoReq(const SchedUlCqiInfoReqParameters& p) override { inner->SchedUlCqiInfoReq(p); }
};

class SchedUserShim : public FfMacSchedSapUser
{
  public:
    OransimScheduler* owner = nullptr;
    FfMacSchedSapUser* mac = nullptr;
    void SchedDlConfigInd(const SchedDlConfigIndParameters& p) override;
    void SchedUlConfigInd(const SchedUlConfigIndParameters& p) override { mac->SchedUlConfigInd(p); }
};

class OransimScheduler : public FfMacScheduler
{
  public:
    static TypeId GetTypeId()
    {
        static TypeId tid = TypeId("ns3::OransimScheduler")
                                .SetParent<FfMacScheduler>()
                                .AddConstructor<OransimScheduler>();
        return tid;
    }

    OransimScheduler()
    {
        m_inner = CreateObject<RrFfMacScheduler>();
        m_amc = CreateObject<LteAmc>();
        m_provider.owner = this;
        m_provider.inner = m_inner->GetFfMacSchedSapProvider();
        m_user.owner = this;
    }

    void DoDispose() override
    {
        m_inner->Dispose();
        m_inner = nullptr;
        FfMacScheduler::DoDispose();
    }

    void SetFfMacCschedSapUser(FfMacCschedSapUser* s) override { m_inner->SetFfMacCschedSapUser(s); }
    void SetFfMacSchedSapUser(FfMacSchedSapUser* s) override
    {
        m_user.mac = s;
        m_inner->SetFfMacSchedSapUser(&m_user);
    }
    FfMacCschedSapProvider* GetFfMacCschedSapProvider() override { return m_inner->GetFfMacCschedSapProvider(); }
    FfMacSchedSapProvider* GetFfMacSchedSapProvider() override { return &m_provider; }
    void SetLteFfrSapProvider(LteFfrSapProvider* s) override { m_inner->SetLteFfrSapProvider(s); }
    LteFfrSapUser* GetLteFfrSapUser() override { return m_inner->GetLteFfrSapUser(); }

    int enb = -1; // index ru * nBlocks + block, set after installation

    void RecordCqi(const FfMacSchedSapProvider::SchedDlCqiInfoReqParameters& p)
    {
        for (const auto& c : p.m_cqiList)
        {
            if (DEBUG)
            {
                std::cerr << Simulator::Now().GetMicroSeconds() << " us: CQI enb " << enb << " rnti " << c.m_rnti
                          << " type " << int(c.m_cqiType) << " wb " << (c.m_wbCqi.empty() ? -1 : int(c.m_wbCqi[0]))
                          << " sb " << c.m_sbMeasResult.m_higherLayerSelected.size() << std::endl;
            }
            if (c.m_cqiType == CqiListElement_s::P10 && !c.m_wbCqi.empty())
            {
                m_wbCqi[c.m_rnti] = c.m_wbCqi.at(0);
            }
            else if (c.m_cqiType == CqiListElement_s::A30)
            {
                std::vector<int> sb;
                for (const auto& h : c.m_sbMeasResult.m_higherLayerSelected)
                {
                    sb.push_back(h.m_sbCqi.empty() ? 0 : h.m_sbCqi.at(0));
                }
                m_sbCqi[c.m_rnti] = sb;
            }
        }
    }

    // the CQI that governs a grant: the worst subband CQI over its RBs (as ns-3's PF scheduler
    // does), else the wideband CQI, else 1 before any report
    int GrantCqi(uint16_t rnti, const std::vector<int>& rbs) const
    {
        auto sb = m_sbCqi.find(rnti);
        if (sb != m_sbCqi.end() && !sb->second.empty())
        {
            int worst = 15;
            for (int rb : rbs)
            {
                worst = std::min(worst, rb < int(sb->second.size()) ? sb->second[rb] : 0);
            }
            return worst;
        }
        auto wb = m_wbCqi.find(rnti);
        return wb != m_wbCqi.end() ? wb->second : 1;
    }

    // the round-robin scheduler's downlink data grants never go out: the engine's are injected
    void Rewrite(FfMacSchedSapUser::SchedDlConfigIndParameters& p)
    {
        if (!g.passThrough)
        {
            p.m_buildDataList.clear();
        }
    }

    // Hand this TTI's grants of this eNB to its PHY: for the next subframe, one DL DCI (format 1,
    // type 0 bitmap, new data) and one transport block per UE, with the MCS the UE's CQI supports.
    void Inject(Ptr<LteEnbPhy> phy, const std::vector<Grant>& grants)
    {
        const int ru = enb / g.nBlocks;
        const int block = enb % g.nBlocks;
        for (const Grant& gr : grants)
        {
            SubUe& s = g.subs[gr.sub];
            const uint16_t rnti = s.dev->GetRrc()->GetRnti();
            const int cqi = GrantCqi(rnti, gr.rbs);
            const int mcs = m_amc->GetMcsFromCqi(std::max(cqi, 1));
            const int tbBytes = m_amc->GetDlTbSizeFromMcs(mcs, int(gr.rbs.size())) / 8;
            DlDciListElement_s dci;
            dci.m_rnti = rnti;
            dci.m_rbBitmap = gr.rbMask;
            dci.m_rbShift = 0;
            dci.m_resAlloc = 0;
            dci.m_tbsSize.push_back(uint16_t(tbBytes));
            dci.m_mcs.push_back(uint8_t(mcs));
            dci.m_ndi.push_back(1);
            dci.m_rv.push_back(0);
            dci.m_format = DlDciListElement_s::ONE;
            dci.m_tpc = 1; // 0 dB
            dci.m_harqProcess = m_harq[rnti]++ % HARQ_PROC_NUM;
            Ptr<DlDciLteControlMessage> msg = Create<DlDciLteControlMessage>();
            msg->SetDci(dci);
            SendNextCtrl(phy, msg);
            // the block's payload, tagged as the eNB's RLC (saturation mode) and MAC would tag it
            Ptr<Packet> pdu = Create<Packet>(uint32_t(tbBytes));
            pdu->AddByteTag(RlcTag(Simulator::Now()));
            pdu->AddPacketTag(LteRadioBearerTag(rnti, DRB_LCID, 0));
            SendNextData(phy, pdu);
            if (DEBUG)
            {
                std::cerr << Simulator::Now().GetMicroSeconds() << " us: DCI enb " << enb << " rnti " << rnti
                          << " sub " << gr.sub << " rbs " << gr.rbs.size() << " cqi " << cqi << " mcs " << mcs
                          << " tb " << tbBytes << " B" << std::endl;
            }
            Expected e;
            e.ru = ru;
            e.block = block;
            e.sub = gr.sub;
            e.rbs = gr.rbs;
            e.mcs = mcs;
            e.tbBytes = tbBytes;
            g.expectedOfSub[gr.sub] = int(g.expected.size());
            g.expected.push_back(e);
        }
    }

  private:
    Ptr<RrFfMacScheduler> m_inner;
    Ptr<LteAmc> m_amc;
    SchedProviderShim m_provider;
    SchedUserShim m_user;
    std::map<uint16_t, int> m_wbCqi;
    std::map<uint16_t, std::vector<int>> m_sbCqi;
    std::map<uint16_t, uint32_t> m_harq;
};

NS_OBJECT_ENSURE_REGISTERED(OransimScheduler);

void
SchedProviderShim::SchedDlTriggerReq(const SchedDlTriggerReqParameters& p)
{
    // HARQ feedback is for grants the inner scheduler never made: it keeps none of it
    SchedDlTriggerReqParameters q = p;
    if (!g.passThrough)
    {
        q.m_dlInfoList.clear();
    }
    inner->SchedDlTriggerReq(q);
}

void
SchedProviderShim::SchedDlCqiInfoReq(const SchedDlCqiInfoReqParameters& p)
{
    owner->RecordCqi(p);
    inner->SchedDlCqiInfoReq(p);
}

void
SchedUserShim::SchedDlConfigInd(const SchedDlConfigIndParameters& p)
{
    SchedDlConfigIndParameters q = p;
    owner->Rewrite(q);
    mac->SchedDlConfigInd(q);
}

// --------------------------------------------------------------------------------- traces
struct SubSink : public SimpleRefCount<SubSink>
{
    int sub;

    void OnSinr(const SpectrumValue& sinr)
    {
        SubUe& s = g.subs[sub];
        s.sinr.assign(sinr.ConstValuesBegin(), sinr.ConstValuesEnd());
        s.sinrAtNs = Simulator::Now().GetNanoSeconds();
    }

    void OnRx(PhyReceptionStatParameters p)
    {
        if (DEBUG)
        {
            std::cerr << Simulator::Now().GetMicroSeconds() << " us: TB sub " << sub << " rnti " << p.m_rnti
                      << " cell " << p.m_cellId << " size " << p.m_size << " ok " << int(p.m_correctness) << " sinr dB";
            for (double x : g.subs[sub].sinr)
            {
                std::cerr << " " << 10 * std::log10(x);
            }
            std::cerr << " (at " << g.subs[sub].sinrAtNs / 1000 << " us)" << std::endl;
        }
        auto it = g.expectedOfSub.find(sub);
        if (it == g.expectedOfSub.end())
        {
            return;
        }
        Expected& e = g.expected[it->second];
        if (e.done)
        {
            return;
        }
        e.done = true;
        if (p.m_correctness)
        {
            H->tbs_decoded++;
        }
        const SubUe& s = g.subs[sub];
        const double bitsPerRb = p.m_correctness ? 8.0 * p.m_size / e.rbs.size() : 0.0;
        for (int rb : e.rbs)
        {
            const size_t k = size_t(e.ru) * g.nPrb + e.block * BLOCK_PRBS + rb;
            g.Sinr()[k] = rb < int(s.sinr.size()) ? s.sinr[rb] : NAN;
            g.Bits()[k] = bitsPerRb;
            g.Mcs()[k] = p.m_mcs;
            g.TbOk()[k] = p.m_correctness ? 1 : 0;
        }
    }
};

// ------------------------------------------------------------------------------- the loop

static void
Fail(const std::string& msg)
{
    std::cerr << "oransim_phy_server: " << msg << std::endl;
    if (H)
    {
        std::strncpy(H->error, msg.c_str(), sizeof(H->error) - 1);
        __atomic_store_n(&H->state, ST_ERROR, __ATOMIC_RELEASE);
    }
    std::exit(3);
}

// the config's integer `key` if it is a whole number in [lo, hi], else -1 (with a problem noted)
static int64_t
IntIn(const ServerConfig& c, const std::string& key, int64_t lo, int64_t hi, std::vector<std::string>& out)
{
    const std::string v = c.Str(key);
    size_t used = 0;
    int64_t x = -1;
    try
    {
        x = std::stoll(v, &used);
    }
    catch (const std::exception&)
    {
        used = 0;
    }
    if (used != v.size() || x < lo || x > hi)
    {
        out.push_back(key + ": must be a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                      "], got " + v);
        return -1;
    }
    return x;
}

// Every limit of this server, as "key: message" lines (empty: the config can run). Checked before
// anything is built; the network set-up below relies on them.
static std::vector<std::string>
ConfigProblems(const ServerConfig& c)
{
    std::vector<std::string> out;
    const int64_t nRu = IntIn(c, "n_ru", 1, 1 << 20, out);
    const int64_t nUe = IntIn(c, "n_ue", 1, 1 << 30, out);
    const int64_t nPrb = IntIn(c, "n_prb", 1, 1 << 20, out);
    IntIn(c, "numerology", 0, 16, out);
    IntIn(c, "ns3_seed", 1, 2147483647, out); // RngSeedManager::SetSeed takes a uint32_t; MRG32k3a needs < 2^32 - 209
    IntIn(c, "ns3_run", 1, INT64_MAX, out);
    IntIn(c, "warmup_max_ms", 10, 1 << 30, out); // the warm-up runs in steps of 10 ms
    if (!(c.Get("timeout_s") > 0.0))
    {
        out.push_back("timeout_s: must be positive");
    }
    if (nPrb > 0 && (nPrb % BLOCK_PRBS != 0 || nPrb / BLOCK_PRBS > MAX_BLOCKS))
    {
        out.push_back("n_prb: LTE carriers of 6 RBs, so a multiple of 6 up to " + std::to_string(6 * MAX_BLOCKS) +
                      " (" + std::to_string(MAX_BLOCKS) + " non-overlapping carriers), got " + std::to_string(nPrb));
    }
    if (nUe > MAX_UES)
    {
        out.push_back("n_ue: at most " + std::to_string(MAX_UES) + " UEs in total over all RUs (one LTE SRS " +
                      "periodicity, at most 320, for every eNB), got " + std::to_string(nUe));
    }
    const std::string pl = c.Str("pathloss");
    const double fc = c.Get("carrier_hz");
    if (pl != "uma" && pl != "umi" && pl != "log_distance")
    {
        out.push_back("pathloss: '" + pl + "' has no ns-3 counterpart here (uma, umi, log_distance)");
    }
    else if (pl != "log_distance" && !(fc >= 0.5e9 && fc <= 100e9))
    {
        // ThreeGppPropagationLossModel::SetFrequency asserts this range (the wheel keeps asserts)
        out.push_back("carrier_hz: ns-3's 3GPP path-loss models take 0.5-100 GHz, got " + std::to_string(fc));
    }
    if (nRu > 0 && int64_t(c.rus.size()) != nRu)
    {
        out.push_back("ru: " + std::to_string(c.rus.size()) + " ru lines for n_ru " + std::to_string(nRu));
    }
    for (const auto& r : c.rus)
    {
        if (r.size() != 4)
        {
            out.push_back("ru: every ru line holds x y height power_dbm");
            break;
        }
    }
    if (nUe > 0 && int64_t(c.ues.size()) != nUe)
    {
        out.push_back("ue: " + std::to_string(c.ues.size()) + " ue lines for n_ue " + std::to_string(nUe));
    }
    for (const auto& u : c.ues)
    {
        if (nRu > 0 && (int64_t(u.size()) != 3 + nRu || u[2] < 0 || u[2] >= double(nRu) || u[2] != std::floor(u[2])))
        {
            out.push_back("ue: every ue line holds x y serving_ru (an RU index) and one LOS flag per RU");
            break;
        }
    }
    return out;
}

int
main(int argc, char** argv)
{
    const bool lteOnly = argc == 4 && std::string(argv[2]) == "--lte-only";
    const bool checkOnly = argc == 3 && std::string(argv[2]) == "--check-config";
    if (argc != 2 && !lteOnly && !checkOnly)
    {
        std::cerr << "usage: oransim_phy_server CONFIG_FILE [--lte-only MS | --check-config]" << std::endl;
        return 2;
    }
    const auto wall0 = std::chrono::steady_clock::now();
    const ServerConfig cfg = ReadConfig(argv[1]);
    const std::vector<std::string> problems = ConfigProblems(cfg);
    if (checkOnly)
    {
        for (const auto& p : problems)
        {
            std::cout << p << "\n";
        }
        return problems.empty() ? 0 : 3;
    }
    const pid_t parent = getppid();
    g.nUe = int(cfg.Get("n_ue"));
    g.nRu = int(cfg.Get("n_ru"));
    g.nPrb = int(cfg.Get("n_prb"));
    g.nBlocks = g.nPrb / BLOCK_PRBS;
    const int numerology = int(cfg.Get("numerology"));
    const double timeoutS = cfg.Get("timeout_s");

    bip::shared_memory_object shm;
    bip::mapped_region region;
    std::vector<uint64_t> local; // --lte-only: a private stand-in for the segment (gains stay 1)
    if (lteOnly)
    {
        local.assign(size_t(cfg.Get("shm_bytes")) / 8 + 1, 0);
        g.base = reinterpret_cast<uint8_t*>(local.data());
        reinterpret_cast<ShmHeader*>(g.base)->magic = uint64_t(cfg.Get("magic"));
        float* gain = reinterpret_cast<float*>(g.base + size_t(cfg.Get("off_gain")));
        std::fill(gain, gain + size_t(cfg.Get("n_ue")) * size_t(cfg.Get("n_ru")) * size_t(cfg.Get("n_prb")), 1.0f);
        g.passThrough = true;
    }
    else
    {
        shm = bip::shared_memory_object(bip::open_only, cfg.Str("shm").c_str(), bip::read_write);
        region = bip::mapped_region(shm, bip::read_write);
        if (region.get_size() < size_t(cfg.Get("shm_bytes")))
        {
            std::cerr << "shared memory segment smaller than announced" << std::endl;
            return 2;
        }
        g.base = static_cast<uint8_t*>(region.get_address());
    }
    H = reinterpret_cast<ShmHeader*>(g.base);
    if (H->magic != uint64_t(cfg.Get("magic")))
    {
        std::cerr << "shared memory segment has the wrong magic number" << std::endl;
        return 2;
    }
    H->server_pid = uint64_t(getpid());
    g.offOwner = size_t(cfg.Get("off_owner"));
    g.offPower = size_t(cfg.Get("off_power"));
    g.offGain = size_t(cfg.Get("off_gain"));
    g.offSinr = size_t(cfg.Get("off_sinr"));
    g.offBits = size_t(cfg.Get("off_bits"));
    g.offMcs = size_t(cfg.Get("off_mcs"));
    g.offTbOk = size_t(cfg.Get("off_tbok"));

    if (!problems.empty())
    {
        std::string all;
        for (const auto& p : problems)
        {
            all += (all.empty() ? "" : "; ") + p;
        }
        Fail("config: " + all);
    }

    // derived from the scenario seed by shm.ns3_seed_run (whole numbers, checked above)
    RngSeedManager::SetSeed(uint32_t(std::stoll(cfg.Str("ns3_seed"))));
    RngSeedManager::SetRun(uint64_t(std::stoll(cfg.Str("ns3_run"))));
    Config::SetDefault("ns3::LteEnbRrc::EpsBearerToRlcMapping", EnumValue(LteEnbRrc::RLC_SM_ALWAYS));
    Config::SetDefault("ns3::LteHelper::UseIdealRrc", BooleanValue(true));
    Config::SetDefault("ns3::LteUePhy::NoiseFigure", DoubleValue(cfg.Get("noise_figure_db")));
    Config::SetDefault("ns3::LteUePhy::EnableUplinkPowerControl", BooleanValue(false));
    // the engine decides who is served: no radio-link-failure detach in deep fades
    Config::SetDefault("ns3::LteUePhy::EnableRlfDetection", BooleanValue(false));
    // CQI from the reference signals (full band, every subframe), not from PDSCH: between the
    // engine's TTIs the data channel is idle and PDSCH-based CQI would read 0
    Config::SetDefault("ns3::LteHelper::UsePdschForCqiGeneration", BooleanValue(false));
    uint32_t srs = 2;
    for (uint32_t p : {2u, 5u, 10u, 20u, 40u, 80u, 160u, 320u})
    {
        srs = p;
        if (p >= uint32_t(g.nUe + 4))
        {
            break;
        }
    }
    Config::SetDefault("ns3::LteEnbRrc::SrsPeriodicity", UintegerValue(srs));

    Ptr<LteHelper> lte = CreateObject<LteHelper>();
    lte->SetSchedulerType("ns3::OransimScheduler");
    const std::string pl = cfg.Str("pathloss");
    Ptr<OransimCondition> cond = CreateObject<OransimCondition>();
    if (pl == "uma" || pl == "umi")
    {
        lte->SetPathlossModelType(pl == "uma" ? ThreeGppUmaPropagationLossModel::GetTypeId()
                                              : ThreeGppUmiStreetCanyonPropagationLossModel::GetTypeId());
        lte->SetPathlossModelAttribute("ShadowingEnabled", BooleanValue(false));
        lte->SetPathlossModelAttribute("ChannelConditionModel", PointerValue(cond));
    }
    else if (pl == "log_distance")
    {
        lte->SetPathlossModelType(LogDistancePropagationLossModel::GetTypeId());
        lte->SetPathlossModelAttribute("Exponent", DoubleValue(cfg.Get("ld_exponent")));
        lte->SetPathlossModelAttribute("ReferenceDistance", DoubleValue(cfg.Get("ld_d0_m")));
        lte->SetPathlossModelAttribute("ReferenceLoss", DoubleValue(cfg.Get("ld_l0_db")));
    }

    // --- nodes: one eNB per (RU, block), one UE per (UE, block)
    const double ueHeight = cfg.Get("ue_height_m");
    // A numerology-mu PRB is 2^mu times wider than an LTE RB and a TTI 2^mu times shorter: the same
    // resource elements. Scaling the power by 2^-mu keeps the power spectral density, so SINR and
    // bits per PRB per TTI are those of the engine's PRB.
    const double muScaleDb = -10.0 * std::log10(std::pow(2.0, numerology));
    NodeContainer enbNodes;
    enbNodes.Create(g.nRu * g.nBlocks);
    NodeContainer ueNodes;
    ueNodes.Create(g.nUe * g.nBlocks);
    MobilityHelper mob;
    mob.SetMobilityModel("ns3::ConstantPositionMobilityModel");
    mob.Install(enbNodes);
    mob.Install(ueNodes);
    for (int r = 0; r < g.nRu; ++r)
    {
        for (int b = 0; b < g.nBlocks; ++b)
        {
            Ptr<MobilityModel> m = enbNodes.Get(r * g.nBlocks + b)->GetObject<MobilityModel>();
            m->SetPosition(Vector(cfg.rus[r][0], cfg.rus[r][1], cfg.rus[r][2]));
            g.ruOfMobility[PeekPointer(m)] = {r, b};
        }
    }
    g.los.assign(g.nUe, std::vector<bool>(g.nRu, false));
    g.subs.resize(g.nUe * g.nBlocks);
    for (int u = 0; u < g.nUe; ++u)
    {
        for (int r = 0; r < g.nRu; ++r)
        {
            g.los[u][r] = cfg.ues[u][3 + r] > 0.5;
        }
        for (int b = 0; b < g.nBlocks; ++b)
        {
            Ptr<MobilityModel> m = ueNodes.Get(u * g.nBlocks + b)->GetObject<MobilityModel>();
            m->SetPosition(Vector(cfg.ues[u][0], cfg.ues[u][1], ueHeight));
            g.ueOfMobility[PeekPointer(m)] = u;
            SubUe& s = g.subs[u * g.nBlocks + b];
            s.ue = u;
            s.block = b;
            s.ru = int(cfg.ues[u][2]);
        }
    }

    // --- devices: block b on EARFCN 100 + 20 b (2 MHz apart: the blocks never overlap)
    std::vector<Ptr<LteEnbNetDevice>> enbs(g.nRu * g.nBlocks);
    std::vector<Ptr<OransimScheduler>> scheds(g.nRu * g.nBlocks);
    for (int r = 0; r < g.nRu; ++r)
    {
        for (int b = 0; b < g.nBlocks; ++b)
        {
            lte->SetEnbDeviceAttribute("DlEarfcn", UintegerValue(100 + 20 * b));
            lte->SetEnbDeviceAttribute("UlEarfcn", UintegerValue(18100 + 20 * b));
            lte->SetEnbDeviceAttribute("DlBandwidth", UintegerValue(BLOCK_PRBS));
            lte->SetEnbDeviceAttribute("UlBandwidth", UintegerValue(BLOCK_PRBS));
            NetDeviceContainer d = lte->InstallEnbDevice(NodeContainer(enbNodes.Get(r * g.nBlocks + b)));
            Ptr<LteEnbNetDevice> enb = DynamicCast<LteEnbNetDevice>(d.Get(0));
            // the block's share of the RU power: K/6 blocks, P_RU / K per PRB
            const double blockDbm = cfg.rus[r][3] + 10.0 * std::log10(double(BLOCK_PRBS) / g.nPrb) + muScaleDb;
            enb->GetPhy()->SetTxPower(blockDbm);
            Ptr<ComponentCarrierEnb> cc = DynamicCast<ComponentCarrierEnb>(enb->GetCcMap().at(0));
            Ptr<OransimScheduler> sched = DynamicCast<OransimScheduler>(cc->GetFfMacScheduler());
            sched->enb = r * g.nBlocks + b;
            scheds[r * g.nBlocks + b] = sched;
            enbs[r * g.nBlocks + b] = enb;
        }
    }
    for (int u = 0; u < g.nUe; ++u)
    {
        for (int b = 0; b < g.nBlocks; ++b)
        {
            lte->SetUeDeviceAttribute("DlEarfcn", UintegerValue(100 + 20 * b));
            NetDeviceContainer d = lte->InstallUeDevice(NodeContainer(ueNodes.Get(u * g.nBlocks + b)));
            SubUe& s = g.subs[u * g.nBlocks + b];
            s.dev = DynamicCast<LteUeNetDevice>(d.Get(0));
            lte->Attach(s.dev, enbs[s.ru * g.nBlocks + b]);
        }
    }
    for (auto& s : g.subs)
    {
        lte->ActivateDataRadioBearer(s.dev, EpsBearer(EpsBearer::NGBR_VIDEO_TCP_DEFAULT));
    }
    const double fcHz = cfg.Get("carrier_hz");
    for (Ptr<SpectrumChannel> ch : {lte->GetDownlinkSpectrumChannel(), lte->GetUplinkSpectrumChannel()})
    {
        ch->GetPropagationLossModel()->SetAttributeFailSafe("Frequency", DoubleValue(fcHz));
    }
    lte->GetDownlinkSpectrumChannel()->AddSpectrumPropagationLossModel(CreateObject<OransimFading>());

    std::vector<Ptr<SubSink>> sinks;
    for (size_t i = 0; i < g.subs.size(); ++i)
    {
        Ptr<SubSink> sink = Create<SubSink>();
        sink->sub = int(i);
        Ptr<LteSpectrumPhy> dl = g.subs[i].dev->GetPhy()->GetDownlinkSpectrumPhy();
        Ptr<LteChunkProcessor> proc = Create<LteChunkProcessor>();
        proc->AddCallback(MakeCallback(&SubSink::OnSinr, sink));
        dl->AddDataSinrChunkProcessor(proc);
        dl->TraceConnectWithoutContext("DlPhyReception", MakeCallback(&SubSink::OnRx, sink));
        sinks.push_back(sink);
    }

    // the fading table starts at 1 (set by Python); warm up: random access and RRC set-up
    uint64_t subframes = 0;
    auto runMs = [&](int n) {
        Simulator::Stop(MilliSeconds(n));
        Simulator::Run();
        subframes += uint64_t(n);
        H->ns3_subframes = subframes;
    };
    const int warmMaxMs = int(cfg.Get("warmup_max_ms"));
    int connectedAt = -1;
    for (int t = 0; t < warmMaxMs; t += 10)
    {
        runMs(10);
        bool all = true;
        for (auto& s : g.subs)
        {
            if (s.dev->GetRrc()->GetState() != LteUeRrc::CONNECTED_NORMALLY)
            {
                all = false;
                break;
            }
        }
        if (all)
        {
            connectedAt = t + 10;
            break;
        }
        if (getppid() != parent)
        {
            return 4;
        }
    }
    if (connectedAt < 0)
    {
        Fail("not every UE connected within " + std::to_string(warmMaxMs) + " ms of ns-3 time");
    }
    runMs(40); // data radio bearers and first CQI reports
    if (lteOnly)
    {
        const int ms = std::stoi(argv[3]);
        const auto t1 = std::chrono::steady_clock::now();
        runMs(ms);
        const auto t2 = std::chrono::steady_clock::now();
        std::cout << "{\"subframes\": " << ms << ", \"setup_s\": "
                  << std::chrono::duration<double>(t1 - wall0).count() << ", \"run_s\": "
                  << std::chrono::duration<double>(t2 - t1).count() << "}" << std::endl;
        Simulator::Destroy();
        return 0;
    }
    __atomic_store_n(&H->state, ST_READY, __ATOMIC_RELEASE);

    const size_t nRk = size_t(g.nRu) * g.nPrb;
    uint64_t seen = __atomic_load_n(&H->req_seq, __ATOMIC_ACQUIRE);
    while (true)
    {
        // wait for the next request, with a deadline and a check that the parent is still there
        auto t0 = std::chrono::steady_clock::now();
        uint64_t seq;
        int spins = 0;
        while ((seq = __atomic_load_n(&H->req_seq, __ATOMIC_ACQUIRE)) == seen)
        {
            if (++spins > 2000)
            {
                std::this_thread::sleep_for(std::chrono::microseconds(20));
                if (spins % 500 == 0)
                {
                    if (getppid() != parent)
                    {
                        std::cerr << "oransim_phy_server: parent process gone, exiting" << std::endl;
                        return 4;
                    }
                    const double waited =
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                    if (waited > timeoutS)
                    {
                        Fail("no request from the engine within " + std::to_string(timeoutS) + " s");
                    }
                }
            }
        }
        seen = seq;
        if (H->command == 2)
        {
            __atomic_store_n(&H->state, ST_EXIT, __ATOMIC_RELEASE);
            __atomic_store_n(&H->rsp_seq, seq, __ATOMIC_RELEASE);
            break;
        }

        // reset the response; turn the allocation into grants per eNB
        double* sinr = g.Sinr();
        for (size_t i = 0; i < nRk; ++i)
        {
            sinr[i] = NAN;
            g.Bits()[i] = 0.0;
            g.Mcs()[i] = -1;
            g.TbOk()[i] = -1;
        }
        g.expected.clear();
        g.expectedOfSub.clear();
        const int32_t* owner = g.Owner();
        const double* power = g.Power();
        int granted = 0;
        g.dciAtNs = Simulator::Now().GetNanoSeconds();
        for (int r = 0; r < g.nRu; ++r)
        {
            const double share = std::pow(10.0, (cfg.rus[r][3] - 30.0) / 10.0) / g.nPrb; // P_RU / K, W
            for (int b = 0; b < g.nBlocks; ++b)
            {
                std::map<int, Grant> byUe;
                std::map<int, double> powerSum;
                for (int i = 0; i < BLOCK_PRBS; ++i)
                {
                    const int k = b * BLOCK_PRBS + i;
                    const int u = owner[r * g.nPrb + k];
                    if (u < 0 || power[r * g.nPrb + k] <= 0.0)
                    {
                        continue;
                    }
                    if (u >= g.nUe)
                    {
                        Fail("request: PRB owner out of range");
                    }
                    Grant& gr = byUe[u];
                    gr.sub = u * g.nBlocks + b;
                    gr.rbMask |= (1u << i);
                    gr.rbs.push_back(i);
                    powerSum[u] += power[r * g.nPrb + k];
                }
                const int enb = r * g.nBlocks + b;
                std::vector<Grant> grants;
                for (auto& [u, gr] : byUe)
                {
                    if (g.subs[gr.sub].ru != r)
                    {
                        Fail("request: UE " + std::to_string(u) + " given PRBs of RU " + std::to_string(r) +
                             " but ns-3 attaches it to RU " + std::to_string(g.subs[gr.sub].ru));
                    }
                    // one P_A per UE and block: the mean power of its PRBs there
                    gr.paDb = 10.0 * std::log10(powerSum[u] / gr.rbs.size() / share);
                    enbs[enb]->GetPhy()->GetLteEnbCphySapProvider()->SetPa(
                        g.subs[gr.sub].dev->GetRrc()->GetRnti(), gr.paDb);
                    grants.push_back(gr);
                    granted++;
                }
                scheds[enb]->Inject(enbs[enb]->GetPhy(), grants);
            }
        }

        // Run the subframe that carries the grants: every transport block is reported by its end,
        // except where the UE did not decode its DCI (PDCCH error), which reports nothing.
        runMs(1);
        H->tbs_sent += uint64_t(granted);
        for (Expected& e : g.expected)
        {
            if (e.done)
            {
                continue;
            }
            H->dci_lost++;
            const SubUe& s = g.subs[e.sub];
            const bool fresh = s.sinrAtNs > g.dciAtNs; // measured in this request's subframe
            for (int rb : e.rbs)
            {
                const size_t k = size_t(e.ru) * g.nPrb + e.block * BLOCK_PRBS + rb;
                g.Sinr()[k] = fresh && rb < int(s.sinr.size()) ? s.sinr[rb] : NAN;
                g.Bits()[k] = 0.0;
                g.Mcs()[k] = e.mcs;
                g.TbOk()[k] = 0;
            }
        }
        __atomic_store_n(&H->rsp_seq, seq, __ATOMIC_RELEASE);
    }
    Simulator::Destroy();
    return 0;
}
