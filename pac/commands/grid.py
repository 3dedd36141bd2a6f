"""`pac grid`: expand a grid spec into cells and run them on this machine.

  pac grid launch/grids/demo.py --dry-run            # the table of cells, nothing is run
  pac grid launch/grids/demo.py --dry-run --measure  # ... with wall times from timed updates
  pac grid launch/grids/demo.py --parallel 2         # run; relaunch to resume
  pac grid launch/grids/demo.py --only-cells 150k_C1e12_a1_s0 250k_C1e12_a1_s0
  pac grid launch/grids/demo.py --status             # rebuild index.csv from the cell folders

Cells go to <results>/<grid name>/<cell>/, with index.csv and grid.json beside them.
XManager (local or Vertex AI): see launch/xm_launch.py and docs/launch.md.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="grid spec: a Python file defining get_config() -> launch.spec.GridSpec")
    parser.add_argument("--dry-run", action="store_true", help="print the table of cells and exit")
    parser.add_argument("--measure", action="store_true",
                        help="with --dry-run: time a few real updates of each preset for the wall-time estimate")
    parser.add_argument("--parallel", type=int, default=1, help="cells at once (at most one per CPU core; default 1)")
    parser.add_argument("--results", default=None, help="results root (default: the spec's results_root)")
    parser.add_argument("--only-cells", nargs="+", default=None, metavar="CELL", help="run only these cells")
    parser.add_argument("--status", action="store_true", help="rebuild index.csv from the cell folders and print it")
    parser.add_argument("--no-progress", action="store_true", help="plain progress lines even on a terminal")


def dry_run_table(spec, results_root=None, measure: bool = False, only=None, log=print) -> list[str]:
    """The lines of the dry-run table: one per cell, then totals."""
    from harness import run_folder
    from launch import estimate as estimate_lib
    from launch.cells import expand, format_count, format_seconds, select
    from launch.grid_folder import check_grid_dir, grid_dir

    cells = select(expand(spec), only)
    directory = grid_dir(spec, results_root)
    check_grid_dir(spec, directory)  # another spec's finished cells are not this one's
    finished = estimate_lib.finished_throughput(directory, cells) if directory.exists() else {}
    measured = estimate_lib.measure_throughput([c for c in cells if not c.skipped and c.preset not in finished],
                                               log=log) if measure else {}
    est = estimate_lib.estimates(spec, cells, finished, measured)
    header = (f"{'cell':<26} {'preset':>7} {'params':>7} {'budget':>8} {'steps':>7} {'examples':>9} {'epochs':>7} "
              f"{'est_time':>9} {'time_src':>8}  status")
    lines = [f"grid {spec.name}: {len(cells)} cells ({len(spec.presets)} presets x {len(spec.budgets)} budgets x "
             f"{len(spec.alphas)} alphas x {len(spec.seeds)} seeds) on {spec.dataset} -> {directory}", header]
    total, left = 0.0, 0
    for cell in cells:
        seconds, source = est[cell.name]
        done = run_folder.is_done(directory / cell.name)
        status = f"skip: {cell.skip_reason}" if cell.skipped else ("done" if done else "run")
        if not cell.skipped and not done:
            total, left = total + seconds, left + 1
        lines.append(f"{cell.name:<26} {cell.preset:>7} {format_count(cell.params):>7} {cell.budget:>8.3g} "
                     f"{cell.steps:>7} {cell.examples:>9} {cell.epochs:>7.2f} "
                     f"{format_seconds(seconds) if not cell.skipped else '-':>9} {source if not cell.skipped else '-':>8}  {status}")
    runs = [c for c in cells if not c.skipped]
    rates = ", ".join(f"{p} {r:.2f}/s" for p, r in {**measured, **finished}.items())
    lines.append(f"{len(runs)} cells to run, {len(cells) - len(runs)} skipped, {len(runs) - left} done; the {left} left: "
                 f"estimated {format_seconds(total)} one at a time (each cell: steps / updates per second + {spec.cell_overhead_seconds:g}s overhead; updates per "
                 f"second {'from ' + rates + '; others ' if rates else ''}"
                 f"{'from the table measured on ' + spec.measured_on + ' where it covers the preset, else ' if spec.measured_flops_per_second else ''}"
                 f"assumed from {spec.assumed_flops_per_second:.3g} FLOP/s)")
    return lines


def run(args: argparse.Namespace) -> int:
    from launch.spec import load_spec

    spec = load_spec(args.spec)
    if args.measure and not args.dry_run:
        raise ValueError("--measure only applies to --dry-run")
    if args.dry_run:
        for line in dry_run_table(spec, args.results, args.measure, args.only_cells):
            print(line)
        return 0
    if args.status:
        import pandas as pd

        from launch.grid_folder import grid_dir, rebuild_index

        rebuild_index(spec, args.results)
        table = pd.read_csv(grid_dir(spec, args.results) / "index.csv")
        with pd.option_context("display.width", 200, "display.max_rows", 500):
            # valid_bc_loss exists once a cell is done (its columns come from the results).
            shown = [c for c in ("cell", "status", "steps", "wall_seconds", "valid_bc_loss", "normalized_return", "error")
                     if c in table.columns]
            print(table[shown].to_string(index=False))
        return 0
    from launch.local import run_grid

    rows = run_grid(spec, args.results, parallel=args.parallel, only=args.only_cells,
                    progress=False if args.no_progress else None)
    return 1 if any(r["status"] == "failed" for r in rows) else 0
