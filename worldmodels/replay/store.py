"""The replay store: whole episodes in one ring of preallocated arrays, sampled without Python loops.

Dimension letters: B batch, T sequence length, L episode length, E episodes held.

Episodes sit back to back in a ring of ``capacity`` steps (physical index = logical index % capacity).
Adding an episode evicts the oldest whole episodes until it fits, so the ring always holds complete
episodes in the order they were written. Pixels stay uint8; nothing is copied to float.
"""

from __future__ import annotations

import shutil
import warnings
from collections import deque
from pathlib import Path

import numpy as np

from worldmodels.replay.episode import episode_files, episode_index, load_episode, save_episode, validate_episode

OBS_KEYS = ("pixels", "state")


def unused_name(path: Path) -> Path:
    """``path``, or ``path`` with .1, .2, ... before its suffix when taken (set-aside files never overwrite)."""
    candidate, k = path, 0
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.stem}.{k}{path.suffix}")
    return candidate


class ReplayStore:
    def __init__(self, capacity: int, directory: str | Path | None = None, seed: int = 0):
        """capacity: steps held in memory. directory: where finished episodes are written (None: memory only)."""
        if capacity < 2:
            raise ValueError(f"replay capacity must be at least 2 steps, got {capacity}")
        self.capacity = capacity
        self.directory = Path(directory) if directory is not None else None
        self.rng = np.random.default_rng(seed)
        self._data: dict[str, np.ndarray] = {}  # key -> [capacity, ...]
        self._episodes: deque[tuple[int, int]] = deque()  # (logical start, length L), oldest first
        self._head = 0  # logical index one past the newest step
        self._size = 0  # steps held
        self.episodes_added = 0  # episodes ever added (the next episode's file index)
        self._starts = np.zeros(0, np.int64)  # [E] logical starts, cached for the samplers
        self._lengths = np.zeros(0, np.int64)  # [E]

    # -- filling ------------------------------------------------------------------------------------------
    def add_episode(self, episode: dict[str, np.ndarray], save: bool = True) -> None:
        length = validate_episode(episode)
        if length > self.capacity:
            raise ValueError(f"episode of {length} steps exceeds the replay capacity of {self.capacity} steps")
        if self.directory is not None and save:
            save_episode(self.directory, self.episodes_added, episode)
        self._insert(episode, length)
        self.episodes_added += 1

    def _insert(self, episode: dict[str, np.ndarray], length: int) -> None:
        if not self._data:
            self._data = {k: np.zeros((self.capacity,) + v.shape[1:], v.dtype) for k, v in episode.items()}
        elif set(episode) != set(self._data):
            raise ValueError(f"episode keys {sorted(episode)} differ from the store's {sorted(self._data)}")
        while self._size + length > self.capacity:
            _, evicted = self._episodes.popleft()
            self._size -= evicted
        index = (self._head + np.arange(length)) % self.capacity  # [L]
        for key, array in self._data.items():
            array[index] = episode[key]
        self._episodes.append((self._head, length))
        self._head += length
        self._size += length
        self._starts = np.array([s for s, _ in self._episodes], np.int64)
        self._lengths = np.array([n for _, n in self._episodes], np.int64)

    def load(self, up_to: int | None = None) -> int:
        """Reload episode files written earlier (newest that fit in capacity); return how many were loaded.

        up_to: episodes with a file index >= up_to were written after the checkpoint being resumed; they are
        moved to replay/orphaned/ (kept, not loaded) so that counters and replay agree. A file that cannot be
        read is moved to replay/corrupt/ with a warning.
        """
        if self.directory is None:
            return 0
        files = episode_files(self.directory)
        if up_to is not None:
            late = [f for f in files if episode_index(f) >= up_to]
            if late:
                orphaned = self.directory / "orphaned"
                orphaned.mkdir(exist_ok=True)
                for path in late:
                    shutil.move(str(path), unused_name(orphaned / path.name))
            files = [f for f in files if episode_index(f) < up_to]
        keep, total = [], 0
        for path in reversed(files):  # newest first, until the capacity is full
            length = int(path.stem.split("-")[1])
            if total + length > self.capacity:
                break
            keep.append(path)
            total += length
        loaded = 0
        for path in reversed(keep):
            try:
                episode = load_episode(path)
            except ValueError as err:  # a damaged file costs that episode, not the run
                corrupt = self.directory / "corrupt"
                corrupt.mkdir(exist_ok=True)
                moved = unused_name(corrupt / path.name)
                shutil.move(str(path), moved)
                warnings.warn(f"{err}; moved it to {moved} and went on without it", stacklevel=2)
                continue
            self._insert(episode, len(episode["reward"]))
            loaded += 1
        if up_to is not None:
            self.episodes_added = up_to
        else:
            self.episodes_added = episode_index(files[-1]) + 1 if files else 0
        return loaded

    # -- sizes --------------------------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return self._size

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    @property
    def num_transitions(self) -> int:
        return self._size - len(self._episodes)

    @property
    def longest_episode(self) -> int:
        return int(self._lengths.max()) if len(self._lengths) else 0

    def __len__(self) -> int:
        return self._size

    # -- sampling -----------------------------------------------------------------------------------------
    def _sample_within_episodes(self, batch: int, span: int) -> np.ndarray:
        """[batch] logical starts of windows of ``span`` steps that lie inside one episode."""
        counts = np.maximum(self._lengths - span + 1, 0)  # [E] valid starts per episode
        total = counts.sum()
        if total == 0:
            longest = int(self._lengths.max()) if len(self._lengths) else 0
            raise ValueError(
                f"no stored episode has {span} steps (longest: {longest}); collect more data, shorten the "
                "sequence, or sample with cross_episodes=True"
            )
        episode = self.rng.choice(len(counts), size=batch, p=counts / total)  # [B]
        offset = np.floor(self.rng.random(batch) * counts[episode]).astype(np.int64)  # [B]
        return self._starts[episode] + offset

    def _gather(self, logical: np.ndarray) -> dict[str, np.ndarray]:
        physical = logical % self.capacity
        return {key: array[physical] for key, array in self._data.items()}

    def sample_sequences(self, batch: int, length: int, cross_episodes: bool = False) -> dict[str, np.ndarray]:
        """Chunks of ``length`` consecutive steps, every key batch-major [B, T, ...].

        With cross_episodes=False a chunk never crosses an episode boundary. With True a chunk may run into
        the next episode, whose first step is flagged by is_first (recurrent models reset their state there).
        """
        if cross_episodes:
            if self._size < length:
                raise ValueError(f"the replay holds {self._size} steps, fewer than a sequence of {length}")
            tail = self._head - self._size
            starts = tail + self.rng.integers(0, self._size - length + 1, size=batch)  # [B]
        else:
            starts = self._sample_within_episodes(batch, length)  # [B]
        return self._gather(starts[:, None] + np.arange(length))  # [B, T, ...]

    def sample_unrolls(self, batch: int, length: int, history: int = 0) -> dict[str, np.ndarray]:
        """Windows of ``length`` steps starting at any step that has a successor (MuZero's K-step unrolls with
        n-step targets), every key [B, history + T, ...]. A window that runs past its episode's last step
        repeats that step; ``valid`` is False there, so the window never reads the next episode. The
        ``history`` steps in front (for frame stacking) repeat the episode's first step where they would
        reach before it; ``valid`` is True on them. ``step_id`` [B, history + T] is each read step's logical
        index, unique to that step for the store's lifetime (a key for caches of per-step values)."""
        if self.num_transitions == 0:
            raise ValueError("the replay holds no transitions yet")
        episode = self.rng.choice(len(self._lengths), size=batch, p=(self._lengths - 1) / self.num_transitions)  # [B]
        offset = np.floor(self.rng.random(batch) * (self._lengths[episode] - 1)).astype(np.int64)  # [B]
        first = self._starts[episode]  # [B] logical index of the episode's first step
        last = first + self._lengths[episode] - 1  # [B] logical index of the episode's last step
        wanted = (first + offset - history)[:, None] + np.arange(history + length)  # [B, history + T]
        read = np.clip(wanted, first[:, None], last[:, None])
        out = self._gather(read)
        out["valid"] = wanted <= last[:, None]
        out["step_id"] = read
        return out

    def sample_transitions(self, batch: int) -> dict[str, np.ndarray]:
        """(obs, action, reward, next_obs, terminated), each [B, ...]; obs and next_obs are dicts of obs keys."""
        if self.num_transitions == 0:
            raise ValueError("the replay holds no transitions yet")
        return self._transitions_from(self._sample_within_episodes(batch, 2))

    def _transitions_from(self, now: np.ndarray) -> dict[str, np.ndarray]:
        """Logical step indices [B] (none the last of its episode) -> the transitions that start there."""
        current, following = self._gather(now), self._gather(now + 1)
        obs_keys = [k for k in OBS_KEYS if k in current]
        return {
            "obs": {k: current[k] for k in obs_keys},
            "action": following["action"],
            "reward": following["reward"],
            "next_obs": {k: following[k] for k in obs_keys},
            "terminated": following["is_terminal"],
        }

    def all_transitions(self) -> dict[str, np.ndarray]:
        """Every stored transition, in the layout of sample_transitions (models refitted on all data: PETS)."""
        if self.num_transitions == 0:
            raise ValueError("the replay holds no transitions yet")
        offsets = np.arange(self._size)  # [steps held], logical offsets from the oldest step
        logical = self._head - self._size + offsets
        valid = ~self._data["is_last"][logical % self.capacity]  # a transition starts at every step but the last
        return self._transitions_from(logical[valid])

    # -- checkpointing ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "episodes_added": self.episodes_added}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
