"""Parameter counts against the params pytree; analytic forward FLOPs against XLA's cost
analysis (an update's FLOPs: tests/test_update_passes.py)."""

import jax
import numpy as np
import pytest

from models import (
    PRESET_NAMES,
    counts,
    critic_decoder_flops,
    dummy_inputs,
    encoder_flops,
    forward_flops,
    get_preset,
    make_networks,
    non_embedding_param_count,
    param_count,
    policy_decoder_flops,
)

# Leaf names (or module names) that counts.py calls embedding-like.
_EMBEDDING_LEAVES = {
    "value_embedding", "dim_embedding", "embedding", "position_embedding", "latents", "action_queries",
    "critic_queries", "action_value_embedding", "action_dim_embedding",
}
_HEAD_MODULES = ("action_bin_logits", "value_bin_logits")


def _param_shapes(config):
    networks = make_networks(config)
    return jax.eval_shape(networks.init, jax.random.key(0), dummy_inputs(config, 2))


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("tiny", {}),
        ("tiny", dict(max_obs_dim=5, max_action_dim=1, num_tasks=1, num_action_bins=3, num_value_bins=2)),
        ("tiny", dict(obs_value_embedding="linear", max_obs_dim=7)),
        ("tiny", dict(use_images=True, image_size=16, image_stem_channels=8, image_patch_size=2)),
        ("150k", dict(max_obs_dim=67, max_action_dim=21, num_tasks=30, num_critic_queries=3)),
        ("700k", {}),
        ("30m", dict(max_obs_dim=24, max_action_dim=6)),
    ],
)
def test_param_counts_equal_the_pytree(preset, overrides):
    config = get_preset(preset, **overrides)
    shapes = _param_shapes(config)
    total = embedding = 0
    for module, leaves in shapes.items():
        for name, leaf in leaves.items():
            size = int(np.prod(leaf.shape))
            total += size
            if name in _EMBEDDING_LEAVES or module.endswith(_HEAD_MODULES):
                embedding += size
    assert param_count(config) == total
    assert non_embedding_param_count(config) == total - embedding
    assert sum(counts.param_breakdown(config).values()) == total


def test_preset_sizes_span_tests_cpu_grid_and_paper_range():
    sizes = {name: param_count(get_preset(name)) for name in PRESET_NAMES}
    assert 1e4 <= sizes["tiny"] <= 1e5
    assert sum(1e5 <= n < 1e6 for n in sizes.values()) >= 4  # the CPU grid's range
    assert any(2e7 <= n <= 5e7 for n in sizes.values()) and any(5e8 <= n <= 1.5e9 for n in sizes.values())
    ordered = list(sizes.values())
    assert ordered == sorted(ordered)


def test_flop_building_blocks_add_up():
    config = get_preset("150k")
    assert forward_flops(config, 7) == encoder_flops(config) + policy_decoder_flops(config) + critic_decoder_flops(config, 7)
    # The encoder is paid once per state; each extra action costs only a critic query.
    per_action = critic_decoder_flops(config, 2) - critic_decoder_flops(config, 1)
    assert 0 < per_action < encoder_flops(config) / 2
    assert critic_decoder_flops(config, 21) - critic_decoder_flops(config, 1) == 20 * per_action


@pytest.mark.parametrize(
    "preset, overrides, num_actions",
    [
        ("tiny", {}, 20),
        ("tiny", dict(use_images=True, image_size=16, image_stem_channels=8, image_patch_size=2), 1),
        ("150k", dict(num_critic_queries=2), 20),
    ],
)
def test_forward_flops_match_xla_within_10_percent(preset, overrides, num_actions):
    config = get_preset(preset, **overrides)
    analytic = forward_flops(config, num_actions)
    xla = counts.xla_forward_flops(config, batch_size=4, num_actions=num_actions)
    assert 0.9 <= xla / analytic <= 1.1, (xla, analytic)
