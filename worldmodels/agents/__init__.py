"""Agents by name. Importing this package registers every agent (and its config type)."""

from worldmodels.agents import dreamer, mbpo, muzero, pets, sac  # noqa: F401  (registers each agent by name)
from worldmodels.agents.base import AGENTS, Agent, BatchSpec, Stream, build_agent, has_report, register

__all__ = ["AGENTS", "Agent", "BatchSpec", "Stream", "build_agent", "has_report", "register"]
