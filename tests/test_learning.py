"""Learning happens: short runs in the default suite, the issue's thresholds as slow-marked tests."""

import json
from pathlib import Path

import pytest

from worldmodels.config import load_config
from worldmodels.run.loop import train

ROOT = Path(__file__).resolve().parents[1]


def final_return(run_dir: Path) -> float:
    return json.loads((run_dir / "evals.jsonl").read_text().splitlines()[-1])["mean"]


def test_sac_improves_on_pendulum_within_3000_env_steps(tmp_path):
    # Random play scores about -1200 on Pendulum; a swing-up that holds the pole scores above -400.
    overrides = ["train.env_steps=3000", "train.warmup_steps=500", "train.eval_every=0", "train.eval_episodes=5",
                 "agent.batch_size=128", "agent.hidden=[128, 128]", "run.progress=false", "train.threads=1",
                 f"run.root={tmp_path}", "run.name=learn"]
    run_dir = train(load_config([ROOT / "configs/sac/pendulum.yaml"], overrides))
    assert final_return(run_dir) > -400


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sac_solves_pendulum_within_20000_env_steps(tmp_path, seed):
    overrides = [f"train.seed={seed}", "run.progress=false", f"run.root={tmp_path}", "run.name=pendulum"]
    run_dir = train(load_config([ROOT / "configs/sac/pendulum.yaml"], overrides))
    assert final_return(run_dir) >= -200
