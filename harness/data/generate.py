"""Records offline datasets in two phases: learn, then roll the learning history out.

Phase 1 (`harness.data.online`): an online SAC agent learns each task until it is
competent and saves its actor every few thousand steps: the snapshots, from barely
trained to its best.

Phase 2 (`harness.data.rollout`): worker processes roll snapshots out with batched
policy inference and record every transition. The dataset's size
(`transitions_per_task`) is a knob independent of the learner's time, and its quality
mix is fixed by `mix`: shares of the data from the uniform-random policy and from the
early, middle and final thirds of the snapshots (by learning time), each snapshot group
half with exploration noise (samples of SAC's stochastic policy) and half with its mean
action (`noise_fraction`). Like the paper's data, it mixes sub-optimal and expert
behaviour. Every transition keeps its snapshot id and the snapshot's mean return (its
quality tag).

Normalization references, as D4RL defines them: 0 = the mean return of
`random_reference_episodes` uniform-random episodes, 1 = the best snapshot's mean return
over `snapshot_eval_episodes` deterministic (mean-action) episodes (the "expert"). These
reference episodes are rolled out apart from the recorded data.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from harness.data import online, rollout, storage, tasks

PRESETS: Mapping[str, tuple[str, ...]] = {
    # Tasks of different observation/action sizes that SAC makes competent (best snapshot
    # >= 700) within a CPU minute or so each (finger-spin needs far longer: 416 after 50k steps).
    "demo": ("cartpole-swingup", "point_mass-easy", "reacher-easy", "ball_in_cup-catch"),
    "full": (
        "cartpole-swingup", "pendulum-swingup", "point_mass-easy", "reacher-easy", "finger-spin",
        "ball_in_cup-catch", "hopper-stand", "cheetah-run", "walker-walk",
    ),
    # Two tiny tasks for tests.
    "test": ("cartpole-swingup", "point_mass-easy"),
}

# Where the data comes from (shares of transitions): the uniform-random policy and the
# early, middle and final thirds of the learner's snapshots (ordered by learning time).
DEFAULT_MIX: tuple[tuple[str, float], ...] = (("random", 0.1), ("early", 0.3), ("middle", 0.3), ("final", 0.3))
SNAPSHOT_GROUPS = ("early", "middle", "final")
EPISODES_PER_JOB = 8  # episodes per rollout job: small enough to spread over workers


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """How one task's dataset is made. Part of each spec: a cached task is reused only if
    it was made with the same settings."""

    learner: online.LearnerConfig = online.LearnerConfig()
    transitions_per_task: int = 200_000
    mix: tuple[tuple[str, float], ...] = DEFAULT_MIX
    noise_fraction: float = 0.5  # share of each snapshot group's episodes with exploration noise
    random_reference_episodes: int = 20  # uniform-random episodes behind normalization's 0
    snapshot_eval_episodes: int = 10  # mean-action episodes per snapshot behind its mean return
    seed: int = 0

    def validate(self) -> None:
        self.learner.validate()
        if self.transitions_per_task < 1:
            raise ValueError(f"transitions_per_task={self.transitions_per_task} must be >= 1")
        if self.random_reference_episodes < 20:
            raise ValueError(f"random_reference_episodes={self.random_reference_episodes} must be >= 20 "
                             "(normalization's 0 is their mean)")
        if self.snapshot_eval_episodes < 10:
            raise ValueError(f"snapshot_eval_episodes={self.snapshot_eval_episodes} must be >= 10 "
                             "(normalization's 1 is the best snapshot's mean)")
        if not 0.0 <= self.noise_fraction <= 1.0:
            raise ValueError(f"noise_fraction={self.noise_fraction} must be in [0, 1]")
        groups = [g for g, _ in self.mix]
        unknown = [g for g in groups if g not in ("random",) + SNAPSHOT_GROUPS]
        if unknown or len(set(groups)) != len(groups):
            raise ValueError(f"mix groups {groups}; allowed: random, {', '.join(SNAPSHOT_GROUPS)}, each once")
        shares = [s for _, s in self.mix]
        if any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
            raise ValueError(f"mix shares {shares} must be >= 0 and sum to 1")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["mix"] = [list(m) for m in self.mix]
        return data


def resolve_tasks(names: Sequence[str] | None, preset: str | None) -> list[str]:
    """Task names from a preset and/or an explicit list, validated."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown dataset preset {preset!r}; known presets: {', '.join(PRESETS)}")
    chosen = list(PRESETS[preset]) if preset else []
    for name in names or ():
        tasks.get_task(name)
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise ValueError("no tasks given: pass --tasks or --preset")
    return chosen


def _seed(*parts: Any) -> int:
    """A stable 31-bit seed from names and numbers (Python's hash() is salted per process)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def snapshot_groups(num_snapshots: int) -> dict[str, list[int]]:
    """Snapshot ids of the early, middle and final thirds of learning (by time).

    With fewer than three snapshots a group that would be empty borrows the next later
    group's snapshots, so every share of the mix is recorded (the last snapshot is
    always in 'final')."""
    if num_snapshots < 1:
        raise ValueError("a task needs at least one learner snapshot")
    # Split from the end so that uneven thirds leave the extra snapshots early.
    thirds = [ids[::-1].tolist() for ids in np.array_split(np.arange(num_snapshots)[::-1], 3)][::-1]
    groups = dict(zip(SNAPSHOT_GROUPS, thirds))
    groups["middle"] = groups["middle"] or groups["final"]
    groups["early"] = groups["early"] or groups["middle"]
    return groups


def plan_rollouts(task: str, num_snapshots: int, config: GeneratorConfig) -> list[tuple[str, rollout.RolloutJob]]:
    """The rollout jobs of one task as (purpose, job): purpose is 'random_reference',
    'snapshot_eval' or a mix group. Episodes of a group are spread evenly over its
    snapshots; at least one episode per non-empty share."""
    length = tasks.get_task(task).episode_length
    groups = snapshot_groups(num_snapshots)
    jobs: list[tuple[str, rollout.RolloutJob]] = []

    def add(purpose: str, snapshot: int, noise: bool, episodes: int, record: bool) -> None:
        for start in range(0, episodes, EPISODES_PER_JOB):
            count = min(EPISODES_PER_JOB, episodes - start)
            jobs.append((purpose, rollout.RolloutJob(
                task, snapshot, noise, count, _seed(config.seed, task, purpose, snapshot, noise, start), record)))

    add("random_reference", rollout.RANDOM_POLICY, False, config.random_reference_episodes, False)
    for snapshot in range(num_snapshots):
        add("snapshot_eval", snapshot, False, config.snapshot_eval_episodes, False)
    for group, share in config.mix:
        episodes = int(round(share * config.transitions_per_task / length))
        if share > 0:
            episodes = max(episodes, 1)
        if group == "random":
            add(group, rollout.RANDOM_POLICY, False, episodes, True)
            continue
        members = groups[group]
        noisy = int(round(config.noise_fraction * episodes))
        for noise, count in ((True, noisy), (False, episodes - noisy)):
            # Round-robin over the group's snapshots, so each gets an equal share.
            per = np.bincount(np.arange(count) % len(members), minlength=len(members))
            for snapshot, n in zip(members, per):
                if n:
                    add(group, snapshot, noise, int(n), True)
    return jobs


def _learn(task: str, learner: online.LearnerConfig, out: str) -> str:
    snapshots = online.learn(task, learner, log=lambda line: print(line, flush=True))
    online.save(out, snapshots, learner)
    return task


def _rollout(job: rollout.RolloutJob, params) -> tuple[rollout.RolloutJob, dict[str, Any], float]:
    start = time.perf_counter()
    result = rollout.run_job(job, params)
    return job, result, time.perf_counter() - start


def assemble_task(task: str, snapshots: online.Snapshots, results: Sequence[tuple[str, rollout.RolloutJob, dict]],
                  config: GeneratorConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The dataset arrays and spec fields of one task from its finished rollout jobs."""
    spec = tasks.get_task(task)
    random_returns = [r for p, _, res in results if p == "random_reference" for r in res["returns"]]
    eval_returns: dict[int, list[float]] = {i: [] for i in range(len(snapshots))}
    for purpose, job, res in results:
        if purpose == "snapshot_eval":
            eval_returns[job.snapshot].extend(res["returns"])
    snapshot_mean = {i: float(np.mean(r)) for i, r in eval_returns.items()}
    random_return = float(np.mean(random_returns))
    expert = max(snapshot_mean, key=snapshot_mean.get)
    groups = snapshot_groups(len(snapshots))
    group_of = {s: g for g, ids in groups.items() for s in ids}

    episodes, composition = [], {g: {"share": s, "episodes": 0, "transitions": 0, "noisy_episodes": 0}
                                  for g, s in config.mix}
    for purpose, job, res in results:
        if purpose in ("random_reference", "snapshot_eval"):
            continue
        is_random = job.snapshot == rollout.RANDOM_POLICY
        quality = random_return if is_random else snapshot_mean[job.snapshot]
        updates = 0 if is_random else int(snapshots.updates[job.snapshot])
        source = (storage.SOURCE_RANDOM if is_random else
                  storage.SOURCE_SNAPSHOT_SAMPLED if job.noise else storage.SOURCE_SNAPSHOT_MEAN)
        for episode in res["episodes"]:
            steps = len(episode["actions"])
            episodes.append(dict(episode, source=source, snapshot=job.snapshot, quality=quality,
                                 policy_step=np.full(steps, updates, np.int64)))
            entry = composition[purpose]
            entry["episodes"] += 1
            entry["transitions"] += steps
            entry["noisy_episodes"] += int(job.noise)
    total = sum(c["transitions"] for c in composition.values())
    for entry in composition.values():
        entry["realized_share"] = round(entry["transitions"] / max(total, 1), 4)

    env_dims = (len(episodes[0]["observations"][0]), len(episodes[0]["actions"][0]))
    arrays = storage.build_arrays(episodes, *env_dims)
    fields = {
        "domain": spec.domain,
        "suite_task": spec.task,
        "action_repeat": spec.action_repeat,
        "episode_length": spec.episode_length,
        "observation_dim": env_dims[0],
        "action_dim": env_dims[1],
        "random_return": random_return,
        "random_episodes": len(random_returns),
        "random_return_std": float(np.std(random_returns)),
        "expert_return": snapshot_mean[expert],
        "expert_snapshot": int(expert),
        "snapshot_eval_episodes": config.snapshot_eval_episodes,
        "best_episode_return": float(arrays["episode_returns"].max()),
        "snapshots": [dict(s, mean_return=snapshot_mean[s["id"]], std_return=float(np.std(eval_returns[s["id"]])),
                           group=group_of.get(s["id"])) for s in online.snapshot_summary(snapshots)],
        "composition": composition,
        "learner_seconds": round(snapshots.seconds, 1),
        "learning_curve": [list(p) for p in snapshots.learning_curve],
        "seed": config.seed,
        "generator": config.to_json(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return arrays, fields


def _worker_init() -> None:
    # One XLA thread per worker process: the processes, not the threads, use the cores.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("MUJOCO_GL", "disable")  # physics only (see tasks.load_suite)


def generate(task_names: Sequence[str], out: str | os.PathLike, config: GeneratorConfig = GeneratorConfig(),
             workers: int = 1, force: bool = False, log: Callable[[str], None] = print) -> list[str]:
    """Generates every task not already present (with the same settings) under `out`.

    Returns the tasks that were generated; cached ones are reported and skipped. Learning
    and rollouts share a pool of `workers` processes: a task's rollouts start as soon as
    its learner finishes, while other tasks still learn.
    """
    config.validate()
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    expect = config.to_json()
    todo = []
    for task in task_names:
        tasks.get_task(task)
        if not force and storage.is_complete(out, task, expect=expect):
            log(f"{task}: cached in {out}, reusing it")
        else:
            todo.append(task)
    if not todo:
        return []
    start = time.perf_counter()
    snapshots: dict[str, online.Snapshots] = {}
    pending: dict[str, int] = {}
    finished: dict[str, list] = {t: [] for t in todo}
    rollout_seconds: dict[str, float] = {t: 0.0 for t in todo}
    rollout_steps: dict[str, int] = {t: 0 for t in todo}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                initializer=_worker_init) as pool:
        futures: dict[concurrent.futures.Future, tuple[str, Any]] = {}

        def submit_rollouts(task: str) -> None:
            snaps = snapshots[task]
            plan = plan_rollouts(task, len(snaps), config)
            pending[task] = len(plan)
            for order, (purpose, job) in enumerate(plan):
                params = None if job.snapshot == rollout.RANDOM_POLICY else snaps.actor_params[job.snapshot]
                futures[pool.submit(_rollout, job, params)] = ("rollout", (task, purpose, order))

        for task in todo:
            cached = None if force else online.load(out, task, config.learner)
            if cached is not None:
                log(f"{task}: reusing {len(cached)} cached learner snapshots")
                snapshots[task] = cached
                submit_rollouts(task)
            else:
                log(f"{task}: learning")
                futures[pool.submit(_learn, task, config.learner, str(out))] = ("learn", task)
        while futures:
            done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                kind, what = futures.pop(future)
                if kind == "learn":
                    task = future.result()
                    snapshots[task] = online.load(out, task, config.learner)
                    log(f"{task}: learned in {snapshots[task].seconds:.0f}s, {len(snapshots[task])} snapshots; "
                        f"rolling out")
                    submit_rollouts(task)
                    continue
                task, purpose, order = what
                job, result, seconds = future.result()
                finished[task].append((order, purpose, job, result))
                rollout_seconds[task] += seconds
                rollout_steps[task] += result["control_steps"]
                pending[task] -= 1
                if pending[task] == 0:
                    # Episodes in plan order, whatever order the workers finished in: the
                    # dataset (and its held-out split, by episode index) is a function of
                    # the settings alone.
                    results = [r[1:] for r in sorted(finished.pop(task), key=lambda r: r[0])]
                    arrays, fields = assemble_task(task, snapshots[task], results, config)
                    fields["rollout_control_steps_per_second"] = round(rollout_steps[task] / rollout_seconds[task], 1)
                    fields["generation_seconds"] = round(time.perf_counter() - start, 1)
                    storage.write_task(out, task, arrays, fields)
                    log(f"{task}: written, {arrays['actions'].shape[0]} transitions, random "
                        f"{fields['random_return']:.0f}, expert {fields['expert_return']:.0f} "
                        f"({time.perf_counter() - start:.0f}s)")
    return todo
