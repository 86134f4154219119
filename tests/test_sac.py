import math

import numpy as np
import torch
from gymnasium import spaces

from worldmodels.agents.sac import SACAgent, SACConfig
from worldmodels.behaviours.sac import SACSettings
from worldmodels.envs.spaces import observation_space
from worldmodels.nets.actor import TanhGaussianActor
from worldmodels.nets.conv import random_shift


def test_tanh_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    actor = TanhGaussianActor(4, 3, SACSettings().hidden, SACSettings().log_std_bounds)
    features = torch.randn(64, 4)
    action, logp = actor(features)
    mean, log_std = actor.net(features).chunk(2, dim=-1)
    log_std = -5 + 0.5 * 7 * (torch.tanh(log_std) + 1)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform(cache_size=1)]
    )
    expected = dist.log_prob(action.clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    mask = action.abs().max(-1).values < 0.999  # away from the saturated edge, where atanh is ill-conditioned
    torch.testing.assert_close(logp[mask], expected[mask], atol=1e-3, rtol=1e-3)
    assert action.abs().max() < 1


def test_deterministic_action_is_tanh_of_the_mean():
    actor = TanhGaussianActor(4, 2, SACSettings().hidden, SACSettings().log_std_bounds)
    features = torch.randn(5, 4)
    action, _ = actor(features, deterministic=True)
    torch.testing.assert_close(action, torch.tanh(actor.net(features).chunk(2, -1)[0]))


def _agent(obs="state", **kw):
    space = observation_space(obs, 16, 3)
    cfg = SACConfig(hidden=(32, 32), batch_size=8, encoder_channels=(8, 8), feature_dim=16, **kw)
    return SACAgent(cfg, space, spaces.Box(-1, 1, (2,), np.float32), "cpu")


def _batch(obs_kind, n=8):
    rng = np.random.default_rng(0)

    def obs():
        out = {}
        if obs_kind in ("pixels", "both"):
            out["pixels"] = rng.integers(0, 255, (n, 3, 16, 16), dtype=np.uint8)
        if obs_kind in ("state", "both"):
            out["state"] = rng.normal(size=(n, 3)).astype(np.float32)
        return out

    return {
        "obs": obs(),
        "next_obs": obs(),
        "action": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "reward": rng.normal(size=n).astype(np.float32),
        "terminated": np.zeros(n, bool),
    }


def test_update_moves_target_networks_by_tau_and_returns_metrics():
    agent = _agent(tau=0.5)
    before = [p.clone() for p in agent.learner.critic_target.parameters()]
    metrics = agent.update(_batch("state"))
    assert {"loss/critic", "loss/actor", "loss/alpha", "train/alpha"} <= set(metrics)
    for old, target, online in zip(
        before, agent.learner.critic_target.parameters(), agent.learner.critic.parameters(), strict=True
    ):
        torch.testing.assert_close(target, 0.5 * old + 0.5 * online)


def test_critic_fits_a_fixed_batch():
    torch.manual_seed(0)
    agent = _agent(gamma=0.0, critic_lr=3e-3)  # Q target = reward: a plain regression
    batch = _batch("state", n=8)
    first = agent.update(batch)["loss/critic"]
    for _ in range(300):
        last = agent.update(batch)["loss/critic"]
    assert last < 0.05 * first


def test_pixel_sac_acts_and_updates():
    agent = _agent("both")
    batch = _batch("both")
    action, _, extras = agent.act(batch["obs"], None, explore=True)
    assert extras == {}
    assert action.shape == (8, 2) and np.abs(action).max() <= 1
    assert math.isfinite(agent.update(batch)["loss/critic"])


def test_random_shift_moves_images_by_whole_pixels_within_the_pad():
    image = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1)
    shifted = random_shift(image, pad=1)
    assert shifted.shape == image.shape
    centre = shifted[:, 0, 1, 1]  # pixel (1,1) moves to one of its 3x3 neighbours
    neighbours = {float(image[0, 0, i, j]) for i in range(3) for j in range(3)}
    assert set(centre.round().tolist()) <= neighbours and len(set(centre.tolist())) > 1


def test_random_shift_is_a_replicate_padded_crop_and_keeps_uint8():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    torch.manual_seed(0)
    shifted = random_shift(images, pad=2)
    assert shifted.dtype == torch.uint8 and shifted.shape == images.shape
    torch.manual_seed(0)  # the same shifts on the channels-last layout give the same images, in that layout
    nhwc = random_shift(images.contiguous(memory_format=torch.channels_last), pad=2)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and torch.equal(nhwc, shifted)
    padded = torch.nn.functional.pad(images.float(), (2,) * 4, mode="replicate")  # [B, C, 12, 12]
    crops = {(dy, dx): padded[:, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)}
    offsets = set()
    for b in range(len(images)):  # every image is exactly one of the 25 crops
        match = [key for key, crop in crops.items() if torch.equal(crop[b], shifted[b].float())]
        assert match, f"image {b} is no crop of its padded original"
        offsets.add(match[0])
    assert len(offsets) > 5  # offsets differ per image


def test_an_update_computes_the_critic_heads_gradients_once_for_the_critic_loss_only():
    """The actor's loss passes through the Q heads frozen: across a whole update each head weight's gradient is
    computed once (the critic step), never for the actor's loss."""
    agent = _agent()
    calls = []
    for p in agent.learner.critic.q.parameters():
        p.register_hook(lambda grad: calls.append(grad.shape))
    agent.update(_batch("state"))
    assert len(calls) == len(list(agent.learner.critic.q.parameters()))
    assert all(p.requires_grad for p in agent.learner.critic.q.parameters())
