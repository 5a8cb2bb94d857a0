"""The learning-curve figure (the paper's Fig. 3a) from run folders, as ``scripts/learning_curves.py``
draws it: three runs in the format ``oransim train`` logs (``RunLog``), one without episodes."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from analysis.learning_curves import TAG_HELD_OUT, TAG_RETURN, read_curves
from policies.learned.train import RunLog, learning_curve

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(folder: Path, episodes: int, evals: int) -> Path:
    log = RunLog(folder, tensorboard=False)
    for e in range(1, episodes + 1):
        log.scalar(TAG_RETURN, 10.0 + e % 7 + 0.1 * e, e)
    for i in range(1, evals + 1):
        log.scalar(TAG_HELD_OUT, 0.8 + 0.05 * i, 100 * i)
    log.close()
    return folder


def _script(*args) -> None:
    argv = sys.argv
    sys.argv = ["learning_curves.py", *map(str, args)]
    try:
        runpy.run_path(str(ROOT / "scripts" / "learning_curves.py"), run_name="__main__")
    finally:
        sys.argv = argv


def test_the_command_draws_three_runs_atomically_and_names_a_bad_folder(tmp_path, capsys):
    dql = _run(tmp_path / "dql", episodes=30, evals=3)
    dqn = _run(tmp_path / "dqn", episodes=24, evals=2)
    ssvae = _run(tmp_path / "ssvae", episodes=0, evals=4)  # supervised: held-out evaluations only
    ret, held = read_curves(dql)
    assert list(ret.index[:2]) == [1, 2] and len(ret) == 30 and len(held) == 3
    # what `oransim train` leaves in a run folder with episodes; none without
    assert (dql / "learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    assert not (ssvae / "learning_curve.png").exists() and learning_curve(ssvae) is None

    out = tmp_path / "fig" / "fig3a.png"
    _script("--held-out", "--out", out, f"Diffusion-QL={dql}", f"DQN={dqn}", f"SS-VAE={ssvae}")
    assert out.read_bytes()[:8] == PNG_MAGIC and f"wrote {out}" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["fig3a.png"]  # no temporary file left

    # without --held-out the SS-VAE run has nothing to draw: a one-line error naming its folder, no figure
    with pytest.raises(SystemExit) as exc:
        _script("--out", tmp_path / "other.png", f"DQN={dqn}", f"SS-VAE={ssvae}")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and str(ssvae) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "other.png").exists()
    with pytest.raises(SystemExit) as exc:
        _script("--out", tmp_path / "other.png", f"DQN={tmp_path / 'nowhere'}")
    assert exc.value.code == 2 and "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        _script("--out", tmp_path / "other.png", str(dqn))
    assert exc.value.code == 2 and "LABEL=RUN_FOLDER" in capsys.readouterr().err
