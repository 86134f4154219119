import numpy as np
import pytest

from tests.conftest import make_episode
from worldmodels.replay import ReplayStore


def filled_store(lengths, capacity=10_000, directory=None, seed=0):
    store = ReplayStore(capacity, directory, seed=seed)
    for i, length in enumerate(lengths):
        store.add_episode(make_episode(length, start_value=1000.0 * (i + 1)))
    return store


def test_sequences_never_cross_episode_boundaries():
    store = filled_store([5, 12, 30, 9])
    batch = store.sample_sequences(512, 8)
    state = batch["state"][..., 0]  # [B, T]
    assert batch["state"].shape == (512, 8, 2) and batch["pixels"].shape == (512, 8, 3, 8, 8)
    assert np.all(np.diff(state, axis=1) == 1.0), "consecutive steps of one episode"
    assert not batch["is_first"][:, 1:].any()
    episodes = (state[:, 0] // 1000).astype(int)
    assert set(episodes) == {2, 3, 4}  # the 5-step episode is too short for T=8
    assert batch["pixels"].dtype == np.uint8


def test_sequences_crossing_boundaries_are_flagged_with_is_first():
    store = filled_store([3, 3, 3])
    batch = store.sample_sequences(256, 5, cross_episodes=True)
    state = batch["state"][..., 0]
    jumps = np.diff(state, axis=1) != 1.0  # [B, T-1]
    assert jumps.any()
    np.testing.assert_array_equal(jumps, batch["is_first"][:, 1:])


def test_too_short_episodes_give_a_clear_error():
    store = filled_store([4])
    with pytest.raises(ValueError, match="no stored episode has 10 steps"):
        store.sample_sequences(2, 10)


def test_transitions_are_aligned_and_stay_inside_episodes():
    store = ReplayStore(1000)
    store.add_episode(make_episode(6, 100.0, terminal=True))
    store.add_episode(make_episode(4, 200.0))
    batch = store.sample_transitions(1000)
    obs, nxt = batch["obs"]["state"][:, 0], batch["next_obs"]["state"][:, 0]
    np.testing.assert_array_equal(nxt, obs + 1)
    np.testing.assert_array_equal(batch["action"][:, 0], nxt)  # action[t+1] was taken at obs[t]
    np.testing.assert_array_equal(batch["reward"], nxt)
    np.testing.assert_array_equal(batch["terminated"], nxt == 105.0)  # only the terminal episode's last step
    assert store.num_transitions == 5 + 3


def test_capacity_evicts_oldest_whole_episodes():
    store = ReplayStore(25)
    for i in range(5):
        store.add_episode(make_episode(10, 1000.0 * (i + 1)))
        assert store.num_steps <= 25
    assert store.num_episodes == 2 and store.num_steps == 20
    kept = set((store.sample_sequences(200, 10)["state"][:, 0, 0] // 1000).astype(int))
    assert kept == {4, 5}
    with pytest.raises(ValueError, match="exceeds the replay capacity"):
        store.add_episode(make_episode(30))


def test_ring_wraparound_keeps_episodes_contiguous():
    store = ReplayStore(17)
    for i in range(9):
        store.add_episode(make_episode(7, 1000.0 * (i + 1)))
    batch = store.sample_sequences(300, 7)
    assert np.all(np.diff(batch["state"][..., 0], axis=1) == 1.0)
    assert np.all(batch["is_first"][:, 0]) and np.all(batch["is_last"][:, -1])


def test_episodes_are_written_and_reloaded(tmp_path):
    filled_store([5, 6, 7], directory=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == ["00000000-5.npz", "00000001-6.npz", "00000002-7.npz"]
    assert not list(tmp_path.glob("*.tmp"))
    reloaded = ReplayStore(10_000, tmp_path)
    assert reloaded.load() == 3
    assert reloaded.num_steps == 18 and reloaded.episodes_added == 3
    small = ReplayStore(14, tmp_path)
    assert small.load() == 2  # the newest that fit in capacity
    assert small.num_steps == 13


def test_reload_up_to_a_checkpoint_moves_later_episodes_aside(tmp_path):
    filled_store([5, 6, 7], directory=tmp_path)
    store = ReplayStore(100, tmp_path)
    assert store.load(up_to=2) == 2
    assert store.episodes_added == 2 and store.num_steps == 11
    assert [p.name for p in (tmp_path / "orphaned").glob("*.npz")] == ["00000002-7.npz"]


def test_invalid_episodes_are_rejected():
    store = ReplayStore(100)
    bad = make_episode(5)
    bad["is_first"][2] = True
    with pytest.raises(ValueError, match="is_first"):
        store.add_episode(bad)
    floaty = make_episode(5)
    floaty["pixels"] = floaty["pixels"].astype(np.float32)
    with pytest.raises(ValueError, match="uint8"):
        store.add_episode(floaty)


def test_sampling_is_reproducible_from_the_rng_state():
    a, b = filled_store([20, 30], seed=3), filled_store([20, 30], seed=3)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.sample_sequences(16, 5)["state"], b.sample_sequences(16, 5)["state"])


def test_all_transitions_returns_each_transition_once():
    store = ReplayStore(100)
    store.add_episode(make_episode(4, 100.0, terminal=True))
    store.add_episode(make_episode(3, 200.0))
    batch = store.all_transitions()
    np.testing.assert_array_equal(batch["obs"]["state"][:, 0], [100, 101, 102, 200, 201])
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 0], [101, 102, 103, 201, 202])
    np.testing.assert_array_equal(batch["terminated"], [False, False, True, False, False])


def test_unroll_windows_start_anywhere_and_mask_past_the_episode_end():
    store = filled_store([2, 4, 30])
    batch = store.sample_unrolls(2000, 6)
    state, valid = batch["state"][..., 0], batch["valid"]  # [B, T]
    assert state.shape == (2000, 6) and valid[:, 0].all()
    episode = (state[:, 0] // 1000).astype(int)
    assert np.all(state // 1000 == episode[:, None]), "a window never reads the next episode"
    # valid steps are consecutive; past the end the last step repeats and is masked
    steps = np.diff(state, axis=1)
    assert np.all(steps[valid[:, 1:]] == 1.0) and np.all(steps[~valid[:, 1:]] == 0.0)
    assert not batch["is_last"][:, 0].any(), "every window starts at a step with a successor"
    # step ids name the step read: the same id always holds the same step, masked steps repeat the last id
    ids, first, inverse = np.unique(batch["step_id"], return_index=True, return_inverse=True)
    np.testing.assert_array_equal(state.ravel()[first][inverse.ravel()], state.ravel())  # one id, one step
    assert np.unique(state.ravel()[first]).size == ids.size  # one step, one id
    assert np.all((np.diff(batch["step_id"], axis=1) == 1) == valid[:, 1:])
    # starts are uniform over the 1 + 3 + 29 steps that have a successor
    np.testing.assert_allclose(np.bincount(episode, minlength=4)[1:] / 2000, [1 / 33, 3 / 33, 29 / 33], atol=0.02)


def test_unroll_history_repeats_the_episodes_first_step():
    store = filled_store([3, 20])
    batch = store.sample_unrolls(500, 4, history=2)
    state, valid = batch["state"][..., 0], batch["valid"]  # [B, 2 + T]
    assert state.shape == (500, 6) and valid[:, :3].all()
    step = state % 1000  # step index inside its episode
    start = step[:, 2]  # where the window proper starts
    np.testing.assert_array_equal(step[:, :2], np.maximum(start[:, None] + [-2, -1], 0))  # clamped at step 0
    assert np.all(state // 1000 == (state[:, 2] // 1000)[:, None]), "the history never reads another episode"
    assert (start == 0).any() and (start >= 2).any(), "both clamped and unclamped fronts were drawn"
