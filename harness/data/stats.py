"""The dataset quality report: per task, sizes, normalization references, every
snapshot's mean return and the composition of the data."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from harness.data import storage

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def task_statistics(data: storage.TaskData) -> dict:
    """One row of the report: counts, dims, references, return quantiles, composition."""
    returns = data.arrays["episode_returns"].astype(np.float64)
    spec = data.spec
    row = {
        "task": data.task,
        "obs_dim": data.observation_dim,
        "action_dim": data.action_dim,
        "episodes": data.num_episodes,
        "transitions": data.num_transitions,
        "random_return": float(spec["random_return"]),
        # Optional fields (an imported task has no snapshots; storage checks the required ones).
        "random_episodes": int(spec.get("random_episodes") or 0),
        "expert_return": float(spec["expert_return"]),
        "snapshots": len(spec.get("snapshots") or []),
        "snapshot_returns": [round(float(s["mean_return"]), 1) for s in spec.get("snapshots") or []],
        "learner_seconds": spec.get("learner_seconds"),
    }
    for q in QUANTILES:
        row[f"return_q{int(q * 100):02d}"] = float(np.quantile(returns, q))
    for group in ("random", "early", "middle", "final"):
        if group in (spec.get("composition") or {}):
            row[f"share_{group}"] = spec["composition"][group]["realized_share"]
    return row


def dataset_statistics(directory: str | os.PathLike, tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """The report for `tasks` (default: all) of a dataset directory, one row per task."""
    names = list(tasks) if tasks else storage.list_tasks(directory)
    rows = [task_statistics(storage.read_task(directory, task)) for task in names]
    if not rows:
        raise storage.DatasetError(f"{directory}: no task datasets found (generate them with `pac data`)")
    return pd.DataFrame(rows)


def format_report(directory: str | os.PathLike, tasks: Sequence[str] | None = None) -> str:
    """The table `pac data` prints: one line per task, then each task's snapshots."""
    table = dataset_statistics(directory, tasks)
    shares = [c for c in table.columns if c.startswith("share_")]
    columns = ["task", "obs_dim", "action_dim", "episodes", "transitions", "random_return", "random_episodes",
               "expert_return", "return_q00", "return_q50", "return_q100"] + shares
    shown = table[columns].rename(columns={
        "return_q00": "min", "return_q50": "median", "return_q100": "max", "random_return": "random (0)",
        "random_episodes": "n_random", "expert_return": "expert (1)", **{c: c[len("share_"):] for c in shares}})
    lines = [shown.to_string(index=False, float_format=lambda x: f"{x:.2f}" if abs(x) < 1 else f"{x:.1f}"), "",
             "snapshot mean returns (mean-action policy, learning order):"]
    for _, row in table.iterrows():
        lines.append(f"  {row['task']}: {', '.join(f'{r:.0f}' for r in row['snapshot_returns'])}")
    return "\n".join(lines)
