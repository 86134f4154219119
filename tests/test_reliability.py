"""What a run does when things go wrong: non-finite updates, a broken env, damaged run files, SIGTERM, failed
starts, and a progress bar that tells the truth."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from worldmodels.agents import build_agent
from worldmodels.config import ConfigError, load_config
from worldmodels.envs import EnvStepError, make_env
from worldmodels.nets.guarded_step import NonFiniteUpdate, guarded_step
from worldmodels.run.checkpoint import CheckpointError, load_checkpoint
from worldmodels.run.interrupts import NonFiniteTraining
from worldmodels.run.logger import ProgressFigures
from worldmodels.run.loop import Trainer, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


def script(name, *args, timeout=300):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=timeout
    )


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def tiny(tmp_path, name, *overrides):
    return load_config([TINY], [f"run.root={tmp_path}", f"run.name={name}", *overrides])


# -- non-finite updates ---------------------------------------------------------------------------------------


def test_guarded_step_takes_no_step_on_a_non_finite_loss_or_gradient():
    layer = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    guarded_step(opt, layer(torch.ones(1, 2)).sum(), layer.parameters(), "probe")  # a finite step: Adam has state
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    moments = opt.state_dict()["state"][0]["exp_avg"].clone()
    with pytest.raises(NonFiniteUpdate, match="probe loss is nan"):
        guarded_step(opt, layer(torch.full((1, 2), float("nan"))).sum(), layer.parameters(), "probe")
    # sqrt at 0: a finite loss (0) whose gradient is infinite
    loss = torch.sqrt(layer.weight - layer.weight.detach()).sum()
    with pytest.raises(NonFiniteUpdate, match="probe gradient norm is inf"):
        guarded_step(opt, loss, layer.parameters(), "probe", grad_clip=1.0)
    for key, value in layer.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], moments)
    assert all(p.grad is None for p in layer.parameters())


def test_a_sac_update_on_a_nan_batch_leaves_weights_and_optimisers_untouched():
    cfg = load_config([TINY])
    env = make_env("gym:Pendulum-v1", obs="state")
    agent = build_agent(cfg.agent, env.observation_space, env.action_space, "cpu")
    batch = {
        "obs": {"state": np.zeros((4, 3), np.float32)},
        "next_obs": {"state": np.zeros((4, 3), np.float32)},
        "action": np.zeros((4, 1), np.float32),
        "reward": np.zeros(4, np.float32),
        "terminated": np.zeros(4, bool),
    }
    agent.update(batch)
    before = {k: v.clone() if torch.is_tensor(v) else v for k, v in agent.learner.critic.state_dict().items()}
    steps = agent.learner.critic_opt.state_dict()["state"][0]["step"].clone()
    batch["reward"] = np.full(4, np.nan, np.float32)
    with pytest.raises(NonFiniteUpdate, match="critic loss is nan"):
        agent.update(batch)
    for key, value in agent.learner.critic.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(agent.learner.critic_opt.state_dict()["state"][0]["step"], steps)


def test_settings_that_make_updates_impossible_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="agent.batch_size: must be at least 1"):
        tiny(tmp_path, "b", "agent.batch_size=0")
    with pytest.raises(ConfigError, match="agent.critic_lr: a learning rate must be a positive number"):
        tiny(tmp_path, "l", "agent.critic_lr=-0.001")
    with pytest.raises(ConfigError, match="agent.fit_batch"):
        load_config([ROOT / "configs/pets/pendulum.yaml"], ["agent.fit_batch=0"])
    result = script("train.py", "--config", str(TINY), "agent.batch_size=0", f"run.root={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr and not list(tmp_path.iterdir())


def test_a_run_whose_updates_stay_non_finite_stops_with_a_clear_error(tmp_path):
    # lr 1e30: the first step is finite but throws the critic's weights to ~1e30; every later loss overflows.
    cfg = tiny(tmp_path, "nan", "agent.critic_lr=1e30", "train.max_nonfinite_updates=5", "train.checkpoint_every=100")
    with pytest.raises(NonFiniteTraining, match=r"5 updates in a row were non-finite.*critic.*agent.\*lr") as caught:
        train(cfg)
    assert "last good checkpoint" in str(caught.value)
    saved = load_checkpoint(tmp_path / "nan")
    assert saved["counters"]["env_steps"] <= 200 and saved["counters"]["nonfinite_updates"] < 5
    metrics = read_jsonl(tmp_path / "nan" / "metrics.jsonl")
    assert any(row.get("train/nonfinite_updates", 0) >= 1 for row in metrics)


def test_skipped_updates_are_counted_and_the_run_goes_on_below_the_limit(tmp_path):
    cfg = tiny(tmp_path, "goes-on", "agent.critic_lr=1e30", "train.max_nonfinite_updates=0", "train.env_steps=300")
    train(cfg)
    counters = load_checkpoint(tmp_path / "goes-on")["counters"]
    assert counters["env_steps"] == 300
    assert counters["nonfinite_updates"] >= 90 and counters["grad_steps"] + counters["nonfinite_updates"] == 100


# -- a broken env ---------------------------------------------------------------------------------------------


class ShapeChangesAtStep35(gymnasium.Env):
    """A 3-dimensional state for 34 steps, then a 4-dimensional one: the bug of a real env seen in the wild."""

    metadata = {"render_modes": ["rgb_array"]}
    observation_space = gymnasium.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gymnasium.spaces.Box(-1, 1, (1,), np.float32)
    steps = 0

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        ShapeChangesAtStep35.steps += 1
        size = 4 if ShapeChangesAtStep35.steps >= 35 else 3
        return np.zeros(size, np.float32), 0.0, False, False, {}


gymnasium.register("worldmodels-test/ShapeChangesAtStep35-v0", ShapeChangesAtStep35, max_episode_steps=10)


def test_an_observation_of_the_wrong_shape_is_one_clear_error_and_the_replay_stays(tmp_path):
    ShapeChangesAtStep35.steps = 0
    cfg = tiny(tmp_path, "shape", "env.spec=gym:worldmodels-test/ShapeChangesAtStep35-v0", "env.time_limit=null")
    with pytest.raises(EnvStepError) as caught:
        train(cfg)
    message = str(caught.value)
    assert "gym:worldmodels-test/ShapeChangesAtStep35-v0" in message and "step 5 of its episode 4" in message
    assert "(4,) float32" in message and "declares (3,) float32" in message
    episodes = sorted((tmp_path / "shape" / "replay").glob("*.npz"))
    assert len(episodes) == 3  # the three episodes finished before the bad step
    assert load_checkpoint(tmp_path / "shape")["counters"]["episodes"] == 3


# -- damaged run files, resume --------------------------------------------------------------------------------


def test_resume_moves_an_unreadable_episode_aside_and_goes_on(tmp_path):
    run_dir = train(tiny(tmp_path, "ep", "train.env_steps=200"))
    damaged = sorted((run_dir / "replay").glob("*.npz"))[1]
    damaged.write_bytes(b"half an episode")
    with pytest.warns(UserWarning, match=f"{damaged.name}.*moved it to .*corrupt"):
        trainer = Trainer(load_config([run_dir / "config.yaml"], ["train.env_steps=300"]), run_dir, resume=True)
    assert (run_dir / "replay" / "corrupt" / damaged.name).exists()
    assert trainer.replay.num_episodes == 3 and trainer.replay.episodes_added == 4
    trainer.run()
    assert load_checkpoint(run_dir)["counters"]["env_steps"] == 300
    assert len(list((run_dir / "replay").glob("*.npz"))) == 5  # 3 kept + 2 new; the new ones do not reuse index 1


def test_resume_falls_back_to_the_previous_checkpoint_and_reconciles_the_run(tmp_path):
    run_dir = train(tiny(tmp_path, "prev", "train.env_steps=300", "train.checkpoint_every=200"))
    (run_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")  # the final save, at 300, was damaged
    cfg = load_config([run_dir / "config.yaml"])
    with pytest.warns(UserWarning, match="corrupted or unreadable.*Using the previous checkpoint"):
        trainer = Trainer(cfg, run_dir, resume=True)
    assert trainer.counters.env_steps == 200 and trainer.replay.num_episodes == 4
    assert (run_dir / "checkpoint.corrupt.pt").read_bytes() == b"not a checkpoint"
    assert len(list((run_dir / "replay" / "orphaned").glob("*.npz"))) == 2  # episodes 5 and 6 came after it
    assert [row["env_steps"] for row in read_jsonl(run_dir / "evals.jsonl")] == [200]
    assert [row["env_steps"] for row in read_jsonl(run_dir / "evals.orphaned.jsonl")] == [300]
    assert trainer.last_eval == read_jsonl(run_dir / "evals.jsonl")[-1]["mean"]  # the progress bar's eval
    trainer.run()
    assert [row["env_steps"] for row in read_jsonl(run_dir / "evals.jsonl")] == [200, 300]
    assert load_checkpoint(run_dir)["counters"]["episodes"] == 6 == len(list((run_dir / "replay").glob("*.npz")))


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    run_dir = train(tiny(tmp_path, "done", "train.env_steps=200"))
    before = (run_dir / "evals.jsonl").read_text()
    counters = load_checkpoint(run_dir)["counters"]
    train(load_config([run_dir / "config.yaml"]), resume=run_dir)
    assert (run_dir / "evals.jsonl").read_text() == before  # no second evaluation of the last step
    assert load_checkpoint(run_dir)["counters"]["env_steps"] == counters["env_steps"] == 200


def test_two_unreadable_checkpoints_are_a_clear_error_and_both_are_left_alone(tmp_path):
    run_dir = train(tiny(tmp_path, "bad", "train.env_steps=400", "train.checkpoint_every=200"))
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run_dir / name).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupted or unreadable.*previous one cannot be used either"):
        load_checkpoint(run_dir)
    result = script("train.py", "--resume", str(run_dir))
    assert result.returncode == 2 and "corrupted" in result.stderr and "Traceback" not in result.stderr
    assert (run_dir / "checkpoint.pt").read_bytes() == b"garbage" == (run_dir / "checkpoint.prev.pt").read_bytes()


def test_sigterm_saves_a_checkpoint_and_says_so(tmp_path):
    args = ["--config", str(TINY), f"run.root={tmp_path}", "run.name=term", "train.env_steps=1000000"]
    args += ["train.checkpoint_every=0", "train.eval_every=0", "agent.batch_size=256"]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    metrics = tmp_path / "term" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr.decode()
    assert b"Terminated (SIGTERM): checkpoint saved; continue with --resume" in stderr
    assert load_checkpoint(tmp_path / "term")["counters"]["env_steps"] >= 200  # no periodic ones: this is it


# -- failed starts and the tools that read run directories -----------------------------------------------------


def test_a_start_that_fails_leaves_no_run_directory(tmp_path):
    cfg = load_config([ROOT / "configs/pets/pendulum.yaml"], ["env.spec=gym:CartPole-v1", f"run.root={tmp_path}"])
    with pytest.raises(ConfigError, match="cannot be built"):
        train(cfg)
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_evaluate_and_imagine_on_a_run_without_a_checkpoint_say_so_in_their_own_words(tmp_path):
    run_dir = tmp_path / "config-only"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text((TINY).read_text())
    for name, args in (("evaluate.py", [str(run_dir)]), ("imagine.py", ["--checkpoint", str(run_dir)])):
        result = script(name, *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Resume" not in result.stderr
        assert "has no checkpoint" in result.stderr
    result = script("evaluate.py", str(tmp_path / "missing"))
    assert result.returncode == 2 and "no config.yaml" in result.stderr


# -- the progress bar -----------------------------------------------------------------------------------------


def test_progress_eta_leaves_the_warm_up_out_of_the_rate():
    figures = ProgressFigures(total=10_000, warmup=1_000, env_steps=0, grad_steps=0)
    start = time.time()
    during = figures.figures(500, 0, float("nan"), now=start + 2.5)  # warm-up: 200 steps/s, no updates
    assert during["eta"] == "after warm-up" and during["ups"] == "0.0/s"
    figures.figures(1_000, 0, float("nan"), now=start + 5.0)  # warm-up ends here
    after = figures.figures(1_100, 25, -3.25, now=start + 15.0)  # training: 10 steps/s, 2.5 updates/s
    assert (
        after["ups"] == "2.5/s" and after["eta"] == "00:14:50" and after["eval"] == "-3.2"
    )  # 8,900 steps left at 10 steps/s
    assert figures.figures(1_101, 25, -3.25, now=start + 15.5) is None  # refreshed every 2 s, not every step


def test_the_script_names_its_run_directory_and_warns_when_warm_up_covers_the_run(tmp_path):
    result = script("train.py", "--config", str(TINY), "train.env_steps=100", f"run.root={tmp_path}", "run.name=w")
    assert result.returncode == 0, result.stderr
    assert f"run directory: {tmp_path / 'w'}" in result.stderr
    assert "warning: train.warmup_steps=100 >= train.env_steps=100" in result.stderr


# -- chaos: SIGKILL at random moments, resumed every time -------------------------------------------------------


def kill_and_resume(tmp_path, kills: int, env_steps: int, seed: int = 0) -> dict:
    """A tiny run killed with SIGKILL `kills` times at random moments and resumed each time; returns figures."""
    rng = np.random.default_rng(seed)
    run_dir = tmp_path / "chaos"
    fresh = ["--config", str(TINY), f"run.root={tmp_path}", "run.name=chaos", f"train.env_steps={env_steps}"]
    fresh += ["train.checkpoint_every=250", "train.eval_every=500", "run.progress=false"]
    metrics = run_dir / "metrics.jsonl"
    survived = 0
    for _ in range(kills):
        args = ["--resume", str(run_dir)] if (run_dir / "config.yaml").exists() else fresh
        logged = len(metrics.read_text().splitlines()) if metrics.exists() else 0
        process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), *args])
        # The kill falls inside the run, whatever the machine's speed: once metrics.jsonl has 1 to 3 lines more
        # than before this start (a line every 100 env steps; a resumed start first rewrites the lines its
        # checkpoint did not cover), plus up to 0.2 s.
        lines, deadline = logged + int(rng.integers(1, 4)), time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= lines:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.2))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        else:
            survived += 1
        process.wait()
    args = ["--resume", str(run_dir)] if (run_dir / "config.yaml").exists() else fresh
    assert subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args], timeout=600).returncode == 0
    counters = load_checkpoint(run_dir)["counters"]
    kept = sorted((run_dir / "replay").glob("*.npz"))
    orphaned = (
        list((run_dir / "replay" / "orphaned").glob("*.npz")) if (run_dir / "replay" / "orphaned").exists() else []
    )
    evals = [row["env_steps"] for row in read_jsonl(run_dir / "evals.jsonl")]
    episodes = env_steps // 50  # the tiny preset's episodes are 50 env steps; checkpoints fall between them
    assert counters["env_steps"] == env_steps and counters["episodes"] == episodes == len(kept)
    assert [int(p.name.split("-")[0]) for p in kept] == list(range(episodes))  # no gaps, no duplicates
    assert counters["grad_steps"] == (env_steps - 100) // 2  # the replay ratio was paid exactly across resumes
    assert evals == list(range(500, env_steps + 1, 500))
    return {"kills": kills - survived, "episodes": len(kept), "orphaned": len(orphaned)}


def test_three_random_sigkills_then_resume_leave_a_consistent_run(tmp_path):
    figures = kill_and_resume(tmp_path, kills=3, env_steps=3000)
    assert figures["kills"] == 3  # each start was killed mid-training, none ran to the end


@pytest.mark.slow
def test_twenty_random_sigkills_then_resume_leave_a_consistent_run(tmp_path):
    figures = kill_and_resume(tmp_path, kills=20, env_steps=12000, seed=1)
    assert figures["kills"] == 20


# -- determinism -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset, overrides",
    [
        (TINY, ["train.env_steps=300"]),
        (ROOT / "configs/pets/pendulum.yaml", ["train.env_steps=400", "env.time_limit=100", "agent.population=50"]),
        (ROOT / "configs/muzero/cartpole.yaml", ["train.env_steps=300", "agent.simulations=4", "agent.batch_size=16"]),
    ],
    ids=["sac", "pets", "muzero"],
)
def test_one_thread_and_one_seed_give_the_same_evaluations_twice(tmp_path, preset, overrides):
    common = overrides + ["train.threads=1", "train.eval_every=100", "train.eval_episodes=1", "run.progress=false"]
    returns = []
    for name in ("a", "b"):
        run_dir = train(load_config([preset], common + [f"run.root={tmp_path}", f"run.name={name}"]))
        returns.append([row["returns"] for row in read_jsonl(run_dir / "evals.jsonl")])
    assert returns[0] == returns[1] and len(returns[0]) >= 3


# -- benchmark grids ------------------------------------------------------------------------------------------


def test_a_grid_checks_every_cell_before_the_first_trains_and_writes_to_an_ignored_file(tmp_path):
    args = ["run", "--config", str(TINY), "--agents", "sac", "pets", "--tasks", "gym:Pendulum-v1", "gym:CartPole-v1"]
    result = script("benchmark.py", *args, "--root", str(tmp_path / "runs"), "--results", str(tmp_path / "rows.jsonl"))
    assert (
        result.returncode == 2 and "sac on gym:CartPole-v1" in result.stderr and "nothing was trained" in result.stderr
    )
    assert not (tmp_path / "runs").exists() and not (tmp_path / "rows.jsonl").exists()
    from worldmodels.cli.benchmark import parser

    default = parser().parse_args(["run", "--agents", "sac", "--tasks", "gym:Pendulum-v1"]).results
    ignored = subprocess.run(["git", "check-ignore", "-q", str(default)], cwd=ROOT)
    assert ignored.returncode == 0, f"{default} is not git-ignored"


def test_a_kill_between_the_two_renames_of_a_save_resumes_from_the_previous_checkpoint(tmp_path):
    run_dir = train(tiny(tmp_path, "renames", "train.env_steps=300", "train.checkpoint_every=200"))
    (run_dir / "checkpoint.pt").unlink()  # save_checkpoint moved latest -> prev, then died before tmp -> latest
    with pytest.warns(UserWarning, match="No checkpoint at .*using the previous one"):
        assert load_checkpoint(run_dir)["counters"]["env_steps"] == 200


def test_set_aside_episodes_never_overwrite_each_other(tmp_path, episode_factory):
    from worldmodels.replay import ReplayStore

    for _ in range(2):  # the same episode index orphaned by two resumes
        store = ReplayStore(1000, tmp_path)
        store.add_episode(episode_factory(5))
        assert store.load(up_to=0) == 0
    names = sorted(p.name for p in (tmp_path / "orphaned").glob("*.npz"))
    assert names == ["00000000-5.1.npz", "00000000-5.npz"]
