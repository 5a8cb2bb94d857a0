"""Scenario schema: the validated configuration of one simulation.

A scenario is a YAML mapping read by ``simcore.yamlio`` (YAML 1.2 scalars, duplicate keys
refused) and validated by the pydantic models below. Every field has a unit in its name or
docstring. Defaults reproduce the paper's single cell (1 RU, 30 PRBs, UEs in a 500 m disc, three
slices); see ``_default_slices`` and docs/architecture.md (section 3).

Every model derives from ``_Strict``: unknown keys are errors, types are strict (``true`` is not
an integer, ``"false"`` is not a boolean, ``2.0`` is not an integer), and every float must be
finite unless its field says ``allow_inf_nan=True`` (none does today). Every number has bounds that
keep the run's arithmetic finite; what several fields decide together (memory, the fronthaul's
quantizer) is checked by ``_semantic_problems`` and ``simcore.budget``.

Problems are reported as ``ScenarioError`` carrying a list of ``(field.path, message)`` pairs so
the CLI can print each as ``FILE: field.path: message``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .yamlio import YamlError, load_yaml_text, read_text_file

#: Largest number of UEs in one scenario (all slices, all RUs). Per-TTI state is (U, R, K) arrays;
#: 2,000 UEs x 3 RUs x 275 PRBs of complex fading is ~26 MB, the ceiling we keep for one process.
MAX_UES = 2000
#: NR carries at most 275 PRBs per carrier (TS 38.101-1).
MAX_PRBS = 275
#: Numerologies 0..4: subcarrier spacing 15 * 2**mu kHz, slot 1 ms / 2**mu.
MAX_NUMEROLOGY = 4
#: Per-UE traffic limits: a 10 Gbit/s flow of 1500-byte packets is 833k packets/s.
MAX_UE_PPS = 1e6
MAX_UE_LOAD_BPS = 1e10
#: Scenario names become folder and file names (``runs/NAME-POLICY-seedN``, ``evaluate-NAME.csv``).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ScenarioError(Exception):
    """A scenario failed to load or validate. ``problems`` holds ``(field_path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "<scenario>"):
        self.problems = problems
        self.source = source
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))

    def lines(self) -> list[str]:
        return [f"{self.source}: {path}: {msg}" for path, msg in self.problems]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------------------- cell
class RuConfig(_Strict):
    """One radio unit (O-RU)."""

    x_m: float = Field(0.0, ge=-1e6, le=1e6)
    y_m: float = Field(0.0, ge=-1e6, le=1e6)
    height_m: float = Field(25.0, gt=0, le=300)
    max_power_dbm: float = Field(46.0, ge=0, le=70, description="total transmit power budget (>= 1 mW)")


class CellConfig(_Strict):
    numerology: int = Field(0, ge=0, le=MAX_NUMEROLOGY, description="mu: SCS = 15*2**mu kHz")
    prbs_per_ru: int = Field(30, ge=1, le=MAX_PRBS)
    carrier_ghz: float = Field(3.5, gt=0.4, le=100)
    noise_psd_dbm_hz: float = Field(-174.0, ge=-250, le=-100)
    noise_figure_db: float = Field(9.0, ge=0, le=30)
    rus: list[RuConfig] = Field(default_factory=lambda: [RuConfig()], min_length=1, max_length=64)

    @property
    def scs_hz(self) -> float:
        return 15e3 * 2**self.numerology

    @property
    def prb_bandwidth_hz(self) -> float:
        """12 subcarriers per PRB."""
        return 12 * self.scs_hz

    @property
    def tti_s(self) -> float:
        """One slot: 1 ms / 2**mu."""
        return 1e-3 / 2**self.numerology


# -------------------------------------------------------------------------------------- channel
class LogDistanceConfig(_Strict):
    exponent: float = Field(3.0, gt=0, le=8)
    reference_distance_m: float = Field(1.0, gt=0, le=10000)
    reference_loss_db: float | None = Field(
        None, ge=0, le=300, description="loss at the reference distance; default: free-space (Friis) at the carrier"
    )


class ChannelConfig(_Strict):
    pathloss: Literal["uma", "umi", "cost231_128_1", "log_distance"] = Field(
        "uma",
        description="3GPP TR 38.901 UMa / UMi street canyon, 128.1+37.6log10(d/km), or log-distance",
    )
    los: Literal["auto", "los", "nlos"] = Field("auto", description="auto: drawn from the LOS probability")
    shadowing_sigma_db: float | None = Field(None, ge=0, le=20, description="default: the model's own")
    fading: Literal["rayleigh", "none"] = "rayleigh"
    fading_correlation: float | None = Field(
        None, ge=0, le=1, description="AR(1) coefficient of the per-PRB fading between TTIs"
    )
    ue_speed_kmh: float = Field(
        3.0, ge=0, le=500, description="used when fading_correlation is unset: rho = J0(2 pi f_d T_TTI)"
    )
    ue_height_m: float = Field(1.5, gt=0, le=22.5)
    log_distance: LogDistanceConfig = Field(default_factory=LogDistanceConfig)
    draw_all_gains: bool = Field(
        False, description="draw every (UE, RU, PRB) fading entry whenever the engine does for a PHY that reads "
                           "the whole gain table (ns3-shm): the built-in PHY then sees, for the same seed, the very "
                           "channel ns3-shm sees (a paired comparison, oransim calibrate); false: only the entries "
                           "the PHY reads are drawn between decisions (the same law, another realization)")


class UeDropConfig(_Strict):
    radius_m: float = Field(500.0, gt=0, le=20000)
    min_distance_m: float = Field(35.0, ge=1, le=20000)


# ------------------------------------------------------------------------------------------ PHY
class CsiConfig(_Strict):
    """Channel state the scheduler and the link adaptation see (the UE's CQI report). Period 1 and
    delay 0 (the defaults): the CSI of the current TTI itself (ideal)."""

    period_tti: int = Field(1, ge=1, le=10000, description="a report is measured every this many TTIs")
    delay_tti: int = Field(0, ge=0, le=10000, description="TTIs from a report's measurement to its first use")


class HarqConfig(_Strict):
    """Hybrid ARQ of the link-to-system model (simcore.l2s)."""

    enabled: bool = Field(True, description="false: a block in error delivers nothing and its bits go back to "
                                            "the head of the queue, sent again as new data at the next grant")
    processes: int = Field(8, ge=1, le=32, description="stop-and-wait HARQ processes per UE")
    max_transmissions: int = Field(4, ge=1, le=16, description="first transmission plus retransmissions of a block")
    rtt_tti: int = Field(8, ge=1, le=1000, description="TTIs from a transmission to its process's reuse or "
                                                       "the block's earliest retransmission")
    combining: Literal["ir", "chase", "none"] = Field(
        "ir", description="soft combining: incremental redundancy (MI adds), chase (SINR adds), none")
    on_failure: Literal["drop", "requeue"] = Field(
        "drop", description="a block failing max_transmissions times: its packets are dropped (reason harq, "
                            "RLC unacknowledged mode) or it starts a new round (RLC acknowledged mode)")


class OllaConfig(_Strict):
    """Outer-loop link adaptation: an SINR offset per UE steering the first-transmission BLER to the target."""

    enabled: bool = True
    step_up_db: float = Field(0.5, gt=0, le=10, description="offset increase on a NACK; the decrease on an "
                                                            "ACK is step_up * target / (1 - target)")
    max_offset_db: float = Field(10.0, gt=0, le=40, description="the offset is clipped to +- this")


class L2sConfig(_Strict):
    """Link-to-system model of the built-in PHY (simcore.l2s): MCS from the CSI report, block errors
    from BLER curves over the block's MIESM effective SINR, HARQ, OLLA. Off: every PRB delivers the
    rate model's bits at the SINR of the TTI, error-free."""

    enabled: bool = False
    bler_target: float = Field(0.1, gt=0, lt=1, description="BLER the MCS choice (and OLLA) aim at")
    mcs_selection: Literal["miesm", "worst_prb"] = Field(
        "miesm", description="miesm: the highest MCS meeting the target at the MIESM effective SINR of the "
                             "block's PRBs; worst_prb: per PRB the highest MCS whose one-PRB block meets it, "
                             "the block takes the lowest over its PRBs (ns-3 LTE's CQI and grant rule)")
    below_range: Literal["idle", "lowest_mcs"] = Field(
        "idle", description="no MCS meets the target: the UE's PRBs stay unused (idle) or it gets MCS 1")
    overhead_fraction: list[Annotated[float, Field(ge=0, le=0.95)]] = Field(
        default_factory=lambda: [0.0, 0.0, 0.0], min_length=3, max_length=3,
        description="share of a PRB's resource elements not carrying data (control, reference signals) for "
                    "the QPSK, 16QAM and 64QAM MCSs; one number sets all three (LTE, 3 control symbols, "
                    "1 CRS port: 42/168 = 0.25)")
    control_errors: bool = Field(False, description="lose the grant itself (control channel) with the "
                                                    "probability of the tabulated PDCCH curve at the "
                                                    "QPSK effective SINR of the UE's PRBs")
    block_errors: bool = Field(True, description="draw block errors (false: every block decodes)")
    coding_gap_db: list[Annotated[float, Field(ge=0, le=10)]] = Field(
        default_factory=lambda: [1.0, 1.0, 1.0], min_length=3, max_length=3,
        description="SINR loss of a practical code against the normal approximation of its error probability, "
                    "for the QPSK, 16QAM and 64QAM MCSs; one number sets all three")
    code_block_bits: int = Field(6144, ge=40, le=100000, description="largest code block (LTE turbo 6144, NR LDPC 8448)")
    tb_prbs: int | None = Field(
        None, ge=1, le=10000, description="one transport block per UE per group of this many consecutive PRBs of "
                                          "an RU (an LTE carrier: ns3-shm runs one per 6 PRBs), each with its own "
                                          "MCS, size and error draw; null: one block per UE over all its PRBs")
    crc_bits: int = Field(0, ge=0, le=64, description="CRC bits a block carries besides data, taken from its "
                                                      "bits with the rest rounded down to whole bytes (LTE: 24 "
                                                      "per block and per code block when segmented, TS 36.212); "
                                                      "0: all of a block's bits are data")
    tbs: Literal["nominal", "lte"] = Field(
        "nominal", description="data bits of a block: nominal (efficiency x channel uses, less crc_bits) or lte "
                               "(TS 36.213's transport block size of the LTE MCS the CQI maps to, as ns-3 LTE "
                               "sends; tabulated up to 6 PRBs, the 6-PRB bits per PRB beyond); the code rate "
                               "for the error draw stays the MCS's")
    cqi_sinr_db: list[Annotated[float, Field(ge=-50, le=60)]] | None = Field(
        None, description="the CQI table: 15 SINRs (dB, non-decreasing) from which CQI 1..15 is reported (a PRB's "
                          "SINR with worst_prb, a block's effective SINR with miesm), or 29: the one-PRB "
                          "10 %-BLER SINRs of LTE MCS 0..28, turned into the table by LTE's reporting rule "
                          "(ns-3's LteAmc: the highest MCS decoding, rounded down to a CQI of strictly lower "
                          "efficiency); null: computed from the BLER model at bler_target")
    harq: HarqConfig = Field(default_factory=HarqConfig)
    olla: OllaConfig = Field(default_factory=OllaConfig)

    @field_validator("coding_gap_db", "overhead_fraction", mode="before")
    @classmethod
    def _one_for_all(cls, v):
        return [v, v, v] if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @field_validator("cqi_sinr_db")
    @classmethod
    def _cqi_table(cls, v):
        if v is None:
            return v
        if len(v) not in (15, 29):
            raise ValueError(f"needs 15 values (CQI 1..15) or 29 (LTE MCS 0..28), got {len(v)}")
        if len(v) == 15 and any(b < a for a, b in zip(v, v[1:])):
            raise ValueError("the 15 CQI thresholds must not decrease")
        return v


class PhyConfig(_Strict):
    backend: str = Field("builtin", description="entry point name in group oransim.phy")
    rate_model: Literal["shannon", "cqi"] = "shannon"
    snr_gap_db: float = Field(0.0, ge=0, le=15, description="Shannon gap Gamma for rate_model=shannon")
    max_spectral_efficiency: float = Field(
        5.5547, gt=0, le=12, description="bit/s/Hz cap; 5.5547 is CQI 15 of TS 38.214 table 5.2.2.1-2"
    )
    ber_target: float = Field(
        5e-5, gt=0, lt=0.2, description="CQI mapping gap Gamma = -ln(5 BER)/1.5 (as ns-3's LteAmc)"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="backend-specific parameters")
    csi: CsiConfig = Field(default_factory=CsiConfig)
    l2s: L2sConfig = Field(default_factory=L2sConfig)


class FronthaulConfig(_Strict):
    capacity_mbps: float = Field(150.0, gt=0, le=1e7, description="per RU fronthaul capacity C_FH")
    quantizer_bits: int | None = Field(
        None, ge=1, le=16, description="bits per I/Q component; default: floor(C_FH / (2 f_s))"
    )
    sampling_rate_msps: float | None = Field(
        None, gt=0, le=1e5, description="default: smallest power-of-two FFT covering the PRBs x SCS"
    )
    latency_us: float = Field(50.0, ge=0, le=10000, description="one-way transport latency")
    papr_backoff_db: float = Field(
        12.0, ge=8, le=30,
        description="quantizer clipping level above the RMS of each I/Q component at the RU's maximum power, "
                    "20 log10(A / sigma) (OFDM PAPR head-room; 12 dB ~ 4-sigma loading, see simcore.phy)",
    )


class ServerConfig(_Strict):
    """A single-server FIFO processing stage (CU or DU)."""

    service_rate_pps: float = Field(ge=1, le=1e9, description="packets per second")
    service: Literal["exponential", "deterministic"] = "exponential"


class ProcessingConfig(_Strict):
    cu: ServerConfig = Field(default_factory=lambda: ServerConfig(service_rate_pps=200_000))
    du: ServerConfig = Field(default_factory=lambda: ServerConfig(service_rate_pps=100_000))


# -------------------------------------------------------------------------------------- traffic
class PoissonTraffic(_Strict):
    """Poisson packet arrivals of fixed size (eMBB default)."""

    model: Literal["poisson"]
    rate_mbps: float = Field(gt=0, le=10000, description="offered load per UE")
    packet_bytes: int = Field(1500, ge=1, le=65535)
    RATE_FIELDS: ClassVar[tuple[str, ...]] = ("rate_mbps", "packet_bytes")

    @property
    def packets_per_s(self) -> float:
        return self.rate_mbps * 1e6 / (8.0 * self.packet_bytes)


class FtpTraffic(_Strict):
    """3GPP FTP model 1 style: files arrive as a Poisson process, each split into packets."""

    model: Literal["ftp"]
    file_rate_hz: float = Field(gt=0, le=1000, description="file arrivals per second per UE")
    file_kbytes: float = Field(500.0, gt=0, le=1e6, description="mean file size (exponential)")
    packet_bytes: int = Field(1500, ge=1, le=65535)
    RATE_FIELDS: ClassVar[tuple[str, ...]] = ("file_rate_hz", "file_kbytes", "packet_bytes")

    @property
    def packets_per_s(self) -> float:
        return self.file_rate_hz * (self.file_kbytes * 1000.0 / self.packet_bytes + 1.0)  # E[ceil(X/p)] <= E[X]/p + 1


class SporadicTraffic(_Strict):
    """URLLC: sporadic (Poisson) small packets."""

    model: Literal["sporadic"]
    rate_pps: float = Field(gt=0, le=1e6, description="packets per second per UE")
    packet_bytes: int = Field(32, ge=1, le=65535)
    RATE_FIELDS: ClassVar[tuple[str, ...]] = ("rate_pps",)

    @property
    def packets_per_s(self) -> float:
        return self.rate_pps


class PeriodicTraffic(_Strict):
    """mMTC: periodic tiny reports with a random phase per device."""

    model: Literal["periodic"]
    period_ms: float = Field(gt=0, le=3.6e6)
    packet_bytes: int = Field(20, ge=1, le=65535)
    jitter_ms: float = Field(0.0, ge=0, le=3.6e6, description="uniform jitter added to each report time")
    RATE_FIELDS: ClassVar[tuple[str, ...]] = ("period_ms",)

    @property
    def packets_per_s(self) -> float:
        return 1e3 / self.period_ms


Traffic = Annotated[
    Union[PoissonTraffic, FtpTraffic, SporadicTraffic, PeriodicTraffic], Field(discriminator="model")
]
TRAFFIC_TAGS = {"poisson", "ftp", "sporadic", "periodic"}


class SliceConfig(_Strict):
    name: str = Field(min_length=1, max_length=32)
    weight: float = Field(1.0, gt=0, le=1e6, description="w_s in the weighted sum rate")
    ues: int = Field(10, ge=0, description="UEs of this slice dropped around each RU")
    min_rate_mbps: float = Field(0.0, ge=0, le=1e9, description="R_min,s per served UE")
    max_rate_mbps: float = Field(1e9, gt=0, le=1e9, description="per-UE rate cap (demand), Mbit/s")
    max_delay_ms: float = Field(1e9, gt=0, le=1e9, description="QoS delay target (and deadline if drop_late)")
    drop_late: bool = Field(False, description="drop a queued packet once its age exceeds max_delay_ms")
    buffer_limit_kbytes: float = Field(2000.0, gt=0, le=1e9, description="per-UE buffer; arrivals beyond it drop")
    power_cap_dbm: float | None = Field(None, ge=0, le=70, description="per-slice power cap per RU")
    rate_model: Literal["phy", "fbl"] = Field(
        "phy", description="phy: the cell's phy.rate_model; fbl: finite-blocklength normal approximation, "
                           "one codeword per PRB per TTI (12 x 14 resource elements)")
    fbl_error_probability: float = Field(
        1e-5, gt=0, le=0.1, description="block error probability epsilon of rate_model fbl")
    traffic: Traffic


def _default_slices() -> list[SliceConfig]:
    # Paper Table I: max rate 20 (eMBB) / 2 (URLLC) Mbit/s, URLLC max delay 1 ms. Minimum rates are
    # our documented choice (docs/architecture.md, section 3.6): met by a 30-PRB cell at moderate load.
    return [
        SliceConfig(
            name="embb", weight=2.0, ues=10, min_rate_mbps=1.0, max_rate_mbps=20.0, max_delay_ms=100.0,
            traffic=PoissonTraffic(model="poisson", rate_mbps=1.2, packet_bytes=1500),
        ),
        SliceConfig(
            name="urllc", weight=3.0, ues=10, min_rate_mbps=0.1, max_rate_mbps=2.0, max_delay_ms=1.0,
            drop_late=True, buffer_limit_kbytes=64.0,
            traffic=SporadicTraffic(model="sporadic", rate_pps=200.0, packet_bytes=32),
        ),
        SliceConfig(
            name="mmtc", weight=1.0, ues=10, min_rate_mbps=0.01, max_rate_mbps=0.5, max_delay_ms=1000.0,
            buffer_limit_kbytes=16.0,
            traffic=PeriodicTraffic(model="periodic", period_ms=100.0, packet_bytes=100),
        ),
    ]


# ------------------------------------------------------------------------------ rest of the run
class SchedulingConfig(_Strict):
    interval_tti: int = Field(10, ge=1, le=100000, description="near-RT RIC decision period, TTIs")


class PolicyConfig(_Strict):
    name: str = Field("pf", description="entry point name in group oransim.policies")
    params: dict[str, Any] = Field(default_factory=dict)


class RecordConfig(_Strict):
    packets: bool = True
    tti: bool = True


class Scenario(_Strict):
    name: str = Field("scenario", description="names the run folder runs/NAME-POLICY-seedN")
    seed: int = Field(1, ge=0, lt=2**63)
    duration_s: float = Field(1.0, gt=0, le=3600)
    cell: CellConfig = Field(default_factory=CellConfig)
    channel: ChannelConfig = Field(default_factory=ChannelConfig)
    ue_drop: UeDropConfig = Field(default_factory=UeDropConfig)
    phy: PhyConfig = Field(default_factory=PhyConfig)
    fronthaul: FronthaulConfig = Field(default_factory=FronthaulConfig)
    processing: ProcessingConfig = Field(default_factory=ProcessingConfig)
    slices: list[SliceConfig] = Field(default_factory=_default_slices, min_length=1, max_length=8)
    scheduling: SchedulingConfig = Field(default_factory=SchedulingConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not NAME_PATTERN.match(v):
            raise ValueError(f"'{v[:80]}' cannot name a folder: use 1-64 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit (no '/', no leading '.')")
        return v

    # ---- derived quantities used across the engine
    @property
    def n_ru(self) -> int:
        return len(self.cell.rus)

    @property
    def n_ues(self) -> int:
        return self.n_ru * sum(s.ues for s in self.slices)

    @property
    def n_tti(self) -> int:
        return max(1, int(round(self.duration_s / self.cell.tti_s)))

    @property
    def sampling_rate_hz(self) -> float:
        if self.fronthaul.sampling_rate_msps is not None:
            return self.fronthaul.sampling_rate_msps * 1e6
        used = 12 * self.cell.prbs_per_ru / 0.9  # ~10 % guard band
        nfft = 1 << max(7, math.ceil(math.log2(used)))
        return nfft * self.cell.scs_hz

    @property
    def quantizer_bits(self) -> int:
        """Bits per I/Q component on the fronthaul: configured, or floor(C_FH / (2 f_s)) capped at 16."""
        if self.fronthaul.quantizer_bits is not None:
            return self.fronthaul.quantizer_bits
        return min(16, int(self.fronthaul.capacity_mbps * 1e6 // (2 * self.sampling_rate_hz)))

    def with_overrides(self, **changes: Any) -> "Scenario":
        """A copy with top-level fields replaced, validated again."""
        data = self.model_dump(mode="python")
        for key, value in changes.items():
            if value is None:
                continue
            if key == "policy":
                data["policy"] = {"name": value, "params": data["policy"]["params"]
                                  if value == data["policy"]["name"] else {}}
            elif key == "phy":
                data["phy"]["backend"] = value
            else:
                data[key] = value
        return parse_scenario(data)


# ------------------------------------------------------------------------------------ loading
def _loc_to_path(loc: tuple) -> str:
    parts: list[str] = []
    prev = None
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif prev == "traffic" and item in TRAFFIC_TAGS:
            pass  # pydantic puts the union tag in the location; users never wrote it
        elif item.startswith("function-") or item in {"tagged-union"}:
            pass
        else:
            parts.append(("." if parts else "") + item)
        prev = item
    return "".join(parts) or "(top level)"


def _semantic_problems(s: Scenario) -> list[tuple[str, str]]:
    """Checks that span several fields (each problem names the field to change)."""
    out: list[tuple[str, str]] = []
    names = [sl.name for sl in s.slices]
    for i, name in enumerate(names):
        if names.index(name) != i:
            out.append((f"slices[{i}].name", f"duplicate slice name '{name}'"))
    if s.n_ues > MAX_UES:
        out.append(("slices", f"{s.n_ues} UEs in total (RUs x sum of slices[*].ues) exceeds the limit of {MAX_UES}"))
    if s.n_ues == 0:
        out.append(("slices", "no UEs: every slice has ues: 0"))
    if s.ue_drop.min_distance_m >= s.ue_drop.radius_m:
        out.append(("ue_drop.min_distance_m", f"must be below ue_drop.radius_m ({s.ue_drop.radius_m} m)"))
    if s.duration_s < s.cell.tti_s:
        out.append(("duration_s", f"shorter than one TTI ({s.cell.tti_s * 1e3:g} ms)"))
    occupied_msps = s.cell.prbs_per_ru * s.cell.prb_bandwidth_hz / 1e6
    if s.fronthaul.sampling_rate_msps is not None and s.fronthaul.sampling_rate_msps < occupied_msps:
        out.append(("fronthaul.sampling_rate_msps",
                    f"{s.fronthaul.sampling_rate_msps:g} Msps is below the occupied bandwidth of cell.prbs_per_ru "
                    f"x 12 subcarriers at cell.numerology {s.cell.numerology} ({occupied_msps:g} MHz)"))
    elif s.fronthaul.quantizer_bits is None and s.quantizer_bits < 1:
        need = 2 * s.sampling_rate_hz / 1e6
        out.append(("fronthaul.capacity_mbps",
                    f"{s.fronthaul.capacity_mbps:g} Mbit/s cannot carry even 1 bit per I/Q component "
                    f"at {s.sampling_rate_hz / 1e6:g} Msps ("
                    + ("fronthaul.sampling_rate_msps" if s.fronthaul.sampling_rate_msps is not None
                       else "the FFT size for cell.prbs_per_ru at cell.numerology")
                    + f"): needs >= {need:g} Mbit/s, or set fronthaul.quantizer_bits"))
    if s.phy.l2s.enabled:
        if s.phy.backend != "builtin":
            out.append(("phy.l2s.enabled", f"the link-to-system model is the built-in PHY's; phy.backend "
                                           f"'{s.phy.backend}' has its own (set phy.l2s.enabled: false)"))
        for i, sl in enumerate(s.slices):
            if sl.rate_model == "fbl":
                out.append((f"slices[{i}].rate_model", "fbl cannot be combined with phy.l2s.enabled "
                                                       "(the link-to-system model draws block errors itself)"))
        if s.phy.l2s.tbs == "lte" and s.phy.l2s.crc_bits:
            out.append(("phy.l2s.crc_bits", "must be 0 with phy.l2s.tbs lte (LTE transport block sizes are data "
                                            "bits: the CRC is outside them)"))
    for i, sl in enumerate(s.slices):
        if sl.min_rate_mbps > sl.max_rate_mbps:
            out.append((f"slices[{i}].min_rate_mbps", f"{sl.min_rate_mbps:g} exceeds max_rate_mbps {sl.max_rate_mbps:g}"))
        if sl.power_cap_dbm is not None:
            for r, ru in enumerate(s.cell.rus):
                if sl.power_cap_dbm > ru.max_power_dbm:
                    out.append((f"slices[{i}].power_cap_dbm",
                                f"{sl.power_cap_dbm:g} dBm exceeds cell.rus[{r}].max_power_dbm {ru.max_power_dbm:g}"))
        t = sl.traffic
        fields = ", ".join(f"slices[{i}].traffic.{f}" for f in t.RATE_FIELDS)
        if t.packets_per_s > MAX_UE_PPS:
            out.append((f"slices[{i}].traffic.{t.RATE_FIELDS[0]}",
                        f"{t.packets_per_s:.3g} packets/s per UE (from {fields}) is above the limit of {MAX_UE_PPS:g}"))
        elif t.packets_per_s * 8.0 * t.packet_bytes > MAX_UE_LOAD_BPS:
            out.append((f"slices[{i}].traffic.{t.RATE_FIELDS[0]}",
                        f"{t.packets_per_s * 8e-9 * t.packet_bytes:.3g} Gbit/s per UE (from {fields}, "
                        f"slices[{i}].traffic.packet_bytes) is above the limit of {MAX_UE_LOAD_BPS / 1e9:g}"))
        if sl.traffic.packet_bytes > sl.buffer_limit_kbytes * 1000:
            out.append((f"slices[{i}].buffer_limit_kbytes",
                        f"{sl.buffer_limit_kbytes:g} kB is smaller than one packet "
                        f"(slices[{i}].traffic.packet_bytes {sl.traffic.packet_bytes})"))
    return out


def scenario_warnings(s: Scenario) -> list[tuple[str, str]]:
    """Valid but worth telling: targets the configured air interface cannot meet."""
    out: list[tuple[str, str]] = []
    floor_ms = (s.cell.tti_s + s.fronthaul.latency_us * 1e-6) * 1e3
    harq = s.phy.l2s.harq
    if s.phy.l2s.enabled and harq.enabled and harq.processes < harq.rtt_tti:
        out.append(("phy.l2s.harq.processes",
                    f"{harq.processes} HARQ processes for a {harq.rtt_tti}-TTI round trip: a UE can start a block "
                    f"in at most {harq.processes} of every {harq.rtt_tti} TTIs"))
    for i, sl in enumerate(s.slices):
        if sl.max_delay_ms < floor_ms:
            out.append((f"slices[{i}].max_delay_ms",
                        f"{sl.max_delay_ms:g} ms is below one TTI plus fronthaul latency ({floor_ms:g} ms): "
                        f"no packet can meet it; use a higher cell.numerology"))
    return out


def _describe(err: dict) -> str:
    """pydantic's message, without its "Value error, " prefix, plus the value the user gave."""
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return "unknown field"
    msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, (bool, int, float, str)) and err["type"] not in ("value_error", "missing"):
        shown = repr(value)
        msg += f" (got {shown if len(shown) <= 40 else shown[:37] + '...'})"
    return msg


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate a mapping (already parsed YAML) into a ``Scenario`` or raise ``ScenarioError``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError([("(top level)", f"expected a mapping of fields, got {type(data).__name__}")], source)
    try:
        scn = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [(_loc_to_path(err["loc"]), _describe(err)) for err in exc.errors()]
        raise ScenarioError(problems, source) from None
    problems = _semantic_problems(scn)
    if problems:
        raise ScenarioError(problems, source)
    return scn


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a YAML scenario file."""
    source = str(path)
    try:
        data = load_yaml_text(read_text_file(path))
    except YamlError as exc:
        raise ScenarioError([(exc.where, exc.message)], source) from None
    return parse_scenario(data, source)
