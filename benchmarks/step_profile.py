"""The training step on an accelerator: MFU per preset and speed variant, where its time
goes, and how large a batch fits.

    python -m benchmarks.step_profile --presets 1.5m 30m 160m --batch-size 512 \
        --dtype bfloat16 --variants baseline all --out benchmarks/results/step_profile

Times `Learner.update` (the real jitted PAC step) on one synthetic batch already on the
device, so the window holds the step alone: no compilation (the first calls are outside
it), no input pipeline, no validation, no checkpoint. MFU = analytic FLOPs per update
(`harness.update_passes.update_flops`) x updates/s / the device's peak (`--peak-tflops`;
by default 989 TFLOP/s, the bf16 dense peak of an H100 or H200 SXM, and none on a CPU).

Variants are TrainConfig speed settings, all the same math (tests/test_step_variants.py):
  baseline   the step before these settings existed (einsum attention, two target
             encoder calls, no donation, Gumbel action draws, one update per dispatch)
  defaults   TrainConfig's defaults now (merged, donate, icdf; einsum attention)
  xla        attention by jax.nn.dot_product_attention's XLA version
  cudnn      attention by cuDNN's flash kernel (GPU, bfloat16)
  merged     one target encoder call on [s; s']
  donate     the state's buffers donated to the update
  icdf       actions drawn by inverse CDF (the same distribution, K times fewer random bits)
  all        merged + donate + icdf + the best attention kernel that compiled (cudnn, else xla)
  chunkK     'all' with K updates per dispatch (lax.scan), e.g. chunk8
  packC      'all', C cells of one preset as one vmapped program, e.g. pack8 (reports
             the cells' updates/s together)

`--passes` times the step's parts apart for the baseline (target encoder, policy and
critic heads, the online forward+backward, the optimizer), `--trace` writes a
jax.profiler trace of a few baseline steps, `--max-batch` reads XLA's memory plan at two
batch sizes and solves for the largest batch that fits the device, then runs it once.
Rows go to OUT/rows.jsonl as they are measured (a stage cut short loses only itself).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import traceback
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from harness.builder import build_job, run_constants
from harness.config import TrainConfig
from harness.data.sampler import random_batch
from models import counts, presets
from models.networks import PACInputs

# bf16 dense peak of the SXM parts (NVIDIA's data sheets): H100 and H200 share it.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
# The step before the speed settings existed; each variant turns settings on.
BASELINE = {"attention": "einsum", "merge_target_encodes": False, "donate_state": False, "action_sampling": "gumbel"}
SPEED_VARIANTS = {
    "baseline": BASELINE,
    "xla": {**BASELINE, "attention": "xla"},
    "cudnn": {**BASELINE, "attention": "cudnn"},
    "merged": {**BASELINE, "merge_target_encodes": True},
    "donate": {**BASELINE, "donate_state": True},
    "icdf": {**BASELINE, "action_sampling": "inverse_cdf"},
    "defaults": {},  # TrainConfig's defaults as they are now
}

ALL_SETTINGS = {"merge_target_encodes": True, "donate_state": True, "action_sampling": "inverse_cdf"}


def default_peak_tflops() -> float | None:
    kind = jax.devices()[0].device_kind
    return next((peak for name, peak in PEAK_TFLOPS.items() if name in kind), None)


def machine_name() -> str:
    device = jax.devices()[0]
    return f"{device.platform}:{device.device_kind} x{jax.device_count()} ({platform.node()}, {os.cpu_count()} cores)"


# The model's padded data shapes (max_obs_dim, max_action_dim, num_tasks); `--shapes`.
DATA_SHAPES = {"max_obs_dim": 32, "max_action_dim": 8, "num_tasks": 8}


def build(preset: str, batch_size: int, dtype: str, overrides: dict[str, Any]):
    config = TrainConfig(preset=preset, steps=1000, batch_size=batch_size, compute_dtype=dtype).replace(**overrides)
    model = presets.get_preset(preset, compute_dtype=dtype, attention=config.attention, **DATA_SHAPES,
                               v_max=1.0 / (1.0 - config.discount))
    job = build_job(config, model=model)
    return config, model, job.learner, job.plan.flops_per_update


def _time(call, state, steps: int) -> tuple[Any, float]:
    """Runs `call` twice untimed (compile, then one steady call), then `steps` timed calls."""
    for _ in range(2):
        state = call(state)
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(steps):
        state = call(state)
    jax.block_until_ready(state)
    return state, time.perf_counter() - start


def measure(preset: str, variant: str, overrides: dict[str, Any], batch_size: int, dtype: str, steps: int,
            peak: float | None, chunk: int = 1, cells: int = 1) -> dict[str, Any]:
    config, model, learner, flops = build(preset, batch_size, dtype, overrides)
    batch = random_batch(model, batch_size)
    compile_start = time.perf_counter()
    if cells > 1:
        # C cells of one preset in one program: states, batches and run constants (alpha,
        # seed) get a leading cell axis.
        stack = lambda trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)  # noqa: E731
        state = stack([learner.init(seed) for seed in range(cells)])
        consts = stack([run_constants(config.replace(seed=s, alpha=0.5 + 0.5 * (s % 2)), 1000) for s in range(cells)])
        batches = jax.device_put(stack([random_batch(model, batch_size, s) for s in range(cells)]))
        packed = jax.jit(jax.vmap(learner.step_fn), donate_argnums=(0,) if config.donate_state else ())
        call = lambda s: packed(s, batches, consts)[0]  # noqa: E731
    elif chunk > 1:
        batches = jax.device_put(jax.tree.map(lambda x: np.stack([x] * chunk), batch))
        state = learner.init(0)
        call = lambda s: learner.update_chunk(s, batches)[0]  # noqa: E731
    else:
        device_batch = learner.shard_batch(batch)
        state = learner.init(0)
        call = lambda s: learner.update(s, device_batch)[0]  # noqa: E731
    state = call(state)
    jax.block_until_ready(state)
    compile_s = time.perf_counter() - compile_start
    dispatches = max(steps // chunk, 1)
    state, seconds = _time(call, state, dispatches)
    updates = dispatches * chunk * cells
    row = {"preset": preset, "variant": variant, "params": counts.param_count(model), "batch_size": batch_size,
           "dtype": dtype, "cells": cells, "updates_per_dispatch": chunk, "updates": updates, "seconds": seconds,
           "updates_per_second": updates / seconds, "ms_per_update": 1e3 * seconds / updates,
           "flops_per_update": flops, "achieved_tflops": flops * updates / seconds / 1e12, "compile_s": compile_s}
    if peak:
        row["mfu"] = row["achieved_tflops"] / peak
    return row


def pass_times(preset: str, batch_size: int, dtype: str, steps: int) -> dict[str, float]:
    """Milliseconds of the baseline step's parts, each jitted and timed on its own."""
    config, model, learner, _ = build(preset, batch_size, dtype, BASELINE)
    net = learner.networks
    state = learner.init(0)
    batch = learner.shard_batch(random_batch(model, batch_size))
    inputs = PACInputs(batch.observation, batch.observation_mask, batch.task_id, batch.action_mask)
    latents = jax.jit(net.encode)(state.params, inputs)
    actions = jnp.broadcast_to(batch.action[:, None], (batch_size, config.num_sampled_actions, model.max_action_dim))
    key = jax.random.key(0)

    def online_loss(params, inputs, action):
        z = net.encode(params, inputs)
        return jnp.mean(net.policy_logits(params, z)) + jnp.mean(net.q_logits(params, z, action[:, None], inputs.action_mask))

    optimizer = optax.adamw(1.0)
    opt_state = optimizer.init(state.params)

    def optimizer_step(params, opt_state):
        updates, _ = optimizer.update(params, opt_state, params)
        new = optax.apply_updates(params, updates)
        return jax.tree.map(lambda n, o: 0.995 * o + 0.005 * n, new, params)

    # Every input is an argument: a jitted function of no arguments would be folded to a
    # constant at compile time and time nothing.
    p, tp = state.params, state.target_params
    parts = {
        "full_step": (lambda s, b: learner.step_fn(s, b, learner.constants), (state, batch)),
        "target_passes (2 encodes, heads, N critic queries)": (
            lambda t, b, k: learner._target_passes(t, b, k), (tp, batch, key)),
        "encode_forward (B)": (net.encode, (p, inputs)),
        "policy_head_forward": (net.policy_logits, (p, latents)),
        f"critic_head_forward (N={config.num_sampled_actions})": (net.q_logits, (p, latents, actions, batch.action_mask)),
        "online_forward_backward": (jax.grad(online_loss), (p, inputs, batch.action)),
        "optimizer_and_polyak": (optimizer_step, (p, opt_state)),
    }
    times = {}
    for name, (fn, fn_args) in parts.items():
        jitted = jax.jit(fn)
        jax.block_until_ready(jitted(*fn_args))
        jax.block_until_ready(jitted(*fn_args))
        start = time.perf_counter()
        for _ in range(steps):
            out = jitted(*fn_args)
        jax.block_until_ready(out)
        times[name] = 1e3 * (time.perf_counter() - start) / steps
    return times


def trace(preset: str, batch_size: int, dtype: str, directory: Path, steps: int = 5) -> None:
    _, model, learner, _ = build(preset, batch_size, dtype, BASELINE)
    state, batch = learner.init(0), learner.shard_batch(random_batch(model, batch_size))
    state = jax.block_until_ready(learner.update(state, batch)[0])
    with jax.profiler.trace(str(directory)):
        for _ in range(steps):
            state = learner.update(state, batch)[0]
        jax.block_until_ready(state)


def peak_bytes(preset: str, batch_size: int, dtype: str, overrides: dict[str, Any]) -> int:
    """Device bytes XLA plans for one update at this batch (arguments, outputs, temps)."""
    _, model, learner, _ = build(preset, batch_size, dtype, overrides)
    state = jax.eval_shape(lambda: learner.init(0))
    batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), random_batch(model, batch_size))
    memory = learner._update_jit.lower(state, batch, learner.constants).compile().memory_analysis()
    return int(memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes
               - memory.alias_size_in_bytes)


def max_batch(preset: str, dtype: str, overrides: dict[str, Any], sizes: tuple[int, int], multiple: int = 64) -> dict:
    """The largest batch (a multiple of `multiple`) whose planned memory fits the device:
    memory is linear in the batch, so two compiled plans give it; one run checks it."""
    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" not in stats:
        raise ValueError(f"{jax.devices()[0].device_kind} reports no memory limit (max batch needs an accelerator)")
    limit = stats["bytes_limit"]
    small, large = (peak_bytes(preset, b, dtype, overrides) for b in sizes)
    per_example = (large - small) / (sizes[1] - sizes[0])
    fixed = small - per_example * sizes[0]
    predicted = int((limit - fixed) / per_example) // multiple * multiple
    row = {"preset": preset, "overrides": overrides, "bytes_limit": limit, "fixed_bytes": fixed,
           "bytes_per_example": per_example, "predicted_max_batch": predicted,
           "h100_80gb_max_batch": int((79.6e9 - fixed) / per_example) // multiple * multiple}
    try:
        run = measure(preset, "max_batch", overrides, predicted, dtype, steps=3, peak=default_peak_tflops())
        row.update(ran=True, mfu_at_max=run.get("mfu"), updates_per_second_at_max=run["updates_per_second"])
    except Exception as error:  # noqa: BLE001 - an out-of-memory run is a result here
        row.update(ran=False, error=str(error).splitlines()[0][:300])
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=["tiny"])
    parser.add_argument("--variants", nargs="+", default=["baseline", "all"])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--pack-batch-size", type=int, default=256, help="per-cell batch of the packC variants")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--steps", type=int, default=20, help="timed updates per variant")
    parser.add_argument("--peak-tflops", type=float, default=None, help="default: by device kind (H100/H200: 989)")
    parser.add_argument("--passes", nargs="*", default=[], help="presets whose step parts are timed apart")
    parser.add_argument("--trace", nargs="*", default=[], help="presets to trace with jax.profiler")
    parser.add_argument("--max-batch", nargs="*", default=[], help="PRESET:SMALL:LARGE, e.g. 160m:512:1024")
    parser.add_argument("--shapes", type=int, nargs=3, metavar=("OBS", "ACT", "TASKS"), default=None,
                        help="padded data shapes (default 32 8 8; the demo data's are 8 2 4)")
    parser.add_argument("--all-attention", default="auto", choices=["auto", "xla", "einsum"],
                        help="attention of 'all' and its kin (auto: cuDNN where it compiles, else xla)")
    parser.add_argument("--deadline", type=float, default=None, help="seconds; later stages are skipped")
    parser.add_argument("--out", default="benchmarks/results/step_profile")
    args = parser.parse_args(argv)

    if args.shapes:
        DATA_SHAPES.update(zip(("max_obs_dim", "max_action_dim", "num_tasks"), args.shapes))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    peak = args.peak_tflops or default_peak_tflops()
    began = time.perf_counter()
    header = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_name(), "jax": jax.__version__,
              "peak_tflops": peak, "xla_flags": os.environ.get("XLA_FLAGS", "")}
    print(json.dumps(header), flush=True)
    rows_file = (out / "rows.jsonl").open("a")

    def record(row: dict) -> None:
        row = {**header, **row}
        rows_file.write(json.dumps(row) + "\n")
        rows_file.flush()
        print(json.dumps(row), flush=True)

    def time_left() -> bool:
        return args.deadline is None or time.perf_counter() - began < args.deadline

    working_attention = {"cudnn": None}
    for preset in args.presets:
        for variant in args.variants:
            if not time_left():
                record({"preset": preset, "variant": variant, "skipped": "deadline"})
                continue
            settings, chunk, cells, batch = dict(SPEED_VARIANTS.get(variant, {})), 1, 1, args.batch_size
            if variant == "all" or variant.startswith(("chunk", "pack")):
                attention = "cudnn" if working_attention["cudnn"] is not False and jax.default_backend() == "gpu" else "xla"
                if args.all_attention != "auto":
                    attention = args.all_attention
                settings = {"attention": attention, **ALL_SETTINGS}
                if variant.startswith("chunk"):
                    chunk = int(variant[5:])
                if variant.startswith("pack"):
                    cells, batch = int(variant[4:]), args.pack_batch_size
            elif variant not in SPEED_VARIANTS:
                raise SystemExit(f"unknown variant {variant!r}; allowed: {', '.join(SPEED_VARIANTS)}, all, chunkK, packC")
            while True:
                try:
                    record(measure(preset, variant, settings, batch, args.dtype, args.steps, peak, chunk, cells)
                           | {"settings": settings})
                    if settings.get("attention") == "cudnn":
                        working_attention["cudnn"] = True
                    break
                except Exception as error:  # noqa: BLE001 - a variant that fails is reported, the rest go on
                    record({"preset": preset, "variant": variant, "settings": settings,
                            "error": "".join(traceback.format_exception_only(error)).strip()[:500]})
                    if settings.get("attention") != "cudnn":
                        break
                    working_attention["cudnn"] = False
                    if variant == "cudnn":
                        break
                    settings["attention"] = "xla"  # 'all' and friends go on without cuDNN
    for preset in args.passes:
        if time_left():
            record({"preset": preset, "passes_ms": pass_times(preset, args.batch_size, args.dtype, args.steps)})
    for preset in args.trace:
        if time_left():
            trace(preset, args.batch_size, args.dtype, out / f"trace_{preset}")
            record({"preset": preset, "trace": str(out / f"trace_{preset}")})
    for spec in args.max_batch:
        if time_left():
            preset, small, large = spec.split(":")
            attention = "cudnn" if working_attention["cudnn"] else "xla"
            if args.all_attention != "auto":
                attention = args.all_attention
            overrides = {"attention": attention, **ALL_SETTINGS}
            try:
                record({"max_batch": max_batch(preset, args.dtype, overrides, (int(small), int(large)))})
            except Exception as error:  # noqa: BLE001
                record({"max_batch": {"preset": preset, "error": str(error).splitlines()[0][:300]}})
    rows_file.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
