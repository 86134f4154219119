"""Results as data: one row per evaluation of a benchmark run, appended to a JSONL results file.

Row fields: task, agent, seed, env_steps, action_repeat, return_mean, return_std, returns, wall_clock_s,
updates_per_s, grad_steps, machine, run_dir, obs; rows written since protocols are recorded add eval_episodes,
time_limit, fast_render, threads, device, protocol (the fields below), commit, dirty, torch, cpu and host (suite
rows: suite, protocol_id). ``table`` and ``plot_curves`` turn rows into a markdown table and learning-curve PNGs,
one comparison per task and protocol: rows of different protocols are never compared, and the table says why.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
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


PROTOCOL_FIELDS = ("env_steps", "eval_every", "eval_episodes", "time_limit", "fast_render", "action_repeat")
"""What rows must share to be compared (observation kind may differ: latent vs state agents is the point)."""
UNRECORDED = "unrecorded"


def cpu_model() -> str:
    """The CPU's model name as lscpu gives it."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        text = ""
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")]
    return names[0] if names else platform.processor() or "unknown"


def provenance() -> dict:
    """The code and machine a row came from: git commit (and whether the work tree had changes), torch, CPU, host."""
    import torch

    git = ["git", "-C", str(Path(__file__).resolve().parents[2])]
    try:
        commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(git + ["status", "--porcelain"], capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "", None
    return {
        "commit": commit or "unknown",
        "dirty": dirty,
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "host": platform.node(),
    }


def protocol_fields(cfg) -> dict:
    """A run's protocol: the task and the PROTOCOL_FIELDS of its config."""
    e, t = cfg.env, cfg.train
    return {
        "task": e.spec,
        "env_steps": t.env_steps,
        "eval_every": t.eval_every,
        "eval_episodes": t.eval_episodes,
        "time_limit": e.time_limit,
        "fast_render": e.fast_render,
        "action_repeat": e.action_repeat,
    }


def run_fields(cfg) -> dict:
    """What a row says about its run's setting: render, time limit, eval episodes, threads, device, protocol."""
    import torch

    from worldmodels.run.loop import resolve_device

    device = resolve_device(cfg.train.device)
    return {
        "eval_episodes": cfg.train.eval_episodes,
        "time_limit": cfg.env.time_limit,
        "fast_render": cfg.env.fast_render,
        "threads": cfg.train.threads or os.cpu_count(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "protocol": protocol_fields(cfg),
    }


def rows_from_run(
    run_dir: Path, task: str, agent: str, seed: int, obs: str, machine: str, extra: dict | None = None
) -> list[dict]:
    """One row per line of the run's evals.jsonl; ``extra`` (provenance, run_fields) is added to each."""
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
                **(extra or {}),
            }
        )
    return rows


def append_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write("".join(json.dumps(row) + "\n" for row in rows))  # one write: a kill seldom leaves half a run


def read_rows(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        rows += [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return rows


def protocol_of(row: dict) -> dict:
    """The PROTOCOL_FIELDS a row was measured under, as far as it says: rows from before protocols were recorded
    give their action repeat and eval episodes (the length of their returns) and 'unrecorded' for the rest."""
    if "protocol" in row:
        return {k: row["protocol"].get(k, UNRECORDED) for k in PROTOCOL_FIELDS}
    protocol = dict.fromkeys(PROTOCOL_FIELDS, UNRECORDED)
    protocol["action_repeat"] = row.get("action_repeat", UNRECORDED)
    if "returns" in row:
        protocol["eval_episodes"] = len(row["returns"])
    return protocol


def describe(protocol: dict) -> str:
    """'400 env steps, eval every 200, 2 eval episodes, time limit 50, standard render, action repeat 1'."""
    words = {
        "env_steps": lambda v: f"{v:,} env steps",
        "eval_every": lambda v: f"eval every {v:,}" if v else "eval at the end",
        "eval_episodes": lambda v: f"{v} eval episode{'s' if v != 1 else ''}",
        "time_limit": lambda v: "the task's time limit" if v is None else f"time limit {v}",
        "fast_render": lambda v: "fast render" if v else "standard render",
        "action_repeat": lambda v: f"action repeat {v}",
    }
    parts = [words[k](protocol[k]) for k in PROTOCOL_FIELDS if protocol[k] != UNRECORDED]
    missing = [k for k in PROTOCOL_FIELDS if protocol[k] == UNRECORDED]
    return ", ".join(parts + ([f"unrecorded: {', '.join(missing)}"] if missing else []))


def comparisons(rows: list[dict]) -> list[dict]:
    """Rows split by task, then by protocol (in order of first appearance). Each comparison: task, protocol,
    rows, index and count (of the task's protocols), and ``differs``: for a task with several protocols, the
    fields they disagree on and the values seen, the reason they are not compared."""
    groups: dict = defaultdict(dict)  # task -> protocol key -> rows
    for row in rows:
        protocol = protocol_of(row)
        groups[row["task"]].setdefault(json.dumps(protocol, sort_keys=True), []).append(row)
    out = []
    for task in sorted(groups):
        protocols = [json.loads(key) for key in groups[task]]
        differs = {
            k: list(dict.fromkeys(p[k] for p in protocols))
            for k in PROTOCOL_FIELDS
            if len({json.dumps(p[k]) for p in protocols}) > 1
        }
        for i, (protocol, members) in enumerate(zip(protocols, groups[task].values(), strict=True)):
            where = {"task": task, "index": i + 1, "count": len(protocols), "differs": differs}
            out.append({**where, "protocol": protocol, "rows": members})
    return out


def _curves(rows: list[dict]) -> dict[tuple[str, str, str], dict[int, dict[int, float]]]:
    """(task, obs, agent) -> seed -> env_steps -> return_mean (the latest row wins for repeats)."""
    curves: dict = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        curves[(row["task"], row.get("obs", ""), row["agent"])][row["seed"]][row["env_steps"]] = row["return_mean"]
    return curves


def table(rows: list[dict]) -> str:
    """Markdown, one section per task and one table per protocol of it: per agent, the final eval return (mean ±
    std over seeds) and the best seen. A task whose rows have several protocols says which fields differ."""
    out = []
    for c in comparisons(rows):
        if c["index"] == 1:
            out.append(f"## {c['task']}\n")
            if c["count"] > 1:
                why = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in c["differs"].items())
                out.append(f"Rows under {c['count']} protocols, not compared with each other (they differ in {why}).\n")
        heading = f"### protocol {c['index']} of {c['count']}: " if c["count"] > 1 else "Protocol: "
        out.append(f"{heading}{describe(c['protocol'])}.\n")
        out.append(_table(c["rows"], c["protocol"]["action_repeat"]))
    return "\n".join(out)


def _table(rows: list[dict], action_repeat) -> str:
    """One comparison's markdown table; an agent whose action repeat is not the protocol's shows it by the return."""
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
        repeats = sorted({r.get("action_repeat", action_repeat) for r in ends})
        note = f" (action repeat {', '.join(map(str, repeats))})" if repeats != [action_repeat] else ""
        lines.append(
            f"| {task} | {obs} | {agent} | {len(seeds)} | {budget:,} | {values.mean():.1f} ± {values.std():.1f}{note} "
            f"| {per_seed} | {wall:.1f} | {ups:.0f} |"
        )
    return "\n".join(lines) + "\n"


def curve_label(agent: str, n_seeds: int) -> str:
    return f"{agent} ({n_seeds} seed{'s' if n_seeds != 1 else ''})"


def plot_curves(rows: list[dict], out_dir: Path) -> list[Path]:
    """One PNG per task, observation kind and protocol: eval return against env steps, mean over seeds with the
    min-max band. A task with several protocols gets one file per protocol (-p1, -p2, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for c in comparisons(rows):
        by_obs = defaultdict(list)
        for (_, obs, agent), seeds in _curves(c["rows"]).items():
            by_obs[obs].append((agent, seeds))
        suffix = f"-p{c['index']}" if c["count"] > 1 else ""
        for obs, entries in sorted(by_obs.items()):
            fig, ax = plt.subplots(figsize=(6, 4))
            for agent, seeds in entries:
                common = sorted(set.intersection(*(set(s) for s in seeds.values())))
                values = np.array([[seeds[s][x] for x in common] for s in seeds])  # [seeds, points]
                ax.plot(common, values.mean(0), label=curve_label(agent, len(seeds)))
                ax.fill_between(common, values.min(0), values.max(0), alpha=0.2)
            which = f", protocol {c['index']} of {c['count']}" if c["count"] > 1 else ""
            ax.set(xlabel="env steps", ylabel="eval return", title=f"{c['task']} ({obs}{which})")
            ax.grid(alpha=0.3)
            ax.legend()
            fig.tight_layout()
            path = out_dir / f"{c['task'].replace(':', '_').replace('/', '_')}-{obs}{suffix}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    return written
