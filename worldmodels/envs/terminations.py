"""Known termination rules of tasks, for planners that imagine with a state model (PETS's particle rollouts).

A rule maps next states [M, S] to done flags [M] bool, with the same observation layout as the env.
Tasks without a rule never end inside an imagined rollout.
"""

from __future__ import annotations

import math

import torch


def inverted_pendulum(next_states: torch.Tensor) -> torch.Tensor:
    """gym InvertedPendulum (v4, v5): the episode ends when the pole angle (observation 1) leaves +-0.2 rad or
    a value is not finite."""
    return ~torch.isfinite(next_states).all(-1) | (next_states[:, 1].abs() > 0.2)


def cartpole(next_states: torch.Tensor) -> torch.Tensor:
    """Classic cart-pole (gym:CartPole, gym:worldmodels/CartPoleContinuous-v0): the episode ends when the cart
    leaves +-2.4 (observation 0) or the pole leaves +-12 degrees (observation 2)."""
    return (next_states[:, 0].abs() > 2.4) | (next_states[:, 2].abs() > 12 * 2 * math.pi / 360)


TERMINATIONS = {"none": None, "inverted_pendulum": inverted_pendulum, "cartpole": cartpole}


def termination_rule(name: str):
    if name not in TERMINATIONS:
        raise ValueError(f"agent.termination must be 'learned' or one of {sorted(TERMINATIONS)}, got {name!r}")
    return TERMINATIONS[name]
