"""Tests of the soft affine Smith-Waterman kernel against slow float64 references."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lac_jax import alignment
from lac_jax.alignment import smith_waterman
from lac_jax.alignment import smith_waterman_path, soft_smith_waterman
from sw_reference import enumerate_path_scores, smax, sw_reference

BACKWARDS = ("custom", "autodiff")


def _rand_case(rng, t1, t2, per_cell):
  s = rng.normal(size=(t1, t2))
  if per_cell:
    go = rng.uniform(0.2, 1.5, size=(t1, t2))
    ge = rng.uniform(0.05, 1.0, size=(t1, t2))
  else:
    go, ge = rng.uniform(0.2, 1.5), rng.uniform(0.05, 1.0)
  return s, go, ge


def test_reference_equals_brute_force_path_enumeration():
  rng = np.random.default_rng(0)
  for (t1, t2), per_cell, gamma in itertools.product(
    [(1, 1), (2, 3), (3, 3), (4, 2), (3, 4)], [False, True], [1.0, 0.7, 0.3]
  ):
    s, go, ge = _rand_case(rng, t1, t2, per_cell)
    paths = enumerate_path_scores(s, go, ge)
    ref, _ = sw_reference(s, go, ge, gamma, include_zero=True)
    np.testing.assert_allclose(ref, smax([0.0] + list(paths), gamma), rtol=1e-12)
    ref_nz, _ = sw_reference(s, go, ge, gamma, include_zero=False)
    np.testing.assert_allclose(ref_nz, smax(list(paths), gamma), rtol=1e-12)


@functools.lru_cache(maxsize=None)
def _jitted(include_zero=True, backward="custom", num_segments=None):
  """One compiled kernel per static setting; gamma and penalties are traced arguments."""
  return jax.jit(
    lambda s, go, ge, gamma: soft_smith_waterman(
      s, go, ge, gamma, include_zero=include_zero, backward=backward, num_segments=num_segments
    )
  )


@pytest.mark.parametrize("backward", BACKWARDS)
def test_values_and_table_match_reference_float64(backward):
  rng = np.random.default_rng(1)
  shapes = [(1, 1), (1, 5), (6, 1), (3, 4), (7, 4), (4, 9), (12, 10)]
  with jax.enable_x64(True):
    for n, ((t1, t2), nseg) in enumerate(itertools.product(shapes, [1, 3])):
      # Alternate the 0 term and the penalty kind so every combination is covered.
      zero, per_cell = n % 2 == 0, (n // 2) % 2 == 0
      s, go, ge = _rand_case(rng, t1, t2, per_cell)
      for gamma in (1.0, 0.8, 0.3):
        score, d = _jitted(zero, backward, nseg)(
          jnp.asarray(s), jnp.asarray(go), jnp.asarray(ge), gamma
        )
        ref, ref_d = sw_reference(s, go, ge, gamma, include_zero=zero)
        assert score.dtype == jnp.float64
        np.testing.assert_allclose(score, ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(d, ref_d, rtol=1e-10, atol=1e-10)


def test_values_match_reference_float32():
  rng = np.random.default_rng(2)
  for (t1, t2), per_cell in itertools.product([(8, 8), (16, 11), (32, 32)], [False, True]):
    s, go, ge = _rand_case(rng, t1, t2, per_cell)
    score, d = soft_smith_waterman(
      jnp.asarray(s, jnp.float32),
      jnp.float32(go),
      jnp.float32(ge) if not per_cell else ge.astype(np.float32),
      0.8,
    )
    assert score.dtype == jnp.float32 and d.dtype == jnp.float32
    ref, ref_d = sw_reference(s, go, ge, 0.8)
    np.testing.assert_allclose(score, ref, rtol=1e-5)
    np.testing.assert_allclose(d, ref_d, rtol=1e-5, atol=1e-5 * np.abs(ref_d).max())


def _central_fd(f, x, eps=1e-6):
  x = np.array(x, np.float64)
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    xp, xm = x.copy(), x.copy()
    xp[idx] += eps
    xm[idx] -= eps
    g[idx] = (f(xp) - f(xm)) / (2 * eps)
  return g


@pytest.mark.parametrize("backward", BACKWARDS)
@pytest.mark.parametrize("include_zero", [True, False])
def test_gradients_match_finite_differences(backward, include_zero):
  rng = np.random.default_rng(3)
  t1, t2 = 4, 5
  s, go, ge = _rand_case(rng, t1, t2, per_cell=True)
  s = np.stack([s, rng.normal(size=(t1, t2))])  # two pairs sharing per-cell penalties
  with jax.enable_x64(True):

    def f(s_, go_, ge_, gamma):
      score, d = soft_smith_waterman(
        s_, go_, ge_, gamma, include_zero=include_zero, backward=backward, num_segments=3
      )
      # A weighted sum of score and D exercises both outputs' cotangents.
      return score.sum() + 0.1 * jnp.sum(jnp.sin(d))

    f_jit = jax.jit(f)
    grad = jax.jit(jax.grad(f, argnums=(0, 1, 2)))
    for gamma in (1.0, 0.8, 0.4):
      grads = grad(jnp.asarray(s), jnp.asarray(go), jnp.asarray(ge), gamma)
      fn = lambda a, b, c: float(f_jit(jnp.asarray(a), jnp.asarray(b), jnp.asarray(c), gamma))
      fds = (
        _central_fd(lambda x: fn(x, go, ge), s),
        _central_fd(lambda x: fn(s, x, ge), go),
        _central_fd(lambda x: fn(s, go, x), ge),
      )
      for g, fd in zip(grads, fds):
        np.testing.assert_allclose(g, fd, atol=1e-7, rtol=1e-6)


def test_scalar_penalty_gradients_match_finite_differences():
  rng = np.random.default_rng(4)
  s = rng.normal(size=(3, 5, 4))
  with jax.enable_x64(True):
    for backward in BACKWARDS:
      f = jax.jit(
        lambda go, ge: soft_smith_waterman(jnp.asarray(s), go, ge, 0.8, backward=backward)[0].sum()
      )
      g_go, g_ge = jax.jit(jax.grad(f, argnums=(0, 1)))(0.7, 0.3)
      fd_go = (f(0.7 + 1e-6, 0.3) - f(0.7 - 1e-6, 0.3)) / 2e-6
      fd_ge = (f(0.7, 0.3 + 1e-6) - f(0.7, 0.3 - 1e-6)) / 2e-6
      np.testing.assert_allclose([g_go, g_ge], [fd_go, fd_ge], atol=1e-7, rtol=1e-6)
      # Per-pair penalties [B, 1, 1] get one gradient per pair.
      go_pp = jnp.full((3, 1, 1), 0.7)
      g_pp = jax.jit(
        jax.grad(
          lambda go: soft_smith_waterman(jnp.asarray(s), go, 0.3, 0.8, backward=backward)[0].sum()
        )
      )(go_pp)
      assert g_pp.shape == (3, 1, 1)
      np.testing.assert_allclose(g_pp.sum(), g_go, rtol=1e-10)


@pytest.mark.parametrize("backward", BACKWARDS)
def test_gamma_gradient_matches_finite_differences(backward):
  # The kernel scales sim by 1 / gamma inside each step, so its custom backward returns
  # gamma's cotangent explicitly; checked with lengths and per-cell penalties too.
  rng = np.random.default_rng(7)
  s = rng.normal(size=(3, 6, 5))
  go = rng.uniform(0.3, 1.2, size=(6, 5))
  lengths = np.array([[6, 5], [3, 4], [5, 2]])
  with jax.enable_x64(True):
    for pen, lens in ((0.6, None), (go, lengths)):

      def f(gamma, pen=pen, lens=lens):
        score, d = soft_smith_waterman(
          jnp.asarray(s), pen, 0.25, gamma, lengths=lens, backward=backward, num_segments=2
        )
        return score.sum() + 0.1 * jnp.sum(jnp.sin(d))

      g = jax.jit(jax.grad(f))(0.7)
      fd = (f(0.7 + 1e-6) - f(0.7 - 1e-6)) / 2e-6
      np.testing.assert_allclose(g, fd, atol=1e-7, rtol=1e-6)


def test_custom_and_autodiff_backward_agree_float32():
  rng = np.random.default_rng(5)
  s = jnp.asarray(rng.normal(size=(6, 20, 17)), jnp.float32)
  go = jnp.asarray(rng.uniform(0.5, 1.5, size=(20, 17)), jnp.float32)
  ge = jnp.asarray(rng.uniform(0.1, 0.5, size=(20, 17)), jnp.float32)

  def grads(backward):
    f = lambda s, go, ge: soft_smith_waterman(s, go, ge, 0.8, backward=backward)[0].sum()
    return jax.grad(f, argnums=(0, 1, 2))(s, go, ge)

  for a, b in zip(grads("custom"), grads("autodiff")):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_batched_equals_looped_with_leading_dims():
  rng = np.random.default_rng(6)
  s = jnp.asarray(rng.normal(size=(2, 3, 7, 6)))
  go = jnp.asarray(rng.uniform(0.5, 1.5, size=(3, 7, 6)))  # broadcast over the first dim
  score, d = soft_smith_waterman(s, go, 0.25, 0.8)
  assert score.shape == (2, 3) and d.shape == (2, 3, 7, 6)
  for a, b in np.ndindex(2, 3):
    sc1, d1 = soft_smith_waterman(s[a, b], go[b], 0.25, 0.8)
    np.testing.assert_allclose(score[a, b], sc1, rtol=1e-6)
    np.testing.assert_allclose(d[a, b], d1, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backward", BACKWARDS)
def test_lengths_equal_cropping(backward):
  rng = np.random.default_rng(7)
  t1, t2 = 9, 8
  s = rng.normal(size=(4, t1, t2))
  go = rng.uniform(0.5, 1.5, size=(t1, t2))
  lengths = np.array([[9, 8], [5, 8], [9, 3], [1, 2]])

  @jax.jit
  def value_and_grad(s, go, lengths=None):
    """``(score, D, d score.sum() / d s)``, one compilation per shape."""
    f = lambda s: soft_smith_waterman(s, go, 0.3, 0.7, lengths=lengths, backward=backward)
    (score, d), vjp = jax.vjp(f, s)
    return score, d, vjp((jnp.ones_like(score), jnp.zeros_like(d)))[0]

  with jax.enable_x64(True):
    score, d, grad = value_and_grad(jnp.asarray(s), go, jnp.asarray(lengths))
    for b, (l1, l2) in enumerate(lengths):
      sc, dc, gc = value_and_grad(jnp.asarray(s[b, :l1, :l2]), go[:l1, :l2])
      np.testing.assert_allclose(score[b], sc, rtol=1e-12)
      np.testing.assert_allclose(d[b, :l1, :l2], dc, rtol=1e-12)
      outside = np.ones((t1, t2), bool)
      outside[:l1, :l2] = False
      assert np.all(np.asarray(d[b])[outside] == alignment.PAD_VALUE)
      np.testing.assert_allclose(grad[b, :l1, :l2], gc, rtol=1e-10, atol=1e-14)
      assert np.all(np.asarray(grad[b])[outside] == 0)


def test_small_gamma_approaches_hard_path_score():
  rng = np.random.default_rng(8)
  for t1, t2 in [(6, 7), (10, 10)]:
    s = rng.normal(size=(t1, t2))
    path, hard = smith_waterman_path(s, 0.6, 0.2)
    with jax.enable_x64(True):
      soft, _ = soft_smith_waterman(jnp.asarray(s), 0.6, 0.2, 1e-3)
    # max^g overestimates max by at most g * log(number of alignments).
    assert hard - 1e-9 <= float(soft) <= hard + 1e-3 * (t1 + t2) * np.log(4) * t1
    # The path's own score equals the hard score.
    assert len(path) > 0
    assert np.all(np.diff(path[:, 0]) >= 0) and np.all(np.diff(path[:, 1]) >= 0)
    assert np.all(np.diff(path.sum(1)) > 0)


def _hard_path_cell_loop(s, go, ge):
  """The hard recursion cell by cell, with the same traceback rule (reference for the
  anti-diagonal fill of `smith_waterman_path`)."""
  t1, t2 = s.shape
  go, ge = np.broadcast_to(go, s.shape), np.broadcast_to(ge, s.shape)
  d, x, y = (np.full((t1 + 1, t2 + 1), -np.inf) for _ in range(3))
  for i in range(1, t1 + 1):
    for j in range(1, t2 + 1):
      d[i, j] = s[i - 1, j - 1] + max(0.0, d[i - 1, j - 1], x[i - 1, j - 1], y[i - 1, j - 1])
      x[i, j] = max(d[i, j - 1] - go[i - 1, j - 1], x[i, j - 1] - ge[i - 1, j - 1])
      y[i, j] = max(
        d[i - 1, j] - go[i - 1, j - 1],
        x[i - 1, j] - go[i - 1, j - 1],
        y[i - 1, j] - ge[i - 1, j - 1],
      )
  best = np.max(d[1:, 1:])
  if best <= 0:
    return np.zeros((0, 2), np.int64), 0.0
  i, j = (int(k) + 1 for k in np.unravel_index(np.argmax(d[1:, 1:]), (t1, t2)))
  state, path = "D", []
  while True:
    if state == "D":
      path.append((i - 1, j - 1))
      choice = int(np.argmax((0.0, d[i - 1, j - 1], x[i - 1, j - 1], y[i - 1, j - 1])))
      if choice == 0:
        break
      state, i, j = "DXY"[choice - 1], i - 1, j - 1
    elif state == "X":
      state = "DX"[int(np.argmax((d[i, j - 1] - go[i - 1, j - 1], x[i, j - 1] - ge[i - 1, j - 1])))]
      j -= 1
    else:
      state = "DXY"[
        int(
          np.argmax(
            (
              d[i - 1, j] - go[i - 1, j - 1],
              x[i - 1, j] - go[i - 1, j - 1],
              y[i - 1, j] - ge[i - 1, j - 1],
            )
          )
        )
      ]
      i -= 1
  return np.asarray(path[::-1], np.int64), float(best)


def test_hard_path_equals_cell_by_cell_recursion():
  rng = np.random.default_rng(11)
  for t1, t2 in [(1, 1), (1, 5), (7, 3), (12, 17), (25, 25)]:
    s = rng.normal(size=(t1, t2)) + 0.2
    cases = [
      (s, rng.uniform(0, 1, (t1, t2)), rng.uniform(0, 0.5, (t1, t2))),
      (s, 0.5, 0.1),
      (np.round(s), 0.5, 0.5),
      (-np.abs(s), 1.0, 1.0),
    ]  # ties, empty
    for sim, go, ge in cases:
      path, score = smith_waterman_path(sim, go, ge)
      want_path, want_score = _hard_path_cell_loop(sim, go, ge)
      np.testing.assert_array_equal(path, want_path)
      assert score == want_score


def test_hard_path_score_recomputed_from_path():
  rng = np.random.default_rng(9)
  s = rng.normal(size=(8, 9)) + 0.3
  go, ge = 0.8, 0.1
  path, score = smith_waterman_path(s, go, ge)
  total = s[path[0][0], path[0][1]]
  for (i0, j0), (i1, j1) in zip(path[:-1], path[1:]):
    di, dj = i1 - i0, j1 - j0
    if di == 1 and dj == 1:
      total += s[i1, j1]
      continue
    # A gap: first the horizontal part (Ix), then the vertical part (Iy), then a match.
    gx, gy = dj - 1, di - 1
    cost = 0.0
    if gx:
      cost += go + (gx - 1) * ge
    if gy:
      cost += go + (gy - 1) * ge  # entered from Ix or from D: both pay go
    total += s[i1, j1] - cost
  np.testing.assert_allclose(total, score, rtol=1e-12)
  paths = enumerate_path_scores(s[:4, :4], go, ge)
  _, small = smith_waterman_path(s[:4, :4], go, ge)
  np.testing.assert_allclose(small, max(0.0, paths.max()), rtol=1e-12)


def test_stress_inputs_stay_finite():
  rng = np.random.default_rng(10)
  cases = [
    rng.normal(size=(2, 16, 16)) * 1e4,
    -np.abs(rng.normal(size=(2, 16, 16))) * 1e4,
    np.ones((2, 16, 16)) * 1e4,  # identical rows
    np.zeros((2, 16, 16)),
  ]
  for s in cases:
    for gamma in (0.01, 0.8, 10.0):
      for backward in BACKWARDS:
        for dtype in (jnp.float32,):
          x = jnp.asarray(s, dtype)
          f = lambda x, go: soft_smith_waterman(
            x, go, 0.5, gamma, backward=backward, lengths=jnp.array([[16, 16], [9, 4]])
          )[0].sum()
          val, (gs, gg) = jax.value_and_grad(f, argnums=(0, 1))(x, jnp.full((16, 16), 1.0, dtype))
          assert np.isfinite(val), (gamma, backward)
          assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gg)), (gamma, backward)


def test_jit_and_vmap_compatible():
  rng = np.random.default_rng(11)
  s = jnp.asarray(rng.normal(size=(3, 6, 5)), jnp.float32)
  f = jax.jit(lambda s: soft_smith_waterman(s, 0.5, 0.1, 0.8)[0])
  v = jax.vmap(lambda x: soft_smith_waterman(x, 0.5, 0.1, 0.8)[0])
  np.testing.assert_allclose(f(s), v(s), rtol=1e-6)
  g = jax.jit(jax.vmap(jax.grad(lambda x: soft_smith_waterman(x, 0.5, 0.1, 0.8)[0])))(s)
  g2 = jax.grad(lambda x: soft_smith_waterman(x, 0.5, 0.1, 0.8)[0].sum())(s)
  np.testing.assert_allclose(g, g2, rtol=1e-5, atol=1e-7)


def test_bad_inputs_raise_clear_errors():
  s = jnp.zeros((4, 5))
  with pytest.raises(ValueError, match="gamma"):
    soft_smith_waterman(s, 1.0, 1.0, 0.0)
  with pytest.raises(ValueError, match="gamma"):
    soft_smith_waterman(s, 1.0, 1.0, -1.0)
  with pytest.raises(ValueError, match="gap_open"):
    soft_smith_waterman(s, jnp.ones((3, 5)), 1.0, 1.0)
  with pytest.raises(ValueError, match="gap_extend"):
    soft_smith_waterman(s, 1.0, jnp.ones((2, 4, 5)), 1.0)
  with pytest.raises(ValueError, match="lengths"):
    soft_smith_waterman(jnp.zeros((2, 4, 5)), 1.0, 1.0, 1.0, lengths=jnp.ones((2, 3), jnp.int32))
  with pytest.raises(ValueError, match="lengths"):
    soft_smith_waterman(s, 1.0, 1.0, 1.0, lengths=jnp.ones((2,), jnp.float32))
  with pytest.raises(ValueError, match=r"\[\.\.\., T1, T2\]"):
    soft_smith_waterman(jnp.zeros((4,)), 1.0, 1.0, 1.0)
  with pytest.raises(ValueError, match="backward"):
    soft_smith_waterman(s, 1.0, 1.0, 1.0, backward="magic")
  with pytest.raises(ValueError, match="sim"):
    smith_waterman_path(np.zeros((2, 3, 4)), 1.0, 1.0)


def test_float32_log1p_polynomial_is_as_accurate_as_log1p():
  """The kernel's float32 log(1 + e), e in [0, 1], is a polynomial: within float32 rounding."""
  e = np.concatenate([np.linspace(0.0, 1.0, 20001), [1e-30, 1e-8, 1e-4, 0.5 - 1e-7]])
  exact = np.log1p(e)
  ours = np.asarray(smith_waterman._log1p_unit(jnp.asarray(e, jnp.float32)), np.float64)
  xla = np.asarray(jnp.log1p(jnp.asarray(e, jnp.float32)), np.float64)
  assert np.abs(ours - exact).max() < 2e-7
  assert np.abs(ours - exact).max() < 4 * np.abs(xla - exact).max()
  # Relative accuracy near 0 (the common case: terms far apart).
  small = e > 0
  assert (np.abs(ours - exact)[small] / exact[small]).max() < 1e-6
  with jax.enable_x64(True):  # float64 keeps the exact log1p
    e64 = jnp.asarray(e, jnp.float64)
    np.testing.assert_array_equal(smith_waterman._log1p_unit(e64), jnp.log1p(e64))
