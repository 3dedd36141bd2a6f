"""results/<grid>/index.csv: one row per cell with its status, the analysis code's entry point.

Columns (a contract with analysis/: add new ones at the end, never rename):
  cell                 the cell's folder name under results/<grid>/
  preset, params, params_nonembedding, budget_flops, alpha, seed, steps
  status               done | failed | running | pending | skipped
  examples, epochs, flops_per_update, flops (= steps * flops_per_update), tokens_per_example
  reason               why a skipped cell is not run
  error                a failed cell's error (last line of its stderr)
  wall_seconds         the cell's process time in its last launch (done and failed cells)
  updates_per_second   the training loop's updates/s after compilation (metrics.csv)
  normalized_return    mean over tasks of the final evaluation (empty without evaluation)
  valid_bc_loss, valid_critic_loss, valid_q_mean, valid_policy_loss   final held-out losses
  train_bc_loss, train_critic_loss   last logged training losses
The file is rewritten atomically (temp file + rename) after every status change.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness import run_folder
from harness.run_folder import write_atomic

COLUMNS = ("cell", "preset", "params", "params_nonembedding", "budget_flops", "alpha", "seed", "steps", "status",
           "examples", "epochs", "flops_per_update", "flops", "tokens_per_example", "reason", "error", "wall_seconds",
           "updates_per_second", "normalized_return", "valid_bc_loss", "valid_critic_loss", "valid_q_mean",
           "valid_policy_loss", "train_bc_loss", "train_critic_loss")
STATUSES = ("done", "failed", "running", "pending", "skipped")
INDEX_NAME = "index.csv"


def result_columns(result: Mapping[str, Any], cell_dir: Path) -> dict[str, Any]:
    """index.csv columns taken from a cell's result.json (and its metrics.csv's throughput)."""
    from launch.estimate import steady_updates_per_second

    valid, train = result.get("valid") or {}, result.get("train") or {}
    row = {"updates_per_second": steady_updates_per_second(cell_dir),
           "normalized_return": result.get("normalized_return")}
    for name in ("bc_loss", "critic_loss", "q_mean", "policy_loss"):
        row[f"valid_{name}"] = valid.get(name)
    for name in ("bc_loss", "critic_loss"):
        row[f"train_{name}"] = train.get(name)
    return row


def read_result(cell_dir: Path) -> dict[str, Any] | None:
    return run_folder.read_result(cell_dir)


def read_index(grid_dir: Path) -> dict[str, dict[str, str]]:
    """The previous index's rows by cell (to keep wall times and errors across launches)."""
    path = grid_dir / INDEX_NAME
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {row["cell"]: row for row in csv.DictReader(f) if row.get("cell")}


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def write_index(grid_dir: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format(row.get(k)) for k in COLUMNS})
    path = grid_dir / INDEX_NAME
    write_atomic(path, buffer.getvalue())
    return path
