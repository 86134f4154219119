"""A direct-mapped cache of one float per replay step, tagged by the step's logical index and a version.

MuZero bootstraps value targets from a target network that changes only every ``target_every`` updates, while
the same replay step is drawn as a bootstrap point many times in between; caching its value per step (version =
the target network's generation) computes each one once per generation, and the targets stay exactly the same.

Slot = step_id mod size; a slot holds one step, so a collision or an older version is simply a miss. A negative
step_id (a batch that did not come from the replay) never hits and is never stored.
"""

from __future__ import annotations

import numpy as np


class StepCache:
    def __init__(self, size: int = 1 << 20):
        self.size = size
        self.tag = np.full(size, -1, np.int64)  # step_id held in each slot
        self.version = np.full(size, -1, np.int32)
        self.value = np.zeros(size, np.float32)

    def lookup(self, step_id: np.ndarray, version: int) -> tuple[np.ndarray, np.ndarray]:
        """step_id [...] -> (values [...], hit [...] bool); values are meaningless where hit is False."""
        slot = step_id % self.size
        hit = (self.tag[slot] == step_id) & (self.version[slot] == version) & (step_id >= 0)
        return self.value[slot], hit

    def store(self, step_id: np.ndarray, version: int, value: np.ndarray) -> None:
        """step_id [M] distinct ids, value [M]."""
        keep = step_id >= 0
        slot = step_id[keep] % self.size
        self.tag[slot], self.version[slot], self.value[slot] = step_id[keep], version, value[keep]

    def clear(self) -> None:
        self.tag.fill(-1)
