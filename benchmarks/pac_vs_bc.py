"""PAC against BC on mixed-quality data, at equal compute, over seeds.

    python -m benchmarks.pac_vs_bc                       # defaults: 30 jobs, ~22 min on 2 free cores
    python -m benchmarks.pac_vs_bc --seeds 0 1 2 --alphas 0.5 0 --steps 1000 --out /tmp/pvb

Methods, all the same preset, steps and batch (so the same FLOPs: BC still trains the
critic, "BC+Q"):
  bc           alpha = 1 (behavioural cloning of all the data);
  pac_a<alpha> PAC at each --alphas value (< 1);
  filtered_bc  alpha = 1 on each task's top --filter-fraction of training episodes by
               return: the reference that knows which data is good.
Each (method, seed) is one `pac train` job, run by the local grid launcher (resumable:
finished jobs are kept; --parallel jobs at once, each pinned to its own core), and
evaluated in the environments for --eval-episodes episodes per task.

Writes OUT/summary.json:
  methods.<name>: alpha, top_episode_fraction, per-seed normalized returns (mean over
    tasks), their mean and 95% bootstrap interval over seeds ("ci95"), per-task means;
  best_pac: the PAC method with the highest mean;
  difference: best_pac - bc paired by seed: {"mean", "ci95"} (95% bootstrap over seeds;
    the best alpha is chosen on these same seeds, which favours it slightly);
  differences: the same for every PAC method and for filtered_bc;
and OUT/pac_vs_bc.png: normalized return against alpha with the intervals.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.config import TrainConfig, parse_override
from harness.run_folder import write_atomic
from harness.train import plan_run
from analysis.returns import bootstrap_ci
from launch.local import run_grid
from launch.spec import GridSpec

def _methods(alphas: Sequence[float], filter_fraction: float) -> list[tuple[str, float, float]]:
    """(name, alpha, top_episode_fraction) of every method."""
    pac = [(f"pac_a{a:g}", float(a), 1.0) for a in alphas if a < 1.0]
    return [("bc", 1.0, 1.0), *pac, ("filtered_bc", 1.0, float(filter_fraction))]


def _grid(name: str, base: TrainConfig, alphas: Sequence[float], seeds: Sequence[int], budget: float,
          out: Path) -> GridSpec:
    return GridSpec(name=name, presets=(base.preset,), budgets=(budget,), alphas=tuple(alphas), seeds=tuple(seeds),
                    dataset=base.dataset, base=base, min_steps=1, max_epochs=1e9, results_root=str(out))


def run(base: TrainConfig, steps: int, alphas: Sequence[float], seeds: Sequence[int], out: str | Path,
        filter_fraction: float = 0.25, parallel: int = 2, log=print) -> dict[str, Any]:
    """Trains every (method, seed), then writes and returns the summary (see the module doc)."""
    out = Path(out)
    start = time.time()
    flops = plan_run(base.replace(steps=1, flop_budget=None)).flops_per_update
    # One budget for every method: steps = budget // FLOPs per update, exactly `steps`.
    budget = float(f"{(steps + 0.5) * flops:.6g}")
    base = base.replace(steps=None, flop_budget=budget)
    methods = _methods(alphas, filter_fraction)
    grid_alphas = [a for _, a, f in methods if f == 1.0]
    rows = run_grid(_grid("alphas", base, grid_alphas, seeds, budget, out), parallel=parallel, log=log)
    rows += run_grid(_grid("filtered_bc", base.replace(top_episode_fraction=filter_fraction), [1.0], seeds, budget, out),
                     parallel=parallel, log=log)
    failed = [r["cell"] for r in rows if r["status"] != "done"]
    if failed:
        raise RuntimeError(f"{len(failed)} jobs did not finish (first: {failed[0]}); rerun to retry them")
    results = {}
    for grid in ("alphas", "filtered_bc"):
        for cell in sorted((out / grid).iterdir()):
            if (cell / "result.json").exists():
                config = json.loads((cell / "config.json").read_text())["train"]
                results[(config["alpha"], config["top_episode_fraction"], config["seed"])] = json.loads(
                    (cell / "result.json").read_text())
    summary = summarize(results, methods, seeds)
    summary["setup"] = {"preset": base.preset, "steps": steps, "batch_size": base.batch_size,
                        "flops_per_update": flops, "dataset": base.dataset, "tasks": base.tasks,
                        "eval_episodes": base.eval_episodes, "seeds": list(seeds), "alphas": list(alphas),
                        "filter_fraction": filter_fraction, "wall_seconds": round(time.time() - start, 1)}
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    plot(summary, out / "pac_vs_bc.png")
    return summary


def summarize(results: dict[tuple[float, float, int], dict[str, Any]], methods: Sequence[tuple[str, float, float]],
              seeds: Sequence[int]) -> dict[str, Any]:
    """The summary of finished jobs, keyed (alpha, top_episode_fraction, seed) -> result.json."""
    per_method: dict[str, dict[str, Any]] = {}
    for name, alpha, fraction in methods:
        chosen = [results[(alpha, fraction, s)] for s in seeds]
        returns = [r["normalized_return"] for r in chosen]
        tasks = sorted(chosen[0]["returns"])
        per_method[name] = {
            "alpha": alpha, "top_episode_fraction": fraction, "flops": chosen[0]["flops"],
            "normalized_return": {"mean": float(np.mean(returns)), "ci95": bootstrap_ci(returns),
                                  "per_seed": dict(zip(map(str, seeds), returns))},
            "per_task": {t: float(np.mean([r["returns"][t]["normalized_return"] for r in chosen])) for t in tasks},
            "valid_bc_loss": float(np.mean([r["valid"]["bc_loss"] for r in chosen])),
        }

    def paired(a: str, b: str) -> dict[str, Any]:
        diffs = [per_method[a]["normalized_return"]["per_seed"][str(s)] - per_method[b]["normalized_return"]["per_seed"][str(s)]
                 for s in seeds]
        return {"comparison": f"{a} - {b}", "mean": float(np.mean(diffs)), "ci95": bootstrap_ci(diffs),
                "per_seed": dict(zip(map(str, seeds), diffs))}

    pac = [name for name, alpha, fraction in methods if alpha < 1.0]
    best = max(pac, key=lambda n: per_method[n]["normalized_return"]["mean"]) if pac else None
    return {
        "methods": per_method,
        "best_pac": {"method": best, "alpha": per_method[best]["alpha"]} if best else None,
        "difference": paired(best, "bc") if best else None,
        "differences": {name: paired(name, "bc") for name in [*pac, "filtered_bc"]},
    }


def plot(summary: dict[str, Any], path: Path) -> None:
    """Normalized return against alpha (BC at alpha = 1), filtered BC as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    points = sorted((m["alpha"], m["normalized_return"]) for n, m in summary["methods"].items() if n != "filtered_bc")
    alphas = [a for a, _ in points]
    means = np.array([r["mean"] for _, r in points])
    ci = np.array([r["ci95"] for _, r in points])
    ax.errorbar(alphas, means, yerr=[means - ci[:, 0], ci[:, 1] - means], marker="o", capsize=4,
                label="PAC (alpha < 1) and BC (alpha = 1)")
    filtered = summary["methods"]["filtered_bc"]["normalized_return"]
    ax.axhline(filtered["mean"], color="gray", linestyle="--",
               label=f"filtered BC (top {summary['methods']['filtered_bc']['top_episode_fraction']:g})")
    ax.axhspan(*filtered["ci95"], color="gray", alpha=0.15)
    ax.set_xlabel("alpha (BC weight)")
    ax.set_ylabel("normalized return (mean over tasks)")
    seeds = len(summary["methods"]["bc"]["normalized_return"]["per_seed"])
    ax.set_title(f"PAC vs BC at equal compute, {seeds} seeds, 95% bootstrap CI", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="results/data/demo")
    parser.add_argument("--tasks", nargs="+", default=None, help="subset of the dataset's tasks (default all)")
    parser.add_argument("--preset", default="tiny")
    # 5000 updates: a job takes ~90 s on one core (3000 took 59 s: 45 s of updates at
    # ~70/s, the rest start-up, one held-out pass and 10 episodes x 4 tasks), so the 30
    # jobs of the defaults take ~22 min two at a time.
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3,
                        help="peak learning rate (tiny preset, short runs: 3e-3 trains the critic faster)")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.75, 0.5, 0.25, 0.0], help="PAC alphas (< 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--eval-episodes", type=int, default=10, help="per task")
    parser.add_argument("--filter-fraction", type=float, default=0.25, help="filtered BC's top fraction of episodes")
    parser.add_argument("--parallel", type=int, default=2, help="jobs at once (at most one per core)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="any other TrainConfig field, for every method")
    parser.add_argument("--out", default="results/pac_vs_bc")
    args = parser.parse_args(argv)
    if any(not 0.0 <= a < 1.0 for a in args.alphas):
        parser.error(f"--alphas {args.alphas}: PAC alphas must be in [0, 1) (BC, alpha = 1, always runs)")
    try:
        overrides = dict(map(parse_override, args.set))
    except ValueError as err:
        parser.error(str(err))
    base = TrainConfig(preset=args.preset, dataset=args.dataset, tasks=tuple(args.tasks) if args.tasks else None,
                       steps=1, batch_size=args.batch_size, learning_rate=args.learning_rate,
                       eval_episodes=args.eval_episodes, log_every=max(1, args.steps // 20),
                       # One held-out evaluation, at the end: each costs as much as ~100 updates.
                       valid_every=args.steps, checkpoint_every=max(1, args.steps // 2),
                       ).replace(**overrides)
    summary = run(base, args.steps, args.alphas, args.seeds, args.out, args.filter_fraction, args.parallel)
    for name, m in summary["methods"].items():
        r = m["normalized_return"]
        print(f"{name:14s} normalized return {r['mean']:.3f}  95% CI [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]")
    if summary["difference"]:
        d = summary["difference"]
        print(f"{d['comparison']}: {d['mean']:+.3f}  95% CI [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
    print(f"wrote {Path(args.out) / 'summary.json'} and pac_vs_bc.png in {summary['setup']['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
