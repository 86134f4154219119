"""Results as data: one row per evaluation of a benchmark run, appended to a JSONL results file.

Row fields: task, agent, seed, env_steps, action_repeat, return_mean, return_std, returns, wall_clock_s,
updates_per_s, grad_steps, machine, run_dir, obs; rows written since protocols are recorded add eval_episodes,
time_limit, fast_render, threads, device, protocol (the fields below), commit, dirty, torch, cpu and host (suite
rows: suite, protocol_id and target_return when the suite states one; rows since 2026-12-05: cpu_bf16, native or
emulated); rows of model-based agents add failure (models/model_check.py). ``table`` and ``plot_curves`` turn rows
into a markdown table and learning-curve PNGs, one comparison per task and protocol: rows of different protocols are
never compared, and the table says why.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np

from worldmodels.analysis.cost_report import cost_table
from worldmodels.analysis.failure_report import failure_table, plot_failure
from worldmodels.analysis.statistics import efficiency_ratio, format_interval, interval95, steps_to_return


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
    """The code and machine a row came from: git commit (and whether the work tree had changes), torch, CPU, whether
    the CPU computes bfloat16 natively (AMX or AVX512-BF16: lscpu's model name alone does not tell, "AMD EPYC"
    covers both kinds), host."""
    import torch

    from worldmodels.nets.precision import native_bf16

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
        "cpu_bf16": "native" if native_bf16(torch.device("cpu")) else "emulated",
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
                **({"failure": e["failure"]} if "failure" in e else {}),
                **({"time_s": e["time_s"], "time_n": e.get("time_n", {})} if "time_s" in e else {}),
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


def table(rows: list[dict], targets: dict[str, float] | None = None, baseline: str = "sac") -> str:
    """Markdown, one section per task and one table per protocol of it: per agent, the final eval return (mean ±
    std over seeds) and the best seen, then the sample-efficiency table (``efficiency_table``). A task whose rows
    have several protocols says which fields differ. ``targets`` (task -> return) win over the rows' own."""
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
        given = targets or {}
        target = given[c["task"]] if c["task"] in given else _row_target(c["rows"])
        if len({r["env_steps"] for r in c["rows"]}) > 1:
            out.append(efficiency_table(c["rows"], target, baseline))
        out.append(failure_table(c["rows"]))
        out.append(cost_table(c["rows"]))
    return "\n".join(line for line in out if line)


def _row_target(rows: list[dict]) -> float | None:
    """The target return the rows state (suite rows carry the suite's ``target_return``); a ValueError when they
    state different ones (say which with report --target)."""
    stated = sorted({r["target_return"] for r in rows if r.get("target_return") is not None})
    if len(stated) > 1:
        raise ValueError(f"rows of {rows[0]['task']} state different target returns {stated}: pick one with --target")
    return stated[0] if stated else None


def report_budgets(steps: list[int]) -> list[int]:
    """Up to three of a comparison's eval points to report returns at: about a quarter, half and all the budget."""
    steps = sorted(set(steps))
    picks = [min(steps, key=lambda x: abs(x - steps[-1] * share)) for share in (0.25, 0.5, 1.0)]
    return sorted(set(picks))


def efficiency_table(rows: list[dict], target: float | None, baseline: str = "sac") -> str:
    """Markdown: per (obs, agent), the eval return at fixed budgets as mean ± 95% t interval over seeds, and, with a
    target return, the env steps to first reach it and how many times fewer than the baseline agent needed."""
    curves = _curves(rows)
    budgets = report_budgets([x for seeds in curves.values() for curve in seeds.values() for x in curve])
    head = [f"return at {b:,}" for b in budgets]
    base = {obs: seeds for (_, obs, agent), seeds in curves.items() if agent == baseline}  # obs -> its curves
    base_obs = "state" if "state" in base else next(iter(sorted(base)), None)  # the state baseline where there is one
    if target is not None:
        head += [f"env steps to {target:g} (seeds reaching it)"]
        head += [f"fewer env steps than {baseline} ({base_obs})"] if base_obs else []
    words = _target_words(target, baseline) + (f" No {baseline} rows here: no ratios." if not base_obs else "")
    lines = [
        f"Returns: mean ± 95% interval over seeds (Student t).{words}\n",
        "| obs | agent | seeds | " + " | ".join(head) + " |",
        "|---|---|---|" + "---|" * len(head),
    ]
    for (_, obs, agent), seeds in sorted(curves.items()):
        cells = [format_interval([c[b] for c in seeds.values()]) if _all_have(seeds, b) else "" for b in budgets]
        if target is not None:
            cells += [str(steps_to_return(seeds, target))]
            if base_obs:
                is_base = agent == baseline and obs == base_obs
                cells += ["" if is_base else _same_seed_ratio(base[base_obs], seeds, target)]
        lines.append(f"| {obs} | {agent} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _same_seed_ratio(base: dict[int, dict[int, float]], seeds: dict[int, dict[int, float]], target: float) -> str:
    """The baseline's env steps to ``target`` over the agent's, both on the seeds they share ('-' where none is)."""
    shared = sorted(set(base) & set(seeds))
    if not shared:
        return "-"
    base_steps = steps_to_return({s: base[s] for s in shared}, target)
    return efficiency_ratio(base_steps, steps_to_return({s: seeds[s] for s in shared}, target))


def _all_have(seeds: dict[int, dict[int, float]], steps: int) -> bool:
    return all(steps in curve for curve in seeds.values())


def _target_words(target: float | None, baseline: str) -> str:
    if target is None:
        return " No target return stated (suite files state one per task under `targets:`)."
    return (
        f" Env steps to {target:g}: the first evaluation at or above it, averaged over seeds; a seed that never "
        f"reaches it counts its budget and makes the figure a lower bound (>). Fewer env steps than {baseline}: "
        f"{baseline}'s figure over the agent's, both on the seeds they share (> or < where one side is such a "
        "bound; - where both are, or no seed is shared)."
    )


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
            f"| {per_seed} | {wall:.1f} | {_rate(ups)} |"
        )
    return "\n".join(lines) + "\n"


def _rate(per_s: float) -> str:
    """Whole numbers from 10 a second up; two significant digits below (a planner refitting every few
    minutes makes about 0.01 updates a second, which a whole number would show as 0)."""
    return f"{per_s:.0f}" if per_s >= 10 else f"{per_s:.2g}"


def curve_label(agent: str, n_seeds: int) -> str:
    return f"{agent} ({n_seeds} seed{'s' if n_seeds != 1 else ''})"


def plot_curves(rows: list[dict], out_dir: Path) -> list[Path]:
    """One PNG per task, observation kind and protocol: eval return against env steps, mean over seeds with the
    min-max band; where a comparison has several observation kinds (latent agents on pixels, state agents on
    state), one more PNG, ``<task>-all``, puts them all on one plot (pixels dashed, 95% interval bands); where
    rows carry failure-mode metrics, ``<task>-failure`` plots them (analysis/failure_report.py). A task with
    several protocols gets one file per protocol (-p1, -p2, ...)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for c in comparisons(rows):
        by_obs = defaultdict(list)
        for (_, obs, agent), seeds in _curves(c["rows"]).items():
            by_obs[obs].append((agent, seeds))
        suffix = f"-p{c['index']}" if c["count"] > 1 else ""
        which = f", protocol {c['index']} of {c['count']}" if c["count"] > 1 else ""
        stem = c["task"].replace(":", "_").replace("/", "_")
        for obs, entries in sorted(by_obs.items()):
            lines = [(curve_label(agent, len(seeds)), seeds, "-") for agent, seeds in entries]
            path = out_dir / f"{stem}-{obs}{suffix}.png"
            written.append(_plot(lines, f"{c['task']} ({obs}{which})", path, band="range"))
        if len(by_obs) > 1:
            lines = [
                (f"{agent} ({obs}, {len(seeds)} seed{'s' if len(seeds) != 1 else ''})", seeds, _style(obs))
                for obs, entries in sorted(by_obs.items())
                for agent, seeds in entries
            ]
            title = f"{c['task']}: {' and '.join(sorted(by_obs))}{which}, 95% intervals"
            written.append(_plot(lines, title, out_dir / f"{stem}-all{suffix}.png", band="interval95"))
        failure = plot_failure(c["rows"], f"{c['task']}{which}: failure modes", out_dir / f"{stem}-failure{suffix}.png")
        written += [failure] if failure else []
    return written


def _style(obs: str) -> str:
    return "--" if obs == "pixels" else "-"


def _plot(lines: list[tuple[str, dict, str]], title: str, path: Path, band: str) -> Path:
    """lines: (label, seed -> curve, line style); band 'range' (min-max over seeds) or 'interval95'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, seeds, style in lines:
        common = sorted(set.intersection(*(set(s) for s in seeds.values())))
        values = np.array([[seeds[s][x] for x in common] for s in seeds])  # [seeds, points]
        (line,) = ax.plot(common, values.mean(0), style, label=label)
        if band == "range":
            low, high = values.min(0), values.max(0)
        else:
            half = np.array([interval95(values[:, i])[1] for i in range(len(common))])  # NaN for one seed: no band
            low, high = values.mean(0) - half, values.mean(0) + half
        ax.fill_between(common, low, high, alpha=0.15, color=line.get_color())
    ax.set(xlabel="env steps", ylabel="eval return", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
