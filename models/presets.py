"""Named PAC sizes, from CPU test models to the paper's range (tens of millions to ~1B).

A preset fixes the trunk's shape only: width, token width, latents, blocks, heads and MLP
ratio. Data shapes (max_obs_dim, max_action_dim, num_tasks) and everything else come from
PACConfig's defaults or from overrides, so the same preset can match any dataset.

Names are the nominal total parameter count at PACConfig's default data shapes; the exact
count for a given dataset is `models.counts.param_count(config)` (`pac models` prints it).
Shapes follow params ~ 12 * (num_blocks + 3) * width^2 (M self-attention blocks plus the
encoder cross-attention and two decoders, MLP ratio 4), with head width 16 on the CPU
sizes, 32 on the medium ones and 64-128 in the paper's range, and latents growing with
width. CPU grids should stay at or below '700k' (stack.md: 5.6M params take 1.4 s per
update at batch 64 on these CPUs).
"""

from __future__ import annotations

from typing import Any

from models.config import PACConfig

# name: (width, token_width, num_latents, num_blocks, num_heads, mlp_ratio)
_SHAPES: dict[str, tuple[int, int, int, int, int, int]] = {
    # CPU demo grid (well under 1M params), in size order with 'tiny'. The sizes below 150k
    # exist because on the demo data every budget a CPU can afford (1e10-1e12 FLOPs) has its
    # optimum below 150k (issue 13). Their analytic FLOPs undercount XLA's (elementwise work
    # is a larger share at width 16-40); the isoFLOP fits use the analytic count throughout,
    # as language-model studies use 6ND.
    "7k": (8, 8, 8, 1, 1, 4),
    "12k": (12, 12, 8, 1, 1, 4),
    "19k": (16, 16, 8, 1, 2, 4),
    "37k": (24, 24, 8, 1, 3, 4),
    "62k": (32, 32, 8, 1, 4, 4),
    # CPU tests: the smallest shape whose analytic FLOPs stay within 10% of XLA's count
    # (at width 32 elementwise work, which the analytic count ignores, is ~12% of XLA's).
    "tiny": (48, 32, 8, 1, 2, 2),
    "130k": (48, 48, 8, 1, 6, 4),
    "150k": (48, 48, 16, 2, 3, 4),
    "220k": (64, 64, 8, 1, 8, 4),
    "250k": (64, 64, 16, 2, 4, 4),
    "400k": (80, 80, 16, 2, 5, 4),
    "700k": (96, 96, 16, 3, 6, 4),
    # Medium: larger CPU runs, small accelerator runs.
    "1.5m": (128, 128, 32, 4, 4, 4),
    "3m": (160, 160, 32, 6, 5, 4),
    "6m": (224, 224, 32, 7, 7, 4),
    "12m": (320, 320, 64, 7, 5, 4),
    # The paper's range (accelerators; bfloat16 compute).
    "30m": (512, 512, 64, 7, 8, 4),
    "80m": (768, 768, 128, 8, 12, 4),
    "160m": (1024, 1024, 128, 10, 16, 4),
    "400m": (1536, 1536, 256, 11, 12, 4),
    "1b": (2048, 2048, 256, 18, 16, 4),
}

PRESET_NAMES: tuple[str, ...] = tuple(_SHAPES)


def get_preset(name: str, **overrides: Any) -> PACConfig:
    """The validated PACConfig of preset `name`, with any PACConfig fields overridden.

    Raises a one-line ValueError for an unknown preset, an unknown field or a bad value.
    """
    if name not in _SHAPES:
        raise ValueError(f"unknown model preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}")
    width, token_width, num_latents, num_blocks, num_heads, mlp_ratio = _SHAPES[name]
    config = PACConfig(
        width=width,
        token_width=token_width,
        num_latents=num_latents,
        num_blocks=num_blocks,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
    )
    return config.replace(**overrides).validate()
