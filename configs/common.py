"""Presets shared by the configs: the paper's setting and the official code's pipeline.

Config files import this module as ``configs.common``: run from the repository root (as the
README's commands do) or put the root on ``PYTHONPATH``.

Each component's defaults (``train.base_config()``) already are the paper's and the official
code's hyperparameters (ResNet-50 cut at conv4c, 64 frames per view, 2 videos per step, Adam
1e-4 with L2 1e-5, clip 10, per-epoch cosine over 300 epochs, gamma = tau = 0.8, var 10,
alpha 0.01, beta 1, gap penalties with lr 0.1); the presets only set what differs.
"""

import ml_collections

from lac_jax import train
from lac_jax.losses import lac

PRESETS = ("paper", "official_code")


def parse_arg(arg, **defaults):
  """``'key=value,key=value'`` (or bare values, in the order of ``defaults``) -> ConfigDict.

  Values take the type of their default (bools accept true/false/1/0). Unknown keys and
  unparsable values are errors naming the config argument (big_vision's ``parse_arg``).
  """
  out = ml_collections.ConfigDict(defaults)
  keys = list(defaults)
  for i, item in enumerate(a for a in (arg or "").split(",") if a):
    key, sep, value = item.partition("=")
    if not sep:
      if i >= len(keys):
        raise ValueError(f"config argument {arg!r}: {item!r} has no key=, and only {keys} are "
                         "accepted by position")
      key, value = keys[i], item
    if key not in defaults:
      raise ValueError(f"config argument {arg!r}: unknown key {key!r}; expected {keys}")
    default = defaults[key]
    try:
      if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0"):
          raise ValueError(value)
        out[key] = value.lower() in ("true", "1")
      else:
        out[key] = type(default)(value) if default is not None else value
    except ValueError:
      raise ValueError(f"config argument {arg!r}: {key}={value!r} is not a "
                       f"{type(default).__name__}") from None
  return out


def paper() -> ml_collections.ConfigDict:
  """The paper's setting on real videos: ImageNet ResNet-50 (``model.backbone_weights``
  required), 224 px frames; everything else is a component default."""
  config = train.base_config()
  config.model.require_backbone_weights = True  # no silent random init (=random opts out)
  config.data.image_size = 224  # official 224 x 224 (component default 64, for CPU runs)
  return config


def official_code(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Switches ``config`` (in place) to the official PyTorch code's pipeline
  (official-lac-code.md), one documented field per departure from the paper:

  * loss: LAC's ``'official_code'`` preset (keeping the gap learning rate and decay);
  * model: no L2 normalisation, the official positional-encoding cosine exponent, padded frames
    counted in BatchNorm statistics, the transformer attending over the batch axis
    (``attention_axis='batch'``), evaluation frames without ImageNet normalisation
    (``eval_normalize=False``);
  * data: the last partial batch of each epoch dropped (``drop_last``), the blur after each
    colour-jitter op (``augment.blur_per_jitter_op``).

  Not reproduced: the hand-written SW backward (wrong for gamma != 1: exact gradients are the
  point of this project) and the official code's unstable arithmetic. Returns ``config``.
  """
  loss = lac.default_config("official_code")
  loss.gap_lr, loss.gap_weight_decay = config.loss.gap_lr, config.loss.gap_weight_decay
  config.loss = loss
  m = config.model
  m.l2_normalize = False
  m.pe_official_cos = True
  m.bn_mask_padding = False
  m.attention_axis = "batch"
  m.eval_normalize = False
  config.data.drop_last = True
  config.data.augment.blur_per_jitter_op = True
  return config


def apply_preset(config: ml_collections.ConfigDict, preset: str) -> ml_collections.ConfigDict:
  """``config`` with ``preset`` ('paper': as it is; 'official_code': `official_code`)."""
  if preset not in PRESETS:
    raise ValueError(f"config argument preset: expected one of {PRESETS}, got {preset!r}")
  return official_code(config) if preset == "official_code" else config
