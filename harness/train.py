"""One training job (one grid cell): PAC or BC on a multi-task offline dataset.

    result = train(TrainConfig(preset="tiny", steps=1000, alpha=0.5), "results/run0")

The run folder (harness/run_folder.py) holds everything the analysis needs and everything
a restart needs: config.json (the resolved TrainConfig plus the derived plan), metrics.csv
(train rows every log_every steps, held-out 'valid' rows every valid_every steps, one
'eval' row of returns in the environments), checkpoints/ and result.json (written last).
A job killed at any moment and started again with the same command resumes from its last
checkpoint and ends with the same params and metrics as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from harness import evaluation, heldout
from harness.checkpointing import Checkpointer
from harness.config import MAX_STEPS, TrainConfig
from harness.data import sampler as sampler_lib
from harness.data import storage
from harness.input_pipeline import Prefetcher
from harness import learner as learner_lib
from harness.learner import Learner, host_local
from harness import run_folder
from harness.metrics_log import MetricsWriter
from models import counts, presets
from models.config import PACConfig
from models.networks import make_networks

# The learner says what it measures; the loop adds its own throughput numbers.
TRAIN_METRICS = learner_lib.TRAIN_METRICS + ("steps_per_second", "data_wait_fraction")
VALID_METRICS = learner_lib.VALID_METRICS


# Without a progress bar, `train` logs a line at most this often (and at the end).
LOG_LINE_SECONDS = 30.0


class TrainingDiverged(ValueError):
    """A loss or gradient became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What a TrainConfig resolves to on its dataset: the model and the run's length."""

    model: PACConfig
    task_names: tuple[str, ...]
    action_repeats: tuple[int, ...]
    steps: int
    flops_per_update: int
    params: int
    params_nonembedding: int
    tokens_per_example: int

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["model"] = dataclasses.asdict(self.model)
        return data


def plan_run(config: TrainConfig) -> RunPlan:
    """Resolves model shapes from the dataset's specs (arrays are not read) and the steps
    from the FLOP budget. Cheap: the launcher calls it for every grid cell."""
    config.validate()
    names = tuple(config.tasks) if config.tasks else tuple(storage.list_tasks(config.dataset))
    if not names:
        raise storage.DatasetError(f"{config.dataset}: no task datasets found (generate them with `pac data`)")
    specs = [storage.read_spec(config.dataset, name) for name in names]
    obs_dim = max(int(s["observation_dim"]) for s in specs)
    act_dim = max(int(s["action_dim"]) for s in specs)
    for field, need in (("max_obs_dim", obs_dim), ("max_action_dim", act_dim)):
        have = getattr(config, field)
        if have is not None and have < need:
            raise ValueError(f"{field}={have} is too small for dataset {config.dataset}, whose largest task needs {need}")
    model = presets.get_preset(
        config.preset,
        max_obs_dim=config.max_obs_dim or obs_dim,
        max_action_dim=config.max_action_dim or act_dim,
        num_tasks=len(names),
        compute_dtype=config.compute_dtype,
        obs_value_embedding=config.obs_value_embedding,
        attention=config.attention,
        # Rewards are scaled to [0, 1] per step (see `train`), so returns, and the
        # distributional critic's support, lie in [0, 1 / (1 - discount)].
        v_min=0.0,
        v_max=1.0 / (1.0 - config.discount),
    )
    flops = counts.train_flops_per_update(model, config.batch_size, config.num_sampled_actions, config.num_target_actions,
                                          per_loss_gradients=config.gradient_clipping == "per_loss")
    if config.steps is not None:
        steps = config.steps
    else:
        if config.flop_budget // flops > MAX_STEPS:
            raise ValueError(f"flop_budget={config.flop_budget:.3g} is {config.flop_budget // flops:.3g} updates of preset "
                             f"{config.preset} at batch {config.batch_size}, more than {MAX_STEPS} (the step counter is int32)")
        steps = int(config.flop_budget // flops)
        if steps < 1:
            raise ValueError(f"flop_budget={config.flop_budget:.3g} is less than one update ({flops:.3g} FLOPs for "
                             f"preset {config.preset} at batch {config.batch_size})")
    return RunPlan(
        model=model,
        task_names=names,
        action_repeats=tuple(int(s["action_repeat"]) for s in specs),
        steps=steps,
        flops_per_update=flops,
        params=counts.param_count(model),
        params_nonembedding=counts.non_embedding_param_count(model),
        tokens_per_example=model.num_input_tokens,
    )


def sampler_options(config: TrainConfig, plan: RunPlan) -> dict[str, Any]:
    """The Sampler arguments a run's train and held-out samplers share: the model's padded
    sizes, the split, the task weighting, the Monte-Carlo discount, and rewards scaled to
    [0, 1] per step (divided by the task's action repeat)."""
    return dict(max_observation_dim=plan.model.max_obs_dim, max_action_dim=plan.model.max_action_dim,
                valid_fraction=config.valid_fraction, task_weighting=config.task_weighting,
                mc_discount=config.discount,
                reward_scale={n: 1.0 / r for n, r in zip(plan.task_names, plan.action_repeats)})


def _finite_or_raise(metrics: dict[str, float], step: int, last_checkpoint: int | None, run_dir: Path) -> None:
    for name, value in metrics.items():
        if not math.isfinite(value):
            kept = f"last good checkpoint: step {last_checkpoint}" if last_checkpoint else "no checkpoint yet"
            raise TrainingDiverged(f"non-finite {name}={value} at step {step} in {run_dir}; {kept}")


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)


def train(config: TrainConfig, run_dir: str | os.PathLike, progress: bool | None = None,
          log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Runs (or resumes, or returns the result of) one training job. The run folder is
    locked while it trains: a second process on the same folder gets a one-line error."""
    run_dir = Path(run_dir)
    plan = plan_run(config)
    if jax.process_index() != 0:  # multi-host: process 0 holds the folder for all
        return _train(config, plan, run_dir, progress, log)
    with run_folder.lock(run_dir):
        created = run_folder.prepare(run_dir, config, plan.to_json())
        try:
            return _train(config, plan, run_dir, progress, log)
        except BaseException:
            if created:  # a run that failed before its first checkpoint leaves no config behind
                run_folder.withdraw(run_dir)
            raise


def _train(config: TrainConfig, plan: RunPlan, run_dir: Path, progress: bool | None,
           log: Callable[[str], None]) -> dict[str, Any]:
    # Multi-host: every process trains its slice of each batch; process 0 alone writes
    # the run folder's files (orbax coordinates the checkpoints of all processes).
    process, processes = jax.process_index(), jax.process_count()
    if config.batch_size % processes:
        raise ValueError(f"batch_size={config.batch_size} must divide evenly over {processes} processes")
    local_batch = config.batch_size // processes
    finished = run_folder.read_result(run_dir)
    if finished is not None:
        return finished

    dataset = sampler_lib.load_dataset(config.dataset, plan.task_names)
    common = sampler_options(config, plan)
    train_sampler = sampler_lib.Sampler(dataset, local_batch, "train", seed=config.seed + 100_003 * process,
                                        top_episode_fraction=config.top_episode_fraction, **common)
    valid_sampler = sampler_lib.Sampler(dataset, local_batch, "valid", **common)

    networks = make_networks(plan.model)
    learner = Learner(networks, config, plan.steps)
    state = learner.init(config.seed)
    checkpointer = Checkpointer(run_dir / run_folder.CHECKPOINTS_DIR, keep=config.keep_checkpoints)
    start = checkpointer.latest_step() or 0
    if start:
        state = checkpointer.restore(start, state)
        log(f"resumed {run_dir} from step {start}")
    tasks = plan.task_names
    columns = list(dict.fromkeys(TRAIN_METRICS + VALID_METRICS + heldout.metric_columns(tasks) + ("normalized_return",)
                                 + tuple(f"return/{t}" for t in tasks) + tuple(f"normalized_return/{t}" for t in tasks)))
    writer = (MetricsWriter(run_dir / run_folder.METRICS_FILE, columns, resume_step=start if start else None, log=log)
              if process == 0 else _NoWriter())
    # Every process evaluates the same held-out set: its slice of each global batch.
    valid_batch = config.valid_batch_size
    if valid_batch % processes:
        raise ValueError(f"valid_batch_size={valid_batch} must divide evenly over {processes} processes")
    heldout_set = heldout.HeldOutSet(
        valid_sampler, config.valid_examples_per_task, valid_batch,
        place=lambda b: learner.shard_batch(jax.tree.map(
            lambda x: x[process * (valid_batch // processes):(process + 1) * (valid_batch // processes)], b)))

    def counters(step: int) -> dict[str, Any]:
        examples = step * config.batch_size
        return {"step": step, "flops": step * plan.flops_per_update, "examples": examples,
                "tokens": examples * plan.tokens_per_example}

    def validate(step: int) -> dict[str, float]:
        metrics = heldout_set.evaluate(lambda b: host_local(learner.validation_metrics(state, b)))
        writer.write({**counters(step), "split": "valid", "wall_time": time.time(), **metrics})
        return metrics

    bar = _progress(plan.steps, start, sys.stderr.isatty() if progress is None else progress)
    # Batches drawn on the device, K updates a dispatch (one process); else a host thread
    # samples and stages each batch (multi-host: every process feeds its own slice).
    on_device = config.data_on_device and processes == 1
    if on_device:
        data = learner.place_data(train_sampler.split_arrays())
        prefetcher = None
    else:
        prefetcher = Prefetcher(lambda i: learner.shard_batch(train_sampler.sample_at(i)), start, plan.steps,
                                config.prefetch)
    every = (config.log_every, config.valid_every, config.checkpoint_every)

    def chunk_end(step: int) -> int:
        # A chunk ends at the next log, validation or checkpoint step (so they happen at
        # the same steps whatever K is, and a resumed run replays the same chunks).
        return min(step + config.updates_per_dispatch, plan.steps, *((step // e + 1) * e for e in every))

    last_checkpoint = start or None
    step, steady = start, None  # steady: (time, step, data wait) after the first (compiling) dispatch
    excluded = 0.0  # seconds of validation and checkpoint saves since `steady` (not training)
    last_log_time = last_log_step = last_log_excluded = None
    last_line = -float("inf")  # when the last progress line was logged (no progress bar)
    train_metrics: dict[str, float] = {}
    valid_metrics: dict[str, float] = {}
    try:
        while step < plan.steps:
            if on_device:
                end = chunk_end(step)
                state, device_metrics = learner.sampled_chunk(state, data, end - step)
            else:
                end = step + 1
                _, batch = prefetcher.next()
                state, device_metrics = learner.update(state, batch)
            done, step = step, end  # `step` counts the updates done
            if steady is None:
                # Throughput is measured from the end of the first dispatch: it excludes
                # compilation (and the prefetcher's wait behind it).
                jax.block_until_ready(state.step)
                steady = (time.perf_counter(), step, prefetcher.wait_seconds if prefetcher else 0.0)
                last_log_time, last_log_step, last_log_excluded = steady[0], step, 0.0
            is_last = step == plan.steps
            if step % config.log_every == 0 or is_last or step % config.checkpoint_every == 0:
                train_metrics = {k: float(v) for k, v in host_local(device_metrics).items()}
                _finite_or_raise(train_metrics, step, last_checkpoint, run_dir)
                now = time.perf_counter()
                # Training time only: validation and checkpoints inside the window are not.
                seconds = now - last_log_time - (excluded - last_log_excluded)
                train_metrics["steps_per_second"] = ((step - last_log_step) / seconds
                                                     if step > last_log_step and seconds > 0 else float("nan"))
                train_metrics["data_wait_fraction"] = (
                    (prefetcher.wait_seconds - steady[2]) / max(now - steady[0] - excluded, 1e-9) if prefetcher else 0.0)
                last_log_time, last_log_step, last_log_excluded = now, step, excluded
                if step % config.log_every == 0 or is_last:
                    writer.write({**counters(step), "split": "train", "wall_time": time.time(), **train_metrics})
                    if bar is None and (is_last or now - last_line >= LOG_LINE_SECONDS):
                        # No progress bar (output not a terminal): a line now and then instead.
                        last_line = now
                        rate = train_metrics["steps_per_second"]
                        log(f"step {step}/{plan.steps}: loss {train_metrics['loss']:.4f}, bc_loss "
                            f"{train_metrics['bc_loss']:.4f}, "
                            + (f"{rate:.1f} updates/s" if math.isfinite(rate) else "first dispatch (compiling)"))
                if bar is not None:
                    bar.set_postfix(loss=f"{train_metrics['loss']:.3f}", bc=f"{train_metrics['bc_loss']:.3f}")
            if step % config.valid_every == 0 or is_last:
                began = time.perf_counter()
                valid_metrics = validate(step)
                excluded += time.perf_counter() - began
            if step % config.checkpoint_every == 0 or is_last:
                began = time.perf_counter()
                checkpointer.save(step, learner.checkpointable(state))
                excluded += time.perf_counter() - began
                last_checkpoint = step
            if bar is not None:
                bar.update(step - done)
        jax.block_until_ready(state.step)
        if steady is not None:
            steps_run = plan.steps - steady[1]
            loop_seconds = time.perf_counter() - steady[0] - excluded
            data_wait = (prefetcher.wait_seconds - steady[2]) if prefetcher else 0.0
        else:
            steps_run, loop_seconds, data_wait = 0, 0.0, 0.0
    finally:
        if prefetcher is not None:
            prefetcher.close()
        if bar is not None:
            bar.close()
        checkpointer.wait()

    if not valid_metrics:  # resumed at the very end: the last rows are already logged
        valid_metrics = validate(plan.steps)
    returns = {}
    if config.eval_episodes and process == 0:
        returns = evaluation.evaluate(networks, host_local(state.params), tasks, dataset.return_bounds(),
                                      config.eval_episodes, config.eval_mode, config.seed, train_sampler.normalizer)
        row = {**counters(plan.steps), "split": "eval", "wall_time": time.time(),
               "normalized_return": float(np.mean([r["normalized_return"] for r in returns.values()]))}
        for name, r in returns.items():
            row[f"return/{name}"], row[f"normalized_return/{name}"] = r["return"], r["normalized_return"]
        writer.write(row)
    writer.close()
    checkpointer.close()

    rate = (lambda count: count / loop_seconds) if steps_run and loop_seconds > 0 else (lambda count: None)
    result = {
        "status": "done",
        "steps": plan.steps,
        "flops": plan.steps * plan.flops_per_update,
        "flops_per_update": plan.flops_per_update,
        "params": plan.params,
        "params_nonembedding": plan.params_nonembedding,
        "examples": plan.steps * config.batch_size,
        "valid": valid_metrics,
        "train": train_metrics,
        "returns": returns,
        "normalized_return": float(np.mean([r["normalized_return"] for r in returns.values()])) if returns else None,
        # Steady-state training: the updates after the first (compiling) dispatch, timed
        # without the validation and checkpoint saves that ran in between (None when the
        # run, or what was left of it, was a single dispatch).
        "throughput": {
            "steps_run": steps_run,
            "seconds": loop_seconds,
            "updates_per_second": rate(steps_run),
            "examples_per_second": rate(steps_run * config.batch_size),
            "achieved_flops_per_second": rate(steps_run * plan.flops_per_update),
            "data_wait_fraction": data_wait / loop_seconds if steps_run and loop_seconds > 0 else None,
            "updates_per_dispatch": config.updates_per_dispatch if on_device else 1,
            "data_on_device": on_device,
            "devices": jax.device_count(),
            "platform": jax.devices()[0].platform,
            "device_kind": jax.devices()[0].device_kind,
        },
    }
    if process == 0:
        run_folder.write_result(run_dir, result)
    return result


class _NoWriter:
    """Metrics sink of processes other than 0 in a multi-host job."""

    def write(self, row) -> None:
        del row

    def close(self) -> None:
        pass
