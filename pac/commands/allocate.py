"""`pac allocate`: the compute-optimal model size and data for FLOP budgets, from a fit.

    pac allocate RESULTS_DIR --budget 1e13 3e13 [--group bc|pac] [--fits FILE]

Approach 3 (parametric L(N, D)) and approach 2 (isoFLOP power laws) side by side, each
with its 95% bootstrap interval and its law's status (a degenerate law's allocation is
marked, not hidden). Reads RESULTS_DIR/fits.json (`pac fit` writes it).
"""

from __future__ import annotations

import argparse
import math
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results_dir", nargs="?", help="folder holding fits.json (from `pac fit`)")
    parser.add_argument("--fits", help="a fits.json file instead of RESULTS_DIR/fits.json")
    parser.add_argument("--budget", type=float, nargs="+", required=True, help="training FLOPs, e.g. 1e13 3e13")
    parser.add_argument("--group", choices=("all", "bc", "pac"), default="all",
                        help="the laws of all runs (default), or of the BC or PAC runs alone")


def run(args: argparse.Namespace) -> int:
    from analysis import allocate, report

    if bool(args.results_dir) == bool(args.fits):
        raise ValueError("give either RESULTS_DIR or --fits FILE")
    path = args.fits or os.path.join(args.results_dir, report.FITS_FILE)
    fits = report.read_json(path)
    for budget in args.budget:
        if not (math.isfinite(budget) and budget > 0):
            raise ValueError(f"--budget={budget} must be a finite number of FLOPs > 0")
    if not isinstance(fits, dict):
        raise ValueError(f"{path}: not a fits file (a JSON object of laws from `pac fit`, got {type(fits).__name__})")
    if args.group != "all":
        groups = fits.get("groups") if isinstance(fits.get("groups"), dict) else {}
        if not isinstance(groups.get(args.group), dict):
            raise ValueError(f"{path} has no {args.group!r} laws (groups: {', '.join(groups) or 'none'})")
        fits = groups[args.group]
    span = allocate.fitted_compute_range(fits)
    for budget in args.budget:  # refused before the laws are read
        allocate.check_budget(budget, span)
    try:
        rows = allocate.allocate(fits, args.budget)
    # A law of the wrong shape or types (a hand-edited or foreign file) fails inside numpy
    # or ScalingLaw.from_dict in many ways: say which file, in one line.
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as err:
        raise ValueError(f"{path}: malformed laws ({type(err).__name__}: {err})") from None
    print(allocate.format_rows(rows))
    return 0
