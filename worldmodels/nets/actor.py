"""The tanh-squashed Gaussian policy (SAC's actor, TD-MPC's policy prior).

Dimension letters: B batch, F input features, A action dims.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.nets.mlp import mlp


class TanhGaussianActor(nn.Module):
    def __init__(self, in_dim: int, action_dim: int, hidden: tuple[int, ...], log_std_bounds: tuple[float, ...]):
        super().__init__()
        self.net = mlp(in_dim, hidden, 2 * action_dim)
        self.log_std_min, self.log_std_max = log_std_bounds

    def forward(self, features: torch.Tensor, deterministic: bool = False):
        """-> action [B, A] in (-1, 1), log-probability [B]."""
        mean, log_std = self.net(features).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (torch.tanh(log_std) + 1)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[0], device=mean.device)
        std = log_std.exp()
        pre_tanh = mean + std * torch.randn_like(mean)
        gaussian_logp = (-0.5 * ((pre_tanh - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log |d tanh(u) / du| = 2 (log 2 - u - softplus(-2u)), the numerically stable form.
        squash = (2 * (math.log(2) - pre_tanh - F.softplus(-2 * pre_tanh))).sum(-1)
        return torch.tanh(pre_tanh), gaussian_logp - squash
