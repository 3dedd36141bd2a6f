"""Return scaling where policies act: 3 presets x 3 FLOP budgets x {BC, PAC} x 3 seeds, with
the comparison's settings (benchmarks.pac_vs_bc): batch 256, discount 0.99, PAC by the
Monte-Carlo data advantage (returns extended past the time limit) at alpha 0, 10
evaluation episodes a task.

    pac data --preset demo --out results/data/demo
    pac grid launch/grids/returns.py --dry-run
    pac grid launch/grids/returns.py --parallel 2
    pac fit results/returns && pac figures results/returns

Why not the demo or study grids: their budgets (3e10-3e12 at batch 32) give the 130k preset
at most ~2,500 updates, below where any policy trained here acts (the comparison's 130k
runs use 9.4e12 FLOPs); this grid reaches 1e13. The report's return table picks each
budget's lowest-loss size (mean held-out loss over seeds) and gives its return over seeds
and episodes.

Measured (2026-12-01, 2-core CPU VM, `pac grid ... --parallel 2`: seed 0's 16 cells in
28m39s on shared cores; seeds 1 and 2 added to the same folder by listing them here, ~25
minutes each alone; then `pac fit results/returns --bootstrap 100` and `pac figures`;
results/returns/report.md and returns.png are committed), normalized return of each
budget's lowest-loss size (mean held-out loss over the seeds), mean [95% bootstrap
interval over the 3 seeds] (seeds 0 / 1 / 2), +- the mean 95% half-width over 10 episodes:
    1e12: BC 37k  0.12 [0.07, 0.16] (0.14 / 0.16 / 0.07)  PAC 37k  0.18 [0.13, 0.26] (0.26 / 0.12 / 0.14)
    3e12: BC 130k 0.11 [0.11, 0.12] (0.11 / 0.12 / 0.11)  PAC 130k 0.36 [0.24, 0.43] (0.40 / 0.24 / 0.43)
    1e13: BC 130k 0.16 [0.15, 0.17] (0.15 / 0.17 / 0.15)  PAC 130k 0.58 [0.55, 0.62] (0.55 / 0.62 / 0.57)
episodes' half-widths +-0.07-0.14. PAC's return rises with budget in every seed and its
mean leads BC's at every budget (per seed it trails once: 1e12, seed 1, 0.12 vs 0.16); BC's
stays at 0.11-0.16. The held-out loss laws of this grid are degenerate (two sizes at 1e12,
shallow valleys) and the report says so.
"""

from harness.config import TrainConfig
from launch.spec import GridSpec


def get_config() -> GridSpec:
    return GridSpec(
        name="returns",
        presets=("37k", "130k", "250k"),
        budgets=(1e12, 3e12, 1e13),
        alphas=(1.0, 0.0),
        # Three seeds (intervals over seeds and over the 10 evaluation episodes): ~25-30
        # minutes a seed on 2 cores. The comparison (benchmarks.pac_vs_bc) gives the 5-seed
        # intervals at 130k, 9.4e12 FLOPs.
        seeds=(0, 1, 2),
        dataset="results/data/demo",
        base=TrainConfig(
            batch_size=256,
            discount=0.99,
            policy_improvement="data_advantage",
            advantage_estimate="monte_carlo",
            mc_return_tail="extend",
            log_every=250,
            valid_every=100_000,  # and always at the last step, whose row the fits read
            valid_examples_per_task=2048,
            checkpoint_every=2000,
            eval_episodes=10,
        ),
        min_steps=200,
        max_epochs=100.0,
        results_root="results",
        measured_flops_per_second=(("130k", 8.7e10), ("250k", 1.4e11)),
        measured_on="2-core CPU VM (the CI machine's kind), jax 0.10.2, float32, batch 256, data_advantage",
        cell_overhead_seconds=40.0,  # process start, compile, data load, 10 episodes per task
    )
