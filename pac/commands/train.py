"""`pac train`: one training job (one grid cell).

  pac train --run-dir results/runs/pac0 --preset tiny --steps 2000 --alpha 0.5
  pac train --run-dir results/runs/bc0 --preset 150k --flop-budget 1e13 --alpha 1

It writes the run folder's config.json, then runs the job as every executor does
(`harness.run.train_and_evaluate`: `python -m harness.run RUN_DIR` is the same job again).
Running the same command again resumes an interrupted job from its last checkpoint, or
prints the finished job's result.
"""

from __future__ import annotations

import argparse

from pac.commands._flags import add_dataclass_flags, dataclass_from_flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.config import CHOICES, TrainConfig

    parser.add_argument("--run-dir", required=True, help="the job's folder (config, metrics, checkpoints, result)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dataclass_flags(parser, TrainConfig, choices=CHOICES)


def run(args: argparse.Namespace) -> int:
    from harness import run as job
    from harness.config import TrainConfig

    config = dataclass_from_flags(TrainConfig, args)
    with job.prepared(args.run_dir, config):  # the folder's config.json, then the job every executor runs
        job.train_and_evaluate([args.run_dir], progress=False if args.no_progress else None)
    return 0
