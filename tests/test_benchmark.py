import itertools
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch

from worldmodels.analysis.benchmark import curve_label, plot_curves, provenance, read_rows, table

ROOT = Path(__file__).resolve().parents[1]


def rows():
    out = []
    for seed, final in ((0, -150.0), (1, -250.0)):
        for step, ret in ((1000, -1200.0), (2000, final)):
            out.append(
                {
                    "task": "gym:Pendulum-v1",
                    "obs": "state",
                    "agent": "sac",
                    "seed": seed,
                    "env_steps": step,
                    "return_mean": ret,
                    "wall_clock_s": 60.0 * step / 1000,
                    "updates_per_s": 100.0,
                }
            )
    return out


def test_table_aggregates_final_returns_over_seeds():
    markdown = table(rows())
    line = [row for row in markdown.splitlines() if row.startswith("| gym:Pendulum-v1")][0]
    assert "| 2 | 2,000 | -200.0 ± 50.0 | -150, -250 | 2.0 | 100 |" in line


def test_table_keeps_two_significant_digits_of_a_slow_update_rate():
    slow = [dict(row, updates_per_s=0.0098) for row in rows()]
    line = [row for row in table(slow).splitlines() if row.startswith("| gym:Pendulum-v1")][0]
    assert line.endswith("| 2.0 | 0.0098 |")


def test_curves_are_written_as_png(tmp_path):
    paths = plot_curves(rows(), tmp_path)
    assert [p.name for p in paths] == ["gym_Pendulum-v1-state.png"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG"


def test_curve_legend_counts_seeds_in_words():
    assert curve_label("muzero", 1) == "muzero (1 seed)"
    assert curve_label("pets", 3) == "pets (3 seeds)"


def test_benchmark_script_runs_a_grid_and_reports_it(tmp_path):
    results = tmp_path / "results.jsonl"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "benchmark.py"),
        "run",
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        "--agents",
        "sac",
        "--tasks",
        "gym:Pendulum-v1",
        "--seeds",
        "0",
        "1",
        "--env-steps",
        "200",
        "--results",
        str(results),
        "--root",
        str(tmp_path / "runs"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = read_rows([results])
    assert {r["seed"] for r in got} == {0, 1} and all(r["env_steps"] in (200,) for r in got)
    assert {"task", "agent", "seed", "env_steps", "return_mean", "wall_clock_s", "updates_per_s", "machine"} <= set(
        got[0]
    )
    report = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "report", str(results), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    assert "gym:Pendulum-v1" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "curves" / "gym_Pendulum-v1-state.png").exists()


def test_evaluate_script_prints_returns_and_writes_a_gif(tmp_path):
    train = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        "train.env_steps=200",
        "train.device=cpu",  # evaluate.py's default device: the same arithmetic as the logged evaluation
        f"run.root={tmp_path}",
        "run.name=ev",
    ]
    assert subprocess.run(train, capture_output=True, timeout=300).returncode == 0
    evaluate = [
        sys.executable,
        str(ROOT / "scripts" / "evaluate.py"),
        str(tmp_path / "ev"),  # the run's evaluation episodes (2) and seeds by default
        "--video",
        str(tmp_path / "ev.gif"),
    ]
    done = subprocess.run(evaluate, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert len(summary["returns"]) == 2 and summary["lengths"] == [50, 50]
    logged = json.loads((tmp_path / "ev" / "evals.jsonl").read_text().splitlines()[-1])  # at 200 env steps
    assert summary["seed"] == 10_000 and summary["returns"] == logged["returns"]  # the run's own eval seeds
    assert (tmp_path / "ev.gif").read_bytes()[:3] == b"GIF"
    missing = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no config.yaml" in missing.stderr


def fake_clock(step: float):
    """A stand-in for the time module whose perf_counter advances by ``step`` seconds a call."""
    ticks = itertools.count()
    return types.SimpleNamespace(perf_counter=lambda: next(ticks) * step)


def test_collection_throughput_is_measured_in_env_steps(monkeypatch):
    from worldmodels.analysis import throughput

    monkeypatch.setattr(throughput, "time", fake_clock(1.0))  # the timed loop takes 1 s
    rate = throughput.collection_throughput(
        "dmc:cartpole-swingup", 1, 201, obs="pixels", size=16, action_repeat=2, warmup_steps=2
    )
    assert rate == 200  # 100 decisions of 2 env steps each in 1 s (the odd env step is not taken)


def test_speed_probes_time_updates_and_decisions(monkeypatch):
    from worldmodels.analysis import update_speed
    from worldmodels.config import load_config

    monkeypatch.setattr(update_speed, "time", fake_clock(0.25))  # every timed call takes 0.25 s
    cfg = load_config([ROOT / "configs" / "tiny.yaml"])  # SAC, 32 x 32, on Pendulum (3 state dims, 1 action)
    update = update_speed.update_seconds(cfg, repeats=3, warmup=1)
    assert update["median_s"] == 0.25 and update["times"] == [0.25] * 3
    critic = 2 * ((3 + 1) * 32 + 32 + 32 * 32 + 32 + 32 + 1)  # two Q members of (S + A) -> 32 -> 32 -> 1
    actor = 3 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2  # S -> 32 -> 32 -> (mean, log std)
    assert update["parameters"] == 2 * critic + actor + 1  # the target critic is counted; + log alpha
    pets = load_config(
        [ROOT / "configs" / "pets" / "pendulum.yaml"],
        ["agent.population=20", "agent.particles=5", "agent.horizon=3", "agent.iterations=1", "agent.hidden=[16]"],
    )
    decision = update_speed.act_seconds(pets, repeats=2, batch=2)
    assert decision["median_s"] == 0.25 and len(decision["times"]) == 2


def test_update_probe_builds_muzero_unroll_windows_with_frame_history():
    from worldmodels.analysis.update_speed import agent_batch, probe_agent
    from worldmodels.config import load_config

    cfg = load_config([ROOT / "configs" / "muzero" / "cartpole_swingup.yaml"], ["env.size=16", "agent.batch_size=2"])
    agent, _ = probe_agent(cfg)
    batch = agent_batch(agent, np.random.default_rng(0))
    T = cfg.agent.unroll + cfg.agent.td_steps + 1
    assert batch["pixels"].shape == (2, 2 + T, 3, 16, 16)  # two frames of history in front of each window
    np.testing.assert_allclose(batch["search_policy"].sum(-1), 1.0, rtol=1e-6)
    metrics = agent.update(batch)
    assert np.isfinite(metrics["loss/total"])


def test_speed_figures_become_rows_and_the_report_tabulates_them(tmp_path):
    from worldmodels.cli.benchmark import main

    rows_file = tmp_path / "speed.jsonl"
    tiny = str(ROOT / "configs" / "tiny.yaml")
    assert main(["speed", "--config", tiny, "--repeats", "2", "--results", str(rows_file)]) == 0
    assert main(["act-speed", "--config", tiny, "--repeats", "2", "--batch", "2", "--results", str(rows_file)]) == 0
    update, decision = read_rows([rows_file])
    assert (update["kind"], decision["kind"], decision["batch"]) == ("update", "decision", 2)
    assert update["setting"] == f"--config {tiny}" and update["median_s"] > 0 and update["commit"]
    assert update["precision"] in ("bfloat16", "float32") and update["parameters"] > 0
    assert main(["report", str(rows_file), "--out", str(tmp_path / "out")]) == 0
    markdown = (tmp_path / "out" / "table.md").read_text()
    assert "### update speed" in markdown and "### decision speed" in markdown
    assert "| worldmodels | sac | gym:Pendulum-v1 | state |" in markdown


def test_an_anchor_row_is_tabulated_under_its_library_with_the_median_of_its_times(tmp_path):
    from worldmodels.analysis.speed_rows import anchor_row, speed_table

    fields = dict(agent="dreamer", task="dmc:cartpole-swingup", obs="pixels", setting="S", threads=2)
    row = anchor_row("sheeprl 0.8.4", "update", [3.0, 1.0, 2.0], precision="bfloat16", **fields)
    assert (row["median_s"], row["min_s"], row["repeats"], row["anchor"]) == (2.0, 1.0, 3, "sheeprl 0.8.4")
    assert "| sheeprl 0.8.4 | dreamer | dmc:cartpole-swingup | pixels | `S` | bfloat16 | 2 | cpu | 2, 1 |" in (
        speed_table([row])
    )


def test_the_ratio_to_an_anchor_pairs_rows_of_one_label_and_precision():
    from worldmodels.analysis.speed_rows import ratio_table

    def row(median, precision, anchor=None, label="S"):
        return {"kind": "update", "median_s": median, "precision": precision, "label": label} | (
            {"anchor": anchor} if anchor else {}
        )

    rows = [row(4.0, "bfloat16", "sheeprl"), row(2.0, "bfloat16"), row(6.0, "bfloat16", "sheeprl")]
    rows += [row(8.0, "float32", "sheeprl"), row(0.5, "bfloat16", label="")]  # unlabelled: in no ratio
    table = ratio_table(rows)
    assert "| S | update | bfloat16 |  | sheeprl | 4, 6 / 2 | **2.50x** |" in table  # median(4, 6) / 2
    assert "float32" not in table  # an anchor with no row of ours at its precision has no ratio
    assert ratio_table([row(8.0, "float32", "sheeprl")]) == ""
    later = [row(3.0, "bfloat16", "sheeprl") | {"commit": "b"}, row(1.0, "bfloat16") | {"commit": "b"}]
    table = ratio_table(rows + later)  # another commit's side-by-side run: its own line, not pooled
    assert "| S | update | bfloat16 | b | sheeprl | 3 / 1 | **3.00x** |" in table and "**2.50x**" in table


def test_rows_record_whether_the_cpu_computes_bfloat16_natively(monkeypatch):
    # "AMD EPYC" names both an AVX2-only CPU (bfloat16 emulated) and one with AVX512-BF16: the row must say which
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert provenance()["cpu_bf16"] == "emulated"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert provenance()["cpu_bf16"] == "native"
