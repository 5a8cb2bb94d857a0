"""Same scenario + seed => byte-identical tables; another seed => different tables."""

from simcore.run import save_run, simulate

from core_helpers import small

TABLES = ("packets", "tti", "decisions")


def _write(scn, path):
    save_run(simulate(scn), path)
    return {t: (path / f"{t}.parquet").read_bytes() for t in TABLES}


def test_same_seed_identical_other_seed_differs(tmp_path):
    scn = small(ues=3, duration_s=0.2, seed=11)
    a = _write(scn, tmp_path / "a")
    b = _write(scn, tmp_path / "b")
    for t in TABLES:
        assert a[t] == b[t], t
    c = _write(scn.with_overrides(seed=12), tmp_path / "c")
    for t in TABLES:
        assert a[t] != c[t], t
