"""Pouring reader: TCC's TFRecords or the CARL/LAC release (``{split}.pkl`` + ``videos/*.mp4``).

The layout is detected per split in ``data_dir`` (or ``data_dir/pouring``); if both are present
the TFRecords win (the original JPEG frames; the mp4s are a lossy re-encode). Shards are read in
the order CARL wrote its pkl, so "the first n videos" agree across layouts. Frames decode lazily;
only labels are held in memory. ``label_mismatch``: ``'error'`` or ``'resample'`` (CARL's index
rule). Record fields, shard order and the resampling rule: docs/data.md#pouring.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
from typing import Any, Optional, Sequence

import numpy as np

from lac_jax.data import decode
from lac_jax.data import labels as labels_lib
from lac_jax.data import tfrecord
from lac_jax.data.record import Video

NAME = ACTION = "pouring"  # lac_jax.data.DATASETS key; the one action
ACTIONS = (ACTION,)
NUM_PHASES = {ACTION: 5}  # TCC/CARL/LAC DATASET_TO_NUM_CLASSES (key events = phases - 1)
RESIZE_ON_LOAD = True  # frames are decoded at the pipeline's image size
SPLITS = ("train", "val")

TFRECORD_URLS = (
  "https://storage.googleapis.com/tcc-pouring/pouring_train-0-of-2.tfrecord",
  "https://storage.googleapis.com/tcc-pouring/pouring_train-1-of-2.tfrecord",
  "https://storage.googleapis.com/tcc-pouring/pouring_val-0-of-1.tfrecord",
)
CARL_URL = "https://drive.google.com/drive/folders/1hvA4bDqPnxjiVM4c4mxm-UPOuO1lAVxW"
LAC_URL = "https://drive.google.com/file/d/14xjBRqx2xtyO0rXU2RVYGdFxyWS_Qkv5/view"

DOWNLOAD_HELP = (
  "Put either TCC's TFRecords (pouring_train-0-of-2.tfrecord, pouring_train-1-of-2.tfrecord, "
  "pouring_val-0-of-1.tfrecord; download: " + ", ".join(TFRECORD_URLS) + ") or the CARL/LAC "
  "release (train.pkl, val.pkl, videos/<name>.mp4; CARL: "
  + CARL_URL
  + " , LAC: "
  + LAC_URL
  + ") in that directory."
)


# ------------------------------------------------------------------------------------------------
# Pouring.


def _tfrecord_files(root: str, split: str) -> list[str]:
  files = [f for f in glob.glob(os.path.join(root, f"pouring_{split}-*")) if os.path.isfile(f)]
  return sorted(files)


def find_layout(data_dir: str, split: str) -> tuple[str, str]:
  """Returns ``(layout, root)`` with layout ``'tfrecord'`` or ``'carl'`` for this split.

  Raises:
    FileNotFoundError: neither layout is found; the message says what goes where and where to
      download it.
  """
  labels_lib.check_choice(split, SPLITS, "split")
  data_dir = os.fspath(data_dir)
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"Pouring data directory not found: {data_dir}. {DOWNLOAD_HELP}")
  for root in (data_dir, os.path.join(data_dir, "pouring")):
    if _tfrecord_files(root, split):
      return "tfrecord", root
    if os.path.isfile(os.path.join(root, f"{split}.pkl")):
      return "carl", root
  raise FileNotFoundError(
    f"No Pouring {split!r} data in {data_dir}: found neither pouring_{split}-*-of-*.tfrecord "
    f"nor {split}.pkl. {DOWNLOAD_HELP}"
  )


def decode_record_frames(
  path: str, offset: int, index: int, num_frames: int, image_size: decode.ImageSize
) -> np.ndarray:
  """Re-reads one TFRecord SequenceExample and decodes its JPEGs to uint8 ``[T, H, W, 3]``."""
  # CRCs were verified when the file was scanned at load time; re-check the length CRC only.
  data = tfrecord.read_record_at(path, offset, index, verify_crc=False)
  proto = tfrecord.parse_sequence_example(data, f"{path}: record {index}")
  jpegs = [f.bytes_list.value[0] for f in proto.feature_lists.feature_list["video"].feature]
  if len(jpegs) != num_frames:
    raise ValueError(f"{path}: record {index}: {len(jpegs)} frames, expected {num_frames}")
  return np.stack(
    [
      decode.decode_jpeg(b, image_size, f"{path}: record {index} frame {t}")
      for t, b in enumerate(jpegs)
    ]
  )


def _video_from_record(
  data: bytes, path: str, offset: int, index: int, image_size: decode.ImageSize, label_mismatch: str
) -> Video:
  what = f"{path}: record {index}"
  proto = tfrecord.parse_sequence_example(data, what)
  context, lists = proto.context.feature, proto.feature_lists.feature_list
  for key in ("video", "frame_labels"):
    if key not in lists:
      raise ValueError(f"{what}: SequenceExample has no feature list {key!r} (has {sorted(lists)})")
  if "name" not in context or not context["name"].bytes_list.value:
    raise ValueError(f"{what}: SequenceExample has no context bytes feature 'name'")
  name = context["name"].bytes_list.value[0].decode("utf-8")
  frames = lists["video"].feature
  if any(len(f.bytes_list.value) != 1 for f in frames):
    raise ValueError(f"{what} ({name!r}): each 'video' feature must hold exactly one JPEG")
  num_frames = len(frames)
  if "len" in context and context["len"].int64_list.value:
    declared = int(context["len"].int64_list.value[0])
    if declared != num_frames:
      raise ValueError(
        f"{what} ({name!r}): context 'len' is {declared} but 'video' holds {num_frames} frames"
      )
  raw_labels = []
  for t, f in enumerate(lists["frame_labels"].feature):
    if len(f.int64_list.value) != 1:
      raise ValueError(f"{what} ({name!r}): frame_labels[{t}] must hold exactly one int64")
    raw_labels.append(f.int64_list.value[0])
  labels = labels_lib.match_labels(
    np.asarray(raw_labels, np.int64), num_frames, label_mismatch, f"{what} ({name!r})"
  )
  return Video(
    name=name,
    action=ACTION,
    labels=labels,
    source=functools.partial(decode_record_frames, path, offset, index, num_frames, image_size),
  )


def load_tfrecords(
  files: Sequence[str],
  image_size: decode.ImageSize = None,
  label_mismatch: str = "error",
  verify_crc: bool = True,
) -> list[Video]:
  """Lazy Videos from TCC SequenceExample TFRecords, shards interleaved round-robin."""
  files = sorted(files)  # lexicographic, as CARL's sorted(glob(...))
  per_file = []
  for path in files:
    videos = [
      _video_from_record(data, path, offset, i, image_size, label_mismatch)
      for i, (offset, data) in enumerate(tfrecord.iter_records_with_offsets(path, verify_crc))
    ]
    per_file.append(videos)
  out = []
  for i in range(max((len(v) for v in per_file), default=0)):
    out.extend(v[i] for v in per_file if i < len(v))
  return out


def load_carl(
  root: str, split: str, image_size: decode.ImageSize = None, label_mismatch: str = "error"
) -> list[Video]:
  """Lazy Videos from the CARL/LAC Pouring release (``{split}.pkl`` + ``videos/``)."""
  pkl_path = os.path.join(root, f"{split}.pkl")
  entries = labels_lib.read_carl_pickle(pkl_path)
  if not isinstance(entries, list):
    raise ValueError(
      f"{pkl_path}: expected a list of video dicts (CARL Pouring format), got "
      f"{type(entries).__name__}"
    )
  if not os.path.isdir(os.path.join(root, "videos")):
    raise FileNotFoundError(
      f"{os.path.join(root, 'videos')}: videos directory of {pkl_path} not found. {DOWNLOAD_HELP}"
    )
  return [
    labels_lib.video_from_carl_entry(e, i, root, pkl_path, ACTION, image_size, label_mismatch)
    for i, e in enumerate(entries)
  ]


def load(
  data_dir: str, split: str, *, image_size: decode.ImageSize = None, label_mismatch: str = "error"
) -> list[Video]:
  """All Pouring videos of a split (lazy frames), in CARL's loader order.

  Args:
    data_dir: directory holding either layout (see module docstring), or its parent.
    split: ``'train'`` or ``'val'``.
    image_size: None (native size), an int (square, as LAC's 224) or ``(height, width)``.
    label_mismatch: ``'error'`` or ``'resample'`` (see module docstring).
  """
  labels_lib.check_choice(label_mismatch, labels_lib.LABEL_MISMATCH_CHOICES, "label_mismatch")
  layout, root = find_layout(data_dir, split)
  logging.info("Pouring %s: reading the %s layout in %s", split, layout, root)
  if layout == "tfrecord":
    return load_tfrecords(_tfrecord_files(root, split), image_size, label_mismatch)
  return load_carl(root, split, image_size, label_mismatch)


def load_split(
  data: Any, split: str, action: Optional[str] = None, image_size: decode.ImageSize = None
) -> list[Video]:
  """The registry entry (`lac_jax.data.load_split`): ``split`` of ``data.data_dir``."""
  if action not in (None, ACTION):
    raise ValueError(f"dataset 'pouring' has no action {action!r} (use None)")
  return load(
    labels_lib.data_dir_of(data, NAME, DOWNLOAD_HELP),
    split,
    image_size=image_size,
    label_mismatch=data.get("label_mismatch", "error"),
  )
