"""Presets shared by the configs: the paper's setting and the official code's pipeline.

Config files import this module as ``configs.common`` (they put the repository root on the path
themselves, so they run from any directory) and ``lac_jax.config``; penn_action.py and rendered.py
also import their dataset module, for its action names. Nothing imports the trainer.

Each component's defaults (``lac_jax.config.base_config()``) already are the paper's and the
official code's hyperparameters (ResNet-50 cut at conv4c, 64 frames per view, 2 videos per step,
Adam 1e-4 with L2 1e-5, clip 10, per-epoch cosine over 300 epochs, gamma = tau = 0.8, var 10, alpha
0.01, beta 1, gap penalties with lr 0.1); the presets only set what differs.
"""

import ml_collections

from lac_jax import config as config_lib

PRESETS = config_lib.PRESETS  # paper | official_code
METHODS = config_lib.METHODS  # LAC and the baselines, from the loss registry


def parse_arg(arg, choices=None, **defaults):
  """``'key=value,key=value'`` (or bare values) -> ConfigDict of ``defaults`` updated.

  A bare value goes to the key whose ``choices`` hold it, else to the keys in the order of
  ``defaults``. Values take the type of their default (bools accept true/false/1/0). Unknown
  keys, values outside their choices and unparsable values are errors naming the config
  argument (big_vision's ``parse_arg``).
  """
  choices = choices or {}
  out = ml_collections.ConfigDict(defaults)
  keys = list(defaults)
  free = [k for k in keys if k not in choices]
  for item in (a for a in (arg or "").split(",") if a):
    key, sep, value = item.partition("=")
    if not sep:
      value = item
      owners = [k for k, allowed in choices.items() if value in allowed]
      if owners:
        key = owners[0]
      elif free:
        key = free.pop(0)
      else:
        known = "; ".join(f"{k}: {list(v)}" for k, v in choices.items())
        raise ValueError(
          f"config argument {arg!r}: {item!r} has no key= and is no accepted "
          f"value" + (f" ({known})" if known else f" (keys: {keys})")
        )
    if key not in defaults:
      raise ValueError(f"config argument {arg!r}: unknown key {key!r}; expected {keys}")
    if key in choices and value not in choices[key]:
      raise ValueError(
        f"config argument {arg!r}: {key}={value!r} is not one of {list(choices[key])}"
      )
    default = defaults[key]
    try:
      if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0"):
          raise ValueError(value)
        out[key] = value.lower() in ("true", "1")
      else:
        out[key] = type(default)(value) if default is not None else value
    except ValueError:
      raise ValueError(
        f"config argument {arg!r}: {key}={value!r} is not a {type(default).__name__}"
      ) from None
  return out


def parse_method_preset(arg) -> ml_collections.ConfigDict:
  """``'[method][,preset]'`` -> ``{method, preset}``: a method of `METHODS` (default lac) and a
  preset of `PRESETS` (default paper), the config argument of most configs."""
  return parse_arg(arg, {"method": METHODS, "preset": PRESETS}, method="lac", preset="paper")


def parse_action_method_preset(arg, actions, action: str) -> ml_collections.ConfigDict:
  """``'[action][,method][,preset]'`` -> ``{action, method, preset}``: an action of ``actions``
  (default ``action``), a method of `METHODS` (default lac) and a preset of `PRESETS` (default
  paper), the config argument of the one-action-per-run configs."""
  return parse_arg(
    arg,
    {"action": actions, "method": METHODS, "preset": PRESETS},
    action=action,
    method="lac",
    preset="paper",
  )


def paper() -> ml_collections.ConfigDict:
  """The paper's setting on real videos: ImageNet ResNet-50 (``model.backbone_weights``
  required), 224 px frames; everything else is a component default."""
  config = config_lib.base_config()
  config.model.require_backbone_weights = True  # no silent random init (=random opts out)
  config.data.image_size = 224  # official 224 x 224 (component default 64, for CPU runs)
  return config


def cpu_sized() -> ml_collections.ConfigDict:
  """The setting sized for a 2-core CPU (the built-in datasets' configs): a small randomly
  initialised ResNet-18 trunk, a narrow head, 32 px frames, 300 steps. The dataset is the
  caller's to set."""
  config = config_lib.base_config()
  config.seed = 0  # model init, dropout, data order and augmentation
  # --- Model: a small randomly initialised ResNet-18 trunk cut early, a narrow head. ---
  m = config.model
  m.trunk_options.depth = 18  # small trunk (no ImageNet weights: random init)
  m.trunk_options.cut = "conv3a"  # first block of layer2: [N, 4, 4, 128] at 32 px
  m.context_width = 64  # Conv3D channels (paper 512)
  m.context_padding = "same"  # the cut map is only 4 x 4
  m.mlp_sizes = (128,)  # one hidden layer (paper 512, 512)
  m.embed_dim = 64  # transformer width (paper 256)
  m.num_heads = 4  # attention heads (paper 8)
  m.ffn_dim = 128  # transformer feed-forward size (paper 1024)
  m.num_layers = 1  # transformer layers (paper 2)
  m.output_dim = 32  # embedding size (paper 128)
  m.pe_positions = "none"  # no positional encoding (see the docstring)
  # --- Data ---
  d = config.data
  d.batch_size = 4  # videos per step (global)
  d.image_size = 32  # the pipeline and evaluation work at 32 x 32
  d.sampling.num_frames = 16  # frames per view (paper 64)
  # Milder colour augmentation than the official strengths (0.8 / 0.8 / 0.8 / 0.2, blur
  # 0.5, grayscale 0.2): at 32 px and a few hundred steps those leave too little to learn from.
  d.augment.brightness = 0.4
  d.augment.contrast = 0.4
  d.augment.saturation = 0.4
  d.augment.hue = 0.1
  d.augment.blur_prob = 0.0
  d.augment.grayscale_prob = 0.1
  # --- Train ---
  t = config.train
  t.num_steps = 300  # 25 epochs of the 48 videos (num_epochs is ignored)
  t.learning_rate = 1e-3  # a small model from scratch learns faster than ImageNet fine-tuning
  t.schedule = "cosine"  # per-step cosine to 0
  t.warmup_steps = 20  # linear warm-up
  t.log_every_steps = 50  # progress line cadence
  t.checkpoint_every_steps = 100  # checkpoint cadence (rerunning the command resumes)
  t.keep_checkpoints = 2  # checkpoints kept
  t.eval_at_start = True  # evaluate the untrained encoder too (the table's first row)
  return config


def apply_method(
  config: ml_collections.ConfigDict, method: str, dataset: str = ""
) -> ml_collections.ConfigDict:
  """``config`` trained with ``method``'s loss (its own paper's and code's defaults) and, for
  Pouring / PennAction, the official LAC code's training settings for it (batch, frames per
  view, epochs, embedding normalisation; the conv embedders as our head without transformer
  layers). Its context frames and backbones (BYOL / Inception) are not reproduced."""
  if method not in METHODS:
    raise ValueError(f"config argument method: expected one of {METHODS}, got {method!r}")
  if method == "lac":
    return config
  config.loss = config_lib.loss_config(method)
  s = config_lib.lac_code_training(method)
  if s and dataset in s["batch"]:
    config.data.batch_size = s["batch"][dataset]
    config.data.sampling.num_frames = s["frames"]
    config.train.num_epochs = s["epochs"]
    config.model.l2_normalize = s["l2"]
    if s["conv"]:
      config.model.num_layers = 0
      config.model.pe_positions = "none"
  return config


def official_code(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Switches ``config`` (in place) to the official PyTorch code's pipeline
  (docs/official_code.md, docs/baselines.md), one documented field per departure:

  * loss: the ``'official_code'`` preset of ``config.loss.name`` (for LAC keeping the gap
    learning rate and decay);
  * LAC's model: no L2 normalisation, the official positional-encoding cosine exponent, padded
    frames counted in BatchNorm statistics, the transformer attending over the batch axis
    (``attention_axis='batch'``);
  * every method: evaluation frames without ImageNet normalisation (``eval_normalize=False``),
    the last partial batch of each epoch dropped (``drop_last``), the blur after each
    colour-jitter op (``augment.blur_per_jitter_op``).

  Not reproduced: LAC's hand-written SW backward (wrong for gamma != 1: exact gradients are the
  point of this project), the official code's unstable arithmetic and its mixed-precision
  baselines (gradients clipped before unscaling). Returns ``config``.
  """
  name = config.loss.name
  loss = config_lib.loss_config(name, "official_code")
  if name == "lac":
    loss.gap_lr, loss.gap_weight_decay = config.loss.gap_lr, config.loss.gap_weight_decay
    m = config.model
    m.l2_normalize = False
    m.pe_official_cos = True
    m.bn_mask_padding = False
    m.attention_axis = "batch"
  config.loss = loss
  config.model.eval_normalize = False
  config.data.drop_last = True
  config.data.augment.blur_per_jitter_op = True
  return config


def apply_preset(config: ml_collections.ConfigDict, preset: str) -> ml_collections.ConfigDict:
  """``config`` with ``preset`` ('paper': as it is; 'official_code': `official_code`)."""
  if preset not in PRESETS:
    raise ValueError(f"config argument preset: expected one of {PRESETS}, got {preset!r}")
  return official_code(config) if preset == "official_code" else config
