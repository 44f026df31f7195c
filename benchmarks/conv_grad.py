"""Convolution backward on CPU: ``lac_jax.models.conv`` (matmul) against XLA's autodiff.

Usage (from the repository root)::

  python benchmarks/conv_grad.py                 # per-layer table (about 3 minutes on 2 cores)
  python benchmarks/conv_grad.py --encoder       # + the LAC encoder's fwd+bwd at 224 px

Per layer of the ResNet-50 trunk and the context head, at 224 px input: the gradient w.r.t. the
kernel (dW) and w.r.t. the input (dX) of one conv over ``--images`` images, computed by
``jax.vjp`` of ``lax.conv_general_dilated`` (the baseline, ``conv_grad='xla'``) and by
``conv.conv2d(..., grad='matmul')``, each both in a plain jitted call and inside a ``lax.scan``
over two chunks of images (the chunked trunk, ``config.model.trunk_chunk``). Best of
``--repeats`` calls after a warm-up call; the ratio is baseline time / ours.

``--encoder`` also times a training-mode forward+backward of the whole encoder (ResNet-50
conv4c + head, ``--frames`` frames at 224 px, trunk in 2 chunks under ``nn.scan``) with each
``conv_grad``, one call after a warm-up call each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax.models import conv  # pylint: disable=g-import-not-at-top
from lac_jax.models import encoder  # pylint: disable=g-import-not-at-top

# name, input H (= W), C in, C out, kernel, stride, padding.
LAYERS = (
  ("conv1 7x7/2", 224, 3, 64, 7, 2, 3),
  ("layer1 3x3", 56, 64, 64, 3, 1, 1),
  ("layer1 1x1", 56, 256, 64, 1, 1, 0),
  ("layer2_0 3x3/2", 56, 128, 128, 3, 2, 1),
  ("layer3 3x3", 14, 256, 256, 3, 1, 1),
  ("context 3x3 valid", 14, 1024, 512, 3, 1, 0),
)


def best_time(fn: Callable[..., Any], args: tuple, repeats: int) -> float:
  """Best wall time of ``repeats`` calls of ``jax.jit(fn)`` after a warm-up call."""
  jitted = jax.jit(fn)
  jax.block_until_ready(jitted(*args))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(jitted(*args))
    best = min(best, time.perf_counter() - t0)
  return best


def layer_rows(images: int, repeats: int) -> list[dict[str, Any]]:
  rows = []
  for name, h, cin, cout, k, s, p in LAYERS:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, images // 2, h, h, cin)), jnp.float32)  # 2 chunks.
    w = jnp.asarray(rng.normal(size=(k, k, cin, cout)) * 0.01, jnp.float32)
    y_shape = jax.eval_shape(lambda a, b: conv.conv2d(a, b, s, p, "xla"), x[0], w).shape
    dy = jnp.asarray(rng.normal(size=(2,) + y_shape), jnp.float32)
    for grad in ("dW", "dX"):
      times = {}
      for impl in ("xla", "matmul"):

        def one(xc, dyc, impl=impl, grad=grad):
          _, vjp = jax.vjp(lambda a, b: conv.conv2d(a, b, s, p, impl), xc, w)
          dx, dw = vjp(dyc)
          return dw if grad == "dW" else dx

        def plain(x, dy, one=one):
          return [one(x[i], dy[i]) for i in range(2)]

        def scanned(x, dy, one=one):
          return jax.lax.scan(lambda c, xs: (c, one(*xs)), 0, (x, dy))[1]

        times[impl, "jit"] = best_time(plain, (x, dy), repeats)
        times[impl, "scan"] = best_time(scanned, (x, dy), repeats)
      rows.append({"layer": name, "grad": grad, **{f"{i}_{m}": t for (i, m), t in times.items()}})
      r = rows[-1]
      print(
        f"  {name:<18} {grad}: jit {r['xla_jit'] * 1e3:8.0f} -> {r['matmul_jit'] * 1e3:6.0f} ms"
        f"   scan {r['xla_scan'] * 1e3:8.0f} -> {r['matmul_scan'] * 1e3:6.0f} ms",
        file=sys.stderr,
        flush=True,
      )
  return rows


def encoder_times(frames: int) -> dict[str, float]:
  out = {}
  shape = (1, frames, 224, 224, 3)
  x = jnp.asarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
  mask = jnp.ones(shape[:2], bool)
  for impl in ("xla", "matmul"):
    config = encoder.default_config()
    config.conv_grad = impl
    config.trunk_chunk = frames // 2
    model = encoder.build_encoder(config)
    variables = encoder.jit_init(model, jax.random.PRNGKey(0), x, mask)

    def fwd_bwd(v, x, m, model=model):
      def loss(p):
        y, upd = model.apply(
          {**v, "params": p},
          x,
          m,
          train=True,
          rngs={"dropout": jax.random.PRNGKey(1)},
          mutable=["batch_stats"],
        )
        return jnp.mean(jnp.square(y)), upd

      return jax.grad(loss, has_aux=True)(v["params"])

    out[impl] = best_time(fwd_bwd, (variables, x, mask), 1)
    print(f"  encoder conv_grad={impl}: {out[impl]:.1f} s", file=sys.stderr, flush=True)
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--images", type=int, default=8, help="images per conv call (2 chunks)")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--encoder", action="store_true", help="also time the whole encoder")
  parser.add_argument("--frames", type=int, default=8, help="frames for --encoder")
  args = parser.parse_args()
  print(
    f"backend {jax.default_backend()}, jax {jax.__version__}, {args.images} images per call, "
    f"best of {args.repeats} after warm-up; ratio = XLA autodiff time / matmul VJP time"
  )
  rows = layer_rows(args.images, args.repeats)
  header = (
    f"{'layer':<18} {'grad':>4} {'jit xla ms':>10} {'ours ms':>8} {'ratio':>6}   "
    f"{'scan xla ms':>11} {'ours ms':>8} {'ratio':>6}"
  )
  print(header)
  print("-" * len(header))
  for r in rows:
    print(
      f"{r['layer']:<18} {r['grad']:>4} {r['xla_jit'] * 1e3:>10.0f} "
      f"{r['matmul_jit'] * 1e3:>8.0f} {r['xla_jit'] / r['matmul_jit']:>5.1f}x   "
      f"{r['xla_scan'] * 1e3:>11.0f} {r['matmul_scan'] * 1e3:>8.0f} "
      f"{r['xla_scan'] / r['matmul_scan']:>5.1f}x"
    )
  encoder_s = None
  if args.encoder:
    encoder_s = encoder_times(args.frames)
    t = encoder_s
    print(
      f"encoder fwd+bwd, 1 x {args.frames} frames at 224 px, trunk in 2 chunks: "
      f"XLA {t['xla']:.1f} s, matmul {t['matmul']:.1f} s, ratio {t['xla'] / t['matmul']:.1f}x"
    )
  results.write("conv_grad", vars(args), {"layers_s": rows, "encoder_s": encoder_s})


if __name__ == "__main__":
  main()
