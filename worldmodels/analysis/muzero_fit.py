"""How well a MuZero model predicts on recorded episodes: its one-step rewards against the true rewards, and
its values against the discounted returns that followed. A minute's check of which head limits the search,
before a long run (pixel cartpole-swingup preset at 100k env steps: rewards 0.97, values 0.65; from state 0.999,
0.93).

The returns are those of the policy that collected the episodes (exploring), not of the greedy search, so
the value figures compare levels and orderings, not an exact target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PredictionFit:
    reward_corr: float  # corr(predicted r_{t+1} from (s_t, a_{t+1}), true r_{t+1}); NaN: constant rewards
    value_corr: float  # corr(value(s_t), G_t)
    value_rmse: float
    return_std: float  # spread of G_t over the steps scored: an RMSE this large explains nothing
    steps: int  # steps whose value was scored

    def __str__(self) -> str:
        return (f"reward corr {self.reward_corr:.3f} | value corr {self.value_corr:.3f}, RMSE {self.value_rmse:.2f} "
                f"(returns' std {self.return_std:.2f}) | {self.steps} steps")


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (CartPole's rewards are all 1)."""
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")


def discounted_returns(rewards: np.ndarray, discount: float) -> np.ndarray:
    """rewards [T] (r_t: the reward for reaching step t) -> G [T], G_t = sum_k discount^k r_{t+1+k}."""
    T = len(rewards)
    gap = np.arange(T)[None, :] - np.arange(T)[:, None] - 1  # [T, T] j - t - 1
    weights = np.where(gap >= 0, float(discount) ** np.maximum(gap, 0), 0.0)
    return weights @ rewards.astype(np.float64)


def episode_frame_stacks(pixels: np.ndarray, frames: int) -> np.ndarray:
    """pixels [T, C, H, W] -> [T, frames x C, H, W], oldest first, the first frame repeated before the start
    (what acting builds step by step)."""
    T, C, H, W = pixels.shape
    index = np.maximum(np.arange(T)[:, None] - (frames - 1) + np.arange(frames)[None, :], 0)  # [T, frames]
    return pixels[index].reshape(T, frames * C, H, W)


def unscored_tail(discount: float, weight: float = 0.05) -> int:
    """Steps at the end of a truncated episode whose return misses more than `weight` of its discounting."""
    return math.ceil(math.log(weight) / math.log(discount)) if discount < 1 else 0


@torch.no_grad()
def prediction_fit(agent, episodes: list[dict[str, np.ndarray]]) -> PredictionFit:
    """agent: a MuZeroAgent; episodes: replay episodes (obs, action, reward, is_terminal [T, ...]).
    Steps near the end of a truncated episode are left out of the value scores (their returns are cut short)."""
    net, discount = agent.net, agent.cfg.discount
    key = "pixels" if net.has_pixels else "state"
    device = next(net.parameters()).device
    values, returns, predicted, rewards = [], [], [], []
    for episode in episodes:
        obs = episode[key]
        if key == "pixels" and agent.frames > 1:
            obs = episode_frame_stacks(obs, agent.frames)
        s = net.represent({key: torch.as_tensor(obs, device=device)})  # [T, L]
        actions = torch.as_tensor(agent.action_index(episode["action"]), device=device)  # [T], a_t leads into t
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
        raise ValueError(f"{len(values)} scored steps: pass longer or more episodes (steps within "
                         f"{unscored_tail(discount)} of a truncated episode's end are not scored)")
    return PredictionFit(
        reward_corr=correlation(predicted, rewards),
        value_corr=correlation(values, returns),
        value_rmse=float(np.sqrt(np.mean((values - returns) ** 2))),
        return_std=float(returns.std()),
        steps=len(values),
    )
