"""Benchmark suites: the suite file's checks, the protocol applied to every agent, the smoke suite end to end on
local Ray (a half-trained cell resumed, finished cells skipped), and the report's refusal to compare rows of
different protocols."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from worldmodels.analysis.benchmark import comparisons, plot_curves, read_rows, table
from worldmodels.analysis.suite import Cell, load_suite
from worldmodels.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "suites" / "smoke.yaml"
TASK = "gym:Pendulum-v1"

IN_GIT = (ROOT / ".git").exists()  # a source tree outside git (an export) has no commit to record


def write_suite(tmp_path: Path, **changes) -> Path:
    """The smoke suite with its presets as absolute paths and ``changes`` merged in (None deletes a key)."""
    data = yaml.safe_load(SMOKE.read_text())
    for entry in data["agents"].values():
        entry["config"] = str((SMOKE.parent / entry["config"]).resolve())
    for dotted, value in changes.items():
        *parents, last = dotted.split("/")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def suite_error(tmp_path: Path, **changes) -> str:
    with pytest.raises(ConfigError) as err:
        load_suite(write_suite(tmp_path, **changes), root=tmp_path / "runs")
    return str(err.value)


# -- the suite file --------------------------------------------------------------------------------------------


def test_protocol_is_applied_to_every_agent_over_its_preset(tmp_path):
    suite = load_suite(SMOKE, root=tmp_path)
    assert [c.name for c in suite.cells()][:2] == ["sac-gym-Pendulum-v1-s0", "pets-gym-Pendulum-v1-s0"]  # seed-major
    pets = suite.config(Cell(TASK, "pets", 1), threads=1)
    # configs/pets/pendulum.yaml says 3000 env steps and 3 eval episodes; the suite's protocol wins
    assert (pets.train.env_steps, pets.train.eval_episodes, pets.train.eval_every) == (400, 2, 200)
    assert (pets.env.time_limit, pets.env.action_repeat, pets.env.fast_render) == (50, 1, False)
    assert (pets.env.spec, pets.train.seed, pets.train.threads, pets.agent.population) == (TASK, 1, 1, 20)
    assert Path(pets.run.root) / pets.run.name == tmp_path / "pets-gym-Pendulum-v1-s1"
    assert suite.rows == tmp_path / "rows.jsonl"
    assert suite.protocol_id(TASK) == load_suite(SMOKE, root=tmp_path / "elsewhere").protocol_id(TASK)


def test_a_selection_runs_some_cells_of_the_same_suite_and_rejects_names_it_does_not_have(tmp_path):
    suite = load_suite(SMOKE, root=tmp_path)
    picked = suite.select(agents=["pets"], seeds=[1])
    assert [c.name for c in picked.cells()] == ["pets-gym-Pendulum-v1-s1"]
    assert (picked.rows, picked.root, picked.protocol_id(TASK)) == (suite.rows, suite.root, suite.protocol_id(TASK))
    assert suite.select().cells() == suite.cells()
    with pytest.raises(ConfigError, match="--agents dreamer: not in smoke.yaml .its agents: sac, pets"):
        suite.select(agents=["dreamer"])
    with pytest.raises(ConfigError, match="--seeds 7: not in smoke.yaml"):
        suite.select(seeds=[7])


def test_a_pairing_may_change_action_repeat_and_observation_kind_on_its_task_only(tmp_path):
    path = write_suite(
        tmp_path,
        **{"agents/sac/tasks": {TASK: {"action_repeat": 2, "obs": "both", "overrides": ["agent.batch_size=16"]}}},
        **{"agents/pets/tasks": {TASK: {"config": str(ROOT / "configs" / "pets" / "inverted_pendulum.yaml")}}},
    )
    suite = load_suite(path, root=tmp_path / "runs")
    assert suite.presets(Cell(TASK, "pets", 0)) == [ROOT / "configs" / "pets" / "inverted_pendulum.yaml"]
    assert suite.presets(Cell(TASK, "sac", 0)) == [ROOT / "configs" / "sac" / "pendulum.yaml"]
    sac, pets = suite.config(Cell(TASK, "sac", 0)), suite.config(Cell(TASK, "pets", 0))
    assert (sac.env.action_repeat, sac.env.obs, sac.agent.batch_size) == (2, "both", 16)
    assert (pets.env.action_repeat, pets.env.obs) == (1, "state")
    assert suite.protocol(TASK)["action_repeat"] == 1  # rows keep the task's protocol; their action_repeat says 2


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"tasks/gym:Pendulum-v1/eval_episode": 3},
            "Unknown config key 'tasks.gym:Pendulum-v1.eval_episode'. Did you mean 'eval_episodes'?",
        ),
        ({"tasks/gym:Pendulum-v1/env_steps": None}, "tasks.gym:Pendulum-v1.env_steps: missing"),
        ({"tasks/gym:Pendulum-v1/eval_episodes": "two"}, "tasks.gym:Pendulum-v1.eval_episodes: expected int"),
        ({"tasks/gym:Pendulum-v1/env_steps": 0}, "tasks.gym:Pendulum-v1.env_steps: must be at least 1"),
        ({"seed": [0]}, "Unknown config key 'seed'. Did you mean 'seeds'?"),
        ({"seeds": [0, 0]}, "seeds: expected a list of distinct integers"),
        ({"agents/sac/overides": {}}, "Unknown config key 'agents.sac.overides'. Did you mean 'overrides'?"),
        (
            {"agents/sac/overrides/env.action_repeat": 2},
            "agents.sac.overrides: 'env.action_repeat' is the task's protocol",
        ),
        ({"agents/pets/overrides/train.eval_episodes": 5}, "set by tasks.<task>.eval_episodes for every agent"),
        ({"agents/sac/overrides/run.name": "x"}, "'run.name' is set by the suite runner"),
        ({"agents/sac/overrides/env.obs": "pixels"}, "set the observation kind with 'obs:'"),
        ({"agents/sac/obs": "rgb"}, "agents.sac.obs: expected 'pixels', 'state' or 'both'"),
        (
            {"agents/sac/tasks": {"gym:Pendulum-v2": {"action_repeat": 2}}},
            "'gym:Pendulum-v2' is not one of the suite's tasks. Did you mean 'gym:Pendulum-v1'?",
        ),
        ({"agents/sac/tasks": {TASK: {"action_repet": 2}}}, "Did you mean 'action_repeat'?"),
        ({"agents/sac bad": {"config": "x.yaml"}}, "a label names run directories"),
    ],
)
def test_suite_file_errors_name_the_bad_key(tmp_path, changes, message):
    error = suite_error(tmp_path, **changes)
    assert message in error and "suite.yaml" in error


def test_a_cell_whose_overrides_do_not_fit_names_agent_and_task(tmp_path):
    suite = load_suite(write_suite(tmp_path, **{"agents/sac/overrides/agent.hiden": [8]}), root=tmp_path / "runs")
    with pytest.raises(ConfigError, match=r"agent 'sac' on gym:Pendulum-v1: .*Did you mean 'hidden'"):
        suite.config(Cell(TASK, "sac", 0))


def test_a_run_directory_of_other_settings_stops_the_suite_before_training(tmp_path):
    from worldmodels.analysis.suite_runner import check_cells
    from worldmodels.config import config_to_dict

    suite = load_suite(SMOKE, root=tmp_path)
    cfg = config_to_dict(suite.config(Cell(TASK, "pets", 0)))
    cfg["train"]["eval_episodes"] = 5
    (tmp_path / "pets-gym-Pendulum-v1-s0").mkdir()
    (tmp_path / "pets-gym-Pendulum-v1-s0" / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"trained with other settings \(train.eval_episodes 5 vs 2\)"):
        check_cells(suite, threads=1)
    cfg["train"]["eval_episodes"] = 2  # the protocol agrees; a planner setting does not (smoke: horizon 3)
    cfg["agent"]["horizon"] = 12
    cfg["agent"].pop("rollout_rows")  # a field added to the code after the run started keeps its default
    (tmp_path / "pets-gym-Pendulum-v1-s0" / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"trained with other settings \(agent.horizon 12 vs 3\)"):
        check_cells(suite, threads=1)


# -- the smoke suite on local Ray ------------------------------------------------------------------------------


def run_suite_script(root: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "suite", str(SMOKE), "--root", str(root)]
    cmd += ["--num-cpus", "2", "--threads-per-cell", "1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=400)


def test_smoke_suite_runs_on_ray_resumes_a_started_cell_and_skips_finished_ones(tmp_path):
    from worldmodels.run.loop import train

    suite = load_suite(SMOKE, root=tmp_path)
    started = suite.config(Cell(TASK, "sac", 0))
    started.train.env_steps = 200  # a cell stopped half-way: checkpoint and eval rows at 200, no suite rows
    train(started)
    train(suite.config(Cell(TASK, "pets", 1)))  # a cell trained to its budget whose rows never reached the file

    first = run_suite_script(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "0 done, 2 to resume, 2 new" in first.stdout
    assert re.search(r"done sac-gym-Pendulum-v1-s0 \(resumed from 200 env steps", first.stdout), first.stdout
    assert "done pets-gym-Pendulum-v1-s1 (trained before; rows added" in first.stdout
    assert len(re.findall(r"^done ", first.stdout, re.M)) == 4 and "4/4 done" in first.stdout
    resumed = [json.loads(line) for line in (tmp_path / "sac-gym-Pendulum-v1-s0" / "evals.jsonl").open()]
    assert [r["env_steps"] for r in resumed] == [200, 400]

    rows = read_rows([tmp_path / "rows.jsonl"])
    assert sorted((r["agent"], r["seed"], r["env_steps"]) for r in rows) == sorted(
        (a, s, e) for a in ("sac", "pets") for s in (0, 1) for e in (200, 400)
    )
    for row in rows:
        if IN_GIT:  # an exported tree records "unknown"
            assert re.fullmatch(r"[0-9a-f]{40}", row["commit"]) and isinstance(row["dirty"], bool)
        assert (row["torch"], row["threads"], row["device"], row["obs"]) == (torch.__version__, 1, "cpu", "state")
        assert row["cpu"] and row["cpu"] != "unknown" and row["suite"] == "smoke"
        assert (row["action_repeat"], row["fast_render"], row["time_limit"], row["eval_episodes"]) == (1, False, 50, 2)
        assert len(row["returns"]) == 2 and row["grad_steps"] > 0 and row["wall_clock_s"] > 0
        assert row["protocol"] == suite.protocol(TASK) and row["protocol_id"] == suite.protocol_id(TASK)

    again = run_suite_script(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 done, 0 to resume, 0 new" in again.stdout and "Ray:" not in again.stdout
    assert read_rows([tmp_path / "rows.jsonl"]) == rows


def test_running_progress_reads_the_last_complete_metrics_line_of_recently_written_cells(tmp_path):
    import os

    from worldmodels.analysis.suite_runner import running_progress

    suite = load_suite(SMOKE, root=tmp_path)
    live, stale, unstarted = Cell(TASK, "sac", 0), Cell(TASK, "sac", 1), Cell(TASK, "pets", 0)
    for cell, steps in ((live, 12_000), (stale, 3_000)):
        suite.run_dir(cell).mkdir(parents=True)
        lines = [
            json.dumps({"env_steps": n, "wall_s": 0.09 * n, "pad": "x" * 900}) for n in range(1000, steps + 1, 1000)
        ]
        (suite.run_dir(cell) / "metrics.jsonl").write_text("\n".join(lines) + '\n{"env_steps": 99')  # being written
    old = time.time() - 3600
    os.utime(suite.run_dir(stale) / "metrics.jsonl", (old, old))  # stopped an hour ago: not running
    configs = {cell: suite.config(cell) for cell in (live, stale, unstarted)}
    configs[live].train.env_steps = 100_000
    text = running_progress(suite, [live, stale, unstarted], configs)
    assert text == f"{live.name} 12k/100k (~2:12:00 left)"  # 88k env steps at 90 ms each

    # resumed at 10k: the logger's clock restarts, the pace comes from the lines since (60 ms an env step)
    before = [{"env_steps": n, "wall_s": 0.09 * n} for n in (8000, 9000, 10000)]
    after = [{"env_steps": n, "wall_s": 0.06 * (n - 10_000)} for n in (11_000, 12_000, 13_000)]
    lines = "\n".join(json.dumps(line) for line in before + after)
    (suite.run_dir(live) / "metrics.jsonl").write_text(lines + "\n")
    assert running_progress(suite, [live], configs) == f"{live.name} 13k/100k (~1:27:00 left)"  # 87k at 60 ms


# -- the report refuses to compare rows of different protocols -------------------------------------------------


def row(agent, seed, steps, ret, obs="state", repeat=1, **protocol):
    base = {"task": TASK, "env_steps": 400, "eval_every": 200, "eval_episodes": 2, "time_limit": 50}
    base |= {"fast_render": False, "action_repeat": 1} | protocol
    return {
        "task": TASK,
        "agent": agent,
        "seed": seed,
        "obs": obs,
        "env_steps": steps,
        "action_repeat": repeat,
        "return_mean": ret,
        "returns": [ret] * base["eval_episodes"],
        "wall_clock_s": 60.0,
        "updates_per_s": 10.0,
        "protocol": base,
    }


def test_rows_of_different_protocols_are_split_and_the_report_says_which_fields_differ(tmp_path):
    rows = [row("sac", s, x, -100.0 * s - x / 100) for s in (0, 1) for x in (200, 400)]
    rows += [row("pets", 0, x, -150.0, eval_episodes=5, fast_render=True) for x in (200, 400)]
    groups = comparisons(rows)
    assert [(c["index"], c["count"], sorted({r["agent"] for r in c["rows"]})) for c in groups] == [
        (1, 2, ["sac"]),
        (2, 2, ["pets"]),
    ]
    assert groups[0]["differs"] == {"eval_episodes": [2, 5], "fast_render": [False, True]}
    markdown = table(rows)
    assert "Rows under 2 protocols, not compared with each other (they differ in eval_episodes: 2, 5; " in markdown
    assert "fast_render: False, True)" in markdown
    assert markdown.count("| task | obs | agent |") == 2
    assert "### protocol 2 of 2: 400 env steps, eval every 200, 5 eval episodes, time limit 50, fast render" in markdown
    names = sorted(p.name for p in plot_curves(rows, tmp_path))
    assert names == ["gym_Pendulum-v1-state-p1.png", "gym_Pendulum-v1-state-p2.png"]


def test_observation_kind_and_an_allowed_action_repeat_stay_in_one_comparison():
    rows = [row("sac", 0, 400, -120.0), row("dreamer", 0, 400, -140.0, obs="pixels", repeat=2)]
    (only,) = comparisons(rows)
    assert only["count"] == 1 and len(only["rows"]) == 2
    markdown = table(rows)
    assert "| gym:Pendulum-v1 | pixels | dreamer | 1 | 400 | -140.0 ± 0.0 (action repeat 2) |" in markdown
    assert "| gym:Pendulum-v1 | state | sac | 1 | 400 | -120.0 ± 0.0 |" in markdown


def test_rows_without_a_recorded_protocol_are_split_by_action_repeat_and_eval_episodes():
    old = [row("sac", 0, 400, -120.0), row("pets", 0, 400, -130.0, repeat=4)]
    old[1]["returns"] = [-130.0] * 3
    for r in old:
        del r["protocol"]
    groups = comparisons(old + [row("mbpo", 0, 400, -110.0)])
    assert len(groups) == 3 and groups[0]["differs"]["action_repeat"] == [1, 4]
    assert groups[0]["differs"]["env_steps"] == ["unrecorded", 400]
    assert "unrecorded: env_steps, eval_every, time_limit, fast_render" in table(old)


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "suites").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_committed_suite_builds_every_cells_config(path, tmp_path):
    suite = load_suite(path, root=tmp_path)
    configs = [suite.config(cell, threads=1) for cell in suite.cells()]
    assert len(configs) == len(suite.seeds) * len(suite.tasks) * len(suite.agents)
    for cell, cfg in zip(suite.cells(), configs, strict=True):
        assert (cfg.env.spec, cfg.train.seed, cfg.train.env_steps) == (
            cell.task,
            cell.seed,
            suite.tasks[cell.task].env_steps,
        )
