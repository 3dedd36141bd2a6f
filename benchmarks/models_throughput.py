"""Forward+backward throughput of PAC presets: examples/s and achieved TFLOP/s.

Times the learner's own jitted update (`Learner.update`: target forwards on s with N
sampled actions and on s' with the target actions, online forward+backward on s with the
data action, the optimizer) on one random batch already on the device, so achieved FLOP/s
= analytic FLOPs per update (`harness.update_passes.update_flops`) / seconds per update.
Runs on whatever backend JAX picks (CPU here, GPU later); on a GPU divide by the peak for
MFU. `benchmarks.step_profile` measures the same step per speed variant.

  python -m benchmarks.models_throughput --presets tiny --batch-size 32 --steps 5
  python -m benchmarks.models_throughput --presets 30m,160m --batch-size 512 --dtypes bfloat16
"""

from __future__ import annotations

import argparse
import json
import time

import jax

from harness.builder import build_job
from harness.config import TrainConfig
from harness.data.sampler import random_batch
from models import counts, get_preset


def benchmark(preset: str, dtype: str, batch_size: int, steps: int, num_sampled_actions: int = 20,
              num_target_actions: int = 1, **overrides) -> dict:
    """Times `steps` updates after one compile+warm-up call; returns one result row."""
    config = TrainConfig(preset=preset, steps=steps + 1, batch_size=batch_size, compute_dtype=dtype,
                         num_sampled_actions=num_sampled_actions, num_target_actions=num_target_actions)
    model = get_preset(preset, compute_dtype=dtype, **overrides)
    job = build_job(config, model=model)
    learner = job.learner
    state = learner.init(0)
    batch = learner.shard_batch(random_batch(model, batch_size))

    start = time.perf_counter()
    state = jax.block_until_ready(learner.update(state, batch)[0])
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        state = learner.update(state, batch)[0]
    jax.block_until_ready(state)
    seconds = (time.perf_counter() - start) / steps

    flops = job.plan.flops_per_update
    return {
        "preset": preset,
        "dtype": dtype,
        "device": jax.devices()[0].device_kind,
        "params": counts.param_count(model),
        "batch_size": batch_size,
        "seconds_per_update": seconds,
        "updates_per_s": 1.0 / seconds,
        "examples_per_s": batch_size / seconds,
        "flops_per_update": flops,
        "achieved_tflops": flops / seconds / 1e12,
        "compile_s": compile_s,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny", help="comma-separated preset names")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="compute dtypes to time")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed updates after the warm-up")
    parser.add_argument("--num-sampled-actions", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    for preset in args.presets.split(","):
        for dtype in args.dtypes.split(","):
            row = benchmark(preset.strip(), dtype.strip(), args.batch_size, args.steps, args.num_sampled_actions)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{row['preset']:>6} {row['dtype']:>8} on {row['device']}: params {row['params']:,}, "
                      f"batch {row['batch_size']}: {row['examples_per_s']:,.0f} examples/s "
                      f"({row['seconds_per_update'] * 1e3:.1f} ms/update), {row['achieved_tflops']:.4f} TFLOP/s "
                      f"achieved (analytic), compile {row['compile_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
