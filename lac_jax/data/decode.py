"""Decoding of mp4 videos (PyAV) and JPEG frames (Pillow) to uint8 RGB arrays.

``image_size`` follows the official LAC code: the whole frame is resized to the target size
without keeping the aspect ratio and without cropping (LAC: ``cv2.resize`` to 224x224). We resize
with Pillow's bilinear filter, which antialiases when downscaling (``cv2.resize`` does not), so
pixels differ slightly from the official code.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

ImageSize = Optional[Union[int, Sequence[int]]]


def _target_hw(image_size: ImageSize) -> Optional[tuple[int, int]]:
  if image_size is None:
    return None
  if isinstance(image_size, (int, np.integer)):
    h = w = int(image_size)
  else:
    h, w = (int(s) for s in image_size)
  if h <= 0 or w <= 0:
    raise ValueError(f"image_size must be positive, got {image_size!r}")
  return h, w


def resize_frame(frame: np.ndarray, image_size: ImageSize) -> np.ndarray:
  """Bilinear resize of one uint8 ``[H, W, 3]`` frame to ``[h, w, 3]`` (aspect not kept)."""
  hw = _target_hw(image_size)
  if hw is None or frame.shape[:2] == hw:
    return frame
  from PIL import Image  # pylint: disable=g-import-not-at-top

  img = Image.fromarray(frame).resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
  return np.asarray(img, dtype=np.uint8)


def decode_jpeg(
  data: bytes, image_size: ImageSize = None, what: str = "JPEG frame", kind: str = "JPEG"
) -> np.ndarray:
  """Decodes JPEG (or any Pillow-readable) bytes to uint8 RGB ``[H, W, 3]``, optionally resized.

  Args:
    data: encoded image bytes.
    image_size: None (keep), an int (square) or ``(height, width)``.
    what: names the frame in error messages (e.g. ``"file.tfrecord record 3 frame 7"``).
    kind: names the expected format in error messages.

  Raises:
    ValueError: the bytes are not a decodable image.
  """
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(io.BytesIO(data)) as img:
      img.load()  # forces the full decode so truncation is detected here
      frame = np.asarray(img.convert("RGB"), dtype=np.uint8)
  except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
    raise ValueError(f"{what}: corrupt or unreadable {kind} ({len(data)} bytes): {e}") from e
  return resize_frame(frame, image_size)


@contextlib.contextmanager
def _video_stream(path: str) -> Iterator[tuple[Any, Any]]:
  """``(container, first video stream)`` of an open video file; FFmpeg errors inside the block
  become ValueErrors naming the file."""
  import av  # pylint: disable=g-import-not-at-top

  if not os.path.isfile(path):
    raise FileNotFoundError(f"video file not found: {path}")
  try:
    with av.open(path) as container:
      if not container.streams.video:
        raise ValueError(f"{path}: no video stream")
      yield container, container.streams.video[0]
  except av.FFmpegError as e:
    reason = getattr(e, "strerror", None) or str(e)  # str(e) repeats the path
    raise ValueError(f"{path}: corrupt or unreadable video ({reason})") from None


def iter_video_frames(
  path: Union[str, os.PathLike], image_size: ImageSize = None
) -> Iterator[np.ndarray]:
  """Yields the frames of a video file one by one, uint8 RGB ``[H, W, 3]`` (optionally resized).

  Raises (when iterated):
    FileNotFoundError: ``path`` does not exist.
    ValueError: the file is not a decodable video (or breaks off mid-stream).
  """
  for _, frame in iter_timed_frames(path, image_size):
    yield frame


def rotate_frame(frame: np.ndarray, rotation: float) -> np.ndarray:
  """``[H, W, C]`` turned upright: ``rotation`` is PyAV's ``VideoFrame.rotation``, the degrees
  the display matrix turns the stored frame counter-clockwise (phones: +-90)."""
  quarter = int(round(float(rotation or 0) / 90.0)) % 4
  return np.ascontiguousarray(np.rot90(frame, k=quarter)) if quarter else frame


def iter_timed_frames(
  path: Union[str, os.PathLike],
  image_size: ImageSize = None,
  keep: Optional[Callable[[int], int]] = None,
) -> Iterator[tuple[Optional[float], np.ndarray]]:
  """Yields ``(seconds or None, uint8 [H, W, 3] frame)`` in presentation order: the video
  stream only (audio is never decoded), rotation metadata applied, then resized.

  ``keep(i)``: how many times frame ``i`` (0-based, presentation order) is yielded (0 = skipped
  before its colour conversion and resize). Raises as `iter_video_frames`.
  """
  with _video_stream(os.fspath(path)) as (container, stream):
    stream.thread_type = "AUTO"
    for index, frame in enumerate(container.decode(stream)):
      copies = 1 if keep is None else keep(index)
      if not copies:
        continue
      array = resize_frame(
        rotate_frame(frame.to_ndarray(format="rgb24"), frame.rotation), image_size
      )
      for _ in range(copies):
        yield frame.time, array


def frame_times(path: Union[str, os.PathLike]) -> list[float]:
  """Presentation times (seconds, sorted) of the video stream's frames, from the packets alone
  (demuxing, no decoding). Variable frame rates come out as they are.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: the file is not a readable video.
  """
  with _video_stream(os.fspath(path)) as (container, stream):
    base = float(stream.time_base) if stream.time_base else 0.0
    pts = [p.pts for p in container.demux(stream) if p.size > 0 and p.pts is not None]
  return sorted(float(t) * base for t in pts)


def decode_video(path: Union[str, os.PathLike], image_size: ImageSize = None) -> np.ndarray:
  """Decodes every frame of a video file to uint8 RGB ``[T, H, W, 3]``.

  Args:
    path: an mp4 (or anything FFmpeg reads) with at least one video stream.
    image_size: None (keep), an int (square) or ``(height, width)``.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: the file is not a decodable video or holds no frames.
  """
  frames = list(iter_video_frames(path, image_size))
  if not frames:
    raise ValueError(f"{os.fspath(path)}: video holds no decodable frames")
  return np.stack(frames)


def video_info(path: Union[str, os.PathLike]) -> dict[str, Optional[float]]:
  """``{'frames': count or None, 'fps': average rate or None}`` from the container's header.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: the file is not a readable video.
  """
  with _video_stream(os.fspath(path)) as (_, stream):
    rate = stream.average_rate or stream.guessed_rate
    return {
      "frames": int(stream.frames) if stream.frames > 0 else None,
      "fps": float(rate) if rate else None,
    }


def count_video_frames(path: Union[str, os.PathLike]) -> int:
  """Number of frames of a video without decoding it (container metadata or packet count).

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: the file is not a readable video.
  """
  with _video_stream(os.fspath(path)) as (container, stream):
    if stream.frames > 0:
      return int(stream.frames)
    # No frame count in the header: count the packets (demuxing only, no decoding).
    return sum(1 for p in container.demux(stream) if p.size > 0)
