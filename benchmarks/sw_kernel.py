"""Times the soft Smith-Waterman kernel (value + gradient w.r.t. sim) against a baseline.

Baseline, measured in the same run: a straightforward differentiable SW, as the existing JAX
codes write it (cf. SMURF's sw_affine): one pair per call, an anti-diagonal scan over full-width
diagonals (rotated with a pad + reshape, no gather), the states stacked and reduced with
`jax.nn.logsumexp`, `jax.vmap` over pairs, `jax.grad` through the scan.

    python benchmarks/sw_kernel.py                 # the README table
    python benchmarks/sw_kernel.py --sizes 64 --batches 64 --rounds 30
    python benchmarks/sw_kernel.py --skip-baseline --cpu-loops both     # no slow baseline

Reports the median time of one call (after warm-up), the compile time, and the speed-up
ratio baseline / ours. Then (``--cpu-loops both``, the default on CPU) it times our kernel
without and with the `lac_jax.cpu_loops` option in alternating child processes (XLA reads its
options once per process) and prints both with their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from lac_jax import cpu_loops  # noqa: E402  (before JAX starts: it may set XLA_FLAGS)

if any(
  a == "--cpu-loops=on" or (a == "--cpu-loops" and sys.argv[i + 1 : i + 2] == ["on"])
  for i, a in enumerate(sys.argv)
):
  cpu_loops.enable()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lac_jax.alignment import soft_smith_waterman  # noqa: E402
import results  # noqa: E402  (benchmarks/results.py)

NEG = -1e30


def baseline_sw(sim, go, ge, gamma):
  """One pair ``[T1, T2]``: plain anti-diagonal scan, states stacked, logsumexp, autodiff."""
  t1, t2 = sim.shape
  k = t1 + t2 - 1

  def rotate(x, fill):  # [T1, T2] -> [K, T1]: row k holds anti-diagonal i + j = k
    y = jnp.pad(x, ((0, 0), (0, t1)), constant_values=fill).reshape(-1)[: t1 * k]
    return y.reshape(t1, k).T

  valid = rotate(jnp.ones(sim.shape, bool), False)
  s_rot = rotate(sim, NEG)
  go_rot = rotate(jnp.broadcast_to(go, sim.shape), 0.0)
  ge_rot = rotate(jnp.broadcast_to(ge, sim.shape), 0.0)
  smax = lambda *u: gamma * jax.nn.logsumexp(jnp.stack(u) / gamma, axis=0)
  shift = lambda x, fill: jnp.concatenate([jnp.full((1,), fill, x.dtype), x[:-1]])

  def step(carry, xs):
    (d1, x1, y1), (d2, x2, y2) = carry
    s, o, e, m = xs
    d = s + smax(jnp.zeros_like(s), shift(d2, NEG), shift(x2, NEG), shift(y2, NEG))
    x = smax(d1 - o, x1 - e)
    y = smax(shift(d1, NEG) - o, shift(x1, NEG) - o, shift(y1, NEG) - e)
    d, x, y = (jnp.where(m, v, NEG) for v in (d, x, y))
    return ((d, x, y), (d1, x1, y1)), d

  init = tuple(jnp.full((t1,), NEG, sim.dtype) for _ in range(3))
  _, d = jax.lax.scan(step, (init, init), (s_rot, go_rot, ge_rot, valid))
  return smax(jnp.zeros(()), *d.reshape(-1))


def make_fns(per_cell: bool, t: int):
  go = jnp.full((t, t), 1.0) if per_cell else jnp.float32(1.0)
  ge = jnp.full((t, t), 0.5) if per_cell else jnp.float32(0.5)
  ours = jax.jit(jax.value_and_grad(lambda s: soft_smith_waterman(s, go, ge, 0.8)[0].sum()))
  ours_ad = jax.jit(
    jax.value_and_grad(lambda s: soft_smith_waterman(s, go, ge, 0.8, backward="autodiff")[0].sum())
  )
  base = jax.jit(
    jax.value_and_grad(lambda s: jax.vmap(lambda x: baseline_sw(x, go, ge, 0.8))(s).sum())
  )
  return {"ours": ours, "ours-autodiff": ours_ad, "baseline": base}


def time_fn(fn, x, rounds: int, calls: int):
  t0 = time.perf_counter()
  compiled = fn.lower(x).compile()
  compile_s = time.perf_counter() - t0
  for _ in range(2):
    jax.block_until_ready(compiled(x))
  meds = []
  for _ in range(rounds):
    ts = []
    for _ in range(calls):
      t0 = time.perf_counter()
      jax.block_until_ready(compiled(x))
      ts.append(time.perf_counter() - t0)
    meds.append(statistics.median(ts))
  return statistics.median(meds), compile_s


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
  p.add_argument("--batches", type=int, nargs="+", default=[1, 64])
  p.add_argument("--rounds", type=int, default=15)
  p.add_argument("--calls", type=int, default=5)
  p.add_argument("--skip-baseline", action="store_true")
  p.add_argument(
    "--cpu-loops",
    choices=["off", "on", "both"],
    default="both",
    help="XLA option of lac_jax.cpu_loops: off = XLA defaults only; on = this "
    "process with the option; both = defaults, then ours without and with the "
    "option in alternating child processes.",
  )
  p.add_argument(
    "--repeats",
    type=int,
    default=3,
    help="--cpu-loops both: alternating child runs per setting (best is kept)",
  )
  p.add_argument("--json", action="store_true", help="print our times as one JSON line")
  args = p.parse_args()
  option = "on" if args.cpu_loops == "on" else "off"
  if not args.json:
    print(
      f"jax {jax.__version__} on {jax.devices()[0].device_kind} "
      f"({jax.devices()[0].platform}); float32, gamma 0.8; value+grad w.r.t. sim; "
      f"cpu_loops option {option}"
    )
  header = (
    f"{'T':>4} {'B':>4} {'penalties':>9} | {'ours ms':>8} {'autodiff ms':>11} "
    f"{'baseline ms':>11} | {'speed-up':>8} | {'compile s (ours/base)':>21}"
  )
  if not args.json:
    print(header)
    print("-" * len(header))
  rng = np.random.default_rng(0)
  ours, rows = {}, []
  for t in args.sizes:
    for b in args.batches:
      x = jnp.asarray(rng.normal(size=(b, t, t)), jnp.float32)
      for per_cell in (False, True):
        fns = make_fns(per_cell, t)
        res = {}
        for name, fn in fns.items():
          if name == "baseline" and args.skip_baseline:
            continue
          # The baseline is 10-200x slower: fewer calls give the same precision.
          slow = name == "baseline"
          res[name] = time_fn(
            fn, x, max(3, args.rounds // 5) if slow else args.rounds, 1 if slow else args.calls
          )
        # Same values as the baseline (a cheap guard against timing a wrong kernel).
        if "baseline" in res:
          v1, g1 = fns["ours"](x)
          v2, g2 = fns["baseline"](x)
          assert np.allclose(v1, v2, rtol=1e-4), (v1, v2)
          assert np.allclose(g1, g2, rtol=1e-3, atol=1e-5)
        key = f"{t} {b} {'per-cell' if per_cell else 'scalar'}"
        ours[key] = res["ours"][0]
        if args.json:
          continue
        base = res.get("baseline", (float("nan"), float("nan")))
        rows.append(
          {
            "T": t,
            "B": b,
            "penalties": "per-cell" if per_cell else "scalar",
            "ours_s": res["ours"][0],
            "autodiff_s": res["ours-autodiff"][0],
            "baseline_s": None if "baseline" not in res else base[0],
            "compile_ours_s": res["ours"][1],
            "compile_baseline_s": None if "baseline" not in res else base[1],
          }
        )
        print(
          f"{t:>4} {b:>4} {'per-cell' if per_cell else 'scalar':>9} | "
          f"{res['ours'][0] * 1e3:>8.2f} {res['ours-autodiff'][0] * 1e3:>11.2f} "
          f"{base[0] * 1e3:>11.2f} | {base[0] / res['ours'][0]:>7.1f}x | "
          f"{res['ours'][1]:>9.2f} / {base[1]:>8.2f}",
          flush=True,
        )
  if args.json:
    print(json.dumps(ours))
    return
  cpu_loops_rows = None
  if args.cpu_loops == "both" and jax.devices()[0].platform == "cpu":
    cpu_loops_rows = compare_cpu_loops(args)
  results.write("sw_kernel", vars(args), {"kernel": rows, "cpu_loops": cpu_loops_rows})


def compare_cpu_loops(args) -> list[dict]:
  """Times our kernel with and without the `lac_jax.cpu_loops` option, in child processes.

  XLA reads its options once per process, so each setting runs in its own child; the two
  alternate ``--repeats`` times and each row keeps its best time, which cancels most of the
  host's drift between the children.
  """
  best = {"off": {}, "on": {}}
  for _ in range(args.repeats):
    for option in ("off", "on"):
      cmd = [
        sys.executable,
        __file__,
        f"--cpu-loops={option}",
        "--json",
        "--skip-baseline",
        "--rounds",
        str(args.rounds),
        "--calls",
        str(args.calls),
        "--sizes",
        *map(str, args.sizes),
        "--batches",
        *map(str, args.batches),
      ]
      out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
      for key, sec in json.loads(out.strip().splitlines()[-1]).items():
        best[option][key] = min(sec, best[option].get(key, float("inf")))
  print(
    f"\nours without / with lac_jax.cpu_loops.enable() ({cpu_loops.OPTION}="
    f"{cpu_loops.DEFAULT_BYTES}): best of {args.repeats} alternating child processes"
  )
  header = f"{'T':>4} {'B':>4} {'penalties':>9} | {'default ms':>10} {'option ms':>9} | speed-up"
  print(header)
  print("-" * len(header))
  rows = []
  for key, t_default in best["off"].items():
    t, b, pen = key.split()
    t_opt = best["on"][key]
    print(
      f"{t:>4} {b:>4} {pen:>9} | {t_default * 1e3:>10.2f} {t_opt * 1e3:>9.2f} | "
      f"{t_default / t_opt:>7.2f}x",
      flush=True,
    )
    rows.append(
      {"T": int(t), "B": int(b), "penalties": pen, "default_s": t_default, "cpu_loops_s": t_opt}
    )
  return rows


if __name__ == "__main__":
  main()
