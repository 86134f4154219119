"""Dyna-Q on the Dyna Maze (Sutton & Barto 2018, Figure 8.2), every run one uninterrupted ``train()`` of the
shared loop with the preset ``configs/dyna_q/dyna_maze.yaml``.

One set of runs (a seed, K planning updates per real step, a model coverage c) serves three experiments:
  (a) steps per episode over the first E episodes for K = 0, 5, 50 (full model), mean over seeds; the lengths come
      from the run's replay files (replay/NNNNNNNN-L.npz holds L observations, L - 1 steps);
  (b) |Q - Q*| against env steps, Q* by value iteration on the maze's transition table: the agent keeps a copy of
      its Q table every ``HISTORY_EVERY`` transitions (agent.q_history_every) and the study reads them from the
      checkpoint once the run has ended, so no run is cut into pieces (a resume starts a new episode, which
      would change the episodes of (a)). RMS over all 184 (free cell, action) pairs, and over the pairs tried so far.
      Each run ends with one greedy episode (the loop's evaluation; ties broken at random): its length is the
      run's ``greedy_steps``;
  (c) partial models: K = 50 with model coverage 1, 0.75, 0.5, 0.25 (the share of (s, a) pairs the model may
      store, drawn per seed).

Every run has the same env-step budget; a run that ends with fewer than E episodes is run again from scratch with
twice the budget (runs are deterministic in their seed, so its first episodes do not change). Rows: one per
episode in ``episodes.jsonl``, one per run in ``q_error.jsonl`` (its curves as lists); a cell whose row is in
``q_error.jsonl`` is skipped when the study runs again.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldmodels.analysis.benchmark import provenance as benchmark_provenance
from worldmodels.analysis.dyna_report import read_jsonl, write_report
from worldmodels.envs.dyna_maze import free_cells, optimal_q

PRESET = Path(__file__).resolve().parents[2] / "configs" / "dyna_q" / "dyna_maze.yaml"
TASK = "gym:worldmodels/DynaMaze-v0"
HISTORY_EVERY = 50


@dataclass(frozen=True)
class Cell:
    planning_steps: int
    coverage: float
    seed: int

    def key(self) -> tuple:
        return (self.planning_steps, self.coverage, self.seed)


def study_cells(seeds, planning=(0, 5, 50), coverages=(1.0, 0.75, 0.5, 0.25), partial_k: int = 50) -> list[Cell]:
    """K in ``planning`` with the full model, then K = ``partial_k`` with each smaller coverage."""
    combos = [(k, 1.0) for k in planning] + [(partial_k, c) for c in coverages if c != 1.0]
    return [Cell(k, c, s) for k, c in combos for s in seeds]


def provenance(cfg) -> dict:
    """What every row carries: benchmark rows' provenance (commit, dirty tree, torch, CPU, host) and the protocol."""
    a = cfg.agent
    protocol = {"alpha": a.alpha, "gamma": a.gamma, "epsilon": a.epsilon, "q_init": 0, "envs": 1}
    protocol["eval"] = "one greedy episode at the end"  # greedy_steps; the episode rows are training episodes
    return {**benchmark_provenance(), "protocol": protocol}


def run_cell(cell: Cell, root: Path, env_steps: int, episodes: int) -> tuple[Path, object]:
    """The finished run of ``cell`` with at least ``episodes`` episodes; (run directory, its config)."""
    from worldmodels.config import load_config
    from worldmodels.replay.episode import episode_files
    from worldmodels.run.checkpoint import has_checkpoint, load_checkpoint
    from worldmodels.run.loop import train

    while True:
        name = f"k{cell.planning_steps}-c{cell.coverage}-s{cell.seed}-{env_steps}"
        overrides = [
            f"agent.planning_steps={cell.planning_steps}",
            f"agent.model_coverage={cell.coverage}",
            f"agent.q_history_every={HISTORY_EVERY}",
            f"train.seed={cell.seed}",
            f"train.env_steps={env_steps}",
            "train.eval_every=0",
            "train.checkpoint_every=0",
            f"train.log_every={env_steps}",
            "train.threads=1",
            "run.progress=false",
            f"run.root={root}",
            f"run.name={name}",
        ]
        cfg = load_config([PRESET], overrides)
        run_dir = root / name
        finished = has_checkpoint(run_dir) and load_checkpoint(run_dir)["counters"]["env_steps"] >= env_steps
        if not finished:
            shutil.rmtree(run_dir, ignore_errors=True)  # a run cut short would start a new episode on resume
            train(cfg)
        if len(episode_files(run_dir / "replay")) >= episodes:
            return run_dir, cfg
        env_steps *= 2


def episode_steps(run_dir: Path) -> list[int]:
    from worldmodels.replay.episode import episode_files

    return [int(path.stem.split("-")[1]) - 1 for path in episode_files(run_dir / "replay")]


def q_error_curves(run_dir: Path, gamma: float, horizon: int) -> dict[str, list]:
    """RMS |Q - Q*| every HISTORY_EVERY env steps up to ``horizon``: over all free pairs and over those tried."""
    from worldmodels.replay.episode import episode_files, load_episode
    from worldmodels.run.checkpoint import load_checkpoint

    agent = load_checkpoint(run_dir)["agent"]
    steps = np.concatenate([[0], agent["q_history_steps"]])  # [M + 1] (transitions = env steps here)
    tables = np.concatenate([np.zeros((1,) + agent["q"].shape), agent["q_history"]])  # [M + 1, S, A]
    keep = steps <= horizon
    steps, tables = steps[keep], tables[keep]
    free = np.broadcast_to(free_cells()[:, None], agent["q"].shape)  # [S, A]
    error = np.abs(tables - optimal_q(gamma))  # [M + 1, S, A]
    pairs = []  # flat (s, a) of every transition, in order: one env, so episode after episode
    for path in episode_files(run_dir / "replay"):
        e = load_episode(path)
        pairs.append(e["state"][:-1].argmax(-1) * agent["q"].shape[1] + e["action"][1:])
    pairs = np.concatenate(pairs)
    first_try = np.full(free.size, np.iinfo(np.int64).max)
    np.minimum.at(first_try, pairs, np.arange(1, len(pairs) + 1))  # env step at which each pair was first tried
    tried = first_try.reshape(free.shape)[None] <= steps[:, None, None]  # [M + 1, S, A]
    rms_all = np.sqrt((error**2 * free).sum((1, 2)) / free.sum())
    counts = (tried & free).sum((1, 2))
    rms_tried = np.sqrt((error**2 * tried * free).sum((1, 2)) / np.maximum(counts, 1))
    return {
        "env_steps": steps.tolist(),
        "q_rms_error": np.round(rms_all, 4).tolist(),
        "q_rms_error_tried": [round(float(e), 4) if n else None for e, n in zip(rms_tried, counts, strict=True)],
    }


def cell_rows(cell: Cell, run_dir: Path, cfg, episodes: int, horizon: int, base: dict) -> tuple[list, dict]:
    from worldmodels.run.checkpoint import load_checkpoint

    ids = {"agent": "dyna_q", "task": TASK, "seed": cell.seed, "K": cell.planning_steps, "coverage": cell.coverage}
    lengths = episode_steps(run_dir)[:episodes]
    rows = [{**ids, "episode": i + 1, "steps": n, **base} for i, n in enumerate(lengths)]
    counters = load_checkpoint(run_dir)["counters"]
    curves = q_error_curves(run_dir, cfg.agent.gamma, horizon)
    greedy = json.loads((run_dir / "evals.jsonl").read_text().splitlines()[-1])["lengths"][0]
    q_row = {**ids, **curves, "greedy_steps": greedy, "run_env_steps": counters["env_steps"], **base}
    q_row["wall_s"] = round(counters["wall_s"], 2)
    return rows, q_row


def append_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "a") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def run_study(cells: list[Cell], out: Path, root: Path, episodes: int = 50, env_steps: int = 10_000) -> str:
    """Run every cell not yet in ``out/q_error.jsonl``, append its rows, then write the table and the plots."""
    out.mkdir(parents=True, exist_ok=True)
    episodes_path, q_path = out / "episodes.jsonl", out / "q_error.jsonl"
    done = {(r["K"], r["coverage"], r["seed"]) for r in read_jsonl(q_path)}
    kept = [r for r in read_jsonl(episodes_path) if (r["K"], r["coverage"], r["seed"]) in done]
    if episodes_path.exists():  # a cell whose q row was never written has its episode rows written again
        episodes_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    start, base = time.time(), None
    for i, cell in enumerate(c for c in cells if c.key() not in done):
        began = time.time()
        run_dir, cfg = run_cell(cell, root, env_steps, episodes)
        base = base or provenance(cfg)
        rows, q_row = cell_rows(cell, run_dir, cfg, episodes, env_steps, base)
        append_jsonl(episodes_path, rows)
        append_jsonl(q_path, [q_row])
        print(
            f"[{i + 1}] K={cell.planning_steps} coverage={cell.coverage} seed={cell.seed}: "
            f"episodes 1-5 {[r['steps'] for r in rows[:5]]}, {time.time() - began:.1f} s",
            flush=True,
        )
    print(f"study: {time.time() - start:.0f} s for the cells run now", flush=True)
    return write_report(out)
