import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import worldmodels  # noqa: E402,F401  (sets MUJOCO_GL before anything renders)

torch.set_num_threads(1)  # tiny test networks: extra threads only contend with the env subprocesses


def make_episode(
    length: int, start_value: float = 0.0, terminal: bool = False, pixels: bool = True, action_dim: int = 1
):
    """A synthetic episode of ``length`` observations whose state[t, 0] = start_value + t."""
    t = np.arange(length, dtype=np.float32)
    episode = {
        "state": np.stack([start_value + t, np.zeros_like(t)], axis=1).astype(np.float32),
        "action": np.repeat((start_value + t)[:, None], action_dim, axis=1).astype(np.float32),
        "reward": (start_value + t).astype(np.float32),
        "is_first": t == 0,
        "is_last": t == length - 1,
        "is_terminal": (t == length - 1) & terminal,
    }
    episode["action"][0] = 0
    episode["reward"][0] = 0
    if pixels:
        episode["pixels"] = np.full((length, 3, 8, 8), int(start_value) % 256, np.uint8)
    return episode


@pytest.fixture
def episode_factory():
    return make_episode


def point_mass_batch(n: int = 2000, seed: int = 0) -> dict:
    """Replayed transitions of a 1-D point mass: s' = s + 0.2 a, reward = -|s'| (the best action pushes towards 0)."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(-2, 2, (n, 1)).astype(np.float32)
    a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    s2 = s + 0.2 * a
    return {
        "obs": {"state": s},
        "action": a,
        "reward": -np.abs(s2[:, 0]),
        "next_obs": {"state": s2},
        "terminated": np.zeros(n, bool),
    }


@pytest.fixture
def point_mass():
    return point_mass_batch


def point_mass_sequence_batch(batch: int, length: int, seed: int) -> dict:
    """point_mass_batch's task as replayed sequences [B, T] (state padded to 3 dims): s_t = s_{t-1} + 0.2 a_t and
    reward_t = -|s_t|, with the action and reward of step t the ones that led into it."""
    rng = np.random.default_rng(seed)
    action = rng.uniform(-1, 1, (batch, length, 1)).astype(np.float32)
    action[:, 0] = 0.0
    position = rng.uniform(-2, 2, (batch, 1, 1)).astype(np.float32) + 0.2 * np.cumsum(action, 1)  # [B, T, 1]
    reward = -np.abs(position[..., 0])
    reward[:, 0] = 0.0
    first = np.zeros((batch, length), bool)
    first[:, 0] = True
    return {
        "state": np.concatenate([position, np.zeros((batch, length, 2), np.float32)], -1),
        "action": action,
        "reward": reward,
        "is_first": first,
        "is_terminal": np.zeros((batch, length), bool),
    }


@pytest.fixture
def point_mass_sequences():
    return point_mass_sequence_batch
