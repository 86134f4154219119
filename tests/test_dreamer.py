import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.dreamer import DreamerAgent, DreamerConfig
from worldmodels.behaviours.returns import lambda_returns
from worldmodels.envs import make_env
from worldmodels.envs.spaces import observation_space
from worldmodels.nets.distributions import (
    TwoHot,
    categorical_kl,
    straight_through_onehot,
    symexp,
    symlog,
    unimix_logits,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(batch_size=3, seq_len=12, depth=4, deter=32, stoch=4, classes=4, hidden=32, head_layers=1, horizon=5)


def agent(obs="pixels", discrete=False, **kw):
    space = observation_space(obs, 64, 5)
    actions = spaces.Discrete(3) if discrete else spaces.Box(-1, 1, (2,), np.float32)
    return DreamerAgent(DreamerConfig(**{**TINY, **kw}), space, actions, "cpu")


def batch(obs="pixels", discrete=False, b=3, t=12, seed=0):
    rng = np.random.default_rng(seed)
    out = {
        "reward": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": np.zeros((b, t), bool),
        "is_last": np.zeros((b, t), bool),
        "is_terminal": np.zeros((b, t), bool),
    }
    out["is_first"][:, 0] = True
    out["action"] = rng.integers(0, 3, (b, t)) if discrete else rng.uniform(-1, 1, (b, t, 2)).astype(np.float32)
    if obs in ("pixels", "both"):
        out["pixels"] = rng.integers(0, 255, (b, t, 3, 64, 64), dtype=np.uint8)
    if obs in ("state", "both"):
        out["state"] = rng.normal(size=(b, t, 5)).astype(np.float32)
    return out


@pytest.mark.parametrize("obs", ["pixels", "state", "both"])
def test_world_model_shapes(obs):
    a = agent(obs)
    data = a.to_torch(batch(obs))
    wm = a.wm
    embed = wm.embed(data["obs"])
    assert embed.shape[:2] == (3, 12)
    states, post, prior = wm.observe(embed, data["action"], data["is_first"])
    assert states.deter.shape == (3, 12, 32) and states.stoch.shape == (3, 12, 4, 4)
    assert post.shape == prior.shape == (3, 12, 4, 4)
    torch.testing.assert_close(states.stoch.sum(-1), torch.ones(3, 12, 4))  # one-hot samples
    feat = states.features()
    assert feat.shape == (3, 12, wm.feat_dim)
    assert wm.reward(feat).shape == (3, 12) and wm.continue_prob(feat).shape == (3, 12)
    if obs != "state":
        assert wm.decode_pixels(feat).shape == (3, 12, 3, 64, 64)
    rolled, rewards, continues = wm.rollout(states.map(lambda x: x[:, -1]), torch.zeros(3, 7, 2))
    assert rolled.deter.shape == (3, 7, 32) and rewards.shape == continues.shape == (3, 7)


def test_is_first_resets_the_recurrent_state():
    wm = agent("state").wm
    embed = torch.randn(2, 6, wm.post_e.in_features)
    action = torch.randn(2, 6, 2)
    first = torch.zeros(2, 6, dtype=torch.bool)
    first[:, 0] = True
    first[1, 3] = True  # sequence 1 starts a new episode at t=3
    torch.manual_seed(0)
    states, _, _ = wm.observe(embed, action, first)
    torch.manual_seed(0)
    fresh, _, _ = wm.observe(embed[:, 3:], action[:, 3:] * 0, torch.ones(2, 3, dtype=torch.bool))
    torch.testing.assert_close(states.deter[1, 3], fresh.deter[1, 0])
    assert not torch.allclose(states.deter[0, 3], fresh.deter[0, 0])


def test_symlog_and_two_hot_round_trip():
    x = torch.tensor([-1000.0, -3.5, -0.1, 0.0, 0.2, 7.0, 12345.0])
    torch.testing.assert_close(symexp(symlog(x)), x)
    twohot = TwoHot(bins=255)
    encoded = twohot.encode(x)
    torch.testing.assert_close(encoded.sum(-1), torch.ones(7))
    assert ((encoded > 0).sum(-1) <= 2).all()
    torch.testing.assert_close(twohot.decode(torch.log(encoded + 1e-12)), x, rtol=1e-4, atol=1e-4)


def test_two_hot_worked_example():
    twohot = TwoHot(bins=3, low=-1.0, high=1.0)  # points -1, 0, 1 in symlog space
    x = symexp(torch.tensor(0.25))
    torch.testing.assert_close(twohot.encode(x), torch.tensor([0.0, 0.75, 0.25]))
    torch.testing.assert_close(twohot.encode(torch.tensor(1e9)), torch.tensor([0.0, 0.0, 1.0]))  # clipped


def test_categorical_kl_matches_the_definition_and_unimix_floors_probabilities():
    p, q = torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([[0.2, 0.5, 0.3]])
    expected = (p * (p / q).log()).sum()
    torch.testing.assert_close(categorical_kl(p.log()[None], q.log()[None]), expected[None])
    mixed = unimix_logits(torch.tensor([[100.0, 0.0, 0.0, 0.0]]), 0.01).softmax(-1)
    torch.testing.assert_close(mixed.min(), torch.tensor(0.0025))


def test_kl_balance_and_free_bits_in_the_world_model_loss(monkeypatch):
    """wm.loss's dyn term trains only the prior and its rep term only the posterior (each call gets the other side
    detached), and a KL under free_nats costs exactly free_nats."""
    import worldmodels.models.rssm as rssm

    a = agent("state", free_nats=1.0)
    data = a.to_torch(batch("state"))
    calls, kl = [], rssm.categorical_kl  # (posterior needs grad, prior needs grad) per call: dyn, then rep

    def recorded_kl(post, prior):
        calls.append((post.requires_grad, prior.requires_grad))
        return kl(post, prior) * 0.0 + 0.25  # [B, T], under the free bits

    monkeypatch.setattr(rssm, "categorical_kl", recorded_kl)
    _, _, metrics = a.wm.loss(data["obs"], data["action"], data["reward"], data["is_first"], data["is_terminal"])
    assert calls == [(False, True), (True, False)]  # dyn: posterior detached; rep: prior detached
    assert metrics["loss/wm_dyn"] == metrics["loss/wm_rep"] == 1.0  # clamped up to free_nats
    assert metrics["train/kl"] == 0.25  # the unclamped KL is what is logged


def test_straight_through_onehot_samples_forward_and_passes_softmax_gradients():
    logits = torch.randn(5, 3, requires_grad=True)
    sample = straight_through_onehot(logits)
    torch.testing.assert_close(sample.detach(), sample.detach().round())  # one-hot up to float rounding
    torch.testing.assert_close(sample.detach().sum(-1), torch.ones(5))
    (sample * torch.arange(3.0)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_lambda_returns_worked_example():
    # H=2, r=[1, 2], d=[0.9, 0.9], v=[0, 10, 20], lambda=0.5:
    # R1 = 2 + 0.9 * (0.5 * 20 + 0.5 * 20) = 20;  R0 = 1 + 0.9 * (0.5 * 10 + 0.5 * 20) = 14.5
    returns = lambda_returns(
        torch.tensor([[1.0], [2.0]]), torch.full((2, 1), 0.9), torch.tensor([[0.0], [10.0], [20.0]]), 0.5
    )
    torch.testing.assert_close(returns, torch.tensor([[14.5], [20.0]]))


@pytest.mark.parametrize("discrete", [False, True])
def test_actor_critic_gradients_never_reach_the_world_model(discrete):
    a = agent("state", discrete=discrete)
    data = a.to_torch(batch("state", discrete=discrete))
    with torch.no_grad():
        states, _, _ = a.wm.observe(a.wm.embed(data["obs"]), data["action"], data["is_first"])
    wm_before = {k: v.clone() for k, v in a.wm.state_dict().items()}
    actor_before = [p.clone() for p in a.behaviour.actor.parameters()]
    a.behaviour.update(a.wm, states.map(lambda x: x.flatten(0, 1)), torch.ones(36))
    assert all(p.grad is None for p in a.wm.parameters())
    for key, value in a.wm.state_dict().items():
        torch.testing.assert_close(value, wm_before[key], msg=key)
    assert any(not torch.equal(p, q) for p, q in zip(a.behaviour.actor.parameters(), actor_before, strict=True))
    assert all(p.requires_grad for p in a.wm.parameters())  # unfrozen again afterwards


def test_world_model_loss_falls_on_a_fixed_replay():
    torch.manual_seed(0)
    env = make_env("dmc:cartpole-swingup", obs="pixels", size=64, action_repeat=2, seed=0, fast_render=True)
    obs, _ = env.reset(seed=0)
    frames, actions, rewards = [obs["pixels"]], [np.zeros(1, np.float32)], [0.0]
    rng = np.random.default_rng(0)
    for _ in range(23):
        action = rng.uniform(-1, 1, 1).astype(np.float32)
        obs, reward, *_ = env.step(action)
        frames.append(obs["pixels"])
        actions.append(action)
        rewards.append(reward)
    fixed = {
        "pixels": np.stack(frames)[None].repeat(2, 0),
        "action": np.stack(actions)[None].repeat(2, 0),
        "reward": np.array(rewards, np.float32)[None].repeat(2, 0),
        "is_first": np.eye(1, 24, dtype=bool).repeat(2, 0),
        "is_last": np.zeros((2, 24), bool),
        "is_terminal": np.zeros((2, 24), bool),
    }
    space = observation_space("pixels", 64, 0)
    a = DreamerAgent(
        DreamerConfig(**{**TINY, "depth": 8, "model_lr": 1e-3}), space, spaces.Box(-1, 1, (1,), np.float32), "cpu"
    )
    data = a.to_torch(fixed)
    losses = []
    for _ in range(40):
        loss, _, _ = a.wm.loss(data["obs"], data["action"], data["reward"], data["is_first"], data["is_terminal"])
        a.wm_opt.zero_grad()
        loss.backward()
        a.wm_opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_act_keeps_a_recurrent_state_and_returns_env_actions():
    a = agent("pixels", discrete=True)
    obs = {"pixels": np.zeros((2, 3, 64, 64), np.uint8), "is_first": np.ones(2, bool)}
    action, state, extras = a.act(obs, None, explore=True)
    assert extras == {}
    assert action.shape == (2,) and action.dtype.kind == "i" and set(action) <= {0, 1, 2}
    action2, state2, _ = a.act({**obs, "is_first": np.zeros(2, bool)}, state, explore=False)
    assert not torch.equal(state[0].deter, state2[0].deter)


@pytest.mark.parametrize("discrete", [False, True])
def test_model_check_predicts_the_executed_actions_rewards_from_every_posterior(discrete):
    """Failure modes on one episode: horizon-5 windows from each of its 11 transitions' starts (12 - 5 = 7)."""
    a = agent("state", discrete=discrete)
    episode = {key: value[0] for key, value in batch("state", discrete=discrete).items()}
    metrics = a.model_check(episode)
    assert metrics["failure/horizon"] == 5.0
    achieved = np.lib.stride_tricks.sliding_window_view(episode["reward"][1:], 5).sum(-1).mean()
    assert metrics["failure/achieved_return"] == pytest.approx(achieved, rel=1e-5)
    assert metrics["failure/model_error"] > 0  # the world-model loss of an untrained model


def test_train_script_tiny_dreamer_writes_a_readable_imagination_video(tmp_path):
    import io

    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--config",
        str(ROOT / "configs/dreamer/tiny.yaml"),
        f"run.root={tmp_path}",
        "run.name=dream",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    events = EventAccumulator(str(tmp_path / "dream"), size_guidance={"images": 0})
    events.Reload()
    assert "report/openloop" in events.Tags()["images"]
    video = events.Images("report/openloop")[-1]
    gif = Image.open(io.BytesIO(video.encoded_image_string))
    assert gif.n_frames == 16 and gif.size == (4 * 64, 3 * 64)  # 4 sequences x (truth, model, error)
    gif.seek(0)
    first = np.asarray(gif.convert("RGB"))
    assert tuple(first[0, 0]) == (0, 200, 0)  # context frames carry a green border
    gif.seek(15)
    assert tuple(np.asarray(gif.convert("RGB"))[0, 0]) == (220, 0, 0)  # imagined frames a red one
    assert "report/openloop_image_mse" in events.Tags()["scalars"]

    imagine = [
        sys.executable,
        str(ROOT / "scripts" / "imagine.py"),
        "--checkpoint",
        str(tmp_path / "dream"),
        "--length",
        "16",
        "--sequences",
        "2",
        "--out",
        str(tmp_path / "img"),
    ]
    done = subprocess.run(imagine, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "img" / "openloop.gif").n_frames == 16
    assert (tmp_path / "img" / "openloop_errors.png").exists()


def test_image_errors_score_the_decoded_open_loop_images_against_the_episode(monkeypatch):
    """With a decoder that always shows grey (0.5) and frame t filled with 20 t / 255, the error after k open-loop
    steps from start s is (0.5 - 20 (s + k) / 255)^2: checked against that by hand, chunked or not."""
    a = agent("pixels")
    episode = {key: value[0] for key, value in batch("pixels").items()}  # 12 steps: 11 transitions, 8 windows of 4
    frames = 20 * np.arange(12, dtype=np.uint8)  # [T]
    episode["pixels"] = np.zeros((12, 3, 64, 64), np.uint8) + frames[:, None, None, None]
    monkeypatch.setattr(a.wm, "decode_pixels", lambda feat: torch.zeros(*feat.shape[:-1], 3, 64, 64))
    errors = a.image_errors(episode, horizon=4, chunk=3)  # chunks of 3, 3 and 2 windows
    starts, k = np.arange(8)[:, None], np.arange(1, 5)[None]
    expected = ((0.5 - 20 * (starts + k) / 255) ** 2).mean(0)  # [4]
    torch.testing.assert_close(errors, torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(a.image_errors(episode, horizon=4, chunk=64), errors)
    assert agent("state").image_errors({key: value[0] for key, value in batch("state").items()}, 4) is None
