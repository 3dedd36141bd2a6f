"""Evaluation in the real environments: roll a trained policy out in each task's
environment (dm_control with the dataset's action repeat, or the Gymnasium environment
of data imported from Minari) and normalize its return: 0 = the task's random reference,
1 = its expert reference (the spec's random_return and expert_return). Tasks with D4RL
references (imported from Minari) also get the D4RL score, 100 x (return - ref_min) /
(ref_max - ref_min).

How an action is read from PAC's factorized categorical head (`ACTION_READOUTS`, the
run's `eval_mode`):
  'mode'  the most likely bin of each action dimension;
  'mean'  the expected action under each dimension's bin distribution (a deterministic
          policy, like a regression head; on multimodal data it averages the modes);
  'local_mean' the mean within LOCAL_BINS bins of the mode of the neighbour-smoothed bins
          (one mode, read without a single bin's noise);
  'sample' one draw from the bins (the stochastic policy that was trained).
Every task's result keeps its per-episode returns and a 95% interval over episodes, so
that two policies' difference can be told from evaluation noise.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from harness.data import tasks as tasks_lib
from harness.data.sampler import ObservationNormalizer
from models import discretization
from models.networks import PACInputs, PACNetworks

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never share a start state seed with the data
ACTION_READOUTS = ("mode", "mean", "local_mean", "sample")
LOCAL_BINS = 5

# (inputs, key) -> actions [B, max_action_dim] in [-1, 1], padded dims 0.
Policy = Callable[[PACInputs, jax.Array], np.ndarray]


def read_actions(policy_logits: jax.Array, readout: str, key: jax.Array) -> jax.Array:
    """Actions in [-1, 1] from factorized bin logits [B, A, K], read as `readout`."""
    num_bins = policy_logits.shape[-1]
    if readout == "mode":
        return discretization.bin_to_action(jnp.argmax(policy_logits, axis=-1), num_bins)
    if readout == "mean":
        probs = jax.nn.softmax(policy_logits.astype(jnp.float32), axis=-1)
        return probs @ discretization.action_bin_centers(num_bins)
    if readout == "local_mean":
        # The mean within +-LOCAL_BINS bins of the mode of the bins smoothed over neighbours:
        # one mode of a multimodal distribution, read without the single bin's noise.
        probs = jax.nn.softmax(policy_logits.astype(jnp.float32), axis=-1)
        offsets = jnp.arange(-LOCAL_BINS, LOCAL_BINS + 1)
        kernel = jnp.exp(-0.5 * (offsets / (LOCAL_BINS / 2.0)) ** 2)
        smoothed = jax.vmap(jax.vmap(lambda p: jnp.convolve(p, kernel, mode="same")))(probs)
        center = jnp.argmax(smoothed, axis=-1)
        window = jnp.abs(jnp.arange(num_bins) - center[..., None]) <= LOCAL_BINS
        local = probs * window
        return (local @ discretization.action_bin_centers(num_bins)) / jnp.sum(local, axis=-1)
    if readout == "sample":
        return discretization.bin_to_action(jax.random.categorical(key, policy_logits, axis=-1), num_bins)
    raise ValueError(f"eval_mode={readout!r}; allowed: {', '.join(ACTION_READOUTS)}")


def make_policy(networks: PACNetworks, params, readout: str) -> Policy:
    """PAC's policy as a `Policy`: one jitted encoder + policy-decoder call per step."""
    if readout not in ACTION_READOUTS:
        raise ValueError(f"eval_mode={readout!r}; allowed: {', '.join(ACTION_READOUTS)}")

    @jax.jit
    def act(params, inputs: PACInputs, key):
        logits = networks.policy_logits(params, networks.encode(params, inputs))
        return read_actions(logits, readout, key) * inputs.action_mask

    return lambda inputs, key: np.asarray(act(params, inputs, key))


def interval95(values: Sequence[float]) -> list[float]:
    """The 95% Student-t interval of the mean of `values` (episodes): [mean, mean] for one."""
    from scipy import stats

    values = np.asarray(values, np.float64)
    mean = float(values.mean())
    if len(values) < 2 or float(values.std()) == 0.0:
        return [mean, mean]
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return [mean - half, mean + half]


def normalize(value, spec: Mapping[str, Any]):
    """A raw return (or array of them) on the spec's 0 = random, 1 = expert scale."""
    low, high = float(spec["random_return"]), float(spec["expert_return"])
    return (np.asarray(value, np.float64) - low) / max(high - low, 1e-8)


def evaluate_policy(policy: Policy, task_specs: Sequence[Mapping[str, Any]], episodes: int, max_obs_dim: int,
                    max_action_dim: int, seed: int = 0,
                    normalizer: ObservationNormalizer | None = None) -> dict[str, dict[str, Any]]:
    """Per task (in the order of `task_specs`, the dataset's specs: the task ids): the mean
    raw return over `episodes` episodes, its normalized value, the per-episode normalized
    returns with their 95% interval, and the D4RL score where the task has D4RL references.

    The episodes of one task run in lockstep, so the policy is applied to a batch. Episode
    i of every task starts from the same seed for every policy (`seed` picks the set), so
    policies evaluated with one seed are compared on the same start states.
    `normalizer` must be the training sampler's, so the policy sees what it trained on.
    """
    key = jax.random.key(seed)
    results = {}
    for task_id, spec in enumerate(task_specs):
        name = spec["task"]
        envs = [tasks_lib.environment_for(spec, seed=EVAL_SEED_OFFSET + 1000 * seed + i) for i in range(episodes)]
        obs_dim, act_dim = envs[0].observation_dim, envs[0].action_dim
        obs_mask = np.zeros((episodes, max_obs_dim), bool)
        obs_mask[:, :obs_dim] = True
        action_mask = np.zeros((episodes, max_action_dim), bool)
        action_mask[:, :act_dim] = True
        observations = np.zeros((episodes, max_obs_dim), np.float32)
        for i, env in enumerate(envs):
            observations[i, :obs_dim] = env.reset()
        returns = np.zeros(episodes)
        done = np.zeros(episodes, bool)
        while not done.all():
            key, act_key = jax.random.split(key)
            seen = observations if normalizer is None else normalizer(observations, task_id) * obs_mask
            actions = policy(PACInputs(seen, obs_mask, np.full(episodes, task_id, np.int32), action_mask), act_key)
            for i, env in enumerate(envs):
                if done[i]:
                    continue
                obs, reward, _, last = env.step(actions[i, :act_dim])
                observations[i, :obs_dim] = obs
                returns[i] += reward
                done[i] = last
        for env in envs:
            env.close()
        normalized = normalize(returns, spec)
        mean = float(returns.mean())
        results[name] = {"return": mean, "normalized_return": float(normalized.mean()),
                         "normalized_return_ci95": interval95(normalized),
                         "episode_normalized_returns": [round(float(r), 5) for r in normalized]}
        if spec.get("d4rl_reference"):
            ref_min, ref_max = spec["d4rl_reference"]
            results[name]["d4rl_score"] = 100.0 * (mean - ref_min) / max(ref_max - ref_min, 1e-8)
    return results


def evaluate(networks: PACNetworks, params, task_specs: Sequence[Mapping[str, Any]], episodes: int,
             mode: str = "mode", seed: int = 0,
             normalizer: ObservationNormalizer | None = None) -> dict[str, dict[str, Any]]:
    """`evaluate_policy` of PAC's policy with these params, its actions read as `mode`."""
    config = networks.config
    return evaluate_policy(make_policy(networks, params, mode), task_specs, episodes, config.max_obs_dim,
                           config.max_action_dim, seed, normalizer)


def summarize(returns: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The mean over tasks of the normalized return and its 95% interval over episodes
    (each episode index's mean over tasks is one sample: episode i of every task)."""
    per_task = [np.asarray(r["episode_normalized_returns"], np.float64) for r in returns.values()]
    if not per_task:
        return {"normalized_return": None, "normalized_return_ci95": None}
    count = min(len(p) for p in per_task)
    across = np.mean([p[:count] for p in per_task], axis=0)
    return {"normalized_return": float(np.mean([p.mean() for p in per_task])),
            "normalized_return_ci95": interval95(across)}
