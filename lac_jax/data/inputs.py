"""A user's inputs: video files PyAV decodes and folders of jpg/png frames, found by path."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

from lac_jax.data import decode

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class InputError(ValueError):
  """A video file or frame folder that cannot be read; the message names it."""


# ------------------------------------------------------------------------------------------
# Inputs: video files and folders of frames.


def natural_key(name: str) -> list[Any]:
  """Sort key that orders ``frame2.png`` before ``frame10.png``."""
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def input_name(path: str) -> str:
  """The name outputs get: a file's stem, or a folder's own name."""
  path = os.path.normpath(os.path.expanduser(path))
  base = os.path.basename(path)
  return base if os.path.isdir(path) else os.path.splitext(base)[0]


@dataclasses.dataclass(frozen=True)
class InputVideo:
  """A user's video: a file PyAV decodes, or a folder of jpg/png frames sorted by name.

  Attributes:
    path: as given. name: `input_name`. kind: ``'video'`` or ``'frames'``.
    num_frames: frame count (a video's from its header, None when the header has none).
    fps: frames per second when known (videos), else None.
    files: a folder's frame files, in order.
  """

  path: str
  name: str
  kind: str
  num_frames: Optional[int]
  fps: Optional[float]
  files: tuple[str, ...] = ()

  def frames(
    self, resize: Optional[Callable[[np.ndarray], np.ndarray]] = None
  ) -> Iterator[np.ndarray]:
    """Yields uint8 RGB ``[H, W, 3]`` frames in order (through ``resize`` when given).

    Raises (when iterated): InputError naming the file that cannot be decoded.
    """
    resize = resize or (lambda frame: frame)
    if self.kind == "frames":
      for file in self.files:
        try:
          with open(file, "rb") as f:
            data = f.read()
          frame = decode.decode_jpeg(data, what=file, kind="image")
        except (OSError, ValueError) as e:
          raise InputError(str(e)) from None
        yield resize(frame)
      return
    try:
      for frame in decode.iter_video_frames(os.path.expanduser(self.path)):
        yield resize(frame)
    except (OSError, ValueError) as e:
      raise InputError(one_line(e, os.path.expanduser(self.path), self.path)) from None

  def read(self, resize: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> np.ndarray:
    """All frames, uint8 ``[T, H, W, 3]`` (``resize`` must give them one size)."""
    frames = list(self.frames(resize))
    if not frames:
      raise InputError(f"{self.path}: holds no decodable frames")
    return np.stack(frames)


def open_input(path: Union[str, os.PathLike]) -> InputVideo:
  """Checks ``path`` and reads its header (nothing is decoded yet).

  Raises:
    InputError: no such path, a folder without jpg/png frames, or a file PyAV cannot open as a
      video; the message names the path.
  """
  path = os.fspath(path)
  full = os.path.expanduser(path)
  if not os.path.exists(full):
    raise InputError(f"{path}: no such file or directory")
  if os.path.isdir(full):
    files = sorted(
      (
        f
        for f in os.listdir(full)
        if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(full, f))
      ),
      key=natural_key,
    )
    if not files:
      raise InputError(f"{path}: folder holds no {'/'.join(IMAGE_EXTENSIONS)} frames")
    return InputVideo(
      path,
      input_name(path),
      "frames",
      len(files),
      None,
      tuple(os.path.join(full, f) for f in files),
    )
  try:
    info = decode.video_info(full)
  except FileNotFoundError:
    raise InputError(f"{path}: no such file") from None
  except (OSError, ValueError) as e:
    raise InputError(one_line(e, full, path)) from None
  return InputVideo(path, input_name(path), "video", info["frames"], info["fps"])


def one_line(error: BaseException, full: str, path: str) -> str:
  """``error``'s message naming ``path`` once, at the start."""
  message = str(error).replace(full, path)
  return message if message.startswith(path) else f"{path}: {message}"
