"""Agents by name. Importing this package registers every agent (and its config type)."""

from worldmodels.agents.base import AGENTS, Agent, BatchSpec, build_agent, register
from worldmodels.agents import dreamer, sac  # noqa: F401  (registers 'dreamer' and 'sac')

__all__ = ["AGENTS", "Agent", "BatchSpec", "build_agent", "register"]
