"""Exact parameter counts and analytic FLOP counts of the PAC network, from its config alone.

Parameters
----------
`param_count` is exact: it equals the number of scalars in the initialized params pytree
(checked in tests/test_models_counts.py). `non_embedding_param_count` excludes the
"embedding-like" parameters, i.e. those that are looked up or added per input identity, or
that map the trunk to an output vocabulary, rather than applied to every token's features:
  - input embeddings: proprio value/dimension embeddings, task table, image patch positions;
  - learned arrays that seed the trunk: the latent array, the policy's action queries and
    the critic's queries;
  - the critic's action value/dimension embeddings;
  - the output heads: action-bin logits and value-bin logits (weights and biases).
Everything else (attention projections, MLPs, LayerNorms, image stem convolutions and the
patch projection) is non-embedding. This follows Kaplan et al. (2020), who exclude token,
position and unembedding tables; N in the scaling-law fits is this count.

FLOPs
-----
Matmul and convolution FLOPs only: a [m, k] x [k, n] product costs 2*m*n*k (a multiply and
an add), attention costs 2*Tq*Tk*d for the scores plus 2*Tq*Tk*d for mixing the values
(summed over heads). Elementwise work (biases, LayerNorm, softmax, GELU, residual adds,
embedding adds and lookups) is ignored: it is O(tokens * width) against O(tokens * width^2)
for the matmuls, and XLA's CPU cost analysis, which does count it, stays within 10% of this
count on the presets (see `xla_forward_flops` and the tests).

Counts are per example (one state) and per module forward pass; the critic decoder is
counted for `num_actions` candidate actions of that state. The key/value projections of
the latents in each decoder are computed once per state, whatever the number of actions.
Which modules one training update runs, forward and backward, is the learner's business:
`harness.update_passes` counts an update from these per-module numbers.
"""

from __future__ import annotations

from typing import Any

from models.config import PACConfig

# ------------------------------------------------------------------------------ params


def _dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _norm(n: int) -> int:
    return 2 * n


def _mlp(width: int, ratio: int) -> int:
    return _dense(width, ratio * width) + _dense(ratio * width, width)


def _attention(query_width: int, kv_width: int, width: int) -> int:
    return _dense(query_width, width) + 2 * _dense(kv_width, width) + _dense(width, query_width)


def _cross_attention(query_width: int, kv_width: int, width: int, ratio: int) -> int:
    return (_norm(query_width) + _norm(kv_width) + _attention(query_width, kv_width, width)
            + _norm(query_width) + _mlp(query_width, ratio))


def _self_attention(width: int, ratio: int) -> int:
    return _norm(width) + _attention(width, width, width) + _norm(width) + _mlp(width, ratio)


def _conv(kernel: int, c_in: int, c_out: int) -> int:
    return kernel * kernel * c_in * c_out + c_out


def param_breakdown(config: PACConfig) -> dict[str, int]:
    """Parameter counts by group; keys ending in '_embedding' are the embedding-like ones."""
    c = config
    d, d_in, r = c.width, c.token_width, c.mlp_ratio
    groups = {
        "input_embedding": ((c.obs_value_bins if c.obs_value_embedding == "lookup" else c.max_obs_dim) * d_in
                            + c.max_obs_dim * d_in + c.num_tasks * d_in),
        "latent_and_query_embedding": c.num_latents * d + c.max_action_dim * d + c.num_critic_queries * d,
        "action_embedding": 2 * c.max_action_dim * d,
        "output_head_embedding": _dense(d, c.num_action_bins) + _dense(d, c.num_value_bins),
        "encoder": _cross_attention(d, d_in, d, r) + c.num_blocks * _self_attention(d, r),
        "policy_decoder": _cross_attention(d, d, d, r) + _norm(d),
        "critic_decoder": _cross_attention(d, d, d, r) + _norm(d),
        "image_stem": 0,
    }
    if c.use_images:
        ch = c.image_stem_channels
        groups["input_embedding"] += c.num_image_tokens * d_in
        groups["image_stem"] = (_conv(3, c.image_channels, ch) + 2 * _conv(3, ch, ch)
                                + _dense(c.image_patch_size**2 * ch, d_in))
    return groups


def _is_embedding(group: str) -> bool:
    return group.endswith("_embedding")


def param_count(config: PACConfig) -> int:
    """Exact number of parameters (scalars) of the network built from `config`."""
    return sum(param_breakdown(config).values())


def non_embedding_param_count(config: PACConfig) -> int:
    """Parameters outside the embedding-like tables (see the module docstring)."""
    return sum(v for k, v in param_breakdown(config).items() if not _is_embedding(k))


# ------------------------------------------------------------------------------- FLOPs


def _mm(m: int, k: int, n: int) -> int:
    """FLOPs of a [m, k] x [k, n] matmul."""
    return 2 * m * k * n


def _attention_flops(num_queries: int, num_kv: int, query_width: int, kv_width: int, width: int) -> int:
    projections = (_mm(num_queries, query_width, width) + 2 * _mm(num_kv, kv_width, width)
                   + _mm(num_queries, width, query_width))
    scores_and_mixing = 2 * _mm(num_queries, width, num_kv)
    return projections + scores_and_mixing


def _mlp_flops(num_tokens: int, width: int, ratio: int) -> int:
    return 2 * _mm(num_tokens, width, ratio * width)


def image_stem_flops(config: PACConfig) -> int:
    """FLOPs of the image tokenizer per example (0 when images are off)."""
    c = config
    if not c.use_images:
        return 0
    ch, half = c.image_stem_channels, c.image_size // 2
    convs = 2 * half * half * 9 * (c.image_channels * ch + 2 * ch * ch)
    return convs + _mm(c.num_image_tokens, c.image_patch_size**2 * ch, c.token_width)


def encoder_flops(config: PACConfig) -> int:
    """Tokenizers + latents cross-attending the inputs + M latent self-attention blocks."""
    c = config
    d, L = c.width, c.num_latents
    cross = _attention_flops(L, c.num_input_tokens, d, c.token_width, d) + _mlp_flops(L, d, c.mlp_ratio)
    block = _attention_flops(L, L, d, d, d) + _mlp_flops(L, d, c.mlp_ratio)
    return image_stem_flops(c) + cross + c.num_blocks * block


def policy_decoder_flops(config: PACConfig) -> int:
    """Action queries cross-attending the latents, MLP and the action-bin head."""
    c = config
    d, A = c.width, c.max_action_dim
    return (_attention_flops(A, c.num_latents, d, d, d) + _mlp_flops(A, d, c.mlp_ratio)
            + _mm(A, d, c.num_action_bins))


def critic_decoder_flops(config: PACConfig, num_actions: int = 1) -> int:
    """Critic decoder for `num_actions` candidate actions of one state."""
    c = config
    d, A, L = c.width, c.max_action_dim, c.num_latents
    nq = num_actions * c.num_critic_queries
    action_embedding = _mm(num_actions, A, d) + _mm(1, A, d)  # values per action; mask once
    latent_kv = 2 * _mm(L, d, d)  # once per state
    per_query = (_mm(nq, d, d) + _mm(nq, d, d) + 2 * _mm(nq, d, L)  # q, out, scores, mixing
                 + _mlp_flops(nq, d, c.mlp_ratio))
    return action_embedding + latent_kv + per_query + _mm(num_actions, d, c.num_value_bins)


def forward_flops(config: PACConfig, num_actions: int = 1) -> int:
    """One full forward pass per example: encoder + policy decoder + critic for `num_actions`."""
    return encoder_flops(config) + policy_decoder_flops(config) + critic_decoder_flops(config, num_actions)


# ---------------------------------------------------------------- XLA cross-check (CPU)


def compiled_cpu_flops(fn, *args: Any) -> float:
    """XLA's FLOP count of `fn` compiled for the CPU (abstract args: nothing is allocated)."""
    import jax

    # Pin the compilation to the CPU backend even on a GPU machine: the GPU cost analysis
    # under-counts matmuls badly (stack.md).
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    args = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=cpu), args)
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax returned one dict per device
        analysis = analysis[0]
    return float(analysis["flops"])


def _abstract_setup(config: PACConfig, batch_size: int):
    import jax

    from models.networks import dummy_inputs, make_networks

    networks = make_networks(config)
    inputs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), dummy_inputs(config, batch_size))
    params = jax.eval_shape(networks.init, jax.random.key(0), inputs)
    return networks, params, inputs


def _actions(config: PACConfig, batch_size: int, num_actions: int):
    import jax
    import jax.numpy as jnp

    return jax.ShapeDtypeStruct((batch_size, num_actions, config.max_action_dim), jnp.float32)


def xla_forward_flops(config: PACConfig, batch_size: int = 8, num_actions: int = 1) -> float:
    """XLA's compiled FLOP count (CPU backend) of `apply` with `num_actions` per example."""
    networks, params, inputs = _abstract_setup(config, batch_size)
    flops = compiled_cpu_flops(networks.apply, params, inputs, _actions(config, batch_size, num_actions))
    return flops / batch_size
