"""The training step's speed settings keep its math: each one against the baseline step.

attention ('xla' vs 'einsum'), merge_target_encodes, donate_state and update_chunk must
give the same losses, gradients and diagnostics, within float32 rounding (and bfloat16
tolerance in bfloat16). cuDNN attention needs a GPU: benchmarks/step_profile.py runs it. action_sampling='inverse_cdf'
draws other samples from the same distribution, so it is checked in distribution.
"""

from __future__ import annotations

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from harness import losses
from harness.config import TrainConfig
from harness.data.sampler import random_batch
from harness.builder import build_job
from harness.learner import Learner
from models import get_preset, make_networks
from models.networks import PACInputs


# The step before its speed settings existed; each test turns one setting on.
BASELINE = dict(attention="einsum", merge_target_encodes=False, donate_state=False, action_sampling="gumbel")


def _learner(dtype="float32", **settings) -> Learner:
    config = TrainConfig(preset="tiny", steps=10, batch_size=16, compute_dtype=dtype, **{**BASELINE, **settings})
    model = get_preset("tiny", compute_dtype=dtype, attention=config.attention, max_obs_dim=12, max_action_dim=4,
                       num_tasks=3)
    return build_job(config, model=model).learner


@functools.lru_cache(maxsize=None)
def _baseline(dtype: str):
    """The baseline learner and its state and metrics after two updates (shared by tests)."""
    learner = _learner(dtype)
    return (learner, *_two_updates(learner))


def _two_updates(learner: Learner):
    batches = [learner.shard_batch(random_batch(learner.networks.config, 16, seed)) for seed in range(2)]
    state = learner.init(0)
    for batch in batches:
        state, metrics = learner.update(state, batch)
    return jax.device_get(state), jax.device_get(metrics)


def _gradients(learner: Learner, state):
    batch = learner.shard_batch(random_batch(learner.networks.config, 16, 7))
    _, _, grads = learner._losses_and_grads(state.params, state.target_params, jnp.float32(0.1), batch,
                                            jax.random.key(3), jnp.float32(0.5), with_grads=True)
    return jax.device_get(grads)


def _distance(a, b) -> float:
    """Global L2 distance between two gradient trees."""
    return float(np.sqrt(sum(np.sum((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2)
                             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))))


@pytest.mark.parametrize("settings", [{"attention": "xla"}, {"merge_target_encodes": True}, {"donate_state": True}])
def test_speed_settings_give_the_baseline_update(settings):
    baseline, base_state, base_metrics = _baseline("float32")
    variant = _learner(**settings)
    _, metrics = _two_updates(variant)
    for name in ("loss", "bc_loss", "critic_loss", "policy_loss", "q_mean", "grad_norm", "policy_grad_norm",
                 "critic_grad_norm", "temperature", "q_spread", "weights_ess"):
        np.testing.assert_allclose(metrics[name], base_metrics[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # Params are not compared leaf by leaf: Adam turns the rounding noise of gradients that
    # are exactly zero (attention's key biases) into full +-learning_rate steps. The
    # whole gradient at the same params is compared instead.
    base_grads, grads = _gradients(baseline, base_state), _gradients(variant, base_state)
    assert _distance(grads, base_grads) <= 1e-4 * _distance(base_grads, jax.tree.map(np.zeros_like, base_grads))


@pytest.mark.parametrize("settings", [{"merge_target_encodes": True}, {"donate_state": True}])
def test_speed_settings_in_bfloat16(settings):
    _, _, base_metrics = _baseline("bfloat16")
    _, metrics = _two_updates(_learner("bfloat16", **settings))
    for name in ("loss", "bc_loss", "critic_loss", "policy_loss", "grad_norm"):
        np.testing.assert_allclose(metrics[name], base_metrics[name], rtol=3e-2, err_msg=name)


@pytest.mark.parametrize("seed", [0, 1])
def test_xla_attention_in_bfloat16_is_as_close_to_float32_as_einsum(seed):
    """Within bfloat16 tolerance: the network's gradient (of a smooth loss; the full step
    samples actions, whose rounding-driven flips would swamp the comparison) is no farther
    from the float32 gradient with 'xla' attention than with 'einsum'."""
    model = get_preset("tiny", max_obs_dim=12, max_action_dim=4, num_tasks=3)
    batch = random_batch(model, 16, seed)
    inputs = PACInputs(batch.observation, batch.observation_mask, batch.task_id, batch.action_mask)
    params = make_networks(model).init(jax.random.key(seed), inputs)

    def gradient(config):
        networks = make_networks(config)

        def loss(p):
            out = networks.apply(p, inputs, batch.action[:, None])
            return (jnp.mean(jax.nn.log_softmax(out.policy_logits)[..., 3])
                    + jnp.mean(jax.nn.log_softmax(out.q_logits)[..., 5]))
        return jax.grad(loss)(params)

    exact = gradient(model)
    einsum = gradient(model.replace(compute_dtype="bfloat16"))
    xla = gradient(model.replace(compute_dtype="bfloat16", attention="xla"))
    assert _distance(xla, exact) <= 1.1 * _distance(einsum, exact)
    assert _distance(einsum, exact) <= 0.02 * _distance(exact, jax.tree.map(np.zeros_like, exact))


def test_attention_kernels_agree_with_padded_keys():
    model = get_preset("tiny", max_obs_dim=12, max_action_dim=4, num_tasks=3)
    batch = random_batch(model, 8)
    inputs = PACInputs(batch.observation, batch.observation_mask, batch.task_id, batch.action_mask)
    outputs = {}
    for kernel in ("einsum", "xla"):
        networks = make_networks(model.replace(attention=kernel))
        params = networks.init(jax.random.key(0), inputs)
        outputs[kernel] = networks.apply(params, inputs, batch.action[:, None])
    chex.assert_trees_all_close(outputs["xla"], outputs["einsum"], rtol=1e-5, atol=1e-5)


def test_update_chunk_equals_separate_updates():
    learner = _learner()
    model = learner.networks.config
    batches = [random_batch(model, 16, seed) for seed in range(3)]
    state = learner.init(0)
    for batch in batches:
        state, _ = learner.update(state, learner.shard_batch(batch))
    stacked = jax.tree.map(lambda *x: np.stack(x), *batches)
    chunk_state, chunk_metrics = learner.update_chunk(learner.init(0), jax.device_put(stacked))
    chex.assert_trees_all_close(jax.device_get(chunk_state), jax.device_get(state), rtol=1e-5, atol=1e-6)
    assert chunk_metrics["loss"].shape == (3,)


def test_donated_state_is_checkpointed_from_a_copy():
    learner = _learner(donate_state=True)
    state = learner.init(0)
    copy = learner.checkpointable(state)
    assert all(a is not b for a, b in zip(jax.tree.leaves(copy), jax.tree.leaves(state)))
    chex.assert_trees_all_equal(jax.device_get(copy), jax.device_get(state))


@pytest.mark.parametrize("method", ["gumbel", "inverse_cdf"])
def test_action_samplers_draw_the_policy_distribution(method):
    logits = jnp.log(jnp.asarray([[[0.5, 0.3, 0.15, 0.05, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]]]) + 1e-12)  # [1, A=2, K=5]
    bins = losses.sample_action_bins(jax.random.key(1), logits, 40_000, method)
    assert bins.shape == (1, 40_000, 2) and bins.dtype == jnp.int32
    frequencies = np.bincount(np.asarray(bins[0, :, 0]), minlength=5) / 40_000
    np.testing.assert_allclose(frequencies, [0.5, 0.3, 0.15, 0.05, 0.0], atol=0.01)
    assert np.all(np.asarray(bins[0, :, 1]) == 4)  # a certain bin is always drawn, never past the last


def test_bad_speed_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="attention='flash'"):
        TrainConfig(steps=1, attention="flash").validate()
    with pytest.raises(ValueError, match="action_sampling='sobol'"):
        TrainConfig(steps=1, action_sampling="sobol").validate()
    with pytest.raises(ValueError, match="needs compute_dtype='bfloat16'"):
        get_preset("tiny", attention="cudnn")


def test_memory_plan_grows_with_the_batch_and_a_program_too_big_is_refused_in_one_line():
    from harness.train import check_fits_in_memory

    plans = []
    for batch_size in (8, 32):
        learner = _learner()
        state = learner.init(0)
        plans.append(learner.planned_bytes(state, batch=learner.shard_batch(
            random_batch(learner.networks.config, batch_size, 0))))
    assert 0 < plans[0] < plans[1]
    fixed = plans[0] - (plans[1] - plans[0]) / 3  # the plan is linear in the batch
    check_fits_in_memory(plans[1], int(fixed), 32, None, "cpu")  # no limit reported: nothing to check
    check_fits_in_memory(plans[1], int(fixed), 32, plans[1], "cpu")
    with pytest.raises(ValueError) as err:
        check_fits_in_memory(plans[1], int(fixed), 32, plans[0], "NVIDIA H100")
    message = str(err.value)
    assert "\n" not in message and "batch_size=32 does not fit on NVIDIA H100" in message
    assert re.search(r"about [78] examples per batch would fit", message)
    # A backend without a memory plan is said, never counted as a plan of 0 bytes.
    with pytest.warns(UserWarning, match="no memory plan .* on NVIDIA H100: whether batch_size=32 fits"):
        check_fits_in_memory(None, int(fixed), 32, plans[0], "NVIDIA H100")
