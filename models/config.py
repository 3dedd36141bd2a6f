"""PACConfig: every number that fixes a Perceiver-Actor-Critic network.

One frozen dataclass shared by the networks, the parameter/FLOP counts, the presets, the
CLI and the tests. Sizes come from a preset (models/presets.py); data shapes
(max_obs_dim, max_action_dim, num_tasks) come from the dataset the model is trained on.
"""

from __future__ import annotations

import dataclasses

from models.helpers import checked_replace

_COMPUTE_DTYPES = ("float32", "bfloat16")
_OBS_VALUE_EMBEDDINGS = ("lookup", "linear")
_ATTENTION_KERNELS = ("einsum", "xla", "cudnn")


@dataclasses.dataclass(frozen=True)
class PACConfig:
    """Configuration of one PAC network (see design.md section 2)."""

    # --- Sizes (fixed by the preset) -------------------------------------------------
    width: int = 64  # d: width of the latents, decoder queries and attention.
    token_width: int = 64  # d_in: width of the input tokens (proprio, task, image).
    num_latents: int = 16  # L: learned latents that cross-attend the input tokens.
    num_blocks: int = 2  # M: latent self-attention blocks after the cross-attention.
    num_heads: int = 4  # attention heads everywhere (width must divide by it).
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * width.
    num_critic_queries: int = 1  # query tokens per action in the critic decoder.
    # How a (standardized) observation value becomes a token: 'lookup' interpolates
    # between learned vectors on a grid of obs_value_bins points over
    # [-obs_value_range, obs_value_range] (+-5 standard deviations); 'linear' is
    # x * w_d + e_d with a learned vector w_d per observation dimension d. Both keep the
    # value's magnitude; 'lookup' is the default because it gave the lower held-out BC
    # loss on the demo data in 3 of 3 seeds (6.115 vs 6.165 nats; tiny, 1500 updates).
    obs_value_embedding: str = "lookup"
    obs_value_bins: int = 64
    obs_value_range: float = 5.0

    # --- Output discretization --------------------------------------------------------
    num_action_bins: int = 101  # K: uniform bins over [-1, 1], endpoints included.
    num_value_bins: int = 101  # bins of the distributional Q on [v_min, v_max].
    # Rewards in [0, 1] with discount 0.99 bound returns to [0, 1 / (1 - 0.99)] = [0, 100].
    v_min: float = 0.0
    v_max: float = 100.0

    # --- Data shapes (from the dataset; smaller tasks are padded and masked) ----------
    max_obs_dim: int = 32  # proprio tokens: one per observation dimension.
    max_action_dim: int = 8  # policy queries: one per action dimension.
    num_tasks: int = 8  # rows of the learned task-token table.

    # --- Optional image modality (off by default) -------------------------------------
    use_images: bool = False
    image_size: int = 64  # square images [H = W = image_size, channels].
    image_channels: int = 3
    image_stem_channels: int = 32  # channels of the ResNet-style stem (stride 2).
    image_patch_size: int = 4  # patch side on the stem output; one token a patch.

    # --- Numerics ---------------------------------------------------------------------
    # Params are always float32; 'bfloat16' casts params and activations at each matmul
    # and casts logits back to float32 (softmax and LayerNorm statistics stay float32).
    compute_dtype: str = "float32"
    # How attention is computed (the same math): 'einsum' writes the scores out
    # (models.modules.attend); 'xla' is jax.nn.dot_product_attention's XLA version; 'cudnn'
    # its cuDNN flash kernel (GPU, bfloat16 only, head_dim <= 128 and a multiple of 8).
    attention: str = "einsum"

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return self.mlp_ratio * self.width

    @property
    def image_grid(self) -> int:
        """Patches per image side: stem halves the image, patches tile the stem output."""
        return (self.image_size // 2) // self.image_patch_size

    @property
    def num_image_tokens(self) -> int:
        return self.image_grid**2 if self.use_images else 0

    @property
    def num_input_tokens(self) -> int:
        """Tokens the latents cross-attend: proprio dims + 1 task token + image patches."""
        return self.max_obs_dim + 1 + self.num_image_tokens

    def replace(self, **overrides) -> "PACConfig":
        """A copy with fields replaced; an unknown field is a one-line ValueError."""
        return checked_replace(self, **overrides)

    def validate(self) -> "PACConfig":
        """Raises a one-line ValueError naming the first bad field; returns self if fine."""
        positive = (
                "width", "token_width", "num_latents", "num_blocks", "num_heads", "mlp_ratio",
                "num_critic_queries", "max_obs_dim", "max_action_dim", "num_tasks",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"PACConfig.{name} must be a positive integer, got {value!r}")
        if not self.obs_value_range > 0:
            raise ValueError(f"PACConfig.obs_value_range must be > 0, got {self.obs_value_range!r}")
        for name in ("num_action_bins", "num_value_bins", "obs_value_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"PACConfig.{name} must be an integer >= 2, got {value!r}")
        if self.width % self.num_heads:
            raise ValueError(
                    f"PACConfig.width={self.width} is not divisible by num_heads={self.num_heads}")
        if not self.v_min < self.v_max:
            raise ValueError(f"PACConfig.v_min={self.v_min} must be < v_max={self.v_max}")
        if self.obs_value_embedding not in _OBS_VALUE_EMBEDDINGS:
            raise ValueError(f"PACConfig.obs_value_embedding={self.obs_value_embedding!r} is not one of "
                             f"{', '.join(_OBS_VALUE_EMBEDDINGS)}")
        if self.attention not in _ATTENTION_KERNELS:
            raise ValueError(f"PACConfig.attention={self.attention!r} is not one of {', '.join(_ATTENTION_KERNELS)}")
        if self.attention == "cudnn" and (self.compute_dtype != "bfloat16" or self.head_dim % 8 or self.head_dim > 128):
            raise ValueError(f"PACConfig.attention='cudnn' needs compute_dtype='bfloat16' and a head_dim that is a "
                             f"multiple of 8 and <= 128; got {self.compute_dtype}, head_dim={self.head_dim}")
        if self.compute_dtype not in _COMPUTE_DTYPES:
            raise ValueError(
                    f"PACConfig.compute_dtype={self.compute_dtype!r} is not one of {', '.join(_COMPUTE_DTYPES)}")
        if self.use_images:
            for name in ("image_size", "image_channels", "image_stem_channels", "image_patch_size"):
                value = getattr(self, name)
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise ValueError(f"PACConfig.{name} must be a positive integer, got {value!r}")
            if self.image_size % 2 or (self.image_size // 2) % self.image_patch_size:
                raise ValueError(
                        f"PACConfig.image_size={self.image_size} must be even and its half divisible by "
                        f"image_patch_size={self.image_patch_size}")
        return self
