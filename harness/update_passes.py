"""The passes of one learner update, and their FLOPs: the count that turns a FLOP budget
into steps (`harness.builder.plan_run`), kept beside the update it describes.

`harness.learner.Learner._update` runs, for every example of the batch (N =
num_sampled_actions, N' = num_target_actions):
  target net on s:   encoder + policy + critic on N sampled actions, forward only: the
                     improvement weights' Q ('data_advantage' asks about the data action
                     too: N + 1 critic queries);
  target net on s':  encoder + policy + critic on N' sampled actions, forward only: the
                     TD target (none with critic_target 'monte_carlo');
  online net on s:   encoder + policy + critic on the data action, forward and backward;
                     with gradient_clipping='per_loss' the encoder's backward runs once per
                     loss (each loss's whole gradient is clipped on its own).
merge_target_encodes runs the two target encodes as one call on [s; s']: the same FLOPs.

`models.counts` gives each module's forward FLOPs (matmuls only); a backward pass costs
twice its forward (one matmul for the input gradient, one for the weight gradient).
tests/test_update_passes.py checks the count against the update itself: the matmuls of
its program, and XLA's compiled count.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from harness.learner import Learner, LearnerHyperparams
from models import counts
from models.config import PACConfig

# A backward pass costs this many forward passes.
BACKWARD_COST = 2


class Pass(NamedTuple):
    """A module run over the batch by one update."""

    params: str  # 'online' or 'target'
    inputs: str  # 's' (the state) or "s'" (the next state)
    module: str  # 'encoder', 'policy_decoder' or 'critic_decoder'
    num_actions: int  # candidate actions per state (the critic's queries; 1 for the others)
    backward: int = 0  # backward passes after the forward


def update_passes(hyperparams: LearnerHyperparams) -> tuple[Pass, ...]:
    """The passes `Learner._update` runs with these hyperparams (see the module docstring)."""
    improvement_queries = hyperparams.num_sampled_actions + (hyperparams.policy_improvement == "data_advantage")
    encoder_backwards = 2 if hyperparams.gradient_clipping == "per_loss" else 1
    # critic_target 'monte_carlo' regresses the data's return: no pass on s'.
    bootstrap = () if hyperparams.critic_target == "monte_carlo" else (
        Pass("target", "s'", "encoder", 1),
        Pass("target", "s'", "policy_decoder", 1),
        Pass("target", "s'", "critic_decoder", hyperparams.num_target_actions),
    )
    return (
        Pass("target", "s", "encoder", 1),
        Pass("target", "s", "policy_decoder", 1),
        Pass("target", "s", "critic_decoder", improvement_queries),
        *bootstrap,
        Pass("online", "s", "encoder", 1, backward=encoder_backwards),
        Pass("online", "s", "policy_decoder", 1, backward=1),
        Pass("online", "s", "critic_decoder", 1, backward=1),
    )


def module_flops(model: PACConfig, module: str, num_actions: int = 1) -> int:
    """Forward FLOPs of one module per example (`models.counts`)."""
    if module == "encoder":
        return counts.encoder_flops(model)
    if module == "policy_decoder":
        return counts.policy_decoder_flops(model)
    if module == "critic_decoder":
        return counts.critic_decoder_flops(model, num_actions)
    raise ValueError(f"unknown module {module!r}")


def update_flops(model: PACConfig, hyperparams: LearnerHyperparams) -> int:
    """Training FLOPs of one update on a batch of hyperparams.batch_size. BC (alpha = 1)
    runs the same passes, so BC and PAC runs of one size cost the same."""
    per_example = sum((1 + BACKWARD_COST * p.backward) * module_flops(model, p.module, p.num_actions)
                      for p in update_passes(hyperparams))
    return hyperparams.batch_size * per_example


def xla_update_flops(learner: Learner) -> float:
    """XLA's compiled FLOP count (CPU backend, abstract shapes: nothing is allocated) of the
    learner's own update on a batch of its batch_size. XLA also counts elementwise work
    (losses, sampling, the optimizer), which `update_flops` leaves out."""
    from harness.data.sampler import random_batch

    abstract = lambda tree: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)  # noqa: E731
    state = jax.eval_shape(lambda: learner.init(0))
    batch = abstract(random_batch(learner.networks.config, learner.hyperparams.batch_size))
    return counts.compiled_cpu_flops(learner.step_fn, state, batch, abstract(learner.constants))
