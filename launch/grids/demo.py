"""The CPU demo grid: 4 presets under 1M params x 4 FLOP budgets x {BC, PAC} x 1 seed.

    pac data --preset demo --out results/data/demo     # the 4-task dataset, first
    pac grid launch/grids/demo.py --dry-run
    pac grid launch/grids/demo.py --parallel 2         # ~18 minutes on 2 CPU cores

Measured (2026-11-26, 2 CPU cores, the device-resident training loop): all 32 cells
trained in 18m07s at --parallel 2 (37-1,831 updates a cell). A cell is mostly overhead:
of a 183-update cell's 45 s, ~26 s are process start and compilation, ~13 s validation
(4,096 held-out examples per task, twice), ~4 s evaluation, ~3 s training. The laws are
degenerate (fits.json says so): at every budget the smallest preset has the lowest loss,
so every isoFLOP vertex lies below 150k; a grid with real valleys needs presets of
~20k-100k (issue 13).
"""

from harness.config import TrainConfig
from launch.spec import GridSpec, log_spaced


def get_config() -> GridSpec:
    return GridSpec(
        name="demo",
        presets=("150k", "250k", "400k", "700k"),
        budgets=log_spaced(1e11, 1e12, 4),  # 1e11, 2.15e11, 4.64e11, 1e12 training FLOPs
        alphas=(1.0, 0.5),  # BC (+Q) and PAC
        seeds=(0,),
        dataset="results/data/demo",
        base=TrainConfig(
            batch_size=32,
            # TrainConfig's defaults since issue 11 (lr 1e-3, discount 0.95, Polyak targets)
            # are the ones measured to let the critic learn in runs this short.
            log_every=25,
            valid_every=100,
            valid_examples_per_task=4096,
            checkpoint_every=200,
            eval_episodes=1,  # per task, in the real environment, after training
        ),
        min_steps=30,
        max_epochs=20.0,
        results_root="results",
        assumed_flops_per_second=1.5e10,  # measured here: 15-30 GFLOP/s per cell with 2 cells on 2 busy cores
        cell_overhead_seconds=12.0,  # measured: start, data load, 1 evaluation episode per task; compiles are shared per preset
    )
