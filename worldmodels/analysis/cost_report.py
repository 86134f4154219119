"""The report's cost section: where each agent's time went, from the eval rows' ``time_s`` and ``time_n`` (run/loop.py's
counters: seconds and counts of warmup, decide, env, update:<stream>, model_check and eval, summed over the run).

Per agent, at each seed's last row, mean over seeds: milliseconds per decision (agent.act: planning for PETS,
MPPI for TD-MPC, a forward pass for SAC and Dreamer; random warm-up actions are apart), per update of each batch
stream (a model refit and a policy step are different things), per env step of simulation and rendering, and the
share of the time each part took. Rows from one suite run share a machine and its load, so their ratios are the
side-by-side comparison.
"""

from __future__ import annotations

import numpy as np

SHARES = ("decide", "update", "env", "model_check", "eval")


def cost_table(rows: list[dict]) -> str:
    """Markdown, or '' when no row carries ``time_n`` (rows from before the counts were kept)."""
    last: dict = {}
    for row in rows:
        if not row.get("time_n"):
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
        "Where the time went (run/loop.py's timers at each seed's last evaluation, mean over seeds): milliseconds "
        "per decision (acting, planning included), per update of each batch stream and per env step of "
        "simulation, then each part's share of the time counted.\n",
        "| obs | agent | seeds | ms / decision | ms / update | ms / env step | "
        + " | ".join(f"{p} share" for p in SHARES)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(SHARES),
    ]
    for (obs, agent), ends in by_agent.items():
        streams = sorted({p for r in ends for p in r["time_n"] if p.startswith("update:")})
        updates = ", ".join(f"{p.split(':', 1)[1]} {_per(ends, p):.1f}" for p in streams)
        cells = [f"{_per(ends, 'decide'):.2f}", updates or "-", f"{_per(ends, 'env'):.3f}"]
        for part in SHARES:
            share = np.mean([_seconds(r, part) / max(sum(r["time_s"].values()), 1e-9) for r in ends])
            cells.append(f"{100 * share:.0f}%")
        lines.append(f"| {obs} | {agent} | {len(ends)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _seconds(row: dict, part: str) -> float:
    """Seconds of a part; 'update' sums every stream's."""
    if part == "update":
        return sum(s for p, s in row["time_s"].items() if p.startswith("update:"))
    return row["time_s"].get(part, 0.0)


def _per(rows: list[dict], part: str) -> float:
    """Milliseconds per counted unit of ``part``, mean over rows (NaN where the part never ran)."""
    values = [1000 * r["time_s"][part] / r["time_n"][part] for r in rows if r["time_n"].get(part)]
    return float(np.mean(values)) if values else float("nan")
