"""Frozen-embedding metrics of the LAC paper's table: phase classification, phase progression,
Kendall's tau, AP@K (the CARL/LAC evaluation protocol, docs/evaluation.md §2), on the
host with NumPy / scikit-learn. Inputs are lists with one entry per video: ``embs[i]`` float
``[T_i, E]`` and ``labels[i]`` int ``[T_i]`` (phase ids; frames with a label < 0 are dropped
first, everywhere, and every later index counts the kept frames). ``evaluate_embeddings``
assembles a row (x100); `lac_jax.tables` prints rows and averages PennAction's.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Optional, Sequence

import ml_collections
import numpy as np
import threadpoolctl

# scikit-learn is imported where it is used: importing it takes ~1 s, which every command that
# imports the metrics (the tools and the trainer, through lac_jax.evaluate) would pay.

CLASSIFIERS = ("logistic", "svm")
DISTANCES = ("sqeuclidean", "euclidean", "cosine")
MISSING_PHASE_RULES = ("zero_length", "drop")


# ------------------------------------------------------------------------------------------
# Input handling.


def _prepare(
  embs: Sequence[np.ndarray], labels: Optional[Sequence[np.ndarray]], prefix: str = ""
) -> tuple[list[np.ndarray], Optional[list[np.ndarray]]]:
  """Checks per-video inputs; returns float64 ``[T_i', E]`` and int64 ``[T_i']`` (label >= 0).

  ``prefix`` names the arguments in error messages (``'train'`` -> ``train_embs[3]``).
  """
  name = f"{prefix}_" if prefix else ""
  if isinstance(embs, np.ndarray) and embs.ndim == 2:
    raise ValueError(
      f"{name}embs: expected a list of per-video [T, E] arrays, got one 2-D "
      f"array of shape {embs.shape}"
    )
  if len(embs) == 0:
    raise ValueError(f"{name}embs: expected at least one video, got none")
  if labels is not None and len(labels) != len(embs):
    raise ValueError(
      f"{name}labels: expected one label array per video ({len(embs)}), got {len(labels)}"
    )
  out_embs, out_labels = [], ([] if labels is not None else None)
  dim = None
  for i, emb in enumerate(embs):
    emb = np.asarray(emb)
    if emb.ndim != 2 or not np.issubdtype(emb.dtype, np.number):
      raise ValueError(
        f"{name}embs[{i}]: expected a numeric 2-D [T, E] array, got "
        f"{emb.dtype} of shape {emb.shape}"
      )
    if dim is None:
      dim = emb.shape[1]
    elif emb.shape[1] != dim:
      raise ValueError(
        f"{name}embs[{i}]: embedding size {emb.shape[1]} differs from {name}embs[0] ({dim})"
      )
    emb = emb.astype(np.float64)
    if not np.all(np.isfinite(emb)):
      raise ValueError(f"{name}embs[{i}]: contains NaN or inf (diverged model?)")
    if labels is not None:
      lab = np.asarray(labels[i])
      if lab.ndim != 1 or not (np.issubdtype(lab.dtype, np.integer) or lab.size == 0):
        raise ValueError(
          f"{name}labels[{i}]: expected a 1-D integer [T] array, got "
          f"{lab.dtype} of shape {lab.shape}"
        )
      if lab.shape[0] != emb.shape[0]:
        raise ValueError(
          f"{name}labels[{i}]: {lab.shape[0]} labels but {name}embs[{i}] has {emb.shape[0]} frames"
        )
      keep = lab >= 0
      emb = emb[keep]
      out_labels.append(lab[keep].astype(np.int64))
    out_embs.append(emb)
  return out_embs, out_labels


def _check_same_dim(train: list[np.ndarray], val: list[np.ndarray]) -> None:
  if train[0].shape[1] != val[0].shape[1]:
    raise ValueError(
      f"val_embs: embedding size {val[0].shape[1]} differs from train_embs ({train[0].shape[1]})"
    )


def num_train_videos(fraction: float, num_videos: int) -> int:
  """Videos used for a label fraction: ``max(1, int(fraction * num_videos))`` (official rule)."""
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f"fractions: each fraction must be in (0, 1], got {fraction}")
  return max(1, int(fraction * num_videos))


def _pooled(
  embs: list[np.ndarray], labels: list[np.ndarray], what: str
) -> tuple[np.ndarray, np.ndarray]:
  x, y = np.concatenate(embs), np.concatenate(labels)
  if y.size == 0:
    raise ValueError(f"{what}: no frame with a label >= 0")
  return x, y


def _check_positive_int(value: int, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name}: expected a positive integer, got {value!r}")
  return int(value)


# ------------------------------------------------------------------------------------------
# Phase classification.


def _make_classifier(model: str):
  from sklearn import linear_model, svm  # pylint: disable=g-import-not-at-top

  if model == "logistic":
    # lbfgs is multinomial by default in scikit-learn >= 1.5 (the `multi_class` argument of
    # the official code is gone); L2 penalty, C = 1, no feature scaling.
    return linear_model.LogisticRegression(C=1.0, solver="lbfgs", max_iter=100000)
  if model == "svm":
    return svm.SVC(C=1.0, kernel="rbf", gamma="scale", decision_function_shape="ovo")
  raise ValueError(f"classifier: expected one of {CLASSIFIERS}, got {model!r}")


def classification(
  train_embs: Sequence[np.ndarray],
  train_labels: Sequence[np.ndarray],
  val_embs: Sequence[np.ndarray],
  val_labels: Sequence[np.ndarray],
  fractions: Sequence[float] = (0.1, 0.5, 1.0),
  model: str = "logistic",
) -> dict[float, float]:
  """Phase classification accuracy for each fraction of labelled training videos.

  Args:
    train_embs, train_labels: per-video ``[T_i, E]`` embeddings and ``[T_i]`` phase ids.
    val_embs, val_labels: the same for the evaluation videos.
    fractions: fractions of training *videos*; the first ``max(1, int(f * N))`` are used.
    model: 'logistic' (official code) or 'svm' (paper); see `config.eval_config`.

  Returns:
    ``{fraction: accuracy in [0, 1]}`` over all val frames pooled. When the chosen training
    frames hold a single phase, no classifier can be fitted; that phase is predicted for every
    val frame (the constant classifier the data supports).
  """
  _make_classifier(model)  # Validates the name before any work.
  train_embs, train_labels = _prepare(train_embs, train_labels, "train")
  val_embs, val_labels = _prepare(val_embs, val_labels, "val")
  _check_same_dim(train_embs, val_embs)
  x_val, y_val = _pooled(val_embs, val_labels, "val_labels")
  accuracies = {}
  for fraction in fractions:
    n = num_train_videos(fraction, len(train_embs))
    x, y = _pooled(train_embs[:n], train_labels[:n], f"train_labels (first {n} videos)")
    classes = np.unique(y)
    if classes.size == 1:
      pred = np.full_like(y_val, classes[0])
    else:
      pred = _make_classifier(model).fit(x, y).predict(x_val)
    accuracies[float(fraction)] = float(np.mean(pred == y_val))
  return accuracies


# ------------------------------------------------------------------------------------------
# Phase progression.


def progression_targets(
  labels: np.ndarray, num_classes: int, missing_phase: str = "zero_length"
) -> np.ndarray:
  """Regression targets of one video, float64 ``[T, K - 1]``.

  Column ``k`` is ``(t - t_k) / T`` with ``t_k`` the last frame of phase ``k`` (TCC's
  ``regression_labels_for_class``). ``labels`` must already be free of labels < 0, so ``t`` and
  ``T`` count kept frames only. When phase ``k`` does not occur in the video (the official code
  crashes there):

  * ``'zero_length'``: phase ``k`` is taken as empty, so it ends where the phases before it end:
    ``t_k`` = (first frame with a label > k) - 1, i.e. -1 if the video starts after phase k,
    or ``T - 1`` if no later phase occurs (the video stops before phase k). For a present phase
    with monotone labels this equals the last frame of phase k, so the rule is continuous.
  * ``'drop'``: column ``k`` is NaN; the video is left out of event ``k``'s fit and R².
  """
  if missing_phase not in MISSING_PHASE_RULES:
    raise ValueError(f"missing_phase: expected one of {MISSING_PHASE_RULES}, got {missing_phase!r}")
  labels = np.asarray(labels)
  num_frames = labels.shape[0]
  targets = np.empty((num_frames, num_classes - 1), np.float64)
  t = np.arange(num_frames, dtype=np.float64)
  for k in range(num_classes - 1):
    hits = np.flatnonzero(labels == k)
    if hits.size:
      event = hits[-1]
    elif missing_phase == "drop":
      targets[:, k] = np.nan
      continue
    else:
      later = np.flatnonzero(labels > k)
      event = later[0] - 1 if later.size else num_frames - 1
    targets[:, k] = (t - event) / num_frames
  return targets


def progression(
  train_embs: Sequence[np.ndarray],
  train_labels: Sequence[np.ndarray],
  val_embs: Sequence[np.ndarray],
  val_labels: Sequence[np.ndarray],
  fractions: Sequence[float] = (0.1, 0.5, 1.0),
  num_classes: Optional[int] = None,
  missing_phase: str = "zero_length",
) -> dict[float, float]:
  """Phase progression: mean over key events of the pooled-val-frame R² of an OLS fit.

  Args:
    train_embs, train_labels, val_embs, val_labels: as in `classification`.
    fractions: fractions of training videos (same rule as `classification`).
    num_classes: number of phases K (K - 1 key events); None = 1 + the largest label seen.
    missing_phase: 'zero_length' or 'drop'; see `progression_targets`.

  Returns:
    ``{fraction: mean R²}`` (R² may be negative). One ``LinearRegression`` (OLS with
    intercept) per key event, fitted on the pooled frames of the first n training videos; R²
    per event on all val frames pooled, then the unweighted mean over events. An event with no
    training or no val frame left (only possible with 'drop') is left out of the mean; NaN if
    no event is left.
  """
  from sklearn import linear_model, metrics as sk_metrics  # pylint: disable=g-import-not-at-top

  train_embs, train_labels = _prepare(train_embs, train_labels, "train")
  val_embs, val_labels = _prepare(val_embs, val_labels, "val")
  _check_same_dim(train_embs, val_embs)
  largest = max(int(lab.max(initial=-1)) for lab in train_labels + val_labels)
  if num_classes is None:
    num_classes = largest + 1
  elif largest >= num_classes:
    raise ValueError(
      f"num_classes: a label {largest} was found but num_classes is "
      f"{num_classes} (labels must be in 0..num_classes-1)"
    )
  if num_classes < 2:
    raise ValueError(f"num_classes: progression needs at least 2 phases, got {num_classes}")
  train_targets = [progression_targets(lab, num_classes, missing_phase) for lab in train_labels]
  x_val, _ = _pooled(val_embs, val_labels, "val_labels")
  y_val = np.concatenate(
    [progression_targets(lab, num_classes, missing_phase) for lab in val_labels]
  )
  scores = {}
  for fraction in fractions:
    n = num_train_videos(fraction, len(train_embs))
    x, _ = _pooled(train_embs[:n], train_labels[:n], f"train_labels (first {n} videos)")
    y = np.concatenate(train_targets[:n])
    if np.all(np.isfinite(y)):
      # OLS columns are independent: one multi-output fit = one fit per key event.
      pred_all = linear_model.LinearRegression().fit(x, y).predict(x_val)
    r2 = []
    for k in range(num_classes - 1):
      tr, va = np.isfinite(y[:, k]), np.isfinite(y_val[:, k])
      if not tr.any() or not va.any():
        continue
      if np.all(np.isfinite(y)):
        pred = pred_all[va, k]
      else:
        pred = linear_model.LinearRegression().fit(x[tr], y[tr, k]).predict(x_val[va])
      r2.append(sk_metrics.r2_score(y_val[va, k], pred))
    scores[float(fraction)] = float(np.mean(r2)) if r2 else math.nan
  return scores


# ------------------------------------------------------------------------------------------
# Nearest neighbours shared by Kendall's tau and retrieval.


def for_distance(emb: np.ndarray, distance: str) -> np.ndarray:
  """Maps embeddings so that sqeuclidean nearest neighbours = ``distance`` nearest neighbours."""
  if distance in ("sqeuclidean", "euclidean"):
    return emb
  if distance == "cosine":
    # |u - v|² = 2 - 2 cos(u, v) for unit vectors. Zero rows stay zero (distance 1 to all).
    norm = np.linalg.norm(emb, axis=-1, keepdims=True)
    return emb / np.where(norm > 0, norm, 1.0)
  raise ValueError(f"distance: expected one of {DISTANCES}, got {distance!r}")


def _pad(videos: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """Stacks ``[n_j, E]`` videos into ``[N, L, E]`` zeros-padded plus a bool ``[N, L]`` mask."""
  length = max(1, max(v.shape[0] for v in videos))
  padded = np.zeros((len(videos), length, videos[0].shape[1]), np.float64)
  mask = np.zeros((len(videos), length), bool)
  for j, v in enumerate(videos):
    padded[j, : v.shape[0]] = v
    mask[j, : v.shape[0]] = True
  return padded, mask


def _nearest_in_each_video(
  query: np.ndarray, gallery: np.ndarray, gallery_sq: np.ndarray
) -> np.ndarray:
  """Index of the nearest gallery frame in every gallery video, int ``[n, N]``.

  Args:
    query: ``[n, E]`` query frames.
    gallery: ``[N, L, E]`` padded gallery videos.
    gallery_sq: ``[N, L]`` squared norms of the gallery frames, +inf at padding.

  Distances come from one BLAS product (|c|² - 2 q.c, the |q|² term does not change the argmin).
  Its rounding could pick another frame than scipy's cdist among (near-)equal distances, so every
  candidate within a tolerance far above that rounding error is re-scored with the direct sum of
  squared differences, and ties go to the lowest index, as ``np.argmin(cdist(...))`` does.
  """
  num_videos, length, dim = gallery.shape
  dots = query @ gallery.reshape(num_videos * length, dim).T  # One BLAS call, [n, N * L].
  approx = gallery_sq[None] - 2.0 * dots.reshape(-1, num_videos, length)
  nearest = np.argmin(approx, axis=-1)
  best = np.take_along_axis(approx, nearest[..., None], -1)
  # Rounding error of the expansion is below dim * eps * (|q|² + |c|²); 1e-9 is ~10^4 times that.
  scale = (
    np.sum(query**2, -1)[:, None, None]
    + np.max(np.where(np.isfinite(gallery_sq), gallery_sq, 0.0), -1)[None, :, None]
  )
  close = approx <= best + 1e-9 * scale + 1e-300
  ambiguous = close.sum(-1) > 1
  if ambiguous.any():
    a_idx, j_idx, l_idx = np.nonzero(close & ambiguous[..., None])
    exact = np.full(approx.shape, np.inf)
    chunk = max(1, 2**22 // max(dim, 1))
    for s in range(0, a_idx.size, chunk):
      a, j, l = a_idx[s : s + chunk], j_idx[s : s + chunk], l_idx[s : s + chunk]
      exact[a, j, l] = np.sum((query[a] - gallery[j, l]) ** 2, axis=-1)
    nearest[ambiguous] = np.argmin(exact[ambiguous], axis=-1)
  return nearest


# ------------------------------------------------------------------------------------------
# Kendall's tau.


@dataclasses.dataclass(frozen=True)
class KendallsTau:
  """Result of `kendalls_tau`.

  Attributes:
    value: mean tau-b over the ordered pairs whose tau is defined (NaN if none is).
    num_pairs: number of ordered pairs (i, j), i != j, evaluated: N (N - 1).
    num_nan: pairs with an undefined tau (fewer than 2 strided frames, an empty candidate
      video, or every frame having the same nearest neighbour), dropped from the mean.
    per_pair: float ``[N, N]`` tau of query video i against candidate video j; NaN on the
      diagonal and for undefined pairs.
  """

  value: float
  num_pairs: int
  num_nan: int
  per_pair: np.ndarray = dataclasses.field(repr=False)


def tau_b_against_order(nn: np.ndarray) -> np.ndarray:
  """Kendall's tau-b between ``arange(n)`` and each column of ``nn`` (int ``[n, M]``) -> ``[M]``.

  The first variable has no ties, so tau-b = S / sqrt(n0 (n0 - U)) with n0 = n (n - 1) / 2,
  S = sum over a < b of sign(nn[b] - nn[a]) and U = the pairs tied in ``nn``; NaN where the
  denominator is 0 (as ``scipy.stats.kendalltau``).
  """
  n, num_cols = nn.shape
  n0 = n * (n - 1) // 2
  s = np.zeros(num_cols, np.int64)
  ties = np.zeros(num_cols, np.int64)
  # All a < b pairs at once, in row blocks to bound memory to ~4M entries.
  block = max(1, (1 << 22) // max(1, n * num_cols))
  for start in range(0, n, block):
    rows = nn[start : start + block]  # [r, M]
    diff = nn[None, :, :] - rows[:, None, :]  # [r, n, M]: nn[b] - nn[a] for a = start + i
    upper = np.arange(n)[None, :] > np.arange(start, start + rows.shape[0])[:, None]
    diff = np.where(upper[..., None], diff, 0)
    s += np.sign(diff).sum((0, 1))
    ties += ((diff == 0) & upper[..., None]).sum((0, 1))
  denom = float(n0) * (n0 - ties).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(denom > 0, s / np.sqrt(np.where(denom > 0, denom, 1.0)), np.nan)


def kendalls_tau(
  embs: Sequence[np.ndarray],
  stride: int = 5,
  distance: str = "sqeuclidean",
  labels: Optional[Sequence[np.ndarray]] = None,
) -> KendallsTau:
  """Kendall's tau of frame-wise nearest-neighbour alignment over all ordered video pairs.

  For every ordered pair (i, j), i != j: queries ``E_i[::stride]``, candidates
  ``E_j[::stride]``; ``nn[a]`` = argmin over candidates of the distance to query a;
  tau_ij = tau-b(arange(n_i), nn) (``scipy.stats.kendalltau(...).correlation``, computed here
  vectorised and equal to it). The result is the mean over the pairs whose tau is defined.

  Args:
    embs: per-video ``[T_i, E]`` embeddings (e.g. the val set).
    stride: frame stride applied to both videos of a pair.
    distance: 'sqeuclidean' (official), 'euclidean' or 'cosine'.
    labels: optional per-video ``[T_i]`` labels; frames with label < 0 are dropped before the
      stride.

  Returns:
    A `KendallsTau` (value in [-1, 1], pair counts and the per-pair matrix).
  """
  stride = _check_positive_int(stride, "stride")
  embs, _ = _prepare(embs, labels)
  strided = [for_distance(e[::stride], distance) for e in embs]
  gallery, mask = _pad(strided)
  gallery_sq = np.where(mask, np.sum(gallery**2, -1), np.inf)
  num_videos = len(strided)
  per_pair = np.full((num_videos, num_videos), np.nan)
  for i, query in enumerate(strided):
    if query.shape[0] < 2:
      continue  # tau of fewer than 2 frames is undefined.
    nearest = _nearest_in_each_video(query, gallery, gallery_sq)
    taus = tau_b_against_order(nearest)
    taus[~mask[:, 0]] = np.nan  # Empty candidate videos have no neighbours.
    taus[i] = np.nan
    per_pair[i] = taus
  off_diagonal = ~np.eye(num_videos, dtype=bool)
  values = per_pair[off_diagonal]
  finite = np.isfinite(values)
  return KendallsTau(
    value=float(values[finite].mean()) if finite.any() else math.nan,
    num_pairs=int(values.size),
    num_nan=int((~finite).sum()),
    per_pair=per_pair,
  )


def cycle_consistency(
  embs: Sequence[np.ndarray],
  stride: int = 5,
  distance: str = "sqeuclidean",
  labels: Optional[Sequence[np.ndarray]] = None,
) -> float:
  """Cycle-back accuracy over all ordered video pairs (TCC's cycle consistency, label-free).

  For videos A != B (frames strided by ``stride``): for each frame i of A, j = its nearest
  frame in B, k = the nearest frame in A to j; the pair's accuracy is the fraction of i with
  k = i; the result is the mean over ordered pairs (pairs with an empty video are dropped).
  ``labels``: as `kendalls_tau` (frames with label < 0 dropped first). Returns NaN for fewer
  than 2 non-empty videos.
  """
  stride = _check_positive_int(stride, "stride")
  embs, _ = _prepare(embs, labels)
  strided = [for_distance(e[::stride], distance) for e in embs]
  gallery, mask = _pad(strided)
  gallery_sq = np.where(mask, np.sum(gallery**2, -1), np.inf)
  # nearest[a][:, b]: for each frame of video a, its nearest frame in video b.
  nearest = [
    _nearest_in_each_video(q, gallery, gallery_sq) if q.shape[0] else None for q in strided
  ]
  accuracies = []
  for a, near_a in enumerate(nearest):
    for b, near_b in enumerate(nearest):
      if a == b or near_a is None or near_b is None:
        continue
      back = near_b[near_a[:, b], a]  # k for every i of A
      accuracies.append(np.mean(back == np.arange(back.size)))
  return float(np.mean(accuracies)) if accuracies else math.nan


# ------------------------------------------------------------------------------------------
# Retrieval.


def retrieval(
  embs: Sequence[np.ndarray],
  labels: Sequence[np.ndarray],
  ks: Sequence[int] = (5, 10, 15),
  stride: int = 5,
  distance: str = "sqeuclidean",
) -> dict[int, float]:
  """Mean precision@K of phase retrieval ("AP@K" in CARL/LAC; not a ranked AP).

  For each video i: queries = its strided frames; gallery = the strided frames of all other
  videos; P_i(K) = mean over queries of the fraction of the K nearest gallery frames with the
  query's phase. AP@K = mean of P_i over videos (videos with no labelled frame are skipped).
  Ties at the K-th distance are broken arbitrarily, as the official ``np.argsort``.

  Args:
    embs, labels: per-video ``[T_i, E]`` embeddings and ``[T_i]`` labels (label < 0 dropped
      before the stride).
    ks: values of K; each must not exceed the smallest gallery.
    stride: frame stride for queries and gallery.
    distance: 'sqeuclidean' (official), 'euclidean' or 'cosine'.

  Returns:
    ``{K: precision in [0, 1]}``.
  """
  stride = _check_positive_int(stride, "stride")
  ks = [_check_positive_int(k, "ks") for k in ks]
  if not ks:
    raise ValueError("ks: expected at least one K")
  embs, labels = _prepare(embs, labels)
  if len(embs) < 2:
    raise ValueError(f"embs: retrieval needs at least 2 videos, got {len(embs)}")
  strided = [for_distance(e[::stride], distance) for e in embs]
  strided_labels = [lab[::stride] for lab in labels]
  sizes = np.array([e.shape[0] for e in strided])
  offsets = np.concatenate([[0], np.cumsum(sizes)])
  gallery = np.concatenate(strided)
  gallery_labels = np.concatenate(strided_labels)
  gallery_sq = np.sum(gallery**2, -1)
  k_max = max(ks)
  smallest_gallery = int(sizes.sum() - sizes.max())
  if k_max > smallest_gallery:
    raise ValueError(
      f"ks: K = {k_max} exceeds the {smallest_gallery} strided frames of the "
      f"smallest gallery (all videos but the longest); lower K or the stride"
    )
  per_video = {k: [] for k in ks}
  for i, query in enumerate(strided):
    if query.shape[0] == 0:
      continue
    dist = gallery_sq[None] - 2.0 * (query @ gallery.T)  # [n_i, M], |q|² dropped (per row).
    dist[:, offsets[i] : offsets[i + 1]] = np.inf  # Never retrieve from the query's own video.
    top = np.argpartition(dist, k_max - 1, axis=1)[:, :k_max]
    order = np.argsort(np.take_along_axis(dist, top, 1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, 1)  # [n_i, k_max], nearest first.
    hits = gallery_labels[top] == strided_labels[i][:, None]
    for k in ks:
      per_video[k].append(hits[:, :k].mean())
  return {k: float(np.mean(v)) for k, v in per_video.items()}


# ------------------------------------------------------------------------------------------
# The paper's table.


def _percent_key(prefix: str, value: float) -> str:
  return f"{prefix}_{int(round(value * 100))}"


def is_labelled(labels: np.ndarray) -> bool:
  """Whether a video has any frame label >= 0 (unlabelled videos carry -1 everywhere)."""
  return bool(np.any(np.asarray(labels) >= 0))


def evaluate_embeddings(
  train_embs: Sequence[np.ndarray],
  train_labels: Sequence[np.ndarray],
  val_embs: Sequence[np.ndarray],
  val_labels: Sequence[np.ndarray],
  config: Optional[ml_collections.ConfigDict] = None,
) -> dict[str, float]:
  """All metrics for one train/val split, as one row of the paper's tables (x100).

  The label-free measures, ``tau`` and ``cycle_consistency``, use every val video; the
  label-based ones only the labelled videos (any label >= 0), and only when there are some:
  classification and progress need a labelled train and val video, AP@K two labelled val
  videos. Frames with a label < 0 inside a labelled video are dropped, as the official protocol.

  Returns:
    ``class_{p}`` for each fraction (p = percent, e.g. class_10, class_50, class_100),
    ``ap_{K}`` for each K, ``progress_{p}`` for each fraction, ``progress`` (= the largest
    fraction, the paper's column), ``tau`` and ``cycle_consistency`` (val set), all multiplied
    by 100, and the videos used: ``num_val`` (label-free) and ``num_labelled_train`` /
    ``num_labelled_val``. Tau pairs that are undefined are dropped (a warning is logged).
  """
  if config is None:  # The defaults live in the schema, which imports jax: only when needed.
    from lac_jax import config as config_lib  # pylint: disable=g-import-not-at-top

    config = config_lib.eval_config()
  with threadpoolctl.threadpool_limits(limits=config.get("blas_threads"), user_api="blas"):
    return _evaluate_embeddings(train_embs, train_labels, val_embs, val_labels, config)


def _evaluate_embeddings(
  train_embs, train_labels, val_embs, val_labels, config: ml_collections.ConfigDict
) -> dict[str, float]:
  fractions = tuple(float(f) for f in config.fractions)
  if not fractions:
    raise ValueError("config.fractions: expected at least one fraction")
  keys = [_percent_key("class", f) for f in fractions]
  if len(set(keys)) != len(keys):
    raise ValueError(f"config.fractions: {fractions} round to the same percentage")
  if len(train_labels) != len(train_embs) or len(val_labels) != len(val_embs):
    raise ValueError("labels: expected one label array per video of each split")
  lab_train = [i for i, lab in enumerate(train_labels) if is_labelled(lab)]
  lab_val = [i for i, lab in enumerate(val_labels) if is_labelled(lab)]
  row = {}
  if lab_train and lab_val:
    tr_e, tr_l = [train_embs[i] for i in lab_train], [train_labels[i] for i in lab_train]
    va_e, va_l = [val_embs[i] for i in lab_val], [val_labels[i] for i in lab_val]
    accuracy = classification(tr_e, tr_l, va_e, va_l, fractions, config.classifier)
    for f in fractions:
      row[_percent_key("class", f)] = 100.0 * accuracy[f]
    if len(lab_val) >= 2:
      precision = retrieval(
        va_e, va_l, tuple(config.retrieval_ks), config.retrieval_stride, config.distance
      )
      for k, p in precision.items():
        row[f"ap_{k}"] = 100.0 * p
    r2 = progression(tr_e, tr_l, va_e, va_l, fractions, config.num_classes, config.missing_phase)
    for f in fractions:
      row[_percent_key("progress", f)] = 100.0 * r2[f]
    row["progress"] = 100.0 * r2[max(fractions)]
  # Label-free: every frame of an unlabelled video counts.
  free_labels = [
    lab if is_labelled(lab) else np.zeros(np.shape(lab), np.int64) for lab in val_labels
  ]
  tau = kendalls_tau(val_embs, config.tau_stride, config.distance, labels=free_labels)
  if tau.num_nan:
    logging.warning(
      "Kendall's tau: %d of %d video pairs undefined and dropped", tau.num_nan, tau.num_pairs
    )
  row["tau"] = 100.0 * tau.value
  row["cycle_consistency"] = 100.0 * cycle_consistency(
    val_embs, config.get("cycle_stride", config.tau_stride), config.distance, labels=free_labels
  )
  row.update(
    num_val=float(len(val_embs)),
    num_labelled_train=float(len(lab_train)),
    num_labelled_val=float(len(lab_val)),
  )
  return row
