"""Rollout speed of dataset generation against the bare simulator, side by side.

For each task, in this one process (one core): the bare simulator (dm_control's
`env.step` with uniform-random actions, one environment) and the rollout phase's
`run_job` (a batch of environments in lockstep, a learner-sized SAC actor sampled with
exploration noise, every transition recorded). Both count simulator control steps per
second in the steady state: environments are built and a first job has run before the
timed window opens.

    python -m benchmarks.rollout_throughput [--tasks cartpole-swingup ...] [--seconds 3]

Prints one row per task and appends them to OUT (default
benchmarks/results/rollout_throughput.csv) with the machine named.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from harness.data import generate, online, rollout, tasks


def bare_simulator(task: str, seconds: float) -> float:
    """Control steps per second of dm_control's own step loop, random actions."""
    from dm_control import suite

    spec = tasks.get_task(task)
    env = suite.load(spec.domain, spec.task, task_kwargs={"random": 0})
    shape = env.action_spec().shape
    rng = np.random.default_rng(0)
    env.reset()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        if env.step(rng.uniform(-1, 1, shape)).last():
            env.reset()
        steps += 1
    return steps / (time.perf_counter() - start)


def actor_params(task: str) -> dict:
    """A learner-shaped actor (untrained: its speed is what is measured here)."""
    import jax

    from harness.data import sac

    env = tasks.make_environment(task, seed=0)
    learner = online.LearnerConfig()
    agent = sac.SAC(env.observation_dim, env.action_dim,
                    sac.SACConfig(hidden_sizes=(learner.hidden_size, learner.hidden_size)))
    return jax.tree.map(np.asarray, agent.init(jax.random.key(0)).actor_params)


def rollouts(task: str, params: dict, seconds: float) -> float:
    """Control steps per second of the rollout phase's jobs (recording, with noise)."""
    job = rollout.RolloutJob(task, 0, True, generate.EPISODES_PER_JOB, seed=0)
    rollout.run_job(job, params)  # builds this process's environments: not timed
    steps, start, seed = 0, time.perf_counter(), 1
    while time.perf_counter() - start < seconds:
        steps += rollout.run_job(dataclasses.replace(job, seed=seed), params)["control_steps"]
        seed += 1
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(generate.PRESETS["demo"]))
    parser.add_argument("--seconds", type=float, default=3.0, help="timed window per measurement")
    parser.add_argument("--out", default="benchmarks/results/rollout_throughput.csv")
    args = parser.parse_args()
    machine = f"cpu ({platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 used)"
    rows = []
    for task in args.tasks:
        params = actor_params(task)
        bare = bare_simulator(task, args.seconds)
        ours = rollouts(task, params, args.seconds)
        rows.append({"task": task, "bare_control_steps_per_s": round(bare), "rollout_control_steps_per_s": round(ours),
                     "ratio": round(ours / bare, 3), "machine": machine,
                     "date": time.strftime("%Y-%m-%d")})
        print(f"{task:20s} bare {bare:8.0f}/s  rollouts {ours:8.0f}/s  ratio {ours / bare:.2f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out, mode="a", header=not out.exists(), index=False)
    print(f"machine: {machine}; appended to {out}")


if __name__ == "__main__":
    main()
