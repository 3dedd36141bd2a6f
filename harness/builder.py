"""A TrainConfig mapped onto the learner's parts (Acme's builder): the numbers the update
uses, its optimizers and the run's constants. The learner itself never sees the config.
"""

from __future__ import annotations

import dataclasses

import optax
from jax.sharding import Mesh

from harness.config import TrainConfig
from harness.learner import Learner, LearnerHyperparams, RunConstants, run_constants as _run_constants
from models.networks import PACNetworks

_HYPERPARAM_NAMES = tuple(f.name for f in dataclasses.fields(LearnerHyperparams))


def learner_hyperparams(config: TrainConfig) -> LearnerHyperparams:
    """The TrainConfig fields the update reads (LearnerHyperparams keeps their names)."""
    return LearnerHyperparams(**{name: getattr(config, name) for name in _HYPERPARAM_NAMES})


def optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """AdamW at unit learning rate: the update clips the gradients first (globally or per
    loss) and multiplies by the schedule's rate (decoupled weight decay is scaled by it
    too, as in AdamW)."""
    return optax.adamw(1.0, weight_decay=config.weight_decay)


def temperature_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Adam on log eta for MPO's dual; a fixed temperature gets zero updates."""
    return optax.adam(config.temperature_learning_rate) if config.temperature == "dual" else optax.set_to_zero()


def run_constants(config: TrainConfig, total_steps: int) -> RunConstants:
    """The run's alpha, seed and schedule length (warm-up: warmup_fraction of it)."""
    return _run_constants(config.alpha, config.seed, total_steps, int(config.warmup_fraction * total_steps))


def make_learner(networks: PACNetworks, config: TrainConfig, total_steps: int, mesh: Mesh | None = None) -> Learner:
    """The learner of a run of `total_steps` updates with this config."""
    return Learner(networks, learner_hyperparams(config), run_constants(config, total_steps), optimizer(config),
                   temperature_optimizer(config), mesh=mesh)
