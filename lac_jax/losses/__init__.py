"""Training losses, each chosen by ``config.loss.name`` (big_vision style: a name -> a module).

A loss module ``lac_jax/losses/<name>.py``, listed in `MODULES`, defines
``default_config(preset='paper')``, ``check_config(config)`` and ``build(config) -> Loss`` (the
object the trainer calls, scenic style), optionally ``LAC_CODE_TRAINING`` (the official LAC
code's training settings, `lac_code_training`). The trainer, its logs and its progress line
handle whatever parts a loss returns. The contract in full: docs/extending.md#a-loss.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Mapping, Optional

from absl import logging
import jax
import ml_collections
import numpy as np

PRESETS = ("paper", "official_code")  # every loss: its own paper / the official LAC code
MODULES = {
  "lac": "lac_jax.losses.lac",  # the paper's loss
  "scl": "lac_jax.losses.scl",  # CARL's sequence contrastive loss
  "tcc": "lac_jax.losses.tcc",  # temporal cycle-consistency
  "tcn": "lac_jax.losses.tcn",  # time-contrastive networks (n-pairs)
  "lav": "lac_jax.losses.lav",  # soft-DTW + contrastive IDM
  "gta": "lac_jax.losses.gta",  # smoothed DTW + global cycle consistency
}
Array = jax.Array


class Loss:
  """What the training step needs from a loss.

  Attributes:
    params_key: key of the loss's learnable parameters in the train state's ``params`` (their
      own optimiser group), or None when it has none.
    learning_rate: peak learning rate of those parameters (same schedule as the encoder's).
    weight_decay: their L2 decay (added to the gradient, before Adam; never clipped).
    progress_parts: the parts the progress line shows (all parts go to the metric logs).
  """

  params_key: Optional[str] = None
  learning_rate: float = 0.0
  weight_decay: float = 0.0
  progress_parts: tuple[str, ...] = ("loss",)

  def __init__(self, cfg: ml_collections.ConfigDict):
    """Checks ``cfg`` (its module's ``check_config``) and keeps a resolved copy, ``self.cfg``."""
    module(cfg.get("name", "lac")).check_config(cfg)
    self.cfg = cfg.copy_and_resolve_references()

  def init_params(self, num_steps: int) -> dict[str, Array]:
    """Initial learnable parameters for views of ``num_steps`` embedding steps."""
    del num_steps
    return {}

  def __call__(
    self,
    params: Optional[Mapping[str, Array]],
    z: Array,
    steps: Array,
    mask: Optional[Array] = None,
    lengths: Optional[Array] = None,
  ) -> tuple[Array, dict[str, Array]]:
    """``(loss [], parts)`` for a batch of two-view embeddings.

    Args:
      params: the loss's parameters (``state.params[params_key]``), or None.
      z: ``[B, 2, T, E]`` embeddings of both views. steps: int ``[B, 2, T]`` frame indices.
      mask: bool ``[B, 2, T]``, False = padded frame.
      lengths: int ``[B]``, each video's number of frames (for normalised times), or None.
    Returns:
      The loss averaged over videos and a dict of scalar parts, ``'loss'`` included.
    """
    raise NotImplementedError

  def log_scalars(self, params: Optional[Mapping[str, Array]]) -> dict[str, Array]:
    """Scalars about the parameters worth logging each step (e.g. their means)."""
    del params
    return {}


def new_config(name: str, preset: str) -> ml_collections.ConfigDict:
  """The start of a loss module's ``default_config``: ``{'name': name}``, ``preset`` checked."""
  if preset not in PRESETS:
    raise ValueError(f"loss preset: expected one of {PRESETS}, got {preset!r}")
  return ml_collections.ConfigDict({"name": name})


def check_fields(
  config: ml_collections.ConfigDict,
  positive: tuple = (),
  nonnegative: tuple = (),
  choices: Optional[Mapping[str, tuple]] = None,
) -> None:
  """Raises ValueError naming ``loss.<field>``: ``positive`` fields finite and > 0,
  ``nonnegative`` ones finite and >= 0, ``choices`` fields among their values."""
  for name in positive:
    if not (np.isfinite(config[name]) and config[name] > 0):
      raise ValueError(f"config.loss.{name}: need a finite value > 0, got {config[name]!r}")
  for name in nonnegative:
    if not (np.isfinite(config[name]) and config[name] >= 0):
      raise ValueError(f"config.loss.{name}: need a finite value >= 0, got {config[name]!r}")
  for name, allowed in (choices or {}).items():
    if config[name] not in allowed:
      raise ValueError(f"config.loss.{name}: expected one of {allowed}, got {config[name]!r}")


def lac_code_training(name: str) -> Optional[dict]:
  """The official LAC code's training settings for method ``name``, or None when it has none
  (LAC itself): the loss module's ``LAC_CODE_TRAINING`` dict.

  One per baseline module, from the official LAC code's ``config/<dataset>/<method>.json``:
  ``batch`` (videos per step per dataset), ``frames`` (frames per view), ``epochs``, ``l2``
  (L2-normalised embeddings) and ``conv`` (whether its model is a conv embedder without a
  transformer); `configs/common.py` apply_method applies them.
  """
  return getattr(module(name), "LAC_CODE_TRAINING", None)


def module(name: str) -> ModuleType:
  """The module of loss ``name``; ValueError naming ``loss.name`` if there is none."""
  if name not in MODULES:
    raise ValueError(f"config.loss.name: expected one of {sorted(MODULES)}, got {name!r}")
  return importlib.import_module(MODULES[name])


def default_config(name: str = "lac", preset: str = "paper") -> ml_collections.ConfigDict:
  """The config of loss ``name`` (``config.loss``) with its defaults for ``preset``."""
  return module(name).default_config(preset)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad ``loss.<field>`` (unknown fields included)."""
  name = config.get("name", "lac")
  reference = default_config(name)
  unknown = sorted(set(config.keys()) - set(reference.keys()))
  if unknown:
    raise ValueError(
      f"config.loss: unknown fields {unknown} for loss {name!r}; expected a "
      f"subset of {sorted(reference.keys())}"
    )
  module(name).check_config(config)


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The loss section for ``config.name``: ``config`` itself, or the defaults of that loss when
  the section still holds another loss's fields (only ``name`` was overridden, e.g.
  ``--config.loss.name=tcc`` on a config written for LAC)."""
  name = config.get("name", "lac")
  if name not in MODULES or set(config.keys()) == set(default_config(name).keys()):
    return config
  fields = set(config.keys()) - {"name"}
  for other in MODULES:
    if other != name and fields == set(default_config(other).keys()) - {"name"}:
      logging.info(
        "config.loss.name=%r: the loss section held %r's fields; using %r's defaults",
        name,
        other,
        name,
      )
      return default_config(name)
  return config


def data_requirements(config: ml_collections.ConfigDict) -> dict[str, object]:
  """``{'sampling.views': ...}``-style data settings the loss needs (the module's optional
  ``data_requirements(config)``), applied by the trainer."""
  hook = getattr(module(config.get("name", "lac")), "data_requirements", None)
  return dict(hook(config)) if hook else {}


def build(config: ml_collections.ConfigDict) -> Loss:
  """The `Loss` that ``config`` (``config.loss``) describes."""
  check_config(config)
  return module(config.get("name", "lac")).build(config)
