"""Throughput of the training input pipeline, next to the encoder's training-step rate.

A clip is one video's two augmented views of T frames (what one batch element needs). For each
image size (64: the synthetic dataset at its native 64x64; 224: synthetic videos rendered at
224x224, the official input size) and each worker count, the script builds batches with
`lac_jax.data.pipeline.train_iterator` (official settings: batch 2 videos, T = 64, full
augmentation) and prints clips/s. The process is pinned to ``--cores`` CPU cores (default 2).

If `lac_jax.models.encoder` imports, it also times one encoder training step (forward and
backward of the frame encoder on ``[2 * batch, T, S, S, 3]``, BatchNorm in training mode; the
LAC loss itself is not included) on the default JAX backend, and prints

  ratio = pipeline clips/s / (encoder steps/s * batch_size)

(the pipeline and a CPU encoder share the same cores in a real run, so on CPU the ratio is only
indicative). ``cpu ms/clip`` is the process CPU time per clip: on a machine shared with other
work, clips/s falls with the load but cpu ms/clip does not.

i.e. how many times faster the pipeline supplies clips than the encoder consumes them (>= 1:
the input keeps up). On a CPU backend the encoder is only timed at the sizes of
``--encoder-sizes`` (default 64, with ResNet-18: a 224-px step takes minutes on 2 cores);
elsewhere n/a.

It also times the device augmentation (`lac_jax.data.device_augment.augment_views`, jitted, on
the default JAX backend) on the same batches: 2 x batch views of T frames, uint8 in and out,
already on the device (the host->device copy of uint8 frames is the same for both paths), after
compilation. Its clips/s and ``device/host`` (over the pipeline's clips/s with full host
augmentation) are printed per row and written to the JSON. On CPU both share the pinned cores.
``--quick``: 1 s per cell, the last worker count only, no encoder.

``--videos``: the 'videos' dataset instead (`own_videos`: decoding into its cache against PyAV's
plain decode, and steps fed from the cache against a batch in memory).

Run from the repository root: ``python benchmarks/data.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax.data import pipeline  # pylint: disable=g-import-not-at-top
from lac_jax.data import synthetic  # pylint: disable=g-import-not-at-top


def _videos(size: int, num_videos: int) -> list:
  c = synthetic.default_config()
  c.num_train = num_videos
  c.height = c.width = size
  c.min_frames, c.max_frames = 64, 128
  return synthetic.load("train", c)


def pipeline_clips_per_s(
  videos: list, size: int, workers: int, batch_size: int, num_frames: int, min_seconds: float
) -> tuple[float, float]:
  """Clips/s of `train_iterator` (after one warm-up batch), timed for >= min_seconds, and the
  process CPU seconds per clip (all threads; unlike clips/s, robust to a busy machine)."""
  c = pipeline.default_config()
  c.image_size, c.batch_size, c.num_workers = size, batch_size, workers
  c.sampling.num_frames = num_frames
  with pipeline.train_iterator(videos, c, seed=0, process_index=0, process_count=1) as it:
    next(it)
    start, cpu, clips = time.perf_counter(), time.process_time(), 0
    while clips < 3 * batch_size or time.perf_counter() - start < min_seconds:
      clips += next(it)["frames"].shape[0]
    return clips / (time.perf_counter() - start), (time.process_time() - cpu) / clips


def device_augment_clips_per_s(
  size: int, batch_size: int, num_frames: int, min_seconds: float
) -> tuple[float, str]:
  """Clips/s of the jitted device augmentation (official settings) on ``2 * batch_size`` views
  of ``[num_frames, size, size, 3]`` uint8 frames, and the device's description."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from lac_jax.data import augment  # pylint: disable=g-import-not-at-top
  from lac_jax.data import device_augment  # pylint: disable=g-import-not-at-top

  views = 2 * batch_size
  config = augment.default_config()
  frames = jax.device_put(
    jax.random.randint(
      jax.random.key(0), (views, num_frames, size, size, 3), 0, 256, jnp.int32
    ).astype(jnp.uint8)
  )
  source_hw = jnp.full((views, 2), size, jnp.int32)

  @jax.jit
  def run(step, frames):  # one key per view, as the trainer derives them
    keys = jax.random.split(jax.random.fold_in(jax.random.key(1), step), views)
    return device_augment.augment_views(keys, frames, source_hw, size, config)

  jax.block_until_ready(run(0, frames))  # compile
  start, steps = time.perf_counter(), 0
  while steps < 2 or time.perf_counter() - start < min_seconds:
    out = run(steps + 1, frames)
    steps += 1
    if steps % 8 == 0:  # keep the dispatch queue short
      jax.block_until_ready(out)
  jax.block_until_ready(out)
  rate = steps * batch_size / (time.perf_counter() - start)
  return rate, f"{jax.default_backend()} ({jax.devices()[0].device_kind})"


def encoder_steps_per_s(
  size: int, batch_size: int, num_frames: int, depth: int, steps: int
) -> tuple[float, str]:
  """Training steps/s of the frame encoder (forward + backward), and a description."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from lac_jax.models import encoder  # pylint: disable=g-import-not-at-top

  cfg = encoder.default_config()
  cfg.trunk_options.depth = depth
  if depth < 50:  # ResNet-18/34 layer3 has fewer than 3 blocks: cut after the whole stage
    cfg.trunk_options.cut = "layer3"
  if size < 128:  # conv4c is 4x4 at 64 px: too small for two valid 3x3 convs
    cfg.context_padding = "same"
  model = encoder.build_encoder(cfg)
  shape = (2 * batch_size, num_frames, size, size, 3)
  variables = encoder.init_variables(model, jax.random.PRNGKey(0), shape)
  frames = jnp.asarray(
    jax.random.randint(jax.random.PRNGKey(1), shape, 0, 256, dtype=jnp.int32), jnp.uint8
  )
  mask = jnp.ones(shape[:2], bool)

  @jax.jit
  def step(params, batch_stats, key):
    def loss_fn(p):
      emb, updates = model.apply(
        {"params": p, "batch_stats": batch_stats},
        frames,
        mask,
        train=True,
        rngs={"dropout": key},
        mutable=["batch_stats"],
      )
      return jnp.mean(emb**2), updates["batch_stats"]

    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return loss, new_stats, grads

  params, stats = variables["params"], variables["batch_stats"]
  out = step(params, stats, jax.random.PRNGKey(2))  # compile
  jax.block_until_ready(out)
  start = time.perf_counter()
  for i in range(steps):
    out = step(params, out[1], jax.random.PRNGKey(3 + i))
  jax.block_until_ready(out)
  rate = steps / (time.perf_counter() - start)
  return rate, f"ResNet-{depth} on {jax.devices()[0].device_kind}"


def own_videos(num_videos: int, steps: int) -> dict:
  """``--videos``: the 'videos' dataset (a folder of mp4s) against its baselines, in one run.

  Decoding into the cache (rotation, resize to the config's size, JPEG store) against PyAV's plain
  decode of the same files (frames to RGB arrays, nothing else), in source frames/s; then the
  synthetic config's training step fed from the cached store against the same step on a batch
  in memory (`train_step.input_bound`; target ratio <= 1.1).
  """
  import tempfile  # pylint: disable=g-import-not-at-top
  import av  # pylint: disable=g-import-not-at-top
  import train_step  # pylint: disable=g-import-not-at-top  (benchmarks/train_step.py)
  from lac_jax.data import videos as videos_lib  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as tmp:
    c = synthetic.default_config()
    c.height = c.width = 128
    c.min_frames, c.max_frames = 100, 160
    paths = synthetic.write_videos(os.path.join(tmp, "in"), "train", num_videos, c)
    start = time.perf_counter()
    frames = 0
    for path in paths:
      with av.open(path) as container:
        for frame in container.decode(container.streams.video[0]):
          frame.to_ndarray(format="rgb24")
          frames += 1
    plain_s = time.perf_counter() - start
    config = train_step.load_config("synthetic", "float32")
    d = config.data
    d.dataset, d.data_dir, d.cache_dir = "videos", os.path.join(tmp, "in"), os.path.join(tmp, "c")
    start = time.perf_counter()
    videos_lib.prepare(d, d.image_size)
    store_s = time.perf_counter() - start
    decode = {
      "videos": num_videos,
      "source_frames": frames,
      "frame_size": 128,
      "plain_frames_per_s": frames / plain_s,
      "store_frames_per_s": frames / store_s,
      "store_over_plain": plain_s / store_s,
    }
    print(
      f"decode {num_videos} mp4s ({frames} frames, 128 px): PyAV plain "
      f"{frames / plain_s:.0f} frames/s, into the store at {d.image_size} px "
      f"{frames / store_s:.0f} frames/s ({plain_s / store_s:.2f}x of plain)"
    )
    videos_lib._PREPARED.clear()  # pylint: disable=protected-access  (reads the cache)
    train_videos = videos_lib.load_split(d, "train", None, d.image_size)
    bound = train_step.input_bound(config, steps, videos=train_videos)
    print(
      f"synthetic config's step: {1e3 * bound['memory_step_s']:.0f} ms on a batch in memory, "
      f"{1e3 * bound['pipeline_step_s']:.0f} ms fed from the cached store "
      f"(ratio {bound['ratio']:.2f}, target <= 1.1)"
    )
  return {"decode": decode, "train": bound}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--videos",
    action="store_true",
    help="only the 'videos' dataset: decoding into its cache vs PyAV, and "
    "training steps fed from the cache vs in memory (results/data_videos.json)",
  )
  parser.add_argument("--videos-count", type=int, default=16, help="--videos: mp4s written")
  parser.add_argument("--videos-steps", type=int, default=40, help="--videos: steps timed")
  parser.add_argument("--sizes", default="64,224", help="image sizes, comma separated")
  parser.add_argument("--workers", default="1,2", help="worker counts, comma separated")
  parser.add_argument("--cores", type=int, default=2, help="CPU cores to pin to (0: all)")
  parser.add_argument("--batch-size", type=int, default=2, help="videos per batch")
  parser.add_argument("--num-frames", type=int, default=64, help="T, frames per view")
  parser.add_argument("--num-videos", type=int, default=8, help="synthetic videos per size")
  parser.add_argument("--min-seconds", type=float, default=5.0, help="timing per cell")
  parser.add_argument("--encoder", choices=("auto", "none"), default="auto")
  parser.add_argument(
    "--encoder-sizes", default="", help="sizes to time the encoder at (default: all, or 64 on CPU)"
  )
  parser.add_argument(
    "--encoder-depth", type=int, default=0, help="ResNet depth (default: 18 on CPU, 50 elsewhere)"
  )
  parser.add_argument(
    "--encoder-steps",
    type=int,
    default=0,
    help="timed encoder steps (default: 1 on CPU, 5 elsewhere)",
  )
  parser.add_argument(
    "--device-augment",
    choices=("auto", "none"),
    default="auto",
    help="also time lac_jax.data.device_augment on the default JAX backend",
  )
  parser.add_argument(
    "--quick", action="store_true", help="1 s per cell, the last worker count only, no encoder"
  )
  args = parser.parse_args()
  if args.videos:
    results.write("data_videos", vars(args), own_videos(args.videos_count, args.videos_steps))
    return
  if args.quick:
    args.min_seconds = min(args.min_seconds, 1.0)
    args.workers = args.workers.split(",")[-1]
    args.encoder = "none"

  if args.cores and hasattr(os, "sched_setaffinity"):
    cpus = sorted(os.sched_getaffinity(0))[: args.cores]
    os.sched_setaffinity(0, cpus)
  sizes = [int(s) for s in args.sizes.split(",")]
  workers = [int(w) for w in args.workers.split(",")]
  print(
    f"pipeline: batch {args.batch_size} videos x 2 views x {args.num_frames} frames, full "
    f"augmentation, pinned to CPUs {sorted(os.sched_getaffinity(0))}"
  )

  enc = {}
  if args.encoder == "auto":
    try:
      import jax  # pylint: disable=g-import-not-at-top

      on_cpu = jax.default_backend() == "cpu"
      depth = args.encoder_depth or (18 if on_cpu else 50)
      enc_sizes = (
        [int(s) for s in args.encoder_sizes.split(",")]
        if args.encoder_sizes
        else ([64] if on_cpu else sizes)
      )
      for size in sizes:
        if size in enc_sizes:
          enc[size] = encoder_steps_per_s(
            size,
            args.batch_size,
            args.num_frames,
            depth,
            args.encoder_steps or (1 if on_cpu else 5),
          )
          print(
            f"encoder {size}px: {enc[size][0]:.3f} steps/s ({enc[size][1]}, fwd+bwd, "
            f"{2 * args.batch_size}x{args.num_frames} frames)"
          )
    except Exception as e:  # pylint: disable=broad-except  (report the pipeline regardless)
      print(f"encoder: n/a ({type(e).__name__}: {e})")

  dev = {}
  if args.device_augment == "auto":
    try:
      for size in sizes:
        dev[size] = device_augment_clips_per_s(
          size, args.batch_size, args.num_frames, args.min_seconds
        )
        print(
          f"device augment {size}px: {dev[size][0]:.2f} clips/s ({dev[size][1]}, jitted "
          f"augment_views, {2 * args.batch_size}x{args.num_frames} frames, uint8 in/out)"
        )
    except Exception as e:  # pylint: disable=broad-except  (report the pipeline regardless)
      print(f"device augment: n/a ({type(e).__name__}: {e})")

  print(
    f"{'size':>5} {'workers':>7} {'clips/s':>8} {'frames/s':>9} {'cpu ms/clip':>11} "
    f"{'ratio vs encoder':>17} {'device clips/s':>14} {'device/host':>11}"
  )
  rows = []
  for size in sizes:
    t0 = time.perf_counter()
    videos = _videos(size, args.num_videos)
    print(
      f"  (rendered {len(videos)} synthetic {size}px videos in {time.perf_counter() - t0:.1f} s)"
    )
    for w in workers:
      rate, cpu = pipeline_clips_per_s(
        videos, size, w, args.batch_size, args.num_frames, args.min_seconds
      )
      ratio = f"{rate / (enc[size][0] * args.batch_size):.2f}" if size in enc else "n/a"
      dev_rate = dev[size][0] if size in dev else None
      print(
        f"{size:>5} {w:>7} {rate:>8.2f} {rate * 2 * args.num_frames:>9.0f} "
        f"{1e3 * cpu:>11.0f} {ratio:>17} "
        + (f"{dev_rate:>14.2f} {dev_rate / rate:>11.2f}" if dev_rate else f"{'n/a':>14}")
      )
      rows.append(
        {
          "size": size,
          "workers": w,
          "clips_per_s": rate,
          "cpu_s_per_clip": cpu,
          "encoder_steps_per_s": enc[size][0] if size in enc else None,
          "device_augment_clips_per_s": dev_rate,
          "device_augment_backend": dev[size][1] if size in dev else None,
          "device_over_host": dev_rate / rate if dev_rate else None,
        }
      )
  results.write("data", vars(args), rows)


if __name__ == "__main__":
  main()
