import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.muzero import MuZeroAgent, MuZeroConfig
from worldmodels.cli.benchmark import main as benchmark_main
from worldmodels.config import load_config
from worldmodels.envs.spaces import observation_space
from worldmodels.models.model_check import episode_observations
from worldmodels.models.muzero import stack_frames
from worldmodels.replay.episode import episode_files, load_episode
from worldmodels.run.loop import train

ROOT = Path(__file__).resolve().parents[1]


def state_agent(**kw) -> MuZeroAgent:
    cfg = MuZeroConfig(**{"latent": 16, "hidden": 32, "simulations": 8, **kw})
    return MuZeroAgent(cfg, observation_space("state", 64, 3), spaces.Discrete(2), "cpu")


def constant_target_value(agent: MuZeroAgent, value: float) -> None:
    """Make the target network's value head decode to ``value`` everywhere."""
    probs = agent.net.support.encode(torch.tensor(value))
    original = agent.target.heads

    def heads(s):
        reward, _, policy = original(s)
        return reward, torch.log(probs + 1e-12).expand(len(s), -1), policy

    agent.target.heads = heads


def window(rewards, valid, terminal_at=None, T=5, A=2):
    """One replay window: rewards [T] on arrival, valid [T], search policies that name their step."""
    policy = np.zeros((T, A), np.float32)
    policy[1:, 0] = np.arange(1, T) / 10  # the search at step t (stored with action t+1) says p0 = (t+1)/10
    policy[1:, 1] = 1 - policy[1:, 0]
    terminal = np.zeros(T, bool)
    if terminal_at is not None:
        terminal[terminal_at] = True
    return {
        "state": np.zeros((T, 3), np.float32),
        "action": np.zeros(T, np.int64),
        "reward": np.asarray(rewards, np.float32),
        "is_terminal": terminal,
        "valid": np.asarray(valid, bool),
        "search_policy": policy,
    }


def random_windows(rng, B: int, T: int, obs: dict, policy=None) -> dict:
    """Replay windows [B, T] with random actions, zero rewards, no terminations, all steps valid."""
    return {
        **obs,
        "action": rng.integers(0, 2, (B, T)),
        "reward": np.zeros((B, T), np.float32),
        "is_terminal": np.zeros((B, T), bool),
        "valid": np.ones((B, T), bool),
        "search_policy": np.full((B, T, 2), 0.5, np.float32) if policy is None else policy,
    }


def test_value_targets_match_hand_computed_n_step_returns():
    # discount 0.5, K = 2 unroll steps, n = 2 td steps, target value V = 2 everywhere.
    agent = state_agent(unroll=2, td_steps=2, discount=0.5)
    constant_target_value(agent, 2.0)
    windows = [
        window([0, 1, 2, 3, 4], [1, 1, 1, 1, 1]),  # the episode goes on past the window
        window([0, 1, 2, 0, 0], [1, 1, 1, 0, 0], terminal_at=2),  # terminates at step 2
        window([0, 1, 0, 0, 0], [1, 1, 0, 0, 0]),  # truncated at step 1 (time limit)
    ]
    batch = {key: np.stack([w[key] for w in windows]) for key in windows[0]}
    tgt = agent.targets(batch)
    # goes on: z0 = 1 + .5*2 + .25*V = 2.5; z1 = 2 + .5*3 + .25*V = 4; z2 = 3 + .5*4 + .25*V = 5.5
    # terminates at 2: z0 = 1 + .5*2 = 2; z1 = 2; z2 = 0 (the terminal state is worth nothing)
    # truncated at 1: z0 = 1 + .5*V = 2; z1 = V = 2; z2 does not exist (masked)
    expected = torch.tensor([[2.5, 4.0, 5.5], [2.0, 2.0, 0.0], [2.0, 2.0, 0.0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 1], [1, 1, 0]])
    torch.testing.assert_close(tgt["value_mask"], mask)
    torch.testing.assert_close(tgt["value"] * mask, expected, atol=2e-3, rtol=0)
    torch.testing.assert_close(tgt["reward"][0], torch.tensor([0.0, 1.0, 2.0]))
    # policy target at unroll step k is the search made at step k, while that step has a successor
    torch.testing.assert_close(tgt["policy"][0, :, 0], torch.tensor([0.1, 0.2, 0.3]))
    torch.testing.assert_close(tgt["policy_mask"], torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 0, 0]]))


def test_pixel_and_continuous_action_shapes():
    cfg = MuZeroConfig(latent=32, hidden=32, depth=4, simulations=4, action_bins=3)
    agent = MuZeroAgent(cfg, observation_space("pixels", 64, 5), spaces.Box(-1, 1, (2,), np.float32), "cpu")
    grid = agent.action_grid
    assert agent.actions == 9 and grid.grid.shape == (9, 2)  # 3 bins per dim, 2 dims
    obs = {"pixels": np.zeros((4, 3, 64, 64), np.uint8), "is_first": np.ones(4, bool)}
    action, _, extras = agent.act(obs, None, explore=True)
    assert action.shape == (4, 2) and set(np.unique(action)) <= {-1.0, 0.0, 1.0}
    assert extras["search_policy"].shape == (4, 9) and extras["search_value"].shape == (4,)
    assert {k: (v.shape[1:], v.dtype) for k, v in extras.items()} == agent.replay_extras()  # what the replay stores
    np.testing.assert_allclose(extras["search_policy"].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(grid.index(grid.grid), np.arange(9))  # index <-> action round trip
    assert grid.index(np.array([[0.9, -0.2]]))[0] == 7  # nearest grid point (1, 0)


def test_too_many_discretised_actions_is_a_clear_error():
    with pytest.raises(ValueError, match="action_bins"):
        MuZeroAgent(
            MuZeroConfig(action_bins=5), observation_space("state", 64, 3), spaces.Box(-1, 1, (6,), np.float32), "cpu"
        )
    with pytest.raises(ValueError, match="consistency_steps must be in 0..agent.unroll"):
        MuZeroAgent(MuZeroConfig(consistency_steps=6), observation_space("state", 64, 3), spaces.Discrete(2), "cpu")


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    agent = state_agent(unroll=3, td_steps=3, batch_size=64)
    rng = np.random.default_rng(0)
    B, T = 64, 7
    batch = random_windows(rng, B, T, {"state": rng.normal(size=(B, T, 3)).astype(np.float32)})
    batch["reward"] = rng.integers(0, 2, (B, T)).astype(np.float32)
    batch["search_policy"][..., 0] = rng.uniform(0, 1, (B, T))
    batch["search_policy"][..., 1] = 1 - batch["search_policy"][..., 0]
    first = agent.update(batch)["loss/total"]
    for _ in range(60):
        last = agent.update(batch)["loss/total"]
    assert last < 0.7 * first


def test_train_smoke_run_stores_search_policies(tmp_path, capsys):
    cfg = load_config(
        [ROOT / "configs/muzero/cartpole.yaml"],
        [
            "train.env_steps=300",
            "train.eval_every=300",
            "train.eval_episodes=1",
            "train.checkpoint_every=150",
            "agent.simulations=4",
            "agent.batch_size=16",
            f"run.root={tmp_path}",
            "run.name=mz",
            "run.progress=false",
        ],
    )
    run_dir = train(cfg)
    episode = load_episode(episode_files(run_dir / "replay")[0])
    policy = episode["search_policy"]  # [L, 2]
    assert policy.shape == (len(episode["reward"]), 2) and policy[0].sum() == 0  # nothing chose the first step
    np.testing.assert_allclose(policy[1:].sum(-1), 1.0, rtol=1e-5)
    evals = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    assert evals[-1]["env_steps"] == 300 and evals[-1]["grad_steps"] > 0
    assert benchmark_main(["muzero-fit", str(run_dir), "--episodes", "3"]) == 0  # the run's predictions, scored
    assert "newest 3 episodes: reward corr" in capsys.readouterr().out


def test_acting_and_training_stack_the_same_frames():
    """Frame t's pixels are all t; acting's stack at step t and the replay window's stack at t agree."""
    agent = MuZeroAgent(
        MuZeroConfig(latent=16, hidden=16, depth=4, simulations=2, frame_stack=3),
        observation_space("pixels", 64, 5),
        spaces.Discrete(2),
        "cpu",
    )
    (stream,) = agent.streams()
    assert stream.name == "train" and stream.spec.history == 2 and stream.spec.seq_len == 5 + 10 + 1
    frames = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 3, 64, 64), np.uint8)  # [L, C, H, W]
    acting, state = [], None
    for t in range(6):
        _, state, _ = agent.act({"pixels": frames[t : t + 1], "is_first": np.array([t == 0])}, state, explore=True)
        assert state.shape == (1, 3, 3, 64, 64)  # the last 3 frames [N, F, C, H, W]
        acting.append(stack_frames(torch.as_tensor(state))[0, ::3, 0, 0].numpy())  # each stacked frame, oldest first
    np.testing.assert_array_equal(acting[0], [0, 0, 0])
    np.testing.assert_array_equal(acting[4], [2, 3, 4])
    # the replay hands 2 history steps in front, the first step repeated before the episode's start
    replayed = frames[[0, 0, 0, 1, 2, 3, 4, 5]][None]  # [1, 2 + T, C, H, W]
    batch = {"pixels": replayed, "valid": np.ones((1, 8), bool), "reward": np.zeros((1, 8), np.float32)}
    windows = agent.windows(batch)
    assert windows["valid"].shape == (1, 6)  # the history is cut off every key but the replayed frames
    stacked = agent.obs_at(windows, np.zeros((1, 6), np.int64), np.arange(6)[None])["pixels"].numpy()  # [1, T, 9, H, W]
    assert stacked.shape == (1, 6, 9, 64, 64)
    for t in range(6):
        np.testing.assert_array_equal(stacked[0, t, ::3, 0, 0], acting[t])
        np.testing.assert_array_equal(stacked[0, t, ::3, 5, 7], acting[t])  # every pixel of the stack
    # a new episode restarts the stack
    _, state, _ = agent.act({"pixels": frames[5:6], "is_first": np.array([True])}, state, explore=True)
    np.testing.assert_array_equal(state[0, :, 0, 0, 0], [5, 5, 5])


def test_consistency_loss_pulls_imagined_latents_to_real_ones():
    # Each window shows one still image, so the latent the dynamics imagines should project like the real one.
    torch.manual_seed(0)
    cfg = MuZeroConfig(
        latent=16, hidden=32, depth=4, unroll=2, td_steps=2, frame_stack=1, augment_pad=0, consistency_weight=2.0
    )
    agent = MuZeroAgent(cfg, observation_space("pixels", 64, 5), spaces.Discrete(2), "cpu")
    rng = np.random.default_rng(0)
    B, T = 16, 5  # K + n + 1
    still = np.repeat(rng.integers(0, 255, (B, 1, 3, 64, 64), dtype=np.uint8), T, 1)
    batch = random_windows(rng, B, T, {"pixels": still})
    first = agent.update(batch)["loss/consistency"]
    assert -0.3 <= first <= 0.3  # minus a cosine similarity; batch-normalised projections start unaligned
    for _ in range(30):
        last = agent.update(batch)["loss/consistency"]
    assert last < -0.5


def test_projections_of_different_observations_are_not_parallel():
    # The consistency loss compares cosines: projections sharing one large component (all nearly parallel)
    # would satisfy it for any pair of observations and teach the dynamics nothing.
    torch.manual_seed(0)
    agent = MuZeroAgent(
        MuZeroConfig(latent=32, hidden=64, depth=4, frame_stack=1),
        observation_space("pixels", 64, 5),
        spaces.Discrete(2),
        "cpu",
    )
    pixels = torch.randint(0, 255, (32, 3, 64, 64), dtype=torch.uint8)
    z = agent.net.project(agent.net.represent({"pixels": pixels}))  # [32, F]
    pairs = torch.nn.functional.cosine_similarity(z, z.roll(1, 0), dim=-1)
    assert pairs.mean() < 0.3


def test_reanalysed_policy_targets_come_from_a_fresh_search():
    torch.manual_seed(0)
    agent = state_agent(unroll=2, td_steps=1, reanalyse=1.0)
    rng = np.random.default_rng(0)
    B, T = 3, 4
    batch = random_windows(
        rng, B, T, {"state": rng.normal(size=(B, T, 3)).astype(np.float32)}, policy=np.zeros((B, T, 2), np.float32)
    )  # nothing stored (warm-up steps)
    batch["valid"][2, 2:] = False
    tgt = agent.targets(batch)
    fresh = agent.plan({"state": batch["state"][:, :3].reshape(-1, 3)}, explore=False).policy.reshape(B, 3, 2)
    torch.testing.assert_close(tgt["policy"], torch.as_tensor(fresh, dtype=torch.float32))
    # every observation with a successor gets a target, even where acting stored none; the last one does not
    np.testing.assert_array_equal(tgt["policy_mask"].numpy(), [[1, 1, 1], [1, 1, 1], [1, 0, 0]])
    assert state_agent(unroll=2, td_steps=1).targets(batch)["policy_mask"].sum() == 0  # stored (none), no reanalysis


def test_bootstrap_values_are_cached_per_step_and_target_generation():
    torch.manual_seed(0)
    agent = state_agent(unroll=2, td_steps=2, target_every=10)
    rng = np.random.default_rng(0)
    B, T = 16, 5
    states = rng.normal(size=(40, 3)).astype(np.float32)  # 40 replay steps; windows read them by step id
    step_id = rng.integers(0, 40, (B, T))
    batch = random_windows(rng, B, T, {"state": states[step_id]})
    batch["reward"] = rng.normal(size=(B, T)).astype(np.float32)
    uncached = agent.targets({k: v for k, v in batch.items()})["value"]  # no step_id: every step evaluated
    calls = []
    original = agent.target.represent
    agent.target.represent = lambda obs: calls.append(len(obs["state"])) or original(obs)
    first = agent.targets({**batch, "step_id": step_id})["value"]
    boot = np.minimum(np.arange(3)[None] + 2, 4)  # [1, K+1] bootstrap index of each unroll step
    assert calls == [len(np.unique(step_id[:, boot[0]]))]  # each distinct bootstrap step evaluated once
    again = agent.targets({**batch, "step_id": step_id})["value"]
    assert len(calls) == 1  # every value came from the cache
    torch.testing.assert_close(first, uncached)
    torch.testing.assert_close(again, uncached)
    agent.updates = 10  # the next target-network generation: values are evaluated afresh
    agent.targets({**batch, "step_id": step_id})
    assert len(calls) == 2


def test_step_cache_hits_only_its_own_step_and_version():
    from worldmodels.replay.step_cache import StepCache

    cache = StepCache(size=8)
    cache.store(np.array([3, 5, -1]), 0, np.array([1.5, 2.5, 9.0], np.float32))
    values, hit = cache.lookup(np.array([3, 5, 11, -1, 4]), 0)  # 11 shares 3's slot; -1 is never cached
    np.testing.assert_array_equal(hit, [True, True, False, False, False])
    np.testing.assert_array_equal(values[:2], [1.5, 2.5])
    assert not cache.lookup(np.array([3]), 1)[1].any()  # another version
    cache.clear()
    assert not cache.lookup(np.array([3]), 0)[1].any()


def test_obs_at_stacks_the_replayed_frames_oldest_first_in_channels_last_memory():
    agent = MuZeroAgent(
        MuZeroConfig(latent=16, hidden=16, depth=4, frame_stack=3),
        observation_space("pixels", 64, 5),
        spaces.Discrete(2),
        "cpu",
    )
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 2 + 6, 3, 64, 64), dtype=np.uint8)  # [B, history + T, C, H, W]
    windows = agent.windows({"pixels": frames, "valid": np.ones((4, 8), bool)})
    rows, steps = np.array([[0, 3], [2, 1]]), np.array([[0, 5], [4, 2]])
    stack = agent.obs_at(windows, rows, steps)["pixels"]  # [2, 2, 9, H, W]
    assert stack.shape == (2, 2, 9, 64, 64)
    for i, j in np.ndindex(rows.shape):
        b, t = rows[i, j], steps[i, j]
        expected = np.concatenate([frames[b, t], frames[b, t + 1], frames[b, t + 2]])  # window step t is frame t + 2
        np.testing.assert_array_equal(stack[i, j].numpy(), expected)
    assert stack.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)


def test_consistency_uses_the_drawn_unroll_steps_only():
    torch.manual_seed(0)
    agent = MuZeroAgent(
        MuZeroConfig(
            latent=16,
            hidden=32,
            depth=4,
            unroll=3,
            td_steps=2,
            frame_stack=1,
            consistency_weight=1.0,
            consistency_steps=2,
        ),
        observation_space("pixels", 64, 5),
        spaces.Discrete(2),
        "cpu",
    )
    rng = np.random.default_rng(0)
    B, T = 8, 6
    pixels = rng.integers(0, 255, (B, T, 3, 64, 64), dtype=np.uint8)
    batch = agent.windows(random_windows(rng, B, T, {"pixels": pixels}))
    seen = []
    original = agent.net.represent
    agent.net.represent = lambda obs: seen.append(len(obs["pixels"])) or original(obs)
    real, weight = agent.consistency_targets(batch)
    assert seen == [B * 2] and real.shape == (B, 3, 32)
    np.testing.assert_allclose(weight.sum(-1).numpy(), 1.0)
    assert ((weight > 0).sum(-1) == 2).all() and ((real.abs().sum(-1) > 0) == (weight > 0)).all()
    agent.cfg.consistency_steps = 0  # all K steps, equal weights
    _, weight = agent.consistency_targets(batch)
    np.testing.assert_allclose(weight.numpy(), 1 / 3)


def test_acting_searches_with_its_thread_count_and_restores_the_callers():
    agent = state_agent(search_threads=1)
    seen = []
    original = agent.net.represent
    agent.net.represent = lambda obs: seen.append(torch.get_num_threads()) or original(obs)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        agent.act({"state": np.zeros((2, 3), np.float32), "is_first": np.ones(2, bool)}, None, explore=True)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_open_loop_unrolls_the_dynamics_with_the_executed_grid_actions(obs):
    """From each step's representation the dynamics take the executed actions (grid indices): the k-th predicted
    reward of the window from step t is the one reached by unrolling actions t + 1 .. t + k by hand."""
    torch.manual_seed(0)
    cfg = MuZeroConfig(latent=16, hidden=32, depth=4, simulations=4, action_bins=3, unroll=3)
    agent = MuZeroAgent(cfg, observation_space(obs, 64, 3), spaces.Box(-1, 1, (1,), np.float32), "cpu")
    rng = np.random.default_rng(0)
    T = 8
    episode = {"action": agent.action_grid.grid[rng.integers(3, size=T + 1)], "reward": rng.normal(size=T + 1)}
    episode["is_first"] = np.arange(T + 1) == 0
    if obs == "state":
        episode["state"] = rng.normal(size=(T + 1, 3)).astype(np.float32)
    else:
        episode["pixels"] = rng.integers(0, 255, (T + 1, 3, 64, 64), dtype=np.uint8)
    out = agent.open_loop(episode, horizon=3)
    assert out.rewards.shape == (T - 3 + 1, 3) and out.states is None and out.model_error > 0
    with torch.no_grad():
        observed = episode_observations(episode, agent.frames)
        s = agent.net.represent({k: v[2:3] for k, v in observed.items()})  # the window from step 2
        for k in (3, 4):
            s = agent.net.dynamics(s, torch.as_tensor(agent.action_grid.index(episode["action"][k : k + 1])))
    torch.testing.assert_close(out.rewards[2, 1], agent.net.decode_scalars(s)[0][0, 0], rtol=1e-4, atol=1e-5)
    assert set(agent.model_check(episode)) >= {"failure/exploitation", "failure/model_error"}
