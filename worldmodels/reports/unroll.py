"""MuZero's open-loop report: the rewards and values a model predicts along replayed windows, against the truth.

Dimension letters: B windows, T window steps, H open-loop steps (T - 1 - start).

From the real observation at window step ``start`` the model unrolls its dynamics with the replayed actions to
the window's end. Its rewards are compared with the replayed rewards, its values with the discounted returns
observed in the window, bootstrapped at the window's last valid step with the value the model gives the real
observation there (0 after a termination): MuZero's value target with n reaching the window's end. Steps past
an episode's end (``valid`` False) are not scored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from worldmodels.behaviours.returns import lambda_returns
from worldmodels.reports.figure import figure_to_rgb, pyplot


class Unroll(NamedTuple):
    """Per window and unroll step k = 0..H (window step start + k); every array [B, H + 1]."""

    start: int  # the window step observed
    reward: np.ndarray  # replayed reward for reaching the step (k = 0: not predicted, not scored)
    predicted_reward: np.ndarray
    value: np.ndarray  # discounted return observed from the step (bootstrapped at the window's end)
    predicted_value: np.ndarray
    mask: np.ndarray  # bool: the step lies inside the episode


def window_returns(
    reward: torch.Tensor, valid: torch.Tensor, terminal: torch.Tensor, boot: torch.Tensor, discount: float
) -> torch.Tensor:
    """reward, valid, terminal [B, T] (r_t: for reaching step t), boot [B]: value of each window's last valid step b
    -> G [B, T], G_t = sum_{t < i <= b} discount^(i-t-1) r_i + discount^(b-t) boot (boot 0 after a termination).
    Past b, G repeats the bootstrap (masked by callers)."""
    last = valid.sum(-1) - 1  # [B]
    alive = ~terminal.gather(1, last[:, None])[:, 0]  # [B]
    r = torch.where(valid, reward, 0.0)[:, 1:].T  # [T-1, B] rewards of steps 1..T-1, none past b
    d = torch.where(valid[:, 1:], discount, 1.0).to(r.dtype).T  # [T-1, B] past b: carry the bootstrap back to b
    value = torch.zeros(len(r) + 1, len(boot), dtype=r.dtype)  # [T, B]
    value[-1] = boot * alive
    return torch.cat([lambda_returns(r, d, value, 1.0), value[-1:]]).T  # [B, T]


@torch.no_grad()
def open_loop_unroll(
    net,
    observe: Callable[[np.ndarray], dict],
    actions: torch.Tensor,
    reward: np.ndarray,
    valid: np.ndarray,
    terminal: np.ndarray,
    start: int,
    discount: float,
) -> Unroll:
    """net: represent / dynamics / decode_scalars (models/muzero.py); observe(steps [B]) -> the observations at
    those window steps; actions [B, T] int64 (action t leads into step t); reward, valid, terminal [B, T]."""
    B, T = reward.shape
    assert actions.shape == (B, T) and 0 <= start < T, (actions.shape, start, T)
    s = net.represent(observe(np.full(B, start)))  # [B, L]
    scalars = [net.decode_scalars(s)[0]]  # [B, 2] (reward, value) each
    for t in range(start + 1, T):
        s = net.dynamics(s, actions[:, t])
        scalars.append(net.decode_scalars(s)[0])
    predicted = torch.stack(scalars, 1).double().cpu()  # [B, H+1, 2]
    valid_t = torch.as_tensor(valid)
    last = valid_t.sum(-1) - 1  # [B]
    boot = net.decode_scalars(net.represent(observe(last.numpy())))[0][:, 1].double().cpu()  # [B]
    reward_t = torch.as_tensor(reward, dtype=torch.float64)
    returns = window_returns(reward_t, valid_t, torch.as_tensor(terminal), boot, discount)  # [B, T]
    return Unroll(
        start,
        reward[:, start:].astype(np.float64),
        predicted[..., 0].numpy(),
        returns[:, start:].numpy(),
        predicted[..., 1].numpy(),
        valid[:, start:].copy(),
    )


def errors(unroll: Unroll) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> absolute reward and value errors [B, H + 1] and where each is scored (the reward from k = 1 on)."""
    value_mask = unroll.mask
    reward_mask = value_mask & (np.arange(value_mask.shape[1]) > 0)
    return (
        np.abs(unroll.predicted_reward - unroll.reward),
        reward_mask,
        np.abs(unroll.predicted_value - unroll.value),
        value_mask,
    )


def masked_mean(x: np.ndarray, mask: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Mean of x where mask holds (NaN where nothing does)."""
    count = mask.sum(axis)
    return np.where(count > 0, (x * mask).sum(axis) / np.maximum(count, 1), np.nan)


def unroll_figure(unroll: Unroll) -> np.ndarray:
    """Window 0's rewards and values, true against predicted, and the mean errors per unroll step -> [3, H, W]."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), dpi=72)
    reward_error, reward_mask, value_error, value_mask = errors(unroll)
    steps = unroll.start + np.arange(unroll.mask.shape[1])  # window steps
    for ax, name, mask in ((axes[0], "reward", reward_mask[0]), (axes[1], "value", value_mask[0])):
        ax.plot(steps[mask], getattr(unroll, name)[0, mask], "k.-", label="true")
        ax.plot(steps[mask], getattr(unroll, f"predicted_{name}")[0, mask], "C1.--", label="predicted")
        ax.set(title=f"{name}, window 0 (observed step {unroll.start})", xlabel="window step")
        ax.legend(fontsize=8)
    k = np.arange(len(steps))  # unroll steps
    axes[2].plot(k, masked_mean(reward_error, reward_mask, 0), "C0.-", label="reward")
    axes[2].plot(k, masked_mean(value_error, value_mask, 0), "C3.-", label="value")
    axes[2].set(title="mean absolute error", xlabel="unroll step")
    axes[2].legend(fontsize=8)
    return figure_to_rgb(fig)


def unroll_report(unroll: Unroll) -> dict:
    """The agent's report: the figure and the mean absolute errors over every scored step."""
    reward_error, reward_mask, value_error, value_mask = errors(unroll)
    scalars = {
        "report/unroll_reward_abs_error": float(masked_mean(reward_error, reward_mask)),
        "report/unroll_value_abs_error": float(masked_mean(value_error, value_mask)),
    }
    return {"images": {"report/unroll": unroll_figure(unroll)}, "scalars": scalars}
