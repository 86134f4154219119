"""Classic cart-pole with a continuous force: the task of mbrl-lib's PETS example, for comparing learning.

gymnasium's CartPole physics (Euler steps of 0.02 s, pole half-length 0.5 m, masses 1.0 and 0.1 kg), but the
action is a force in [-1, 1] x 10 N instead of a push left or right. Reward 1 per step, including the step
on which the episode ends (|x| > 2.4 m or |theta| > 12 degrees); registered with a 200-step time limit as
``gym:worldmodels/CartPoleContinuous-v0``. Rendering is gymnasium's.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

ENV_ID = "worldmodels/CartPoleContinuous-v0"


class ContinuousCartPole(CartPoleEnv):
    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def step(self, action):
        assert self.state is not None, "call reset() before step()"
        force = float(np.clip(np.asarray(action, np.float64).reshape(-1)[0], -1.0, 1.0)) * self.force_mag
        x, x_dot, theta, theta_dot = self.state
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sin) / self.total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / self.total_mass)
        )
        x_acc = temp - self.polemass_length * theta_acc * cos / self.total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        self.state = np.array((x, x_dot, theta, theta_dot), np.float64)
        terminated = bool(abs(x) > self.x_threshold or abs(theta) > self.theta_threshold_radians)
        return self.state.astype(np.float32), 1.0, terminated, False, {}
