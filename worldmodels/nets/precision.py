"""bfloat16 autocast only where the hardware computes in bfloat16.

On a CPU without native bfloat16 matmuls (AMX or AVX512-BF16: most laptops, AMD Zen 3 and older), oneDNN
emulates them: measured on a 2-core AMD EPYC (AVX2 only), a 2000x200x200 matmul ran at 2.9 GFLOP/s in
bfloat16 against 151 in fp32, a Dreamer CPU-preset update took 21.0 s against 1.28 s, and a PETS decision at
mbrl-lib's settings 46 s against 1.95 s. So agents take ``bf16: auto`` (the default): bfloat16 on CUDA devices
that support it and on CPUs with AMX or AVX512-BF16, fp32 everywhere else. ``true`` and ``false`` force it.
"""

from __future__ import annotations

import contextlib

import torch


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matmuls natively (faster than fp32), not by emulation."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(getattr(cpu, name, lambda: False)() for name in probes)
    return False


def use_bf16(setting: bool | str, device: torch.device, key: str = "agent.bf16") -> bool:
    """Resolve a ``bf16`` config value (True, False or 'auto') for ``device``."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return native_bf16(device)
    raise ValueError(f"{key} must be true, false or auto, got {setting!r}")


def autocast(enabled: bool, device: torch.device):
    """bfloat16 autocast on ``device`` when enabled, else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
