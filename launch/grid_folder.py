"""A grid's folder, results/<grid>/: its owner.

- grid.json holds the resolved spec; a different spec for the same folder is refused
  (fields that only shape estimates or how cells execute are not part of its identity),
  except one that only adds seeds: it replaces grid.json and its new cells run;
- .launcher.lock: one launcher per grid folder at a time (flock, released when the
  launcher dies, even by SIGKILL);
- index.csv (launch/index.py writes its rows): rebuilt here from the cell folders.

Executors (launch/local.py, launch/xm_launch.py) only execute: the launch function they
share (launch/jobs.py) claims and locks the folder here, and each cell's own folder
belongs to harness/run_folder.py.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from harness import run_folder
from harness.config import TrainConfig
from launch import index as index_lib
from launch.cells import Cell, expand
from launch.spec import GridSpec
from models.helpers import file_lock, write_atomic

GRID_FILE = "grid.json"
LOCK_FILE = ".launcher.lock"


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
    saved = _saved_identity(path)
    mine = json.loads(json.dumps(spec.identity()))
    if _adds_seeds(saved, mine):
        return  # the same cells and more seeds of them: claim_grid_dir records the new spec
    for key in sorted(set(saved) | set(mine)):
        if saved.get(key) != mine.get(key):
            if isinstance(saved.get(key), dict) and isinstance(mine.get(key), dict):
                sub = sorted(k for k in set(saved[key]) | set(mine[key]) if saved[key].get(k) != mine[key].get(k))[0]
                key, there, now = f"{key}.{sub}", saved[key].get(sub), mine[key].get(sub)
            else:
                there, now = saved.get(key), mine.get(key)
            raise ValueError(f"{directory} belongs to a different spec of grid {spec.name!r} ({key}: {there!r} there, "
                             f"{now!r} now); use another grid name or --results")


def _saved_identity(path: Path) -> dict[str, Any]:
    """grid.json's identity, its base completed by the fields added since (their defaults)."""
    try:
        saved = json.loads(path.read_text())["identity"]
        saved["base"] = TrainConfig.identity_of(saved["base"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: unreadable grid spec ({err}); use another --results") from None
    return saved


def _adds_seeds(saved: dict[str, Any], mine: dict[str, Any]) -> bool:
    """Whether `mine` is the saved grid with more seeds: every cell done stays a cell of it."""
    rest = lambda identity: {k: v for k, v in identity.items() if k != "seeds"}  # noqa: E731
    return rest(saved) == rest(mine) and set(saved.get("seeds", ())) < set(mine.get("seeds", ()))


def claim_grid_dir(spec: GridSpec, directory: Path) -> None:
    """Checks the folder, then creates it and its grid.json; a spec that adds seeds to the
    saved one replaces it (the cells already done are cells of the new spec)."""
    check_grid_dir(spec, directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / GRID_FILE
    written = {"identity": spec.identity(), "spec": spec.to_json()}
    if not path.exists():
        write_atomic(path, json.dumps(written, indent=2))
        return
    if _adds_seeds(_saved_identity(path), json.loads(json.dumps(written["identity"]))):
        write_atomic(path, json.dumps(written, indent=2))


@contextlib.contextmanager
def grid_lock(directory: Path) -> Iterator[None]:
    """One launcher per grid folder at a time (released when the launcher dies, even by SIGKILL)."""
    path = directory / LOCK_FILE
    with file_lock(path, busy=lambda holder: f"another launcher ({holder}) is running grid {directory} (lock {path})"):
        yield


def initial_rows(cells: Sequence[Cell], directory: Path) -> dict[str, dict[str, Any]]:
    """Each cell's index row from what is on disk: skipped, done (result.json) or pending."""
    previous = index_lib.read_index(directory)
    rows = {}
    for cell in cells:
        row = cell.row()
        result = run_folder.read_result(directory / cell.name)
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
                  failed: Optional[dict[str, str]] = None, cells: Optional[Sequence[Cell]] = None) -> list[dict[str, Any]]:
    """Rewrites index.csv from the cell folders (for grids run elsewhere, e.g. by XManager):
    done where result.json exists; otherwise failed if `failed` (cell -> error) or the
    previous index says so, else pending. `cells`: the grid's, where the caller has them
    (expand(spec) otherwise)."""
    directory = grid_dir(spec, results_root)
    check_grid_dir(spec, directory)
    if not directory.exists():
        raise ValueError(f"{directory} does not exist: grid {spec.name!r} was never launched there")
    previous = index_lib.read_index(directory)
    rows = initial_rows(cells if cells is not None else expand(spec), directory)
    for name, row in rows.items():
        if row["status"] == "pending" and previous.get(name, {}).get("status") == "failed":
            row.update(status="failed", error=previous[name].get("error"), wall_seconds=previous[name].get("wall_seconds"))
        if row["status"] == "pending" and name in (failed or {}):
            row.update(status="failed", error=failed[name])
    index_lib.write_index(directory, rows.values())
    return list(rows.values())
