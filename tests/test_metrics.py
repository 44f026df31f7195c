"""Tests for lac_jax.metrics: each metric on hand-computable cases and against slow references."""

import math
import warnings

import numpy as np
import pytest
import scipy.stats
from scipy.spatial.distance import cdist
from sklearn import linear_model

from lac_jax import config as config_lib
from lac_jax import metrics
from lac_jax import tables


def _monotone_labels(rng, num_frames, num_classes):
  """Sorted random phase labels covering every phase, int ``[T]``."""
  cuts = np.sort(rng.choice(np.arange(1, num_frames), num_classes - 1, replace=False))
  return np.searchsorted(cuts, np.arange(num_frames), side="right").astype(np.int32)


def _scipy_tau(x_len, nn):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # scipy warns on degenerate inputs, then returns NaN.
    return scipy.stats.kendalltau(np.arange(x_len), nn).statistic


def _slow_tau_matrix(embs, stride, distance="sqeuclidean"):
  """The official loop: every ordered pair, cdist + argmin + scipy.stats.kendalltau."""
  n = len(embs)
  out = np.full((n, n), np.nan)
  for i in range(n):
    for j in range(n):
      if i == j:
        continue
      q, c = embs[i][::stride], embs[j][::stride]
      if len(q) == 0 or len(c) == 0:
        continue
      nn = np.argmin(cdist(q, c, distance), axis=1)
      out[i, j] = _scipy_tau(len(q), nn)
  return out


def _slow_retrieval(embs, labels, ks, stride):
  """The official loop, one query frame at a time with a stable full sort."""
  embs = [e[lab >= 0][::stride] for e, lab in zip(embs, labels)]
  labels = [lab[lab >= 0][::stride] for lab in labels]
  out = {k: [] for k in ks}
  for i in range(len(embs)):
    gallery = np.concatenate([e for j, e in enumerate(embs) if j != i])
    gallery_labels = np.concatenate([lab for j, lab in enumerate(labels) if j != i])
    if len(embs[i]) == 0:
      continue
    for k in ks:
      precisions = []
      for a in range(len(embs[i])):
        d = cdist(embs[i][a : a + 1], gallery, "sqeuclidean")[0]
        top = np.argsort(d, kind="stable")[:k]
        precisions.append(np.mean(gallery_labels[top] == labels[i][a]))
      out[k].append(np.mean(precisions))
  return {k: float(np.mean(v)) for k, v in out.items()}


# --------------------------------------------------------------------------------------------
# Config and the fraction rule.


def test_default_config_matches_official_protocol():
  config = config_lib.eval_config()
  assert tuple(config.fractions) == (0.1, 0.5, 1.0)
  assert config.classifier == "logistic"
  assert config.tau_stride == 5 and config.retrieval_stride == 5
  assert tuple(config.retrieval_ks) == (5, 10, 15)
  assert config.distance == "sqeuclidean"
  assert config.num_classes is None
  config.num_classes = 5  # The placeholder accepts an int override.
  assert config.num_classes == 5


@pytest.mark.parametrize(
  "fraction,num_videos,expected",
  [
    (0.1, 70, 7),
    (0.5, 70, 35),
    (1.0, 70, 70),
    (0.1, 103, 10),
    (0.5, 103, 51),
    (0.1, 5, 1),
    (0.01, 3, 1),
    (0.3, 10, int(0.3 * 10)),
  ],
)
def test_num_train_videos(fraction, num_videos, expected):
  assert metrics.num_train_videos(fraction, num_videos) == expected


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_num_train_videos_rejects_bad_fraction(fraction):
  with pytest.raises(ValueError, match="fractions"):
    metrics.num_train_videos(fraction, 10)


# --------------------------------------------------------------------------------------------
# Classification.


def _separable(rng, num_videos, num_frames=20, num_classes=3, dim=4, noise=0.05):
  """Embeddings = one-hot of the phase (+ noise): perfectly separable."""
  embs, labels = [], []
  for _ in range(num_videos):
    lab = _monotone_labels(rng, num_frames, num_classes)
    emb = np.zeros((num_frames, dim))
    emb[np.arange(num_frames), lab] = 3.0
    embs.append(emb + noise * rng.normal(size=emb.shape))
    labels.append(lab)
  return embs, labels


@pytest.mark.parametrize("model", ["logistic", "svm"])
def test_classification_separable_is_perfect(model):
  rng = np.random.default_rng(0)
  train = _separable(rng, 6)
  val = _separable(rng, 3)
  acc = metrics.classification(*train, *val, fractions=(0.5, 1.0), model=model)
  assert acc == {0.5: 1.0, 1.0: 1.0}


def test_classification_random_labels_is_about_chance():
  rng = np.random.default_rng(1)
  make = lambda n: (
    [rng.normal(size=(40, 8)) for _ in range(n)],
    [rng.integers(0, 4, 40) for _ in range(n)],
  )
  acc = metrics.classification(*make(10), *make(10), fractions=(1.0,))
  assert 0.15 < acc[1.0] < 0.35  # Chance = 0.25 on 400 val frames.


def test_classification_matches_direct_sklearn_fit():
  rng = np.random.default_rng(2)
  train_embs = [rng.normal(size=(int(rng.integers(10, 20)), 5)) for _ in range(7)]
  train_labels = [rng.integers(-1, 3, len(e)) for e in train_embs]
  val_embs = [rng.normal(size=(15, 5)) for _ in range(3)]
  val_labels = [rng.integers(-1, 3, 15) for _ in range(3)]
  acc = metrics.classification(train_embs, train_labels, val_embs, val_labels, fractions=(0.5,))
  n = max(1, int(0.5 * 7))  # = 3
  x = np.concatenate([e[lab >= 0] for e, lab in zip(train_embs[:n], train_labels[:n])])
  y = np.concatenate([lab[lab >= 0] for lab in train_labels[:n]])
  xv = np.concatenate([e[lab >= 0] for e, lab in zip(val_embs, val_labels)])
  yv = np.concatenate([lab[lab >= 0] for lab in val_labels])
  clf = linear_model.LogisticRegression(max_iter=100000).fit(x, y)
  assert acc[0.5] == pytest.approx(np.mean(clf.predict(xv) == yv), abs=1e-12)


def test_classification_uses_the_first_n_videos():
  # Video 0 maps x>0 -> phase 1; videos 1..9 the opposite. Only the first n videos count.
  def video(flip):
    x = np.linspace(-1, 1, 20)[:, None]
    lab = (x[:, 0] > 0).astype(int)
    return x, (1 - lab if flip else lab)

  train = [video(flip=i > 0) for i in range(10)]
  val = [video(flip=False)]
  acc = metrics.classification(
    [t[0] for t in train],
    [t[1] for t in train],
    [v[0] for v in val],
    [v[1] for v in val],
    fractions=(0.1, 0.19, 1.0),
  )
  # int(0.19 * 10) = 1 -> still only video 0; all 10 videos -> the flipped majority wins.
  assert acc == {0.1: 1.0, 0.19: 1.0, 1.0: 0.0}


def test_classification_single_class_predicts_that_class():
  train_embs = [np.zeros((5, 2)), np.ones((5, 2))]
  train_labels = [np.zeros(5, int), np.ones(5, int)]
  val_embs = [np.zeros((8, 2))]
  val_labels = [np.array([0, 0, 0, 1, 1, 2, 2, 2])]
  acc = metrics.classification(train_embs, train_labels, val_embs, val_labels, fractions=(0.5,))
  assert acc == {0.5: 3 / 8}  # Only phase 0 seen in the first video: it is always predicted.


def test_classification_ignores_negative_labels():
  rng = np.random.default_rng(3)
  train_embs, train_labels = _separable(rng, 4)
  val_embs, val_labels = _separable(rng, 2)
  base = metrics.classification(train_embs, train_labels, val_embs, val_labels)
  # Unlabelled frames with embeddings that would be misclassified must change nothing.
  add = lambda e, lab: (
    np.concatenate([e, 50 * rng.normal(size=(7, e.shape[1]))]),
    np.concatenate([lab, -np.ones(7, int)]),
  )
  tr = [add(e, lab) for e, lab in zip(train_embs, train_labels)]
  va = [add(e, lab) for e, lab in zip(val_embs, val_labels)]
  got = metrics.classification(
    [t[0] for t in tr], [t[1] for t in tr], [v[0] for v in va], [v[1] for v in va]
  )
  assert got == base


def test_classification_bad_inputs_are_named():
  e, lab = [np.zeros((4, 3))], [np.zeros(4, int)]
  with pytest.raises(ValueError, match="classifier"):
    metrics.classification(e, lab, e, lab, model="knn")
  with pytest.raises(ValueError, match=r"train_labels\[0\]"):
    metrics.classification(e, [np.zeros(5, int)], e, lab)
  with pytest.raises(ValueError, match="val_embs"):
    metrics.classification(e, lab, [np.zeros((4, 2))], lab)
  with pytest.raises(ValueError, match=r"train_embs\[0\].*NaN"):
    metrics.classification([np.full((4, 3), np.nan)], lab, e, lab)
  with pytest.raises(ValueError, match="val_labels"):
    metrics.classification(e, lab, e, [-np.ones(4, int)])


# --------------------------------------------------------------------------------------------
# Progression.


def test_progression_targets_by_hand():
  labels = np.array([0, 0, 1, 1, 1, 2])
  t = np.arange(6)
  expected = np.stack([(t - 1) / 6, (t - 4) / 6], axis=1)
  np.testing.assert_allclose(metrics.progression_targets(labels, 3), expected)


@pytest.mark.parametrize(
  "labels,num_classes,event_frames",
  [
    ([0, 0, 2, 2], 3, [1, 1]),  # Phase 1 missing: ends where phase 0 ends.
    ([1, 1, 2], 3, [-1, 1]),  # Phase 0 missing at the start: ends before frame 0.
    ([0, 0, 0], 3, [2, 2]),  # Phase 1 never reached: ends at the last frame.
    ([0, 1, 1, 3], 4, [0, 2, 2]),  # Phase 2 missing in the middle.
  ],
)
def test_progression_targets_missing_phase_zero_length(labels, num_classes, event_frames):
  labels = np.array(labels)
  t = np.arange(len(labels))[:, None]
  expected = (t - np.array(event_frames)[None]) / len(labels)
  np.testing.assert_allclose(metrics.progression_targets(labels, num_classes), expected)


def test_progression_targets_missing_phase_drop():
  got = metrics.progression_targets(np.array([0, 0, 2, 2]), 3, missing_phase="drop")
  np.testing.assert_allclose(got[:, 0], (np.arange(4) - 1) / 4)
  assert np.all(np.isnan(got[:, 1]))
  with pytest.raises(ValueError, match="missing_phase"):
    metrics.progression_targets(np.array([0, 1]), 2, missing_phase="first")


def _progress_data(rng, num_videos, num_classes=4, dim=6, exact=False):
  embs, labels = [], []
  for _ in range(num_videos):
    num_frames = int(rng.integers(20, 40))
    lab = _monotone_labels(rng, num_frames, num_classes)
    noise = rng.normal(size=(num_frames, dim))
    if exact:  # The targets are linear in the embedding: R² must be 1.
      noise[:, : num_classes - 1] = metrics.progression_targets(lab, num_classes)
    embs.append(noise)
    labels.append(lab)
  return embs, labels


def test_progression_linear_embedding_is_perfect():
  rng = np.random.default_rng(4)
  train, val = _progress_data(rng, 6, exact=True), _progress_data(rng, 3, exact=True)
  scores = metrics.progression(*train, *val, fractions=(0.5, 1.0))
  assert scores[0.5] == pytest.approx(1.0, abs=1e-9)
  assert scores[1.0] == pytest.approx(1.0, abs=1e-9)


def test_progression_random_embedding_explains_nothing():
  rng = np.random.default_rng(5)
  scores = metrics.progression(*_progress_data(rng, 10), *_progress_data(rng, 5), fractions=(1.0,))
  assert scores[1.0] < 0.1


def test_progression_matches_per_event_reference():
  rng = np.random.default_rng(6)
  train_embs, train_labels = _progress_data(rng, 7, num_classes=3)
  val_embs, val_labels = _progress_data(rng, 3, num_classes=3)
  got = metrics.progression(train_embs, train_labels, val_embs, val_labels, fractions=(0.5,))

  def targets(lab):  # The official loop, written out.
    out = np.zeros((len(lab), 2))
    for k in range(2):
      t_k = np.argwhere(lab == k)[-1, 0]
      out[:, k] = [(t - t_k) / len(lab) for t in range(len(lab))]
    return out

  n = 3
  x, y = np.concatenate(train_embs[:n]), np.concatenate([targets(l) for l in train_labels[:n]])
  xv, yv = np.concatenate(val_embs), np.concatenate([targets(l) for l in val_labels])
  r2 = [linear_model.LinearRegression().fit(x, y[:, k]).score(xv, yv[:, k]) for k in range(2)]
  assert got[0.5] == pytest.approx(np.mean(r2), abs=1e-10)


def test_progression_missing_phase_fallbacks():
  rng = np.random.default_rng(7)
  train_embs, train_labels = _progress_data(rng, 5, num_classes=3)
  val_embs, val_labels = _progress_data(rng, 3, num_classes=3)
  val_labels[1] = np.where(val_labels[1] == 1, 2, val_labels[1])  # Val video 1 lacks phase 1.
  train_labels[0] = np.where(train_labels[0] == 1, 0, train_labels[0])  # Train video 0 too.

  zero = metrics.progression(train_embs, train_labels, val_embs, val_labels, fractions=(1.0,))
  assert np.isfinite(zero[1.0])

  drop = metrics.progression(
    train_embs, train_labels, val_embs, val_labels, fractions=(1.0,), missing_phase="drop"
  )
  # Reference: event 0 uses every video; event 1 leaves out train video 0 and val video 1.
  tgt = lambda lab: metrics.progression_targets(lab, 3)
  x, y = np.concatenate(train_embs), np.concatenate([tgt(l) for l in train_labels])
  xv, yv = np.concatenate(val_embs), np.concatenate([tgt(l) for l in val_labels])
  r2_0 = linear_model.LinearRegression().fit(x, y[:, 0]).score(xv, yv[:, 0])
  keep_tr, keep_va = [1, 2, 3, 4], [0, 2]
  x1 = np.concatenate([train_embs[i] for i in keep_tr])
  y1 = np.concatenate([tgt(train_labels[i])[:, 1] for i in keep_tr])
  xv1 = np.concatenate([val_embs[i] for i in keep_va])
  yv1 = np.concatenate([tgt(val_labels[i])[:, 1] for i in keep_va])
  r2_1 = linear_model.LinearRegression().fit(x1, y1).score(xv1, yv1)
  assert drop[1.0] == pytest.approx((r2_0 + r2_1) / 2, abs=1e-10)
  assert drop[1.0] != pytest.approx(zero[1.0], abs=1e-6)


def test_progression_negative_labels_are_dropped_before_t_and_T():
  rng = np.random.default_rng(8)
  train, val = _progress_data(rng, 4), _progress_data(rng, 2)
  base = metrics.progression(*train, *val, fractions=(1.0,))

  def pad(embs, labels):  # Unlabelled frames at both ends, with garbage embeddings.
    return (
      [
        np.concatenate([9 * np.ones((3, e.shape[1])), e, -9 * np.ones((2, e.shape[1]))])
        for e in embs
      ],
      [np.concatenate([-np.ones(3, int), l, -np.ones(2, int)]) for l in labels],
    )

  got = metrics.progression(*pad(*train), *pad(*val), fractions=(1.0,))
  assert got[1.0] == pytest.approx(base[1.0], abs=1e-10)


def test_progression_num_classes_checks():
  e, lab = [np.zeros((4, 2))], [np.array([0, 1, 2, 2])]
  with pytest.raises(ValueError, match="num_classes"):
    metrics.progression(e, lab, e, lab, num_classes=2)
  with pytest.raises(ValueError, match="num_classes"):
    metrics.progression(e, [np.zeros(4, int)], e, [np.zeros(4, int)])


# --------------------------------------------------------------------------------------------
# Kendall's tau.


def test_tau_b_against_order_matches_scipy_with_ties():
  rng = np.random.default_rng(9)
  for n in [1, 2, 3, 7, 31]:
    nn = rng.integers(0, 4, size=(n, 25))  # Few values: many ties.
    nn[:, 0] = 2  # All tied -> NaN.
    got = metrics.tau_b_against_order(nn)
    want = np.array([_scipy_tau(n, nn[:, c]) for c in range(nn.shape[1])])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.array_equal(np.isnan(got), np.isnan(want))


def test_kendalls_tau_matches_official_loop_including_ties_and_nans():
  rng = np.random.default_rng(10)
  embs = [rng.normal(size=(int(rng.integers(8, 60)), 6)) for _ in range(8)]
  embs[2] = np.repeat(rng.normal(size=(5, 6)), 6, axis=0)  # Duplicate frames -> tied neighbours.
  embs[3] = np.ones((25, 6))  # Constant video.
  embs[4] = rng.normal(size=(3, 6))  # 1 strided frame at stride 3 -> NaN as query.
  for stride in [1, 3]:
    got = metrics.kendalls_tau(embs, stride=stride)
    want = _slow_tau_matrix(embs, stride)
    np.testing.assert_allclose(got.per_pair, want, rtol=0, atol=1e-12)
    assert np.array_equal(np.isnan(got.per_pair), np.isnan(want))
    off = want[~np.eye(8, dtype=bool)]
    assert got.num_pairs == 56
    assert got.num_nan == np.isnan(off).sum()
    assert got.value == pytest.approx(np.nanmean(off), abs=1e-12)


def test_kendalls_tau_constant_video_pairs_are_nan_and_counted():
  rng = np.random.default_rng(11)
  t = np.linspace(0, 1, 30)[:, None]
  curve = lambda: np.concatenate([np.cos(t), np.sin(t), t**2], 1) + 1e-3 * rng.normal(size=(30, 3))
  embs = [curve() for _ in range(4)] + [np.full((30, 3), 0.5)]
  result = metrics.kendalls_tau(embs, stride=2)
  # The constant video is NaN both as query and as candidate: 2 * (5 - 1) pairs.
  assert result.num_pairs == 20 and result.num_nan == 8
  assert np.all(np.isnan(result.per_pair[4])) and np.all(np.isnan(result.per_pair[:, 4]))
  assert result.value == pytest.approx(1.0)  # The 12 other pairs are perfectly aligned.


def test_kendalls_tau_ordered_reversed_and_shuffled():
  rng = np.random.default_rng(12)
  t = np.linspace(0, 1, 40)[:, None]
  base = np.concatenate([np.cos(2 * t), np.sin(2 * t), t], 1)
  aligned = [base + 1e-3 * rng.normal(size=base.shape) for _ in range(3)]
  assert metrics.kendalls_tau(aligned, stride=1).value == pytest.approx(1.0)
  result = metrics.kendalls_tau(aligned + [base[::-1]], stride=1)
  np.testing.assert_allclose(result.per_pair[3, :3], -1.0)
  np.testing.assert_allclose(result.per_pair[:3, 3], -1.0)
  shuffled = metrics.kendalls_tau([rng.normal(size=(60, 8)) for _ in range(10)], stride=1)
  assert abs(shuffled.value) < 0.05


def test_kendalls_tau_negative_labels_dropped_before_stride():
  rng = np.random.default_rng(13)
  embs = [rng.normal(size=(30, 4)) for _ in range(4)]
  labels = [np.where(rng.random(30) < 0.3, -1, 0) for _ in range(4)]
  got = metrics.kendalls_tau(embs, stride=2, labels=labels)
  want = metrics.kendalls_tau([e[l >= 0] for e, l in zip(embs, labels)], stride=2)
  np.testing.assert_array_equal(got.per_pair, want.per_pair)


def test_kendalls_tau_cosine_matches_scipy():
  rng = np.random.default_rng(14)
  embs = [rng.normal(size=(int(rng.integers(10, 30)), 5)) for _ in range(5)]
  got = metrics.kendalls_tau(embs, stride=2, distance="cosine")
  np.testing.assert_allclose(got.per_pair, _slow_tau_matrix(embs, 2, "cosine"), atol=1e-12)
  with pytest.raises(ValueError, match="distance"):
    metrics.kendalls_tau(embs, distance="manhattan")
  with pytest.raises(ValueError, match="stride"):
    metrics.kendalls_tau(embs, stride=0)


# --------------------------------------------------------------------------------------------
# Retrieval.


def test_retrieval_by_hand():
  embs = [np.array([[0.0], [10.0]]), np.array([[1.0], [2.0], [9.0], [11.5]])]
  labels = [np.array([0, 1]), np.array([0, 1, 1, 1])]
  got = metrics.retrieval(embs, labels, ks=(1, 2), stride=1)
  # Video 0: P@1 = 1, P@2 = (1/2 + 1) / 2; video 1: P@1 = 3/4, P@2 = 1/2.
  assert got[1] == pytest.approx((1 + 0.75) / 2)
  assert got[2] == pytest.approx((0.75 + 0.5) / 2)


def test_retrieval_separable_and_shuffled():
  rng = np.random.default_rng(15)
  embs, labels = _separable(rng, 5, num_frames=30)
  assert metrics.retrieval(embs, labels, stride=1) == {5: 1.0, 10: 1.0, 15: 1.0}
  random_embs = [rng.normal(size=(50, 8)) for _ in range(6)]
  random_labels = [rng.integers(0, 5, 50) for _ in range(6)]
  chance = metrics.retrieval(random_embs, random_labels, stride=1)
  assert all(0.12 < p < 0.28 for p in chance.values())  # Chance = 0.2.


def test_retrieval_matches_slow_loop():
  rng = np.random.default_rng(16)
  embs = [rng.normal(size=(int(rng.integers(10, 40)), 6)) for _ in range(5)]
  labels = [rng.integers(-1, 3, len(e)) for e in embs]
  ks = (1, 5, 10)
  got = metrics.retrieval(embs, labels, ks=ks, stride=2)
  want = _slow_retrieval(embs, labels, ks, stride=2)
  for k in ks:
    assert got[k] == pytest.approx(want[k], abs=1e-12)


def test_retrieval_rejects_too_large_k():
  embs = [np.zeros((10, 2)), np.ones((10, 2))]
  labels = [np.zeros(10, int)] * 2
  with pytest.raises(ValueError, match="ks"):
    metrics.retrieval(embs, labels, ks=(5, 15), stride=1)
  with pytest.raises(ValueError, match="2 videos"):
    metrics.retrieval(embs[:1], labels[:1])


# --------------------------------------------------------------------------------------------
# The table.


def test_evaluate_embeddings_row_is_the_metrics_times_100():
  rng = np.random.default_rng(17)
  train = _progress_data(rng, 10, num_classes=3)
  val = _progress_data(rng, 4, num_classes=3)
  config = config_lib.eval_config()
  config.tau_stride = 2
  config.retrieval_stride = 2
  config.blas_threads = 1
  row = metrics.evaluate_embeddings(*train, *val, config)
  acc = metrics.classification(*train, *val)
  r2 = metrics.progression(*train, *val)
  ap = metrics.retrieval(*val, stride=2)
  tau = metrics.kendalls_tau(val[0], stride=2)
  cycle = metrics.cycle_consistency(val[0], stride=5)
  want = {
    "class_10": acc[0.1],
    "class_50": acc[0.5],
    "class_100": acc[1.0],
    "ap_5": ap[5],
    "ap_10": ap[10],
    "ap_15": ap[15],
    "progress_10": r2[0.1],
    "progress_50": r2[0.5],
    "progress_100": r2[1.0],
    "progress": r2[1.0],
    "tau": tau.value,
    "cycle_consistency": cycle,
  }
  counts = {"num_val": 4, "num_labelled_train": 10, "num_labelled_val": 4}
  assert set(row) == set(want) | set(counts)
  for k, v in want.items():
    assert row[k] == pytest.approx(100 * v, abs=1e-9), k
  for k, v in counts.items():
    assert row[k] == v, k


def test_mean_over_actions_reproduces_paper_table_7_average():
  # LAC paper Table 7 (per-action rows) and its 'average' row; the average is unweighted.
  cols = ["class_10", "class_50", "class_100", "ap_5", "ap_10", "ap_15", "progress", "tau"]
  table = {
    "baseball_pitch": [92.50, 90.95, 90.68, 91.48, 91.41, 90.95, 93.28, 88.64],
    "baseball_swing": [93.96, 91.85, 90.36, 93.51, 93.23, 91.8, 94.26, 95.55],
    "bench_press": [94.83, 91.64, 91.17, 93.76, 92.88, 91.53, 96.64, 93.42],
    "bowl": [96.83, 94.53, 93.49, 92.52, 91.96, 90.54, 86.32, 91.84],
    "clean_and_jerk": [92.71, 88.83, 87.07, 87.36, 86.82, 85.64, 92.69, 94.66],
    "golf_swing": [96.37, 93.76, 93.5, 93.28, 92.92, 91.82, 95.86, 94.83],
    "jumping_jacks": [95.30, 94.3, 93.87, 94.36, 95.31, 94.66, 95.68, 96.47],
    "pushup": [94.04, 94.84, 94.38, 94.66, 94.38, 94.23, 96.8, 96.64],
    "pullup": [95.56, 94.55, 94.26, 94.57, 94.87, 94.12, 96.4, 95.44],
    "situp": [98.52, 96.57, 96.6, 95.22, 94.98, 94.95, 96.25, 96.31],
    "squat": [97.65, 94.28, 96.21, 95.26, 95.52, 94.64, 93.91, 95.08],
    "tennis_forehand": [97.51, 97.06, 97.51, 96.55, 95.03, 94.46, 94.29, 92.05],
    "tennis_serve": [96.62, 96.09, 95.09, 97.76, 95.01, 95.10, 92.33, 92.35],
  }
  average = [95.57, 93.79, 93.40, 93.87, 93.41, 92.65, 94.21, 94.10]
  mean = tables.mean_over_actions({a: dict(zip(cols, v)) for a, v in table.items()})
  for c, want in zip(cols, average):
    assert round(mean[c], 2) == pytest.approx(want, abs=1e-9), c


def test_mean_over_actions_is_unweighted_and_checks_keys():
  mean = tables.mean_over_actions(
    {"a": {"tau": 90.0, "progress": 1.0}, "b": {"tau": 80.0, "progress": 3.0}}
  )
  assert mean == {"tau": 85.0, "progress": 2.0}
  assert math.isnan(tables.mean_over_actions({"a": {"tau": math.nan}, "b": {"tau": 1.0}})["tau"])
  with pytest.raises(ValueError, match="per_action\\['b'\\]"):
    tables.mean_over_actions({"a": {"tau": 1.0}, "b": {"progress": 1.0}})


def test_format_table_columns_and_rows():
  rows = {
    "untrained": {
      "class_10": 50.0,
      "class_50": 51.0,
      "class_100": 52.125,
      "ap_5": 40.0,
      "ap_10": 41.0,
      "ap_15": 42.0,
      "progress": -3.5,
      "tau": 1.0,
      "progress_100": -3.5,
    },
    "trained": {"class_100": 95.16, "tau": 97.5},
  }
  text = tables.format_table(rows)
  lines = text.splitlines()
  header = lines[0].split()
  assert header == [
    "Class",
    "10",
    "Class",
    "50",
    "Class",
    "100",
    "AP@5",
    "AP@10",
    "AP@15",
    "Progress",
    "Tau",
  ]
  assert lines[2].split() == [
    "untrained",
    "50.00",
    "51.00",
    "52.12",
    "40.00",
    "41.00",
    "42.00",
    "-3.50",
    "1.00",
  ]
  assert lines[3].split() == ["trained", "-", "-", "95.16", "-", "-", "-", "-", "97.50"]
  # Columns line up: every value ends where its header ends.
  for line in lines[2:]:
    assert len(line) == len(lines[1])
