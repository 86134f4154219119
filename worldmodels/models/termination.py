"""A learned termination rule: p(the episode ends | next state), for tasks whose rule is not known.

Used like a known rule (envs/terminations.py): called on next states [M, S] it returns done flags [M].
Terminal transitions are rare, so the binary cross-entropy weighs them up to balance the two classes.
Until a termination has been seen it predicts that episodes never end.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.nets.guarded_step import NonFiniteUpdate, guarded_step
from worldmodels.nets.mlp import mlp
from worldmodels.nets.optim import adam


class TerminationClassifier(nn.Module):
    def __init__(self, state_dim: int, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.net = mlp(state_dim, hidden, 1, activation=nn.SiLU)
        self.register_buffer("mean", torch.zeros(state_dim))
        self.register_buffer("std", torch.ones(state_dim))
        self.register_buffer("seen_termination", torch.zeros((), dtype=torch.bool))

    def logits(self, next_states: torch.Tensor) -> torch.Tensor:
        """next_states [M, S] -> logit of 'the episode ends here' [M]."""
        return self.net((next_states - self.mean) / self.std).squeeze(-1)

    def forward(self, next_states: torch.Tensor) -> torch.Tensor:
        """next_states [M, S] -> done flags [M] bool."""
        if not self.seen_termination:
            return torch.zeros(next_states.shape[0], dtype=torch.bool, device=next_states.device)
        return self.logits(next_states) > 0

    def fit(
        self,
        next_states: torch.Tensor,
        terminated: torch.Tensor,
        steps: int = 300,
        batch_size: int = 256,
        lr: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> float:
        """Refit on every transition: next_states [N, S], terminated [N] bool -> the last minibatch's loss."""
        positives = int(terminated.sum())
        if positives == 0:
            return float("nan")
        before = copy.deepcopy(self.state_dict())  # restored if a step turns out non-finite
        self.seen_termination.fill_(True)
        self.mean.copy_(next_states.mean(0))
        self.std.copy_(next_states.std(0).clamp(min=1e-6))
        pos_weight = torch.tensor((len(terminated) - positives) / positives, device=next_states.device)
        optimizer = adam(self.net.parameters(), lr=lr)
        labels = terminated.float()
        for _ in range(steps):
            idx = torch.randint(len(labels), (min(batch_size, len(labels)),), generator=generator).to(labels.device)
            loss = F.binary_cross_entropy_with_logits(self.logits(next_states[idx]), labels[idx], pos_weight=pos_weight)
            try:
                guarded_step(optimizer, loss, self.net.parameters(), "termination classifier")
            except NonFiniteUpdate:
                self.load_state_dict(before)
                raise
        return loss.item()
