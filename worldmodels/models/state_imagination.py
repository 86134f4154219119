"""A state ensemble behind the imagined actor-critic's model contract ("version 2.0": the policy's gradient flows
back through the learned state dynamics).

Dimension letters: H horizon, N imagination starts, S state dims, A action dims, F = S + 2 features.

Features are [state (S), reward received on arriving there, probability that the episode goes on there]: the
ensemble predicts a transition's reward from (state, action), so the reward of reaching a state travels with
it. The actor and critic see only the state (``policy_features``), so acting on a real observation needs no
reward. Every imagined step is made by a member drawn at random (``Ensemble.step_random_member``, its
Gaussian noise reparameterised), so gradients pass through every step.
"""

from __future__ import annotations

import torch
from torch import nn

from worldmodels.models.ensemble import Ensemble


class StateImagination(nn.Module):
    def __init__(self, ensemble: Ensemble, done_fn=None, generator: torch.Generator | None = None):
        """done_fn(next_states [M, S]) -> [M] bool: a known or learned termination rule (None: episodes go on)."""
        super().__init__()
        self.ensemble, self.done_fn, self.generator = ensemble, done_fn, generator
        self.state_dim = ensemble.state_dim
        self.members = torch.arange(ensemble.members)  # which members step imagined states

    def features(self, states: torch.Tensor) -> torch.Tensor:
        """Real states [N, S] as imagination starts [N, F]: no reward yet, going on."""
        ones = torch.ones(states.shape[:-1] + (1,), device=states.device)
        return torch.cat([states, torch.zeros_like(ones), ones], -1)

    def imagine(self, start: torch.Tensor, policy, horizon: int) -> torch.Tensor:
        """start [N, F] (``features`` of real states) -> features [H+1, N, F], start first."""
        feats, state = [start], start[:, : self.state_dim]
        members = self.members.to(state.device)
        for _ in range(horizon):  # sequential in time; every step is one batched call for all N starts
            action = policy(feats[-1])  # [N, A]
            state, reward = self.ensemble.step_random_member(state, action, members, generator=self.generator)
            if self.done_fn is None:
                going_on = torch.ones_like(reward)
            else:
                going_on = 1.0 - self.done_fn(state.detach()).float()  # [N]
            feats.append(torch.cat([state, reward[:, None], going_on[:, None]], -1))
        return torch.stack(feats)

    def policy_features(self, feats: torch.Tensor) -> torch.Tensor:
        return feats[..., : self.state_dim]

    def reward(self, feats: torch.Tensor) -> torch.Tensor:
        return feats[..., self.state_dim]

    def continue_prob(self, feats: torch.Tensor) -> torch.Tensor:
        return feats[..., self.state_dim + 1]
