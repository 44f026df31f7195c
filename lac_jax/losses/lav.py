"""LAV, learning by aligning videos (Haresh et al. 2021; LAV-CVPR21 @3c4154c ``train.py``,
``losses.py``, ``soft_dtw.py``): soft-DTW alignment of two different videos plus the contrastive
inverse difference moment (C-IDM) regulariser of each.

Loss ``(Delta + alpha (I(X) + I(Y))) / T`` per pair, averaged over pairs: the first half of the
``2B`` sequences against the second (two different videos for ``B >= 2`` videos per device;
``B = 1`` is refused). The official LAC code's preset: the divergence (``normalize``), masks
ignored, ``idm_index_bug``. Formulas: docs/baselines.md#lav-learning-by-aligning-videos.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lac_jax import alignment
from lac_jax import losses
from lac_jax.losses import masks

NAME = "lav"
Array = jax.Array

LAC_CODE_TRAINING = dict(
  batch={"pouring": 2, "penn_action": 4}, frames=32, epochs=200, l2=True, conv=True
)


def default_config(preset: str = "paper") -> ml_collections.ConfigDict:
  """LAV's fields: LAV-CVPR21's values; 'official_code': the official LAC code's LAV."""
  c = losses.new_config(NAME, preset)
  c.gamma = 0.1  # soft-DTW smoothing (LAV 0.1)
  c.normalize = False  # True: soft-DTW divergence (official LAC) | False: plain (LAV default)
  c.alpha = 0.5  # weight of the C-IDM terms (LAV 0.5)
  c.sigma = 10.0  # C-IDM neighbourhood, frames (LAV 10)
  c.margin = 2.0  # C-IDM margin (LAV 2)
  c.idm_index_bug = False  # True: the official LAC code's IDM time indices of other sequences
  c.honour_masks = True  # False: padded frames count (official LAC)
  if preset == "official_code":
    c.normalize = True
    c.idm_index_bug = True
    c.honour_masks = False
  return c


def check_config(cfg: ml_collections.ConfigDict) -> None:
  losses.check_fields(cfg, positive=("gamma", "sigma"), nonnegative=("alpha", "margin"))


def sq_distances(x: Array, y: Array) -> Array:
  """``[..., T1, E], [..., T2, E] -> [..., T1, T2]`` squared Euclidean distances."""
  return jnp.sum(jnp.square(x[..., :, None, :] - y[..., None, :, :]), -1)


def contrastive_idm(
  x: Array,
  steps: Array,
  length: Array,
  *,
  sigma: float,
  margin: float,
  mask: Optional[Array] = None,
) -> Array:
  """C-IDM of sequences ``[..., T, E]`` with raw frame indices ``[..., T]`` of videos of
  ``length [...]`` frames: ``[...]``."""
  d = sq_distances(x, x)
  s = steps.astype(x.dtype)
  gap = jnp.abs(s[..., :, None] - s[..., None, :])
  t_gap = gap / length[..., None, None]
  far = (1.0 + jnp.square(t_gap)) * jnp.maximum(margin - d, 0.0)
  terms = jnp.where(gap <= sigma, d, far)
  if mask is not None:
    terms = jnp.where(mask[..., :, None] & mask[..., None, :], terms, 0.0)
  return jnp.sum(terms, (-2, -1))


def soft_dtw_cost(
  x: Array,
  y: Array,
  gamma: float,
  normalize: bool,
  len_x: Optional[Array] = None,
  len_y: Optional[Array] = None,
) -> Array:
  """Soft-DTW of squared distances (or the divergence): ``[..., T, E]`` pairs -> ``[...]``."""

  def sdtw(a, b, la, lb):
    lengths = None if la is None else jnp.stack([la, lb], -1)
    return alignment.soft_dtw(sq_distances(a, b), gamma, lengths=lengths)

  value = sdtw(x, y, len_x, len_y)
  if normalize:
    value = value - 0.5 * (sdtw(x, x, len_x, len_x) + sdtw(y, y, len_y, len_y))
  return value


def pair_indices(num_videos: int) -> tuple[np.ndarray, np.ndarray]:
  """``(first, second)`` indices into the sequences ``z.reshape(2B, T, E)`` (order video, view):
  sequence k against sequence k + B, two different videos for every k when B >= 2."""
  if num_videos < 2:
    raise ValueError(
      "loss 'lav' aligns different videos (sequence k of the 2B views against "
      "sequence k + B): it needs at least 2 videos per device, got "
      f"{num_videos}, whose only pair would be a video's two views (raise "
      "data.batch_size to >= 2 videos per device)"
    )
  return np.arange(num_videos), np.arange(num_videos, 2 * num_videos)


class LAV(losses.Loss):
  progress_parts = ("loss", "alignment", "idm")

  def __call__(
    self,
    params: Optional[Mapping[str, Any]],
    z: Array,
    steps: Array,
    mask: Optional[Array] = None,
    lengths: Optional[Array] = None,
  ):
    del params
    c = self.cfg
    if lengths is None:
      raise ValueError("loss 'lav': the C-IDM needs the videos' lengths (the batch's 'lengths')")
    z = jnp.asarray(z)
    b, _, t, e = z.shape
    seqs = z.reshape(2 * b, t, e).astype(jnp.result_type(z, jnp.float32))
    s = jnp.asarray(steps).reshape(2 * b, t)
    video_len = jnp.repeat(jnp.asarray(lengths, seqs.dtype), 2)
    valid = None
    if c.honour_masks and mask is not None:
      valid = jnp.asarray(mask, bool).reshape(2 * b, t)
    first, second = pair_indices(b)
    # The official code's IDM reads view 1 / view 2 of videos 0..B-1 for both halves.
    idm_first, idm_second = (2 * first, 2 * first + 1) if c.idm_index_bug else (first, second)
    lens = None if valid is None else masks.valid_length(valid)
    delta = soft_dtw_cost(
      seqs[first],
      seqs[second],
      c.gamma,
      c.normalize,
      None if lens is None else lens[first],
      None if lens is None else lens[second],
    )
    idm = lambda seq, idx: contrastive_idm(
      seqs[seq],
      s[idx],
      video_len[idx],
      sigma=c.sigma,
      margin=c.margin,
      mask=None if valid is None else valid[seq],
    )
    idm_sum = idm(first, idm_first) + idm(second, idm_second)
    per_pair = (delta + c.alpha * idm_sum) / t
    loss = jnp.mean(per_pair)
    return loss, {
      "loss": loss,
      "alignment": jnp.mean(delta) / t,
      "idm": c.alpha * jnp.mean(idm_sum) / t,
    }


def build(cfg: ml_collections.ConfigDict) -> LAV:
  return LAV(cfg)
