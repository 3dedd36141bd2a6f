"""`pac data`: generate offline datasets from dm_control tasks, or report on them.

  pac data --preset demo --out results/data/demo       # generate (cached per task)
  pac data --tasks walker-walk --transitions-per-task 1000000 --out data/
  pac data --stats results/data/demo                   # the quality report
  pac data --list                                      # the known tasks and presets
  pac data --import-minari mujoco/hopper/medium-v0 --out data/mixed   # a Minari dataset on disk
  pac data --export-minari results/data/demo walker-walk              # our task as a Minari dataset

Generation learns each task with SAC (snapshots cached in OUT/snapshots/), then rolls
the snapshots out in worker processes; see harness/data/generate.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import os


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed; must be >= 1")
    return value


DEFAULT_OUT = "results/data/demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.data import generate, online

    learner, config = online.LearnerConfig(), generate.GeneratorConfig()
    parser.add_argument("--preset", help="a named task list: demo, full, test (default: demo)")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="dm_control tasks as domain-task")
    # No default in the parser: an import must name its folder (it would otherwise add a
    # task to the demo dataset, and with it to every grid trained on it).
    parser.add_argument("--out", help=f"dataset directory (default: {DEFAULT_OUT}; --import-minari needs it given)")
    parser.add_argument("--transitions-per-task", type=_positive_int, default=config.transitions_per_task,
                        help="recorded transitions per task (default: %(default)s)")
    parser.add_argument("--noise-fraction", type=float, default=config.noise_fraction,
                        help="share of snapshot episodes acting with exploration noise (default: %(default)s)")
    parser.add_argument("--learner-steps", type=_positive_int, default=learner.agent_steps,
                        help="most agent steps of online SAC learning per task (default: %(default)s)")
    parser.add_argument("--stop-return", type=float, default=learner.stop_return,
                        help="learning stops once two quick evaluations reach this return (default: %(default)s)")
    parser.add_argument("--snapshot-every", type=_positive_int, default=learner.snapshot_every,
                        help="agent steps between saved learner snapshots (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default: %(default)s)")
    parser.add_argument("--workers", type=_positive_int, default=min(2, os.cpu_count() or 1),
                        help="worker processes for learning and rollouts (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="regenerate tasks even if cached")
    parser.add_argument("--stats", metavar="DIR", help="print the statistics report of a dataset and exit")
    parser.add_argument("--list", action="store_true", help="list known tasks and presets and exit")
    parser.add_argument("--import-minari", nargs="+", metavar="ID_OR_PATH",
                        help="import Minari datasets already on disk (ids under MINARI_DATASETS_PATH, or folders) "
                             "as tasks of --out, beside any tasks there; nothing is downloaded")
    parser.add_argument("--export-minari", nargs="+", metavar=("DIR", "TASK"),
                        help="write tasks of dataset DIR as Minari datasets pac/<task>/offline-v0 under "
                             "MINARI_DATASETS_PATH")
    parser.add_argument("--minari-format", choices=("arrow", "hdf5"), default="arrow",
                        help="storage of exported Minari datasets (default: %(default)s; hdf5 needs h5py)")


def run(args: argparse.Namespace) -> int:
    from harness.data import generate, online, stats, storage, tasks

    if args.list:
        for name, spec in tasks.TASKS.items():
            print(f"{name:22s} action_repeat={spec.action_repeat}")
        for name, names in generate.PRESETS.items():
            print(f"preset {name}: {' '.join(names)}")
        return 0
    if args.stats:
        print(stats.format_report(args.stats))
        return 0
    if args.import_minari or args.export_minari:
        from harness.data import minari_io

        if args.preset or args.tasks:
            raise ValueError(f"--{'import' if args.import_minari else 'export'}-minari does not generate data: run "
                             f"`pac data --preset/--tasks ... --out DIR` first, then import into the same DIR")
        if args.import_minari and not args.out:
            raise ValueError(f"--import-minari {' '.join(args.import_minari)}: give --out DIR, the dataset folder "
                             f"its tasks join (a new folder, or one made by `pac data`)")
        if args.export_minari:
            if len(args.export_minari) < 2:
                raise ValueError(f"--export-minari {' '.join(args.export_minari)}: give the dataset folder, then one "
                                 f"or more of its tasks")
            directory, names = args.export_minari[0], args.export_minari[1:]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"--export-minari: task {twice[0]} is named twice; name each task once")
            for name in names:  # a missing task or an existing export fails before any is written
                storage.read_spec(directory, name)
                minari_io.check_exportable(name)
            for name in names:
                print(f"exported {name} as Minari dataset {minari_io.export_task(directory, name, data_format=args.minari_format)} "
                      f"under {minari_io.datasets_root()}")
        if args.import_minari:
            names = minari_io.import_datasets(args.import_minari, args.out, seed=args.seed)
            print(stats.format_report(args.out, names))
        return 0
    learner = dataclasses.replace(online.LearnerConfig(), agent_steps=args.learner_steps, stop_return=args.stop_return,
                                  snapshot_every=args.snapshot_every, seed=args.seed)
    config = generate.GeneratorConfig(learner=learner, transitions_per_task=args.transitions_per_task,
                                      noise_fraction=args.noise_fraction, seed=args.seed)
    names = generate.resolve_tasks(args.tasks, args.preset if (args.preset or args.tasks) else "demo")
    out = args.out or DEFAULT_OUT
    generate.generate(names, out, config, workers=args.workers, force=args.force)
    print(stats.format_report(out, names))
    return 0
