"""Observation and action conventions shared by every suite wrapper.

Observations are dicts: ``pixels`` uint8 [3, H, W] and/or ``state`` float32 [D].
Continuous actions are float32 in [-1, 1] (rescaled to the simulator's bounds); discrete actions are ints.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

OBS_KINDS = ("pixels", "state", "both")


def observation_space(obs: str, size: int, state_dim: int) -> spaces.Dict:
    parts = {}
    if obs in ("pixels", "both"):
        parts["pixels"] = spaces.Box(0, 255, (3, size, size), np.uint8)
    if obs in ("state", "both"):
        parts["state"] = spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)
    return spaces.Dict(parts)


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
