"""Tests of the training and evaluation pipelines (tiny synthetic videos)."""

import threading

import numpy as np
import pytest

from lac_jax.data import pipeline
from lac_jax.data import synthetic
from lac_jax.data.record import Video

# One worker runs this module (pytest-xdist): its module fixtures then run once.
pytestmark = pytest.mark.xdist_group("pipeline")


def _config(**overrides):
  c = pipeline.default_config()
  c.synthetic.num_train, c.synthetic.num_val = 6, 3
  c.synthetic.height = c.synthetic.width = 24
  c.synthetic.min_frames, c.synthetic.max_frames = 10, 30  # some shorter than num_frames
  c.image_size = 16
  c.batch_size = 4
  c.sampling.num_frames = 20
  c.update(overrides)
  return c


@pytest.fixture(scope="module")
def videos():
  return synthetic.load("train", _config().synthetic)


def _take(videos, config, n, seed=0, **kwargs):
  kwargs.setdefault("process_index", 0)
  kwargs.setdefault("process_count", 1)
  with pipeline.train_iterator(videos, config, seed, **kwargs) as it:
    return [next(it) for _ in range(n)]


def _equal(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_batch_shapes_and_dtypes(videos):
  (batch,) = _take(videos, _config(), 1)
  assert batch["frames"].shape == (4, 2, 20, 16, 16, 3) and batch["frames"].dtype == np.uint8
  assert batch["steps"].shape == (4, 2, 20) and batch["steps"].dtype == np.int32
  assert batch["mask"].shape == (4, 2, 20) and batch["mask"].dtype == bool
  np.testing.assert_array_equal(
    batch["lengths"], [videos[i].num_frames for i in batch["video_index"]]
  )
  assert batch["video_index"].shape == (4,) and batch["video_index"].dtype == np.int32
  lengths = np.array([videos[i].num_frames for i in batch["video_index"]])
  assert np.all(batch["steps"] < lengths[:, None, None])


def test_frames_are_the_sampled_steps(videos):
  # Without augmentation and at the source size, a view is exactly video.frames[steps].
  c = _config(image_size=24)
  c.augment.enabled = False
  for batch in _take(videos, c, 3):
    for b, v in enumerate(batch["video_index"]):
      frames = videos[v].frames
      for view in range(2):
        np.testing.assert_array_equal(batch["frames"][b, view], frames[batch["steps"][b, view]])
        n = videos[v].num_frames
        assert batch["mask"][b, view].sum() <= min(n, 20)
  short = [i for i, v in enumerate(videos) if v.num_frames < 20]
  assert short, "fixture should contain videos shorter than num_frames"


def test_deterministic_by_seed_and_independent_of_workers(videos):
  a = _take(videos, _config(), 3, seed=7)
  b = _take(videos, _config(num_workers=0), 3, seed=7)
  c = _take(videos, _config(num_workers=3, prefetch=1), 3, seed=7)
  d = _take(videos, _config(), 3, seed=8)
  assert all(_equal(x, y) for x, y in zip(a, b))
  assert all(_equal(x, y) for x, y in zip(a, c))
  assert not all(_equal(x, y) for x, y in zip(a, d))


def test_resumes_from_a_step(videos):
  full = _take(videos, _config(), 5, seed=3)
  resumed = _take(videos, _config(), 2, seed=3, start_step=3)
  assert _equal(full[3], resumed[0]) and _equal(full[4], resumed[1])


def test_processes_split_the_global_batch(videos):
  c = _config()
  whole = _take(videos, c, 3, seed=1)
  parts = [_take(videos, c, 3, seed=1, process_index=p, process_count=2) for p in range(2)]
  for s in range(3):
    for key in whole[s]:
      assert parts[0][s][key].shape[0] == 2
      np.testing.assert_array_equal(
        np.concatenate([parts[0][s][key], parts[1][s][key]]), whole[s][key]
      )


def test_each_epoch_visits_every_video_once(videos):
  c = _config(batch_size=3)
  batches = _take(videos, c, 6, seed=0)  # 6 videos, batch 3: epochs = steps (0,1), (2,3), (4,5)
  order = np.concatenate([b["video_index"] for b in batches])
  for e in range(3):
    assert sorted(order[6 * e : 6 * e + 6].tolist()) == list(range(6))
  assert not np.array_equal(order[:6], order[6:12])  # reshuffled per epoch


def test_stream_crosses_epochs_when_batch_exceeds_dataset(videos):
  idx = pipeline.batch_indices(len(videos), 8, seed=0, step=0)
  assert sorted(idx[:6].tolist()) == list(range(6))
  np.testing.assert_array_equal(idx[6:], pipeline.epoch_permutation(6, 0, 1)[:2])


def test_drop_last_batches_stay_within_their_epoch(videos):
  # 6 videos, batch 4: one whole batch per epoch, two videos skipped (official drop_last).
  assert pipeline.batches_per_epoch(6, 4, drop_last=True) == 1.0
  assert pipeline.batches_per_epoch(6, 4) == 1.5
  for step in range(4):
    idx = pipeline.batch_indices(6, 4, seed=0, step=step, drop_last=True)
    np.testing.assert_array_equal(idx, pipeline.epoch_permutation(6, 0, step)[:4])
    assert pipeline.epoch_of_step(step, 6, 4, drop_last=True) == step
  # Without drop_last a batch belongs to the epoch of its first video (1.5 batches an epoch).
  assert [pipeline.epoch_of_step(s, 6, 4) for s in range(4)] == [0, 0, 1, 2]
  c = _config(drop_last=True, num_workers=0)
  batches = _take(videos, c, 2, seed=0)
  for e, batch in enumerate(batches):
    np.testing.assert_array_equal(batch["video_index"], pipeline.epoch_permutation(6, 0, e)[:4])
  with pytest.raises(ValueError, match="drop_last.*no whole batch"):
    pipeline.batches_per_epoch(3, 4, drop_last=True)


def test_clear_errors(videos):
  with pytest.raises(ValueError, match="empty"):
    pipeline.train_iterator([], _config(), 0, process_index=0, process_count=1)
  with pytest.raises(ValueError, match="divisible by the process count 3"):
    pipeline.train_iterator(videos, _config(batch_size=4), 0, process_index=0, process_count=3)
  with pytest.raises(ValueError, match="empty"):
    list(pipeline.eval_iterator([], _config()))


def test_worker_errors_reach_the_consumer_and_close_joins_threads(videos):
  bad = Video(
    name="broken",
    action="x",
    labels=np.zeros(5, np.int32),
    source=lambda: np.zeros((4, 8, 8, 3), np.uint8),
  )  # 4 frames, 5 labels
  it = pipeline.train_iterator([bad], _config(batch_size=1), 0, process_index=0, process_count=1)
  with pytest.raises(ValueError, match="broken"):
    next(it)
  it.close()
  before = threading.active_count()
  it = pipeline.train_iterator(videos, _config(num_workers=2), 0, process_index=0, process_count=1)
  next(it)
  it.close()
  assert not any(t.name.startswith("lac_data") and t.is_alive() for t in threading.enumerate())
  assert threading.active_count() <= before
  with pytest.raises(RuntimeError, match="closed"):
    next(it)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_eval_iterator_is_ordered_and_complete(num_workers):
  c = _config(num_workers=num_workers, image_size=12)
  val = synthetic.load("val", c.synthetic)
  items = list(pipeline.eval_iterator(val, c))
  assert [x["name"] for x in items] == [v.name for v in val]
  for i, (x, v) in enumerate(zip(items, val)):
    n = v.num_frames
    assert x["video_index"] == i
    assert x["frames"].shape == (n, 12, 12, 3) and x["frames"].dtype == np.uint8
    np.testing.assert_array_equal(x["steps"], np.arange(n))
    assert x["mask"].all() and x["mask"].shape == (n,)
    np.testing.assert_array_equal(x["labels"], v.labels)
    # No augmentation: a deterministic resize of every frame.
    c2 = c.copy_and_resolve_references()
    c2.augment.enabled = False
    np.testing.assert_array_equal(
      x["frames"], pipeline.augment.augment_view(v.frames, None, 12, c2.augment)
    )
