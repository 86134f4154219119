"""The imagination report: observe k frames of a replayed sequence, imagine the rest open-loop from the actions.

Dreamer's report (its ``report()`` serves TensorBoard during training and scripts/imagine.py from a checkpoint).
Dimension letters: B sequences shown, T frames, K context frames, H height, W width.

Video layout: one column per sequence; rows truth / imagination / error. Observed (context) frames carry a
green border, imagined frames a red one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldmodels.reports.figure import figure_to_rgb, pyplot

GREEN, RED = np.array([0, 200, 0], np.uint8), np.array([220, 0, 0], np.uint8)


@dataclass
class ImaginationReport:
    video: np.ndarray  # [T, 3, 3 * H, B * W] uint8
    image_mse: np.ndarray  # [T] mean squared pixel error per frame (0-1 scale), context included
    reward_true: np.ndarray  # [B, T]
    reward_pred: np.ndarray  # [B, T]
    context: int

    def scalars(self) -> dict[str, float]:
        k = self.context
        return {
            "report/openloop_image_mse": float(self.image_mse[k:].mean()),
            "report/context_image_mse": float(self.image_mse[:k].mean()),
            "report/openloop_reward_abs_error": float(np.abs(self.reward_pred - self.reward_true)[:, k:].mean()),
        }


def _border(frames: np.ndarray, color: np.ndarray, width: int = 2) -> np.ndarray:
    """frames [..., 3, H, W] uint8 -> the same with a coloured frame of ``width`` pixels."""
    out = frames.copy()
    c = color[:, None, None]
    out[..., :, :width, :] = c
    out[..., :, -width:, :] = c
    out[..., :, :, :width] = c
    out[..., :, :, -width:] = c
    return out


@torch.no_grad()
def imagination_report(
    wm,
    obs: dict[str, torch.Tensor],
    action: torch.Tensor,
    reward: torch.Tensor,
    is_first: torch.Tensor,
    context: int = 5,
) -> ImaginationReport:
    """wm: a WorldModel with pixels. Inputs batch-major [B, T, ...] (action already in the model's format)."""
    steps = action.shape[1]
    if not 0 < context < steps:
        raise ValueError(f"context must be between 1 and {steps - 1} frames, got {context}")
    states, _, _ = wm.observe(
        wm.embed({k: v[:, :context] for k, v in obs.items()}), action[:, :context], is_first[:, :context]
    )
    last = states.map(lambda x: x[:, -1])
    imagined = wm.unroll(last, action[:, context:])  # [B, T - K, ...]
    feat = torch.cat([states.features(), imagined.features()], 1)  # [B, T, F]
    model = (wm.decode_pixels(feat) + 0.5).clamp(0, 1)  # [B, T, 3, H, W]
    truth = obs["pixels"].float() / 255.0
    error = (model - truth).abs()
    to_uint8 = lambda x: (x * 255).round().byte().cpu().numpy()  # noqa: E731
    rows = [to_uint8(truth), to_uint8(model), to_uint8(error)]  # each [B, T, 3, H, W]
    marked = []
    for row in rows:
        marked.append(np.concatenate([_border(row[:, :context], GREEN), _border(row[:, context:], RED)], 1))
    grid = np.stack(marked)  # [3, B, T, 3, H, W]
    rows_, batch, frames, ch, height, width = grid.shape
    video = grid.transpose(2, 3, 0, 4, 1, 5).reshape(frames, ch, rows_ * height, batch * width)
    return ImaginationReport(
        video=video,
        image_mse=(model - truth).pow(2).mean((0, 2, 3, 4)).cpu().numpy(),
        reward_true=reward.cpu().numpy(),
        reward_pred=wm.reward(feat).cpu().numpy(),
        context=context,
    )


def report_figure(report: ImaginationReport) -> np.ndarray:
    """Two panels as an RGB image [3, H, W]: k-step image error, and predicted vs real reward."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = np.arange(len(report.image_mse))
    left.plot(steps, report.image_mse, marker=".")
    left.axvspan(-0.5, report.context - 0.5, color="green", alpha=0.15, label="observed")
    left.set(xlabel="step", ylabel="image MSE", title="open-loop image error")
    left.legend()
    right.plot(steps, report.reward_true[0], label="real")
    right.plot(steps, report.reward_pred[0], label="imagined", linestyle="--")
    right.axvspan(-0.5, report.context - 0.5, color="green", alpha=0.15)
    right.set(xlabel="step", ylabel="reward", title="reward along the rollout (sequence 0)")
    right.legend()
    return figure_to_rgb(fig)
