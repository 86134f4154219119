"""Value error of every model with a value function, on episodes of the agent's own policy (issue 20, part 5).

Dimension letters: N windows of an episode (usable starts), H horizon, T decisions in an episode.

A value V(s) estimates the discounted return of the agent's own policy, so random-action episodes cannot score it:
each agent plays its greedy policy (as in evaluation) for episodes long enough that the discounted tail past
them is negligible, and ``agent.open_loop(episode, H, values=True)`` gives its value of every real state s_t
(k = 0) and of the states its model predicts after k = 1..H executed actions. The truth is the realised
discounted return G_{t+k} = sum_i gamma^i r_{t+k+1+i} in the agent's own discount. The agents bootstrap through
time-limit truncation, so they estimate the return of an episode that goes on: the episodes run past the task's
time limit (dm_control and gymnasium dynamics do not change with time), and only starts with at least
``ceil(log(tol) / log(gamma))`` decisions after t + H are scored, so the cut-off tail weighs at most ``tol``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from worldmodels.envs import make_env


def record_episode(env, choose_action, seed: int, keys: tuple[str, ...]) -> dict:
    """One episode in the replay's layout (entry 0 the reset: zero action, reward 0); choose_action(obs, first)
    -> action. ``keys``: the observation keys kept (state, pixels)."""
    obs, _ = env.reset(seed=seed)
    record = {key: [obs[key]] for key in keys}
    actions, rewards, terminal = [np.zeros(env.action_space.shape, np.float32)], [0.0], [False]
    done, first = False, True
    while not done:
        action = choose_action(obs, first)
        first = False
        obs, reward, terminated, truncated, _ = env.step(action)
        for key in keys:
            record[key].append(obs[key])
        actions.append(np.asarray(action, np.float32))
        rewards.append(reward)
        terminal.append(terminated)
        done = terminated or truncated
    length = len(rewards)
    episode = {key: np.stack(values) for key, values in record.items()}
    if "state" in episode:
        episode["state"] = episode["state"].astype(np.float32)
    return episode | {
        "action": np.stack(actions),
        "reward": np.asarray(rewards, np.float32),
        "is_first": np.arange(length) == 0,
        "is_last": np.arange(length) == length - 1,
        "is_terminal": np.asarray(terminal),
    }


def tail_decisions(discount: float, tol: float) -> int:
    """Decisions after which the discounted tail weighs at most ``tol``: ceil(log(tol) / log(discount))."""
    if not (0 < discount < 1 and 0 < tol < 1):
        raise ValueError(f"value error needs 0 < discount < 1 and 0 < tol < 1, got discount {discount}, tol {tol}")
    return math.ceil(math.log(tol) / math.log(discount))


def policy_episodes(agent, cfg, episodes: int, seed: int, decisions: int) -> list[dict]:
    """``episodes`` greedy episodes of the agent on its own task and observations, each ``decisions`` decisions
    long (the time limit is set to that, past the task's own), seeds seed, seed + 1, ..."""
    from worldmodels.run.loop import env_kwargs

    kwargs = env_kwargs(cfg) | {"time_limit": decisions * cfg.env.action_repeat}
    env = make_env(cfg.env.spec, seed=seed, **kwargs)
    keys = tuple(env.observation_space.spaces)
    state = None

    def greedy(obs: dict, first: bool) -> np.ndarray:
        nonlocal state
        batch = {key: value[None] for key, value in obs.items()} | {"is_first": np.array([first])}
        action, state, _ = agent.act(batch, None if first else state, explore=False)
        return action[0]

    try:
        return [record_episode(env, greedy, seed + i, keys) for i in range(episodes)]
    finally:
        env.close()


def discounted_returns(rewards: np.ndarray, discount: float) -> np.ndarray:
    """rewards [T + 1] in the replay layout (rewards[j] leads into step j) -> G [T + 1], G_j = sum_i discount^i
    rewards[j + 1 + i] (G_T = 0)."""
    returns = np.zeros(len(rewards))
    for j in range(len(rewards) - 2, -1, -1):
        returns[j] = rewards[j + 1] + discount * returns[j + 1]
    return returns


@dataclass
class ValueCurve:
    error: np.ndarray
    """[H + 1] mean |V_hat - G| after k = 0..H open-loop steps (k = 0: the value of the real state)."""
    bias: np.ndarray
    """[H + 1] mean V_hat - G (positive: the value is optimistic)."""
    return_scale: float
    """Mean |G| over the scored steps, to read the errors against."""
    discount: float
    starts: int
    """Windows scored (over all episodes)."""


@torch.no_grad()
def value_curve(agent, episodes: list[dict], horizon: int, tol: float) -> ValueCurve | None:
    """The agent's value error along its own episodes; None for an agent without a value function. An episode that
    ended in a terminal state has no tail (every start is scored); one cut short otherwise (e.g. a diverged
    simulation) is skipped with a warning, and a ValueError says so when none is left."""
    errors, biases, scale, discount = [], [], [], None
    for episode in episodes:
        prediction = agent.open_loop(episode, horizon, values=True)
        if prediction.values is None:
            return None
        discount = prediction.discount
        returns = discounted_returns(episode["reward"], discount)  # [T + 1]
        decisions = len(episode["reward"]) - 1
        tail = 0 if np.asarray(episode.get("is_terminal", [False]))[-1] else tail_decisions(discount, tol)
        usable = decisions - horizon - tail + 1  # starts t whose return past the episode weighs at most tol
        if usable < 1:
            warnings.warn(f"an episode of {decisions} decisions is too short to score values: skipped", stacklevel=2)
            continue
        t = np.arange(usable)
        truth = torch.as_tensor(returns[t[:, None] + np.arange(horizon + 1)], dtype=torch.float32)  # [N, H + 1]
        predicted = prediction.values[:usable].cpu().float()  # [N, H + 1]
        errors.append((predicted - truth).abs())
        biases.append(predicted - truth)
        scale.append(truth.abs())
    if not errors:
        raise ValueError(f"every episode is too short to score values at discount {discount} and tol {tol}")
    error, bias = torch.cat(errors), torch.cat(biases)
    return ValueCurve(error.mean(0).numpy(), bias.mean(0).numpy(), float(torch.cat(scale).mean()), discount, len(error))


def value_table(curves: dict[str, ValueCurve], ks=(0, 1, 5, 10, 15)) -> str:
    """Markdown: per model, |V_hat - G| and the bias V_hat - G at k = ks, the return scale and the discount."""
    head = [f"abs k={k}" for k in ks] + [f"bias k={k}" for k in ks]
    lines = [
        "| model | " + " | ".join(head) + " | mean abs G | discount | windows |",
        "|---|" + "---|" * (len(ks) * 2 + 3),
    ]
    for name, c in curves.items():
        cells = [_cell(c.error, k) for k in ks] + [_cell(c.bias, k) for k in ks]
        tail = f"{c.return_scale:.3g} | {c.discount:g} | {c.starts}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {tail} |")
    return "\n".join(lines) + "\n"


def _cell(values: np.ndarray, k: int) -> str:
    return f"{values[k]:.3g}" if k < len(values) else "-"
