"""The run folder: one training job's files, and the only module that knows their names.

  config.json    {"train": the resolved TrainConfig, "data": each task's sha256}; written
                 before the job starts (by the launcher, or by the job itself) and the
                 job's only input besides the dataset: `python -m harness.run RUN_DIR`.
                 A run resumes only on the same config and the same data. What the
                 config resolves to (steps, model; harness.builder.plan_run) is not kept
                 here: the job derives it again, and result.json records what it trained.
  metrics.csv    train / valid / eval rows (harness.metrics_log)
  checkpoints/   orbax, the last few steps (harness.checkpointing)
  result.json    written last, atomically: its presence means the job is done
  .lock          held (flock) by the one process training the run (`lock`)
Every file is written atomically (temp name + rename): readers see the old or the new.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from harness.config import TrainConfig
from models.helpers import file_lock, write_atomic

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
RESULT_FILE = "result.json"
CHECKPOINTS_DIR = "checkpoints"
LOCK_FILE = ".lock"


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


@contextlib.contextmanager
def lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """One process trains a run folder at a time: a second one gets a one-line ValueError
    naming the holder. The lock (flock) is released when its holder exits, even by SIGKILL."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} exists and is not a folder; move it away or use another run folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(run_dir / LOCK_FILE, busy=lambda holder: f"{run_dir} is being trained by {holder}; wait for it "
                                                            f"to end or use another run folder"):
        yield


def has_trained(run_dir: str | os.PathLike) -> bool:
    """Whether the run got as far as a checkpoint or a result."""
    run_dir = Path(run_dir)
    checkpoints = run_dir / CHECKPOINTS_DIR
    return is_done(run_dir) or (checkpoints.is_dir() and any(checkpoints.iterdir()))


def prepare(run_dir: str | os.PathLike, config: TrainConfig, plan: Mapping[str, Any]) -> bool:
    """Creates the folder with its config.json, or checks that the one there holds the
    same TrainConfig (a job resumes only its own run). One-line ValueError otherwise.
    `plan` is the config's RunPlan.to_json(): its task_names name the tasks whose data
    identity is kept. Returns whether this call wrote the config (see `withdraw`)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} exists and is not a folder; move it away or use another run folder")
    path = run_dir / CONFIG_FILE
    data = dataset_identity(config.dataset, plan.get("task_names") or ())
    if path.exists():
        saved = TrainConfig.identity_of(_read_train_section(path))
        mine = TrainConfig.identity_of(config.to_json())
        changed = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
        if changed:
            k = changed[0]
            raise ValueError(f"{run_dir} holds a run with a different config ({k}: {saved.get(k)!r} there, "
                             f"{mine.get(k)!r} now); use a new run folder")
        if not is_done(run_dir):  # a finished run is only read, never resumed
            _check_same_data(run_dir, _read_section(path, "data"), data)
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"train": config.to_json(), "data": data}, indent=2))
    return True


def dataset_identity(dataset: str | os.PathLike, task_names: Sequence[str]) -> dict[str, str]:
    """Task -> the sha256 of its arrays (from its spec, already checked against the file
    when loaded): what a run trained on, kept in config.json to refuse resuming on other data."""
    from harness.data import storage

    return {name: str(storage.read_spec(dataset, name).get("sha256")) for name in task_names}


def _check_same_data(run_dir: Path, saved: Any, now: Mapping[str, str]) -> None:
    """One-line ValueError naming the first task added, removed or replaced since the run
    began (a config.json of a version that kept no identity is not checked)."""
    if not isinstance(saved, Mapping):
        return
    problems = ([f"task {t!r} added" for t in sorted(set(now) - set(saved))]
                + [f"task {t!r} removed" for t in sorted(set(saved) - set(now))]
                + [f"task {t!r} replaced (sha256 {str(saved[t])[:12]} there, {now[t][:12]} now)"
                   for t in sorted(set(saved) & set(now)) if saved[t] != now[t]])
    if problems:
        raise ValueError(f"{run_dir}: its dataset changed since the run began ({'; '.join(problems)}); resume it on "
                         f"the data it began with, or use a new run folder")


def withdraw(run_dir: str | os.PathLike) -> None:
    """Takes back the config.json of a run that failed before its first checkpoint (bad
    data, out of memory, divergence), so that a corrected command may use the folder; its
    metrics.csv stays to be read (the next start rewrites it)."""
    if not has_trained(run_dir):
        (Path(run_dir) / CONFIG_FILE).unlink(missing_ok=True)


def read_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The TrainConfig a run folder was prepared with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ValueError(f"{path} does not exist: not a prepared run folder")
    return TrainConfig.from_json(_read_train_section(path))


def _read_train_section(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())["train"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: unreadable run config ({err}); use a new run folder") from None


def _read_section(path: Path, name: str) -> Any:
    """A section of config.json, or None where the file lacks it (read after the "train" one)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data.get(name) if isinstance(data, dict) else None
