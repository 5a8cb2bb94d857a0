"""Link abstraction: the SINR (with fronthaul quantization noise), SINR -> rate, the built-in PHY.

The model is described for users in ``docs/phy.md``; in short:

**SINR** (one formula, ``LinkModel.sinr``; every SINR in oransim is computed by it). For the UE
owning PRB k of RU r, with gain g[u,r',k] from RU r' and per-PRB power p[r',k]:

    SINR = p[r,k] g[u,r,k] / (N0 B_PRB + I[u,k] + g[u,r,k] sigma_q^2[r])
    I[u,k] = sum_{r' != r} g[u,r',k] (p[r',k] + sigma_q^2[r'] 1[RU r' transmits in the TTI])

**Fronthaul quantization noise** sigma_q^2[r] (W per PRB, at the RU's antenna). The DU sends RU r
its time-domain baseband, sampled at f_s, each I/Q component quantized with b bits (b from the
fronthaul capacity, b = floor(C_FH / (2 f_s))). A uniform b-bit quantizer over [-A, A] adds noise
of variance Delta^2 / 12 = A^2 / (3 * 2^(2b)) per component, white across the sampled band (the
classical result behind SQNR = 6.02 b + 1.76 dB for a full-scale sine). An OFDM signal is close to
Gaussian (PAPR about 10-12 dB at 1e-4 probability), so the clipping level A must sit well above its
RMS: with A = kappa * sigma_max, sigma_max^2 = P_r,max / 2 the per-component power at the RU's
maximum power and kappa^2 = 10^(papr_backoff_db / 10), the SQNR at full power is
3 * 2^(2b) / kappa^2, i.e. 6.02 b + 4.77 - papr_backoff_db dB (6.02 b - 7.23 dB at the default
12 dB, about the textbook "4-sigma loading"). Samples beyond +-A are clipped. For a Gaussian
component (Bussgang) the clipper is a gain 1 - 2Q(kappa) on the signal plus an uncorrelated
distortion of variance sigma^2 clip(kappa), clip = 2 [(1 + kappa^2) Q(kappa) - kappa phi(kappa)]
- 4 Q(kappa)^2 (-52 dB at 12 dB); the distortion is counted as white noise at its full-power
(largest) value, the gain is left out (above -0.1 dB for back-offs >= 8 dB, the field's minimum).
The full scale is fixed by the RU's *maximum* power (a DU with a fixed digital gain: at any load
the RU clips no more than at full power), so the noise follows neither the PRB's own power nor the
instantaneous load: per PRB

    sigma_q^2[r] = P_r,max * (B_PRB / f_s) * (kappa^2 / (3 * 2^(2b)) + clip(kappa))

the same on every PRB of the RU (B_PRB / f_s is the PRB's share of the sampled band; it includes the
oversampling gain f_s / (K B_PRB) > 1). A lightly loaded PRB next to heavily loaded ones therefore
sees more relative noise: its SQNR is p[r,k] / sigma_q^2[r]. An RU that transmits nothing in a TTI
sends zeros and radiates no quantization noise. Because sigma_q^2 is a constant per RU, the rate of
a PRB depends only on its own owner and power (one RU): the MILP's per-PRB rate table stays exact.
(A quantizer that follows the instantaneous total power, AGC per symbol, would couple every PRB of
the RU and is not offered; O-RAN split 7.2x block-floating-point compression, which scales each PRB
separately, is another model again and is not offered either.)

**Rate per PRB** = B_PRB * f(SINR), bits per TTI = rate * T_TTI:
- ``shannon``: f = min(log2(1 + SINR / Gamma), SE_max), Gamma the SNR gap, SE_max the top MCS.
- ``cqi``: f = efficiency of the highest CQI of TS 38.214 Table 5.2.2.1-2 whose efficiency does not
  exceed log2(1 + SINR / Gamma_BER), Gamma_BER = -ln(5 BER) / 1.5 (M-QAM gap for a BER target, the
  mapping ns-3's LteAmc uses); below CQI 1 the PRB carries nothing.
- ``fbl`` (per slice, ``slices[*].rate_model``): the finite-blocklength normal approximation
  (Polyanskiy, Poor, Verdu 2010) f = log2(1 + rho) - log2(e) Q^-1(eps) sqrt(V / N),
  V = 1 - (1 + rho)^-2, clipped to [0, SE_max]. Each PRB-TTI is its own codeword of
  N = 12 subcarriers x 14 OFDM symbols = 168 resource elements: the rate of a PRB then depends on
  that PRB alone, so one function serves the PHY, the snapshot problem, ESA and the MILP's per-PRB
  rate table (which stays exact). A UE coding over all its PRBs at once would see a smaller
  penalty (it shrinks as 1/sqrt(N)); this choice is the conservative side. The PHY delivers
  rate * T_TTI bits; the block errors (probability eps) are not drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from . import tti_fast
from .units import db_to_lin, dbm_to_w

#: Spectral efficiency (bit/s/Hz) of CQI 1..15, TS 38.214 Table 5.2.2.1-2 (64QAM table).
CQI_EFFICIENCY = np.array([
    0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141,
    2.4063, 2.7305, 3.3223, 3.9023, 4.5234, 5.1152, 5.5547,
])
#: OFDM symbols per slot (normal cyclic prefix, every numerology).
SYMBOLS_PER_SLOT = 14
#: Finite-blocklength codeword: one PRB for one TTI, 12 subcarriers x 14 symbols resource elements.
FBL_BLOCKLENGTH_RE = 12 * SYMBOLS_PER_SLOT
LOG2_E = 1.0 / math.log(2.0)


def fronthaul_noise_w(ru_max_power_w, bits: int, papr_backoff_db: float, prb_bandwidth_hz: float,
                      sampling_rate_hz: float) -> np.ndarray:
    """(R,) quantization plus clipping noise per PRB of each RU (W), as in the module docstring."""
    kappa2 = 10.0 ** (papr_backoff_db / 10.0)
    kappa = math.sqrt(kappa2)
    quant = kappa2 / (3.0 * 4.0 ** bits)
    tail = 0.5 * math.erfc(kappa / math.sqrt(2.0))  # Q(kappa)
    pdf = math.exp(-0.5 * kappa2) / math.sqrt(2.0 * math.pi)  # phi(kappa)
    # clipping error per component minus its part correlated with the signal (Bussgang), over sigma^2
    clip = max(0.0, 2.0 * ((1.0 + kappa2) * tail - kappa * pdf) - 4.0 * tail * tail)
    return np.asarray(ru_max_power_w, dtype=float) * (quant + clip) * (prb_bandwidth_hz / sampling_rate_hz)


def fbl_penalty(error_probability: float, blocklength: int = FBL_BLOCKLENGTH_RE) -> float:
    """log2(e) Q^-1(eps) / sqrt(N): the coefficient of sqrt(V) in the normal approximation."""
    return LOG2_E * -NormalDist().inv_cdf(error_probability) / math.sqrt(blocklength)


def fbl_spectral_efficiency(sinr, penalty) -> np.ndarray:
    """Normal approximation log2(1 + rho) - penalty * sqrt(1 - (1 + rho)^-2), clipped at 0 (bit/s/Hz).

    ``penalty`` = ``fbl_penalty(eps, N)``; broadcast against ``sinr`` (linear, >= 0).
    """
    one_plus = 1.0 + sinr
    return np.maximum(np.log2(one_plus) - penalty * np.sqrt(1.0 - 1.0 / (one_plus * one_plus)), 0.0)


@dataclass(frozen=True)
class LinkModel:
    """Everything needed to turn (gains, allocation) into SINR and rate; shared by PHY and policies.

    ``ue_fbl_penalty`` (U,) is ``fbl_penalty`` of each UE of a finite-blocklength slice and NaN for
    the others (their slices follow ``rate_model``); None when no UE uses the FBL rate. Rate methods
    then take ``ue``, the UE index of each entry (any value where the PRB is idle).
    """

    rate_model: str  # "shannon" | "cqi"
    prb_bandwidth_hz: float
    tti_s: float
    noise_w: float  # N0 * B_PRB, thermal noise plus UE noise figure, per PRB
    quant_noise_w: np.ndarray  # (R,) fronthaul quantization noise per PRB of each RU, W (sigma_q^2)
    snr_gap: float  # linear Gamma for shannon
    max_se: float  # bit/s/Hz cap for shannon and fbl
    cqi_gap: float  # linear Gamma_BER for cqi
    ue_fbl_penalty: np.ndarray | None = None  # (U,) see the class docstring

    @staticmethod
    def from_scenario(s, ue_slice: np.ndarray | None = None) -> "LinkModel":
        """The link of scenario ``s``; ``ue_slice`` (U,) the slice of each UE of the drop (needed
        when a slice uses ``rate_model: fbl``)."""
        noise_dbm = s.cell.noise_psd_dbm_hz + 10 * math.log10(s.cell.prb_bandwidth_hz) + s.cell.noise_figure_db
        penalty = None
        fbl = np.array([sl.rate_model == "fbl" for sl in s.slices])
        if fbl.any():
            if ue_slice is None:
                raise ValueError("LinkModel.from_scenario: a slice uses rate_model fbl; pass ue_slice")
            per_slice = np.array([fbl_penalty(sl.fbl_error_probability) if f else np.nan
                                  for sl, f in zip(s.slices, fbl)])
            if fbl[np.asarray(ue_slice)].any():
                penalty = per_slice[np.asarray(ue_slice)]
                penalty.flags.writeable = False
        quant = fronthaul_noise_w(dbm_to_w([ru.max_power_dbm for ru in s.cell.rus]), s.quantizer_bits,
                                  s.fronthaul.papr_backoff_db, s.cell.prb_bandwidth_hz, s.sampling_rate_hz)
        return LinkModel(
            rate_model=s.phy.rate_model,
            prb_bandwidth_hz=s.cell.prb_bandwidth_hz,
            tti_s=s.cell.tti_s,
            noise_w=10 ** ((noise_dbm - 30) / 10),
            quant_noise_w=quant,
            snr_gap=float(db_to_lin(s.phy.snr_gap_db)),
            max_se=s.phy.max_spectral_efficiency,
            cqi_gap=cqi_gap_for_ber(s.phy.ber_target),
            ue_fbl_penalty=penalty,
        )

    # ------------------------------------------------------------------ the SINR formula
    def sinr(self, serving_gain, power_w, ru, interference_w=0.0):
        """THE SINR (module docstring): p g / (N0 B_PRB + I + g sigma_q^2[ru]). Broadcasting arrays:
        gain and power on the serving RU, its index, and I (other RUs' signals and fronthaul noise)."""
        return serving_gain * power_w / (self.noise_w + interference_w + serving_gain * self.quant_noise_w[ru])

    def fronthaul_on_w(self, power_w: np.ndarray) -> np.ndarray:
        """(..., R) fronthaul noise per PRB each RU radiates: sigma_q^2 if it transmits at all in the
        TTI (the noise is white across the band, so it lands on idle PRBs too), else 0."""
        return np.where((power_w > 0).any(axis=-1), self.quant_noise_w, 0.0)

    def interference_w(self, gain: np.ndarray, serving_ru: np.ndarray, power_w: np.ndarray) -> np.ndarray:
        """(U, K) interference I each UE sees on each PRB from the RUs other than its serving one,
        with the RUs transmitting ``power_w`` (R, K)."""
        n_ue, n_ru, n_prb = gain.shape
        if n_ru == 1:
            return np.zeros((n_ue, n_prb))
        rad = power_w + self.fronthaul_on_w(power_w)[:, None]  # what each RU radiates on each PRB
        own = gain[np.arange(n_ue), serving_ru, :] * rad[serving_ru]
        return np.maximum(np.einsum("urk,rk->uk", gain, rad) - own, 0.0)

    # ------------------------------------------------------------------ SINR -> efficiency
    def spectral_efficiency(self, sinr, ue=None) -> np.ndarray:
        """bit/s/Hz for linear SINR (any shape); NaN SINR (idle) gives 0. ``ue``: UE index of each
        entry (broadcast against ``sinr``), needed when some UE uses the FBL rate."""
        sinr = np.fmax(sinr, 0.0)  # fmax maps NaN (idle) to 0
        if self.rate_model == "cqi":
            se = CQI_EFFICIENCY_WITH_ZERO[sinr_to_cqi(sinr, self.cqi_gap)]
        else:
            se = np.minimum(np.log2(1.0 + sinr / self.snr_gap), self.max_se)
        if self.ue_fbl_penalty is None:
            return se
        if ue is None:
            raise ValueError("LinkModel: some UEs use the finite-blocklength rate; pass ue= (UE of each entry)")
        pen = self.ue_fbl_penalty[ue]
        fbl = np.minimum(fbl_spectral_efficiency(sinr, np.nan_to_num(pen)), self.max_se)
        return np.where(np.isnan(pen), se, fbl)

    def cqi(self, sinr) -> np.ndarray:
        return sinr_to_cqi(np.fmax(sinr, 0.0), self.cqi_gap)

    def prb_rate_bps(self, sinr, ue=None) -> np.ndarray:
        """Rate of one PRB at the given SINR (bit/s); ``ue`` as in ``spectral_efficiency``."""
        return self.spectral_efficiency(sinr, ue) * self.prb_bandwidth_hz

    def prb_bits(self, sinr, ue=None) -> np.ndarray:
        """Bits one PRB carries in one TTI at the given SINR; ``ue`` as in ``spectral_efficiency``."""
        return self.spectral_efficiency(sinr, ue) * (self.prb_bandwidth_hz * self.tti_s)

    # ------------------------------------------------------------------ allocation -> SINR
    def prb_sinr(self, gain: np.ndarray, prb_owner: np.ndarray, power_w: np.ndarray,
                 sinr_without_fronthaul: np.ndarray | None = None) -> np.ndarray:
        """(..., R, K) linear SINR at the owner of each PRB; NaN where the PRB is idle.

        gain: (U, R, K); prb_owner: (..., R, K) int (-1 idle); power_w: (..., R, K). Leading batch
        dimensions score many allocations at once (ESA). ``sinr_without_fronthaul`` (R, K): a SINR
        computed elsewhere (ns-3) with thermal noise and the other RUs' signals but no fronthaul
        noise; its interference replaces the model's, and the fronthaul noise is added.
        """
        n_ru, n_prb = prb_owner.shape[-2:]
        active = prb_owner >= 0
        if gain.shape[0] == 0 or not active.any():
            return np.full(prb_owner.shape, np.nan)
        owner = np.where(active, prb_owner, 0)
        k_idx = np.arange(n_prb)
        p_eff = np.where(active, power_w, 0.0)
        ru = np.arange(n_ru)[:, None]
        if n_ru == 1:
            diag = gain[owner, 0, k_idx]
            signals, fronthaul = 0.0, 0.0
        else:
            # g_own[..., r, k, r'] = gain from RU r' to the owner of (r, k)
            g_own = gain[owner, :, k_idx]  # (..., R, K, R')
            own_ru = np.broadcast_to(np.arange(n_ru)[:, None, None], (*g_own.shape[:-1], 1))
            diag = np.take_along_axis(g_own, own_ru, axis=-1)[..., 0]  # (..., R, K)
            signals = np.maximum(np.einsum("...rkq,...qk->...rk", g_own, p_eff) - p_eff * diag, 0.0)
            fh = self.fronthaul_on_w(p_eff)  # (..., R')
            fronthaul = np.maximum(np.einsum("...rkq,...q->...rk", g_own, fh) - diag * fh[..., :, None], 0.0)
        if sinr_without_fronthaul is not None:
            # its denominator is N0 B + (other RUs' signals) = S / SINR: that replaces ours
            with np.errstate(divide="ignore", invalid="ignore"):
                signals = p_eff * diag / sinr_without_fronthaul - self.noise_w
        return np.where(active, self.sinr(diag, p_eff, ru, signals + fronthaul), np.nan)

    # ------------------------------------------------------------------ views for policies
    def ue_rates_bps(self, gain, ue_ru, prb_owner, power_w) -> np.ndarray:
        """(U,) rate of every UE under an allocation (bit/s)."""
        n_ue = gain.shape[0]
        if gain.shape[1] == 1 and prb_owner.ndim == 2:  # one RU: only the active PRBs, no interference
            k = (prb_owner[0] >= 0).nonzero()[0]
            ue = prb_owner[0, k]
            rate = self.prb_rate_bps(self.sinr(gain[ue, 0, k], power_w[0, k], 0), ue)
            return np.bincount(ue, weights=rate, minlength=n_ue)[:n_ue]
        sinr = self.prb_sinr(gain, prb_owner, power_w)
        rate = self.prb_rate_bps(sinr, prb_owner)
        mask = prb_owner >= 0
        return np.bincount(prb_owner[mask], weights=rate[mask], minlength=n_ue)[:n_ue]

    def csi_snapshot(self, gain: np.ndarray, ru_power_w: np.ndarray) -> tuple | None:
        """(a copy of ``gain``, rate, SINR) as ``gain.copy()`` and ``estimated_prb_rate_bps`` of that copy
        give them, for a one-RU Shannon link without finite-blocklength slices (``gain`` (U, 1, K)
        float64 C-contiguous): one compiled call, numpy's log2, one compiled call (a CSI report's
        arrays). None for any other link or layout."""
        n_ue, n_ru, n_prb = gain.shape
        if not (n_ru == 1 and self.rate_model == "shannon" and self.ue_fbl_penalty is None and gain.dtype == _F64
                and gain.flags.c_contiguous):
            return None
        fast = _fast or _load_fast()
        copy, sinr, rate = fast.one_ru_csi(gain, float(ru_power_w[0]) / n_prb, self.noise_w,
                                           float(self.quant_noise_w[0]), self.snr_gap)
        np.log2(rate, out=rate)
        fast.shannon_rate(rate, self.max_se, self.prb_bandwidth_hz, rate)
        return copy, rate, sinr

    def one_ru_shannon(self, gain: np.ndarray) -> bool:
        """Whether ``gain`` (U, R, K) takes the compiled one-RU Shannon path (``one_ru_rates_bps``): one
        RU, the Shannon rate without finite-blocklength slices, float64 gains."""
        return (gain.shape[1] == 1 and self.rate_model == "shannon" and self.ue_fbl_penalty is None
                and gain.dtype == _F64)

    def one_ru_rates_bps(self, gain_uk: np.ndarray, powers_w, sinr: np.ndarray, rate: np.ndarray) -> np.ndarray:
        """Rate (L, U, K) bit/s of a one-RU Shannon link (``one_ru_shannon``) at each of the L powers per
        PRB ``powers_w`` (W), written into ``rate`` and returned; ``sinr`` (U, K) receives the last
        power's SINR. The operations of ``sinr`` and ``prb_rate_bps``: two compiled loops
        (``simcore.decision_fast``) around one numpy log2. gain_uk (U, K); every array C-contiguous
        float64."""
        fast = _fast or _load_fast()
        q = float(self.quant_noise_w[0])
        for lv, p in enumerate(powers_w):
            fast.one_ru_sinr(gain_uk, float(p), self.noise_w, q, self.snr_gap, sinr, rate[lv])
        np.log2(rate, out=rate)
        fast.shannon_rate(rate, self.max_se, self.prb_bandwidth_hz, rate)
        return rate

    def estimated_prb_rate_bps(self, gain: np.ndarray, serving_ru: np.ndarray,
                               ru_power_w: np.ndarray, ues: np.ndarray | None = None,
                               out: tuple[np.ndarray, np.ndarray] | None = None,
                               data_bits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-UE per-PRB CSI view: (rate bit/s, SINR) on the serving RU, shapes (U, K).

        Assumes equal power per PRB on every RU and full interference from the other RUs: the
        conservative estimate a scheduler can form before it knows the other RUs' decisions.
        ``ues``: when ``gain`` and ``serving_ru`` hold only some UEs' rows, their UE indices (each
        row depends on its own UE only). ``out``: (rate, SINR) float64 (U, K) arrays to write them
        into (returned), used by a one-RU Shannon link without finite-blocklength slices; with
        ``data_bits`` (U,) too, only the rate rows of the UEs with data_bits > 0 are written (the
        others keep what they held: for a scheduler that reads those rows only), the second array
        is work space and no SINR is returned (None).
        """
        n_ue, n_ru, n_prb = gain.shape
        if self.one_ru_shannon(gain):
            # the same operations with two compiled loops around numpy's log2 (decision_fast)
            p0 = float(ru_power_w[0]) / n_prb  # (the float64 division numpy does)
            rate, sinr = out if out is not None else (np.empty((n_ue, n_prb)), np.empty((n_ue, n_prb)))
            fast = _fast or _load_fast()
            if out is not None and data_bits is not None:  # log2 over the packed rows only
                m = fast.one_ru_rate_rows(gain[:, 0, :], p0, self.noise_w, float(self.quant_noise_w[0]),
                                          self.snr_gap, data_bits, sinr)
                np.log2(sinr[:m], out=sinr[:m])
                fast.shannon_rate_rows(sinr, data_bits, self.max_se, self.prb_bandwidth_hz, rate)
                return rate, None
            self.one_ru_rates_bps(gain[:, 0, :], (p0,), sinr, rate[None])
            return rate, sinr
        p = ru_power_w / n_prb  # (R,)
        if n_ru == 1:  # every UE on RU 0 at one power, no interference: scalars broadcast the same values
            sinr = self.sinr(gain[:, 0, :], p[0], 0)
        else:
            g_serv = gain[np.arange(n_ue), serving_ru, :]  # (U, K)
            interference = self.interference_w(gain, serving_ru, np.repeat(p[:, None], n_prb, axis=1))
            sinr = self.sinr(g_serv, p[serving_ru][:, None], serving_ru[:, None], interference)
        if self.ue_fbl_penalty is None:
            return self.prb_rate_bps(sinr), sinr
        return self.prb_rate_bps(sinr, (np.arange(n_ue) if ues is None else ues)[:, None]), sinr


CQI_EFFICIENCY_WITH_ZERO = np.concatenate([[0.0], CQI_EFFICIENCY])
_F64 = np.dtype(np.float64)
_fast = None  # simcore.decision_fast, imported on first use (numba: about a second to import)


def _load_fast():
    global _fast
    from . import decision_fast
    _fast = decision_fast
    return _fast


def cqi_gap_for_ber(ber: float) -> float:
    """M-QAM SNR gap for a bit-error-rate target: Gamma = -ln(5 BER) / 1.5 (Goldsmith & Chua)."""
    return -math.log(5.0 * ber) / 1.5


def sinr_to_cqi(sinr: np.ndarray, gap: float) -> np.ndarray:
    """CQI 0..15: the highest CQI whose efficiency is <= log2(1 + SINR / gap)."""
    se = np.log2(1.0 + np.maximum(sinr, 0.0) / gap)
    return np.searchsorted(CQI_EFFICIENCY, se, side="right")


# -------------------------------------------------------------------------------- the PHY
class PhyTtiResult:
    """What the PHY reports for one TTI. Shapes (R, K).

    ``prb_sinr``: linear SINR at the owner; NaN where idle. ``prb_bits``: bits correctly delivered
    on the PRB this TTI (0 where idle); a PHY may pass a function that computes them instead, called
    on first read (the link-to-system model reads only the SINR: the built-in PHY's rate is then
    never computed).
    """

    __slots__ = ("prb_sinr", "_bits")

    def __init__(self, prb_sinr: np.ndarray, prb_bits):
        self.prb_sinr = prb_sinr
        self._bits = prb_bits

    @property
    def prb_bits(self) -> np.ndarray:
        if callable(self._bits):
            self._bits = self._bits()
        return self._bits


class BuiltinPhy:
    """The numpy PHY: SINR and rate straight from the engine's channel through ``LinkModel``.

    Single-RU cells take a compiled path (``simcore.tti_fast``): the SINR of every active PRB in one
    call, and for the Shannon rate (no finite-blocklength slice) its bits in one more call around
    numpy's log2; the same values as ``LinkModel.sinr`` and ``LinkModel.prb_bits``, bit for bit.
    """

    name = "builtin"

    def __init__(self):  # no parameters: `phy.params` must be empty (checked by simcore.plugins)
        self.link: LinkModel | None = None

    def open(self, scenario, geometry, link: LinkModel, *, channel=None, serving_ru=None) -> None:
        self.link = link
        # (the compiled Shannon bits: the same operations as spectral_efficiency's shannon branch)
        self._shannon = link.rate_model == "shannon" and link.ue_fbl_penalty is None
        self._quant_w = float(link.quant_noise_w[0])
        self._bits_per_se = link.prb_bandwidth_hz * link.tti_s

    def step(self, tti: int, allocation, gain: np.ndarray) -> PhyTtiResult:
        link = self.link
        owner = allocation.prb_owner
        if gain.shape[1] != 1:
            sinr = link.prb_sinr(gain, owner, allocation.power_w)
            return PhyTtiResult(sinr, lambda: link.prb_bits(sinr, allocation.prb_owner))
        sinr = np.empty(owner.shape)
        x = np.empty(owner.shape[1])
        n = tti_fast.one_ru_sinr(gain, owner, allocation.power_w, link.noise_w, self._quant_w, link.snr_gap, sinr, x)
        if self._shannon:
            def bits() -> np.ndarray:
                out = np.empty(owner.shape)
                tti_fast.shannon_bits(np.log2(x[:n]), owner, link.max_se, self._bits_per_se, out)
                return out
        else:
            def bits() -> np.ndarray:
                out = np.zeros(owner.shape)
                k = (owner[0] >= 0).nonzero()[0]
                out[0, k] = link.prb_bits(sinr[0, k], owner[0, k])
                return out
        return PhyTtiResult(sinr, bits)

    def close(self) -> None:
        pass
