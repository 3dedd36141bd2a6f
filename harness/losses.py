"""PAC's losses as pure functions (design.md section 3). No networks in here: each takes
logits / values and returns per-example losses, so each is testable on tiny hand cases.

Shapes: B batch, A action dims (padded; `action_mask` [B, A] True = real), K action bins,
N sampled actions, V value bins.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from models import discretization


def action_log_prob(policy_logits: jax.Array, action_bins: jax.Array, action_mask: jax.Array) -> jax.Array:
    """log pi(a|s) of a factorized categorical policy, summed over the real action dims.

    policy_logits [B, A, K]; action_bins int [B, A] or [B, N, A]; returns [B] or [B, N].
    """
    log_probs = jax.nn.log_softmax(policy_logits, axis=-1)
    if action_bins.ndim == 3:
        log_probs = jnp.broadcast_to(log_probs[:, None], action_bins.shape + log_probs.shape[-1:])
        action_mask = action_mask[:, None, :]
    chosen = jnp.take_along_axis(log_probs, action_bins[..., None], axis=-1)[..., 0]
    return jnp.sum(chosen * action_mask, axis=-1)


def smoothed_action_log_prob(policy_logits: jax.Array, action_bins: jax.Array, action_mask: jax.Array,
                             target_std_bins: float) -> jax.Array:
    """sum over the real action dims of sum_k t_k log pi_k, where t is a Gaussian over the
    bins centred on the action's bin with std target_std_bins (normalized over the bins):
    the cross-entropy against a smoothed target ("HL-Gauss"). It lets neighbouring bins
    share what one action teaches, so a 101-bin head learns where the data's actions lie
    as fast as a regression head does; at std 0 it is `action_log_prob`.

    policy_logits [B, A, K]; action_bins int [B, A] or [B, N, A]; returns [B] or [B, N].
    """
    if target_std_bins <= 0:
        return action_log_prob(policy_logits, action_bins, action_mask)
    log_probs = jax.nn.log_softmax(policy_logits, axis=-1)
    num_bins = policy_logits.shape[-1]
    distance = (jnp.arange(num_bins) - action_bins[..., None]) / target_std_bins
    target = jax.nn.softmax(-0.5 * distance ** 2, axis=-1)  # [B, (N,) A, K]
    if action_bins.ndim == 3:
        log_probs = log_probs[:, None]
        action_mask = action_mask[:, None, :]
    return jnp.sum(jnp.sum(target * log_probs, axis=-1) * action_mask, axis=-1)


def sample_action_bins(key: jax.Array, policy_logits: jax.Array, num_samples: int, method: str = "gumbel") -> jax.Array:
    """num_samples bin indices per action dim from the policy: int32 [B, num_samples, A].

    'gumbel' draws K Gumbel variates per sample (jax.random.categorical); 'inverse_cdf'
    draws one uniform per sample and counts the bins whose cumulative probability lies
    below it. Both sample the policy exactly; inverse_cdf needs K times fewer random bits,
    which dominate the step's cost for small models (K = num_action_bins = 101).
    """
    if method == "inverse_cdf":
        cdf = jnp.cumsum(jax.nn.softmax(policy_logits.astype(jnp.float32), axis=-1), axis=-1)  # [B, A, K]
        uniform = jax.random.uniform(key, (policy_logits.shape[0], num_samples, policy_logits.shape[1]))
        bins = jnp.sum(cdf[:, None, :, :-1] < uniform[..., None], axis=-1)  # last cdf entry is 1 up to rounding
        return bins.astype(jnp.int32)
    logits = jnp.broadcast_to(policy_logits[:, None], (policy_logits.shape[0], num_samples) + policy_logits.shape[1:])
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def td_target_distribution(next_q_logits: jax.Array, reward: jax.Array, discount: jax.Array,
                           support: jax.Array) -> jax.Array:
    """Projected distributional TD target, averaged over the sampled next actions.

    next_q_logits [B, N, V] for a' ~ pi_target(.|s'); reward, discount [B] (discount
    already includes gamma and is 0 at termination). Each a' gives the distribution of
    r + discount * Z(s', a'), projected onto `support` (C51); their mean is the target,
    the policy-evaluation backup E_{a'~pi}[.] rather than a max. Returns [B, V].
    """
    probs = jax.nn.softmax(next_q_logits, axis=-1)
    projected = discretization.categorical_projection(probs, reward[:, None], discount[:, None], support)
    return projected.mean(axis=1)


def two_hot(values: jax.Array, support: jax.Array) -> jax.Array:
    """Scalar values [...] as distributions [..., V] on `support`: each value's mass split
    between its two neighbouring atoms so that the mean is the value (clipped to the support)."""
    delta = (support[-1] - support[0]) / (support.shape[0] - 1)
    values = jnp.clip(values, support[0], support[-1])
    return jnp.clip(1.0 - jnp.abs(values[..., None] - support) / delta, 0.0, 1.0)


def td_target_two_hot(next_q_logits: jax.Array, reward: jax.Array, discount: jax.Array,
                      support: jax.Array) -> jax.Array:
    """The expected TD target r + discount * E_{a'} E[Z(s', a')] as a two-hot distribution, [B, V].

    Unlike `td_target_distribution` it does not carry the target critic's spread into the
    target: starting from a broad critic, the distributional target contracts its width
    only by `discount` per target-network refresh, and within-state differences of Q (a
    few hundredths of the support) drown in that width for thousands of updates.
    """
    next_value = discretization.categorical_mean(next_q_logits, support).mean(axis=-1)
    return two_hot(reward + discount * next_value, support)


def critic_loss(q_logits: jax.Array, target_probs: jax.Array) -> jax.Array:
    """Cross-entropy between a target distribution and the critic's logits, [B]."""
    return -jnp.sum(jax.lax.stop_gradient(target_probs) * jax.nn.log_softmax(q_logits, axis=-1), axis=-1)


def improvement_weights(q_values: jax.Array, temperature: jax.Array) -> jax.Array:
    """MPO's non-parametric improved policy over N samples: softmax_j(Q_j / eta), [B, N]."""
    return jax.nn.softmax(jax.lax.stop_gradient(q_values) / temperature, axis=-1)


def temperature_dual_loss(temperature: jax.Array, q_values: jax.Array, kl_epsilon: float) -> jax.Array:
    """MPO's dual for eta: eta * epsilon + eta * E_s log mean_j exp(Q_j / eta).

    Minimizing it over eta > 0 gives the temperature at which the reweighted sample
    distribution is KL epsilon away from the sampling policy. Gradients flow only to eta.
    """
    q = jax.lax.stop_gradient(q_values)
    num = q.shape[-1]
    log_mean_exp = jax.nn.logsumexp(q / temperature, axis=-1) - jnp.log(num)
    return temperature * kl_epsilon + temperature * jnp.mean(log_mean_exp)


def policy_loss(log_prob_data: jax.Array, log_prob_samples: jax.Array, weights: jax.Array,
                alpha: float) -> jax.Array:
    """-(alpha * log pi(a_data|s) + (1 - alpha) * sum_j w_j log pi(a_j|s)), [B].

    alpha = 1 is behavioural cloning; alpha < 1 adds the KL-regularized improvement term.
    """
    improvement = jnp.sum(jax.lax.stop_gradient(weights) * log_prob_samples, axis=-1)
    return -(alpha * log_prob_data + (1.0 - alpha) * improvement)


def kl_to_samples(weights: jax.Array) -> jax.Array:
    """KL(q || uniform over the N samples): how far the improved policy moved, [B]."""
    num = weights.shape[-1]
    return jnp.sum(weights * (jnp.log(weights + 1e-12) + jnp.log(num)), axis=-1)


def temperature_for_kl(values: jax.Array, kl_epsilon: float, iterations: int = 40) -> jax.Array:
    """The eta at which softmax(values / eta) over a batch [B] lies exactly kl_epsilon from
    uniform (MPO's dual constraint, solved per batch by bisection on log eta rather than by
    gradient steps: the batch's advantages change faster than a stepped dual follows).
    KL falls monotonically as eta grows; a bound at or above log B gives the smallest eta
    searched (all weight on the best example)."""
    values = jax.lax.stop_gradient(values).astype(jnp.float32)
    scale = jnp.std(values) + 1e-8
    num = values.shape[0]

    def kl(log_eta):
        weights = jax.nn.softmax(values / jnp.exp(log_eta))
        return jnp.sum(weights * (jnp.log(weights + 1e-12) + jnp.log(num)))

    def step(_, bounds):
        low, high = bounds
        middle = 0.5 * (low + high)
        too_peaked = kl(middle) > kl_epsilon  # eta too small: raise the lower bound
        return jnp.where(too_peaked, middle, low), jnp.where(too_peaked, high, middle)

    bounds = (jnp.log(scale) - 10.0, jnp.log(scale) + 10.0)
    low, high = jax.lax.fori_loop(0, iterations, step, bounds)
    return jnp.exp(high)


def standardize_per_task(values: jax.Array, task_id: jax.Array, num_tasks: int) -> jax.Array:
    """values [B] less their task's batch mean, over their task's batch std (tasks with one
    example in the batch get 0)."""
    counts = jax.ops.segment_sum(jnp.ones_like(values), task_id, num_tasks)
    mean = jax.ops.segment_sum(values, task_id, num_tasks) / jnp.maximum(counts, 1.0)
    centered = values - mean[task_id]
    variance = jax.ops.segment_sum(centered ** 2, task_id, num_tasks) / jnp.maximum(counts, 1.0)
    return centered / (jnp.sqrt(variance[task_id]) + 1e-6)


def calibrated_residual(values: jax.Array, baseline: jax.Array, task_id: jax.Array, num_tasks: int) -> jax.Array:
    """values [B] less the per-task least-squares line through the baseline [B]:
    values - (a_k + b_k * baseline) with (a_k, b_k) fitted on the batch's examples of task k.

    The variance-minimizing baseline of the family a + b * V. A critic that ranks states
    right but on a compressed scale (V's spread a fifth of the returns', correlation 0.9)
    removes only a third of the returns' state-to-state variance as it is, most of it once
    scaled, leaving the part of the return the action (and luck) made.
    """
    counts = jnp.maximum(jax.ops.segment_sum(jnp.ones_like(values), task_id, num_tasks), 1.0)
    mean_v = jax.ops.segment_sum(values, task_id, num_tasks) / counts
    mean_b = jax.ops.segment_sum(baseline, task_id, num_tasks) / counts
    dv, db = values - mean_v[task_id], baseline - mean_b[task_id]
    covariance = jax.ops.segment_sum(dv * db, task_id, num_tasks) / counts
    variance = jax.ops.segment_sum(db * db, task_id, num_tasks) / counts
    slope = covariance / (variance + 1e-6)
    return dv - slope[task_id] * db


def advantage_weighted_policy_loss(log_prob_data: jax.Array, weights: jax.Array, alpha) -> jax.Array:
    """-(alpha + (1 - alpha) * w) * log pi(a_data|s), [B]: BC at alpha = 1; at alpha < 1 the
    data's actions are imitated in proportion to their advantage weights w (mean 1 over
    the batch), which moves the policy toward the data's better actions even where its
    own samples rarely hold them."""
    return -(alpha + (1.0 - alpha) * jax.lax.stop_gradient(weights)) * log_prob_data
