"""Where a trained run's improvement weights pull the policy: the share of their mass on
each task's top-quarter episodes by return (filtered BC's rule, `sampler.top_episodes`,
over all the task's episodes; filtered BC applies it to the training split's and gives
those all of its weight).

    python -m benchmarks.weight_share results/pac_vs_bc/pac_a0/*/     # its run folders (the / skips grid.json)
    python -m benchmarks.weight_share RUN_DIR --batches 64 --json out.json

For each run folder (policy_improvement 'data_advantage'), the newest checkpoint's
weights over `--batches` batches of the training split, tasks uniformly and transitions
uniformly inside each (as training draws them unless the run set `sample_weighting`): per
task, the weights' share on transitions of the top quarter of that task's episodes
against those transitions' share of the batch (BC's weights are
uniform, so its share equals the transitions' share, about 0.25); and the advantage's two
terms, the data action's value and the baseline V(s): their spreads and correlation; the
task's mean weight; the weights' mass on the first fifth of each episode; and their rank
correlation with the sampler's return-to-go tilt (`sample_weighting`) at the same KL.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from harness import run_folder
from harness.builder import build_job
from harness.checkpointing import Checkpointer
from harness.data import sampler as sampler_lib


def weight_share(run_dir: Path, batches: int = 32, top_fraction: float = 0.25, seed: int = 123) -> dict[str, dict]:
    """Per task: {'weight_share', 'transition_share'} of the top `top_fraction` episodes."""
    config = run_folder.read_config(run_dir)
    if config.policy_improvement != "data_advantage":
        raise ValueError(f"{run_dir}: policy_improvement={config.policy_improvement!r}; this measures 'data_advantage' runs")
    job = build_job(config)
    checkpoints = Checkpointer(run_dir / run_folder.CHECKPOINTS_DIR)
    step = checkpoints.latest_step()
    if step is None:
        raise ValueError(f"{run_dir}: no checkpoint to read the weights of")
    state = checkpoints.restore(step, job.learner.init(config.seed))
    arrays = job.train_sampler.split_arrays()
    top = np.concatenate([
        np.isin(np.arange(t.num_episodes), sampler_lib.top_episodes(t.arrays["episode_returns"], top_fraction))[
            t.transition_episode()]
        for t in job.dataset.tasks])
    task_names = job.dataset.task_names
    # Where in its episode each transition lies (0 = first step), and the sampler's
    # return-to-go tilt at the weights' KL (`sample_weighting` 'return_to_go', as a ratio to
    # uniform): how far the weights are a plain return tilt.
    episode_fraction = np.concatenate([t.transition_step() / t.arrays["episode_lengths"][t.transition_episode()]
                                       for t in job.dataset.tasks])
    tilt = np.zeros(len(arrays.transition))
    for i in range(len(task_names)):
        rows = slice(arrays.split_starts[i], arrays.split_starts[i] + arrays.split_sizes[i])
        tilt[rows] = arrays.split_sizes[i] * sampler_lib.kl_tilted_probabilities(
            arrays.mc_returns[arrays.transition[rows]], config.advantage_kl_epsilon)
    sums = np.zeros((len(task_names), 3))  # weight on top, weight, top transitions / transitions
    values, baselines, tasks, all_weights, tilts, early = [], [], [], [], [], []
    rng = np.random.default_rng(seed)
    for index in range(batches):
        task = rng.integers(0, len(task_names), config.batch_size)
        position = arrays.split_starts[task] + (rng.random(config.batch_size) * arrays.split_sizes[task]).astype(np.int64)
        batch = sampler_lib.gather(arrays, position, task.astype(np.int32))
        weights, sampled_q = map(np.asarray, job.learner.improvement_weights(state, batch, seed=index))
        # The advantage's two terms: the value of the data's action (the Monte-Carlo return
        # or the critic's Q) and the baseline V(s), the mean Q of the policy's samples.
        values.append(batch.mc_return if config.advantage_estimate == "monte_carlo" else sampled_q[:, -1])
        baselines.append(sampled_q[:, :-1].mean(axis=1))
        tasks.append(task)
        all_weights.append(weights)
        tilts.append(tilt[position])
        early.append(episode_fraction[arrays.transition[position]] < 0.2)
        in_top = top[arrays.transition[position]]
        for i in range(len(task_names)):
            rows = task == i
            sums[i] += [weights[rows & in_top].sum(), weights[rows].sum(), in_top[rows].mean() if rows.any() else 0.0]
    values, baselines, tasks, all_weights, tilts, early = map(np.concatenate, (values, baselines, tasks, all_weights,
                                                                            tilts, early))
    out = {}
    for i, (name, s) in enumerate(zip(task_names, sums)):
        rows = tasks == i
        value, baseline, weights = values[rows], baselines[rows], all_weights[rows]
        out[name] = {"weight_share": float(s[0] / s[1]), "transition_share": float(s[2] / batches),
                     # The task's mean weight: one softmax over the batch moves weight
                     # between tasks even with per-task standardized advantages.
                     "task_weight": float(weights.mean()),
                     # The weights' mass on each episode's first fifth (the approach to the
                     # goal) against those transitions' share.
                     "first_fifth_share": float(weights[early[rows]].sum() / weights.sum()),
                     "first_fifth_transition_share": float(early[rows].mean()),
                     "first_fifth_tilt_share": float(tilts[rows][early[rows]].sum() / tilts[rows].sum()),
                     "return_tilt_rank_corr": float(spearmanr(weights, tilts[rows])[0]),
                     # How much of the values' spread the baseline explains: a critic on a
                     # compressed scale leaves most of it to the weights.
                     "value_std": float(value.std()), "baseline_std": float(baseline.std()),
                     "value_baseline_corr": float(np.corrcoef(value, baseline)[0, 1]),
                     "advantage_std": float((value - baseline).std())}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of data_advantage runs")
    parser.add_argument("--batches", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the shares to this file")
    args = parser.parse_args(argv)
    results = {}
    for run_dir in args.runs:
        try:
            results[str(run_dir)] = shares = weight_share(run_dir, args.batches)
        except (ValueError, FileNotFoundError) as err:
            sys.exit(f"error: {err}")
        print(run_dir.name, "  ".join(f"{name}: {s['weight_share']:.2f} (of {s['transition_share']:.2f})"
                                      for name, s in shares.items()), flush=True)
        print("  value std / baseline std / corr / advantage std:", "  ".join(
            f"{name}: {s['value_std']:.1f} / {s['baseline_std']:.1f} / {s['value_baseline_corr']:.2f} / "
            f"{s['advantage_std']:.1f}" for name, s in shares.items()), flush=True)
        print("  task weight / first fifth's share (of; the tilt's) / rank corr. with the return-to-go tilt:", "  ".join(
            f"{name}: {s['task_weight']:.2f} / {s['first_fifth_share']:.2f} ({s['first_fifth_transition_share']:.2f}; "
            f"{s['first_fifth_tilt_share']:.2f}) / "
            f"{s['return_tilt_rank_corr']:.2f}" for name, s in shares.items()), flush=True)
    if len(results) > 1:
        names = next(iter(results.values())).keys()
        mean = {name: float(np.mean([r[name]["weight_share"] for r in results.values()])) for name in names}
        print("mean", "  ".join(f"{name}: {v:.2f}" for name, v in mean.items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
