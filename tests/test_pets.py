import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.pets import PETSAgent, PETSConfig
from worldmodels.agents.state_model import refit_generator
from worldmodels.config import load_config
from worldmodels.envs.spaces import observation_space
from worldmodels.replay import ReplayStore
from worldmodels.run.loop import train

ROOT = Path(__file__).resolve().parents[1]


def small_agent(**kw):
    cfg = PETSConfig(
        **{
            "members": 5,
            "hidden": (64, 64),
            "horizon": 5,
            "population": 100,
            "iterations": 3,
            "particles": 5,
            "fit_epochs": 40,
            **kw,
        }
    )
    return PETSAgent(cfg, observation_space("state", 64, 1), spaces.Box(-1, 1, (1,), np.float32), "cpu")


@pytest.mark.parametrize("planner", ["cem", "mppi", "random"])
def test_pets_plans_towards_reward_on_a_learned_model(planner, point_mass):
    torch.manual_seed(0)
    agent = small_agent(planner=planner)
    metrics = agent.update(point_mass())
    assert metrics["loss/model_holdout_mse"] < 0.05
    obs = {"state": np.array([[1.5], [-1.5], [0.8]], np.float32), "is_first": np.ones(3, bool)}
    action, plan, extras = agent.act(obs, None, explore=False)
    assert action.shape == (3, 1) and plan.shape == (3, 5, 1) and extras == {}
    assert action[0, 0] < -0.3 and action[1, 0] > 0.3 and action[2, 0] < 0  # towards 0, for every start at once


def test_warm_start_is_kept_within_an_episode_and_reset_on_a_new_one(point_mass):
    agent = small_agent()
    agent.update(point_mass(500))
    obs = {"state": np.array([[1.0], [1.0]], np.float32), "is_first": np.array([False, True])}
    previous = torch.full((2, 5, 1), -0.9)
    calls = []
    agent.plan = lambda states, warm: calls.append(warm) or warm
    agent.act(obs, previous, explore=True)
    torch.testing.assert_close(calls[0][0, :4], previous[0, 1:])
    torch.testing.assert_close(calls[0][1], torch.zeros(5, 1))


def test_pets_rejects_pixels_discrete_actions_and_negative_rollout_rows():
    with pytest.raises(ValueError, match="state observations"):
        PETSAgent(PETSConfig(), observation_space("pixels", 64, 0), spaces.Box(-1, 1, (1,), np.float32), "cpu")
    with pytest.raises(ValueError, match="Box action space"):
        PETSAgent(PETSConfig(), observation_space("state", 64, 3), spaces.Discrete(2), "cpu")
    with pytest.raises(ValueError, match="agent.rollout_rows must be 0"):
        box = spaces.Box(-1, 1, (1,), np.float32)
        PETSAgent(PETSConfig(rollout_rows=-1), observation_space("state", 64, 3), box, "cpu")


@pytest.mark.slow
def test_pets_swings_pendulum_up_within_five_episodes(tmp_path):
    overrides = ["train.env_steps=1000", "run.progress=false", f"run.root={tmp_path}", "run.name=pets"]
    cfg = load_config([ROOT / "configs/pets/pendulum.yaml"], overrides)
    run_dir = train(cfg)
    assert json.loads((run_dir / "evals.jsonl").read_text().splitlines()[-1])["mean"] > -300


def test_learned_termination_keeps_the_planner_away_from_the_edge(point_mass):
    """Reward 1 per step alive; the episode ends when |s'| > 1.8. Only the learned termination tells the
    planner that drifting outward loses the reward."""
    torch.manual_seed(0)
    batch = point_mass(4000)
    s2 = batch["next_obs"]["state"][:, 0]
    batch["reward"], batch["terminated"] = np.ones_like(s2), np.abs(s2) > 1.8
    agent = small_agent(termination="learned")
    metrics = agent.update(batch)
    assert np.isfinite(metrics["loss/termination"])
    probe = torch.linspace(-2, 2, 81)[:, None]
    predicted = agent.terminator(probe)
    assert (predicted == (probe[:, 0].abs() > 1.8)).float().mean() > 0.95
    obs = {"state": np.array([[1.7], [-1.7]], np.float32), "is_first": np.ones(2, bool)}
    action, _, _ = agent.act(obs, None, explore=False)
    assert action[0, 0] < 0 and action[1, 0] > 0  # inward, away from the end
    restored = small_agent(termination="learned")
    restored.load_state_dict(agent.state_dict())
    assert torch.equal(restored.terminator(probe), predicted)


def test_a_termination_classifier_that_saw_no_ending_never_ends_episodes():
    from worldmodels.models.termination import TerminationClassifier

    classifier = TerminationClassifier(2)
    assert np.isnan(classifier.fit(torch.randn(50, 2), torch.zeros(50, dtype=torch.bool)))
    assert not classifier(torch.randn(10, 2)).any()


def test_pets_refits_on_all_data_in_one_stream_at_the_run_replay_ratio():
    (stream,) = small_agent().streams()
    assert stream.spec.kind == "all" and stream.ratio is None and stream.every_env_steps == 0


OBS = {"state": np.array([[0.5], [-0.5]], np.float32), "is_first": np.ones(2, bool)}


def seeded_agent(seed, fitted=False):
    """Built as the loop builds it, after torch.manual_seed(train.seed). An unfitted model plans too, which is
    enough to compare the planner's randomness."""
    torch.manual_seed(seed)
    np.random.seed(1000 + seed)  # the global numpy generator must not matter
    agent = small_agent()
    agent.fitted = fitted
    return agent


def first_action(agent):
    return agent.act(OBS, None, explore=True)[0]


@pytest.mark.parametrize("fitted", [False, True], ids=["random-actions", "planned"])
def test_randomness_follows_the_run_seed(fitted):
    a, b, other = seeded_agent(1, fitted), seeded_agent(1, fitted), seeded_agent(2, fitted)
    first = first_action(a)
    np.testing.assert_array_equal(first, first_action(b))
    assert not np.allclose(first, first_action(other))
    assert not np.allclose(first, first_action(a))  # the generator moved on
    draws = [
        torch.rand(4, generator=refit_generator(agent.seed, 100)) for agent in (a, b, other)
    ]  # the refit's generator
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


@pytest.mark.parametrize("fitted", [False, True], ids=["random-actions", "planned"])
def test_a_checkpoint_restores_the_generators(fitted):
    agent = seeded_agent(3, fitted)
    first_action(agent)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    expected = [first_action(agent) for _ in range(2)]
    restored = seeded_agent(4)
    restored.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=False))
    np.testing.assert_array_equal(np.stack([first_action(restored) for _ in range(2)]), np.stack(expected))


def test_a_checkpoint_without_generators_loads_and_keeps_the_seeded_ones():
    old = {k: v for k, v in seeded_agent(5, True).state_dict().items() if k in ("model", "fitted")}
    restored = seeded_agent(5)
    restored.load_state_dict(old)
    assert restored.fitted
    np.testing.assert_array_equal(first_action(restored), first_action(seeded_agent(5, True)))


def point_mass_replay(episodes=8, length=20, seed=0):
    """Episodes of s' = s + 0.2 a, reward -|s'|, in the replay's layout (action t led to state t)."""
    rng = np.random.default_rng(seed)
    replay = ReplayStore(10_000)
    for _ in range(episodes):
        action = rng.uniform(-1, 1, (length, 1)).astype(np.float32)
        action[0] = 0
        state = rng.uniform(-1, 1) + 0.2 * np.cumsum(action, 0)  # [L, 1]
        t = np.arange(length)
        replay.add_episode(
            {
                "state": state.astype(np.float32),
                "action": action,
                "reward": -np.abs(state[:, 0]),
                "is_first": t == 0,
                "is_last": t == length - 1,
                "is_terminal": np.zeros(length, bool),
            }
        )
    return replay


def test_report_predicts_replayed_states_k_steps_ahead():
    torch.manual_seed(0)
    replay = point_mass_replay()
    agent = small_agent(fit_epochs=100, holdout_ratio=0.2)
    assert agent.report(replay) is None  # nothing fitted yet
    agent.update(replay.all_transitions())
    report = agent.report(replay, sequences=3, length=12, context=4)
    image = report["images"]["report/kstep"]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[0] == 3
    scalars = report["scalars"]
    assert {
        "report/kstep_state_mse",
        "report/kstep_epistemic_std",
        "report/kstep_aleatoric_std",
        "report/kstep_reward_abs_error",
    } <= set(scalars)
    assert all(np.isfinite(v) for v in scalars.values())
    assert scalars["report/kstep_state_mse"] < 1e-3  # states spread over about [-3, 3]; misaligned actions: > 0.02
    assert agent.report(replay)["scalars"]["report/kstep_state_mse"] < 1e-3  # default length: the whole episode
    with pytest.raises(ValueError, match="needs an episode of 30 steps; the longest stored episode has 20"):
        agent.report(replay, length=30)
