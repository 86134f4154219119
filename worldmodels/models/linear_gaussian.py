"""Linear-Gaussian dynamics s' ~ N(A s + B a + c, Sigma), fitted in closed form by least squares.

Dimension letters: N transitions, S state dims, U action dims, P = S + U (+ 1 with the bias column).
"""

from __future__ import annotations

import torch


class LinearGaussianModel:
    """Fit with ``fit(states, actions, next_states)``; then ``predict`` the mean or ``sample`` next states."""

    def __init__(self, bias: bool = True, ridge: float = 0.0):
        self.bias, self.ridge = bias, ridge
        self.A = self.B = self.c = self.covariance = None

    def design(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        columns = [states, actions] + ([torch.ones_like(states[:, :1])] if self.bias else [])
        return torch.cat(columns, -1)  # [N, P]

    def normal_equations(self, states, actions, next_states) -> tuple[torch.Tensor, torch.Tensor]:
        """(X^T X [P, P], X^T Y [P, S]) of the least-squares problem X W = Y."""
        x = self.design(states, actions)
        return x.T @ x, x.T @ next_states

    def fit(self, states: torch.Tensor, actions: torch.Tensor, next_states: torch.Tensor) -> LinearGaussianModel:
        """states [N, S], actions [N, U], next_states [N, S]; W = (X^T X + ridge I)^-1 X^T Y."""
        xtx, xty = self.normal_equations(states, actions, next_states)
        weights = torch.linalg.solve(xtx + self.ridge * torch.eye(xtx.shape[0], dtype=xtx.dtype), xty)  # [P, S]
        s_dim, u_dim = states.shape[1], actions.shape[1]
        self.A = weights[:s_dim].T  # [S, S]
        self.B = weights[s_dim : s_dim + u_dim].T  # [S, U]
        self.c = weights[s_dim + u_dim :].reshape(-1) if self.bias else torch.zeros(s_dim, dtype=weights.dtype)
        residual = next_states - self.predict(states, actions)  # [N, S]
        dof = max(states.shape[0] - weights.shape[0], 1)
        self.covariance = residual.T @ residual / dof  # [S, S] unbiased residual covariance
        return self

    def predict(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return states @ self.A.T + actions @ self.B.T + self.c  # [N, S]

    def sample(self, states: torch.Tensor, actions: torch.Tensor, generator=None) -> torch.Tensor:
        mean = self.predict(states, actions)
        chol = torch.linalg.cholesky(self.covariance + 1e-9 * torch.eye(mean.shape[-1], dtype=mean.dtype))
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return mean + noise @ chol.T

    def rollout(self, start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Open-loop mean rollout: start [N, S], actions [N, H, U] -> states [N, H, S] (after each action)."""
        states, state = [], start
        for k in range(actions.shape[1]):
            state = self.predict(state, actions[:, k])
            states.append(state)
        return torch.stack(states, 1)
