"""Search speed: library frames searched per second for one query, batched vs one video at a time.

The kernel of `lac_jax.search` (`lac_jax.alignment.local_search.sweep`: the cell scores and
the hard Smith-Waterman swept along the library in blocks) on random embeddings: a query of
``--query`` frames against ``--videos`` library videos of ``--frames`` frames each, all videos
in one batch, against the same kernel run on each video alone (batch of 1), in the same run.
Prints frames/s for both and the ratio; writes ``benchmarks/results/search.json``.

  python benchmarks/search.py [--query 100 --videos 8 --frames 20000 --dim 128]
  python benchmarks/search.py --calibration   # E-values on null data against their nominal rate
  python benchmarks/search.py --phases=runs/synthetic_lav   # phases found by a trained encoder
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import results  # pylint: disable=g-import-not-at-top  (benchmarks/results.py)
from lac_jax import search  # pylint: disable=g-import-not-at-top
from lac_jax.alignment import local_search  # pylint: disable=g-import-not-at-top


def timed_sweep(scorer, indices, lengths, m, block) -> float:
  start = time.perf_counter()
  local_search.sweep(functools.partial(scorer.block, indices), lengths, m, 2.0, 0.5, block=block)
  return time.perf_counter() - start


def calibration(num_videos: int = 300) -> list[dict]:
  """``--calibration``: on random (null) embeddings, the fraction of videos whose best hit has
  E <= e, against the nominal 1 - exp(-e), for a few query and video lengths."""
  rows = []
  for m, n, seed in [(20, 300, 0), (40, 600, 1), (20, 2000, 2), (10, 500, 3)]:
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(m, 8))
    library = [
      search.LibraryVideo(f"v{i}", f"v{i}", rng.normal(size=(n, 8))) for i in range(num_videos)
    ]
    hits, _ = search.search(None, query, library, max_hits_per_video=1, max_evalue=1e9, seed=seed)
    evalues = np.array([h.evalue for h in hits] + [np.inf] * (num_videos - len(hits)))
    row = {
      "query": m,
      "frames": n,
      "videos": num_videos,
      "observed": {str(e): float(np.mean(evalues <= e)) for e in (0.05, 0.1, 0.5, 1.0)},
      "nominal": {str(e): float(-np.expm1(-e)) for e in (0.05, 0.1, 0.5, 1.0)},
    }
    print(
      f"query {m} x video {n}: "
      + ", ".join(
        f"E<={e}: {row['observed'][e]:.3f} (nominal {row['nominal'][e]:.3f})"
        for e in row["observed"]
      )
    )
    rows.append(row)
  return rows


def phases(workdir: str, null_modes: tuple[str, ...] = ("shuffled", "blocks")) -> list[dict]:
  """``--phases=RUN``: a trained encoder searching for phases of synthetic videos in long
  recordings. The query is one phase span of validation video 0 (pour; then tilt + pour +
  untilt). The library is 5 recordings of 3 other validation videos each, back to back with 40
  still frames between, plus one recording of 3 videos with the queried phases cut out. Frame
  precision and recall of the hits against the true phase frames, and the hits in the
  recording without the phase, for each null."""
  from lac_jax import inference  # pylint: disable=g-import-not-at-top
  from lac_jax.data import synthetic  # pylint: disable=g-import-not-at-top

  trained = inference.load_trained(workdir)
  vals = [synthetic.generate_video(i, "val", synthetic.default_config()) for i in range(16)]
  rows = []
  for wanted in ((2,), (1, 2, 3)):
    query = vals[0]
    idx = np.nonzero(np.isin(query.labels, wanted))[0]
    lo, hi = int(idx[0]), int(idx[-1]) + 1
    library, truth = [], []
    for r in range(6):
      pieces = []
      for v in vals[1 + 3 * r : 4 + 3 * r] if r < 5 else vals[1:4]:
        keep = np.ones(v.num_frames, bool) if r < 5 else ~np.isin(v.labels, wanted)
        pieces += [
          (np.repeat(v.frames[:1], 40, 0), np.full(40, -1)),
          (v.frames[keep], v.labels[keep]),
        ]
      frames = np.concatenate([p[0] for p in pieces])
      labels = np.concatenate([p[1] for p in pieces])
      name = f"rec{r}" if r < 5 else "without_phase"
      library.append(search.LibraryVideo(name, name, trained.embed(frames)))
      truth.append(np.isin(labels, wanted))
    for null_mode in null_modes:
      hits, _ = search.search(
        trained, trained.embed(query.frames), library, start=lo, end=hi, null_mode=null_mode
      )
      predicted = [np.zeros(len(t), bool) for t in truth]
      for h in hits:
        predicted[[v.name for v in library].index(h.video)][h.start : h.end + 1] = True
      tp = sum(int((p & t).sum()) for p, t in zip(predicted, truth))
      fp = sum(int((p & ~t).sum()) for p, t in zip(predicted, truth))
      fn = sum(int((~p & t).sum()) for p, t in zip(predicted, truth))
      row = {
        "phases": [synthetic.PHASES[k] for k in wanted],
        "query": [lo, hi],
        "null": null_mode,
        "hits": len(hits),
        "precision": tp / max(1, tp + fp),
        "recall": tp / max(1, tp + fn),
        "hits_without_phase": sum(h.video == "without_phase" for h in hits),
      }
      print(
        f"{'+'.join(row['phases']):>16} null {null_mode:>8}: {len(hits):2d} hits, frame "
        f"precision {row['precision']:.2f}, recall {row['recall']:.2f}, "
        f"{row['hits_without_phase']} in the recording without it"
      )
      rows.append(row)
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--phases",
    default="",
    help="a training workdir: search synthetic phases in long recordings "
    "with its encoder instead (results/search_phases.json)",
  )
  parser.add_argument(
    "--calibration",
    action="store_true",
    help="the E-values' calibration on null data instead (results/search_calibration.json)",
  )
  parser.add_argument("--query", type=int, default=100, help="query frames")
  parser.add_argument("--videos", type=int, default=8, help="library videos")
  parser.add_argument("--frames", type=int, default=20000, help="frames per library video")
  parser.add_argument("--dim", type=int, default=128, help="embedding size")
  parser.add_argument("--block", type=int, default=1024, help="library frames per device call")
  args = parser.parse_args()
  if args.calibration:
    results.write("search_calibration", vars(args), calibration())
    return
  if args.phases:
    results.write("search_phases", vars(args), phases(args.phases))
    return
  rng = np.random.default_rng(0)
  query = rng.normal(size=(args.query, args.dim)).astype(np.float32)
  library = [
    rng.normal(size=(args.frames, args.dim)).astype(np.float32) for _ in range(args.videos)
  ]
  scoring = search.fit_scoring(query.astype(np.float64), library[0].astype(np.float64), 1.0, rng)
  scorer = search._Scorer(scoring, query, library)  # pylint: disable=protected-access
  lengths = [args.frames] * args.videos
  # Warm-up (compilation) for both shapes.
  timed_sweep(scorer, list(range(args.videos)), [args.block] * args.videos, args.query, args.block)
  timed_sweep(scorer, [0], [args.block], args.query, args.block)
  batched = timed_sweep(scorer, list(range(args.videos)), lengths, args.query, args.block)
  single = sum(
    timed_sweep(scorer, [b], [args.frames], args.query, args.block) for b in range(args.videos)
  )
  total = args.videos * args.frames
  out = {
    "batched_frames_per_s": total / batched,
    "one_by_one_frames_per_s": total / single,
    "speedup": single / batched,
    "batched_s": batched,
    "one_by_one_s": single,
    "cells_per_s": total * args.query / batched,
  }
  print(
    f"query {args.query} frames vs {args.videos} videos x {args.frames} frames "
    f"({args.dim}-d, blocks of {args.block}):"
  )
  print(
    f"  batched:    {out['batched_frames_per_s']:,.0f} library frames/s "
    f"({out['cells_per_s'] / 1e6:.1f} M cells/s)"
  )
  print(f"  one by one: {out['one_by_one_frames_per_s']:,.0f} library frames/s")
  print(f"  ratio: {out['speedup']:.2f}x")
  results.write("search", vars(args), out)


if __name__ == "__main__":
  main()
