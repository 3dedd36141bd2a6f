"""The CPU study: the demo's presets (plus 220k) with 3 seeds at 4 budgets over 1.5
decades (1e11-3e12), for the laws the 20-minute demo cannot resolve.

    make study        # = pac data --preset demo; pac grid launch/grids/study.py --parallel 2; fit; figures

Why (measured 2026-11-26, 2 CPU cores, held-out BC loss): the demo's isoFLOP profiles
are flat within their scatter. Across a 10-20x range of sizes a budget's loss moves by
0.05-0.2 nats, while one seed's loss scatters by 0.02-0.07 (std over 3 seeds) and the
held-out estimate has a standard error of ~0.04. Averaged over 3 seeds the BC profiles
have their minima at ~12k params (1e11), ~19-37k (3e11) and ~37-62k (1e12); at 3e10
the loss still falls toward the smallest preset (7k, half of it embeddings), so that
budget, which the demo keeps for its 1.5 decades, is left out here. 3e12 takes its
place (its optimum, ~50-90k by the 1e11-1e12 fits, lies inside 37k-220k).

Cost: `pac grid launch/grids/study.py --dry-run` (the demo presets' measured rates): about
70 minutes of training on 2 cores.
"""

from launch.grids.demo import get_config as demo


def get_config():
    spec = demo()
    return spec.replace(
        name="study",
        presets=spec.presets + ("220k",),
        budgets=(1e11, 3e11, 1e12, 3e12),
        seeds=(0, 1, 2),
        measured_flops_per_second=spec.measured_flops_per_second + (("220k", 2.5e10),),
    )
