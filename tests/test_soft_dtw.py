"""Tests for lac_jax.alignment.soft_dtw against a float64 per-cell reference (Cuturi and Blondel
2017, written from the recursion) and central finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from lac_jax.alignment import soft_dtw


def reference(cost, gamma):
  """R(T1, T2) by the cell-by-cell recursion, +inf borders, R(0, 0) = 0 (float64)."""
  t1, t2 = cost.shape
  r = np.full((t1 + 1, t2 + 1), np.inf)
  r[0, 0] = 0.0
  for i in range(1, t1 + 1):
    for j in range(1, t2 + 1):
      prev = np.array([r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]])
      r[i, j] = cost[i - 1, j - 1] - gamma * logsumexp(-prev / gamma)
  return r[t1, t2]


def dtw(cost):
  """Hard DTW cost (the gamma -> 0 limit)."""
  t1, t2 = cost.shape
  r = np.full((t1 + 1, t2 + 1), np.inf)
  r[0, 0] = 0.0
  for i in range(1, t1 + 1):
    for j in range(1, t2 + 1):
      r[i, j] = cost[i - 1, j - 1] + min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1])
  return r[t1, t2]


SHAPES = [(1, 1), (1, 5), (6, 1), (4, 9), (11, 7), (16, 16)]


@pytest.mark.parametrize("backward", ["custom", "autodiff"])
def test_values_and_gradients_match_the_reference_float64(backward):
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    for t1, t2 in SHAPES:
      cost = rng.uniform(0.0, 3.0, size=(2, t1, t2))
      value = soft_dtw(jnp.asarray(cost), 0.4, backward=backward)
      assert value.dtype == jnp.float64
      np.testing.assert_allclose(value, [reference(c, 0.4) for c in cost], rtol=1e-10)
      f = lambda c: soft_dtw(c, 0.4, backward=backward).sum()  # pylint: disable=cell-var-from-loop
      grad = np.asarray(jax.grad(f)(jnp.asarray(cost)))
      for _ in range(3):
        v = rng.normal(size=cost.shape)
        h = 1e-5
        fd = (reference(cost[0] + h * v[0], 0.4) - reference(cost[0] - h * v[0], 0.4)) / (2 * h)
        np.testing.assert_allclose(np.sum(grad[0] * v[0]), fd, rtol=1e-7, atol=1e-9)
      # dR/dC is the expected alignment: entries in [0, 1], both ends on every path.
      assert grad.min() >= 0 and grad.max() <= 1 + 1e-12
      np.testing.assert_allclose(grad[:, 0, 0], 1.0, rtol=1e-12)
      np.testing.assert_allclose(grad[:, -1, -1], 1.0, rtol=1e-12)


def test_custom_backward_equals_autodiff_with_lengths():
  rng = np.random.default_rng(1)
  cost = jnp.asarray(rng.uniform(0, 2, size=(5, 9, 12)), jnp.float32)
  lengths = jnp.array([[9, 12], [3, 4], [1, 1], [9, 2], [7, 11]])
  grads = [
    jax.grad(lambda c, b=b: soft_dtw(c, 0.7, lengths=lengths, backward=b).sum())(cost)
    for b in ("custom", "autodiff")
  ]
  np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)
  with jax.enable_x64(True):
    cost64 = np.asarray(cost, np.float64)
    value = soft_dtw(jnp.asarray(cost64), 0.7, lengths=lengths)
    want = [reference(cost64[b, :l1, :l2], 0.7) for b, (l1, l2) in enumerate(lengths.tolist())]
    np.testing.assert_allclose(value, want, rtol=1e-10)
    grad = jax.grad(lambda c: soft_dtw(c, 0.7, lengths=lengths).sum())(jnp.asarray(cost64))
  for b, (l1, l2) in enumerate(lengths.tolist()):
    outside = np.ones((9, 12), bool)
    outside[:l1, :l2] = False
    assert np.all(np.asarray(grad[b])[outside] == 0)


def test_batched_equals_looped_and_leading_dims():
  rng = np.random.default_rng(2)
  cost = jnp.asarray(rng.uniform(0, 2, size=(2, 3, 6, 5)), jnp.float32)
  batched = soft_dtw(cost, 0.5)
  assert batched.shape == (2, 3)
  looped = np.array([[float(soft_dtw(cost[i, j], 0.5)) for j in range(3)] for i in range(2)])
  np.testing.assert_allclose(batched, looped, rtol=1e-6)
  for segments in (1, 3, 20):
    np.testing.assert_allclose(soft_dtw(cost, 0.5, num_segments=segments), batched, rtol=1e-6)


def test_small_gamma_tends_to_dtw_and_nothing_overflows():
  rng = np.random.default_rng(3)
  cost = rng.uniform(0, 1, size=(7, 9))
  with jax.enable_x64(True):
    np.testing.assert_allclose(soft_dtw(jnp.asarray(cost), 1e-4), dtw(cost), atol=1e-3)
  for scale, gamma in ((1e6, 1e-3), (1.0, 1e-6), (1e-6, 10.0)):
    c = jnp.asarray(cost * scale, jnp.float32)
    value, grad = jax.value_and_grad(lambda x, g=gamma: soft_dtw(x, g))(c)
    assert np.isfinite(float(value)) and bool(jnp.all(jnp.isfinite(grad))), (scale, gamma)


def test_bad_arguments():
  cost = jnp.zeros((2, 3, 4))
  with pytest.raises(ValueError, match="gamma"):
    soft_dtw(cost, 0.0)
  with pytest.raises(ValueError, match="backward"):
    soft_dtw(cost, 1.0, backward="numeric")
  with pytest.raises(ValueError, match=r"\[\.\.\., T1, T2\]"):
    soft_dtw(jnp.zeros(3), 1.0)
  with pytest.raises(ValueError, match="lengths must be"):
    soft_dtw(cost, 1.0, lengths=jnp.array([[3, 4], [0, 2]]))
  with pytest.raises(ValueError, match=r"lengths must have shape \(2, 2\)"):
    soft_dtw(cost, 1.0, lengths=jnp.array([3, 4]))
