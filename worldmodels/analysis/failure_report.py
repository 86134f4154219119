"""The report's failure-mode section: model exploitation and objective mismatch from the rows' ``failure`` fields.

An evaluation row of a model-based agent carries ``failure`` (models/model_check.py): the mean, over the training
episodes since the previous evaluation, of the model's error on each fresh episode and of the H-step return it
predicted for the executed actions against the return achieved. The table shows them at each agent's last
evaluation; the figure shows exploitation (predicted - achieved) over training and, for objective mismatch, the
eval return against the model's error (each agent's error divided by its first value, since the agents' errors
are in different units: relative state error, latent consistency error, world-model loss, reward error).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

FIELDS = ("model_error", "horizon", "predicted_return", "achieved_return", "exploitation", "exploitation_per_step")


def failure_curves(rows: list[dict]) -> dict[tuple[str, str], dict[int, dict[int, dict]]]:
    """(obs, agent) -> seed -> env_steps -> {return, failure fields}, for rows that carry failure metrics."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        if row.get("failure"):
            point = {"return": row["return_mean"], **row["failure"]}
            point["exploitation_per_step"] = point["exploitation"] / point["horizon"]  # rows before the field
            out[(row.get("obs", ""), row["agent"])][row["seed"]][row["env_steps"]] = point
    return out


def failure_table(rows: list[dict]) -> str:
    """Markdown: per (obs, agent), the failure fields at each seed's last evaluation, mean over seeds; '' when no
    row carries them."""
    curves = failure_curves(rows)
    if not curves:
        return ""
    lines = [
        "Failure modes on the training episodes before each agent's last evaluation (models/model_check.py): the "
        "H-step return the model predicted for the executed actions from each real state (H: the agent's planning "
        "or imagination horizon), the return achieved, their difference (exploitation: > 0 means the agent's "
        "actions are ones its model overrates), that difference per step, and the model's error on those fresh "
        "episodes in its own units (state models: one-step relative state error; TD-MPC: latent consistency; "
        "Dreamer: world-model loss; MuZero: one-step reward error). Mean over seeds.\n",
        "| obs | agent | seeds | model error | H | predicted H-step return | achieved | exploitation | per step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (obs, agent), seeds in sorted(curves.items()):
        last = [curve[max(curve)] for curve in seeds.values()]
        cells = [f"{np.mean([p.get(k, np.nan) for p in last]):.4g}" for k in FIELDS]
        lines.append(f"| {obs} | {agent} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_failure(rows: list[dict], title: str, path: Path) -> Path | None:
    """Exploitation over training and eval return against relative model error, one line per agent (mean over
    seeds at the evaluations every seed has); None when no row carries failure metrics."""
    curves = failure_curves(rows)
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (obs, agent), seeds in sorted(curves.items()):
        steps = sorted(set.intersection(*(set(c) for c in seeds.values())))
        if not steps:
            continue
        keys = ("model_error", "horizon", "exploitation", "return")
        mean = {k: np.array([np.mean([c[x][k] for c in seeds.values()]) for x in steps]) for k in keys}
        style = "--" if obs == "pixels" else "-"
        label = f"{agent} ({obs}, {len(seeds)} seed{'s' if len(seeds) != 1 else ''})"
        left.plot(steps, mean["exploitation"] / mean["horizon"], style, marker=".", label=label)
        right.plot(mean["model_error"] / mean["model_error"][0], mean["return"], style, marker=".", label=label)
    left.axhline(0.0, color="k", lw=0.8)
    left.set(xlabel="env steps", ylabel="(predicted - achieved H-step return) / H", title="model exploitation")
    right.set(xscale="log", xlabel="model error / its first value", ylabel="eval return", title="objective mismatch")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
