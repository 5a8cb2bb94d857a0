"""Augmentations of snapshot states that keep their optimum (the SS-VAE's contrastive views).

- ``augment_observation``: a UE permutation, the history features resampled among the UEs, and
  small log-normal CSI noise, on an ``Observation`` (the CSI view is recomputed from the gains);
- ``resample_history``: the history resampling alone on encoded states, in tensor space.

The snapshot problem reads neither head-of-line delay, recent throughput nor the last QoS flag,
so resampling them keeps the canonical optimum exactly. A UE permutation keeps tiers 1-3 of the
optimum and (on every state tested) each UE's PRB and power shares; the PRBs themselves can change
with the UE-indexed tie cost (tier 4). Small CSI noise nearly always keeps it
(``tests/test_learning_ssvae.py`` checks all three with the MILP).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from simcore.contracts import Observation

from .encoding import ENCODING_VERSION, EncodingSpec


def history_columns(spec: EncodingSpec) -> list[int]:
    """Per-UE columns of head-of-line delay, recent throughput and last QoS flag (encoding v1):
    features the snapshot problem does not read."""
    assert ENCODING_VERSION == 1, "history_columns follows encoding version 1"
    first = 3 + spec.n_slices + spec.n_subbands  # present, slices, wideband, profile, buffer
    return [first, first + 1, first + 2]


def augment_observation(obs: Observation, rng: np.random.Generator, csi_noise_db: float = 0.0,
                        permute: bool = True, history: bool = True) -> tuple[Observation, np.ndarray]:
    """(augmented observation, perm): UE i of the result is UE perm[i] of ``obs``; its history
    features (hol delay, recent throughput, QoS flag) drawn from another UE; gains times
    10^(N(0, csi_noise_db)/10), and the CSI view recomputed from them."""
    n = obs.n_ues
    perm = rng.permutation(n) if permute else np.arange(n)
    gain, serving, link = obs.gain[perm], obs.serving_ru[perm], obs.link
    if link.ue_fbl_penalty is not None:
        link = dataclasses.replace(link, ue_fbl_penalty=link.ue_fbl_penalty[perm])
    if csi_noise_db > 0:
        gain = gain * 10.0 ** (rng.normal(0.0, csi_noise_db, gain.shape) / 10.0)
        rate, sinr = link.estimated_prb_rate_bps(gain, serving, obs.ru_max_power_w)
    else:
        rate, sinr = obs.prb_rate_bps[perm], obs.prb_sinr[perm]
    src = perm[rng.permutation(n)] if history else perm
    return dataclasses.replace(
        obs, slice_id=obs.slice_id[perm], serving_ru=serving, gain=gain, prb_sinr=sinr, prb_rate_bps=rate,
        buffer_bits=obs.buffer_bits[perm], hol_delay_ms=obs.hol_delay_ms[src],
        avg_throughput_bps=obs.avg_throughput_bps[src], qos_met_last=obs.qos_met_last[src],
        min_rate_bps=obs.min_rate_bps[perm], max_rate_bps=obs.max_rate_bps[perm],
        max_delay_ms=obs.max_delay_ms[perm], link=link), perm


def resample_history(x, spec: EncodingSpec, generator=None):
    """(B, state_dim) tensor with each state's history columns shuffled among its real UEs, which
    ``encode_state`` writes in the first rows: ``augment_observation(permute=False,
    csi_noise_db=0)`` in tensor space."""
    import torch

    from .encoding import split_state

    ue, mask, _ = split_state(x, spec)
    keys = torch.rand(mask.shape, generator=generator).to(x.device) + 2.0 * (1.0 - mask)
    src = keys.argsort(dim=1)  # a random order of the real UEs, then the padding rows
    out = x.clone()
    ue_out, _, _ = split_state(out, spec)  # a view into ``out``
    for c in history_columns(spec):
        ue_out[..., c] = torch.gather(ue[..., c], 1, src)
    return out


def small_columns(spec: EncodingSpec) -> list[int]:
    """Per-UE columns of the buffer, the rate need and the usable rate (encoding v1)."""
    hol = history_columns(spec)[0]
    return [hol - 1, hol + 3, hol + 4]
