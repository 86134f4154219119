"""Adam with PyTorch's fused kernel: one call updates every parameter of a group (the default CPU path loops over
them tensor by tensor, about 3x slower on SAC's small networks); the same update to within float rounding."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(params: Iterable, lr: float, **kwargs) -> torch.optim.Adam:
    """torch.optim.Adam over ``params`` (tensors or param-group dicts), fused where every parameter lives on a
    device the fused kernel supports (CPU, CUDA)."""
    params = list(params)
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in tensors)
    return torch.optim.Adam(params, lr=lr, fused=fused, **kwargs)
