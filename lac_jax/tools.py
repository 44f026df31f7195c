"""Command-line plumbing shared by the tools that use a trained workdir (embed, align, retrieve):
their common flags, restoring the encoder, progress bars (their one-line errors: `cli.run`)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from absl import flags
from absl import logging
import numpy as np

from lac_jax import inference

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The flags every tool takes; call once, in the tool's ``__main__`` block."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("workdir", None, "Training workdir (its checkpoints/ and config.json).")
  flags.DEFINE_string("output", None, "Output directory (created if missing).")
  config_flags.DEFINE_config_file(
      "config", None, "The run's config file (default: the config.json training saved in the "
      "workdir; needed for runs trained before that).", lock_config=False)
  flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).", lower_bound=0)
  flags.DEFINE_integer("frames_per_chunk", None, "Frames per trunk call (bounds memory for long "
                       "videos; the result does not depend on it). Default: the config's "
                       "eval.trunk_chunk, else 32.", lower_bound=1)
  flags.DEFINE_bool("progress", True, "Show progress bars (on stderr).")
  flags.mark_flags_as_required(["workdir", "output"])


def load_encoder() -> inference.TrainedEncoder:
  """The encoder of ``--workdir`` (``--config``, ``--step``), with a log line."""
  trained = inference.load_trained(FLAGS.workdir, FLAGS.config, FLAGS.step)
  logging.info("Restored %s step %d: %s, %d px frames, %d-d embeddings", trained.workdir,
               trained.step, trained.config.data.dataset, trained.image_size,
               trained.output_dim)
  return trained


def progress_bar(enabled: bool, **kwargs: Any):
  """A tqdm bar on stderr (a no-op one when disabled or when stderr is no terminal)."""
  import tqdm  # pylint: disable=g-import-not-at-top
  # disable=None: no bar when stderr is not a terminal (logs, CI), where its redraws would
  # interleave with other lines.
  return tqdm.tqdm(disable=None if enabled else True, dynamic_ncols=True, **kwargs)


def embed_input(trained: inference.TrainedEncoder, video: inference.InputVideo,
                frames_per_chunk: Optional[int], progress: bool) -> np.ndarray:
  """`TrainedEncoder.embed` with a progress bar over the video's frames."""
  with progress_bar(progress, total=video.num_frames, unit="frame", desc=video.name,
                    leave=False) as bar:
    return trained.embed(video, frames_per_chunk, progress=bar.update)


def unique_names(paths: Sequence[str]) -> list[str]:
  """`inference.input_name` of each path, with ``_2``, ``_3``... appended to repeated names."""
  seen: dict[str, int] = {}
  names = []
  for path in paths:
    name = inference.input_name(path) or "input"
    seen[name] = seen.get(name, 0) + 1
    names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
  return names
