"""Agents by name. Importing this package registers every agent (and its config type)."""

from worldmodels.agents import (  # noqa: F401  (importing registers each agent by name)
    dreamer,
    dyna_q,
    mbac,
    mbpo,
    mpc_value,
    muzero,
    pets,
    sac,
    tdmpc,
)
from worldmodels.agents.base import AGENTS, Agent, BatchSpec, Stream, build_agent, has_report, register

__all__ = ["AGENTS", "Agent", "BatchSpec", "Stream", "build_agent", "has_report", "register"]
