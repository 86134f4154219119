"""Batch streams: each stream's schedule is paid exactly, from its own sampler, and resumes where it stopped."""

from dataclasses import dataclass

import numpy as np
import pytest

from worldmodels.agents import AGENTS, Agent, BatchSpec, Stream, register
from worldmodels.config import AGENT_CONFIGS, AgentConfig, load_config
from worldmodels.run.checkpoint import load_checkpoint
from worldmodels.run.loop import Counters, restore_counters, train


@dataclass
class TwoStreamConfig(AgentConfig):
    name: str = "two_streams"


class TwoStreamAgent(Agent):
    """Random actions; a 'policy' stream of 2 transition batches per agent step and a 'model' stream that sees
    all data every 60 env steps. Records what each update received."""

    def __init__(self, cfg, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        self.seen = {"policy": [], "model": []}

    def streams(self):
        return [
            Stream("policy", BatchSpec("transitions", 8), lambda b: self._record("policy", b), ratio=2.0),
            Stream("model", BatchSpec("all", 0), lambda b: self._record("model", b), every_env_steps=60),
        ]

    def _record(self, name, batch):
        self.seen[name].append(len(batch["reward"]))
        return {f"train/{name}_batch": float(len(batch["reward"]))}

    def act(self, obs, state, explore):
        return np.zeros((len(obs["is_first"]), 1), np.float32), state, {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.fixture
def two_stream_agent():
    register("two_streams", TwoStreamConfig)(TwoStreamAgent)
    yield
    AGENTS.pop("two_streams")
    AGENT_CONFIGS.pop("two_streams")


def test_each_stream_is_paid_on_its_own_schedule_and_resumes_exactly(tmp_path, two_stream_agent, monkeypatch):
    seen = []
    original = TwoStreamAgent.__init__

    def keep(self, *args):
        original(self, *args)
        seen.append(self.seen)

    monkeypatch.setattr(TwoStreamAgent, "__init__", keep)
    overrides = [
        "agent.name=two_streams",
        "env.spec=gym:Pendulum-v1",
        "env.obs=state",
        "env.time_limit=50",
        "train.env_steps=250",
        "train.warmup_steps=100",
        "train.eval_every=0",
        "train.checkpoint_every=0",
        "train.threads=1",
        "run.progress=false",
        f"run.root={tmp_path}",
        "run.name=streams",
    ]
    run_dir = train(load_config([], overrides))
    counters = load_checkpoint(run_dir)["counters"]
    # Updates start at the step that reaches the 100-step warm-up: 151 agent steps with 2 policy updates each;
    # one model update per 60 env steps: at env steps 159 and 219, with 31 steps of credit left over.
    assert counters["stream_updates"] == {"policy": 302, "model": 2}
    assert counters["grad_steps"] == 304 and counters["stream_credit"] == {"policy": 0.0, "model": 31}
    assert seen[0]["policy"] == [8] * 302
    assert seen[0]["model"] == [150, 200]  # every stored transition: 3 and 4 finished episodes of 50

    train(load_config([run_dir / "config.yaml"], ["train.env_steps=400"]), resume=run_dir)
    counters = load_checkpoint(run_dir)["counters"]
    assert counters["stream_updates"] == {"policy": 602, "model": 5}  # (31 + 150) // 60 = 3 more model updates
    assert seen[1]["model"] == [250, 300, 350]


def test_a_checkpoint_from_before_streams_gives_its_update_debt_to_the_first_stream():
    old = {
        "env_steps": 500,
        "agent_steps": 500,
        "grad_steps": 200,
        "episodes": 2,
        "wall_s": 3.0,
        "update_debt": 0.5,
        "next_eval": 1000,
        "next_checkpoint": 1000,
        "next_log": 600,
        "next_report": 0,
    }
    counters = restore_counters(old, ["train"])
    assert counters == Counters(500, 500, 200, 2, 3.0, {"train": 0.5}, {"train": 200}, 1000, 1000, 600, 0)
