"""The config schema: every section's defaults, the checks, and saved configs read back.

``base_config(loss)`` is the full config a ``configs/*.py`` file starts from: sections ``seed``,
``model`` (`encoder.default_config`), ``data`` (`pipeline.default_config`), ``loss``
(`losses.default_config`), ``eval`` (`eval_config`) and ``train`` (`train_config`).
`prepare_config` resolves and checks one; every error names ``config.<section>.<field>``.
Importing this module loads no trainer, optimiser, evaluator, metrics or checkpointing code.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

from absl import logging
import ml_collections
from ml_collections import config_dict

from lac_jax import losses
from lac_jax.data import pipeline
from lac_jax.models import encoder as encoder_lib
from lac_jax.models import trunks

SCHEDULES = ("cosine_epochs", "cosine", "constant")
OPTIMIZERS = ("adam_l2", "adamw")
ON_NONFINITE = ("skip", "stop")
SECTIONS = ("seed", "model", "data", "loss", "eval", "train")
METHODS = tuple(losses.MODULES)  # config.loss.name values: LAC and the baselines
PRESETS = losses.PRESETS  # every loss: its own paper's settings or the official LAC code's
loss_config = losses.default_config  # (name, preset) -> the loss section
lac_code_training = losses.lac_code_training  # name -> the official LAC code's settings

# Fields that moved: {old dotted path: new}. Runs saved before the move still load.
RENAMED = {
  "model.resnet_depth": "model.trunk_options.depth",
  "model.cut": "model.trunk_options.cut",
  "data.val_fraction": "data.videos.val_fraction",
  "data.fps": "data.videos.fps",
  "data.max_frames": "data.videos.max_frames",
}


def train_config() -> ml_collections.ConfigDict:
  """The training section (``config.train``); defaults = the official LAC code's."""
  c = ml_collections.ConfigDict()
  # --- Length ---
  c.num_epochs = 300  # passes over the training videos (official 300); steps = ceil(E * N / B)
  c.num_steps = 0  # > 0: train exactly this many steps instead (num_epochs is then ignored)
  # --- Encoder optimiser ---
  c.optimizer = "adam_l2"  # 'adam_l2': Adam + L2 decay added to the gradient (official torch
  # Adam(weight_decay)) | 'adamw': decoupled decay (AdamW)
  c.learning_rate = 1e-4  # peak encoder learning rate (official 1e-4)
  c.weight_decay = 1e-5  # encoder weight decay (official 1e-5)
  c.grad_clip_norm = 10.0  # clip the encoder gradient's global norm (official 10); 0 = off
  c.adam_b1 = 0.9  # Adam beta1 (torch default)
  c.adam_b2 = 0.999  # Adam beta2 (torch default)
  c.adam_eps = 1e-8  # Adam epsilon (torch default)
  # 'cosine_epochs': lr0 (1 + cos(pi e / (E + 1))) / 2, constant within epoch e (official
  # CosineAnnealingLR(T_max=epochs+1) stepped per epoch) | 'cosine': per step to 0 at the end
  # | 'constant'
  c.schedule = "cosine_epochs"
  c.warmup_steps = 0  # linear warm-up from 0 over this many steps, then the schedule (official 0)
  # --- Non-finite loss or gradient: the update is never applied (params, optimiser state and
  # BN statistics keep their values); the step, its loss parts and the count are reported ---
  c.on_nonfinite = "skip"  # 'skip': go on | 'stop': raise FloatingPointError at once
  c.max_nonfinite_steps = 20  # 'skip': raise once more than this many steps were skipped
  # --- Logs, checkpoints, evaluation ---
  c.log_every_steps = 10  # progress line + metrics.jsonl row (means over the interval)
  c.checkpoint_every_steps = 500  # orbax checkpoint cadence (one more at the end); 0 = end only
  c.keep_checkpoints = 3  # checkpoints kept in workdir/checkpoints
  c.eval_every_steps = 0  # periodic evaluation (lac_jax.evaluate); 0 = only at the end
  c.eval_at_start = False  # also evaluate the untrained encoder (step 0) for the side-by-side table
  c.eval_at_end = True  # evaluate the final state
  c.tensorboard = True  # TensorBoard event files in workdir/tensorboard (needs tensorboardX)
  c.stop_at_step = 0  # > 0: checkpoint and exit after this step, no final evaluation; the
  # same command resumes (jobs with a wall-time limit, preemption tests)
  return c


def eval_config() -> ml_collections.ConfigDict:
  """The evaluation config (``config.eval``): the metrics' fields, whose defaults are the official
  LAC evaluation (`lac_jax.metrics`), then the embedding pass's (`lac_jax.evaluate`)."""
  config = ml_collections.ConfigDict()
  # Fractions of *training videos* for classification and progression: the first
  # n = max(1, int(f * N)) videos in loader order. The last one gives the 'progress' column.
  config.fractions = (0.1, 0.5, 1.0)
  # 'logistic': LogisticRegression(lbfgs, multinomial, C=1, max_iter=100000) as the official
  # code; 'svm': SVC(rbf, C=1, gamma='scale', one-vs-one) as the paper (and TCC) say.
  config.classifier = "logistic"
  # Number of phases K (key events = K - 1). None: 1 + the largest label seen (train and val).
  # Pass it for PennAction actions whose last phase might be absent from every video.
  config.num_classes = config_dict.placeholder(int)
  # Progression, a video without phase k: 'zero_length' (phase k has no frames, so event k is
  # the frame before the first frame of a later phase, or the last frame if there is none) or
  # 'drop' (the video is left out of event k's fit and R²). See `metrics.progression_targets`.
  config.missing_phase = "zero_length"
  # Kendall's tau stride over each video's frames (LAC: 5 on both datasets; CARL: 2 PennAction).
  config.tau_stride = 5
  # Cycle consistency (label-free): frame stride over each video (the tau stride by default).
  config.cycle_stride = 5
  # AP@K: the values of K, and the stride (the official code uses the tau stride).
  config.retrieval_ks = (5, 10, 15)
  config.retrieval_stride = 5
  # Frame distance for tau's nearest neighbours and retrieval: 'sqeuclidean' (official),
  # 'euclidean' (same neighbours) or 'cosine'.
  config.distance = "sqeuclidean"
  # Cap on BLAS threads while the metrics run (threadpoolctl, a scikit-learn dependency);
  # None = library default. 1 avoids oversubscribed OpenBLAS on a busy host (docs/performance.md).
  config.blas_threads = config_dict.placeholder(int)
  # The embedding pass. Frames are resized to image_size x image_size; None =
  # config.data.image_size (`evaluate.evaluate_dataset`) or the frames' own size
  # (`evaluate.evaluate`).
  config.image_size = config_dict.placeholder(int)
  # Explicit length buckets (frames), e.g. (64, 128, 256); None = the automatic ladder below.
  config.bucket_sizes = config_dict.placeholder(tuple)
  # Automatic ladder: bucket_min * bucket_growth^k, each rounded up to a multiple of
  # bucket_multiple; only the rungs some video needs are compiled. Waste <= bucket_growth x.
  config.bucket_min = 32
  config.bucket_growth = 1.5
  config.bucket_multiple = 32
  # Frames per trunk call in the embedding pass (bounds activation memory for long videos);
  # 0 = the model's own config.model.trunk_chunk.
  config.trunk_chunk = 32
  # Splits used as the probes' training and test sets.
  config.train_split = "train"
  config.val_split = "val"
  # Seconds between progress lines of the embedding pass.
  config.log_every_s = 30.0
  return config


def base_config(loss: str = "lac") -> ml_collections.ConfigDict:
  """The full config with every component's defaults; ``configs/*.py`` start from it.

  Sections: ``seed`` (model init, dropout, data order and augmentation), ``model``
  (`encoder.default_config`), ``data`` (`pipeline.default_config`), ``loss``
  (`losses.default_config(loss)`), ``eval`` (`eval_config`), ``train``
  (`train_config`).
  """
  config = ml_collections.ConfigDict()
  config.seed = 1  # official: hard-coded 1
  config.model = encoder_lib.default_config()
  config.data = pipeline.default_config()
  config.loss = losses.default_config(loss)
  config.eval = eval_config()
  config.train = train_config()
  return config


def check_backbone_weights(config: ml_collections.ConfigDict) -> None:
  """Before any data is read: ``model.backbone_weights`` is set when the config requires it
  (the paper configs) and names an existing file unless it is ``'random'``."""
  weights = config.model.backbone_weights
  if weights is None and config.model.require_backbone_weights:
    raise ValueError(
      "config.model.backbone_weights is unset, and this config starts from ImageNet weights "
      "as the paper does: download https://download.pytorch.org/models/resnet50-11ad3fa6.pth, "
      "convert it with python -m lac_jax.models.convert --checkpoint=resnet50-11ad3fa6.pth "
      "--output=resnet50_flax.npz, then pass --config.model.backbone_weights=resnet50_flax.npz "
      "(or --config.model.backbone_weights=random to train from random weights)"
    )
  if weights not in (None, encoder_lib.RANDOM_WEIGHTS) and not os.path.isfile(weights):
    raise FileNotFoundError(
      f"config.model.backbone_weights={weights!r}: no such file (a "
      "converted .npz, or a torchvision .pth / .safetensors)"
    )


def _check_known(
  section: str, got: ml_collections.ConfigDict, reference: ml_collections.ConfigDict
) -> None:
  """Unknown keys (typos) in a config section are errors, recursively."""
  unknown = sorted(set(got.keys()) - set(reference.keys()))
  if unknown:
    raise ValueError(
      f"config.{section}: unknown fields {unknown}; expected a subset of {sorted(reference.keys())}"
    )
  for key in got.keys():
    sub, ref = got[key], reference[key]
    if isinstance(sub, ml_collections.ConfigDict) and isinstance(ref, ml_collections.ConfigDict):
      _check_known(f"{section}.{key}", sub, ref)


def saved_config_template(values: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """`base_config` for the values of a saved ``config.json`` (its loss's fields)."""
  return base_config(values.get("loss", {}).get("name", "lac"))


def prepare_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A checked, resolved copy of ``config``: the loss section of ``config.loss.name``
  (`losses.resolve`) and the data settings that loss needs (`losses.data_requirements`)."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    if "model" in config:
      model = config.model
      model.trunk_options = trunks.resolve_options(
        model.get("trunk", "resnet"), model.get("trunk_options", {})
      )
    if "loss" in config:
      config.loss = losses.resolve(config.loss)
      for path, value in losses.data_requirements(config.loss).items():
        section, field = config.data, path
        while "." in field:
          head, field = field.split(".", 1)
          section = section[head]
        if section[field] != value:
          logging.info("config.data.%s=%r (loss %r needs it)", path, value, config.loss.name)
          section[field] = value
  check_config(config)
  return config


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad ``config.<section>.<field>``."""
  missing = [s for s in SECTIONS if s not in config]
  unknown = sorted(set(config.keys()) - set(SECTIONS))
  if missing or unknown:
    raise ValueError(
      f"config: expected the sections {list(SECTIONS)}; missing {missing}, unknown {unknown}"
    )
  model = encoder_lib.default_config()
  model.trunk_options = trunks.default_options(config.model.get("trunk", "resnet"))
  _check_known("model", config.model, model)
  _check_known("data", config.data, pipeline.default_config())
  _check_known("eval", config.eval, eval_config())
  _check_known("train", config.train, train_config())
  if not isinstance(config.seed, int):
    raise ValueError(f"config.seed: expected an int, got {config.seed!r}")
  losses.check_config(config.loss)
  t = config.train
  choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "on_nonfinite": ON_NONFINITE}
  for name, allowed in choices.items():
    if t[name] not in allowed:
      raise ValueError(f"config.train.{name}: expected one of {allowed}, got {t[name]!r}")
  for name in ("learning_rate",):
    if not (math.isfinite(t[name]) and t[name] > 0):
      raise ValueError(f"config.train.{name}: need a finite value > 0, got {t[name]!r}")
  for name in ("weight_decay", "grad_clip_norm", "adam_eps"):
    if not (math.isfinite(t[name]) and t[name] >= 0):
      raise ValueError(f"config.train.{name}: need a finite value >= 0, got {t[name]!r}")
  for name in ("adam_b1", "adam_b2"):
    if not 0 <= t[name] < 1:
      raise ValueError(f"config.train.{name}: need a value in [0, 1), got {t[name]!r}")
  for name in (
    "num_epochs",
    "num_steps",
    "warmup_steps",
    "max_nonfinite_steps",
    "checkpoint_every_steps",
    "eval_every_steps",
    "stop_at_step",
  ):
    if not isinstance(t[name], int) or t[name] < 0:
      raise ValueError(f"config.train.{name}: need an int >= 0, got {t[name]!r}")
  if t.num_steps == 0 and t.num_epochs == 0:
    raise ValueError("config.train.num_epochs and num_steps are both 0: nothing to train")
  for name in ("log_every_steps", "keep_checkpoints"):
    if not isinstance(t[name], int) or t[name] < 1:
      raise ValueError(f"config.train.{name}: need an int >= 1, got {t[name]!r}")
  d = config.data
  for name, value in (
    ("image_size", d.image_size),
    ("batch_size", d.batch_size),
    ("sampling.num_frames", d.sampling.num_frames),
  ):
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"config.data.{name}: need an int >= 1, got {value!r}")
  nc = config.model.num_context
  if config.data.sampling.num_frames % nc:
    raise ValueError(
      f"config.data.sampling.num_frames={config.data.sampling.num_frames} must "
      f"divide by config.model.num_context={nc}"
    )


def method_title(config: ml_collections.ConfigDict) -> str:
  """The trained method's name for titles: 'LAC', 'TCC', ... (the loss's registry name)."""
  return str(config.loss.get("name", "lac")).upper()
