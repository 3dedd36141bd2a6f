"""Does the data carry a law? One BC run's held-out curve, and the held-out loss's noise.

Trains one BC (alpha = 1) run with frequent held-out evaluations, then evaluates its
final params on `--samples` independent fixed samples of the held-out split (each
`valid_examples_per_task` transitions per task). Reports the curve (is the loss still
falling at the end, or does the model exhaust the data?) and the spread of the held-out
loss across samples next to the standard error each evaluation reports.

    python -m benchmarks.heldout_loss --dataset results/data/demo --preset 700k \
        --steps 1540 --batch-size 32 --valid-every 220 --out /tmp/heldout
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from harness import heldout
from harness.builder import build_job
from harness.checkpointing import Checkpointer
from harness.config import TrainConfig
from harness.learner import host_local
from harness.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="results/data/demo")
    parser.add_argument("--preset", default="700k")
    parser.add_argument("--steps", type=int, default=1540)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--valid-every", type=int, default=220)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/heldout_loss")
    args = parser.parse_args()

    config = TrainConfig(preset=args.preset, dataset=args.dataset, steps=args.steps, batch_size=args.batch_size,
                         alpha=1.0, learning_rate=args.learning_rate, valid_every=args.valid_every,
                         checkpoint_every=args.steps, log_every=max(1, args.valid_every // 2), eval_episodes=0,
                         seed=args.seed)
    out = Path(args.out)
    result = train(config, out)
    curve = pd.read_csv(out / "metrics.csv")
    valid = curve[curve["split"] == "valid"][["step", "bc_loss", "bc_loss_per_dim", "bc_loss_stderr"]]
    print(valid.to_string(index=False))

    job = build_job(config)
    learner = job.learner
    checkpointer = Checkpointer(out / "checkpoints")
    state = checkpointer.restore(checkpointer.latest_step(), learner.init(config.seed))
    checkpointer.close()
    evaluations = []
    for sample in range(args.samples):
        held = heldout.HeldOutSet(job.valid_sampler, config.valid_examples_per_task, config.valid_batch_size,
                                  place=learner.shard_batch, sample=sample)
        metrics = held.evaluate(lambda b: host_local(learner.validation_metrics(state, b)))
        evaluations.append({"sample": sample, "bc_loss": metrics["bc_loss"], "bc_loss_stderr": metrics["bc_loss_stderr"],
                            "bc_loss_per_dim": metrics["bc_loss_per_dim"], "examples": held.examples})
    table = pd.DataFrame(evaluations)
    print(table.to_string(index=False))
    losses = table["bc_loss"].to_numpy()
    summary = {
        "preset": args.preset, "steps": args.steps, "batch_size": args.batch_size,
        "valid_curve": valid.to_dict(orient="records"),
        "still_falling_at_end": bool(valid["bc_loss"].iloc[-1] < valid["bc_loss"].iloc[-2]),
        "best_step": int(valid["step"].iloc[int(np.argmin(valid["bc_loss"]))]),
        "samples": evaluations,
        "std_across_samples": float(losses.std(ddof=1)) if len(losses) > 1 else None,
        "mean_reported_stderr": float(table["bc_loss_stderr"].mean()),
        "updates_per_second": result["throughput"]["updates_per_second"],
        "device": jax.devices()[0].platform,
    }
    (out / "heldout_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("valid_curve", "samples")}, indent=2))


if __name__ == "__main__":
    main()
