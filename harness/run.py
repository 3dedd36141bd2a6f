"""The entry point of one training job: `python -m harness.run RUN_DIR [--no-progress]`.

A job is its run folder: RUN_DIR/config.json (written by the launcher, or by
`--config-json` for executors on another machine) holds the resolved TrainConfig, and
this runs `train(config, RUN_DIR)` on it, so every executor (local processes, XManager
local, Vertex AI) starts cells the same way. The process-wide set-up a job needs lives
here too: the persistent compilation cache, Ctrl-C delivered as KeyboardInterrupt even
when the process started with SIGINT ignored, and multi-host initialization.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, Callable, Sequence

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


def run(config: TrainConfig, run_dir: str | os.PathLike, progress: bool | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Joins a multi-host job if this is one process of it, trains, prints a summary."""
    return run_pack([config], [run_dir], progress, log)[0]


def run_pack(configs: Sequence[TrainConfig], run_dirs: Sequence[str | os.PathLike], progress: bool | None = None,
             log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """`run` for runs trained as one program (harness.train.train_pack); one run is a pack of one."""
    from harness.distributed import maybe_initialize
    from harness.train import train_pack

    maybe_initialize(log=log)  # one process of a multi-host job: join the others first
    results = train_pack(configs, run_dirs, progress=progress, log=log)
    for run_dir, result in zip(run_dirs, results):
        summary = {k: result[k] for k in ("status", "steps", "flops", "params", "valid", "normalized_return")}
        summary["updates_per_second"] = result["throughput"]["updates_per_second"]
        log((f"{run_dir}: " if len(results) > 1 else "") + json.dumps(summary, indent=2))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="run_dir",
                        help="the job's folder, holding its config.json; several folders (runs that differ only in "
                             "alpha and seed) are trained as one program")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--config-json", help="the TrainConfig as JSON: written to RUN_DIR/config.json first "
                                              "(for executors whose machine the launcher cannot write to)")
    args = parser.parse_args(argv)
    setup_process()
    try:
        if args.config_json:
            from harness.builder import plan_run

            if len(args.run_dirs) != 1:
                raise ValueError(f"--config-json names one run; got {len(args.run_dirs)} folders")
            config = TrainConfig.from_json(json.loads(args.config_json))
            run_folder.prepare(args.run_dirs[0], config, plan_run(config).to_json())
        configs = [run_folder.read_config(d) for d in args.run_dirs]
        run_pack(configs, args.run_dirs, progress=False if args.no_progress else None)
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
