"""The one training loop, evaluation, logging and checkpointing, shared by every agent."""
