"""Soft-DTW value + gradient: `lac_jax.alignment.soft_dtw` against two baselines, same run.

Usage (from the repository root)::

  python benchmarks/soft_dtw.py                      # T 32 64, B 1 64
  python benchmarks/soft_dtw.py --sizes 32 --batches 8

Each call takes two batches of embedding sequences ``[B, T, E]`` (E = 128, unit vectors), forms
the squared-distance cost matrices and returns the soft-DTW values' sum and its gradient w.r.t.
the first sequences (as LAV's loss does). Timed (median per call after a warm-up, jitted):

* ours (``backward='custom'``: stored weights + adjoint reverse scan) and ours with
  ``backward='autodiff'``;
* baseline: a straightforward per-pair anti-diagonal scan (three rolled arrays per step, autodiff
  backward), vmapped over the pairs;
* ott-jax's ``costs.SoftDTW`` vmapped over the pairs, when ott-jax imports (it is not a
  dependency: ``pip install --no-deps ott-jax==0.6.0 jaxopt lineax equinox jaxtyping
  wadler_lindig`` into a scratch directory on ``PYTHONPATH``).

All give the same values (checked before timing). Writes ``benchmarks/results/soft_dtw.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax.alignment import soft_dtw  # pylint: disable=g-import-not-at-top

GAMMA = 0.1


def sq_cost(x, y):
  """Squared distances as ott-jax's ``SqEuclidean.all_pairs`` forms them (one matmul)."""
  xy = jnp.einsum("...ie,...je->...ij", x, y)
  return (jnp.sum(x * x, -1)[..., :, None] + jnp.sum(y * y, -1)[..., None, :]) - 2 * xy


def baseline_pair(cost, gamma):
  """Soft-DTW of one ``[T1, T2]`` cost: anti-diagonal scan over a skewed copy of the matrix."""
  t1, t2 = cost.shape
  big = jnp.asarray(1e30, cost.dtype)
  # Diagonal k of the skewed matrix holds C(i, k - i) at row i (+inf where outside).
  i = jnp.arange(t1)[None, :]
  k = jnp.arange(t1 + t2 - 1)[:, None]
  j = k - i
  diags = jnp.where((j >= 0) & (j < t2), cost[i, jnp.clip(j, 0, t2 - 1)], big)  # [K, T1]

  def step(carry, xs):
    r2, r1 = carry  # R of diagonals k-2 and k-1, one slot per row i
    c, k = xs
    origin = jnp.where(k == 0, 0.0, big).astype(cost.dtype)[None]  # R(-1, -1) = 0
    diag = jnp.concatenate([origin, r2[:-1]])  # R(i-1, j-1)
    up = jnp.concatenate([big[None], r1[:-1]])  # R(i-1, j)
    soft = -gamma * jax.nn.logsumexp(-jnp.stack([diag, up, r1]) / gamma, axis=0)
    r = jnp.minimum(c + soft, big)
    return (r1, r), None

  start = jnp.full((t1,), big, cost.dtype)
  (_, last), _ = jax.lax.scan(step, (start, start), (diags, jnp.arange(t1 + t2 - 1)))
  return last[t1 - 1]


def make_fns(have_ott: bool):
  def ours(x, y, backward):
    return soft_dtw(sq_cost(x, y), GAMMA, backward=backward).sum()

  fns = {
    "ours": lambda x, y: ours(x, y, "custom"),
    "ours_autodiff": lambda x, y: ours(x, y, "autodiff"),
    "baseline": lambda x, y: jax.vmap(lambda c: baseline_pair(c, GAMMA))(sq_cost(x, y)).sum(),
  }
  if have_ott:
    from ott.geometry import costs  # pylint: disable=g-import-not-at-top

    cost_fn = costs.SoftDTW(GAMMA)
    fns["ott"] = lambda x, y: jax.vmap(cost_fn)(x, y).sum()
  return {k: jax.jit(jax.value_and_grad(f)) for k, f in fns.items()}


def time_fn(fn, x, y, rounds: int) -> tuple[float, float]:
  """(median seconds per call, compile + first call seconds)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn(x, y))
  first = time.perf_counter() - t0
  times = []
  for _ in range(rounds):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(x, y))
    times.append(time.perf_counter() - t0)
  return statistics.median(times), first


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
  parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--rounds", type=int, default=10)
  args = parser.parse_args()
  try:
    import ott  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import

    have_ott = True
  except ImportError as e:
    have_ott = False
    print(f"ott-jax not importable ({e}): its column is skipped")
  fns = make_fns(have_ott)
  print(
    f"jax {jax.__version__} on {jax.devices()[0].device_kind}; float32, gamma {GAMMA}, "
    f"E = {args.dim}; value + gradient w.r.t. x, median of {args.rounds} calls"
  )
  names = list(fns)
  header = (
    f"{'T':>4} {'B':>4} | "
    + " ".join(f"{n + ' ms':>16}" for n in names)
    + " | "
    + " ".join(f"{'vs ' + n:>12}" for n in names[2:])
  )
  print(header)
  print("-" * len(header))
  rng = np.random.default_rng(0)
  rows = []
  for t in args.sizes:
    for b in args.batches:
      x = rng.normal(size=(b, t, args.dim))
      y = rng.normal(size=(b, t + t // 4, args.dim))
      x = jnp.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), jnp.float32)
      y = jnp.asarray(y / np.linalg.norm(y, axis=-1, keepdims=True), jnp.float32)
      values = {n: float(fn(x, y)[0]) for n, fn in fns.items()}
      for v in values.values():
        assert abs(v - values["ours"]) <= 1e-3 * max(1.0, abs(values["ours"])), values
      timing = {n: time_fn(fn, x, y, args.rounds) for n, fn in fns.items()}
      row = {
        "T1": t,
        "T2": t + t // 4,
        "B": b,
        **{f"{n}_s": timing[n][0] for n in names},
        **{f"{n}_first_call_s": timing[n][1] for n in names},
      }
      rows.append(row)
      ratios = " ".join(f"{timing[n][0] / timing['ours'][0]:>11.1f}x" for n in names[2:])
      print(
        f"{t:>4} {b:>4} | "
        + " ".join(f"{timing[n][0] * 1e3:>16.2f}" for n in names)
        + f" | {ratios}",
        flush=True,
      )
  results.write("soft_dtw", {**vars(args), "gamma": GAMMA, "ott": have_ott}, rows)


if __name__ == "__main__":
  main()
