"""A grid spec expanded into cells: one training job each, named, sized and bounds-checked.

Steps come from `harness.builder.plan_run` (budget // FLOPs per update of the preset on the
spec's dataset), the one function that also sizes the job when it runs, so the table a
dry run prints is exactly what the cells will do. It runs once per cell (plus one probe
per preset); the cell keeps its plan, which the launcher prepares the cell's folder from
(launch/jobs.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

from harness.config import TrainConfig
from harness.data import storage
from harness.builder import RunPlan, plan_run
from launch.spec import GridSpec, budget_label


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str  # its folder under results/<grid>/
    preset: str
    budget: float
    alpha: float
    seed: int
    config: TrainConfig
    params: int
    params_nonembedding: int
    flops_per_update: int
    tokens_per_example: int
    steps: int  # 0 when the budget is less than one update
    examples: int
    epochs: float  # examples / transitions in the training split
    skip_reason: Optional[str] = None  # why it is not run (outside the spec's sane bounds)
    # What plan_run resolved the config to (None where it refused: less than one update).
    plan: Optional[RunPlan] = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def skipped(self) -> bool:
        return self.skip_reason is not None

    def row(self) -> dict[str, Any]:
        """The cell's columns of index.csv (see launch/index.py)."""
        return {"cell": self.name, "preset": self.preset, "params": self.params,
                "params_nonembedding": self.params_nonembedding, "budget_flops": self.budget, "alpha": self.alpha,
                "seed": self.seed, "steps": self.steps, "examples": self.examples, "epochs": round(self.epochs, 4),
                "flops_per_update": self.flops_per_update, "flops": self.steps * self.flops_per_update,
                "tokens_per_example": self.tokens_per_example, "reason": self.skip_reason or ""}


def cell_name(preset: str, budget: float, alpha: float, seed: int) -> str:
    """'150k_C1e12_a0.5_s0': preset, FLOP budget, BC weight alpha, seed."""
    return f"{preset}_C{budget_label(budget)}_a{alpha:g}_s{seed}"


def training_transitions(config: TrainConfig, task_names: Sequence[str]) -> int:
    """Transitions in the training split, from the dataset specs (arrays are not read).
    The split holds out whole episodes, so this is within an episode of the real count."""
    total = sum(int(storage.read_spec(config.dataset, t)["num_transitions"]) for t in task_names)
    return max(1, round(total * (1.0 - config.valid_fraction)))


def expand(spec: GridSpec) -> list[Cell]:
    """All cells of the grid in a stable order (preset, budget, alpha, seed), skipped ones
    included with their reason."""
    spec.validate()
    cells = []
    transitions: dict[tuple, int] = {}
    for preset in spec.presets:
        # Params and FLOPs per update depend on the preset, not on the budget.
        probe = plan_run(spec.cell_config(preset, spec.budgets[0], spec.alphas[0], spec.seeds[0]).replace(
            flop_budget=None, steps=1))
        key = probe.task_names
        if key not in transitions:
            transitions[key] = training_transitions(spec.base.replace(dataset=spec.dataset), probe.task_names)
        for budget in spec.budgets:
            for alpha in spec.alphas:
                for seed in spec.seeds:
                    config = spec.cell_config(preset, budget, alpha, seed)
                    try:
                        plan = plan_run(config)
                    except ValueError:  # less than one update: plan_run refuses it
                        plan = None
                    steps = plan.steps if plan is not None else 0
                    examples = steps * config.batch_size
                    epochs = examples / transitions[key]
                    reason = None
                    if steps < spec.min_steps:
                        reason = (f"{steps} steps < min_steps {spec.min_steps} (budget {budget:.3g} / "
                                  f"{probe.flops_per_update:.3g} FLOPs per update)")
                    elif spec.max_examples_per_param is not None and examples > spec.max_examples_per_param * probe.params:
                        reason = (f"{examples / probe.params:.0f} examples per parameter > max_examples_per_param "
                                  f"{spec.max_examples_per_param:g} (a model too small for budget {budget:.3g})")
                    elif epochs > spec.max_epochs:
                        reason = (f"{epochs:.1f} epochs > max_epochs {spec.max_epochs:g} ({examples} examples over "
                                  f"{transitions[key]} training transitions)")
                    cells.append(Cell(cell_name(preset, budget, alpha, seed), preset, float(budget), float(alpha), seed,
                                      config, probe.params, probe.params_nonembedding, probe.flops_per_update,
                                      probe.tokens_per_example, steps, examples, epochs, reason, plan))
    return cells


def select(cells: Sequence[Cell], only: Optional[Sequence[str]]) -> list[Cell]:
    """The cells named in `only` (all when None); an unknown name is a one-line error."""
    if not only:
        return list(cells)
    known = {c.name for c in cells}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ValueError(f"unknown cell {unknown[0]!r}; cells of this grid: {', '.join(sorted(known))}")
    wanted = set(only)
    return [c for c in cells if c.name in wanted]


def format_count(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}" if isinstance(value, float) and not float(value).is_integer() else str(int(value))


def format_seconds(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
