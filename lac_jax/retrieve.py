r"""Finds the frames of other videos nearest to a query frame, with a trained encoder.

  python -m lac_jax.retrieve --workdir=runs/synthetic --output=retrieval \
      --query=take1.mp4:42 take2.mp4 take3.mp4 frames_of_take4/

Shows the ``--top_k`` frames of the other videos nearest to frame ``FRAME`` (0-based) of the
query video (``--per_video``: the nearest of each), captioned with phases given ``--labels``.
Writes ``retrieval.png`` and ``retrieval.json``. Details: docs/tools.md#retrieve.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from absl import app
from absl import flags
import numpy as np

from lac_jax import cli
from lac_jax import files
from lac_jax import inference
from lac_jax import metrics
from lac_jax import tools
from lac_jax import visualize
from lac_jax.data import inputs

JSON_FILE, PNG_FILE = "retrieval.json", "retrieval.png"


def parse_query(text: str) -> tuple[str, int]:
  """``'VIDEO:FRAME'`` -> ``(VIDEO, FRAME)`` (split at the last colon)."""
  path, sep, frame = str(text).rpartition(":")
  if not sep or not path or not frame.strip().isdigit():
    raise ValueError(
      f"--query={text!r}: expected VIDEO:FRAME with a frame number >= 0, e.g. take1.mp4:42"
    )
  return path, int(frame)


def nearest_frames(
  query: np.ndarray,
  gallery: Sequence[np.ndarray],
  k: int,
  distance: str = "sqeuclidean",
  per_video: bool = False,
) -> list[tuple[int, int, float]]:
  """The gallery frames nearest to one query embedding.

  Args:
    query: ``[D]``. gallery: per video ``[T_i, D]``.
    k: number of results (all frames pooled), or with ``per_video`` the number of videos.
    distance: 'sqeuclidean', 'euclidean' or 'cosine' (``1 - cos``), as the retrieval metric.
    per_video: the nearest frame of each video, nearest videos first.

  Returns:
    ``[(video index, frame, distance)]``, nearest first (ties: lower video, then frame).
  """
  if k < 1:
    raise ValueError(f"k: expected >= 1, got {k}")
  q = metrics.for_distance(np.asarray(query, np.float64)[None], distance)[0]
  best = []
  for v, emb in enumerate(gallery):
    g = metrics.for_distance(np.asarray(emb, np.float64), distance)
    d2 = np.sum((g - q) ** 2, axis=1)
    value = {"sqeuclidean": d2, "euclidean": np.sqrt(d2), "cosine": d2 / 2}[distance]
    frames = np.argsort(value, kind="stable")[: 1 if per_video else k]
    best += [(v, int(f), float(value[f])) for f in frames]
  return sorted(best, key=lambda r: (r[2], r[0], r[1]))[:k]


def retrieve_frames(
  trained: inference.TrainedEncoder,
  query: str,
  paths: Sequence[str],
  output_dir: str,
  *,
  top_k: int = 5,
  per_video: bool = False,
  labels: Optional[dict[str, np.ndarray]] = None,
  phase_names: Optional[Sequence[str]] = None,
  frames_per_chunk: Optional[int] = None,
  progress: bool = True,
) -> dict[str, Any]:
  """Embeds the query video and ``paths``, writes `PNG_FILE` and `JSON_FILE`, returns the JSON.

  ``query``: ``'VIDEO:FRAME'``. The query video is left out of ``paths`` if listed there.
  ``labels``: per-frame phases by video name (`inputs.input_name`).
  """
  query_path, query_frame = parse_query(query)
  same = lambda a, b: (
    os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))
  )
  paths = [p for p in paths if not same(p, query_path)]
  if not paths:
    raise ValueError("give at least one video besides the query video to retrieve from")
  names = tools.unique_names([query_path] + list(paths))
  videos = [inputs.open_input(p) for p in [query_path] + list(paths)]
  embs = [tools.embed_input(trained, v, frames_per_chunk, progress) for v in videos]
  if query_frame >= len(embs[0]):
    raise ValueError(
      f"--query={query}: frame {query_frame} is past the end of "
      f"{query_path} ({len(embs[0])} frames, numbered from 0)"
    )
  labels = labels or {}
  for name, emb in zip(names, embs):
    if name in labels and len(labels[name]) != len(emb):
      raise ValueError(f"labels of {name!r}: {len(labels[name])} values for {len(emb)} frames")
  distance = trained.config.eval.distance
  found = nearest_frames(embs[0][query_frame], embs[1:], top_k, distance, per_video)

  def phase(video: int, frame: int) -> Optional[int]:
    lab = labels.get(names[video])
    return None if lab is None else int(lab[frame])

  def phase_text(p: Optional[int]) -> str:
    if p is None:
      return ""
    return f"\nphase {phase_names[p] if phase_names and 0 <= p < len(phase_names) else p}"

  query_phase = phase(0, query_frame)
  results = []
  for rank, (v, frame, dist) in enumerate(found, 1):
    p = phase(v + 1, frame)
    results.append(
      {
        "rank": rank,
        "input": paths[v],
        "name": names[v + 1],
        "frame": frame,
        "distance": dist,
        "phase": p,
        "same_phase": None if p is None or query_phase is None else p == query_phase,
      }
    )
  wanted: dict[int, set[int]] = {0: {query_frame}}
  for r in found:
    wanted.setdefault(r[0] + 1, set()).add(r[1])
  images = {v: tools.frames_at(videos[v], idx) for v, idx in wanted.items()}
  figure = visualize.plot_retrieval(
    images[0][query_frame],
    f"{names[0]}\nframe {query_frame}{phase_text(query_phase)}",
    [images[v + 1][frame] for v, frame, _ in found],
    [
      f"#{r['rank']} {r['name']}\nframe {r['frame']}, d {r['distance']:.3g}{phase_text(r['phase'])}"
      for r in results
    ],
    matches=[r["same_phase"] for r in results],
    title=f"{'nearest frame per video' if per_video else f'top {top_k} frames'} "
    f"({distance} distance)",
  )
  os.makedirs(output_dir, exist_ok=True)
  files.save_figure(os.path.join(output_dir, PNG_FILE), figure)
  judged = [r["same_phase"] for r in results if r["same_phase"] is not None]
  payload = {
    "query": {"input": query_path, "name": names[0], "frame": query_frame, "phase": query_phase},
    "results": results,
    "same_phase_fraction": float(np.mean(judged)) if judged else None,
    "settings": {
      "distance": distance,
      "top_k": top_k,
      "per_video": per_video,
      "workdir": trained.workdir,
      "checkpoint_step": trained.step,
      "image_size": trained.image_size,
      "frames_per_chunk": frames_per_chunk or trained.default_chunk,
    },
    "videos": [
      {"input": v.path, "name": n, "frames": len(e)} for v, n, e in zip(videos, names, embs)
    ],
    "files": {"json": JSON_FILE, "png": PNG_FILE},
  }
  files.write_json(os.path.join(output_dir, JSON_FILE), payload)
  return payload


def main(argv: Sequence[str]) -> int:
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  if FLAGS.query is None:
    raise app.UsageError("--query=VIDEO:FRAME is required")
  paths = list(argv[1:])
  labels, phases = tools.load_labels(FLAGS.labels) if FLAGS.labels else (None, None)
  parse_query(FLAGS.query)  # A bad query fails before the encoder loads.
  trained = tools.load_encoder()
  payload = retrieve_frames(
    trained,
    FLAGS.query,
    paths,
    FLAGS.output,
    top_k=FLAGS.top_k,
    per_video=FLAGS.per_video,
    labels=labels,
    phase_names=phases,
    frames_per_chunk=FLAGS.frames_per_chunk,
    progress=FLAGS.progress,
  )
  for r in payload["results"]:
    print(
      f"#{r['rank']}: {r['input']} frame {r['frame']} (distance {r['distance']:.4g}"
      + ("" if r["phase"] is None else f", phase {r['phase']}")
      + ")"
    )
  print(f"-> {os.path.join(FLAGS.output, PNG_FILE)}, {JSON_FILE}")
  return 0


def run() -> None:
  """The command line (``python -m lac_jax.retrieve``, ``lac-retrieve``)."""
  tools.define_flags()
  flags.DEFINE_string("query", None, "VIDEO:FRAME, the query frame (0-based).")
  flags.DEFINE_integer(
    "top_k", 5, "Number of frames (or, with --per_video, videos) shown.", lower_bound=1
  )
  flags.DEFINE_bool(
    "per_video",
    False,
    "The nearest frame of each other video instead of the top frames of all of them pooled.",
  )
  flags.DEFINE_string("labels", None, "JSON file of per-frame phases by video name.")
  cli.run("retrieve", main)


if __name__ == "__main__":
  run()
