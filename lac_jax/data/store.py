"""A TFDS ``array_record`` store of Videos for streaming training data (no TensorFlow).

``prepare_store`` writes Videos (frames as JPEG/PNG bytes or one zlib-compressed tensor, in input
order, with names, actions and labels also in ``metadata.json``); ``open_store`` builds lazy
Videos from the metadata alone, each frame access reading one record by random access;
``data_source`` gives the raw source for ``grain.MapDataset.source``; ``verify_store`` checks that
a store's records read back. The directory layout and the record format: docs/data.md#the-store.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import tempfile
from typing import Any, Mapping, Sequence, Union

import numpy as np
import tensorflow_datasets as tfds

from lac_jax.data.record import Video

VERSION = "1.0.0"
FRAME_ENCODINGS = ("jpeg", "png", "raw")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


def _frames_feature(frame_encoding: str):
  if frame_encoding == "raw":
    return tfds.features.Tensor(shape=(None, None, None, 3), dtype=np.uint8, encoding="zlib")
  return tfds.features.Sequence(
    tfds.features.Image(shape=(None, None, 3), encoding_format=frame_encoding)
  )


def _encode_frames(frames: np.ndarray, frame_encoding: str, jpeg_quality: int):
  """uint8 ``[T, H, W, 3]`` -> what the frames feature takes (list of encoded bytes or array)."""
  if frame_encoding == "raw":
    return frames
  from PIL import Image  # pylint: disable=g-import-not-at-top

  out = []
  for frame in frames:
    buf = io.BytesIO()
    if frame_encoding == "jpeg":
      Image.fromarray(frame).save(buf, format="JPEG", quality=jpeg_quality)
    else:
      Image.fromarray(frame).save(buf, format="PNG")
    out.append(buf.getvalue())
  return out


class _VideoStoreBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Writes given Videos; the instance ``name`` is the store name (class is not registered)."""

  VERSION = tfds.core.Version(VERSION)
  # No source-code path: TFDS would look for a checksums file next to this module through
  # importlib_resources, which is not installed and not needed (nothing is downloaded).
  code_path = None

  def __init__(
    self,
    *,
    name: str,
    splits: Mapping[str, Sequence[Video]],
    frame_encoding: str,
    jpeg_quality: int,
    data_dir: str,
  ):
    self.name = name
    self._videos = splits
    self._frame_encoding = frame_encoding
    self._jpeg_quality = jpeg_quality
    super().__init__(data_dir=data_dir, file_format="array_record")

  def _info(self) -> tfds.core.DatasetInfo:
    index = {
      split: {
        "names": [v.name for v in videos],
        "actions": [v.action for v in videos],
        "labels": [v.labels.tolist() for v in videos],
      }
      for split, videos in self._videos.items()
    }
    return tfds.core.DatasetInfo(
      builder=self,
      description="lac_jax video store: frames + per-frame phase labels per video.",
      features=tfds.features.FeaturesDict(
        {
          "name": tfds.features.Text(),
          "action": tfds.features.Text(),
          "labels": tfds.features.Tensor(shape=(None,), dtype=np.int32),
          "frames": _frames_feature(self._frame_encoding),
        }
      ),
      metadata=tfds.core.MetadataDict(frame_encoding=self._frame_encoding, index=index),
      disable_shuffling=True,
    )

  def _log_download_bytes(self) -> None:  # TFDS prints "Downloading..." to stdout (nothing is
    pass  # downloaded here)

  def _log_download_done(self) -> None:
    pass

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(videos) for split, videos in self._videos.items()}

  def _generate_examples(self, videos: Sequence[Video]):
    for i, video in enumerate(videos):
      yield (
        i,
        {
          "name": video.name,
          "action": video.action,
          "labels": video.labels,
          "frames": _encode_frames(video.frames, self._frame_encoding, self._jpeg_quality),
        },
      )


def store_path(store_dir: Union[str, os.PathLike], name: str) -> str:
  """Directory of the prepared store ``name`` in ``store_dir``."""
  return os.path.join(os.fspath(store_dir), name, VERSION)


def _check_name(value: str, what: str) -> None:
  if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
    raise ValueError(f"{what} must match [a-z][a-z0-9_]* (TFDS naming), got {value!r}")


def prepare_store(
  videos: Union[Sequence[Video], Mapping[str, Sequence[Video]]],
  store_dir: Union[str, os.PathLike],
  name: str,
  *,
  frame_encoding: str = "jpeg",
  jpeg_quality: int = 95,
  overwrite: bool = False,
) -> str:
  """Writes Videos (decoding each once) to an ``array_record`` TFDS store.

  Args:
    videos: a list of Videos (stored as split ``'train'``) or a ``{split: list}`` mapping.
    store_dir: TFDS data directory that receives ``<name>/<VERSION>/``.
    name: store name (lower-case snake case, e.g. ``'penn_action_224'``).
    frame_encoding: ``'jpeg'`` (lossy, ~10x smaller; quality ``jpeg_quality``; TCC's writer also
      uses 95), ``'png'`` (lossless) or ``'raw'`` (zlib-compressed uint8 tensor, lossless).
    jpeg_quality: JPEG quality 1..100.
    overwrite: replace an existing store of that name instead of raising.

  Returns:
    The store directory (``store_path(store_dir, name)``).

  Raises:
    FileExistsError: the store exists and ``overwrite`` is False.
    ValueError: bad name/split/encoding, empty split, or a non-Video item.
  """
  _check_name(name, "store name")
  if frame_encoding not in FRAME_ENCODINGS:
    raise ValueError(
      f"frame_encoding must be one of {list(FRAME_ENCODINGS)}, got {frame_encoding!r}"
    )
  splits = dict(videos) if isinstance(videos, Mapping) else {"train": list(videos)}
  if not splits:
    raise ValueError("prepare_store: no splits given")
  for split, vids in splits.items():
    _check_name(split, "split name")
    if not vids:
      raise ValueError(f"prepare_store: split {split!r} holds no videos")
    bad = [type(v).__name__ for v in vids if not isinstance(v, Video)]
    if bad:
      raise ValueError(f"prepare_store: split {split!r} holds non-Video items ({bad[0]})")
  path = store_path(store_dir, name)
  if os.path.exists(path):
    if not overwrite:
      raise FileExistsError(f"store {name!r} already exists at {path} (pass overwrite=True)")
    shutil.rmtree(path)
  os.makedirs(os.fspath(store_dir), exist_ok=True)
  builder = _VideoStoreBuilder(
    name=name,
    splits=splits,
    frame_encoding=frame_encoding,
    jpeg_quality=int(jpeg_quality),
    data_dir=os.fspath(store_dir),
  )
  with tempfile.TemporaryDirectory() as downloads:  # TFDS wants one; nothing is downloaded
    builder.download_and_prepare(download_dir=downloads)
  _builder.cache_clear()  # a replaced store must not be served from stale readers
  _cached_source.cache_clear()
  return os.fspath(builder.data_dir)


@functools.lru_cache(maxsize=None)
def _builder(path: str):
  if not os.path.isfile(os.path.join(path, "dataset_info.json")):
    raise FileNotFoundError(
      f"no prepared store at {path} (build it with lac_jax.data.store.prepare_store)"
    )
  return tfds.builder_from_directory(path)


def _check_split(builder, path: str, split: str) -> None:
  if split not in builder.info.splits:
    raise ValueError(f"store {path} has no split {split!r}; it has {sorted(builder.info.splits)}")


def data_source(store_dir: Union[str, os.PathLike], name: str, split: str):
  """Random-access TFDS source of a store split (``len``, ``[i]`` -> record dict; picklable).

  Use it with grain: ``grain.MapDataset.source(data_source(...)).map(record_frames)``.
  """
  path = store_path(store_dir, name)
  builder = _builder(path)
  _check_split(builder, path, split)
  return builder.as_data_source(split=split)


@functools.lru_cache(maxsize=None)
def _cached_source(path: str, split: str):
  return _builder(path).as_data_source(split=split)


def record_frames(record: Mapping[str, Any]) -> np.ndarray:
  """uint8 ``[T, H, W, 3]`` frames of a store record (a list of images is stacked)."""
  frames = record["frames"]
  return np.stack(frames) if isinstance(frames, list) else np.asarray(frames)


def _text(value: Any) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def record_to_video(record: Mapping[str, Any]) -> Video:
  """An eager Video from a store record."""
  return Video(
    name=_text(record["name"]),
    action=_text(record["action"]),
    labels=record["labels"],
    source=record_frames(record),
  )


def read_store_frames(path: str, split: str, index: int, name: str) -> np.ndarray:
  """Frames of record ``index`` of a store split, checking that it is video ``name``."""
  record = _cached_source(path, split)[index]
  if _text(record["name"]) != name:
    raise ValueError(
      f"store {path} split {split!r} record {index} is video "
      f"{_text(record['name'])!r}, expected {name!r} (store modified?)"
    )
  return record_frames(record)


def verify_store(
  store_dir: Union[str, os.PathLike], name: str, split: str, num_records: int
) -> None:
  """Checks that a store split opens and that its ``num_records`` records read back.

  Each record is read as raw bytes (Riegeli checks every chunk's hash), not decoded into frames,
  so the check costs one read of the files. A truncated file holds fewer records; flipped bytes
  fail a hash.

  Raises:
    ValueError: one line naming the store and what is wrong with it.
  """
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top

  path = store_path(store_dir, name)
  try:
    builder = _builder(path)
    _check_split(builder, path, split)
    info = builder.info.splits[split]
    count = 0
    for filepath in info.filepaths:
      reader = array_record_module.ArrayRecordReader(os.fspath(filepath))
      try:
        if not reader.ok():  # e.g. a truncated file: it opens, holding no records
          raise ValueError(f"{os.path.basename(filepath)} is truncated or damaged")
        for i in range(reader.num_records()):
          reader.read([i])
          count += 1
      finally:
        try:
          reader.close()
        except RuntimeError:  # a failed reader reports its failure again, without a message
          pass
  except Exception as e:  # pylint: disable=broad-except  (TFDS, JSON, Riegeli, OS errors)
    _builder.cache_clear()  # nothing of a damaged store may be served later
    _cached_source.cache_clear()
    detail = (str(e).strip().splitlines() or [""])[0]
    raise ValueError(f"store {path} is unreadable ({type(e).__name__}: {detail})") from None
  if count != num_records or info.num_examples != num_records:
    raise ValueError(
      f"store {path} split {split!r} holds {count} readable record(s) "
      f"({info.num_examples} written), expected {num_records}"
    )


def open_store(store_dir: Union[str, os.PathLike], name: str, split: str) -> list[Video]:
  """Lazy Videos of a store split, in the order they were written.

  Labels, names and actions come from the store's metadata; ``Video.frames`` reads and decodes
  one record per access (``Video.source`` is a picklable ``functools.partial``).

  Raises:
    FileNotFoundError: no store ``name`` in ``store_dir``.
    ValueError: the store has no such split.
  """
  path = store_path(store_dir, name)
  builder = _builder(path)
  _check_split(builder, path, split)
  index = builder.info.metadata["index"][split]
  return [
    Video(
      name=n,
      action=a,
      labels=np.asarray(lab, np.int32),
      source=functools.partial(read_store_frames, path, split, i, n),
    )
    for i, (n, a, lab) in enumerate(zip(index["names"], index["actions"], index["labels"]))
  ]
