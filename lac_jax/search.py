r"""Finds where a clip's action happens in a library of long videos, by local alignment.

  python -m lac_jax.search --workdir=runs/synthetic --query=clip.mp4:40:90 --output=found \
      recording1.mp4 recording2.mov frames_dir/ embeddings_dir/

QUERY: a video file or frame folder, optionally ``:START:END`` (frames ``START`` to ``END - 1``).
LIBRARY: video files, frame folders, or ``lac_jax.embed`` folders of the same checkpoint. Writes
every significant, non-overlapping hit per library video, best first: ``hits.json``,
``hits.png`` and with ``--clips`` one mp4 per hit. Details, scoring, significance: docs/search.md.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Optional, Sequence, Union

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from lac_jax import cli
from lac_jax import files
from lac_jax import inference
from lac_jax import logs
from lac_jax import tools
from lac_jax import visualize
from lac_jax.alignment import local_search
from lac_jax.data import inputs

JSON_FILE, PNG_FILE = "hits.json", "hits.png"
MAD_TO_STD = 1.4826  # a normal distribution's standard deviation per median absolute deviation


@dataclasses.dataclass
class LibraryVideo:
  """One searched video: its name, the input it came from, its embedding ``[n, D]`` and fps."""

  name: str
  path: str
  embedding: np.ndarray
  fps: Optional[float] = None


@dataclasses.dataclass
class Hit:
  """Where the query matched: frames ``start``..``end`` (inclusive) of library video ``video``.

  ``score``: the hard Smith-Waterman score; ``evalue``: chance alignments at least as good
  expected in that video; ``pvalue``: ``1 - exp(-evalue)``; ``pairs``: int ``[N, 2]`` matched
  (query frame, video frame), query frames counted from the query span's start; ``phases``:
  per frame start..end, the query's phase transferred through the alignment (-1: none).
  """

  video: str
  path: str
  start: int
  end: int
  score: float
  evalue: float
  pvalue: float
  pairs: np.ndarray
  fps: Optional[float] = None
  phases: Optional[list[int]] = None

  def to_json(self) -> dict[str, Any]:
    out = {
      "video": self.video,
      "path": self.path,
      "start_frame": self.start,
      "end_frame": self.end,
      "score": self.score,
      "evalue": self.evalue,
      "pvalue": self.pvalue,
      "query_span": [int(self.pairs[0, 0]), int(self.pairs[-1, 0])],
      "pairs": self.pairs.tolist(),
    }
    if self.fps:
      out.update(start_time=self.start / self.fps, end_time=(self.end + 1) / self.fps)
    if self.phases is not None:
      out["phases"] = self.phases
    return out


# ------------------------------------------------------------------------------------------
# Inputs.


def parse_query(text: str) -> tuple[str, Optional[int], Optional[int]]:
  """``PATH`` or ``PATH:START:END`` -> (path, start, end); a path may itself contain ':'."""
  parts = text.rsplit(":", 2)
  if len(parts) == 3 and all(p.lstrip("-").isdigit() for p in parts[1:]):
    return parts[0], int(parts[1]), int(parts[2])
  return text, None, None


def query_span(
  num_frames: int, start: Optional[int], end: Optional[int], what: str
) -> tuple[int, int]:
  """Checked ``[start, end)`` within a video of ``num_frames`` frames (default: all of it)."""
  start = 0 if start is None else start
  end = num_frames if end is None else end
  if not 0 <= start < end <= num_frames or end - start < 2:
    raise ValueError(
      f"{what}: the span {start}:{end} is not inside the video's {num_frames} "
      "frames (need 0 <= START < END <= frames, at least 2 frames)"
    )
  return start, end


def _embed_dir(trained: inference.TrainedEncoder, directory: str) -> list[LibraryVideo]:
  """The videos of a ``lac_jax.embed`` output folder, after checking it is this model's."""
  index = files.read_json_object(
    os.path.join(directory, tools.INDEX_FILE), f"{directory} (a lac_jax.embed output)"
  )
  if index.get("fingerprint") != trained.fingerprint():
    raise ValueError(
      f"{directory}: embedded by {index.get('workdir')} step {index.get('checkpoint_step')}, "
      f"not by the encoder searched with ({trained.workdir} step {trained.step}); run "
      f"lac_jax.embed again with this --workdir"
    )
  out = []
  for entry in index.get("inputs", []):
    if entry.get("file"):
      out.append(
        LibraryVideo(
          entry["name"],
          entry.get("path") or entry["input"],
          np.load(os.path.join(directory, entry["file"])),
          entry.get("fps"),
        )
      )
  return out


def is_embed_dir(path: str) -> bool:
  return os.path.isfile(os.path.join(os.path.expanduser(path), tools.INDEX_FILE))


def load_library(
  trained: inference.TrainedEncoder,
  paths: Sequence[str],
  *,
  frames_per_chunk: Optional[int] = None,
  progress: bool = False,
) -> list[LibraryVideo]:
  """Embeds (or reads, for ``lac_jax.embed`` folders) every library input, in order."""
  if not paths:
    raise ValueError(
      "the library is empty: give at least one video, frame folder or "
      "lac_jax.embed folder to search"
    )
  out = []
  for path in paths:
    if is_embed_dir(path):
      out += _embed_dir(trained, os.path.expanduser(path))
      continue
    video = inputs.open_input(path)
    emb = tools.embed_input(trained, video, frames_per_chunk, progress)
    out.append(LibraryVideo(video.name, os.path.abspath(os.path.expanduser(path)), emb, video.fps))
  if not out:
    raise ValueError(f"the library {list(paths)} holds no embedded video")
  return out


# ------------------------------------------------------------------------------------------
# Scores.


@dataclasses.dataclass(frozen=True)
class Scoring:
  """Cell score ``(center - |q_i - v_j|) / scale - offset``: a frame distance in units of the
  spread of query-to-library distances (robust: median, MAD), minus ``offset`` so that
  unrelated frames score below 0 on average and alignments stay local."""

  center: float
  scale: float
  offset: float

  def __call__(self, q: jax.Array, t: jax.Array) -> jax.Array:
    """``q [m, D]``, ``t [B, C, D]`` -> ``[B, m, C]``."""
    diff = q[None, :, None, :] - t[:, None, :, :]
    dist = jnp.sqrt(jnp.sum(diff * diff, -1))
    return (self.center - dist) / self.scale - self.offset


def fit_scoring(
  query: np.ndarray,
  frames: np.ndarray,
  offset: float,
  rng: np.random.Generator,
  max_pairs: int = 200_000,
) -> Scoring:
  """`Scoring` from the distances of the query's frames to (a sample of) library frames."""
  take = min(len(frames), max(1, max_pairs // max(1, len(query))))
  sample = frames[rng.choice(len(frames), take, replace=False)]
  dist = np.sqrt(
    np.maximum(np.sum(query**2, 1)[:, None] + np.sum(sample**2, 1)[None] - 2 * query @ sample.T, 0)
  )
  center = float(np.median(dist))
  scale = MAD_TO_STD * float(np.median(np.abs(dist - center)))
  if not scale > 0:
    raise ValueError(
      "the query's frames are equally far from every library frame (constant "
      "embeddings?): nothing to search with"
    )
  return Scoring(center, scale, float(offset))


@functools.partial(jax.jit, static_argnums=0)
def _cells(scoring: Scoring, q: jax.Array, t: jax.Array) -> jax.Array:
  return scoring(q, t)


class _Scorer:
  """Score blocks of the targets for `local_search` (padded to the block width)."""

  def __init__(self, scoring: Scoring, query: np.ndarray, targets: Sequence[np.ndarray]):
    self.scoring, self.query, self.targets = scoring, jnp.asarray(query, jnp.float32), targets

  def block(self, indices: Sequence[int], start: int, stop: int) -> np.ndarray:
    dim = self.query.shape[1]
    t = np.zeros((len(indices), stop - start, dim), np.float32)
    for k, b in enumerate(indices):
      piece = self.targets[b][start:stop]
      t[k, : len(piece)] = piece
    return np.asarray(_cells(self.scoring, self.query, jnp.asarray(t)))

  def window(self, b: int, j0: int, j1: int) -> np.ndarray:
    """float64 ``[m, j1 - j0]`` (the same formula, in float64 on the host)."""
    q = np.asarray(self.query, np.float64)
    t = np.asarray(self.targets[b][j0:j1], np.float64)
    dist = np.sqrt(np.sum((q[:, None] - t[None]) ** 2, -1))
    s = self.scoring
    return (s.center - dist) / s.scale - s.offset


NULL_MODES = ("shuffled", "blocks", "reversed")


def null_targets(
  videos: Sequence[np.ndarray],
  samples: int,
  length: int,
  mode: str,
  piece: int,
  rng: np.random.Generator,
) -> list[np.ndarray]:
  """``samples`` null targets of ``length`` frames made of library frames: 'shuffled' (frames
  drawn at random: order destroyed), 'blocks' (stretches of ``piece`` consecutive frames in
  random order: order kept within a piece, so slow or still footage stays slow or still) or
  'reversed' (contiguous stretches played backwards)."""
  pool = np.concatenate(videos)
  weights = np.array([len(v) for v in videos], np.float64)
  out = []
  for _ in range(samples):
    if mode == "shuffled":
      out.append(pool[rng.integers(0, len(pool), length)])
      continue
    pieces, size = [], 0
    while size < length:
      v = videos[rng.choice(len(videos), p=weights / weights.sum())]
      span = min(len(v), piece if mode == "blocks" else length - size)
      at = rng.integers(0, len(v) - span + 1)
      chunk = v[at : at + span]
      pieces.append(chunk[::-1] if mode == "reversed" else chunk)
      size += span
    out.append(np.concatenate(pieces)[:length])
  return out


def fit_null(
  scorer_for: Any,
  query_len: int,
  videos: Sequence[np.ndarray],
  gap_open: float,
  gap_extend: float,
  samples: int,
  length: int,
  rng: np.random.Generator,
  block: int,
  mode: str = "shuffled",
) -> local_search.Null:
  """Gumbel of the query's best scores against ``samples`` `null_targets`."""
  if mode not in NULL_MODES:
    raise ValueError(f"null: expected one of {NULL_MODES}, got {mode!r}")
  targets = null_targets(videos, samples, length, mode, max(2, query_len // 4), rng)
  scorer = scorer_for(targets)
  best = local_search.sweep(
    functools.partial(scorer.block, list(range(samples))),
    [length] * samples,
    query_len,
    gap_open,
    gap_extend,
    block=block,
  )
  return local_search.fit_gumbel(best.score, query_len, length)


def search(
  trained: inference.TrainedEncoder,
  query: Union[str, np.ndarray],
  library: Sequence[Union[str, LibraryVideo]],
  *,
  start: Optional[int] = None,
  end: Optional[int] = None,
  max_hits_per_video: int = 5,
  max_evalue: float = 0.01,
  gap_open: float = 2.0,
  gap_extend: float = 0.5,
  offset: float = 1.0,
  null_samples: int = 500,
  null_length: Optional[int] = None,
  null_mode: str = "shuffled",
  seed: int = 0,
  block: int = 1024,
  query_labels: Optional[np.ndarray] = None,
  frames_per_chunk: Optional[int] = None,
  progress: bool = False,
) -> tuple[list[Hit], dict[str, Any]]:
  """Every significant local alignment of the query span in every library video.

  Args:
    trained: the encoder (`inference.load_trained`).
    query: a video path / frame folder, or its embedding ``[T, D]``; ``start``, ``end``: the
      span searched for (frames ``start..end-1``; default the whole query).
    library: paths (videos, frame folders, ``lac_jax.embed`` folders) or `LibraryVideo`.
    max_hits_per_video: hits per video, at most (non-overlapping, best first).
    max_evalue: report hits whose E-value is at most this.
    gap_open, gap_extend, offset: the scoring, in units of the distance spread (`Scoring`).
    null_samples, null_length, null_mode: null targets for the significance (`null_targets`;
      default length: the library videos' median, within [max(4 x span, 128), 4096] frames);
      ``seed`` draws them.
    block: library frames scored per device call (memory: ``videos x span x block`` scores).
    query_labels: per-frame phases of the query video: each hit gets them transferred.

  Returns:
    ``(hits ranked by E-value, details)``; details: the query, scoring, null and library.
  """
  rng = np.random.default_rng(seed)
  what = "query" if not isinstance(query, str) else f"--query={query}"
  q_all = np.asarray(
    query
    if not isinstance(query, str)
    else tools.embed_input(trained, inputs.open_input(query), frames_per_chunk, progress),
    np.float32,
  )
  start, end = query_span(len(q_all), start, end, what)
  q = q_all[start:end]
  videos = [
    v
    for item in library
    for v in (
      [item]
      if isinstance(item, LibraryVideo)
      else load_library(trained, [item], frames_per_chunk=frames_per_chunk, progress=progress)
    )
  ]
  if not videos:
    raise ValueError("the library is empty: nothing to search")
  for v in videos:
    if v.embedding.ndim != 2 or v.embedding.shape[1] != q.shape[1]:
      raise ValueError(
        f"library video {v.path}: embedding of shape {v.embedding.shape}, the "
        f"query's frames are {q.shape[1]}-d (another model?)"
      )
  pool = np.concatenate([v.embedding for v in videos]).astype(np.float32)
  scoring = fit_scoring(q.astype(np.float64), pool.astype(np.float64), offset, rng)
  scorer_for = lambda targets: _Scorer(scoring, q, targets)
  lengths = [len(v.embedding) for v in videos]
  length = null_length or int(np.clip(np.median(lengths), max(4 * len(q), 128), 4096))
  null = fit_null(
    scorer_for,
    len(q),
    [v.embedding.astype(np.float32) for v in videos],
    gap_open,
    gap_extend,
    null_samples,
    length,
    rng,
    block,
    null_mode,
  )
  scorer = scorer_for([v.embedding.astype(np.float32) for v in videos])
  bar = logs.progress_bar(
    progress,
    total=sum(len(v.embedding) for v in videos),
    unit="frame",
    desc="searching",
    leave=False,
  )
  with bar:
    found = local_search.waterman_eggert(
      scorer.block,
      scorer.window,
      [len(v.embedding) for v in videos],
      len(q),
      gap_open,
      gap_extend,
      max_hits=max_hits_per_video,
      accept=lambda score, n: null.evalue(score, n) <= max_evalue,
      block=block,
      progress=bar.update,
    )
  hits = []
  for per_video in found:
    for h in per_video:
      v = videos[h.target]
      lo, hi = h.target_span
      phases = None
      if query_labels is not None:
        shifted = h.pairs + np.array([start, 0])
        phases = tools.transfer_labels(shifted, np.asarray(query_labels), len(v.embedding))
        phases = phases[lo : hi + 1].tolist()
      hits.append(
        Hit(
          v.name,
          v.path,
          lo,
          hi,
          h.score,
          null.evalue(h.score, len(v.embedding)),
          null.pvalue(h.score, len(v.embedding)),
          h.pairs,
          v.fps,
          phases,
        )
      )
  hits.sort(key=lambda h: (h.evalue, -h.score))
  details = {
    "query": {"frames": len(q_all), "start": start, "end": end},
    "scoring": dataclasses.asdict(scoring) | {"gap_open": gap_open, "gap_extend": gap_extend},
    "null": {
      "loc": null.loc,
      "scale": null.scale,
      "lambda": null.lam,
      "k": null.k,
      "samples": null.samples,
      "length": null.n,
      "mode": null_mode,
      "fit": "empirical" if null.empirical else "gumbel",
    },
    "max_evalue": max_evalue,
    "max_hits_per_video": max_hits_per_video,
    "library": [
      {"name": v.name, "path": v.path, "frames": len(v.embedding), "fps": v.fps} for v in videos
    ],
  }
  return hits, details


# ------------------------------------------------------------------------------------------
# Outputs.


def contact_sheet(
  query_path: str, start: int, hits: Sequence[Hit], columns: int = 6, height: int = 96
) -> Any:
  """A figure: one row per hit (ranked), the query span's frames on the left half and the hit's
  partner frames on the right, ``columns`` evenly spaced query frames each."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  rows = max(1, len(hits))
  figure, axes = plt.subplots(rows, 1, figsize=(2 * columns * 1.1, 1.4 * rows + 0.4), squeeze=False)
  query_frames: dict[int, np.ndarray] = {}
  for r, hit in enumerate(hits):
    pairs = hit.pairs
    picks = np.unique(np.linspace(0, len(pairs) - 1, columns).round().astype(int))
    q_idx = [int(pairs[p, 0]) + start for p in picks]
    v_idx = [int(pairs[p, 1]) for p in picks]
    missing = [i for i in q_idx if i not in query_frames]
    if missing:
      query_frames.update(tools.frames_at(inputs.open_input(query_path), missing))
    hit_frames = tools.frames_at(inputs.open_input(hit.path), v_idx)
    strip = [visualize.fit_height(query_frames[i], height) for i in q_idx]
    strip += [np.full((height, 6, 3), 255, np.uint8)]
    strip += [visualize.fit_height(hit_frames[j], height) for j in v_idx]
    axes[r, 0].imshow(np.concatenate(strip, 1))
    axes[r, 0].set_axis_off()
    axes[r, 0].set_title(
      f"#{r + 1} {hit.video} frames {hit.start}-{hit.end}   score "
      f"{hit.score:.1f}   E {hit.evalue:.2g}   (left: query frames "
      f"{q_idx[0]}-{q_idx[-1]})",
      fontsize=8,
      loc="left",
    )
  if not hits:
    axes[0, 0].set_axis_off()
    axes[0, 0].text(0.5, 0.5, "no significant hit", ha="center", va="center")
  figure.tight_layout()
  return figure


def search_to_files(
  trained: inference.TrainedEncoder,
  query: str,
  library: Sequence[str],
  output_dir: str,
  *,
  clips: bool = False,
  labels: Optional[dict] = None,
  video_height: int = 160,
  **kwargs: Any,
) -> dict[str, Any]:
  """`search` from the command line: writes `JSON_FILE`, `PNG_FILE` (and clips); returns the
  JSON's content."""
  path, start, end = parse_query(query)
  qvideo = inputs.open_input(path)
  query_labels = None if labels is None else labels.get(qvideo.name)
  hits, details = search(
    trained, path, library, start=start, end=end, query_labels=query_labels, **kwargs
  )
  os.makedirs(output_dir, exist_ok=True)
  details["query"].update(path=os.path.abspath(path), name=qvideo.name)
  payload = {
    **details,
    "workdir": trained.workdir,
    "checkpoint_step": trained.step,
    "hits": [h.to_json() for h in hits],
  }
  if clips:
    for rank, hit in enumerate(hits, 1):
      name = f"hit{rank:02d}_{hit.video}.mp4"
      shifted = hit.pairs + np.array([details["query"]["start"], 0])
      tools.write_aligned_video(
        os.path.join(output_dir, name),
        qvideo,
        inputs.open_input(hit.path),
        shifted,
        height=video_height,
      )
      payload["hits"][rank - 1]["clip"] = name
  files.write_json(os.path.join(output_dir, JSON_FILE), payload, one_line=("pairs", "phases"))
  files.save_figure(
    os.path.join(output_dir, PNG_FILE), contact_sheet(path, details["query"]["start"], hits)
  )
  return payload


def main(argv: Sequence[str]) -> int:
  library = list(argv[1:])
  if not library:
    raise app.UsageError(
      "give at least one LIBRARY input (video, frame folder or lac_jax.embed folder)"
    )
  f = flags.FLAGS
  trained = tools.load_encoder()
  labels = None
  if f.labels:
    labels = tools.load_labels(f.labels)[0]
  payload = search_to_files(
    trained,
    f.query,
    library,
    f.output,
    clips=f.clips,
    labels=labels,
    max_hits_per_video=f.max_hits_per_video,
    max_evalue=f.max_evalue,
    gap_open=f.gap_open,
    gap_extend=f.gap_extend,
    offset=f.offset,
    null_samples=f.null_samples,
    null_mode=f.null,
    frames_per_chunk=f.frames_per_chunk,
    progress=f.progress,
  )
  for rank, hit in enumerate(payload["hits"], 1):
    print(
      f"#{rank} {hit['video']} frames {hit['start_frame']}-{hit['end_frame']} score "
      f"{hit['score']:.2f} E {hit['evalue']:.3g}"
    )
  print(
    f"{len(payload['hits'])} hit(s) with E <= {f.max_evalue} in "
    f"{len(payload['library'])} video(s) -> {os.path.join(f.output, JSON_FILE)}"
  )
  return 0


def run() -> None:
  """The command line (``python -m lac_jax.search``, ``lac-search``)."""
  tools.define_flags()
  flags.DEFINE_string("query", None, "PATH[:START:END]: the clip (frames START..END-1).")
  flags.DEFINE_integer("max_hits_per_video", 5, "Hits per library video, at most.", lower_bound=1)
  flags.DEFINE_float(
    "max_evalue", 0.01, "Report hits with an E-value at most this.", lower_bound=0.0
  )
  flags.DEFINE_float("gap_open", 2.0, "Gap-open penalty (units of the distance spread).")
  flags.DEFINE_float("gap_extend", 0.5, "Gap-extend penalty (units of the distance spread).")
  flags.DEFINE_float("offset", 1.0, "Subtracted from every cell score (keeps it local).")
  flags.DEFINE_integer("null_samples", 500, "Null targets for the significance.", lower_bound=10)
  flags.DEFINE_enum(
    "null",
    "shuffled",
    list(NULL_MODES),
    "Null targets: library frames in "
    "random order (shuffled), or in random pieces of a quarter of the query that "
    "keep their order (blocks: stricter, for footage with long still or slow "
    "stretches), or stretches played backwards (reversed).",
  )
  flags.DEFINE_bool("clips", False, "Also write one side-by-side mp4 per hit.")
  flags.DEFINE_string(
    "labels",
    None,
    "labels.json with the query video's phases: each hit "
    "gets them transferred through the alignment.",
  )
  flags.mark_flag_as_required("query")
  cli.run("search", main)


if __name__ == "__main__":
  run()
