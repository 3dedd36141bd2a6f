"""Training throughput of the real training loop (`harness.train.train`) on a real
dataset, the loop before and after its speed work side by side in one run: updates/s,
examples/s, achieved FLOP/s (analytic count), MFU against a named peak, and the fraction
of training time the learner waited for data.

    python -m benchmarks.train_throughput --dataset results/data/demo --presets tiny 250k \
        --batch-size 64 --steps 2000 [--dtype bfloat16] [--peak-tflops 989]

Loops: 'before' = a host thread samples every batch, one update a dispatch, Gumbel action
draws, two target encodes, no donation (the loop as it was); 'after' = TrainConfig's
defaults (the split on the device, updates_per_dispatch updates a dispatch). Rates are
result.json's steady-state figures: from the end of the first (compiling) dispatch, with
validation and checkpoint saves taken out of the window. Rows are appended to OUT
(default benchmarks/results/train_throughput.csv) with the machine named.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.step_profile import BASELINE, default_peak_tflops, machine_name
from harness.config import TrainConfig
from harness.train import train
from models.helpers import write_atomic

LOOPS = {"before": {**BASELINE, "data_on_device": False}, "after": {}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="results/data/demo")
    parser.add_argument("--presets", nargs="+", default=["tiny", "250k"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="for MFU; default by device kind (H100/H200 bf16 dense: 989), none on a CPU")
    parser.add_argument("--loops", nargs="+", default=["before", "after"], choices=list(LOOPS))
    parser.add_argument("--out", default="benchmarks/results/train_throughput.csv")
    args = parser.parse_args()

    machine = machine_name()
    peak = args.peak_tflops or default_peak_tflops()
    rows = []
    for preset, loop in itertools.product(args.presets, args.loops):
        config = TrainConfig(preset=preset, dataset=args.dataset, steps=args.steps, batch_size=args.batch_size,
                             compute_dtype=args.dtype, eval_episodes=0, log_every=max(args.steps // 4, 1),
                             valid_every=args.steps // 2, checkpoint_every=args.steps // 2, valid_examples_per_task=256,
                             valid_batch_size=64, **LOOPS[loop])
        with tempfile.TemporaryDirectory() as run_dir:
            result = train(config, run_dir, progress=False)
        t = result["throughput"]
        row = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "preset": preset, "loop": loop,
               "params": result["params"], "batch_size": args.batch_size, "dtype": args.dtype,
               "updates_per_second": t["updates_per_second"],
               "examples_per_second": t["examples_per_second"],
               "achieved_gflops": t["achieved_flops_per_second"] / 1e9,
               "data_wait_fraction": t["data_wait_fraction"], "flops_per_update": result["flops_per_update"]}
        if peak:
            row["mfu"] = t["achieved_flops_per_second"] / (peak * 1e12)
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    if set(args.loops) >= {"before", "after"}:
        rates = table.pivot(index="preset", columns="loop", values="updates_per_second")
        print((rates["after"] / rates["before"]).rename("after / before").to_string())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # keep earlier rows, whatever columns they had
        table = pd.concat([pd.read_csv(out), table], ignore_index=True)
    write_atomic(out, table.to_csv(index=False))
    print(table.drop(columns=["date", "machine"]).to_string(index=False))
    print(f"machine: {machine}")


if __name__ == "__main__":
    main()
