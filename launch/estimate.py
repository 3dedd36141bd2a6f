"""Wall-time estimates for a grid's cells, from the best throughput measurement at hand.

Sources, best first (the dry-run table says which one each preset used):
  'finished'  updates/s that this grid's finished cells of the preset achieved after
              compiling (their metrics.csv), on this machine, in real runs;
  'measured'  timed now: a few real jitted updates of the preset on a batch of the
              spec's dataset, after compilation (`pac grid SPEC --dry-run --measure`);
  'table'     the spec's measured_flops_per_second (a committed measurement on the
              machine it names), interpolated log-log in parameters between its presets;
  'assumed'   the spec's assumed_flops_per_second (a stored figure for the machine).
A cell's estimate is steps / (updates per second) + the spec's cell_overhead_seconds
(process start, compilation, data loading, evaluation episodes).
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from harness import run_folder
from launch.cells import Cell
from launch.spec import GridSpec
from models import counts, presets


def steady_updates_per_second(cell_dir: Path) -> float | None:
    """The training loop's updates/s after compilation: the median of metrics.csv's
    steps_per_second over its train rows but the first (whose interval includes compiling
    the update; result.json's throughput includes it too)."""
    path = cell_dir / "metrics.csv"
    if not path.exists():
        return None
    with open(path, newline="") as f:
        rates = []
        for row in csv.DictReader(f):
            try:
                if row.get("split") == "train" and row.get("steps_per_second"):
                    rates.append(float(row["steps_per_second"]))
            except ValueError:
                continue
    rates = rates[1:] or rates
    return statistics.median(rates) if rates else None


def finished_throughput(grid_dir: Path, cells: Sequence[Cell]) -> dict[str, float]:
    """Per preset, the median steady updates/s of its finished cells in grid_dir."""
    rates: dict[str, list[float]] = {}
    for cell in cells:
        if run_folder.is_done(grid_dir / cell.name):
            rate = steady_updates_per_second(grid_dir / cell.name)
            if rate:
                rates.setdefault(cell.preset, []).append(rate)
    return {preset: statistics.median(r) for preset, r in rates.items()}


def measure_throughput(cells: Sequence[Cell], updates: int = 10, log=lambda _: None) -> dict[str, float]:
    """Per preset, updates/s of real jitted updates on one of the cells' real batches
    (compilation and a warm-up update are not timed)."""
    import jax

    from harness.builder import build_job

    rates: dict[str, float] = {}
    datasets: dict[tuple, object] = {}  # loaded once per dataset and task subset
    for cell in cells:
        if cell.preset in rates:
            continue
        config = cell.config.replace(flop_budget=None, steps=max(updates + 1, 2))
        key = (config.dataset, config.tasks)
        job = build_job(config, dataset=datasets.get(key))
        datasets[key] = job.dataset
        learner = job.learner
        state = learner.init(config.seed)
        batch = learner.shard_batch(job.train_sampler.sample_at(0))
        state, metrics = learner.update(state, batch)  # compile + warm up
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for _ in range(updates):
            state, metrics = learner.update(state, batch)
        jax.block_until_ready(metrics)
        rates[cell.preset] = updates / (time.perf_counter() - start)
        log(f"measured {cell.preset}: {rates[cell.preset]:.2f} updates/s ({updates} updates at batch {config.batch_size})")
    return rates


def table_flops_per_second(spec: GridSpec, preset: str) -> float | None:
    """The spec's measured FLOP/s for a preset: its own entry, or the log-log interpolation
    in parameter count between the nearest measured presets around it (None outside)."""
    table = dict(spec.measured_flops_per_second)
    if preset in table:
        return table[preset]
    if len(table) < 2:
        return None
    size = lambda name: math.log(counts.param_count(presets.get_preset(name)))  # noqa: E731
    points = sorted((size(name), math.log(rate)) for name, rate in table.items())
    x = size(preset)
    if not points[0][0] <= x <= points[-1][0]:
        return None
    return math.exp(float(np.interp(x, [p[0] for p in points], [p[1] for p in points])))


def estimates(spec: GridSpec, cells: Sequence[Cell], finished: Mapping[str, float] | None = None,
              measured: Mapping[str, float] | None = None) -> dict[str, tuple[float, str]]:
    """Per cell name, (estimated seconds, source of the throughput)."""
    out = {}
    for cell in cells:
        if cell.preset in (finished or {}):
            rate, source = finished[cell.preset], "finished"
        elif cell.preset in (measured or {}):
            rate, source = measured[cell.preset], "measured"
        elif (table_rate := table_flops_per_second(spec, cell.preset)) is not None:
            rate, source = table_rate / cell.flops_per_update, "table"
        else:
            rate, source = spec.assumed_flops_per_second / cell.flops_per_update, "assumed"
        out[cell.name] = (cell.steps / rate + spec.cell_overhead_seconds, source)
    return out
