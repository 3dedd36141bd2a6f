"""Multi-task batches: padding, masks, next observations and the held-out split."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data import sampler as sampler_lib
from harness.data import storage


@pytest.fixture(scope="module")
def dataset(tiny_dataset_dir):
    return sampler_lib.load_dataset(tiny_dataset_dir)


def test_batches_are_padded_and_masked(dataset):
    assert dataset.task_names == ["cartpole-swingup", "point_mass-easy"]
    s = sampler_lib.Sampler(dataset, batch_size=256, seed=1, max_observation_dim=8, max_action_dim=3)
    b = s.sample()
    assert b.observation.shape == (256, 8) and b.action.shape == (256, 3)
    assert b.observation.dtype == np.float32 and b.observation_mask.dtype == bool
    dims = {0: (5, 1), 1: (4, 2)}  # cartpole (obs 5, act 1), point_mass (obs 4, act 2)
    assert set(b.task_id.tolist()) == {0, 1}
    for task, (obs_dim, act_dim) in dims.items():
        rows = b.task_id == task
        assert np.all(b.observation_mask[rows, :obs_dim]) and not np.any(b.observation_mask[rows, obs_dim:])
        assert np.all(b.action_mask[rows, :act_dim]) and not np.any(b.action_mask[rows, act_dim:])
        assert np.all(b.observation[rows, obs_dim:] == 0) and np.all(b.next_observation[rows, obs_dim:] == 0)
        assert np.all(b.action[rows, act_dim:] == 0)


def test_transitions_match_the_stored_episodes(dataset):
    s = sampler_lib.Sampler(dataset, batch_size=64, split="all", seed=3, normalize_observations=False)
    b = s.sample()
    for i in range(64):
        data = dataset.tasks[b.task_id[i]]
        obs_dim, act_dim = data.observation_dim, data.action_dim
        rows = np.flatnonzero(np.all(data.arrays["observations"] == b.observation[i, :obs_dim], axis=1))
        assert rows.size >= 1
        # Some stored row equal to o_t is followed by o_{t+1} and the transition's action.
        obs_index = data.transition_observation_index()
        t = np.flatnonzero(np.isin(obs_index, rows) & np.all(data.arrays["actions"] == b.action[i, :act_dim], axis=1))
        assert t.size >= 1
        np.testing.assert_array_equal(data.arrays["observations"][obs_index[t[0]] + 1], b.next_observation[i, :obs_dim])
        assert data.arrays["rewards"][t[0]] == b.reward[i]


def test_transition_steps_count_from_each_episode_start(dataset):
    task = dataset.tasks[0]
    steps, episodes = task.transition_step(), task.transition_episode()
    first = np.flatnonzero(np.diff(episodes, prepend=-1))  # each episode's first transition
    assert np.all(steps[first] == 0) and np.all(np.diff(steps)[np.diff(episodes) == 0] == 1)
    np.testing.assert_array_equal(steps[np.r_[first[1:], len(steps)] - 1] + 1, task.arrays["episode_lengths"])


def test_held_out_split_shares_no_episode(dataset):
    splits = dataset.split_episodes(valid_fraction=0.25)
    for task in dataset.tasks:
        train, valid = splits[task.task]
        assert len(valid) >= 1 and len(train) >= 1
        assert not set(train) & set(valid)
        assert sorted(set(train) | set(valid)) == list(range(task.num_episodes))
    # Valid batches come only from held-out episodes' observations.
    valid_sampler = sampler_lib.Sampler(dataset, batch_size=128, split="valid", valid_fraction=0.25, seed=0,
                                        normalize_observations=False)
    train_sampler = sampler_lib.Sampler(dataset, batch_size=128, split="train", valid_fraction=0.25, seed=0)
    assert valid_sampler.num_transitions + train_sampler.num_transitions == dataset.num_transitions
    for tid, task in enumerate(dataset.tasks):
        _, valid_eps = splits[task.task]
        episode_of_obs = np.repeat(np.arange(task.num_episodes), task.arrays["episode_lengths"] + 1)
        b = valid_sampler.sample()
        for obs in b.observation[b.task_id == tid, : task.observation_dim]:
            rows = np.flatnonzero(np.all(task.arrays["observations"] == obs, axis=1))
            assert set(episode_of_obs[rows]) & set(valid_eps)


def test_sampling_is_seeded(dataset):
    a = sampler_lib.Sampler(dataset, batch_size=16, seed=5).sample()
    b = sampler_lib.Sampler(dataset, batch_size=16, seed=5).sample()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_held_out_set_is_fixed_by_the_dataset_not_the_training_seed(dataset):
    """The split and the held-out sample come from the dataset: runs with different
    seeds are validated on the very same transitions."""
    sets = [sampler_lib.Sampler(dataset, batch_size=8, split="valid", seed=seed).heldout_batches(64, 16)
            for seed in (0, 1, 99)]
    for other in sets[1:]:
        assert [t for t, _ in other] == [t for t, _ in sets[0]]
        for (_, b0), (_, b1) in zip(sets[0], other):
            np.testing.assert_array_equal(b0.observation, b1.observation)
            np.testing.assert_array_equal(b0.action, b1.action)
    # One task per batch, every task present, each with min(split, 64) rounded to full batches.
    s = sampler_lib.Sampler(dataset, batch_size=8, split="valid")
    tasks_of = np.array([t for t, _ in sets[0]])
    assert set(tasks_of.tolist()) == {0, 1}
    for task, batch in sets[0]:
        assert np.all(batch.task_id == task) and batch.reward.shape == (16,)
    for task in (0, 1):
        assert (tasks_of == task).sum() * 16 == max(16, min(64, s.split_sizes[task]) // 16 * 16)
    np.testing.assert_allclose(s.task_weights(), [0.5, 0.5])


def test_monte_carlo_returns_are_discounted_returns_to_go(dataset):
    rewards = np.array([1.0, 0.0, 2.0, 5.0, 1.0], np.float32)
    np.testing.assert_allclose(sampler_lib.returns_to_go(rewards, np.array([3, 2]), 0.5),
                               [1.0 + 0.5 * 0 + 0.25 * 2, 0.0 + 0.5 * 2, 2.0, 5.0 + 0.5 * 1, 1.0], rtol=1e-6)
    s = sampler_lib.Sampler(dataset, batch_size=32, seed=0, mc_discount=0.9)
    b = s.sample()
    assert b.mc_return.shape == (32,) and np.all(b.mc_return >= 0)


def test_extended_returns_continue_truncated_episodes_by_their_last_rewards():
    # A constant reward r under a time limit is worth r / (1 - discount) at every step of
    # the episode once extended; a terminated episode (final discount 0) is not extended.
    rewards = np.ones(30, np.float32)
    lengths = np.array([10, 20])
    final = np.ones(30, np.float32)
    extended = sampler_lib.returns_to_go(rewards, lengths, 0.9, "extend", final)
    np.testing.assert_allclose(extended, np.full(30, 10.0), rtol=1e-5)
    final[9] = 0.0  # the first episode terminated
    extended = sampler_lib.returns_to_go(rewards, lengths, 0.9, "extend", final)
    np.testing.assert_allclose(extended[:10], sampler_lib.returns_to_go(rewards[:10], lengths[:1], 0.9), rtol=1e-6)
    np.testing.assert_allclose(extended[10:], np.full(20, 10.0), rtol=1e-5)
    # Only the last TAIL_WINDOW rewards are carried on: an episode that ends at rest earns 0 after.
    rewards = np.r_[np.ones(30), np.zeros(sampler_lib.TAIL_WINDOW)].astype(np.float32)
    lengths = np.array([len(rewards)])
    np.testing.assert_allclose(sampler_lib.returns_to_go(rewards, lengths, 0.9, "extend"),
                               sampler_lib.returns_to_go(rewards, lengths, 0.9), rtol=1e-6)
    with pytest.raises(ValueError, match="tail='bootstrap'"):
        sampler_lib.returns_to_go(rewards, lengths, 0.9, "bootstrap")


def test_top_episode_fraction_keeps_the_best_episodes(dataset):
    everything = sampler_lib.Sampler(dataset, batch_size=8, split="train")
    best = sampler_lib.Sampler(dataset, batch_size=8, split="train", top_episode_fraction=0.25)
    assert 0 < best.num_transitions < everything.num_transitions
    train_eps = {t.task: tr for t, (tr, _) in zip(dataset.tasks, dataset.split_episodes(0.1).values())}
    for tid, task in enumerate(dataset.tasks):
        returns = task.arrays["episode_returns"][train_eps[task.task]]
        batch = best.sample(2048)
        rows = batch.task_id == tid
        # Every sampled transition's episode return is in the top quarter of the split.
        threshold = np.sort(returns)[::-1][max(1, round(0.25 * len(returns))) - 1]
        episode_of = task.transition_episode()
        for action, reward in zip(batch.action[rows][:50], batch.reward[rows][:50]):
            match = np.flatnonzero(np.all(task.arrays["actions"] == action[: task.action_dim], axis=1))
            assert np.any(task.arrays["episode_returns"][episode_of[match]] >= threshold - 1e-4)
    with pytest.raises(ValueError, match=r"top_episode_fraction=0 must be in \(0, 1\]"):
        sampler_lib.Sampler(dataset, batch_size=8, top_episode_fraction=0)


def test_tilted_probabilities_sit_at_the_kl_bound_and_rank_by_value():
    values = np.random.default_rng(0).normal(size=5000)
    for epsilon in (0.1, 1.0, np.log(4)):
        p = sampler_lib.kl_tilted_probabilities(values, epsilon)
        assert abs(np.sum(p * np.log(p * len(p))) - epsilon) < 1e-6 and abs(p.sum() - 1) < 1e-9
        assert np.all(np.diff(p[np.argsort(values)]) >= 0)  # a higher value is never drawn less
    np.testing.assert_allclose(sampler_lib.kl_tilted_probabilities(np.ones(7), 1.0), np.full(7, 1 / 7))
    # Two distinct values can move at most log(n / n_max) from uniform: the steepest tilt.
    steep = sampler_lib.kl_tilted_probabilities(np.array([0.0, 0.0, 0.0, 1.0]), 5.0)
    np.testing.assert_allclose(steep, [0, 0, 0, 1], atol=1e-9)


def test_alias_tables_draw_their_distribution():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.full(50, 0.3))
    keep, other = sampler_lib.alias_tables(p)
    k = rng.integers(0, 50, 400_000)
    draws = np.where(rng.random(k.size) < keep[k], k, other[k])
    np.testing.assert_allclose(np.bincount(draws, minlength=50) / k.size, p, atol=0.004)


@pytest.mark.parametrize("weighting", ["episode_return", "return_to_go"])
def test_weighted_sampling_tilts_draws_toward_better_behaviour_on_host_and_device(tiny_dataset_dir, weighting):
    import jax

    from harness.data import device_sampler

    dataset = sampler_lib.load_dataset(tiny_dataset_dir)
    uniform = sampler_lib.Sampler(dataset, 64, "train", seed=2)
    tilted = sampler_lib.Sampler(dataset, 64, "train", seed=2, sample_weighting=weighting, sample_kl_epsilon=1.0)
    arrays = jax.device_put(tilted.split_arrays())
    on_device = jax.device_get(jax.jit(device_sampler.sample, static_argnums=2)(arrays, jax.random.key(0), 20_000))
    base, host = uniform.sample(20_000), tilted.sample(20_000)
    for tid in range(len(dataset.tasks)):
        rows = lambda b: b.task_id == tid  # noqa: E731
        # Task shares are the task weighting's; inside a task the draw favours high returns.
        assert abs(np.mean(rows(host)) - np.mean(rows(base))) < 0.02
        assert abs(np.mean(rows(on_device)) - np.mean(rows(base))) < 0.02
        assert np.mean(host.mc_return[rows(host)]) > np.mean(base.mc_return[rows(base)])
        # The device draws what the host draws: equal means within 4 standard errors.
        device_returns, host_returns = on_device.mc_return[rows(on_device)], host.mc_return[rows(host)]
        standard_error = np.sqrt(device_returns.var() / device_returns.size + host_returns.var() / host_returns.size)
        assert abs(device_returns.mean() - host_returns.mean()) < 4 * standard_error
    with pytest.raises(ValueError, match=r"^sample_weighting='best'; allowed: uniform, episode_return, return_to_go$"):
        sampler_lib.Sampler(dataset, 8, sample_weighting="best")
    with pytest.raises(ValueError, match=r"^sample_kl_epsilon=0 must be > 0$"):
        sampler_lib.Sampler(dataset, 8, sample_weighting=weighting, sample_kl_epsilon=0)


def test_uniform_task_weighting_balances_tasks(dataset):
    b = sampler_lib.Sampler(dataset, batch_size=4000, seed=0).sample()
    assert abs(np.mean(b.task_id == 0) - 0.5) < 0.05


def test_bad_sampler_arguments(dataset):
    with pytest.raises(ValueError, match=r"task cartpole-swingup has observation/action dims 5/1, larger than the maxima 4/2"):
        sampler_lib.Sampler(dataset, batch_size=4, max_observation_dim=4)
    with pytest.raises(ValueError, match="split='test'"):
        sampler_lib.Sampler(dataset, batch_size=4, split="test")
    with pytest.raises(storage.DatasetError, match="no task datasets found"):
        sampler_lib.load_dataset(dataset_dir := __import__("tempfile").mkdtemp())


def test_observations_are_standardized_with_training_statistics(dataset):
    s = sampler_lib.Sampler(dataset, batch_size=4096, seed=0, max_observation_dim=8)
    b = s.sample()
    for tid, task in enumerate(dataset.tasks):
        rows = b.observation[b.task_id == tid, : task.observation_dim]
        # Standardized: roughly zero mean, unit scale; padding exactly zero.
        assert np.all(np.abs(rows.mean(axis=0)) < 0.25)
        assert np.all((rows.std(axis=0) > 0.5) & (rows.std(axis=0) < 1.5))
        assert np.all(b.observation[b.task_id == tid, task.observation_dim:] == 0)
        raw = task.arrays["observations"][:3]
        padded = np.pad(raw, ((0, 0), (0, 8 - task.observation_dim)))
        np.testing.assert_allclose(s.normalizer(padded, tid)[:, : task.observation_dim],
                                   (raw - s.normalizer.mean[tid, : task.observation_dim]) / s.normalizer.std[tid, : task.observation_dim],
                                   rtol=1e-5, atol=1e-5)


def test_device_sampler_draws_the_split_as_the_host_sampler_does(tiny_dataset_dir):
    import jax

    from harness.data import device_sampler

    dataset = sampler_lib.load_dataset(tiny_dataset_dir)
    for weighting in ("uniform", "transitions"):
        sampler = sampler_lib.Sampler(dataset, 64, "train", task_weighting=weighting)
        arrays = jax.device_put(sampler.split_arrays())
        batch = jax.device_get(jax.jit(device_sampler.sample, static_argnums=2)(arrays, jax.random.key(0), 20_000))
        host = sampler.sample(20_000)
        # The same task frequencies (uniform over tasks, or by split size) ...
        device_share = np.bincount(batch.task_id, minlength=2) / 20_000
        np.testing.assert_allclose(device_share, sampler.task_weights(), atol=0.015)
        np.testing.assert_allclose(np.bincount(host.task_id, minlength=2) / 20_000, sampler.task_weights(), atol=0.015)
        # ... and only transitions of the split, each row consistent with its task's masks.
        train_actions = {tuple(a) for a in np.round(sampler.split_arrays().actions[sampler.split_arrays().transition], 5)}
        assert all(tuple(a) in train_actions for a in np.round(batch.action[:500], 5))
        np.testing.assert_array_equal(batch.observation_mask, sampler.split_arrays().observation_mask[batch.task_id])
        assert np.all(batch.observation[~batch.observation_mask] == 0)
        assert abs(batch.reward.mean() - host.reward.mean()) < 0.05 * max(host.reward.mean(), 1e-3) + 0.01


@pytest.mark.parametrize("weighting", ["uniform", "transitions"])
def test_heldout_loss_weights_tasks_as_training_does_per_dimension_with_its_standard_error(tiny_dataset_dir, weighting):
    """The quantity every law fits: per task the mean of its batches, tasks weighted as the
    sampler draws them, per action dimension, and the standard error from batch spread."""
    from harness.heldout import HeldOutSet

    dataset = sampler_lib.load_dataset(tiny_dataset_dir)
    sampler = sampler_lib.Sampler(dataset, 8, "valid", task_weighting=weighting)
    heldout = HeldOutSet(sampler, examples_per_task=32, batch_size=8)
    calls = {}

    def metrics_of(batch):  # task t's batches: 1 + 2t, then +-0.5 alternately
        task = int(batch.task_id[0])
        assert np.all(batch.task_id == task)  # one task per batch
        calls[task] = calls.get(task, 0) + 1
        return {"bc_loss": 1.0 + 2.0 * task + (0.5 if calls[task] % 2 else -0.5), "critic_loss": 10.0 * task}

    result = heldout.evaluate(metrics_of)
    weights = sampler.task_weights()
    dims = np.array([t.action_dim for t in dataset.tasks])
    per_task = np.array([1.0 + 2.0 * t for t in range(len(dims))])  # the +-0.5 cancel over 4 batches
    assert all(count == 4 for count in calls.values())
    assert result["bc_loss"] == pytest.approx(float(weights @ per_task))
    assert result["critic_loss"] == pytest.approx(float(weights @ (10.0 * np.arange(len(dims)))))
    assert result["bc_loss_per_dim"] == pytest.approx(float(weights @ (per_task / dims)))
    # Each task's 4 batch means are +-0.5 around its mean: variance 1/3, over 4 batches.
    assert result["bc_loss_stderr"] == pytest.approx(float(np.sqrt(np.sum(weights ** 2 * (1 / 3) / 4))))
    for t, name in enumerate(sampler.task_names):
        assert result[f"bc_loss/{name}"] == pytest.approx(per_task[t])
        assert result[f"bc_loss_per_dim/{name}"] == pytest.approx(per_task[t] / dims[t])
    if weighting == "uniform":
        assert weights == pytest.approx(np.full(len(dims), 1 / len(dims)))
