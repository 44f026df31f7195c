"""What one loop iteration costs on XLA:CPU as a function of the kernels ("thunks") in its body.

Usage (from the repository root)::

  python benchmarks/xla_cpu_executor.py            # a few seconds
  python benchmarks/xla_cpu_executor.py --arrays 2 3 4 6 8 12 --width 64 --batch 1

Why it exists: it isolates the XLA:CPU behaviour that keeps the Smith-Waterman kernel
(`lac_jax.alignment`) above its CPU speed target with XLA's default options (README, "On CPU").
XLA:CPU runs a ``while`` body as a sequence of thunks (one per fused kernel or copy). Its
``ThunkExecutor`` runs them one after the other on the calling thread only if the body has at
most 8 thunks, forms a dependency chain, or touches only buffers of at most 512 bytes; otherwise
it dispatches them as a dependency graph over the thread pool. Those limits are constants in
XLA's ``CpuExecutable`` (no flag or ``DebugOptions`` field in the pinned jaxlib).

Each row is a ``lax.scan`` of ``--steps`` iterations whose body updates ``--arrays`` carried
``[width, batch]`` float32 arrays (each update one fused kernel: an exp and a few multiply-adds)
and emits one scalar per step; so the work grows linearly with the array count, and a jump in
the time per step marks the executor switching strategy. The thunk count is read from the
compiled HLO of the loop body ("in order": at most 8, so run on the calling thread whatever its
dependency graph; bodies of more may still be a chain, these are not). Reports the median time
per iteration over ``--rounds`` rounds (``--calls`` calls each, after a warm-up call) and its
ratio to the first row.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)

# HLO instructions in a loop body that do not become thunks of their own.
_NO_THUNK = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast"}
# XLA:CPU runs a body of at most this many thunks in order on the calling thread.
SEQUENTIAL_THUNKS = 8


def body_thunks(hlo_text: str) -> int:
  """Thunks in the (single) while body of an optimized HLO module."""
  bodies = re.findall(r"body=%?([\w.\-]+)", hlo_text)
  if len(bodies) != 1:
    raise ValueError(f"expected one while loop in the compiled HLO, found {len(bodies)}")
  match = re.search(
    r"^%?" + re.escape(bodies[0]) + r" .*?\{\n(.*?)\n\}", hlo_text, re.MULTILINE | re.DOTALL
  )
  if match is None:
    raise ValueError(f"loop body {bodies[0]} not found in the compiled HLO")
  ops = re.findall(r"=\s+\S+\s+([\w\-]+)\(", match.group(1))
  return sum(op not in _NO_THUNK for op in ops)


def make_loop(arrays: int, steps: int):
  """A jitted scan whose body updates ``arrays`` carried arrays, one fused kernel each."""

  def loop(carry):
    def step(c, _):
      new = tuple(jnp.exp(-jnp.abs(a)) * 0.5 + c[(i + 1) % arrays] * 0.25 for i, a in enumerate(c))
      return new, new[0][0, 0]

    return jax.lax.scan(step, carry, None, length=steps)[1]

  return jax.jit(loop)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--arrays", type=int, nargs="+", default=[2, 3, 4, 6, 8, 12])
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument(
    "--steps",
    type=int,
    default=254,
    help="loop iterations (254: forward + backward steps of one T=64 pair)",
  )
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--calls", type=int, default=30)
  args = parser.parse_args()
  if any(n < 1 for n in args.arrays) or min(args.width, args.batch, args.steps) < 1:
    parser.error("--arrays, --width, --batch and --steps must all be >= 1")

  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform}; body arrays [{args.width}, "
    f"{args.batch}] float32, {args.steps} iterations; median of {args.rounds} rounds"
  )
  print(f"{'arrays':>6} {'thunks':>6} {'in order':>8} | {'us / iteration':>14} | vs first row")
  first, rows = None, []
  for n in args.arrays:
    fn = make_loop(n, args.steps)
    carry = tuple(jnp.full((args.width, args.batch), 0.1 * (i + 1)) for i in range(n))
    thunks = body_thunks(fn.lower(carry).compile().as_text())
    jax.block_until_ready(fn(carry))
    times = []
    for _ in range(args.rounds):
      t0 = time.perf_counter()
      for _ in range(args.calls):
        out = fn(carry)
      jax.block_until_ready(out)
      times.append((time.perf_counter() - t0) / args.calls / args.steps * 1e6)
    per_step = statistics.median(times)
    first = first or per_step
    in_order = "yes" if thunks <= SEQUENTIAL_THUNKS else "no"
    print(
      f"{n:>6} {thunks:>6} {in_order:>8} | {per_step:>14.2f} | {per_step / first:>10.2f}x",
      flush=True,
    )
    rows.append(
      {"arrays": n, "thunks": thunks, "in_order": in_order == "yes", "us_per_iteration": per_step}
    )
  results.write("xla_cpu_executor", vars(args), rows)


if __name__ == "__main__":
  main()
