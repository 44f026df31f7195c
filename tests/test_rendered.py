"""Tests of the MuJoCo-rendered dataset: labels against the simulation, determinism, the store,
the folder export, long recordings and a short training run (tiny frames, few videos)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lac_jax import config as config_lib
from lac_jax import data as data_lib
from lac_jax import train
from lac_jax.data import entries
from lac_jax.data import rendered
import tiny

try:
  rendered._mujoco()  # pylint: disable=protected-access  (sets MUJOCO_GL before the import)
except ImportError:
  pytest.skip("mujoco is not installed", allow_module_level=True)
pytestmark = [pytest.mark.xdist_group("rendered"), pytest.mark.usefixtures("fast_compile")]


def _cfg(size=16, **fields):
  c = rendered.default_config()
  c.height = c.width = size
  c.num_train, c.num_val, c.workers = 4, 1, 1
  c.update(fields)
  return c


def _data(cache, **fields):
  d = config_lib.base_config().data
  d.dataset, d.cache_dir, d.cache_encoding = "rendered", str(cache), "png"
  d.rendered = _cfg(**fields)
  return d


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("rendered_cache")


@pytest.mark.parametrize("action", rendered.ACTIONS)
def test_labels_follow_the_simulation(action):
  for index in range(2):
    r = rendered.simulate(action, "train", index, _cfg(), render=False)
    lab, rec = r.labels, r.rec
    assert set(lab.tolist()) == {0, 1, 2, 3} and np.all(np.diff(lab) >= 0)
    starts = [int(np.flatnonzero(lab == p)[0]) for p in range(4)]
    if action == "door":  # push: the frames from the first to the last pusher-door contact
      contact = np.flatnonzero([x["contact"] for x in rec])
      assert (starts[1], starts[2]) == (contact[0], contact[-1] + 1)
      assert all(x["speed"] < 0.05 for x in rec[starts[3] :])  # rest: the door stays still
      assert rec[starts[3] - 1]["speed"] >= 0.05  # ... and moved the frame before
    elif action == "drop":  # carry: while the grip weld holds; settle: from the bin contact
      gripped = np.flatnonzero([x["gripped"] for x in rec])
      assert (starts[1], starts[2]) == (gripped[0], gripped[-1] + 1)
      landed = [t for t, x in enumerate(rec) if x["landed"] and t > gripped[-1]]
      assert starts[3] == landed[0]
      fall = [x["height"] for x in rec[starts[2] : starts[3]]]
      assert fall[-1] < fall[0]  # it falls once released
      # The gripper ends where it started: its position alone does not tell the progress.
      np.testing.assert_allclose(rec[-1]["mocap"][0], rec[0]["mocap"][0], atol=0.01)
    else:  # roll: the first pusher-ball, then ball-floor, then ball-wall contact
      first = lambda key, after: next(t for t, x in enumerate(rec) if x[key] and t > after)
      contact = first("contact", 0)
      floor = first("floor", contact)
      assert starts[1:] == [contact, floor, first("wall", floor)]
      x = [r.mirror * step["x"] for step in rec]  # along the direction of motion
      assert x[starts[3]] > x[starts[2]] > x[starts[1]]  # the ball went down and across
      assert all(step["speed"] < 0.3 for step in rec[-3:])  # and came to rest
      np.testing.assert_allclose(rec[-1]["mocap"][0], rec[0]["mocap"][0], atol=0.01)


def test_same_seed_same_video_bit_for_bit_and_draws_vary():
  a = rendered.simulate("door", "val", 0, _cfg(32))
  b = rendered.simulate("door", "val", 0, _cfg(32))
  assert a.frames.shape[1:] == (32, 32, 3) and a.frames.std() > 5
  np.testing.assert_array_equal(a.frames, b.frames)
  np.testing.assert_array_equal(a.labels, b.labels)
  draws = [rendered.simulate("drop", "train", i, _cfg(), render=False) for i in range(8)]
  draws.append(rendered.simulate("door", "val", 0, _cfg(seed=1), render=False))
  assert len({d.camera for d in draws}) == len(draws)  # camera pose differs per video
  assert len({d.mirror for d in draws}) == 2  # both directions of motion
  assert len({len(d.labels) for d in draws}) > 2  # and the timing


def test_load_split_renders_once_into_the_store(cache, monkeypatch):
  data = _data(cache, workers=2)  # the 'spawn' pool
  train_videos = data_lib.load_split(data, "train", "door", 16)
  assert [v.name for v in train_videos] == [f"door_train_0000{i}" for i in range(4)]
  direct = rendered.simulate("door", "train", 2, _cfg())
  np.testing.assert_array_equal(train_videos[2].labels, direct.labels)
  np.testing.assert_array_equal(train_videos[2].frames, direct.frames)  # png: lossless

  def no_rendering(job):
    raise AssertionError(f"rendered {job[:3]} again")

  monkeypatch.setattr(rendered, "_render_job", no_rendering)
  # What a run killed mid-write leaves beside the entries is removed by the next one.
  dead = subprocess.Popen([sys.executable, "-c", ""])  # a pid no process holds any more
  dead.wait()
  leftovers = [
    cache / f".incomplete-door_train_00009-abc.{entries.host()}.{dead.pid}.x1y2",
    cache / ".damaged-door_train_00008-abc.z3",
  ]
  for folder in leftovers:
    os.makedirs(folder)
    (folder / "part").write_bytes(b"x")
  again = rendered.prepare(data, ["door"])
  assert (again.rendered, again.cached) == (0, 5)
  monkeypatch.setitem(rendered.VERSION, "drop", rendered.VERSION["drop"] + 1)
  assert rendered.prepare(data, ["door"]).cached == 5  # another action's version: still valid
  assert not [p for p in leftovers if p.exists()]
  assert len(data_lib.load_split(data, "val", "door", 16)) == 1
  with pytest.raises(ValueError, match="data.rendered.height/width"):
    rendered.load_split(data, "val", "door", 32)


def test_folder_export_reads_back_as_videos(tmp_path):
  paths = rendered.write_videos(str(tmp_path / "out"), _cfg(32), "drop", "val", 1)
  assert [os.path.basename(p) for p in paths] == ["drop_val_00000.mp4"]
  data = config_lib.base_config().data
  data.dataset, data.data_dir, data.cache_dir = "videos", str(tmp_path / "out"), str(tmp_path / "c")
  data.videos.val_fraction = 0.5
  with open(tmp_path / "out" / "labels.json", encoding="utf-8") as f:
    assert json.load(f)["phases"] == list(rendered.PHASES["drop"])
  rendered.write_videos(str(tmp_path / "out" / "train"), _cfg(32), "drop", "train", 2)
  os.makedirs(tmp_path / "out" / "val")
  os.replace(paths[0], tmp_path / "out" / "val" / "drop_val_00000.mp4")
  os.replace(tmp_path / "out" / "labels.json", tmp_path / "out" / "val" / "labels.json")
  (val,) = data_lib.load_split(data, "val", None, 32)
  expected = rendered.simulate("drop", "val", 0, _cfg(32), render=False).labels
  np.testing.assert_array_equal(val.labels, expected)
  assert val.frames.shape == (len(expected), 32, 32, 3)


def test_long_recording_labels_and_takes(tmp_path):
  cfg = _cfg(num_train=3000, num_val=3000)
  (path,) = rendered.write_long(str(tmp_path), cfg, "door", "val", 1, 3)
  name = os.path.basename(path)[: -len(".mp4")]
  with open(tmp_path / "labels.json", encoding="utf-8") as f:
    labels = np.array(json.load(f)["labels"][name])
  with open(tmp_path / rendered.TAKES_FILE, encoding="utf-8") as f:
    takes = json.load(f)[name]
  assert len(takes) == 3 and takes[0]["start"] > 0
  inside = np.zeros(len(labels), bool)
  for take in takes:
    part = labels[take["start"] : take["end"]]
    inside[take["start"] : take["end"]] = True
    assert np.all(np.diff(part) >= 0) and part.min() >= 0
    assert take["phases"] == [rendered.PHASES["door"][p] for p in np.unique(part)]
  assert np.all(labels[~inside] == -1) and takes[-1]["end"] == len(labels)


def test_missing_gl_backend_is_a_one_line_error():
  code = (
    "from lac_jax.data import rendered\n"
    "c = rendered.default_config(); c.height = c.width = 16\n"
    "rendered.simulate('door', 'train', 0, c)\n"
  )
  env = dict(os.environ, MUJOCO_GL="osmesa", PYOPENGL_PLATFORM="osmesa")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=repo
  )
  if out.returncode == 0:
    pytest.skip("OSMesa is installed here")
  assert "MUJOCO_GL='osmesa'" in out.stderr and "libosmesa6" in out.stderr


def test_trains_a_few_steps(cache, tmp_path):
  config = tiny.tiny_train_config("rendered", num_steps=2)
  config.data.action = "door"
  config.data.cache_dir = str(cache)
  config.data.cache_encoding = "png"
  config.data.rendered = _cfg()  # 16 px: the tiny config's image size
  state = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert int(state.step) == 2
