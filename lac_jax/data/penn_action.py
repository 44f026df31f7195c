"""PennAction reader for the CARL/LAC release (``{split}.pkl`` + ``videos/<name>.mp4``).

``{split}.pkl`` is ``(dataset, action_to_indices)``; one action is selected as LAC does, with
``[dataset[i] for i in action_to_indices[k]]``, and ``action=None`` returns all videos in pkl
order. Frames decode lazily (about 35 GB at 224 px) and training streams through a prepared
store (``lac_jax.data.store``). The pickle's fields and the label/frame count rule:
docs/data.md#pennaction.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from lac_jax.data import decode
from lac_jax.data import labels as labels_lib
from lac_jax.data.record import Video

NAME = "penn_action"  # lac_jax.data.DATASETS key
RESIZE_ON_LOAD = True  # frames are decoded at the pipeline's image size
# CARL/LAC PENN_ACTION_LIST: the index is CARL's action_label.
ACTIONS = (
  "baseball_pitch",
  "baseball_swing",
  "bench_press",
  "bowl",
  "clean_and_jerk",
  "golf_swing",
  "jumping_jacks",
  "pushup",
  "pullup",
  "situp",
  "squat",
  "tennis_forehand",
  "tennis_serve",
)
SPLITS = ("train", "val")
# Phases per action (TCC/CARL/LAC DATASET_TO_NUM_CLASSES; key events = phases - 1).
NUM_PHASES = {
  "baseball_pitch": 4,
  "baseball_swing": 3,
  "bench_press": 2,
  "bowl": 3,
  "clean_and_jerk": 6,
  "golf_swing": 3,
  "jumping_jacks": 4,
  "pushup": 2,
  "pullup": 2,
  "situp": 2,
  "squat": 4,
  "tennis_forehand": 3,
  "tennis_serve": 4,
}

CARL_URL = "https://drive.google.com/drive/folders/1hPbkKSSM5NoQKKzvAr2bHDp-pCHZpnVj"
LAC_URL = "https://drive.google.com/file/d/1lcqHYciO68M7LVniJuZ5oOr6hsOuOPuT/view"
BAIDU_URL = "https://pan.baidu.com/s/1Vu9Qkiei-O10tcdCJAwaHA (password 7rbo)"
DOWNLOAD_HELP = (
  "PennAction is read from the CARL/LAC release: train.pkl, val.pkl and videos/<name>.mp4 in "
  f"that directory. Download: CARL {CARL_URL} , LAC {LAC_URL} , BaiduCloud {BAIDU_URL}."
)


def check_action(action: Optional[str]) -> None:
  if action is not None and action not in ACTIONS:
    raise ValueError(
      f"Unknown PennAction action {action!r}; valid actions: {', '.join(ACTIONS)} "
      "(or None for all 13)"
    )


def find_root(data_dir: str, split: str) -> str:
  """The directory holding ``{split}.pkl`` (``data_dir`` or ``data_dir/penn_action``)."""
  labels_lib.check_choice(split, SPLITS, "split")
  data_dir = os.fspath(data_dir)
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"PennAction data directory not found: {data_dir}. {DOWNLOAD_HELP}")
  for root in (data_dir, os.path.join(data_dir, "penn_action")):
    if os.path.isfile(os.path.join(root, f"{split}.pkl")):
      return root
  raise FileNotFoundError(
    f"No PennAction {split!r} data in {data_dir}: {split}.pkl not found. {DOWNLOAD_HELP}"
  )


def _parse_pickle(obj: Any, pkl_path: str) -> tuple[list[Any], list[list[int]]]:
  if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[0], list)):
    raise ValueError(
      f"{pkl_path}: expected a tuple (dataset, action_to_indices) (CARL "
      f"PennAction format), got {type(obj).__name__}"
    )
  dataset, action_to_indices = obj
  if not isinstance(action_to_indices, (list, tuple)) or len(action_to_indices) != len(ACTIONS):
    raise ValueError(
      f"{pkl_path}: action_to_indices must list {len(ACTIONS)} index lists (one "
      f"per action, in the order {', '.join(ACTIONS)})"
    )
  indices = []
  for k, idx in enumerate(action_to_indices):
    idx = [int(i) for i in idx]
    bad = [i for i in idx if not 0 <= i < len(dataset)]
    if bad:
      raise ValueError(
        f"{pkl_path}: action_to_indices[{k}] ({ACTIONS[k]}) holds indices {bad[:5]} "
        f"outside the {len(dataset)} videos"
      )
    indices.append(idx)
  return dataset, indices


def load(
  data_dir: str,
  split: str,
  action: Optional[str] = None,
  *,
  image_size: decode.ImageSize = None,
  label_mismatch: str = "error",
) -> list[Video]:
  """PennAction videos of a split (lazy frames), one action or all 13.

  Args:
    data_dir: directory with ``train.pkl``, ``val.pkl``, ``videos/`` (or its parent).
    split: ``'train'`` or ``'val'``.
    action: one of ``ACTIONS`` (LAC trains one model per action), or None for all.
    image_size: None (native size), an int (square, as LAC's 224) or ``(height, width)``.
    label_mismatch: ``'error'`` or ``'resample'`` (see ``lac_jax.data.labels``).

  Returns:
    With ``action``: the videos of ``action_to_indices[ACTIONS.index(action)]`` in that order.
    Without: all videos in pkl order; ``Video.action`` comes from ``action_to_indices``.
  """
  check_action(action)
  labels_lib.check_choice(label_mismatch, labels_lib.LABEL_MISMATCH_CHOICES, "label_mismatch")
  root = find_root(data_dir, split)
  pkl_path = os.path.join(root, f"{split}.pkl")
  dataset, indices = _parse_pickle(labels_lib.read_carl_pickle(pkl_path), pkl_path)
  if not os.path.isdir(os.path.join(root, "videos")):
    raise FileNotFoundError(
      f"{os.path.join(root, 'videos')}: videos directory of {pkl_path} not found. {DOWNLOAD_HELP}"
    )
  action_of: dict[int, str] = {}
  for k, idx in enumerate(indices):
    for i in idx:
      if i in action_of:
        raise ValueError(
          f"{pkl_path}: video {i} is listed under both {action_of[i]} and "
          f"{ACTIONS[k]} in action_to_indices"
        )
      action_of[i] = ACTIONS[k]
  if action is not None:
    order = indices[ACTIONS.index(action)]
  else:
    order = list(range(len(dataset)))
    missing = [i for i in order if i not in action_of]
    if missing:
      raise ValueError(f"{pkl_path}: videos {missing[:5]} are in no action_to_indices list")
  videos = []
  for i in order:
    entry = dataset[i]
    if isinstance(entry, dict) and "action_label" in entry:
      label = int(entry["action_label"])
      if label != ACTIONS.index(action_of[i]):
        raise ValueError(
          f"{pkl_path} entry {i}: action_label {label} disagrees with "
          f"action_to_indices ({action_of[i]})"
        )
    videos.append(
      labels_lib.video_from_carl_entry(
        entry, i, root, pkl_path, action_of[i], image_size, label_mismatch
      )
    )
  return videos


def load_split(
  data: Any, split: str, action: Optional[str] = None, image_size: decode.ImageSize = None
) -> list[Video]:
  """The registry entry (`lac_jax.data.load_split`): ``split`` of ``data.data_dir``, one action
  or (None) all 13."""
  return load(
    labels_lib.data_dir_of(data, NAME, DOWNLOAD_HELP),
    split,
    action,
    image_size=image_size,
    label_mismatch=data.get("label_mismatch", "error"),
  )
