"""The anti-diagonal layout shared by the alignment kernels (Smith-Waterman, soft-DTW).

A ``[B, T1, T2]`` matrix lives in a "G table" ``[Q, S, B]`` in which each anti-diagonal
``k = i + j`` is one strided column, so a ``lax.scan`` over anti-diagonals reads and writes each
diagonal in place with one dynamic slice (`_Layout`). The scan is split into segments, each on
the window of slots that can hold cells of its diagonals (`_segments`). Names keep their leading
underscore: they are the kernels' internals, shared within this package.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Finite stand-in for -inf, the package's one (`lac_jax.alignment.NEG`): the DP kernels'
# boundaries and cells outside the matrix or beyond `lengths`, the losses' masked softmaxes. It
# stays finite in float32 arithmetic; exp underflows to exactly 0, and 0 * NEG = 0, so no
# inf - inf or 0 * inf NaN appears in values or gradients.
NEG = -1e30


# ---------------------------------------------------------------------------------------------
# Layout: the "G" table, a padded row-major [T1, T2', B] array in which anti-diagonals are
# strided columns, so the scan reads and writes every diagonal in place (no skew / unskew).
# ---------------------------------------------------------------------------------------------


class _Layout(NamedTuple):
  """Geometry of a G table for ``[T1, T2]`` matrices.

  Cell ``(i, j)`` lives at flat row ``f = (i + 1) * T2p + j`` of a ``[Q * S, B]`` table with row
  stride ``T2p = T2 + L`` (``L``: the longest scan segment) and ``S = T2p - 1``. Viewed as
  ``[Q, S, B]``, anti-diagonal ``k = i + j`` is then the column ``(T2p + k) % S`` starting at row
  ``i + (T2p + k) // S``: one dynamic slice per step. The ``L`` padding columns absorb the
  window slots outside the matrix (``-L < j < T2 + L``), so they never touch a real cell, and
  flat rows ``0 .. T2`` are never written (row 0 holds the 0 of ``s*`` when it is included).
  """

  t1: int
  t2: int
  t2p: int
  q: int

  @property
  def s(self) -> int:
    return self.t2p - 1


def _layout(t1: int, t2: int, segments) -> _Layout:
  longest = max(seg.k1 - seg.k0 for seg in segments)
  t2p = t2 + longest
  k = t1 + t2 - 1
  q = t1 + (t2p + k - 1) // (t2p - 1) + 1
  return _Layout(t1, t2, t2p, q)


def _to_g(lay: _Layout, x: jax.Array, fill: float) -> jax.Array:
  """``[B, T1, T2] -> [Q, S, B]`` G table, ``fill`` outside the matrix."""
  b = x.shape[0]
  y = jnp.transpose(x, (1, 2, 0))  # [T1, T2, B]
  y = jnp.pad(y, ((0, 0), (0, lay.t2p - lay.t2), (0, 0)), constant_values=fill)
  y = y.reshape(lay.t1 * lay.t2p, b)
  rows = lay.q * lay.s
  y = jnp.pad(y, ((lay.t2p, rows - lay.t2p - lay.t1 * lay.t2p), (0, 0)), constant_values=fill)
  return y.reshape(lay.q, lay.s, b)


def _from_g_cells(lay: _Layout, g: jax.Array) -> jax.Array:
  """The cells of a G table: ``[Q, S, B] -> [T1, T2, B]``."""
  b = g.shape[-1]
  y = g.reshape(lay.q * lay.s, b)[lay.t2p : lay.t2p * (lay.t1 + 1)]
  return y.reshape(lay.t1, lay.t2p, b)[:, : lay.t2]


def _from_g(lay: _Layout, g: jax.Array) -> jax.Array:
  """Inverse of `_to_g`: ``[Q, S, B] -> [B, T1, T2]``."""
  return jnp.transpose(_from_g_cells(lay, g), (2, 0, 1))


def _segment_steps(lay: _Layout, seg: _Segment) -> tuple[np.ndarray, tuple]:
  """A segment's anti-diagonals ``ks`` (``[steps]``) and, per step, the int32 row and column
  of its first slot ``seg.lo`` in the ``[Q, S, B]`` view: the scan inputs of both passes.

  The indices are computed here, once, rather than per step from the loop counter: XLA:CPU
  would run each index computation as a separate kernel in every iteration.
  """
  ks = np.arange(seg.k0, seg.k1)
  c = lay.t2p + ks.astype(np.int64)
  return ks, ((seg.lo + c // lay.s).astype(np.int32), (c % lay.s).astype(np.int32))


def _start(at) -> tuple:
  """``[Q, S, B]`` start index from a (row, column) pair (same integer type throughout)."""
  return (at[0], at[1], jnp.zeros_like(at[0]))


def _read_diag(g: jax.Array, at, width: int) -> jax.Array:
  """``width`` slots of an anti-diagonal starting at ``at`` (`_segment_steps`): ``[width, B]``."""
  return jax.lax.dynamic_slice(g, _start(at), (width, 1, g.shape[-1]))[:, 0]


def _write_diag(g: jax.Array, x: jax.Array, at) -> jax.Array:
  """Writes ``x`` ``[width, B]`` into the anti-diagonal slots starting at ``at``."""
  return jax.lax.dynamic_update_slice(g, x[:, None, :], _start(at))


class _Segment(NamedTuple):
  """Anti-diagonals ``[k0, k1)`` computed on slots ``[lo, hi)``."""

  k0: int
  k1: int
  lo: int
  hi: int


def _segments(t1: int, t2: int, num_segments: int) -> tuple[_Segment, ...]:
  """Splits the anti-diagonals into segments with the slot window that covers their cells.

  Diagonal k holds cells with ``max(0, k - T2 + 1) <= i <= min(k, T1 - 1)``. A window starts
  one slot lower (``k0 - T2``) so that the first valid slot reads its ``i - 1`` neighbour from
  the carry; that extra slot is never a valid cell, so padding below it with the sentinel is
  exact.
  """
  k = t1 + t2 - 1
  n = max(1, min(num_segments, k))
  bounds = sorted(set(int(round(x)) for x in np.linspace(0, k, n + 1)))
  return tuple(
    _Segment(k0, k1, max(0, k0 - t2), min(t1, k1)) for k0, k1 in zip(bounds[:-1], bounds[1:])
  )


def default_num_segments(t1: int, t2: int, batch: int = 64) -> int:
  """Segments used when none are given (chosen by measurement, docs/sw_kernel.md).

  Each segment is one more loop, which costs a fixed overhead per step; the saving is work
  proportional to the batch. So: 2 segments for a few pairs, else about one per 16
  anti-diagonals, at most 8.
  """
  if batch < 8:
    return 2
  return int(min(8, max(1, (t1 + t2) // 16)))


# ---------------------------------------------------------------------------------------------
# Windows of anti-diagonals.
# ---------------------------------------------------------------------------------------------


def _down(x: jax.Array, fill: float) -> jax.Array:
  """``out[i] = x[i - 1]`` along the slot axis (axis 0), ``fill`` at slot 0."""
  return jnp.concatenate([jnp.full_like(x[:1], fill), x[:-1]], axis=0)


def _up(x: jax.Array) -> jax.Array:
  """``out[i] = x[i + 1]`` along the slot axis, 0 at the last slot."""
  return jnp.concatenate([x[1:], jnp.zeros_like(x[:1])], axis=0)


def _to_full(x: jax.Array, lo: int, t1: int, fill: float) -> jax.Array:
  """Places a window starting at slot ``lo`` into a full-width ``[T1, ...]`` array."""
  return jnp.pad(x, ((lo, t1 - lo - x.shape[0]),) + ((0, 0),) * (x.ndim - 1), constant_values=fill)


def _read_sim(lay: _Layout, sim_t: jax.Array, k, lo: int, width: int) -> jax.Array:
  """Slots ``[lo, lo + width)`` of anti-diagonal ``k`` of ``sim_t`` ``[T1 * T2, B]``.

  Cell ``(i, j)`` is row ``i * T2 + j = i * (T2 - 1) + k``: a strided run of rows (rows of
  slots outside the matrix hold other cells; the caller masks them).
  """
  stride = lay.t2 - 1
  if stride == 0:  # T2 == 1: the only cell of diagonal k is (k, 0), row k.
    row = jax.lax.dynamic_slice_in_dim(sim_t, k, 1, axis=0)
    return jnp.broadcast_to(row, (width,) + sim_t.shape[1:])
  run = jax.lax.dynamic_slice_in_dim(sim_t, lo * stride + k, (width - 1) * stride + 1, axis=0)
  return run[::stride]


def _cell_mask(lay: _Layout, k, lo: int, width: int, lens):
  """``[width, B or 1]`` bool: slot holds a cell of the matrix (and within ``lens``)."""
  i = lo + jax.lax.broadcasted_iota(jnp.int32, (width, 1), 0)
  j = k - i
  valid = (j >= 0) & (j < lay.t2)
  if lens is not None:
    valid = valid & (i < lens[0]) & (j < lens[1])
  return valid


def _batch_lengths(lengths, batch_shape: tuple, t1: int, t2: int, what: str, minimum: int):
  """Valid lengths ``[..., 2]`` of a batch of ``[T1, T2]`` matrices, checked (values too when
  concrete) and flattened to int32 ``[B, 2]``; None stays None."""
  if lengths is None:
    return None
  lengths = jnp.asarray(lengths)
  if lengths.shape != tuple(batch_shape) + (2,):
    raise ValueError(
      f"{what}: lengths must have shape {tuple(batch_shape) + (2,)} (the batch "
      f"dims + 2), got {lengths.shape}"
    )
  if not jnp.issubdtype(lengths.dtype, jnp.integer):
    raise ValueError(f"{what}: lengths must be integers, got {lengths.dtype}")
  if not isinstance(lengths, jax.core.Tracer):
    values = np.asarray(lengths)
    bad = (values < minimum) | (values > np.array([t1, t2]))
    if bad.any():
      raise ValueError(
        f"{what}: lengths must be in [{minimum}, ({t1}, {t2})], got "
        f"{values[bad.any(-1)][:3].tolist()}"
      )
  return lengths.reshape(-1, 2).astype(jnp.int32)
