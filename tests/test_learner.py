"""The learner: its schedule, one compiled program per preset, target updates, the eta floor, config checks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks import critic_diagnostics
from harness.builder import build_job, learner_hyperparams, run_constants
from harness.config import TrainConfig
from harness.learner import learning_rate_at


def test_schedule_matches_optax_warmup_cosine():
    config = TrainConfig(steps=1000, learning_rate=3e-4, warmup_fraction=0.05, final_learning_rate_fraction=0.1)
    constants = run_constants(config, 1000)
    reference = optax.warmup_cosine_decay_schedule(0.0, 3e-4, 50, 1000, 3e-5)
    for step in (0, 10, 49, 50, 51, 300, 999, 1000):
        np.testing.assert_allclose(float(learning_rate_at(jnp.asarray(step), constants, learner_hyperparams(config))),
                                   float(reference(step)), rtol=1e-5, atol=1e-12)


def test_cells_differing_in_alpha_seed_and_length_share_one_program(tiny_dataset_dir):
    base = TrainConfig(preset="tiny", dataset=str(tiny_dataset_dir), steps=10, batch_size=8, num_sampled_actions=2)
    base_job = build_job(base)
    batch = base_job.train_sampler.sample_at(0)
    programs = []
    for config in (base, base.replace(alpha=1.0, seed=3, steps=500)):
        learner = build_job(config, dataset=base_job.dataset).learner
        state = learner.init(0)
        programs.append(learner._update_jit.lower(state, learner.shard_batch(batch), learner.constants).as_text())
    # Same program text: the persistent compilation cache serves every such grid cell.
    assert programs[0] == programs[1]


@pytest.mark.parametrize("change, message", [
    (dict(target_update="soft"), r"^target_update='soft'; allowed: polyak, hard$"),
    (dict(critic_target="c51"), r"^critic_target='c51'; allowed: expected, distributional, monte_carlo$"),
    (dict(gradient_clipping="none"), r"^gradient_clipping='none'; allowed: global, per_loss$"),
    (dict(obs_value_embedding="table"), r"^obs_value_embedding='table'; allowed: lookup, linear$"),
    (dict(polyak_tau=0.0), r"^polyak_tau=0.0 must be in \(0, 1\]$"),
    (dict(min_temperature=0.0), r"^min_temperature=0.0 must be > 0$"),
    (dict(min_temperature=0.5), r"^initial_temperature=0.1 must be >= min_temperature=0.5$"),
    (dict(critic_max_grad_norm=-1.0), r"^critic_max_grad_norm=-1.0 must be > 0 \(inf = no clipping\)$"),
    (dict(top_episode_fraction=0.0), r"^top_episode_fraction=0.0 must be in \(0, 1\]$"),
    (dict(sample_weighting="best"), r"^sample_weighting='best'; allowed: uniform, episode_return, return_to_go$"),
    (dict(sample_kl_epsilon=0.0), r"^sample_kl_epsilon=0.0 must be > 0$"),
])
def test_bad_critic_and_clipping_settings_are_one_line_errors(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(steps=1, **change).validate()


@pytest.mark.parametrize("clipping", ["global", "per_loss"])
def test_polyak_targets_temperature_floor_and_gradient_diagnostics(tmp_path, clipping):
    critic_diagnostics.write_synthetic_dataset(tmp_path, episodes=6, length=20)
    # A loose KL bound and a large dual step: the dual pushes eta far below the floor.
    config = TrainConfig(preset="tiny", dataset=str(tmp_path), steps=2, batch_size=8, num_sampled_actions=4,
                         initial_temperature=0.05, min_temperature=0.05, temperature_learning_rate=10.0, kl_epsilon=5.0,
                         polyak_tau=0.25, gradient_clipping=clipping)
    job = build_job(config)
    learner = job.learner
    state = jax.device_get(learner.init(0))  # a host copy: the update donates its input state
    new, metrics = learner.update(state, learner.shard_batch(job.train_sampler.sample_at(0)))
    for old_target, online, target in zip(*map(jax.tree.leaves, (state.target_params, new.params, new.target_params))):
        np.testing.assert_allclose(target, 0.75 * old_target + 0.25 * online, rtol=1e-5, atol=1e-7)
    assert float(jnp.exp(new.log_temperature)) == pytest.approx(0.05, rel=1e-5)
    for name in ("policy_grad_norm", "critic_grad_norm", "policy_trunk_grad_norm", "critic_trunk_grad_norm",
                 "q_spread", "weights_ess", "q_mc_rank_corr"):
        assert np.isfinite(float(metrics[name])) and float(metrics[name]) >= -1.0, name


def _variant_metrics(**settings):
    from harness.data.sampler import random_batch
    from models import get_preset

    config = TrainConfig(preset="tiny", steps=10, batch_size=64, num_sampled_actions=4, **settings)
    model = get_preset("tiny", max_obs_dim=6, max_action_dim=2, num_tasks=2)
    learner = build_job(config, model=model).learner
    _, metrics = learner.update(learner.init(0), learner.shard_batch(random_batch(model, 64, 0)))
    return jax.device_get(metrics)


def test_improvement_weights_are_those_the_update_uses():
    # The diagnostic read-out (benchmarks.weight_share) gives the weights an update would:
    # their KL from uniform is the bound, their mean 1; 'sampled' gives [B, N] per state.
    from harness.data.sampler import random_batch
    from models import get_preset

    model = get_preset("tiny", max_obs_dim=6, max_action_dim=2, num_tasks=2)
    for improvement, shape in (("data_advantage", (64,)), ("sampled", (64, 4))):
        config = TrainConfig(preset="tiny", steps=10, batch_size=64, num_sampled_actions=4, alpha=0.0,
                             policy_improvement=improvement, advantage_kl_epsilon=0.7)
        learner = build_job(config, model=model).learner
        weights, sampled_q = map(np.asarray, learner.improvement_weights(learner.init(0), random_batch(model, 64, 0)))
        assert weights.shape == shape and np.all(weights >= 0)
        assert sampled_q.shape == (64, 4 + (improvement == "data_advantage"))
        if improvement == "data_advantage":
            p = weights / weights.sum()
            assert weights.mean() == pytest.approx(1.0, rel=1e-5)
            assert float(np.sum(p * np.log(p * len(p) + 1e-30))) == pytest.approx(0.7, abs=1e-3)
        else:
            np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("estimate,baseline", [("critic", "critic"), ("monte_carlo", "critic"),
                                               ("monte_carlo", "calibrated")])
def test_data_advantage_weights_meet_their_bound_and_reduce_to_bc_at_alpha_1(estimate, baseline):
    weighted = _variant_metrics(alpha=0.0, policy_improvement="data_advantage", advantage_estimate=estimate,
                                advantage_baseline=baseline, advantage_kl_epsilon=0.7)
    # eta is solved per batch: the weights over the batch lie exactly the bound from uniform.
    assert weighted["kl_improvement"] == pytest.approx(0.7, abs=1e-3)
    assert 0.0 < weighted["weights_ess"] < 1.0 and weighted["temperature"] > 0
    assert {"advantage_std", "advantage_mc_rank_corr", "q_sample_range"} <= set(weighted)
    # At alpha = 1 both improvement steps are BC: the same losses (the data action's extra
    # critic query changes none of the samples' values).
    bc_sampled = _variant_metrics(alpha=1.0)
    bc_weighted = _variant_metrics(alpha=1.0, policy_improvement="data_advantage", advantage_estimate=estimate)
    for name in ("loss", "bc_loss", "policy_loss", "critic_loss", "q_spread"):
        np.testing.assert_allclose(bc_weighted[name], bc_sampled[name], rtol=1e-5, err_msg=name)


def test_monte_carlo_critic_target_is_the_two_hot_of_the_return_and_ignores_the_next_state():
    # critic_target='monte_carlo' regresses the data's return-to-go: its target never
    # reads s' (update_passes counts no pass there), and it is the two-hot of mc_return.
    from harness import losses
    from harness.data.sampler import random_batch
    from models import get_preset

    model = get_preset("tiny", max_obs_dim=6, max_action_dim=2, num_tasks=2)
    config = TrainConfig(preset="tiny", steps=10, batch_size=16, num_sampled_actions=4, critic_target="monte_carlo")
    learner = build_job(config, model=model).learner
    state = learner.init(0)
    batch = random_batch(model, 16, 0)
    moved = batch._replace(next_observation=batch.next_observation + 3.0, reward=batch.reward + 1.0)
    key = jax.random.key(0)
    targets = [np.asarray(learner._target_passes(state.target_params, b, key)[2]) for b in (batch, moved)]
    np.testing.assert_array_equal(targets[0], targets[1])
    np.testing.assert_allclose(targets[0], np.asarray(losses.two_hot(batch.mc_return, learner.support)), atol=1e-6)
    # and the two-hot's mean is the return itself (inside the value support).
    np.testing.assert_allclose(targets[0] @ np.asarray(learner.support), np.asarray(batch.mc_return), rtol=1e-5)
