"""Exponential moving averages of network weights (target and slow networks)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, rate: float) -> None:
    """target <- target + rate * (online - target), parameter by parameter (buffers are left alone)."""
    for slow, fast in zip(target.parameters(), online.parameters(), strict=True):
        slow.lerp_(fast, rate)
