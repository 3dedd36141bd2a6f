"""Evaluation in the real environments: roll the trained policy out in each task's
environment (dm_control with the dataset's action repeat, or the Gymnasium environment
of data imported from Minari) and normalize its return: 0 = the task's random reference,
1 = its expert reference (the spec's random_return and expert_return). Tasks with D4RL
references (imported from Minari) also get the D4RL score, 100 x (return - ref_min) /
(ref_max - ref_min).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from harness.data import tasks as tasks_lib
from harness.data.sampler import ObservationNormalizer
from models import discretization
from models.networks import PACInputs, PACNetworks

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never share a start state seed with the data


def make_policy(networks: PACNetworks, mode: str):
    """A jitted (params, inputs, key) -> actions [B, A] in [-1, 1]."""
    num_bins = networks.config.num_action_bins

    def act(params, inputs: PACInputs, key):
        logits = networks.policy_logits(params, networks.encode(params, inputs))
        bins = jnp.argmax(logits, axis=-1) if mode == "mode" else jax.random.categorical(key, logits, axis=-1)
        return discretization.bin_to_action(bins, num_bins) * inputs.action_mask

    return jax.jit(act)


def evaluate(networks: PACNetworks, params, task_specs: Sequence[Mapping[str, Any]], episodes: int,
             mode: str = "mode", seed: int = 0,
             normalizer: ObservationNormalizer | None = None) -> dict[str, dict[str, float]]:
    """Per task (in the order of `task_specs`, the dataset's specs: the task ids): mean raw
    return over `episodes` episodes, its normalized value, and its D4RL score where the
    task has D4RL references.

    The episodes of one task run in lockstep, so the policy is applied to a batch.
    `normalizer` must be the training sampler's, so the policy sees what it trained on.
    """
    config = networks.config
    policy = make_policy(networks, mode)
    key = jax.random.key(seed)
    results = {}
    for task_id, spec in enumerate(task_specs):
        name = spec["task"]
        envs = [tasks_lib.environment_for(spec, seed=EVAL_SEED_OFFSET + 1000 * seed + i) for i in range(episodes)]
        obs_dim, act_dim = envs[0].observation_dim, envs[0].action_dim
        obs_mask = np.zeros((episodes, config.max_obs_dim), bool)
        obs_mask[:, :obs_dim] = True
        action_mask = np.zeros((episodes, config.max_action_dim), bool)
        action_mask[:, :act_dim] = True
        observations = np.zeros((episodes, config.max_obs_dim), np.float32)
        for i, env in enumerate(envs):
            observations[i, :obs_dim] = env.reset()
        returns = np.zeros(episodes)
        done = np.zeros(episodes, bool)
        while not done.all():
            key, act_key = jax.random.split(key)
            seen = observations if normalizer is None else normalizer(observations, task_id) * obs_mask
            inputs = PACInputs(seen, obs_mask, np.full(episodes, task_id, np.int32), action_mask)
            actions = np.asarray(policy(params, inputs, act_key))
            for i, env in enumerate(envs):
                if done[i]:
                    continue
                obs, reward, _, last = env.step(actions[i, :act_dim])
                observations[i, :obs_dim] = obs
                returns[i] += reward
                done[i] = last
        for env in envs:
            env.close()
        low, high = float(spec["random_return"]), float(spec["expert_return"])
        mean = float(returns.mean())
        results[name] = {"return": mean, "normalized_return": (mean - low) / max(high - low, 1e-8)}
        if spec.get("d4rl_reference"):
            ref_min, ref_max = spec["d4rl_reference"]
            results[name]["d4rl_score"] = 100.0 * (mean - ref_min) / max(ref_max - ref_min, 1e-8)
    return results
