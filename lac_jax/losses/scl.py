"""SCL, the sequence contrastive loss of CARL (Chen et al. 2022; CARL_code ``algos/scl.py``
@c574312).

For every valid frame of one view, the KL divergence between a Gaussian time prior over the
other view's frames and the softmax of cosine similarity / tau; both views are queries.
``reduction='videos'`` (default) is CARL as its configs run it; the ``official_code`` preset
(``reduction='frames'``, ``padded_weight=1e-6``) is the official LAC code's loss on the device's
batch. Formulas and the reductions: docs/baselines.md#scl-carls-sequence-contrastive-loss.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lac_jax import alignment
from lac_jax import losses
from lac_jax.losses import lac
from lac_jax.losses import masks

NAME = "scl"
REDUCTIONS = ("videos", "frames")
Array = jax.Array

LAC_CODE_TRAINING = dict(
  batch={"pouring": 16, "penn_action": 16}, frames=32, epochs=300, l2=True, conv=False
)


def default_config(preset: str = "paper") -> ml_collections.ConfigDict:
  """SCL's fields: CARL's values; 'official_code': the official LAC code's batch reduction."""
  c = losses.new_config(NAME, preset)
  c.tau = 0.1  # softmax temperature (CARL 0.1)
  c.var = 10.0  # variance of the Gaussian prior, frames (CARL label_varience 10)
  c.log_eps = 1e-6  # CARL: log(Q + 1e-6)
  c.normalize_eps = 1e-6  # cosine similarity: z / max(|z|, eps)
  c.honour_masks = True  # CARL honours masks (padded frames are never queries or targets)
  c.reduction = "videos"  # 'videos': mean per video, then over videos | 'frames': official LAC
  c.padded_weight = 0.0  # weight of the batch's padded frames in every denominator (CARL 1e-6)
  if preset == "official_code":
    c.reduction = "frames"
    c.padded_weight = 1e-6
  return c


def check_config(cfg: ml_collections.ConfigDict) -> None:
  losses.check_fields(
    cfg,
    positive=("tau", "var", "normalize_eps"),
    nonnegative=("log_eps", "padded_weight"),
    choices={"reduction": REDUCTIONS},
  )


def scl_rows(
  z: Array,
  steps: Array,
  *,
  tau: float,
  var: float,
  log_eps: float,
  normalize_eps: float,
  mask: Optional[Array] = None,
  padded_weight: float = 0.0,
) -> Array:
  """Per-frame KL of SCL: ``z [B, 2, T, E], steps [B, 2, T], mask [B, 2, T] -> [B, 2, T]``.

  Row ``(b, v, i)`` is frame i of view v of video b as the query against view ``1 - v`` of the
  same video (0 for padded queries). With ``padded_weight > 0`` every padded frame of the batch
  joins each valid query's denominator with that weight (CARL's masked pairs).
  """
  zn = lac.l2_normalize(z, normalize_eps)
  other = zn[:, ::-1]  # view 1 - v
  logits = jnp.einsum("bvie,bvje->bvij", zn, other) / tau  # [B, 2, T, T]
  other_mask = None if mask is None else mask[:, ::-1]
  y = lac.gaussian_prior(steps, steps[:, ::-1], var, other_mask, z.dtype)
  if other_mask is not None:
    logits = jnp.where(other_mask[:, :, None, :], logits, alignment.NEG)
  log_den = jax.nn.logsumexp(logits, -1)  # [B, 2, T]
  if mask is not None and padded_weight > 0:
    flat = zn.reshape(-1, zn.shape[-1])
    padded = ~mask.reshape(-1)
    all_logits = jnp.einsum("bvie,ne->bvin", zn, flat) / tau
    log_padded = jax.nn.logsumexp(jnp.where(padded, all_logits, alignment.NEG), -1)
    log_den = jnp.logaddexp(log_den, log_padded + np.log(padded_weight))
  log_q = logits - log_den[..., None]
  if log_eps > 0:
    log_q = jnp.log(jnp.exp(log_q) + log_eps)
  rows = jnp.sum(jax.scipy.special.xlogy(y, y) - y * log_q, -1)
  return rows if mask is None else jnp.where(mask, rows, 0.0)


class SCL(losses.Loss):
  progress_parts = ("loss", "kl12", "kl21")

  def __init__(self, cfg: ml_collections.ConfigDict):
    super().__init__(cfg)
    self.kwargs = dict(
      tau=cfg.tau,
      var=cfg.var,
      log_eps=cfg.log_eps,
      normalize_eps=cfg.normalize_eps,
      padded_weight=cfg.padded_weight,
    )
    self.honour_masks = bool(cfg.honour_masks)
    self.reduction = cfg.reduction

  def __call__(
    self,
    params: Optional[Mapping[str, Any]],
    z: Array,
    steps: Array,
    mask: Optional[Array] = None,
    lengths: Optional[Array] = None,
  ):
    del params, lengths
    z = jnp.asarray(z).astype(jnp.result_type(z, jnp.float32))
    mask = jnp.asarray(mask, bool) if self.honour_masks and mask is not None else None
    rows = scl_rows(z, jnp.asarray(steps), mask=mask, **self.kwargs)  # [B, 2, T]
    counts = masks.count(mask, z.shape[-2], z.dtype) * jnp.ones(rows.shape[:2], z.dtype)
    sums = jnp.sum(rows, -1)  # [B, 2]
    if self.reduction == "videos":
      loss = jnp.mean(jnp.sum(sums, 1) / jnp.maximum(jnp.sum(counts, 1), 1))
      kl = jnp.mean(sums / jnp.maximum(counts, 1), 0)
    else:
      loss = jnp.sum(sums) / jnp.maximum(jnp.sum(counts), 1)
      kl = jnp.sum(sums, 0) / jnp.maximum(jnp.sum(counts, 0), 1)
    return loss, {"loss": loss, "kl12": kl[0], "kl21": kl[1]}


def build(cfg: ml_collections.ConfigDict) -> SCL:
  return SCL(cfg)
