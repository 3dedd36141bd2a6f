"""The entry point of one training job: `python -m harness.run RUN_DIR... [--no-progress]`.

A job is its run folder: RUN_DIR/config.json holds the resolved TrainConfig, and
`train_and_evaluate(RUN_DIRS)` trains from it. Every way of running a job ends there:
`pac train` writes the folder's config (`prepared`) and calls it; the local grid
executor runs `python -m harness.run RUN_DIR...` on the folders launch/jobs.py wrote
(through launch/cell_process.py, which arms the process and execs this); XManager jobs
run the same command with one `--config-json` per folder, which writes the configs into
the folders first (a Vertex AI launcher cannot write the bucket). The process-wide set-up a job needs lives
here too: the persistent compilation cache, Ctrl-C delivered as KeyboardInterrupt even
when the process started with SIGINT ignored, and multi-host initialization.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator, Sequence

from harness import run_folder
from harness.config import TrainConfig


def setup_process() -> None:
    """Compiled XLA programs are cached on disk: grid cells of one preset, restarts after
    a kill and repeated runs skip recompilation (tens of seconds each on a CPU). Set
    JAX_COMPILATION_CACHE_DIR to move it, or to an empty string to disable it. A process
    started with SIGINT ignored (a background job, some CI runners) would otherwise
    ignore Ctrl-C and the launcher's stop signal."""
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "pac-scaling", "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def train_and_evaluate(run_dirs: Sequence[str | os.PathLike], progress: bool | None = None,
                       log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The job: trains (or resumes, or reads the result of) the runs whose folders hold
    their config.json, and prints each one's summary. Several folders (runs that differ
    only in alpha and seed) are trained as one program (harness.train.train_pack). One
    process of a multi-host job joins the others first."""
    from harness.distributed import maybe_initialize
    from harness.train import train_pack

    configs = [run_folder.read_config(d) for d in run_dirs]
    maybe_initialize(log=log)  # one process of a multi-host job: join the others first
    results = train_pack(configs, run_dirs, progress=progress, log=log)
    for run_dir, result in zip(run_dirs, results):
        summary = {k: result[k] for k in ("status", "steps", "flops", "params", "valid", "normalized_return")}
        summary["updates_per_second"] = result["throughput"]["updates_per_second"]
        log((f"{run_dir}: " if len(results) > 1 else "") + json.dumps(summary, indent=2))
    return results


@contextlib.contextmanager
def prepared(run_dir: str | os.PathLike, config: TrainConfig) -> Iterator[None]:
    """Writes RUN_DIR/config.json for `config`, or checks that the one there is the same
    run (a one-line ValueError otherwise), for a job about to run in the block: `pac
    train`, and a job given its config by an executor that cannot write the folder. If
    the block fails before the run's first checkpoint, the config this wrote is taken back
    (a corrected command may then use the folder) unless another process now trains it."""
    from harness.builder import plan_run

    plan = plan_run(config)  # validates the config and reads the dataset's specs
    with run_folder.lock(run_dir):  # two commands writing one fresh folder: one config wins, the other is refused
        created = run_folder.prepare(run_dir, config, plan.to_json())
    try:
        yield
    except BaseException:
        if created:
            with contextlib.suppress(ValueError, OSError), run_folder.lock(run_dir):
                run_folder.withdraw(run_dir)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="run_dir",
                        help="the job's folder, holding its config.json; several folders (runs that differ only in "
                             "alpha and seed) are trained as one program")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--config-json", action="append",
                        help="the TrainConfig as JSON, written to RUN_DIR/config.json (or checked against the one "
                             "there) before the job reads it: for executors whose launcher cannot write the folder; "
                             "once per RUN_DIR, in their order")
    args = parser.parse_args(argv)
    setup_process()
    progress = False if args.no_progress else None
    try:
        with contextlib.ExitStack() as stack:
            if args.config_json:
                if len(args.config_json) != len(args.run_dirs):
                    raise ValueError(f"--config-json is given {len(args.config_json)} times for {len(args.run_dirs)} "
                                     f"run folders; give it once per folder, in their order")
                for run_dir, text in zip(args.run_dirs, args.config_json):
                    stack.enter_context(prepared(run_dir, TrainConfig.from_json(json.loads(text))))
            train_and_evaluate(args.run_dirs, progress)
    except (ValueError, OSError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"harness.run: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness.run: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
