"""Optimiser steps that refuse non-finite losses and gradients.

Every agent's update takes its optimiser steps through ``guarded_step``: when the loss or the gradient norm is
not finite, the step is not taken (weights and optimiser state stay as they were) and ``NonFiniteUpdate`` is
raised, which aborts the rest of that update. The training loop counts it (``train/nonfinite_updates``) and
stops the run after ``train.max_nonfinite_updates`` in a row.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class NonFiniteUpdate(ArithmeticError):
    """An update step whose loss or gradient norm was NaN or infinite; nothing was changed by it."""

    def __init__(self, what: str, value: float):
        super().__init__(f"{what} is {value}")
        self.what, self.value = what, value


def check_finite(what: str, value: torch.Tensor) -> None:
    """Raise NonFiniteUpdate unless the scalar tensor ``value`` is finite (``what`` names it in the message)."""
    if not bool(torch.isfinite(value)):
        raise NonFiniteUpdate(what, float(value))


def guarded_step(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    parameters: Iterable[nn.Parameter],
    name: str,
    grad_clip: float | None = None,
) -> torch.Tensor:
    """zero_grad, backward, clip (when ``grad_clip``) and step, unless the loss or the gradient norm is not
    finite: then the gradients are cleared, no step is taken and NonFiniteUpdate names ``name``'s loss or
    gradient. Returns the gradient norm before clipping. One host sync per step (both checks at once)."""
    parameters = list(parameters)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        norm = nn.utils.clip_grad_norm_(parameters, grad_clip)
    else:
        norm = nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
    if not bool(torch.isfinite(loss.detach()) & torch.isfinite(norm)):
        optimizer.zero_grad(set_to_none=True)
        check_finite(f"{name} loss", loss.detach())
        raise NonFiniteUpdate(f"{name} gradient norm", float(norm))
    optimizer.step()
    return norm
