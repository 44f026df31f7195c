"""The one in-memory record every dataset reader returns."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Union

import numpy as np

FrameSource = Union[np.ndarray, Callable[[], np.ndarray]]


@dataclasses.dataclass
class Video:
  """One video and its per-frame phase labels.

  Attributes:
    name: unique name within its dataset and split (e.g. the mp4 stem).
    action: action class (``'pouring'``, ``'baseball_pitch'``, ...).
    labels: int32 ``[T]`` phase id per frame; values < 0 mean "no label" and are ignored by
      the metrics.
    source: either the frames themselves, uint8 ``[T, H, W, 3]`` RGB, or a zero-argument
      callable that decodes and returns them (lazy, for datasets that do not fit in memory).
  """

  name: str
  action: str
  labels: np.ndarray
  source: FrameSource = dataclasses.field(repr=False)

  def __post_init__(self) -> None:
    self.labels = np.asarray(self.labels, dtype=np.int32)
    if self.labels.ndim != 1:
      raise ValueError(
        f"Video {self.name!r}: labels must be 1-D [T], got shape {self.labels.shape}"
      )

  @property
  def num_frames(self) -> int:
    return int(self.labels.shape[0])

  @property
  def frames(self) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` RGB frames (decoded on each access when lazy)."""
    frames = self.source() if callable(self.source) else self.source
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
      raise ValueError(
        f"Video {self.name!r}: frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}"
      )
    if frames.shape[0] != self.num_frames:
      raise ValueError(
        f"Video {self.name!r}: {frames.shape[0]} frames but {self.num_frames} labels"
      )
    return frames


def check_generated_size(image_size: Any, height: int, width: int, section: str) -> None:
  """A generated dataset's frames have the size it renders them at: ``image_size`` (None, an
  int or ``(h, w)``) must be None or ``(height, width)``; else a ValueError naming ``section``."""
  if image_size is None:
    return
  hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
  if hw != (height, width):
    raise ValueError(
      f"image_size {image_size!r} differs from config.data.{section}'s frame size "
      f"({height}, {width}): set data.{section}.height/width"
    )
