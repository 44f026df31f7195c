"""ResNet-18/34/50 in Flax linen, NHWC, in torchvision's layout.

The layout is torchvision's "v1.5" ResNet, so a torchvision checkpoint maps one-to-one onto the
Flax tree (``lac_jax.models.convert``). The model returns the features at a named cut and only
creates the layers it needs. Images go in as uint8 in [0, 255] or float in [0, 1] and are
normalised here with the ImageNet mean/std. The layout, the torchvision -> Flax names and the
parameter count: docs/models.md#resnet.
"""

from __future__ import annotations

import math
import re
from typing import Any, Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from lac_jax.models import conv as conv_lib

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# depth -> (block kind, blocks per stage layer1..layer4).
RESNET_SPECS: Dict[int, Tuple[str, Tuple[int, int, int, int]]] = {
  18: ("basic", (2, 2, 2, 2)),
  34: ("basic", (3, 4, 6, 3)),
  50: ("bottleneck", (3, 4, 6, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)
NAMED_CUTS = ("layer1", "layer2", "layer3", "layer4", "pooled", "logits")

# torch BatchNorm defaults: eps 1e-5, momentum 0.1 (flax counts the other way: 1 - 0.1).
BN_EPS = 1e-5
BN_MOMENTUM = 0.9

# torchvision initialises convs with kaiming_normal(fan_out, relu) and Linear with
# kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)); we mirror both for random-init runs.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
dense_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def parse_cut(depth: int, cut: str) -> Tuple[int, int]:
  """Maps a cut name to ``(stage, blocks)``: run layer1..layer{stage-1}, then ``blocks`` blocks.

  Returns ``(5, 0)`` for ``pooled`` and ``(6, 0)`` for ``logits``.
  Accepted names: ``layer1``..``layer4`` (whole stage), ``pooled`` (global average pool, [N, C]),
  ``logits`` ([N, num_classes]) and ``conv{2..5}{a..}`` in the Caffe naming, where ``conv4c`` is
  the output of the third block of ``layer3`` (LAC's default).
  """
  if depth not in RESNET_SPECS:
    raise ValueError(f"ResNet depth must be one of {sorted(RESNET_SPECS)}, got {depth!r}")
  blocks = RESNET_SPECS[depth][1]
  if cut in ("layer1", "layer2", "layer3", "layer4"):
    stage = int(cut[-1])
    return stage, blocks[stage - 1]
  if cut == "pooled":
    return 5, 0
  if cut == "logits":
    return 6, 0
  match = re.fullmatch(r"conv([2-5])([a-z])", cut or "")
  if match:
    stage = int(match.group(1)) - 1
    count = ord(match.group(2)) - ord("a") + 1
    if count > blocks[stage - 1]:
      raise ValueError(
        f"cut {cut!r}: ResNet-{depth} layer{stage} has only {blocks[stage - 1]} blocks "
        f"(conv{stage + 1}a..conv{stage + 1}{chr(ord('a') + blocks[stage - 1] - 1)})"
      )
    return stage, count
  raise ValueError(
    f"Unknown ResNet cut {cut!r}: expected one of {NAMED_CUTS} or 'conv<2-5><a-f>' such as 'conv4c'"
  )


def cut_channels(depth: int, cut: str, num_classes: int = 1000) -> int:
  """Channel count of the features at ``cut`` (e.g. 1024 for ResNet-50 ``conv4c``)."""
  stage, _ = parse_cut(depth, cut)
  expansion = 4 if RESNET_SPECS[depth][0] == "bottleneck" else 1
  if stage == 6:
    return num_classes
  return STAGE_WIDTHS[min(stage, 4) - 1] * expansion


def normalize_images(
  images: jax.Array, dtype: Any = jnp.float32, mean_std: bool = True
) -> jax.Array:
  """ImageNet normalisation, ``[..., 3]`` -> ``[..., 3]`` in ``dtype``.

  uint8 input is read as [0, 255]; float input is assumed to be in [0, 1] (not checked, as
  that would need a host sync). ``mean_std=False``: only the [0, 1] scaling (the official LAC
  code's evaluation frames).
  """
  if images.shape[-1] != 3:
    raise ValueError(f"images must have 3 channels in the last axis, got shape {images.shape}")
  if jnp.issubdtype(images.dtype, jnp.integer):
    x = images.astype(jnp.float32) / 255.0
  else:
    x = images.astype(jnp.float32)
  if not mean_std:
    return x.astype(dtype)
  mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
  std = jnp.asarray(IMAGENET_STD, jnp.float32)
  return ((x - mean) / std).astype(dtype)


class _ConvBN(nn.Module):
  """Helpers shared by both block kinds: torchvision-style conv and BN factories."""

  dtype: Any = jnp.float32
  bn_axis_name: Optional[str] = None
  conv_grad: str = "auto"  # Conv backward: 'auto', 'matmul' or 'xla' (lac_jax.models.conv).

  def conv(self, features: int, kernel: int, stride: int, name: str) -> conv_lib.Conv:
    return conv_lib.Conv(
      features,
      kernel,
      stride,
      dtype=self.dtype,
      kernel_init=conv_init,
      grad=self.conv_grad,
      name=name,
    )

  def bn(self, name: str, use_running_average: bool) -> nn.BatchNorm:
    return nn.BatchNorm(
      use_running_average=use_running_average,
      momentum=BN_MOMENTUM,
      epsilon=BN_EPS,
      dtype=self.dtype,
      axis_name=self.bn_axis_name,
      use_fast_variance=False,
      name=name,
    )


class BasicBlock(_ConvBN):
  """ResNet-18/34 block: 3x3 (stride) -> 3x3, identity or 1x1 projection shortcut."""

  features: int = 64
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, mask: Optional[jax.Array] = None) -> jax.Array:
    ura = not train
    y = self.conv(self.features, 3, self.stride, "conv1")(x)
    y = nn.relu(self.bn("bn1", ura)(y, mask=mask))
    y = self.conv(self.features, 3, 1, "conv2")(y)
    y = self.bn("bn2", ura)(y, mask=mask)
    if self.stride != 1 or x.shape[-1] != self.features:
      x = self.conv(self.features, 1, self.stride, "downsample_0")(x)
      x = self.bn("downsample_1", ura)(x, mask=mask)
    return nn.relu(x + y)


class Bottleneck(_ConvBN):
  """ResNet-50 block (v1.5): 1x1 -> 3x3 (stride) -> 1x1 (4x), projection shortcut if needed."""

  features: int = 64
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, mask: Optional[jax.Array] = None) -> jax.Array:
    ura = not train
    out = self.features * 4
    y = self.conv(self.features, 1, 1, "conv1")(x)
    y = nn.relu(self.bn("bn1", ura)(y, mask=mask))
    y = self.conv(self.features, 3, self.stride, "conv2")(y)
    y = nn.relu(self.bn("bn2", ura)(y, mask=mask))
    y = self.conv(out, 1, 1, "conv3")(y)
    y = self.bn("bn3", ura)(y, mask=mask)
    if self.stride != 1 or x.shape[-1] != out:
      x = self.conv(out, 1, self.stride, "downsample_0")(x)
      x = self.bn("downsample_1", ura)(x, mask=mask)
    return nn.relu(x + y)


class ResNet(_ConvBN):
  """torchvision-layout ResNet returning the features at ``cut``.

  Attributes:
    depth: 18, 34 or 50.
    cut: where to stop (see ``parse_cut``): ``conv4c`` -> ``[N, H/16, W/16, 1024]`` for
      ResNet-50; ``layer4`` -> ``[N, H/32, W/32, 2048]``; ``pooled`` -> ``[N, 2048]``;
      ``logits`` -> ``[N, num_classes]``.
    num_classes: size of ``fc`` (1000 for ImageNet checkpoints).
    normalize_input: apply ``normalize_images`` to the input (turn off only if the caller
      already normalised).
    input_mean_std: with ``normalize_input``, subtract the ImageNet mean and divide by its
      standard deviation (False: only scale to [0, 1]).
    dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
    bn_axis_name: pmap axis over which BatchNorm averages batch statistics (None: local).
    conv_grad: how convolutions are differentiated: 'auto' (matmul weight gradients on CPU,
      XLA's elsewhere), 'matmul' or 'xla'; see ``lac_jax.models.conv``.
  """

  depth: int = 50
  cut: str = "conv4c"
  num_classes: int = 1000
  normalize_input: bool = True
  input_mean_std: bool = True

  @nn.compact
  def __call__(
    self, images: jax.Array, train: bool = False, mask: Optional[jax.Array] = None
  ) -> jax.Array:
    """``[N, H, W, 3]`` images -> features at ``cut``.

    Args:
      images: uint8 in [0, 255] or float in [0, 1] (or already normalised floats when
        ``normalize_input=False``).
      train: BatchNorm uses batch statistics and updates ``batch_stats`` (make it mutable).
      mask: optional bool ``[N]``: in train mode only images with True enter the BatchNorm
        batch statistics (padded frames are left out). Ignored when ``train=False``.
    """
    if images.ndim != 4:
      raise ValueError(f"ResNet expects images [N, H, W, 3], got shape {images.shape}")
    kind, blocks = RESNET_SPECS.get(self.depth, (None, None))
    stop_stage, stop_blocks = parse_cut(self.depth, self.cut)
    block_cls = Bottleneck if kind == "bottleneck" else BasicBlock
    bn_mask = None
    if train and mask is not None:
      bn_mask = jnp.asarray(mask, bool).reshape((-1, 1, 1, 1))

    if self.normalize_input:
      x = normalize_images(images, self.dtype, self.input_mean_std)
    else:
      x = images.astype(self.dtype)
    x = self.conv(64, 7, 2, "conv1")(x)
    x = nn.relu(self.bn("bn1", not train)(x, mask=bn_mask))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage in range(1, 5):
      n_blocks = blocks[stage - 1]
      if stage == stop_stage:
        n_blocks = stop_blocks
      elif stage > stop_stage:
        break
      for i in range(n_blocks):
        stride = 2 if (stage > 1 and i == 0) else 1
        x = block_cls(
          features=STAGE_WIDTHS[stage - 1],
          stride=stride,
          dtype=self.dtype,
          bn_axis_name=self.bn_axis_name,
          conv_grad=self.conv_grad,
          name=f"layer{stage}_{i}",
        )(x, train, mask=bn_mask)
    if stop_stage <= 4:
      return x
    x = jnp.mean(x, axis=(1, 2))
    if stop_stage == 5:
      return x
    return nn.Dense(
      self.num_classes,
      dtype=self.dtype,
      kernel_init=dense_init,
      bias_init=nn.initializers.zeros,
      name="fc",
    )(x)


def count_params(tree: Any) -> int:
  """Total number of scalars in a pytree of arrays (or ShapeDtypeStructs)."""
  return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree)))


def resnet_variable_shapes(
  depth: int = 50, cut: str = "logits", num_classes: int = 1000, image_size: int = 64
) -> Dict[str, Any]:
  """Abstract ``{'params': ..., 'batch_stats': ...}`` tree of a ResNet (no FLOPs spent)."""
  model = ResNet(depth=depth, cut=cut, num_classes=num_classes)
  dummy = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  return jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x), dummy)
