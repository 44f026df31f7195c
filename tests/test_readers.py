"""Tests of the real-dataset readers on tiny files written here in the real formats.

TFRecords are framed with a bitwise CRC32C written in this file (independent of the reader's
table/NumPy implementation); mp4s are encoded with PyAV; CARL pkls are pickled dicts whose
``frame_label`` is a torch tensor: made with torch when it is importable, and always read from
fixtures committed under tests/fixtures/ (made with torch 2.13.0, regenerate with
``python tests/test_readers.py``), so the torch-free path is tested without torch.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from lac_jax import data as lac_data
from lac_jax.data import carl_pickle
from lac_jax.data import decode
from lac_jax.data import encode
from lac_jax.data import labels as labels_lib
from lac_jax.data import penn_action
from lac_jax.data import tfrecord

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
PENN_FIXTURE = os.path.join(FIXTURES, "carl_penn_action_torch2.13.pkl")
TENSOR_FIXTURE = os.path.join(FIXTURES, "torch_tensors_torch2.13.pkl")

try:
  import torch  # pylint: disable=g-import-not-at-top
except ImportError:  # torch is an optional test extra
  torch = None


# ------------------------------------------------------------------------------------------------
# Writers in the real formats (independent of the code under test).


def slow_crc32c(data: bytes) -> int:
  """Bitwise CRC32C (Castagnoli, reflected 0x82F63B78), the textbook definition."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
  return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(path, records: list[bytes]) -> None:
  with open(path, "wb") as f:
    for rec in records:
      length = struct.pack("<Q", len(rec))
      f.write(length + struct.pack("<I", masked(slow_crc32c(length))))
      f.write(rec + struct.pack("<I", masked(slow_crc32c(rec))))


def jpeg_bytes(frame: np.ndarray) -> bytes:
  import io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  buf = io.BytesIO()
  Image.fromarray(frame).save(buf, format="JPEG", quality=95)
  return buf.getvalue()


def sequence_example(name: str, jpegs: list[bytes], labels: list[int], length=None) -> bytes:
  from tensorflow_datasets.proto import tf_example_generated_pb2 as pb

  ex = pb.SequenceExample()
  ex.context.feature["name"].bytes_list.value.append(name.encode())
  ex.context.feature["len"].int64_list.value.append(len(jpegs) if length is None else length)
  ex.context.feature["label"].int64_list.value.append(-1)
  for j in jpegs:
    ex.feature_lists.feature_list["video"].feature.add().bytes_list.value.append(j)
  for lab in labels:
    ex.feature_lists.feature_list["frame_labels"].feature.add().int64_list.value.append(lab)
  return ex.SerializeToString()


def color_frames(num_frames: int, size: int = 32, seed: int = 0) -> np.ndarray:
  """uint8 [T, size, size, 3]: smooth frames (codec-friendly), distinct per frame."""
  rng = np.random.default_rng(seed)
  base = rng.integers(30, 220, size=(num_frames, 1, 1, 3))
  ramp = np.linspace(0, 20, size)[None, None, :, None]  # horizontal gradient
  frames = np.broadcast_to(base + ramp, (num_frames, size, size, 3))
  return np.clip(frames, 0, 255).astype(np.uint8)


def write_mp4(path, frames: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  encode.write_video(path, frames, crf=23)


def label_tensor(labels):
  """What CARL pickles as ``frame_label``: a torch int64 tensor (NumPy when torch is absent)."""
  arr = np.asarray(labels, np.int64)
  return torch.from_numpy(arr) if torch is not None else arr


def nearest_reference(labels, num_frames):
  return [labels[(j * len(labels)) // num_frames] for j in range(num_frames)]


# ------------------------------------------------------------------------------------------------
# CRC and TFRecord framing.


def test_crc32c_matches_bitwise_reference():
  assert tfrecord.crc32c(b"123456789") == 0xE3069283  # the published CRC-32C check value
  rng = np.random.default_rng(0)
  for n in (0, 1, 7, 4095, 4096, 9001, 50_003):
    data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    assert tfrecord.crc32c(data) == slow_crc32c(data), n
    assert tfrecord.crc32c(data, lanes=16) == slow_crc32c(data), n
  assert tfrecord.masked_crc32c(b"abc") == masked(slow_crc32c(b"abc"))


def _pouring_tfrecords(root, with_val=True):
  """Two train shards (2 + 1 videos) and a val shard; returns {name: (frames, labels)}."""
  videos = {}
  shards = {
    "pouring_train-0-of-2.tfrecord": ["p_a", "p_c"],
    "pouring_train-1-of-2.tfrecord": ["p_b"],
  }
  if with_val:
    shards["pouring_val-0-of-1.tfrecord"] = ["p_v"]
  for k, (fname, names) in enumerate(sorted(shards.items())):
    records = []
    for j, name in enumerate(names):
      t = 5 + j + k
      frames = color_frames(t, 24, seed=10 * k + j)
      labels = list(np.minimum(np.arange(t) // 2, 2))
      videos[name] = (frames, labels)
      records.append(sequence_example(name, [jpeg_bytes(f) for f in frames], labels))
    write_tfrecord(os.path.join(root, fname), records)
  return videos


def test_pouring_tfrecords_order_labels_frames_and_laziness(tmp_path, monkeypatch):
  expected = _pouring_tfrecords(tmp_path)
  calls = []
  real = decode.decode_jpeg
  monkeypatch.setattr(decode, "decode_jpeg", lambda *a, **k: calls.append(1) or real(*a, **k))
  videos = lac_data.load_videos("pouring", tmp_path, "train")
  # Round-robin over sorted shards = tf.data's interleave order used by CARL.
  assert [v.name for v in videos] == ["p_a", "p_b", "p_c"]
  assert not calls, "frames must not be decoded at load time"
  for v in videos:
    frames, labels = expected[v.name]
    assert v.action == "pouring"
    np.testing.assert_array_equal(v.labels, labels)
    got = v.frames
    assert got.dtype == np.uint8 and got.shape == frames.shape
    assert np.abs(got.astype(int) - frames).mean() < 3  # JPEG q95 round trip
  assert len(calls) == sum(len(expected[v.name][1]) for v in videos)
  val = lac_data.load_videos("pouring", tmp_path, "val", image_size=(12, 16))
  assert [v.name for v in val] == ["p_v"]
  assert val[0].frames.shape == (len(expected["p_v"][1]), 12, 16, 3)


def test_resize_is_whole_frame_bilinear():
  from PIL import Image  # pylint: disable=g-import-not-at-top

  frame = color_frames(1, 24)[0]
  frame[:, :8] = 0  # left band: a resize that crops or keeps aspect would move it
  got = decode.decode_jpeg(jpeg_bytes(frame), 12)
  ref = np.asarray(
    Image.open(__import__("io").BytesIO(jpeg_bytes(frame)))
    .convert("RGB")
    .resize((12, 12), Image.Resampling.BILINEAR)
  )
  np.testing.assert_array_equal(got, ref)


def test_tfrecord_corruption_errors_name_file_and_record(tmp_path):
  _pouring_tfrecords(tmp_path, with_val=False)
  path = tmp_path / "pouring_train-0-of-2.tfrecord"
  raw = bytearray(path.read_bytes())
  first_len = struct.unpack("<Q", raw[:8])[0]
  second = 12 + first_len + 4
  bad = bytearray(raw)
  bad[second + 12 + 40] ^= 0xFF  # a byte inside record 1's data
  path.write_bytes(bytes(bad))
  with pytest.raises(
    tfrecord.TFRecordError,
    match=r"pouring_train-0-of-2.tfrecord: record 1: "
    r"data CRC mismatch",
  ):
    lac_data.load_videos("pouring", tmp_path, "train")
  bad = bytearray(raw)
  bad[second + 2] ^= 0x01  # record 1's length field
  path.write_bytes(bytes(bad))
  with pytest.raises(tfrecord.TFRecordError, match=r"record 1: length CRC mismatch"):
    list(tfrecord.iter_records(path))
  path.write_bytes(bytes(raw[:-10]))
  with pytest.raises(tfrecord.TFRecordError, match=r"record 1: truncated"):
    list(tfrecord.iter_records(path))
  # Without data CRC verification the flipped data byte passes the framing.
  bad = bytearray(raw)
  bad[second + 12 + 40] ^= 0xFF
  path.write_bytes(bytes(bad))
  assert len(list(tfrecord.iter_records(path, verify_crc=False))) == 2


def test_tfrecord_corrupt_jpeg_and_len_mismatch(tmp_path):
  frames = color_frames(4, 16)
  jpegs = [jpeg_bytes(f) for f in frames]
  jpegs[2] = jpegs[2][: len(jpegs[2]) // 2]  # truncated JPEG
  write_tfrecord(
    tmp_path / "pouring_train-0-of-1.tfrecord", [sequence_example("x", jpegs, [0, 0, 1, 1])]
  )
  (video,) = lac_data.load_videos("pouring", tmp_path, "train")  # lazy: still loads
  with pytest.raises(
    ValueError,
    match=r"pouring_train-0-of-1.tfrecord: record 0 frame 2: "
    r"corrupt or unreadable JPEG",
  ):
    _ = video.frames
  with pytest.raises(ValueError, match="corrupt or unreadable JPEG"):
    decode.decode_jpeg(b"not a jpeg at all")
  write_tfrecord(
    tmp_path / "pouring_train-0-of-1.tfrecord", [sequence_example("x", jpegs[:2], [0, 1], length=5)]
  )
  with pytest.raises(ValueError, match=r"record 0 \('x'\): context 'len' is 5 but 'video' holds 2"):
    lac_data.load_videos("pouring", tmp_path, "train")


def test_tfrecord_label_mismatch_error_and_resample(tmp_path):
  frames = color_frames(7, 16)
  labels = [0, 1, 2, 3, 4]
  write_tfrecord(
    tmp_path / "pouring_val-0-of-1.tfrecord",
    [sequence_example("m", [jpeg_bytes(f) for f in frames], labels)],
  )
  with pytest.raises(ValueError, match=r"5 frame labels but 7 frames.*label_mismatch='resample'"):
    lac_data.load_videos("pouring", tmp_path, "val")
  (video,) = lac_data.load_videos("pouring", tmp_path, "val", label_mismatch="resample")
  np.testing.assert_array_equal(video.labels, nearest_reference(labels, 7))
  assert video.frames.shape[0] == 7
  np.testing.assert_array_equal(
    labels_lib.match_labels([0, 1, 2, 3, 4, 5, 6, 7], 3, "resample", "v"),
    nearest_reference(list(range(8)), 3),
  )


# ------------------------------------------------------------------------------------------------
# CARL/LAC release (pkl + mp4).


def _pouring_carl(root, label_lens=None):
  specs = {"vid_a": 8, "vid_b": 6}
  entries, frames_of = [], {}
  for i, (name, t) in enumerate(specs.items()):
    frames = color_frames(t, 32, seed=i)
    write_mp4(os.path.join(root, "videos", f"{name}.mp4"), frames)
    n_lab = t if label_lens is None else label_lens[i]
    labels = np.minimum(np.arange(n_lab) * 3 // n_lab, 2)
    entries.append(
      {
        "id": i,
        "video_file": f"videos/{name}.mp4",
        "frame_label": label_tensor(labels),
        "seq_len": t,
        "name": name,
      }
    )
    frames_of[name] = (frames, labels)
  with open(os.path.join(root, "train.pkl"), "wb") as f:
    pickle.dump(entries, f)
  return frames_of


def test_pouring_carl_layout_lazy_mp4(tmp_path, monkeypatch):
  expected = _pouring_carl(tmp_path)
  calls = []
  real = decode.decode_video
  monkeypatch.setattr(decode, "decode_video", lambda *a, **k: calls.append(1) or real(*a, **k))
  videos = lac_data.load_videos("pouring", tmp_path, "train")
  assert [v.name for v in videos] == ["vid_a", "vid_b"] and not calls
  for v in videos:
    frames, labels = expected[v.name]
    np.testing.assert_array_equal(v.labels, labels)
    got = v.frames
    assert got.shape == frames.shape
    # libx264 is lossy; per-frame means identify the frames and their order.
    np.testing.assert_allclose(got.mean(axis=(1, 2, 3)), frames.mean(axis=(1, 2, 3)), atol=4)
  assert len(calls) == 2
  resized = lac_data.load_videos("pouring", tmp_path, "train", image_size=16)
  assert resized[0].frames.shape == (8, 16, 16, 3)
  # Lazy Videos survive pickling (grain / multiprocessing workers).
  clone = pickle.loads(pickle.dumps(videos[1]))
  assert clone.frames.shape == expected["vid_b"][0].shape


def test_carl_label_mismatch_and_corrupt_mp4(tmp_path):
  _pouring_carl(tmp_path, label_lens=[8, 4])
  with pytest.raises(ValueError, match=r"train.pkl entry 1 .*vid_b.mp4.*4 frame labels but 6"):
    lac_data.load_videos("pouring", tmp_path, "train")
  videos = lac_data.load_videos("pouring", tmp_path, "train", label_mismatch="resample")
  labels4 = np.minimum(np.arange(4) * 3 // 4, 2)
  np.testing.assert_array_equal(videos[1].labels, nearest_reference(list(labels4), 6))
  video_path = tmp_path / "videos" / "vid_a.mp4"
  video_path.write_bytes(video_path.read_bytes()[:200])  # truncated: moov atom lost
  with pytest.raises(ValueError, match=r"vid_a.mp4: corrupt or unreadable video"):
    lac_data.load_videos("pouring", tmp_path, "train", label_mismatch="resample")
  with pytest.raises(ValueError, match=r"vid_a.mp4: corrupt or unreadable video"):
    decode.decode_video(video_path)
  os.remove(video_path)
  with pytest.raises(FileNotFoundError, match=r"entry 0 \('vid_a'\): video file not found"):
    lac_data.load_videos("pouring", tmp_path, "train", label_mismatch="resample")


def _penn_dir(root):
  """Committed torch-made PennAction pkl + mp4s with as many frames as labels."""
  shutil.copy(PENN_FIXTURE, os.path.join(root, "train.pkl"))
  dataset, _ = carl_pickle.load_pickle(PENN_FIXTURE)
  for i, entry in enumerate(dataset):
    write_mp4(
      os.path.join(root, "videos", f"{entry['name']}.mp4"),
      color_frames(len(entry["frame_label"]), 16, seed=i),
    )
  return dataset


def test_penn_action_all_actions_vs_one(tmp_path):
  dataset = _penn_dir(tmp_path)
  assert all(isinstance(e["frame_label"], np.ndarray) for e in dataset)
  everything = lac_data.load_videos("penn_action", tmp_path, "train")
  assert [v.name for v in everything] == [e["name"] for e in dataset]
  assert [v.action for v in everything] == [e["name"][5:] for e in dataset]
  for v, e in zip(everything, dataset):
    np.testing.assert_array_equal(v.labels, e["frame_label"])
    assert v.frames.shape == (len(e["frame_label"]), 16, 16, 3)
  # One action: the order of action_to_indices (the fixture lists baseball_pitch as [2, 0]).
  pitch = lac_data.load_videos("penn_action", tmp_path, "train", "baseball_pitch")
  assert [v.name for v in pitch] == ["0003_baseball_pitch", "0001_baseball_pitch"]
  bowl = penn_action.load(tmp_path, "train", "bowl", image_size=8)
  assert [v.name for v in bowl] == ["0002_bowl"] and bowl[0].frames.shape[1:] == (8, 8, 3)
  assert lac_data.load_videos("penn_action", tmp_path, "train", "squat") == []
  with pytest.raises(
    ValueError,
    match=r"Unknown PennAction action 'jump_rope'.*baseball_pitch.*"
    r"tennis_serve",
  ):
    lac_data.load_videos("penn_action", tmp_path, "train", "jump_rope")


def test_penn_action_made_with_current_torch(tmp_path):
  """Same reader on a pkl written now (torch tensors if torch is installed, else NumPy)."""
  names = ["0001_golf_swing", "0002_situp", "0003_golf_swing"]
  dataset, a2i = [], [[] for _ in penn_action.ACTIONS]
  for i, name in enumerate(names):
    t = 3 + i
    write_mp4(os.path.join(tmp_path, "videos", f"{name}.mp4"), color_frames(t, 16, seed=i))
    k = penn_action.ACTIONS.index(name[5:])
    dataset.append(
      {
        "id": i,
        "video_file": f"videos/{name}.mp4",
        "seq_len": t,
        "name": name,
        "frame_label": label_tensor(np.arange(t) % 2),
        "action_label": k,
      }
    )
    a2i[k].append(i)
  with open(tmp_path / "val.pkl", "wb") as f:
    pickle.dump((dataset, a2i), f)
  golf = lac_data.load_videos("penn_action", tmp_path, "val", "golf_swing")
  assert [v.name for v in golf] == ["0001_golf_swing", "0003_golf_swing"]
  np.testing.assert_array_equal(golf[1].labels, np.arange(5) % 2)
  assert len(lac_data.load_videos("penn_action", tmp_path, "val")) == 3


def test_missing_data_messages_point_to_downloads(tmp_path):
  with pytest.raises(
    FileNotFoundError,
    match=r"storage.googleapis.com/tcc-pouring/"
    r"pouring_train-0-of-2.tfrecord.*drive.google.com",
  ):
    lac_data.load_videos("pouring", tmp_path / "nope", "train")
  with pytest.raises(FileNotFoundError, match=r"No Pouring 'val' data in .*pouring_val-\*-of-\*"):
    lac_data.load_videos("pouring", tmp_path, "val")
  with pytest.raises(
    FileNotFoundError,
    match=r"PennAction.*train.pkl.*drive.google.com.*"
    r"pan.baidu.com",
  ):
    lac_data.load_videos("penn_action", tmp_path, "train")
  (tmp_path / "train.pkl").write_bytes(pickle.dumps(([], [[] for _ in range(13)])))
  with pytest.raises(FileNotFoundError, match=r"videos directory of .*train.pkl not found"):
    lac_data.load_videos("penn_action", tmp_path, "train")


def test_bad_arguments():
  with pytest.raises(
    ValueError,
    match=r"Unknown dataset 'kinetics'.*synthetic.*pouring.*"
    r"penn_action",
  ):
    lac_data.load_videos("kinetics", "/x", "train")
  with pytest.raises(ValueError, match=r"Unknown split 'test'.*'train', 'val'"):
    lac_data.load_videos("pouring", "/x", "test")
  with pytest.raises(ValueError, match=r"label_mismatch must be one of"):
    lac_data.load_videos("pouring", "/x", "train", label_mismatch="drop")
  with pytest.raises(ValueError, match=r"'pouring' has no action 'bowl'"):
    lac_data.load_videos("pouring", "/x", "train", "bowl")


def test_synthetic_is_delegated():
  from lac_jax.data import synthetic  # pylint: disable=g-import-not-at-top

  config = synthetic.default_config()
  config.num_val, config.lazy = 2, True
  videos = lac_data.load_videos("synthetic", None, "val", synthetic_config=config)
  assert [v.name for v in videos] == [v.name for v in synthetic.load("val", config)]
  with pytest.raises(ValueError, match=r"data.synthetic.height/width"):
    lac_data.load_videos("synthetic", None, "val", image_size=7, synthetic_config=config)


# ------------------------------------------------------------------------------------------------
# Torch-free unpickling.


def _tensor_fixture_objects(torch_module):
  """{key: (tensor, expected nested list, NumPy dtype name)}: dtypes, views, 0-d, empty."""
  t = torch_module
  base = t.arange(10, dtype=t.int64)
  specs = {
    "int64": (t.tensor([0, 0, 1, 2, 2]), "int64"),
    "int32_strided_view": (t.arange(12, dtype=t.int32).reshape(3, 4).t()[1:], "int32"),
    "int64_offset_view": (base[3:8:2], "int64"),
    "float32_2d": (t.tensor([[0.5, -1.25], [3.0, 4.5]]), "float32"),
    "float64": (t.tensor([1e-3, -2.5], dtype=t.float64), "float64"),
    "float16": (t.tensor([0.5, 2.0], dtype=t.float16), "float16"),
    "bfloat16": (t.tensor([1.5, -2.0, 0.25], dtype=t.bfloat16), "float32"),
    "bool": (t.tensor([True, False, True]), "bool"),
    "uint8": (t.tensor([0, 255, 7], dtype=t.uint8), "uint8"),
    "int16": (t.tensor([-3, 300], dtype=t.int16), "int16"),
    "int8": (t.tensor([-128, 127], dtype=t.int8), "int8"),
    "scalar": (t.tensor(7), "int64"),
    "empty": (t.zeros(0, dtype=t.int64), "int64"),
  }
  return {
    k: (v, v.float().tolist() if v.dtype == t.bfloat16 else v.tolist(), d)
    for k, (v, d) in specs.items()
  }


def _check_tensor_fixture(loaded):
  assert set(loaded) >= {"int64", "int32_strided_view", "bfloat16", "scalar", "empty"}
  for key, (arr, expected, dtype) in loaded.items():
    assert isinstance(arr, np.ndarray), key
    assert arr.dtype == np.dtype(dtype), (key, arr.dtype)
    np.testing.assert_array_equal(arr, np.asarray(expected, dtype=dtype), err_msg=key)
    assert arr.shape == np.asarray(expected).shape, key


def test_torch_free_unpickling_of_committed_fixture():
  assert os.path.getsize(TENSOR_FIXTURE) < 10_000 and os.path.getsize(PENN_FIXTURE) < 10_000
  _check_tensor_fixture(carl_pickle.load_pickle(TENSOR_FIXTURE))
  # And in a process where importing torch is impossible.
  code = (
    "import sys; sys.modules['torch'] = None\n"
    "from lac_jax.data import carl_pickle\n"
    f"d, a2i = carl_pickle.load_pickle({PENN_FIXTURE!r})\n"
    "print(d[0]['frame_label'].tolist(), a2i[0], 'torch' in sys.modules and "
    "sys.modules['torch'] is not None)"
  )
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run(
    [sys.executable, "-c", code],
    capture_output=True,
    text=True,
    check=True,
    cwd=root,
    env={**os.environ, "PYTHONPATH": root},
  )
  assert out.stdout.split() == ["[0,", "0,", "1,", "1,", "2,", "3]", "[2,", "0]", "False"]


def test_unpickling_numpy_lists_and_refusal(tmp_path):
  path = tmp_path / "x.pkl"
  obj = {"a": np.arange(5, dtype=np.int16), "b": [1, 2, 3], "c": np.int64(4), "d": {1, 2}}
  for protocol in (2, 4, 5):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = carl_pickle.load_pickle(path)
    np.testing.assert_array_equal(got["a"], obj["a"])
    assert got["a"].dtype == np.int16 and got["b"] == [1, 2, 3] and got["c"] == 4
  path.write_bytes(pickle.dumps(os.system))  # pickles as a reference to a global function
  with pytest.raises(
    pickle.UnpicklingError,
    match=r"refusing to unpickle global (posix|os)"
    r"\.system",
  ):
    carl_pickle.load_pickle(path)
  path.write_bytes(pickle.dumps([1, 2, 3])[:-3])
  with pytest.raises(pickle.UnpicklingError, match=r"x.pkl: corrupt pickle"):
    carl_pickle.load_pickle(path)


def _opcodes(obj) -> bytes:
  """The opcodes that push ``obj`` (protocol 3: bytes without framing; memo reuse is harmless
  because each fragment only reads back what it stored itself)."""
  return pickle.dumps(obj, protocol=3)[2:-1]


def _call(module: str, name: str, *args) -> bytes:
  """Opcodes calling the global ``module.name(*args)`` (any name: torch need not exist)."""
  return f"c{module}\n{name}\n".encode() + _opcodes(args) + b"R"


def _legacy_storage_pickle(values: list[int], evil: str | None, marker: str) -> bytes:
  """An outer pickle ``_rebuild_tensor_v2(_load_from_bytes(blob), ...)`` whose legacy storage
  ``blob`` has its ``evil`` item (magic/protocol/sys_info/keys) replaced by a call that creates
  ``marker`` when run."""
  payload = _call("builtins", "exec", f"open({marker!r}, 'w').close()") + b"."
  item = lambda name, obj: payload if name == evil else b"\x80\x03" + _opcodes(obj) + b"."
  pid = (
    b"("
    + _opcodes("storage")
    + b"ctorch\nLongStorage\n"
    + _opcodes("0")
    + _opcodes("cpu")
    + _opcodes(len(values))
    + _opcodes(None)
    + b"t"
  )
  blob = (
    item("magic", 0x1950A86A20F9469CFC6C)
    + item("protocol", 1001)
    + item("sys_info", {"little_endian": True})
    + b"\x80\x03"
    + pid
    + b"Q."
    + item("keys", ["0"])
    + struct.pack("<q", len(values))
    + struct.pack(f"<{len(values)}q", *values)
  )
  storage = _call("torch.storage", "_load_from_bytes", blob)
  tensor = (
    b"ctorch._utils\n_rebuild_tensor_v2\n("
    + storage
    + _opcodes(0)
    + _opcodes((len(values),))
    + _opcodes((1,))
    + _opcodes(False)
    + _call("collections", "OrderedDict")
    + b"tR"
  )
  return b"\x80\x03}" + _opcodes("frame_label") + tensor + b"s."  # {'frame_label': tensor}


@pytest.mark.parametrize("evil", ["magic", "protocol", "sys_info", "keys"])
def test_code_in_a_nested_storage_pickle_is_refused_not_run(tmp_path, evil):
  path, marker = tmp_path / "train.pkl", tmp_path / "pwned"
  path.write_bytes(_legacy_storage_pickle([4, 5, 6], None, str(marker)))
  got = carl_pickle.load_pickle(path)  # the same bytes without the call load as a tensor
  assert got["frame_label"].tolist() == [4, 5, 6] and got["frame_label"].dtype == np.int64
  path.write_bytes(_legacy_storage_pickle([4, 5, 6], evil, str(marker)))
  with pytest.raises(pickle.UnpicklingError) as raised:
    carl_pickle.load_pickle(path)
  assert not marker.exists(), "the pickle's code ran"
  message = str(raised.value)
  assert message.startswith(f"{path}: refusing to unpickle global builtins.exec")
  assert "\n" not in message and message.count(str(path)) == 1
  # Through the dataset reader: one line (a ValueError) naming the file once.
  with pytest.raises(ValueError) as raised:
    labels_lib.read_carl_pickle(str(path))
  assert str(raised.value).count(str(path)) == 1 and "builtins.exec" in str(raised.value)
  assert not marker.exists()


def test_code_in_a_top_level_pickle_is_refused_not_run(tmp_path):
  path, marker = tmp_path / "val.pkl", tmp_path / "pwned"
  path.write_bytes(b"\x80\x03" + _call("builtins", "eval", f"open({str(marker)!r}, 'w')") + b".")
  with pytest.raises(
    pickle.UnpicklingError,
    match=rf"^{re.escape(str(path))}: refusing to unpickle global builtins\.eval",
  ):
    carl_pickle.load_pickle(path)
  assert not marker.exists()


def test_torch_roundtrip_with_installed_torch(tmp_path):
  """Optional (needs the torch test extra): tensors pickled by the installed torch."""
  pytest.importorskip("torch")
  objects = _tensor_fixture_objects(torch)
  path = tmp_path / "t.pkl"
  path.write_bytes(pickle.dumps(objects))
  _check_tensor_fixture(carl_pickle.load_pickle(path))


def _write_fixtures() -> None:
  """Regenerates the committed fixtures (run ``python tests/test_readers.py`` with torch)."""
  import torch as torch_module  # pylint: disable=g-import-not-at-top,redefined-outer-name

  os.makedirs(FIXTURES, exist_ok=True)
  with open(TENSOR_FIXTURE, "wb") as f:
    pickle.dump(_tensor_fixture_objects(torch_module), f)
  names_labels = [
    ("0001_baseball_pitch", [0, 0, 1, 1, 2, 3]),
    ("0002_bowl", [0, 1, 1, 2, 2]),
    ("0003_baseball_pitch", [0, 1, 2, 3]),
  ]
  dataset = []
  a2i = [[] for _ in penn_action.ACTIONS]
  for i, (name, labels) in enumerate(names_labels):
    k = penn_action.ACTIONS.index(name[5:])
    dataset.append(
      {
        "id": i,
        "video_file": os.path.join("videos", name + ".mp4"),
        "frame_label": torch_module.tensor(labels),
        "seq_len": len(labels),
        "name": name,
        "action_label": k,
      }
    )
  a2i[0], a2i[3] = [2, 0], [1]  # baseball_pitch listed out of id order on purpose
  with open(PENN_FIXTURE, "wb") as f:
    pickle.dump((dataset, a2i), f)
  print(f"wrote {TENSOR_FIXTURE} and {PENN_FIXTURE} with torch {torch_module.__version__}")


if __name__ == "__main__":
  _write_fixtures()
