"""Convolutional encoder for [C, 64, 64] uint8 pixels (C = 3 per frame), and random-shift augmentation.

Dimension letters: B batch, C channels, H height, W width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions (DreamerV3's layout): [B, C, 64, 64] uint8 -> [B, out_dim] float
    (C = 3, or 3 x frames for stacked frames)."""

    def __init__(self, size: int = 64, channels: tuple[int, ...] = (32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        layers, width, side = [], in_channels, size
        for out in channels:
            layers += [nn.Conv2d(width, out, 4, stride=2, padding=1), nn.GroupNorm(1, out), nn.SiLU()]
            width, side = out, side // 2
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out_dim = width * side * side
        self.to(memory_format=torch.channels_last)  # NHWC: oneDNN's fast bf16 layout (about 1.4x at S on CPU)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255.0 - 0.5  # [B, C, H, W] in [-0.5, 0.5]
        return self.net(x.contiguous(memory_format=torch.channels_last))  # [B, out_dim]


def random_shift(pixels: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ's augmentation: replicate-pad by ``pad`` pixels, then crop back at a random offset per image.

    One grid_sample call for the whole batch: [B, C, H, W] float -> [B, C, H, W].
    """
    if pad == 0:
        return pixels
    batch, _, height, width = pixels.shape
    assert height == width, "random_shift expects square images"
    padded = F.pad(pixels, (pad,) * 4, mode="replicate")  # [B, C, H+2p, W+2p]
    eps = 1.0 / (height + 2 * pad)
    line = torch.linspace(-1.0 + eps, 1.0 - eps, height + 2 * pad, device=pixels.device)[:height]
    grid_x = line.unsqueeze(0).expand(height, height)  # [H, W]
    base = torch.stack([grid_x, grid_x.t()], dim=-1).unsqueeze(0)  # [1, H, W, 2]
    shift = torch.randint(0, 2 * pad + 1, (batch, 1, 1, 2), device=pixels.device) * (2.0 * eps)  # [B, 1, 1, 2]
    return F.grid_sample(padded, base + shift, padding_mode="zeros", align_corners=False)
