"""Behaviours: learners that any model (or the replay alone) can feed.

actor_critic.py  the imagined actor-critic (Dreamer's), on rollouts of any differentiable model
sac.py           SAC's learner, on transition batches from any source (replay, model rollouts)
returns.py       lambda-returns
"""
