"""Observation and action conventions shared by every suite wrapper.

Observations are dicts: ``pixels`` uint8 [3, H, W] and/or ``state`` float32 [D] (a discrete observation is a
one-hot ``state`` whose space has bounds [0, 1]).
Continuous actions are float32 in [-1, 1] (rescaled to the simulator's bounds); discrete actions are ints.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

OBS_KINDS = ("pixels", "state", "both")


def observation_space(obs: str, size: int, state_dim: int, one_hot: bool = False) -> spaces.Dict:
    """``one_hot``: the state is a one-hot vector of a discrete observation (bounds [0, 1] instead of unbounded)."""
    parts = {}
    if obs in ("pixels", "both"):
        parts["pixels"] = spaces.Box(0, 255, (3, size, size), np.uint8)
    if obs in ("state", "both"):
        low, high = (0.0, 1.0) if one_hot else (-np.inf, np.inf)
        parts["state"] = spaces.Box(low, high, (state_dim,), np.float32)
    return spaces.Dict(parts)


def is_one_hot_state(space: spaces.Dict) -> bool:
    """Whether the observation space's ``state`` is a one-hot vector (a discrete observation, see gym_env.py)."""
    state = space.spaces.get("state")
    return state is not None and bool(np.all(state.low == 0.0) and np.all(state.high == 1.0))


def normalized_box(dim: int) -> spaces.Box:
    return spaces.Box(-1.0, 1.0, (dim,), np.float32)


def unnormalize(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map an action in [-1, 1] onto [low, high] (clipping first, so exploration noise is safe)."""
    action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    return low + (action + 1.0) * 0.5 * (high - low)


def sanitize_state(state: np.ndarray) -> tuple[np.ndarray, bool]:
    """Replace non-finite entries (a diverged simulation) by zeros; say whether any were found."""
    state = np.asarray(state, np.float32)
    finite = np.isfinite(state)
    if finite.all():
        return state, False
    return np.where(finite, state, 0.0).astype(np.float32), True
