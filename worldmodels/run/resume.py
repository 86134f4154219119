"""Bringing a run directory's row files in line with the checkpoint a resume restores.

A run killed after an evaluation but before the next checkpoint has rows in evals.jsonl (and metrics.jsonl) for
env steps the resumed run will train again. They are moved to ``<name>.orphaned.jsonl`` (kept, not lost), so
that each evaluation step appears once.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _rows(path: Path) -> list[tuple[str, dict]]:
    """The file's complete JSON lines with their rows (a line cut off by a kill is dropped)."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append((line, json.loads(line)))
        except json.JSONDecodeError:
            continue
    return rows


def move_rows_past(path: Path, env_steps: int) -> int:
    """Move the rows of ``path`` whose env_steps exceed ``env_steps`` to <name>.orphaned.jsonl; return how many."""
    if not path.exists():
        return 0
    keep, late = [], []
    for line, row in _rows(path):
        (late if row.get("env_steps", 0) > env_steps else keep).append(line)
    if late:
        with open(path.with_suffix(".orphaned.jsonl"), "a") as handle:
            handle.write("\n".join(late) + "\n")
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)
    return len(late)


def last_eval(path: Path) -> tuple[int, float]:
    """(env_steps, mean return) of the newest row of an evals.jsonl, or (-1, NaN) when there is none.

    A resumed run uses the step to skip re-evaluating a step it has a row for (a finished run resumed again)."""
    rows = _rows(path) if path.exists() else []
    return (int(rows[-1][1]["env_steps"]), float(rows[-1][1]["mean"])) if rows else (-1, math.nan)
