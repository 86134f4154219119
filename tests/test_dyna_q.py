"""Tabular Dyna-Q: its updates against worked examples, the Dyna Maze, the task check, a run through the loop, a
checkpoint round trip, and that planning speeds learning up as in Sutton & Barto's Figure 8.2."""

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.dyna_q import DynaQAgent, DynaQConfig
from worldmodels.config import ConfigError, load_config
from worldmodels.envs import make_env
from worldmodels.envs.dyna_maze import GOAL, START, WALLS, DynaMaze, cell, free_cells, optimal_q, transition_table
from worldmodels.envs.spaces import observation_space
from worldmodels.run.loop import check_buildable, load_agent, train

UP, DOWN, LEFT, RIGHT = range(4)


def maze_agent(seed: int = 0, **settings) -> DynaQAgent:
    torch.manual_seed(seed)  # the agent seeds itself from torch, as the loop does
    obs_space = observation_space("state", 64, 54, one_hot=True)
    return DynaQAgent(DynaQConfig(**settings), obs_space, spaces.Discrete(4), "cpu")


def one_hot(states, size: int = 54) -> np.ndarray:
    return np.eye(size, dtype=np.float32)[np.asarray(states)]  # [N, S]


def transition(s, a, r, s2, done) -> dict:
    """A 'latest' batch of one transition per entry, as the loop hands it over."""
    return {
        "obs": {"state": one_hot(s)},
        "action": np.asarray(a, np.int64),
        "reward": np.asarray(r, np.float32),
        "next_obs": {"state": one_hot(s2)},
        "terminated": np.asarray(done, bool),
    }


def test_one_q_learning_update_and_one_planning_update_by_hand():
    # Q-learning: Q(s, a) += alpha * (r + gamma * max_a' Q(s', a') - Q(s, a)), no planning.
    agent = maze_agent(planning_steps=0)
    agent.q[20] = [0.5, 0.2, 0.1, 0.0]
    agent.q[19, RIGHT] = 0.3
    agent.update(transition([19], [RIGHT], [0.0], [20], [False]))
    assert agent.q[19, RIGHT] == pytest.approx(0.3 + 0.1 * (0.0 + 0.95 * 0.5 - 0.3))  # 0.3175
    # A terminal transition does not bootstrap, whatever the next state's values.
    agent.q[cell(*GOAL)] = 5.0
    agent.update(transition([cell(1, 8)], [UP], [1.0], [cell(*GOAL)], [True]))
    assert agent.q[cell(1, 8), UP] == pytest.approx(0.1)

    # With K = 1 the model holds the one pair seen, so the planning update replays it from the new value:
    # 0.3175 + 0.1 * (0.475 - 0.3175) = 0.33325.
    agent = maze_agent(planning_steps=1)
    agent.q[20] = [0.5, 0.2, 0.1, 0.0]
    agent.q[19, RIGHT] = 0.3
    agent.update(transition([19], [RIGHT], [0.0], [20], [False]))
    assert agent.q[19, RIGHT] == pytest.approx(0.33325)
    assert agent.model_next[19, RIGHT] == 20 and agent.model_seen.sum() == 1
    assert np.count_nonzero(agent.q) == 4  # the row of state 20 and the one updated pair

    # A planning update on a terminal pair takes the model's reward and does not bootstrap either:
    # real 0 + 0.1 * (1 - 0) = 0.1, then planned 0.1 + 0.1 * (1 - 0.1) = 0.19 (0.665 if it bootstrapped from 5).
    agent = maze_agent(planning_steps=1)
    agent.q[cell(*GOAL)] = 5.0
    agent.update(transition([cell(1, 8)], [UP], [1.0], [cell(*GOAL)], [True]))
    assert agent.q[cell(1, 8), UP] == pytest.approx(0.19)


def test_planning_draws_a_seen_state_then_an_action_taken_there():
    agent = maze_agent()
    agent.model_seen[7, [UP, DOWN, LEFT]] = True  # state 7 has three actions in the model, state 30 one
    agent.model_seen[30, RIGHT] = True
    pairs = agent.draw_pairs(4000)
    assert set(np.unique(pairs)) == {7 * 4 + UP, 7 * 4 + DOWN, 7 * 4 + LEFT, 30 * 4 + RIGHT}
    # Each state half the time (Sutton & Barto's Figure 8.1), not each of the four pairs a quarter of it.
    assert np.mean(pairs == 30 * 4 + RIGHT) == pytest.approx(0.5, abs=0.03)
    assert len(maze_agent().draw_pairs(5)) == 0  # an empty model: nothing to plan on


def test_two_envs_on_the_same_pair_both_count_and_coverage_limits_the_model():
    agent = maze_agent(planning_steps=0)
    agent.update(transition([cell(1, 8)] * 2, [UP, UP], [1.0, 1.0], [cell(*GOAL)] * 2, [True, True]))
    assert agent.q[cell(1, 8), UP] == pytest.approx(0.2)
    assert agent.model_seen.sum() == 1

    partial = maze_agent(model_coverage=0.25)
    assert partial.storable.sum() == 54  # a quarter of the 54 x 4 pairs, drawn from the seed
    assert (maze_agent(model_coverage=0.25).storable == partial.storable).all()
    s, a = np.nonzero(~partial.storable)
    partial.update(transition(s[:3], a[:3], [0.0] * 3, s[:3], [False] * 3))
    assert partial.model_seen.sum() == 0 and not partial.model_seen.any()


def test_epsilon_greedy_breaks_ties_at_random_and_evaluation_is_greedy():
    agent = maze_agent(epsilon=0.0)
    states = {"state": one_hot([cell(*START)] * 400), "is_first": np.zeros(400, bool)}
    action, _, _ = agent.act(states, None, explore=True)
    assert set(action.tolist()) == {0, 1, 2, 3}  # all tied at 0
    agent.q[cell(*START), DOWN] = 0.1
    assert (agent.act(states, None, explore=False)[0] == DOWN).all()
    agent.cfg.epsilon = 1.0
    explored = agent.act(states, None, explore=True)[0]
    assert 70 < (explored == DOWN).sum() < 130  # uniform over the 4 actions


def test_the_maze_layout_and_its_transitions():
    env = DynaMaze()
    state, _ = env.reset(seed=0)
    assert state == cell(2, 0) == 18
    assert env.step(UP)[0] == cell(1, 0) and env.step(LEFT)[0] == cell(1, 0)  # the edge keeps the agent
    assert env.step(RIGHT)[0] == cell(1, 1) and env.step(RIGHT)[0] == cell(1, 1)  # (1, 2) is a wall
    next_state, reward, terminated = transition_table()
    for w in WALLS:  # no move from a free cell enters a wall
        assert not (next_state[free_cells()] == cell(*w)).any()
    assert next_state[cell(3, 5), DOWN] == cell(3, 5) and next_state[cell(0, 6), RIGHT] == cell(0, 6)
    into_goal = np.argwhere(terminated)
    assert sorted(map(tuple, into_goal)) == [(cell(1, 8), UP)]  # the goal's only open side is below
    assert reward.sum() == 1.0 and reward[cell(1, 8), UP] == 1.0
    assert free_cells().sum() == 54 - 7 - 1
    q = optimal_q(0.95)
    assert q[cell(*START)].max() == pytest.approx(0.95**13)  # the shortest path takes 14 steps
    # Through the gym wrapper the cell index becomes a one-hot state.
    wrapped = make_env("gym:worldmodels/DynaMaze-v0", obs="state", seed=0)
    obs, _ = wrapped.reset(seed=0)
    assert obs["state"].shape == (54,) and obs["state"].dtype == np.float32 and obs["state"].argmax() == 18
    assert wrapped.observation_space["state"].low.max() == 0 and wrapped.observation_space["state"].high.min() == 1
    assert wrapped.step(DOWN)[0]["state"].argmax() == cell(3, 0)
    lake = make_env("gym:worldmodels/FrozenLakeDeterministic-v0", obs="state", seed=0)
    lake.reset(seed=0)
    assert lake.step(1)[0]["state"].argmax() == 4  # down, without slipping


@pytest.mark.parametrize(
    ("spec", "advice"), [("gym:Pendulum-v1", "sac, pets or mbpo"), ("gym:CartPole-v1", "muzero or dreamer")]
)
def test_a_task_that_is_not_tabular_is_a_config_error_naming_the_agents_that_fit(spec, advice):
    cfg = load_config([], ["agent.name=dyna_q", f"env.spec={spec}", "env.obs=state"])
    with pytest.raises(ConfigError, match="dyna_q is tabular") as err:
        check_buildable(cfg)
    assert advice in str(err.value)


def test_train_on_the_maze_through_the_loop_and_resume_from_the_checkpoint(tmp_path):
    overrides = [
        "train.env_steps=3000",
        "train.eval_every=0",
        "train.threads=1",
        "run.progress=false",
        f"run.root={tmp_path}",
        "run.name=maze",
        "agent.q_history_every=500",
    ]
    run_dir = train(load_config(["configs/dyna_q/dyna_maze.yaml"], overrides))
    rows = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    assert rows[-1]["env_steps"] == 3000 and rows[-1]["mean"] == 1.0  # the greedy policy reaches the goal
    assert len(list((run_dir / "replay").glob("*.npz"))) >= 10
    agent, _ = load_agent(run_dir)
    assert agent.transitions == 3000 and agent.q_history_steps == [500, 1000, 1500, 2000, 2500, 3000]
    assert np.array_equal(agent.q_history[-1], agent.q.astype(np.float32))
    assert agent.q[cell(1, 8), UP] > 0.5 and agent.model_seen.sum() > 20

    train(load_config([run_dir / "config.yaml"], ["train.env_steps=3100"]), resume=run_dir)
    resumed, _ = load_agent(run_dir)
    assert resumed.transitions == 3100 and len(resumed.q_history) == 6


def test_a_checkpoint_round_trip_restores_the_tables_and_the_random_draws():
    agent = maze_agent(seed=3, planning_steps=5, model_coverage=0.5)
    rng = np.random.default_rng(0)
    for _ in range(200):
        s, a = rng.integers(54, size=2), rng.integers(4, size=2)
        agent.update(transition(s, a, rng.random(2), rng.integers(54, size=2), rng.random(2) < 0.1))
    state = agent.state_dict()
    copy = maze_agent(seed=99, planning_steps=5, model_coverage=0.5)
    copy.load_state_dict(state)
    for key in ("q", "model_next", "model_reward", "model_terminal", "storable", "model_seen"):
        assert np.array_equal(copy.state_dict()[key], state[key]), key
    batch = transition([5, 6], [1, 2], [0.0, 1.0], [7, 8], [False, True])
    obs = {"state": one_hot([5, 6]), "is_first": np.zeros(2, bool)}
    for twin in (agent, copy):
        twin.update(batch)
    assert np.array_equal(agent.q, copy.q)  # the planning draws continue identically
    assert np.array_equal(agent.act(obs, None, True)[0], copy.act(obs, None, True)[0])
    with pytest.raises(ValueError, match="Q table"):
        DynaQAgent(
            DynaQConfig(), observation_space("state", 64, 16, one_hot=True), spaces.Discrete(4), "cpu"
        ).load_state_dict(state)


def episode_lengths(agent: DynaQAgent, episodes: int) -> list[int]:
    """Steps per episode of the agent learning online on the maze (one env, the loop's order: act, step, update)."""
    env, lengths = DynaMaze(), []
    for _ in range(episodes):
        state, _ = env.reset()
        done, steps = False, 0
        while not done:
            action = agent.act({"state": one_hot([state]), "is_first": np.zeros(1, bool)}, None, True)[0]
            following, reward, done, _, _ = env.step(action[0])
            agent.update(transition([state], action, [reward], [following], [done]))
            state, steps = following, steps + 1
        lengths.append(steps)
    return lengths


def test_planning_finds_the_short_path_in_far_fewer_episodes():
    """Figure 8.2: with K = 50 the agent takes a near-shortest path by episodes 3-5; without planning it is still
    wandering (means over 5 seeds). The first episode is the same random walk for both."""
    lengths = {
        k: np.array([episode_lengths(maze_agent(seed, planning_steps=k), 5) for seed in range(5)]) for k in (0, 50)
    }
    assert (lengths[0][:, 0] == lengths[50][:, 0]).all()  # before any reward every K takes the same walk
    late = {k: lengths[k][:, 2:].mean() for k in lengths}
    assert late[50] < 25 and late[0] > 4 * late[50]


def test_the_dyna_study_writes_rows_table_and_plots_and_skips_finished_cells(tmp_path, capsys):
    from worldmodels.cli.benchmark import main

    args = ["dyna", "--seeds", "0", "--planning", "0", "50", "--coverages", "1.0", "0.5", "--episodes", "4"]
    args += ["--env-steps", "300", "--out", str(tmp_path / "out"), "--root", str(tmp_path / "runs")]
    assert main(args) == 0
    out = tmp_path / "out"
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    q_rows = [json.loads(line) for line in (out / "q_error.jsonl").read_text().splitlines()]
    assert sorted({(r["K"], r["coverage"]) for r in q_rows}) == [(0, 1.0), (50, 0.5), (50, 1.0)]
    assert len(episodes) == 12 and {r["episode"] for r in episodes} == {1, 2, 3, 4}
    assert {"agent", "task", "seed", "K", "coverage", "steps", "commit", "cpu", "protocol"} <= set(episodes[0])
    assert q_rows[0]["env_steps"][:3] == [0, 50, 100] and q_rows[0]["env_steps"][-1] == 300  # cut to the budget
    assert all(len(r["q_rms_error"]) == len(r["env_steps"]) for r in q_rows)
    for name in ("table.md", "steps_per_episode.png", "q_error.png", "partial_model.png"):
        assert (out / name).stat().st_size > 0
    capsys.readouterr()
    assert main(args) == 0  # every cell has its rows: nothing runs again
    assert "study: 0 s" in capsys.readouterr().out
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 12
