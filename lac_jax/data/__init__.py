"""Datasets of lac_jax, each a reader module registered in `DATASETS` by its name.

A dataset module defines ``NAME``, ``ACTIONS``, ``NUM_PHASES``, ``RESIZE_ON_LOAD`` and
``load_split(data, split, action, image_size) -> list[Video]`` (``data`` is ``config.data``),
optionally ``default_config()`` (its options, ``config.data.<name>``), ``num_phases(data)``,
``skipped(data, image_size)`` and ``DECODE_CACHE``. Real
datasets decode frames lazily on ``Video.frames``; ``lac_jax.data.store`` turns any list of
Videos into a TFDS ``array_record`` store for streaming. What each name means:
docs/data.md#datasets; adding one: docs/extending.md#a-dataset.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Optional, Union

import ml_collections

from lac_jax.data.record import FrameSource, Video

DATASETS = {
  "synthetic": "lac_jax.data.synthetic",  # generated, no download
  "pouring": "lac_jax.data.pouring",  # TCC TFRecords or the CARL/LAC release
  "penn_action": "lac_jax.data.penn_action",  # the CARL/LAC release
  "videos": "lac_jax.data.videos",  # a folder of the user's own videos, labels optional
  "rendered": "lac_jax.data.rendered",  # 3D physics actions rendered with MuJoCo, no download
}
SPLITS = ("train", "val")
LABEL_MISMATCH_CHOICES = ("error", "resample")
ALL_ACTIONS = ("", "all")  # config.data.action values (besides None) meaning every action

__all__ = [
  "DATASETS",
  "SPLITS",
  "FrameSource",
  "Video",
  "dataset",
  "load_split",
  "load_videos",
  "num_phases",
  "skipped",
  "eval_actions",
]


def dataset(name: str) -> ModuleType:
  """The reader module of dataset ``name``; ValueError naming the known ones otherwise."""
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; expected one of {list(DATASETS)}")
  return importlib.import_module(DATASETS[name])


def option_sections() -> dict[str, ml_collections.ConfigDict]:
  """``{name: options}`` for every dataset whose module has ``default_config()``: the sections
  ``config.data.<name>`` (e.g. ``config.data.synthetic``, ``config.data.videos``)."""
  sections = {}
  for name in DATASETS:
    make = getattr(dataset(name), "default_config", None)
    if make is not None:
      sections[name] = make()
  return sections


def _checked(data: ml_collections.ConfigDict, split: str) -> ModuleType:
  """The module of ``data.dataset``, after checking ``split`` and ``data.label_mismatch``."""
  module = dataset(data.dataset)
  if split not in SPLITS:
    raise ValueError(
      f"Unknown split {split!r} for dataset {data.dataset!r}; expected one of {list(SPLITS)}"
    )
  mismatch = data.get("label_mismatch", "error")
  if mismatch not in LABEL_MISMATCH_CHOICES:
    raise ValueError(
      f"label_mismatch must be one of {list(LABEL_MISMATCH_CHOICES)}, got {mismatch!r}"
    )
  return module


def load_split(
  data: ml_collections.ConfigDict, split: str, action: Optional[str] = None, image_size: Any = None
) -> list[Video]:
  """Videos of one split of the dataset ``data`` (``config.data``) names.

  ``image_size``: the size the pipeline works at; datasets that decode frames (``RESIZE_ON_LOAD``)
  decode them at it, the others keep their own size.
  """
  module = _checked(data, split)
  return module.load_split(data, split, action, image_size if module.RESIZE_ON_LOAD else None)


def load_videos(
  dataset_name: str,
  data_dir: Optional[Union[str, os.PathLike]],
  split: str,
  action: Optional[str] = None,
  *,
  image_size=None,
  label_mismatch: str = "error",
  synthetic_config=None,
) -> list[Video]:
  """Loads one split of a dataset as a list of `Video` (a notebook-friendly `load_split`).

  Args:
    dataset_name: a `DATASETS` key: ``'synthetic'``, ``'pouring'`` or ``'penn_action'``.
    data_dir: the dataset directory (``.../pouring`` or ``.../penn_action``, or their parent);
      ignored for ``'synthetic'``.
    split: ``'train'`` or ``'val'``.
    action: PennAction: one of ``penn_action.ACTIONS`` or None for all 13; the others accept
      None or their one action.
    image_size: real datasets: None (native size), an int (square, LAC: 224) or ``(h, w)``;
      frames are resized whole, aspect ratio not kept. Synthetic: must be None or equal the
      config's ``(height, width)`` (set the size there).
    label_mismatch: ``'error'`` or ``'resample'`` when a video's label count differs from its
      frame count (``'resample'``: ``labels[floor(j * L / T)]``, CARL's nearest rule).
    synthetic_config: ``lac_jax.data.synthetic.default_config()`` if None.

  Returns:
    Videos in the dataset's loader order (CARL's order for the real datasets).
  """
  data = ml_collections.ConfigDict(
    {
      "dataset": dataset_name,
      "data_dir": data_dir,
      "label_mismatch": label_mismatch,
      "synthetic": synthetic_config,
    }
  )
  return _checked(data, split).load_split(data, split, action, image_size)


def num_phases(
  dataset_name: str, action: Optional[str] = None, data: Optional[ml_collections.ConfigDict] = None
) -> Optional[int]:
  """Phases of ``action`` (default: the dataset's only action), or None if unknown;
  ``data`` (``config.data``) for datasets whose data names its phases."""
  module = dataset(dataset_name)
  if data is not None and hasattr(module, "num_phases"):
    return module.num_phases(data)
  if action is None and len(module.ACTIONS) == 1:
    action = module.ACTIONS[0]
  return module.NUM_PHASES.get(action)


def skipped(data: ml_collections.ConfigDict, image_size: Any = None) -> list[dict[str, str]]:
  """Inputs the dataset left out as unreadable (``data.skip_unreadable``): ``[{path, error}]``."""
  module = _checked(data, "train")
  if not hasattr(module, "skipped"):
    return []
  return module.skipped(data, image_size if module.RESIZE_ON_LOAD else None)


def with_cache_dir(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """``config`` with ``data.cache_dir`` = ``workdir/cache`` when unset and the dataset decodes
  into a cache (``DECODE_CACHE``, e.g. 'videos')."""
  cached = getattr(dataset(config.data.dataset), "DECODE_CACHE", False)
  if cached and not config.data.get("cache_dir"):
    with config.unlocked():
      config.data.cache_dir = os.path.join(workdir, "cache")
  return config


def write_skipped(data: ml_collections.ConfigDict, workdir: str) -> None:
  """Process 0 lists the inputs the dataset skipped as unreadable in ``workdir/skipped.json``
  (and removes a stale list when none was skipped)."""
  import jax  # pylint: disable=g-import-not-at-top  (keep `import lac_jax.data` light)
  from absl import logging  # pylint: disable=g-import-not-at-top
  from lac_jax import files  # pylint: disable=g-import-not-at-top

  left_out = skipped(data, data.image_size)
  path = os.path.join(workdir, "skipped.json")
  if jax.process_index() != 0:
    return
  if left_out:
    files.write_json(path, {"skipped": left_out})
    logging.warning("%d unreadable input(s) skipped, listed in %s", len(left_out), path)
  elif os.path.exists(path):
    os.remove(path)


def eval_actions(data: ml_collections.ConfigDict) -> list[Optional[str]]:
  """The actions evaluated one by one: every action of a multi-action dataset when
  ``data.action`` is None / '' / 'all', else the one action (None for single-action ones)."""
  module = dataset(data.dataset)
  action = data.get("action")
  if len(module.ACTIONS) > 1 and action in (None,) + ALL_ACTIONS:
    return list(module.ACTIONS)
  return [None if action in ALL_ACTIONS else action]
