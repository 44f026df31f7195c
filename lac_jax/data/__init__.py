"""Datasets of lac_jax: every reader returns a list of `Video` (frames, per-frame labels).

``load_videos`` is the one entry point: the synthetic dataset (generated, no download), Pouring
(TCC TFRecords or the CARL/LAC release) and PennAction (CARL/LAC release). Real datasets decode
frames lazily on ``Video.frames``; ``lac_jax.data.store`` turns any list of Videos into a TFDS
``array_record`` store for streaming.
"""

from __future__ import annotations

import os
from typing import Optional, Union

from lac_jax.data.video import FrameSource, Video

DATASETS = ("synthetic", "pouring", "penn_action")
SPLITS = ("train", "val")
LABEL_MISMATCH_CHOICES = ("error", "resample")

__all__ = ["DATASETS", "SPLITS", "FrameSource", "Video", "load_videos"]


def load_videos(dataset: str, data_dir: Optional[Union[str, os.PathLike]], split: str,
                action: Optional[str] = None, *, image_size=None, label_mismatch: str = "error",
                synthetic_config=None) -> list[Video]:
  """Loads one split of a dataset as a list of `Video`.

  Args:
    dataset: ``'synthetic'``, ``'pouring'`` or ``'penn_action'``.
    data_dir: the dataset directory (``.../pouring`` or ``.../penn_action``, or their parent);
      ignored for ``'synthetic'``.
    split: ``'train'`` or ``'val'``.
    action: PennAction only: one of ``penn_action.ACTIONS`` or None for all 13. Pouring accepts
      None or ``'pouring'``; synthetic accepts None or ``'synthetic'``.
    image_size: real datasets: None (native size), an int (square, LAC: 224) or ``(h, w)``;
      frames are resized whole, aspect ratio not kept. Synthetic: must be None or equal the
      config's ``(height, width)`` (set the size there).
    label_mismatch: ``'error'`` or ``'resample'`` when a video's label count differs from its
      frame count (``'resample'``: ``labels[floor(j * L / T)]``, CARL's nearest rule).
    synthetic_config: ``lac_jax.data.synthetic.default_config()`` if None.

  Returns:
    Videos in the dataset's loader order (CARL's order for the real datasets).
  """
  if dataset not in DATASETS:
    raise ValueError(f"Unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
  if split not in SPLITS:
    raise ValueError(f"Unknown split {split!r} for dataset {dataset!r}; expected one of "
                     f"{list(SPLITS)}")
  if label_mismatch not in LABEL_MISMATCH_CHOICES:
    raise ValueError(f"label_mismatch must be one of {list(LABEL_MISMATCH_CHOICES)}, got "
                     f"{label_mismatch!r}")
  if dataset == "synthetic":
    from lac_jax.data import synthetic  # pylint: disable=g-import-not-at-top
    config = synthetic.default_config() if synthetic_config is None else synthetic_config
    if action not in (None, synthetic.ACTION):
      raise ValueError(f"dataset 'synthetic' has no action {action!r} (use None)")
    if image_size is not None:
      hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
      if hw != (config.height, config.width):
        raise ValueError(f"image_size {image_size!r} differs from the synthetic frame size "
                         f"({config.height}, {config.width}): set synthetic_config.height/width")
    return synthetic.load(split, config)
  if data_dir is None:
    raise ValueError(f"dataset {dataset!r} needs data_dir (the directory of its files)")
  if dataset == "pouring":
    from lac_jax.data import pouring  # pylint: disable=g-import-not-at-top
    if action not in (None, pouring.ACTION):
      raise ValueError(f"dataset 'pouring' has no action {action!r} (use None)")
    return pouring.load(data_dir, split, image_size=image_size, label_mismatch=label_mismatch)
  from lac_jax.data import penn_action  # pylint: disable=g-import-not-at-top
  return penn_action.load(data_dir, split, action, image_size=image_size,
                          label_mismatch=label_mismatch)
