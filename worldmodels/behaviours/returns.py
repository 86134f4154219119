"""Returns over imagined or replayed trajectories.

Dimension letters: H steps, N trajectories.
"""

from __future__ import annotations

import torch


def lambda_returns(reward: torch.Tensor, discount: torch.Tensor, value: torch.Tensor, lam: float) -> torch.Tensor:
    """R_k = r_{k+1} + d_{k+1} ((1 - lam) v_{k+1} + lam R_{k+1}), R_H = v_H.

    reward, discount: [H, N] for steps 1..H; value: [H + 1, N] for steps 0..H. -> returns [H, N] for 0..H-1.
    """
    returns, last = [], value[-1]
    for k in reversed(range(reward.shape[0])):
        last = reward[k] + discount[k] * ((1 - lam) * value[k + 1] + lam * last)
        returns.append(last)
    return torch.stack(returns[::-1])
