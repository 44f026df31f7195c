"""A trained encoder applied to any video: restore a training workdir, read frames, embed.

  trained = inference.load_trained("runs/synthetic")    # model + variables + config + step
  video = inference.open_input("take1.mp4")             # a video file or a folder of frames
  emb = trained.embed(video)                            # float32 [num_frames, output_dim]

The result equals `lac_jax.evaluate.embed_videos` on the same frames, with memory bounded for
long videos (the per-frame part runs in chunks). Details: docs/tools.md#inference.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterable, Optional, Union

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lac_jax import checkpoint
from lac_jax import config as config_lib
from lac_jax import evaluate
from lac_jax import losses
from lac_jax import data as data_lib
from lac_jax.data import augment
from lac_jax.data import decode

# Re-exported: opening inputs is part of this module's Python API (docs/tools.md).
from lac_jax.data.inputs import (  # noqa: F401
  IMAGE_EXTENSIONS,
  InputError,
  InputVideo,
  input_name,
  open_input,
)
from lac_jax.models import convert
from lac_jax.models import encoder as encoder_lib

Frames = Union[InputVideo, np.ndarray, Iterable[np.ndarray]]


def frame_resizer(dataset: str, size: int) -> Callable[[np.ndarray], np.ndarray]:
  """How the evaluation pass resizes frames of ``dataset`` to ``size x size`` (aspect not kept).

  Datasets that decode frames at the pipeline's size (``RESIZE_ON_LOAD``) resize with Pillow
  (`decode.resize_frame`); the others' frames are resized by the pipeline (`augment.resize`).
  """
  if not data_lib.dataset(dataset).RESIZE_ON_LOAD:
    return lambda frame: augment.resize(frame[None], size)[0]
  return lambda frame: decode.resize_frame(frame, size)


# ------------------------------------------------------------------------------------------
# A trained encoder.


@dataclasses.dataclass
class TrainedEncoder:
  """An evaluation-mode encoder with its variables, the run's config and checkpoint step.

  Build with `load_trained` (or directly, e.g. from a `TrainState` in a notebook).
  ``loss_params``: the checkpoint's loss parameters (``params[loss.params_key]``, e.g. LAC's
  raw gap penalties), if any.
  """

  model: encoder_lib.LACEncoder
  variables: dict[str, Any]
  config: ml_collections.ConfigDict
  step: int = 0
  workdir: Optional[str] = None
  loss_params: Optional[dict[str, Any]] = None

  def __post_init__(self) -> None:
    self.variables = jax.device_put(evaluate.as_variables(self.variables))
    # The per-step part in pieces of a fixed size: one compilation per chunk size.
    per_step = self.model.clone(trunk_chunk=0)
    self._per_step = jax.jit(lambda v, x: per_step.apply(v, x[None], train=False, part="frames")[0])
    self._temporal = jax.jit(
      lambda v, x, m, pe: self.model.apply(
        v, x[None], m[None], train=False, pe=pe[None], part="temporal"
      )[0]
    )
    self.resize = frame_resizer(self.config.data.dataset, self.image_size)

  def fingerprint(self) -> str:
    """A digest of the variables (every array's name, shape and bytes) and the frame size:
    embeddings written with another fingerprint came from another model or checkpoint."""
    if getattr(self, "_fingerprint", None) is None:
      import hashlib  # pylint: disable=g-import-not-at-top

      digest = hashlib.sha256(str(self.image_size).encode())
      for name, value in sorted(convert.flatten_variables(jax.device_get(self.variables)).items()):
        array = np.ascontiguousarray(np.asarray(value))
        digest.update(f"{name}{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
      self._fingerprint = digest.hexdigest()[:20]
    return self._fingerprint

  @property
  def image_size(self) -> int:
    """Frames are resized to ``image_size x image_size`` (as the evaluation pass)."""
    return int(evaluate.eval_image_size(self.config))

  @property
  def output_dim(self) -> int:
    return int(self.model.output_dim)

  @property
  def default_chunk(self) -> int:
    """Frames per trunk call unless told: ``eval.trunk_chunk``, else 32."""
    return int(self.config.eval.get("trunk_chunk") or 32)

  def gap_penalties(self) -> Optional[dict[str, np.ndarray]]:
    """The checkpoint's effective gap penalties (a loss with ``penalties``, e.g. LAC), or None."""
    loss = losses.build(self.config.loss)
    if not self.loss_params or not hasattr(loss, "penalties"):
      return None
    return {k: np.asarray(v, np.float64) for k, v in loss.penalties(self.loss_params).items()}

  def embed(
    self,
    video: Frames,
    frames_per_chunk: Optional[int] = None,
    progress: Optional[Callable[[int], None]] = None,
  ) -> np.ndarray:
    """Embeds every frame of ``video``.

    Args:
      video: an `InputVideo`, a path, uint8 frames ``[T, H, W, 3]`` or an iterable of
        ``[H, W, 3]`` frames (any size; resized here).
      frames_per_chunk: frames per trunk call (rounded up to a multiple of the model's
        ``num_context``); default `default_chunk`.
      progress: called with the number of frames each time a chunk is done.

    Returns:
      float32 ``[T, output_dim]``, one row per frame, in order.
    """
    if isinstance(video, (str, os.PathLike)):
      video = open_input(video)
    frames = video.frames() if isinstance(video, InputVideo) else iter(video)
    what = video.path if isinstance(video, InputVideo) else "frames"
    nc = self.model.num_context
    chunk = int(frames_per_chunk or self.default_chunk)
    if chunk < 1:
      raise ValueError(f"frames_per_chunk: expected an int >= 1, got {frames_per_chunk!r}")
    chunk = -(-chunk // nc) * nc
    pieces: list[np.ndarray] = []
    pending: Optional[tuple[jax.Array, int]] = None
    buffer: list[np.ndarray] = []
    total = 0

    def finish(item: tuple[jax.Array, int]) -> None:
      out, n = item
      pieces.append(np.asarray(out)[: -(-n // nc)])
      if progress is not None:
        progress(n)

    def run(buffer: list[np.ndarray]) -> None:
      nonlocal pending
      n = len(buffer)
      batch = np.stack(buffer + [buffer[-1]] * (chunk - n))  # Whole steps: repeat the last.
      out = self._per_step(self.variables, batch)  # Runs while the next chunk decodes.
      if pending is not None:
        finish(pending)
      pending = (out, n)

    for frame in frames:
      frame = np.asarray(frame)
      if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise InputError(
          f"{what}: frame {total} must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}"
        )
      buffer.append(self.resize(frame))
      total += 1
      if len(buffer) == chunk:
        run(buffer)
        buffer = []
    if buffer:
      run(buffer)
    if pending is not None:
      finish(pending)
    if total == 0:
      raise InputError(f"{what}: holds no decodable frames")
    return self.embed_steps(np.concatenate(pieces), total)

  def embed_steps(self, features: np.ndarray, num_frames: int) -> np.ndarray:
    """The temporal part on a whole video: ``[S, embed_dim]`` per-step features ->
    float32 ``[num_frames, output_dim]`` (padded to an evaluation length bucket)."""
    nc = self.model.num_context
    steps = features.shape[0]
    ev = self.config.eval
    bucket_sizes = ev.get("bucket_sizes")
    if bucket_sizes is not None and max(bucket_sizes) < steps * nc:
      bucket_sizes = None  # A video longer than the run's buckets: the automatic ladder.
    padded = (
      evaluate.assign_buckets(
        [steps * nc],
        None if bucket_sizes is None else tuple(bucket_sizes),
        minimum=ev.bucket_min,
        growth=ev.bucket_growth,
        multiple=ev.bucket_multiple,
        num_context=nc,
      )[0]
      // nc
    )
    x = np.zeros((padded, features.shape[1]), features.dtype)
    x[:steps] = features
    mask = np.arange(padded) < steps
    pe = evaluate.positional_table(self.model, steps, padded)
    out = self._temporal(self.variables, x, mask, pe)
    return evaluate.steps_to_frames(np.asarray(out), num_frames, nc)


def _check_variables(
  model: encoder_lib.LACEncoder, variables: dict[str, Any], image_size: int, where: str
) -> None:
  """Raises ValueError naming the first array of ``variables`` that ``model`` does not expect."""
  frames = jnp.zeros((1, model.num_context, image_size, image_size, 3), jnp.uint8)
  expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), frames, train=False))
  want = {
    k: tuple(v.shape)
    for k, v in convert.flatten_variables(expected).items()
    if k.split("/")[0] in ("params", "batch_stats")
  }
  got = {k: tuple(np.shape(v)) for k, v in convert.flatten_variables(variables).items()}
  hint = "was it trained with another model config? pass the training config with --config"
  for key, shape in want.items():
    if key not in got:
      raise ValueError(
        f"{where}: the model of the config needs {key} {shape}, the checkpoint "
        f"has no such array; {hint}"
      )
    if got[key] != shape:
      raise ValueError(
        f"{where}: {key} has shape {got[key]} in the checkpoint, the model of "
        f"the config expects {shape}; {hint}"
      )
  extra = sorted(set(got) - set(want))
  if extra:
    raise ValueError(
      f"{where}: the checkpoint has arrays the model of the config lacks "
      f"({extra[:3]}{'...' if len(extra) > 3 else ''}); {hint}"
    )


def load_trained(
  workdir: str, config: Optional[ml_collections.ConfigDict] = None, step: Optional[int] = None
) -> TrainedEncoder:
  """Restores the encoder of a training workdir.

  Args:
    workdir: the ``--workdir`` of a training run (``checkpoints/`` and ``config.json``).
    config: the run's config; default the ``config.json`` training saved in ``workdir``.
    step: checkpoint step; default the newest intact one (a damaged newer one is reported).

  Raises:
    FileNotFoundError: no such workdir, no checkpoint (or not ``step``), no ``config.json``
      and no ``config`` given.
    ValueError: the checkpoint does not fit the config's model (names the array); ``step`` is
      damaged, or no checkpoint is intact (names the folders).
  """
  workdir = checkpoint.check_workdir(workdir)
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"--workdir {workdir}: no such directory")
  ckpt_dir = os.path.join(workdir, checkpoint.CHECKPOINT_DIR)
  if not os.path.isdir(ckpt_dir):
    raise FileNotFoundError(
      f"--workdir {workdir}: no {checkpoint.CHECKPOINT_DIR}/ folder; "
      "train first (python -m lac_jax.main --config=... --workdir=...)"
    )
  if config is None:
    config = checkpoint.read_config(
      workdir, config_lib.saved_config_template, renamed=config_lib.RENAMED
    )
  config = config_lib.prepare_config(config)
  ckpts = checkpoint.Checkpoints(ckpt_dir, keep=None)
  try:
    step, raw = ckpts.read(step)  # (the newest intact one when step is None)
  finally:
    ckpts.close()
  params = raw.get("params", {})
  if "encoder" not in params:
    raise ValueError(
      f"{ckpt_dir}/{step}: no params/encoder in the checkpoint (got "
      f"{sorted(params)}); is it a lac_jax training checkpoint?"
    )
  variables = {"params": params["encoder"], "batch_stats": raw.get("batch_stats") or {}}
  model = encoder_lib.build_encoder(config.model)
  _check_variables(model, variables, int(evaluate.eval_image_size(config)), f"{ckpt_dir}/{step}")
  key = losses.build(config.loss).params_key
  return TrainedEncoder(
    model,
    variables,
    config,
    step=int(step),
    workdir=workdir,
    loss_params=params.get(key) if key else None,
  )
