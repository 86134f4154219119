"""Exponential moving averages of network weights (target and slow networks)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, rate: float) -> None:
    """target <- target + rate * (online - target), parameter by parameter (buffers are left alone)."""
    slow, fast = list(target.parameters()), list(online.parameters())
    if len(slow) != len(fast):
        raise ValueError(f"ema_update: target has {len(slow)} parameters, online {len(fast)}")
    torch._foreach_lerp_(slow, fast, rate)  # one call for all parameters
