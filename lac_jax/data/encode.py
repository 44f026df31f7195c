"""Writing frames: H.264 mp4 files (PyAV) and folders of numbered PNG / JPEG images (Pillow)."""

from __future__ import annotations

import fractions
import os
from typing import Iterable, Union

import numpy as np

PathLike = Union[str, os.PathLike]


def _check_frame(frame: np.ndarray, index: int, what: str) -> np.ndarray:
  frame = np.asarray(frame)
  if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
    raise ValueError(
      f"{what}: frame {index} must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}"
    )
  return frame


def write_video(
  path: PathLike, frames: Iterable[np.ndarray], fps: float = 25.0, crf: int = 18
) -> int:
  """Writes uint8 RGB frames ``[H, W, 3]`` to an H.264 mp4 (yuv420p) and returns their number.

  All frames must have the first frame's size; odd sizes are cropped by one pixel (yuv420p needs
  even sizes). ``crf``: x264 quality (0 = lossless luma, 18 = visually lossless, 23 = default).
  The file is written to ``path + '.tmp'`` and renamed at the end, so a failed write leaves no
  partial video under ``path``.
  """
  import av  # pylint: disable=g-import-not-at-top

  path = os.fspath(path)
  if not fps > 0:
    raise ValueError(f"write_video {path}: fps must be > 0, got {fps!r}")
  tmp = path + ".tmp"
  count = 0
  try:
    with av.open(tmp, "w", format="mp4") as container:
      stream = None
      for count, frame in enumerate(frames, 1):
        frame = _check_frame(frame, count - 1, path)
        if stream is None:
          h, w = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
          if h == 0 or w == 0:
            raise ValueError(
              f"write_video {path}: frames of {frame.shape[:2]} pixels are too "
              "small (need at least 2 x 2)"
            )
          stream = container.add_stream(
            "libx264", rate=fractions.Fraction(float(fps)).limit_denominator(1001)
          )
          stream.height, stream.width, stream.pix_fmt = h, w, "yuv420p"
          stream.options = {"crf": str(int(crf))}
        if frame.shape[0] // 2 * 2 != h or frame.shape[1] // 2 * 2 != w:
          raise ValueError(
            f"write_video {path}: frame {count - 1} is {frame.shape[:2]}, the "
            f"first frame was {(h, w)}"
          )
        image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
        container.mux(stream.encode(image))
      if stream is None:
        raise ValueError(f"write_video {path}: no frames to write")
      container.mux(stream.encode())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return count


def write_frames(directory: PathLike, frames: Iterable[np.ndarray], ext: str = "png") -> int:
  """Writes frames as ``directory/000000.<ext>``, ``000001.<ext>``, ... and returns their number.

  ``ext``: 'png' (lossless) or 'jpg'. The directory is created if missing.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if ext not in ("png", "jpg", "jpeg"):
    raise ValueError(f"write_frames: ext must be 'png', 'jpg' or 'jpeg', got {ext!r}")
  directory = os.fspath(directory)
  os.makedirs(directory, exist_ok=True)
  count = 0
  for count, frame in enumerate(frames, 1):
    frame = _check_frame(frame, count - 1, directory)
    Image.fromarray(frame).save(os.path.join(directory, f"{count - 1:06d}.{ext}"))
  return count
