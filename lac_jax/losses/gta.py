"""GTA, global temporal alignment (Hadji et al. 2021; hadjisma/VideoAlignment ``d2tw/
smoothDTW.py``, ``algorithm.py``): smoothed DTW with global cycle consistency.

smoothDTW of X ``[n, E]`` and Y ``[m, E]`` (unit vectors): cost ``C[a, b] = -log softmax_a(x_a .
y_b / gamma_f)`` (each Y frame's distribution over X frames) and ``r[a, b] = C[a, b] + sum_k
pi_k N_k``, ``pi = softmax(-N / gamma_s)`` over the neighbours ``N`` (left, diagonal, up; the
``dtw_prob`` softening, a probability-weighted mean, not a log-sum-exp), ``r`` of the origin 0
and borders excluded; ``c = r[n, m]``. For an anchor sequence 0 and each partner j:
``A = softmax_rows(-r^{0j})``, ``B = softmax_rows(-r^{j0})`` (columns sum to 1), ``P = A B``;
GTA's cross entropy (label smoothing 0.1) of the rows of ``P^T`` against the identity; loss ``CE
+ cost_weight (mean_j c_0j + mean_j c_j0)``. The recursion is not a log-sum-exp, so it runs as
its own small anti-diagonal scan (autodiff), with excluded neighbours masked out of both the
softmax and the sum (no float-max sentinel times 0). Masks are not used (as GTA).

Pairs: GTA anchors view 1 of video 0 against view 1 of the other videos (needs >= 2 videos per
device). The official LAC code's preset (baselines.md §5): the anchor against every other
sequence, its sibling view included (``pairs='sequences'``), and no transpose of ``P``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lac_jax import losses
from lac_jax.losses import lac
from lac_jax.losses import masks

NAME = "gta"
PAIRS = ("videos", "sequences")
Array = jax.Array


def default_config(preset: str = "paper") -> ml_collections.ConfigDict:
  """GTA's fields: VideoAlignment's values; 'official_code': the official LAC code's GTA."""
  c = losses.new_config(NAME, preset)
  c.gamma_similarity = 0.1  # gamma_f of the cost's softmax (GTA 0.1)
  c.gamma_smoothing = 0.1  # gamma_s of the neighbours' softmax (GTA 0.1)
  c.label_smoothing = 0.1  # of the cycle-consistency cross entropy (GTA 0.1)
  c.cost_weight = 0.1  # weight of each direction's mean alignment cost (GTA 0.1)
  c.transpose = True  # GTA: cross entropy over the rows of (A B)^T | False: official LAC
  c.pairs = "videos"  # 'videos' (GTA) | 'sequences': the anchor against every other sequence
  if preset == "official_code":
    c.transpose = False
    c.pairs = "sequences"
  return c


def check_config(cfg: ml_collections.ConfigDict) -> None:
  losses.check_fields(cfg, positive=("gamma_similarity", "gamma_smoothing"),
                      nonnegative=("cost_weight",), choices={"pairs": PAIRS})
  if not 0 <= cfg.label_smoothing < 1:
    raise ValueError(f"loss.label_smoothing: need a value in [0, 1), got {cfg.label_smoothing!r}")


def smooth_dtw(x: Array, y: Array, gamma_similarity: float,
               gamma_smoothing: float) -> tuple[Array, Array]:
  """GTA's smoothDTW of one pair ``[n, E], [m, E]``: ``(table r [n, m], cost r[n-1, m-1])``."""
  n, m = x.shape[0], y.shape[0]
  cost = -jax.nn.log_softmax(x @ y.T / gamma_similarity, axis=0)  # [n, m]
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
    pi = jax.nn.softmax(jnp.where(ok, -nbrs / gamma_smoothing, masks.NEG), axis=0)
    r = c + jnp.sum(pi * jnp.where(ok, nbrs, 0.0), 0)
    r = jnp.where(cells, r, 0.0)
    return ((r1, in1), (r, cells)), r

  start = (jnp.zeros((n,), cost.dtype), jnp.zeros((n,), bool))
  _, out = jax.lax.scan(step, (start, start), (diags, jnp.asarray(inside),
                                                jnp.arange(n + m - 1)))
  table = out[np.arange(n)[:, None] + np.arange(m)[None, :], np.arange(n)[:, None]]
  return table, table[n - 1, m - 1]


def gta_pair(x: Array, y: Array, *, gamma_similarity: float, gamma_smoothing: float,
             label_smoothing: float, transpose: bool) -> tuple[Array, Array, Array]:
  """``(cross entropy, c_xy, c_yx)`` of the global cycle through one pair."""
  x, y = lac.l2_normalize(x, 1e-6), lac.l2_normalize(y, 1e-6)
  r_xy, c_xy = smooth_dtw(x, y, gamma_similarity, gamma_smoothing)
  r_yx, c_yx = smooth_dtw(y, x, gamma_similarity, gamma_smoothing)
  a = jax.nn.softmax(-r_xy, axis=0)  # [n, m]
  b = jax.nn.softmax(-r_yx, axis=0)  # [m, n]
  p = a @ b  # [n, n]: its columns sum to 1
  logits = p.T if transpose else p
  n = x.shape[0]
  target = (1.0 - label_smoothing) * jnp.eye(n, dtype=x.dtype) + label_smoothing / n
  ce = -jnp.mean(jnp.sum(target * jax.nn.log_softmax(logits, axis=-1), -1))
  return ce, c_xy, c_yx


class GTA(losses.Loss):
  progress_parts = ("loss", "consistency", "cost")

  def __init__(self, cfg: ml_collections.ConfigDict):
    check_config(cfg)
    self.cfg = cfg.copy_and_resolve_references()

  def __call__(self, params: Optional[Mapping[str, Any]], z: Array, steps: Array,
               mask: Optional[Array] = None, lengths: Optional[Array] = None):
    del params, steps, mask, lengths
    c = self.cfg
    z = jnp.asarray(z)
    b, _, t, e = z.shape
    seqs = z.reshape(2 * b, t, e).astype(jnp.result_type(z, jnp.float32))
    if c.pairs == "videos":
      if b < 2:
        raise ValueError("loss.pairs='videos' aligns different videos: it needs at least 2 "
                         f"videos per device, got {b} (raise data.batch_size, or use "
                         "loss.pairs='sequences')")
      partners = np.arange(1, b) * 2
    else:
      partners = np.arange(1, 2 * b)
    pair = jax.vmap(lambda y: gta_pair(seqs[0], y, gamma_similarity=c.gamma_similarity,
                                       gamma_smoothing=c.gamma_smoothing,
                                       label_smoothing=c.label_smoothing,
                                       transpose=c.transpose))
    ce, c_xy, c_yx = pair(seqs[partners])
    consistency = jnp.mean(ce)
    cost = c.cost_weight * (jnp.mean(c_xy) + jnp.mean(c_yx))
    loss = consistency + cost
    return loss, {"loss": loss, "consistency": consistency, "cost": cost}


def build(cfg: ml_collections.ConfigDict) -> GTA:
  return GTA(cfg)
