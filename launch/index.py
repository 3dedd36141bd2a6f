"""results/<grid>/index.csv: one row per cell with its status, the analysis code's entry point.

Columns (a contract with analysis/: read them by name; the cell's own columns never change):
  cell                 the cell's folder name under results/<grid>/
  preset, params, params_nonembedding, budget_flops, alpha, seed, steps
  status               done | failed | running | pending | skipped
  examples, epochs, flops_per_update, flops (= steps * flops_per_update), tokens_per_example
  reason               why a skipped cell is not run
  error                a failed cell's error (last line of its stderr)
  wall_seconds         the cell's process time in its last launch (done and failed cells)
  updates_per_second   the training loop's updates/s after compilation (metrics.csv)
  normalized_return    mean over tasks of the final evaluation (empty without evaluation)
  normalized_return_episode_ci95  half-width of its 95% interval over evaluation episodes
  valid_<metric>       every overall held-out metric the run logged last (result.json's
                       "valid", e.g. valid_bc_loss, valid_critic_loss; not the per-task ones)
  train_<metric>       every training metric of the last logged step (result.json's "train")
The metric columns are whatever the runs logged, sorted by name after the cell's own
columns. The file is rewritten atomically (temp file + rename) after every status change.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from models.helpers import write_atomic

CELL_COLUMNS = ("cell", "preset", "params", "params_nonembedding", "budget_flops", "alpha", "seed", "steps", "status",
           "examples", "epochs", "flops_per_update", "flops", "tokens_per_example", "reason", "error", "wall_seconds",
           "updates_per_second", "normalized_return", "normalized_return_episode_ci95")
STATUSES = ("done", "failed", "running", "pending", "skipped")
INDEX_NAME = "index.csv"


def result_columns(result: Mapping[str, Any], cell_dir: Path) -> dict[str, Any]:
    """index.csv columns taken from a cell's result.json (and its metrics.csv's throughput)."""
    from launch.estimate import steady_updates_per_second

    row = {"updates_per_second": steady_updates_per_second(cell_dir),
           "normalized_return": result.get("normalized_return"),
           # Half-width of the 95% interval over evaluation episodes (empty before it was kept).
           "normalized_return_episode_ci95": _halfwidth(result.get("normalized_return_ci95"))}
    for split in ("valid", "train"):
        row.update({f"{split}_{name}": value for name, value in (result.get(split) or {}).items() if "/" not in name})
    return row


def _halfwidth(interval) -> float | None:
    return (interval[1] - interval[0]) / 2.0 if interval else None


def read_index(grid_dir: Path) -> dict[str, dict[str, Any]]:
    """The previous index's rows by cell (to keep wall times and errors across launches).
    The index is derived data, rebuilt from the cell folders at every launch: a damaged
    one (unreadable, binary, rows of other shapes or values) gives up only what it alone
    kept, never blocks the rebuild."""
    path = grid_dir / INDEX_NAME
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):  # missing or damaged: nothing to keep
        return {}
    kept = {}
    for row in rows:
        if not isinstance(row.get("cell"), str) or not row["cell"] or row.get("status") not in STATUSES:
            continue
        try:
            wall = float(row.get("wall_seconds") or "nan")
        except ValueError:
            wall = float("nan")
        kept[row["cell"]] = {**row, "wall_seconds": wall if math.isfinite(wall) and wall >= 0 else None}
    return kept


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def write_index(grid_dir: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    rows = list(rows)
    logged = sorted({k for row in rows for k in row if k.startswith(("valid_", "train_"))} - set(CELL_COLUMNS))
    columns = [*CELL_COLUMNS, *logged]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format(row.get(k)) for k in columns})
    path = grid_dir / INDEX_NAME
    write_atomic(path, buffer.getvalue())
    return path
