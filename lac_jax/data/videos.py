"""The ``videos`` dataset: a folder of the user's own recordings, labels optional.

``data.data_dir`` holds video files (anything PyAV decodes) and folders of jpg/png frames, in
``train/`` and ``val/`` when both exist, else directly (split by ``data.videos.val_fraction``
from a hash of each name), plus an optional ``labels.json``. Each input is decoded once (rotation
applied, resampled and capped by ``data.videos``, resized to the pipeline's size) into its own
``array_record`` store under ``data.cache_dir``, keyed by the file's path, size and modification
time and the decode settings; an entry found damaged is decoded again. Policies:
docs/own_videos.md.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
from typing import Any, Mapping, Optional, Sequence

from absl import logging
import ml_collections
import numpy as np

from lac_jax import logs
from lac_jax.data import decode
from lac_jax.data import entries
from lac_jax.data import inputs
from lac_jax.data import labels as labels_lib
from lac_jax.data import store
from lac_jax.data.record import Video

NAME = ACTION = "videos"  # lac_jax.data.DATASETS key; the one action
ACTIONS = (ACTION,)
NUM_PHASES: dict[str, int] = {}  # from labels.json's "phases" (`num_phases`)
RESIZE_ON_LOAD = True  # frames are decoded at the pipeline's image size
DECODE_CACHE = True  # training puts data.cache_dir under the workdir when it is unset
LABELS_FILE = "labels.json"
SKIPPED_FILE = "skipped.json"  # written to the workdir by training when inputs were skipped
VIDEO_EXTENSIONS = (
  ".mp4",
  ".m4v",
  ".mov",
  ".avi",
  ".mkv",
  ".webm",
  ".mpg",
  ".mpeg",
  ".wmv",
  ".flv",
  ".3gp",
  ".ts",
  ".mts",
  ".m2ts",
  ".gif",
)
CACHE_VERSION = 1  # bump when the decoded frames of the same settings change
DEFAULT_CACHE = os.path.join("~", ".cache", "lac_jax", "videos")
_STORE_NAME = "frames"
_META = "meta.json"


def default_config() -> ml_collections.ConfigDict:
  """This dataset's options, ``config.data.videos`` (docs/own_videos.md)."""
  c = ml_collections.ConfigDict()
  c.val_fraction = 0.2  # without train/ and val/: this fraction of the videos (by name hash)
  c.fps = 0.0  # > 0: resample time to this rate (frames on screen at t0 + k / fps); 0: keep all
  c.max_frames = 512  # > 0: longer videos keep this many frames, evenly spaced; 0: no bound
  return c


def options(data: Any) -> ml_collections.ConfigDict:
  """``data.videos`` over `default_config` (a data config may omit the section)."""
  c = default_config()
  c.update(dict(data.get("videos", None) or {}))
  return c


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the decoded frames depend on (part of each input's cache key)."""

  image_size: Optional[int]
  fps: float
  max_frames: int
  encoding: str

  @classmethod
  def of(cls, data: Any, image_size: Any) -> "Settings":
    opts = options(data)
    fps, max_frames = float(opts.fps), int(opts.max_frames)
    if not (math.isfinite(fps) and fps >= 0):
      raise ValueError(
        f"config.data.videos.fps: need a rate >= 0 (0 keeps every frame), got {fps!r}"
      )
    if max_frames < 0:
      raise ValueError(
        f"config.data.videos.max_frames: need an int >= 0 (0: no bound), got {max_frames!r}"
      )
    encoding = data.get("cache_encoding", "jpeg")
    if encoding not in store.FRAME_ENCODINGS:
      raise ValueError(
        f"config.data.cache_encoding: expected one of "
        f"{list(store.FRAME_ENCODINGS)}, got {encoding!r}"
      )
    return cls(None if image_size is None else int(image_size), fps, max_frames, encoding)


# ------------------------------------------------------------------------------------------
# The folder: inputs, splits, labels.


def _is_hidden(name: str) -> bool:
  return name.startswith(".") or name.startswith("_")


def find_inputs(directory: str) -> tuple[list[str], list[str]]:
  """``(inputs, ignored)``: video files (by extension) and sub-folders of ``directory`` in
  natural name order; ``ignored``: the other files (hidden ones and ``labels.json`` unnamed)."""
  found, ignored = [], []
  for entry in sorted(os.listdir(directory), key=inputs.natural_key):
    path = os.path.join(directory, entry)
    if _is_hidden(entry) or entry == LABELS_FILE or entry == SKIPPED_FILE:
      continue
    if os.path.isdir(path) or entry.lower().endswith(VIDEO_EXTENSIONS):
      found.append(path)
    else:
      ignored.append(entry)
  return found, ignored


def _name_hash(name: str) -> str:
  return hashlib.sha256(name.encode("utf-8")).hexdigest()


def split_names(names: Sequence[str], val_fraction: float) -> set[str]:
  """The names held out for validation: ``max(1, round(f * N))`` of them (at most ``N - 2``),
  those with the smallest SHA-256 of the name, so the split depends on the names alone."""
  if not 0.0 < val_fraction < 1.0:
    raise ValueError(
      f"config.data.videos.val_fraction: need a fraction in (0, 1), got {val_fraction!r}"
    )
  count = min(max(1, round(val_fraction * len(names))), max(0, len(names) - 2))
  return set(sorted(names, key=_name_hash)[:count])


def data_dir_of(data: Any) -> str:
  """``data.data_dir``, checked: an existing folder."""
  directory = labels_lib.data_dir_of(
    data,
    NAME,
    "Point it at a folder of video files and/or "
    "folders of jpg/png frames (train/ and val/ optional).",
  )
  directory = os.path.expanduser(directory)
  if not os.path.isdir(directory):
    raise NotADirectoryError(
      f"config.data.data_dir={data.data_dir!r}: no such folder (the "
      "'videos' dataset reads a folder of videos)"
    )
  return directory


def parse_labels(
  content: Mapping[str, Any], what: str
) -> tuple[dict[str, np.ndarray], Optional[list[str]]]:
  """``{"phases": [...], "labels": {name: [ints]}}`` (or just ``{name: [ints]}``) ->
  ``({name: int64 [T]}, phase names or None)``; ``what`` names the file in errors."""
  phases = content.get("phases") if "labels" in content else None
  table = content["labels"] if "labels" in content else content
  if not isinstance(table, Mapping):
    raise ValueError(f'{what}: "labels" must map video names to lists of phase ids')
  if phases is not None and (not isinstance(phases, list) or not phases):
    raise ValueError(f'{what}: "phases" must be a non-empty list of phase names')
  labels = {}
  for name, values in table.items():
    try:
      array = np.asarray(values, np.float64).reshape(-1)
    except (TypeError, ValueError):
      array = None
    if array is None or array.size == 0 or not np.all(array == np.round(array)):
      raise ValueError(f"{what}: labels of {name!r} must be a non-empty list of integers")
    array = array.astype(np.int64)
    if phases is not None and array.max() >= len(phases):
      raise ValueError(
        f'{what}: labels of {name!r} reach phase {array.max()}, but "phases" names {len(phases)}'
      )
    labels[str(name)] = array
  return labels, (list(map(str, phases)) if phases else None)


def read_labels(directory: str) -> tuple[dict[str, np.ndarray], Optional[list[str]]]:
  """``labels.json`` of ``directory`` and of its ``train/`` and ``val/`` (merged; a video named
  twice or different phase lists are errors), parsed by `parse_labels`; empty without any."""
  from lac_jax import files  # pylint: disable=g-import-not-at-top

  labels: dict[str, np.ndarray] = {}
  phases, phases_from = None, None
  for sub in ("", "train", "val"):
    path = os.path.join(directory, sub, LABELS_FILE)
    if not os.path.isfile(path):
      continue
    table, names = parse_labels(files.read_json_object(path, path), path)
    if names is not None:
      if phases is not None and names != phases:
        raise ValueError(f'{path}: "phases" {names} differ from {phases_from}\'s {phases}')
      phases, phases_from = names, path
    twice = sorted(set(table) & set(labels))
    if twice:
      raise ValueError(f"{path}: labels of {twice[0]!r} given in two labels.json files")
    labels.update(table)
  return labels, phases


# ------------------------------------------------------------------------------------------
# Which frames: time resampling and the length bound.


def select_frames(
  count: int, times: Optional[Sequence[float]], fps: float, max_frames: int
) -> np.ndarray:
  """int ``[T']``: the source frames (presentation order) a video keeps.

  ``fps > 0`` with known ``times`` (seconds, sorted): at ``t0 + k / fps`` for ``k = 0, 1, ...``
  up to the last frame's time, the frame on screen then (the last one at or before it), so
  variable frame rates come out evenly spaced in time. Then, when more than ``max_frames > 0``
  remain, ``max_frames`` of them evenly spaced over the whole video (first and last kept).
  """
  index = np.arange(count)
  if fps > 0 and times is not None and count > 0:
    t = np.asarray(times, np.float64)[:count]
    index = index[: t.size]
    grid = t[0] + np.arange(int(math.floor((t[-1] - t[0]) * fps + 1e-6)) + 1) / fps
    index = np.clip(np.searchsorted(t, grid + 1e-9, side="right") - 1, 0, t.size - 1)
  if max_frames and index.size > max_frames:
    index = index[np.round(np.linspace(0, index.size - 1, max_frames)).astype(np.int64)]
  return index.astype(np.int64)


def decode_input(
  video: inputs.InputVideo, settings: Settings
) -> tuple[np.ndarray, int, np.ndarray]:
  """``(uint8 [T', S, S, 3] frames, source frame count, int [T'] source indices)``.

  Memory is bounded by the frames kept, never by the video's length: the file is demuxed once
  for its timestamps (no decoding), then decoded keeping only the selected frames.

  Raises:
    inputs.InputError: the input cannot be read or holds no frames (the message names it).
  """
  full = os.path.expanduser(video.path)
  resize = functools.partial(decode.resize_frame, image_size=settings.image_size)
  if video.kind == "frames":
    count = len(video.files)
    selected = select_frames(count, None, 0.0, settings.max_frames)
    frames = [
      resize(decode.decode_jpeg(_read(f), what=f, kind="image"))
      for f in (video.files[i] for i in selected)
    ]
  else:
    try:
      times = decode.frame_times(full)
      count = len(times)
      selected = select_frames(count, times, settings.fps, settings.max_frames)
      copies = np.bincount(selected, minlength=count) if count else np.zeros(0, np.int64)
      keep = lambda i: int(copies[i]) if i < copies.size else 0
      frames = [f for _, f in decode.iter_timed_frames(full, settings.image_size, keep)]
    except (OSError, ValueError) as e:
      raise inputs.InputError(inputs.one_line(e, full, video.path)) from None
  if not frames:
    raise inputs.InputError(f"{video.path}: holds no decodable frames")
  return np.stack(frames), count, selected[: len(frames)]


def _read(path: str) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as e:
    raise inputs.InputError(f"{path}: cannot read ({e.strerror})") from None


# ------------------------------------------------------------------------------------------
# The cache: one store per input and decode settings.


def cache_key(video: inputs.InputVideo, settings: Settings) -> str:
  """Hex digest of the input's path, size and modification time (every frame file's for a
  folder) and the decode settings."""
  full = os.path.abspath(os.path.expanduser(video.path))
  members = video.files if video.kind == "frames" else (full,)
  stats = [(os.path.basename(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in members]
  payload = json.dumps(
    {
      "path": full,
      "stats": stats,
      "settings": dataclasses.asdict(settings),
      "version": CACHE_VERSION,
    },
    sort_keys=True,
  )
  return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def cache_dir_of(data: Any) -> str:
  """``data.cache_dir`` (training sets it to ``workdir/cache`` when empty), else
  ``~/.cache/lac_jax/videos``."""
  return os.path.expanduser(data.get("cache_dir") or DEFAULT_CACHE)


def _entry_path(cache_dir: str, video: inputs.InputVideo, key: str) -> str:
  safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in video.name)[:40]
  return os.path.join(cache_dir, f"{safe}-{key}")


class DamagedEntry(Exception):
  """A cache entry that exists but cannot be used (the message says why)."""


_META_FIELDS = {
  "name": str,
  "path": str,
  "source_frames": int,
  "selected": list,
  "frame_size": list,
  "settings": dict,
}


def _meta_problem(meta: Any, video: inputs.InputVideo, settings: Settings) -> Optional[str]:
  """What is wrong with an entry's parsed meta.json for ``video``, or None."""
  if not isinstance(meta, dict):
    return f"holds a {type(meta).__name__}, not an object"
  for field, kind in _META_FIELDS.items():
    if not isinstance(meta.get(field), kind):
      return f"has no {kind.__name__} {field!r}"
  if meta["name"] != video.name or meta["settings"] != dataclasses.asdict(settings):
    return "belongs to another video or other decode settings"
  selected = meta["selected"]
  if not selected or not all(
    isinstance(i, int) and 0 <= i < meta["source_frames"] for i in selected
  ):
    return f"has bad 'selected' frames for {meta['source_frames']} source frames"
  return None


def open_entry(
  entry: str, video: inputs.InputVideo, settings: Settings
) -> Optional[dict[str, Any]]:
  """The meta.json of the cache entry ``entry`` of ``video``, checked; None when there is none.

  The check is cheap next to decoding: meta.json parses and has its fields, and the store opens
  and its one record reads back as bytes (its checksums pass; frames are not decoded).

  Raises:
    DamagedEntry: the entry exists but is unusable (truncated, bit-flipped, half-deleted...).
  """
  if not os.path.lexists(entry):
    return None
  meta_path = os.path.join(entry, _META)
  try:
    with open(meta_path, encoding="utf-8") as f:
      meta = json.load(f)
  except FileNotFoundError:
    raise DamagedEntry(f"{_META} is missing") from None
  except (OSError, ValueError) as e:  # NotADirectoryError, a truncated JSON document, ...
    raise DamagedEntry(f"{_META} is unreadable ({type(e).__name__}: {e})") from None
  problem = _meta_problem(meta, video, settings)
  if problem:
    raise DamagedEntry(f"{_META} {problem}")
  try:
    store.verify_store(entry, _STORE_NAME, "train", num_records=1)
  except (ValueError, FileNotFoundError) as e:  # named relative to the entry: shorter
    raise DamagedEntry(str(e).replace(f"{entry}{os.sep}", "")) from None
  return meta


def _write_entry(entry: str, video: inputs.InputVideo, settings: Settings) -> dict[str, Any]:
  """Decodes ``video`` into a new store at ``entry`` (written aside, then renamed into place,
  so an interrupted run never leaves a half-written entry)."""
  frames, count, selected = decode_input(video, settings)
  tmp = entries.new_aside(entry)
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    tfds.disable_progress_bar()
    record = Video(
      name=video.name, action=ACTION, labels=np.full(len(frames), -1, np.int32), source=frames
    )
    store.prepare_store([record], tmp, _STORE_NAME, frame_encoding=settings.encoding)
    meta = {
      "name": video.name,
      "path": video.path,
      "source_frames": int(count),
      "selected": selected.tolist(),
      "frame_size": list(frames.shape[1:3]),
      "settings": dataclasses.asdict(settings),
    }
    with open(os.path.join(tmp, _META), "w", encoding="utf-8") as f:
      json.dump(meta, f)
    try:
      os.rename(tmp, entry)
    except OSError as e:  # Another process wrote the same entry first: use theirs if whole.
      try:
        theirs = open_entry(entry, video, settings)
      except DamagedEntry:
        theirs = None
      if theirs is None:
        raise ValueError(
          f"{video.path}: cannot put its decoded frames at {entry} ({e.strerror or e})"
        ) from None
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return meta


# ------------------------------------------------------------------------------------------
# The dataset.


@dataclasses.dataclass
class Prepared:
  """Every split's Videos of one folder, the inputs skipped as unreadable, and what the `prepare`
  call that returned it did: inputs ``decoded`` now (``repaired``: the paths of those whose cache
  entry was damaged, among them) and ``cached`` (read from the cache, or already prepared in this
  process)."""

  splits: dict[str, list[Video]]
  skipped: list[dict[str, str]]
  phases: Optional[list[str]]
  decoded: int = 0
  cached: int = 0
  repaired: list[str] = dataclasses.field(default_factory=list)


_PREPARED: dict[Any, Prepared] = {}


def _progress(total: int) -> Any:
  return logs.progress_bar(
    total > 0, total=total, unit="video", desc="decoding videos", leave=False
  )


def _split_inputs(directory: str, val_fraction: float) -> dict[str, list[str]]:
  split_dirs = {s: os.path.join(directory, s) for s in ("train", "val")}
  if any(os.path.isdir(d) for d in split_dirs.values()):
    missing = [s for s, d in split_dirs.items() if not os.path.isdir(d)]
    if missing:
      raise NotADirectoryError(
        f"{directory}: has {'val' if missing[0] == 'train' else 'train'}/"
        f" but no {missing[0]}/ (give both, or neither and let "
        "data.videos.val_fraction split the folder)"
      )
    out = {}
    for split, d in split_dirs.items():
      out[split], ignored = find_inputs(d)
      _log_ignored(d, ignored)
    return out
  found, ignored = find_inputs(directory)
  _log_ignored(directory, ignored)
  val = split_names([inputs.input_name(p) for p in found], val_fraction)
  return {
    "train": [p for p in found if inputs.input_name(p) not in val],
    "val": [p for p in found if inputs.input_name(p) in val],
  }


def _log_ignored(directory: str, ignored: list[str]) -> None:
  if ignored:
    logging.info(
      "videos: %s: ignored %d file(s) that are not videos (%s%s)",
      directory,
      len(ignored),
      ", ".join(ignored[:5]),
      "..." if len(ignored) > 5 else "",
    )


def _fingerprint(
  directory: str, paths: dict[str, list[str]], data: Any, settings: Settings
) -> tuple:
  def stat(path: str) -> tuple:
    try:
      st = os.stat(path)
      members = tuple(sorted(os.listdir(path))) if os.path.isdir(path) else ()
      return (path, st.st_size, st.st_mtime_ns, members)
    except OSError:
      return (path,)

  labels = os.path.join(directory, LABELS_FILE)
  return (
    os.path.abspath(directory),
    settings,
    cache_dir_of(data),
    data.get("label_mismatch", "error"),
    bool(data.get("skip_unreadable", False)),
    stat(labels),
    tuple((s, tuple(stat(p) for p in ps)) for s, ps in paths.items()),
  )


def prepare(data: Any, image_size: Any) -> Prepared:
  """Finds, checks and decodes (or reads from the cache) every input of both splits.

  Raises a one-line error naming the first unreadable input, unless ``data.skip_unreadable``
  (then it is logged, skipped and listed in `Prepared.skipped`), and when fewer than 2
  training videos or no validation video remain.
  """
  directory = data_dir_of(data)
  settings = Settings.of(data, image_size)
  paths = _split_inputs(directory, float(options(data).val_fraction))
  key = _fingerprint(directory, paths, data, settings)
  if key in _PREPARED:  # Already checked in this process: nothing to decode or read.
    prepared = _PREPARED[key]
    return dataclasses.replace(
      prepared, decoded=0, repaired=[], cached=sum(map(len, prepared.splits.values()))
    )
  from lac_jax import logs  # pylint: disable=g-import-not-at-top

  logs.quiet_library_logs()  # TFDS's INFO lines and its OpenCV notice
  labels, phases = read_labels(directory)
  mismatch = data.get("label_mismatch", "error")
  skip = bool(data.get("skip_unreadable", False))
  cache_dir = cache_dir_of(data)
  todo = [(split, p) for split, ps in paths.items() for p in ps]
  names: dict[str, str] = {}
  splits: dict[str, list[Video]] = {split: [] for split in paths}
  skipped: list[dict[str, str]] = []
  repaired: list[str] = []
  decoded = cached = 0
  unfinished = entries.leftovers(cache_dir)
  with _progress(len(todo)) as bar:
    for split, path in todo:
      try:
        video = inputs.open_input(path)
        if video.name in names:
          raise inputs.InputError(
            f"{path}: same name {video.name!r} as {names[video.name]} "
            "(labels.json and outputs go by name: rename one)"
          )
        names[video.name] = path
        entry = _entry_path(cache_dir, video, cache_key(video, settings))
        for leftover in unfinished.pop(os.path.basename(entry), []):
          logging.warning(
            "videos: %s: removing %s, its unfinished cache entry from an interrupted run",
            path,
            leftover,
          )
          entries.discard(leftover)
        try:
          meta = open_entry(entry, video, settings)
        except DamagedEntry as e:  # treated as missing: moved aside, decoded again
          logging.warning(
            "videos: %s: its cache entry %s is damaged (%s); decoding it again", path, entry, e
          )
          entries.discard(entry)
          repaired.append(path)
          meta = None
        if meta is None:
          meta = _write_entry(entry, video, settings)
          decoded += 1
        else:
          cached += 1
      except inputs.InputError as e:
        if not skip:
          raise ValueError(f"{e} (set config.data.skip_unreadable=True to skip it)") from None
        logging.warning("videos: skipping %s", e)
        skipped.append({"path": path, "error": str(e)})
        continue
      finally:
        bar.update(1)
      splits[split].append(_video(entry, meta, labels.get(video.name), mismatch))
  for leftover in [p for ps in unfinished.values() for p in ps]:  # of other inputs/settings
    logging.info("videos: removing %s, left by an interrupted run", leftover)
    entries.discard(leftover)
  unknown = sorted(set(labels) - set(names))
  if unknown:
    logging.warning(
      "videos: %s names %d video(s) not found in %s: %s",
      LABELS_FILE,
      len(unknown),
      directory,
      ", ".join(unknown[:5]),
    )
  if len(splits["train"]) < 2 or not splits["val"]:
    where = (
      "train/ and val/"
      if os.path.isdir(os.path.join(directory, "train"))
      else f"the folder, split by data.videos.val_fraction={options(data).val_fraction}"
    )
    raise ValueError(
      f"config.data.data_dir={data.data_dir!r}: found {len(splits['train'])} "
      f"readable training and {len(splits['val'])} validation video(s) in "
      f"{where}; need at least 2 to train and 1 to validate"
    )
  labelled = sum(int((v.labels >= 0).any()) for vs in splits.values() for v in vs)
  logging.info(
    "videos: %s: %d train, %d val videos (%d labelled), %d decoded now%s, %d from the cache %s%s",
    directory,
    len(splits["train"]),
    len(splits["val"]),
    labelled,
    decoded,
    f" ({len(repaired)} of them damaged in the cache)" if repaired else "",
    cached,
    cache_dir,
    f", {len(skipped)} skipped" if skipped else "",
  )
  _PREPARED[key] = Prepared(splits, skipped, phases, decoded, cached, repaired)
  return _PREPARED[key]


def _video(
  entry: str, meta: Mapping[str, Any], labels: Optional[np.ndarray], mismatch: str
) -> Video:
  """A lazy Video of a cache entry, with its labels (source frames -> kept frames)."""
  selected = np.asarray(meta["selected"], np.int64)
  if labels is None:
    kept = np.full(selected.size, -1, np.int32)
  else:
    per_source = labels_lib.match_labels(
      labels, int(meta["source_frames"]), mismatch, f"{LABELS_FILE} labels of {meta['path']}"
    )
    kept = per_source[selected]
  path = store.store_path(entry, _STORE_NAME)
  return Video(
    name=meta["name"],
    action=ACTION,
    labels=kept,
    source=functools.partial(store.read_store_frames, path, "train", 0, meta["name"]),
  )


def load_split(data: Any, split: str, action: Optional[str], image_size: Any) -> list[Video]:
  """The Videos of ``split`` (``config.data``: data_dir, videos (`default_config`),
  cache_dir, cache_encoding, skip_unreadable, label_mismatch)."""
  if action not in (None, ACTION):
    raise ValueError(f"dataset 'videos' has the one action {ACTION!r}, got {action!r}")
  return list(prepare(data, image_size).splits[split])


def skipped(data: Any, image_size: Any) -> list[dict[str, str]]:
  """The inputs skipped as unreadable (``data.skip_unreadable``): ``[{path, error}]``."""
  return list(prepare(data, image_size).skipped)


def num_phases(data: Any) -> Optional[int]:
  """The number of phase names in labels.json, or None (then 1 + the largest label)."""
  phases = read_labels(data_dir_of(data))[1]
  return len(phases) if phases else None
