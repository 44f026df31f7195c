"""Frames/s of the LAC encoder (ResNet-50 conv4c + head), forward and forward+backward.

Usage::

  python benchmarks/encoder.py [--sizes=64,112,224] [--videos=1] [--frames=8] [--repeats=3]
                               [--depth=50] [--cut=conv4c] [--dtype=float32] [--trunk_chunk=0]

Runs on the default JAX device (a GPU when there is one; the defaults then grow to the
official 4 x 64 frames). For each image size it times, after a warm-up call, the median of
``--repeats`` calls of:
  * ``trunk``: the ResNet trunk alone (the baseline, same frames, same run);
  * ``encoder``: trunk + Conv3D context + MLP + positional encoding + transformer + output;
and both in eval mode (forward) and in train mode (forward + backward of a scalar loss, BN on
batch statistics, dropout on). Compile time is reported separately. The last column is the
encoder's time over the trunk's: the cost of the head relative to the trunk.
64 px uses ``context_padding='same'`` (the conv4c map is 4x4, too small for two valid 3x3 convs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax.models import encoder  # pylint: disable=g-import-not-at-top
from lac_jax.models import resnet  # pylint: disable=g-import-not-at-top


def time_fn(fn: Callable[..., Any], args: tuple, repeats: int) -> Dict[str, float]:
  """Compile time, then the median wall time of ``repeats`` calls after one warm-up call."""
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(compiled(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t0)
  return {"compile_s": compile_s, "step_s": statistics.median(times)}


def bench_size(size: int, args: argparse.Namespace) -> List[Dict[str, Any]]:
  config = encoder.default_config()
  config.trunk_options.depth = args.depth
  config.trunk_options.cut = args.cut
  config.dtype = args.dtype
  config.trunk_chunk = args.trunk_chunk
  config.context_padding = "same" if size < 80 else "valid"
  model = encoder.build_encoder(config)
  trunk = resnet.ResNet(depth=args.depth, cut=args.cut, dtype=model.dtype)
  shape = (args.videos, args.frames, size, size, 3)
  variables = encoder.jit_init(
    model, jax.random.PRNGKey(0), jnp.zeros(shape, jnp.uint8), jnp.ones(shape[:2], bool)
  )
  frames = jnp.asarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
  mask = jnp.ones(shape[:2], bool)
  flat_frames = frames.reshape((-1,) + shape[2:])
  trunk_vars = {k: v["backbone"] for k, v in variables.items()}
  rng = jax.random.PRNGKey(1)

  def enc_fwd(v, x, m):
    return model.apply(v, x, m, train=False)

  def enc_fwd_bwd(v, x, m):
    def loss(p):
      y, upd = model.apply(
        {**v, "params": p}, x, m, train=True, rngs={"dropout": rng}, mutable=["batch_stats"]
      )
      return jnp.mean(jnp.square(y)), upd

    return jax.grad(loss, has_aux=True)(v["params"])

  def trunk_fwd(v, x):
    return trunk.apply(v, x, train=False)

  def trunk_fwd_bwd(v, x):
    def loss(p):
      y, upd = trunk.apply({**v, "params": p}, x, train=True, mutable=["batch_stats"])
      return jnp.mean(jnp.square(y.astype(jnp.float32))), upd

    return jax.grad(loss, has_aux=True)(v["params"])

  rows = []
  for mode, enc_fn, trunk_fn in (
    ("forward", enc_fwd, trunk_fwd),
    ("fwd+bwd", enc_fwd_bwd, trunk_fwd_bwd),
  ):
    t = time_fn(trunk_fn, (trunk_vars, flat_frames), args.repeats)
    e = time_fn(enc_fn, (variables, frames, mask), args.repeats)
    n = args.videos * args.frames
    rows.append(
      {
        "size": size,
        "mode": mode,
        "trunk_fps": n / t["step_s"],
        "enc_fps": n / e["step_s"],
        "trunk_compile": t["compile_s"],
        "enc_compile": e["compile_s"],
        "ratio": e["step_s"] / t["step_s"],
      }
    )
    print(f"  done {size}px {mode}", file=sys.stderr, flush=True)
  return rows


def main(argv=None) -> None:
  gpu = jax.devices()[0].platform != "cpu"
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="64,112,224", help="comma-separated image sizes")
  parser.add_argument("--videos", type=int, default=4 if gpu else 1)
  parser.add_argument("--frames", type=int, default=64 if gpu else 8)
  parser.add_argument("--repeats", type=int, default=10 if gpu else 3)
  parser.add_argument("--depth", type=int, default=50, choices=(18, 34, 50))
  parser.add_argument("--cut", default="conv4c", help="trunk cut (ResNet-18/34: e.g. layer3)")
  parser.add_argument("--dtype", default="float32", choices=sorted(encoder.DTYPES))
  parser.add_argument("--trunk_chunk", type=int, default=0)
  args = parser.parse_args(argv)

  dev = jax.devices()[0]
  print(
    f"device: {dev.platform} ({dev.device_kind}), jax {jax.__version__}, "
    f"ResNet-{args.depth} {args.cut} + head, {args.videos} video(s) x {args.frames} frames, "
    f"{args.dtype}, trunk_chunk={args.trunk_chunk}, median of {args.repeats} after warm-up"
  )
  rows = []
  for size in [int(s) for s in args.sizes.split(",")]:
    rows += bench_size(size, args)
  print(
    f"{'px':>4} {'mode':>8} {'trunk fr/s':>11} {'encoder fr/s':>13} {'enc/trunk time':>15} "
    f"{'compile trunk s':>16} {'compile enc s':>14}"
  )
  for r in rows:
    print(
      f"{r['size']:>4} {r['mode']:>8} {r['trunk_fps']:>11.1f} {r['enc_fps']:>13.1f} "
      f"{r['ratio']:>15.2f} {r['trunk_compile']:>16.1f} {r['enc_compile']:>14.1f}"
    )
  results.write("encoder", vars(args), rows)


if __name__ == "__main__":
  main()
