"""GTA, global temporal alignment (Hadji et al. 2021; hadjisma/VideoAlignment @01b10ba,
``d2tw/smoothDTW.py`` and ``algorithm.py``): smoothed DTW with global cycle consistency.

smoothDTW (a probability-weighted mean of the neighbours, not a log-sum-exp, so its own small
anti-diagonal scan) aligns an anchor sequence with each partner both ways; the loss is GTA's
cross entropy of the cycle ``P = A B`` against the identity plus ``cost_weight`` times the
alignment costs. ``honour_masks`` (default) crops each pair to its valid frames; the
``official_code`` preset (``pairs='sequences'``, no transpose, padded frames counted) is the
official LAC code's. Formulas and the differences: docs/baselines.md#gta-global-temporal-alignment.
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

NAME = "gta"
PAIRS = ("videos", "sequences")
Array = jax.Array

LAC_CODE_TRAINING = dict(
  batch={"pouring": 2, "penn_action": 4}, frames=32, epochs=200, l2=True, conv=True
)


def default_config(preset: str = "paper") -> ml_collections.ConfigDict:
  """GTA's fields: VideoAlignment's values; 'official_code': the official LAC code's GTA."""
  c = losses.new_config(NAME, preset)
  c.gamma_similarity = 0.1  # gamma_f of the cost's softmax (GTA 0.1)
  c.gamma_smoothing = 0.1  # gamma_s of the neighbours' softmax (GTA 0.1)
  c.label_smoothing = 0.1  # of the cycle-consistency cross entropy (GTA 0.1)
  c.cost_weight = 0.1  # weight of each direction's mean alignment cost (GTA 0.1)
  c.transpose = True  # GTA: cross entropy over the rows of (A B)^T | False: official LAC
  c.pairs = "videos"  # 'videos' (GTA) | 'sequences': the anchor against every other sequence
  c.honour_masks = True  # crop each pair to its valid frames | False: padding counts (official)
  if preset == "official_code":
    c.transpose = False
    c.pairs = "sequences"
    c.honour_masks = False
  return c


def check_config(cfg: ml_collections.ConfigDict) -> None:
  losses.check_fields(
    cfg,
    positive=("gamma_similarity", "gamma_smoothing"),
    nonnegative=("cost_weight",),
    choices={"pairs": PAIRS},
  )
  if not 0 <= cfg.label_smoothing < 1:
    raise ValueError(
      f"config.loss.label_smoothing: need a value in [0, 1), got {cfg.label_smoothing!r}"
    )


def smooth_dtw(
  x: Array,
  y: Array,
  gamma_similarity: float,
  gamma_smoothing: float,
  mask_x: Optional[Array] = None,
  mask_y: Optional[Array] = None,
) -> tuple[Array, Array]:
  """GTA's smoothDTW of one pair ``[n, E], [m, E]``: ``(table r [n, m], cost c)``.

  With prefix masks ``mask_x [n], mask_y [m]`` the cost's softmax runs over the valid X frames
  and ``c = r[n_x - 1, m_y - 1]``: the table's valid block and ``c`` are those of the cropped
  pair (cells outside it are finite and never feed it).
  """
  n, m = x.shape[0], y.shape[0]
  logits = x @ y.T / gamma_similarity  # [n, m]
  if mask_x is None:
    cost = -jax.nn.log_softmax(logits, axis=0)
  else:
    cost = -masks.masked_log_softmax(logits.T, mask_x).T
    cost = jnp.where(mask_x[:, None], cost, 0.0)
  i = np.arange(n)[None, :]
  k = np.arange(n + m - 1)[:, None]
  j = k - i
  inside = (j >= 0) & (j < m)  # [K, n]: slot i of diagonal k is a cell
  diags = jnp.where(inside, cost[i, np.clip(j, 0, m - 1)], 0.0)

  def step(carry, xs):
    (r2, in2), (r1, in1) = carry  # diagonals k-2, k-1: values and "is a cell" flags
    c, cells, kk = xs
    origin = kk == 0
    diag = jnp.concatenate([jnp.zeros((1,), c.dtype), r2[:-1]])
    diag_ok = jnp.concatenate([origin[None], in2[:-1]])
    up = jnp.concatenate([jnp.zeros((1,), c.dtype), r1[:-1]])
    up_ok = jnp.concatenate([jnp.zeros((1,), bool), in1[:-1]])
    nbrs, ok = jnp.stack([r1, diag, up]), jnp.stack([in1, diag_ok, up_ok])
    pi = jax.nn.softmax(jnp.where(ok, -nbrs / gamma_smoothing, alignment.NEG), axis=0)
    r = c + jnp.sum(pi * jnp.where(ok, nbrs, 0.0), 0)
    r = jnp.where(cells, r, 0.0)
    return ((r1, in1), (r, cells)), r

  start = (jnp.zeros((n,), cost.dtype), jnp.zeros((n,), bool))
  _, out = jax.lax.scan(step, (start, start), (diags, jnp.asarray(inside), jnp.arange(n + m - 1)))
  table = out[np.arange(n)[:, None] + np.arange(m)[None, :], np.arange(n)[:, None]]
  last_x = n - 1 if mask_x is None else masks.valid_length(mask_x) - 1
  last_y = m - 1 if mask_y is None else masks.valid_length(mask_y) - 1
  return table, table[last_x, last_y]


def gta_pair(
  x: Array,
  y: Array,
  *,
  gamma_similarity: float,
  gamma_smoothing: float,
  label_smoothing: float,
  transpose: bool,
  mask_x: Optional[Array] = None,
  mask_y: Optional[Array] = None,
) -> tuple[Array, Array, Array]:
  """``(cross entropy, c_xy, c_yx)`` of the global cycle through one pair ``[n, E], [m, E]``
  (with prefix masks: of the pair cropped to its valid frames)."""
  x, y = lac.l2_normalize(x, 1e-6), lac.l2_normalize(y, 1e-6)
  r_xy, c_xy = smooth_dtw(x, y, gamma_similarity, gamma_smoothing, mask_x, mask_y)
  r_yx, c_yx = smooth_dtw(y, x, gamma_similarity, gamma_smoothing, mask_y, mask_x)
  # Column softmaxes over the valid rows: a [n, m] (0 in padded X rows), b [m, n] (0 in padded
  # Y rows, so padded columns of a meet zeros in the product).
  a = jnp.exp(masks.masked_log_softmax(-r_xy.T, mask_x)).T
  b = jnp.exp(masks.masked_log_softmax(-r_yx.T, mask_y)).T
  p = a @ b  # [n, n]: its columns sum to 1
  logits = p.T if transpose else p
  n = x.shape[0]
  count = masks.count(mask_x, n, x.dtype)
  target = (1.0 - label_smoothing) * jnp.eye(n, dtype=x.dtype) + label_smoothing / count
  log_q = masks.masked_log_softmax(logits, mask_x)
  if mask_x is not None:
    target = jnp.where(mask_x[None, :], target, 0.0)
    log_q = jnp.where(mask_x[None, :], log_q, 0.0)
  ce = masks.row_average(-jnp.sum(target * log_q, -1), mask_x, count)
  return ce, c_xy, c_yx


class GTA(losses.Loss):
  progress_parts = ("loss", "consistency", "cost")

  def __call__(
    self,
    params: Optional[Mapping[str, Any]],
    z: Array,
    steps: Array,
    mask: Optional[Array] = None,
    lengths: Optional[Array] = None,
  ):
    del params, steps, lengths
    c = self.cfg
    z = jnp.asarray(z)
    b, _, t, e = z.shape
    seqs = z.reshape(2 * b, t, e).astype(jnp.result_type(z, jnp.float32))
    valid = None
    if c.honour_masks and mask is not None:
      valid = jnp.asarray(mask, bool).reshape(2 * b, t)
    if c.pairs == "videos":
      if b < 2:
        raise ValueError(
          "config.loss.pairs='videos' aligns different videos: it needs at least 2 "
          f"videos per device, got {b} (raise data.batch_size, or use "
          "loss.pairs='sequences')"
        )
      partners = np.arange(1, b) * 2
    else:
      partners = np.arange(1, 2 * b)
    kw = dict(
      gamma_similarity=c.gamma_similarity,
      gamma_smoothing=c.gamma_smoothing,
      label_smoothing=c.label_smoothing,
      transpose=c.transpose,
    )
    if valid is None:
      ce, c_xy, c_yx = jax.vmap(lambda y: gta_pair(seqs[0], y, **kw))(seqs[partners])
    else:
      pair = lambda y, my: gta_pair(seqs[0], y, mask_x=valid[0], mask_y=my, **kw)
      ce, c_xy, c_yx = jax.vmap(pair)(seqs[partners], valid[partners])
    consistency = jnp.mean(ce)
    cost = c.cost_weight * (jnp.mean(c_xy) + jnp.mean(c_yx))
    loss = consistency + cost
    return loss, {"loss": loss, "consistency": consistency, "cost": cost}


def build(cfg: ml_collections.ConfigDict) -> GTA:
  return GTA(cfg)
