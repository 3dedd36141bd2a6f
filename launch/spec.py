"""Grid specs: which cells a scaling study trains, as a Python config file.

A spec file defines `get_config()` returning a `GridSpec` (see launch/grids/):

    from launch.spec import GridSpec, log_spaced
    from harness.config import TrainConfig

    def get_config():
        return GridSpec(name="demo", presets=("150k", "250k"), budgets=log_spaced(1e12, 1e13, 3),
                        alphas=(1.0, 0.5), dataset="results/data/demo",
                        base=TrainConfig(batch_size=64, eval_episodes=2))

The grid is presets x budgets x alphas x seeds; `launch.cells.expand` turns it into
cells, and `pac grid SPEC` runs them into <results_root>/<name>/<cell>/.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

from harness.config import TrainConfig
from models import presets as presets_lib
from models.helpers import checked_replace

# Fields that only shape the dry run's time estimate: changing them does not change a cell.
ESTIMATE_FIELDS = ("assumed_flops_per_second", "cell_overhead_seconds", "measured_flops_per_second", "measured_on")
# Fields that say how cells are executed, not what they compute.
EXECUTION_FIELDS = ("pack_runs",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def log_spaced(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """n budgets evenly spaced in log10 from lo to hi inclusive, rounded to 3 significant
    digits (so cell names stay short and every budget is exactly what the name says)."""
    if not (lo > 0 and hi >= lo):
        raise ValueError(f"log_spaced needs 0 < lo <= hi, got lo={lo:g}, hi={hi:g}")
    if n < 1 or (n == 1 and hi != lo):
        raise ValueError(f"log_spaced needs n >= 1 (n = 1 only when lo == hi), got n={n}")
    if n == 1:
        return (float(f"{lo:.3g}"),)
    step = (math.log10(hi) - math.log10(lo)) / (n - 1)
    return tuple(float(f"{10 ** (math.log10(lo) + i * step):.3g}") for i in range(n))


@dataclasses.dataclass(frozen=True)
class GridSpec:
    # --- Identity and what to train ------------------------------------------------------
    name: str  # the folder under results_root; a cell's name encodes the rest.
    presets: tuple[str, ...]  # model size presets (`pac models`).
    budgets: tuple[float, ...]  # training FLOPs per cell (steps = budget / FLOPs per update).
    alphas: tuple[float, ...] = (1.0, 0.5)  # BC weight: 1 = BC (+Q), < 1 = PAC.
    seeds: tuple[int, ...] = (0,)
    dataset: str = "results/data/demo"  # relative paths are relative to where you launch.
    # Every other TrainConfig field (batch size, evaluation, dtype, ...). Its preset,
    # dataset, flop_budget, steps, alpha and seed are set per cell.
    base: TrainConfig = TrainConfig()

    # --- Sane bounds: cells outside them are skipped with the reason ----------------------
    min_steps: int = 100  # fewer updates than this cannot follow the LR schedule.
    max_epochs: float = 100.0  # more passes over the training split than this: overfitting.
    # Training examples per parameter above this: a model far too small for its budget, far
    # left of the isoFLOP valley (Chinchilla samples each budget's profile around its
    # optimum the same way). None keeps every cell. Saves the slowest cells on a CPU, where
    # the smallest models are bound by the per-update cost, not by their FLOPs.
    max_examples_per_param: float | None = None

    # --- Where and how --------------------------------------------------------------------
    results_root: str = "results"
    # Runs of one preset and budget (they differ only in alpha and seed) trained as one
    # vmapped program, up to this many per process (harness.train.train_pack): for
    # accelerators, where one small model leaves the device idle (issue 14: 16 packed 1.5m
    # runs made 2.35x the updates of one on an H200). On a CPU packing gains little. 1: one
    # run per process. Not part of the grid's identity: each run's result is the same.
    pack_runs: int = 1

    # --- Estimates only (dry run); measured throughput wins when there is one -------------
    assumed_flops_per_second: float = 5e10  # stack.md: 40-100 GFLOP/s for f32 steps on this CPU.
    cell_overhead_seconds: float = 20.0  # process start, compile, data load, evaluation.
    # A measured table, (preset, achieved FLOP/s) on the machine `measured_on` names:
    # presets in it use their figure, presets between two of them the log-log
    # interpolation in parameters (launch.estimate); it beats the assumed figure.
    measured_flops_per_second: tuple[tuple[str, float], ...] = ()
    measured_on: str = ""

    def validate(self) -> "GridSpec":
        """Raises a one-line ValueError naming the first bad field; returns self."""
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"grid name {self.name!r} must be a plain folder name (letters, digits, _ . -)")
        for field in ("presets", "budgets", "alphas", "seeds"):
            values = getattr(self, field)
            if not isinstance(values, (tuple, list)) or not values:
                raise ValueError(f"grid {self.name!r} is empty: {field} has no values")
            if len(set(values)) != len(values):
                raise ValueError(f"grid {self.name!r}: {field} has duplicates {list(values)}")
        for preset in self.presets:
            if preset not in presets_lib.PRESET_NAMES:
                raise ValueError(f"grid {self.name!r}: unknown model preset {preset!r}; valid presets: "
                                 f"{', '.join(presets_lib.PRESET_NAMES)}")
        for budget in self.budgets:
            if not isinstance(budget, (int, float)) or not math.isfinite(budget) or not budget > 0:
                raise ValueError(f"grid {self.name!r}: FLOP budget {budget!r} must be a positive number")
        names = [budget_label(b) for b in self.budgets]
        if len(set(names)) != len(names):
            raise ValueError(f"grid {self.name!r}: budgets {list(self.budgets)} are not distinct at 3 significant digits")
        for seed in self.seeds:
            if not isinstance(seed, int) or seed < 0:
                raise ValueError(f"grid {self.name!r}: seed {seed!r} must be an integer >= 0")
        if not isinstance(self.base, TrainConfig):
            raise ValueError(f"grid {self.name!r}: base must be a TrainConfig, got {type(self.base).__name__}")
        self.base.replace(steps=1, flop_budget=None).validate()
        for alpha in self.alphas:  # checked where every config's alpha is: TrainConfig.validate
            try:
                self.base.replace(steps=1, flop_budget=None, alpha=alpha).validate()
            except ValueError as err:
                raise ValueError(f"grid {self.name!r}: {err}") from None
        # A cell's folder spells its alpha as `a{alpha:g}`: two alphas that print alike would
        # share a folder (one run listed under both, the other never trained).
        labels = [f"{float(alpha):g}" for alpha in self.alphas]
        if len(set(labels)) != len(labels):
            raise ValueError(f"grid {self.name!r}: alphas {list(self.alphas)} are not distinct at 6 significant digits "
                             f"(cell names spell them {labels}); make them differ there")
        if not isinstance(self.min_steps, int) or self.min_steps < 1:
            raise ValueError(f"grid {self.name!r}: min_steps={self.min_steps!r} must be an integer >= 1")
        if not self.max_epochs > 0:
            raise ValueError(f"grid {self.name!r}: max_epochs={self.max_epochs!r} must be > 0")
        if self.max_examples_per_param is not None and not (
                isinstance(self.max_examples_per_param, (int, float)) and math.isfinite(self.max_examples_per_param)
                and self.max_examples_per_param > 0):
            raise ValueError(f"grid {self.name!r}: max_examples_per_param={self.max_examples_per_param!r} must be a "
                             f"positive number or None")
        for preset, rate in self.measured_flops_per_second:
            if preset not in presets_lib.PRESET_NAMES or not rate > 0:
                raise ValueError(f"grid {self.name!r}: measured_flops_per_second entry ({preset!r}, {rate}) needs a "
                                 f"known preset and a rate > 0")
        if not isinstance(self.pack_runs, int) or self.pack_runs < 1:
            raise ValueError(f"grid {self.name!r}: pack_runs={self.pack_runs!r} must be an integer >= 1")
        if self.pack_runs > 1 and not self.base.data_on_device:
            raise ValueError(f"grid {self.name!r}: pack_runs={self.pack_runs} needs base.data_on_device=True "
                             f"(a pack samples its batches on the device)")
        if not self.assumed_flops_per_second > 0 or self.cell_overhead_seconds < 0:
            raise ValueError(f"grid {self.name!r}: assumed_flops_per_second must be > 0 and cell_overhead_seconds >= 0")
        return self

    def cell_config(self, preset: str, budget: float, alpha: float, seed: int) -> TrainConfig:
        return self.base.replace(preset=preset, dataset=self.dataset, flop_budget=float(budget), steps=None,
                                 alpha=float(alpha), seed=int(seed))

    def replace(self, **changes: Any) -> "GridSpec":
        return checked_replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["base"] = self.base.to_json()
        return json.loads(json.dumps(data))

    def identity(self) -> dict[str, Any]:
        """What defines the grid's cells: everything but where it is written and the estimates."""
        data = self.to_json()
        for field in ESTIMATE_FIELDS + EXECUTION_FIELDS + ("results_root",):
            data.pop(field)
        data["base"] = TrainConfig.identity_of(data["base"])
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "GridSpec":
        data = dict(data)
        for field in ("presets", "budgets", "alphas", "seeds"):
            data[field] = tuple(data[field])
        data["base"] = TrainConfig.from_json(data["base"])
        return cls(**data)


def budget_label(budget: float) -> str:
    """'1e12', '3.16e12': the budget at 3 significant digits, as cell names spell it."""
    mantissa, exponent = f"{budget:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def load_spec(path: str | os.PathLike) -> GridSpec:
    """Imports a spec file and returns its validated `get_config()`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"grid spec {path} does not exist (give a Python file defining get_config(), e.g. launch/grids/demo.py)")
    module_spec = importlib.util.spec_from_file_location(f"_pac_grid_spec_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"grid spec {path} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # a broken spec file: say where, in one line
        raise ValueError(f"grid spec {path} failed to load: {type(err).__name__}: {err}") from None
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ValueError(f"grid spec {path} has no get_config() function")
    try:
        spec = get_config()
    except Exception as err:  # a spec whose get_config() raises: say where, in one line
        raise ValueError(f"grid spec {path}: get_config() raised {type(err).__name__}: {err}") from None
    if not isinstance(spec, GridSpec):
        raise ValueError(f"grid spec {path}: get_config() returned {type(spec).__name__}, not a launch.spec.GridSpec")
    return spec.validate()
