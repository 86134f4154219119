"""Turn a vector env's steps into whole episodes for the replay (see replay/episode.py for the layout).

Dimension letters: N parallel envs, A action dims.
"""

from __future__ import annotations

import numpy as np

from worldmodels.envs import is_discrete


def _empty_action(action_space) -> np.ndarray:
    if is_discrete(action_space):
        return np.zeros((), np.int64)
    return np.zeros(action_space.shape, np.float32)


class EpisodeBuilder:
    """Accumulates the steps of N envs and hands back each episode when it ends."""

    def __init__(self, num_envs: int, action_space, extras: dict[str, tuple] | None = None):
        """extras: the agent's replay_extras(), name -> (shape, dtype); first steps get zeros."""
        self.num_envs = num_envs
        self.action_space = action_space
        self.extras = extras or {}
        self._steps: list[list[dict]] = [[] for _ in range(num_envs)]

    def start(self, index: int, obs: dict[str, np.ndarray]) -> None:
        first = {k: v for k, v in obs.items()}
        first.update(
            action=_empty_action(self.action_space),
            reward=np.float32(0.0),
            is_first=True,
            is_last=False,
            is_terminal=False,
        )
        first.update({name: np.zeros(shape, dtype) for name, (shape, dtype) in self.extras.items()})
        self._steps[index] = [first]

    def start_all(self, obs: dict[str, np.ndarray]) -> None:
        for i in range(self.num_envs):
            self.start(i, {k: v[i] for k, v in obs.items()})

    def add(
        self,
        index: int,
        action,
        reward: float,
        obs: dict[str, np.ndarray],
        terminated: bool,
        truncated: bool,
        extras: dict[str, np.ndarray] | None = None,
    ):
        """Append one step; return the finished episode (dict of stacked arrays) if this step ended it.
        extras: this env's values of the agent's replay extras for the action (zeros when None)."""
        done = bool(terminated or truncated)
        step = {k: v for k, v in obs.items()}
        step.update(
            action=np.asarray(action, _empty_action(self.action_space).dtype),
            reward=np.float32(reward),
            is_first=False,
            is_last=done,
            is_terminal=bool(terminated),
        )
        for name, (shape, dtype) in self.extras.items():
            step[name] = np.zeros(shape, dtype) if extras is None else np.asarray(extras[name], dtype)
        self._steps[index].append(step)
        if not done:
            return None
        steps, self._steps[index] = self._steps[index], []
        episode = {key: np.stack([s[key] for s in steps]) for key in steps[0]}
        for key in ("is_first", "is_last", "is_terminal"):
            episode[key] = episode[key].astype(bool)
        return episode


def split_final_obs(obs: dict[str, np.ndarray], infos: dict, index: int) -> dict[str, np.ndarray]:
    """The last observation of env ``index`` when it just finished (same-step autoreset), else its obs."""
    if "final_obs" in infos and infos.get("_final_obs", np.zeros(index + 1, bool))[index]:
        return infos["final_obs"][index]
    return {k: v[index] for k, v in obs.items()}


def latest_transitions(
    obs: dict[str, np.ndarray], action, reward, last_obs: list[dict[str, np.ndarray]], terminated, action_space
) -> dict:
    """The N transitions of the vector step just taken, in the layout of ReplayStore.sample_transitions: obs
    (before the step) and next_obs are dicts of [N, ...]; next_obs of an env whose episode just ended is its
    true last observation (``last_obs[i]`` from split_final_obs), not the first of the next episode."""
    return {
        "obs": obs,
        "action": np.asarray(action, _empty_action(action_space).dtype),  # [N] or [N, A]
        "reward": np.asarray(reward, np.float32),  # [N]
        "next_obs": {key: np.stack([last[key] for last in last_obs]) for key in obs},
        "terminated": np.asarray(terminated, bool),  # [N]
    }
