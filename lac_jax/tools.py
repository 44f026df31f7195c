"""The tools' shared room: what the tools that use a trained workdir (embed, align, retrieve,
search) have in common.

Their common flags, restoring the encoder, embedding an input with a progress bar, unique input
names, the embed index's file name, reading a labels file, picking frames of a video, label
transfer through an alignment and the side-by-side aligned video. Opening inputs is
`lac_jax.data.inputs`; their one-line errors, `cli.run`. A tool module imports this module and
lower ones, never another tool module: future tools (compare, track, index) follow the same
pattern, and what two tools share moves here (docs/extending.md#a-tool).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Sequence

from absl import flags
from absl import logging
import numpy as np

from lac_jax import files
from lac_jax import inference
from lac_jax import logs
from lac_jax.data import encode
from lac_jax.data import inputs

FLAGS = flags.FLAGS
INDEX_FILE = "index.json"  # lac_jax.embed's index of an output folder


def define_flags() -> None:
  """The flags every tool takes; call once, in the tool's ``__main__`` block."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("workdir", None, "Training workdir (its checkpoints/ and config.json).")
  flags.DEFINE_string("output", None, "Output directory (created if missing).")
  config_flags.DEFINE_config_file(
    "config",
    None,
    "The run's config file (default: the config.json training saved in the "
    "workdir; needed for runs trained before that).",
    lock_config=False,
  )
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).", lower_bound=0)
  flags.DEFINE_integer(
    "frames_per_chunk",
    None,
    "Frames per trunk call (bounds memory for long "
    "videos; the result does not depend on it). Default: the config's "
    "eval.trunk_chunk, else 32.",
    lower_bound=1,
  )
  flags.DEFINE_bool("progress", True, "Show progress bars (on stderr).")
  flags.mark_flags_as_required(["workdir", "output"])


def load_encoder() -> inference.TrainedEncoder:
  """The encoder of ``--workdir`` (``--config``, ``--step``), with a log line."""
  trained = inference.load_trained(FLAGS.workdir, FLAGS.config, FLAGS.step)
  logging.info(
    "Restored %s step %d: %s, %d px frames, %d-d embeddings",
    trained.workdir,
    trained.step,
    trained.config.data.dataset,
    trained.image_size,
    trained.output_dim,
  )
  return trained


def embed_input(
  trained: inference.TrainedEncoder,
  video: inputs.InputVideo,
  frames_per_chunk: Optional[int],
  progress: bool,
) -> np.ndarray:
  """`TrainedEncoder.embed` with a progress bar over the video's frames."""
  with logs.progress_bar(
    progress, total=video.num_frames, unit="frame", desc=video.name, leave=False
  ) as bar:
    return trained.embed(video, frames_per_chunk, progress=bar.update)


def unique_names(paths: Sequence[str]) -> list[str]:
  """`inputs.input_name` of each path, with ``_2``, ``_3``... appended to repeated names."""
  seen: dict[str, int] = {}
  names = []
  for path in paths:
    name = inputs.input_name(path) or "input"
    seen[name] = seen.get(name, 0) + 1
    names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
  return names


def load_labels(path: str) -> tuple[dict[str, np.ndarray], Optional[list[str]]]:
  """Reads a labels file: ``({video name: int [T] phases}, phase names or None)``.

  Accepts ``{"phases": [...], "labels": {name: [...]}}`` or just ``{name: [...]}``
  (`lac_jax.data.videos.parse_labels`).
  """
  from lac_jax.data import videos  # pylint: disable=g-import-not-at-top  (imports TFDS)

  what = f"--labels={path}"
  return videos.parse_labels(files.read_json_object(path, what), what)


def frames_at(video: inputs.InputVideo, wanted: Iterable[int]) -> dict[int, np.ndarray]:
  """Decodes ``video`` once and keeps the frames at the ``wanted`` indices."""
  wanted_set, out = set(int(w) for w in wanted), {}
  for index, frame in enumerate(video.frames()):
    if index in wanted_set:
      out[index] = frame
    if len(out) == len(wanted_set):
      break
  return out


# ------------------------------------------------------------------------------------------
# Label transfer and the aligned video.


UNALIGNED = -1  # transferred label of a frame outside the aligned span


def transfer_labels(pairs: np.ndarray, labels_a: np.ndarray, num_b: int) -> np.ndarray:
  """B's per-frame phases through an alignment: int ``[num_b]``.

  A frame of B paired with frame i of A takes ``labels_a[i]``; a frame of B inside the aligned
  span that the path skips (a gap in A) takes the label of the last paired frame before it;
  frames of B outside the span are `UNALIGNED`.
  """
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  labels_a = np.asarray(labels_a)
  out = np.full(int(num_b), UNALIGNED, np.int64)
  if not len(pairs):
    return out
  if pairs[:, 0].max() >= len(labels_a):
    raise ValueError(
      f"labels of A: {len(labels_a)} frames labelled, the alignment pairs frame {pairs[:, 0].max()}"
    )
  current = UNALIGNED
  partner = dict(zip(pairs[:, 1].tolist(), pairs[:, 0].tolist()))
  for j in range(int(pairs[0, 1]), int(pairs[-1, 1]) + 1):
    if j in partner:
      current = int(labels_a[partner[j]])
    out[j] = current
  return out


def transfer_report(transferred: np.ndarray, labels_b: Optional[np.ndarray]) -> dict[str, Any]:
  """How much of B the transfer covers and, with B's own labels, how often it is right."""
  transferred = np.asarray(transferred)
  aligned = transferred != UNALIGNED
  report: dict[str, Any] = {
    "aligned_frames": int(aligned.sum()),
    "coverage": float(aligned.mean()) if aligned.size else 0.0,
  }
  if labels_b is not None:
    labels_b = np.asarray(labels_b)
    if labels_b.shape != transferred.shape:
      raise ValueError(
        f"labels of B: {labels_b.size} frames labelled, B has {transferred.size} frames"
      )
    known = aligned & (labels_b >= 0)
    report["accuracy_aligned"] = (
      float((transferred[known] == labels_b[known]).mean()) if known.any() else None
    )
    labelled = labels_b >= 0
    report["accuracy_all"] = (
      float((transferred[labelled] == labels_b[labelled]).mean()) if labelled.any() else None
    )
  return report


def partner_frames(pairs: np.ndarray) -> list[tuple[int, int, bool]]:
  """``(i, j, matched)`` for every frame ``i`` of A's aligned span (first to last paired ``i``):
  ``j`` is the frame of B paired with ``i``, or, for frames of A the alignment skips, the frame
  of B paired with the nearest earlier frame of A (``matched`` False)."""
  pairs = np.asarray(pairs).reshape(-1, 2)
  if not len(pairs):
    return []
  partner = dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist()))
  out, j = [], int(pairs[0, 1])
  for i in range(int(pairs[0, 0]), int(pairs[-1, 0]) + 1):
    matched = i in partner
    j = partner[i] if matched else j
    out.append((i, j, matched))
  return out


class _Frames:
  """Frames of a video by index: forward-only streaming when indices never go back, else the
  whole (display-sized) video in memory."""

  def __init__(self, video: inputs.InputVideo, height: int, forward_only: bool):
    from lac_jax import visualize  # pylint: disable=g-import-not-at-top  (loads matplotlib)

    self._resize = lambda f: visualize.fit_height(f, height)
    self._stream: Iterator[np.ndarray] = video.frames(self._resize)
    self._frames = None if forward_only else list(self._stream)
    self._index, self._frame = -1, None

  def __getitem__(self, index: int) -> np.ndarray:
    if self._frames is not None:
      return self._frames[index]
    if index < self._index:
      raise ValueError(f"frame {index} requested after frame {self._index}")
    while self._index < index:
      self._frame = next(self._stream)
      self._index += 1
    return self._frame


def write_aligned_video(
  path: str,
  video_a: inputs.InputVideo,
  video_b: inputs.InputVideo,
  pairs: np.ndarray,
  *,
  height: int = 240,
  fps: Optional[float] = None,
) -> int:
  """Writes A's aligned span beside B's partner frames (`partner_frames`) as an mp4.

  Each frame is captioned ``A: frame i / T_a`` and ``B: frame j / T_b`` (``(A gap)`` when the
  alignment skips frame i of A), over the videos' names. Returns the number of frames written.
  """
  from lac_jax import visualize  # pylint: disable=g-import-not-at-top  (loads matplotlib)

  triples = partner_frames(pairs)
  if not triples:
    raise ValueError("the alignment is empty: no frame pairs to show")
  forward = all(b[1] >= a[1] for a, b in zip(triples, triples[1:]))
  frames_a, frames_b = _Frames(video_a, height, True), _Frames(video_b, height, forward)
  t_a = video_a.num_frames or "?"
  t_b = video_b.num_frames or "?"

  def frames() -> Iterator[np.ndarray]:
    for i, j, matched in triples:
      yield visualize.side_by_side(
        frames_a[i],
        frames_b[j],
        (f"A: frame {i} / {t_a}", video_a.name),
        (f"B: frame {j} / {t_b}" + ("" if matched else " (A gap)"), video_b.name),
        height=height,
      )

  return encode.write_video(path, frames(), fps=fps or video_a.fps or 25.0)
