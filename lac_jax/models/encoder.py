"""LAC frame encoder: trunk per frame -> Conv3D context -> MLP -> transformer over time.

``[B, T, H, W, 3]`` frames + ``[B, T]`` mask -> ``[B, T / num_context, output_dim]``.
``build_encoder(default_config())`` makes the module, ``init_variables`` its variables. Call
``model.apply(variables, frames, mask, train=...)`` (with ``train=True``: ``rngs={'dropout':
key}``, ``mutable=['batch_stats']``). The layers, the padding mask and BatchNorm:
docs/models.md#the-encoder.
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
from lac_jax.models import resnet
from lac_jax.models import trunks

BACKBONE_MODES = ("train", "frozen", "bn_frozen")
ATTENTION_AXES = ("time", "batch")
RANDOM_WEIGHTS = "random"  # backbone_weights value: random init on purpose
PE_POSITIONS = ("linspace", "arange", "none")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def default_config() -> ml_collections.ConfigDict:
  """Model config (``config.model``): paper defaults; switches reach the official code."""
  c = ml_collections.ConfigDict()
  # --- Trunk (lac_jax.models.trunks) and its options ---
  c.trunk = "resnet"  # The per-frame trunk, a lac_jax.models.trunks.TRUNKS name.
  # Its options: the trunk module's default_config() (resnet: depth=50, cut='conv4c').
  c.trunk_options = trunks.default_options("resnet")
  # 'train': all trainable, BN on batch statistics in training (official code);
  # 'frozen': no gradient into the trunk (stop_gradient), BN on running statistics, and the
  # optimiser leaves it alone (no weight decay, no Adam state: optim.make_optimizer);
  # 'bn_frozen': trainable weights, BN on running statistics.
  c.backbone_mode = "train"
  # Converted torchvision weights (python -m lac_jax.models.convert), or a .pth/.safetensors
  # converted on the fly. None: random init (logged); 'random': random init, on purpose.
  c.backbone_weights = config_dict.placeholder(str)
  # True: training refuses to start while backbone_weights is None (the paper configs, which
  # start from ImageNet); --config.model.backbone_weights=random opts out.
  c.require_backbone_weights = False
  c.trunk_chunk = 0  # Frames per trunk call (nn.scan over chunks); 0 = all B*T frames at once.
  c.trunk_remat = False  # Rematerialise the trunk in the backward pass (less memory, more time).
  # Training with trunk_chunk=0 and trunk_remat=False: the bytes a step may use per device
  # (lac_jax.memory); if the whole trunk does not fit, it runs in chunks (rematerialised)
  # small enough. 0: the device's memory (GPU/TPU: as reported; CPU: 75% of the host's);
  # < 0: never chunk on our own.
  c.memory_budget_gb = 0.0
  # Conv backward pass: 'auto' (matmul gradients on CPU, where XLA's are slow, above all
  # inside the chunked trunk's scan; XLA's elsewhere), 'matmul' or 'xla'. See models/conv.py.
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


def positional_encoding(
  length: int,
  dim: int,
  positions: str = "linspace",
  ref_length: int = 32,
  official_cos: bool = False,
) -> np.ndarray:
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
  pe[:, 1::2] = np.cos(pos[:, None] / 10000.0**cos_exp)[:, : dim // 2]
  return pe.astype(np.float32)


def _bn(dtype: Any, axis_name: Optional[str], name: str) -> nn.BatchNorm:
  return nn.BatchNorm(
    momentum=resnet.BN_MOMENTUM,
    epsilon=resnet.BN_EPS,
    dtype=dtype,
    axis_name=axis_name,
    use_fast_variance=False,
    name=name,
  )


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
        x,
        kernel,
        (1, 1, 1),
        ((1, 1), (sp, sp), (sp, sp)),
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
      )
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
        num_heads=self.num_heads,
        qkv_features=d,
        out_features=d,
        dropout_rate=self.dropout,
        broadcast_dropout=False,
        dtype=self.dtype,
        force_fp32_for_softmax=True,
        name="attention",
      )(y, y, mask=attn_mask, deterministic=not train)
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

  The fields are those of ``default_config()`` (their meaning and defaults are there; ``dtype``
  as a JAX dtype, ``trunk_options`` as a FrozenDict), minus the weight-file fields; build with
  ``build_encoder``.
  """

  trunk: str
  trunk_options: Mapping[str, Any]  # the trunk's resolved options (a FrozenDict)
  backbone_mode: str
  trunk_chunk: int
  trunk_remat: bool
  conv_grad: str
  bn_mask_padding: bool
  bn_axis_name: Optional[str]
  num_context: int
  context_width: int
  context_layers: int
  context_padding: str
  mlp_sizes: Sequence[int]
  mlp_dropout: float
  embed_dim: int
  pe_positions: str
  pe_ref_length: int
  pe_official_cos: bool
  pe_dropout: float
  num_layers: int
  num_heads: int
  ffn_dim: int
  transformer_dropout: float
  norm_first: bool
  attention_axis: str
  eval_normalize: bool
  output_dim: int
  l2_normalize: bool
  dtype: Any

  def _trunk(
    self, frames: jax.Array, mask: jax.Array, bn_train: bool, mean_std: bool = True
  ) -> jax.Array:
    """``[N, H, W, 3]`` + ``[N]`` -> trunk features ``[N, h, w, C]``, optionally chunked.

    ``mean_std=False``: the input is only scaled to [0, 1] (no ImageNet mean/std)."""
    trunk = trunks.module(self.trunk).build(self, mean_std)

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
  def __call__(
    self,
    frames: jax.Array,
    mask: Optional[jax.Array] = None,
    train: bool = False,
    pe: Optional[jax.Array] = None,
    part: str = "all",
  ) -> jax.Array:
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
        raise ValueError(
          f"part='temporal': expected features [B, S, {self.embed_dim}], got shape {frames.shape}"
        )
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
    feats = self._trunk(
      frames.reshape((b * t,) + frames.shape[2:]),
      bn_mask.reshape(-1),
      bn_train,
      mean_std=train or self.eval_normalize,
    )
    if self.backbone_mode == "frozen":
      feats = jax.lax.stop_gradient(feats)

    # Conv3D context block over groups of nc frames: [B*S, nc, h, w, C].
    s = t // nc
    x = feats.reshape((b * s, nc) + feats.shape[1:])
    step_bn_mask = _nonempty(context_mask(bn_mask, nc).reshape(-1, 1, 1, 1, 1))
    if self.context_padding == "valid" and min(x.shape[2:4]) < 2 * self.context_layers + 1:
      raise ValueError(
        f"The trunk's map ({self.trunk} {dict(self.trunk_options)}) is {x.shape[2]}x"
        f"{x.shape[3]} for {frames.shape[2]}x{frames.shape[3]} images; "
        f"{self.context_layers} valid 3x3 convs need at least "
        f"{2 * self.context_layers + 1}x{2 * self.context_layers + 1}: use larger images or "
        "config.model.context_padding='same'"
      )
    for i in range(self.context_layers):
      x = ContextConv3D(
        self.context_width,
        self.context_padding,
        self.dtype,
        self.conv_grad,
        name=f"context_conv_{i}",
      )(x)
      x = _bn(self.dtype, self.bn_axis_name, f"context_bn_{i}")(
        x, use_running_average=not train, mask=step_bn_mask if train else None
      )
      x = nn.relu(x)
    x = jnp.max(x, axis=(1, 2, 3))  # Global max pool -> [B*S, width].

    for i, width in enumerate(self.mlp_sizes):
      x = nn.Dropout(self.mlp_dropout)(x, deterministic=not train)
      x = nn.relu(_dense(width, self.dtype, f"mlp_{i}")(x))
    x = _dense(self.embed_dim, self.dtype, "embedding")(x)
    return x.reshape(b, s, self.embed_dim)

  def _temporal(
    self, x: jax.Array, step_mask: jax.Array, train: bool, pe: Optional[jax.Array]
  ) -> jax.Array:
    """``[B, S, embed_dim]`` + step mask ``[B, S]`` -> ``[B, S, output_dim]``."""
    b, s = x.shape[:2]
    if pe is None:
      pe = positional_encoding(
        s, self.embed_dim, self.pe_positions, self.pe_ref_length, self.pe_official_cos
      )[None]
    elif pe.ndim != 3 or pe.shape[1:] != (s, self.embed_dim) or pe.shape[0] not in (1, b):
      raise ValueError(f"pe must be [B or 1, {s}, {self.embed_dim}], got shape {pe.shape}")
    x = x + jnp.asarray(pe, x.dtype)
    x = nn.Dropout(self.pe_dropout)(x, deterministic=not train)

    if self.attention_axis == "batch":  # Sequences = frame indices, tokens = batch entries.
      x, step_mask = jnp.swapaxes(x, 0, 1), jnp.ones((s, b), bool)
    for i in range(self.num_layers):
      x = TransformerLayer(
        self.num_heads,
        self.ffn_dim,
        self.transformer_dropout,
        self.norm_first,
        self.dtype,
        name=f"transformer_{i}",
      )(x, step_mask, train)
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


# Model-config fields that are not module fields: read when the variables are made.
# Config fields read by the trainer, not the module.
_WEIGHT_FIELDS = ("backbone_weights", "require_backbone_weights", "memory_budget_gb")


def build_encoder(config: ml_collections.ConfigDict) -> LACEncoder:
  """``LACEncoder`` from a model config (``default_config()`` fields), with checks."""
  known = set(default_config().keys())
  unknown = sorted(set(config.keys()) - known)
  if unknown:
    raise ValueError(
      f"config.model: unknown fields {unknown}; expected a subset of {sorted(known)}"
    )
  c = ml_collections.ConfigDict({**default_config().to_dict(), **config.to_dict()})
  c.trunk_options = trunks.resolve_options(c.trunk, c.trunk_options)
  choices = {
    "backbone_mode": BACKBONE_MODES,
    "attention_axis": ATTENTION_AXES,
    "context_padding": ("valid", "same"),
    "conv_grad": conv_lib.GRAD_IMPLS,
    "dtype": tuple(DTYPES),
    "pe_positions": PE_POSITIONS,
  }
  for name, allowed in choices.items():
    if c[name] not in allowed:
      raise ValueError(f"config.model.{name}: expected one of {tuple(allowed)}, got {c[name]!r}")
  if c.num_context < 1 or c.trunk_chunk < 0:
    raise ValueError(
      f"config.model.num_context must be >= 1 and trunk_chunk >= 0, got "
      f"{c.num_context} and {c.trunk_chunk}"
    )
  if c.embed_dim % c.num_heads or c.embed_dim % 2:
    raise ValueError(
      f"config.model.embed_dim={c.embed_dim} must be even and divide by num_heads={c.num_heads}"
    )
  kwargs = {k: v for k, v in c.items() if k not in _WEIGHT_FIELDS}
  kwargs.update(
    mlp_sizes=tuple(c.mlp_sizes),
    dtype=DTYPES[c.dtype],
    trunk_options=flax.core.FrozenDict(c.trunk_options.to_dict()),
  )
  return LACEncoder(**kwargs)


def jit_init(module: nn.Module, rng: jax.Array, *args: Any, **kwargs: Any) -> Dict[str, Any]:
  """``module.init(rng, *args, **kwargs)`` under jit, compiled at XLA backend level O0 on CPU.

  On CPU, LLVM spends seconds per parameter shape optimising the threefry random-number code
  (docs/performance.md has a measurement); the init runs once, so its speed does not matter.
  The values equal the default compile's up to float rounding (~1e-7).
  """
  lowered = jax.jit(lambda r: module.init(r, *args, **kwargs)).lower(rng)
  options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
  return dict(flax.core.unfreeze(lowered.compile(compiler_options=options)(rng)))


def init_variables(
  model: LACEncoder,
  rng: jax.Array,
  frames_shape: Sequence[int],
  backbone_weights: Optional[str] = None,
) -> Dict[str, Any]:
  """``{'params', 'batch_stats'}`` for ``model`` and frames of ``frames_shape`` [B, T, H, W, 3].

  With ``backbone_weights`` (a converted ``.npz`` or a torchvision checkpoint) the trunk gets
  those weights; without, it stays randomly initialised and a log line says so.
  """
  frames = jnp.zeros(tuple(frames_shape), jnp.uint8)
  mask = jnp.ones(tuple(frames_shape[:2]), bool)
  variables = jit_init(model, rng, frames, mask, train=False)
  what = trunks.module(model.trunk).describe(model)
  if backbone_weights == RANDOM_WEIGHTS:
    logging.info(
      "The %s trunk starts from random weights (backbone_weights=%r).", what, RANDOM_WEIGHTS
    )
  elif backbone_weights:
    return load_backbone_weights(variables, backbone_weights, model)
  else:
    logging.warning(
      "config.model.backbone_weights is unset: the %s trunk starts from random "
      "initialisation (no ImageNet weights).",
      what,
    )
  return variables


def load_backbone_weights(
  variables: Mapping[str, Any], path: str, model: LACEncoder
) -> Dict[str, Any]:
  """``variables`` with the trunk's pretrained weights from ``path`` (the trunk module's
  ``load_weights``; for ResNets a converted ``.npz`` or a torchvision checkpoint)."""
  return trunks.module(model.trunk).load_weights(variables, path, model)
