"""The Perceiver-Actor-Critic (PAC) network and its `make_networks` factory.

Data flow (design.md section 2):

  obs [B, O] + obs_mask, task_id [B], (images)   -- tokenizers -->  input tokens [B, T, d_in]
  learned latents [L, d]  -- latents_attend_inputs (masked) -->  M latent_self_attention blocks
                                                              -->  latents z_M [B, L, d]
  policy: one learned query per action dim  -- action_queries_attend_latents -->  [B, A, K] logits
  critic: action-conditioned query per (state, action)  -- critic_queries_attend_latents -->
          [B, N, num_value_bins] logits

The action enters only the critic decoder ("late action injection"), so Q for N candidate
actions costs one encoder pass plus N cheap decoder queries: `encode` once, then call
`q_logits` with actions [B, N, A].

Padding: observations are padded to max_obs_dim and actions to max_action_dim; obs_mask
and action_mask ([B, *] bool, True = real) remove the padding. Padded observation tokens
get exactly zero attention weight; padded action values are multiplied by zero. The policy
still emits logits for padded action dims: the losses must mask them with action_mask.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from models.config import PACConfig
from models.modules import Conv2D, CrossAttention, Dense, LayerNorm, SelfAttention

# Learned tables (latents, queries, embeddings) start small, as in the Perceiver.
_EMBED_INIT = hk.initializers.TruncatedNormal(stddev=0.02)
_ACTION_VALUE_INIT = hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")


class PACInputs(NamedTuple):
    """What the network sees of a state (one row per example; tasks padded to max sizes)."""

    obs: jax.Array  # [B, max_obs_dim] float proprioception, zero-padded.
    obs_mask: jax.Array  # [B, max_obs_dim] bool, True = real observation dimension.
    task_id: jax.Array  # [B] int32 in [0, num_tasks).
    action_mask: jax.Array  # [B, max_action_dim] bool, True = real action dimension.
    images: Optional[jax.Array] = None  # [B, H, W, C] float in [0, 1] when use_images.


class PACOutputs(NamedTuple):
    latents: jax.Array  # [B, L, d] in the compute dtype.
    policy_logits: jax.Array  # [B, max_action_dim, num_action_bins] float32.
    q_logits: jax.Array  # [B, N, num_value_bins] float32.


def _dtype(config: PACConfig) -> jnp.dtype:
    return jnp.dtype(config.compute_dtype)


# ----------------------------------------------------------------------------- tokenizers


class ProprioTokenizer(hk.Module):
    """One token per observation dimension d: value embedding + dimension embedding e_d.

    The value embedding of the (standardized) scalar x is either
      'lookup': x placed between two of `obs_value_bins` learned vectors on
        [-obs_value_range, obs_value_range] and their linear interpolation taken (a
        piecewise-linear function of x, flat beyond the range), or
      'linear': x * w_d, a learned vector per dimension.
    Both keep x's magnitude through the LayerNorm in front of the cross-attention, because
    the dimension embedding e_d is added before it (LN(x * w_d + e_d) varies with |x|).
    """

    def __init__(self, config: PACConfig, name: str = "proprio_tokens"):
        super().__init__(name=name)
        self.config = config

    def __call__(self, obs: jax.Array) -> jax.Array:
        c, dtype = self.config, _dtype(self.config)
        dim_embedding = hk.get_parameter("dim_embedding", [c.max_obs_dim, c.token_width], jnp.float32, init=_EMBED_INIT)
        x = obs.astype(jnp.float32)
        if c.obs_value_embedding == "linear":
            weights = hk.get_parameter("value_embedding", [c.max_obs_dim, c.token_width], jnp.float32, init=_EMBED_INIT)
            tokens = x[..., None] * weights + dim_embedding
        else:
            table = hk.get_parameter("value_embedding", [c.obs_value_bins, c.token_width], jnp.float32, init=_EMBED_INIT)
            r = c.obs_value_range
            position = (jnp.clip(x, -r, r) + r) / (2 * r) * (c.obs_value_bins - 1)
            lower = jnp.clip(jnp.floor(position), 0, c.obs_value_bins - 2).astype(jnp.int32)
            frac = (position - lower)[..., None]
            tokens = (1.0 - frac) * table[lower] + frac * table[lower + 1] + dim_embedding
        return tokens.astype(dtype)


class TaskTokenizer(hk.Module):
    """A single learned token per task id."""

    def __init__(self, config: PACConfig, name: str = "task_token"):
        super().__init__(name=name)
        self.config = config

    def __call__(self, task_id: jax.Array) -> jax.Array:
        c = self.config
        table = hk.get_parameter("embedding", [c.num_tasks, c.token_width], jnp.float32, init=_EMBED_INIT)
        return jnp.take(table, task_id, axis=0)[:, None, :].astype(_dtype(c))


class ImageTokenizer(hk.Module):
    """A small ResNet-style stem (stride-2 conv, one residual block), then one token a patch."""

    def __init__(self, config: PACConfig, name: str = "image_tokens"):
        super().__init__(name=name)
        self.config = config

    def __call__(self, images: jax.Array) -> jax.Array:
        c, dtype = self.config, _dtype(self.config)
        x = jax.nn.relu(Conv2D(c.image_stem_channels, 3, 2, dtype, name="stem_conv")(images))
        h = jax.nn.relu(Conv2D(c.image_stem_channels, 3, 1, dtype, name="res_conv_0")(x))
        x = jax.nn.relu(x + Conv2D(c.image_stem_channels, 3, 1, dtype, name="res_conv_1")(h))
        batch, p, g = x.shape[0], c.image_patch_size, c.image_grid
        patches = x.reshape(batch, g, p, g, p, c.image_stem_channels).transpose(0, 1, 3, 2, 4, 5)
        patches = patches.reshape(batch, g * g, p * p * c.image_stem_channels)
        tokens = Dense(c.token_width, dtype, name="patch_projection")(patches)
        position = hk.get_parameter("position_embedding", [g * g, c.token_width], jnp.float32, init=_EMBED_INIT)
        return tokens + position.astype(dtype)


# ------------------------------------------------------------------------------- encoder


class PerceiverEncoder(hk.Module):
    """Learned latents cross-attend the (masked) input tokens, then M latent self-attention blocks."""

    def __init__(self, config: PACConfig, name: str = "encoder"):
        super().__init__(name=name)
        self.config = config

    def __call__(self, inputs: PACInputs) -> jax.Array:
        c, dtype = self.config, _dtype(self.config)
        batch = inputs.obs.shape[0]
        # Always-real tokens first, the padded proprio tokens last: the mask is then a
        # prefix mask (the sampler pads observations at the end), which cuDNN's attention
        # takes as lengths. (Attention does not depend on the order of its keys.)
        tokens = [TaskTokenizer(c)(inputs.task_id)]
        masks = [jnp.ones((batch, 1), bool)]
        if c.use_images:
            if inputs.images is None:
                raise ValueError("PACInputs.images is required when PACConfig.use_images is True")
            image_tokens = ImageTokenizer(c)(inputs.images)
            tokens.append(image_tokens)
            masks.append(jnp.ones(image_tokens.shape[:2], bool))
        tokens.append(ProprioTokenizer(c)(inputs.obs))
        masks.append(inputs.obs_mask.astype(bool))
        tokens = jnp.concatenate(tokens, axis=1)
        mask = jnp.concatenate(masks, axis=1)

        latents = hk.get_parameter("latents", [c.num_latents, c.width], jnp.float32, init=_EMBED_INIT)
        z = jnp.broadcast_to(latents.astype(dtype), (batch, c.num_latents, c.width))
        z = CrossAttention(c.num_heads, c.width, c.mlp_ratio, dtype, c.attention, name="latents_attend_inputs")(z, tokens, mask)
        for i in range(c.num_blocks):
            z = SelfAttention(c.num_heads, c.mlp_ratio, dtype, c.attention, name=f"latent_self_attention_{i}")(z)
        return z


# ------------------------------------------------------------------------------ decoders


class PolicyDecoder(hk.Module):
    """One learned query per action dimension attends the latents; a linear head gives bin logits."""

    def __init__(self, config: PACConfig, name: str = "policy_decoder"):
        super().__init__(name=name)
        self.config = config

    def __call__(self, latents: jax.Array) -> jax.Array:
        c, dtype = self.config, _dtype(self.config)
        batch = latents.shape[0]
        queries = hk.get_parameter("action_queries", [c.max_action_dim, c.width], jnp.float32, init=_EMBED_INIT)
        q = jnp.broadcast_to(queries.astype(dtype), (batch, c.max_action_dim, c.width))
        x = CrossAttention(c.num_heads, c.width, c.mlp_ratio, dtype, c.attention, name="action_queries_attend_latents")(q, latents)
        x = LayerNorm(dtype, name="output_norm")(x)
        return Dense(c.num_action_bins, dtype, name="action_bin_logits")(x).astype(jnp.float32)


class CriticDecoder(hk.Module):
    """Action-conditioned queries attend the latents; a linear head gives distributional Q logits.

    The action embedding is sum_i mask_i * (a_i * value_embedding[i] + dim_embedding[i]): each
    dimension has its own value embedding because a value embedding shared across dimensions,
    once summed, could not tell which dimension holds which value. It is added to
    `num_critic_queries` learned query tokens; their outputs are averaged before the head.
    Every (state, action) query attends the same latents independently, so the N actions are
    stacked along the query axis and the latents' key/value projections are computed once.
    """

    def __init__(self, config: PACConfig, name: str = "critic_decoder"):
        super().__init__(name=name)
        self.config = config

    def __call__(self, latents: jax.Array, actions: jax.Array, action_mask: jax.Array) -> jax.Array:
        c, dtype = self.config, _dtype(self.config)
        batch, num_actions, _ = actions.shape
        nq = c.num_critic_queries
        # The action's values enter through a linear map, initialized like a Dense layer
        # (fan-in scaling), not like the small learned tables: at std 0.02 Adam's steps of
        # ~learning_rate are a few percent of these weights each, and the critic's ranking
        # of actions random-walked (it flipped sign late in training on synthetic data).
        value_embedding = hk.get_parameter(
            "action_value_embedding", [c.max_action_dim, c.width], jnp.float32, init=_ACTION_VALUE_INIT)
        dim_embedding = hk.get_parameter(
            "action_dim_embedding", [c.max_action_dim, c.width], jnp.float32, init=_EMBED_INIT)
        queries = hk.get_parameter("critic_queries", [nq, c.width], jnp.float32, init=_EMBED_INIT)

        mask = action_mask.astype(dtype)  # [B, A]
        masked_actions = actions.astype(dtype) * mask[:, None, :]  # padded dims contribute 0
        action_embedding = jnp.einsum("bna,ad->bnd", masked_actions, value_embedding.astype(dtype))
        action_embedding += jnp.einsum("ba,ad->bd", mask, dim_embedding.astype(dtype))[:, None, :]
        q = queries.astype(dtype)[None, None] + action_embedding[:, :, None, :]  # [B, N, nq, d]
        q = q.reshape(batch, num_actions * nq, c.width)
        x = CrossAttention(c.num_heads, c.width, c.mlp_ratio, dtype, c.attention,
                           name="critic_queries_attend_latents")(q, latents)
        x = x.reshape(batch, num_actions, nq, c.width).mean(axis=2)
        x = LayerNorm(dtype, name="output_norm")(x)
        return Dense(c.num_value_bins, dtype, name="value_bin_logits")(x).astype(jnp.float32)


# ------------------------------------------------------------------------------- factory


@dataclasses.dataclass(frozen=True)
class PACNetworks:
    """Pure functions of one PAC network (params float32; no rng needed at apply time).

    init(rng, inputs) -> params
    encode(params, inputs) -> latents [B, L, d]
    policy_logits(params, latents) -> [B, max_action_dim, num_action_bins] float32
    q_logits(params, latents, actions [B, N, A], action_mask [B, A]) -> [B, N, num_value_bins]
    apply(params, inputs, actions [B, N, A]) -> PACOutputs (encode + both decoders)
    """

    config: PACConfig
    init: Callable[[jax.Array, PACInputs], hk.Params]
    encode: Callable[[hk.Params, PACInputs], jax.Array]
    policy_logits: Callable[[hk.Params, jax.Array], jax.Array]
    q_logits: Callable[[hk.Params, jax.Array, jax.Array, jax.Array], jax.Array]
    apply: Callable[[hk.Params, PACInputs, jax.Array], PACOutputs]


def make_networks(config: PACConfig) -> PACNetworks:
    """Builds the PAC network's pure functions with hk.multi_transform (modules shared by name)."""
    config.validate()

    def template():
        encoder = PerceiverEncoder(config)
        policy = PolicyDecoder(config)
        critic = CriticDecoder(config)

        def apply(inputs: PACInputs, actions: jax.Array) -> PACOutputs:
            latents = encoder(inputs)
            return PACOutputs(latents, policy(latents), critic(latents, actions, inputs.action_mask))

        def init(inputs: PACInputs) -> PACOutputs:
            actions = jnp.zeros(inputs.action_mask.shape[:1] + (1,) + inputs.action_mask.shape[1:], jnp.float32)
            return apply(inputs, actions)

        return init, (encoder, policy, critic, apply)

    transformed = hk.without_apply_rng(hk.multi_transform(template))
    encode, policy_logits, q_logits, apply = transformed.apply
    return PACNetworks(
        config=config,
        init=transformed.init,
        encode=encode,
        policy_logits=policy_logits,
        q_logits=q_logits,
        apply=apply,
    )


def dummy_inputs(config: PACConfig, batch_size: int = 1) -> PACInputs:
    """Zero inputs with every dimension real: enough to initialize or trace the network."""
    images = None
    if config.use_images:
        images = np.zeros((batch_size, config.image_size, config.image_size, config.image_channels), np.float32)
    return PACInputs(
        obs=np.zeros((batch_size, config.max_obs_dim), np.float32),
        obs_mask=np.ones((batch_size, config.max_obs_dim), bool),
        task_id=np.zeros((batch_size,), np.int32),
        action_mask=np.ones((batch_size, config.max_action_dim), bool),
        images=images,
    )
