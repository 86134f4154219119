"""Benchmark grids through the one training loop, and results files -> markdown table + PNG curves."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from worldmodels.analysis.benchmark import append_rows
from worldmodels.analysis.speed_rows import collection_row, speed_row
from worldmodels.cli.errors import UsageError, run_command

EPILOG = """examples:
  # 3 seeds of SAC on Pendulum, 20k env steps each; rows appended to results/results.jsonl (git-ignored;
  # --results benchmarks/results.jsonl adds them to the committed rows)
  python scripts/benchmark.py run --config configs/sac/pendulum.yaml --agents sac \\
      --tasks gym:Pendulum-v1 --seeds 0 1 2 --env-steps 20000
  # a suite file (tasks x agents x seeds, one protocol per task) on local Ray, 1 thread a cell; rerun to resume
  python scripts/benchmark.py suite configs/suites/smoke.yaml --threads-per-cell 1
  # results -> benchmarks/table.md and benchmarks/curves/*.png
  python scripts/benchmark.py report benchmarks/results.jsonl --out benchmarks
  # env steps/s of collection with 1 and 2 envs (random actions, no learning)
  python scripts/benchmark.py collect --task dmc:cartpole-swingup --obs pixels --action-repeat 2 --envs 1 2
  # a MuZero run's reward and value predictions against its newest 10 replay episodes
  python scripts/benchmark.py muzero-fit checkpoints/<run> --episodes 10
  # tabular Dyna-Q on the Dyna Maze: K = 0, 5, 50 and partial models, 30 seeds -> benchmarks/dyna/
  python scripts/benchmark.py dyna --seeds $(seq 0 29)

Dotted overrides (train.threads=1 ...) go before the options, since --seeds takes a list.
"""


LABEL_HELP = (
    "names the comparison the row belongs to: the report gives the ratio of an anchor's rows to ours with the same "
    "label, precision, machine setting and commit (e.g. dreamer-S-16x64 for sheeprl's script and ours at "
    "DreamerV3's S size)"
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmark",
        description="Run agent x task x seed grids and report them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train every (agent, task, seed) and append result rows")
    run.add_argument("overrides", nargs="*", help="dotted config overrides applied to every run")
    run.add_argument("--config", action="append", default=[], help="YAML preset(s) for every run")
    run.add_argument("--agents", nargs="+", required=True, help="agent names, e.g. sac")
    run.add_argument("--tasks", nargs="+", required=True, help="env specs, e.g. gym:Pendulum-v1 dmc:cartpole-swingup")
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default 0 1 2)")
    run.add_argument("--env-steps", type=int, help="env-step budget per run (default: the config's)")
    run.add_argument(
        "--results",
        type=Path,
        default=Path("results/results.jsonl"),
        help="JSONL file rows are appended to (default: results/results.jsonl, git-ignored)",
    )
    run.add_argument(
        "--root",
        default="checkpoints/benchmark",
        help="where the runs' directories go (default: checkpoints/benchmark)",
    )
    collect = sub.add_parser("collect", help="measure collection throughput (env steps/s) for several env counts")
    collect.add_argument("--results", type=Path, help="append the figure as a row (with provenance) to this JSONL")
    collect.add_argument("--task", default="dmc:cartpole-swingup")
    collect.add_argument("--obs", default="pixels", choices=["pixels", "state", "both"])
    collect.add_argument("--size", type=int, default=64)
    collect.add_argument("--action-repeat", type=int, default=2)
    collect.add_argument("--envs", nargs="+", type=int, default=[1, 2], help="env counts to compare")
    collect.add_argument("--env-steps", type=int, default=4000, help="env steps timed per setting")
    collect.add_argument("--fast-render", action="store_true", help="dm_control: no shadows/reflections/anti-aliasing")
    speed = sub.add_parser("speed", help="seconds per training update of a configured agent (synthetic batch)")
    speed.add_argument("--results", type=Path, help="append the figure as a row (with provenance) to this JSONL")
    speed.add_argument("--label", default="", help=LABEL_HELP)
    speed.add_argument("overrides", nargs="*", help="dotted config overrides")
    speed.add_argument("--config", action="append", default=[], help="YAML preset(s)")
    speed.add_argument("--repeats", type=int, default=5, help="timed updates (median reported)")
    act = sub.add_parser(
        "act-speed", help="seconds per decision of a configured agent (planning cost: PETS, MuZero, TD-MPC)"
    )
    act.add_argument("--results", type=Path, help="append the figure as a row (with provenance) to this JSONL")
    act.add_argument("--label", default="", help=LABEL_HELP)
    act.add_argument("overrides", nargs="*", help="dotted config overrides")
    act.add_argument("--config", action="append", default=[], help="YAML preset(s)")
    act.add_argument("--repeats", type=int, default=5, help="timed decisions (median reported)")
    act.add_argument("--batch", type=int, default=1, help="envs deciding at once (MuZero: roots searched together)")
    merr = sub.add_parser(
        "model-error",
        help="k-step error of trained runs' models and a linear-Gaussian model on the same held-out episodes",
        description="Load each run's latest checkpoint, collect random-action episodes on the runs' shared task "
        "and action repeat, and measure every model's open-loop reward error (and state error, for state models) "
        "after k = 1..H steps, with the fitted eps, L and the bound eps (L^H - 1) / (L - 1). Agents with a value "
        "function (Dreamer, TD-MPC, MuZero, MBPO, mbac) are also scored on episodes of their own greedy policy: "
        "their value of the real and of the predicted states against the realised discounted return. Writes "
        "<out>/model_error-<task>.md, .png and appends rows to .jsonl (<task> with : and / as _, e.g. "
        "model_error-dmc_cartpole-swingup.md).",
    )
    merr.add_argument("runs", nargs="*", type=Path, help="run directories, e.g. results/suites/state/pets-...-s0")
    merr.add_argument(
        "--task", help="the task when no run is given (the compounding-error study), e.g. dmc:cartpole-swingup"
    )
    merr.add_argument("--action-repeat", type=int, default=1, help="with --task: its action repeat")
    merr.add_argument(
        "--fresh-ensemble", action="store_true", help="also fit a PETS-style ensemble (5 x 200x3) on the linear "
        "model's random episodes and measure it",
    )  # fmt: skip
    merr.add_argument("--episodes", type=int, default=5, help="held-out random-action episodes")
    merr.add_argument("--train-episodes", type=int, default=20, help="random episodes the linear model is fitted on")
    merr.add_argument("--horizon", type=int, default=15, help="open-loop steps H (decisions)")
    merr.add_argument("--seed", type=int, default=1000, help="seed of the held-out episodes")
    merr.add_argument(
        "--out", type=Path, default=Path("benchmarks/model_error"), help="folder (default: benchmarks/model_error)"
    )
    merr.add_argument(
        "--value-episodes", type=int, default=2, help="episodes of each agent's own greedy policy its values are "
        "scored on (0: no value error)",
    )  # fmt: skip
    merr.add_argument("--value-starts", type=int, default=200, help="scored starts per value episode")
    merr.add_argument(
        "--value-tol", type=float, default=0.01, help="the weight the discounted return past a value episode may "
        "have: the episodes run that much longer than the scored starts",
    )  # fmt: skip
    fit = sub.add_parser("muzero-fit", help="a MuZero run's reward and value predictions vs its replayed episodes")
    fit.add_argument("run_dir", type=Path, help="a MuZero run directory, e.g. checkpoints/<run>")
    fit.add_argument("--episodes", type=int, default=10, help="the newest N replay episodes are scored")
    dyna = sub.add_parser(
        "dyna",
        help="tabular Dyna-Q on the Dyna Maze (Sutton & Barto Fig. 8.2): steps per episode and Q error for K "
        "planning steps, and partial models",
        description="Run Dyna-Q (configs/dyna_q/dyna_maze.yaml) through the training loop for every K in --planning "
        "with the full model and for K = --partial-k with each --coverages share of the model, one run per seed; "
        "append one row per episode (episodes.jsonl) and one per run (q_error.jsonl: RMS |Q - Q*| every 50 env "
        "steps) to --out, then write table.md, steps_per_episode.png, q_error.png and partial_model.png there. "
        "Cells whose rows exist are skipped, so an interrupted study resumes.",
    )
    dyna.add_argument("--seeds", nargs="+", type=int, default=list(range(30)), help="seeds (default 0..29)")
    dyna.add_argument("--planning", nargs="+", type=int, default=[0, 5, 50], help="K values with the full model")
    dyna.add_argument("--coverages", nargs="+", type=float, default=[1.0, 0.75, 0.5, 0.25], help="model coverages")
    dyna.add_argument("--partial-k", type=int, default=50, help="K of the partial-model runs (default 50)")
    dyna.add_argument("--episodes", type=int, default=50, help="episodes per run kept in the rows (default 50)")
    dyna.add_argument(
        "--env-steps", type=int, default=10_000, help="env steps per run; doubled for a run short of --episodes"
    )
    dyna.add_argument("--out", type=Path, default=Path("benchmarks/dyna"), help="rows, table and plots")
    dyna.add_argument("--root", type=Path, default=Path("results/dyna"), help="run directories (git-ignored)")
    dyna.add_argument("--report-only", action="store_true", help="only remake table.md and the PNGs from the rows")
    suite = sub.add_parser(
        "suite",
        help="run a suite file's cells (tasks x agents x seeds, one protocol per task) on Ray",
        description="Build every cell's config, then train the cells that have no rows yet as Ray tasks (local Ray "
        "unless --address names a cluster) and append their rows, with provenance, to the suite's rows file. A cell "
        "is a run directory <root>/<agent>-<task>-s<seed>: one with rows is skipped, one without rows but with a "
        "run directory is resumed from its checkpoint, so a rerun continues an interrupted suite.",
    )
    suite.add_argument("suite", type=Path, help="suite file, e.g. configs/suites/smoke.yaml")
    suite.add_argument("--threads-per-cell", type=int, default=1, help="CPUs per cell and its train.threads")
    suite.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    suite.add_argument("--address", help="an existing Ray cluster (e.g. 127.0.0.1:6379 after `ray start --head`)")
    suite.add_argument("--root", type=Path, help="folder of the cells' run directories (default: the suite's)")
    suite.add_argument("--rows", type=Path, help="rows file (default: the suite's, or <root>/rows.jsonl)")
    suite.add_argument("--plan", action="store_true", help="check every cell's config and list the cells to run")
    suite.add_argument("--agents", nargs="+", help="run only these agent labels' cells (default: all)")
    suite.add_argument("--tasks", nargs="+", help="run only these tasks' cells (default: all)")
    suite.add_argument("--seeds", nargs="+", type=int, help="run only these seeds' cells (default: all)")
    report = sub.add_parser(
        "report",
        help="results files -> markdown table and learning-curve PNGs",
        description="Learning rows become per-task tables (returns with 95% intervals, env steps to a target, "
        "sample-efficiency ratios, failure modes, cost split) and curves; speed rows (speed, act-speed and "
        "collect --results) become speed tables.",
    )
    report.add_argument("results", nargs="+", type=Path)
    report.add_argument("--out", type=Path, default=Path("benchmarks"), help="folder for table.md and curves/")
    report.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="TASK=RETURN",
        help="count env steps to this return on TASK (repeatable; default: the target suite rows carry)",
    )
    report.add_argument("--baseline", default="sac", help="agent the sample-efficiency ratio is taken against")
    return p


def run_grid(args) -> int:
    from worldmodels.analysis.benchmark import append_rows, machine_description, provenance, rows_from_run, run_fields
    from worldmodels.config import ConfigError, load_config
    from worldmodels.run.loop import check_buildable, train

    def cell_config(agent: str, task: str, seed: int):
        overrides = [f"agent.name={agent}", f"env.spec={task}", f"train.seed={seed}", f"run.root={args.root}"]
        overrides += args.overrides
        if args.env_steps is not None:
            overrides.append(f"train.env_steps={args.env_steps}")
        return load_config(args.config, overrides)

    for agent, task in itertools.product(args.agents, args.tasks):  # every cell's config, before any trains
        try:
            check_buildable(cell_config(agent, task, args.seeds[0]))
        except ConfigError as err:
            raise ConfigError(f"{agent} on {task}: {err} (nothing was trained)") from err
    machine = machine_description()
    for agent, task, seed in itertools.product(args.agents, args.tasks, args.seeds):
        cfg = cell_config(agent, task, seed)
        print(f"== {agent} on {task}, seed {seed}, {cfg.train.env_steps:,} env steps", flush=True)
        code = provenance()  # the commit the run starts from (HEAD may move while it trains)
        run_dir = train(cfg)
        rows = rows_from_run(run_dir, task, agent, seed, cfg.env.obs, machine, {**code, **run_fields(cfg)})
        append_rows(args.results, rows)
        print(
            f"   final eval return {rows[-1]['return_mean']:.1f} at {rows[-1]['env_steps']:,} env steps "
            f"-> {args.results}",
            flush=True,
        )
    return 0


def suite_command(args) -> int:
    from worldmodels.analysis.suite import load_suite
    from worldmodels.analysis.suite_runner import run_suite

    suite = load_suite(args.suite, root=args.root, rows=args.rows).select(args.agents, args.tasks, args.seeds)
    return run_suite(suite, args.threads_per_cell, args.address, args.num_cpus, plan=args.plan)


def collect(args) -> int:
    from worldmodels.analysis.throughput import collection_throughput

    print(
        f"{args.task} {args.obs} {args.size}x{args.size}, action repeat {args.action_repeat}, "
        f"fast_render={args.fast_render}"
    )
    base = None
    for n in args.envs:
        rate = collection_throughput(
            args.task,
            n,
            args.env_steps,
            obs=args.obs,
            size=args.size,
            action_repeat=args.action_repeat,
            fast_render=args.fast_render,
        )
        base = base or rate
        print(f"  {n} env(s): {rate:8.1f} env steps/s  ({rate / base:.2f}x)", flush=True)
        if args.results:
            setting = f"size {args.size}, action repeat {args.action_repeat}, fast_render {args.fast_render}"
            append_rows(args.results, [collection_row(args.task, args.obs, setting, n, rate)])
    return 0


def speed(args) -> int:
    from worldmodels.analysis.update_speed import update_seconds
    from worldmodels.config import load_config

    cfg = load_config(args.config, args.overrides)
    result = update_seconds(cfg, repeats=args.repeats)
    print(
        f"{cfg.agent.name}: {result['median_s']:.3f} s per update "
        f"(median of {args.repeats}, min {result['min_s']:.3f}), "
        f"{result['parameters'] / 1e6:.2f}M parameters (slow copies included), {result['threads']} threads"
    )
    if args.results:
        append_rows(args.results, [speed_row("update", cfg, result, setting_words(args)) | {"label": args.label}])
    return 0


def act_speed(args) -> int:
    from worldmodels.analysis.update_speed import act_seconds
    from worldmodels.config import load_config

    cfg = load_config(args.config, args.overrides)
    result = act_seconds(cfg, repeats=args.repeats, batch=args.batch)
    print(
        f"{cfg.agent.name}: {1000 * result['median_s']:.1f} ms per decision for {args.batch} env(s) "
        f"(median of {args.repeats}, min {1000 * result['min_s']:.1f}), {result['threads']} threads"
    )
    if hasattr(cfg.agent, "simulations"):  # tree search: the rate the search-speed targets are stated in
        rate = args.batch * cfg.agent.simulations / result["median_s"]
        print(f"{cfg.agent.name}: {rate:,.0f} simulations/s ({cfg.agent.simulations} simulations x {args.batch} roots)")
    if args.results:
        row = speed_row("decision", cfg, result, setting_words(args)) | {"batch": args.batch, "label": args.label}
        append_rows(args.results, [row])
    return 0


def setting_words(args) -> str:
    """The presets and overrides a timing ran with, as typed: the row's setting."""
    return " ".join([*(f"--config {c}" for c in args.config), *args.overrides])


def model_error(args) -> int:
    from worldmodels.analysis.model_error import run_model_error

    if not args.runs and not args.task:
        raise UsageError("model-error: give run directories, or --task (and --action-repeat) to measure fresh models")
    try:
        table, _ = run_model_error(
            args.runs, args.episodes, args.train_episodes, args.horizon, args.seed, args.out,
            args.value_episodes, args.value_starts, args.value_tol,
            (args.task, args.action_repeat) if args.task else None, args.fresh_ensemble,
        )  # fmt: skip
    except ValueError as err:
        raise UsageError(str(err)) from err
    print(table)
    return 0


def muzero_fit(args) -> int:
    from worldmodels.analysis.muzero_fit import prediction_fit
    from worldmodels.config import ConfigError
    from worldmodels.replay.episode import episode_files, load_episode
    from worldmodels.run.loop import load_agent

    agent, cfg = load_agent(args.run_dir)
    if cfg.agent.name != "muzero":
        raise ConfigError(f"{args.run_dir} holds a '{cfg.agent.name}' run; muzero-fit reads MuZero runs")
    files = episode_files(args.run_dir / "replay")[-args.episodes :]
    if not files:
        raise FileNotFoundError(f"{args.run_dir / 'replay'} holds no episodes")
    try:
        fit = prediction_fit(agent, [load_episode(f) for f in files])
    except ValueError as err:  # too few steps to score
        raise UsageError(str(err)) from err
    print(f"{args.run_dir}, newest {len(files)} episodes: {fit}")
    return 0


def dyna(args) -> int:
    from worldmodels.analysis.dyna_report import write_report
    from worldmodels.analysis.dyna_study import run_study, study_cells

    if args.report_only:
        print(write_report(args.out))
        return 0
    cells = study_cells(args.seeds, args.planning, args.coverages, args.partial_k)
    print(run_study(cells, args.out, args.root, args.episodes, args.env_steps))
    return 0


def report(args) -> int:
    from worldmodels.analysis.benchmark import plot_curves, read_rows, table
    from worldmodels.analysis.speed_rows import is_speed_row, speed_table

    rows = read_rows(args.results)
    learning = [r for r in rows if not is_speed_row(r)]
    speeds = [r for r in rows if is_speed_row(r)]
    try:
        markdown = table(learning, parse_targets(args.target), args.baseline)
    except ValueError as err:  # rows that state different target returns
        raise UsageError(str(err)) from err
    if speeds:
        markdown += ("\n" if markdown else "") + "## Speed\n\n" + speed_table(speeds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(markdown)
    pngs = plot_curves(learning, args.out / "curves")
    print(markdown)
    print("\n".join(f"wrote {p}" for p in [args.out / "table.md", *pngs]))
    return 0


def parse_targets(items: list[str]) -> dict[str, float]:
    """['gym:Pendulum-v1=-200'] -> {'gym:Pendulum-v1': -200.0} (tasks contain ':', so split at the last '=')."""
    targets = {}
    for item in items:
        task, _, value = item.rpartition("=")
        try:
            targets[task] = float(value)
        except ValueError:
            task = ""
        if not task:
            raise UsageError(f"--target {item!r}: expected TASK=RETURN, e.g. --target gym:Pendulum-v1=-200")
    return targets


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {
        "run": run_grid,
        "suite": suite_command,
        "report": report,
        "collect": collect,
        "speed": speed,
        "act-speed": act_speed,
        "model-error": model_error,
        "muzero-fit": muzero_fit,
        "dyna": dyna,
    }
    return run_command(lambda: commands[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
