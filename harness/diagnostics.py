"""Is the critic learning what PAC needs? Diagnostics computed inside the jitted update.

PAC improves on BC only if the critic ranks the actions of one state correctly: the
improvement weights softmax_j(Q(s, a_j) / eta) are noise otherwise, and MPO's dual then
shrinks eta until that noise decides the weights. These numbers say whether that
happens (all are batch means, cheap next to the update):

  q_spread        mean over states of the std of Q over the N sampled actions: near 0 means
                  the critic does not see the action.
  weights_ess     effective sample size of the improvement weights, 1 / sum_j w_j^2, as a
                  fraction of N: 1 = uniform (no improvement), 1/N = all on one action.
  q_mc_rank_corr  Spearman correlation, over the batch, of Q(s, a_data) with the
                  Monte-Carlo discounted return-to-go of the data's episode from (s, a_data):
                  the critic's own target where the behaviour policy is the evaluated one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

def ranks(x: jax.Array) -> jax.Array:
    """Rank of each entry along the last axis (0 = smallest), ties given their mean rank (as
    scipy's rankdata). A sort and two binary searches: O(n log n) time and O(n) memory in
    the axis length (n is a batch), so the step's memory stays linear in the batch."""
    x = x.astype(jnp.float32)

    def along(v: jax.Array) -> jax.Array:
        ordered = jnp.sort(v)
        below = jnp.searchsorted(ordered, v, side="left")  # entries < v
        up_to = jnp.searchsorted(ordered, v, side="right")  # entries <= v
        return below.astype(jnp.float32) + (up_to - below - 1).astype(jnp.float32) / 2.0

    flat = x.reshape(-1, x.shape[-1])
    return jax.vmap(along)(flat).reshape(x.shape)


def pearson(x: jax.Array, y: jax.Array) -> jax.Array:
    """Pearson correlation along the last axis (0 where either side is constant)."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = jnp.sqrt(jnp.sum(x * x, axis=-1) * jnp.sum(y * y, axis=-1))
    return jnp.where(denominator > 0, jnp.sum(x * y, axis=-1) / jnp.maximum(denominator, 1e-30), 0.0)


def spearman(x: jax.Array, y: jax.Array) -> jax.Array:
    """Spearman rank correlation along the last axis: Pearson's on the ranks."""
    return pearson(ranks(x), ranks(y))


def critic_and_weight_diagnostics(sampled_q: jax.Array, weights: jax.Array, q_data: jax.Array,
                                  mc_return: jax.Array | None = None) -> dict[str, jax.Array]:
    """sampled_q, weights [B, N]; q_data [B] = Q(s, a_data); mc_return [B] or None."""
    metrics = {
        "q_spread": jnp.mean(jnp.std(sampled_q, axis=-1)),
        "weights_ess": jnp.mean(1.0 / jnp.sum(jnp.square(weights), axis=-1)) / weights.shape[-1],
    }
    if mc_return is not None:
        metrics["q_mc_rank_corr"] = spearman(q_data, mc_return)
    return metrics


def advantage_diagnostics(sampled_q: jax.Array, num_samples: int,
                          mc_return: jax.Array | None = None) -> dict[str, jax.Array]:
    """Within-state diagnostics. sampled_q [B, N] (or [B, N + 1] with the data action's Q
    last). q_sample_range: mean over states of max - min of Q over the policy's samples.
    With the data action: advantage_std, the batch std of A = Q(s, a_data) - mean_j Q(s, a_j),
    and advantage_mc_rank_corr, the Spearman correlation of A with the Monte-Carlo return
    minus the same baseline: does the critic rank the data's actions within their states
    as their outcomes do."""
    samples = sampled_q[:, :num_samples]
    metrics = {"q_sample_range": jnp.mean(jnp.max(samples, axis=-1) - jnp.min(samples, axis=-1))}
    if sampled_q.shape[-1] > num_samples:
        baseline = jnp.mean(samples, axis=-1)
        advantage = sampled_q[:, -1] - baseline
        metrics["advantage_std"] = jnp.std(advantage)
        if mc_return is not None:
            metrics["advantage_mc_rank_corr"] = spearman(advantage, mc_return - baseline)
    return metrics
