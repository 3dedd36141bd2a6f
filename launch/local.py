"""The local executor: runs a grid's cells as `pac train` subprocesses on this machine.

    rows = run_grid(load_spec("launch/grids/demo.py"), parallel=2)

- Each cell is its folder results/<grid>/<cell>: the launcher writes the cell's resolved
  config.json there, then runs the job in its own process (`python -m
  launch.cell_process`: it arms the parent-death signal and the CPU affinity, then runs
  `harness.run` on the folder), its stdout/stderr appended to <cell>/stdout.log and
  stderr.log, one after another or up to `parallel` at once (at most one per CPU core). Parallel cells are
  pinned to their own share of the cores (CPU affinity, which sizes XLA's thread pool).
- A cell with result.json is done and never rerun; any other cell is (re)started, and
  `train` resumes it from its last checkpoint. A failed cell is recorded with the last
  line of its stderr and never stops the others; a relaunch retries it.
- Ctrl-C (or SIGTERM) stops cleanly: children get SIGINT, then SIGKILL after a grace
  period, their cells go back to 'pending' in the index, and the launcher exits.
  Children die with the launcher even when it is SIGKILLed (Linux parent-death signal),
  so a relaunch never runs beside an orphan.
- results/<grid>/grid.json holds the resolved spec; a different spec for the same folder
  is refused. results/<grid>/index.csv is rewritten atomically at every status change.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from harness import run_folder
from harness.run_folder import write_atomic
from launch import estimate as estimate_lib
from launch import index as index_lib
from harness.train import plan_run
from launch.cells import Cell, expand, format_seconds, select
from launch.spec import GridSpec

GRID_FILE = "grid.json"
LOCK_FILE = ".launcher.lock"
REPO_ROOT = Path(__file__).resolve().parent.parent


def grid_dir(spec: GridSpec, results_root: Optional[str | os.PathLike] = None) -> Path:
    return Path(results_root if results_root is not None else spec.results_root) / spec.name


def check_grid_dir(spec: GridSpec, directory: Path) -> None:
    """Refuses (one-line ValueError) a folder that holds another grid or something else."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a folder")
    path = directory / GRID_FILE
    if not path.exists():
        if any(p for p in directory.iterdir() if p.name != LOCK_FILE):
            raise ValueError(f"{directory} exists but holds no {GRID_FILE}: not a grid folder; use another --results")
        return
    try:
        saved = json.loads(path.read_text())["identity"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: unreadable grid spec ({err}); use another --results") from None
    mine = json.loads(json.dumps(spec.identity()))
    for key in sorted(set(saved) | set(mine)):
        if saved.get(key) != mine.get(key):
            if isinstance(saved.get(key), dict) and isinstance(mine.get(key), dict):
                sub = sorted(k for k in set(saved[key]) | set(mine[key]) if saved[key].get(k) != mine[key].get(k))[0]
                key, there, now = f"{key}.{sub}", saved[key].get(sub), mine[key].get(sub)
            else:
                there, now = saved.get(key), mine.get(key)
            raise ValueError(f"{directory} belongs to a different spec of grid {spec.name!r} ({key}: {there!r} there, "
                             f"{now!r} now); use another grid name or --results")


def claim_grid_dir(spec: GridSpec, directory: Path) -> None:
    """Checks the folder, then creates it and its grid.json (never overwriting one)."""
    check_grid_dir(spec, directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / GRID_FILE
    if not path.exists():
        write_atomic(path, json.dumps({"identity": spec.identity(), "spec": spec.to_json()}, indent=2))


@contextlib.contextmanager
def grid_lock(directory: Path) -> Iterator[None]:
    """One launcher per grid folder at a time (released when the launcher dies, even by SIGKILL)."""
    import fcntl

    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another launcher is running grid {directory} (lock {directory / LOCK_FILE})") from None
        yield
    finally:
        os.close(fd)


def initial_rows(cells: Sequence[Cell], directory: Path) -> dict[str, dict[str, Any]]:
    """Each cell's index row from what is on disk: skipped, done (result.json) or pending."""
    previous = index_lib.read_index(directory)
    rows = {}
    for cell in cells:
        row = cell.row()
        result = index_lib.read_result(directory / cell.name)
        if cell.skipped:
            row["status"] = "skipped"
        elif result is not None:
            row.update(status="done", **index_lib.result_columns(result, directory / cell.name))
            row["wall_seconds"] = previous.get(cell.name, {}).get("wall_seconds") or None
        else:
            row["status"] = "pending"
        rows[cell.name] = row
    return rows


def rebuild_index(spec: GridSpec, results_root: Optional[str | os.PathLike] = None,
                  failed: Optional[dict[str, str]] = None) -> list[dict[str, Any]]:
    """Rewrites index.csv from the cell folders (for grids run elsewhere, e.g. by XManager):
    done where result.json exists; otherwise failed if `failed` (cell -> error) or the
    previous index says so, else pending."""
    directory = grid_dir(spec, results_root)
    check_grid_dir(spec, directory)
    if not directory.exists():
        raise ValueError(f"{directory} does not exist: grid {spec.name!r} was never launched there")
    previous = index_lib.read_index(directory)
    rows = initial_rows(expand(spec), directory)
    for name, row in rows.items():
        if row["status"] == "pending" and previous.get(name, {}).get("status") == "failed":
            row.update(status="failed", error=previous[name].get("error"), wall_seconds=previous[name].get("wall_seconds"))
        if row["status"] == "pending" and name in (failed or {}):
            row.update(status="failed", error=failed[name])
    index_lib.write_index(directory, rows.values())
    return list(rows.values())


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


def packs(cells: Sequence[Cell], size: int) -> list[list[Cell]]:
    """The cells grouped into jobs of at most `size`: cells of one preset and budget (they
    differ only in alpha and seed, so their updates are one vmapped program) share a job,
    in the order given. size 1: one cell per job."""
    groups: dict[tuple[str, float], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.preset, cell.budget), []).append(cell)
    return [group[i:i + size] for group in groups.values() for i in range(0, len(group), size)]


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
    cells = expand(spec)
    chosen = {c.name for c in select(cells, only)}
    directory = grid_dir(spec, results_root)
    claim_grid_dir(spec, directory)
    with grid_lock(directory):
        return _run_locked(spec, cells, chosen, directory, parallel, log, progress, python, grace_seconds, poll_seconds)


def _run_locked(spec, cells, chosen, directory, parallel, log, progress, python, grace_seconds, poll_seconds):
    rows = initial_rows(cells, directory)
    by_name = {c.name: c for c in cells}
    for name in sorted(chosen):
        if by_name[name].skipped:
            log(f"skip {name}: {by_name[name].skip_reason}")
    queue = packs([c for c in cells if c.name in chosen and rows[c.name]["status"] == "pending"], spec.pack_runs)
    already = sum(1 for c in cells if c.name in chosen and rows[c.name]["status"] == "done")
    cpus = available_cpus()
    workers = min(parallel, len(cpus), max(len(queue), 1))
    if parallel > len(cpus):
        log(f"--parallel {parallel} > {len(cpus)} CPU cores: running {workers} at once")
    share = max(1, len(cpus) // workers)
    finished_rates = estimate_lib.finished_throughput(directory, cells)
    estimated = {name: secs for name, (secs, _) in estimate_lib.estimates(spec, cells, finished_rates).items()}
    index_lib.write_index(directory, rows.values())
    to_run = sum(len(job) for job in queue)
    packing = f" in {len(queue)} packed jobs of up to {spec.pack_runs}" if spec.pack_runs > 1 else ""
    log(f"grid {spec.name}: {len(cells)} cells, {sum(c.skipped for c in cells)} skipped, {already} already done, "
        f"{to_run} to run{packing} ({workers} at a time) in {directory}")

    running: dict[str, _Running] = {}
    free_slots = list(range(workers))
    spent = {"actual": 0.0, "estimated": 0.0}
    display = _Display(to_run, progress, log)
    finished = 0

    def counts() -> dict[str, int]:
        out = {s: 0 for s in index_lib.STATUSES}
        for name in chosen:
            out[rows[name]["status"]] += 1
        return out

    def job_estimate(job: list[Cell]) -> float:
        # A pack takes about as long as its slowest run alone (on an accelerator the
        # point of packing; on a CPU the runs share the cores, so this is optimistic).
        return max(estimated[c.name] for c in job)

    def eta() -> float:
        ratio = spent["actual"] / spent["estimated"] if spent["estimated"] else 1.0
        left = sum(job_estimate(job) for job in queue)
        left += sum(max(0.0, job_estimate(r.cells) - (time.time() - r.start)) for r in running.values())
        return ratio * left / workers

    def changed(message: Optional[str]) -> None:
        index_lib.write_index(directory, rows.values())
        display.update(finished, counts(), eta(), message)

    def start(job: list[Cell]) -> None:
        nonlocal finished
        ready = []
        for cell in job:
            try:
                run_folder.prepare(directory / cell.name, cell.config, plan_run(cell.config).to_json())
                ready.append(cell)
            except ValueError as err:  # e.g. the folder holds another run: the cell fails, the grid goes on
                finished += 1
                rows[cell.name].update(status="failed", error=str(err))
                changed(f"FAILED {cell.name}: {err}")
        if not ready:
            return
        job = ready
        # A pack's process writes its output into its first cell's logs; the others say so.
        cell_dir = directory / job[0].name
        for other in job[1:]:
            with open(directory / other.name / "stdout.log", "a") as note:
                note.write(f"trained in one program with {', '.join(c.name for c in job if c is not other)}; "
                           f"the pack's output is in {job[0].name}/stdout.log and stderr.log\n")
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
        command = [python, "-m", "launch.cell_process", str(os.getpid()), ",".join(map(str, sorted(mine))) if mine else "all",
                   *(str(directory / c.name) for c in job), "--no-progress"]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out_file, stderr=err_file, env=env,
                                   start_new_session=True)
        running[job[0].name] = _Running(job, process, slot, err_path, offset, (out_file, err_file))
        for cell in job:
            rows[cell.name].update(status="running", error=None)
        what = (f"{job[0].name}" if len(job) == 1 else f"{len(job)} packed runs {', '.join(c.name for c in job)}")
        changed(f"start {what} ({job[0].steps} steps, ~{format_seconds(job_estimate(job))})")

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
            result = index_lib.read_result(directory / cell.name)
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
