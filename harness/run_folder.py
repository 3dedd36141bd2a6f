"""The run folder: one training job's files, and the only module that knows their names.

  config.json    {"train": the resolved TrainConfig, "plan": what it resolved to}; written
                 before the job starts (by the launcher, or by `train` itself) and the
                 job's only input besides the dataset: `python -m harness.run RUN_DIR`
  metrics.csv    train / valid / eval rows (harness.metrics_log)
  checkpoints/   orbax, the last few steps (harness.checkpointing)
  result.json    written last, atomically: its presence means the job is done
Every file is written atomically (temp name + rename): readers see the old or the new.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from harness.config import TrainConfig

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
RESULT_FILE = "result.json"
CHECKPOINTS_DIR = "checkpoints"


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes a whole file by temp name + rename: readers see the old or the new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_done(run_dir: str | os.PathLike) -> bool:
    """A job is done when its result.json exists (it is written last)."""
    return (Path(run_dir) / RESULT_FILE).exists()


def read_result(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The job's result, or None while it is not done (or its result is unreadable)."""
    path = Path(run_dir) / RESULT_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_result(run_dir: str | os.PathLike, result: Mapping[str, Any]) -> None:
    write_atomic(Path(run_dir) / RESULT_FILE, json.dumps(result, indent=2))


def prepare(run_dir: str | os.PathLike, config: TrainConfig, plan: Mapping[str, Any]) -> None:
    """Creates the folder with its config.json, or checks that the one there holds the
    same TrainConfig (a job resumes only its own run). One-line ValueError otherwise."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if path.exists():
        saved = _read_train_section(path)
        mine = config.to_json()
        changed = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
        if changed:
            k = changed[0]
            raise ValueError(f"{run_dir} holds a run with a different config ({k}: {saved.get(k)!r} there, "
                             f"{mine.get(k)!r} now); use a new run folder")
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"train": config.to_json(), "plan": dict(plan)}, indent=2))


def read_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig a run folder was prepared with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ValueError(f"{path} does not exist: not a prepared run folder")
    return TrainConfig.from_json(_read_train_section(path))


def _read_train_section(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())["train"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: unreadable run config ({err}); use a new run folder") from None
