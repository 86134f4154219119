"""Episodes as dicts of aligned arrays, and their atomic compressed files.

An episode of L observations has, per key, an array whose first axis is L:
    obs keys      ``pixels`` uint8 [L, 3, H, W], ``state`` float32 [L, D]
    action        float32 [L, A] (continuous) or int64 [L] (discrete): action[t] led *into* obs[t]; action[0] = 0
    reward        float32 [L]: reward received on arriving at obs[t]; reward[0] = 0
    is_first      bool [L]: True at t = 0 only
    is_last       bool [L]: True at t = L - 1 only (terminated or truncated)
    is_terminal   bool [L]: True at t = L - 1 when the episode terminated (not on a time limit)
So transition t (0 <= t < L - 1) is (obs[t], action[t+1], reward[t+1], obs[t+1], is_terminal[t+1]).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

FLAG_KEYS = ("is_first", "is_last", "is_terminal")
REQUIRED_KEYS = ("action", "reward") + FLAG_KEYS


def validate_episode(episode: dict[str, np.ndarray]) -> int:
    """Check the episode layout; return its length L (number of observations)."""
    missing = [k for k in REQUIRED_KEYS if k not in episode]
    if missing:
        raise ValueError(f"episode lacks keys {missing}; it has {sorted(episode)}")
    lengths = {k: len(v) for k, v in episode.items()}
    length = lengths["reward"]
    if len(set(lengths.values())) != 1:
        raise ValueError(f"episode arrays differ in length: {lengths}")
    if length < 2:
        raise ValueError("an episode needs at least 2 observations (one transition)")
    if not episode["is_first"][0] or episode["is_first"][1:].any():
        raise ValueError("is_first must be True at t=0 only")
    if not episode["is_last"][-1] or episode["is_last"][:-1].any():
        raise ValueError("is_last must be True at the final step only")
    if episode["is_terminal"][:-1].any():
        raise ValueError("is_terminal can only be True at the final step")
    if "pixels" in episode and episode["pixels"].dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {episode['pixels'].dtype}")
    return length


def episode_filename(index: int, length: int) -> str:
    return f"{index:08d}-{length}.npz"


def episode_index(path: Path) -> int:
    return int(path.name.split("-", 1)[0])


def save_episode(directory: Path, index: int, episode: dict[str, np.ndarray]) -> Path:
    """Write atomically: a reader (or a resumed run) sees the whole file or none of it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / episode_filename(index, len(episode["reward"]))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **episode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_episode(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            episode = {k: data[k] for k in data.files}
        validate_episode(episode)
    except Exception as err:
        raise ValueError(f"replay episode {path} is unreadable ({type(err).__name__}: {err})") from err
    return episode


def episode_files(directory: Path) -> list[Path]:
    """Episode files in the order they were written."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.npz"), key=episode_index)
