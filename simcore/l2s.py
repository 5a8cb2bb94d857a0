"""Link-to-system (L2S) model of the built-in PHY: MCS choice, block errors, HARQ, outer loop.

Switched on by ``phy.l2s.enabled`` (built-in PHY only; ns-3 has its own). Described for users in
``docs/phy.md``; in short, for every UE u holding n PRBs in TTI k:

**Modulation and coding.** The MCS set is the 15 entries of TS 38.214 Table 5.2.2.1-2 (the CQI
table the ``cqi`` rate model uses): modulation order Qm (QPSK 1-6, 16QAM 7-9, 64QAM 10-15) and
efficiency e = Qm R bits per channel use. A transport block (TB) of MCS j on n PRBs has
N = n B_PRB T_TTI channel uses (180 per PRB at every numerology, the Shannon convention of the
other rate models) and carries K = e_j N bits.

**Blocks and their data bits.** One block per UE over all its PRBs, or (``tb_prbs`` N) one per UE
per group of N consecutive PRBs of an RU, each with its own MCS and error draw (an LTE carrier).
A block carries K data bits (``tbs: nominal``, less ``crc_bits`` per block and code block, in whole
bytes) or LTE's transport block size of the LTE MCS its CQI maps to (``tbs: lte``, TS 36.213); the
error draw uses the MCS's code rate either way.

**Effective SINR (MIESM).** The SINRs rho_k of the block's PRBs map to one SINR through the
mutual information of the block's modulation: rho_eff = I_Q^-1(mean_k I_Q(rho_k)), with I_Q the
BICM mutual information of Gray-mapped square QAM (Caire, Taricco, Biglieri 1998), computed here
once by Gauss-Hermite quadrature (a square QAM with Gray labels is two independent PAMs).

**Block error probability.** The normal approximation of the finite-blocklength error probability
(Polyanskiy, Poor, Verdu 2010) with the MI of the modulation in place of the Gaussian capacity, at
the SINR lowered by a coding gap Gamma_c (``coding_gap_db``, one value or one per modulation: a
practical turbo/LDPC code against the approximation). A TB longer than ``code_block_bits`` is cut into C equal code blocks, all of which
must decode:

    BLER_cb = Q((N_c I_Q(rho / Gamma_c) - K_c) / sqrt(N_c V(rho / Gamma_c))),  N_c = N / C, K_c = K / C
    V(rho) = log2(e)^2 (1 - (1 + rho)^-2)  (the Gaussian channel's dispersion, bits^2)
    BLER = 1 - (1 - BLER_cb)^C

**MCS choice.** From the SINR the transmitter believes (the CSI report, ``phy.csi``: measured every
``period_tti`` TTIs, used ``delay_tti`` TTIs later; with period 1 and delay 0 the SINR of the TTI
itself), lowered by the outer-loop offset Delta_u: the highest MCS whose BLER at that effective
SINR is at most ``bler_target``; none (the PRBs stay unused) if even MCS 1 misses it. Or, with a
CQI table (``cqi_sinr_db``), the highest CQI whose SINR the believed one reaches: a table given
per CQI, or per LTE MCS and then reduced by LTE's reporting rule (``lte_cqi_thresholds_db``).

**HARQ.** ``processes`` stop-and-wait processes per UE. A transmission occupies its process for
``rtt_tti`` TTIs (feedback and the earliest retransmission). A NACKed block is retransmitted, with
priority over new data, in the first TTI from then on in which the UE holds PRBs; it keeps its size
and MCS and is sent on whatever PRBs the UE holds. Soft combining (``combining``):
- ``ir`` (incremental redundancy): the mutual information accumulates: the numerator becomes
  sum_t N_t I_Q(rho_t) - K and the dispersion sum_t N_t V(rho_t) (per code block);
- ``chase``: the same coded bits again, combined at the SINR level: rho = sum_t rho_eff,t;
- ``none``: each transmission decodes on its own.
A block that fails ``max_transmissions`` times is, with ``on_failure: drop``, lost: every packet
with bits in it is dropped (reason ``harq``), as an RLC in unacknowledged mode loses it; with
``on_failure: requeue`` it starts a new round of transmissions (an RLC in acknowledged mode resends it).

**In-order delivery.** Bits reach the UE's RLC in order: a block decoded while an earlier one is
still in HARQ waits for it (reordering). The bits of a block in flight stay in the UE's buffer
(they count in ``buffer_bits``) until they are delivered or dropped: conservation holds with HARQ.

**Outer loop (OLLA).** Delta_u rises by ``step_up_db`` on a NACK of a first transmission and falls
by step_up * target / (1 - target) on an ACK of one, so that it settles where the first-transmission
BLER equals the target (Pedersen et al., VTC 2005); clipped to [-max_offset_db, max_offset_db].

Block errors are drawn from the L2S's own random stream (spawned from the scenario seed after the
others), so turning the model on moves no traffic or channel draw.
"""

from __future__ import annotations

import bisect
import functools
import importlib.util
import math

import numpy as np
from scipy.special import ndtr

from .phy import CQI_EFFICIENCY

#: numba is installed: the per-TTI step can run compiled (simcore.l2s_fast, imported by the first
#: model that uses it: importing numba takes about a second)
HAVE_NUMBA = importlib.util.find_spec("numba") is not None
#: Use the compiled kernels when numba is installed (``LinkToSystem(fast=...)`` overrides it per model).
FAST = True

#: Modulation order (bits per symbol) of CQI/MCS 1..15, TS 38.214 Table 5.2.2.1-2.
MCS_QM = np.array([2, 2, 2, 2, 2, 2, 4, 4, 4, 6, 6, 6, 6, 6, 6])
#: Efficiency (bits per channel use) of MCS 1..15 (= the CQI table's).
MCS_EFFICIENCY = CQI_EFFICIENCY
#: The modulations used and, per MCS, the index of its modulation in MODULATIONS.
MODULATIONS = (2, 4, 6)
MCS_MOD = np.searchsorted(MODULATIONS, MCS_QM)
LOG2_E = 1.0 / math.log(2.0)

#: Control channel (PDCCH/PCFICH) loss probability against the QPSK effective SINR of the UE's
#: PRBs (dB): the curve of 3GPP R4-081920 as ns-3's LTE model uses it; 0 above -1 dB, the -10 dB
#: value below -10 dB.
CONTROL_LOSS_DB = np.array([-10.0, -8.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0])
CONTROL_LOSS_P = np.array([0.87, 0.48, 0.18, 0.09, 0.038, 0.015, 0.005, 0.0])

#: LTE transport block sizes (bits), 3GPP TS 36.213 Table 7.1.7.2.1-1, for N_PRB = 1..6 (columns)
#: and I_TBS 0..26 (rows): what ns-3 LTE (and so ns3-shm, one carrier per 6 PRBs) sends.
LTE_TBS_6PRB = np.array([
    [16, 32, 56, 88, 120, 152], [24, 56, 88, 144, 176, 208], [32, 72, 144, 176, 208, 256],
    [40, 104, 176, 208, 256, 328], [56, 120, 208, 256, 328, 408], [72, 144, 224, 328, 424, 504],
    [88, 176, 256, 392, 504, 600], [104, 224, 328, 472, 584, 712], [120, 256, 392, 536, 680, 808],
    [136, 296, 456, 616, 776, 936], [144, 328, 504, 680, 872, 1032], [176, 376, 584, 776, 1000, 1192],
    [208, 440, 680, 904, 1128, 1352], [224, 488, 744, 1000, 1256, 1544], [256, 552, 840, 1128, 1416, 1736],
    [280, 600, 904, 1224, 1544, 1800], [328, 632, 968, 1288, 1608, 1928], [336, 696, 1064, 1416, 1800, 2152],
    [376, 776, 1160, 1544, 1992, 2344], [408, 840, 1288, 1736, 2152, 2600], [440, 904, 1384, 1864, 2344, 2792],
    [488, 1000, 1480, 1992, 2472, 2984], [520, 1064, 1608, 2152, 2664, 3240], [552, 1128, 1736, 2280, 2856, 3496],
    [584, 1192, 1800, 2408, 2984, 3624], [616, 1256, 1864, 2536, 3112, 3752], [712, 1480, 2216, 2984, 3752, 4392],
], dtype=float)
#: I_TBS of MCS 1..15 with ``tbs: lte``: CQI j goes to the highest LTE MCS whose efficiency is not
#: above the CQI's, LTE MCS 2(j - 1) (ns-3's LteAmc rule), whose I_TBS is TS 36.213 Table 7.1.7.1-1's.
LTE_ITBS = np.array([0, 2, 4, 6, 8, 9, 11, 13, 15, 16, 18, 20, 22, 24, 26])


def lte_tbs_bits(mcs, n_prb) -> np.ndarray:
    """Bits of an LTE transport block of MCS ``mcs`` (1..15, via LTE_ITBS) on ``n_prb`` PRBs: the table
    up to 6 PRBs, and beyond it the 6-PRB block's bits per PRB (the table grows about linearly)."""
    itbs = LTE_ITBS[np.asarray(mcs) - 1]
    n = np.asarray(n_prb)
    small = LTE_TBS_6PRB[itbs, np.clip(n, 1, 6) - 1]
    return np.where(n <= 6, small, LTE_TBS_6PRB[itbs, 5] * n / 6.0)


#: SINR grid (dB) of the mutual-information tables (uniform: a lookup is an index and a weight).
_GRID_STEP_DB = 0.1
_GRID_DB = -30.0 + _GRID_STEP_DB * np.arange(801)
_TINY = 1e-300  # a linear SINR standing for 0 (-3000 dB) where logarithms are taken
#: Gauss-Hermite nodes: the tables are then within 1.2e-4 bit of 96 nodes' (about 0.4 s, once per process).
_GH_NODES = 32


def pam_bicm_mi(levels: int, snr: np.ndarray) -> np.ndarray:
    """BICM mutual information (bits per real symbol) of Gray-labelled ``levels``-PAM with unit
    average energy over real AWGN at signal-to-noise ratio ``snr`` (linear array), by Gauss-Hermite
    quadrature over the noise: sum over label bits b of 1 - E[log2(sum_x p(y|x) / sum_{x: b(x)=b(x0)} p(y|x))]."""
    m = int(round(math.log2(levels)))
    amp = np.arange(-(levels - 1), levels, 2, dtype=float)
    amp /= math.sqrt(np.mean(amp**2))
    gray = np.arange(levels) ^ (np.arange(levels) >> 1)
    bits = (gray[:, None] >> np.arange(m)) & 1  # (L, m) label bits of each point (left to right)
    t, w = np.polynomial.hermite.hermgauss(_GH_NODES)
    snr = np.asarray(snr, dtype=float)
    sigma = np.sqrt(1.0 / snr)  # noise standard deviation (unit signal energy)
    out = np.zeros(snr.shape)
    for x0 in range(levels):
        # y = a[x0] + sqrt(2) sigma t;  log p(y|x) up to a constant: -(y - a_x)^2 / (2 sigma^2)
        y = amp[x0] + math.sqrt(2.0) * sigma[..., None] * t  # (..., nodes)
        d = -((y[..., None] - amp) ** 2) / (2.0 * sigma[..., None, None] ** 2)  # (..., nodes, L)
        d -= d.max(axis=-1, keepdims=True)
        p = np.exp(d)
        total = p.sum(axis=-1)
        for b in range(m):
            same = p[..., bits[:, b] == bits[x0, b]].sum(axis=-1)
            out += (1.0 - (np.log2(total / same) * w).sum(axis=-1) / math.sqrt(math.pi)) / levels
    return out


@functools.cache
def mi_tables() -> tuple[np.ndarray, list[int]]:
    """(3, G) BICM mutual information of QPSK, 16QAM, 64QAM (bits per complex symbol) on _GRID_DB,
    and for each the end of its strictly increasing part (above it the MI is flat to rounding)."""
    snr = 10.0 ** (_GRID_DB / 10.0)
    # square QAM of unit energy = two PAMs of energy 1/2, each with noise variance 1 / (2 rho): SNR rho
    table = np.stack([2.0 * pam_bicm_mi(2 ** (q // 2), snr) for q in MODULATIONS])
    table.flags.writeable = False
    flat = np.diff(table, axis=1) <= 1e-12
    top = [int(np.argmax(f)) + 1 if f.any() else table.shape[1] for f in flat]
    return table, top


def bicm_mi(sinr, mod: int) -> np.ndarray:
    """Mutual information (bits per channel use) of modulation index ``mod`` (0 QPSK, 1 16QAM,
    2 64QAM) at linear SINR ``sinr``; 0 for SINR <= 0."""
    with np.errstate(divide="ignore"):
        x = 10.0 * np.log10(np.asarray(sinr, dtype=float))
    return np.interp(x, _GRID_DB, mi_tables()[0][mod], left=0.0)


def bicm_mi_all(sinr) -> np.ndarray:
    """(3, ...) ``bicm_mi`` of QPSK, 16QAM and 64QAM at once (one pass over the uniform grid)."""
    table = mi_tables()[0]
    x = 10.0 * np.log10(np.maximum(sinr, _TINY))  # SINR 0 -> far below the grid (no np.errstate: it costs more)
    pos = np.minimum(np.fmax((x - _GRID_DB[0]) / _GRID_STEP_DB, 0.0), _GRID_DB.size - 1.0)
    i = np.minimum(pos.astype(np.int64), _GRID_DB.size - 2)
    f = pos - i
    out = table[:, i] * (1.0 - f) + table[:, i + 1] * f
    out[:, ~(x >= _GRID_DB[0])] = 0.0  # below the grid (and SINR 0): nothing, as bicm_mi
    return out


def bicm_mi_inverse(mi, mod: int) -> np.ndarray:
    """Linear SINR at which modulation ``mod`` has mutual information ``mi`` (inverse of ``bicm_mi``
    on the table's strictly increasing part)."""
    table, top = mi_tables()
    x = np.interp(mi, table[mod, :top[mod]], _GRID_DB[:top[mod]])
    return 10.0 ** (x / 10.0)


def miesm(sinr_prbs, mod: int) -> float:
    """Effective SINR (linear) of a block over PRBs with SINRs ``sinr_prbs`` for modulation ``mod``."""
    return float(bicm_mi_inverse(bicm_mi(sinr_prbs, mod).mean(), mod))


def dispersion(sinr) -> np.ndarray:
    """Gaussian channel dispersion V(rho) = log2(e)^2 (1 - (1 + rho)^-2), bits^2 per channel use."""
    one = 1.0 + np.asarray(sinr, dtype=float)
    return LOG2_E**2 * (1.0 - 1.0 / (one * one))


def code_blocks(tb_bits, code_block_bits: int) -> np.ndarray:
    """Code blocks a TB of ``tb_bits`` is cut into (at least 1)."""
    return np.maximum(1, np.ceil(np.asarray(tb_bits, dtype=float) / code_block_bits))


def block_error_rate(info, spread, tb_bits, code_block_bits: int) -> np.ndarray:
    """BLER of a TB of K = ``tb_bits`` from sum_t N_t I_t (``info``, bits) and sum_t N_t V_t
    (``spread``, bits^2) over its transmissions: the normal approximation per code block, each
    holding 1/C of all three, C = ceil(K / code_block_bits) blocks that must all decode."""
    c = code_blocks(tb_bits, code_block_bits)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (info - tb_bits) / np.sqrt(spread * c)  # per block: (info/C - K/C) / sqrt(spread/C)
    z = np.where(spread > 0, z, np.where(info > tb_bits, np.inf, -np.inf))
    return 1.0 - (1.0 - ndtr(-z)) ** c  # ndtr(-z) = Q(z), one code block


def bler(sinr_eff, mcs, n_uses, coding_gap: float, code_block_bits: int) -> np.ndarray:
    """BLER of one transmission of MCS ``mcs`` (1..15) over ``n_uses`` channel uses at effective
    SINR ``sinr_eff`` (linear, for the MCS's modulation); ``coding_gap`` linear Gamma_c. Broadcasts."""
    mcs = np.asarray(mcs)
    rho = np.asarray(sinr_eff, dtype=float) / coding_gap
    mi = np.choose(MCS_MOD[mcs - 1], [bicm_mi(rho, 0), bicm_mi(rho, 1), bicm_mi(rho, 2)])
    k = MCS_EFFICIENCY[mcs - 1] * n_uses
    return block_error_rate(n_uses * mi, n_uses * dispersion(rho), k, code_block_bits)


def mcs_thresholds_db(n_prbs, uses_per_prb, bler_target: float, coding_gap,
                      code_block_bits: int) -> np.ndarray:
    """(n_prbs + 1, 15) effective SINR (dB) at which MCS j on n PRBs has BLER = ``bler_target``
    (row 0 unused), by bisection: the BLER of a fixed MCS falls with the SINR, so the MCS choice is
    a comparison with this table. ``uses_per_prb``, ``coding_gap`` (linear): one, or (15,) per MCS.
    ``n_prbs`` may also be an array of PRB counts (>= 1): then one row per count, in that order."""
    if np.ndim(n_prbs) == 0:
        counts = np.arange(n_prbs + 1, dtype=float)
        counts[0] = 1.0
    else:
        counts = np.asarray(n_prbs, dtype=float)
    n = counts[:, None] * uses_per_prb
    mcs = np.arange(1, 16)[None, :]
    lo, hi = np.full((counts.size, 15), -30.0), np.full((counts.size, 15), 50.0)
    for _ in range(50):  # 80 dB / 2^50: exact to rounding
        mid = 0.5 * (lo + hi)
        above = bler(10.0 ** (mid / 10.0), mcs, n, coding_gap, code_block_bits) > bler_target
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return hi


def lte_cqi_thresholds_db(mcs_sinr_db) -> np.ndarray:
    """(15,) SINR (dB) from which CQI 1..15 is reported, from ``mcs_sinr_db`` (29,): the SINR at which a
    one-PRB block of LTE MCS 0..28 decodes at the target BLER, by LTE's reporting rule as ns-3's
    ``LteAmc`` (MI error model) applies it:

    - the MCS reported is the highest m such that MCS 0..m all decode (MCS are tried upwards, the
      first failure stops), so MCS m needs the running maximum of the SINRs up to m;
    - m maps to the CQI of efficiency strictly below MCS m's: LTE MCS 2(c - 1) has CQI c's efficiency
      (3GPP R1-081483's MCS table against TS 36.213 Table 7.2.3-1), so CQI c (1..14) needs MCS 2c - 1;
      CQI 15 needs all 29 MCSs (MCS 28);
    - MCS 0 alone is CQI 0 (out of range), as is no MCS at all.
    """
    need = np.maximum.accumulate(np.asarray(mcs_sinr_db, dtype=float))
    return np.r_[need[1:28:2], need[28]]


class _TableThresholds:
    """A fixed CQI table (``cqi_sinr_db``): the same 15 thresholds whatever the block's PRB count."""

    def __init__(self, table):
        table = np.asarray(table, dtype=float)
        self.row = lte_cqi_thresholds_db(table) if table.size == 29 else table
        self.row.flags.writeable = False

    def __getitem__(self, n_prb) -> np.ndarray:
        if np.ndim(n_prb) == 0:
            return self.row
        return np.broadcast_to(self.row, (np.size(n_prb), 15))


_SQRT2 = math.sqrt(2.0)
_GRID_LO_DB = float(_GRID_DB[0])
_GRID_LAST = float(_GRID_DB.size - 1)
_CONTROL_LOSS = (CONTROL_LOSS_DB.tolist(), CONTROL_LOSS_P.tolist())


@functools.cache
def _mi_lists() -> tuple[list[float], ...]:
    """The rows of ``mi_tables`` as Python lists, for lookups one value at a time."""
    return tuple(row.tolist() for row in mi_tables()[0])


def _mi_scalar(row: list[float], sinr: float) -> float:
    """``bicm_mi`` of one linear SINR on one table row (the same interpolation in Python floats)."""
    if not sinr > 0:
        return 0.0
    pos = (10.0 * math.log10(sinr) - _GRID_LO_DB) / _GRID_STEP_DB
    if pos < 0.0:
        return 0.0
    if pos >= _GRID_LAST:
        return row[-1]
    i = int(pos)
    f = pos - i
    return row[i] * (1.0 - f) + row[i + 1] * f


def _dispersion_scalar(sinr: float) -> float:
    one = 1.0 + sinr
    return LOG2_E**2 * (1.0 - 1.0 / (one * one))


def _control_loss_scalar(x_db: float) -> float:
    """CONTROL_LOSS_P at ``x_db`` (linear between the points, held beyond them), as ``np.interp``."""
    xs, ps = _CONTROL_LOSS
    if x_db <= xs[0]:
        return ps[0]
    if x_db >= xs[-1]:
        return ps[-1]
    i = bisect.bisect_right(xs, x_db) - 1
    return ps[i] + (ps[i + 1] - ps[i]) * (x_db - xs[i]) / (xs[i + 1] - xs[i])


#: Counters the compiled first transmissions return, in its order (l2s_fast.S_*).
_FAST_STATS = ("blocks", "transmissions", "first_nacks", "nacks", "no_process_ttis", "no_mcs_ttis", "no_payload_ttis")
_NO_DRAWS = np.empty(0)  # the error draws without block errors
_NO_UES, _NO_BITS = np.empty(0, dtype=np.int64), np.empty(0)  # no UE sent in the TTI


class _Thresholds:
    """``mcs_thresholds_db`` rows computed when first needed (a run uses few PRB counts: with
    ``worst_prb`` only one) and shared by every model of the process with the same parameters.
    Each row's bisection is independent of the others: the rows are those of the full table."""

    _shared: dict = {}

    def __init__(self, uses_per_prb: np.ndarray, bler_target: float, coding_gap: np.ndarray, code_block_bits: int):
        self.args = (uses_per_prb, bler_target, coding_gap, code_block_bits)
        key = (tuple(np.broadcast_to(uses_per_prb, (15,))), bler_target,
               tuple(np.broadcast_to(coding_gap, (15,))), code_block_bits)
        self.rows: dict[int, np.ndarray] = self._shared.setdefault(key, {})

    def __getitem__(self, n_prb) -> np.ndarray:
        """(15,) for one PRB count, (A, 15) for an array of them."""
        scalar = np.ndim(n_prb) == 0
        need = sorted({int(n) for n in np.atleast_1d(n_prb)} - self.rows.keys())
        if need:
            for n, row in zip(need, mcs_thresholds_db(np.array(need), *self.args)):
                row.flags.writeable = False
                self.rows[n] = row
        if scalar:
            return self.rows[int(n_prb)]
        return np.stack([self.rows[int(n)] for n in n_prb]) if np.size(n_prb) else np.empty((0, 15))


class _Block:
    """One transport block from its first transmission until it is resolved (ACK or given up)."""

    __slots__ = ("lo", "hi", "bits", "uses", "mcs", "proc", "n_tx", "info", "spread", "chase", "ready", "state")

    def __init__(self, lo, hi, bits, uses, mcs, proc):
        self.lo, self.hi, self.bits, self.uses, self.mcs, self.proc = lo, hi, bits, uses, mcs, proc
        self.n_tx, self.info, self.spread, self.chase = 0, 0.0, 0.0, 0.0
        self.ready = 0  # TTI from which a retransmission may go
        self.state = IN_FLIGHT


IN_FLIGHT, ACKED, FAILED = 0, 1, 2


class LinkToSystem:
    """The L2S of one run (module docstring): MCS, block errors, HARQ, OLLA, in-order delivery.

    Per TTI the engine calls ``step`` with the allocation, the SINR of every active PRB (from the
    PHY) and the SINR the transmitter believes; it returns the bits each UE's RLC may now take in
    order (the engine serves them from the FIFO) after dropping the packets of lost blocks itself.
    """

    def __init__(self, cfg, prb_bandwidth_hz: float, tti_s: float, n_ues: int, buffers, rng: np.random.Generator,
                 drop_reason: int, fast: bool | None = None):
        self.cfg = cfg
        self.buffers = buffers
        self.rng = rng
        self.drop_reason = drop_reason
        overhead = np.broadcast_to(np.asarray(cfg.overhead_fraction, dtype=float), (3,))  # one, or per modulation
        self.uses_per_prb = prb_bandwidth_hz * tti_s * (1.0 - overhead[MCS_MOD])  # (15,) data channel uses per MCS
        gap_db = np.broadcast_to(np.asarray(cfg.coding_gap_db, dtype=float), (3,))  # one, or per modulation
        self.gap_mcs = 10.0 ** (gap_db[MCS_MOD] / 10.0)  # (15,) linear Gamma_c of each MCS
        if cfg.cqi_sinr_db is not None:  # a given CQI table
            self.thr_db = _TableThresholds(cfg.cqi_sinr_db)
        else:  # the BLER model's own: MCS j from the SINR at which its block meets bler_target
            self.thr_db = _Thresholds(self.uses_per_prb, cfg.bler_target, self.gap_mcs, cfg.code_block_bits)
        mi_tables()  # set-up work here, not in the first TTI: once per process
        self._thr1 = self.thr_db[1] if cfg.mcs_selection == "worst_prb" else None  # the one row worst_prb uses
        self.crc_bits = cfg.crc_bits
        self.lte_tbs = cfg.tbs == "lte"
        self.tb_prbs = cfg.tb_prbs
        self._group_of: np.ndarray | None = None  # (R, K) block group of each PRB (tb_prbs), on first use
        self.worst_prb = cfg.mcs_selection == "worst_prb"
        self.lowest_mcs = cfg.below_range == "lowest_mcs"
        self.control_errors = cfg.control_errors
        h = cfg.harq
        self.harq = h.enabled
        self.rtt = h.rtt_tti
        self.max_tx = h.max_transmissions
        self.combining = h.combining
        self.requeue = h.on_failure == "requeue"
        self.errors = cfg.block_errors
        self.olla = cfg.olla.enabled
        self.step_up = cfg.olla.step_up_db
        self.step_down = cfg.olla.step_up_db * cfg.bler_target / (1.0 - cfg.bler_target)
        self.max_offset = cfg.olla.max_offset_db
        # per UE: OLLA offset, where its blocks end, bits to serve (``tti``'s scratch): one array, row views
        self._ue_state = np.zeros((3, n_ues))
        self.offset_db = self._ue_state[0]  # OLLA Delta_u
        self.proc_free_at = np.zeros((n_ues, h.processes), dtype=np.int64)  # TTI a process is free from
        self.sent = self._ue_state[1]  # buffer offset up to which bits went into blocks
        self.retx_at = np.full(n_ues, np.iinfo(np.int64).max)  # earliest TTI a NACKed block may go again
        self.retx: list[list[_Block]] = [[] for _ in range(n_ues)]  # NACKed blocks, oldest first
        self.pending: list[list[_Block]] = [[] for _ in range(n_ues)]  # unresolved blocks, in buffer order
        self._direct: list[tuple[int, float]] = []  # (UE, end) of blocks decoded with none pending before
        self._stats = {"blocks": 0, "transmissions": 0, "first_nacks": 0, "nacks": 0, "lost_blocks": 0,
                       "requeued_blocks": 0, "no_process_ttis": 0, "no_mcs_ttis": 0}
        if self.crc_bits:
            self._stats["no_payload_ttis"] = 0  # blocks too small for their CRC: the PRBs stay unused
        self._counts = np.zeros(len(_FAST_STATS), dtype=np.int64)  # ``tti``'s counters, added to stats when read
        # the compiled step (simcore.l2s_fast)
        self.fast = (FAST and HAVE_NUMBA) if fast is None else fast
        if self.fast:
            from . import l2s_fast  # needs numba

            self._k = l2s_fast
            self._params_i = np.array([self.tb_prbs or 0, self.harq, self.olla, self.errors, self.control_errors,
                                       self.lte_tbs, self.lowest_mcs, self.crc_bits, cfg.code_block_bits, self.rtt,
                                       self.max_tx, self.requeue, 0], dtype=np.int64)
            self._params_f = np.array([self.step_up, self.step_down, self.max_offset, _GRID_LO_DB, _GRID_STEP_DB])
            self._mcs_table = np.stack([self.uses_per_prb, MCS_EFFICIENCY, MCS_MOD, self.gap_mcs, LTE_ITBS]).astype(float)
            self._mi_top = np.array(mi_tables()[1], dtype=np.int64)
            self._has_pending = np.zeros(n_ues, dtype=bool)  # mirrors "self.pending[u] is not empty"
            self._any_pending = False
        # ``tti``: the whole TTI compiled, for the worst-PRB MCS without HARQ (no block ever waits in
        # Python) when the generator's state can be stepped in place (it draws the block errors)
        self._pcg = None
        if self.fast and self.worst_prb and not self.harq and isinstance(rng, np.random.Generator):
            from .decision_fast import PcgState

            self._pcg = PcgState.of(rng)
        self.whole_tti = self._pcg is not None
        if self.whole_tti:  # its constants in one array (l2s_fast.C_*), its scratch sized on first use
            self._consts = np.concatenate([self._params_f, self._thr1, self._mcs_table.ravel(), LTE_TBS_6PRB.ravel(),
                                           CONTROL_LOSS_DB, CONTROL_LOSS_P, _GRID_DB, mi_tables()[0].ravel()])
            self._params_i = np.r_[self._params_i, self._mi_top]  # (l2s_fast.P_MI_TOP)
        self._scratch: tuple | None = None

    @property
    def stats(self) -> dict:
        """Counters: transport blocks, transmissions, NACKs, blocks lost or requeued, TTIs a block
        could not go (no HARQ process, no MCS, no payload)."""
        counts = self._counts
        if counts.any():
            for name, v in zip(_FAST_STATS, counts.tolist()):
                if v:
                    self._stats[name] += v
            counts[:] = 0
        return self._stats

    @property
    def in_flight_bits(self) -> float:
        """Bits in blocks not yet delivered (in HARQ or waiting for an earlier block)."""
        out = self.buffers.out_bits
        return float(sum(max(0.0, b.hi - max(b.lo, out[u])) for u, blocks in enumerate(self.pending) for b in blocks))

    # ------------------------------------------------------------------------------- one TTI
    def believed_sinr_fast(self, owner: np.ndarray, power_w: np.ndarray, report_sinr: np.ndarray,
                           equal_w: np.ndarray) -> np.ndarray:
        """(R, K) SINR the MCS is chosen from with CSI reports, compiled (``l2s_fast.believed_sinr``; needs ``fast``)."""
        return self._k.believed_sinr(owner, power_w, report_sinr, equal_w)

    def effective_sinr(self, row_of: np.ndarray, sinr: np.ndarray, n_row: np.ndarray) -> np.ndarray:
        """(A, 3) MIESM effective SINR of each of A blocks for each modulation; ``row_of`` (P,) the
        block of each PRB, ``sinr`` (P,) its SINR, ``n_row`` (A,) PRBs per block."""
        a = n_row.size
        out = np.empty((a, 3))
        table, top = mi_tables()
        mi = bicm_mi_all(sinr)  # (3, P)
        mean = np.bincount((row_of + a * np.arange(3)[:, None]).ravel(), weights=mi.ravel(), minlength=3 * a)
        mean = mean.reshape(3, a) / n_row
        for m in range(3):
            out[:, m] = np.interp(mean[m], table[m, :top[m]], _GRID_DB[:top[m]])
        return 10.0 ** (out / 10.0)

    def _groups(self, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
        """(R, K) block group of each PRB with ``tb_prbs`` (consecutive PRBs of one RU) and the number of groups."""
        if self._group_of is None or self._group_of.shape != shape:
            r, k = shape
            per_ru = -(-k // self.tb_prbs)
            self._group_of = np.arange(r)[:, None] * per_ru + np.arange(k)[None, :] // self.tb_prbs
        return self._group_of, int(self._group_of.max()) + 1

    def step(self, k: int, owner: np.ndarray, actual_sinr: np.ndarray, believed_sinr: np.ndarray,
             now_s: float, delivered_at_s: float) -> tuple[np.ndarray, np.ndarray]:
        """One TTI. ``owner`` (R, K) PRB owners; ``actual_sinr`` (R, K) the SINR the PRBs see;
        ``believed_sinr`` (R, K) the one the MCS is chosen from. Returns (bits the engine serves
        from each UE's FIFO, bits already served here) both (U,)."""
        if self.fast:
            return self._step_fast(k, owner, actual_sinr, believed_sinr, now_s, delivered_at_s)
        return self._step_reference(k, owner, actual_sinr, believed_sinr, now_s, delivered_at_s)

    def _step_fast(self, k: int, owner: np.ndarray, actual_sinr: np.ndarray, believed_sinr: np.ndarray,
                   now_s: float, delivered_at_s: float) -> tuple[np.ndarray, np.ndarray]:
        """``step`` with its array work in three compiled kernels (simcore.l2s_fast): the same results."""
        n_ues = self.offset_db.size
        capacity = np.zeros(n_ues)
        served_here = np.zeros(n_ues)
        buf = self.buffers
        kern = self._k
        pi = self._params_i
        pi[kern.P_K] = k
        table = mi_tables()[0]
        actual_db = 10.0 * np.log10(np.maximum(actual_sinr, _TINY))  # numpy's log10, as bicm_mi_all's
        ue_of, row_of, believed, ues, n_prb, eff_db, due, go, no_proc = kern.blocks_of_tti(
            owner, actual_db, believed_sinr, buf.enq_bits, buf.out_bits, self.sent, self.retx_at, self.proc_free_at,
            table, self._mi_top, _GRID_DB, pi, self._params_f)
        if not ues.size:
            return capacity, served_here
        eff_act = 10.0 ** (eff_db / 10.0)
        upto: dict[int, float] = {}  # (retransmissions) UE -> end of what it sent
        mark_ue, mark_hi = _NO_UES, _NO_BITS  # the UEs that sent, and those ends, for mark_sent
        if self.harq and due.any():  # retransmissions first, as the reference
            for i in np.flatnonzero(due).tolist():
                u = int(ues[i])
                upto[u] = self._retransmit(u, k, eff_act[i], int(n_prb[i]), eff_act[i, 0])
            # they moved HARQ processes: which new blocks may go, decided after them as the reference does
            more = (buf.enq_bits - np.maximum(self.sent, buf.out_bits))[ues] > 1e-6
            has_proc = (self.proc_free_at[ues] <= k).any(axis=1)
            no_proc = int((~due & ~has_proc & more).sum())
            go = ~due & has_proc & more
        self.stats["no_process_ttis"] += no_proc
        if go.any():
            mcs = self._choose_mcs(row_of, believed, ue_of, ues, n_prb,
                                   eff_act if believed_sinr is actual_sinr else None)
            if self.harq or self._any_pending:
                self._has_pending[:] = [bool(p) for p in self.pending]
            blk, st = kern.new_blocks(go, np.asarray(mcs, dtype=np.int64), n_prb, eff_act, self._mcs_table,
                                       LTE_TBS_6PRB, table, CONTROL_LOSS_DB, CONTROL_LOSS_P, pi, self._params_f)
            if blk.shape[0]:
                draws = self.rng.random(blk.shape[0]) if self.errors else _NO_DRAWS  # as the reference draws
                up_ue, up_hi, pend = kern.send_blocks(blk, draws, ues, buf.enq_bits, buf.out_bits, self.sent,
                                                       self.proc_free_at, self._has_pending, self.offset_db, capacity,
                                                       st, pi, self._params_f)
                if upto:  # after retransmissions: each UE's furthest end over both
                    for u, hi in zip(up_ue.tolist(), up_hi.tolist()):
                        upto[u] = max(upto.get(u, hi), hi)
                else:  # one row per UE, in order of its first block: what the dict would hold, in its order
                    mark_ue, mark_hi = up_ue, up_hi
                if pend.size:  # blocks that wait in HARQ (or behind one that does): objects, as the reference's
                    self._any_pending = True
                    self._keep_blocks(k, blk, pend)
            stats = self.stats
            for name, v in zip(_FAST_STATS, st.tolist()):
                if v:
                    stats[name] += v
        if upto:
            mark_ue, mark_hi = np.fromiter(upto, np.int64, len(upto)), np.fromiter(upto.values(), float, len(upto))
        if mark_ue.size:  # packets below the furthest end went on air (a UE's blocks of the TTI mark no more)
            buf.mark_sent(mark_ue, mark_hi, now_s)
            if self._any_pending:
                for u in mark_ue.tolist():
                    if self.pending[u]:
                        self._resolve(u, capacity, served_here, now_s, delivered_at_s)
        return capacity, served_here

    def tti(self, k: int, owner: np.ndarray, actual_sinr: np.ndarray, power_w: np.ndarray,
            report_sinr: np.ndarray | None, equal_w: np.ndarray, now_s: float, delivered_at_s: float,
            ue_f: np.ndarray, decay: float, per_bit: float, row: int, rec) -> None:
        """``step`` and the engine's end of the TTI (``tti_fast.finish``) in three compiled calls, when
        ``whole_tti``: the same results. ``report_sinr`` (U, K) the CSI report's SINR the believed SINR
        is scaled from (None: ideal CSI, the PRBs' own SINR), ``equal_w`` (R,) the equal power per PRB;
        ``ue_f`` (5, U) the engine's per-UE rows (l2s_fast.E_*: bits served, none served here, total,
        interval, throughput average), ``decay`` and ``per_bit`` the average's, ``row`` and ``rec``
        the TTI record's row and recorder (``TtiRecorder``)."""
        kern = self._k
        pi = self._params_i
        pi[kern.P_K] = k
        sc = self._scratch
        if sc is None or sc[1].shape != (2,) + owner.shape:
            n = owner.size
            # l2s_fast.tti_blocks' layout: log10's argument (2, R, K), believed SINR (dB), effective SINR (dB / 10
            # and linear, (n, 3) each)
            floats = np.empty(9 * n)
            sc = self._scratch = (floats, floats[:2 * n].reshape((2,) + owner.shape), floats[3 * n:6 * n].reshape(n, 3),
                                  floats[6 * n:].reshape(n, 3), np.empty((4, n), dtype=np.int64), np.ones((1, 1)))
        floats, log10_sinr, eff_tenth, eff_act, work, no_report = sc
        ideal = report_sinr is None
        kern.tti_sinr(owner, actual_sinr, power_w, no_report if ideal else report_sinr, equal_w, ideal, floats)
        np.log10(log10_sinr, out=log10_sinr)  # numpy's, as the reference's (no compiled transcendental)
        buf = self.buffers
        p, a, n_go = kern.tti_blocks(owner, floats, buf.uf, self._ue_state, self._consts, pi, work)
        if n_go:
            np.power(10.0, eff_tenth[:a], out=eff_act[:a])  # 10 ** (dB / 10), numpy's as the reference's
        else:
            a = 0  # nothing to send
        pk = buf.pk
        kern.tti_send(p, a, work, floats, self._ue_state, self._consts, pi, self._pcg.state, self._counts, buf.uf,
                      buf.ui, pk.f, pk.i, pk.c, pk.base, now_s, delivered_at_s, owner, ue_f, decay, per_bit, row,
                      rec.ue_f64, rec.prb_owner, rec.prb_f32, actual_sinr, power_w)

    def _keep_blocks(self, k: int, blk: np.ndarray, pend: np.ndarray) -> None:
        """The new blocks of TTI ``k`` that wait in HARQ: rows (block row, UE, lo, hi, process, failed)
        ``pend`` of ``blk`` (``l2s_fast.new_blocks``), kept as the reference's ``_first_transmissions`` keeps them."""
        for (i, u, lo, hi, proc, failed) in pend.tolist():
            _, mcs, uses, bits, _, info, spread, _, chase = blk[int(i)].tolist()
            u = int(u)
            b = _Block(lo, hi, bits, uses, int(mcs), int(proc))
            b.n_tx = 1
            if not self.harq:
                b.state = ACKED
            elif failed:
                b.info, b.spread, b.chase = info, spread, chase
                self._nacked(u, b, k)
            else:
                b.state = ACKED
                self.proc_free_at[u, b.proc] = k + self.rtt
            self.pending[u].append(b)

    def _step_reference(self, k: int, owner: np.ndarray, actual_sinr: np.ndarray, believed_sinr: np.ndarray,
                        now_s: float, delivered_at_s: float) -> tuple[np.ndarray, np.ndarray]:
        """``step`` in numpy and Python: the reference the compiled path is checked against."""
        n_ues = self.offset_db.size
        capacity = np.zeros(n_ues)
        served_here = np.zeros(n_ues)
        buf = self.buffers
        # only UEs with something to send cost anything: a NACKed block due, or bits in no block yet
        unsent_ue = buf.enq_bits - np.maximum(self.sent, buf.out_bits)
        wants = (unsent_ue > 1e-6) | (self.retx_at <= k)
        mask = owner >= 0
        mask[mask] = wants[owner[mask]]
        if not mask.any():
            return capacity, served_here
        ue_of = owner[mask]  # (P,) per PRB in use
        if self.tb_prbs is None:  # one block per UE over all its PRBs
            counts = np.bincount(ue_of, minlength=n_ues)
            ues = counts.nonzero()[0]
            n_prb = counts[ues]
            index = np.zeros(n_ues, dtype=np.int64)
            index[ues] = np.arange(ues.size)
            row_of = index[ue_of]
            lead = np.ones(ues.size, dtype=bool)
        else:  # one block per UE per group of tb_prbs PRBs (e.g. an LTE carrier), each with its MCS
            group_of, n_groups = self._groups(owner.shape)
            links, row_of, n_prb = np.unique(ue_of * n_groups + group_of[mask], return_inverse=True,
                                             return_counts=True)
            ues = links // n_groups
            lead = np.r_[True, ues[1:] != ues[:-1]]  # each UE's first block
        eff_act = self.effective_sinr(row_of, actual_sinr[mask], n_prb)
        # retransmissions first: a UE with a NACKed block due sends it on (the PRBs of) its first block
        due = lead & (self.retx_at[ues] <= k)
        upto: dict[int, float] = {}  # UEs that transmitted -> the furthest end of what they sent
        for i in np.flatnonzero(due).tolist():
            u = int(ues[i])
            upto[u] = self._retransmit(u, k, eff_act[i], int(n_prb[i]), eff_act[i, 0])
        new = ~due
        unsent = unsent_ue[ues]
        has_proc = (self.proc_free_at[ues] <= k).any(axis=1) if self.harq else np.ones(ues.size, dtype=bool)
        self.stats["no_process_ttis"] += int((new & ~has_proc & (unsent > 1e-6)).sum())
        go = new & has_proc & (unsent > 1e-6)
        if go.any():
            g = np.flatnonzero(go)
            mcs = self._choose_mcs(row_of, believed_sinr[mask], ue_of, ues, n_prb,
                                   eff_act if believed_sinr is actual_sinr else None)[g]
            self.stats["no_mcs_ttis"] += int((mcs == 0).sum())
            if self.lowest_mcs:
                mcs = np.maximum(mcs, 1)
            sel = mcs > 0
            g, mcs = g[sel], mcs[sel]
            if g.size:
                uses = n_prb[g] * self.uses_per_prb[mcs - 1]
                bits = MCS_EFFICIENCY[mcs - 1] * uses
                payload = self._payload(bits, mcs, n_prb[g])
                if self.crc_bits:
                    fits = payload > 0
                    self.stats["no_payload_ttis"] += int((~fits).sum())
                    if not fits.all():
                        g, mcs, uses, bits, payload = g[fits], mcs[fits], uses[fits], bits[fits], payload[fits]
            if g.size:
                ctrl = eff_act[g, 0]  # the control channel's SINR: QPSK effective SINR of the block's PRBs
                done = self._first_transmissions(k, ues[g], mcs, uses, bits, payload, eff_act[g], ctrl)
                for u, hi in done:
                    upto[u] = max(upto.get(u, hi), hi)
        if upto:  # packets below the furthest end went on air (a UE's blocks of the TTI mark no more)
            buf.mark_sent(list(upto), list(upto.values()), now_s)
        out = buf.out_bits
        for u, hi in self._direct:  # a UE's direct blocks follow each other in its queue: the last end counts
            capacity[u] = max(capacity[u], hi - out[u])
        self._direct.clear()
        for u in upto:
            if self.pending[u]:
                self._resolve(u, capacity, served_here, now_s, delivered_at_s)
        return capacity, served_here

    def _payload(self, bits: np.ndarray, mcs: np.ndarray | None = None, n_prb: np.ndarray | None = None) -> np.ndarray:
        """Data bits of blocks of ``bits`` nominal bits (MCS ``mcs`` on ``n_prb`` PRBs): with ``tbs: lte``
        the LTE transport block size; else all of them, or with ``crc_bits`` the bits left after the
        block's CRC (and each code block's, when it is segmented) in whole bytes."""
        if self.lte_tbs:
            return lte_tbs_bits(mcs, n_prb)
        if not self.crc_bits:
            return bits
        c = code_blocks(bits, self.cfg.code_block_bits)
        crc = self.crc_bits * np.where(c > 1, c + 1, 1)
        return np.maximum(0.0, np.floor((bits - crc) / 8.0) * 8.0)

    def _choose_mcs(self, row_of: np.ndarray, sinr: np.ndarray, ue_of: np.ndarray, ues: np.ndarray,
                    n_prb: np.ndarray, eff: np.ndarray | None = None) -> np.ndarray:
        """(A,) MCS (0: none meets the target) of each block from the believed SINR of its PRBs
        (``row_of``, ``sinr``, ``ue_of``: per PRB its block, SINR and UE), lowered by its UE's
        (``ues``) OLLA offset; ``eff``: the blocks' MIESM effective SINRs if already known."""
        sinr_db = 10.0 * np.log10(np.maximum(sinr, _TINY))
        if self.worst_prb:  # per PRB the highest MCS its own one-PRB block carries; the lowest of them
            if self.fast:
                return self._k.worst_prb_mcs(row_of, sinr_db, self.offset_db, ue_of, self._thr1, n_prb.size)
            per_prb = np.searchsorted(self._thr1, sinr_db - self.offset_db[ue_of], side="right")
            out = np.full(n_prb.size, 15, dtype=np.int64)
            np.minimum.at(out, row_of, per_prb)
            return out
        if eff is None:
            eff = self.effective_sinr(row_of, sinr, n_prb)
        eff_db = 10.0 * np.log10(np.maximum(eff, 1e-30))[:, MCS_MOD] - self.offset_db[ues][:, None]
        ok = eff_db >= self.thr_db[n_prb]
        return np.where(ok.any(axis=1), 15 - np.argmax(ok[:, ::-1], axis=1), 0)

    def _error_probability(self, info, spread, bits, eff_qpsk) -> np.ndarray:
        """Probability that a transmission fails: its block (normal approximation per code block)
        or, with ``control_errors``, its grant (CONTROL_LOSS curve at the QPSK effective SINR)."""
        p = block_error_rate(info, spread, bits, self.cfg.code_block_bits)
        if self.control_errors:
            with np.errstate(divide="ignore"):
                x = 10.0 * np.log10(eff_qpsk)
            p = 1.0 - (1.0 - p) * (1.0 - np.interp(x, CONTROL_LOSS_DB, CONTROL_LOSS_P))
        return p

    def _error_probability_scalar(self, info: float, spread: float, bits: float, eff_qpsk: float) -> float:
        """``_error_probability`` of one transmission in Python floats (the same formulas; equal to
        rounding: tests/test_l2s.py)."""
        c = max(1.0, math.ceil(bits / self.cfg.code_block_bits))
        if spread > 0:
            q = 0.5 * math.erfc((info - bits) / math.sqrt(spread * c) / _SQRT2)
        else:
            q = 0.0 if info > bits else 1.0
        p = 1.0 - (1.0 - q) ** c
        if self.control_errors:
            x = 10.0 * math.log10(eff_qpsk) if eff_qpsk > 0 else -math.inf
            p = 1.0 - (1.0 - p) * (1.0 - _control_loss_scalar(x))
        return p

    def _first_transmissions(self, k, u_new, mcs, uses, bits, payload, eff_act, ctrl) -> list[tuple[int, float]]:
        """New blocks (one per row; a UE may have several, in buffer order) of UEs ``u_new`` with MCS
        ``mcs``, ``uses`` channel uses, ``bits`` nominal bits (the code rate) carrying up to ``payload``
        bits of data; returns (UE, end of what it sent) of the blocks that carried data."""
        mod = MCS_MOD[mcs - 1].tolist()
        rho = (eff_act[np.arange(u_new.size), mod] / self.gap_mcs[mcs - 1]).tolist()
        uses_l, bits_l, ctrl_l = uses.tolist(), bits.tolist(), ctrl.tolist()
        tables = _mi_lists()
        info, spread, p = [], [], []
        for j in range(u_new.size):  # per block in scalars: a TTI has few blocks, numpy calls cost more
            r, n = rho[j], uses_l[j]
            info.append(n * _mi_scalar(tables[mod[j]], r))
            spread.append(n * _dispersion_scalar(r))
            if self.errors:
                p.append(self._error_probability_scalar(info[j], spread[j], bits_l[j], ctrl_l[j]))
        nack = (self.rng.random(u_new.size) < np.array(p)).tolist() if self.errors else [False] * u_new.size
        out = self.buffers.out_bits.tolist()
        enq = self.buffers.enq_bits.tolist()
        sent = {}  # UE -> where its blocks of this TTI end so far (self.sent at the end)
        payload_l, mcs_l = payload.tolist(), mcs.tolist()
        st = self.stats
        harq, olla = self.harq, self.olla
        done = []
        for j, u in enumerate(u_new.tolist()):
            lo = max(sent[u] if u in sent else float(self.sent[u]), out[u])
            if enq[u] - lo <= 1e-6:  # an earlier block of this TTI took the rest: nothing to send
                continue
            if harq:  # the UE's first free process (the rows of one UE take one each)
                free = self.proc_free_at[u] <= k
                if not free.any():
                    st["no_process_ttis"] += 1
                    continue
                proc = int(np.argmax(free))
            else:
                proc = 0
            failed = nack[j]
            st["blocks"] += 1
            st["transmissions"] += 1
            st["first_nacks"] += failed
            st["nacks"] += failed
            if olla:
                step = self.step_up if failed else -self.step_down
                self.offset_db[u] = min(max(self.offset_db[u] + step, -self.max_offset), self.max_offset)
            hi = lo + min(payload_l[j], enq[u] - lo)
            done.append((u, hi))
            if not harq and failed:  # no HARQ: the bits go back to the head of the queue
                sent[u] = lo
                continue
            sent[u] = hi
            if not failed and not self.pending[u]:  # decoded, nothing before it in HARQ: to the RLC now
                self._direct.append((u, hi))
                if harq:
                    self.proc_free_at[u, proc] = k + self.rtt
                continue
            b = _Block(lo, hi, bits_l[j], uses_l[j], mcs_l[j], proc)
            b.n_tx = 1
            if not harq:
                b.state = ACKED
            elif failed:
                b.info, b.spread = info[j], spread[j]
                b.chase = float(eff_act[j, mod[j]])
                self._nacked(u, b, k)
            else:
                b.state = ACKED
                self.proc_free_at[u, b.proc] = k + self.rtt
            self.pending[u].append(b)
        for u, hi in sent.items():
            self.sent[u] = hi
        return done

    def _nacked(self, u: int, b: _Block, k: int) -> None:
        """Block ``b`` of UE ``u`` failed its transmission at TTI ``k``: retransmit, resend or lose it."""
        if b.n_tx >= self.max_tx:
            if self.requeue:  # a fresh round, as an RLC in acknowledged mode resending the data
                self.stats["requeued_blocks"] += 1
                b.n_tx, b.info, b.spread, b.chase = 0, 0.0, 0.0, 0.0
            else:
                self.stats["lost_blocks"] += 1
                if b in self.retx[u]:
                    self.retx[u].remove(b)
                b.state = FAILED
                self.proc_free_at[u, b.proc] = k + self.rtt
                self._set_retx_at(u)
                return
        self.proc_free_at[u, b.proc] = np.iinfo(np.int64).max  # held until the block is resolved
        b.ready = k + self.rtt
        if b not in self.retx[u]:
            self.retx[u].append(b)
        self._set_retx_at(u)

    def _set_retx_at(self, u: int) -> None:
        waiting = self.retx[u]
        self.retx_at[u] = min(b.ready for b in waiting) if waiting else np.iinfo(np.int64).max

    def _retransmit(self, u: int, k: int, eff_act: np.ndarray, n_prb: int, ctrl: float) -> float:
        """Send UE ``u``'s oldest due NACKed block on its ``n_prb`` PRBs of this TTI (``eff_act``
        (3,) their effective SINR per modulation, ``ctrl`` the control channel's SINR); returns its end."""
        waiting = self.retx[u]
        b = next(x for x in waiting if x.ready <= k)
        mod = int(MCS_MOD[b.mcs - 1])
        gap = float(self.gap_mcs[b.mcs - 1])
        uses = n_prb * float(self.uses_per_prb[b.mcs - 1])
        rho_t = float(eff_act[mod])
        if self.combining == "ir":
            r = rho_t / gap
            b.info += uses * float(bicm_mi(r, mod))
            b.spread += uses * float(dispersion(r))
            info, spread = b.info, b.spread
        elif self.combining == "chase":
            b.chase += rho_t
            r = b.chase / gap
            info, spread = b.uses * float(bicm_mi(r, mod)), b.uses * float(dispersion(r))
        else:
            r = rho_t / gap
            info, spread = uses * float(bicm_mi(r, mod)), uses * float(dispersion(r))
        b.n_tx += 1
        self.stats["transmissions"] += 1
        nack = self.errors and self.rng.random() < float(self._error_probability(info, spread, b.bits, ctrl))
        if nack:
            self.stats["nacks"] += 1
            self._nacked(u, b, k)
        else:
            waiting.remove(b)
            b.state = ACKED
            self.proc_free_at[u, b.proc] = k + self.rtt
            self._set_retx_at(u)
        return b.hi

    def _resolve(self, u: int, capacity: np.ndarray, served_here: np.ndarray, now_s: float,
                 delivered_at_s: float) -> None:
        """Hand UE ``u``'s resolved blocks at the front of its queue to the RLC, in order."""
        pend = self.pending[u]
        buf = self.buffers
        upto = None
        while pend and pend[0].state != IN_FLIGHT:
            b = pend.pop(0)
            if b.state == ACKED:
                upto = b.hi
                continue
            # a lost block: deliver what precedes it, then drop every packet with bits in it
            if upto is not None and upto > buf.out_bits[u]:
                served_here[u] += buf.serve_ue(u, upto - buf.out_bits[u], now_s, delivered_at_s)
            upto = None
            buf.drop_through(u, b.hi, now_s, self.drop_reason)
        if upto is not None:
            capacity[u] += max(0.0, upto - buf.out_bits[u])
