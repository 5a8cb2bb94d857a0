"""Link abstraction: SINR with fronthaul quantization noise, SINR -> rate, the built-in PHY.

SINR of the UE owning PRB k of RU r (DESIGN.md §2):

    SINR = p[r,k] g[u,r,k] / (N0 B_PRB + sum_{r' != r} p[r',k] g[u,r',k] + g[u,r,k] sigma_q^2[r,k])

with sigma_q^2[r,k] = p[r,k] 2^(-2 b_r): a b-bit uniform quantizer per I/Q component has a
signal-to-quantization-noise ratio of 6.02 b dB (we leave out the +1.76 dB that only a full-scale
sine reaches; an OFDM signal backed off from full scale does worse, so this is the optimistic side).

Rate per PRB = B_PRB * f(SINR):
- ``shannon``: f = min(log2(1 + SINR / Gamma), SE_max), Gamma the SNR gap, SE_max the top MCS.
- ``cqi``: f = efficiency of the highest CQI of TS 38.214 Table 5.2.2.1-2 whose efficiency does not
  exceed log2(1 + SINR / Gamma_BER), Gamma_BER = -ln(5 BER) / 1.5 (M-QAM gap for a BER target, the
  mapping ns-3's LteAmc uses); below CQI 1 the PRB carries nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .units import db_to_lin

#: Spectral efficiency (bit/s/Hz) of CQI 1..15, TS 38.214 Table 5.2.2.1-2 (64QAM table).
CQI_EFFICIENCY = np.array([
    0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141,
    2.4063, 2.7305, 3.3223, 3.9023, 4.5234, 5.1152, 5.5547,
])


@dataclass(frozen=True)
class LinkModel:
    """Everything needed to turn (gains, allocation) into SINR and rate; shared by PHY and policies."""

    rate_model: str  # "shannon" | "cqi"
    prb_bandwidth_hz: float
    tti_s: float
    noise_w: float  # N0 * B_PRB, thermal noise plus UE noise figure, per PRB
    quant_ratio: np.ndarray  # (R,) sigma_q^2 / p = 2^(-2 b_r)
    snr_gap: float  # linear Gamma for shannon
    max_se: float  # bit/s/Hz cap for shannon
    cqi_gap: float  # linear Gamma_BER for cqi

    @staticmethod
    def from_scenario(s) -> "LinkModel":
        b = s.quantizer_bits
        noise_dbm = s.cell.noise_psd_dbm_hz + 10 * math.log10(s.cell.prb_bandwidth_hz) + s.cell.noise_figure_db
        return LinkModel(
            rate_model=s.phy.rate_model,
            prb_bandwidth_hz=s.cell.prb_bandwidth_hz,
            tti_s=s.cell.tti_s,
            noise_w=10 ** ((noise_dbm - 30) / 10),
            quant_ratio=np.full(s.n_ru, 2.0 ** (-2 * b)),
            snr_gap=float(db_to_lin(s.phy.snr_gap_db)),
            max_se=s.phy.max_spectral_efficiency,
            cqi_gap=cqi_gap_for_ber(s.phy.ber_target),
        )

    # ------------------------------------------------------------------ SINR -> efficiency
    def spectral_efficiency(self, sinr) -> np.ndarray:
        """bit/s/Hz for linear SINR (any shape); NaN SINR (idle) gives 0."""
        sinr = np.fmax(sinr, 0.0)  # fmax maps NaN (idle) to 0
        if self.rate_model == "cqi":
            return CQI_EFFICIENCY_WITH_ZERO[sinr_to_cqi(sinr, self.cqi_gap)]
        return np.minimum(np.log2(1.0 + sinr / self.snr_gap), self.max_se)

    def cqi(self, sinr) -> np.ndarray:
        return sinr_to_cqi(np.fmax(sinr, 0.0), self.cqi_gap)

    # ------------------------------------------------------------------ allocation -> SINR
    def prb_sinr(self, gain: np.ndarray, prb_owner: np.ndarray, power_w: np.ndarray) -> np.ndarray:
        """(..., R, K) linear SINR at the owner of each PRB; NaN where the PRB is idle.

        gain: (U, R, K); prb_owner: (..., R, K) int (-1 idle); power_w: (..., R, K). Leading batch
        dimensions score many allocations at once (ESA).
        """
        n_ru, n_prb = prb_owner.shape[-2:]
        active = prb_owner >= 0
        if gain.shape[0] == 0 or not active.any():
            return np.full(prb_owner.shape, np.nan)
        owner = np.where(active, prb_owner, 0)
        k_idx = np.arange(n_prb)
        p_eff = np.where(active, power_w, 0.0)
        if n_ru == 1:
            diag = gain[owner, 0, k_idx]
            interference = 0.0
        else:
            # g_own[..., r, k, r'] = gain from RU r' to the owner of (r, k)
            g_own = gain[owner, :, k_idx]  # (..., R, K, R')
            rx_all = np.einsum("...rkq,...qk->...rk", g_own, p_eff)
            own_ru = np.broadcast_to(np.arange(n_ru)[:, None, None], (*g_own.shape[:-1], 1))
            diag = np.take_along_axis(g_own, own_ru, axis=-1)[..., 0]  # (..., R, K)
            interference = np.maximum(rx_all - p_eff * diag, 0.0)
        signal = p_eff * diag
        sinr = signal / (self.noise_w + interference + signal * self.quant_ratio[:, None])
        return np.where(active, sinr, np.nan)

    def prb_bits(self, sinr: np.ndarray) -> np.ndarray:
        """Bits one PRB carries in one TTI at the given SINR."""
        return self.spectral_efficiency(sinr) * self.prb_bandwidth_hz * self.tti_s

    def ue_rates_bps(self, gain, ue_ru, prb_owner, power_w) -> np.ndarray:
        """(U,) rate of every UE under an allocation (bit/s)."""
        sinr = self.prb_sinr(gain, prb_owner, power_w)
        rate = self.spectral_efficiency(sinr) * self.prb_bandwidth_hz
        n_ue = gain.shape[0]
        mask = prb_owner >= 0
        return np.bincount(prb_owner[mask], weights=rate[mask], minlength=n_ue)[:n_ue]

    def estimated_prb_rate_bps(self, gain: np.ndarray, serving_ru: np.ndarray,
                               ru_power_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-UE per-PRB CSI view: (rate bit/s, SINR) on the serving RU, shapes (U, K).

        Assumes equal power per PRB on every RU and full interference from the other RUs: the
        conservative estimate a scheduler can form before it knows the other RUs' decisions.
        """
        n_ue, n_ru, n_prb = gain.shape
        p = ru_power_w / n_prb  # (R,)
        ue_idx = np.arange(n_ue)
        g_serv = gain[ue_idx, serving_ru, :]  # (U, K)
        p_serv = p[serving_ru][:, None]
        if n_ru > 1:
            interference = np.einsum("urk,r->uk", gain, p) - g_serv * p_serv
        else:
            interference = 0.0
        quant = g_serv * p_serv * self.quant_ratio[serving_ru][:, None]
        sinr = g_serv * p_serv / (self.noise_w + interference + quant)
        return self.spectral_efficiency(sinr) * self.prb_bandwidth_hz, sinr


CQI_EFFICIENCY_WITH_ZERO = np.concatenate([[0.0], CQI_EFFICIENCY])


def cqi_gap_for_ber(ber: float) -> float:
    """M-QAM SNR gap for a bit-error-rate target: Gamma = -ln(5 BER) / 1.5 (Goldsmith & Chua)."""
    return -math.log(5.0 * ber) / 1.5


def sinr_to_cqi(sinr: np.ndarray, gap: float) -> np.ndarray:
    """CQI 0..15: the highest CQI whose efficiency is <= log2(1 + SINR / gap)."""
    se = np.log2(1.0 + np.maximum(sinr, 0.0) / gap)
    return np.searchsorted(CQI_EFFICIENCY, se, side="right")


# -------------------------------------------------------------------------------- the PHY
@dataclass
class PhyTtiResult:
    """What the PHY reports for one TTI. Shapes (R, K)."""

    prb_sinr: np.ndarray  # linear SINR at the owner; NaN where idle
    prb_bits: np.ndarray  # bits correctly delivered on the PRB this TTI (0 where idle)


class BuiltinPhy:
    """The numpy PHY: SINR and rate straight from the engine's channel through ``LinkModel``.

    Single-RU cells take a fast path: the allocation's active PRBs and their gain indices are
    worked out once per allocation (it only changes at decisions), so a TTI is a few array ops.
    """

    name = "builtin"

    def __init__(self, **params):
        if params:
            raise TypeError(f"phy.params: the builtin PHY takes no parameters (got {sorted(params)})")
        self.link: LinkModel | None = None
        self._alloc = None

    def open(self, scenario, geometry, link: LinkModel, *, channel=None, serving_ru=None) -> None:
        self.link = link
        self._alloc = None

    def _prepare(self, allocation, gain: np.ndarray) -> None:
        self._alloc = allocation
        owner = allocation.prb_owner
        self._active = owner[0] >= 0
        self._k = k = np.flatnonzero(self._active)
        n_ru, n_prb = gain.shape[1], gain.shape[2]
        self._flat = (owner[0, k] * n_ru) * n_prb + k  # index of gain[owner, 0, k]
        self._power = allocation.power_w[0, k]
        self._sinr = np.full(owner.shape, np.nan)
        self._bits = np.zeros(owner.shape)

    def step(self, tti: int, allocation, gain: np.ndarray) -> PhyTtiResult:
        link = self.link
        if gain.shape[1] != 1:
            sinr = link.prb_sinr(gain, allocation.prb_owner, allocation.power_w)
            return PhyTtiResult(prb_sinr=sinr, prb_bits=link.prb_bits(sinr))
        if allocation is not self._alloc:
            self._prepare(allocation, gain)
        signal = gain.ravel()[self._flat] * self._power
        sinr = signal / (link.noise_w + signal * link.quant_ratio[0])
        out_sinr, out_bits = self._sinr.copy(), self._bits.copy()
        out_sinr[0, self._k] = sinr
        out_bits[0, self._k] = link.prb_bits(sinr)
        return PhyTtiResult(prb_sinr=out_sinr, prb_bits=out_bits)

    def close(self) -> None:
        pass
