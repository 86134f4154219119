"""Speed figures as rows: what ``benchmark.py speed``, ``act-speed`` and ``collect`` measure, appended with the
setting and provenance to a JSONL file (``--results``), and the markdown table ``report`` makes of them.

Row fields: kind ('update', 'decision', 'collection' or 'training': seconds per env step of a whole training loop,
measured side by side with an anchor's), agent, task, obs, setting (presets and overrides, as
given), precision (bfloat16 when the agent uses it on this machine), threads, device, batch (envs deciding at once),
median_s and min_s (seconds per update or decision) or env_steps_per_s, repeats, parameters, and provenance
(commit, dirty, torch, cpu, cpu_bf16, host). An anchor's row (another library, measured by its own script in its own
venv) sets ``anchor`` to the library and version.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

KINDS = ("update", "decision", "collection", "training")


def is_speed_row(row: dict) -> bool:
    return row.get("kind") in KINDS


def speed_row(kind: str, cfg, result: dict, setting: str) -> dict:
    """A row for a timing of the config's agent (``update_seconds`` / ``act_seconds`` result)."""
    import torch

    from worldmodels.analysis.benchmark import provenance
    from worldmodels.nets.precision import use_bf16

    bf16 = getattr(cfg.agent, "bf16", False)
    device = torch.device("cpu" if cfg.train.device == "auto" else cfg.train.device)
    row = {
        "kind": kind,
        "agent": cfg.agent.name,
        "task": cfg.env.spec,
        "obs": cfg.env.obs,
        "setting": setting,
        "precision": "bfloat16" if use_bf16(bf16, device) else "float32",
        "threads": result["threads"],
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "median_s": result["median_s"],
        "min_s": result["min_s"],
        "repeats": len(result.get("times", [])) or None,
    }
    if "parameters" in result:
        row["parameters"] = result["parameters"]
    return row | provenance()


def anchor_row(anchor: str, kind: str, times: list[float], **fields) -> dict:
    """A row for another library's timing (seconds per update or decision), made by its script in its own venv;
    ``fields``: agent, task, obs, setting, precision, threads and optionally parameters or batch."""
    from worldmodels.analysis.benchmark import provenance

    row = {"kind": kind, "anchor": anchor, "device": "cpu", **fields}
    row |= {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}
    return row | provenance()


def collection_row(task: str, obs: str, setting: str, num_envs: int, rate: float) -> dict:
    from worldmodels.analysis.benchmark import provenance

    row = {"kind": "collection", "agent": "", "task": task, "obs": obs, "setting": setting, "batch": num_envs}
    return row | {"env_steps_per_s": rate} | provenance()


def ratio_table(rows: list[dict]) -> str:
    """Markdown: for each label, kind and precision with both anchor rows and ours, how many times faster ours is
    (the median of the anchor's medians over the median of ours); '' when no rows pair up. Rows pair only on the
    same machine setting (threads, device, CPU) and commit (a side-by-side run shares one), so files of several
    runs may be reported together: each commit's comparison is its own line."""
    groups = defaultdict(lambda: defaultdict(list))  # (label, kind, precision, setting) -> who -> [median_s]
    for r in rows:
        if r.get("label") and "median_s" in r:
            who = r.get("anchor", "worldmodels")
            machine = (r.get("threads"), r.get("device"), r.get("cpu"))
            key = (r["label"], r["kind"], r.get("precision", ""), r.get("commit", ""), machine)
            groups[key][who].append(r["median_s"])
    lines = []
    for (label, kind, precision, commit, _), by_who in groups.items():
        ours = by_who.pop("worldmodels", [])
        for anchor, theirs in by_who.items() if ours else ():
            times = f"{_figures(theirs)} / {_figures(ours)}"
            ratio = statistics.median(theirs) / statistics.median(ours)
            lines.append(f"| {label} | {kind} | {precision} | {commit[:7]} | {anchor} | {times} | **{ratio:.2f}x** |")
    if not lines:
        return ""
    head = ["### ours against the anchors (rows of the same label, precision, machine setting and commit)\n"]
    head += ["| comparison | kind | precision | commit | anchor | anchor's / our seconds (medians) | ours faster by |"]
    return "\n".join(head + ["|---|---|---|---|---|---|---|"] + lines) + "\n"


def _figures(times: list[float]) -> str:
    return ", ".join(f"{t:.4g}" for t in times)


def speed_table(rows: list[dict]) -> str:
    """Markdown: one table per kind, a line per row (anchors marked), in the order measured."""
    by_kind = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    out = []
    for kind in KINDS:
        if not by_kind[kind]:
            continue
        unit = {"collection": "env steps / s", "training": "s per env step of training (median, min)"}.get(
            kind, f"s per {kind} (median, min)"
        )
        out.append(f"### {kind} speed\n")
        out.append(f"| who | agent | task | obs | setting | precision | threads | device | {unit} | commit | CPU |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in by_kind[kind]:
            figure = (
                f"{r['env_steps_per_s']:,.0f} ({r.get('batch', 1)} envs)"
                if kind == "collection"
                else f"{r['median_s']:.4g}, {r['min_s']:.4g}"
            )
            who = r.get("anchor", "worldmodels")
            cells = [who, r["agent"], r["task"], r["obs"], f"`{r['setting']}`", r.get("precision", "")]
            cells += [str(r.get("threads", "")), r.get("device", ""), figure, str(r.get("commit", ""))[:7]]
            cells += [r.get("cpu", "")]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    ratios = ratio_table(rows)
    return "\n".join(out) + ("\n" + ratios if ratios else "")
