"""Training-step throughput of lac_jax, and the share of the step spent in the LAC loss.

Usage (from the repository root)::

  python benchmarks/train_step.py                      # synthetic + Pouring-sized step
  python benchmarks/train_step.py --skip_pouring       # synthetic only (fast)
  python benchmarks/train_step.py --dtype=bfloat16     # bf16 compute (GPU/TPU)
  python benchmarks/train_step.py --input_steps=20     # + fed by the real input pipeline

Two setups, each on all local devices (the data-parallel pmap step of `lac_jax.train`):

* ``synthetic``: ``configs/synthetic.py`` as it trains (ResNet-18 cut early, small frames);
* ``pouring``: a Pouring-sized step, ``configs/pouring.py``: 224 px, 2 videos x 2 views x 64
  frames, ResNet-50 cut at conv4c (random weights: the speed is the same). On CPU a step
  takes about 3.5 minutes on 2 cores (214 s measured), so by default (``--pouring_steps=0``)
  only the first call after the ahead-of-time compile is timed (no warm-up call), and the trunk
  runs in chunks of 32 frames with rematerialisation (``--pouring_trunk_chunk``; the unchunked
  step would keep an estimated 10-20 GB of activations for the backward pass).

For each it reports compile time, the median step time (after one warm-up step), steps/s and
frames/s (frames through the trunk per second: videos x 2 views x T), and times the loss
alone: value and gradient of the config's loss (``losses.build``; w.r.t. the embeddings and its
parameters) on embeddings of the step's shape ``[B_device, 2, T, E]``, jitted on one device.
``loss share`` = loss time / step time: the part of a step the SW alignment and the other loss
terms cost (the baseline is the full step, measured in the same run).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax import config as config_lib  # pylint: disable=g-import-not-at-top
from lac_jax import distributed  # pylint: disable=g-import-not-at-top
from lac_jax import losses  # pylint: disable=g-import-not-at-top
from lac_jax import train  # pylint: disable=g-import-not-at-top
from lac_jax.data import device_augment  # pylint: disable=g-import-not-at-top


def load_config(name: str, dtype: str):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.model.dtype = dtype
  return config


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
  """(first call seconds, later call seconds), each blocked until ready."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return first, times


def random_batch(config, num_videos: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """A batch of the pipeline's shapes: uint8 frames, sorted steps, all-valid masks."""
  t, s = config.data.sampling.num_frames, config.data.image_size
  frames = rng.integers(0, 256, (num_videos, 2, t, s, s, 3), dtype=np.uint8)
  steps = np.sort(rng.integers(0, 3 * t, (num_videos, 2, t)), axis=-1).astype(np.int32)
  return {
    "frames": frames,
    "steps": steps,
    "mask": np.ones((num_videos, 2, t), bool),
    "lengths": np.full((num_videos,), 3 * t, np.int32),
  }


def bench(
  name: str, config, steps: int, loss_repeats: int, trunk_chunk: int = 0
) -> dict[str, float]:
  if trunk_chunk:
    config.model.trunk_chunk = trunk_chunk
    config.model.trunk_remat = True
  n_local = jax.local_device_count()
  batch_size = max(int(config.data.batch_size), n_local)
  batch_size -= batch_size % n_local
  config.data.batch_size = batch_size
  config_lib.check_config(config)
  model, _ = train.build_models(config)
  state = train.create_train_state(
    config, model, jax.random.PRNGKey(0), 70, 10_000, load_weights=False
  )
  p_step = train.make_parallel_train_step(losses.build(config.loss), config.model.num_context)
  p_state = distributed.replicate(state)
  batch = distributed.shard_batch(
    random_batch(config, batch_size, np.random.default_rng(0)), n_local
  )
  rng = jax.random.PRNGKey(1)

  t0 = time.perf_counter()
  compiled = p_step.lower(p_state, batch, rng).compile()
  compile_s = time.perf_counter() - t0
  holder = {"state": p_state}

  def step():
    holder["state"], metrics = compiled(holder["state"], batch, rng)
    return metrics

  first, times = timed(step, steps)
  step_s = statistics.median(times) if times else first

  # The loss alone on one device's embeddings.
  t, e = config.data.sampling.num_frames // config.model.num_context, config.model.output_dim
  b_dev = batch_size // n_local
  z = jax.random.normal(jax.random.PRNGKey(2), (b_dev, 2, t, e), jnp.float32)
  z = z / jnp.linalg.norm(z, axis=-1, keepdims=True)
  loss_steps = jnp.asarray(np.asarray(batch["steps"][0])[:, :, :: config.model.num_context])
  mask = jnp.ones((b_dev, 2, t), bool)
  loss = losses.build(config.loss)
  params = loss.init_params(t)

  def loss_fn(z, params):
    return loss(params, z, loss_steps, mask)[0]

  grad = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
  _, loss_times = timed(lambda: grad(z, params), loss_repeats)
  loss_s = statistics.median(loss_times)
  frames = batch_size * 2 * config.data.sampling.num_frames
  return {
    "setup": name,
    "devices": n_local,
    "chunk": trunk_chunk,
    "videos": batch_size,
    "frames": frames,
    "size": config.data.image_size,
    "compile_s": compile_s,
    "first_step_s": first,
    "step_s": step_s,
    "steps_per_s": 1.0 / step_s,
    "frames_per_s": frames / step_s,
    "loss_s": loss_s,
    "loss_share": loss_s / step_s,
    "timed_steps": len(times) or 1,
  }


def input_bound(config, steps: int, trunk_chunk: int = 0, videos=None) -> dict[str, Any]:
  """Seconds per step fed by the real input pipeline (``videos``, default synthetic videos
  rendered at the config's size; the full augmentation where ``data.augment.where`` puts it)
  against the same step on one batch kept in memory; ``ratio`` = pipeline / memory (1.0: the
  input keeps up)."""
  from lac_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from lac_jax.data import synthetic  # pylint: disable=g-import-not-at-top

  if trunk_chunk:
    config.model.trunk_chunk, config.model.trunk_remat = trunk_chunk, True
  n_local = jax.local_device_count()
  config.data.batch_size = max(int(config.data.batch_size), n_local) // n_local * n_local
  config.data.num_workers = max(2, (os.cpu_count() or 2) - 1)
  config.data.prefetch = 4
  if videos is None:
    s = config.data.synthetic
    s.num_train, s.height, s.width = 8, config.data.image_size, config.data.image_size
    s.min_frames, s.max_frames = 64, 128
    videos = synthetic.load("train", s)
  model, _ = train.build_models(config)
  state = train.create_train_state(
    config, model, jax.random.PRNGKey(0), len(videos), 10_000, load_weights=False
  )
  augment = device_augment.make_device_augment(config)
  p_step = train.make_parallel_train_step(
    losses.build(config.loss), config.model.num_context, augment=augment
  )
  rng = jax.random.PRNGKey(1)
  with pipeline.train_iterator(
    videos, config.data, seed=0, device_augment=augment is not None
  ) as it:
    batch = distributed.shard_batch(next(it), n_local)
    compiled = p_step.lower(distributed.replicate(state), batch, rng).compile()
    holder = {"state": distributed.replicate(state)}

    def run(feed) -> float:
      # Warm-up. The step donates the state on GPU/TPU, so every call must take the last result.
      holder["state"], metrics = compiled(holder["state"], batch, rng)
      jax.block_until_ready(metrics)
      start = time.perf_counter()
      for _ in range(steps):
        holder["state"], metrics = compiled(holder["state"], feed(), rng)
      jax.block_until_ready(metrics)
      return (time.perf_counter() - start) / steps

    memory_s = run(lambda: batch)
    pipeline_s = run(lambda: distributed.shard_batch(next(it), n_local))
  return {
    "augment": "device" if augment else "host",
    "memory_step_s": memory_s,
    "pipeline_step_s": pipeline_s,
    "ratio": pipeline_s / memory_s,
    "clips_per_s": config.data.batch_size / pipeline_s,
    "steps": steps,
  }


def print_input(extra: dict[str, Any]) -> None:
  print(
    f"input pipeline (augmentation on the {extra['augment']}): "
    f"{extra['pipeline_step_s']:.3f} s/step vs {extra['memory_step_s']:.3f} s/step on a "
    f"batch in memory: ratio {extra['ratio']:.2f} ({extra['clips_per_s']:.1f} clips/s)"
  )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--synthetic_steps", type=int, default=10)
  parser.add_argument(
    "--pouring_steps",
    type=int,
    default=None,
    help="timed Pouring-sized steps after a warm-up step; 0 times the first "
    "call after compiling (default: 0 on CPU, 10 on GPU/TPU)",
  )
  parser.add_argument(
    "--pouring_trunk_chunk",
    type=int,
    default=None,
    help="trunk chunk (+ remat) for the Pouring step; default 32 on CPU, 0 (off) on GPU/TPU",
  )
  parser.add_argument("--loss_repeats", type=int, default=10)
  parser.add_argument("--skip_pouring", action="store_true")
  parser.add_argument(
    "--input_only",
    action="store_true",
    help="only the input-pipeline comparison (--input_steps, default 10)",
  )
  parser.add_argument(
    "--input_steps",
    type=int,
    default=None,
    help="Pouring-sized steps fed by the real input pipeline vs one batch in "
    "memory (default: 0 = skip on CPU, 20 on GPU/TPU)",
  )
  args = parser.parse_args()
  accel = jax.default_backend() != "cpu"
  print(
    f"backend {jax.default_backend()}, {jax.local_device_count()} local device(s): "
    f"{jax.devices()[0].device_kind}, dtype {args.dtype}"
  )
  chunk = args.pouring_trunk_chunk
  if chunk is None:
    chunk = 0 if accel else 32
  if args.input_only:
    extra = input_bound(load_config("pouring", args.dtype), args.input_steps or 10, chunk)
    print_input(extra)
    results.write("train_step_input", vars(args), extra)
    return
  rows = [
    bench(
      "synthetic", load_config("synthetic", args.dtype), args.synthetic_steps, args.loss_repeats
    )
  ]
  if not args.skip_pouring:
    steps = args.pouring_steps if args.pouring_steps is not None else (10 if accel else 0)
    rows.append(
      bench("pouring", load_config("pouring", args.dtype), steps, args.loss_repeats, chunk)
    )
  header = (
    f"{'setup':<10} {'dev':>3} {'videos':>6} {'frames':>6} {'px':>4} {'chunk':>5} "
    f"{'compile s':>9} "
    f"{'step s':>8} {'steps/s':>8} {'frames/s':>9} {'loss s':>8} {'loss share':>10}"
  )
  print(header)
  print("-" * len(header))
  for r in rows:
    print(
      f"{r['setup']:<10} {r['devices']:>3} {r['videos']:>6} {r['frames']:>6} "
      f"{r['size']:>4} {r['chunk']:>5} {r['compile_s']:>9.1f} {r['step_s']:>8.3f} "
      f"{r['steps_per_s']:>8.2f} "
      f"{r['frames_per_s']:>9.1f} {r['loss_s']:>8.4f} {r['loss_share']:>9.1%}"
    )
  print(
    "step s: median of the timed steps after one warm-up step (with 0 timed steps: the "
    "first call after compiling); loss s: value+grad of the loss alone on one "
    "device's embeddings."
  )
  input_steps = args.input_steps if args.input_steps is not None else (20 if accel else 0)
  extra = {}
  if input_steps and not args.skip_pouring:
    extra = input_bound(load_config("pouring", args.dtype), input_steps, chunk)
    print_input(extra)
  results.write("train_step", vars(args), {"steps": rows, "input": extra} if extra else rows)


if __name__ == "__main__":
  main()
