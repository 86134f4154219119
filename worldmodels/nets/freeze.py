"""Freezing a module's parameters for a block of code (its activations still pass gradients through)."""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen(module: nn.Module):
    """Parameters take no gradient inside the block (activations still pass gradients through): losses computed
    there reach other modules through this one without changing it."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)
