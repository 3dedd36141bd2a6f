"""The paper's range on one GPU: presets from ~1.5M to ~160M params x 7 FLOP budgets
spanning 3 orders of magnitude (1e15 to 1e18) x {BC, PAC}, bf16 compute.

    pac data --preset full --out results/data/full
    pac grid launch/grids/paper_like.py --dry-run
    pac grid launch/grids/paper_like.py               # one GPU: one cell at a time

Cells whose budget is too small for a preset (fewer than min_steps updates) or too large
for the dataset (more than max_epochs passes) are skipped with the reason: the isoFLOP
profiles then use the presets that fit each budget, as in Chinchilla. On the 4-task demo
dataset 62 of the 98 cells run, ~19 hours one at a time. The dry run's wall time uses the achieved FLOP/s measured
on one H200 (bf16, batch 512, the training step alone: benchmarks/results/step_profile/;
3m-12m and 80m interpolated log-log in parameters), plus each cell's overhead.
On Vertex AI: launch/xm_launch.py --executor=vertex (docs/launch.md).
"""

from harness.config import TrainConfig
from launch.spec import GridSpec, log_spaced


def get_config() -> GridSpec:
    return GridSpec(
        name="paper_like",
        presets=("1.5m", "3m", "6m", "12m", "30m", "80m", "160m"),
        budgets=log_spaced(1e15, 1e18, 7),
        alphas=(1.0, 0.5),
        seeds=(0,),
        dataset="results/data/full",
        base=TrainConfig(
            compute_dtype="bfloat16",
            batch_size=256,
            log_every=100,
            valid_every=1000,
            valid_examples_per_task=16384, valid_batch_size=1024,
            checkpoint_every=2000,
            eval_episodes=10,
        ),
        min_steps=2000,
        max_epochs=300.0,  # offline RL reuses data: D4RL-style runs see ~250 epochs
        assumed_flops_per_second=1.5e14,
        cell_overhead_seconds=120.0,
        # Measured 2026-11-26 (benchmarks/gpu_step_profile.sh): 1.5m and 30m with the
        # default speed settings ('all' rows), 160m the plain step (its 'all' run did not
        # finish; at 30m the settings changed the rate by 1%). Batch 256 runs a little
        # below these batch-512 rates at the small sizes.
        measured_flops_per_second=(("1.5m", 4.69e13), ("30m", 2.58e14), ("160m", 4.07e14)),
        measured_on="one NVIDIA H200 (bf16, batch 512, step only)",
    )
