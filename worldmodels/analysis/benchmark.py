"""Results as data: one row per evaluation of a benchmark run, appended to a JSONL results file.

Row fields: task, agent, seed, env_steps, action_repeat, return_mean, return_std, returns, wall_clock_s,
updates_per_s, grad_steps, machine, run_dir, obs. ``table`` and ``plot_curves`` turn rows into a markdown
table and learning-curve PNGs.
"""

from __future__ import annotations

import json
import os
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np


def machine_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"


def rows_from_run(run_dir: Path, task: str, agent: str, seed: int, obs: str, machine: str) -> list[dict]:
    rows = []
    for line in (Path(run_dir) / "evals.jsonl").read_text().splitlines():
        e = json.loads(line)
        rows.append(
            {
                "task": task,
                "agent": agent,
                "seed": seed,
                "obs": obs,
                "env_steps": e["env_steps"],
                "action_repeat": e["action_repeat"],
                "return_mean": e["mean"],
                "return_std": e["std"],
                "returns": e["returns"],
                "wall_clock_s": e["wall_s"],
                "grad_steps": e["grad_steps"],
                "updates_per_s": e["grad_steps"] / e["wall_s"] if e["wall_s"] > 0 else 0.0,
                "machine": machine,
                "run_dir": str(run_dir),
            }
        )
    return rows


def append_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def read_rows(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        rows += [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows


def _curves(rows: list[dict]) -> dict[tuple[str, str, str], dict[int, dict[int, float]]]:
    """(task, obs, agent) -> seed -> env_steps -> return_mean (the latest row wins for repeats)."""
    curves: dict = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        curves[(row["task"], row.get("obs", ""), row["agent"])][row["seed"]][row["env_steps"]] = row["return_mean"]
    return curves


def table(rows: list[dict]) -> str:
    """Markdown: per task and agent, the final eval return (mean ± std over seeds) and the best seen."""
    lines = [
        "| task | obs | agent | seeds | env steps | final return (mean ± std over seeds) | per seed "
        "| wall clock (min) | updates/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    last_row = {}
    for row in rows:
        key = (row["task"], row.get("obs", ""), row["agent"], row["seed"])
        if key not in last_row or row["env_steps"] >= last_row[key]["env_steps"]:
            last_row[key] = row
    for (task, obs, agent), seeds in sorted(_curves(rows).items()):
        finals = {seed: steps[max(steps)] for seed, steps in seeds.items()}
        budget = min(max(steps) for steps in seeds.values())
        ends = [last_row[(task, obs, agent, s)] for s in seeds]
        values = np.array(list(finals.values()))
        per_seed = ", ".join(f"{v:.0f}" for _, v in sorted(finals.items()))
        wall = np.mean([r["wall_clock_s"] for r in ends]) / 60
        ups = np.mean([r["updates_per_s"] for r in ends])
        lines.append(
            f"| {task} | {obs} | {agent} | {len(seeds)} | {budget:,} | {values.mean():.1f} ± {values.std():.1f} "
            f"| {per_seed} | {wall:.1f} | {ups:.0f} |"
        )
    return "\n".join(lines) + "\n"


def curve_label(agent: str, n_seeds: int) -> str:
    return f"{agent} ({n_seeds} seed{'s' if n_seeds != 1 else ''})"


def plot_curves(rows: list[dict], out_dir: Path) -> list[Path]:
    """One PNG per task: eval return against env steps, mean over seeds with the min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    by_task = defaultdict(list)
    for (task, obs, agent), seeds in _curves(rows).items():
        by_task[(task, obs)].append((agent, seeds))
    written = []
    for (task, obs), entries in sorted(by_task.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for agent, seeds in entries:
            common = sorted(set.intersection(*(set(s) for s in seeds.values())))
            values = np.array([[seeds[s][x] for x in common] for s in seeds])  # [seeds, points]
            ax.plot(common, values.mean(0), label=curve_label(agent, len(seeds)))
            ax.fill_between(common, values.min(0), values.max(0), alpha=0.2)
        ax.set(xlabel="env steps", ylabel="eval return", title=f"{task} ({obs})")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{task.replace(':', '_').replace('/', '_')}-{obs}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
