"""Differentiable affine Smith-Waterman (SW) local alignment (paper Eq. 2-5 and Appendix B).

`soft_smith_waterman`: the smoothed score ``s*`` (``max^g(u) = g * logsumexp(u / g)`` in place of
max) and the match table D, batched, with scalar, per-pair or per-cell gap penalties and variable
lengths; one ``jax.lax.scan`` over anti-diagonals, backward by the adjoint recursion
(``backward='custom'``) or autodiff (``'autodiff'``). `smith_waterman_path`: the hard alignment.
The recursion, the layout and the kernel's performance: docs/sw_kernel.md.
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
  _to_g,
  _up,
  _write_diag,
  default_num_segments,
)

# Value of the returned D table outside the valid block given by `lengths`.
PAD_VALUE = 0.0


# ---------------------------------------------------------------------------------------------
# The recursion on one window of one anti-diagonal (scaled units: everything divided by gamma).
# ---------------------------------------------------------------------------------------------


def _log1p_coefficients(degree: int = 9) -> tuple[float, ...]:
  """Power-series coefficients ``c`` with ``log(1 + e) ~= e * sum_k c_k e^k`` on ``[0, 1]``.

  Chebyshev interpolation of ``log1p(e) / e``; degree 9 is within 3e-9 in float64, i.e. below
  float32 rounding (measured max error of the float32 Horner evaluation: 1.1e-7 absolute, vs
  5.5e-8 for ``jnp.log1p``).
  """

  def ratio(e):
    safe = np.where(e == 0.0, 1.0, e)
    return np.where(e == 0.0, 1.0, np.log1p(safe) / safe)

  cheb = np.polynomial.chebyshev.Chebyshev.interpolate(ratio, degree, domain=[0.0, 1.0])
  return tuple(float(c) for c in np.polynomial.Polynomial.cast(cheb).coef)


_LOG1P_COEF = _log1p_coefficients()


def _log1p_unit(e: jax.Array) -> jax.Array:
  """``log(1 + e)`` for ``e`` in ``[0, 1]``.

  float32: a degree-9 polynomial (10 multiply-adds) instead of XLA's ``log``, as accurate at
  float32 precision and cheaper (the kernel evaluates it 5 times per cell; docs/sw_kernel.md).
  Other dtypes (float64 tests) use ``jnp.log1p``.
  """
  if e.dtype != jnp.float32:
    return jnp.log1p(e)
  acc = jnp.full_like(e, _LOG1P_COEF[-1])
  for c in _LOG1P_COEF[-2::-1]:
    acc = acc * e + c
  return acc * e


def _lse2(a: jax.Array, b: jax.Array, mode: str):
  """Elementwise ``log(exp(a) + exp(b))`` and, in mode ``'weights'``, the softmax weight of a.

  ``'fast'`` and ``'weights'`` use one exp and one cheap log (``m + log1p(exp(-|a - b|))``);
  ``'autodiff'`` is the textbook form, whose derivative is also right where ``a == b``.
  """
  if mode == "autodiff":
    m = jax.lax.stop_gradient(jnp.maximum(a, b))
    return m + jnp.log(jnp.exp(a - m) + jnp.exp(b - m)), None
  e = jnp.exp(-jnp.abs(a - b))  # ratio of the smaller term to the larger one, in [0, 1]
  value = jnp.maximum(a, b) + _log1p_unit(e)
  if mode == "fast":
    return value, None
  return value, jnp.where(a >= b, 1.0, e) / (1.0 + e)


def _cell_update(carry, s, go, ge, mode: str):
  """One anti-diagonal: returns the new carry, D, and (mode 'weights') the 5 local weights.

  Each ``max^g`` of the paper is written as a chain of two-term logsumexps, which needs
  fewer exps and only one stored weight per node::

      Ix = lse(D_left - go, Ix_left - ge)       weight alpha of the D term
      Q  = lse(D, Ix)                           weight kappa of D
      Iy = lse(Q_up - go, Iy_up - ge)           weight beta of the Q term  (= Eq. 4)
      R  = lse(Q, Iy)                           weight rho of Q
      P  = lse(R, 0)                            weight pi of R             (= lse(0, D, Ix, Iy))
      D_next(i + 1, j + 1) = s + P

  carry = (D1, X1, Q1, Y1, P2, P1): D, Ix, Q, Iy of diagonal k-1 and P of diagonals k-2 and
  k-1, all at their own slots. Shifts to the ``i - 1`` neighbour happen here, on the consumer's
  window, because a window may grow upwards from one segment to the next (the producer's
  window would drop the top value).
  """
  d1, x1, q1, y1, p2, p1 = carry
  d = s + _down(p2, 0.0)  # P of the boundary is lse(0, -inf, -inf, -inf) = 0.
  x, alpha = _lse2(d1 - go, x1 - ge, mode)
  q, kappa = _lse2(d, x, mode)
  y, beta = _lse2(_down(q1, NEG) - go, _down(y1, NEG) - ge, mode)
  r, rho = _lse2(q, y, mode)
  p, pi = _lse2(r, jnp.zeros_like(r), mode)
  new_carry = (d, x, q, y, p1, p)
  if mode != "weights":
    return new_carry, d, None
  return new_carry, d, (alpha, kappa, beta, rho, pi)


class _Spec(NamedTuple):
  """Static description of one kernel call."""

  lay: _Layout
  segments: tuple
  per_cell: bool  # penalties given per cell (G tables [Q, S, B']) or per pair ([1, B']).
  zero_cell: bool  # the D table holds the 0 of s* in an unused slot (include_zero).


def _forward(spec: _Spec, sim_t, inv_g, go, ge, lens, mode: str):
  """Runs the segmented scan (scaled units: ``s = sim / gamma``, scaled in each step).

  Args:
    sim_t: ``[T1 * T2, B]`` similarities, cell-major (``sim`` transposed).
    inv_g: ``1 / gamma``, scalar.
    go, ge: scaled penalties, per pair ``[1, B']`` or G tables ``[Q, S, B']``.
    lens: int ``[2, B]`` valid lengths per pair, or None.

  Returns the D table (``[Q, S, B]``, ``NEG`` outside the matrix, 0 in the zero cell) and the
  per-segment local weights (mode ``'weights'``: tuples of ``[steps, width, B]``).
  """
  lay = spec.lay
  t1 = lay.t1
  bsz = sim_t.shape[-1]
  dtype = sim_t.dtype
  full = jnp.full((t1, bsz), NEG, dtype)
  zero = jnp.zeros((t1, bsz), dtype)
  fills = (NEG, NEG, NEG, NEG, 0.0, 0.0)
  carry = tuple(full if f == NEG else zero for f in fills)
  d_g = jnp.full((lay.q, lay.s, bsz), NEG, dtype)
  if spec.zero_cell:  # Flat row 0 never holds a cell (see `_Layout`).
    d_g = d_g.at[0, 0].set(0.0)
  weights = []
  for seg in spec.segments:
    carry = tuple(c[seg.lo : seg.hi] for c in carry)
    width = seg.hi - seg.lo

    def step(c, xs, lo=seg.lo, width=width):
      cells, d_tab = c
      k, at = xs
      valid = _cell_mask(lay, k, lo, width, lens)
      s = jnp.where(valid, _read_sim(lay, sim_t, k, lo, width) * inv_g, NEG)
      if spec.per_cell:
        g_o, g_e = _read_diag(go, at, width), _read_diag(ge, at, width)
      else:
        g_o, g_e = go, ge
      cells, d, w = _cell_update(cells, s, g_o, g_e, mode)
      return (cells, _write_diag(d_tab, d, at)), w

    (carry, d_g), w = jax.lax.scan(step, (carry, d_g), _segment_steps(lay, seg))
    carry = tuple(_to_full(c, seg.lo, t1, f) for c, f in zip(carry, fills))
    weights.append(w)
  return d_g, weights


def _backward(spec: _Spec, weights, g_d, inv_g, lens, go_shape, ge_shape):
  """Adjoint recursion (reverse scan). ``g_d``: cotangent of the D table (scaled units).

  Returns the cotangent of ``sim`` as a G table ``[Q, S, B]`` (``inv_g`` applied, 0 outside
  the valid cells) and those of the scaled penalties ``(go, ge)``.
  """
  lay = spec.lay
  t1 = lay.t1
  bsz = g_d.shape[-1]
  zero = jnp.zeros((t1, bsz), g_d.dtype)
  # carry: up-shifted dD of diagonals k+1 and k+2, and the messages from diagonal k+1:
  # Ix(i, j+1) -> (D, Ix) at slot i; Iy(i+1, j) -> (Q, Iy) already shifted to slot i.
  # Unlike the forward pass, shifts happen on the producer's window: going backwards a window
  # may shrink at the top, and the value for the consumer's top slot sits one slot higher.
  carry = (zero,) * 6
  ds_g = jnp.zeros(g_d.shape, g_d.dtype)
  if spec.per_cell:
    tabs = (jnp.zeros(go_shape, g_d.dtype), jnp.zeros(ge_shape, g_d.dtype))
  else:
    tabs = ()
  sums = []
  for seg, w in zip(reversed(spec.segments), reversed(weights)):
    carry = tuple(c[seg.lo : seg.hi] for c in carry)
    width = seg.hi - seg.lo

    def step(c, xs, lo=seg.lo, width=width):
      (dd1_up, dd2_up, mxd, mxx, myq_up, myy_up), ds_tab, tabs = c
      k, at, (alpha, kappa, beta, rho, pi) = xs
      seed = _read_diag(g_d, at, width)
      dr = dd2_up * pi  # dF/dP(i, j) = dF/dD(i + 1, j + 1)
      dq = dr * rho + myq_up
      dy = (dr - dr * rho) + myy_up
      dx = (dq - dq * kappa) + mxx
      dd = seed + dq * kappa + mxd
      n_xd = dx * alpha
      n_xx = dx - n_xd
      n_yq = dy * beta
      n_yy = dy - n_yq
      dgo = -(n_xd + n_yq)
      dge = -(n_xx + n_yy)
      new = (_up(dd), dd1_up, n_xd, n_xx, _up(n_yq), _up(n_yy))
      valid = _cell_mask(lay, k, lo, width, lens)
      ds_tab = _write_diag(ds_tab, jnp.where(valid, dd * inv_g, 0.0), at)
      if spec.per_cell:
        # Penalties shared across the batch (last dim 1) receive the batch sum.
        dgo_t, dge_t = tabs
        if dgo_t.shape[-1] != dgo.shape[-1]:
          dgo = dgo.sum(-1, keepdims=True)
        if dge_t.shape[-1] != dge.shape[-1]:
          dge = dge.sum(-1, keepdims=True)
        tabs = (_write_diag(dgo_t, dgo, at), _write_diag(dge_t, dge, at))
        return (new, ds_tab, tabs), None
      # Per-pair penalties: only the sum over the diagonal is needed.
      return (new, ds_tab, tabs), (dgo.sum(0), dge.sum(0))

    (carry, ds_g, tabs), per_step = jax.lax.scan(
      step, (carry, ds_g, tabs), (*_segment_steps(lay, seg), w), reverse=True
    )
    carry = tuple(_to_full(c, seg.lo, t1, 0.0) for c in carry)
    sums.append(per_step)
  if spec.per_cell:
    dgo, dge = tabs
  else:
    dgo = sum(p[0].sum(0) for p in sums)[None]  # [1, B]
    dge = sum(p[1].sum(0) for p in sums)[None]
    dgo = _sum_to_shape(dgo, go_shape)  # Shared across the batch: [1, 1].
    dge = _sum_to_shape(dge, ge_shape)
  return ds_g, dgo, dge


def _sum_to_shape(x: jax.Array, shape) -> jax.Array:
  axes = tuple(i for i, (a, b) in enumerate(zip(x.shape, shape)) if a != b)
  return x.sum(axes, keepdims=True) if axes else x


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _sw_custom(spec: _Spec, sim_t, inv_g, go, ge, lens):
  return _forward(spec, sim_t, inv_g, go, ge, lens, "fast")[0]


def _sw_custom_fwd(spec, sim_t, inv_g, go, ge, lens):
  d, weights = _forward(spec, sim_t, inv_g, go, ge, lens, "weights")
  return d, (weights, sim_t, inv_g, lens, go.shape, ge.shape)


def _sw_custom_bwd(spec, res, g_d):
  weights, sim_t, inv_g, lens, go_shape, ge_shape = res
  ds_g, dgo, dge = _backward(spec, weights, g_d, inv_g, lens, go_shape, ge_shape)
  lay = spec.lay
  ds_t = _from_g_cells(lay, ds_g).reshape(sim_t.shape)
  # s = sim * inv_g: d/d inv_g = sum(ds * sim) = sum(d sim * sim) / inv_g. Dropped by XLA
  # unless gamma itself is differentiated.
  d_inv_g = jnp.sum(ds_t * sim_t) / inv_g
  return ds_t, d_inv_g.astype(inv_g.dtype), dgo, dge, None


_sw_custom.defvjp(_sw_custom_fwd, _sw_custom_bwd)


def _sw_autodiff(spec: _Spec, sim_t, inv_g, go, ge, lens):
  return _forward(spec, sim_t, inv_g, go, ge, lens, "autodiff")[0]


# ---------------------------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------------------------


def _prepare_penalty(name: str, value, sim_shape, dtype, bsz: int) -> jax.Array:
  """Penalty as ``[B', T1', T2']`` with ``B'`` in ``{1, B}`` and ``T1', T2'`` in ``{1, T}``."""
  value = jnp.asarray(value, dtype)
  try:
    full_shape = np.broadcast_shapes(value.shape, sim_shape)
  except ValueError:
    full_shape = None
  if full_shape != tuple(sim_shape):
    raise ValueError(
      f"soft_smith_waterman: {name} of shape {value.shape} does not broadcast "
      f"to sim's shape {tuple(sim_shape)}"
    )
  value = value.reshape((1,) * (len(sim_shape) - value.ndim) + value.shape)
  if any(v != 1 for v in value.shape[:-2]):
    value = jnp.broadcast_to(value, tuple(sim_shape[:-2]) + value.shape[-2:])
    return value.reshape((bsz,) + value.shape[-2:])
  return value.reshape((1,) + value.shape[-2:])


def soft_smith_waterman(
  sim: jax.Array,
  gap_open,
  gap_extend,
  gamma: float,
  *,
  include_zero: bool = True,
  lengths: Optional[jax.Array] = None,
  backward: str = "custom",
  num_segments: Optional[int] = None,
):
  """Smoothed affine Smith-Waterman score and match table.

  Args:
    sim: float ``[..., T1, T2]`` similarity matrices, any number of leading batch dims.
    gap_open: penalty for opening a gap; positive values are subtracted. A scalar or an array
      broadcastable to ``sim`` (per pair ``[..., 1, 1]``, per cell ``[T1, T2]`` or
      ``[..., T1, T2]``). A cell's penalty applies when that cell is entered (Eq. 3-4).
    gap_extend: penalty for extending a gap, same forms as ``gap_open``.
    gamma: smoothing temperature ``> 0`` of ``max^g``.
    include_zero: if True (the paper's ``s*``) the score is ``max^g`` over ``{0}`` and every D
      cell; False drops the 0 (the value the official LAC code returns).
    lengths: optional int ``[..., 2]`` valid lengths ``(T1_valid, T2_valid)`` per pair; the
      result equals running on ``sim[..., :T1_valid, :T2_valid]``. D outside the valid block is
      ``PAD_VALUE`` (0). Each length must be >= 1.
    backward: ``'custom'`` (stored local weights + adjoint reverse scan, fast) or
      ``'autodiff'`` (``jax.grad`` through the forward scan). Same values and gradients.
    num_segments: number of scan segments (default `default_num_segments`).

  Returns:
    ``(score, D)``: score ``[...]`` and the match-state table D ``[..., T1, T2]``, in the
    units of ``sim`` (not divided by gamma).
  """
  sim = jnp.asarray(sim)
  if sim.ndim < 2:
    raise ValueError(f"soft_smith_waterman: sim must have shape [..., T1, T2], got {sim.shape}")
  if not jnp.issubdtype(sim.dtype, jnp.floating):
    raise ValueError(f"soft_smith_waterman: sim must be a float array, got {sim.dtype}")
  if backward not in ("custom", "autodiff"):
    raise ValueError(
      f"soft_smith_waterman: backward must be 'custom' or 'autodiff', got {backward!r}"
    )
  if not isinstance(gamma, jax.core.Tracer):
    g = np.asarray(gamma)
    if g.shape != () or not np.isfinite(g) or g <= 0:
      raise ValueError(f"soft_smith_waterman: gamma must be a finite scalar > 0, got {gamma!r}")
  batch_shape = tuple(sim.shape[:-2])
  t1, t2 = sim.shape[-2:]
  if t1 < 1 or t2 < 1:
    raise ValueError(f"soft_smith_waterman: sim must be non-empty, got {sim.shape}")
  bsz = int(np.prod(batch_shape, dtype=np.int64))
  lengths = _batch_lengths(lengths, batch_shape, t1, t2, "soft_smith_waterman", minimum=0)
  go = _prepare_penalty("gap_open", gap_open, sim.shape, sim.dtype, bsz)
  ge = _prepare_penalty("gap_extend", gap_extend, sim.shape, sim.dtype, bsz)
  segments = _segments(t1, t2, num_segments or default_num_segments(t1, t2, bsz))
  # One cached compilation per shape and setting, also when called eagerly (notebooks, tests).
  score, d = _soft_sw_jit(
    sim.reshape(bsz, t1, t2),
    go,
    ge,
    jnp.asarray(gamma, sim.dtype),
    lengths,
    include_zero=include_zero,
    backward=backward,
    segments=segments,
  )
  return score.reshape(batch_shape), d.reshape(batch_shape + (t1, t2))


@functools.partial(jax.jit, static_argnames=("include_zero", "backward", "segments"))
def _soft_sw_jit(sim, go, ge, gamma, lengths, *, include_zero, backward, segments):
  """`soft_smith_waterman` on validated inputs.

  sim ``[B, T1, T2]``, penalties ``[B', T1', T2']``."""
  bsz, t1, t2 = sim.shape
  go, ge = go / gamma, ge / gamma
  per_cell = go.shape[1:] != (1, 1) or ge.shape[1:] != (1, 1)
  lay = _layout(t1, t2, segments)
  if per_cell:  # G tables: [Q, S, B'].
    go = _to_g(lay, jnp.broadcast_to(go, (go.shape[0], t1, t2)), 0.0)
    ge = _to_g(lay, jnp.broadcast_to(ge, (ge.shape[0], t1, t2)), 0.0)
  else:  # One value per pair (or for all pairs): [1, B'].
    go, ge = go.reshape(1, -1), ge.reshape(1, -1)

  # A plain transpose (XLA:CPU's fast path: fused with a scale or pad it is several times
  # slower); the kernel scales by 1 / gamma and masks the cells outside `lengths` per step.
  sim_t = jnp.transpose(sim, (1, 2, 0)).reshape(t1 * t2, bsz)
  lens = None if lengths is None else jnp.transpose(lengths).astype(jnp.int32)  # [2, B]
  spec = _Spec(lay, segments, per_cell, include_zero)
  core = _sw_custom if backward == "custom" else _sw_autodiff
  d_g = core(spec, sim_t, 1.0 / gamma, go, ge, lens)  # [Q, S, B], scaled units

  score = gamma * jax.nn.logsumexp(d_g.reshape(-1, bsz), axis=0)
  d = gamma * _from_g(lay, d_g)
  if lengths is not None:
    valid = (jnp.arange(t1)[None, :, None] < lengths[:, 0, None, None]) & (
      jnp.arange(t2)[None, None, :] < lengths[:, 1, None, None]
    )
    d = jnp.where(valid, d, PAD_VALUE)
  return score, d


def smith_waterman_path(sim, gap_open, gap_extend, end=None):
  """Best hard local alignment (the gamma -> 0 limit of `soft_smith_waterman`).

  Args:
    sim: ``[T1, T2]`` similarity matrix (NumPy or JAX).
    gap_open, gap_extend: scalars or ``[T1, T2]`` per-cell penalties (subtracted).
    end: ``(i, j)``: the best path ending in that match cell instead (its score ``D(i, j)``).

  Returns:
    ``(path, score)``: ``path`` an int ``[N, 2]`` array of matched ``(i, j)`` pairs (0-based,
    increasing; empty when the best alignment is empty) and ``score`` the hard ``s*`` =
    ``max(0, max D)``.
  """
  s = np.asarray(sim, dtype=np.float64)
  if s.ndim != 2:
    raise ValueError(f"smith_waterman_path: sim must be [T1, T2], got shape {s.shape}")
  t1, t2 = s.shape
  try:
    go = np.broadcast_to(np.asarray(gap_open, np.float64), s.shape)
    ge = np.broadcast_to(np.asarray(gap_extend, np.float64), s.shape)
  except ValueError:
    raise ValueError(
      f"smith_waterman_path: gap_open / gap_extend must be scalars or [T1, T2] = {s.shape}"
    ) from None
  ninf = -np.inf
  # Padded tables: index 0 is the -inf boundary row / column.
  d = np.full((t1 + 1, t2 + 1), ninf)
  x = np.full((t1 + 1, t2 + 1), ninf)
  y = np.full((t1 + 1, t2 + 1), ninf)
  # Cells (i, j) of one anti-diagonal i + j = k depend only on the two before it: fill each
  # anti-diagonal at once (the same operations as a cell-by-cell loop, so the same tables).
  for k in range(2, t1 + t2 + 1):
    i = np.arange(max(1, k - t2), min(t1, k - 1) + 1)
    j = k - i
    im, jm = i - 1, j - 1
    d[i, j] = s[im, jm] + np.maximum(np.maximum(0.0, d[im, jm]), np.maximum(x[im, jm], y[im, jm]))
    x[i, j] = np.maximum(d[i, jm] - go[im, jm], x[i, jm] - ge[im, jm])
    y[i, j] = np.maximum(
      np.maximum(d[im, j] - go[im, jm], x[im, j] - go[im, jm]), y[im, j] - ge[im, jm]
    )
  if end is None:
    i, j = np.unravel_index(np.argmax(d[1:, 1:]), (t1, t2))
  else:
    i, j = end
  best = d[int(i) + 1, int(j) + 1]
  if best <= 0.0:
    return np.zeros((0, 2), np.int64), 0.0
  i, j = int(i) + 1, int(j) + 1
  state, path = "D", []
  while True:
    if state == "D":
      path.append((i - 1, j - 1))
      prev = (0.0, d[i - 1, j - 1], x[i - 1, j - 1], y[i - 1, j - 1])
      choice = int(np.argmax(prev))
      if choice == 0:
        break
      state = "DXY"[choice - 1]
      i, j = i - 1, j - 1
    elif state == "X":
      cands = (d[i, j - 1] - go[i - 1, j - 1], x[i, j - 1] - ge[i - 1, j - 1])
      state = "DX"[int(np.argmax(cands))]
      j -= 1
    else:
      cands = (
        d[i - 1, j] - go[i - 1, j - 1],
        x[i - 1, j] - go[i - 1, j - 1],
        y[i - 1, j] - ge[i - 1, j - 1],
      )
      state = "DXY"[int(np.argmax(cands))]
      i -= 1
  return np.asarray(path[::-1], np.int64), float(best)
