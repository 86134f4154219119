"""Model error for every model on the same held-out episodes (issue 20, part 5).

Dimension letters: E episodes, N windows of an episode, H horizon, S state dims.

Held-out episodes come from uniformly random actions on the task at the runs' shared action repeat, so no
model saw them and none is favoured by its own policy's data. Each trained agent predicts open loop from every
real step of them with the executed actions (``agent.open_loop(episode, H)``, models/model_check.py): rewards
for every model, the state vector for the state models. The k-step errors are averaged over windows and
episodes: reward |r_hat - r|, state ||s_hat - s|| / ||s||. The linear-Gaussian model is fitted here on separate
random-action episodes (it predicts states only). For each model the one-step error eps and the growth L are
fitted (analysis/compounding.py) to its state curve, or to its reward curve when it predicts no state, and the
bound eps (L^H - 1) / (L - 1) is shown beside the measured error at H.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldmodels.analysis.compounding import error_bound, fit_growth
from worldmodels.analysis.value_error import (
    ValueCurve,
    policy_episodes,
    record_episode,
    tail_decisions,
    value_curve,
    value_table,
)
from worldmodels.envs import make_env
from worldmodels.models.ensemble import Ensemble, fit_ensemble
from worldmodels.models.linear_gaussian import LinearGaussianModel
from worldmodels.models.model_check import OpenLoop, ensemble_open_loop, executed_windows


def held_out_episodes(
    spec: str,
    action_repeat: int,
    episodes: int,
    seed: int,
    time_limit: int | None = None,
    action_grid: np.ndarray | None = None,
    pixels: dict | None = None,
):
    """Random-action episodes in the replay's layout (state, action, reward, is_first, is_terminal; entry 0 the
    reset) from ``make_env(spec, obs='state')``; seeds seed, seed + 1, ... for the resets and the actions.
    Actions are uniform in [-1, 1], or uniform over the rows of ``action_grid`` [G, A] (a model that searches a
    discretised action space, MuZero, can then be fed exactly the actions executed). With ``pixels`` (make_env's
    size and fast_render) the episodes hold rendered pixels too, for models that see them."""
    obs_kind = "both" if pixels else "state"
    env = make_env(spec, obs=obs_kind, action_repeat=action_repeat, seed=seed, time_limit=time_limit, **(pixels or {}))
    rng = np.random.default_rng(seed)

    def random_action(obs: dict, first: bool) -> np.ndarray:
        if action_grid is None:
            return rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        return action_grid[rng.integers(len(action_grid))]

    keys = ("state", "pixels") if pixels else ("state",)
    try:
        return [record_episode(env, random_action, seed + e, keys) for e in range(episodes)]
    finally:
        env.close()


def transitions(episodes: list[dict], dtype=torch.float64) -> tuple[torch.Tensor, ...]:
    """Every transition of the episodes: states [M, S], actions [M, A], next states [M, S], rewards [M]."""
    cat = lambda key, lo, hi: torch.cat([torch.as_tensor(e[key][lo:hi], dtype=dtype) for e in episodes])  # noqa: E731
    return cat("state", 0, -1), cat("action", 1, None), cat("state", 1, None), cat("reward", 1, None)


def linear_gaussian_open_loop(train_episodes: list[dict]):
    """A linear-Gaussian model fitted by least squares on the episodes -> open_loop(episode, H) (states only)."""
    s, a, s2, _ = transitions(train_episodes)
    return linear_open_loop(LinearGaussianModel().fit(s, a, s2))


def linear_open_loop(model: LinearGaussianModel):
    """A linear-Gaussian model -> open_loop(episode, H): its mean rolled through the executed actions (states only)."""

    def open_loop(episode: dict, horizon: int) -> OpenLoop:
        states = torch.as_tensor(episode["state"], dtype=torch.float64)
        starts, actions, _ = executed_windows(episode, horizon)
        predicted = model.rollout(states[starts], actions.double()).float()  # [N, H, S]
        one_step = (model.predict(states[:-1], torch.as_tensor(episode["action"][1:]).double()) - states[1:]).norm(
            dim=-1
        ) / states[1:].norm(dim=-1).clamp(min=1e-6)
        return OpenLoop(torch.full(predicted.shape[:2], math.nan), one_step.mean().item(), predicted)

    return open_loop


def fresh_ensemble_open_loop(train_episodes: list[dict], members=5, hidden=(200, 200, 200), epochs=100, seed=0):
    """A PETS-style probabilistic ensemble (learned rewards) fitted on the episodes -> open_loop(episode, H): the
    members' mean prediction rolled through the executed actions; model_error: its one-step relative state error."""
    s, a, s2, r = transitions(train_episodes, torch.float32)
    torch.manual_seed(seed)
    ensemble = Ensemble(s.shape[1], a.shape[1], members=members, hidden=hidden, learn_reward=True)
    inputs, targets = torch.cat([s, a], -1), ensemble.targets(s, a, s2, r)
    fit_ensemble(ensemble, inputs, targets, epochs=epochs, generator=torch.Generator().manual_seed(seed))

    def open_loop(episode: dict, horizon: int) -> OpenLoop:
        return ensemble_open_loop(ensemble, episode, horizon)

    return open_loop


@dataclass
class ErrorCurve:
    reward_error: np.ndarray
    """[H] mean |r_hat - r| after k = 1..H steps (NaN: the model predicts no reward)."""
    state_error: np.ndarray | None
    """[H] mean ||s_hat - s|| / ||s|| (None: the model predicts no state vector)."""
    image_error: np.ndarray | None = None
    """[H] mean squared pixel error in [0, 1] of decoded images (RSSM with a pixel decoder), else None."""

    @property
    def fitted(self) -> tuple[str, np.ndarray]:
        """The curve eps and L are fitted to: the state error where there is one, else the reward error."""
        return ("state", self.state_error) if self.state_error is not None else ("reward", self.reward_error)


@torch.no_grad()
def error_curve(open_loop, episodes: list[dict], horizon: int, image_errors=None) -> ErrorCurve:
    """open_loop(episode, H) -> OpenLoop, over every episode -> the k-step errors, averaged over all windows;
    ``image_errors(episode, H)`` -> [H] or None adds the image curve (averaged over episodes)."""
    reward_errors, state_errors = [], []
    images = [image_errors(episode, horizon) for episode in episodes] if image_errors else []
    images = [x.cpu().numpy() for x in images if x is not None]
    for episode in episodes:
        prediction = open_loop(episode, horizon)
        starts, _, rewards = executed_windows(episode, horizon)  # [N], [N, H]
        reward_errors.append((prediction.rewards.cpu().float() - rewards).abs())
        if prediction.states is not None:
            states = torch.as_tensor(episode["state"], dtype=torch.float32)
            truth = states[1:].unfold(0, horizon, 1).transpose(1, 2)  # [N, H, S]
            error = (prediction.states.cpu().float() - truth).norm(dim=-1) / truth.norm(dim=-1).clamp(min=1e-6)
            state_errors.append(error)
    state = torch.cat(state_errors).mean(0).numpy() if state_errors else None
    return ErrorCurve(torch.cat(reward_errors).mean(0).numpy(), state, np.mean(images, 0) if images else None)


def model_error_table(curves: dict[str, ErrorCurve], ks=(1, 5, 10, 15)) -> str:
    """Markdown: per model, state and reward errors at k = ks, and eps, L, the bound at H and the measured error at
    H of the curve they are fitted to."""
    with_images = any(c.image_error is not None for c in curves.values())
    head = [f"state k={k}" for k in ks] + [f"reward k={k}" for k in ks]
    head += [f"image k={k}" for k in ks] if with_images else []
    lines = [
        "| model | " + " | ".join(head) + " | fitted to | eps | L | bound at H | measured at H |",
        "|---|" + "---|" * (len(head) + 5),
    ]
    for name, curve in curves.items():
        horizon = len(curve.reward_error)
        which, fitted = curve.fitted
        eps, growth = fit_growth(fitted)
        bound = float(error_bound(eps, growth, horizon))
        cells = [_cell(curve.state_error, k) for k in ks] + [_cell(curve.reward_error, k) for k in ks]
        cells += [_cell(curve.image_error, k) for k in ks] if with_images else []
        tail = f"{which} | {eps:.3g} | {growth:.3f} | {bound:.3g} | {fitted[-1]:.3g}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {tail} |")
    return "\n".join(lines) + "\n"


def _cell(errors: np.ndarray | None, k: int) -> str:
    return "-" if errors is None or k > len(errors) or math.isnan(errors[k - 1]) else f"{errors[k - 1]:.3g}"


def plot_model_error(
    curves: dict[str, ErrorCurve], title: str, path: Path, value_curves: dict[str, ValueCurve] | None = None
) -> Path:
    """State error (left) and reward error against k, measured (solid) beside the fitted bound (dashed); image
    error (RSSM) and the value error on the agents' own episodes, relative to the return scale, when there are
    any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_images = any(c.image_error is not None for c in curves.values())
    panels = 2 + with_images + bool(value_curves)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2))
    for i, (name, curve) in enumerate(curves.items()):
        color = f"C{i % 10}"
        which, fitted = curve.fitted
        eps, growth = fit_growth(fitted)
        panels = [(axes[0], curve.state_error, "state"), (axes[1], curve.reward_error, "reward")]
        panels += [(axes[2], curve.image_error, "image")] if with_images else []
        for ax, values, kind in panels:
            if values is None or np.isnan(values).all():
                continue
            ks = np.arange(1, len(values) + 1)
            ax.plot(ks, values, color=color, marker=".", label=name)
            if kind == which:
                ax.plot(
                    ks, error_bound(eps, growth, ks), "--", color=color, label=f"bound, eps={eps:.3g}, L={growth:.2f}"
                )
    axes[0].set(xlabel="open-loop steps k", ylabel="||s_hat - s|| / ||s||", title="state error (state models)")
    axes[1].set(xlabel="open-loop steps k", ylabel="|r_hat - r|", title="reward error (every model)")
    if with_images:
        axes[2].set(xlabel="open-loop steps k", ylabel="mean squared pixel error", title="image error (RSSM)")
    if value_curves:
        names = list(curves)
        for name, value in value_curves.items():
            ks = np.arange(len(value.error))
            color = f"C{names.index(name) % 10}"
            axes[-1].plot(ks, value.error / value.return_scale, color=color, marker=".", label=name)
        axes[-1].set(xlabel="open-loop steps k (0: the real state)", ylabel="|V_hat - G| / mean |G|")
        axes[-1].set_title("value error (own greedy episodes)")
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def run_model_error(
    run_dirs: list[Path],
    episodes: int,
    train_episodes: int,
    horizon: int,
    seed: int,
    out: Path,
    value_episodes: int = 2,
    value_starts: int = 200,
    value_tol: float = 0.01,
    task: tuple[str, int] | None = None,
    fresh_ensemble: bool = False,
) -> tuple[str, list[dict]]:
    """Every run's model, and a linear-Gaussian model, on the same held-out episodes -> (markdown table, rows).
    The runs must share task, action repeat and time limit. Writes <out>/model_error-<task>.{md,png,jsonl}.
    Without runs, ``task`` (spec, action repeat) names the task; ``fresh_ensemble`` adds a PETS-style ensemble
    fitted, like the linear model, on the random training episodes (the compounding-error study).
    Agents with a value function are also scored on ``value_episodes`` episodes of their own greedy policy with
    ``value_starts`` scored starts each (analysis/value_error.py; 0 episodes: no value error)."""
    from worldmodels.analysis.benchmark import provenance
    from worldmodels.run.loop import load_agent

    agents, renders = {}, set()
    for run_dir in run_dirs:
        agent, cfg = load_agent(run_dir)
        if not hasattr(agent, "open_loop"):
            raise ValueError(f"{run_dir}: agent '{cfg.agent.name}' has no model to measure (no open_loop)")
        setting = (cfg.env.spec, cfg.env.action_repeat, cfg.env.time_limit)
        agents[f"{cfg.agent.name} s{cfg.train.seed} ({Path(run_dir).name})"] = (agent, setting, run_dir, cfg)
        if cfg.env.obs in ("pixels", "both"):
            renders.add((cfg.env.size, cfg.env.fast_render))
    settings = {setting for _, setting, _, _ in agents.values()}
    if task is not None:
        settings.add((task[0], task[1], None))
    if len(settings) != 1:
        raise ValueError(f"the runs differ in (task, action repeat, time limit): {sorted(map(str, settings))}")
    spec, repeat, time_limit = settings.pop()
    grids = {}  # the action grids of models that search discretised actions (MuZero)
    for agent, _, _, _ in agents.values():
        grid = getattr(getattr(agent, "action_grid", None), "grid", None)
        if grid is not None:
            grids[grid.tobytes()] = grid
    if len(grids) > 1:
        raise ValueError("the runs search different action grids (agent.action_bins): measure them separately")
    grid = next(iter(grids.values()), None)  # the actions of a discretising model (MuZero), else uniform
    if len(renders) > 1:
        raise ValueError(f"the pixel runs differ in (env.size, env.fast_render): {sorted(renders)}")
    pixels = dict(zip(("size", "fast_render"), renders.pop(), strict=True)) if renders else None
    held_out = held_out_episodes(spec, repeat, episodes, seed, time_limit, grid, pixels)
    shortest = min(len(e["reward"]) - 1 for e in held_out)
    if shortest < horizon:
        raise ValueError(f"--horizon {horizon} is longer than the shortest held-out episode ({shortest} steps)")
    training = held_out_episodes(spec, repeat, train_episodes, seed + 10_000, time_limit, grid)
    curves = {f"linear-Gaussian ({train_episodes} random episodes)": error_curve(
        linear_gaussian_open_loop(training), held_out, horizon
    )}  # fmt: skip
    if fresh_ensemble:
        members, hidden = 5, (200, 200, 200)
        name = f"ensemble {members} x {hidden[0]}x{len(hidden)} ({train_episodes} random episodes)"
        curves[name] = error_curve(fresh_ensemble_open_loop(training, members, hidden, seed=seed), held_out, horizon)
    curves |= {
        name: error_curve(agent.open_loop, held_out, horizon, getattr(agent, "image_errors", None))
        for name, (agent, _, _, _) in agents.items()
    }
    values = {}  # name -> ValueCurve, for the agents with a value function
    for name, (agent, _, _, cfg) in agents.items() if value_episodes else ():
        discount = agent.open_loop(held_out[0], horizon, values=True).discount  # None: no value function
        if discount is not None:
            decisions = value_starts + horizon + tail_decisions(discount, value_tol) - 1
            own = policy_episodes(agent, cfg, value_episodes, seed + 20_000, decisions)
            values[name] = value_curve(agent, own, horizon, value_tol)
    actions = "uniform random actions" if grid is None else f"random actions from a {len(grid)}-point grid"
    protocol = f"{spec}, action repeat {repeat}, {episodes} held-out episodes of {actions} (seed {seed}), H = {horizon}"
    stem = f"model_error-{spec.replace(':', '_').replace('/', '_')}"
    table = model_error_table(curves)
    out.mkdir(parents=True, exist_ok=True)
    markdown = f"{protocol}.\n\n{table}"
    if values:
        table += "\n" + value_table(values)
        markdown += (
            f"\nValue error |V_hat - G| and bias V_hat - G after k open-loop steps (k = 0: the value of the real "
            f"state), on {value_episodes} episodes of each agent's own greedy policy (seed {seed + 20_000}), "
            f"{value_starts} scored starts each, run past the task's time limit so that the discounted tail beyond "
            f"them weighs at most {value_tol:g} (analysis/value_error.py):\n\n{value_table(values)}"
        )
    (out / f"{stem}.md").write_text(markdown)
    plot_model_error(curves, protocol, out / f"{stem}.png", values)
    base = {"task": spec, "action_repeat": repeat, "time_limit": time_limit, "episodes": episodes, "seed": seed}
    base |= {"horizon": horizon, **provenance()}
    rows = []
    for name, curve in curves.items():
        which, fitted = curve.fitted
        eps, growth = fit_growth(fitted)
        run_dir = str(agents[name][2]) if name in agents else None  # None: the linear-Gaussian model
        value = values.get(name)
        value_fields = {} if value is None else {
            "value_error": value.error.tolist(), "value_bias": value.bias.tolist(),
            "value_return_scale": value.return_scale, "value_discount": value.discount,
            "value_windows": value.starts, "value_episodes": value_episodes, "value_tol": value_tol,
        }  # fmt: skip
        rows.append(
            {
                **base,
                "model": name,
                "run_dir": run_dir,
                "reward_error": [None if math.isnan(x) else float(x) for x in curve.reward_error],
                "state_error": None if curve.state_error is None else [float(x) for x in curve.state_error],
                "image_error": None if curve.image_error is None else [float(x) for x in curve.image_error],
                "fitted_to": which,
                "epsilon": eps,
                "growth": growth,
                "bound_at_h": float(error_bound(eps, growth, horizon)),
                **value_fields,
            }
        )
    with open(out / f"{stem}.jsonl", "a") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in rows))
    return table, rows
