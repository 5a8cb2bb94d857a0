"""The built-in path-loss models against ns-3's own (ns-3.44 through the `ns3` wheel), 10 m - 2 km."""

import numpy as np
import pytest

from simcore.channel import pathloss_log_distance_db, pathloss_uma_db, pathloss_umi_db

# one xdist worker runs them all, so the ns-3 wheel (~10 s, ~650 MB) loads once per suite run
pytestmark = [pytest.mark.ns3, pytest.mark.xdist_group("ns3-wheel")]

DIST_M = np.geomspace(10.0, 2000.0, 25)


@pytest.fixture(scope="session")
def ref():
    pytest.importorskip("ns", reason="ns-3 wheel not installed (pip install -e .[ns3])")
    from ns3_bridge import reference

    reference.ns()  # one import per test session (~10 s)
    return reference


@pytest.mark.parametrize("kind,fn,h_bs", [("uma", pathloss_uma_db, 25.0), ("umi", pathloss_umi_db, 10.0)])
@pytest.mark.parametrize("los", [True, False])
@pytest.mark.parametrize("fc_ghz", [2.0, 3.5])
def test_3gpp_pathloss_matches_ns3(ref, kind, fn, h_bs, los, fc_ghz):
    theirs = ref.ns3_pathloss_db(kind, DIST_M, fc_ghz=fc_ghz, h_bs_m=h_bs, h_ut_m=1.5, los=los)
    ours = fn(DIST_M, h_bs, 1.5, fc_ghz, los)
    assert np.max(np.abs(ours - theirs)) < 0.1, np.c_[DIST_M, ours, theirs]


def test_log_distance_matches_ns3(ref):
    theirs = ref.ns3_pathloss_db("log_distance", DIST_M, fc_ghz=3.5, h_bs_m=25.0, h_ut_m=1.5,
                                 exponent=3.2, reference_distance_m=1.0)
    ours = pathloss_log_distance_db(np.hypot(DIST_M, 23.5), 3.5, 3.2, 1.0, None)
    assert np.max(np.abs(ours - theirs)) < 0.1, np.c_[DIST_M, ours, theirs]


@pytest.mark.parametrize("kind,h_bs", [("uma", 25.0), ("umi", 10.0)])
@pytest.mark.parametrize("los", [True, False])
def test_lte_downlink_sinr_matches_builtin_phy(ref, kind, h_bs, los):
    """A short ns-3 LTE downlink (25 RBs, power spread evenly, no fading, shadowing off) against the
    built-in PHY fed the same geometry. Tolerance 0.1 dB: the path-loss agreement above; noise
    (kT = -174 dBm/Hz plus the UE noise figure over 180 kHz) and the SINR formula are the same, and
    the fronthaul quantization term, which ns-3 does not model, is folded into ns-3's SINR the way
    the ns3-shm backend does."""
    from simcore.channel import pathloss_db
    from simcore.phy import LinkModel
    from tests.core_helpers import scenario

    d2d = np.array([40.0, 150.0, 400.0, 900.0])
    s = scenario(
        cell={"numerology": 0, "prbs_per_ru": 25, "carrier_ghz": 3.5, "noise_figure_db": 9.0,
              "rus": [{"x_m": 0, "y_m": 0, "height_m": h_bs, "max_power_dbm": 46.0}]},
        channel={"pathloss": kind, "los": "los" if los else "nlos", "fading": "none", "shadowing_sigma_db": 0.0},
    )
    link = LinkModel.from_scenario(s)
    gain = 10 ** (-pathloss_db(s, d2d[:, None], np.array([h_bs]), np.full((d2d.size, 1), los)) / 10)
    gain = np.repeat(gain[:, :, None], 25, axis=2)
    power = np.full((1, 25), 10 ** ((46.0 - 30) / 10) / 25)
    ours = np.array([link.prb_sinr(gain, np.full((1, 25), u), power)[0] for u in range(d2d.size)])

    theirs = ref.lte_downlink_sinr(kind, d2d, fc_ghz=3.5, h_bs_m=h_bs, tx_power_dbm=46.0, noise_figure_db=9.0,
                                   n_rb=25, los=los, duration_ms=60)
    theirs = np.array([link.prb_sinr(gain, np.full((1, 25), u), power, sinr_without_fronthaul=theirs[u][None, :])[0]
                       for u in range(d2d.size)])
    assert theirs.shape == ours.shape
    diff_db = 10 * np.log10(theirs / ours)
    assert np.max(np.abs(diff_db)) < 0.1, np.c_[d2d, 10 * np.log10(ours[:, 0]), 10 * np.log10(theirs[:, 0])]
