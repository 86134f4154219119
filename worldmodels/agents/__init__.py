"""Agents by name. Importing this package registers every agent (and its config type)."""

from worldmodels.agents.base import AGENTS, Agent, BatchSpec, build_agent, register
from worldmodels.agents import dreamer, muzero, pets, sac  # noqa: F401  (registers each agent by name)

__all__ = ["AGENTS", "Agent", "BatchSpec", "build_agent", "register"]
