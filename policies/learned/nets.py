"""Network pieces shared by the learned policies (plain PyTorch).

``UeSetEncoder`` reads the flat state vector of ``encoding`` as a *set* of UEs: one MLP phi applied
to every UE row, then a masked mean over the UEs of each slice and each slice's UE count (share of
``max_ues``), concatenated with the globals. Padding rows (mask 0) contribute nothing, and no output
depends on the order of the UEs, so one network serves any number of UEs up to ``max_ues``.
``ue_embedding`` gives the per-UE rows (B, U_max, H) for policies that output per-UE actions;
``from_rows`` reads a state already split into rows (a batch may drop trailing padding rows).
"""

from __future__ import annotations

import torch
from torch import nn

from .encoding import EncodingSpec, split_state


def mlp(sizes: list[int], activation=nn.ReLU, last_activation: bool = False) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_activation:
            layers.append(activation())
    return nn.Sequential(*layers)


class UeSetEncoder(nn.Module):
    """(B, state_dim) -> (B, out_dim): per-UE MLP, per-slice masked mean and count, globals."""

    def __init__(self, spec: EncodingSpec, hidden: int = 128):
        super().__init__()
        self.spec = spec
        self.phi = mlp([spec.n_ue_features, hidden, hidden], last_activation=True)
        self.out_dim = spec.n_globals + spec.n_slices * (hidden + 1)

    def ue_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-UE embeddings (B, U_max, H), zero on padding rows, and the mask (B, U_max)."""
        ue, mask, _ = split_state(x, self.spec)
        return self.phi(ue) * mask.unsqueeze(-1), mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_rows(*split_state(x, self.spec))

    def from_rows(self, ue: torch.Tensor, mask: torch.Tensor, glob: torch.Tensor, h: torch.Tensor | None = None):
        """``forward`` on the split state, ue (B, U, F) with any U <= U_max rows (the rows left out
        being padding); ``h`` the per-UE embeddings if already computed. Counts stay / U_max."""
        if h is None:
            h = self.phi(ue) * mask.unsqueeze(-1)  # (B, U, H)
        onehot = ue[..., 1:1 + self.spec.n_slices] * mask.unsqueeze(-1)  # (B, U, S)
        count = onehot.sum(dim=1)  # (B, S)
        pooled = torch.einsum("bus,buh->bsh", onehot, h) / count.clamp(min=1.0).unsqueeze(-1)
        return torch.cat([glob, pooled.flatten(1), count / self.spec.max_ues], dim=1)
