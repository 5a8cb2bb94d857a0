"""The paper cell with a chosen number of UEs: the scenario every benchmark sizes up and down."""

from __future__ import annotations

from simcore.scenario import Scenario, parse_scenario


def paper_cell(ues_per_slice, duration_s: float | None = None, prbs: int | None = None) -> Scenario:
    """The default (paper) scenario with ``ues_per_slice`` UEs per slice (an int, or one per slice)."""
    base = Scenario().model_dump()
    counts = [ues_per_slice] * len(base["slices"]) if isinstance(ues_per_slice, int) else list(ues_per_slice)
    for sl, n in zip(base["slices"], counts):
        sl["ues"] = n
    if duration_s is not None:
        base["duration_s"] = duration_s
    if prbs is not None:
        base["cell"]["prbs_per_ru"] = prbs
    return parse_scenario(base)
