"""Phase 2 of dataset generation: snapshots rolled out in batches of environments.

A `RolloutJob` says which policy acts (a learner snapshot or the uniform-random policy),
whether it acts with exploration noise (a sample of SAC's stochastic policy) or with its
mean action, how many episodes, and the seed. `run_job` steps a batch of environments
in lockstep with one batched numpy policy call per step, so policy inference costs a
few microseconds per step and the simulator sets the pace. Everything random in a job
(the environments' initial states, the noise) comes from its seed: the same job gives
the same episodes, bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from harness.data import tasks

RANDOM_POLICY = -1  # snapshot id of the uniform-random policy
MAX_PARALLEL_ENVS = 16  # environments stepped in lockstep by one job


@dataclasses.dataclass(frozen=True)
class RolloutJob:
    task: str
    snapshot: int  # index into the task's snapshots, or RANDOM_POLICY.
    noise: bool  # True: sample the stochastic policy; False: its mean action.
    episodes: int
    seed: int
    record: bool = True  # False: keep only the episode returns (references).


_ENVIRONMENTS: dict[str, list[tasks.TaskEnvironment]] = {}


def _environments(task: str, count: int) -> list[tasks.TaskEnvironment]:
    """`count` environments of `task`, built once per process and reused by later jobs."""
    envs = _ENVIRONMENTS.setdefault(task, [])
    while len(envs) < count:
        envs.append(tasks.TaskEnvironment(tasks.get_task(task), seed=0))
    return envs[:count]


def _policy(job: RolloutJob, actor_params: Mapping[str, Any] | None, action_dim: int):
    if job.snapshot == RANDOM_POLICY:
        return lambda obs, rng: rng.uniform(-1.0, 1.0, (obs.shape[0], action_dim)).astype(np.float32)
    from harness.data.sac import NumpyActor

    if actor_params is None:
        raise ValueError(f"job for snapshot {job.snapshot} of {job.task} needs its actor parameters")
    actor = NumpyActor(actor_params)
    return lambda obs, rng: actor(obs, rng if job.noise else None)


def run_job(job: RolloutJob, actor_params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Runs a job's episodes; returns {'returns': [episodes], 'episodes': [dicts] (when
    recording), 'steps': agent steps, 'control_steps': simulator steps}."""
    spec = tasks.get_task(job.task)
    width = max(1, min(job.episodes, MAX_PARALLEL_ENVS))
    seeds = np.random.SeedSequence([job.seed, spec.action_repeat]).spawn(width + 1)
    envs = _environments(job.task, width)
    for env, seed in zip(envs, seeds[:width]):
        env.reseed(int(seed.generate_state(1)[0] % (2**31)))
    rng = np.random.default_rng(seeds[-1])
    policy = _policy(job, actor_params, envs[0].action_dim)
    episodes, returns, steps = [], [], 0
    for wave_start in range(0, job.episodes, width):
        active = list(range(min(width, job.episodes - wave_start)))
        obs = {i: [envs[i].reset()] for i in active}
        acts = {i: [] for i in active}
        rews = {i: [] for i in active}
        discs = {i: [] for i in active}
        while active:
            batch_actions = policy(np.stack([obs[i][-1] for i in active]), rng)
            still = []
            for i, action in zip(active, batch_actions):
                o, r, d, last = envs[i].step(action)
                obs[i].append(o)
                acts[i].append(action)
                rews[i].append(r)
                discs[i].append(d)
                if not last:
                    still.append(i)
            steps += len(active)
            active = still
        for i in sorted(obs):
            rewards = np.asarray(rews[i], np.float32)
            returns.append(float(rewards.sum(dtype=np.float64)))
            if job.record:
                episodes.append({"observations": np.stack(obs[i]).astype(np.float32),
                                 "actions": np.stack(acts[i]).astype(np.float32), "rewards": rewards,
                                 "discounts": np.asarray(discs[i], np.float32)})
    return {"returns": returns, "episodes": episodes, "steps": steps, "control_steps": steps * spec.action_repeat}
