"""Training throughput of the real learner on a real dataset: updates/s, examples/s,
achieved FLOP/s (analytic count), MFU against a peak, and the fraction of step time the
learner waited for data. Compilation is excluded (timing starts after the first update).

    python -m benchmarks.train_throughput --dataset results/data/demo --presets tiny 250k \
        --batch-size 64 --steps 200 [--dtype bfloat16] [--peak-tflops 989]

Prints one row per preset and appends them to OUT (default
benchmarks/results/train_throughput.csv) with the machine named.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import jax
import pandas as pd

from harness.config import TrainConfig
from harness.train import train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="results/data/demo")
    parser.add_argument("--presets", nargs="+", default=["tiny", "250k"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--peak-tflops", type=float, default=None, help="for MFU, e.g. 989 (H100 bf16 dense)")
    parser.add_argument("--out", default="benchmarks/results/train_throughput.csv")
    args = parser.parse_args()

    device = jax.devices()[0]
    machine = f"{device.platform}:{getattr(device, 'device_kind', '')} x{jax.device_count()} ({platform.node()}, {os.cpu_count()} cores)"
    rows = []
    for preset in args.presets:
        config = TrainConfig(preset=preset, dataset=args.dataset, steps=args.steps, batch_size=args.batch_size,
                             compute_dtype=args.dtype, eval_episodes=0, log_every=max(args.steps // 4, 1),
                             valid_every=args.steps, checkpoint_every=args.steps, valid_examples_per_task=256, valid_batch_size=64)
        with tempfile.TemporaryDirectory() as run_dir:
            result = train(config, run_dir, progress=False)
        t = result["throughput"]
        row = {"date": time.strftime("%Y-%m-%d"), "machine": machine, "preset": preset, "params": result["params"],
               "batch_size": args.batch_size, "dtype": args.dtype, "updates_per_second": t["updates_per_second"],
               "examples_per_second": t["examples_per_second"],
               "achieved_gflops": t["achieved_flops_per_second"] / 1e9,
               "data_wait_fraction": t["data_wait_fraction"], "flops_per_update": result["flops_per_update"]}
        if args.peak_tflops:
            row["mfu"] = t["achieved_flops_per_second"] / (args.peak_tflops * 1e12)
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, mode="a", header=not out.exists(), index=False)
    print(table.drop(columns=["date", "machine"]).to_string(index=False))
    print(f"machine: {machine}")


if __name__ == "__main__":
    main()
