"""MLPs, and ensembles of MLPs evaluated in one batched matmul per layer (no loop over members).

Dimension letters: K ensemble members, B batch, I input features, O output features.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn


def hidden_layer(
    in_dim: int, out_dim: int, activation=nn.ReLU, layer_norm: bool = False, bias: bool = True
) -> list[nn.Module]:
    """Linear (-> LayerNorm) -> activation."""
    layers = [nn.Linear(in_dim, out_dim, bias=bias)]
    if layer_norm:
        layers.append(nn.LayerNorm(out_dim))
    return layers + [activation()]


def mlp(
    in_dim: int,
    hidden: tuple[int, ...],
    out_dim: int | None,
    activation=nn.ReLU,
    layer_norm: bool = False,
    hidden_bias: bool = True,
    zero_init: bool = False,
) -> nn.Sequential:
    """The project's one MLP builder: ``hidden_layer`` per width in ``hidden``, then a linear output layer
    (``out_dim`` None: none, the last hidden layer is the output). DreamerV3's layers are
    ``layer_norm=True, hidden_bias=False, activation=nn.SiLU``. ``zero_init``: the output layer starts at 0."""
    layers, width = [], in_dim
    for size in hidden:
        layers += hidden_layer(width, size, activation, layer_norm, hidden_bias)
        width = size
    if out_dim is not None:
        layers.append(nn.Linear(width, out_dim))
        if zero_init:
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


def layernorm_mlp(in_dim: int, hidden: int, layers: int, out_dim: int | None, zero_init: bool = False) -> nn.Sequential:
    """DreamerV3's MLP: ``layers`` x (Linear without bias -> LayerNorm -> SiLU) of width ``hidden``, then a linear
    output (``zero_init``: starts predicting 0, which keeps early rewards and values sane)."""
    return mlp(in_dim, (hidden,) * layers, out_dim, nn.SiLU, layer_norm=True, hidden_bias=False, zero_init=zero_init)


class EnsembleLinear(nn.Module):
    """K independent linear layers: [K, B, I] -> [K, B, O] with one batched matmul."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation, per member
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x [K, B, I] -> [K, B, O]; with ``members`` (indices [E]) only those members, x [E, B, I] -> [E, B, O]."""
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)  # [K, B, O]
        return torch.baddbmm(self.bias[members], x, self.weight[members])  # [E, B, O]


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last axis with a separate gain and bias per member: [K, B, O] -> [K, B, O]."""

    def __init__(self, members: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(members, 1, dim))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return torch.nn.functional.layer_norm(x, x.shape[-1:]) * weight + bias


class EnsembleMLP(nn.Module):
    """K MLPs with identical shapes and separate weights; input [K, B, I] (or [B, I], shared) -> [K, B, O].
    ``layer_norm``: LayerNorm (per-member gain and bias) after each hidden linear layer, before the activation."""

    def __init__(
        self,
        members: int,
        in_dim: int,
        hidden: tuple[int, ...],
        out_dim: int,
        activation=nn.ReLU,
        layer_norm: bool = False,
    ):
        super().__init__()
        self.members = members
        widths = (in_dim,) + tuple(hidden)
        self.hidden = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.norms = nn.ModuleList(EnsembleLayerNorm(members, b) for b in widths[1:]) if layer_norm else None
        self.out = EnsembleLinear(members, widths[-1], out_dim)
        self.activation = activation()
        # Without autograd (planning, model rollouts) the activation overwrites its input, a fresh [K, B, H]
        # tensor: one buffer fewer per layer (about 2.5% off a PETS decision, benchmarks/checks/README.md).
        in_place = "inplace" in inspect.signature(activation).parameters
        self.activation_in_place = activation(inplace=True) if in_place else self.activation

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """``members`` (indices [E]): run only those members on x [E, B, I] (MBPO's elites) -> [E, B, O]."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members if members is None else len(members), -1, -1)  # [K, B, I]
        for i, layer in enumerate(self.hidden):
            x = layer(x, members)
            if self.norms is not None:
                x = self.norms[i](x, members)
            x = self.activation(x) if torch.is_grad_enabled() else self.activation_in_place(x)
        return self.out(x, members)  # [K, B, O]
