"""MBPO: elite stepping, branched rollouts, rollout-length rules, the model buffer, mixed batches, learning."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.mbpo import MBPOAgent, MBPOConfig
from worldmodels.config import ConfigError, load_config
from worldmodels.envs.spaces import observation_space
from worldmodels.models.branched import (
    adaptive_length,
    branched_rollout,
    chained_windows,
    kstep_error,
    scheduled_length,
)
from worldmodels.models.ensemble import Ensemble
from worldmodels.replay import ReplayStore
from worldmodels.replay.model_buffer import TransitionBuffer
from worldmodels.run.loop import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("rows, members", [(10, [1, 3]), (6, [0, 1, 2, 3, 4]), (2, [0, 2, 4]), (1, [0, 1, 2, 3, 4])])
def test_random_member_steps_use_only_the_given_members_in_equal_shares(rows, members):
    torch.manual_seed(0)
    model = Ensemble(3, 2, members=5, hidden=(16,), probabilistic=True, learn_reward=True)
    states, actions = torch.randn(rows, 3), torch.randn(rows, 2)
    members = torch.tensor(members)
    nxt, reward = model.step_random_member(states, actions, members, sample=False, generator=torch.Generator())
    mean, _ = model.predict(states, actions)  # [K, M, O] every member on every input
    own = mean[:, :, :3] + states  # [K, M, S] each member's next state
    matches = (own - nxt).abs().amax(-1) < 1e-5  # [K, M] which members could have made each step
    assert nxt.shape == (rows, 3) and reward.shape == (rows,)
    assert (matches.sum(0) == 1).all()  # every step by exactly one member ...
    others = [k for k in range(5) if k not in members]
    assert not matches[others].any()  # ... one of those given
    counts = matches[members].sum(1)  # [E] steps each given member made
    assert counts.sum() == rows and counts.max() - counts.min() <= 1  # equal shares, as far as M / E allows


def test_random_member_steps_pass_gradients_to_states_and_actions():
    model = Ensemble(3, 2, members=3, hidden=(8,), learn_reward=True)
    states, actions = torch.randn(6, 3, requires_grad=True), torch.randn(6, 2, requires_grad=True)
    nxt, reward = model.step_random_member(states, actions, torch.arange(3), generator=torch.Generator())
    (nxt.sum() + reward.sum()).backward()
    assert states.grad.abs().sum() > 0 and actions.grad.abs().sum() > 0


def test_branched_rollout_stops_paths_that_terminate():
    torch.manual_seed(0)
    model = Ensemble(1, 1, members=2, hidden=(8,), probabilistic=False, learn_reward=True)
    with torch.no_grad():  # a model that adds 1 to the state whatever the action: path i reaches 3 after 3 - s0 steps
        model.out_mean.copy_(torch.tensor([1.0, 0.5]))
        model.out_std.zero_()
    starts = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    out = branched_rollout(
        model, torch.arange(2), lambda s: torch.zeros(len(s), 1), starts, 5, done_fn=lambda s: s[:, 0] == 3.0
    )
    # starts 0, 1, 2 end on reaching 3 (after 3, 2, 1 steps); start 10 never ends: 5 steps
    assert len(out["reward"]) == 3 + 2 + 1 + 5
    assert out["terminated"].sum() == 3
    assert torch.equal(out["next_state"] - out["state"], torch.ones(11, 1)) and torch.all(out["reward"] == 0.5)


def test_rollout_length_schedule_and_adaptive_rule():
    schedule = (20, 100, 1, 15)  # MBPO's HalfCheetah-style linear schedule
    assert [scheduled_length(e, schedule) for e in (0, 20, 60, 100, 500)] == [1, 1, 8, 15, 15]
    assert scheduled_length(3, (1, 15, 1, 1)) == 1
    errors = torch.tensor([0.01, 0.02, 0.2, 0.03])
    assert adaptive_length(errors, 0.05) == 2  # stops at the first large error, even if a later one is small
    assert adaptive_length(torch.tensor([0.5, 0.9]), 0.05) == 1  # never below 1


def test_chained_windows_never_cross_an_episode(episode_factory):
    replay = ReplayStore(1000)
    for start in (0.0, 100.0, 200.0):
        replay.add_episode(episode_factory(6, start_value=start, pixels=False))
    batch = replay.all_transitions()
    states, actions = chained_windows(batch, 4, 500, torch.Generator().manual_seed(0))
    assert states.shape[1:] == (5, 2) and actions.shape[1:] == (4, 1)
    steps = states[:, 1:, 0] - states[:, :-1, 0]  # state[t, 0] grows by 1 inside an episode
    assert torch.all(steps == 1)
    assert set(states[:, 0, 0].tolist()) == {0, 1, 100, 101, 200, 201}  # every valid start (5 transitions, k = 4)
    assert chained_windows(batch, 6, 10) is None  # no episode has 6 transitions


def test_kstep_error_is_zero_for_a_model_that_knows_the_dynamics():
    model = Ensemble(1, 1, members=2, hidden=(8,), probabilistic=False)
    with torch.no_grad():
        model.out_mean.fill_(1.0)
        model.out_std.zero_()
    states = torch.arange(5.0)[None, :, None] + torch.tensor([[[0.0]], [[7.0]]])  # [2, 5, 1] s_t+1 = s_t + 1
    errors = kstep_error(model, torch.arange(2), states, torch.zeros(2, 4, 1))
    assert errors.shape == (4,) and torch.all(errors.abs() < 1e-6)


def test_model_buffer_keeps_the_newest_and_round_trips():
    buffer = TransitionBuffer(5, 1, 1, torch.device("cpu"))

    def batch(values):
        v = torch.tensor(values, dtype=torch.float32)
        return {"state": v[:, None], "action": v[:, None], "reward": v, "next_state": v[:, None], "terminated": v > 9}

    buffer.add(batch([1, 2, 3]))
    buffer.add(batch([4, 5, 6, 7]))
    assert len(buffer) == 5 and sorted(buffer.data["reward"].tolist()) == [3, 4, 5, 6, 7]
    buffer.add(batch(list(range(10, 20))))  # more than the capacity: only the newest 5
    assert sorted(buffer.data["reward"].tolist()) == [15, 16, 17, 18, 19]
    sample = buffer.sample(64, torch.Generator().manual_seed(0))
    assert sample["state"].shape == (64, 1) and torch.all(sample["reward"] >= 15)
    copy = TransitionBuffer(5, 1, 1, torch.device("cpu"))
    copy.load_state_dict(buffer.state_dict())
    assert copy.added == buffer.added and all(torch.equal(copy.data[k], buffer.data[k]) for k in buffer.data)
    buffer.add(batch([20, 21, 22, 23]))  # slots 0..4 hold 23, 19, 20, 21, 22: 23 is the newest, at slot 0
    drawn = buffer.sample(256, torch.Generator().manual_seed(0), newest=3)["reward"]  # slots 3, 4, 0: the ring's end
    assert buffer.data["reward"].tolist() == [23, 19, 20, 21, 22]
    assert len(buffer) == 5 and set(drawn.tolist()) == {21.0, 22.0, 23.0}
    assert buffer.state_dict()["reward"].shape == (5,)  # a checkpoint keeps every slot held


def test_mbpo_reads_only_the_rollouts_of_retain_epochs_at_the_rollout_length_in_force(episode_factory):
    """MBPO's model pool: retain_epochs epochs of rollouts at the current k (not at the schedule's largest k), so
    when k shrinks or grows the older rollouts stop being read; a checkpoint restores the pool."""
    torch.manual_seed(0)
    kw = {"model_every": 1000, "epoch_length": 1000, "retain_epochs": 1, "rollout_schedule": (0, 1, 1, 2)}
    agent = small_agent(real_ratio=0.0, **kw)
    replay = ReplayStore(1000)
    for start in range(5):
        replay.add_episode(episode_factory(20, start_value=100.0 * start, pixels=False))
    assert agent.buffer.capacity == 64 * 2  # rollout_batch x k_max x one round an epoch
    metrics = agent.update_model(replay.all_transitions())  # epoch 1: k = 2, 128 transitions (no termination here)
    assert agent.rollout_length == 2 and metrics["train/model_buffer"] == agent.pool_size() == 128
    agent.rollout_length = 1  # as if this round used k = 1 (the adaptive rule can shorten k)
    newest = agent.buffer.added
    marked = {key: value[:64].clone() for key, value in agent.buffer.data.items()}
    marked["state"].fill_(1e6)  # a k = 1 round whose states say where they came from
    agent.buffer.add(marked)

    def policy_states(mbpo: MBPOAgent) -> torch.Tensor:
        seen = {}
        mbpo.learner.update = lambda batch: seen.update(batch) or {}
        mbpo.update_policy(replay.sample_transitions(20))  # real_ratio 0: every transition imagined
        return seen["obs"]["state"]

    assert len(agent.buffer) == 128 and torch.all(policy_states(agent) == 1e6)  # only the newest round is read
    restored = small_agent(real_ratio=0.0, **kw)
    restored.load_state_dict(agent.state_dict())
    assert restored.pool_size() == 64 and restored.buffer.added == newest + 64
    assert torch.all(policy_states(restored) == 1e6)


def small_agent(**kw):
    cfg = MBPOConfig(
        **{"members": 3, "elites": 2, "hidden": (32,), "policy_hidden": (32,), "rollout_batch": 64, "batch_size": 20}
        | kw
    )
    return MBPOAgent(cfg, observation_space("state", 64, 2), spaces.Box(-1, 1, (1,), np.float32), "cpu")


def test_policy_batches_mix_real_and_imagined_transitions(episode_factory):
    torch.manual_seed(0)
    agent = small_agent(real_ratio=0.25)
    replay = ReplayStore(1000)
    for start in range(5):
        replay.add_episode(episode_factory(20, start_value=100.0 * start, pixels=False))
    seen = {}
    agent.learner.update = lambda batch: seen.update(batch) or {}
    metrics = agent.update_policy(replay.sample_transitions(20))
    assert metrics["train/real_share"] == 1.0  # no rollout yet: all real
    metrics = agent.update_model(replay.all_transitions())
    assert metrics["train/rollout_transitions"] == 64 and len(agent.buffer) == 64
    assert agent.elites.tolist() == torch.argsort(agent.state_model.holdout_members)[:2].tolist()
    metrics = agent.update_policy(replay.sample_transitions(20))
    assert metrics["train/real_share"] == 0.25 and seen["obs"]["state"].shape == (20, 2)
    real = seen["obs"]["state"][:5, 0]
    assert torch.all(real == real.round())  # the first 5 are replayed states (integers), the rest imagined


@pytest.mark.parametrize("name", ["mbpo", "mbac", "mpc_value"])
def test_every_ensemble_agent_reports_its_kstep_predictions(name, episode_factory):
    """MBPO, mbac and mpc_value show the same k-step report as PETS (StateModel.report), once a refit has run."""
    from worldmodels.agents import build_agent

    torch.manual_seed(0)
    sizes = ["agent.members=4", "agent.hidden=[32]"] + (
        ["agent.elites=2", "agent.rollout_batch=64"] if name != "mbac" else []
    )
    cfg = load_config([], [f"agent.name={name}", *sizes]).agent
    agent = build_agent(cfg, observation_space("state", 64, 2), spaces.Box(-1, 1, (1,), np.float32), "cpu")
    replay = ReplayStore(1000)
    for start in range(5):
        replay.add_episode(episode_factory(20, start_value=100.0 * start, pixels=False))
    assert agent.report(replay) is None  # no refit yet
    agent.streams()[0].update(replay.all_transitions())  # the model stream: a refit
    report = agent.report(replay, sequences=2, length=10, context=3)
    assert report["images"]["report/kstep"].shape[0] == 3
    assert "report/kstep_state_mse" in report["scalars"] and all(np.isfinite(v) for v in report["scalars"].values())


def test_mbpo_rejects_tasks_it_cannot_handle():
    box = spaces.Box(-1, 1, (1,), np.float32)
    with pytest.raises(ValueError, match="dyna_q act discretely"):
        MBPOAgent(MBPOConfig(), observation_space("state", 64, 3), spaces.Discrete(2), "cpu")
    with pytest.raises(ValueError, match="sac learns from pixels"):
        MBPOAgent(MBPOConfig(), observation_space("pixels", 64, 0), box, "cpu")
    with pytest.raises(ValueError, match="agent.elites"):
        MBPOAgent(MBPOConfig(members=3, elites=4), observation_space("state", 64, 3), box, "cpu")
    with pytest.raises(ConfigError, match="agent 'mbpo' cannot be built"):
        cfg = load_config([ROOT / "configs/mbpo/inverted_pendulum.yaml"], ["env.spec=gym:CartPole-v1"])
        from worldmodels.run.loop import check_buildable

        check_buildable(cfg)


def test_mbpo_trains_and_resumes_through_the_loop(tmp_path):
    """A short InvertedPendulum run learns past random balancing (about 5-10 steps), and a resumed run continues
    with its model buffer and counters."""
    overrides = [
        "train.env_steps=1000",
        "train.warmup_steps=250",
        "train.replay_ratio=2",
        "train.eval_every=500",
        "train.eval_episodes=3",
        "train.checkpoint_every=500",
        "agent.rollout_batch=2000",
        "agent.fit_epochs=20",
        "run.progress=false",
        f"run.root={tmp_path}",
        "run.name=mbpo",
    ]
    cfg = load_config([ROOT / "configs/mbpo/inverted_pendulum.yaml"], overrides)
    run_dir = train(cfg)
    evals = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    assert [e["env_steps"] for e in evals] == [500, 1000]
    assert evals[-1]["mean"] > 30  # a random policy keeps the pole up for about 5-10 steps
    failure = evals[-1]["failure"]  # failure modes on the episodes collected since the first eval
    assert 0 <= failure["model_error"] < 0.5  # one-step relative state error (about 0.2 here; states near 0)
    assert failure["horizon"] == 1.0  # MBPO's rollout length, fixed at 1 by this preset
    cfg = load_config([run_dir / "config.yaml"], ["train.env_steps=1250"])
    train(cfg, resume=run_dir)
    payload = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert payload["counters"]["env_steps"] == 1250
    assert payload["counters"]["stream_updates"]["model"] == 4  # at 500, 750, 1000 and 1250 env steps
    assert payload["agent"]["fits"] == 4 and payload["agent"]["buffer"]["added"] > 4000


@pytest.mark.parametrize("bound, expected", [(1e9, 4), (0.0, 1)])
def test_the_adaptive_rule_sets_the_agents_rollout_length_from_the_k_step_error(episode_factory, bound, expected):
    torch.manual_seed(0)
    agent = small_agent(rollout_mode="adaptive", rollout_schedule=(0, 1, 1, 4), adaptive_error=bound)
    replay = ReplayStore(1000)
    for start in range(5):
        replay.add_episode(episode_factory(20, start_value=100.0 * start, pixels=False))
    metrics = agent.update_model(replay.all_transitions())
    # Any error passes an unbounded rule (the schedule's maximum, 4); none passes a zero bound (never below 1).
    assert agent.rollout_length == expected and metrics["train/rollout_length"] == expected
    assert metrics["train/kstep_error_1"] > 0 and np.isfinite(metrics["train/kstep_error_last"])
    assert metrics["train/rollout_transitions"] == 64 * expected
