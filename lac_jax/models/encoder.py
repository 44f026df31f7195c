"""LAC frame encoder: ResNet trunk per frame -> Conv3D context -> MLP -> Transformer over time.

``[B, T, H, W, 3]`` frames + ``[B, T]`` mask -> ``[B, T / num_context, output_dim]`` embeddings:

  trunk (``lac_jax.models.resnet``, cut ``conv4c``: ``[B*T, H/16, W/16, 1024]``; optionally in
    chunks of ``trunk_chunk`` frames under ``nn.scan`` to bound memory)
  -> context block: ``context_layers`` x [Conv3D 3x3x3 (``context_width``), BN, ReLU] over groups
    of ``num_context`` consecutive frames, temporal padding 1 and no spatial padding
    (``context_padding='valid'``, 14x14 -> 10x10 at 224 px; ``'same'`` for small images). With
    ``num_context=1``, as the official code, this is a valid 3x3 conv that only uses the centre
    temporal slice of the kernel, and is computed as one; the kernel keeps the official shape
    ``(3, 3, 3, Cin, width)``)
  -> global max pool -> MLP (``mlp_sizes`` x [Dropout, Dense, ReLU]) -> Dense ``embed_dim``
  -> + sine-cosine positional encoding, Dropout
  -> Transformer encoder (``num_layers``, ``num_heads``, ``ffn_dim``, post-norm by default)
    attending **over time** with the padding mask (the official code attends over the batch
    axis by mistake, official-lac-code.md §1.4: ``attention_axis='batch'``)
  -> Dense ``output_dim`` -> optional L2 normalisation.

Everything comes from ``default_config()``; ``build_encoder(config)`` makes the module and
``init_variables`` its variables (with ImageNet weights if ``backbone_weights`` is set).

Call conventions: ``model.apply(variables, frames, mask, train=...)``. With ``train=True`` pass
``rngs={'dropout': key}`` and ``mutable=['batch_stats']``. ``train=False`` is deterministic.

BatchNorm notes: in train mode padded frames are left out of the batch statistics
(``bn_mask_padding``); with ``trunk_chunk`` the trunk's statistics are per chunk and its running
averages are updated once per chunk (exact in eval and with ``backbone_mode`` 'frozen' or
'bn_frozen'). Flax updates running variances with the biased batch variance, torch with the
unbiased one (a factor n/(n-1), negligible for n = frames x pixels).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from absl import logging
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict
import numpy as np

from lac_jax.models import conv as conv_lib
from lac_jax.models import convert
from lac_jax.models import resnet

BACKBONE_MODES = ("train", "frozen", "bn_frozen")
ATTENTION_AXES = ("time", "batch")
RANDOM_WEIGHTS = "random"  # backbone_weights value: random init on purpose
PE_POSITIONS = ("linspace", "arange", "none")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def default_config() -> ml_collections.ConfigDict:
  """Model config (``config.model``): paper defaults; switches reach the official code."""
  c = ml_collections.ConfigDict()
  # --- ResNet trunk ---
  c.resnet_depth = 50  # 18, 34 or 50 (torchvision layout); 18 for fast CPU runs.
  c.cut = "conv4c"  # Trunk output: conv4c (LAC: 3rd block of layer3), layer3, layer4, conv3d ...
  # 'train': all trainable, BN on batch statistics in training (official code);
  # 'frozen': no gradient into the trunk (stop_gradient), BN on running statistics, and the
  # optimiser leaves it alone (no weight decay, no Adam state: train.make_optimizer);
  # 'bn_frozen': trainable weights, BN on running statistics.
  c.backbone_mode = "train"
  # Converted torchvision weights (python -m lac_jax.models.convert), or a .pth/.safetensors
  # converted on the fly. None: random init (logged); 'random': random init, on purpose.
  c.backbone_weights = config_dict.placeholder(str)
  # True: training refuses to start while backbone_weights is None (the paper configs, which
  # start from ImageNet); --config.model.backbone_weights=random opts out.
  c.require_backbone_weights = False
  c.trunk_chunk = 0  # Frames per trunk call (nn.scan over chunks); 0 = all B*T frames at once.
  c.trunk_remat = False  # Rematerialise the trunk in the backward pass (less memory, ~1.3x time).
  # Conv backward pass: 'auto' (matmul weight gradients on CPU, where XLA's are up to 4x slower,
  # and up to ~190x inside the chunked trunk's scan; XLA's elsewhere), 'matmul' or 'xla'.
  # See lac_jax.models.conv.
  c.conv_grad = "auto"
  # Leave padded frames (mask False) out of BatchNorm batch statistics (False: official code).
  c.bn_mask_padding = True
  c.bn_axis_name = config_dict.placeholder(str)  # pmap axis name for cross-device BN, or None.
  # --- Per-frame head ---
  c.num_context = 1  # Frames per Conv3D step (official training: 1); T must divide by it.
  c.context_width = 512  # Conv3D channels.
  c.context_layers = 2  # Number of [Conv3D, BN, ReLU] layers.
  # Spatial padding of the Conv3D: 'valid' (official: 14x14 -> 10x10 at 224 px; needs a cut
  # map of at least 2*context_layers+1 pixels) or 'same' (for small images, e.g. 32-64 px).
  c.context_padding = "valid"
  c.mlp_sizes = (512, 512)  # Hidden sizes of the MLP, each [Dropout, Dense, ReLU].
  c.mlp_dropout = 0.1  # Dropout before each MLP Dense.
  c.embed_dim = 256  # Width of the frame embedding fed to the transformer.
  # --- Positional encoding ---
  # 'linspace': positions linspace(0, pe_ref_length - 1, T) (official); 'arange': 0..T-1;
  # 'none': no positional encoding (zeros), so the embedding carries only what the frames show.
  c.pe_positions = "linspace"
  c.pe_ref_length = 32  # Reference length for 'linspace' (official: hard-coded 32).
  # True: the official quirk cos(pos / 10000^((2k+1)/d)) on odd dims; False: Vaswani's 2k/d.
  c.pe_official_cos = False
  c.pe_dropout = 0.1  # Dropout after adding the positional encoding.
  # --- Transformer over time ---
  c.num_layers = 2  # Encoder layers.
  c.num_heads = 8  # Attention heads (embed_dim must divide by it).
  c.ffn_dim = 1024  # Feed-forward hidden size.
  c.transformer_dropout = 0.1  # Dropout on attention weights, after attention and in the FFN.
  c.norm_first = False  # False: post-norm (torch default, official); True: pre-norm.
  # 'time': each video's frames attend to each other (masked), the paper's temporal encoder |
  # 'batch': the official code's bug (torch batch_first=False on [N, T, D]): each frame index
  # attends over the N sequences of the (per-device) batch, unmasked; one video = per-frame.
  c.attention_axis = "time"
  # --- Input ---
  # True: evaluation frames get the ImageNet mean/std normalisation, as training frames |
  # False: the official code's evaluation input, RGB / 255 only (training keeps mean/std).
  c.eval_normalize = True
  # --- Output ---
  c.output_dim = 128  # Final embedding size.
  c.l2_normalize = True  # Unit-norm embeddings (paper's normalised similarity; official: no).
  c.dtype = "float32"  # Compute dtype: float32 or bfloat16 (parameters stay float32).
  return c


def positional_encoding(length: int, dim: int, positions: str = "linspace",
                        ref_length: int = 32, official_cos: bool = False) -> np.ndarray:
  """Sine-cosine positional encoding ``[length, dim]`` (float32, computed on the host).

  Dim ``2k`` holds ``sin(p / 10000^(2k/dim))``; dim ``2k+1`` holds ``cos(p / 10000^(2k/dim))``
  (``official_cos=True``: exponent ``(2k+1)/dim`` as in the official code). Positions ``p`` are
  ``linspace(0, ref_length - 1, length)`` (``'linspace'``, official; equals ``0..length-1`` when
  ``length == ref_length``) or ``0..length-1`` (``'arange'``); ``'none'`` gives all zeros.
  """
  if positions == "none":
    return np.zeros((length, dim), np.float32)
  if positions == "linspace":
    pos = np.linspace(0.0, ref_length - 1, length, dtype=np.float64)
  elif positions == "arange":
    pos = np.arange(length, dtype=np.float64)
  else:
    raise ValueError(f"pe_positions must be one of {PE_POSITIONS}, got {positions!r}")
  k2 = np.arange(0, dim, 2, dtype=np.float64)
  pe = np.zeros((length, dim), np.float64)
  pe[:, 0::2] = np.sin(pos[:, None] / 10000.0 ** (k2 / dim))
  cos_exp = (k2 + 1) / dim if official_cos else k2 / dim
  pe[:, 1::2] = np.cos(pos[:, None] / 10000.0 ** cos_exp)[:, :dim // 2]
  return pe.astype(np.float32)


def _bn(dtype: Any, axis_name: Optional[str], name: str) -> nn.BatchNorm:
  return nn.BatchNorm(momentum=resnet.BN_MOMENTUM, epsilon=resnet.BN_EPS, dtype=dtype,
                      axis_name=axis_name, use_fast_variance=False, name=name)


def _dense(features: int, dtype: Any, name: str) -> nn.Dense:
  # torch's default Linear weight init, U(+-1/sqrt(fan_in)), as the official head.
  return nn.Dense(features, dtype=dtype, kernel_init=resnet.dense_init, name=name)


def _nonempty(mask: jax.Array) -> jax.Array:
  """A BN mask with no True entry would give 0/0 statistics: fall back to all entries."""
  return mask | ~jnp.any(mask)


class ContextConv3D(nn.Module):
  """Conv3D with kernel ``(3, 3, 3, Cin, features)``, temporal padding 1, bias (official shape).

  ``[N, nc, h, w, Cin]`` -> ``[N, nc, h', w', features]``. With ``nc == 1`` the temporal
  padding makes the outer kernel slices multiply zeros, so the result is a 2D conv with the
  centre slice ``kernel[1]``: we compute exactly that (a third of the FLOPs, the same values
  and gradients; the outer slices get zero data gradient either way, as in torch).
  """

  features: int
  padding: str = "valid"  # Spatial padding: 'valid' or 'same'.
  dtype: Any = jnp.float32
  conv_grad: str = "auto"  # 2D case's backward (lac_jax.models.conv.conv2d).

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    cin = x.shape[-1]
    # torch's default Conv3d init: U(+-1/sqrt(fan_in)) with fan_in = 27 * Cin.
    kernel = self.param("kernel", resnet.dense_init, (3, 3, 3, cin, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x, kernel, bias = (jnp.asarray(a, self.dtype) for a in (x, kernel, bias))
    sp = 1 if self.padding == "same" else 0
    if x.shape[1] == 1:
      y = conv_lib.conv2d(x[:, 0], kernel[1], 1, sp, self.conv_grad)[:, None]
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, (1, 1, 1), ((1, 1), (sp, sp), (sp, sp)),
          dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    return y + bias


class TransformerLayer(nn.Module):
  """One encoder layer as torch's ``TransformerEncoderLayer`` (ReLU, LayerNorm eps 1e-5).

  ``[B, S, D]`` + key mask ``[B, S]`` -> ``[B, S, D]``.
  """

  num_heads: int
  ffn_dim: int
  dropout: float
  norm_first: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, train: bool) -> jax.Array:
    d = x.shape[-1]
    # Keys are masked, queries are not: padded frames still get (unused) outputs, and valid
    # frames never see padded ones.
    attn_mask = mask[:, None, None, :]

    def attention(y):
      y = nn.MultiHeadDotProductAttention(
          num_heads=self.num_heads, qkv_features=d, out_features=d, dropout_rate=self.dropout,
          broadcast_dropout=False, dtype=self.dtype, force_fp32_for_softmax=True,
          name="attention")(
              y, y, mask=attn_mask, deterministic=not train)
      return nn.Dropout(self.dropout)(y, deterministic=not train)

    def ffn(y):
      y = nn.relu(nn.Dense(self.ffn_dim, dtype=self.dtype, name="ffn_in")(y))
      y = nn.Dropout(self.dropout)(y, deterministic=not train)
      y = nn.Dense(d, dtype=self.dtype, name="ffn_out")(y)
      return nn.Dropout(self.dropout)(y, deterministic=not train)

    ln1 = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="norm1")
    ln2 = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="norm2")
    if self.norm_first:
      x = x + attention(ln1(x))
      return x + ffn(ln2(x))
    x = ln1(x + attention(x))
    return ln2(x + ffn(x))


class LACEncoder(nn.Module):
  """Frames ``[B, T, H, W, 3]`` + mask ``[B, T]`` -> embeddings ``[B, T/num_context, E]``.

  Fields mirror ``default_config()`` (see there for their meaning); build with ``build_encoder``.
  """

  resnet_depth: int = 50
  cut: str = "conv4c"
  backbone_mode: str = "train"
  trunk_chunk: int = 0
  trunk_remat: bool = False
  conv_grad: str = "auto"
  bn_mask_padding: bool = True
  bn_axis_name: Optional[str] = None
  num_context: int = 1
  context_width: int = 512
  context_layers: int = 2
  context_padding: str = "valid"
  mlp_sizes: Sequence[int] = (512, 512)
  mlp_dropout: float = 0.1
  embed_dim: int = 256
  pe_positions: str = "linspace"
  pe_ref_length: int = 32
  pe_official_cos: bool = False
  pe_dropout: float = 0.1
  num_layers: int = 2
  num_heads: int = 8
  ffn_dim: int = 1024
  transformer_dropout: float = 0.1
  norm_first: bool = False
  attention_axis: str = "time"
  eval_normalize: bool = True
  output_dim: int = 128
  l2_normalize: bool = True
  dtype: Any = jnp.float32

  def _trunk(self, frames: jax.Array, mask: jax.Array, bn_train: bool,
             mean_std: bool = True) -> jax.Array:
    """``[N, H, W, 3]`` + ``[N]`` -> trunk features ``[N, h, w, C]``, optionally chunked.

    ``mean_std=False``: the input is only scaled to [0, 1] (no ImageNet mean/std)."""
    trunk = resnet.ResNet(depth=self.resnet_depth, cut=self.cut, dtype=self.dtype,
                          bn_axis_name=self.bn_axis_name, conv_grad=self.conv_grad,
                          input_mean_std=mean_std, name="backbone")

    def body(mdl, carry, xs):
      x, m = xs
      return carry, mdl(x, bn_train, mask=_nonempty(m))

    if self.trunk_remat:
      body = nn.remat(body)
    n = frames.shape[0]
    chunk = self.trunk_chunk
    if chunk <= 0 or chunk >= n:
      _, feats = body(trunk, None, (frames, mask))
      return feats
    # Pad to whole chunks; padded images are masked out of BN statistics and dropped.
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    frames = jnp.pad(frames, ((0, pad),) + ((0, 0),) * 3)
    mask = jnp.pad(mask, (0, pad))
    xs = (frames.reshape((n_chunks, chunk) + frames.shape[1:]), mask.reshape(n_chunks, chunk))
    if bn_train and not self.is_initializing():
      # Running statistics are updated once per chunk (ghost batch norm over chunks).
      kw = dict(variable_broadcast="params", variable_carry="batch_stats")
    else:
      kw = dict(variable_broadcast=["params", "batch_stats"])
    scan = nn.scan(body, split_rngs={"params": False}, **kw)
    _, feats = scan(trunk, None, xs)
    return feats.reshape((n_chunks * chunk,) + feats.shape[2:])[:n]

  @nn.compact
  def __call__(self, frames: jax.Array, mask: Optional[jax.Array] = None,
               train: bool = False, pe: Optional[jax.Array] = None,
               part: str = "all") -> jax.Array:
    """Embeds every frame.

    Args:
      frames: ``[B, T, H, W, 3]`` uint8 in [0, 255] or float in [0, 1] (normalised inside);
        with ``part='temporal'``, the per-step features ``[B, S, embed_dim]`` of
        ``part='frames'``.
      mask: bool ``[B, T]``, False = padded frame (ignored by attention and BN statistics);
        None = all valid. With ``part='temporal'`` a step mask ``[B, S]``.
      train: dropout on and (backbone mode 'train') BatchNorm on batch statistics.
      pe: optional positional-encoding table ``[B or 1, T // num_context, embed_dim]`` used
        instead of `positional_encoding` of the padded length. The evaluation pass gives the
        table of each video's true length, so that padding a video to a bucket does not move
        its 'linspace' positions.
      part: ``'all'``; ``'frames'``: only the per-step part (trunk, context block, MLP,
        embedding layer; steps are independent of each other), returning ``[B, S,
        embed_dim]``; ``'temporal'``: only the rest (positional encoding, transformer, output),
        on what ``'frames'`` returned. ``temporal(frames(x)) == all(x)``: long videos can go
        through the per-step part in pieces and through the transformer whole.

    Returns:
      float32 ``[B, T // num_context, output_dim]``; step ``s`` covers frames
      ``s*num_context .. (s+1)*num_context - 1`` and is valid iff all of them are
      (``context_mask``).
    """
    if part not in ("all", "frames", "temporal"):
      raise ValueError(f"part must be 'all', 'frames' or 'temporal', got {part!r}")
    if part == "temporal":
      if frames.ndim != 3 or frames.shape[-1] != self.embed_dim:
        raise ValueError(f"part='temporal': expected features [B, S, {self.embed_dim}], got "
                         f"shape {frames.shape}")
      b, s = frames.shape[:2]
      step_mask = jnp.ones((b, s), bool) if mask is None else mask.astype(bool)
      if step_mask.shape != (b, s):
        raise ValueError(f"mask must be [B, S] = {(b, s)}, got shape {step_mask.shape}")
      return self._temporal(frames, step_mask, train, pe)
    if frames.ndim != 5 or frames.shape[-1] != 3:
      raise ValueError(f"frames must be [B, T, H, W, 3], got shape {frames.shape}")
    b, t = frames.shape[:2]
    nc = self.num_context
    if t % nc:
      raise ValueError(f"T={t} frames must divide by num_context={nc}")
    if mask is None:
      mask = jnp.ones((b, t), bool)
    if mask.shape != (b, t):
      raise ValueError(f"mask must be [B, T] = {(b, t)}, got shape {mask.shape}")
    mask = mask.astype(bool)
    x = self._per_step(frames, mask, train)
    if part == "frames":
      return x
    return self._temporal(x, context_mask(mask, nc), train, pe)

  def _per_step(self, frames: jax.Array, mask: jax.Array, train: bool) -> jax.Array:
    """``[B, T, H, W, 3]`` + ``[B, T]`` -> ``[B, T // num_context, embed_dim]``."""
    b, t = frames.shape[:2]
    nc = self.num_context
    bn_mask = mask if self.bn_mask_padding else jnp.ones_like(mask)

    # Trunk, one frame at a time (frames are independent images).
    bn_train = train and self.backbone_mode == "train"
    feats = self._trunk(frames.reshape((b * t,) + frames.shape[2:]), bn_mask.reshape(-1),
                        bn_train, mean_std=train or self.eval_normalize)
    if self.backbone_mode == "frozen":
      feats = jax.lax.stop_gradient(feats)

    # Conv3D context block over groups of nc frames: [B*S, nc, h, w, C].
    s = t // nc
    x = feats.reshape((b * s, nc) + feats.shape[1:])
    step_bn_mask = _nonempty(context_mask(bn_mask, nc).reshape(-1, 1, 1, 1, 1))
    if self.context_padding == "valid" and min(x.shape[2:4]) < 2 * self.context_layers + 1:
      raise ValueError(
          f"The trunk's {self.cut} map is {x.shape[2]}x{x.shape[3]} for {frames.shape[2]}x"
          f"{frames.shape[3]} images; {self.context_layers} valid 3x3 convs need at least "
          f"{2 * self.context_layers + 1}x{2 * self.context_layers + 1}: use larger images or "
          "config.model.context_padding='same'")
    for i in range(self.context_layers):
      x = ContextConv3D(self.context_width, self.context_padding, self.dtype, self.conv_grad,
                        name=f"context_conv_{i}")(x)
      x = _bn(self.dtype, self.bn_axis_name, f"context_bn_{i}")(
          x, use_running_average=not train, mask=step_bn_mask if train else None)
      x = nn.relu(x)
    x = jnp.max(x, axis=(1, 2, 3))  # Global max pool -> [B*S, width].

    for i, width in enumerate(self.mlp_sizes):
      x = nn.Dropout(self.mlp_dropout)(x, deterministic=not train)
      x = nn.relu(_dense(width, self.dtype, f"mlp_{i}")(x))
    x = _dense(self.embed_dim, self.dtype, "embedding")(x)
    return x.reshape(b, s, self.embed_dim)

  def _temporal(self, x: jax.Array, step_mask: jax.Array, train: bool,
                pe: Optional[jax.Array]) -> jax.Array:
    """``[B, S, embed_dim]`` + step mask ``[B, S]`` -> ``[B, S, output_dim]``."""
    b, s = x.shape[:2]
    if pe is None:
      pe = positional_encoding(s, self.embed_dim, self.pe_positions, self.pe_ref_length,
                               self.pe_official_cos)[None]
    elif pe.ndim != 3 or pe.shape[1:] != (s, self.embed_dim) or pe.shape[0] not in (1, b):
      raise ValueError(f"pe must be [B or 1, {s}, {self.embed_dim}], got shape {pe.shape}")
    x = x + jnp.asarray(pe, x.dtype)
    x = nn.Dropout(self.pe_dropout)(x, deterministic=not train)

    if self.attention_axis == "batch":  # Sequences = frame indices, tokens = batch entries.
      x, step_mask = jnp.swapaxes(x, 0, 1), jnp.ones((s, b), bool)
    for i in range(self.num_layers):
      x = TransformerLayer(self.num_heads, self.ffn_dim, self.transformer_dropout,
                           self.norm_first, self.dtype, name=f"transformer_{i}")(
                               x, step_mask, train)
    if self.attention_axis == "batch":
      x = jnp.swapaxes(x, 0, 1)

    x = _dense(self.output_dim, self.dtype, "output")(x).astype(jnp.float32)
    if self.l2_normalize:
      x = x / jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))
    return x


def context_mask(mask: jax.Array, num_context: int) -> jax.Array:
  """Frame mask ``[B, T]`` -> step mask ``[B, T // num_context]`` (a step needs all frames)."""
  b, t = mask.shape
  return jnp.all(mask.reshape(b, t // num_context, num_context), axis=-1)


def build_encoder(config: ml_collections.ConfigDict) -> LACEncoder:
  """``LACEncoder`` from a model config (``default_config()`` fields), with checks."""
  known = set(default_config().keys())
  unknown = sorted(set(config.keys()) - known)
  if unknown:
    raise ValueError(f"Unknown config.model fields {unknown}; expected a subset of {sorted(known)}")
  c = ml_collections.ConfigDict({**default_config().to_dict(), **config.to_dict()})
  if c.attention_axis not in ATTENTION_AXES:
    raise ValueError(f"config.model.attention_axis must be one of {ATTENTION_AXES}, "
                     f"got {c.attention_axis!r}")
  if c.backbone_mode not in BACKBONE_MODES:
    raise ValueError(f"config.model.backbone_mode must be one of {BACKBONE_MODES}, "
                     f"got {c.backbone_mode!r}")
  resnet.parse_cut(c.resnet_depth, c.cut)  # Raises on a bad depth/cut pair.
  if c.cut in ("pooled", "logits"):
    raise ValueError(f"config.model.cut={c.cut!r} gives no spatial map for the Conv3D block; "
                     "use conv4c, layer3 or layer4")
  if c.context_padding not in ("valid", "same"):
    raise ValueError(f"config.model.context_padding must be 'valid' or 'same', "
                     f"got {c.context_padding!r}")
  if c.conv_grad not in conv_lib.GRAD_IMPLS:
    raise ValueError(f"config.model.conv_grad must be one of {conv_lib.GRAD_IMPLS}, "
                     f"got {c.conv_grad!r}")
  if c.dtype not in DTYPES:
    raise ValueError(f"config.model.dtype must be one of {sorted(DTYPES)}, got {c.dtype!r}")
  if c.pe_positions not in PE_POSITIONS:
    raise ValueError(f"config.model.pe_positions must be one of {PE_POSITIONS}, "
                     f"got {c.pe_positions!r}")
  if c.num_context < 1 or c.trunk_chunk < 0:
    raise ValueError(f"config.model.num_context must be >= 1 and trunk_chunk >= 0, got "
                     f"{c.num_context} and {c.trunk_chunk}")
  if c.embed_dim % c.num_heads or c.embed_dim % 2:
    raise ValueError(f"config.model.embed_dim={c.embed_dim} must be even and divide by "
                     f"num_heads={c.num_heads}")
  return LACEncoder(
      resnet_depth=c.resnet_depth, cut=c.cut, backbone_mode=c.backbone_mode,
      trunk_chunk=c.trunk_chunk, trunk_remat=c.trunk_remat, conv_grad=c.conv_grad,
      bn_mask_padding=c.bn_mask_padding,
      bn_axis_name=c.bn_axis_name, num_context=c.num_context, context_width=c.context_width,
      context_layers=c.context_layers, context_padding=c.context_padding,
      mlp_sizes=tuple(c.mlp_sizes), mlp_dropout=c.mlp_dropout,
      embed_dim=c.embed_dim, pe_positions=c.pe_positions, pe_ref_length=c.pe_ref_length,
      pe_official_cos=c.pe_official_cos, pe_dropout=c.pe_dropout, num_layers=c.num_layers,
      num_heads=c.num_heads, ffn_dim=c.ffn_dim, transformer_dropout=c.transformer_dropout,
      norm_first=c.norm_first, attention_axis=c.attention_axis,
      eval_normalize=c.eval_normalize, output_dim=c.output_dim, l2_normalize=c.l2_normalize,
      dtype=DTYPES[c.dtype])


def jit_init(module: nn.Module, rng: jax.Array, *args: Any, **kwargs: Any) -> Dict[str, Any]:
  """``module.init(rng, *args, **kwargs)`` under jit, compiled at XLA backend level O0 on CPU.

  On CPU, LLVM spends seconds per parameter shape optimising the threefry random-number code
  (a tiny ResNet-18 init: 20 s at the default level, 5 s at O0); the init runs once, so its
  speed does not matter. The values equal the default compile's up to float rounding (~1e-7).
  """
  lowered = jax.jit(lambda r: module.init(r, *args, **kwargs)).lower(rng)
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return dict(flax.core.unfreeze(lowered.compile(compiler_options=options)(rng)))


def init_variables(model: LACEncoder, rng: jax.Array, frames_shape: Sequence[int],
                   backbone_weights: Optional[str] = None) -> Dict[str, Any]:
  """``{'params', 'batch_stats'}`` for ``model`` and frames of ``frames_shape`` [B, T, H, W, 3].

  With ``backbone_weights`` (a converted ``.npz`` or a torchvision checkpoint) the trunk gets
  those weights; without, it stays randomly initialised and a log line says so.
  """
  frames = jnp.zeros(tuple(frames_shape), jnp.uint8)
  mask = jnp.ones(tuple(frames_shape[:2]), bool)
  variables = jit_init(model, rng, frames, mask, train=False)
  if backbone_weights == RANDOM_WEIGHTS:
    logging.info("The ResNet-%d trunk starts from random weights (backbone_weights=%r).",
                 model.resnet_depth, RANDOM_WEIGHTS)
  elif backbone_weights:
    return load_backbone_weights(variables, backbone_weights, depth=model.resnet_depth)
  else:
    logging.warning("config.model.backbone_weights is unset: the ResNet-%d trunk starts from "
                    "random initialisation (no ImageNet weights).", model.resnet_depth)
  return variables


def load_backbone_weights(variables: Mapping[str, Any], path: str, depth: Optional[int] = None,
                          prefix: str = "backbone") -> Dict[str, Any]:
  """Returns ``variables`` with the trunk (``params/backbone``, ``batch_stats/backbone``) from
  ``path``: a file written by ``python -m lac_jax.models.convert`` or a torchvision checkpoint.

  Layers of the file beyond the model's cut are ignored. ``depth`` (the model's ResNet depth),
  when given, must match the file's. Raises ``CheckpointError`` naming the file and key on a
  depth mismatch, a missing entry or a shape mismatch.
  """
  flat = convert.load_flax_resnet_weights(path, depth)
  variables = dict(flax.core.unfreeze(variables))
  depth = int(flat[convert.META_DEPTH]) if convert.META_DEPTH in flat else None
  what = f"ResNet-{depth}" if depth else "ResNet"
  used = 0
  for collection in ("params", "batch_stats"):
    if prefix not in variables.get(collection, {}):
      raise ValueError(f"variables have no {collection}/{prefix} subtree to load {path} into")
    sub = convert.flatten_variables(variables[collection][prefix], f"{collection}/")
    new = {}
    for key, old in sub.items():
      if key not in flat:
        raise convert.CheckpointError(
            f"{path} ({what}) has no entry {key!r} needed by the model's trunk (wrong depth?)")
      value = np.asarray(flat[key])
      if value.shape != tuple(old.shape):
        raise convert.CheckpointError(
            f"{path} ({what}): {key!r} has shape {value.shape}, the model expects "
            f"{tuple(old.shape)} (wrong depth?)")
      new[key[len(collection) + 1:]] = jnp.asarray(value, old.dtype)
      used += 1
    variables[collection] = dict(variables[collection])
    variables[collection][prefix] = convert.unflatten_variables(new)
  n_file = sum(1 for k in flat if not k.startswith("meta/"))
  logging.info("Loaded %d backbone arrays from %s (%s); %d arrays beyond the cut unused.",
               used, path, what, n_file - used)
  return variables
