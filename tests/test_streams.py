"""Batch streams: each stream's schedule is paid exactly, from its own sampler, and resumes where it stopped."""

from dataclasses import dataclass

import numpy as np
import pytest

from worldmodels.agents import AGENTS, Agent, BatchSpec, Stream, register
from worldmodels.config import AGENT_CONFIGS, AgentConfig, load_config
from worldmodels.replay import ReplayStore
from worldmodels.replay.episode import episode_files, load_episode
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


def two_stream_run(root, name: str, *extra: str) -> list[str]:
    """Overrides of a 250-env-step run of the two-stream agent on Pendulum (50-step episodes, 100 warm-up steps)."""
    return [
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
        f"run.root={root}",
        f"run.name={name}",
        *extra,
    ]


def test_each_stream_is_paid_on_its_own_schedule_and_resumes_exactly(tmp_path, two_stream_agent, monkeypatch):
    seen = []
    original = TwoStreamAgent.__init__

    def keep(self, *args):
        original(self, *args)
        seen.append(self.seen)

    monkeypatch.setattr(TwoStreamAgent, "__init__", keep)
    overrides = two_stream_run(tmp_path, "streams")
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


def test_warmup_updates_are_paid_once_by_the_per_decision_streams_when_warmup_ends(tmp_path, two_stream_agent):
    overrides = two_stream_run(tmp_path, "burst", "train.warmup_updates=40")
    run_dir = train(load_config([], overrides))
    counters = load_checkpoint(run_dir)["counters"]
    # the schedule above plus 40 policy updates once (the every-60-env-steps model stream gets none)
    assert counters["stream_updates"] == {"policy": 302 + 40, "model": 2}
    assert counters["warmup_burst_done"]
    train(load_config([run_dir / "config.yaml"], ["train.env_steps=300"]), resume=run_dir)
    assert load_checkpoint(run_dir)["counters"]["stream_updates"]["policy"] == 342 + 100  # no second burst


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


@dataclass
class LatestConfig(AgentConfig):
    name: str = "latest_recorder"


class LatestRecorder(Agent):
    """Uniformly random actions; one 'latest' stream at ratio 1 that keeps every batch it is handed."""

    built: list["LatestRecorder"] = []

    def __init__(self, cfg, obs_space, action_space, device):
        super().__init__(cfg, obs_space, action_space, device)
        self.rng, self.batches = np.random.default_rng(0), []
        LatestRecorder.built.append(self)

    def streams(self):
        return [Stream("td", BatchSpec("latest", 0), self._record, ratio=1.0)]

    def _record(self, batch):
        self.batches.append(batch)
        return {}

    def act(self, obs, state, explore):
        return self.rng.integers(0, self.action_space.n, len(obs["is_first"])), state, {}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.fixture
def latest_recorder():
    register("latest_recorder", LatestConfig)(LatestRecorder)
    LatestRecorder.built.clear()
    yield
    AGENTS.pop("latest_recorder")
    AGENT_CONFIGS.pop("latest_recorder")


def _latest_run(tmp_path, num_envs: int, warmup: int):
    overrides = [
        "agent.name=latest_recorder",
        "env.spec=gym:worldmodels/FrozenLakeDeterministic-v0",  # random walks end in a hole within a few steps
        "env.obs=state",
        "env.time_limit=10000",  # every episode ends by terminating, never on the time limit
        f"env.num_envs={num_envs}",
        "train.env_steps=400",
        f"train.warmup_steps={warmup}",
        "train.eval_every=0",
        "train.eval_episodes=1",
        "train.checkpoint_every=0",
        "train.threads=1",
        "run.progress=false",
        f"run.root={tmp_path}",
        f"run.name=latest{num_envs}",
    ]
    run_dir = train(load_config([], overrides))
    return run_dir, LatestRecorder.built[-1].batches


def _steps(state, action, reward, next_state, terminated) -> list[tuple]:
    """(state, action, reward, next state, terminated) per transition; states arrive one-hot [B, 16]."""
    rows = zip(state.argmax(-1), action, reward, next_state.argmax(-1), terminated, strict=True)
    return [(int(s), int(a), float(r), int(s2), bool(done)) for s, a, r, s2, done in rows]


def _batch_steps(batch: dict, rows=slice(None)) -> list[tuple]:
    obs, next_obs = batch["obs"]["state"][rows], batch["next_obs"]["state"][rows]
    return _steps(obs, batch["action"][rows], batch["reward"][rows], next_obs, batch["terminated"][rows])


def _replay_episodes(run_dir) -> list[list[tuple]]:
    """The transitions of each finished episode, in the order the episodes ended."""
    episodes = [load_episode(path) for path in episode_files(run_dir / "replay")]
    return [
        _steps(e["state"][:-1], e["action"][1:], e["reward"][1:], e["state"][1:], e["is_terminal"][1:])
        for e in episodes
    ]


def test_a_latest_stream_at_ratio_1_sees_every_transition_once_in_order(tmp_path, latest_recorder):
    """One env: the batches, one transition each, are the replay's transitions in order from the step that reaches
    the warm-up on (as for every stream), in the layout and dtypes of sample_transitions."""
    run_dir, batches = _latest_run(tmp_path, num_envs=1, warmup=40)
    assert load_checkpoint(run_dir)["counters"]["stream_updates"] == {"td": 361}  # env steps 40..400
    replay = ReplayStore(10_000, run_dir / "replay")
    replay.load()
    sampled = replay.sample_transitions(3)
    for batch in batches:
        assert set(batch) == set(sampled) and set(batch["obs"]) == set(batch["next_obs"]) == set(sampled["obs"])
        for key in ("action", "reward", "terminated"):
            assert batch[key].dtype == sampled[key].dtype and batch[key].shape == (1,)
        assert batch["obs"]["state"].shape == batch["next_obs"]["state"].shape == (1, 16)
    seen = [step for batch in batches for step in _batch_steps(batch)]
    stored = [step for episode in _replay_episodes(run_dir) for step in episode][39:]  # from the 40th step on
    assert len(stored) > 300 and seen[: len(stored)] == stored
    ends = [step for step in seen if step[4]]
    assert ends and all(step[3] in (5, 7, 11, 12, 15) for step in ends)  # a hole or the goal, not the next start


def test_a_latest_stream_hands_over_every_env_and_episode_ends_their_true_last_observation(tmp_path, latest_recorder):
    """Two envs: each update gets both envs' step; split per env at terminations, the batches hold exactly the
    replay's finished episodes (each transition once, in order), next_obs at an end being the episode's last."""
    run_dir, batches = _latest_run(tmp_path, num_envs=2, warmup=0)
    assert len(batches) == 200 and all(len(batch["reward"]) == 2 for batch in batches)
    episodes = []
    for env in range(2):
        running = []
        for batch in batches:
            (step,) = _batch_steps(batch, slice(env, env + 1))
            assert not running or step[0] == running[-1][3]  # contiguous inside an episode
            running.append(step)
            if step[4]:
                episodes.append(running)
                running = []
    assert len(episodes) > 20 and sorted(episodes) == sorted(_replay_episodes(run_dir))
