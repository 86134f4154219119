"""MBPO's model buffer: imagined transitions in a ring of tensors, the newest kept.

Dimension letters: M transitions added at once, B batch, S state dims, A action dims.

The episode store (store.py) holds what the env produced, whole episodes on disk; a model's branched rollouts
are single transitions that are regenerated every few hundred env steps and never saved as episodes, so they
live here, on the learner's device, in the layout SAC's learner reads. The ring is checkpointed with the agent.
"""

from __future__ import annotations

import torch

KEYS = ("state", "action", "reward", "next_state", "terminated")


class TransitionBuffer:
    def __init__(self, capacity: int, state_dim: int, action_dim: int, device: torch.device):
        if capacity < 1:
            raise ValueError(f"the model buffer needs a capacity of at least 1 transition, got {capacity}")
        self.capacity, self.device = capacity, device
        self.data = {
            "state": torch.zeros(capacity, state_dim, device=device),  # [capacity, S]
            "action": torch.zeros(capacity, action_dim, device=device),  # [capacity, A]
            "reward": torch.zeros(capacity, device=device),
            "next_state": torch.zeros(capacity, state_dim, device=device),
            "terminated": torch.zeros(capacity, dtype=torch.bool, device=device),
        }
        self.added = 0  # transitions ever added; the ring's write position is added % capacity

    def __len__(self) -> int:
        return min(self.added, self.capacity)

    def add(self, transitions: dict[str, torch.Tensor]) -> None:
        """transitions: KEYS -> [M, ...]; when M exceeds the capacity only the newest ``capacity`` are kept."""
        m = transitions["reward"].shape[0]
        keep = min(m, self.capacity)
        index = (self.added + m - keep + torch.arange(keep, device=self.device)) % self.capacity  # [keep]
        for key in KEYS:
            self.data[key][index] = transitions[key][m - keep :].detach().to(self.data[key].dtype)
        self.added += m

    def sample(
        self, batch: int, generator: torch.Generator | None = None, newest: int | None = None
    ) -> dict[str, torch.Tensor]:
        """``batch`` transitions drawn uniformly with replacement from the newest ``newest`` held (None: all of
        them; MBPO's pool: retain_epochs epochs of rollouts at the k in force): KEYS -> [B, ...]."""
        if len(self) == 0:
            raise ValueError("the model buffer is empty: no model rollout has been made yet")
        size = len(self) if newest is None else min(len(self), newest)
        index = torch.randint(size, (batch,), generator=generator, device=self.device)  # [B]
        if size < len(self):  # count back from the newest
            index = (self.added - 1 - index) % self.capacity
        return {key: value[index] for key, value in self.data.items()}

    def state_dict(self) -> dict:
        size = len(self)
        return {"added": self.added, **{key: value[:size].cpu() for key, value in self.data.items()}}

    def load_state_dict(self, state: dict) -> None:
        size = state["reward"].shape[0]
        if size > self.capacity:
            raise ValueError(f"a saved model buffer of {size} transitions does not fit a capacity of {self.capacity}")
        for key in KEYS:
            self.data[key][:size] = state[key].to(self.device)
        self.added = state["added"]
