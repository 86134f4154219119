"""Output transforms and distributions used by world models and actor-critics.

symlog / symexp squash targets of unknown scale; TwoHot is a categorical over symlog-spaced bins whose
expectation regresses a scalar (DreamerV3); straight-through one-hot categoricals with a uniform mix are the
RSSM's discrete latents.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot:
    """Scalars as two-hot vectors over ``bins`` equally spaced points of symlog space [low, high].

    encode(x) puts weight on the two bins around symlog(x), so that the weighted bins sum back to symlog(x);
    decode(logits) is symexp of the softmax-weighted bins. Shapes: [...] <-> [..., bins].
    """

    def __init__(self, bins: int = 255, low: float = -20.0, high: float = 20.0, device=None):
        self.points = torch.linspace(low, high, bins, device=device)  # [bins]

    def to(self, device) -> TwoHot:
        self.points = self.points.to(device)
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        y = symlog(x).clamp(self.points[0], self.points[-1])
        upper = torch.bucketize(y, self.points).clamp(1, len(self.points) - 1)  # index of the bin above y
        lower = upper - 1
        width = self.points[upper] - self.points[lower]
        w_upper = (y - self.points[lower]) / width
        out = torch.zeros(*y.shape, len(self.points), device=y.device, dtype=y.dtype)
        out.scatter_(-1, lower.unsqueeze(-1), (1 - w_upper).unsqueeze(-1))
        out.scatter_add_(-1, upper.unsqueeze(-1), w_upper.unsqueeze(-1))
        return out  # [..., bins]

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        return symexp((logits.softmax(-1) * self.points).sum(-1))  # [...]

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against the two-hot target, per element: [...]."""
        return -(self.encode(target.detach()) * F.log_softmax(logits, -1)).sum(-1)


def unimix_logits(logits: torch.Tensor, mix: float) -> torch.Tensor:
    """Logits of (1 - mix) * softmax(logits) + mix * uniform, over the last axis."""
    if mix <= 0:
        return logits
    probs = logits.softmax(-1)
    probs = (1 - mix) * probs + mix / logits.shape[-1]
    return probs.log()


def straight_through_onehot(logits: torch.Tensor) -> torch.Tensor:
    """A one-hot sample in the forward pass, the softmax's gradient in the backward pass: [..., C]."""
    probs = logits.softmax(-1)
    # Gumbel-max: argmax(logits + Gumbel noise) is a categorical sample, without multinomial's overhead.
    gumbel = -torch.empty_like(logits).exponential_().log()
    sample = F.one_hot((logits.detach() + gumbel).argmax(-1), logits.shape[-1]).to(probs.dtype)
    return sample + probs - probs.detach()


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of categoricals over the last axis, summed over the latent axis before it: [..., S, C] -> [...]."""
    log_p, log_q = F.log_softmax(logits_p, -1), F.log_softmax(logits_q, -1)
    return (log_p.exp() * (log_p - log_q)).sum((-1, -2))
