"""Running a suite's cells on Ray: local Ray by default, an existing cluster with an address.

Every cell's config is built (env and agent) before anything trains, so a bad combination fails at once. A cell
whose rows are in the suite's rows file is skipped; a cell whose run directory exists is resumed from its
checkpoint by ``train(cfg, resume=run_dir)``; the rest start fresh. A cell is one Ray task asking for
``threads`` CPUs (and training with as many torch threads); its output goes to ``<root>/logs/<cell>.log``. Only
the driver writes the rows file, one cell's rows at a time, when the cell has finished.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from worldmodels.analysis.suite import Cell, Suite, protocol_differences
from worldmodels.config import Config, ConfigError, config_to_dict


def finished_cells(suite: Suite) -> set[Cell]:
    """Cells whose final row (at the budget, under the suite's current protocol for their task) is in the rows
    file."""
    if not suite.rows.exists():
        return set()
    finals = set()
    for line in suite.rows.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off by a kill of the driver
        if row.get("env_steps", 0) >= row.get("protocol", {}).get("env_steps", float("inf")):
            finals.add((row.get("task"), row.get("agent"), row.get("seed"), row.get("protocol_id")))
    return {c for c in suite.cells() if (c.task, c.agent, c.seed, suite.protocol_id(c.task)) in finals}


def check_cells(suite: Suite, threads: int) -> dict[Cell, Config]:
    """Every cell's config; each (agent, task)'s env and agent built once; an existing run directory trained under
    other settings is an error. Raises ConfigError before anything trains."""
    from worldmodels.run.loop import check_buildable

    configs = {cell: suite.config(cell, threads) for cell in suite.cells()}
    built = set()
    for cell, cfg in configs.items():
        if (cell.agent, cell.task) not in built:
            try:
                check_buildable(cfg)
            except ConfigError as err:
                raise ConfigError(f"agent '{cell.agent}' on {cell.task}: {err} (nothing was trained)") from None
            built.add((cell.agent, cell.task))
        saved = suite.run_dir(cell) / "config.yaml"
        if saved.exists():
            import yaml

            differ = protocol_differences(yaml.safe_load(saved.read_text()), cfg)
            if differ:
                raise ConfigError(
                    f"{suite.run_dir(cell)} was trained with other settings ({'; '.join(differ)}): move it away, "
                    "or restore the suite file, before running the suite (nothing was trained)"
                )
    return configs


def run_cell(cfg_data: dict, cell: Cell, extra: dict, log: str) -> dict:
    """Train one cell to its budget (fresh, resumed, or not at all when its checkpoint is already there) and return
    its rows. Runs in a Ray worker."""
    import worldmodels  # noqa: F401  (headless rendering before anything imports dm_control)
    from worldmodels.analysis.benchmark import machine_description, provenance, rows_from_run, run_fields
    from worldmodels.config import config_from_dict
    from worldmodels.run.checkpoint import has_checkpoint, load_checkpoint
    from worldmodels.run.loop import train

    cfg = config_from_dict(cfg_data)
    run_dir = Path(cfg.run.root) / cfg.run.name
    start, resumed_from, trained = time.time(), None, True
    fields = {**provenance(), **run_fields(cfg), **extra}  # the code and machine as the cell starts
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        if run_dir.exists():  # started before: from its checkpoint, or from 0 when it stopped before the first
            resumed_from = load_checkpoint(run_dir)["counters"]["env_steps"] if has_checkpoint(run_dir) else 0
        if resumed_from is not None and resumed_from >= cfg.train.env_steps:
            print(f"{run_dir}: already trained to {resumed_from} env steps", flush=True)
            trained = False
        elif resumed_from is not None:
            print(f"resuming {run_dir} from {resumed_from} env steps", flush=True)
            train(cfg, resume=run_dir)
        else:
            train(cfg)
    rows = rows_from_run(run_dir, cell.task, cell.agent, cell.seed, cfg.env.obs, machine_description(), fields)
    return {"rows": rows, "resumed_from": resumed_from, "trained": trained, "seconds": time.time() - start}


def running_progress(suite: Suite, cells: list[Cell], configs: dict[Cell, Config], now: float | None = None) -> str:
    """'<cell> <env steps>/<budget> (~<time> left)' of the cells that are training now (their metrics.jsonl
    written to within the last 10 minutes; the loop logs every train.log_every env steps), for the driver's status
    line. The time left is the budget still to go at the pace of the metrics lines the read window holds."""
    now = time.time() if now is None else now
    parts = []
    for cell in cells:
        metrics = suite.run_dir(cell) / "metrics.jsonl"
        if not metrics.exists() or now - metrics.stat().st_mtime > 600:
            continue
        lines = _last_metrics_lines(metrics)
        if not lines:
            continue
        budget, steps = configs[cell].train.env_steps, lines[-1]["env_steps"]
        text = f"{cell.name} {steps / 1000:.0f}k/{budget / 1000:.0f}k"
        left = _seconds_left(lines, budget)
        parts.append(text if left is None else f"{text} (~{tqdm.format_interval(left)} left)")
    return ", ".join(parts)


def _last_metrics_lines(path: Path) -> list[dict]:
    """The complete lines with env_steps at the end of a metrics file, oldest first (read from its end, 8 KiB: the
    file grows for hours)."""
    with open(path, "rb") as handle:
        handle.seek(max(0, handle.seek(0, os.SEEK_END) - 8192))
        lines = handle.read().decode(errors="replace").splitlines()
    out = []
    for line in lines:
        try:
            row = json.loads(line)
            out.append({"env_steps": int(row["env_steps"]), "wall_s": row.get("wall_s")})
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the read window or still being written
    return out


def _seconds_left(lines: list[dict], budget: int) -> float | None:
    """Seconds to the budget at the pace between the first and last of ``lines`` since the run last (re)started
    (a resumed run's logger clock starts again from 0); None without a pace."""
    restarts = [i for i in range(1, len(lines)) if (lines[i]["wall_s"] or 0) < (lines[i - 1]["wall_s"] or 0)]
    lines = lines[restarts[-1] :] if restarts else lines
    first, last = lines[0], lines[-1]
    if first["wall_s"] is None or last["wall_s"] is None or last["env_steps"] <= first["env_steps"]:
        return None
    pace = (last["wall_s"] - first["wall_s"]) / (last["env_steps"] - first["env_steps"])  # seconds per env step
    return max(0.0, (budget - last["env_steps"]) * pace)


class GridProgress:
    """Cells done / running / left and an ETA, as a tqdm bar on a terminal and a line per finished cell."""

    def __init__(self, total: int, done: int, slots: int):
        self.total, self.done, self.slots, self.failed = total, done, slots, 0
        self.skipped, self.start = done, time.time()
        self.last_line = self.start  # no terminal: when show_running last wrote a line
        self.bar = tqdm(total=total, initial=done, unit="cell", disable=None, file=sys.stderr, dynamic_ncols=True)

    def show_running(self, text: str) -> None:
        """The running cells' env steps (running_progress): on the bar, or without a terminal (a log file) as a
        line every 10 minutes."""
        line = f"{self.status()}; {text}" if text else self.status()
        if not self.bar.disable:
            self.bar.set_postfix_str(line)
        elif time.time() - self.last_line >= 600:
            self.last_line = time.time()
            tqdm.write(f"{time.strftime('%H:%M')} {line}")

    def status(self) -> str:
        left = self.total - self.done - self.failed
        running = min(left, self.slots)
        finished_now = self.done - self.skipped + self.failed
        eta = "unknown"
        if finished_now:
            eta = tqdm.format_interval(left * (time.time() - self.start) / finished_now)
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.done}/{self.total} done{failed}, {running} running, {left - running} waiting; ETA {eta}"

    def finished(self, line: str, ok: bool = True) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.bar.update(1)
        self.bar.set_postfix_str(self.status())
        tqdm.write(f"{line}  [{self.status()}]")

    def close(self) -> None:
        self.bar.close()


def start_ray(address: str | None, num_cpus: int | None) -> int:
    """Connect to the cluster at ``address`` or start a local one with ``num_cpus``; returns the cluster's CPUs."""
    import ray

    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        try:
            ray.init(address=address, **quiet)
        except ConnectionError as err:
            raise ConfigError(
                f"--address {address}: {err}. A cluster started by `ray start --head` uses token authentication "
                "(Ray 2.5x): connect with RAY_AUTH_MODE=token in the environment (`ray status` needs it too)"
            ) from None
    else:
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, **quiet)
    return int(ray.cluster_resources().get("CPU", 0))


def run_suite(
    suite: Suite, threads: int = 1, address: str | None = None, num_cpus: int | None = None, plan: bool = False
) -> int:
    """Run the suite's unfinished cells; 0 when every cell has its rows, 1 when a cell failed."""
    from worldmodels.analysis.benchmark import append_rows

    if threads < 1:
        raise ConfigError(f"--threads-per-cell must be at least 1, got {threads}")
    configs = check_cells(suite, threads)
    done = finished_cells(suite)
    todo = [c for c in suite.cells() if c not in done]
    resume = [c for c in todo if suite.run_dir(c).exists()]
    print(
        f"suite {suite.name}: {_count(configs, 'cell')} ({_count(suite.agents, 'agent')} x "
        f"{_count(suite.tasks, 'task')} x {_count(suite.seeds, 'seed')}): {len(done)} done, {len(resume)} to resume, "
        f"{len(todo) - len(resume)} new; runs in {suite.root}, rows in {suite.rows}",
        flush=True,
    )
    if plan or not todo:
        for cell in todo:
            print(f"  {'resume' if cell in resume else 'new   '} {cell.name}")
        return 0
    import ray

    cpus = start_ray(address, num_cpus)
    if cpus < threads:
        ray.shutdown()
        raise ConfigError(f"the Ray cluster has {cpus} CPUs, fewer than --threads-per-cell {threads}")
    print(f"Ray: {address or 'local'}, {cpus} CPUs, {threads} per cell: {cpus // threads} cells at a time", flush=True)
    remote = ray.remote(max_retries=0)(run_cell)  # a killed cell fails; rerunning the suite resumes it
    pending = {}
    for cell in todo:
        log = str(suite.root / "logs" / f"{cell.name}.log")
        cfg_data = config_to_dict(configs[cell])
        pending[remote.options(num_cpus=threads).remote(cfg_data, cell, suite.row_fields(cell.task), log)] = cell
    progress = GridProgress(len(configs), len(done), cpus // threads)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=60)
            if not ready:  # every minute: how far the running cells are
                progress.show_running(running_progress(suite, list(pending.values()), configs))
                continue
            ref = ready[0]
            cell = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as err:  # a cell's error or its worker's death: the others go on
                detail = str(err).strip().splitlines()[-1][:300] if str(err).strip() else type(err).__name__
                progress.finished(f"FAILED {cell.name}: {detail} (log: {suite.root / 'logs' / cell.name}.log)", False)
                continue
            append_rows(suite.rows, result["rows"])
            last, how = result["rows"][-1], "new"
            if result["resumed_from"] is not None:
                how = f"resumed from {result['resumed_from']:,} env steps"
            if not result["trained"]:
                how = "trained before; rows added"
            progress.finished(
                f"done {cell.name} ({how}, {result['seconds']:.0f} s): return {last['return_mean']:.1f} "
                f"at {last['env_steps']:,} env steps"
            )
    finally:
        progress.close()
        ray.shutdown()
    if progress.failed:
        print(f"{progress.failed} cell(s) failed; rerun the suite to resume them from their checkpoints")
        return 1
    return 0


def _count(items, word: str) -> str:
    return f"{len(items)} {word}{'s' if len(items) != 1 else ''}"
