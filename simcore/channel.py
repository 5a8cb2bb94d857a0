"""Geometry and channel: UE drop, path loss, shadowing, correlated Rayleigh block fading.

Gains are linear power gains g[u, r, k] (received power / transmitted power) for UE u, RU r, PRB k.
Large-scale gain (path loss + shadowing) is fixed per drop; small-scale fading is Rayleigh per PRB
per TTI with an AR(1) time correlation h_t = rho h_{t-1} + sqrt(1 - rho^2) w_t, w ~ CN(0, 1), so
E|h|^2 = 1 at every TTI. PRBs fade independently (block fading per PRB).

Entries are drawn when they are needed, not every TTI: an AR(1) process skipped ahead by n TTIs is
h_{t+n} = rho^n h_t + sqrt(1 - rho^(2n)) w, exactly, so drawing each entry only at the TTIs where
someone reads it gives the same joint law as drawing all of them every TTI. The engine refreshes
every entry at decision times (the policy sees the full CSI) and, in between, only the gains the
PHY reads: those from every RU to the owner of each active PRB.

Path-loss models (d in metres, f in GHz unless stated):
- ``uma`` / ``umi``: 3GPP TR 38.901 Table 7.4.1-1 (UMa, UMi street canyon), LOS with breakpoint,
  NLOS as max(LOS, NLOS formula), LOS probability from Table 7.4.2-1 (UE heights <= 13 m).
- ``cost231_128_1``: 128.1 + 37.6 log10(d / km) (3GPP TR 36.814 macro model, 2 GHz).
- ``log_distance``: L0 + 10 n log10(d / d0), L0 default Friis free-space loss at d0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter
from scipy.special import j0

from . import decision_fast as fast
from .scenario import Scenario
from .units import SPEED_OF_LIGHT_M_S, db_to_lin

#: Default shadowing standard deviation (dB) per model and LOS state: TR 38.901 Table 7.4.1-1.
SHADOWING_SIGMA_DB = {
    ("uma", True): 4.0, ("uma", False): 6.0,
    ("umi", True): 4.0, ("umi", False): 7.82,
    ("cost231_128_1", True): 8.0, ("cost231_128_1", False): 8.0,
    ("log_distance", True): 0.0, ("log_distance", False): 0.0,
}


# ---------------------------------------------------------------------------------- path loss
def _breakpoint_m(h_bs: float, h_ut: float, fc_ghz: float) -> float:
    # d'_BP = 4 h'_BS h'_UT f_c / c with effective heights h - 1 m (h_E = 1 m for UE heights < 13 m).
    return 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc_ghz * 1e9 / SPEED_OF_LIGHT_M_S


def pathloss_uma_db(d2d, h_bs: float, h_ut: float, fc_ghz: float, los) -> np.ndarray:
    d2d = np.maximum(np.asarray(d2d, dtype=float), 10.0)
    d3d = np.hypot(d2d, h_bs - h_ut)
    d_bp = _breakpoint_m(h_bs, h_ut, fc_ghz)
    pl1 = 28.0 + 22.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz)
    pl2 = (28.0 + 40.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz)
           - 9.0 * np.log10(d_bp**2 + (h_bs - h_ut) ** 2))
    pl_los = np.where(d2d <= d_bp, pl1, pl2)
    pl_nlos = 13.54 + 39.08 * np.log10(d3d) + 20.0 * np.log10(fc_ghz) - 0.6 * (h_ut - 1.5)
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def pathloss_umi_db(d2d, h_bs: float, h_ut: float, fc_ghz: float, los) -> np.ndarray:
    d2d = np.maximum(np.asarray(d2d, dtype=float), 10.0)
    d3d = np.hypot(d2d, h_bs - h_ut)
    d_bp = _breakpoint_m(h_bs, h_ut, fc_ghz)
    pl1 = 32.4 + 21.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz)
    pl2 = (32.4 + 40.0 * np.log10(d3d) + 20.0 * np.log10(fc_ghz)
           - 9.5 * np.log10(d_bp**2 + (h_bs - h_ut) ** 2))
    pl_los = np.where(d2d <= d_bp, pl1, pl2)
    pl_nlos = 35.3 * np.log10(d3d) + 22.4 + 21.3 * np.log10(fc_ghz) - 0.3 * (h_ut - 1.5)
    return np.where(los, pl_los, np.maximum(pl_los, pl_nlos))


def pathloss_cost231_db(d2d) -> np.ndarray:
    d_km = np.maximum(np.asarray(d2d, dtype=float), 1.0) / 1000.0
    return 128.1 + 37.6 * np.log10(d_km)


def friis_loss_db(d_m: float, fc_ghz: float) -> float:
    lam = SPEED_OF_LIGHT_M_S / (fc_ghz * 1e9)
    return float(20.0 * np.log10(4.0 * np.pi * d_m / lam))


def pathloss_log_distance_db(d3d, fc_ghz: float, exponent: float, d0_m: float, l0_db: float | None):
    if l0_db is None:
        l0_db = friis_loss_db(d0_m, fc_ghz)
    d = np.maximum(np.asarray(d3d, dtype=float), d0_m)
    return l0_db + 10.0 * exponent * np.log10(d / d0_m)


def los_probability(model: str, d2d) -> np.ndarray:
    """TR 38.901 Table 7.4.2-1 for UE heights <= 13 m; 1 for models without a LOS notion."""
    d = np.maximum(np.asarray(d2d, dtype=float), 1e-9)
    if model == "uma":
        p = 18.0 / d + np.exp(-d / 63.0) * (1.0 - 18.0 / d)
    elif model == "umi":
        p = 18.0 / d + np.exp(-d / 36.0) * (1.0 - 18.0 / d)
    else:
        return np.ones_like(d)
    return np.where(d <= 18.0, 1.0, p)


def pathloss_db(s: Scenario, d2d: np.ndarray, h_bs: np.ndarray, los: np.ndarray) -> np.ndarray:
    """Path loss (dB) for every (UE, RU) pair; ``d2d``, ``los``: (U, R); ``h_bs``: (R,)."""
    ch, fc, h_ut = s.channel, s.cell.carrier_ghz, s.channel.ue_height_m
    out = np.empty_like(d2d)
    for r, hb in enumerate(h_bs):
        if ch.pathloss == "uma":
            out[:, r] = pathloss_uma_db(d2d[:, r], hb, h_ut, fc, los[:, r])
        elif ch.pathloss == "umi":
            out[:, r] = pathloss_umi_db(d2d[:, r], hb, h_ut, fc, los[:, r])
        elif ch.pathloss == "cost231_128_1":
            out[:, r] = pathloss_cost231_db(d2d[:, r])
        else:
            ld = ch.log_distance
            out[:, r] = pathloss_log_distance_db(np.hypot(d2d[:, r], hb - h_ut), fc, ld.exponent,
                                                 ld.reference_distance_m, ld.reference_loss_db)
    return out


# ----------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Geometry:
    """Where everything is. UEs are numbered slice by slice, and within a slice RU by RU."""

    ru_xy_m: np.ndarray  # (R, 2)
    ru_height_m: np.ndarray  # (R,)
    ue_xy_m: np.ndarray  # (U, 2)
    ue_slice: np.ndarray  # (U,) int slice index
    ue_home_ru: np.ndarray  # (U,) int RU whose disc the UE was dropped in
    dist2d_m: np.ndarray  # (U, R)
    los: np.ndarray  # (U, R) bool


def drop_ues(s: Scenario, rng: np.random.Generator) -> Geometry:
    """Drop every slice's UEs uniformly (by area) in the annulus [min_distance, radius] of each RU."""
    ru_xy = np.array([[ru.x_m, ru.y_m] for ru in s.cell.rus], dtype=float)
    ru_h = np.array([ru.height_m for ru in s.cell.rus], dtype=float)
    r_min, r_max = s.ue_drop.min_distance_m, s.ue_drop.radius_m
    xy, sl, home = [], [], []
    for si, slc in enumerate(s.slices):
        for r in range(len(ru_xy)):
            n = slc.ues
            rho = np.sqrt(rng.uniform(r_min**2, r_max**2, n))  # uniform by area
            phi = rng.uniform(0.0, 2.0 * np.pi, n)
            xy.append(ru_xy[r] + np.column_stack([rho * np.cos(phi), rho * np.sin(phi)]))
            sl.append(np.full(n, si))
            home.append(np.full(n, r))
    ue_xy = np.concatenate(xy) if xy else np.zeros((0, 2))
    d2d = np.linalg.norm(ue_xy[:, None, :] - ru_xy[None, :, :], axis=2)
    mode = s.channel.los
    if mode == "los":
        los = np.ones(d2d.shape, dtype=bool)
    elif mode == "nlos":
        los = np.zeros(d2d.shape, dtype=bool)
    else:
        los = rng.uniform(size=d2d.shape) < los_probability(s.channel.pathloss, d2d)
    return Geometry(ru_xy, ru_h, ue_xy, np.concatenate(sl).astype(np.int64),
                    np.concatenate(home).astype(np.int64), d2d, los)


_TWO_PI = np.float32(2.0 * np.pi)


def uniform_f32(rng: np.random.Generator, shape, pcg: fast.PcgState | None = None) -> np.ndarray:
    """``rng.random((2, *shape), dtype=np.float32)``; drawn by the compiled kernel when ``pcg`` (the
    generator's ``decision_fast.PcgState``) is given and may draw: the same values, the generator
    left in the same state."""
    if pcg is None or not pcg.ok():
        return rng.random((2, *shape), dtype=np.float32)
    u = np.empty((2, *shape), dtype=np.float32)
    fast.uniform_f32(pcg.state, pcg.tail, u.reshape(2, -1), False)
    return u


def complex_normal(rng: np.random.Generator, shape, pcg: fast.PcgState | None = None) -> np.ndarray:
    """(2, *shape) float32 real and imaginary parts of independent CN(0, 1) draws (each part
    N(0, 1/2)), by Box-Muller in polar form: |w|^2 = -ln(1 - U1) ~ Exp(1), phase 2 pi U2 uniform.
    Exact for uniform U; here about twice as fast as numpy's ziggurat normals, which matters
    because a decision every TTI redraws the fading of every (UE, RU, PRB). ``pcg``: see ``uniform_f32``."""
    u = uniform_f32(rng, shape, pcg)
    amp, phase = u[0], u[1]  # computed in place: the same values without temporaries
    np.negative(amp, out=amp)
    np.log1p(amp, out=amp)
    np.negative(amp, out=amp)
    np.sqrt(amp, out=amp)  # sqrt(-ln(1 - U1)): U1 < 1, finite; float32 U1 truncates Exp(1) at ~16.6 (P ~ 6e-8)
    np.multiply(phase, _TWO_PI, out=phase)
    cos = np.cos(phase)
    np.sin(phase, out=phase)
    np.multiply(amp, phase, out=phase)  # imaginary part: amp sin
    np.multiply(amp, cos, out=amp)  # real part: amp cos
    return u


def fading_correlation(s: Scenario) -> float:
    """AR(1) coefficient between consecutive TTIs: configured, or Jakes' J0(2 pi f_D T_TTI)."""
    if s.channel.fading_correlation is not None:
        return float(s.channel.fading_correlation)
    f_d = (s.channel.ue_speed_kmh / 3.6) * s.cell.carrier_ghz * 1e9 / SPEED_OF_LIGHT_M_S
    return float(np.clip(j0(2.0 * np.pi * f_d * s.cell.tti_s), 0.0, 1.0))


#: Gaps (TTIs) up to which the AR(1) decay of an entry is read from a table.
_DECAY_TABLE = 1024


class Channel:
    """Channel state of one drop; ``advance()`` moves the fading on by one TTI."""

    def __init__(self, s: Scenario, geo: Geometry, rng: np.random.Generator):
        self._rng = rng
        self._pcg = None  # the compiled draw of rng's uniforms (set below for Rayleigh fading)
        pl = pathloss_db(s, geo.dist2d_m, geo.ru_height_m, geo.los)
        if s.channel.shadowing_sigma_db is not None:
            sigma = np.full(pl.shape, s.channel.shadowing_sigma_db)
        else:
            sigma = np.where(geo.los, SHADOWING_SIGMA_DB[(s.channel.pathloss, True)],
                             SHADOWING_SIGMA_DB[(s.channel.pathloss, False)])
        self.shadowing_db = sigma * rng.standard_normal(pl.shape)
        self.pathloss_db = pl
        #: (U, R) linear large-scale gain
        self.large_scale_gain = db_to_lin(-(pl + self.shadowing_db))
        self.rho = fading_correlation(s)
        self._innov = float(np.sqrt(max(0.0, 1.0 - self.rho**2)))
        # rho^n and sqrt(1 - rho^2n) (float32) for gaps of n < _DECAY_TABLE TTIs, computed as _step would
        self._decay = np.power(np.float32(self.rho), np.arange(_DECAY_TABLE, dtype=np.float32))
        self._innov_gap = np.sqrt(1 - self._decay * self._decay)
        self.n_prbs = s.cell.prbs_per_ru
        self.rayleigh = s.channel.fading == "rayleigh"
        shape = (*pl.shape, self.n_prbs)
        self.tti = 0  # the TTI the channel is at
        self._flat_for = None  # allocation whose PRB entries _flat indexes
        self._all_at = 0  # TTI at which every entry was last drawn
        self._uniform = True  # no entry drawn since _all_at: every entry is _all_at's draw
        self._traj_h = None  # (T, 2, n) pre-drawn fading of the _flat entries for TTIs _traj_t0 ...
        self._traj_t0 = 0
        if self.rayleigh:
            # h = (re, im) with E|h|^2 = 1: each part N(0, 1/2); kept as float32 (2, U, R, K)
            self._pcg = fast.PcgState.of(rng)
            self._h = complex_normal(rng, shape, self._pcg)
            self._views = None  # _refresh_all_compiled's flat views and work arrays, made on first use
            self._gap_coef: dict = {}  # gap -> (rho^gap, sqrt(1 - rho^2gap)) float32, as _step computes them
            self._drawn_at = np.zeros(shape, dtype=np.int64)  # TTI of each entry's last draw
            self.gain = self.large_scale_gain[:, :, None] * (self._h[0] ** 2 + self._h[1] ** 2)
        else:
            self.gain = np.repeat(self.large_scale_gain[:, :, None], self.n_prbs, axis=2)

    def advance(self) -> None:
        """Move on by one TTI (gains are drawn lazily by the ``refresh_*`` methods)."""
        self.tti += 1

    def _step(self, h: np.ndarray, drawn_at) -> np.ndarray:
        """AR(1) skip-ahead of ``h`` (2, n) from TTIs ``drawn_at`` (n,), or one TTI for all, to now."""
        if np.isscalar(drawn_at):  # one decay for every entry: no per-entry power
            a = np.float32(self.rho ** (self.tti - drawn_at))
            s = np.sqrt(1 - a * a)
        else:
            gap = self.tti - drawn_at
            if gap.size and gap.max() < _DECAY_TABLE:  # the table holds the same float32 values
                a, s = self._decay.take(gap), self._innov_gap.take(gap)
            else:
                a = np.power(np.float32(self.rho), gap.astype(np.float32))
                s = np.sqrt(1 - a * a)
        w = complex_normal(self._rng, h.shape[1:], self._pcg)
        w *= s
        h *= a
        h += w
        return h

    def _drawn_at_array(self) -> np.ndarray:
        """``_drawn_at`` made valid for per-entry updates (while every entry shares ``_all_at`` it
        is not kept up to date: a decision every TTI then costs no per-entry bookkeeping)."""
        if self._uniform:
            self._drawn_at.fill(self._all_at)
            self._uniform = False
        return self._drawn_at

    def _settle_trajectory(self) -> None:
        """Pin the pre-drawn entries to their value at the current TTI (later draws are discarded)."""
        if self._traj_h is None:
            return
        i = min(self.tti - self._traj_t0, len(self._traj_h) - 1)
        if i >= 0:
            self._h.reshape(2, -1)[:, self._flat] = self._traj_h[i]
            self._drawn_at_array().ravel()[self._flat] = self._traj_t0 + i
        self._traj_h = None

    def refresh_all(self) -> None:
        """Bring every entry of ``gain`` (U, R, K) to the current TTI."""
        if not self.rayleigh or self.gain.size == 0 or (self._uniform and self._all_at == self.tti):
            return
        self._settle_trajectory()
        if not self._refresh_all_compiled():
            drawn_at = self._all_at if self._uniform else self._drawn_at.ravel()
            h = self._step(self._h.reshape(2, -1), drawn_at).reshape(self._h.shape)
            self._h = h
            np.multiply(self.large_scale_gain[:, :, None], h[0] * h[0] + h[1] * h[1], out=self.gain)
        self._all_at = self.tti
        self._uniform = True

    def _refresh_all_compiled(self) -> bool:
        """``refresh_all``'s draw and AR(1) step (``_step``, then the gains) as three numpy calls (log1p,
        cos, sin) between two compiled loops (``decision_fast``): the same values. False (nothing
        done) where it does not apply: a generator the kernel cannot step, a gap beyond the table."""
        pcg = self._pcg
        if pcg is None or not pcg.ok():
            return False
        views = self._views
        if views is None or views[0] is not self._h or views[1] is not self.gain:  # flat views, work arrays
            if not (self.gain.flags.c_contiguous and self._h.flags.c_contiguous):
                return False
            n = self.gain.size
            views = self._views = (self._h, self.gain, self._h.reshape(2, n), self.gain.reshape(n),
                                   self.large_scale_gain.reshape(-1), np.empty((2, n), dtype=np.float32),
                                   np.empty(n, dtype=np.float32))
        _, _, h, gain, ls, u, cos = views
        if not self._uniform:
            drawn_at = self._drawn_at.ravel()
            if self.tti - drawn_at.min() >= _DECAY_TABLE:
                return False
        fast.uniform_f32(pcg.state, pcg.tail, u, True)  # u[0] = -U1, u[1] = 2 pi U2
        np.log1p(u[0], out=u[0])
        np.cos(u[1], out=cos)
        np.sin(u[1], out=u[1])
        if self._uniform:  # one gap for every entry (a decision every TTI: gap 1)
            gap = self.tti - self._all_at
            coef = self._gap_coef.get(gap)
            if coef is None:  # a and s as _step computes them for one gap
                a = np.float32(self.rho ** gap)
                coef = (a, np.sqrt(1 - a * a))
                if len(self._gap_coef) < 64:
                    self._gap_coef[gap] = coef
            fast.ar1_refresh(h, u, cos, coef[0], coef[1], ls, self.n_prbs, gain)
        else:
            fast.ar1_refresh_gaps(h, u, cos, self.tti, drawn_at, self._decay, self._innov_gap, ls, self.n_prbs, gain)
        return True

    def refresh_prbs(self, prb_owner: np.ndarray, until_tti: int | None = None) -> None:
        """Bring to the current TTI the gains from every RU to the owner of each active PRB.

        prb_owner: (R, K) int UE index, -1 idle. Afterwards ``gain[prb_owner[r, k], :, k]`` is current.
        until_tti: the allocation holds until this TTI (exclusive): the entries' fading is drawn
        for all those TTIs at once (one AR(1) filter pass) and handed out TTI by TTI.
        """
        if not self.rayleigh or self._all_at == self.tti:
            return  # every entry is current (drawn for a decision at this TTI)
        traj = self._traj_h
        if traj is not None and self._flat_for is prb_owner and 0 <= self.tti - self._traj_t0 < len(traj):
            # the allocation's trajectory, drawn at an earlier TTI of it (a refresh of any entry since
            # would have settled it): its gains at this TTI
            self.gain.ravel()[self._flat] = self._traj_gain[self.tti - self._traj_t0]
            return
        if self._flat_for is not prb_owner:
            # the allocation changes only at decisions (the engine hands over a fresh array each
            # time): index its entries once
            self._settle_trajectory()
            self._flat_for = prb_owner
            n_ru, n_prb = self.gain.shape[1], self.gain.shape[2]
            if n_ru == 1:  # (the general case below, with fewer numpy calls)
                k = (prb_owner[0] >= 0).nonzero()[0]
                u = prb_owner[0, k]
                self._flat = u * n_prb + k
                self._flat_ls = self.large_scale_gain[u, 0]
            else:
                r_idx, k_idx = np.nonzero(prb_owner >= 0)
                u = np.repeat(prb_owner[r_idx, k_idx], n_ru)
                r = np.tile(np.arange(n_ru), k_idx.size)
                k = np.repeat(k_idx, n_ru)
                self._flat = (u * n_ru + r) * n_prb + k
                self._flat_ls = self.large_scale_gain[u, r]
        flat = self._flat
        if flat.size == 0:
            return
        traj = self._traj_h
        if traj is not None and 0 <= self.tti - self._traj_t0 < len(traj):
            self.gain.ravel()[flat] = self._traj_gain[self.tti - self._traj_t0]
            return
        else:
            self._settle_trajectory()
            h_flat = self._h.reshape(2, -1)
            h = self._step(h_flat[:, flat], self._all_at if self._uniform else self._drawn_at.ravel()[flat])
            steps = 1 if until_tti is None else max(1, until_tti - self.tti)
            if steps > 1:
                w = np.moveaxis(complex_normal(self._rng, (steps - 1, h.shape[1]), self._pcg), 0, 1)  # (T-1, 2, n)
                w *= np.float32(self._innov)
                later = lfilter([1.0], [1.0, -self.rho], w, axis=0, zi=(self.rho * h)[None])[0]
                self._traj_h = np.concatenate([h[None], later.astype(np.float32)])
                self._traj_gain = self._flat_ls * (self._traj_h[:, 0] ** 2 + self._traj_h[:, 1] ** 2)
                self._traj_t0 = self.tti
            else:
                h_flat[:, flat] = h
                self._drawn_at_array().ravel()[flat] = self.tti
        self.gain.ravel()[flat] = self._flat_ls * (h[0] * h[0] + h[1] * h[1])
