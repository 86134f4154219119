"""The imagined actor-critic's settings as agent-config fields (behaviours/actor_critic.py), shared by every agent
that trains one: dreamer (on the RSSM) and mbac (on the state ensemble). The network widths are the agent's own
fields (``hidden`` and ``head_layers`` for dreamer, ``ac_hidden`` and ``ac_layers`` for mbac)."""

from __future__ import annotations

from dataclasses import dataclass

from worldmodels.config import AgentConfig


@dataclass
class ActorCriticFields(AgentConfig):
    horizon: int = 15
    """Imagination horizon."""
    gamma: float = 0.99
    """Discount per agent step."""
    lam: float = 0.95
    """Lambda of the lambda-returns."""
    entropy: float = 3e-4
    """Actor entropy bonus (on normalised returns)."""
    actor_lr: float = 8e-5
    """Actor learning rate."""
    critic_lr: float = 8e-5
    """Critic learning rate."""
    grad_clip: float = 100.0
    """Gradient-norm clip of the actor and the critic (dreamer: of the world model too)."""
    slow_critic_decay: float = 0.98
    """EMA decay of the slow critic that regularises the critic."""
    return_norm_decay: float = 0.99
    """EMA decay of the return range (5th to 95th percentile) that scales the actor's objective."""
