"""Compounding model error: open-loop k-step prediction error against held-out real episodes.

Dimension letters: E episodes, T transitions per episode, H horizon, N = E * (T - H + 1) windows, S state dims.

If the one-step error is epsilon and errors grow by a factor L per step, the error after H steps is bounded
by epsilon (L^H - 1) / (L - 1). ``k_step_errors`` measures the curve for any model exposing
``rollout(start [N, S], actions [N, H, A]) -> next states [N, H, S]`` (or a tuple whose first item is those
states and whose second is rewards [N, H]); ``fit_growth`` fits epsilon and L; ``error_bound`` gives the bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class CompoundingCurve:
    state_error: np.ndarray  # [H] mean relative state error ||s_hat - s|| / ||s|| after k = 1..H steps
    reward_error: np.ndarray | None  # [H] mean absolute reward error, when the model predicts rewards


def _windows(x: torch.Tensor, horizon: int) -> torch.Tensor:
    """[E, T, ...] -> all windows of ``horizon`` consecutive steps, [E * (T - H + 1), H, ...]."""
    windows = x.unfold(1, horizon, 1)  # [E, T - H + 1, ..., H]
    return windows.movedim(-1, 2).flatten(0, 1)


@torch.no_grad()
def k_step_errors(
    rollout, states: torch.Tensor, actions: torch.Tensor, horizon: int, rewards: torch.Tensor | None = None
) -> CompoundingCurve:
    """states [E, T + 1, S], actions [E, T, A], rewards [E, T] (reward of transition t) -> curve over k = 1..H."""
    if horizon > actions.shape[1]:
        raise ValueError(f"horizon {horizon} is longer than the episodes' {actions.shape[1]} transitions")
    starts = states[:, : actions.shape[1] - horizon + 1].flatten(0, 1)  # [N, S]
    action_windows = _windows(actions, horizon)  # [N, H, A]
    truth = _windows(states[:, 1:], horizon)  # [N, H, S]
    out = rollout(starts, action_windows)
    predicted, predicted_rewards = (out[0], out[1]) if isinstance(out, tuple) else (out, None)
    relative = (predicted - truth).norm(dim=-1) / truth.norm(dim=-1).clamp(min=1e-8)  # [N, H]
    reward_error = None
    if rewards is not None and predicted_rewards is not None:
        reward_error = (predicted_rewards - _windows(rewards, horizon)).abs().mean(0).cpu().numpy()
    return CompoundingCurve(relative.mean(0).cpu().numpy(), reward_error)


def error_bound(epsilon: float, growth: float, horizon: int | np.ndarray) -> np.ndarray:
    """epsilon (L^H - 1) / (L - 1), which is epsilon * H when L = 1."""
    horizon = np.asarray(horizon, dtype=np.float64)
    if abs(growth - 1.0) < 1e-9:
        return epsilon * horizon
    return epsilon * (growth**horizon - 1.0) / (growth - 1.0)


def fit_growth(errors: np.ndarray) -> tuple[float, float]:
    """(epsilon, L): epsilon is the 1-step error; L minimises the squared error of the bound's shape to the curve."""
    errors = np.asarray(errors, dtype=np.float64)
    epsilon = float(errors[0])
    ks = np.arange(1, len(errors) + 1)
    growths = np.linspace(0.5, 3.0, 5001)  # [G]
    shapes = np.stack([error_bound(epsilon, g, ks) for g in growths])  # [G, H]
    best = np.argmin(((shapes - errors) ** 2).sum(-1))
    return epsilon, float(growths[best])


def compounding_table(curves: dict[str, CompoundingCurve], ks=(1, 5, 10, 15)) -> str:
    lines = [
        "| model | " + " | ".join(f"k={k}" for k in ks) + " | epsilon | L | bound at H |",
        "|---" * (len(ks) + 4) + "|",
    ]
    for name, curve in curves.items():
        eps, growth = fit_growth(curve.state_error)
        horizon = len(curve.state_error)
        cells = [f"{curve.state_error[k - 1]:.3f}" if k <= horizon else "" for k in ks]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {eps:.4f} | {growth:.3f} | {float(error_bound(eps, growth, horizon)):.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot_compounding(curves: dict[str, CompoundingCurve], path: Path) -> Path:
    """Measured k-step error beside the fitted bound, one line pair per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ks = np.arange(1, len(curve.state_error) + 1)
        eps, growth = fit_growth(curve.state_error)
        line = ax.plot(ks, curve.state_error, marker=".", label=f"{name} (measured)")[0]
        ax.plot(
            ks,
            error_bound(eps, growth, ks),
            linestyle="--",
            color=line.get_color(),
            label=f"{name} bound, eps={eps:.3f}, L={growth:.2f}",
        )
    ax.set(xlabel="open-loop steps k", ylabel="relative state error", title="compounding model error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
