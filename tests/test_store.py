"""Tests of the TFDS array_record video store on three tiny videos (no TensorFlow)."""

from __future__ import annotations

import io
import os
import pickle
import re

import numpy as np
import pytest
from PIL import Image

from lac_jax.data import store
from lac_jax.data.record import Video


def tiny_videos() -> list[Video]:
  rng = np.random.default_rng(0)
  out = []
  for i, t in enumerate((3, 5, 4)):
    frames = rng.integers(0, 256, size=(t, 12 + 2 * i, 16, 3), dtype=np.uint8)
    out.append(
      Video(
        name=f"vid_{i}",
        action=("pour", "bowl", "pour")[i],
        labels=rng.integers(-1, 3, size=t),
        source=frames,
      )
    )
  return out


def jpeg_roundtrip(frame: np.ndarray) -> np.ndarray:
  buf = io.BytesIO()
  Image.fromarray(frame).save(buf, format="JPEG", quality=95)
  return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _assert_same(got: list[Video], want: list[Video], exact: bool) -> None:
  assert [v.name for v in got] == [v.name for v in want]
  assert [v.action for v in got] == [v.action for v in want]
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g.labels, w.labels)
    assert g.labels.dtype == np.int32
    frames = g.frames
    assert frames.dtype == np.uint8 and frames.shape == w.frames.shape
    if exact:
      np.testing.assert_array_equal(frames, w.frames)


@pytest.mark.parametrize("encoding", ["png", "raw"])
def test_lossless_roundtrip_keeps_order_and_splits(tmp_path, encoding):
  videos = tiny_videos()
  path = store.prepare_store(
    {"train": videos[:2], "val": videos[2:]}, tmp_path, "toy", frame_encoding=encoding
  )
  assert path == store.store_path(tmp_path, "toy")
  _assert_same(store.open_store(tmp_path, "toy", "train"), videos[:2], exact=True)
  _assert_same(store.open_store(tmp_path, "toy", "val"), videos[2:], exact=True)


def test_jpeg_store_is_lazy_picklable_and_grain_readable(tmp_path, monkeypatch):
  import grain  # pylint: disable=g-import-not-at-top

  videos = tiny_videos()
  store.prepare_store(videos, tmp_path, "toy_jpeg")  # a plain list -> split 'train'
  reads = []
  real = store.read_store_frames
  monkeypatch.setattr(store, "read_store_frames", lambda *a: reads.append(a[2]) or real(*a))
  opened = store.open_store(tmp_path, "toy_jpeg", "train")
  assert not reads, "open_store must not read records"
  _assert_same(opened, videos, exact=False)
  assert sorted(reads) == [0, 1, 2]
  for g, w in zip(opened, videos):  # = a Pillow JPEG q95 round trip of each frame
    np.testing.assert_array_equal(g.frames, np.stack([jpeg_roundtrip(f) for f in w.frames]))
  monkeypatch.undo()
  opened = store.open_store(tmp_path, "toy_jpeg", "train")
  clone = pickle.loads(pickle.dumps(opened[1]))  # lazy Videos can go to worker processes
  np.testing.assert_array_equal(clone.frames, opened[1].frames)
  src = store.data_source(tmp_path, "toy_jpeg", "train")
  ds = grain.MapDataset.source(src).map(store.record_to_video)
  eager = [ds[i] for i in range(len(ds))]
  assert [v.name for v in eager] == [v.name for v in videos]
  np.testing.assert_array_equal(eager[2].frames, opened[2].frames)


def test_store_errors(tmp_path):
  videos = tiny_videos()
  store.prepare_store(videos[:1], tmp_path, "toy", frame_encoding="raw")
  with pytest.raises(FileExistsError, match=r"store 'toy' already exists"):
    store.prepare_store(videos, tmp_path, "toy")
  store.prepare_store(videos, tmp_path, "toy", frame_encoding="raw", overwrite=True)
  assert len(store.open_store(tmp_path, "toy", "train")) == 3
  with pytest.raises(ValueError, match=r"has no split 'val'"):
    store.open_store(tmp_path, "toy", "val")
  with pytest.raises(FileNotFoundError, match=r"no prepared store at .*missing"):
    store.open_store(tmp_path, "missing", "train")
  with pytest.raises(ValueError, match=r"store name must match"):
    store.prepare_store(videos, tmp_path, "Bad-Name")
  with pytest.raises(ValueError, match=r"frame_encoding must be one of"):
    store.prepare_store(videos, tmp_path, "toy2", frame_encoding="gif")
  with pytest.raises(ValueError, match=r"split 'val' holds no videos"):
    store.prepare_store({"train": videos, "val": []}, tmp_path, "toy3")


def test_verify_store_reads_every_record_back(tmp_path):
  path = store.prepare_store(tiny_videos(), tmp_path, "toy", frame_encoding="raw")
  store.verify_store(tmp_path, "toy", "train", num_records=3)
  with pytest.raises(ValueError, match=r"holds 3 readable record\(s\) \(3 written\), expected 2"):
    store.verify_store(tmp_path, "toy", "train", num_records=2)
  (record,) = [os.path.join(path, n) for n in os.listdir(path) if ".array_record-" in n]
  with open(record, "rb") as f:
    content = bytearray(f.read())
  flipped = bytearray(content)
  flipped[content.index(bytes(64)) // 2] ^= 0xFF  # inside the records, not the zero padding
  for damaged, what in (
    (flipped, r"unreadable \(RuntimeError: .*hash mismatch"),
    (
      content[: len(content) // 2],
      r"unreadable \(ValueError: "
      r"toy-train.array_record-00000-of-00001 is truncated or damaged\)$",
    ),
  ):
    with open(record, "wb") as f:
      f.write(bytes(damaged))
    with pytest.raises(ValueError, match=rf"^store {re.escape(path)}.* {what}") as raised:
      store.verify_store(tmp_path, "toy", "train", num_records=3)
    assert "\n" not in str(raised.value)
  os.remove(os.path.join(path, "dataset_info.json"))
  with pytest.raises(ValueError, match=r"unreadable \(FileNotFoundError: no prepared store"):
    store.verify_store(tmp_path, "toy", "train", num_records=3)
