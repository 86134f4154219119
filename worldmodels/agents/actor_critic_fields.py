"""The imagined actor-critic's settings as agent-config fields (behaviours/actor_critic.py), shared by every agent
that trains one: dreamer (on the RSSM) and mbac (on the state ensemble). The network widths are the agent's own
fields (``hidden`` and ``head_layers`` for dreamer, ``ac_hidden`` and ``ac_layers`` for mbac). The defaults are the
behaviour's own (ActorCriticSettings), so they have one source."""

from __future__ import annotations

from dataclasses import dataclass

from worldmodels.behaviours.actor_critic import ActorCriticSettings as Defaults
from worldmodels.config import AgentConfig


@dataclass
class ActorCriticFields(AgentConfig):
    horizon: int = Defaults.horizon
    """Imagination horizon."""
    gamma: float = Defaults.gamma
    """Discount per agent step."""
    lam: float = Defaults.lam
    """Lambda of the lambda-returns."""
    entropy: float = Defaults.entropy
    """Actor entropy bonus (on normalised returns)."""
    actor_lr: float = Defaults.actor_lr
    """Actor learning rate."""
    critic_lr: float = Defaults.critic_lr
    """Critic learning rate."""
    grad_clip: float = Defaults.grad_clip
    """Gradient-norm clip of the actor and the critic (dreamer: of the world model too)."""
    slow_critic_decay: float = Defaults.slow_critic_decay
    """EMA decay of the slow critic that regularises the critic."""
    return_norm_decay: float = Defaults.return_norm_decay
    """EMA decay of the return range (5th to 95th percentile) that scales the actor's objective."""
