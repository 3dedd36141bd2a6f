"""A grid's jobs, as every executor gets them: one launch function.

    with launch(spec, results_root, only=["tiny_C1.5e9_a1_s0"]) as grid:
        for job in grid.jobs:
            run(["python", "-m", "harness.run", *job.arguments()])

`launch` expands the grid into cells (launch/cells.py: `plan_run` once per cell, the cell
keeps its plan), claims the grid folder and holds its launcher lock (launch/grid_folder.py),
reads each cell's state from disk (skipped, done, pending: `initial_rows`), packs the
chosen pending cells where the spec asks (`pack_runs`) and writes each one's run folder
(config.json, from the cell's plan; a cell whose folder cannot be prepared fails alone,
its error in its index row). A job is a list of run folders, trained by one process as
`python -m harness.run RUN_DIR... --no-progress`: the local executor (launch/local.py)
and XManager's (launch/xm_jobs.py, launch/xm_launch.py) only execute that command.

`grid_jobs` is the same filtering and packing without touching the disk but to read it:
what `--print_specs` and Vertex AI, whose launcher cannot write the bucket, use; their
jobs write their own folders (`harness.run --config-json`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from harness import run_folder
from launch import index as index_lib
from launch.cells import Cell, expand, select
from launch.grid_folder import check_grid_dir, claim_grid_dir, grid_dir, grid_lock, initial_rows
from launch.spec import GridSpec


@dataclasses.dataclass(frozen=True)
class Job:
    """Cells trained by one process (several: one vmapped program, harness.train.train_pack),
    each in its own folder; the process's output goes to the first one's logs."""

    cells: tuple[Cell, ...]
    run_dirs: tuple[Path, ...]

    @property
    def name(self) -> str:
        return self.cells[0].name

    def arguments(self) -> list[str]:
        """`python -m harness.run`'s arguments for this job."""
        return [*(str(d) for d in self.run_dirs), "--no-progress"]


@dataclasses.dataclass
class Grid:
    """A launch: the grid's cells, the chosen ones, every cell's index row and the jobs."""

    spec: GridSpec
    directory: Path
    cells: list[Cell]
    chosen: list[Cell]
    rows: dict[str, dict[str, Any]]  # cell -> its index.csv row (launch/index.py)
    jobs: list[Job]
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # cell -> why its folder could not be prepared

    def write_index(self) -> Path:
        return index_lib.write_index(self.directory, self.rows.values())


def packs(cells: Sequence[Cell], size: int) -> list[list[Cell]]:
    """The cells grouped into jobs of at most `size`: cells of one preset and budget (they
    differ only in alpha and seed, so their updates are one vmapped program) share a job,
    in the order given. size 1: one cell per job."""
    groups: dict[tuple[str, float], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.preset, cell.budget), []).append(cell)
    return [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]


def grid_jobs(spec: GridSpec, directory: Path, only: Optional[Sequence[str]] = None,
              cells: Optional[Sequence[Cell]] = None) -> Grid:
    """The chosen cells that are neither skipped nor done (result.json in `directory`),
    packed by the spec's pack_runs. Writes nothing."""
    cells = list(cells) if cells is not None else expand(spec)
    chosen = select(cells, only)
    rows = initial_rows(cells, directory)
    pending = [c for c in chosen if rows[c.name]["status"] == "pending"]
    jobs = [Job(tuple(group), tuple(directory / c.name for c in group)) for group in packs(pending, spec.pack_runs)]
    return Grid(spec, directory, cells, chosen, rows, jobs)


def prepare_folders(grid: Grid) -> None:
    """Writes each job's run folders (config.json from the cell's plan), or checks the ones
    there. A cell whose folder cannot be (it holds another run, a plain file stands where
    it goes) leaves its job, is marked failed in its row and named in `grid.failed`; a
    job left empty is dropped."""
    jobs = []
    for job in grid.jobs:
        ready = []
        for cell, run_dir in zip(job.cells, job.run_dirs):
            try:
                run_folder.prepare(run_dir, cell.config, cell.plan.to_json())
                ready.append((cell, run_dir))
            except (ValueError, OSError) as err:  # the cell fails, the grid goes on
                grid.failed[cell.name] = str(err)
                grid.rows[cell.name].update(status="failed", error=str(err))
        if ready:
            jobs.append(Job(tuple(c for c, _ in ready), tuple(d for _, d in ready)))
    grid.jobs = jobs


@contextlib.contextmanager
def launch(spec: GridSpec, results_root: Optional[str | os.PathLike] = None, only: Optional[Sequence[str]] = None,
           prepare: bool = True) -> Iterator[Grid]:
    """Claims the grid folder (grid.json), holds its launcher lock for the block, and gives
    the jobs to run; with `prepare`, their run folders are written first (see
    `prepare_folders`). Without it each job writes its own (`harness.run --config-json`)."""
    cells = expand(spec)
    select(cells, only)  # an unknown cell is refused before anything is written
    directory = grid_dir(spec, results_root)
    check_grid_dir(spec, directory)  # refused before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    with grid_lock(directory):
        # Under the lock: a spec that adds seeds rewrites grid.json, which must never
        # happen beside a running launcher (it would list seeds that launcher is not running).
        claim_grid_dir(spec, directory)
        grid = grid_jobs(spec, directory, only, cells)
        if prepare:
            prepare_folders(grid)
        yield grid
