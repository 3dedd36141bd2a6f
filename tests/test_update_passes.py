"""The FLOPs of one update (harness/update_passes.py) against the update itself: the
matmuls of the learner's own program, and XLA's compiled count of it."""

import math

import jax
import pytest
from jax.extend import core as jax_core

from harness.builder import build_job, learner_hyperparams
from harness.config import TrainConfig
from harness.data.sampler import random_batch
from harness.update_passes import update_flops, update_passes, xla_update_flops
from models import critic_decoder_flops, encoder_flops, forward_flops, get_preset

MODEL = get_preset("tiny", max_obs_dim=24, max_action_dim=6)


def _hyperparams(**overrides):
    return learner_hyperparams(TrainConfig(steps=10, **overrides))


def test_update_flops_add_up_from_the_modules():
    config = get_preset("150k")
    assert update_flops(config, _hyperparams(batch_size=32)) == 32 * (
        3 * forward_flops(config, 1) + forward_flops(config, 20) + forward_flops(config, 1))
    # Per-loss clipping runs the encoder's backward once per loss: 2 encoder forwards more.
    assert (update_flops(config, _hyperparams(batch_size=32, gradient_clipping="per_loss"))
            == update_flops(config, _hyperparams(batch_size=32)) + 32 * 2 * encoder_flops(config))
    # data_advantage asks the target critic about the data action too: one query more.
    assert (update_flops(config, _hyperparams(batch_size=32, policy_improvement="data_advantage"))
            == update_flops(config, _hyperparams(batch_size=32, num_sampled_actions=21)))
    assert (update_flops(config, _hyperparams(batch_size=32, num_target_actions=3))
            - update_flops(config, _hyperparams(batch_size=32))
            == 32 * (critic_decoder_flops(config, 3) - critic_decoder_flops(config, 1)))
    # Merging the target encodes changes the calls, not the FLOPs.
    assert update_passes(_hyperparams(merge_target_encodes=False)) == update_passes(_hyperparams())


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, jax_core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax_core.Jaxpr):
                yield item


def _matmul_flops(jaxpr) -> int:
    """2 * (output size) * (contracted size) over every dot_general of a jaxpr, nested ones too."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (contracted, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in contracted)
        assert eqn.primitive.name != "conv_general_dilated", "convolutions are not counted here"
        total += sum(_matmul_flops(sub) for sub in _sub_jaxprs(eqn))
    return total


@pytest.mark.parametrize("overrides", [
    {},
    dict(gradient_clipping="per_loss"),
    dict(policy_improvement="data_advantage"),
    dict(policy_improvement="data_advantage", advantage_estimate="monte_carlo", gradient_clipping="per_loss"),
    dict(merge_target_encodes=False, action_sampling="gumbel"),
    dict(num_sampled_actions=4, num_target_actions=3, critic_target="distributional"),
    dict(critic_target="monte_carlo", policy_improvement="data_advantage", advantage_estimate="monte_carlo"),
])
def test_update_flops_are_the_matmuls_of_the_learners_update(overrides):
    """Every matmul the learner's update asks for (its jaxpr: forward, backward, every
    pass) is counted: the analytic count changes in step with the update or this fails."""
    batch_size = 8
    config = TrainConfig(steps=10, batch_size=batch_size, **overrides)
    learner = build_job(config, model=MODEL).learner
    state = jax.eval_shape(lambda: learner.init(0))
    jaxpr = jax.make_jaxpr(learner.step_fn)(state, random_batch(MODEL, batch_size), learner.constants).jaxpr
    # The one difference: the backward rule (2x the forward) charges an input gradient to
    # the online critic's two action-embedding matmuls ([1, A] x [A, d]: the data action's
    # values and its mask), whose inputs are data, not differentiated.
    not_differentiated = batch_size * 2 * (2 * MODEL.max_action_dim * MODEL.width)
    # The distributional TD target projects N' distributions onto the value support by a
    # matmul ([N', bins] x [bins, bins] an example): the loss's work, left out like the
    # losses' elementwise work.
    projection = 0
    if config.critic_target == "distributional":
        projection = batch_size * 2 * config.num_target_actions * MODEL.num_value_bins ** 2
    assert _matmul_flops(jaxpr) == update_flops(MODEL, learner.hyperparams) - not_differentiated + projection


# XLA (CPU backend) also counts elementwise work (losses, action sampling, the optimizer),
# so it sits above the matmul count: most for narrow models (tiny: ~15%). `pac models
# --xla` runs the same check on every preset.
@pytest.mark.parametrize("gradient_clipping", ["global", "per_loss"])
def test_update_flops_match_xla_within_25_percent(gradient_clipping):
    config = TrainConfig(steps=10, batch_size=8, gradient_clipping=gradient_clipping)
    learner = build_job(config, model=MODEL).learner
    analytic = update_flops(MODEL, learner.hyperparams)
    xla = xla_update_flops(learner)
    assert 1.0 <= xla / analytic <= 1.25, (xla, analytic)
