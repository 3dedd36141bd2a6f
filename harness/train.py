"""One training job (one grid cell): PAC or BC on a multi-task offline dataset.

    result = train(TrainConfig(preset="tiny", steps=1000, alpha=0.5), "results/run0")

The run folder (harness/run_folder.py) holds everything the analysis needs and everything
a restart needs: config.json (the resolved TrainConfig and its data's identity), metrics.csv
(train rows every log_every steps, held-out 'valid' rows every valid_every steps, one
'eval' row of returns in the environments), checkpoints/ and result.json (written last).
A job killed at any moment and started again with the same command resumes from its last
checkpoint and ends with the same params and metrics as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np

from harness import evaluation, heldout
from harness.builder import RunPlan, build_job, plan_run, run_constants
from harness.checkpointing import Checkpointer, CheckpointWriteError, restore_newest
from harness.config import TrainConfig
from harness.input_pipeline import Prefetcher
from harness import learner as learner_lib
from harness.learner import host_local
from harness import run_folder
from harness import metrics_log
from harness.metrics_log import MetricsWriter
from harness.periodic import LoopClock, Throttle, due

# Without a progress bar, `train` logs a line at most this often (and at the end).
LOG_LINE_SECONDS = 30.0


class TrainingDiverged(ValueError):
    """A loss or gradient became NaN or infinite."""


def _finite_or_raise(metrics: dict[str, float], step: int, last_checkpoint: int | None, run_dir: Path) -> None:
    for name, value in metrics.items():
        if not math.isfinite(value):
            kept = f"last good checkpoint: step {last_checkpoint}" if last_checkpoint else "no checkpoint yet"
            raise TrainingDiverged(f"non-finite {name}={value} at step {step} in {run_dir}; {kept}")


def device_memory_limit(device: Any) -> int | None:
    """The bytes the device lets one process use: an accelerator's own limit, or the
    machine's physical memory for a CPU device (None where neither is known)."""
    stats = device.memory_stats() or {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    if device.platform == "cpu" and hasattr(os, "sysconf"):
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError):
            return None
    return None


def check_fits_in_memory(planned: int | None, fixed: int, batch_size: int, limit: int | None, device_kind: str) -> None:
    """Refuses, in one line, a training program whose memory plan exceeds the device's
    limit, with the batch that would fit: the plan is `fixed` bytes (state, resident data)
    plus a part linear in the batch. Without a plan from XLA it warns that nothing was
    checked, rather than passing as if the program needed no memory."""
    if limit is not None and planned is None:
        warnings.warn(f"XLA gave no memory plan for the training program on {device_kind}: whether "
                      f"batch_size={batch_size} fits its {limit / 2**30:.1f} GiB is not checked", stacklevel=2)
        return
    if limit is None or planned <= limit:
        return
    per_example = max(planned - fixed, 1) / batch_size
    fits = max(int((limit - fixed) / per_example), 0)
    raise ValueError(f"batch_size={batch_size} does not fit on {device_kind}: XLA's memory plan needs "
                     f"{planned / 2**30:.1f} GiB of the {limit / 2**30:.1f} GiB there; about {fits} examples per "
                     f"batch would fit (or set --data-on-device false to keep the dataset on the host)")


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)


def train(config: TrainConfig, run_dir: str | os.PathLike, progress: bool | None = None,
          log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Runs (or resumes, or returns the result of) one training job. The run folder is
    locked while it trains: a second process on the same folder gets a one-line error."""
    return train_pack([config], [run_dir], progress, log)[0]


# The fields in which the runs of one pack may differ: everything else shapes the program.
PACK_FIELDS = ("alpha", "seed")


def check_packable(configs: Sequence[TrainConfig]) -> None:
    """One-line ValueError unless the configs differ only in PACK_FIELDS (then their
    updates are one program with per-run constants) and the pack can be trained as one."""
    first = configs[0].to_json()
    for config in configs[1:]:
        other = config.to_json()
        changed = sorted(k for k in first if k not in PACK_FIELDS and first[k] != other.get(k))
        if changed:
            k = changed[0]
            raise ValueError(f"runs of one pack may differ only in {', '.join(PACK_FIELDS)}; {k} differs "
                             f"({first[k]!r} vs {other.get(k)!r})")
    if len(configs) > 1 and not configs[0].data_on_device:
        raise ValueError("a pack of runs samples its batches on the device: it needs data_on_device=True")
    if len(configs) > 1 and jax.process_count() > 1:
        raise ValueError("a pack of runs is a one-process job; multi-host jobs train one run")


def train_pack(configs: Sequence[TrainConfig], run_dirs: Sequence[str | os.PathLike], progress: bool | None = None,
               log: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """Trains runs that differ only in alpha and seed as one program (jax.vmap over the
    runs: small models that leave an accelerator idle fill it together). Each run keeps
    its own folder, metrics, checkpoints and result, exactly as if trained alone: its
    batches come from its own seed, and a killed pack resumes every run from its last
    checkpoint (all runs of a pack checkpoint at the same steps). Finished runs are not
    retrained. Returns the results in the order given."""
    configs, run_dirs = list(configs), [Path(d) for d in run_dirs]
    if not configs or len(configs) != len(run_dirs):
        raise ValueError(f"train_pack needs one run folder per config, got {len(configs)} configs and "
                         f"{len(run_dirs)} folders")
    if len({d.resolve() for d in run_dirs}) != len(run_dirs):
        raise ValueError(f"the runs of a pack need distinct folders, got {[str(d) for d in run_dirs]}")
    check_packable(configs)
    if any(c.tensorboard for c in configs):
        metrics_log.summary_writer_class()
    plan = plan_run(configs[0])  # the same for every run of the pack
    if jax.process_index() != 0:  # multi-host: process 0 holds the folder for all
        return [_train(configs, plan, run_dirs, progress, log)[0]]
    with contextlib.ExitStack() as stack:
        for run_dir in run_dirs:
            stack.enter_context(run_folder.lock(run_dir))
        created = [run_folder.prepare(d, c, plan.to_json()) for c, d in zip(configs, run_dirs)]
        try:
            return _train(configs, plan, run_dirs, progress, log)
        except BaseException:
            for run_dir, made in zip(run_dirs, created):
                if made:  # a run that failed before its first checkpoint leaves no config behind
                    run_folder.withdraw(run_dir)
            raise


def _train(configs: list[TrainConfig], plan: RunPlan, run_dirs: list[Path], progress: bool | None,
           log: Callable[[str], None]) -> list[dict[str, Any]]:
    results: list[dict[str, Any] | None] = [run_folder.read_result(d) for d in run_dirs]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        trained = _train_runs([configs[i] for i in todo], plan, [run_dirs[i] for i in todo], progress, log)
        for i, result in zip(todo, trained):
            results[i] = result
    return results


def _train_runs(configs: list[TrainConfig], plan: RunPlan, run_dirs: list[Path], progress: bool | None,
                log: Callable[[str], None]) -> list[dict[str, Any]]:
    # Multi-host: every process trains its slice of each batch; process 0 alone writes
    # the run folder's files (orbax coordinates the checkpoints of all processes).
    config, runs, packed = configs[0], range(len(configs)), len(configs) > 1
    process, processes = jax.process_index(), jax.process_count()
    if config.batch_size % processes:
        raise ValueError(f"batch_size={config.batch_size} must divide evenly over {processes} processes")
    local_batch = config.batch_size // processes

    job = build_job(config, plan=plan)
    # Every process draws the whole global batch from the run's seed (the train sampler's)
    # and keeps its own slice: the run sees the same batches on any number of processes (a
    # 2-process job matches the 1-process host-sampled run; tests/test_multiprocess.py).
    learner, train_sampler = job.learner, job.train_sampler
    checkpointers = [Checkpointer(d / run_folder.CHECKPOINTS_DIR, keep=config.keep_checkpoints) for d in run_dirs]
    # The newest step every run of the pack holds and that reads (a kill between two runs'
    # saves, or a damaged newest checkpoint, must not stop every relaunch).
    start, states = restore_newest(checkpointers, [learner.init(c.seed) for c in configs], run_dirs, log)
    if start:
        log(f"resumed {', '.join(map(str, run_dirs))} from step {start}")
    state = learner_lib.stack(states) if packed else states[0]
    constants = learner_lib.stack([run_constants(c, plan.steps) for c in configs]) if packed else None
    del states

    def run_state(i: int):
        return learner_lib.unstack(state, i) if packed else state

    # metrics.csv's columns are the names the learner, the held-out set and the evaluation return.
    writers = [MetricsWriter(d / run_folder.METRICS_FILE, resume_step=start if start else None, log=log,
                             tensorboard=config.tensorboard)
               if process == 0 else _NoWriter() for d in run_dirs]
    # Every process evaluates the same held-out set: its slice of each global batch.
    valid_batch = config.valid_batch_size
    if valid_batch % processes:
        raise ValueError(f"valid_batch_size={valid_batch} must divide evenly over {processes} processes")
    heldout_set = heldout.HeldOutSet(
        job.valid_sampler, config.valid_examples_per_task, valid_batch,
        place=lambda b: learner.shard_batch(jax.tree.map(
            lambda x: x[process * (valid_batch // processes):(process + 1) * (valid_batch // processes)], b)))

    def counters(step: int) -> dict[str, Any]:
        examples = step * config.batch_size
        return {"step": step, "flops": step * plan.flops_per_update, "examples": examples,
                "tokens": examples * plan.tokens_per_example}

    def validate(step: int) -> list[dict[str, float]]:
        out = []
        for i in runs:
            params_state = run_state(i)
            metrics = heldout_set.evaluate(lambda b: host_local(learner.validation_metrics(params_state, b)))
            writers[i].write({**counters(step), "split": "valid", "wall_time": time.time(), **metrics})
            out.append(metrics)
        return out

    bar = _progress(plan.steps, start, sys.stderr.isatty() if progress is None else progress)
    # Batches drawn on the device, K updates a dispatch (one process); else a host thread
    # samples and stages each batch (multi-host: every process feeds its own slice).
    on_device = config.data_on_device and processes == 1
    own_slice = lambda batch: jax.tree.map(lambda x: x[process * local_batch:(process + 1) * local_batch], batch)  # noqa: E731
    data = learner.place_data(train_sampler.split_arrays()) if on_device else None
    limit = device_memory_limit(jax.local_devices()[0])
    chunk = planned = None
    if on_device:  # compiled once, here: the loop runs it and the memory check reads its plan
        chunk, planned = learner.compile_chunk(state, data, constants)
    elif limit is not None:
        planned = learner.planned_bytes(state, batch=learner.shard_batch(own_slice(train_sampler.sample_at(0))))
    if limit is not None:  # refuse a program that cannot fit before training
        nbytes = lambda tree: sum(x.nbytes for x in jax.tree.leaves(tree))  # noqa: E731
        check_fits_in_memory(planned, nbytes(state) + (nbytes(data) if on_device else 0),
                             local_batch * len(configs), limit, jax.local_devices()[0].device_kind)
    prefetcher = None if on_device else Prefetcher(lambda i: learner.shard_batch(own_slice(train_sampler.sample_at(i))), start,
                                                   plan.steps, config.prefetch)
    every = (config.log_every, config.valid_every, config.checkpoint_every)

    def chunk_end(step: int) -> int:
        # A chunk ends at the next log, validation or checkpoint step (so they happen at
        # the same steps whatever K is, and a resumed run replays the same chunks).
        return min(step + config.updates_per_dispatch, plan.steps, *((step // e + 1) * e for e in every))

    last_checkpoint = start or None
    # Throughput is training time: from the end of the first dispatch (compilation, and the
    # prefetcher's wait behind it, left out), without validation and checkpoint saves.
    clock = LoopClock(wait_seconds=lambda: prefetcher.wait_seconds if prefetcher else 0.0)
    log_line = Throttle(LOG_LINE_SECONDS)  # no progress bar: a line now and then instead
    step, last = start, plan.steps
    train_metrics: list[dict[str, float]] = [{} for _ in runs]
    valid_metrics: list[dict[str, float]] = []
    try:
        while step < last:
            if on_device:  # one run or a pack
                end = chunk_end(step)
                state, device_metrics = chunk(state, end - step)
            else:
                end = step + 1
                _, batch = prefetcher.next()
                state, device_metrics = learner.update(state, batch)
            done, step = step, end  # `step` counts the updates done
            if not clock.started:
                jax.block_until_ready(state.step)
                clock.start(step)
            log_due, checkpoint_due = due(step, config.log_every, last), due(step, config.checkpoint_every, last)
            if log_due or checkpoint_due:
                fetched = host_local(device_metrics)
                rate, wait = clock.window(step)
                for i in runs:
                    checkpointers[i].check()  # a save that failed in the background stops the run here
                    metrics = {k: float(v[i] if packed else v) for k, v in fetched.items()}
                    _finite_or_raise(metrics, step, last_checkpoint, run_dirs[i])
                    train_metrics[i] = {**metrics, "steps_per_second": rate, "data_wait_fraction": wait}
                first = train_metrics[0]
                if log_due:
                    for i in runs:
                        writers[i].write({**counters(step), "split": "train", "wall_time": time.time(),
                                          **train_metrics[i]})
                    if bar is None and log_line(force=step == last):
                        pack = f" ({len(configs)} runs; the first's losses)" if packed else ""
                        log(f"step {step}/{last}{pack}: loss {first['loss']:.4f}, bc_loss "
                            f"{first['bc_loss']:.4f}, "
                            + (f"{rate:.1f} updates/s" if math.isfinite(rate) else "first dispatch (compiling)"))
                if bar is not None:
                    bar.set_postfix(loss=f"{first['loss']:.3f}", bc=f"{first['bc_loss']:.3f}")
            if due(step, config.valid_every, last):
                with clock.excluded():
                    valid_metrics = validate(step)
            if checkpoint_due:
                with clock.excluded():
                    for i in runs:  # a run of a pack is a fresh slice: no copy needed before donation
                        checkpointers[i].save(step, run_state(i) if packed else learner.checkpointable(state))
                last_checkpoint = step
            if bar is not None:
                bar.update(step - done)
        jax.block_until_ready(state.step)
        steps_run, loop_seconds, data_wait = clock.totals(last)
    finally:
        if prefetcher is not None:
            prefetcher.close()
        if bar is not None:
            bar.close()
        failing = sys.exc_info()[1] is not None
        for checkpointer in checkpointers:
            try:
                checkpointer.wait()
            except CheckpointWriteError:
                if not failing:  # else the error already on its way out says more (or the same)
                    raise

    if not valid_metrics:  # resumed at the very end: the last rows are already logged
        valid_metrics = validate(plan.steps)
    for i in runs:
        if not train_metrics[i]:  # resumed at the very end: no update ran, the last train row holds them
            train_metrics[i] = metrics_log.logged_row(run_dirs[i] / run_folder.METRICS_FILE, plan.steps, "train")
    results = []
    for i in runs:
        returns = {}
        if configs[i].eval_episodes and process == 0:
            returns = evaluation.evaluate(job.networks, host_local(run_state(i).params), [t.spec for t in job.dataset.tasks],
                                          configs[i].eval_episodes, configs[i].eval_mode, configs[i].seed,
                                          train_sampler.normalizer)
            row = {**counters(plan.steps), "split": "eval", "wall_time": time.time(),
                   "normalized_return": evaluation.summarize(returns)["normalized_return"]}
            row.update({f"{key}/{name}": value for name, r in returns.items() for key, value in r.items()
                        if np.isscalar(value)})
            writers[i].write(row)
        writers[i].close()
        checkpointers[i].close()

        rate = (lambda count: count / loop_seconds) if steps_run and loop_seconds > 0 else (lambda count: None)
        result = {
            "status": "done",
            "steps": plan.steps,
            "flops": plan.steps * plan.flops_per_update,
            "flops_per_update": plan.flops_per_update,
            "params": plan.params,
            "params_nonembedding": plan.params_nonembedding,
            "examples": plan.steps * config.batch_size,
            "valid": valid_metrics[i],
            "train": train_metrics[i],
            "returns": returns,
            # Mean over tasks, with its 95% interval over evaluation episodes; how the actions
            # were read from the policy's bins and how many episodes per task.
            **evaluation.summarize(returns),
            "evaluation": {"eval_mode": configs[i].eval_mode, "episodes_per_task": configs[i].eval_episodes},
            # Steady-state training: the updates after the first (compiling) dispatch, timed
            # without the validation and checkpoint saves that ran in between (None when the
            # run, or what was left of it, was a single dispatch). A run of a pack reports its
            # own rate; the pack's whole rate is packed_runs times it.
            "throughput": {
                "steps_run": steps_run,
                "seconds": loop_seconds,
                "updates_per_second": rate(steps_run),
                "examples_per_second": rate(steps_run * config.batch_size),
                "achieved_flops_per_second": rate(steps_run * plan.flops_per_update),
                "data_wait_fraction": data_wait / loop_seconds if steps_run and loop_seconds > 0 else None,
                "updates_per_dispatch": config.updates_per_dispatch if on_device else 1,
                "data_on_device": on_device,
                "packed_runs": len(configs),
                "devices": jax.device_count(),
                "platform": jax.devices()[0].platform,
                "device_kind": jax.devices()[0].device_kind,
            },
        }
        if process == 0:
            run_folder.write_result(run_dirs[i], result)
        results.append(result)
    return results


class _NoWriter:
    """Metrics sink of processes other than 0 in a multi-host job."""

    def write(self, row) -> None:
        del row

    def close(self) -> None:
        pass
