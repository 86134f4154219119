"""scripts/imagine.py on checkpoints of every kind: each model's own report as files, a one-line answer for a
model-free agent and for a directory that holds no run."""

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def script(name, *args, timeout=300):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_pets_checkpoint_gets_its_kstep_report_as_a_png(tmp_path):
    done = script(
        "train.py",
        "--config",
        ROOT / "configs/pets/pendulum.yaml",
        "train.env_steps=420",
        "train.eval_every=0",
        "env.time_limit=100",
        "agent.population=50",
        "agent.iterations=1",
        "agent.horizon=5",
        "agent.fit_epochs=5",
        "train.replay_ratio=0.01",
        "train.threads=1",
        "run.progress=false",
        f"run.root={tmp_path}",
        "run.name=pets",
    )
    assert done.returncode == 0, done.stderr
    done = script("imagine.py", "--checkpoint", tmp_path / "pets", "--length", 30, "--out", tmp_path / "img")
    assert done.returncode == 0, done.stderr
    image = Image.open(tmp_path / "img" / "kstep.png")
    assert image.size[0] > 300 and image.size[1] > 200
    report = json.loads((tmp_path / "img" / "report.json").read_text())
    assert report["agent"] == "pets" and report["report/kstep_state_mse"] >= 0
    assert list((tmp_path / "img").glob("events.out.tfevents.*"))


def test_model_free_checkpoint_and_a_non_run_get_one_line_answers(tmp_path):
    done = script(
        "train.py",
        "--config",
        ROOT / "configs/tiny.yaml",
        "train.env_steps=200",
        f"run.root={tmp_path}",
        "run.name=sac",
    )
    assert done.returncode == 0, done.stderr
    done = script("imagine.py", "--checkpoint", tmp_path / "sac")
    assert done.returncode == 0 and "'sac' agent, which has no model report" in done.stdout and not done.stderr
    done = script("imagine.py", "--checkpoint", tmp_path / "nothing")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
