"""Slow, obvious float64 references for the soft affine Smith-Waterman kernel (tests only).

Written straight from the paper's Eq. 2-5: a per-cell double loop with -inf boundaries, and a
brute-force enumeration of every local alignment path for tiny sizes.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def smax(values, gamma):
  """max^g(u) = g * log sum exp(u / g), with -inf entries allowed."""
  u = np.asarray(values, np.float64)
  if np.all(np.isneginf(u)):
    return -np.inf
  return gamma * logsumexp(u / gamma)


def sw_reference(sim, go, ge, gamma, include_zero=True):
  """Per-cell loop. Returns (score, D [T1, T2]). go/ge: scalars or [T1, T2]."""
  s = np.asarray(sim, np.float64)
  t1, t2 = s.shape
  go = np.broadcast_to(np.asarray(go, np.float64), s.shape)
  ge = np.broadcast_to(np.asarray(ge, np.float64), s.shape)
  d = np.full((t1 + 1, t2 + 1), -np.inf)
  x = np.full((t1 + 1, t2 + 1), -np.inf)
  y = np.full((t1 + 1, t2 + 1), -np.inf)
  for i in range(1, t1 + 1):
    for j in range(1, t2 + 1):
      o, e = go[i - 1, j - 1], ge[i - 1, j - 1]
      d[i, j] = s[i - 1, j - 1] + smax(
        [0.0, d[i - 1, j - 1], x[i - 1, j - 1], y[i - 1, j - 1]], gamma
      )
      x[i, j] = smax([d[i, j - 1] - o, x[i, j - 1] - e], gamma)
      y[i, j] = smax([d[i - 1, j] - o, x[i - 1, j] - o, y[i - 1, j] - e], gamma)
  cells = list(d[1:, 1:].ravel())
  score = smax(([0.0] if include_zero else []) + cells, gamma)
  return score, d[1:, 1:]


def enumerate_path_scores(sim, go, ge):
  """Hard scores of every local alignment path (ending in a match), by depth-first search.

  A path starts with a match at any cell, then moves: match -> match (i+1, j+1),
  gap-x (i, j+1, pays go), gap-y (i+1, j, pays go); gap-x -> gap-x (ge), gap-y (go), match;
  gap-y -> gap-y (ge), match. It must end in a match.
  """
  s = np.asarray(sim, np.float64)
  t1, t2 = s.shape
  go = np.broadcast_to(np.asarray(go, np.float64), s.shape)
  ge = np.broadcast_to(np.asarray(ge, np.float64), s.shape)
  scores = []

  def walk(state, i, j, acc):
    if state == "D":
      scores.append(acc)
    moves = []
    if state in "DXY" and i + 1 < t1 and j + 1 < t2:
      moves.append(("D", i + 1, j + 1, s[i + 1, j + 1]))
    if state in "DX" and j + 1 < t2:
      moves.append(("X", i, j + 1, -(go if state == "D" else ge)[i, j + 1]))
    if state in "DXY" and i + 1 < t1:
      moves.append(("Y", i + 1, j, -(ge if state == "Y" else go)[i + 1, j]))
    for st, a, b, w in moves:
      walk(st, a, b, acc + w)

  for i in range(t1):
    for j in range(t2):
      walk("D", i, j, s[i, j])
  return np.asarray(scores)
