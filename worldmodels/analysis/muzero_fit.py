"""How well a MuZero model predicts on recorded episodes: its one-step rewards against the true rewards, and
its values against the discounted returns that followed. A minute's check of which head limits the search,
before a long run (figures for the cartpole-swingup runs: benchmarks/README.md).

The returns are those of the policy that collected the episodes (exploring), not of the greedy search, so
the value figures compare levels and orderings, not an exact target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from worldmodels.behaviours.returns import lambda_returns
from worldmodels.models.muzero import stack_frames


@dataclass
class PredictionFit:
    reward_corr: float  # corr(predicted r_{t+1} from (s_t, a_{t+1}), true r_{t+1}); NaN: constant rewards
    value_corr: float  # corr(value(s_t), G_t)
    value_rmse: float
    return_std: float  # spread of G_t over the steps scored: an RMSE this large explains nothing
    steps: int  # steps whose value was scored

    def __str__(self) -> str:
        return (
            f"reward corr {self.reward_corr:.3f} | value corr {self.value_corr:.3f}, RMSE {self.value_rmse:.2f} "
            f"(returns' std {self.return_std:.2f}) | {self.steps} steps"
        )


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (CartPole's rewards are all 1)."""
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")


def discounted_returns(rewards: np.ndarray, discount: float) -> np.ndarray:
    """rewards [T] (r_t: the reward for reaching step t) -> G [T], G_t = sum_k discount^k r_{t+1+k}: Dreamer's
    lambda-returns with lambda 1 and no bootstrap value."""
    T = len(rewards)
    r = torch.as_tensor(rewards[1:], dtype=torch.float64)[:, None]  # [T-1, 1] rewards of steps 1..T-1
    G = lambda_returns(r, torch.full_like(r, discount), torch.zeros(T, 1, dtype=torch.float64), 1.0)  # [T-1, 1]
    return np.append(G[:, 0].numpy(), 0.0)  # nothing follows the last step


def episode_observations(agent, episode: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """One episode's observations [T, ...] as the agent sees them (pixels: stacks of its last F frames, the
    first frame repeated before the start, as acting and the replay's windows do)."""
    if not agent.net.has_pixels:
        return {"state": torch.as_tensor(episode["state"], dtype=torch.float32, device=agent.device)}
    T, F = len(episode["reward"]), agent.frames
    history = np.repeat(episode["pixels"][:1], F - 1, 0)  # [F - 1, C, H, W]
    frames = torch.as_tensor(np.concatenate([history, episode["pixels"]]))  # [F - 1 + T, C, H, W]
    stacks = stack_frames(frames[torch.arange(T)[:, None] + torch.arange(F)])  # [T, F x C, H, W]
    return {"pixels": stacks.to(agent.device)}


def unscored_tail(discount: float, weight: float = 0.05) -> int:
    """Steps at the end of a truncated episode whose return misses more than `weight` of its discounting."""
    return math.ceil(math.log(weight) / math.log(discount)) if discount < 1 else 0


@torch.no_grad()
def prediction_fit(agent, episodes: list[dict[str, np.ndarray]]) -> PredictionFit:
    """agent: a MuZeroAgent; episodes: replay episodes (obs, action, reward, is_terminal [T, ...]).
    Steps near the end of a truncated episode are left out of the value scores (their returns are cut short)."""
    net, discount = agent.net, agent.cfg.discount
    values, returns, predicted, rewards = [], [], [], []
    for episode in episodes:
        s = net.represent(episode_observations(agent, episode))  # [T, L]
        actions = torch.as_tensor(agent.action_grid.index(episode["action"]), device=s.device)  # [T], a_t leads into t
        scalars, _ = net.decode_scalars(s)  # [T, 2] (reward, value)
        next_scalars, _ = net.decode_scalars(net.dynamics(s[:-1], actions[1:]))  # [T-1, 2]
        T = len(episode["reward"])
        scored = T if episode["is_terminal"][-1] else max(T - unscored_tail(discount), 0)
        values.append(scalars[:scored, 1].float().cpu().numpy())
        returns.append(discounted_returns(episode["reward"], discount)[:scored])
        predicted.append(next_scalars[:, 0].float().cpu().numpy())
        rewards.append(episode["reward"][1:])
    values, returns, predicted, rewards = map(np.concatenate, (values, returns, predicted, rewards))
    if len(values) < 2:
        raise ValueError(
            f"{len(values)} scored steps: pass longer or more episodes (steps within "
            f"{unscored_tail(discount)} of a truncated episode's end are not scored)"
        )
    return PredictionFit(
        reward_corr=correlation(predicted, rewards),
        value_corr=correlation(values, returns),
        value_rmse=float(np.sqrt(np.mean((values - returns) ** 2))),
        return_std=float(returns.std()),
        steps=len(values),
    )
