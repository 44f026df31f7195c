"""What the dataset readers share: ``config.data.data_dir`` (`data_dir_of`), per-frame phase
labels matched to a video's frames (`match_labels`, ``data.label_mismatch``), and the CARL/LAC
release's pickles and entries (Pouring and PennAction: ``{split}.pkl`` + ``videos/*.mp4``) read
into lazy Videos.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Sequence

import numpy as np

from lac_jax.data import carl_pickle
from lac_jax.data import decode
from lac_jax.data.record import Video

LABEL_MISMATCH_CHOICES = ("error", "resample")


def data_dir_of(data: Any, name: str, download_help: str) -> str:
  """``data.data_dir`` (config.data), or a ValueError saying what it should hold."""
  if not data.get("data_dir"):
    raise ValueError(
      f"dataset {name!r} needs config.data.data_dir (the directory of its files). {download_help}"
    )
  return data.data_dir


def check_choice(value: str, choices: Sequence[str], flag: str) -> None:
  if value not in choices:
    raise ValueError(f"{flag} must be one of {list(choices)}, got {value!r}")


def match_labels(labels: Any, num_frames: int, label_mismatch: str, what: str) -> np.ndarray:
  """Checks/resamples per-frame labels to ``num_frames``; returns int32 ``[num_frames]``.

  Args:
    labels: ``[L]`` integer phase ids (array, list or tensor converted by ``carl_pickle``).
    num_frames: ``T``, the number of frames of the video.
    label_mismatch: ``'error'`` (raise if ``L != T``) or ``'resample'`` (``labels[floor(j*L/T)]``).
    what: names the video in error messages.
  """
  check_choice(label_mismatch, LABEL_MISMATCH_CHOICES, "label_mismatch")
  if num_frames <= 0:
    raise ValueError(f"{what}: the video holds no frames")
  arr = np.asarray(labels)
  if arr.ndim != 1 or arr.shape[0] == 0:
    raise ValueError(
      f"{what}: frame labels must be a non-empty 1-D sequence, got shape {arr.shape}"
    )
  if not (
    np.issubdtype(arr.dtype, np.integer)
    or (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)))
  ):
    raise ValueError(f"{what}: frame labels must be integers, got dtype {arr.dtype}")
  arr = arr.astype(np.int32)
  if arr.shape[0] == num_frames:
    return arr
  if label_mismatch == "error":
    raise ValueError(
      f"{what}: {arr.shape[0]} frame labels but {num_frames} frames; pass "
      "label_mismatch='resample' to nearest-resample the labels to the frame count"
    )
  idx = (np.arange(num_frames, dtype=np.int64) * arr.shape[0]) // num_frames
  return arr[idx]


def decode_mp4_checked(path: str, num_frames: int, image_size: decode.ImageSize) -> np.ndarray:
  """Decodes an mp4 and checks its frame count against the header count used for the labels."""
  frames = decode.decode_video(path, image_size)
  if frames.shape[0] != num_frames:
    raise ValueError(
      f"{path}: decoded {frames.shape[0]} frames but the container header says {num_frames}"
    )
  return frames


def read_carl_pickle(path: str) -> Any:
  """Torch-free load of a CARL/LAC ``*.pkl`` with a message naming the file on failure."""
  try:
    return carl_pickle.load_pickle(path)
  except FileNotFoundError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    if str(e).startswith(f"{path}: "):  # carl_pickle's messages already name the file
      raise ValueError(str(e)) from e
    raise ValueError(f"{path}: cannot read dataset pickle: {e}") from e


def video_from_carl_entry(
  entry: Any,
  index: int,
  data_dir: str,
  pkl_path: str,
  action: str,
  image_size: decode.ImageSize,
  label_mismatch: str,
) -> Video:
  """One lazy Video from one CARL pkl dict (``name``, ``frame_label``; mp4 in ``videos/``)."""
  what = f"{pkl_path} entry {index}"
  if not isinstance(entry, dict):
    raise ValueError(
      f"{what}: expected a dict with keys name, frame_label; got {type(entry).__name__}"
    )
  for key in ("name", "frame_label"):
    if key not in entry:
      raise ValueError(f"{what}: missing key {key!r} (has {sorted(entry)})")
  name = entry["name"]
  name = name.decode("utf-8") if isinstance(name, bytes) else str(name)
  # LAC opens videos/<name>.mp4 and ignores video_file; CARL's video_file is the same path.
  path = os.path.join(data_dir, "videos", f"{name}.mp4")
  if not os.path.isfile(path) and "video_file" in entry:
    alt = os.path.join(data_dir, str(entry["video_file"]))
    path = alt if os.path.isfile(alt) else path
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{what} ({name!r}): video file not found: {path}")
  num_frames = decode.count_video_frames(path)
  labels = match_labels(entry["frame_label"], num_frames, label_mismatch, f"{what} ({path})")
  return Video(
    name=name,
    action=action,
    labels=labels,
    source=functools.partial(decode_mp4_checked, path, num_frames, image_size),
  )
