"""Discrete actions for a search over any action space: a discrete space as it is, a continuous one as a grid.

Dimension letters: A discrete actions, D action dims.
"""

from __future__ import annotations

import itertools

import gymnasium
import numpy as np

from worldmodels.envs import is_discrete


class ActionGrid:
    """``bins`` values per dimension of a continuous [-1, 1] action space, every combination one action
    (``grid`` [A, D]); a discrete space keeps its actions (``grid`` None)."""

    def __init__(self, space: gymnasium.Space, bins: int, limit: int = 1024):
        if is_discrete(space):
            self.grid, self.n = None, int(space.n)
            return
        if bins < 2:
            raise ValueError(f"agent.action_bins must be at least 2 for continuous actions, got {bins}")
        values = np.linspace(-1.0, 1.0, bins, dtype=np.float32)
        self.grid = np.array(list(itertools.product(values, repeat=space.shape[0])), np.float32)  # [A, D]
        self.n = len(self.grid)
        if self.n > limit:
            raise ValueError(
                f"{bins} bins over {space.shape[0]} action dims make {self.n} discrete actions; lower agent.action_bins"
            )

    def action(self, index: np.ndarray) -> np.ndarray:
        """Discrete indices [...] -> env actions [...] or [..., D]."""
        return index if self.grid is None else self.grid[index]

    def index(self, action: np.ndarray) -> np.ndarray:
        """Replayed env actions [...] or [..., D] -> discrete indices [...] (the nearest grid point)."""
        if self.grid is None:
            return action.astype(np.int64)
        return ((action[..., None, :] - self.grid) ** 2).sum(-1).argmin(-1)
