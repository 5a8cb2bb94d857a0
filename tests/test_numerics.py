"""The manifest's ``numerics`` entry: what decides a run's last bits (CPU, numpy's SIMD targets, numba's CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from core_helpers import small
from xapp_helpers import ROOT

from simcore.numerics import numeric_platform, numpy_simd
from simcore.run import manifest, simulate


def test_the_manifest_records_the_numeric_platform():
    import numpy as np

    m = json.loads(json.dumps(manifest(simulate(small(ues=1, duration_s=0.02)))))  # as written to manifest.json
    num = m["numerics"]
    assert num["numpy"] == np.__version__ == m["versions"]["numpy"]
    assert num["numpy_simd"] == numpy_simd() and num["cpu"] and num["machine"]
    assert num["numba_cpu"]  # the engine's compiled kernels were loaded by the run
    assert set(num["numpy_simd"]["dispatch"]) | set(num["numpy_simd"]["not_used"]) == set(
        np._core._multiarray_umath.__cpu_dispatch__)


def test_a_narrowed_simd_choice_is_recorded():
    """What NPY_DISABLE_CPU_FEATURES switches off shows in ``numpy_simd`` and ``env`` (a child process:
    numpy reads the variable when it is imported)."""
    here = numpy_simd()
    if not here["dispatch"]:
        pytest.skip("this CPU runs numpy's baseline kernels only: nothing to switch off")
    off = here["dispatch"][-1]
    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=off)
    out = subprocess.run([sys.executable, "-c", "import json; from simcore.numerics import numeric_platform as n; "
                          "print(json.dumps(n()))"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    child = json.loads(out.stdout.splitlines()[-1])
    assert child["numpy_simd"]["dispatch"] == here["dispatch"][:-1] and off in child["numpy_simd"]["not_used"]
    assert child["env"]["NPY_DISABLE_CPU_FEATURES"] == off
    assert "numba_cpu" not in child and numeric_platform()["numpy_simd"] == here  # only what the process loaded
