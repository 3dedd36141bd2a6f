"""The CPU study: the demo grid with 3 seeds and a fifth budget (2 decades), for the
laws the 20-minute demo cannot resolve.

    make study        # = pac data --preset demo; pac grid launch/grids/study.py --parallel 2; fit; figures

Why it exists (measured 2026-11-26, 2 CPU cores): the demo's isoFLOP profiles are flat
within their scatter. At every budget the held-out BC loss moves by less than 0.1 nats
across a 10-20x range of sizes, while one seed's loss scatters by ~0.05 (two-seed pilot)
and the held-out estimate has a standard error of ~0.04 nats. Averaging 3 seeds cuts the
scatter by ~1.7x, and a budget of 3e12 FLOPs adds a profile whose optimum (~40-60k params
by the demo's L(N, D)) lies inside the sampled sizes with room on both sides.

Cost: see `pac grid launch/grids/study.py --dry-run` (measured rates of the demo presets;
about an hour on 2 cores). The demo's cells are the seed-0 cells of budgets <= 1e12 here,
with the same configs: copy results/demo/<cell> folders into results/study/ to reuse them.
"""

from launch.grids.demo import get_config as demo


def get_config():
    spec = demo()
    return spec.replace(
        name="study",
        presets=spec.presets + ("220k",),
        budgets=spec.budgets + (3e12,),
        seeds=(0, 1, 2),
        measured_flops_per_second=spec.measured_flops_per_second + (("220k", 2.5e10),),
    )
