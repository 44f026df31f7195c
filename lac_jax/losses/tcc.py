"""TCC, temporal cycle-consistency (Dwibedi et al. 2019; google-research ``tcc/tcc``
``deterministic_alignment.py`` and ``losses.py`` @0c1bbe5), deterministic cycle-back.

Each frame of U finds its soft nearest neighbour in V and cycles back; the loss asks the cycle
to land where it started (``loss_type``: 'regression_mse_var' by default, 'regression_mse',
'classification'), averaged over the rows of all ordered pairs. ``pairs='videos'`` (TCC: view 1
of different videos) or ``'sequences'`` (the official LAC code's preset, all ``2B`` sequences).
Formulas, similarities and label smoothing: docs/baselines.md#tcc-temporal-cycle-consistency.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lac_jax import losses
from lac_jax.losses import masks

NAME = "tcc"
LOSS_TYPES = ("regression_mse_var", "regression_mse", "classification")
SIMILARITIES = ("l2", "cosine")
PAIRS = ("videos", "sequences")
Array = jax.Array

LAC_CODE_TRAINING = dict(
  batch={"pouring": 4, "penn_action": 4}, frames=32, epochs=200, l2=False, conv=True
)


def default_config(preset: str = "paper") -> ml_collections.ConfigDict:
  """TCC's fields: the TCC code's values; 'official_code': the official LAC code's TCC."""
  c = losses.new_config(NAME, preset)
  c.loss_type = "regression_mse_var"  # 'regression_mse_var' | 'regression_mse' | 'classification'
  c.similarity = "l2"  # 'l2': -squared distance / E / temperature | 'cosine': dot / E / temp.
  c.temperature = 0.1  # TCC 0.1
  c.variance_lambda = 0.001  # weight of log(variance) (TCC 0.001)
  c.min_variance = 1e-12  # floor of the variance (a one-hot beta gives log 0 = NaN otherwise)
  c.normalize_indices = True  # regress step / video length (TCC: True)
  c.label_smoothing = 0.1  # 'classification' only (TCC 0.1)
  c.pairs = "videos"  # 'videos' (TCC) | 'sequences': both views of every video (official LAC)
  c.honour_masks = True  # False: padded frames count as frames (official LAC)
  if preset == "official_code":
    c.pairs = "sequences"
    c.honour_masks = False
  return c


def check_config(cfg: ml_collections.ConfigDict) -> None:
  losses.check_fields(
    cfg,
    positive=("temperature",),
    nonnegative=("variance_lambda", "min_variance"),
    choices={"loss_type": LOSS_TYPES, "similarity": SIMILARITIES, "pairs": PAIRS},
  )
  if not 0 <= cfg.label_smoothing < 1:
    raise ValueError(
      f"config.loss.label_smoothing: need a value in [0, 1), got {cfg.label_smoothing!r}"
    )


def _similarity(a: Array, b: Array, kind: str, temperature: float) -> Array:
  """``[..., T1, E], [..., T2, E] -> [..., T1, T2]`` scaled similarity (TCC's): the raw dot
  product ('cosine', no normalisation) or minus the squared distance ('l2'), divided by the
  number of channels E and the temperature."""
  if kind == "cosine":
    sim = jnp.einsum("...ie,...je->...ij", a, b)
  else:
    sim = -jnp.sum(jnp.square(a[..., :, None, :] - b[..., None, :, :]), -1)
  return sim / a.shape[-1] / temperature


def cycle_rows(
  u: Array,
  v: Array,
  su: Array,
  *,
  loss_type: str,
  similarity: str,
  temperature: float,
  variance_lambda: float,
  min_variance: float,
  label_smoothing: float,
  mask_u: Optional[Array] = None,
  mask_v: Optional[Array] = None,
) -> Array:
  """The per-frame TCC loss of cycling from U through V back to U: ``[..., T1]``.

  Args:
    u: ``[..., T1, E]``; v: ``[..., T2, E]``; su: ``[..., T1]`` regression times of U's frames.
    mask_u, mask_v: bool ``[..., T]`` (False = padded: never a neighbour, never a target).
  """
  alpha = jnp.exp(masks.masked_log_softmax(_similarity(u, v, similarity, temperature), mask_v))
  nearest = alpha @ v  # [..., T1, E]: soft nearest neighbour of each frame of U in V
  logits = _similarity(nearest, u, similarity, temperature)  # cycle back to U
  log_beta = masks.masked_log_softmax(logits, mask_u)
  t1 = u.shape[-2]
  if loss_type == "classification":
    eye = jnp.eye(t1, dtype=u.dtype)
    n = masks.count(mask_u, t1, u.dtype)[..., None, None]
    valid = jnp.ones((t1,), bool) if mask_u is None else mask_u[..., None, :]
    target = jnp.where(valid, (1 - label_smoothing) * eye + label_smoothing / n, 0.0)
    return -jnp.sum(target * jnp.where(valid, log_beta, 0.0), -1)
  beta = jnp.exp(log_beta)
  mu = jnp.sum(beta * su[..., None, :], -1)
  error = jnp.square(su - mu)
  if loss_type == "regression_mse":
    return error
  var = jnp.maximum(jnp.sum(beta * jnp.square(su[..., None, :] - mu[..., None]), -1), min_variance)
  log_var = jnp.log(var)
  return jnp.exp(-log_var) * error + variance_lambda * log_var


def pair_indices(num_videos: int, pairs: str) -> tuple[np.ndarray, np.ndarray]:
  """``(i, j)`` index arrays into the sequences ``z.reshape(2B, T, E)`` (order video, view):
  every ordered pair of distinct sequences of view 1 ('videos') or of all of them."""
  if pairs == "videos":
    seqs = np.arange(num_videos) * 2
    if num_videos < 2:
      raise ValueError(
        "config.loss.pairs='videos' aligns different videos: it needs at least "
        f"2 videos per device, got {num_videos} (raise data.batch_size, or use "
        "loss.pairs='sequences')"
      )
  else:
    seqs = np.arange(2 * num_videos)
  i, j = np.meshgrid(seqs, seqs, indexing="ij")
  keep = i != j
  return i[keep], j[keep]


class TCC(losses.Loss):
  progress_parts = ("loss",)

  def __init__(self, cfg: ml_collections.ConfigDict):
    super().__init__(cfg)
    self.kwargs = dict(
      loss_type=cfg.loss_type,
      similarity=cfg.similarity,
      temperature=cfg.temperature,
      variance_lambda=cfg.variance_lambda,
      min_variance=cfg.min_variance,
      label_smoothing=cfg.label_smoothing,
    )
    self.pairs = cfg.pairs
    self.normalize = bool(cfg.normalize_indices)
    self.honour_masks = bool(cfg.honour_masks)

  def __call__(
    self,
    params: Optional[Mapping[str, Any]],
    z: Array,
    steps: Array,
    mask: Optional[Array] = None,
    lengths: Optional[Array] = None,
  ):
    del params
    z = jnp.asarray(z)
    b, _, t, e = z.shape
    seqs = z.reshape(2 * b, t, e).astype(jnp.result_type(z, jnp.float32))
    times = jax.lax.stop_gradient(jnp.asarray(steps).reshape(2 * b, t).astype(seqs.dtype))
    if self.normalize:
      if lengths is None:
        raise ValueError(
          "config.loss.normalize_indices: TCC needs the videos' lengths (the batch's 'lengths')"
        )
      times = times / jnp.repeat(jnp.asarray(lengths, seqs.dtype), 2)[:, None]
    valid = None
    if self.honour_masks and mask is not None:
      valid = jnp.asarray(mask, bool).reshape(2 * b, t)
    i, j = pair_indices(b, self.pairs)
    rows = cycle_rows(
      seqs[i],
      seqs[j],
      times[i],
      mask_u=None if valid is None else valid[i],
      mask_v=None if valid is None else valid[j],
      **self.kwargs,
    )
    if valid is None:
      loss = jnp.mean(rows)
    else:
      loss = jnp.sum(jnp.where(valid[i], rows, 0.0)) / jnp.maximum(jnp.sum(valid[i]), 1)
    return loss, {"loss": loss}


def build(cfg: ml_collections.ConfigDict) -> TCC:
  return TCC(cfg)
