"""The report's cost section: where each agent's time went, from the eval rows' ``time_s`` (run/loop.py's
counters: decide, env, update, model_check, eval; cumulative seconds at the row's env step).

Per agent, at each seed's last row, mean over seeds: milliseconds per decision (agent.act: planning for PETS,
MPPI for TD-MPC, a forward pass for SAC and Dreamer), per update (one batch of one stream), per env step of
simulation and rendering, and the share of the run's time each part took. Rows from one suite run share a
machine and its load, so their ratios are the side-by-side comparison.
"""

from __future__ import annotations

import numpy as np

PARTS = ("decide", "update", "env", "model_check", "eval")


def cost_table(rows: list[dict]) -> str:
    """Markdown, or '' when no row carries ``time_s``."""
    last: dict = {}
    for row in rows:
        if "time_s" not in row:
            continue
        key = (row.get("obs", ""), row["agent"], row["seed"])
        if key not in last or row["env_steps"] >= last[key]["env_steps"]:
            last[key] = row
    if not last:
        return ""
    by_agent: dict = {}
    for (obs, agent, _), row in sorted(last.items()):
        by_agent.setdefault((obs, agent), []).append(row)
    lines = [
        "Where the time went (run/loop.py's counters at each seed's last evaluation, mean over seeds): "
        "milliseconds per decision (acting, planning included), per update and per env step of simulation, "
        "then each part's share of the time counted.\n",
        "| obs | agent | seeds | ms / decision | ms / update | ms / env step | "
        + " | ".join(f"{p} share" for p in PARTS)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(PARTS),
    ]
    for (obs, agent), ends in by_agent.items():
        cells = [
            f"{_per(ends, 'decide', 'agent_steps'):.2f}",
            f"{_per(ends, 'update', 'grad_steps'):.1f}",
            f"{_per(ends, 'env', 'env_steps'):.3f}",
        ]
        for part in PARTS:
            share = np.mean([r["time_s"].get(part, 0.0) / max(sum(r["time_s"].values()), 1e-9) for r in ends])
            cells.append(f"{100 * share:.0f}%")
        lines.append(f"| {obs} | {agent} | {len(ends)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _per(rows: list[dict], part: str, count: str) -> float:
    """Milliseconds of ``part`` per unit of the row counter ``count``, mean over rows."""
    return float(np.mean([1000 * r["time_s"].get(part, 0.0) / max(r[count], 1) for r in rows]))
