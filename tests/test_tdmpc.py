"""TD-MPC: SimNorm, the MPPI update with prior sequences, the loss math on worked examples, gradient isolation,
shapes from state and pixels, learning on a point mass, and a smoke run of the train script with a resume."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from worldmodels.agents.tdmpc import TDMPCAgent, TDMPCConfig
from worldmodels.config import load_config
from worldmodels.envs.spaces import observation_space
from worldmodels.models.model_check import episode_observations
from worldmodels.models.muzero import stack_frames
from worldmodels.models.tdmpc import frame_reads, simnorm
from worldmodels.planning import Rollout, mppi, mppi_search, mppi_update
from worldmodels.replay import ReplayStore
from worldmodels.run.loop import load_agent, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"latent": 16, "hidden": 16, "encoder_hidden": 16, "bins": 21, "population": 16, "policy_samples": 4}
SMALL |= {"elites": 4, "iterations": 2, "batch_size": 4, "depth": 4}


def agent_for(obs: str = "state", action_dim: int = 2, **kw) -> TDMPCAgent:
    torch.manual_seed(0)
    cfg = TDMPCConfig(**{**SMALL, **kw})
    return TDMPCAgent(cfg, observation_space(obs, 64, 3), spaces.Box(-1, 1, (action_dim,), np.float32), "cpu")


def sequences(agent: TDMPCAgent, first_at=None, terminal_at=None, seed: int = 0) -> dict:
    """A replayed sequence batch [B, T] of the agent's stream with random contents."""
    spec = agent.streams()[0].spec
    B, T, A = spec.batch_size, spec.seq_len, agent.action_dim
    rng = np.random.default_rng(seed)
    batch = {
        "action": rng.uniform(-1, 1, (B, T, A)).astype(np.float32),
        "reward": rng.normal(size=(B, T)).astype(np.float32),
        "is_first": np.zeros((B, T), bool),
        "is_terminal": np.zeros((B, T), bool),
    }
    if first_at is not None:
        batch["is_first"][:, first_at] = True
    if terminal_at is not None:
        batch["is_terminal"][:, terminal_at] = True
    if "state" in agent.obs_space.spaces:
        batch["state"] = rng.normal(size=(B, T, 3)).astype(np.float32)
    if "pixels" in agent.obs_space.spaces:
        batch["pixels"] = rng.integers(0, 256, (B, T, 3, 64, 64), dtype=np.uint8)
    return batch


def test_simnorm_puts_every_group_of_eight_on_a_simplex():
    x = torch.randn(5, 32) * 10
    z = simnorm(x, 8)
    groups = z.view(5, 4, 8)
    assert torch.all(groups >= 0)
    torch.testing.assert_close(groups.sum(-1), torch.ones(5, 4))
    torch.testing.assert_close(z, x.view(5, 4, 8).softmax(-1).view(5, 32))
    agent = agent_for()
    latent = agent.model.encode({"state": torch.randn(7, 3)})
    torch.testing.assert_close(latent.view(7, 2, 8).sum(-1), torch.ones(7, 2))


# -- the planner --------------------------------------------------------------------------------------------------


def test_mppi_update_weights_the_elites_and_refits_the_std_worked_example():
    candidates = torch.tensor([0.0, 1.0, 0.5, -1.0]).view(1, 4, 1, 1)  # [B, N, H, A]
    returns = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    result = mppi_update(returns, candidates, torch.ones(1, 1, 1), temperature=1.0, elites=2, adapt_std=True)
    w = 1 / (1 + math.exp(-1))  # softmax of (3, 2): the two elites 1.0 and 0.5
    torch.testing.assert_close(result.weights, torch.tensor([[w, 1 - w]]))
    torch.testing.assert_close(result.mean.item(), w * 1.0 + (1 - w) * 0.5)
    torch.testing.assert_close(result.std.item(), 0.5 * math.sqrt(w * (1 - w)))  # |1 - 0.5| sqrt(w1 w2)
    clamped = mppi_update(returns, candidates, torch.ones(1, 1, 1), 1.0, elites=2, adapt_std=True, min_std=0.3)
    assert clamped.std.item() == pytest.approx(0.3)
    kept = mppi_update(returns, candidates, torch.full((1, 1, 1), 0.7), 1.0)  # plain MPPI: all candidates
    assert kept.std.item() == pytest.approx(0.7) and kept.weights.shape == (1, 4)


def test_prior_sequences_join_every_iteration_and_can_win():
    """1-step toy: reward -(a - 0.9)^2. Samples stay near 0 (std 0.01); the one prior sequence holds the best."""
    seen = []

    def rollout(actions):  # [B, N, 1, 1]
        seen.append(actions.clone())
        return Rollout(rewards=-((actions[..., 0] - 0.9) ** 2))

    prior = torch.full((2, 1, 1, 1), 0.9)
    g = torch.Generator().manual_seed(0)
    kw = {"population": 8, "iterations": 3, "elites": 1, "generator": g}
    result = mppi_search(rollout, torch.zeros(2, 1, 1), 0.01, prior=prior, adapt_std=True, **kw)
    assert len(seen) == 3 and all(c.shape == (2, 9, 1, 1) and torch.all(c[:, -1] == 0.9) for c in seen)
    torch.testing.assert_close(result.mean, torch.full((2, 1, 1), 0.9))  # the prior is the one elite
    torch.testing.assert_close(result.elites, prior)
    without = mppi_search(rollout, torch.zeros(2, 1, 1), 0.01, **kw)
    assert without.mean.abs().max() < 0.1
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    plain = mppi(rollout, torch.zeros(2, 1, 1), 0.3, 8, 2, 0.5, generator=g1)  # the old call: a mean [B, H, A]
    torch.testing.assert_close(plain, mppi_search(rollout, torch.zeros(2, 1, 1), 0.3, 8, 2, 0.5, generator=g2).mean)


def test_acting_plans_with_policy_samples_and_warm_starts_within_an_episode():
    agent = agent_for()
    obs = {"state": np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32), "is_first": np.ones(2, bool)}
    action, (frames, plan), extras = agent.act(obs, None, explore=True)
    assert action.shape == (2, 2) and np.all(np.abs(action) <= 1) and frames is None and extras == {}
    assert plan.shape == (2, 3, 2)
    calls = []
    original = agent.plan
    agent.plan = lambda z, warm: calls.append(warm.clone()) or original(z, warm)
    previous = torch.full((2, 3, 2), 0.5)
    agent.act({**obs, "is_first": np.array([False, True])}, (None, previous), explore=False)
    torch.testing.assert_close(calls[0][0], torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.0, 0.0]]))  # shifted
    torch.testing.assert_close(calls[0][1], torch.zeros(3, 2))  # a new episode plans from scratch
    prior_calls = []
    sequences_of = agent.model.policy_sequences
    agent.model.policy_sequences = lambda z, p, h: prior_calls.append((p, h)) or sequences_of(z, p, h)
    agent.act(obs, None, explore=False)
    assert prior_calls == [(4, 3)]


# -- the losses -----------------------------------------------------------------------------------------------------


class ShiftDynamics(nn.Module):
    """z' = z + a[0] on every entry (for worked examples)."""

    def forward(self, x):
        return x[..., :2] + x[..., 2:3]


def test_consistency_loss_worked_example_with_rho_and_the_episode_mask():
    agent = agent_for(latent=8, simnorm_group=4, action_dim=1)
    model = agent.model
    model.dynamics = ShiftDynamics()
    z0 = torch.zeros(1, 2)
    actions = torch.tensor([[[1.0], [2.0]]])  # [B, H, A]: z1 = (1, 1), z2 = (3, 3)
    targets = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])  # [B, H, L]
    rewards, td = torch.zeros(1, 2), torch.zeros(1, 2)
    model.reward_logits = lambda z, a: torch.zeros(*z.shape[:-1], 21)
    model.q_logits = lambda z, a: torch.zeros(5, *z.shape[:-1], 21)
    coefs = {"consistency": 1.0, "reward": 0.0, "value": 0.0}
    _, zs, metrics = model.loss(z0, targets, actions, rewards, td, torch.ones(1, 2), 0.5, coefs)
    # step 0: mean((1-1)^2, (1-0)^2) = 0.5; step 1: mean(9, 9) = 9, weighted by rho = 0.5; averaged over B H = 2
    assert metrics["loss/consistency"] == pytest.approx((0.5 + 0.5 * 9) / 2)
    torch.testing.assert_close(zs, torch.tensor([[[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]]]))
    _, _, masked = model.loss(z0, targets, actions, rewards, td, torch.tensor([[1.0, 0.0]]), 0.5, coefs)
    assert masked["loss/consistency"] == pytest.approx(0.5 / 2)


class FixedHeads(nn.Module):
    """Q heads whose logits decode to fixed values, one per head, whatever the input."""

    def __init__(self, support, values):
        super().__init__()
        self.logits = torch.log(support.encode(torch.tensor(values)) + 1e-12)  # [K, C]

    def forward(self, x, members=None):
        logits = self.logits if members is None else self.logits[members]
        return logits[:, None].expand(-1, x.shape[0], -1)  # [E, M, C]


def test_td_target_bootstraps_the_min_of_two_random_target_heads_and_stops_at_terminals():
    agent = agent_for(latent=8, simnorm_group=4, bins=101, action_dim=1)
    model = agent.model
    values = [3.0, 5.0, 4.0, 6.0, 7.0]
    model.target_qs = FixedHeads(model.support, values)
    reward, terminal = torch.tensor([[1.0, 2.0]]), torch.tensor([[False, True]])
    next_z = torch.rand(1, 2, 8)
    mins = set()
    for seed in range(12):
        pair = torch.randperm(5, generator=torch.Generator().manual_seed(seed))[:2]
        expected = min(values[i] for i in pair.tolist())
        td = model.td_targets(next_z, reward, terminal, 0.9, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(td, torch.tensor([[1.0 + 0.9 * expected, 2.0]]), rtol=0, atol=1e-3)
        mins.add(expected)
    assert len(mins) > 1  # two random heads, not the minimum of all five (3.0 every time)


def test_a_chunk_that_runs_into_the_next_episode_learns_nothing_across_it():
    agent = agent_for(action_dim=1)
    batch = sequences(agent, first_at=2, terminal_at=1)  # T = 4: steps 0, 1 (terminal) | 2 (new episode), 3
    data = agent.prepare(batch)
    torch.testing.assert_close(data["valid"], torch.tensor([[1.0, 0.0, 0.0]]).expand(4, -1))
    assert data["terminal"][:, 0].all() and data["obs"]["state"].shape == (4, 4, 3)
    torch.testing.assert_close(data["action"], torch.as_tensor(batch["action"][:, 1:]))  # a_{t+1}
    assert torch.isfinite(torch.tensor(list(agent.update(batch).values()))).all()


def test_frame_stacks_never_reach_before_an_episode_start():
    is_first = torch.tensor([[False, False, True, False, False]])
    expected = [[0, 0, 0], [0, 0, 1], [2, 2, 2], [2, 2, 3], [2, 3, 4]]
    assert frame_reads(is_first, 3)[0].tolist() == expected


def test_acting_and_training_stack_the_same_frames():
    agent = agent_for("pixels", augment_pad=0)
    episode = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 3, 64, 64), np.uint8)  # frame t is t
    frames, acted = None, []
    for t in range(6):
        frames = agent.frame_history({"pixels": episode[t : t + 1], "is_first": np.array([t == 0])}, frames)
        acted.append(stack_frames(torch.from_numpy(frames))[0, :, 0, 0].tolist())
    batch = sequences(agent)  # T = F - 1 + H + 1 = 6 steps, from the episode's start
    batch["pixels"], batch["is_first"] = episode[None].repeat(4, 0), np.arange(6)[None].repeat(4, 0) == 0
    trained = agent.prepare(batch)["obs"]["pixels"][0, :, :, 0, 0].tolist()  # steps 2..5 of the sequence
    assert trained == acted[2:] and acted[0] == [0] * 9 and acted[3] == [1] * 3 + [2] * 3 + [3] * 3


# -- gradient isolation ---------------------------------------------------------------------------------------------


def snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def unchanged(params, before) -> bool:
    return all(torch.equal(p, b) for p, b in zip(params, before, strict=True))


def test_the_policy_loss_never_changes_the_model_and_the_model_loss_never_the_policy():
    agent = agent_for()
    model, policy = agent.model.world_parameters(), list(agent.model.policy.parameters())
    targets = list(agent.model.target_qs.parameters())
    data = agent.prepare(sequences(agent))
    before_policy = snapshot(policy)
    zs, _ = agent.model_step(data)
    assert unchanged(policy, before_policy) and all(p.grad is None for p in policy)
    before_model, before_targets = snapshot(model), snapshot(targets)
    for p in model:
        p.grad = None
    metrics = agent.policy_step(zs, data["valid"])
    assert metrics["train/policy_grad_norm"] > 0 and not unchanged(policy, before_policy)
    assert unchanged(model, before_model) and all(p.grad is None for p in model)
    assert unchanged(targets, before_targets)
    assert all(p.requires_grad for p in model)  # the Q heads were frozen only for the policy loss


def test_a_model_step_changes_the_model():
    agent = agent_for()
    model = agent.model.world_parameters()
    before = snapshot(model)
    agent.model_step(agent.prepare(sequences(agent)))
    assert not unchanged(model, before)


# -- shapes, errors, checkpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_shapes_from_state_and_pixels(obs):
    agent = agent_for(obs)
    model, N = agent.model, 2
    rng = np.random.default_rng(0)
    observation = {"is_first": np.ones(N, bool)}
    if obs == "state":
        observation["state"] = rng.normal(size=(N, 3)).astype(np.float32)
    else:
        observation["pixels"] = rng.integers(0, 256, (N, 3, 64, 64), dtype=np.uint8)
    action, (frames, plan), _ = agent.act(observation, None, explore=True)
    assert action.shape == (N, 2) and plan.shape == (N, 3, 2)
    assert (frames is None) if obs == "state" else frames.shape == (N, 3, 3, 64, 64)
    action, _, _ = agent.act({**observation, "is_first": np.zeros(N, bool)}, (frames, plan), explore=False)
    assert action.shape == (N, 2)
    batch = sequences(agent)
    assert agent.streams()[0].spec.seq_len == (6 if obs == "pixels" else 4)  # F - 1 + H + 1
    data = agent.prepare(batch)
    z = agent.encode_steps(data["obs"], slice(None))
    assert z.shape == (4, 4, 16)
    latents, rewards = model.rollout(z[:, 0], data["action"])
    assert latents.shape == (4, 3, 16) and rewards.shape == (4, 3)
    assert model.q_logits(z, torch.zeros(4, 4, 2)).shape == (5, 4, 4, 21)
    assert model.policy_sequences(z[:, 0], 3, 5).shape == (4, 3, 5, 2)
    metrics = agent.update(batch)
    assert all(math.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_report_unrolls_rewards_and_values_open_loop(obs):
    agent, rng = agent_for(obs), np.random.default_rng(0)
    replay = ReplayStore(1000, seed=0)
    for length in (6, 20, 9):  # some episodes end inside a window
        t = np.arange(length)
        episode = {
            "action": rng.uniform(-1, 1, (length, 2)).astype(np.float32),
            "reward": rng.normal(size=length).astype(np.float32),
            "is_first": t == 0,
            "is_last": t == length - 1,
            "is_terminal": t == length - 1,
        }
        if obs == "state":
            episode["state"] = rng.normal(size=(length, 3)).astype(np.float32)
        else:
            episode["pixels"] = rng.integers(0, 256, (length, 3, 64, 64), dtype=np.uint8)
        replay.add_episode(episode, save=False)
    report = agent.report(replay, sequences=3, length=8)
    assert report["images"]["report/unroll"].shape[0] == 3
    assert set(report["scalars"]) == {"report/unroll_reward_abs_error", "report/unroll_value_abs_error"}
    assert all(np.isfinite(v) for v in report["scalars"].values())


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_open_loop_predicts_each_windows_rewards_from_its_encoded_start(obs):
    """Window t, step k: the reward head at the latent reached from enc(o_t) through a_{t+1} .. a_{t+k-1}, for
    a_{t+k}; pixels are encoded from the frame stack ending at t."""
    torch.manual_seed(0)
    agent = agent_for(obs)
    rng = np.random.default_rng(0)
    T = 9
    episode = {"action": rng.uniform(-1, 1, (T + 1, 2)).astype(np.float32), "reward": rng.normal(size=T + 1)}
    episode["is_first"] = np.arange(T + 1) == 0
    if obs == "state":
        episode["state"] = rng.normal(size=(T + 1, 3)).astype(np.float32)
    else:
        episode["pixels"] = rng.integers(0, 255, (T + 1, 3, 64, 64), dtype=np.uint8)
    out = agent.open_loop(episode, 3)
    assert out.rewards.shape == (T - 3 + 1, 3) and out.model_error >= 0
    with torch.no_grad():
        observed = episode_observations(episode, agent.frames)
        z = agent.model.encode({k: v[4:5] for k, v in observed.items()})  # window t = 4
        for k in (5, 6):
            action = torch.as_tensor(episode["action"][k : k + 1])
            reward = agent.model.support.decode(agent.model.reward_logits(z, action))
            z = agent.model.next(z, action)
    torch.testing.assert_close(out.rewards[4, 1], reward[0], rtol=1e-4, atol=1e-5)


def test_discrete_actions_are_an_error_naming_the_agents_that_handle_them():
    with pytest.raises(ValueError, match="muzero, dyna_q or dreamer"):
        TDMPCAgent(TDMPCConfig(**SMALL), observation_space("state", 64, 3), spaces.Discrete(3), "cpu")


def test_a_checkpoint_restores_networks_optimizers_and_the_planners_draws():
    agent = agent_for()
    agent.update(sequences(agent))
    state = agent.state_dict()
    copy = agent_for()
    copy.model.q_scale.fill_(3.0)
    copy.load_state_dict(state)
    assert copy.model.q_scale.item() == agent.model.q_scale.item()
    obs = {"state": np.ones((1, 3), np.float32), "is_first": np.ones(1, bool)}
    torch.manual_seed(5)  # the policy prior samples from torch's generator, the planner from the agent's
    first = agent.act(obs, None, explore=True)[0]
    torch.manual_seed(5)
    np.testing.assert_array_equal(first, copy.act(obs, None, explore=True)[0])
    assert copy.opt.state_dict()["state"].keys() == agent.opt.state_dict()["state"].keys()


def test_tdmpc_learns_to_push_the_point_mass_towards_its_reward(point_mass_sequences):
    """800 updates on replayed point-mass sequences: MPPI in the learned latent space, and the policy prior, push
    the point towards 0 from both sides (an untrained agent's plans point anywhere)."""
    sizes = {"hidden": 32, "encoder_hidden": 32, "population": 32, "policy_samples": 8, "elites": 8, "iterations": 3}
    agent = agent_for(action_dim=1, batch_size=64, discount=0.9, **sizes)
    length = agent.streams()[0].spec.seq_len
    for i in range(800):
        agent.update(point_mass_sequences(64, length, seed=i))
    position = np.array([[1.5], [1.0], [-1.0], [-1.5]], np.float32)
    obs = {"state": np.concatenate([position, np.zeros((4, 2), np.float32)], -1), "is_first": np.ones(4, bool)}
    towards_zero = -np.sign(position[:, 0])
    for _ in range(3):  # three independent plans
        action, _, _ = agent.act(obs, None, explore=False)
        assert np.all(action[:, 0] * towards_zero > 0.5), action[:, 0]
    with torch.no_grad():
        prior, _ = agent.model.policy(agent.model.encode({"state": torch.as_tensor(obs["state"])}), deterministic=True)
    assert np.all(prior[:, 0].numpy() * towards_zero > 0), prior[:, 0]


def test_train_script_smoke_run_and_resume(tmp_path):
    overrides = [f"run.root={tmp_path}", "run.name=tdmpc"]
    run_dir = train(load_config([ROOT / "configs/tdmpc/tiny.yaml"], overrides))
    evals = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    assert evals[-1]["env_steps"] == 300 and evals[-1]["grad_steps"] == 100  # (300 - 100) x 0.5
    failure = evals[-1]["failure"]  # failure modes of the episodes collected after the first update
    assert set(failure) == {
        "model_error",
        "exploitation",
        "exploitation_per_step",
        "predicted_return",
        "achieved_return",
        "horizon",
    }
    assert all(math.isfinite(v) for v in failure.values()) and failure["model_error"] >= 0
    spent, counts = evals[-1]["time_s"], evals[-1]["time_n"]  # where the time went: every part was timed
    assert set(spent) == set(counts) == {"warmup", "decide", "env", "update:train", "model_check", "eval"}
    # every part is timed (warm-up's 100 random actions may round to 0.000 s on a fast machine)
    assert min(spent.values()) >= 0 and min(spent["decide"], spent["update:train"], spent["env"]) > 0
    assert sum(spent.values()) <= evals[-1]["wall_s"] + 0.5
    assert (counts["warmup"], counts["decide"], counts["env"], counts["update:train"]) == (100, 200, 300, 100)
    train(load_config([run_dir / "config.yaml"], ["train.env_steps=400", "train.eval_every=400"]), resume=run_dir)
    agent, _ = load_agent(run_dir)
    assert agent.updates == 150
    evals = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    assert evals[-1]["env_steps"] == 400 and math.isfinite(evals[-1]["mean"])
