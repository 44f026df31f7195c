"""TCN, time-contrastive networks (Sermanet et al. 2018), as the TCC code's ``tcn`` algorithm
(google-research ``tcc/algos/tcn.py`` @0c1bbe5): an n-pairs loss within each video.

View 2 holds, for each frame of view 1, a frame 1 to ``positive_window`` frames earlier
(``data.sampling.views='tcn_positives'``, set by the TCN presets); softmax cross entropy of
anchors against positives with the diagonal as target, plus a norm regulariser. ``anchors``
picks TCC's order or CARL's; ``variant='triplet'`` is the official LAC code's margin triplet
loss. Details: docs/baselines.md#tcn-time-contrastive-networks-tccs-n-pairs-version.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections

from lac_jax import losses
from lac_jax.losses import masks

NAME = "tcn"
VARIANTS = ("npairs", "triplet")
ANCHORS = ("earlier", "later")
Array = jax.Array

LAC_CODE_TRAINING = dict(
  batch={"pouring": 16, "penn_action": 32}, frames=32, epochs=200, l2=False, conv=True
)


def default_config(preset: str = "paper") -> ml_collections.ConfigDict:
  """TCN's fields: the TCC code's n-pairs; 'official_code': the official LAC code's triplets."""
  c = losses.new_config(NAME, preset)
  c.variant = "npairs"  # 'npairs' (TCC code) | 'triplet' (official LAC code)
  c.anchors = "earlier"  # npairs rows: 'earlier' frames (TCC, LAV-CVPR21) | 'later' (CARL)
  c.reg_lambda = 0.002  # npairs: embedding-norm regulariser (TCC code 0.002)
  c.margin = 0.2  # triplet margin (official LAC 0.2)
  c.positive_range = 10  # triplet: positives within this many frames (official LAC 10)
  c.negative_range = 30  # triplet: negatives at least this many frames away (official LAC 30)
  c.honour_masks = True
  if preset == "official_code":
    c.variant = "triplet"
  return c


def data_requirements(cfg: ml_collections.ConfigDict) -> dict[str, object]:
  """The n-pairs loss needs view 2 to hold each anchor's positive."""
  return {"sampling.views": "tcn_positives"} if cfg.variant == "npairs" else {}


def check_config(cfg: ml_collections.ConfigDict) -> None:
  losses.check_fields(
    cfg, nonnegative=("reg_lambda", "margin"), choices={"variant": VARIANTS, "anchors": ANCHORS}
  )
  if not 0 <= cfg.positive_range < cfg.negative_range:
    raise ValueError(
      f"config.loss.positive_range, negative_range: need 0 <= positive_range < "
      f"negative_range, got {cfg.positive_range}, {cfg.negative_range}"
    )


def npairs_loss(
  anchors: Array, positives: Array, reg_lambda: float, mask: Optional[Array] = None
) -> Array:
  """n-pairs loss of ``[..., T, E]`` anchors (rows) and their positives (candidates; frame t
  with frame t): ``[...]``."""
  logits = jnp.einsum("...ie,...je->...ij", anchors, positives)
  log_p = masks.masked_log_softmax(logits, mask)
  t = anchors.shape[-2]
  xent = -jnp.diagonal(log_p, axis1=-2, axis2=-1)
  n = masks.count(mask, t, anchors.dtype)
  sq = lambda x: masks.row_average(jnp.sum(jnp.square(x), -1), mask, n)
  return masks.row_average(xent, mask, n) + 0.25 * reg_lambda * (sq(anchors) + sq(positives))


def triplet_loss(
  anchors: Array,
  others: Array,
  steps_a: Array,
  steps_o: Array,
  *,
  margin: float,
  positive_range: int,
  negative_range: int,
  mask_a: Optional[Array] = None,
  mask_o: Optional[Array] = None,
) -> Array:
  """Mean margin triplet loss over every (anchor, positive, negative) of ``[..., T, E]`` views;
  distances as torch's ``pairwise_distance`` (``|x - y + 1e-6|``)."""
  diff = anchors[..., :, None, :] - others[..., None, :, :] + 1e-6
  dist = jnp.sqrt(jnp.sum(jnp.square(diff), -1))  # [..., Ta, To]
  gap = jnp.abs(steps_a[..., :, None] - steps_o[..., None, :])
  valid_o = jnp.ones(gap.shape, bool) if mask_o is None else mask_o[..., None, :]
  pos = (gap <= positive_range) & valid_o
  neg = (gap >= negative_range) & valid_o
  # [..., Ta, P, N] hinge over every positive / negative pair of an anchor.
  hinge = jnp.maximum(dist[..., :, :, None] - dist[..., :, None, :] + margin, 0.0)
  both = pos[..., :, :, None] & neg[..., :, None, :]
  count = jnp.sum(both, (-2, -1))
  per_anchor = jnp.sum(jnp.where(both, hinge, 0.0), (-2, -1)) / jnp.maximum(count, 1)
  used = count > 0 if mask_a is None else (count > 0) & mask_a
  return jnp.sum(jnp.where(used, per_anchor, 0.0), -1) / jnp.maximum(jnp.sum(used, -1), 1)


class TCN(losses.Loss):
  progress_parts = ("loss",)

  def __call__(
    self,
    params: Optional[Mapping[str, Any]],
    z: Array,
    steps: Array,
    mask: Optional[Array] = None,
    lengths: Optional[Array] = None,
  ):
    del params, lengths
    c = self.cfg
    z = jnp.asarray(z).astype(jnp.result_type(z, jnp.float32))
    mask = None if not c.honour_masks or mask is None else jnp.asarray(mask, bool)
    view = lambda x, v: None if x is None else x[:, v]
    if c.variant == "npairs":
      # The positives share their anchors' mask ('tcn_positives'); a padded positive is also
      # never a negative. View 2 holds the earlier frames.
      both = None if mask is None else mask[:, 0] & mask[:, 1]
      rows, cols = (z[:, 1], z[:, 0]) if c.anchors == "earlier" else (z[:, 0], z[:, 1])
      per_video = npairs_loss(rows, cols, c.reg_lambda, both)
    else:
      per_video = triplet_loss(
        z[:, 0],
        z[:, 1],
        steps[:, 0],
        steps[:, 1],
        margin=c.margin,
        positive_range=c.positive_range,
        negative_range=c.negative_range,
        mask_a=view(mask, 0),
        mask_o=view(mask, 1),
      )
    loss = jnp.mean(per_video)
    return loss, {"loss": loss}


def build(cfg: ml_collections.ConfigDict) -> TCN:
  return TCN(cfg)
