"""One replay store of whole episodes, with sequence and transition samplers."""

from worldmodels.replay.episode import load_episode, save_episode, validate_episode
from worldmodels.replay.store import ReplayStore

__all__ = ["ReplayStore", "load_episode", "save_episode", "validate_episode"]
