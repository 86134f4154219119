import numpy as np
import pytest

from worldmodels.envs import EnvSpecError, make_env, make_vector_env
from worldmodels.envs.spaces import unnormalize


@pytest.mark.parametrize("obs", ["pixels", "state", "both"])
def test_dmc_observations_follow_the_contract(obs):
    env = make_env("dmc:cartpole-swingup", obs=obs, size=32, action_repeat=2, seed=0)
    first, _ = env.reset(seed=0)
    assert set(first) == {"pixels", "state"} if obs == "both" else set(first) == {obs}
    if obs != "state":
        assert first["pixels"].shape == (3, 32, 32) and first["pixels"].dtype == np.uint8
        assert first["pixels"].std() > 0, "a real rendered frame, not a blank"
    if obs != "pixels":
        assert first["state"].shape == (5,) and first["state"].dtype == np.float32
    assert env.action_space.shape == (1,) and env.action_space.low.min() == -1.0
    nxt, reward, terminated, truncated, _ = env.step(np.array([0.5], np.float32))
    assert env.observation_space.contains(nxt)
    assert isinstance(reward, float) and not terminated and not truncated
    env.close()


def test_dmc_time_limit_is_a_truncation_counted_in_env_steps():
    env = make_env("dmc:cartpole-swingup", obs="state", action_repeat=4, seed=0, time_limit=20)
    env.reset(seed=0)
    ends = [env.step(np.zeros(1, np.float32))[2:4] for _ in range(5)]
    assert ends[:4] == [(False, False)] * 4 and ends[4] == (False, True)  # 5 decisions x 4 = 20 env steps


def test_dmc_default_episode_has_1000_env_steps():
    env = make_env("dmc:cartpole-balance", obs="state", action_repeat=8, seed=0)
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        steps += 8
        done = terminated or truncated
    assert steps == 1000 and truncated and not terminated


def test_dmc_physics_divergence_ends_the_episode_cleanly():
    from dm_control.rl.control import PhysicsError

    env = make_env("dmc:cartpole-swingup", obs="state", seed=0)
    env.reset(seed=0)

    def explode(action):
        raise PhysicsError("simulated divergence")

    env.unwrapped._env.step = explode
    obs, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
    assert truncated and not terminated and "physics_error" in info
    assert np.all(np.isfinite(obs["state"]))


def test_same_seed_same_episode_start():
    a, b = make_env("dmc:walker-walk", obs="state", seed=5), make_env("dmc:walker-walk", obs="state", seed=5)
    np.testing.assert_array_equal(a.reset(seed=7)[0]["state"], b.reset(seed=7)[0]["state"])
    assert not np.array_equal(a.reset(seed=7)[0]["state"], a.reset(seed=8)[0]["state"])


def test_gym_continuous_actions_are_normalized():
    env = make_env("gym:Pendulum-v1", obs="both", size=32, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (3,) and obs["pixels"].shape == (3, 32, 32)
    assert env.action_space.low[0] == -1.0 and env.action_space.high[0] == 1.0
    np.testing.assert_allclose(unnormalize(np.array([-1.0, 0.0, 1.0, 3.0]), -2.0, 2.0), [-2.0, 0.0, 2.0, 2.0])
    # Pendulum's reward penalises torque: full torque costs more than none from the same state.
    costs = []
    for torque in (0.0, 1.0):
        env.reset(seed=0)
        costs.append(env.step(np.array([torque], np.float32))[1])
    assert costs[1] < costs[0]


def test_gym_discrete_actions_stay_discrete_and_termination_is_kept():
    env = make_env("gym:CartPole-v1", obs="state", seed=0)
    obs, _ = env.reset(seed=0)
    assert env.action_space.n == 2 and obs["state"].shape == (4,)
    done, steps = False, 0
    while not done:
        _, _, terminated, truncated, _ = env.step(1)  # always push right: the pole falls
        done, steps = terminated or truncated, steps + 1
    assert terminated and not truncated and steps < 100


def test_gym_truncation_at_its_time_limit():
    env = make_env("gym:Pendulum-v1", obs="state", seed=0, action_repeat=2)
    env.reset(seed=0)
    results = [env.step(np.zeros(1, np.float32))[2:4] for _ in range(100)]
    assert results[-1] == (False, True) and all(r == (False, False) for r in results[:-1])


def test_gym_mujoco_state():
    env = make_env("gym:HalfCheetah-v5", obs="state", seed=0)
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (17,) and env.action_space.shape == (6,)


def test_unknown_specs_say_how_to_name_envs():
    with pytest.raises(EnvSpecError, match="Did you mean dmc:cartpole-swingup"):
        make_env("dmc:cartpol-swingup")
    with pytest.raises(EnvSpecError, match="Did you mean gym:Pendulum-v1"):
        make_env("gym:Pendulum-v0")
    with pytest.raises(EnvSpecError, match="dmc:<domain>-<task>"):
        make_env("cartpole")
    with pytest.raises(EnvSpecError, match="Unknown env suite"):
        make_env("atari:Pong")


def test_vector_env_runs_subprocesses_and_autoresets_in_the_same_step():
    envs = make_vector_env("dmc:cartpole-swingup", 2, seed=0, obs="pixels", size=16, action_repeat=4, time_limit=12)
    try:
        obs, _ = envs.reset(seed=0)
        assert obs["pixels"].shape == (2, 3, 16, 16)
        for _ in range(3):
            obs, reward, terminated, truncated, infos = envs.step(np.zeros((2, 1), np.float32))
        assert truncated.all() and not terminated.any()
        assert infos["final_obs"][0]["pixels"].shape == (3, 16, 16)
    finally:
        envs.close()


def test_fast_render_changes_pixels_not_shapes():
    slow = make_env("dmc:cartpole-swingup", obs="pixels", size=32, seed=0)
    fast = make_env("dmc:cartpole-swingup", obs="pixels", size=32, seed=0, fast_render=True)
    a, b = slow.reset(seed=0)[0]["pixels"], fast.reset(seed=0)[0]["pixels"]
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_continuous_cartpole_matches_gymnasiums_cartpole_at_full_force():
    import gymnasium

    ours = make_env("gym:worldmodels/CartPoleContinuous-v0", obs="state", seed=3)
    theirs = gymnasium.make("CartPole-v1")
    obs, _ = ours.reset(seed=3)
    reference, _ = theirs.reset(seed=3)
    np.testing.assert_allclose(obs["state"], reference)
    for step in range(200):
        push = step % 3 != 0  # right, right, left ...
        obs, reward, terminated, truncated, _ = ours.step(np.array([1.0 if push else -1.0], np.float32))
        reference, ref_reward, ref_terminated, _, _ = theirs.step(int(push))
        np.testing.assert_allclose(obs["state"], reference, rtol=1e-5, atol=1e-6)
        assert (reward, terminated) == (ref_reward, ref_terminated)
        if terminated:
            break
    assert terminated, "an open-loop push pattern drops the pole"


def test_continuous_cartpole_half_force_worked_example():
    from worldmodels.envs.cartpole_continuous import ContinuousCartPole

    env = ContinuousCartPole()
    env.reset(seed=0)
    env.state = np.zeros(4)
    state, *_ = env.step(np.array([0.5]))  # 5 N from rest, upright pole
    # temp = 5 / 1.1 = 4.5455; theta'' = -4.5455 / (0.5 * (4/3 - 0.1/1.1)) = -7.3171;
    # x'' = 4.5455 + 0.05 * 7.3171 / 1.1 = 4.8781; one Euler step of 0.02 s moves only the velocities
    np.testing.assert_allclose(state, [0.0, 0.097561, 0.0, -0.146341], atol=1e-6)
