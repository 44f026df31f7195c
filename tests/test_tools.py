"""The command-line tools on a trained workdir, run as a user runs them: ``python -m
lac_jax.embed / align / retrieve`` in subprocesses, on small generated mp4 files and frame
folders. The workdir holds a tiny model's checkpoint and the config.json training writes (the
maths does not need a trained model; `test_train` checks that training writes the config)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

import launched
import tiny

from lac_jax import inference
from lac_jax.data import decode
from lac_jax.data import encode
from lac_jax.data import synthetic

# One worker runs this module (pytest-xdist): its module fixtures then run once.
pytestmark = pytest.mark.xdist_group("tools")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("tools")
  tiny.save_untrained_run(root / "run", step=3)
  syn = synthetic.default_config()
  syn.height = syn.width = 32
  syn.min_frames, syn.max_frames = 20, 40
  videos = synthetic.write_videos(str(root / "videos"), "val", 3, syn)
  encode.write_frames(root / "videos" / "frames_of_0", decode.decode_video(videos[0]))
  return root, videos


def run(tool, *args, timeout=300):
  return launched.run(["-m", f"lac_jax.{tool}", "--noprogress", *args], timeout=timeout)


def error_lines(stderr, tool):
  return [l for l in stderr.splitlines() if l.startswith(f"lac_jax.{tool}: error:")]


def test_embed_mixed_inputs_and_bad_ones(setup):
  root, videos = setup
  out = root / "emb"
  bad = [root / "missing.mp4", root / "videos" / "labels.json", root / "empty_dir"]
  (root / "empty_dir").mkdir()
  proc = run(
    "embed",
    f"--workdir={root / 'run'}",
    f"--output={out}",
    "--frames_per_chunk=7",
    videos[0],
    bad[0],
    root / "videos" / "frames_of_0",
    bad[1],
    videos[1],
    bad[2],
  )
  assert proc.returncode == 1, proc.stderr[-3000:]
  errors = error_lines(proc.stderr, "embed")
  assert len(errors) == 3 and all(str(b) in e for b, e in zip(bad, errors)), errors
  index = json.loads((out / "index.json").read_text())
  assert index["checkpoint_step"] == 3 and index["embedding_size"] == 8
  assert index["image_size"] == 16 and index["failed"] == 3
  entries = {e["name"]: e for e in index["inputs"]}
  assert sorted(entries) == sorted(
    ["synthetic_val_00000", "missing", "frames_of_0", "labels", "synthetic_val_00001", "empty_dir"]
  )
  for name in ("missing", "labels", "empty_dir"):
    assert entries[name]["error"] and entries[name]["file"] is None
    assert not (out / f"{name}.npy").exists()
  for name, path in (("synthetic_val_00000", videos[0]), ("synthetic_val_00001", videos[1])):
    emb = np.load(out / f"{name}.npy")
    frames = len(decode.decode_video(path))
    assert emb.shape == (frames, 8) and emb.dtype == np.float32
    assert entries[name]["frames"] == frames and entries[name]["fps"] == 25.0
    assert entries[name]["kind"] == "video" and entries[name]["error"] is None
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)  # l2_normalize
  # A folder of the mp4's decoded frames gives the mp4's embeddings.
  np.testing.assert_allclose(
    np.load(out / "frames_of_0.npy"), np.load(out / "synthetic_val_00000.npy"), atol=1e-4, rtol=0
  )
  # Another chunk size, through the same command: the same embeddings.
  proc = run(
    "embed",
    f"--workdir={root / 'run'}",
    f"--output={root / 'emb64'}",
    "--frames_per_chunk=64",
    videos[1],
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  np.testing.assert_allclose(
    np.load(root / "emb64" / "synthetic_val_00001.npy"),
    np.load(out / "synthetic_val_00001.npy"),
    atol=1e-4,
    rtol=0,
  )


def test_embed_workdir_errors_are_one_line(setup, tmp_path):
  root, videos = setup
  proc = run("embed", f"--workdir={tmp_path / 'nowhere'}", f"--output={tmp_path}", videos[0])
  assert proc.returncode == 1
  assert error_lines(proc.stderr, "embed") and "Traceback" not in proc.stderr
  assert "no such directory" in proc.stderr
  # A run from before config.json: the error says to pass --config, and --config works.
  old = tmp_path / "old_run"
  old.mkdir()
  os.symlink(root / "run" / "checkpoints", old / "checkpoints")
  proc = run("embed", f"--workdir={old}", f"--output={tmp_path / 'o'}", videos[0])
  assert proc.returncode == 1 and "--config" in error_lines(proc.stderr, "embed")[0]
  proc = run(
    "embed",
    f"--workdir={old}",
    f"--output={tmp_path / 'o'}",
    f"--config={launched.TINY}",
    "--step=3",
    videos[0],
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  np.testing.assert_allclose(
    np.load(tmp_path / "o" / "synthetic_val_00000.npy"),
    np.load(root / "emb" / "synthetic_val_00000.npy"),
    atol=1e-6,
  )


def _check_png(path):
  with Image.open(path) as image:
    assert image.format == "PNG" and min(image.size) > 100
    return image.size


def test_align_a_video_with_itself_and_nearest_mode(setup):
  root, videos = setup
  out = root / "self"
  proc = run(
    "align",
    f"--workdir={root / 'run'}",
    f"--output={out}",
    "--video_height=64",
    videos[0],
    root / "videos" / "frames_of_0",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((out / "alignment.json").read_text())
  frames = len(decode.decode_video(videos[0]))
  pairs = np.asarray(result["pairs"])
  np.testing.assert_array_equal(pairs, np.stack([np.arange(frames)] * 2, 1))
  assert result["mode"] == "smith_waterman" and result["score"] > 1e5  # 1 / eps per frame
  assert result["video_a"]["frames"] == result["video_b"]["frames"] == frames
  assert result["settings"]["similarity"] == "inverse_distance"
  gaps = result["settings"]["gap_penalties"]
  assert gaps["source"].startswith("default scalars") and "4x4" in gaps["source"]
  assert result["settings"]["checkpoint_step"] == 3
  _check_png(out / "alignment.png")
  movie = decode.decode_video(out / "aligned.mp4")
  assert movie.shape[0] == frames and movie.shape[1] > 64  # caption banner + 64 px videos

  out = root / "nearest"
  proc = run(
    "align",
    f"--workdir={root / 'run'}",
    f"--output={out}",
    "--nearest",
    "--novideo",
    videos[1],
    videos[2],
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((out / "alignment.json").read_text())
  t_a = len(decode.decode_video(videos[1]))
  assert result["mode"] == "nearest" and len(result["pairs"]) == t_a
  np.testing.assert_array_equal(np.asarray(result["pairs"])[:, 0], np.arange(t_a))
  _check_png(out / "alignment.png")
  assert not (out / "aligned.mp4").exists()


def test_align_uses_learned_per_cell_penalties_when_they_fit(setup):
  root, _ = setup
  trained = inference.load_trained(str(root / "run"))
  from lac_jax import align  # pylint: disable=g-import-not-at-top

  go, ge, info = align.gap_penalties(trained, 3, 4)
  assert go.shape == (3, 4) and "learned per-cell 4x4" in info["source"]
  go, ge, info = align.gap_penalties(trained, 3, 5)
  assert go.shape == () and info["source"].startswith("default scalars")
  go, ge, info = align.gap_penalties(trained, 3, 4, gap_open=0.5)
  assert (float(go), float(ge), info["source"]) == (0.5, 1.0, "flags")
  # The path on the learned block is the path of `smith_waterman_path` with it.
  rng = np.random.default_rng(0)
  za, zb = rng.normal(size=(3, 8)), rng.normal(size=(4, 8))
  result = align.align_embeddings(za, zb, trained)
  from lac_jax import alignment  # pylint: disable=g-import-not-at-top

  go, ge, _ = align.gap_penalties(trained, 3, 4)
  want, score = alignment.smith_waterman_path(result["sim"], go, ge)
  np.testing.assert_array_equal(result["pairs"], want)
  assert result["score"] == score
  assert np.all(np.diff(result["pairs"], axis=0) > 0)


def test_partner_frames_hold_through_gaps():
  from lac_jax import tools  # pylint: disable=g-import-not-at-top

  assert tools.partner_frames(np.array([[2, 0], [3, 1], [6, 4]])) == [
    (2, 0, True),
    (3, 1, True),
    (4, 1, False),
    (5, 1, False),
    (6, 4, True),
  ]
  assert tools.partner_frames(np.zeros((0, 2))) == []


def test_retrieve_grid_and_errors(setup):
  root, videos = setup
  out = root / "ret"
  proc = run(
    "retrieve",
    f"--workdir={root / 'run'}",
    f"--output={out}",
    f"--query={videos[0]}:10",
    f"--labels={root / 'videos' / 'labels.json'}",
    "--top_k=4",
    *videos,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads((out / "retrieval.json").read_text())
  assert result["query"]["frame"] == 10 and result["query"]["phase"] is not None
  assert len(result["results"]) == 4
  assert all(r["input"] != str(videos[0]) for r in result["results"])  # other videos only
  distances = [r["distance"] for r in result["results"]]
  assert distances == sorted(distances)
  # The results are the nearest frames of the embedded other videos.
  q = np.load(root / "emb" / "synthetic_val_00000.npy")[10]
  other = np.load(root / "emb" / "synthetic_val_00001.npy")
  best = np.min(np.sum((other - q) ** 2, 1))
  assert distances[0] <= best + 1e-5
  labels = json.loads((root / "videos" / "labels.json").read_text())["labels"]
  for r in result["results"]:
    assert r["phase"] == labels[r["name"]][r["frame"]]
    assert r["same_phase"] == (r["phase"] == result["query"]["phase"])
  width, _ = _check_png(out / "retrieval.png")
  assert width > 4 * 100

  proc = run(
    "retrieve", f"--workdir={root / 'run'}", f"--output={out}", f"--query={videos[0]}:x", videos[1]
  )
  assert proc.returncode == 1 and "--query" in error_lines(proc.stderr, "retrieve")[0]
  proc = run(
    "retrieve",
    f"--workdir={root / 'run'}",
    f"--output={out}",
    f"--query={videos[0]}:100000",
    videos[1],
  )
  assert proc.returncode == 1 and "past the end" in error_lines(proc.stderr, "retrieve")[0]


def test_nearest_frames_pooled_and_per_video():
  from lac_jax import retrieve  # pylint: disable=g-import-not-at-top

  q = np.array([0.0, 0.0])
  gallery = [np.array([[3.0, 0], [1, 0], [2, 0]]), np.array([[0.5, 0], [4, 0]])]
  assert retrieve.nearest_frames(q, gallery, 3) == [(1, 0, 0.25), (0, 1, 1.0), (0, 2, 4.0)]
  assert retrieve.nearest_frames(q, gallery, 3, "euclidean") == [
    (1, 0, 0.5),
    (0, 1, 1.0),
    (0, 2, 2.0),
  ]
  assert retrieve.nearest_frames(q, gallery, 5, per_video=True) == [(1, 0, 0.25), (0, 1, 1.0)]
  unit = [np.array([[1.0, 0], [0, 2]])]
  assert retrieve.nearest_frames(np.array([0.0, 3]), unit, 2, "cosine") == [
    (0, 1, 0.0),
    (0, 0, 1.0),
  ]
  assert retrieve.parse_query("C:/videos/a:b.mp4:12") == ("C:/videos/a:b.mp4", 12)
  for bad in ("a.mp4", "a.mp4:", ":3", "a.mp4:-1"):
    with pytest.raises(ValueError, match="--query"):
      retrieve.parse_query(bad)
