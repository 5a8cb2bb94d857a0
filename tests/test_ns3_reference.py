"""The built-in path-loss models against ns-3's own (ns-3.44 through the `ns3` wheel), 10 m - 2 km."""

import numpy as np
import pytest

from simcore.channel import pathloss_log_distance_db, pathloss_uma_db, pathloss_umi_db

pytestmark = pytest.mark.ns3

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
