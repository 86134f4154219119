"""The Dyna-Q study's rows (analysis/dyna_study.py) -> table.md and three PNGs: steps per episode for K = 0, 5, 50
(Sutton & Barto's Figure 8.2), the Q error against env steps, and the partial-model experiment."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from worldmodels.reports.figure import pyplot

TABLE_EPISODES = (1, 2, 3, 5, 10, 20, 50)
TABLE_STEPS = (500, 1000, 2000, 5000, 10000)
SHORTEST_PATH = 14


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def steps_by_setting(rows: list[dict]) -> dict[tuple[int, float], np.ndarray]:
    """(K, coverage) -> steps [seeds, episodes], seeds in order, episodes cut to the fewest any seed has."""
    runs = defaultdict(dict)
    for r in rows:
        runs[(r["K"], r["coverage"], r["seed"])][r["episode"]] = r["steps"]
    out = defaultdict(list)
    for (k, coverage, _seed), episodes in sorted(runs.items()):
        out[(k, coverage)].append([episodes[e] for e in sorted(episodes)])
    return {key: np.array([s[: min(map(len, seeds))] for s in seeds]) for key, seeds in out.items()}


def errors_by_setting(rows: list[dict], key: str) -> dict[tuple[int, float], tuple[np.ndarray, np.ndarray]]:
    """(K, coverage) -> (env steps [M], RMS errors [seeds, M]) on the env steps every run has."""
    runs = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["seed"]):
        runs[(r["K"], r["coverage"])].append(dict(zip(r["env_steps"], r[key], strict=True)))  # None: no pair yet
    out = {}
    for setting, curves in runs.items():
        steps = np.array(sorted(set.intersection(*(set(c) for c in curves))))
        out[setting] = (steps, np.array([[c[x] for x in steps] for c in curves], dtype=float))
    return out


def mean_se(values: np.ndarray) -> str:
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{values.mean():.1f} ± {se:.1f}" if values.mean() >= 10 else f"{values.mean():.2f} ± {se:.2f}"


def label(k: int, coverage: float) -> str:
    return f"K={k}" if coverage == 1.0 else f"K={k}, coverage {coverage:g}"


def steps_table(steps: dict, settings: list) -> list[str]:
    lines = ["| setting | seeds | " + " | ".join(f"ep {e}" for e in TABLE_EPISODES) + " |"]
    lines.append("|---|---|" + "---|" * len(TABLE_EPISODES))
    for setting in settings:
        values = steps[setting]
        cells = [mean_se(values[:, e - 1]) if e <= values.shape[1] else "" for e in TABLE_EPISODES]
        lines.append(f"| {label(*setting)} | {len(values)} | " + " | ".join(cells) + " |")
    return lines


def error_table(errors: dict, settings: list) -> list[str]:
    lines = ["| setting | " + " | ".join(f"{s:,} steps" for s in TABLE_STEPS) + " |"]
    lines.append("|---|" + "---|" * len(TABLE_STEPS))
    for setting in settings:
        steps, values = errors[setting]
        cells = [f"{values[:, steps == s].mean():.3f}" if (steps == s).any() else "" for s in TABLE_STEPS]
        lines.append(f"| {label(*setting)} | " + " | ".join(cells) + " |")
    return lines


def greedy_table(rows: list[dict], settings: list) -> list[str]:
    lines = ["| setting | runs | greedy episode steps, mean | on a 14-step path | longest |", "|---|---|---|---|---|"]
    for k, coverage in settings:
        steps = np.array([r["greedy_steps"] for r in rows if (r["K"], r["coverage"]) == (k, coverage)])
        share = (steps == SHORTEST_PATH).sum()
        lines.append(f"| {label(k, coverage)} | {len(steps)} | {steps.mean():.2f} | {share} | {steps.max()} |")
    return lines


def plot_steps(ax, steps: dict, settings: list, styles: dict | None = None) -> None:
    for setting in settings:
        values = steps[setting][:, 1:]  # from episode 2, as the book: episode 1 is a random walk for every K
        episodes = np.arange(2, values.shape[1] + 2)
        ax.plot(episodes, values.mean(0), label=label(*setting), **(styles or {}).get(setting, {}))
    ax.axhline(SHORTEST_PATH, color="grey", lw=0.8, ls=":", label=f"shortest path ({SHORTEST_PATH})")
    ax.set(xlabel="episode", ylabel="steps per episode (mean over seeds)", ylim=(0, 900))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()


def plot_errors(ax, errors: dict, settings: list, title: str, styles: dict | None = None) -> None:
    for setting in settings:
        steps, values = errors[setting]
        mean = values.mean(0)
        se = values.std(0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.zeros_like(mean)
        lines = ax.plot(steps, mean, label=label(*setting), **(styles or {}).get(setting, {}))
        ax.fill_between(steps, mean - se, mean + se, alpha=0.2, color=lines[0].get_color())
    ax.set(xlabel="env steps", ylabel="RMS |Q - Q*|", title=title, ylim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend()


def write_report(out: Path) -> str:
    """table.md and the PNGs in ``out`` from its episodes.jsonl and q_error.jsonl; returns the markdown."""
    plt = pyplot()
    episode_rows, q_rows = read_jsonl(out / "episodes.jsonl"), read_jsonl(out / "q_error.jsonl")
    if not q_rows:
        raise FileNotFoundError(f"{out} holds no rows of the Dyna-Q study (q_error.jsonl); run benchmark.py dyna")
    steps = steps_by_setting(episode_rows)
    errors_all, errors_tried = errors_by_setting(q_rows, "q_rms_error"), errors_by_setting(q_rows, "q_rms_error_tried")
    planning = sorted(k for k, c in steps if c == 1.0)
    full = [(k, 1.0) for k in planning]
    partial = sorted(((k, c) for k, c in steps if c < 1.0 or k == max(planning)), key=lambda s: -s[1])
    reference = [(0, 1.0)] if (0, 1.0) in steps else []
    dashed = {(0, 1.0): {"color": "black", "ls": "--"}}

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    plot_steps(ax, steps, full)
    ax.set_title(f"Dyna Maze: steps per episode ({len(steps[full[0]])} seeds)")
    fig.tight_layout()
    fig.savefig(out / "steps_per_episode.png", dpi=110)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    plot_errors(axes[0], errors_all, full, "over all 184 (state, action) pairs")
    plot_errors(axes[1], errors_tried, full, "over the pairs tried so far")
    fig.tight_layout()
    fig.savefig(out / "q_error.png", dpi=110)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    plot_steps(axes[0], steps, partial + reference, dashed)
    axes[0].set_title("partial models: steps per episode")
    plot_errors(axes[1], errors_all, partial + reference, "partial models: Q error, all pairs", dashed)
    fig.tight_layout()
    fig.savefig(out / "partial_model.png", dpi=110)
    plt.close("all")

    first, wall = q_rows[0], sum(r["wall_s"] for r in q_rows)
    dirty = " with uncommitted changes" if first["dirty"] else ""
    budget = max(r["env_steps"][-1] for r in q_rows)
    lines = [
        "# Dyna-Q on the Dyna Maze (Sutton & Barto, Figure 8.2)",
        "",
        f"Made by `python scripts/benchmark.py dyna` (commit {first['commit'][:10]}{dirty}, {first['cpu']}):",
        f"{len(q_rows)} runs through the training loop, {wall:.0f} s inside it. One env, Q initialised to 0, protocol",
        f"`{json.dumps(first['protocol'])}`.",
        "Steps per episode are those of the training episodes (epsilon-greedy, learning online). Rows:",
        "`episodes.jsonl` (one per episode), `q_error.jsonl` (one per run: RMS |Q - Q*| every 50 env steps, Q* by",
        "value iteration). Plots: `steps_per_episode.png`, `q_error.png`, `partial_model.png`.",
        "",
        "## Steps per episode (mean ± standard error over seeds)",
        "",
        *steps_table(steps, full),
        "",
        "## RMS |Q - Q*| over all 184 (free cell, action) pairs, mean over seeds",
        "",
        *error_table(errors_all, full),
        "",
        "The same over the pairs tried so far:",
        "",
        *error_table(errors_tried, full),
        "",
        "## Partial models (K = 50, the model may store only a share of the pairs)",
        "",
        *steps_table(steps, partial + reference),
        "",
        *error_table(errors_all, partial + reference),
        "",
        f"## The greedy policy after {budget:,} env steps (one episode per run, ties broken at random)",
        "",
        *greedy_table(q_rows, full + [s for s in partial if s[1] < 1.0]),
        "",
    ]
    markdown = "\n".join(lines)
    (out / "table.md").write_text(markdown)
    return markdown
