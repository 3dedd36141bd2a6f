"""The local executor: runs a grid's cells as job subprocesses on this machine.

    rows = run_grid(load_spec("launch/grids/demo.py"), parallel=2)

- Each cell is its folder results/<grid>/<cell>: the shared launch function
  (launch/jobs.py: claims the grid, filters and packs its cells, writes each one's
  config.json) gives the jobs, and this executor runs each in its own process (`python -m
  harness.run RUN_DIR... --no-progress`, the entry point of every job, started through
  launch/cell_process.py, which arms the parent-death signal and the CPU affinity and
  execs it), its stdout/stderr appended to <cell>/stdout.log and
  stderr.log, one after another or up to `parallel` at once (at most one per CPU core). Parallel cells are
  pinned to their own share of the cores (CPU affinity, which sizes XLA's thread pool).
- A cell with result.json is done and never rerun; any other cell is (re)started, and
  `train` resumes it from its last checkpoint. A failed cell is recorded with the last
  line of its stderr and never stops the others; a relaunch retries it.
- Ctrl-C (or SIGTERM) stops cleanly: children get SIGINT, then SIGKILL after a grace
  period, their cells go back to 'pending' in the index, and the launcher exits.
  Children die with the launcher even when it is SIGKILLed (Linux parent-death signal),
  so a relaunch never runs beside an orphan.
- The grid folder (grid.json, the launcher lock, index.csv) belongs to
  launch/grid_folder.py; this executor rewrites index.csv atomically at every status change.
- With the spec's pack_runs > 1, cells of one preset and budget run as one process and one
  vmapped program (launch.jobs.packs; harness.train.train_pack), each in its own folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from harness import run_folder
from launch import estimate as estimate_lib
from launch import index as index_lib
from launch.cells import Cell, format_seconds
from launch.jobs import Grid, Job, launch
from launch.spec import GridSpec

REPO_ROOT = Path(__file__).resolve().parent.parent


def _last_line(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def available_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


class _Running:
    def __init__(self, cells: list[Cell], process: subprocess.Popen, slot: int, err_path: Path, err_offset: int,
                 files):
        self.cells, self.process, self.slot = cells, process, slot
        self.err_path, self.err_offset, self.files = err_path, err_offset, files
        self.start = time.time()


class _Display:
    """Grid progress: a tqdm bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int, enabled: Optional[bool], log: Callable[[str], None]):
        self.log = log
        tty = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if tty and total:
            import tqdm

            self.bar = tqdm.tqdm(total=total, unit="cell", dynamic_ncols=True, file=sys.stderr)

    def update(self, finished: int, counts: dict[str, int], eta: Optional[float], message: Optional[str]) -> None:
        state = f"{counts['done']} done, {counts['running']} running, {counts['failed']} failed, {counts['pending']} pending"
        if self.bar is not None:
            self.bar.n = finished
            self.bar.set_postfix_str(f"{counts['running']} running, {counts['failed']} failed, ETA {format_seconds(eta)}")
            if message:
                self.bar.write(message, file=sys.stderr)
        elif message:
            self.log(f"[{state}; ETA {format_seconds(eta)}] {message}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_grid(spec: GridSpec, results_root: Optional[str | os.PathLike] = None, parallel: int = 1,
             only: Optional[Sequence[str]] = None, log: Callable[[str], None] = print,
             progress: Optional[bool] = None, python: str = sys.executable, grace_seconds: float = 10.0,
             poll_seconds: float = 0.2) -> list[dict[str, Any]]:
    """Runs (or resumes) the grid's cells; returns the index rows. See the module docs."""
    if parallel < 1:
        raise ValueError(f"--parallel {parallel} must be >= 1")
    with launch(spec, results_root, only) as grid:  # claimed, locked, folders prepared
        return _run_jobs(grid, parallel, log, progress, python, grace_seconds, poll_seconds)


def _run_jobs(grid: Grid, parallel, log, progress, python, grace_seconds, poll_seconds):
    spec, cells, directory, rows = grid.spec, grid.cells, grid.directory, grid.rows
    chosen = {c.name for c in grid.chosen}
    for cell in sorted(grid.chosen, key=lambda c: c.name):
        if cell.skipped:
            log(f"skip {cell.name}: {cell.skip_reason}")
    queue: list[Job] = list(grid.jobs)
    already = sum(1 for name in chosen if rows[name]["status"] == "done")
    cpus = available_cpus()
    workers = min(parallel, len(cpus), max(len(queue), 1))
    if parallel > len(cpus):
        log(f"--parallel {parallel} > {len(cpus)} CPU cores: running {workers} at once")
    share = max(1, len(cpus) // workers)
    finished_rates = estimate_lib.finished_throughput(directory, cells)
    estimated = {name: secs for name, (secs, _) in estimate_lib.estimates(spec, cells, finished_rates).items()}
    grid.write_index()
    to_run = sum(len(job.cells) for job in queue) + len(grid.failed)
    packing = f" in {len(queue)} packed jobs of up to {spec.pack_runs}" if spec.pack_runs > 1 else ""
    log(f"grid {spec.name}: {len(cells)} cells, {sum(c.skipped for c in cells)} skipped, {already} already done, "
        f"{to_run} to run{packing} ({workers} at a time) in {directory}")

    running: dict[str, _Running] = {}
    free_slots = list(range(workers))
    spent = {"actual": 0.0, "estimated": 0.0}
    display = _Display(to_run, progress, log)
    finished = len(grid.failed)

    def counts() -> dict[str, int]:
        out = {s: 0 for s in index_lib.STATUSES}
        for name in chosen:
            out[rows[name]["status"]] += 1
        return out

    def job_estimate(cells: Sequence[Cell]) -> float:
        # A pack takes about as long as its slowest run alone (on an accelerator the
        # point of packing; on a CPU the runs share the cores, so this is optimistic).
        return max(estimated[c.name] for c in cells)

    def eta() -> float:
        ratio = spent["actual"] / spent["estimated"] if spent["estimated"] else 1.0
        left = sum(job_estimate(job.cells) for job in queue)
        left += sum(max(0.0, job_estimate(r.cells) - (time.time() - r.start)) for r in running.values())
        return ratio * left / workers

    def changed(message: Optional[str]) -> None:
        index_lib.write_index(directory, rows.values())
        display.update(finished, counts(), eta(), message)

    def start(job: Job) -> None:
        # A pack's process writes its output into its first cell's logs; the others say so.
        cell_dir = job.run_dirs[0]
        for other, other_dir in zip(job.cells[1:], job.run_dirs[1:]):
            with open(other_dir / "stdout.log", "a") as note:
                note.write(f"trained in one program with {', '.join(c.name for c in job.cells if c is not other)}; "
                           f"the pack's output is in {job.name}/stdout.log and stderr.log\n")
        slot = free_slots.pop(0)
        out_file = open(cell_dir / "stdout.log", "ab")
        err_path = cell_dir / "stderr.log"
        err_file = open(err_path, "ab")
        offset = err_file.tell()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        mine = None
        if workers > 1:  # pin each job to its own cores; XLA sizes its thread pool from them
            mine = set(cpus[slot * share:(slot + 1) * share]) or {cpus[slot % len(cpus)]}
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[var] = str(len(mine))
        # The job's entry point, as under every executor; cell_process arms it and execs it.
        job_command = [python, "-m", "harness.run", *job.arguments()]
        command = [python, "-m", "launch.cell_process", str(os.getpid()), ",".join(map(str, sorted(mine))) if mine else "all",
                   "--", *job_command]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file, env=env,
                                   start_new_session=True)
        running[job.name] = _Running(list(job.cells), process, slot, err_path, offset, (out_file, err_file))
        for cell in job.cells:
            rows[cell.name].update(status="running", error=None)
        what = (job.name if len(job.cells) == 1 else f"{len(job.cells)} packed runs {', '.join(c.name for c in job.cells)}")
        changed(f"start {what} ({job.cells[0].steps} steps, ~{format_seconds(job_estimate(job.cells))})")

    def reap(name: str, run: _Running, returncode: int) -> None:
        nonlocal finished
        for f in run.files:
            f.close()
        free_slots.append(run.slot)
        free_slots.sort()
        del running[name]
        wall = time.time() - run.start
        for cell in run.cells:
            row = rows[cell.name]
            result = run_folder.read_result(directory / cell.name)
            finished += 1
            if returncode == 0 and result is not None:
                row.update(status="done", wall_seconds=round(wall, 2), error=None,
                           **index_lib.result_columns(result, directory / cell.name))
                spent["actual"] += wall / len(run.cells)
                spent["estimated"] += job_estimate(run.cells) / len(run.cells)
                score = row.get("normalized_return")
                extra = f", normalized return {score:.3f}" if isinstance(score, float) else ""
                changed(f"done {cell.name} in {format_seconds(wall)} (valid bc_loss "
                        f"{row.get('valid_bc_loss') or float('nan'):.4f}{extra})")
            else:
                error = _last_line(run.err_path, run.err_offset) or f"exit status {returncode}"
                row.update(status="failed", wall_seconds=round(wall, 2), error=error)
                changed(f"FAILED {cell.name} (exit {returncode}): {error}")

    def stop_children() -> None:
        for run in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.process.pid, signal.SIGINT)
        deadline = time.time() + grace_seconds
        for run in running.values():
            try:
                run.process.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.process.pid, signal.SIGKILL)
                run.process.wait()
        for run in list(running.values()):
            for f in run.files:
                f.close()
            for cell in run.cells:
                rows[cell.name].update(status="pending", error="interrupted; resumes from its last checkpoint on relaunch")
        running.clear()
        index_lib.write_index(directory, rows.values())

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous_handler = signal.signal(signal.SIGTERM, on_sigterm) if _main_thread() else None
    for name, error in grid.failed.items():  # folders that could not be prepared
        display.update(finished, counts(), eta(), f"FAILED {name}: {error}")
    try:
        while queue or running:
            while queue and free_slots:
                start(queue.pop(0))
            time.sleep(poll_seconds)
            for name, run in list(running.items()):
                code = run.process.poll()
                if code is not None:
                    reap(name, run, code)
    except BaseException:
        stop_children()
        display.close()
        log(f"grid {spec.name}: stopped; {counts()['done']} of {len(chosen)} chosen cells done; relaunch to continue")
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    display.close()
    c = counts()
    log(f"grid {spec.name}: {c['done']} done, {c['failed']} failed, {c['skipped']} skipped, {c['pending']} pending "
        f"-> {directory / index_lib.INDEX_NAME}")
    return list(rows.values())


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
