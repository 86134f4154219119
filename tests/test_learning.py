"""Learning happens: short runs in the default suite, the issue's thresholds as slow-marked tests."""

import json
from pathlib import Path

import pytest

from worldmodels.config import load_config
from worldmodels.run.loop import train

ROOT = Path(__file__).resolve().parents[1]


def final_return(run_dir: Path) -> float:
    return json.loads((run_dir / "evals.jsonl").read_text().splitlines()[-1])["mean"]


def test_sac_swings_pendulum_up_within_4000_env_steps(tmp_path):
    # Random play scores about -1200 on Pendulum; a swing-up that holds the pole scores above -400.
    # The benchmark's 3 seeds scored -194, -181 and -167 at 4000 env steps with this preset.
    overrides = [
        "train.env_steps=4000",
        "train.eval_every=0",
        "train.eval_episodes=5",
        "run.progress=false",
        "train.threads=1",
        f"run.root={tmp_path}",
        "run.name=learn",
    ]
    run_dir = train(load_config([ROOT / "configs/sac/pendulum.yaml"], overrides))
    assert final_return(run_dir) > -400


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sac_solves_pendulum_within_20000_env_steps(tmp_path, seed):
    overrides = [f"train.seed={seed}", "run.progress=false", f"run.root={tmp_path}", "run.name=pendulum"]
    run_dir = train(load_config([ROOT / "configs/sac/pendulum.yaml"], overrides))
    assert final_return(run_dir) >= -200


def best_return(run_dir: Path) -> float:
    return max(json.loads(line)["mean"] for line in (run_dir / "evals.jsonl").read_text().splitlines())


def test_muzero_learns_to_balance_cartpole_within_3000_env_steps(tmp_path):
    # Random play lasts about 22 steps on CartPole-v1 (max 500). MuZero's greedy return swings while it
    # learns (500 at one evaluation, under 100 at the next), so the test asks for the best of six evaluations.
    # Measured with this preset on an AMD EPYC: seeds 0..3 reached 500, 500, 336 and 500 within 3000 env steps.
    overrides = [
        "train.env_steps=3000",
        "train.eval_every=500",
        "train.eval_episodes=3",
        "run.progress=false",
        f"run.root={tmp_path}",
        "run.name=learn",
    ]
    run_dir = train(load_config([ROOT / "configs/muzero/cartpole.yaml"], overrides))
    assert best_return(run_dir) >= 250


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_muzero_solves_cartpole_within_20000_env_steps(tmp_path, seed):
    overrides = [
        f"train.seed={seed}",
        "train.env_steps=20000",
        "train.eval_every=0",
        "train.eval_episodes=10",
        "run.progress=false",
        f"run.root={tmp_path}",
        "run.name=cartpole",
    ]
    run_dir = train(load_config([ROOT / "configs/muzero/cartpole.yaml"], overrides))
    assert final_return(run_dir) >= 475
