"""MBPO's branched rollouts through a state ensemble, the rollout-length rules, and the k-step error that the
adaptive rule reads.

Dimension letters: M rollout starts, E elites, W windows, k rollout length, S state dims, A action dims.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from worldmodels.models.ensemble import Ensemble


@torch.no_grad()
def branched_rollout(
    model: Ensemble,
    elites: torch.Tensor,
    policy: Callable[[torch.Tensor], torch.Tensor],
    starts: torch.Tensor,
    length: int,
    done_fn=None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Roll ``policy`` (states [M, S] -> actions [M, A]) ``length`` steps from every start [M, S], each transition
    stepped by a random elite (``Ensemble.step_random_member``), rewards learned. A path stops after a transition
    that ``done_fn(next_states) -> [M] bool`` ends, or whose prediction is not finite (that one is dropped).
    -> the transitions of all steps, model-buffer keys -> [<= M * length, ...]."""
    state = starts  # [M, S]
    alive = torch.ones(starts.shape[0], dtype=torch.bool, device=starts.device)  # [M]
    steps = []
    for _ in range(length):  # sequential in time; every step is one batched call for all M paths
        action = policy(state)  # [M, A]
        next_state, reward = model.step_random_member(state, action, elites, generator=generator)
        finite = torch.isfinite(next_state).all(-1) & torch.isfinite(reward)  # [M]
        alive = alive & finite
        done = done_fn(next_state) if done_fn is not None else torch.zeros_like(alive)
        keep = alive.clone()
        steps.append(
            {
                "state": state,
                "action": action,
                "reward": reward,
                "next_state": next_state,
                "terminated": done,
                "keep": keep,
            }
        )
        alive = alive & ~done
        if not alive.any():
            break
        state = torch.where(alive[:, None], next_state, state)
    out = {key: torch.cat([s[key][s["keep"]] for s in steps]) for key in steps[0] if key != "keep"}
    return out


def scheduled_length(epoch: float, schedule: tuple[int, int, int, int]) -> int:
    """MBPO's linear rollout length: (epoch_a, epoch_b, k_a, k_b) -> k_a until epoch_a, k_b from epoch_b on,
    linear (rounded down) in between."""
    epoch_a, epoch_b, k_a, k_b = schedule
    if epoch_b <= epoch_a:
        return int(k_a if epoch < epoch_a else k_b)
    share = min(max((epoch - epoch_a) / (epoch_b - epoch_a), 0.0), 1.0)
    return int(k_a + share * (k_b - k_a))


def adaptive_length(errors: torch.Tensor, threshold: float, k_min: int = 1) -> int:
    """The longest k whose k-step error (errors [k_max], k = 1..k_max) and every shorter one stay at or below
    ``threshold``; at least ``k_min``."""
    within = torch.cumprod((errors <= threshold).int(), 0)  # [k_max] 1 while every error so far is small
    return max(int(within.sum()), k_min)


def chained_windows(batch: dict, length: int, count: int, generator: torch.Generator | None = None):
    """Windows of ``length`` consecutive transitions from the replay's ``all_transitions()`` (numpy, in stored
    order, so transition i + 1 continues transition i inside an episode: its obs is i's next_obs and i did not
    end the episode) -> states [W, length + 1, S] and actions [W, length, A] as float32 tensors: ``count``
    distinct windows (all of them when fewer exist); None when no episode has ``length`` transitions."""
    obs = torch.as_tensor(batch["obs"]["state"], dtype=torch.float32)  # [N, S]
    nxt = torch.as_tensor(batch["next_obs"]["state"], dtype=torch.float32)
    actions = torch.as_tensor(batch["action"], dtype=torch.float32).reshape(len(obs), -1)  # [N, A]
    ended = torch.as_tensor(batch["terminated"], dtype=torch.bool)
    links = (obs[1:] == nxt[:-1]).all(-1) & ~ended[:-1]  # [N - 1] transition i + 1 continues i
    # start i is valid when links i .. i + length - 2 all hold: a sliding sum over the link flags
    run = torch.cat([torch.zeros(1), torch.cumsum(links.float(), 0)])  # [N]
    last_start = len(obs) - length
    if last_start < 0:
        return None
    starts = torch.arange(last_start + 1)
    valid = starts[(run[starts + length - 1] - run[starts]) == length - 1]
    if len(valid) == 0:
        return None
    pick = valid[torch.randperm(len(valid), generator=generator)[:count]]  # [W] distinct starts
    index = pick[:, None] + torch.arange(length)  # [W, length]
    states = torch.cat([obs[index], nxt[index[:, -1:]]], 1)  # [W, length + 1, S]
    return states, actions[index]


@torch.no_grad()
def kstep_error(model: Ensemble, elites: torch.Tensor, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Open-loop prediction error of the elites' mean from the windows' first state with the replayed actions:
    states [W, k + 1, S], actions [W, k, A] -> [k] MSE after 1..k steps, divided by the states' variance per
    dimension (1.0: no better than predicting the average state)."""
    scale = states.flatten(0, 1).var(0).clamp(min=1e-6)  # [S]
    state, errors = states[:, 0], []
    for t in range(actions.shape[1]):  # sequential in time, batched over windows and elites
        mean, _ = model.predict(state, actions[:, t])  # [K, W, O]
        state = state + mean[elites, :, : model.state_dim].mean(0)  # [W, S]
        errors.append(((state - states[:, t + 1]) ** 2 / scale).mean())
    return torch.stack(errors)  # [k]
