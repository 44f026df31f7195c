"""Tests for lac_jax.evaluate on a tiny ResNet-18 encoder, 32x32 frames and short videos.

Matrix products and convolutions run at 'highest' precision: on GPUs the default (TF32) rounds
differently for different shapes, so a padded and an unpadded call would differ by ~1e-3.
"""

import json
import math
import types

import jax
import ml_collections
import numpy as np
import pytest
from tiny import tiny_encoder_config

from lac_jax import config as config_lib
from lac_jax import data as data_lib
from lac_jax import evaluate
from lac_jax import metrics
from lac_jax import tables
from lac_jax.data import penn_action
from lac_jax.data.record import Video
from lac_jax.models import encoder

# One worker runs this module (pytest-xdist): its module fixtures then run once.
pytestmark = pytest.mark.xdist_group("evaluate")

H = 32
BUCKETS = (8, 16)  # Every test video fits; lengths 5..8 -> 8, 9..16 -> 16.


def tiny_model_config():
  # 'linspace' positions depend on the length: padding must not change them.
  return tiny_encoder_config(pe_positions="linspace")


def tiny_eval_config():
  c = config_lib.eval_config()
  c.fractions = (0.5, 1.0)
  c.tau_stride = 1
  c.retrieval_stride = 1
  c.retrieval_ks = (1, 3)
  c.bucket_sizes = BUCKETS
  c.trunk_chunk = 4  # Chunked trunk in the pass, unchunked in the direct reference call.
  c.log_every_s = 0.0
  return c


def make_video(rng, name, num_frames, num_phases=3, size=H):
  frames = rng.integers(0, 256, size=(num_frames, size, size, 3), dtype=np.uint8)
  cuts = np.sort(rng.choice(np.arange(1, num_frames), num_phases - 1, replace=False))
  labels = np.searchsorted(cuts, np.arange(num_frames), side="right").astype(np.int32)
  return Video(name=name, action="test", labels=labels, source=frames)


@pytest.fixture(autouse=True)
def highest_precision():
  with jax.default_matmul_precision("highest"):
    yield


@pytest.fixture(scope="module")
def model():
  return encoder.build_encoder(tiny_model_config())


@pytest.fixture(scope="module")
def variables(model):
  v = encoder.init_variables(model, jax.random.PRNGKey(0), (1, 4, H, H, 3))
  # Non-trivial running statistics, so eval-mode BatchNorm is exercised.
  rng = np.random.default_rng(1)
  v["batch_stats"] = jax.tree_util.tree_map(
    lambda x: x + rng.uniform(0.1, 0.5, x.shape).astype(x.dtype), v["batch_stats"]
  )
  return v


@pytest.fixture(scope="module")
def direct(model):
  """Unpadded, unchunked reference: model.apply on one whole video, compiled per length."""
  fn = jax.jit(lambda v, x: model.apply(v, x[None], None, train=False)[0])
  return lambda variables, frames: np.asarray(fn(variables, frames))


def test_bucket_assignment():
  assert evaluate.bucket_ladder(100, 32, 1.5, 32) == [32, 64, 96, 128]
  assert evaluate.bucket_ladder(10, 32, 1.5, 32) == [32]
  assert evaluate.assign_buckets([1, 32, 33, 65, 100]) == [32, 32, 64, 96, 128]
  assert evaluate.assign_buckets([5, 9, 13], (16, 8)) == [8, 16, 16]
  # num_context rounds buckets up to whole steps.
  assert evaluate.assign_buckets([5, 9], (7, 15), num_context=2) == [8, 16]
  with pytest.raises(ValueError, match="bucket_sizes"):
    evaluate.assign_buckets([20], (8, 16))


def test_bucketed_pass_equals_direct_calls_and_compiles_once_per_bucket(model, variables, direct):
  rng = np.random.default_rng(0)
  videos = [make_video(rng, f"v{i}", n) for i, n in enumerate((5, 9, 13))]
  embedder = evaluate.get_embedder(model.clone(trunk_chunk=4))
  traces = embedder.num_traces
  lines = []
  embs = evaluate.embed_videos(
    model,
    variables,
    videos,
    image_size=H,
    bucket_sizes=BUCKETS,
    chunk=4,
    log=lines.append,
    log_every_s=0.0,
  )
  assert embedder.num_traces - traces == 2  # Buckets 8 and 16, not one per video.
  assert any("3/3 videos" in line and "frames/s" in line for line in lines)
  for video, emb in zip(videos, embs):
    ref = direct(variables, video.frames)
    assert emb.shape == (video.num_frames, 8) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-5)
  # The padded call without the true-length positional encoding would differ (linspace), so
  # the comparison above is sensitive to it.
  v = videos[0]
  padded = np.zeros((8, H, H, 3), np.uint8)
  padded[:5] = v.frames
  naive = np.asarray(
    jax.jit(lambda x, m: model.apply(variables, x, m, train=False))(
      padded[None], (np.arange(8) < 5)[None]
    )
  )[0, :5]
  assert np.abs(naive - embs[0]).max() > 1e-3
  # Again, with a TrainState-like object and resizing from 48 px: no new compilation.
  state = types.SimpleNamespace(
    params=variables["params"], batch_stats=variables["batch_stats"], step=3
  )
  big = [make_video(rng, "big", 7, size=48)]
  emb_big = evaluate.embed_videos(
    model, state, big, image_size=H, bucket_sizes=BUCKETS, chunk=4, log=lines.append
  )
  assert embedder.num_traces - traces == 2
  from lac_jax.data import augment  # pylint: disable=g-import-not-at-top

  np.testing.assert_allclose(
    emb_big[0], direct(variables, augment.resize(big[0].frames, H)), rtol=1e-5, atol=1e-5
  )


def test_evaluate_returns_row_and_writes_json(model, variables, tmp_path):
  rng = np.random.default_rng(2)
  train = [make_video(rng, f"t{i}", n) for i, n in enumerate((6, 10, 12, 16))]
  val = [make_video(rng, f"v{i}", n) for i, n in enumerate((7, 11, 14))]
  config = tiny_eval_config()
  row = evaluate.evaluate(
    model,
    variables,
    train,
    val,
    config,
    workdir=str(tmp_path),
    name="pour",
    step=12,
    log=lambda s: None,
  )
  assert set(row) == {
    "class_50",
    "class_100",
    "ap_1",
    "ap_3",
    "progress_50",
    "progress_100",
    "progress",
    "tau",
    "cycle_consistency",
    "num_val",
    "num_labelled_train",
    "num_labelled_val",
  }
  # Same row as the metrics on separately computed embeddings (train/val kept apart, in order).
  kw = dict(image_size=H, bucket_sizes=BUCKETS, chunk=4, log=lambda s: None)
  expected = metrics.evaluate_embeddings(
    evaluate.embed_videos(model, variables, train, **kw),
    [v.labels for v in train],
    evaluate.embed_videos(model, variables, val, **kw),
    [v.labels for v in val],
    config,
  )
  for k in expected:
    np.testing.assert_allclose(row[k], expected[k], rtol=1e-9, atol=1e-9, err_msg=k)
  path = tmp_path / "eval" / "pour_step12.json"
  saved = json.loads(path.read_text())
  assert saved["step"] == 12 and saved["num_train_videos"] == 4
  for k, value in row.items():
    assert (
      (saved["summary"][k] is None)
      if math.isnan(value)
      else (saved["summary"][k] == pytest.approx(value))
    )
  assert not list((tmp_path / "eval").glob(".tmp_*"))  # The temp file was renamed away.


def test_evaluate_dataset_penn_action_means_over_actions(model, variables, tmp_path, monkeypatch):
  rng = np.random.default_rng(3)

  def fake_load_split(data, split, action=None, image_size=None):
    assert data.dataset == "penn_action" and data.data_dir == "/data" and image_size == H
    assert action in penn_action.ACTIONS
    k = data_lib.num_phases("penn_action", action)
    lengths = (8, 12, 16, 10) if split == "train" else (9, 13, 15)
    return [make_video(rng, f"{action}_{i}", n, num_phases=k) for i, n in enumerate(lengths)]

  seen = []
  real = metrics.evaluate_embeddings

  def spy(train_embs, train_labels, val_embs, val_labels, config):
    seen.append(config.num_classes)
    return real(train_embs, train_labels, val_embs, val_labels, config)

  monkeypatch.setattr(evaluate.data_lib, "load_split", fake_load_split)
  monkeypatch.setattr(evaluate.metrics, "evaluate_embeddings", spy)
  config = ml_collections.ConfigDict(
    {
      "model": tiny_model_config(),
      "data": {"dataset": "penn_action", "data_dir": "/data", "action": "", "image_size": H},
      "eval": tiny_eval_config(),
    }
  )
  lines = []
  result = evaluate.evaluate_dataset(
    config, variables, str(tmp_path), step=5, model=model, log=lines.append
  )
  actions = list(penn_action.ACTIONS)
  assert list(result["rows"]) == actions + ["mean"]
  # Phases per action reach the metrics.
  assert seen == [data_lib.num_phases("penn_action", a) for a in actions]
  for key, value in result["summary"].items():
    reduce = np.sum if key in tables.COUNT_KEYS else np.mean  # videos are counted, not averaged
    np.testing.assert_allclose(value, reduce([result["rows"][a][key] for a in actions]))
  assert "Tau" in lines[-1] and "mean" in lines[-1] and "baseball_pitch" in lines[-1]
  saved = json.loads((tmp_path / "eval" / "eval_step5.json").read_text())
  assert saved["dataset"] == "penn_action" and len(saved["rows"]) == 14
  assert saved["summary"]["tau"] == pytest.approx(result["summary"]["tau"])


def test_bad_inputs(model, variables):
  with pytest.raises(ValueError, match="params"):
    evaluate.embed_videos(model, {"batch_stats": {}}, [], image_size=H)
  with pytest.raises(ValueError, match=r"videos\[0\]"):
    evaluate.embed_videos(
      model, variables, [np.zeros((3, H, H), np.uint8)], image_size=H, bucket_sizes=BUCKETS
    )
  with pytest.raises(ValueError, match="val_videos"):
    evaluate.evaluate(model, variables, [make_video(np.random.default_rng(0), "a", 6)], [])
