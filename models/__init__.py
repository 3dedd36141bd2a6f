"""PAC networks (Haiku), size presets, parameter/FLOP counts and discretization helpers.

Imports nothing else of the project (design.md section 7). The training job uses:

  config = get_preset("250k", max_obs_dim=..., max_action_dim=..., num_tasks=...)
  networks = make_networks(config)            # init / encode / policy_logits / q_logits / apply
  params = networks.init(rng, dummy_inputs(config, batch_size=1))
  forward_flops(config, num_actions)          # analytic FLOPs of one forward pass per example
"""

from models.config import PACConfig
from models.counts import (
    critic_decoder_flops,
    encoder_flops,
    forward_flops,
    non_embedding_param_count,
    param_breakdown,
    param_count,
    policy_decoder_flops,
)
from models.discretization import (
    action_bin_centers,
    action_to_bin,
    bin_to_action,
    categorical_mean,
    categorical_projection,
    value_support,
)
from models.networks import PACInputs, PACNetworks, PACOutputs, dummy_inputs, make_networks
from models.presets import PRESET_NAMES, get_preset

__all__ = [
    "PACConfig",
    "PACInputs",
    "PACNetworks",
    "PACOutputs",
    "PRESET_NAMES",
    "action_bin_centers",
    "action_to_bin",
    "bin_to_action",
    "categorical_mean",
    "categorical_projection",
    "critic_decoder_flops",
    "dummy_inputs",
    "encoder_flops",
    "forward_flops",
    "get_preset",
    "make_networks",
    "non_embedding_param_count",
    "param_breakdown",
    "param_count",
    "policy_decoder_flops",
    "value_support",
]
