"""Perceiver primitives: attend, Dense, LayerNorm, MLP, Attention, CrossAttention, SelfAttention.

Modelled on the deepmind-research Perceiver (perceiver/perceiver.py), written small so that
every matmul is visible (models/counts.py counts exactly these einsums and dots).

Mixed precision without global policies: every parameter is created float32 and cast to
the module's `dtype` (the compute dtype) at the point of use; softmax and LayerNorm
statistics are computed in float32. Haiku's own Linear/LayerNorm/Conv create their params
in the input's dtype, which would make bfloat16 params, so they are not used here.
"""

from __future__ import annotations

from typing import Optional

import haiku as hk
import jax
import jax.numpy as jnp

# A large finite negative (not -inf) so a masked score gives exactly zero weight after the
# softmax without producing NaNs in gradients.
_MASKED_SCORE = -1e30


def attend(
    queries: jax.Array, keys: jax.Array, values: jax.Array, kv_mask: Optional[jax.Array] = None,
    kernel: str = "einsum",
) -> jax.Array:
    """Multi-head scaled dot-product attention.

    Args:
      queries: [B, Tq, H, Dh].
      keys, values: [B, Tk, H, Dh].
      kv_mask: [B, Tk] bool, True = real token; masked keys get exactly zero weight. With
        kernel='cudnn' it must be a prefix mask (real tokens first), which cuDNN's padding
        mode takes as per-example lengths.
      kernel: 'einsum' (scores written out, softmax in float32), 'xla' or 'cudnn'
        (jax.nn.dot_product_attention's implementations; both take the softmax in float32).

    Returns:
      [B, Tq, H, Dh] in the values' dtype.
    """
    if kernel == "xla":
        mask = None if kv_mask is None else kv_mask[:, None, None, :]
        return jax.nn.dot_product_attention(queries, keys, values, mask=mask, implementation="xla")
    if kernel == "cudnn":
        lengths = None if kv_mask is None else jnp.sum(kv_mask, axis=-1, dtype=jnp.int32)
        return jax.nn.dot_product_attention(queries, keys, values, key_value_seq_lengths=lengths,
                                            implementation="cudnn")
    scale = queries.shape[-1] ** -0.5
    scores = jnp.einsum("bqhd,bkhd->bhqk", queries * jnp.asarray(scale, queries.dtype), keys)
    # Softmax in float32: bfloat16 has too few mantissa bits for stable normalization.
    scores = scores.astype(jnp.float32)
    if kv_mask is not None:
        scores = jnp.where(kv_mask[:, None, None, :], scores, _MASKED_SCORE)
    weights = jax.nn.softmax(scores, axis=-1).astype(values.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, values)


class Dense(hk.Module):
    """y = x W + b with float32 params computed in `dtype`."""

    def __init__(self, output_size: int, dtype: jnp.dtype = jnp.float32, name: Optional[str] = None):
        super().__init__(name=name)
        self.output_size = output_size
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        input_size = x.shape[-1]
        w_init = hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")
        w = hk.get_parameter("w", [input_size, self.output_size], jnp.float32, init=w_init)
        b = hk.get_parameter("b", [self.output_size], jnp.float32, init=jnp.zeros)
        return jnp.dot(x.astype(self.dtype), w.astype(self.dtype)) + b.astype(self.dtype)


class LayerNorm(hk.Module):
    """LayerNorm over the last axis; statistics in float32, output in `dtype`."""

    def __init__(self, dtype: jnp.dtype = jnp.float32, eps: float = 1e-6, name: Optional[str] = None):
        super().__init__(name=name)
        self.dtype = dtype
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        size = x.shape[-1]
        scale = hk.get_parameter("scale", [size], jnp.float32, init=jnp.ones)
        offset = hk.get_parameter("offset", [size], jnp.float32, init=jnp.zeros)
        x = x.astype(jnp.float32)
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        y = (x - mean) * jax.lax.rsqrt(var + self.eps) * scale + offset
        return y.astype(self.dtype)


class MLP(hk.Module):
    """Dense(hidden) -> GELU -> Dense(output); output width = input width."""

    def __init__(self, hidden_size: int, dtype: jnp.dtype = jnp.float32, name: Optional[str] = None):
        super().__init__(name=name)
        self.hidden_size = hidden_size
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.gelu(Dense(self.hidden_size, self.dtype, name="hidden")(x))
        return Dense(x.shape[-1], self.dtype, name="output")(h)


class Attention(hk.Module):
    """Projects queries and keys/values to `width` (split into heads), attends, projects back.

    The output has the query input's width, so it can be added to the query residually.
    """

    def __init__(self, num_heads: int, width: int, dtype: jnp.dtype = jnp.float32, kernel: str = "einsum",
                 name: Optional[str] = None):
        super().__init__(name=name)
        self.num_heads = num_heads
        self.width = width
        self.dtype = dtype
        self.kernel = kernel

    def __call__(self, query_inputs: jax.Array, kv_inputs: jax.Array, kv_mask: Optional[jax.Array] = None) -> jax.Array:
        batch, num_queries, query_width = query_inputs.shape
        num_kv = kv_inputs.shape[1]
        head_dim = self.width // self.num_heads
        q = Dense(self.width, self.dtype, name="query")(query_inputs)
        k = Dense(self.width, self.dtype, name="key")(kv_inputs)
        v = Dense(self.width, self.dtype, name="value")(kv_inputs)
        q = q.reshape(batch, num_queries, self.num_heads, head_dim)
        k = k.reshape(batch, num_kv, self.num_heads, head_dim)
        v = v.reshape(batch, num_kv, self.num_heads, head_dim)
        mixed = attend(q, k, v, kv_mask, self.kernel).reshape(batch, num_queries, self.width)
        return Dense(query_width, self.dtype, name="output")(mixed)


class CrossAttention(hk.Module):
    """Queries attend to a separate set of key/value tokens, then an MLP (both residual, pre-LN).

    Each query attends independently of the other queries, so stacking many queries (e.g.
    one per sampled action) along the query axis equals running them one by one.
    """

    def __init__(
        self, num_heads: int, width: int, mlp_ratio: int, dtype: jnp.dtype = jnp.float32, kernel: str = "einsum",
        name: Optional[str] = None
    ):
        super().__init__(name=name)
        self.num_heads = num_heads
        self.width = width
        self.mlp_ratio = mlp_ratio
        self.dtype = dtype
        self.kernel = kernel

    def __call__(self, queries: jax.Array, kv_tokens: jax.Array, kv_mask: Optional[jax.Array] = None) -> jax.Array:
        q_in = LayerNorm(self.dtype, name="query_norm")(queries)
        kv_in = LayerNorm(self.dtype, name="kv_norm")(kv_tokens)
        x = queries + Attention(self.num_heads, self.width, self.dtype, self.kernel, name="attention")(q_in, kv_in, kv_mask)
        h = LayerNorm(self.dtype, name="mlp_norm")(x)
        return x + MLP(self.mlp_ratio * x.shape[-1], self.dtype, name="mlp")(h)


class SelfAttention(hk.Module):
    """A pre-LN transformer block over the latents: self-attention + MLP, both residual."""

    def __init__(self, num_heads: int, mlp_ratio: int, dtype: jnp.dtype = jnp.float32, kernel: str = "einsum",
                 name: Optional[str] = None):
        super().__init__(name=name)
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.dtype = dtype
        self.kernel = kernel

    def __call__(self, latents: jax.Array) -> jax.Array:
        width = latents.shape[-1]
        h = LayerNorm(self.dtype, name="attention_norm")(latents)
        x = latents + Attention(self.num_heads, width, self.dtype, self.kernel, name="attention")(h, h)
        h = LayerNorm(self.dtype, name="mlp_norm")(x)
        return x + MLP(self.mlp_ratio * width, self.dtype, name="mlp")(h)


class Conv2D(hk.Module):
    """A SAME-padded NHWC convolution with float32 params computed in `dtype`."""

    def __init__(
        self, channels: int, kernel: int = 3, stride: int = 1, dtype: jnp.dtype = jnp.float32, name: Optional[str] = None
    ):
        super().__init__(name=name)
        self.channels = channels
        self.kernel = kernel
        self.stride = stride
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        in_channels = x.shape[-1]
        w_init = hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")
        w = hk.get_parameter("w", [self.kernel, self.kernel, in_channels, self.channels], jnp.float32, init=w_init)
        b = hk.get_parameter("b", [self.channels], jnp.float32, init=jnp.zeros)
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), w.astype(self.dtype), window_strides=(self.stride, self.stride), padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + b.astype(self.dtype)
