"""PAC's losses on tiny cases computed by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from harness import losses
from models import discretization


def test_action_log_prob_sums_real_dims_only():
    # Two dims, three bins; the second dim is padding and must not count.
    logits = jnp.log(jnp.array([[[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]]]))
    mask = jnp.array([[True, False]])
    lp = losses.action_log_prob(logits, jnp.array([[2, 1]]), mask)
    np.testing.assert_allclose(lp, [np.log(0.5)], rtol=1e-6)
    # Many sampled actions at once: [B, N, A] -> [B, N].
    lp_many = losses.action_log_prob(logits, jnp.array([[[0, 0], [1, 2]]]), mask)
    np.testing.assert_allclose(lp_many, [[np.log(0.2), np.log(0.3)]], rtol=1e-6)


def test_td_target_is_the_projected_mean_over_next_actions():
    support = discretization.value_support(0.0, 4.0, 5)  # atoms 0, 1, 2, 3, 4
    # Next action 1: all mass at Z = 2; next action 2: all mass at Z = 0.
    big = 50.0
    next_q_logits = jnp.array([[[0, 0, big, 0, 0], [big, 0, 0, 0, 0]]], jnp.float32)
    target = losses.td_target_distribution(next_q_logits, jnp.array([1.0]), jnp.array([0.5]), support)
    # 1 + 0.5 * 2 = 2 and 1 + 0.5 * 0 = 1, each with weight 1/2.
    np.testing.assert_allclose(target, [[0, 0.5, 0.5, 0, 0]], atol=1e-6)
    # At termination (discount 0) the target is a point mass at the reward, split linearly.
    target = losses.td_target_distribution(next_q_logits, jnp.array([2.5]), jnp.array([0.0]), support)
    np.testing.assert_allclose(target, [[0, 0, 0.5, 0.5, 0]], atol=1e-6)


def test_critic_loss_is_cross_entropy():
    q_logits = jnp.log(jnp.array([[0.1, 0.6, 0.3]]))
    target = jnp.array([[0.0, 0.5, 0.5]])
    np.testing.assert_allclose(losses.critic_loss(q_logits, target), [-(0.5 * np.log(0.6) + 0.5 * np.log(0.3))], rtol=1e-6)


def test_improvement_weights_and_policy_loss():
    q = jnp.array([[1.0, 2.0, 3.0]])
    w = losses.improvement_weights(q, jnp.array(1.0))
    expected = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    np.testing.assert_allclose(w, [expected], rtol=1e-6)
    # A hot temperature forgets Q: uniform weights and zero KL to the samples.
    hot = losses.improvement_weights(q, jnp.array(1e6))
    np.testing.assert_allclose(hot, [[1 / 3] * 3], rtol=1e-5)
    np.testing.assert_allclose(losses.kl_to_samples(hot), [0.0], atol=1e-5)
    lp_data, lp_samples = jnp.array([-1.0]), jnp.array([[-2.0, -3.0, -4.0]])
    # alpha = 1: pure behavioural cloning.
    np.testing.assert_allclose(losses.policy_loss(lp_data, lp_samples, w, 1.0), [1.0])
    # alpha = 0: weighted maximum likelihood of the samples.
    np.testing.assert_allclose(losses.policy_loss(lp_data, lp_samples, w, 0.0), [-(expected @ [-2.0, -3.0, -4.0])], rtol=1e-6)
    mixed = losses.policy_loss(lp_data, lp_samples, w, 0.25)
    np.testing.assert_allclose(mixed, [0.25 * 1.0 + 0.75 * -(expected @ [-2.0, -3.0, -4.0])], rtol=1e-6)


def test_temperature_dual_matches_hand_value_and_its_minimum_meets_the_kl_bound():
    q = jnp.array([[0.0, 1.0], [2.0, 2.0]])
    eta, eps = 0.5, 0.1
    hand = eta * eps + eta * np.mean([np.log(np.mean(np.exp(np.array([0.0, 1.0]) / eta))),
                                      np.log(np.mean(np.exp(np.array([2.0, 2.0]) / eta)))])
    np.testing.assert_allclose(losses.temperature_dual_loss(jnp.array(eta), q, eps), hand, rtol=1e-6)
    # At the dual's minimum the reweighted samples sit at KL = epsilon (one state).
    q1 = jnp.array([[0.0, 1.0, 3.0, 0.5]])
    etas = jnp.exp(jnp.linspace(-4, 4, 4001))
    duals = jax.vmap(lambda e: losses.temperature_dual_loss(e, q1, eps))(etas)
    best = etas[jnp.argmin(duals)]
    kl = losses.kl_to_samples(losses.improvement_weights(q1, best))
    assert float(kl[0]) == pytest.approx(eps, abs=2e-3)


def test_expected_td_target_is_the_two_hot_of_the_mean_backup():
    support = discretization.value_support(0.0, 4.0, 5)  # atoms 0, 1, 2, 3, 4
    big = 50.0
    # Next actions with Z = 2 and Z = 0 (means 2 and 0): E[r + 0.5 Z] = 1 + 0.5 * 1 = 1.5.
    next_q_logits = jnp.array([[[0, 0, big, 0, 0], [big, 0, 0, 0, 0]]], jnp.float32)
    target = losses.td_target_two_hot(next_q_logits, jnp.array([1.0]), jnp.array([0.5]), support)
    np.testing.assert_allclose(target, [[0, 0.5, 0.5, 0, 0]], atol=1e-6)
    # Unlike the distributional target, a broad next-state distribution does not spread the
    # target: a uniform Z (mean 2) gives the point 1 + 0.5 * 2 = 2.
    target = losses.td_target_two_hot(jnp.zeros((1, 1, 5)), jnp.array([1.0]), jnp.array([0.5]), support)
    np.testing.assert_allclose(target, [[0, 0, 1, 0, 0]], atol=1e-6)
    # Mean-preserving inside the support, clipped at its ends.
    values = jnp.array([0.3, 2.75, -1.0, 9.0])
    probs = losses.two_hot(values, support)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs @ support, [0.3, 2.75, 0.0, 4.0], rtol=1e-6)


def test_temperature_for_kl_meets_the_bound_at_any_scale():
    values = jnp.asarray(np.random.default_rng(0).normal(size=256), jnp.float32)
    for scale, epsilon in [(1.0, 0.5), (50.0, 0.5), (0.01, 1.0), (1.0, 2.0)]:
        eta = losses.temperature_for_kl(values * scale, epsilon)
        weights = jax.nn.softmax(values * scale / eta)
        kl = float(jnp.sum(weights * (jnp.log(weights) + np.log(256))))
        assert abs(kl - epsilon) < 1e-3 * max(1.0, epsilon), (scale, epsilon, kl)
    # Larger bounds give more peaked weights.
    assert losses.temperature_for_kl(values, 2.0) < losses.temperature_for_kl(values, 0.5)


def test_standardize_per_task_removes_each_tasks_scale():
    values = jnp.array([0.0, 10.0, 100.0, 300.0, 5.0], jnp.float32)
    task = jnp.array([0, 0, 1, 1, 2])
    z = np.asarray(losses.standardize_per_task(values, task, 3))
    np.testing.assert_allclose(z[:4], [-1, 1, -1, 1], atol=1e-4)
    assert z[4] == 0.0  # a task seen once gets no weight of its own


def test_advantage_weighted_policy_loss_moves_from_bc_to_weighted_bc():
    log_prob = jnp.array([-1.0, -2.0])
    weights = jnp.array([1.5, 0.5])
    np.testing.assert_allclose(losses.advantage_weighted_policy_loss(log_prob, weights, 1.0), [1.0, 2.0])
    np.testing.assert_allclose(losses.advantage_weighted_policy_loss(log_prob, weights, 0.0), [1.5, 1.0])
    np.testing.assert_allclose(losses.advantage_weighted_policy_loss(log_prob, weights, 0.5), [1.25, 1.5])


def test_smoothed_action_log_prob_is_cross_entropy_with_a_gaussian_over_bins():
    logits = jnp.log(jax.nn.softmax(jnp.array([[[0.0, 1.0, 2.0, 1.0, 0.0], [5.0, 0.0, 0.0, 0.0, 0.0]]])))
    mask = jnp.array([[True, False]])
    bins = jnp.array([[2, 0]])
    # std 0 is the plain log-likelihood of the bin.
    np.testing.assert_allclose(losses.smoothed_action_log_prob(logits, bins, mask, 0.0),
                               losses.action_log_prob(logits, bins, mask), rtol=1e-6)
    target = np.exp(-0.5 * ((np.arange(5) - 2) / 1.0) ** 2)
    target /= target.sum()
    expected = np.sum(target * np.asarray(jax.nn.log_softmax(logits[0, 0])))
    np.testing.assert_allclose(losses.smoothed_action_log_prob(logits, bins, mask, 1.0), [expected], rtol=1e-5)
    # Sampled actions [B, N, A] give [B, N]; the padded dim never counts.
    many = losses.smoothed_action_log_prob(logits, jnp.array([[[2, 4], [2, 1]]]), mask, 1.0)
    np.testing.assert_allclose(many, [[expected, expected]], rtol=1e-5)
    # A smoothed target is maximized by a spread distribution, not a point mass on the bin.
    peaked = jnp.log(jnp.array([[[1e-6, 1e-6, 1.0, 1e-6, 1e-6]]]))
    spread = jnp.log(jnp.asarray(target, jnp.float32))[None, None]
    assert losses.smoothed_action_log_prob(spread, bins[:, :1], mask[:, :1], 1.0) > \
        losses.smoothed_action_log_prob(peaked, bins[:, :1], mask[:, :1], 1.0)


def test_calibrated_residual_removes_a_compressed_baseline_per_task():
    # Returns G = 5 V + noise per task (the critic's V ranks states right on a fifth of the
    # scale): the calibrated residual is the noise, up to its task's mean; raw G - V is not.
    rng = np.random.default_rng(0)
    task = np.repeat(np.arange(2), 500).astype(np.int32)
    value = rng.normal(size=1000).astype(np.float32)
    noise = rng.normal(size=1000).astype(np.float32)
    returns = (5.0 * value + np.where(task == 0, 10.0, -3.0) + noise).astype(np.float32)
    residual = np.asarray(losses.calibrated_residual(jnp.asarray(returns), jnp.asarray(value), jnp.asarray(task), 2))
    for k in range(2):
        rows = task == k
        assert abs(np.corrcoef(residual[rows], noise[rows])[0, 1]) > 0.99
        assert abs(residual[rows].mean()) < 1e-4
        assert np.std(returns[rows] - value[rows]) > 3 * np.std(residual[rows])
