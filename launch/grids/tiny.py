"""A tiny grid for tests and smoke runs: the 'tiny' preset x 2 budgets x {BC, PAC}.

    pac data --preset test --out results/data/tiny
    pac grid launch/grids/tiny.py                # 4 cells of ~20-80 updates, a minute or two

The tests point it at their own dataset with `get_config().replace(dataset=...)`.
"""

from harness.config import TrainConfig
from launch.spec import GridSpec


def get_config() -> GridSpec:
    return GridSpec(
        name="tiny",
        presets=("tiny",),
        budgets=(1.5e9, 5.5e9),  # ~20 and ~80 updates of the tiny preset at batch 16
        alphas=(1.0, 0.5),
        seeds=(0,),
        dataset="results/data/tiny",
        base=TrainConfig(batch_size=16, num_sampled_actions=4, log_every=5, valid_every=10, valid_examples_per_task=32, valid_batch_size=16,
                         checkpoint_every=10, eval_episodes=0),
        min_steps=10,
        max_epochs=100.0,
        assumed_flops_per_second=1e10,
        cell_overhead_seconds=10.0,
    )
