"""Local-alignment search: a query against long targets, several hits each, with E-values.

The hard affine Smith-Waterman of `smith_waterman_path` (same D, X, Y recursion), swept along the
target one column at a time: each column needs only the previous one, so a ``[m]`` query
against ``[n]`` targets takes ``O(batch * m)`` state, carried exactly across blocks of columns
(`sweep`). Every cell also carries the target column where its best path starts, so a hit's
path is recovered by rerunning the full DP on that window only (`hit_path`). Repeated hits
(Waterman-Eggert style, `waterman_eggert`) mask the target columns of each hit, so hits never
overlap in the target. Significance: a Gumbel fitted to the best scores of the query against
time-shuffled stretches of the targets (`fit_null`, `evalue`). The method: docs/search.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lac_jax.alignment.layout import NEG
from lac_jax.alignment.smith_waterman import smith_waterman_path

EULER = 0.5772156649015329


# ------------------------------------------------------------------------------------------
# Scoring a query against targets, one column at a time.


def _column(carry, inputs, go: float, ge: float):
  """One target column for a batch: ``carry`` = (D, X, Y, start of D, X, Y) ``[B, m]`` of the
  previous column, best ``[B]`` and its cell; ``inputs`` = scores ``[B, m]``, valid ``[B]``,
  column index."""
  d, x, y, sd, sx, sy, best, best_i, best_j, best_s = carry
  s, valid, j = inputs
  b, m = s.shape
  neg = jnp.full((b, 1), NEG, s.dtype)
  # Diagonal predecessors (row i - 1 of the previous column).
  prev = [jnp.concatenate([neg, v[:, :-1]], 1) for v in (d, x, y)]
  prev_start = [
    jnp.concatenate([jnp.full((b, 1), -1, sd.dtype), v[:, :-1]], 1) for v in (sd, sx, sy)
  ]
  options = jnp.stack([jnp.zeros_like(s)] + prev, 0)  # [4, B, m]: restart, D, X, Y
  choice = jnp.argmax(options, 0)
  new_d = s + jnp.max(options, 0)
  starts = jnp.stack([jnp.full_like(sd, j)] + prev_start, 0)
  new_sd = jnp.take_along_axis(starts, choice[None], 0)[0]
  # X: a gap along the target (same row, previous column).
  open_x, ext_x = d - go, x - ge
  new_x = jnp.maximum(open_x, ext_x)
  new_sx = jnp.where(open_x >= ext_x, sd, sx)
  # Y: a gap along the query (previous row, same column): Y(i) = max_{k<i} A(k) - (i-1-k) ge
  # with A(k) = max(D(k), X(k)) - go, a running maximum.
  a = jnp.maximum(new_d, new_x) - go
  a_start = jnp.where(new_d >= new_x, new_sd, new_sx)
  ramp = jnp.arange(m, dtype=s.dtype) * ge
  run = jax.lax.cummax(a + ramp, axis=1)
  # The argmax behind each running maximum: the last k <= i where a + ramp reaches it.
  hit = (a + ramp) >= run
  idx = jax.lax.cummax(jnp.where(hit, jnp.arange(m), -1), axis=1)
  new_y = jnp.concatenate([neg, run[:, :-1] - ramp[:-1]], 1)
  run_start = jnp.take_along_axis(a_start, jnp.maximum(idx, 0), 1)
  new_sy = jnp.concatenate([jnp.full((b, 1), -1, sd.dtype), run_start[:, :-1]], 1)
  # A masked column (padding, or a previous hit's span) breaks every path.
  keep = valid[:, None]
  new_d, new_x, new_y = (jnp.where(keep, v, NEG) for v in (new_d, new_x, new_y))
  col_i = jnp.argmax(new_d, 1)
  col_best = jnp.take_along_axis(new_d, col_i[:, None], 1)[:, 0]
  col_start = jnp.take_along_axis(new_sd, col_i[:, None], 1)[:, 0]
  better = col_best > best
  carry = (
    new_d,
    new_x,
    new_y,
    new_sd,
    new_sx,
    new_sy,
    jnp.where(better, col_best, best),
    jnp.where(better, col_i, best_i),
    jnp.where(better, j, best_j),
    jnp.where(better, col_start, best_s),
  )
  return carry, None


@functools.partial(jax.jit, static_argnames=("go", "ge"))
def _sweep_block(carry, scores, valid, offset, *, go: float, ge: float):
  """Columns ``offset ...`` of a block: scores ``[B, m, C]``, valid ``[B, C]``."""
  cols = jnp.arange(scores.shape[2], dtype=jnp.int32) + offset
  carry, _ = jax.lax.scan(
    functools.partial(_column, go=go, ge=ge), carry, (jnp.moveaxis(scores, 2, 0), valid.T, cols)
  )
  return carry


def initial_state(batch: int, m: int, dtype=jnp.float32):
  neg = jnp.full((batch, m), NEG, dtype)
  start = jnp.full((batch, m), -1, jnp.int32)
  return (
    neg,
    neg,
    neg,
    start,
    start,
    start,
    jnp.full((batch,), NEG, dtype),
    jnp.zeros((batch,), jnp.int32),
    jnp.full((batch,), -1, jnp.int32),
    jnp.full((batch,), -1, jnp.int32),
  )


@dataclasses.dataclass(frozen=True)
class Best:
  """The best local alignment of each target: ``score`` ``[B]`` (<= 0: none), its end cell
  (``end_i`` in the query, ``end_j`` in the target) and ``start_j``, the target column where
  that path starts."""

  score: np.ndarray
  end_i: np.ndarray
  end_j: np.ndarray
  start_j: np.ndarray


def sweep(
  score_block: Callable[[int, int], np.ndarray],
  lengths: Sequence[int],
  m: int,
  gap_open: float,
  gap_extend: float,
  *,
  block: int = 1024,
  masks: Optional[Sequence[np.ndarray]] = None,
  progress: Optional[Callable[[int], None]] = None,
) -> Best:
  """Best hard local alignment of a query (``m`` frames) against each of ``B`` targets.

  Args:
    score_block: ``(start, stop) -> float [B, m, stop - start]`` cell scores of target columns
      ``start:stop`` (columns past a target's length are ignored).
    lengths: ``[B]`` target lengths.
    m: query length.
    gap_open, gap_extend: scalar penalties (subtracted), as `smith_waterman_path`.
    block: columns scored per device call (bounds memory to ``B * m * block`` scores).
    masks: optional bool ``[n_b]`` per target, True = column excluded (no path enters it).
    progress: called with the number of target columns done after each block.

  Returns:
    `Best`; exact: the same scores as `smith_waterman_path` on the whole matrix.
  """
  lengths = np.asarray(lengths, np.int64)
  total = int(lengths.max()) if lengths.size else 0
  carry = initial_state(len(lengths), m)
  block = max(1, min(block, total))
  for start in range(0, total, block):
    stop = min(total, start + block)
    width = block  # one compiled shape: the last block is padded
    scores = np.full((len(lengths), m, width), NEG, np.float32)
    scores[:, :, : stop - start] = score_block(start, stop)
    cols = np.arange(start, start + width)
    valid = cols[None, :] < lengths[:, None]
    if masks is not None:
      for b, mask in enumerate(masks):
        inside = cols < min(len(mask), start + width)
        valid[b, inside] &= ~np.asarray(mask)[cols[inside]]
    carry = _sweep_block(
      carry,
      jnp.asarray(scores),
      jnp.asarray(valid),
      jnp.int32(start),
      go=float(gap_open),
      ge=float(gap_extend),
    )
    if progress is not None:
      progress(int(np.minimum(lengths, stop).sum() - np.minimum(lengths, start).sum()))
  best, best_i, best_j, best_s = (np.asarray(v) for v in carry[6:])
  return Best(
    np.maximum(best.astype(np.float64), 0.0),
    best_i.astype(np.int64),
    best_j.astype(np.int64),
    best_s.astype(np.int64),
  )


# ------------------------------------------------------------------------------------------
# Hits: their paths, and the next ones.


@dataclasses.dataclass(frozen=True)
class Hit:
  """One local alignment of the query with target ``target``: ``score`` (float64, the hard SW
  score), ``pairs`` int ``[N, 2]`` matched ``(query frame, target frame)``, increasing."""

  target: int
  score: float
  pairs: np.ndarray

  @property
  def target_span(self) -> tuple[int, int]:
    """First and last matched target frame."""
    return int(self.pairs[0, 1]), int(self.pairs[-1, 1])

  @property
  def query_span(self) -> tuple[int, int]:
    return int(self.pairs[0, 0]), int(self.pairs[-1, 0])


def hit_path(
  window_scores: Callable[[int, int], np.ndarray],
  end_i: int,
  end_j: int,
  start_j: int,
  gap_open: float,
  gap_extend: float,
  first_allowed: int = 0,
  margin: int = 8,
) -> tuple[np.ndarray, float]:
  """The path of the best alignment ending at ``(end_i, end_j)``, from the full DP (float64) on
  target columns ``[start_j - margin, end_j]`` only (``window_scores(j0, j1) -> [m, j1 - j0]``;
  ``first_allowed``: no column before it, e.g. after a masked one). Returns ``(pairs in target
  coordinates, score)``."""
  j0 = max(first_allowed, start_j - margin, 0)
  scores = np.asarray(window_scores(j0, end_j + 1), np.float64)
  pairs, score = smith_waterman_path(scores, gap_open, gap_extend, end=(end_i, end_j - j0))
  return pairs + np.array([0, j0]), float(score)


def waterman_eggert(
  score_block: Callable[[Sequence[int], int, int], np.ndarray],
  window_scores: Callable[[int, int, int], np.ndarray],
  lengths: Sequence[int],
  m: int,
  gap_open: float,
  gap_extend: float,
  *,
  max_hits: int,
  accept: Callable[[float, int], bool],
  block: int = 1024,
  progress: Optional[Callable[[int], None]] = None,
) -> list[list[Hit]]:
  """Up to ``max_hits`` non-overlapping local alignments per target, best first.

  Each round scores every target still searched (one batch), takes its best alignment, and
  stops searching a target when that score is not ``accept(score, target length)``; an
  accepted hit's target columns (first to last matched frame) are masked for the next rounds,
  so later hits never overlap it.

  Args:
    score_block: ``(targets, start, stop) -> float [len(targets), m, stop - start]``.
    window_scores: ``(target, j0, j1) -> float64 [m, j1 - j0]`` (the same scores).
    lengths: target lengths.
    m, gap_open, gap_extend, block, progress: as `sweep` (progress counts every round).
  """
  lengths = [int(n) for n in lengths]
  masks = [np.zeros(n, bool) for n in lengths]
  hits: list[list[Hit]] = [[] for _ in lengths]
  active = [b for b, n in enumerate(lengths) if n > 0]
  for _ in range(max_hits):
    if not active:
      break
    best = sweep(
      functools.partial(score_block, list(active)),
      [lengths[b] for b in active],
      m,
      gap_open,
      gap_extend,
      block=block,
      masks=[masks[b] for b in active],
      progress=progress,
    )
    still = []
    for k, b in enumerate(active):
      score = float(best.score[k])
      if score <= 0 or not accept(score, lengths[b]):
        continue
      masked_before = np.nonzero(masks[b][: best.end_j[k]])[0]
      first = int(masked_before[-1]) + 1 if masked_before.size else 0
      pairs, exact = hit_path(
        functools.partial(window_scores, b),
        int(best.end_i[k]),
        int(best.end_j[k]),
        int(best.start_j[k]),
        gap_open,
        gap_extend,
        first_allowed=first,
      )
      if not pairs.size:
        continue
      hit = Hit(b, exact, pairs)
      hits[b].append(hit)
      lo, hi = hit.target_span
      masks[b][lo : hi + 1] = True
      still.append(b)
    active = still
  return hits


# ------------------------------------------------------------------------------------------
# Significance.


@dataclasses.dataclass(frozen=True)
class Null:
  """A Gumbel fitted to best scores of the query (``m`` frames) against null targets of
  ``n`` frames: ``P(S >= x) = 1 - exp(-E(x))``, ``E(x) = (n_target / n) exp(-(x - loc) / scale)``
  (Karlin-Altschul's ``K m n exp(-lambda x)`` with ``lambda = 1 / scale``, ``K = exp(loc /
  scale) / (m n)``)."""

  loc: float
  scale: float
  m: int
  n: int
  samples: int
  empirical: Optional[tuple[float, ...]] = None  # sorted null scores when no Gumbel fits

  @property
  def lam(self) -> float:
    return 1.0 / self.scale

  @property
  def k(self) -> float:
    return math.exp(self.loc / self.scale) / (self.m * self.n)

  def evalue(self, score: float, target_length: int) -> float:
    """Expected number of chance alignments scoring >= ``score`` in a target of that length."""
    if self.empirical is not None:  # the null's own tail, never below 1 / (samples + 1)
      above = len(self.empirical) - int(np.searchsorted(self.empirical, score, side="left"))
      return float(target_length / self.n * (above + 1) / (len(self.empirical) + 1))
    return float(target_length / self.n * math.exp(-(score - self.loc) / self.scale))

  def pvalue(self, score: float, target_length: int) -> float:
    return float(-math.expm1(-self.evalue(score, target_length)))


def fit_gumbel(scores: Sequence[float], m: int, n: int) -> Null:
  """Method-of-moments Gumbel fit (scale = sqrt(6) std / pi, loc = mean - 0.5772 scale); the
  empirical null when most scores are 0 (no local alignment in most null targets)."""
  scores = np.asarray(scores, np.float64)
  if scores.size < 10:
    raise ValueError(f"null fit: need at least 10 null scores, got {scores.size}")
  scale = math.sqrt(6.0) * float(np.std(scores, ddof=1)) / math.pi
  if not scale > 0 or np.mean(scores <= 0) > 0.5:
    # Most null targets hold no positive cell at all: a point mass at 0, no Gumbel. The null's
    # empirical tail gives the E-values instead (conservative: at least 1 / (samples + 1)).
    return Null(
      math.nan, math.nan, int(m), int(n), int(scores.size), tuple(np.sort(scores).tolist())
    )
  return Null(float(np.mean(scores)) - EULER * scale, scale, int(m), int(n), int(scores.size))
