"""The 'videos' dataset (a user's folder of recordings): discovery, splits, labels, the decode
policies (rotation, time resampling, the length bound), the cache, bad inputs, label-free
evaluation, and training on such a folder end to end (in this process, one CPU device)."""

import fractions
import json
import logging
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from lac_jax import config as config_lib
from lac_jax import data as data_lib
from lac_jax import metrics
from lac_jax import tables
from lac_jax import train
from lac_jax.data import decode
from lac_jax.data import encode
from lac_jax.data import entries
from lac_jax.data import inputs
from lac_jax.data import pipeline
from lac_jax.data import synthetic
from lac_jax.data import videos
import tiny

# One worker runs this module (pytest-xdist): its module fixtures then run once.
# Plumbing (folders, cache, splits, labels, errors): compiled without XLA's optimisation passes.
pytestmark = [pytest.mark.xdist_group("videos"), pytest.mark.usefixtures("fast_compile")]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(directory, cache, **fields):
  c = pipeline.default_config()
  c.dataset, c.data_dir, c.cache_dir = "videos", str(directory), str(cache)
  for k, v in fields.items():
    if k in c.videos:  # the dataset's own options: config.data.videos
      c.videos[k] = v
    else:
      c[k] = v
  return c


def _gray_frames(values, size=(16, 24)):
  return [np.full(size + (3,), v, np.uint8) for v in values]


def _write_timed(path, values, times_ms, rotation=None, size=(16, 24)):
  """An mp4 whose frame i has gray level values[i] and is shown at times_ms[i] (any rate)."""
  import av  # pylint: disable=g-import-not-at-top

  with av.open(str(path), "w", format="mp4") as container:
    stream = container.add_stream("libx264", rate=1000)
    stream.height, stream.width, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.codec_context.time_base = fractions.Fraction(1, 1000)
    stream.options = {"crf": "0"}
    if rotation is not None:
      stream.set_display_rotation(rotation)
    for frame, t in zip(_gray_frames(values, size), times_ms):
      image = av.VideoFrame.from_ndarray(frame, format="rgb24")
      image.pts = int(t)
      image.time_base = fractions.Fraction(1, 1000)
      container.mux(stream.encode(image))
    container.mux(stream.encode())


# ------------------------------------------------------------------------------------------
# Which frames a video keeps.


def _on_screen(times, t):
  """The last frame shown at or before time t (slow reference)."""
  best = 0
  for i, ti in enumerate(times):
    if ti <= t + 1e-9:
      best = i
  return best


def test_select_frames_resamples_variable_rate_in_time():
  rng = np.random.default_rng(0)
  times = np.cumsum(rng.uniform(0.01, 0.09, 80))  # irregular frame times (seconds)
  fps = 12.0
  got = videos.select_frames(len(times), times, fps, 0)
  grid = [times[0] + k / fps for k in range(int((times[-1] - times[0]) * fps) + 1)]
  assert got.tolist() == [_on_screen(times, t) for t in grid]
  # Upsampling repeats frames; no fps keeps every frame.
  assert len(videos.select_frames(5, [0, 0.1, 0.2, 0.3, 0.4], 20.0, 0)) == 9
  assert videos.select_frames(7, None, 0.0, 0).tolist() == list(range(7))


def test_select_frames_bounds_the_length_evenly():
  got = videos.select_frames(1000, None, 0.0, 100)
  assert got.size == 100 and got[0] == 0 and got[-1] == 999
  assert np.ptp(np.diff(got)) <= 1  # evenly spaced
  assert videos.select_frames(50, None, 0.0, 100).tolist() == list(range(50))


def test_decode_keeps_the_selected_frames_of_a_variable_rate_file(tmp_path):
  values = [10 * i for i in range(20)]
  times = [
    0,
    30,
    45,
    120,
    130,
    140,
    300,
    310,
    400,
    420,
    500,
    520,
    540,
    700,
    720,
    800,
    810,
    900,
    950,
    1000,
  ]
  _write_timed(tmp_path / "vfr.mp4", values, times)
  assert decode.frame_times(tmp_path / "vfr.mp4") == pytest.approx([t / 1000 for t in times])
  settings = videos.Settings(image_size=8, fps=10.0, max_frames=0, encoding="jpeg")
  frames, count, selected = videos.decode_input(inputs.open_input(tmp_path / "vfr.mp4"), settings)
  want = [_on_screen([t / 1000 for t in times], k / 10) for k in range(11)]
  assert count == 20 and selected.tolist() == want
  assert frames.shape == (11, 8, 8, 3)
  np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), [values[i] for i in want], atol=3)


def test_rotation_metadata_is_honoured(tmp_path):
  frame = np.zeros((16, 32, 3), np.uint8)
  frame[:, :8] = 255  # a white band on the left of the stored frame
  import av  # pylint: disable=g-import-not-at-top

  path = tmp_path / "rotated.mp4"
  with av.open(str(path), "w", format="mp4") as container:
    stream = container.add_stream("libx264", rate=10)
    stream.height, stream.width, stream.pix_fmt = 16, 32, "yuv420p"
    stream.set_display_rotation(90)  # PyAV: the display turns the frame 90 deg counter-clockwise
    for _ in range(3):
      container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    container.mux(stream.encode())
  decoded = decode.decode_video(path)
  assert decoded.shape == (3, 32, 16, 3)  # upright: portrait
  # Turned counter-clockwise, the left band ends at the bottom.
  assert decoded[0, -8:].mean() > 200 and decoded[0, :16].mean() < 50


# ------------------------------------------------------------------------------------------
# The folder.


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """train/: 4 mp4s; val/: 2 frame folders; labels.json for 3 of the 6 videos."""
  root = tmp_path_factory.mktemp("videos")
  syn = synthetic.default_config()
  syn.height = syn.width = 32
  syn.min_frames, syn.max_frames = 20, 36
  synthetic.write_videos(str(root / "train"), "train", 4, syn)
  synthetic.write_videos(str(root / "val"), "val", 2, syn, as_frames=True)
  labels = {}
  for split in ("train", "val"):
    with open(root / split / "labels.json", encoding="utf-8") as f:
      labels.update(json.load(f)["labels"])
    os.remove(root / split / "labels.json")
  keep = ["synthetic_train_00000", "synthetic_train_00002", "synthetic_val_00001"]
  with open(root / "labels.json", "w", encoding="utf-8") as f:
    json.dump({"phases": list(synthetic.PHASES), "labels": {k: labels[k] for k in keep}}, f)
  return root, labels, keep


def test_folder_splits_labels_and_cache(folder, tmp_path):
  root, labels, keep = folder
  data = _data(root, tmp_path / "cache")
  first = videos.prepare(data, 16)
  assert (first.decoded, first.cached, first.skipped, first.repaired) == (6, 0, [], [])
  train_videos = data_lib.load_split(data, "train", None, 16)
  assert videos.prepare(data, 16).decoded == 0  # prepared in this process: nothing to redo
  val_videos = data_lib.load_split(data, "val", None, 16)
  assert [v.name for v in train_videos] == [f"synthetic_train_0000{i}" for i in range(4)]
  assert [v.name for v in val_videos] == ["synthetic_val_00000", "synthetic_val_00001"]
  for v in train_videos + val_videos:
    assert v.frames.shape == (len(labels[v.name]), 16, 16, 3)
    if v.name in keep:
      assert v.labels.tolist() == labels[v.name]
    else:
      assert (v.labels == -1).all()
  assert data_lib.num_phases("videos", None, data) == len(synthetic.PHASES)
  # A second load decodes nothing; a changed file is decoded again.
  videos._PREPARED.clear()  # pylint: disable=protected-access
  again = videos.prepare(data, 16)
  assert (again.decoded, again.cached) == (0, 6)
  path = root / "train" / "synthetic_train_00001.mp4"
  stat = os.stat(path)
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  changed = videos.prepare(data, 16)
  assert (changed.decoded, changed.cached, changed.repaired) == (1, 5, [])
  # Other decode settings are other cache entries.
  assert videos.prepare(data, 8).decoded == 6


def _damage_truncated_store(entry):
  record = _record_file(entry)
  with open(record, "r+b") as f:
    f.truncate(os.path.getsize(record) // 2)


def _damage_flipped_store(entry):
  record = _record_file(entry)
  content = bytearray(record.read_bytes())
  for i in range(80, content.index(bytes(64)), 97):  # headers and records, not the padding
    content[i] ^= 0x5A
  record.write_bytes(bytes(content))


def _damage_missing_meta(entry):
  os.remove(entry / "meta.json")


def _damage_truncated_meta(entry):
  text = (entry / "meta.json").read_text()
  (entry / "meta.json").write_text(text[: len(text) // 2])


def _damage_unfinished(entry):
  """What a decode killed before its rename leaves: an ``.incomplete-*`` folder, no entry."""
  dead = subprocess.Popen([sys.executable, "-c", ""])  # a pid no process holds any more
  dead.wait()
  host = entries.host()
  os.rename(entry, entry.parent / f".incomplete-{entry.name}.{host}.{dead.pid}.x1y2z3")


def _record_file(entry):
  (record,) = entry.glob("frames/*/*.array_record-*")
  return record


@pytest.mark.parametrize(
  "damage",
  [
    _damage_truncated_store,
    _damage_flipped_store,
    _damage_missing_meta,
    _damage_truncated_meta,
    _damage_unfinished,
  ],
)
def test_a_damaged_cache_entry_is_decoded_again(tmp_path, caplog, damage):
  os.makedirs(tmp_path / "in")
  for i in range(3):
    encode.write_video(tmp_path / "in" / f"v{i}.mp4", _gray_frames([40 + 60 * i] * 4), fps=10)
  data = _data(tmp_path / "in", tmp_path / "cache")
  first = videos.prepare(data, 8)
  assert first.decoded == 3
  want = {v.name: v.frames for vs in first.splits.values() for v in vs}
  (entry,) = (tmp_path / "cache").glob("v1-*")
  damage(entry)
  videos._PREPARED.clear()  # pylint: disable=protected-access  (as a new process)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    again = videos.prepare(data, 8)
  assert (again.decoded, again.cached) == (1, 2)  # only the damaged entry
  source = str(tmp_path / "in" / "v1.mp4")
  assert again.repaired == ([] if damage is _damage_unfinished else [source])
  warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert len(warnings) == 1 and source in warnings[0] and "\n" not in warnings[0], warnings
  for v in (v for vs in again.splits.values() for v in vs):
    np.testing.assert_array_equal(v.frames, want[v.name])
  assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()) == [
    "v0",
    "v1",
    "v2",
  ]  # nothing left aside
  videos._PREPARED.clear()  # pylint: disable=protected-access
  caplog.clear()
  third = videos.prepare(data, 8)  # repaired for good
  assert (third.decoded, third.cached) == (0, 3)
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_only_abandoned_unfinished_entries_are_removed(tmp_path):
  cache = tmp_path / "cache"
  host = entries.host()
  live = cache / f".incomplete-v0-abc.{host}.{os.getpid()}.aaaa"  # this live process writes it
  other = cache / ".incomplete-v1-abc.other-host.7.bbbb"  # another machine, still writing
  stale = cache / ".incomplete-v2-abc.other-host.7.cccc"  # another machine, untouched for 2 h
  old_style = cache / ".incomplete-k3j4l5"  # named before the writer was part of the name
  for folder in (live, other, stale, old_style):
    os.makedirs(folder / "frames")
    (folder / "frames" / "part").write_bytes(b"x")
  hours_ago = time.time() - 2 * 3600
  for path in (stale, stale / "frames", stale / "frames" / "part", old_style):
    os.utime(path, (hours_ago, hours_ago))
  found = entries.leftovers(str(cache))
  assert found == {"v2-abc": [str(stale)]}, found
  for path in (old_style / "frames", old_style / "frames" / "part"):
    os.utime(path, (hours_ago, hours_ago))
  found = entries.leftovers(str(cache))
  assert found == {"v2-abc": [str(stale)], "": [str(old_style)]}, found


def test_flat_folder_is_split_by_name_hash(tmp_path):
  os.makedirs(tmp_path / "in")
  for i in range(10):
    encode.write_video(tmp_path / "in" / f"clip{i}.mp4", _gray_frames([20 * i] * 3), fps=10)
  (tmp_path / "in" / "notes.txt").write_text("not a video")
  data = _data(tmp_path / "in", tmp_path / "cache", val_fraction=0.3)
  val = [v.name for v in data_lib.load_split(data, "val", None, 8)]
  train_names = [v.name for v in data_lib.load_split(data, "train", None, 8)]
  assert len(val) == 3 and len(train_names) == 7 and not set(val) & set(train_names)
  names = [f"clip{i}" for i in range(10)]
  assert set(val) == videos.split_names(names, 0.3)
  # The split depends on the names only, not on their order.
  assert videos.split_names(names[::-1], 0.3) == set(val)
  # One validation video at least, two training videos at least.
  assert len(videos.split_names(names[:3], 0.01)) == 1
  assert len(videos.split_names(names[:3], 0.99)) == 1


def test_folder_errors_name_the_problem(tmp_path):
  os.makedirs(tmp_path / "two")
  for i in range(2):
    encode.write_video(tmp_path / "two" / f"v{i}.mp4", _gray_frames([9] * 3), fps=10)
  with pytest.raises(ValueError, match=r"found 2 readable training and 0 validation"):
    data_lib.load_split(_data(tmp_path / "two", tmp_path / "c"), "train", None, 8)
  os.makedirs(tmp_path / "half" / "train")
  with pytest.raises(NotADirectoryError, match=r"has train/ but no val/"):
    data_lib.load_split(_data(tmp_path / "half", tmp_path / "c"), "train", None, 8)
  with pytest.raises(NotADirectoryError, match=r"config.data.data_dir='/nonexistent'"):
    data_lib.load_split(_data("/nonexistent", tmp_path / "c"), "train", None, 8)
  with pytest.raises(ValueError, match=r"config.data.videos.fps"):
    data_lib.load_split(_data(tmp_path / "two", tmp_path / "c", fps=-1.0), "train", None, 8)


def test_label_mismatch_applies(tmp_path):
  os.makedirs(tmp_path / "in")
  for i in range(3):
    encode.write_video(tmp_path / "in" / f"v{i}.mp4", _gray_frames([30 * i] * 6), fps=10)
  (tmp_path / "in" / "labels.json").write_text(json.dumps({"v0": [0, 0, 1]}))
  with pytest.raises(ValueError, match=r"labels.json labels of .*v0.mp4: 3 frame labels but 6"):
    data_lib.load_split(_data(tmp_path / "in", tmp_path / "c"), "train", None, 8)
  data = _data(tmp_path / "in", tmp_path / "c", label_mismatch="resample")
  v0 = [
    v for s in ("train", "val") for v in data_lib.load_split(data, s, None, 8) if v.name == "v0"
  ][0]
  assert v0.labels.tolist() == [0, 0, 0, 0, 1, 1]
  (tmp_path / "in" / "labels.json").write_text(json.dumps({"v0": [0, "x"]}))
  with pytest.raises(ValueError, match=r"labels of 'v0' must be a non-empty list of integers"):
    data_lib.load_split(data, "train", None, 8)


def test_corrupt_input_is_one_error_or_skipped(tmp_path):
  os.makedirs(tmp_path / "in")
  for i in range(4):
    encode.write_video(tmp_path / "in" / f"v{i}.mp4", _gray_frames([30 * i] * 4), fps=10)
  bad = tmp_path / "in" / "broken.mp4"
  bad.write_bytes(b"\x00not a video" * 50)
  os.makedirs(tmp_path / "in" / "empty_folder")
  data = _data(tmp_path / "in", tmp_path / "c")
  with pytest.raises(ValueError) as e:
    data_lib.load_split(data, "train", None, 8)
  message = str(e.value)
  assert "\n" not in message and message.count("broken.mp4") == 1
  assert "skip_unreadable" in message
  data.skip_unreadable = True
  names = [v.name for s in ("train", "val") for v in data_lib.load_split(data, s, None, 8)]
  assert sorted(names) == ["v0", "v1", "v2", "v3"]
  skipped = data_lib.skipped(data, 8)
  assert sorted(os.path.basename(s["path"]) for s in skipped) == ["broken.mp4", "empty_folder"]


# ------------------------------------------------------------------------------------------
# Label-free evaluation.


def _slow_cycle(embs, stride):
  accuracies = []
  for a, ea in enumerate(embs):
    for b, eb in enumerate(embs):
      if a == b:
        continue
      ea_s, eb_s = ea[::stride], eb[::stride]
      hits = 0
      for i, frame in enumerate(ea_s):
        j = np.argmin(((eb_s - frame) ** 2).sum(1))
        k = np.argmin(((ea_s - eb_s[j]) ** 2).sum(1))
        hits += k == i
      accuracies.append(hits / len(ea_s))
  return np.mean(accuracies)


@pytest.mark.parametrize("stride", [1, 3])
def test_cycle_consistency_matches_a_slow_loop(stride):
  rng = np.random.default_rng(stride)
  embs = [rng.normal(size=(n, 5)) for n in (21, 34, 17, 40)]
  assert metrics.cycle_consistency(embs, stride) == pytest.approx(_slow_cycle(embs, stride))
  # Embeddings that are time itself cycle back exactly; a constant video never does.
  ramps = [np.linspace(0, 1, n)[:, None] * np.ones((1, 3)) for n in (30, 30)]
  assert metrics.cycle_consistency(ramps, 1) == 1.0


def test_evaluation_without_labels_and_with_some():
  rng = np.random.default_rng(3)

  def video(n, labelled):
    phases = np.minimum(np.arange(n) * 3 // n, 2)
    emb = np.stack([phases + 0.1 * rng.normal(size=n), np.arange(n) / n], 1)
    return emb, (phases if labelled else np.full(n, -1))

  train_set = [video(30 + i, i % 2 == 0) for i in range(6)]
  val_set = [video(25 + i, i != 1) for i in range(4)]
  config = config_lib.eval_config()
  config.tau_stride = config.retrieval_stride = config.cycle_stride = 2
  config.retrieval_ks = (5,)
  unlabelled = metrics.evaluate_embeddings(
    [e for e, _ in train_set],
    [np.full(len(e), -1) for e, _ in train_set],
    [e for e, _ in val_set],
    [np.full(len(e), -1) for e, _ in val_set],
    config,
  )
  assert set(unlabelled) == {
    "tau",
    "cycle_consistency",
    "num_val",
    "num_labelled_train",
    "num_labelled_val",
  }
  assert unlabelled["num_val"] == 4 and unlabelled["num_labelled_train"] == 0
  assert unlabelled["cycle_consistency"] == pytest.approx(
    100 * _slow_cycle([e for e, _ in val_set], 2)
  )
  some = metrics.evaluate_embeddings(
    [e for e, _ in train_set],
    [l for _, l in train_set],
    [e for e, _ in val_set],
    [l for _, l in val_set],
    config,
  )
  labelled_train = [(e, l) for e, l in train_set if (l >= 0).any()]
  labelled_val = [(e, l) for e, l in val_set if (l >= 0).any()]
  only = metrics.evaluate_embeddings(
    [e for e, _ in labelled_train],
    [l for _, l in labelled_train],
    [e for e, _ in labelled_val],
    [l for _, l in labelled_val],
    config,
  )
  for key in ("class_100", "ap_5", "progress"):
    assert some[key] == pytest.approx(only[key]), key
  # The label-free measures use every val video, the unlabelled one too.
  assert some["tau"] == pytest.approx(unlabelled["tau"])
  assert (some["num_labelled_train"], some["num_labelled_val"]) == (3, 3)
  table = tables.format_table({"run": some, "no labels": unlabelled})
  assert "Cycle" in table and "3/3" in table and "0/0" in table


# ------------------------------------------------------------------------------------------
# Training on a folder, end to end.


def _summary(workdir):
  with open(os.path.join(workdir, "eval", "summary.json"), encoding="utf-8") as f:
    return json.load(f)


def test_train_evaluate_resume_on_a_folder(folder, tmp_path, monkeypatch):
  root, _, _ = folder
  config = tiny.tiny_train_config("videos", str(root), stop_at_step=2, eval_at_start=True)
  work = str(tmp_path / "run")
  train.train_and_evaluate(config, work)  # stops after step 2
  assert not os.path.exists(os.path.join(work, "eval", "summary.json"))
  assert os.path.isdir(os.path.join(work, "cache"))  # decoded under the workdir
  with open(os.path.join(work, "config.json"), encoding="utf-8") as f:
    assert json.load(f)["data"]["dataset"] == "videos"
  config.train.stop_at_step = 0
  videos._PREPARED.clear()  # pylint: disable=protected-access  (as a new process)

  def no_decoding(video, settings):
    raise AssertionError(f"the resumed run decoded {video.path} again")

  monkeypatch.setattr(videos, "decode_input", no_decoding)
  state = train.train_and_evaluate(config, work)  # resumes and finishes, from the cache
  assert int(state.step) == 3
  rows = _summary(work)["rows"]
  for row in rows.values():
    assert {"class_100", "progress", "tau", "cycle_consistency"} <= set(row)
    assert "ap_5" not in row  # AP@K needs two labelled val videos; one is labelled
    assert (row["num_val"], row["num_labelled_train"], row["num_labelled_val"]) == (2, 2, 1)
    assert all(np.isfinite(v) for v in row.values())


def test_flat_folder_without_labels_trains_and_evaluates(tmp_path):
  syn = synthetic.default_config()
  syn.height = syn.width = 32
  syn.min_frames, syn.max_frames = 20, 30
  paths = synthetic.write_videos(str(tmp_path / "flat"), "train", 6, syn)
  os.remove(tmp_path / "flat" / "labels.json")
  shutil.copy(paths[0], tmp_path / "flat" / "broken.mp4")
  with open(tmp_path / "flat" / "broken.mp4", "r+b") as f:
    f.truncate(300)
  config = tiny.tiny_train_config("videos", str(tmp_path / "flat"), num_steps=2)
  config.data.skip_unreadable = True
  work = str(tmp_path / "run")
  train.train_and_evaluate(config, work)
  rows = _summary(work)["rows"]
  row = next(iter(rows.values()))
  assert set(row) == {
    "tau",
    "cycle_consistency",
    "num_val",
    "num_labelled_train",
    "num_labelled_val",
  }
  assert row["num_val"] == 1
  with open(os.path.join(work, "skipped.json"), encoding="utf-8") as f:
    skipped = json.load(f)["skipped"]
  assert [os.path.basename(s["path"]) for s in skipped] == ["broken.mp4"]


def test_corrupt_file_is_a_one_line_error_from_the_command_line(tmp_path):
  os.makedirs(tmp_path / "in")
  for i in range(3):
    encode.write_video(tmp_path / "in" / f"v{i}.mp4", _gray_frames([50 * i] * 4), fps=10)
  (tmp_path / "in" / "bad.mp4").write_bytes(b"garbage" * 10)
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "lac_jax.main",
      "--config=configs/synthetic.py",
      f"--workdir={tmp_path / 'run'}",
      "--config.data.dataset=videos",
      f"--config.data.data_dir={tmp_path / 'in'}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert result.returncode == 1
  errors = [l for l in result.stderr.splitlines() if "error:" in l]
  assert len(errors) == 1 and errors[0].startswith("lac_jax.main: error: ")
  assert errors[0].count("bad.mp4") == 1 and "skip_unreadable" in errors[0]
  saved = list((tmp_path / "run" / "checkpoints").glob("[0-9]*"))
  assert not saved and "step 1" not in result.stderr  # stopped before training
