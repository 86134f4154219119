"""Shooting planners: random shooting, CEM and MPPI. Pure, batched and model-agnostic.

Dimension letters: B start states planned for at once, N candidate sequences, H horizon, A action dims,
E elites, P prior sequences (proposed by the caller, e.g. a policy rolled through the model).

The model is injected as ``rollout(actions [B, N, H, A]) -> Rollout`` (the caller binds the start states), so
the same planner drives a state ensemble (PETS) or a latent model. Tunables are keyword arguments; there is no
Python loop over candidates, particles or starts (only over CEM/MPPI iterations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    rewards: torch.Tensor  # [B, N, H]
    reward_std: torch.Tensor | None = None  # [B, N, H] model uncertainty, for the pessimism penalty
    final_states: torch.Tensor | None = None  # [B, N, ...] for a terminal value
    final_alive: torch.Tensor | None = None  # [B, N] share of particles whose episode has not ended by the horizon


RolloutFn = Callable[[torch.Tensor], Rollout]


def sequence_returns(
    rollout: RolloutFn, actions: torch.Tensor, terminal_value=None, pessimism: float = 0.0, discount: float = 1.0
) -> torch.Tensor:
    """Sum_k discount^k (r_k - pessimism * sigma_k) [+ discount^H V(final)]: actions [B, N, H, A] -> [B, N].
    Where the rollout ended episodes, the value counts only for the share of particles still alive at the horizon."""
    out = rollout(actions)
    rewards = out.rewards
    if pessimism and out.reward_std is not None:
        rewards = rewards - pessimism * out.reward_std
    horizon = rewards.shape[-1]
    weights = discount ** torch.arange(horizon, dtype=rewards.dtype, device=rewards.device)  # [H]
    returns = (rewards * weights).sum(-1)
    if terminal_value is not None:
        value = terminal_value(out.final_states)  # [B, N]
        if out.final_alive is not None:
            value = value * out.final_alive
        returns = returns + discount**horizon * value
    return returns


def select_best(returns: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """returns [B, N], candidates [B, N, H, A] -> (best sequence [B, H, A], its return [B])."""
    best = returns.argmax(-1)  # [B]
    index = best[:, None, None, None].expand(-1, 1, *candidates.shape[2:])
    return candidates.gather(1, index).squeeze(1), returns.gather(1, best[:, None]).squeeze(1)


def random_shooting(
    rollout: RolloutFn,
    batch: int,
    horizon: int,
    action_dim: int,
    candidates: int = 1000,
    low: float = -1.0,
    high: float = 1.0,
    generator=None,
    device=None,
    **return_kwargs,
):
    """Uniform random sequences, keep the best: -> (plan [B, H, A], its return [B])."""
    actions = low + (high - low) * torch.rand(
        batch, candidates, horizon, action_dim, generator=generator, device=device
    )
    return select_best(sequence_returns(rollout, actions, **return_kwargs), actions)


def gaussian_candidates(
    mean: torch.Tensor, std: torch.Tensor, population: int, low: float, high: float, generator=None
) -> torch.Tensor:
    """``population`` sequences per start drawn from N(mean, std), clipped to the action bounds: mean and std
    [B, H, A] -> candidates [B, N, H, A]."""
    noise = torch.randn(mean.shape[0], population, *mean.shape[1:], generator=generator, device=mean.device)
    return (mean[:, None] + std[:, None] * noise).clamp(low, high)


def top_candidates(
    returns: torch.Tensor, candidates: torch.Tensor, k: int
) -> tuple[torch.return_types.topk, torch.Tensor]:
    """The ``k`` best candidates of each batch entry: returns [B, N], candidates [B, N, H, A] -> (their returns
    and indices [B, k] as ``topk`` gives them, the candidates [B, k, H, A])."""
    top = returns.topk(k, dim=-1)
    return top, candidates.gather(1, top.indices[:, :, None, None].expand(-1, -1, *candidates.shape[2:]))


def cem_update(
    returns: torch.Tensor,
    candidates: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    elites: int,
    smoothing: float = 0.0,
    min_std: float = 0.0,
):
    """One cross-entropy step: refit the Gaussian to the top ``elites`` candidates.

    returns [B, N], candidates [B, N, H, A], mean/std [B, H, A]. smoothing keeps that share of the old values.
    -> (mean, std [B, H, A], elite indices [B, E]).
    """
    top, elite = top_candidates(returns, candidates, elites)  # elite [B, E, H, A]
    new_mean = smoothing * mean + (1 - smoothing) * elite.mean(1)
    new_std = smoothing * std + (1 - smoothing) * elite.std(1, unbiased=False)
    return new_mean, new_std.clamp(min=min_std), top.indices


def cem(
    rollout: RolloutFn,
    mean: torch.Tensor,
    std: float | torch.Tensor = 0.5,
    population: int = 500,
    elite_ratio: float = 0.1,
    iterations: int = 5,
    smoothing: float = 0.1,
    low: float = -1.0,
    high: float = 1.0,
    min_std: float = 0.05,
    generator=None,
    **return_kwargs,
) -> torch.Tensor:
    """Cross-entropy method from an initial mean [B, H, A] (warm-start it with ``shift_plan``) -> plan [B, H, A]."""
    std = torch.full_like(mean, std) if not torch.is_tensor(std) else std
    elites = max(1, int(round(population * elite_ratio)))
    for _ in range(iterations):
        candidates = gaussian_candidates(mean, std, population, low, high, generator)  # [B, N, H, A]
        returns = sequence_returns(rollout, candidates, **return_kwargs)
        mean, std, _ = cem_update(returns, candidates, mean, std, elites, smoothing, min_std)
    return mean


@dataclass
class MPPIResult:
    mean: torch.Tensor  # [B, H, A] the final sampling mean: the plan
    std: torch.Tensor  # [B, H, A] the final sampling std
    elites: torch.Tensor  # [B, E, H, A] the last iteration's weighted candidates (E = N without ``elites``)
    weights: torch.Tensor  # [B, E] their softmax weights (sum to 1)


def mppi_update(
    returns: torch.Tensor,
    candidates: torch.Tensor,
    std: torch.Tensor,
    temperature: float = 1.0,
    elites: int | None = None,
    adapt_std: bool = False,
    min_std: float = 0.0,
    max_std: float | None = None,
) -> MPPIResult:
    """One MPPI step: weights softmax(return / temperature) over the candidates (only the top ``elites`` with
    it, TD-MPC's choice), the mean moves to their weighted average; with ``adapt_std`` the std becomes their
    weighted std, clamped to [min_std, max_std] (else ``std`` is kept).

    returns [B, N], candidates [B, N, H, A], std [B, H, A] -> MPPIResult.
    """
    if elites is not None and elites < returns.shape[-1]:
        top, candidates = top_candidates(returns, candidates, elites)  # candidates [B, E, H, A]
        returns = top.values  # [B, E]
    weights = torch.softmax((returns - returns.max(-1, keepdim=True).values) / temperature, -1)  # [B, E]
    mean = (weights[:, :, None, None] * candidates).sum(1)  # [B, H, A]
    if adapt_std:
        spread = (weights[:, :, None, None] * (candidates - mean[:, None]).square()).sum(1).sqrt()
        std = spread.clamp(min=min_std, max=max_std)
    return MPPIResult(mean, std, candidates, weights)


def mppi_search(
    rollout: RolloutFn,
    mean: torch.Tensor,
    std: float | torch.Tensor = 0.5,
    population: int = 500,
    iterations: int = 5,
    temperature: float = 1.0,
    low: float = -1.0,
    high: float = 1.0,
    generator=None,
    prior: torch.Tensor | None = None,
    elites: int | None = None,
    adapt_std: bool = False,
    min_std: float = 0.0,
    max_std: float | None = None,
    **return_kwargs,
) -> MPPIResult:
    """MPPI from an initial mean [B, H, A] and std (a number or [B, H, A]) -> MPPIResult.

    Each iteration scores ``population`` Gaussian samples around the mean plus the ``prior`` sequences
    [B, P, H, A] (the same P every iteration, e.g. a policy's proposals: TD-MPC), and updates the mean (and,
    with ``adapt_std``, the std) by ``mppi_update``.
    """
    std = torch.full_like(mean, std) if not torch.is_tensor(std) else std
    if prior is not None:
        assert prior.shape[0] == mean.shape[0] and prior.shape[2:] == mean.shape[1:], (prior.shape, mean.shape)
        prior = prior.clamp(low, high)
    result = MPPIResult(mean, std, mean[:, None], torch.ones_like(mean[:, :1, 0]))  # (no iterations: the start)
    for _ in range(iterations):
        candidates = gaussian_candidates(mean, std, population, low, high, generator)  # [B, N, H, A]
        if prior is not None:
            candidates = torch.cat([candidates, prior], 1)  # [B, N + P, H, A]
        returns = sequence_returns(rollout, candidates, **return_kwargs)
        result = mppi_update(returns, candidates, std, temperature, elites, adapt_std, min_std, max_std)
        mean, std = result.mean, result.std
    return result


def mppi(
    rollout: RolloutFn,
    mean: torch.Tensor,
    std: float = 0.5,
    population: int = 500,
    iterations: int = 5,
    temperature: float = 1.0,
    low: float = -1.0,
    high: float = 1.0,
    generator=None,
    **kwargs,
) -> torch.Tensor:
    """Model-predictive path integral: the mean moves to the softmax(return / temperature)-weighted average.
    -> plan [B, H, A]. Keywords of ``mppi_search`` (prior, elites, adapt_std, min_std, max_std) and of
    ``sequence_returns`` pass through."""
    return mppi_search(rollout, mean, std, population, iterations, temperature, low, high, generator, **kwargs).mean


def shift_plan(plan: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Warm start for the next step: drop the executed first action, append ``fill``: [B, H, A] -> [B, H, A]."""
    return torch.cat([plan[:, 1:], torch.full_like(plan[:, :1], fill)], 1)
