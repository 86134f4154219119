"""MLPs, and ensembles of MLPs evaluated in one batched matmul per layer (no loop over members).

Dimension letters: K ensemble members, B batch, I input features, O output features.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation=nn.ReLU, layer_norm: bool = False) -> nn.Sequential:
    layers, width = [], in_dim
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if layer_norm:
            layers.append(nn.LayerNorm(size))
        layers.append(activation())
        width = size
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """K independent linear layers: [K, B, I] -> [K, B, O] with one batched matmul."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation, per member
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)  # [K, B, O]


class EnsembleMLP(nn.Module):
    """K MLPs with identical shapes and separate weights; input [K, B, I] (or [B, I], shared) -> [K, B, O]."""

    def __init__(self, members: int, in_dim: int, hidden: tuple[int, ...], out_dim: int, activation=nn.ReLU):
        super().__init__()
        self.members = members
        widths = (in_dim,) + tuple(hidden)
        self.hidden = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = EnsembleLinear(members, widths[-1], out_dim)
        self.activation = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)  # [K, B, I]
        for layer in self.hidden:
            x = self.activation(layer(x))
        return self.out(x)  # [K, B, O]
