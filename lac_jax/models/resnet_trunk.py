"""The ResNet trunk of the encoder (`lac_jax.models.trunks` name ``'resnet'``): torchvision's
ResNet-18/34/50 (`lac_jax.models.resnet`) cut at a named block, with ImageNet weights from
``python -m lac_jax.models.convert`` files or torchvision checkpoints.

Its options (``config.model.trunk_options``, `default_config`): ``depth`` and ``cut``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from absl import logging
import flax
import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from lac_jax.models import convert
from lac_jax.models import resnet


def default_config() -> ml_collections.ConfigDict:
  """The ResNet's options (``config.model.trunk_options``): the paper's ResNet-50 at conv4c."""
  c = ml_collections.ConfigDict()
  c.depth = 50  # 18, 34 or 50 (torchvision layout); 18 for fast CPU runs
  # Where the trunk stops: conv4c (LAC: 3rd block of layer3), layer3, conv3a ... (resnet.parse_cut)
  c.cut = "conv4c"
  return c


def check_config(options: ml_collections.ConfigDict) -> None:
  """Raises ValueError on a bad ``depth`` / ``cut`` pair or a cut without a feature map."""
  if options.depth not in resnet.RESNET_SPECS:
    raise ValueError(
      "config.model.trunk_options.depth: expected one of "
      f"{sorted(resnet.RESNET_SPECS)}, got {options.depth!r}"
    )
  try:
    resnet.parse_cut(options.depth, options.cut)
  except ValueError as e:
    raise ValueError(f"config.model.trunk_options.cut: {e}") from None
  if options.cut in ("pooled", "logits"):
    raise ValueError(
      f"config.model.trunk_options.cut: {options.cut!r} gives no spatial map for "
      "the Conv3D block; use conv4c, layer3 or layer4"
    )


def build(encoder: Any, mean_std: bool = True) -> nn.Module:
  """The ResNet of ``encoder.trunk_options`` (named ``'backbone'``)."""
  options = encoder.trunk_options
  return resnet.ResNet(
    depth=options["depth"],
    cut=options["cut"],
    dtype=encoder.dtype,
    bn_axis_name=encoder.bn_axis_name,
    conv_grad=encoder.conv_grad,
    input_mean_std=mean_std,
    name="backbone",
  )


def describe(encoder: Any) -> str:
  return f"ResNet-{encoder.trunk_options['depth']}"


def load_weights(variables: Mapping[str, Any], path: str, encoder: Any) -> Dict[str, Any]:
  """`load_resnet_weights` for ``encoder``'s depth."""
  return load_resnet_weights(variables, path, depth=encoder.trunk_options["depth"])


def load_resnet_weights(
  variables: Mapping[str, Any], path: str, depth: Optional[int] = None, prefix: str = "backbone"
) -> Dict[str, Any]:
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
          f"{path} ({what}) has no entry {key!r} needed by the model's trunk (wrong depth?)"
        )
      value = np.asarray(flat[key])
      if value.shape != tuple(old.shape):
        raise convert.CheckpointError(
          f"{path} ({what}): {key!r} has shape {value.shape}, the model expects "
          f"{tuple(old.shape)} (wrong depth?)"
        )
      new[key[len(collection) + 1 :]] = jnp.asarray(value, old.dtype)
      used += 1
    variables[collection] = dict(variables[collection])
    variables[collection][prefix] = convert.unflatten_variables(new)
  n_file = sum(1 for k in flat if not k.startswith("meta/"))
  logging.info(
    "Loaded %d backbone arrays from %s (%s); %d arrays beyond the cut unused.",
    used,
    path,
    what,
    n_file - used,
  )
  return variables
