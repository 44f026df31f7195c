"""Soft dynamic time warping (Cuturi and Blondel 2017), the global alignment of LAV's loss.

`soft_dtw` runs on the anti-diagonal layout of the Smith-Waterman kernel, one anti-diagonal per
scan step, with an exact adjoint backward (``backward='custom'``) or autodiff of the forward
scan (``'autodiff'``); large costs or small gamma give no NaN. The recursion and how it maps onto
the layout: docs/sw_kernel.md#soft-dtw-on-the-same-layout.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from lac_jax.alignment.layout import (
  NEG,
  _Layout,
  _batch_lengths,
  _cell_mask,
  _down,
  _from_g,
  _from_g_cells,
  _layout,
  _read_diag,
  _read_sim,
  _segment_steps,
  _segments,
  _to_full,
  _up,
  _write_diag,
  default_num_segments,
)

BACKWARDS = ("custom", "autodiff")


class _Spec(NamedTuple):
  lay: _Layout
  segments: tuple


def _lse3(a, b, c, with_weights: bool):
  """``lse(a, b, c)`` elementwise, and the softmax weights of its terms."""
  m = jnp.maximum(jnp.maximum(a, b), c)
  ea, eb, ec = jnp.exp(a - m), jnp.exp(b - m), jnp.exp(c - m)
  total = ea + eb + ec
  out = m + jnp.log(total)
  if not with_weights:
    return out, None
  return out, (ea / total, eb / total, ec / total)


def _forward(spec: _Spec, cost_t, inv_g, lens, with_weights: bool):
  """The scan. ``cost_t``: ``[T1 * T2, B]`` costs, cell-major. Returns the ``u`` table
  (``[Q, S, B]``, ``NEG`` outside the valid cells) and, with weights, per segment the tuples
  ``(w_diag, w_up, w_left)`` of ``[steps, width, B]``."""
  lay = spec.lay
  t1, bsz, dtype = lay.t1, cost_t.shape[-1], cost_t.dtype
  carry = (jnp.full((t1, bsz), NEG, dtype),) * 2  # u of diagonals k-1, k-2
  u_g = jnp.full((lay.q, lay.s, bsz), NEG, dtype)
  weights = []
  for seg in spec.segments:
    carry = tuple(c[seg.lo : seg.hi] for c in carry)
    width = seg.hi - seg.lo

    def step(c, xs, lo=seg.lo, width=width):
      (u1, u2), u_tab = c
      k, at = xs
      valid = _cell_mask(lay, k, lo, width, lens)
      origin = jnp.where(k == 0, 0.0, NEG).astype(dtype)  # u(-1, -1) = 0: R(0, 0) = 0.
      cost = _read_sim(lay, cost_t, k, lo, width) * inv_g
      best, w = _lse3(_down(u2, origin), _down(u1, NEG), u1, with_weights)
      u = jnp.where(valid, best - cost, NEG)
      return ((u, u1), _write_diag(u_tab, u, at)), w

    (carry, u_g), w = jax.lax.scan(step, (carry, u_g), _segment_steps(lay, seg))
    carry = tuple(_to_full(c, seg.lo, t1, NEG) for c in carry)
    weights.append(w)
  return u_g, weights


def _backward(spec: _Spec, weights, seed_g, lens):
  """Adjoint of ``u`` (reverse scan) from the cotangent table ``seed_g`` ``[Q, S, B]``."""
  lay = spec.lay
  t1 = lay.t1
  zero = jnp.zeros((t1, seed_g.shape[-1]), seed_g.dtype)
  # carry: messages for diagonal k from k+1 (up and left neighbours), diagonal messages for k
  # (from k+2) and for k-1 (from k+1). Shifts happen on the producer's window (see the SW kernel).
  carry = (zero,) * 3
  du_g = jnp.zeros(seed_g.shape, seed_g.dtype)
  for seg, w in zip(reversed(spec.segments), reversed(weights)):
    carry = tuple(c[seg.lo : seg.hi] for c in carry)
    width = seg.hi - seg.lo

    def step(c, xs, lo=seg.lo, width=width):
      (msg, diag_k, diag_next), du_tab = c
      k, at, (w_diag, w_up, w_left) = xs
      valid = _cell_mask(lay, k, lo, width, lens)
      du = jnp.where(valid, _read_diag(seed_g, at, width) + msg + diag_k, 0.0)
      new = (_up(du * w_up) + du * w_left, diag_next, _up(du * w_diag))
      return (new, _write_diag(du_tab, du, at)), None

    (carry, du_g), _ = jax.lax.scan(
      step, (carry, du_g), (*_segment_steps(lay, seg), w), reverse=True
    )
    carry = tuple(_to_full(c, seg.lo, t1, 0.0) for c in carry)
  return du_g


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _sdtw_custom(spec: _Spec, cost_t, inv_g, lens):
  return _forward(spec, cost_t, inv_g, lens, False)[0]


def _sdtw_custom_fwd(spec, cost_t, inv_g, lens):
  u_g, weights = _forward(spec, cost_t, inv_g, lens, True)
  return u_g, (weights, inv_g, lens, cost_t.shape)


def _sdtw_custom_bwd(spec, res, g_u):
  weights, inv_g, lens, shape = res
  du_g = _backward(spec, weights, g_u, lens)
  # u = lse(...) - cost * inv_g: d cost = -du * inv_g (gamma is a constant of the loss).
  dcost = -_from_g_cells(spec.lay, du_g).reshape(shape) * inv_g
  return dcost, jnp.zeros_like(inv_g), None


_sdtw_custom.defvjp(_sdtw_custom_fwd, _sdtw_custom_bwd)


def soft_dtw(
  cost: jax.Array,
  gamma: float,
  *,
  lengths: Optional[jax.Array] = None,
  backward: str = "custom",
  num_segments: Optional[int] = None,
) -> jax.Array:
  """Soft-DTW value of cost matrices ``[..., T1, T2]`` -> ``[...]``.

  Args:
    cost: pairwise costs (e.g. squared distances), any number of leading batch dimensions.
    gamma: smoothing > 0 (a constant: no gradient w.r.t. it); as gamma -> 0 the value tends to
      the DTW cost.
    lengths: optional int ``[..., 2]`` valid lengths ``(l1, l2)``; the value is then
      ``R(l1, l2)`` of the top-left ``[l1, l2]`` block and cells outside it get no gradient.
    backward: 'custom' (stored weights, exact adjoint) or 'autodiff' (``jax.grad`` of the scan).
    num_segments: scan segments (default `default_num_segments`).
  """
  if backward not in BACKWARDS:
    raise ValueError(f"soft_dtw: backward must be one of {BACKWARDS}, got {backward!r}")
  if not (np.isfinite(gamma) and gamma > 0):
    raise ValueError(f"soft_dtw: gamma must be a finite value > 0, got {gamma!r}")
  cost = jnp.asarray(cost)
  if cost.ndim < 2:
    raise ValueError(f"soft_dtw: cost must be [..., T1, T2], got shape {cost.shape}")
  dtype = jnp.result_type(cost.dtype, jnp.float32)
  lead, (t1, t2) = cost.shape[:-2], cost.shape[-2:]
  bsz = int(np.prod(lead, dtype=np.int64))
  lengths = _batch_lengths(lengths, lead, t1, t2, "soft_dtw", minimum=1)
  segments = _segments(t1, t2, num_segments or default_num_segments(t1, t2, bsz))
  value = _soft_dtw_jit(
    cost.astype(dtype).reshape((bsz, t1, t2)),
    float(gamma),
    lengths,
    backward=backward,
    segments=segments,
  )
  return value.reshape(lead)


@functools.partial(jax.jit, static_argnames=("gamma", "backward", "segments"))
def _soft_dtw_jit(cost, gamma, lengths, *, backward, segments):
  bsz, t1, t2 = cost.shape
  spec = _Spec(_layout(t1, t2, segments), segments)
  cost_t = jnp.transpose(cost, (1, 2, 0)).reshape(t1 * t2, bsz)
  inv_g = jnp.asarray(1.0 / gamma, cost.dtype)
  lens = None if lengths is None else jnp.transpose(lengths)  # [2, B]
  if backward == "custom":
    u_g = _sdtw_custom(spec, cost_t, inv_g, lens)
  else:
    u_g = _forward(spec, cost_t, inv_g, lens, False)[0]
  u = _from_g(spec.lay, u_g)  # [B, T1, T2]
  if lengths is None:
    last = u[:, -1, -1]
  else:
    last = u[jnp.arange(bsz), lengths[:, 0] - 1, lengths[:, 1] - 1]
  return -gamma * last
