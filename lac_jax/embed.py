r"""Embeds your videos with a trained encoder: one float32 ``[num_frames, D]`` array per input.

  python -m lac_jax.embed --workdir=runs/synthetic --output=embeddings \
      take1.mp4 take2.mov frames_of_take3/

Inputs are video files or folders of frames; writes ``OUTPUT/<input name>.npy`` (one row per
decoded frame) and ``OUTPUT/index.json``. An unreadable input is reported and skipped (exit
status 1). Details (inputs, the index, resizing): docs/tools.md#embed.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional, Sequence

from absl import app

from lac_jax import cli
from lac_jax import files
from lac_jax import inference
from lac_jax import logs
from lac_jax import tools
from lac_jax.data import inputs as inputs_lib


def embed_inputs(
  trained: inference.TrainedEncoder,
  inputs: Sequence[str],
  output_dir: str,
  *,
  frames_per_chunk: Optional[int] = None,
  progress: bool = True,
  log: Callable[[str], None] = print,
) -> dict[str, Any]:
  """Embeds every input into ``output_dir/<name>.npy`` and writes ``output_dir/index.json``.

  Args:
    trained: the encoder (`inference.load_trained`).
    inputs: video files and frame folders.
    output_dir: created if missing; existing files of the same names are replaced.
    frames_per_chunk: frames per trunk call (default `TrainedEncoder.default_chunk`).
    progress: progress bars over inputs and frames.
    log: one line per input (done or failed).

  Returns:
    The index: ``{'workdir', 'checkpoint_step', 'fingerprint' (`TrainedEncoder.fingerprint`:
    which model made them), 'embedding_size', 'image_size', 'frames_per_chunk', 'inputs':
    [{'input', 'path' (absolute), 'name', 'file', 'kind', 'frames', 'fps', 'error'}...],
    'failed': number of inputs with an error}``.
  """
  os.makedirs(output_dir, exist_ok=True)
  entries = []
  names = tools.unique_names(inputs)
  with logs.progress_bar(progress, total=len(inputs), unit="video", desc="inputs") as bar:
    for path, name in zip(inputs, names):
      entry: dict[str, Any] = {
        "input": path,
        "path": os.path.abspath(os.path.expanduser(path)),
        "name": name,
        "file": None,
        "kind": None,
        "frames": None,
        "fps": None,
        "error": None,
      }
      try:
        video = inputs_lib.open_input(path)
        entry.update(kind=video.kind, fps=video.fps)
        emb = tools.embed_input(trained, video, frames_per_chunk, progress)
        files.save_npy(os.path.join(output_dir, f"{name}.npy"), emb)
        entry.update(file=f"{name}.npy", frames=int(emb.shape[0]))
        bar.write(f"{path}: {emb.shape[0]} frames -> {os.path.join(output_dir, name)}.npy")
      except inputs_lib.InputError as e:
        entry["error"] = str(e)
        bar.write(f"lac_jax.embed: error: {e}", file=sys.stderr)
      entries.append(entry)
      bar.update(1)
  index = {
    "workdir": trained.workdir,
    "checkpoint_step": trained.step,
    "fingerprint": trained.fingerprint(),
    "embedding_size": trained.output_dim,
    "image_size": trained.image_size,
    "frames_per_chunk": frames_per_chunk or trained.default_chunk,
    "inputs": entries,
    "failed": sum(e["error"] is not None for e in entries),
  }
  files.write_json(os.path.join(output_dir, tools.INDEX_FILE), index)
  log(
    f"embedded {len(entries) - index['failed']} of {len(entries)} inputs into {output_dir} "
    f"(step {trained.step}, {trained.output_dim}-d)"
  )
  return index


def main(argv: Sequence[str]) -> int:
  inputs = list(argv[1:])
  if not inputs:
    raise app.UsageError("give at least one INPUT (video file or folder of frames)")
  trained = tools.load_encoder()
  index = embed_inputs(
    trained,
    inputs,
    tools.FLAGS.output,
    frames_per_chunk=tools.FLAGS.frames_per_chunk,
    progress=tools.FLAGS.progress,
  )
  return 1 if index["failed"] else 0


def run() -> None:
  """The command line (``python -m lac_jax.embed``, ``lac-embed``)."""
  tools.define_flags()
  cli.run("embed", main)


if __name__ == "__main__":
  run()
