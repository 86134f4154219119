"""The k-step report of a state ensemble: from the true state at the end of the context, every member propagates
its own mean open-loop with the replayed actions; the ensemble mean is compared with the truth.

Dimension letters: K members, B sequences, T steps per sequence, C context steps, H = T - C predicted steps,
S state dims, A action dims, O outputs (state [+ reward]).

Bands (data units): epistemic = std across members of their predicted states; aleatoric = the members' predicted
one-step std, averaged over members; total = sqrt(epistemic^2 + aleatoric^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldmodels.models.ensemble import Ensemble
from worldmodels.reports.figure import figure_to_rgb, pyplot


@dataclass
class KStepReport:
    truth: np.ndarray  # [B, T, S] replayed states
    mean: np.ndarray  # [B, H, S] ensemble mean of the predicted states of steps C..T-1
    epistemic: np.ndarray  # [B, H, S]
    aleatoric: np.ndarray  # [B, H, S]
    reward_error: np.ndarray | None  # [B, H] |ensemble mean reward - replayed reward|, when rewards are learned
    context: int

    @property
    def total(self) -> np.ndarray:  # [B, H, S]
        return np.sqrt(self.epistemic**2 + self.aleatoric**2)

    @property
    def mse(self) -> np.ndarray:  # [H] squared state error after k = 1..H open-loop steps
        return ((self.mean - self.truth[:, self.context :]) ** 2).mean((0, 2))

    def scalars(self) -> dict[str, float]:
        inside = np.abs(self.mean - self.truth[:, self.context :]) <= 2 * self.total  # [B, H, S]
        out = {
            "report/kstep_state_mse": float(self.mse.mean()),
            "report/kstep_state_mse_last": float(self.mse[-1]),
            "report/kstep_epistemic_std": float(self.epistemic.mean()),
            "report/kstep_aleatoric_std": float(self.aleatoric.mean()),
            "report/kstep_within_2std": float(inside.mean()),
        }
        if self.reward_error is not None:
            out["report/kstep_reward_abs_error"] = float(self.reward_error.mean())
        return out


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.float().cpu().numpy()


@torch.no_grad()
def member_rollout(model: Ensemble, start: torch.Tensor, actions: torch.Tensor):
    """Every member follows its own mean: start [B, S], actions [B, H, A] -> states [K, B, H, S], the members'
    one-step std [K, B, H, S], rewards [K, B, H] (None when the ensemble learns no reward). One batched call per
    step for all members and sequences."""
    k, (b, horizon, a) = model.members, actions.shape
    state = start.expand(k, *start.shape)  # [K, B, S]
    means, stds = [], []
    for h in range(horizon):
        mean, var = model.predict(state, actions[:, h].expand(k, b, a))  # [K, B, O], member k on its own state
        state = state + mean[..., : model.state_dim]
        means.append(torch.cat([state, mean[..., model.state_dim :]], -1))
        stds.append(var[..., : model.state_dim].sqrt())
    out = torch.stack(means, 2)  # [K, B, H, O]
    rewards = out[..., -1] if model.learn_reward else None
    return out[..., : model.state_dim], torch.stack(stds, 2), rewards


@torch.no_grad()
def kstep_report(
    model: Ensemble, states: torch.Tensor, actions: torch.Tensor, context: int, rewards: torch.Tensor | None = None
) -> KStepReport:
    """Replayed sequences inside episodes: states [B, T, S], actions [B, T, A] (action t led to state t), rewards
    [B, T] (reward of arriving at t). The model starts from the true state C - 1 and predicts states C..T-1."""
    steps = states.shape[1]
    if not 0 < context < steps:
        raise ValueError(f"context must be between 1 and {steps - 1} steps, got {context}")
    assert actions.shape[:2] == states.shape[:2], (actions.shape, states.shape)
    predicted, std, predicted_rewards = member_rollout(model, states[:, context - 1], actions[:, context:])
    reward_error = None
    if rewards is not None and predicted_rewards is not None:
        reward_error = _numpy((predicted_rewards.mean(0) - rewards[:, context:]).abs())
    return KStepReport(
        truth=_numpy(states),
        mean=_numpy(predicted.mean(0)),
        epistemic=_numpy(predicted.std(0, unbiased=False)),
        aleatoric=_numpy(std.mean(0)),
        reward_error=reward_error,
        context=context,
    )


def kstep_figure(report: KStepReport, dims: int = 4) -> np.ndarray:
    """RGB image [3, H, W]: the first ``dims`` state dims of sequence 0 over time (truth, ensemble mean, epistemic
    and total bands), then the k-step state MSE."""
    plt = pyplot()
    shown = min(dims, report.truth.shape[-1])
    fig, axes = plt.subplots(1, shown + 1, figsize=(3.2 * (shown + 1), 3.0))
    c, steps = report.context, np.arange(report.truth.shape[1])
    for d, ax in enumerate(axes[:shown]):
        mean = np.concatenate([report.truth[0, c - 1 : c, d], report.mean[0, :, d]])  # [H + 1] from the start state
        total = np.concatenate([[0.0], report.total[0, :, d]])
        epistemic = np.concatenate([[0.0], report.epistemic[0, :, d]])
        ax.axvspan(-0.5, c - 0.5, color="green", alpha=0.12)
        ax.fill_between(steps[c - 1 :], mean - total, mean + total, color="tab:orange", alpha=0.2, label="total")
        ax.fill_between(
            steps[c - 1 :], mean - epistemic, mean + epistemic, color="tab:orange", alpha=0.45, label="epistemic"
        )
        ax.plot(steps, report.truth[0, :, d], color="black", label="truth")
        ax.plot(steps[c - 1 :], mean, color="tab:orange", linestyle="--", label="ensemble mean")
        ax.set(xlabel="step", title=f"state[{d}] (sequence 0)")
    axes[0].legend(fontsize=7)
    ks = np.arange(1, len(report.mse) + 1)
    axes[-1].plot(ks, report.mse, marker=".")
    axes[-1].set(xlabel="open-loop steps k", ylabel="state MSE", title="k-step error (all sequences)")
    axes[-1].grid(alpha=0.3)
    return figure_to_rgb(fig)
