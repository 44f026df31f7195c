"""Wall time of the four evaluation metrics on Pouring-sized data.

Data: 84 videos x 250 frames x 128-d float32 embeddings (a random smooth trajectory shared by
all videos, traversed at a random pace, plus Gaussian noise) with random monotone labels over
5 phases, split 70 train / 14 val as Pouring. Sections (run in order by `main`):

* ``metric_times``: each metric on the 70/14 split with the default eval config.
* ``stress``: Kendall's tau and retrieval over all 84 videos (~7000 ordered pairs).
* ``tau_vs_scipy``: the vectorised Kendall's tau against the official per-pair loop
  (cdist + argmin + scipy.stats.kendalltau) in the same run: time ratio and max difference.
* ``embed_eval``: a full `lac_jax.evaluate.evaluate` of the synthetic dataset (48 train / 16 val
  videos of 48-128 frames, 64 px) with a small encoder (ResNet-18 cut at layer3, default head):
  the bucketed embedding pass cold (with compilation) and warm, and the metrics, separately.
  ``--eval-baseline`` also times the unbucketed alternative (one jit per distinct video length)
  on the val videos, cold and warm, in the same run.

Run from the repository root: ``python benchmarks/evaluate.py`` (``--sections embed_eval``
runs only the named sections; ``--svm`` also times the SVM
classifier; ``--blas-threads 1`` pins OpenBLAS to one thread, which is much faster for these
small products on a busy machine; ``--help`` for the rest).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings
from typing import Callable, Sequence

import numpy as np
import scipy.stats
from scipy.spatial.distance import cdist
import threadpoolctl

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax import config as config_lib  # pylint: disable=g-import-not-at-top
from lac_jax import metrics  # pylint: disable=g-import-not-at-top


@dataclasses.dataclass
class Data:
  """Synthetic evaluation set: per-video float32 ``[T, E]`` embeddings and int32 ``[T]`` labels."""

  train_embs: list[np.ndarray]
  train_labels: list[np.ndarray]
  val_embs: list[np.ndarray]
  val_labels: list[np.ndarray]
  num_classes: int

  @property
  def all_embs(self) -> list[np.ndarray]:
    return self.train_embs + self.val_embs

  @property
  def all_labels(self) -> list[np.ndarray]:
    return self.train_labels + self.val_labels


def pouring_sized_data(
  num_train: int = 70,
  num_val: int = 14,
  num_frames: int = 250,
  dim: int = 128,
  num_classes: int = 5,
  noise: float = 1.0,
  seed: int = 0,
) -> Data:
  """Random embeddings around a shared smooth trajectory; random monotone phase labels."""
  rng = np.random.default_rng(seed)
  freqs = rng.uniform(0.5, 3.0, size=dim)
  phases = rng.uniform(0, 2 * np.pi, size=dim)
  embs, labels = [], []
  for _ in range(num_train + num_val):
    # Random monotone pace: where along the trajectory each frame is.
    pace = np.cumsum(rng.uniform(0.2, 1.8, num_frames))
    progress = (pace - pace[0]) / (pace[-1] - pace[0])
    clean = np.sin(2 * np.pi * freqs[None] * progress[:, None] + phases[None])
    embs.append((clean + noise * rng.normal(size=(num_frames, dim))).astype(np.float32))
    cuts = np.sort(rng.choice(np.arange(1, num_frames), num_classes - 1, replace=False))
    labels.append(np.searchsorted(cuts, np.arange(num_frames), side="right").astype(np.int32))
  return Data(
    embs[:num_train], labels[:num_train], embs[num_train:], labels[num_train:], num_classes
  )


def timed(fn: Callable, *args, **kwargs):
  """Runs ``fn`` once; returns (result, wall seconds)."""
  start = time.perf_counter()
  out = fn(*args, **kwargs)
  return out, time.perf_counter() - start


def scipy_tau_loop(embs: Sequence[np.ndarray], stride: int) -> np.ndarray:
  """The official Kendall's tau loop, one ordered pair at a time -> ``[N, N]`` (NaN diagonal)."""
  n = len(embs)
  out = np.full((n, n), np.nan)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for i in range(n):
      for j in range(n):
        if i != j:
          q, c = embs[i][::stride], embs[j][::stride]
          nn = np.argmin(cdist(q, c, "sqeuclidean"), axis=1)
          out[i, j] = scipy.stats.kendalltau(np.arange(len(q)), nn).statistic
  return out


def section_metric_times(data: Data, args: argparse.Namespace) -> None:
  """Each metric on the 70/14 split (Pouring's protocol)."""
  config = config_lib.eval_config()
  print(f"\n== metric times, {len(data.train_embs)} train / {len(data.val_embs)} val videos ==")
  rows = []
  models = ["logistic"] + (["svm"] if args.svm else [])
  for model in models:
    acc, sec = timed(
      metrics.classification,
      data.train_embs,
      data.train_labels,
      data.val_embs,
      data.val_labels,
      config.fractions,
      model,
    )
    rows.append(
      (
        f"classification ({model}, fractions {tuple(config.fractions)})",
        sec,
        " ".join(f"{f}: {100 * a:.2f}" for f, a in acc.items()),
      )
    )
    acc, sec = timed(
      metrics.classification,
      data.train_embs,
      data.train_labels,
      data.val_embs,
      data.val_labels,
      (1.0,),
      model,
    )
    num_frames = sum(len(e) for e in data.train_embs)
    rows.append(
      (f"  of which fraction 1.0 alone ({num_frames} frames)", sec, f"{100 * acc[1.0]:.2f}")
    )
  r2, sec = timed(
    metrics.progression,
    data.train_embs,
    data.train_labels,
    data.val_embs,
    data.val_labels,
    config.fractions,
    data.num_classes,
  )
  rows.append(
    ("progression (3 fractions)", sec, " ".join(f"{f}: {100 * v:.2f}" for f, v in r2.items()))
  )
  tau, sec = timed(metrics.kendalls_tau, data.val_embs, config.tau_stride)
  rows.append(
    (
      f"kendall's tau (stride {config.tau_stride}, {tau.num_pairs} pairs)",
      sec,
      f"{100 * tau.value:.2f}",
    )
  )
  ap, sec = timed(
    metrics.retrieval, data.val_embs, data.val_labels, config.retrieval_ks, config.retrieval_stride
  )
  rows.append(
    (
      f"retrieval (K {tuple(config.retrieval_ks)})",
      sec,
      " ".join(f"{k}: {100 * p:.2f}" for k, p in ap.items()),
    )
  )
  _print_rows(rows)


def section_stress(data: Data, args: argparse.Namespace) -> None:
  """Kendall's tau and retrieval over all videos."""
  del args
  config = config_lib.eval_config()
  print(f"\n== stress: tau and retrieval over all {len(data.all_embs)} videos ==")
  tau, sec_tau = timed(metrics.kendalls_tau, data.all_embs, config.tau_stride)
  ap, sec_ap = timed(
    metrics.retrieval, data.all_embs, data.all_labels, config.retrieval_ks, config.retrieval_stride
  )
  _print_rows(
    [
      (f"kendall's tau ({tau.num_pairs} pairs)", sec_tau, f"{100 * tau.value:.2f}"),
      ("retrieval", sec_ap, " ".join(f"{k}: {100 * p:.2f}" for k, p in ap.items())),
    ]
  )


def section_tau_vs_scipy(data: Data, args: argparse.Namespace) -> None:
  """Vectorised Kendall's tau vs the per-pair scipy loop, same inputs, same run."""
  del args
  stride = config_lib.eval_config().tau_stride
  print("\n== kendall's tau: vectorised vs per-pair scipy loop ==")
  rows = []
  for name, embs in [("val (14)", data.val_embs), ("all (84)", data.all_embs)]:
    ours, sec_ours = timed(metrics.kendalls_tau, embs, stride)
    ref, sec_ref = timed(scipy_tau_loop, [np.asarray(e, np.float64) for e in embs], stride)
    diff = np.nanmax(np.abs(ours.per_pair - ref))
    same_nan = np.array_equal(np.isnan(ours.per_pair), np.isnan(ref))
    rows.append((f"{name}: vectorised", sec_ours, f"tau {100 * ours.value:.4f}"))
    rows.append(
      (
        f"{name}: scipy loop",
        sec_ref,
        f"speed-up x{sec_ref / sec_ours:.1f}, max |diff| {diff:.1e}, NaNs equal {same_nan}",
      )
    )
  _print_rows(rows)


def section_embed_eval(data: Data, args: argparse.Namespace) -> None:
  """Full evaluation of the synthetic dataset: embedding pass (cold, warm) and metrics."""
  del data  # This section embeds real (synthetic) frames instead.
  # pylint: disable=g-import-not-at-top  (JAX only for this section)
  import jax
  from lac_jax import evaluate
  from lac_jax.data import synthetic
  from lac_jax.models import encoder

  size = args.eval_image_size
  data_config = synthetic.default_config()
  data_config.height = data_config.width = size
  train, val = synthetic.load("train", data_config), synthetic.load("val", data_config)
  model_config = encoder.default_config()
  model_config.trunk_options.depth = 18
  model_config.trunk_options.cut = "layer3"  # [N, S/16, S/16, 256].
  model_config.context_padding = "same"
  model = encoder.build_encoder(model_config)
  variables, init_sec = timed(
    encoder.init_variables, model, jax.random.PRNGKey(0), (1, 4, size, size, 3)
  )
  config = config_lib.eval_config()
  config.blas_threads = args.blas_threads
  kw = dict(
    image_size=size,
    chunk=config.trunk_chunk,
    bucket_min=config.bucket_min,
    bucket_growth=config.bucket_growth,
    bucket_multiple=config.bucket_multiple,
    log=lambda s: None,
  )
  videos = train + val
  num_frames = sum(v.num_frames for v in videos)
  lengths = [v.num_frames for v in videos]
  buckets = evaluate.assign_buckets(
    lengths,
    None,
    minimum=config.bucket_min,
    growth=config.bucket_growth,
    multiple=config.bucket_multiple,
  )
  print(
    f"\n== full evaluation, synthetic {len(train)} train / {len(val)} val videos "
    f"({num_frames} frames, lengths {min(lengths)}-{max(lengths)}), {size} px, ResNet-18 "
    f"layer3, {jax.default_backend()} ({jax.devices()[0].device_kind}) =="
  )
  print(
    f"buckets {sorted(set(buckets))}: {sum(buckets)} padded frames for {num_frames} "
    f"(x{sum(buckets) / num_frames:.2f}); trunk chunk {config.trunk_chunk}; "
    f"variables init {init_sec:.1f} s"
  )
  _, cold = timed(evaluate.embed_videos, model, variables, videos, **kw)
  embs, warm = timed(evaluate.embed_videos, model, variables, videos, **kw)
  n = len(train)
  labels = [v.labels for v in videos]
  row, metric_sec = timed(
    metrics.evaluate_embeddings, embs[:n], labels[:n], embs[n:], labels[n:], config
  )
  rows = [
    ("embedding pass, cold (compiles included)", cold, f"{num_frames / cold:.1f} frames/s"),
    ("embedding pass, warm", warm, f"{num_frames / warm:.1f} frames/s"),
    (
      "metrics (4 tasks, 3 fractions)",
      metric_sec,
      " ".join(f"{k} {v:.1f}" for k, v in row.items() if "_" not in k or k.startswith("class")),
    ),
    ("full evaluation, warm (embedding + metrics)", warm + metric_sec, ""),
  ]
  if args.eval_baseline:
    # Unbucketed: one jit per distinct length, whole video, no padding, unchunked trunk.
    fn = jax.jit(lambda v, x: model.apply(v, x[None], None, train=False)[0])
    val_frames = [v.frames for v in val]
    val_count = sum(len(f) for f in val_frames)
    _, base_cold = timed(lambda: [np.asarray(fn(variables, f)) for f in val_frames])
    _, base_warm = timed(lambda: [np.asarray(fn(variables, f)) for f in val_frames])
    _, ours_cold = timed(
      evaluate.embed_videos, model, variables, val, **{**kw, "chunk": config.trunk_chunk // 2}
    )  # New clone: compiles anew.
    _, ours_warm = timed(
      evaluate.embed_videos, model, variables, val, **{**kw, "chunk": config.trunk_chunk // 2}
    )
    distinct = len(set(len(f) for f in val_frames))
    rows += [
      (
        f"val only: per-length jit, cold ({distinct} compiles)",
        base_cold,
        f"bucketed cold {ours_cold:.2f} s: x{base_cold / ours_cold:.1f} faster",
      ),
      (
        "val only: per-length jit, warm",
        base_warm,
        f"bucketed warm {ours_warm:.2f} s: ratio x{base_warm / ours_warm:.2f} ({val_count} frames)",
      ),
    ]
  _print_rows(rows)


ROWS: list[dict] = []  # every printed row, for the results file


def _print_rows(rows: list[tuple[str, float, str]]) -> None:
  ROWS.extend({"name": name, "seconds": sec, "note": note} for name, sec, note in rows)
  width = max(len(r[0]) for r in rows)
  for name, sec, note in rows:
    print(f"{name.ljust(width)}  {sec:8.3f} s  {note}")


SECTIONS = (section_metric_times, section_stress, section_tau_vs_scipy, section_embed_eval)


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--noise",
    type=float,
    default=1.0,
    help="std of the per-frame noise around the shared trajectory",
  )
  parser.add_argument("--svm", action="store_true", help="also time the SVM classifier")
  parser.add_argument(
    "--blas-threads",
    type=int,
    default=None,
    help="limit BLAS threads (threadpoolctl); default: the library default",
  )
  parser.add_argument(
    "--sections",
    nargs="+",
    default=None,
    choices=[f.__name__[len("section_") :] for f in SECTIONS],
    help="run only these sections (default: all, in order)",
  )
  parser.add_argument(
    "--eval-image-size", type=int, default=64, help="embed_eval: frame size of the synthetic videos"
  )
  parser.add_argument(
    "--eval-baseline",
    action="store_true",
    help="embed_eval: also time one jit per video length on the val set",
  )
  args = parser.parse_args(argv)
  data = pouring_sized_data(noise=args.noise, seed=args.seed)
  with threadpoolctl.threadpool_limits(limits=args.blas_threads, user_api="blas"):
    blas = [
      f"{i['internal_api']} {i['num_threads']} thread(s)"
      for i in threadpoolctl.threadpool_info()
      if i["user_api"] == "blas"
    ]
    print(
      f"data: {len(data.all_embs)} videos x 250 frames x 128-d, {data.num_classes} phases; "
      f"numpy {np.__version__}, {os.cpu_count()} CPUs, BLAS: {', '.join(blas)}; "
      f"load average {os.getloadavg()[0]:.2f}"
    )
    for section in SECTIONS:
      if args.sections is None or section.__name__[len("section_") :] in args.sections:
        section(data, args)
  results.write("evaluate", vars(args), ROWS)


if __name__ == "__main__":
  main()
