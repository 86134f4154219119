"""Failure modes of model-based agents, measured on each episode an agent has just collected (not yet trained on).

Dimension letters: T transitions in the episode, H the agent's horizon, N = T - H + 1 windows, A action dims.

- Model exploitation: a planner picks the actions its model rates highest, and an imagining actor-critic learns
  the actions its model rates highest, so the model's errors are selected for: on the agent's own actions the
  model is optimistic. From every real state s_t of the episode the model predicts the H-step return of the
  actions the agent then executed, open loop; ``exploitation`` = predicted - achieved, averaged over windows
  (0 for an unbiased model; positive: the agent exploits the model's errors); ``exploitation_per_step`` divides it
  by H, so that agents with different horizons compare. It mixes the model's plain reward bias with the errors
  the agent selects for; the model-error study's held-out random-action episodes measure the bias alone.
- Objective mismatch: the model is trained for prediction, not for return. ``model_error`` is the model's own
  training objective (or its one-step error) on the fresh episode; plotted against the eval return over training
  it shows whether a better model meant a better agent.

Every agent with a model implements ``model_check(episode) -> metrics | None`` (agents/base.py) with these helpers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

PREFIX = "failure/"


def actions_of_episode(episode: dict, device=None) -> torch.Tensor:
    """An episode's executed actions a_1..a_T as float32 [T, A] (a discrete action as one column)."""
    actions = torch.as_tensor(np.asarray(episode["action"][1:], np.float32), device=device)
    return actions[:, None] if actions.ndim == 1 else actions


def episode_observations(episode: dict, frames: int, device=None) -> dict[str, torch.Tensor]:
    """An episode's observations as a model reads them at every step: state [T + 1, S] float32 and pixels as
    stacks of the last ``frames`` frames [T + 1, frames x C, H, W] (the first frame repeated at the start)."""
    from worldmodels.models.muzero import stack_frames
    from worldmodels.models.tdmpc import frame_reads

    obs = {}
    if "state" in episode:
        obs["state"] = torch.as_tensor(episode["state"], dtype=torch.float32, device=device)
    if "pixels" in episode:
        reads = frame_reads(torch.as_tensor(episode["is_first"])[None], frames)[0]  # [T + 1, F]
        obs["pixels"] = stack_frames(torch.as_tensor(episode["pixels"])[reads]).to(device)
    return obs


def executed_windows(episode: dict, horizon: int, device=None) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """An episode in the replay's layout (action t and reward t lead into step t; entry 0 is the reset) ->
    (window starts t [N], executed actions a_{t+1..t+H} [N, H, A] float32, achieved rewards [N, H] float32).
    H is cut to the episode's length."""
    actions = actions_of_episode(episode, device)  # [T, A]
    rewards = torch.as_tensor(np.asarray(episode["reward"][1:], np.float32), device=device)  # [T]
    horizon = min(horizon, len(rewards))
    starts = np.arange(len(rewards) - horizon + 1)  # [N]
    windows = actions.unfold(0, horizon, 1).transpose(1, 2)  # [N, H, A]
    return starts, windows.contiguous(), rewards.unfold(0, horizon, 1)  # [N, H]


class OpenLoop(NamedTuple):
    """What a model predicts open loop along an episode (``agent.open_loop(episode, horizon)``), from each real
    step t of the windows of ``executed_windows`` with the executed actions a_{t+1..t+H}."""

    rewards: torch.Tensor
    """Predicted rewards [N, H]."""
    model_error: float
    """The model's own error on the episode (its training objective or one-step error; see each agent)."""
    states: torch.Tensor | None = None
    """Predicted states [N, H, S] (models that predict the state vector), else None."""
    values: torch.Tensor | None = None
    """With ``open_loop(..., values=True)``: the agent's value [N, H + 1] of the real state s_t (k = 0) and of
    the predicted states after k = 1..H steps, for its own policy; None for an agent without a value function."""
    discount: float | None = None
    """The discount per decision those values are for."""


@torch.no_grad()
def ensemble_open_loop(ensemble, episode: dict, horizon: int, done_fn=None, device=None) -> OpenLoop:
    """A probabilistic ensemble (models/ensemble.py) from every real state of the episode: the members' mean
    prediction rolled open loop through the executed actions (rewards after a termination by ``done_fn`` count 0);
    model_error is the one-step relative state error ||s' - s'_true|| / ||s'_true|| of the members' mean."""
    states = torch.as_tensor(episode["state"], dtype=torch.float32, device=device)  # [T + 1, S]
    starts, actions, _ = executed_windows(episode, horizon, device)  # [N], [N, H, A]
    state, alive = states[starts], torch.ones(len(starts), dtype=torch.bool, device=device)
    predicted_states, rewards = [], []
    for k in range(actions.shape[1]):
        mean = ensemble.predict(state, actions[:, k])[0].mean(0)  # [N, O]
        state = state + mean[:, : states.shape[1]]
        rewards.append(mean[:, -1] * alive)
        predicted_states.append(state)
        if done_fn is not None:
            alive = alive & ~done_fn(state)
    mean = ensemble.predict(states[:-1], actions_of_episode(episode, device))[0].mean(0)  # [T, O]
    truth = states[1:]
    error = (states[:-1] + mean[:, : states.shape[1]] - truth).norm(dim=-1) / truth.norm(dim=-1).clamp(min=1e-6)
    return OpenLoop(torch.stack(rewards, 1), error.mean().item(), torch.stack(predicted_states, 1))


def check_metrics(open_loop: OpenLoop, episode: dict) -> dict[str, float]:
    """An agent's open-loop prediction along an episode -> the failure-mode metrics (``failure_metrics``)."""
    _, _, achieved = executed_windows(episode, open_loop.rewards.shape[1], open_loop.rewards.device)
    return failure_metrics(open_loop.rewards, achieved, open_loop.model_error)


def failure_metrics(predicted: torch.Tensor, achieved: torch.Tensor, model_error: float) -> dict[str, float]:
    """predicted, achieved rewards [N, H] of the executed windows -> the logged failure-mode metrics."""
    predicted_return, achieved_return = predicted.float().sum(-1), achieved.float().sum(-1)  # [N]
    return {
        f"{PREFIX}predicted_return": predicted_return.mean().item(),
        f"{PREFIX}achieved_return": achieved_return.mean().item(),
        f"{PREFIX}exploitation": (predicted_return - achieved_return).mean().item(),
        f"{PREFIX}exploitation_per_step": (predicted_return - achieved_return).mean().item() / predicted.shape[-1],
        f"{PREFIX}model_error": float(model_error),
        f"{PREFIX}horizon": float(predicted.shape[-1]),
    }
