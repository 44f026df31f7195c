r"""Aligns two videos with a trained encoder and draws the alignment.

  python -m lac_jax.align --workdir=runs/synthetic --output=alignment take1.mp4 take2.mp4

Both videos (files or folders of frames) are embedded as `lac_jax.embed` does and aligned by the
hard local alignment `alignment.smith_waterman_path` with the checkpoint's gap penalties
(``--nearest``: each frame of A paired with its nearest frame of B). Writes ``alignment.json``,
``alignment.png`` and ``aligned.mp4``. Details (penalties, ``--labels``, outputs):
docs/tools.md#align.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Sequence

from absl import app
from absl import flags
import jax.numpy as jnp
import ml_collections
import numpy as np

from lac_jax import alignment
from lac_jax import cli
from lac_jax import files
from lac_jax import inference
from lac_jax import tools
from lac_jax import visualize
from lac_jax.data import inputs
from lac_jax.losses import lac

JSON_FILE, PNG_FILE, MP4_FILE = "alignment.json", "alignment.png", "aligned.mp4"


def _lac_config(loss_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The run's LAC loss config, or LAC's defaults for a run trained with another loss."""
  return loss_config if loss_config.get("name", lac.NAME) == lac.NAME else lac.default_config()


def similarity(
  za: np.ndarray,
  zb: np.ndarray,
  loss_config: ml_collections.ConfigDict,
  max_block_bytes: int = 1 << 26,
) -> np.ndarray:
  """float32 ``[T_a, T_b]``: LAC's `lac.alignment_similarity` as the loss computes it (LAC's
  defaults for runs of another loss), in blocks of rows (their ``[rows, T_b, E]`` differences
  stay under ``max_block_bytes``)."""
  loss_config = _lac_config(loss_config)
  za, zb = np.asarray(za, np.float32), np.asarray(zb, np.float32)
  rows = max(1, max_block_bytes // max(1, 4 * zb.shape[0] * zb.shape[1]))
  zb_j = jnp.asarray(zb)
  return np.concatenate(
    [
      np.asarray(
        lac.alignment_similarity(
          jnp.asarray(za[r : r + rows]), zb_j, loss_config.sw_similarity, loss_config.sw_eps
        )
      )
      for r in range(0, za.shape[0], rows)
    ]
  )


def gap_penalties(
  trained: inference.TrainedEncoder,
  t_a: int,
  t_b: int,
  gap_open: Optional[float] = None,
  gap_extend: Optional[float] = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
  """``(gap_open, gap_extend, description)`` for aligning ``t_a`` frames with ``t_b``.

  The checkpoint's learned penalties: scalars as they are; per-cell ``[T, T]`` matrices as
  their top-left ``[t_a, t_b]`` block when ``t_a, t_b <= T``. Otherwise the loss's initial
  scalars (``loss.gap_open_init``, ``loss.gap_extend_init``). ``gap_open`` / ``gap_extend``
  given: those scalars instead.
  """
  cfg = _lac_config(trained.config.loss)
  if gap_open is not None or gap_extend is not None:
    go = cfg.gap_open_init if gap_open is None else gap_open
    ge = cfg.gap_extend_init if gap_extend is None else gap_extend
    return (
      np.float64(go),
      np.float64(ge),
      {"source": "flags", "gap_open": float(go), "gap_extend": float(ge)},
    )
  learned = trained.gap_penalties()
  if learned is not None:
    go, ge = learned["gap_open"], learned["gap_extend"]
    if go.ndim == 0:
      return (
        go,
        ge,
        {"source": "checkpoint (learned scalars)", "gap_open": float(go), "gap_extend": float(ge)},
      )
    size = go.shape
    if t_a <= size[0] and t_b <= size[1]:
      go, ge = go[:t_a, :t_b], ge[:t_a, :t_b]
      return (
        go,
        ge,
        {
          "source": f"checkpoint (learned per-cell {size[0]}x{size[1]}, top-left "
          f"{t_a}x{t_b} block)",
          "gap_open": {"mean": float(go.mean()), "min": float(go.min()), "max": float(go.max())},
          "gap_extend": {"mean": float(ge.mean()), "min": float(ge.min()), "max": float(ge.max())},
        },
      )
    reason = (
      f"the videos ({t_a} and {t_b} frames) are longer than the learned per-cell "
      f"{size[0]}x{size[1]} penalties"
    )
  else:
    reason = "the checkpoint has no gap penalties"
  go, ge = np.float64(cfg.gap_open_init), np.float64(cfg.gap_extend_init)
  return (
    go,
    ge,
    {
      "source": f"default scalars (loss.gap_open_init / gap_extend_init): {reason}",
      "gap_open": float(go),
      "gap_extend": float(ge),
    },
  )


def align_embeddings(
  za: np.ndarray,
  zb: np.ndarray,
  trained: inference.TrainedEncoder,
  *,
  nearest: bool = False,
  gap_open: Optional[float] = None,
  gap_extend: Optional[float] = None,
) -> dict[str, Any]:
  """Aligns two embedded videos ``[T_a, D]``, ``[T_b, D]``.

  Returns ``{'pairs': int [N, 2], 'score': float, 'sim': [T_a, T_b], 'settings': dict}``.
  Alignment: ``score`` is the hard SW score ``s*``. ``nearest``: one pair ``(i, argmax_j
  sim[i, j])`` per frame of A and ``score`` the mean of those similarities.
  """
  sim = similarity(za, zb, trained.config.loss)
  cfg = _lac_config(trained.config.loss)
  settings: dict[str, Any] = {"similarity": cfg.sw_similarity, "similarity_eps": cfg.sw_eps}
  if nearest:
    j = np.argmax(sim, axis=1)
    pairs = np.stack([np.arange(len(j)), j], 1)
    score = float(np.mean(sim[pairs[:, 0], pairs[:, 1]]))
    settings.update(
      mode="nearest", score="mean similarity of each frame of A to its nearest frame of B"
    )
  else:
    go, ge, gaps = gap_penalties(trained, sim.shape[0], sim.shape[1], gap_open, gap_extend)
    pairs, score = alignment.smith_waterman_path(sim, go, ge)
    settings.update(
      mode="smith_waterman", score="hard local alignment score s* (gamma -> 0)", gap_penalties=gaps
    )
  return {
    "pairs": np.asarray(pairs, np.int64).reshape(-1, 2),
    "score": float(score),
    "sim": sim,
    "settings": settings,
  }


def _video_entry(video: inputs.InputVideo, num_frames: int) -> dict[str, Any]:
  return {
    "input": video.path,
    "name": video.name,
    "kind": video.kind,
    "frames": num_frames,
    "fps": video.fps,
  }


def align_videos(
  trained: inference.TrainedEncoder,
  path_a: str,
  path_b: str,
  output_dir: str,
  *,
  nearest: bool = False,
  gap_open: Optional[float] = None,
  gap_extend: Optional[float] = None,
  frames_per_chunk: Optional[int] = None,
  video_height: int = 240,
  write_video: bool = True,
  progress: bool = True,
  labels: Optional[dict[str, np.ndarray]] = None,
) -> dict[str, Any]:
  """Embeds two videos, aligns them and writes `JSON_FILE`, `PNG_FILE` and `MP4_FILE`.

  ``labels``: per-frame phases by video name; with A's, the JSON gets B's phases transferred
  through the alignment (`tools.transfer_labels`) and, with B's too, the transfer's accuracy.
  Returns the JSON's content. Raises `inputs.InputError` naming an unreadable video.
  """
  video_a, video_b = inputs.open_input(path_a), inputs.open_input(path_b)
  za = tools.embed_input(trained, video_a, frames_per_chunk, progress)
  zb = tools.embed_input(trained, video_b, frames_per_chunk, progress)
  # Header counts can be off: the decoded counts are the truth.
  video_a = dataclasses.replace(video_a, num_frames=len(za))
  video_b = dataclasses.replace(video_b, num_frames=len(zb))
  result = align_embeddings(
    za, zb, trained, nearest=nearest, gap_open=gap_open, gap_extend=gap_extend
  )
  pairs = result["pairs"]
  os.makedirs(output_dir, exist_ok=True)
  outputs = {"json": JSON_FILE, "png": PNG_FILE, "mp4": MP4_FILE if write_video else None}
  payload = {
    "video_a": _video_entry(video_a, len(za)),
    "video_b": _video_entry(video_b, len(zb)),
    "mode": result["settings"]["mode"],
    "pairs": pairs.tolist(),
    "score": result["score"],
    "span_a": [int(pairs[0, 0]), int(pairs[-1, 0])] if len(pairs) else None,
    "span_b": [int(pairs[:, 1].min()), int(pairs[:, 1].max())] if len(pairs) else None,
    "settings": {
      **result["settings"],
      "workdir": trained.workdir,
      "checkpoint_step": trained.step,
      "image_size": trained.image_size,
      "frames_per_chunk": frames_per_chunk or trained.default_chunk,
    },
    "files": outputs,
  }
  if labels is not None:
    if video_a.name not in labels:
      raise ValueError(
        f"--labels: no labels for A ({video_a.name!r}); the file labels {sorted(labels)[:5]}"
      )
    transferred = tools.transfer_labels(pairs, labels[video_a.name], len(zb))
    payload["transferred_labels"] = transferred.tolist()
    payload["transfer"] = tools.transfer_report(transferred, labels.get(video_b.name))
  files.write_json(
    os.path.join(output_dir, JSON_FILE), payload, one_line=("pairs", "transferred_labels")
  )
  mode = "nearest neighbours" if nearest else "Smith-Waterman alignment"
  figure = visualize.plot_alignment(
    result["sim"],
    pairs,
    name_a=f"A ({video_a.name})",
    name_b=f"B ({video_b.name})",
    title=f"{mode}, score {result['score']:.4g}",
    label="nearest neighbour" if nearest else "alignment path",
  )
  files.save_figure(os.path.join(output_dir, PNG_FILE), figure)
  if write_video and len(pairs):
    tools.write_aligned_video(
      os.path.join(output_dir, MP4_FILE), video_a, video_b, pairs, height=video_height
    )
  return payload


def main(argv: Sequence[str]) -> int:
  if len(argv) != 3:
    raise app.UsageError(f"give exactly two videos, VIDEO_A VIDEO_B (got {len(argv) - 1})")
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  labels = None
  if FLAGS.labels:
    labels = tools.load_labels(FLAGS.labels)[0]
  trained = tools.load_encoder()
  payload = align_videos(
    trained,
    argv[1],
    argv[2],
    FLAGS.output,
    nearest=FLAGS.nearest,
    gap_open=FLAGS.gap_open,
    gap_extend=FLAGS.gap_extend,
    frames_per_chunk=FLAGS.frames_per_chunk,
    video_height=FLAGS.video_height,
    write_video=FLAGS.video,
    progress=FLAGS.progress,
    labels=labels,
  )
  pairs = payload["pairs"]
  print(
    f"{payload['mode']}: {len(pairs)} frame pairs, score {payload['score']:.6g}; A frames "
    f"{payload['span_a']}, B frames {payload['span_b']} -> {FLAGS.output}/{JSON_FILE}, "
    f"{PNG_FILE}" + (f", {MP4_FILE}" if FLAGS.video and pairs else "")
  )
  if "transfer" in payload:
    t = payload["transfer"]
    accuracy = (
      ""
      if t.get("accuracy_aligned") is None
      else f"; accuracy {100 * t['accuracy_aligned']:.1f}% of the aligned frames, "
      f"{100 * t['accuracy_all']:.1f}% of all of B's labelled frames"
    )
    print(
      f"labels transferred to B: {t['aligned_frames']} frames aligned "
      f"({100 * t['coverage']:.1f}%), the rest marked {tools.UNALIGNED}{accuracy}"
    )
  return 0


def run() -> None:
  """The command line (``python -m lac_jax.align``, ``lac-align``)."""
  tools.define_flags()
  flags.DEFINE_bool(
    "nearest",
    False,
    "Pair each frame of A with its nearest frame of B instead of the Smith-Waterman alignment.",
  )
  flags.DEFINE_float("gap_open", None, "Scalar gap-open penalty instead of the checkpoint's.")
  flags.DEFINE_float("gap_extend", None, "Scalar gap-extend penalty instead of the checkpoint's.")
  flags.DEFINE_integer(
    "video_height", 240, "Height of each video in aligned.mp4, pixels.", lower_bound=16
  )
  flags.DEFINE_bool("video", True, "Write aligned.mp4.")
  flags.DEFINE_string(
    "labels",
    None,
    "labels.json with A's per-frame phases (and B's, for the "
    "accuracy): B's phases are transferred through the alignment.",
  )
  cli.run("align", main)


if __name__ == "__main__":
  run()
