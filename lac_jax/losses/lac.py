"""LAC, the paper's loss (§3.4, Eq. 7-8): contrastive term, alignment terms, learnable gaps.

``default_config('paper')`` follows the paper with exact gradients; ``'official_code'``
reproduces the official forward value (docs/official_code.md §3.1-3.2), and every departure is
one field. The term functions take arrays and scalars; `LAC` (``losses.build``) reads the config
once and is what the trainer calls. Masks: bool, False = padded frame. Which function computes
which equation, and how masks become SW lengths: docs/official_code.md#the-papers-loss-in-code.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict
import numpy as np

from lac_jax import alignment
from lac_jax import losses
from lac_jax.losses import masks

Array = jax.Array
Parts = dict[str, Array]


NAME = "lac"
PRESETS = losses.PRESETS
_CHOICES = {
  "lc_similarity": ("cosine", "dot"),
  "lc_normalization": ("T", "T2"),
  "lc_divergence": ("cross_entropy", "kl"),
  "ll_product": ("elementwise", "matmul"),
  "sw_similarity": ("inverse_distance", "inverse_squared_distance"),
  "sw_backward": ("custom", "autodiff"),
}


# ---------------------------------------------------------------------------------------------
# Config.
# ---------------------------------------------------------------------------------------------


def default_config(preset: str = "paper") -> ml_collections.ConfigDict:
  """Every switch of the LAC loss (``config.loss``).

  Args:
    preset: ``'paper'`` (default: the paper's equations, exact gradients) or
      ``'official_code'`` (the official PyTorch code's forward value, docs/official_code.md §3).
  Returns:
    A ConfigDict; each field is commented with the paper's and the official code's value.
  """
  c = losses.new_config(NAME, preset)  # name: the losses.MODULES key
  # --- Eq. 8 weights: LAC = L_c + alpha * (L_l + beta * sw_sign * (L_sw12 + L_sw21)).
  c.alpha = 0.01  # paper 0.01; official: hard-coded 0.01 (config loss.alpha is overwritten).
  c.beta = 1.0  # paper 1; official: hard-coded 1.
  # --- Temporal prior Y_ij = G(s1_i - s2_j) / sum_k G(s1_i - s2_k), G(x) = exp(-x^2 / (2 var)).
  c.var = 10.0  # variance in frames (raw step units); paper/official 10.
  # --- L_c (Eq. 7).
  c.tau = 0.8  # L_c temperature. The paper gives no value; the official code ties it to gamma
  # (one `loss.temperature` = 0.8 for both). Separate here.
  c.lc_similarity = "cosine"  # 'cosine' (paper: "normalized similarity") | 'dot' (official:
  # raw dot product, no L2 normalisation anywhere).
  c.normalize_eps = 1e-6  # 'cosine': z / max(|z|, eps), so a zero vector stays finite.
  c.lc_normalization = "T"  # 'T': mean over (valid) rows, the paper's 1/T | 'T2': the sum
  # divided by T1 * T2 (official 1/T^2; with honoured masks the valid counts n1 * n2).
  c.lc_directions = 1  # 1: rows = view 1, as Eq. 7 (and the official code) | 2: mean of the
  # 1->2 and 2->1 terms, as SCL/CARL.
  c.lc_divergence = "cross_entropy"  # 'cross_entropy' (Eq. 7) | 'kl' (official F.kl_div:
  # CE - H(Y), same gradient, value lower by the prior's entropy).
  c.lc_log_eps = 0.0  # official 1e-6: log(P + eps) instead of log P.
  # --- L_l (§3.4).
  c.ll_product = "elementwise"  # 'elementwise': L = D~12 (.) D~21^T (paper) | 'matmul':
  # L = D~12 @ D~21^T (official; needs T1 == T2 and mixes index spaces).
  c.ll_tau = config_dict.placeholder(float)  # temperature of D~ = softmax(D / ll_tau).
  # None: same as tau (the paper uses one tau); official 1.0 (no temperature).
  c.ll_stop_gradient = False  # True: L_l sends no gradient (the official backward ignores the
  # gradient of the D output, so L_l is a logged constant there).
  # --- SW terms (Eq. 2-5).
  c.gamma = 0.8  # max^gamma smoothing; paper 0.8 (Table 4), official 0.8 (tied to tau).
  c.include_zero = True  # s* = max^g(0, max^g(D)) (paper) | False: max^g(D) (official).
  c.sw_similarity = "inverse_distance"  # 'inverse_distance': S = 1 / (d + sw_eps) (paper:
  # "inverted Euclidean distance") | 'inverse_squared_distance': S = 1 / (d^2 + sw_eps) (official).
  c.sw_eps = 1e-6  # keeps S finite (<= 1 / sw_eps) when two embeddings coincide. The official
  # code has none; its preset uses 1e-12, which changes S by a relative 1e-12 / d^2 (nothing in
  # float32) but keeps identical embeddings finite. 0 is allowed and is then exactly official,
  # but S = inf (NaN loss) at d = 0.
  c.sw_sign = 1  # +1: minimise +s* as the paper and the code do (pushes aligned frames of the
  # two views apart, docs/official_code.md §3.5) | -1: maximise the alignment score instead
  # (needs gap_positive: unconstrained gaps would run to -inf). Maximising collapses the
  # embedding even with positive gaps (README, "Choosing a preset"; docs/performance.md).
  c.sw_backward = "custom"  # alignment kernel backward: 'custom' (fast adjoint) | 'autodiff'.
  # --- Masks.
  c.honour_masks = True  # False: padded frames count as real (official: masks unused).
  # --- Gap penalties g_o, g_e (learned; positive values are subtracted).
  c.gap_per_cell = True  # True: one [T, T] matrix each, as the official code and the paper's
  # g_o(i,j) notation | False: one scalar each. Shared by both directions (not transposed for
  # 2->1, as the official code) and by all videos.
  c.gap_open_init = 1.0  # official torch.ones.
  c.gap_extend_init = 1.0  # official torch.ones.
  c.gap_positive = False  # True: effective = softplus(raw), raw initialised so that the
  # effective value equals the init. Official: unconstrained.
  c.gap_lr = 0.1  # peak learning rate of the gap penalties' optimiser group (official: a
  # separate Adam group with lr 0.1, cosine-annealed with the encoder's, unclipped).
  c.gap_weight_decay = 1e-5  # their L2 decay, added to the gradient (official: the group's 1e-5).
  if preset == "official_code":
    c.lc_similarity = "dot"
    c.lc_normalization = "T2"
    c.lc_divergence = "kl"
    c.lc_log_eps = 1e-6
    c.ll_product = "matmul"
    c.ll_tau = 1.0
    c.ll_stop_gradient = True
    c.include_zero = False
    c.sw_similarity = "inverse_squared_distance"
    c.sw_eps = 1e-12
    c.honour_masks = False
  return c


def check_config(cfg: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad ``loss.<field>``."""
  missing = sorted(set(default_config().keys()) - set(cfg.keys()))
  if missing:
    raise ValueError(f"loss config: missing fields {missing} (build it with default_config())")
  # Checked in this order (choices, then numbers): the first bad field is the one reported.
  losses.check_fields(cfg, choices=_CHOICES)
  losses.check_fields(cfg, positive=("var", "tau", "gamma", "normalize_eps"))
  if cfg.ll_tau is not None and not (np.isfinite(cfg.ll_tau) and cfg.ll_tau > 0):
    raise ValueError(f"config.loss.ll_tau: need None or a finite value > 0, got {cfg.ll_tau!r}")
  for name in ("alpha", "beta"):
    if not np.isfinite(cfg[name]):
      raise ValueError(f"config.loss.{name}: need a finite number, got {cfg[name]!r}")
  losses.check_fields(cfg, nonnegative=("lc_log_eps", "sw_eps"))
  if cfg.lc_directions not in (1, 2):
    raise ValueError(f"config.loss.lc_directions: expected 1 or 2, got {cfg.lc_directions!r}")
  if cfg.sw_sign not in (1, -1):
    raise ValueError(f"config.loss.sw_sign: expected +1 or -1, got {cfg.sw_sign!r}")
  if cfg.sw_sign == -1 and not cfg.gap_positive:
    raise ValueError(
      "config.loss.gap_positive: must be True with loss.sw_sign=-1 (maximising the "
      "alignment score with unconstrained gap penalties is unbounded: they run to "
      "-inf)"
    )
  for name in ("gap_open_init", "gap_extend_init"):
    v = cfg[name]
    if not np.isfinite(v) or (cfg.gap_positive and v <= 0):
      raise ValueError(
        f"config.loss.{name}: need a finite value (> 0 with gap_positive), got {v!r}"
      )
  losses.check_fields(cfg, nonnegative=("gap_lr", "gap_weight_decay"))


# ---------------------------------------------------------------------------------------------
# Gap penalties.
# ---------------------------------------------------------------------------------------------


def _inverse_softplus(x: float) -> float:
  """``y`` with ``softplus(y) = x`` for ``x > 0`` (stable for small and large x)."""
  return float(x + np.log(-np.expm1(-x)))


def init_gap_penalties(
  num_frames: int, *, per_cell: bool, positive: bool, open_init: float, extend_init: float
) -> dict[str, Array]:
  """Initial gap-penalty parameters (raw; map them with `gap_penalty_values`).

  Args:
    num_frames: T, embedding steps per view in training (per-cell matrices are ``[T, T]``).
    per_cell: ``[T, T]`` matrices, else scalars. positive: raw = softplus^-1 of the inits.
    open_init, extend_init: the effective initial values.
  Returns:
    ``{'gap_open': ..., 'gap_extend': ...}``, float32 ``[T, T]`` or ``[]``.
  """
  if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
    raise ValueError(f"init_gap_penalties: num_frames must be an int >= 1, got {num_frames!r}")
  shape = (int(num_frames), int(num_frames)) if per_cell else ()
  out = {}
  for name, init in (("gap_open", open_init), ("gap_extend", extend_init)):
    raw = _inverse_softplus(init) if positive else float(init)
    out[name] = jnp.full(shape, raw, jnp.float32)
  return out


def gap_penalty_values(params: Mapping[str, Array], positive: bool) -> dict[str, Array]:
  """Effective penalties from the raw parameters (softplus when ``positive``)."""
  out = {}
  for name in ("gap_open", "gap_extend"):
    if name not in params:
      raise ValueError(f"gap_penalty_values: params lacks {name!r} (got keys {list(params)})")
    v = jnp.asarray(params[name])
    out[name] = jax.nn.softplus(v) if positive else v
  return out


# ---------------------------------------------------------------------------------------------
# The terms. Shapes: any leading batch dims [...]; masks bool [..., T] (None = all valid).
# These functions honour the masks they get; `lac_loss` passes None when the config ignores them.
# ---------------------------------------------------------------------------------------------


def prior_logits(steps1: Array, steps2: Array, var: float, dtype=None) -> Array:
  """``log G(s1_i - s2_j) = -(s1_i - s2_j)^2 / (2 var)``: ``[..., T1], [..., T2] -> [..., T1, T2]``.

  ``dtype``: float dtype of the result (default: JAX's default float).
  """
  dtype = jnp.result_type(float) if dtype is None else dtype
  s1 = jnp.asarray(steps1).astype(dtype)
  s2 = jnp.asarray(steps2).astype(dtype)
  diff = s1[..., :, None] - s2[..., None, :]
  return -jnp.square(diff) / (2.0 * var)


def gaussian_prior(
  steps1: Array, steps2: Array, var: float, mask2: Optional[Array] = None, dtype=None
) -> Array:
  """Temporal prior ``Y [..., T1, T2]`` of Eq. 7: rows normalised over the valid ``j``.

  Computed as a softmax of `prior_logits`, so a row never becomes 0/0 (the official code's
  ``safe_div`` returns a zero row where every G underflows; that needs steps >~ 40 sigma apart).
  Entries in padded columns are exactly 0.
  """
  return jnp.exp(masks.masked_log_softmax(prior_logits(steps1, steps2, var, dtype), mask2))


def l2_normalize(z: Array, eps: float) -> Array:
  """``z / max(|z|, eps)`` along the last axis, with a finite gradient at ``z = 0``."""
  # sqrt(max(|z|^2, eps^2)): finite value and gradient at z = 0.
  sq = jnp.sum(jnp.square(z), -1, keepdims=True)
  return z / jnp.sqrt(jnp.maximum(sq, eps * eps))


def contrastive_similarity(z1: Array, z2: Array, kind: str = "cosine", eps: float = 1e-6) -> Array:
  """``sim(z1_i, z2_j)`` of Eq. 7: ``[..., T1, E], [..., T2, E] -> [..., T1, T2]``.

  ``'cosine'`` (the paper's "normalized similarity", zero vectors protected by ``eps``) or
  ``'dot'`` (raw dot product, the official code).
  """
  if kind == "cosine":
    z1, z2 = l2_normalize(z1, eps), l2_normalize(z2, eps)
  elif kind != "dot":
    raise ValueError(f"config.loss.lc_similarity: expected 'cosine' or 'dot', got {kind!r}")
  return jnp.einsum("...ie,...je->...ij", z1, z2)


def _lc_direction(
  logits: Array, y_logits: Array, row_mask, col_mask, divisor, divergence: str, log_eps: float
) -> Array:
  """One direction of Eq. 7: divergence of Y (rows) against softmax_j(logits)."""
  logp = masks.masked_log_softmax(logits, col_mask)
  y = jnp.exp(masks.masked_log_softmax(y_logits, col_mask))
  if log_eps > 0:
    logp = jnp.log(jnp.exp(logp) + log_eps)
  per_row = -jnp.sum(y * logp, -1)
  if divergence == "kl":
    per_row = per_row + jnp.sum(jax.scipy.special.xlogy(y, y), -1)
  return masks.row_average(per_row, row_mask, divisor)


def contrastive_loss(
  z1: Array,
  z2: Array,
  steps1: Array,
  steps2: Array,
  *,
  tau: float,
  var: float,
  similarity: str = "cosine",
  normalize_eps: float = 1e-6,
  normalization: str = "T",
  directions: int = 1,
  divergence: str = "cross_entropy",
  log_eps: float = 0.0,
  mask1: Optional[Array] = None,
  mask2: Optional[Array] = None,
) -> tuple[Array, Parts]:
  """``L_c`` (Eq. 7) per video: ``z1 [..., T1, E], z2 [..., T2, E]`` -> ``[...]``.

  ``-1/T sum_ij Y_ij log softmax_j(sim(z1_i, z2_j) / tau)``; the other arguments are the
  ``lc_*`` switches of `default_config`. Returns ``(l_c, {'l_c12': ..., 'l_c21': ...})``
  (``l_c21`` only with ``directions=2``; then ``l_c`` is the mean of both).
  """
  t1, t2 = z1.shape[-2], z2.shape[-2]
  dtype = z1.dtype
  n1, n2 = masks.count(mask1, t1, dtype), masks.count(mask2, t2, dtype)
  logits = contrastive_similarity(z1, z2, similarity, normalize_eps) / tau
  y_logits = prior_logits(steps1, steps2, var, dtype)
  both = n1 * n2 if normalization == "T2" else None
  l12 = _lc_direction(
    logits, y_logits, mask1, mask2, n1 if both is None else both, divergence, log_eps
  )
  parts = {"l_c12": l12}
  if directions == 1:
    return l12, parts
  l21 = _lc_direction(
    jnp.swapaxes(logits, -1, -2),
    jnp.swapaxes(y_logits, -1, -2),
    mask2,
    mask1,
    n2 if both is None else both,
    divergence,
    log_eps,
  )
  parts["l_c21"] = l21
  return 0.5 * (l12 + l21), parts


def alignment_similarity(
  z1: Array, z2: Array, kind: str = "inverse_distance", eps: float = 1e-6
) -> Array:
  """SW similarity ``S [..., T1, T2]`` from ``z1 [..., T1, E], z2 [..., T2, E]``.

  ``'inverse_distance'``: ``1 / (|z1_i - z2_j| + eps)`` (paper); ``'inverse_squared_distance'``:
  ``1 / (|z1_i - z2_j|^2 + eps)`` (official). Distances are computed from differences (not
  ``|a|^2 + |b|^2 - 2ab``, which loses small distances to rounding), and the square root has
  gradient 0 at d = 0, so identical embeddings give a finite value and gradient for eps > 0.
  """
  diff = z1[..., :, None, :] - z2[..., None, :, :]
  sq = jnp.sum(jnp.square(diff), -1)
  if kind == "inverse_squared_distance":
    return 1.0 / (sq + eps)
  if kind != "inverse_distance":
    raise ValueError(
      f"config.loss.sw_similarity: expected one of {_CHOICES['sw_similarity']}, got {kind!r}"
    )
  pos = sq > 0
  d = jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)
  return 1.0 / (d + eps)


def alignment_scores(
  sim12: Array,
  gap_open,
  gap_extend,
  *,
  gamma: float,
  include_zero: bool = True,
  backward: str = "custom",
  length1: Optional[Array] = None,
  length2: Optional[Array] = None,
) -> tuple[Array, Array, Array, Array]:
  """Soft SW in both directions: ``L_sw12 = SW(S)`` and ``L_sw21 = SW(S^T)`` (Eq. 2-5).

  The SW similarities here are symmetric, so ``sim(z2, z1) = sim(z1, z2)^T``.

  Args:
    sim12: ``[..., T1, T2]`` similarity of view 1 (rows) to view 2.
    gap_open, gap_extend: scalars or ``[T, T]`` (then T1 == T2), shared by both directions
      untransposed (as the official code).
    gamma, include_zero, backward: of `alignment.soft_smith_waterman`.
    length1, length2: optional int ``[...]`` valid lengths of the views.
  Returns:
    ``(sw12 [...], sw21 [...], d12 [..., T1, T2], d21 [..., T2, T1])``; D is 0 outside the
    valid block.
  """
  t1, t2 = sim12.shape[-2:]
  batch = sim12.shape[:-2]
  lengths12 = lengths21 = None
  if length1 is not None or length2 is not None:
    l1 = jnp.broadcast_to(t1 if length1 is None else length1, batch).astype(jnp.int32)
    l2 = jnp.broadcast_to(t2 if length2 is None else length2, batch).astype(jnp.int32)
    lengths12, lengths21 = jnp.stack([l1, l2], -1), jnp.stack([l2, l1], -1)
  sim21 = jnp.swapaxes(sim12, -1, -2)
  kw = dict(include_zero=include_zero, backward=backward)
  if t1 == t2:  # One kernel call for both directions: [2, ..., T, T].
    lengths = None if lengths12 is None else jnp.stack([lengths12, lengths21])
    score, d = alignment.soft_smith_waterman(
      jnp.stack([sim12, sim21]), gap_open, gap_extend, gamma, lengths=lengths, **kw
    )
    return score[0], score[1], d[0], d[1]
  sw12, d12 = alignment.soft_smith_waterman(
    sim12, gap_open, gap_extend, gamma, lengths=lengths12, **kw
  )
  sw21, d21 = alignment.soft_smith_waterman(
    sim21, gap_open, gap_extend, gamma, lengths=lengths21, **kw
  )
  return sw12, sw21, d12, d21


def local_alignment_loss(
  d12: Array,
  d21: Array,
  y: Array,
  *,
  tau: float,
  product: str = "elementwise",
  stop_gradient: bool = False,
  mask1: Optional[Array] = None,
  mask2: Optional[Array] = None,
) -> Array:
  """``L_l`` (§3.4) per video.

  ``D~12 = softmax_row(D12 / tau_l)``, ``D~21 = softmax_row(D21 / tau_l)``,
  ``L = D~12 (.) D~21^T`` ('elementwise') or ``D~12 @ D~21^T`` ('matmul', official; with
  honoured masks the contraction runs over ``k < min(n1, n2)``), then the cross entropy of
  ``softmax_row(L)`` against ``Y``, averaged over the valid rows.

  Args:
    d12: ``[..., T1, T2]``; d21: ``[..., T2, T1]`` match tables from `alignment_scores`.
    y: ``[..., T1, T2]`` prior from `gaussian_prior` (0 in padded columns).
    tau: temperature of D~ (``loss.ll_tau``, default the L_c temperature).
    product: 'elementwise' (paper) or 'matmul' (official). stop_gradient: official.
  """
  if stop_gradient:
    d12, d21 = jax.lax.stop_gradient(d12), jax.lax.stop_gradient(d21)
  p12 = jnp.exp(masks.masked_log_softmax(d12 / tau, mask2))  # 0 in padded columns
  p21 = jnp.exp(masks.masked_log_softmax(d21 / tau, mask1))
  p21_t = jnp.swapaxes(p21, -1, -2)  # [..., T1, T2]
  if product == "elementwise":
    logits = p12 * p21_t
  else:
    if d12.shape[-1] != d12.shape[-2]:
      raise ValueError(f"config.loss.ll_product='matmul' needs T1 == T2, got D12 {d12.shape}")
    logits = p12 @ p21_t
  per_row = -jnp.sum(y * masks.masked_log_softmax(logits, mask2), -1)
  return masks.row_average(per_row, mask1, masks.count(mask1, d12.shape[-2], d12.dtype))


# ---------------------------------------------------------------------------------------------
# Eq. 8.
# ---------------------------------------------------------------------------------------------


def _check_penalty(name: str, value, t1: int, t2: int) -> Array:
  shape = jnp.shape(value)
  if shape == ():
    return jnp.asarray(value)
  if t1 != t2 or shape != (t1, t2):
    raise ValueError(
      f"lac_loss: {name} must be a scalar or [T, T] with T = T1 = T2 (shared by "
      f"both directions); got shape {shape} for views of {t1} and {t2} frames"
    )
  return jnp.asarray(value)


# The `default_config` fields that are arguments of `lac_loss` (the config is read once, here).
LOSS_FIELDS = (
  "alpha",
  "beta",
  "sw_sign",
  "var",
  "tau",
  "lc_similarity",
  "normalize_eps",
  "lc_normalization",
  "lc_directions",
  "lc_divergence",
  "lc_log_eps",
  "ll_product",
  "ll_tau",
  "ll_stop_gradient",
  "gamma",
  "include_zero",
  "sw_similarity",
  "sw_eps",
  "sw_backward",
  "honour_masks",
)


def loss_kwargs(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """The keyword arguments of `lac_loss` that ``cfg`` (`default_config`) sets."""
  return {k: cfg[k] for k in LOSS_FIELDS}


def lac_loss(
  z1: Array,
  z2: Array,
  steps1: Array,
  steps2: Array,
  *,
  gap_open,
  gap_extend,
  mask1: Optional[Array] = None,
  mask2: Optional[Array] = None,
  alpha: float,
  beta: float,
  sw_sign: int,
  var: float,
  tau: float,
  lc_similarity: str,
  normalize_eps: float,
  lc_normalization: str,
  lc_directions: int,
  lc_divergence: str,
  lc_log_eps: float,
  ll_product: str,
  ll_tau: Optional[float],
  ll_stop_gradient: bool,
  gamma: float,
  include_zero: bool,
  sw_similarity: str,
  sw_eps: float,
  sw_backward: str,
  honour_masks: bool,
) -> tuple[Array, Parts]:
  """LAC (Eq. 8) per video, for any leading batch dimensions ``[...]``.

  Args:
    z1: ``[..., T1, E]`` embeddings of view 1; z2: ``[..., T2, E]`` of view 2.
    steps1, steps2: int ``[..., T1]``, ``[..., T2]`` frame indices (raw frame units).
    gap_open, gap_extend: effective penalties (`gap_penalty_values`), scalars or ``[T, T]``.
    mask1, mask2: optional bool ``[..., T1]``, ``[..., T2]``, False = padded (a prefix of valid
      frames); ignored unless ``honour_masks``.
    The other arguments: the fields of `default_config` (see there; `loss_kwargs`).
  Returns:
    ``(loss [...], parts)``, parts a dict of ``[...]`` arrays: ``loss``, ``l_c``, ``l_c12``
    (``l_c21``), ``l_l``, ``l_sw12``, ``l_sw21`` (the raw scores s*; the total uses
    ``sw_sign * (l_sw12 + l_sw21)``).
  """
  z1, z2 = jnp.asarray(z1), jnp.asarray(z2)
  if (
    z1.ndim < 2
    or z1.ndim != z2.ndim
    or z1.shape[:-2] != z2.shape[:-2]
    or z1.shape[-1] != z2.shape[-1]
  ):
    raise ValueError(
      f"lac_loss: z1, z2 must be [..., T1, E] and [..., T2, E], got {z1.shape} and {z2.shape}"
    )
  dtype = jnp.result_type(z1.dtype, z2.dtype, jnp.float32)
  z1, z2 = z1.astype(dtype), z2.astype(dtype)
  lead, t1, t2 = z1.shape[:-2], z1.shape[-2], z2.shape[-2]
  for name, s, t in (("steps1", steps1, t1), ("steps2", steps2, t2)):
    if jnp.shape(s) != lead + (t,):
      raise ValueError(f"lac_loss: {name} must have shape {lead + (t,)}, got {jnp.shape(s)}")
  go = _check_penalty("gap_open", gap_open, t1, t2)
  ge = _check_penalty("gap_extend", gap_extend, t1, t2)
  if ll_product == "matmul" and t1 != t2:
    raise ValueError(f"config.loss.ll_product='matmul' needs T1 == T2, got {t1} and {t2} frames")
  m1 = m2 = None  # Ignored masks are not even checked (the official code never reads them).
  if honour_masks:
    m1 = masks.check_mask(mask1, "mask1", lead + (t1,))
    m2 = masks.check_mask(mask2, "mask2", lead + (t2,))

  l_c, parts = contrastive_loss(
    z1,
    z2,
    steps1,
    steps2,
    tau=tau,
    var=var,
    similarity=lc_similarity,
    normalize_eps=normalize_eps,
    normalization=lc_normalization,
    directions=lc_directions,
    divergence=lc_divergence,
    log_eps=lc_log_eps,
    mask1=m1,
    mask2=m2,
  )
  sim = alignment_similarity(z1, z2, sw_similarity, sw_eps)
  len1 = None if m1 is None else masks.valid_length(m1)
  len2 = None if m2 is None else masks.valid_length(m2)
  sw12, sw21, d12, d21 = alignment_scores(
    sim,
    go,
    ge,
    gamma=gamma,
    include_zero=include_zero,
    backward=sw_backward,
    length1=len1,
    length2=len2,
  )
  y = gaussian_prior(steps1, steps2, var, m2, dtype)
  l_l = local_alignment_loss(
    d12,
    d21,
    y,
    tau=tau if ll_tau is None else ll_tau,
    product=ll_product,
    stop_gradient=ll_stop_gradient,
    mask1=m1,
    mask2=m2,
  )
  loss = l_c + alpha * (l_l + beta * sw_sign * (sw12 + sw21))
  parts.update(loss=loss, l_c=l_c, l_l=l_l, l_sw12=sw12, l_sw21=sw21)
  return loss, parts


class LAC(losses.Loss):
  """The LAC loss of a config, for the trainer: learnable gap penalties under ``params['gap']``
  (their own optimiser group: ``loss.gap_lr``, ``loss.gap_weight_decay``)."""

  params_key = "gap"
  progress_parts = ("loss", "l_c", "l_l", "l_sw12", "l_sw21")

  def __init__(self, cfg: ml_collections.ConfigDict):
    super().__init__(cfg)
    self.kwargs = loss_kwargs(cfg)
    self.positive = bool(cfg.gap_positive)
    self._init = dict(
      per_cell=bool(cfg.gap_per_cell),
      positive=self.positive,
      open_init=float(cfg.gap_open_init),
      extend_init=float(cfg.gap_extend_init),
    )
    self.learning_rate = float(cfg.gap_lr)
    self.weight_decay = float(cfg.gap_weight_decay)

  def init_params(self, num_steps: int) -> dict[str, Array]:
    return init_gap_penalties(num_steps, **self._init)

  def penalties(self, params: Mapping[str, Array]) -> dict[str, Array]:
    """The effective gap penalties of the raw parameters."""
    return gap_penalty_values(params, self.positive)

  def per_video(
    self, params: Mapping[str, Array], z: Array, steps: Array, mask: Optional[Array] = None
  ) -> tuple[Array, Parts]:
    """`lac_loss` of each video of ``z [B, 2, T, E]`` (all 2B alignments in one kernel call)."""
    z, steps = jnp.asarray(z), jnp.asarray(steps)
    if z.ndim != 4 or z.shape[1] != 2:
      raise ValueError(f"LAC: z must be [B, 2, T, E], got {z.shape}")
    for name, x in (("steps", steps), ("mask", mask)):
      if x is not None and jnp.shape(x) != z.shape[:3]:
        raise ValueError(f"LAC: {name} must have shape {z.shape[:3]}, got {jnp.shape(x)}")
    view = lambda x, v: None if x is None else x[:, v]
    return lac_loss(
      z[:, 0],
      z[:, 1],
      steps[:, 0],
      steps[:, 1],
      **self.penalties(params),
      mask1=view(mask, 0),
      mask2=view(mask, 1),
      **self.kwargs,
    )

  def __call__(self, params, z, steps, mask=None, lengths=None):
    del lengths  # LAC's prior works in raw frame units.
    _, parts = self.per_video(params, z, steps, mask)
    parts = {k: jnp.mean(v) for k, v in parts.items()}
    return parts["loss"], parts

  def log_scalars(self, params: Mapping[str, Array]) -> dict[str, Array]:
    return {k: jnp.mean(v) for k, v in params.items()}


def build(cfg: ml_collections.ConfigDict) -> LAC:
  return LAC(cfg)
