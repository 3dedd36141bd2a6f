"""`pac fit`: fit scaling laws to a results folder or an external CSV.

    pac fit RESULTS_DIR [--out DIR]
    pac fit --csv FILE --out DIR

Prints the fitted parameters with bootstrap CIs, writes fits.json (atomically) and the
figures into RESULTS_DIR (or --out).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", nargs="?", help="a grid's results folder (index.csv + <cell>/metrics.csv)")
    parser.add_argument("--csv", help="external table of final runs: N, C or D, loss "
                                      "(or Chinchilla's 'Model Size', 'Training FLOP', 'loss')")
    parser.add_argument("--out", help="folder for fits.json and figures (default: RESULTS_DIR)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--metric", default="bc_loss", help="loss column to fit (default: bc_loss)")
    parser.add_argument("--split", default="valid", help="rows the metric is read from (default: valid)")
    parser.add_argument("--params", choices=("total", "nonembedding"), default="total", help="N used")
    parser.add_argument("--data-unit", choices=("examples", "tokens"), default="examples", help="D used")
    parser.add_argument("--k", type=float, default=None,
                        help="FLOPs per parameter per example/token (default: measured on a results "
                             "folder, 6 for --csv; D = C / (k N) when a CSV has no D)")
    parser.add_argument("--drop-worst", type=int, default=None,
                        help="drop this many highest-loss runs first (default: 5 for --csv, as the "
                             "Chinchilla replication does; 0 for a results folder)")
    parser.add_argument("--budgets", help="comma-separated isoFLOP budget levels for --csv, e.g. 6e18,1e19 "
                                          "(default: found by clustering the runs' log10 C)")
    parser.add_argument("--keep-duplicates", action="store_true",
                        help="--csv: keep rows that repeat an earlier row exactly (default: drop them, with a warning)")
    parser.add_argument("--no-extrapolation", action="store_true", help="skip the hold-out-largest-budget check")
    parser.add_argument("--no-figures", action="store_true", help="write fits.json only")


def _config(args: argparse.Namespace):
    from analysis import pipeline

    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if args.k is not None and not args.k > 0:
        raise ValueError(f"--k must be > 0, got {args.k}")
    levels = None
    if args.budgets:
        try:
            levels = tuple(float(v) for v in args.budgets.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--budgets must be comma-separated numbers, got {args.budgets!r}") from None
        if not levels or min(levels) <= 0:
            raise ValueError(f"--budgets must be positive FLOP counts, got {args.budgets!r}")
    drop = args.drop_worst if args.drop_worst is not None else (5 if args.csv else 0)
    return dataclasses.replace(
        pipeline.AnalysisConfig(), metric=args.metric, split=args.split, param_count=args.params,
        data_unit=args.data_unit, k=args.k, drop_worst=drop, n_bootstrap=args.bootstrap, seed=args.seed,
        extrapolate=not args.no_extrapolation, budget_levels=levels, keep_duplicates=args.keep_duplicates)


def run(args: argparse.Namespace) -> int:
    from analysis import figures
    from analysis import pipeline
    from analysis import report

    if bool(args.results_dir) == bool(args.csv):
        raise ValueError("give either RESULTS_DIR or --csv FILE (exactly one)")
    if args.csv and not args.out:
        raise ValueError("--csv needs --out DIR for fits.json and figures")
    config = _config(args)
    out_dir = args.out or args.results_dir
    # Progress of the fits (which group, the L(N, D) bootstrap's rounds) on stderr: a
    # bootstrap of 1,000 refits takes minutes on a CPU.
    progress = logging.StreamHandler(sys.stderr)
    progress.setFormatter(logging.Formatter("pac fit: %(message)s"))
    analysis_log = logging.getLogger("analysis")
    analysis_log.addHandler(progress)
    analysis_log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if args.csv:
                fits = pipeline.analyze_csv(args.csv, config)
            else:
                fits = pipeline.analyze_results(args.results_dir, config)
    finally:
        analysis_log.removeHandler(progress)
    # One line per warning (dropped rows, skipped budgets, edge optima), not a source dump.
    # Only the analysis' own warnings (UserWarning); numpy's overflow chatter from
    # degenerate bootstrap refits is not actionable.
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        print(f"pac fit: warning: {message}", file=sys.stderr)
    path = os.path.join(out_dir, report.FITS_FILE)
    report.write_json(path, fits)
    print(report.format_table(fits))
    print(f"wrote {path}")
    if not args.no_figures:
        written = figures.write_all(fits, out_dir, results_dir=args.results_dir)
        print(f"wrote {len(written)} figures to {out_dir}: {', '.join(sorted({os.path.basename(p) for p in written}))}")
    return 0
