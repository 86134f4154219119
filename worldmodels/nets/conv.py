"""Convolutional encoder for [C, 64, 64] uint8 pixels (C = 3 per frame), and random-shift augmentation.

Dimension letters: B batch, C channels, H height, W width.
"""

from __future__ import annotations

import torch
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
        # uint8 (or float 0..255) [B, C, H, W] -> float in [-0.5, 0.5], channels-last: one layout change on the
        # 1-byte pixels, one conversion, and the scaling in place on that fresh copy
        x = pixels.contiguous(memory_format=torch.channels_last).to(torch.float32, copy=True)
        return self.net(x.mul_(1.0 / 255.0).sub_(0.5))  # [B, out_dim]


def random_shift(pixels: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ's augmentation: replicate-pad by ``pad`` pixels, then crop back at a random offset per image.

    Integer shifts are a gather of clamped indices, so any dtype works (uint8 pixels stay uint8) and nothing is
    interpolated: [B, C, H, W] -> [B, C, H, W], in the input's memory layout (contiguous or channels-last).
    """
    if pad == 0:
        return pixels
    batch, channels, height, width = pixels.shape
    shift = torch.randint(-pad, pad + 1, (batch, 2), device=pixels.device)  # [B, 2] (rows, columns)
    rows = (torch.arange(height, device=pixels.device) + shift[:, :1]).clamp(0, height - 1)  # [B, H]
    cols = (torch.arange(width, device=pixels.device) + shift[:, 1:]).clamp(0, width - 1)  # [B, W]
    index = (rows[:, :, None] * width + cols[:, None, :]).view(batch, height * width)  # [B, H*W]
    if pixels.is_contiguous(memory_format=torch.channels_last) and not pixels.is_contiguous():
        flat = pixels.permute(0, 2, 3, 1).reshape(batch, height * width, channels)  # a view of the HWC memory
        shifted = flat.gather(1, index[:, :, None].expand(-1, -1, channels))  # [B, H*W, C]
        return shifted.view(batch, height, width, channels).permute(0, 3, 1, 2)  # [B, C, H, W], channels-last
    flat = pixels.reshape(batch, channels, height * width)
    return flat.gather(2, index[:, None].expand(-1, channels, -1)).view(batch, channels, height, width)
