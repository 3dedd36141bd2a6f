"""Held-out losses with little noise: the scaling quantities of a run.

A fixed evaluation set per task (the whole held-out split, or a fixed sample of
`examples_per_task` transitions of it; the split and the sample depend on the dataset,
never on the run's seed), evaluated in batches of one task each. Each metric is reported
per task and overall, the overall value weighting tasks as training weights them, plus
the BC loss in nats per action dimension (tasks with more action dimensions have larger
NLLs; per dimension they are comparable) and the standard error of the overall BC loss
(from the spread of the per-batch means, so it says how far the fixed sample's value may
lie from the whole split's).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from harness.data.sampler import Batch, Sampler

class HeldOutSet:
    """The fixed held-out batches of a run and their task-weighted aggregation."""

    def __init__(self, sampler: Sampler, examples_per_task: int, batch_size: int,
                 place: Callable[[Batch], Any] = lambda b: b, sample: int = 0):
        pairs = sampler.heldout_batches(examples_per_task, batch_size, sample)
        self.task_names = sampler.task_names
        self._action_dims = sampler.action_dims
        self._weights = sampler.task_weights()
        self._task_of_batch = np.array([task for task, _ in pairs])
        self._batches = [place(batch) for _, batch in pairs]
        self.examples = len(pairs) * batch_size

    def evaluate(self, metrics_of: Callable[[Any], dict[str, float]]) -> dict[str, float]:
        """Runs `metrics_of` (batch -> scalar metrics) on every batch and aggregates."""
        rows = [metrics_of(batch) for batch in self._batches]
        names = list(rows[0])
        values = {k: np.array([float(r[k]) for r in rows]) for k in names}
        result: dict[str, float] = {}
        present = [t for t in range(len(self.task_names)) if np.any(self._task_of_batch == t)]
        weights = self._weights[present] / self._weights[present].sum()
        per_task = {k: np.array([values[k][self._task_of_batch == t].mean() for t in present]) for k in names}
        for k in names:
            result[k] = float(np.dot(weights, per_task[k]))
        per_dim = per_task["bc_loss"] / self._action_dims[present]
        result["bc_loss_per_dim"] = float(np.dot(weights, per_dim))
        # Standard error of the weighted mean of per-task means, from batch-to-batch spread.
        variances = []
        for t in present:
            batch_means = values["bc_loss"][self._task_of_batch == t]
            variances.append(batch_means.var(ddof=1) / len(batch_means) if len(batch_means) > 1 else np.nan)
        result["bc_loss_stderr"] = float(np.sqrt(np.dot(weights ** 2, variances)))
        for i, t in enumerate(present):
            name = self.task_names[t]
            result[f"bc_loss/{name}"] = float(per_task["bc_loss"][i])
            result[f"bc_loss_per_dim/{name}"] = float(per_dim[i])
            result[f"critic_loss/{name}"] = float(per_task["critic_loss"][i])
        return result
