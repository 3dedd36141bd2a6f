"""The comparison's reference methods: the simplest things that could work on the same data.

They calibrate PAC and the harness's BC (benchmarks.pac_vs_bc); they are not the product.
  regression BC   a plain MLP (2 x 256, ReLU) from the standardized observation and a
                  one-hot task to a tanh action, trained by mean squared error on the
                  data's actions: the same sampler, batch, steps and task weighting as the
                  harness's runs, and the same observation standardization;
  best snapshot   each task's expert snapshot (the spec's `expert_snapshot`, the SAC actor
                  whose mean return defines normalized return 1), mean actions: the
                  ceiling of what the data's behaviour reaches.
Both are evaluated by `harness.evaluation.evaluate_policy`, on the same start states as the
harness's runs of the same evaluation seed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness.data import online, sampler as sampler_lib
from harness.data.sac import NumpyActor
from harness.evaluation import Policy, evaluate_policy
from models.networks import PACInputs


@dataclasses.dataclass(frozen=True)
class RegressionBCConfig:
    dataset: str = "results/data/demo"
    tasks: tuple[str, ...] | None = None
    steps: int = 5000
    batch_size: int = 256
    learning_rate: float = 1e-3
    hidden: tuple[int, ...] = (256, 256)
    top_episode_fraction: float = 1.0
    task_weighting: str = "uniform"
    seed: int = 0


def _mlp(config: RegressionBCConfig, num_tasks: int, action_dim: int):
    def forward(obs: jax.Array, task_id: jax.Array) -> jax.Array:
        x = jnp.concatenate([obs, jax.nn.one_hot(task_id, num_tasks)], axis=-1)
        return jnp.tanh(hk.nets.MLP([*config.hidden, action_dim])(x))

    return hk.without_apply_rng(hk.transform(forward))


def train_regression_bc(config: RegressionBCConfig) -> tuple[Policy, sampler_lib.Sampler]:
    """Trains the MSE regression baseline; returns its deterministic policy and the training
    sampler (whose normalizer the evaluation must use)."""
    dataset = sampler_lib.load_dataset(config.dataset, config.tasks)
    sampler = sampler_lib.Sampler(dataset, config.batch_size, "train", seed=config.seed,
                                  task_weighting=config.task_weighting,
                                  top_episode_fraction=config.top_episode_fraction)
    net = _mlp(config, len(dataset.tasks), sampler.max_action_dim)
    first = sampler.sample_at(0)
    params = net.init(jax.random.key(config.seed), first.observation, first.task_id)
    schedule = optax.cosine_decay_schedule(config.learning_rate, config.steps, alpha=0.1)
    optimizer = optax.adam(schedule)
    opt_state = optimizer.init(params)

    @jax.jit
    def update(params, opt_state, obs, task_id, action, mask):
        def loss_fn(p):
            error = (net.apply(p, obs, task_id) - action) * mask
            return jnp.sum(error ** 2) / jnp.sum(mask)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    for step in range(config.steps):
        b = sampler.sample_at(step)
        params, opt_state, _ = update(params, opt_state, b.observation, b.task_id, b.action,
                                      b.action_mask.astype(np.float32))

    act = jax.jit(lambda p, inputs: net.apply(p, inputs.obs, inputs.task_id) * inputs.action_mask)
    return (lambda inputs, key: np.asarray(act(params, inputs))), sampler


def evaluate_regression_bc(config: RegressionBCConfig, episodes: int, eval_seed: int = 0) -> dict[str, Any]:
    policy, sampler = train_regression_bc(config)
    specs = [t.spec for t in sampler_lib.load_dataset(config.dataset, config.tasks).tasks]
    return evaluate_policy(policy, specs, episodes, sampler.max_observation_dim, sampler.max_action_dim, eval_seed,
                           sampler.normalizer)


def expert_snapshot_policy(dataset_dir: str | Path, specs: Sequence[Mapping[str, Any]]) -> Policy:
    """Per task id, its spec's expert snapshot (SAC actor, mean action) on raw observations."""
    actors = []
    for spec in specs:
        meta = json.loads((Path(dataset_dir) / "snapshots" / f"{spec['task']}.json").read_text())
        snapshots = online.load(dataset_dir, spec["task"], online.LearnerConfig(**meta["learner"]))
        if snapshots is None:
            raise ValueError(f"{dataset_dir}/snapshots/{spec['task']}.npz: the task's snapshots do not load")
        actors.append((NumpyActor(snapshots.actor_params[int(spec["expert_snapshot"])]), int(spec["observation_dim"])))

    def act(inputs: PACInputs, key) -> np.ndarray:
        actor, obs_dim = actors[int(inputs.task_id[0])]  # evaluate_policy steps one task at a time
        actions = np.zeros(inputs.action_mask.shape, np.float32)
        raw = actor(np.asarray(inputs.obs)[:, :obs_dim])
        actions[:, :raw.shape[1]] = raw
        return actions

    return act


def evaluate_best_snapshot(dataset_dir: str | Path, tasks: Sequence[str] | None, episodes: int,
                           eval_seed: int = 0) -> dict[str, Any]:
    dataset = sampler_lib.load_dataset(dataset_dir, tasks)
    specs = [t.spec for t in dataset.tasks]
    return evaluate_policy(expert_snapshot_policy(dataset_dir, specs), specs, episodes,
                           dataset.max_observation_dim, dataset.max_action_dim, eval_seed, normalizer=None)
