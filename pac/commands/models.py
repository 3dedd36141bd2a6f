"""`pac models`: the PAC size presets with exact parameter counts and analytic FLOPs.

Parameters and forward FLOPs come from models/counts.py, FLOPs per update from
harness/update_passes.py: the same functions the launcher uses to turn a FLOP budget into
steps. `--xla` adds XLA's compiled cost analysis of the learner's own update (CPU backend,
abstract shapes: nothing is allocated, some seconds of compilation a preset) and its ratio
to the analytic count; XLA also counts elementwise work (losses, action sampling, the
optimizer), which the analytic count ignores, so the ratio is above 1, most for narrow models.
"""

from __future__ import annotations

import argparse
import json
import sys

# Batch size of the FLOPs/update column unless --batch-size says otherwise.
DEFAULT_BATCH_SIZE = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", default="all",
                        help="comma-separated preset names, or 'all' (default)")
    parser.add_argument("--obs-dim", type=int, default=None,
                        help="max observation dims of the dataset (default: PACConfig's)")
    parser.add_argument("--action-dim", type=int, default=None,
                        help="max action dims of the dataset (default: PACConfig's)")
    parser.add_argument("--num-tasks", type=int, default=None,
                        help="number of tasks in the dataset (default: PACConfig's)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"batch size of the FLOPs/update column (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--num-sampled-actions", type=int, default=20,
                        help="policy samples per state for the improvement weights (default 20)")
    parser.add_argument("--num-target-actions", type=int, default=1,
                        help="policy samples per next state for the TD target (default 1)")
    parser.add_argument("--xla", action="store_true",
                        help="also compile one update on the CPU and report XLA's FLOP count")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")


def _positive(name: str, value: int) -> int:
    if value <= 0:
        raise ValueError(f"--{name} must be a positive integer, got {value}")
    return value


def _rows(args: argparse.Namespace) -> list[dict]:
    from harness.builder import build_job, learner_hyperparams
    from harness.config import TrainConfig
    from harness.update_passes import update_flops, xla_update_flops
    from models import counts
    from models.presets import PRESET_NAMES, get_preset

    overrides = {}
    for flag, field in (("obs_dim", "max_obs_dim"), ("action_dim", "max_action_dim"), ("num_tasks", "num_tasks")):
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = _positive(flag.replace("_", "-"), value)
    batch = _positive("batch-size", args.batch_size)
    sampled = _positive("num-sampled-actions", args.num_sampled_actions)
    target = _positive("num-target-actions", args.num_target_actions)
    names = list(PRESET_NAMES) if args.presets == "all" else [n.strip() for n in args.presets.split(",") if n.strip()]
    configs = [(name, get_preset(name, **overrides)) for name in names]  # fail before any work
    train_config = TrainConfig(steps=1, batch_size=batch, num_sampled_actions=sampled, num_target_actions=target)

    rows = []
    for name, config in configs:
        row = {
            "preset": name,
            "width": config.width,
            "num_latents": config.num_latents,
            "num_blocks": config.num_blocks,
            "num_heads": config.num_heads,
            "params": counts.param_count(config),
            "non_embedding_params": counts.non_embedding_param_count(config),
            "forward_flops_per_example": counts.forward_flops(config, 1),
            "batch_size": batch,
            "train_flops_per_update": update_flops(config, learner_hyperparams(train_config)),
        }
        if args.xla:
            xla = xla_update_flops(build_job(train_config, model=config).learner)
            row["xla_train_flops_per_update"] = xla
            row["xla_ratio"] = xla / row["train_flops_per_update"]
        rows.append(row)
        if args.json:  # stream: the XLA column takes seconds a preset
            print(json.dumps(row), flush=True)
    return rows


def _format_table(rows: list[dict], xla: bool) -> str:
    header = ["preset", "d", "L", "M", "H", "params", "non-emb params", "FLOPs/example fwd",
              f"FLOPs/update (b={rows[0]['batch_size']})" if rows else "FLOPs/update"]
    if xla:
        header += ["XLA FLOPs/update", "XLA/analytic"]
    lines = []
    for r in rows:
        cells = [r["preset"], str(r["width"]), str(r["num_latents"]), str(r["num_blocks"]), str(r["num_heads"]),
                 f"{r['params']:,}", f"{r['non_embedding_params']:,}", f"{r['forward_flops_per_example']:.3e}",
                 f"{r['train_flops_per_update']:.3e}"]
        if xla:
            cells += [f"{r['xla_train_flops_per_update']:.3e}", f"{r['xla_ratio']:.3f}"]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines])


def run(args: argparse.Namespace) -> int:
    rows = _rows(args)
    if not args.json:
        print(_format_table(rows, args.xla))
        print("FLOPs: matmuls only (2mnk); forward = encoder + policy + critic for 1 action; update = "
              f"3x online forward + target forwards with {args.num_sampled_actions} and "
              f"{args.num_target_actions} actions (harness/update_passes.py).", file=sys.stdout)
    return 0
