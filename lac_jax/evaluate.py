"""Frozen-embedding evaluation: one jitted embedding pass over whole videos, then the metrics.

``embed_videos`` runs the encoder in eval mode on every frame of every video, one video per
call, lengths padded to a few buckets (one compile per bucket; the padding changes nothing).
``evaluate`` embeds a train and a val list and returns the paper's table row
(``metrics.evaluate_embeddings``); ``evaluate_dataset`` does it for the dataset of a full config
(PennAction: every action, then the unweighted mean) and writes
``workdir/eval/{name}_step{step}.json``. The pass step by step and why the padding is exact:
docs/evaluation.md §1.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import math
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from absl import logging
import jax
import ml_collections
import numpy as np

from lac_jax import config as config_lib
from lac_jax import data as data_lib
from lac_jax import files
from lac_jax import metrics
from lac_jax import tables
from lac_jax.data import augment
from lac_jax.data.record import Video
from lac_jax.models import encoder as encoder_lib

Log = Callable[[str], None]
EVAL_NAME = "eval"  # training's result files: workdir/eval/eval_step{step}.json
SUMMARY_FILE = os.path.join("eval", "summary.json")  # untrained and trained rows side by side


# ------------------------------------------------------------------------------------------
# Length buckets.


def bucket_ladder(
  max_length: int, minimum: int = 32, growth: float = 1.5, multiple: int = 32
) -> list[int]:
  """Increasing bucket lengths ``round_up(minimum * growth^k, multiple)`` up to ``max_length``."""
  if minimum < 1 or multiple < 1 or growth <= 1.0:
    raise ValueError(
      f"bucket_min, bucket_multiple: expected >= 1 and bucket_growth > 1, got "
      f"{minimum}, {multiple}, {growth}"
    )
  ladder, size = [], float(minimum)
  while True:
    rung = int(math.ceil(math.ceil(size - 1e-9) / multiple) * multiple)
    if not ladder or rung > ladder[-1]:
      ladder.append(rung)
    if rung >= max_length:
      return ladder
    size *= growth


def assign_buckets(
  lengths: Sequence[int],
  bucket_sizes: Optional[Sequence[int]] = None,
  *,
  minimum: int = 32,
  growth: float = 1.5,
  multiple: int = 32,
  num_context: int = 1,
) -> list[int]:
  """The padded length of each video: the smallest bucket >= its length.

  Args:
    lengths: frames per video.
    bucket_sizes: explicit buckets (``config.eval.bucket_sizes``); None = `bucket_ladder`.
    minimum, growth, multiple: the automatic ladder's parameters.
    num_context: the model's frames per step; buckets are rounded up to a multiple of it.
  """
  lengths = [int(n) for n in lengths]
  if not lengths:
    return []
  longest = max(lengths)
  if bucket_sizes is None:
    sizes = bucket_ladder(longest, minimum, growth, multiple)
  else:
    sizes = [int(b) for b in bucket_sizes]
    if not sizes or min(sizes) < 1:
      raise ValueError(f"bucket_sizes: expected positive lengths, got {tuple(bucket_sizes)}")
    if max(sizes) < longest:
      raise ValueError(
        f"bucket_sizes: a video has {longest} frames, more than the largest "
        f"bucket {max(sizes)}; add a larger bucket (or use None, automatic)"
      )
  sizes = sorted({-(-b // num_context) * num_context for b in sizes})
  index = np.searchsorted(np.asarray(sizes), np.asarray(lengths), side="left")
  return [sizes[i] for i in index]


# ------------------------------------------------------------------------------------------
# Positional encoding of the true length inside a padded call.


def positional_table(
  model: encoder_lib.LACEncoder, num_steps: int, padded_steps: int
) -> np.ndarray:
  """float32 ``[padded_steps, D]``: the encoding of a ``num_steps``-step video, zeros after."""
  table = np.zeros((padded_steps, model.embed_dim), np.float32)
  table[:num_steps] = encoder_lib.positional_encoding(
    num_steps, model.embed_dim, model.pe_positions, model.pe_ref_length, model.pe_official_cos
  )
  return table


# ------------------------------------------------------------------------------------------
# The embedding pass.


class FrameEmbedder:
  """Jitted eval-mode encoder call on one padded video.

  ``embedder(variables, frames [L, H, W, 3] uint8, num_frames)`` -> device ``[L', E]`` with
  ``L' = L / num_context``; rows past the true length are padding. ``num_traces`` counts
  compilations (one per distinct padded shape).
  """

  def __init__(self, model: encoder_lib.LACEncoder):
    self.model = model
    self.num_traces = 0
    self._fn = jax.jit(self._embed)

  def _embed(
    self, variables: Mapping[str, Any], frames: jax.Array, mask: jax.Array, pe_table: jax.Array
  ) -> jax.Array:
    self.num_traces += 1  # Runs only while tracing.
    out = self.model.apply(variables, frames[None], mask[None], train=False, pe=pe_table[None])
    return out[0]

  def __call__(
    self, variables: Mapping[str, Any], frames: np.ndarray, num_frames: int
  ) -> jax.Array:
    nc = self.model.num_context
    padded = frames.shape[0]
    mask = np.arange(padded) < num_frames
    table = positional_table(self.model, -(-num_frames // nc), padded // nc)
    return self._fn(variables, frames, mask, table)


@functools.lru_cache(maxsize=8)
def get_embedder(model: encoder_lib.LACEncoder) -> FrameEmbedder:
  """One `FrameEmbedder` per model (modules hash by their fields), so repeated evaluations
  during training reuse the compiled functions."""
  return FrameEmbedder(model)


def as_variables(variables_or_state: Any) -> dict[str, Any]:
  """``{'params', 'batch_stats'}`` from a variables dict or a TrainState-like object."""
  if isinstance(variables_or_state, Mapping):
    if "params" not in variables_or_state:
      raise ValueError(
        f'variables: expected a dict with a "params" entry, got keys {sorted(variables_or_state)}'
      )
    return {k: variables_or_state[k] for k in ("params", "batch_stats") if k in variables_or_state}
  if not hasattr(variables_or_state, "params"):
    raise ValueError(
      f"variables_or_state: expected a variables dict or an object with .params "
      f"(and .batch_stats), got {type(variables_or_state).__name__}"
    )
  out = {"params": variables_or_state.params}
  batch_stats = getattr(variables_or_state, "batch_stats", None)
  if batch_stats is not None:
    out["batch_stats"] = batch_stats
  return out


def _frames_of(
  video: Union[Video, np.ndarray], index: int, image_size: Optional[int]
) -> np.ndarray:
  frames = video.frames if isinstance(video, Video) else np.asarray(video)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
    raise ValueError(
      f"videos[{index}]: expected uint8 [T, H, W, 3] frames with T >= 1, got "
      f"{frames.dtype} {frames.shape}"
    )
  return frames if image_size is None else augment.resize(frames, int(image_size))


def _default_log(message: str) -> None:
  logging.info("%s", message)


def embed_videos(
  model: encoder_lib.LACEncoder,
  variables: Any,
  videos: Sequence[Union[Video, np.ndarray]],
  *,
  image_size: Optional[int],
  bucket_sizes: Optional[Sequence[int]] = None,
  chunk: Optional[int] = None,
  bucket_min: int = 32,
  bucket_growth: float = 1.5,
  bucket_multiple: int = 32,
  log: Optional[Log] = None,
  log_every_s: float = 30.0,
) -> list[np.ndarray]:
  """Embeds every frame of every video in eval mode.

  Args:
    model: the encoder (``build_encoder``).
    variables: ``{'params', 'batch_stats'}`` or a TrainState-like object with those fields
      (unreplicated).
    videos: `Video` records or uint8 ``[T_i, H, W, 3]`` arrays.
    image_size: frames are resized to ``S x S``; None keeps their size.
    bucket_sizes: padded lengths (None: ladder of ``bucket_min``, ``bucket_growth``,
      ``bucket_multiple``; see `assign_buckets`).
    chunk: frames per trunk call; None or 0 = the model's ``trunk_chunk``.
    log: progress lines (videos done / total, frames/s); default absl logging.info.
    log_every_s: seconds between progress lines (one more at the end).

  Returns:
    float32 ``[T_i, E]`` per video. With ``num_context > 1`` a video is first extended to a
    multiple of it by repeating its last frame, and each step's embedding is given to all its
    frames.
  """
  log = _default_log if log is None else log
  if chunk:
    model = model.clone(trunk_chunk=int(chunk))
  embedder = get_embedder(model)
  variables = as_variables(variables)
  nc = model.num_context
  lengths = [v.num_frames if isinstance(v, Video) else len(v) for v in videos]
  buckets = assign_buckets(
    lengths,
    bucket_sizes,
    minimum=bucket_min,
    growth=bucket_growth,
    multiple=bucket_multiple,
    num_context=nc,
  )
  traces_before = embedder.num_traces
  start = last_log = time.perf_counter()
  results: list[Optional[np.ndarray]] = [None] * len(videos)
  done_frames = 0

  def prepare(i: int) -> tuple[np.ndarray, int]:
    frames = _frames_of(videos[i], i, image_size)
    length = -(-lengths[i] // nc) * nc  # Whole steps: repeat the last frame.
    padded = np.zeros((buckets[i],) + frames.shape[1:], np.uint8)
    padded[: lengths[i]] = frames
    padded[lengths[i] : length] = frames[-1]
    return padded, length

  # Decode/resize the next video on a thread while the device embeds the current one; keep at
  # most one result in flight so device memory holds two videos at a time.
  with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lac_embed") as pool:
    next_input = pool.submit(prepare, 0) if videos else None
    pending: Optional[tuple[int, jax.Array]] = None
    for i in range(len(videos)):
      frames, length = next_input.result()
      next_input = pool.submit(prepare, i + 1) if i + 1 < len(videos) else None
      out = embedder(variables, frames, length)
      if pending is not None:
        j, prev = pending
        results[j] = steps_to_frames(np.asarray(prev), lengths[j], nc)
        done_frames += lengths[j]
      pending = (i, out)
      now = time.perf_counter()
      if now - last_log >= log_every_s:
        last_log = now
        log(f"embedded {i}/{len(videos)} videos, {done_frames / (now - start):.1f} frames/s")
    if pending is not None:
      j, prev = pending
      results[j] = steps_to_frames(np.asarray(prev), lengths[j], nc)
      done_frames += lengths[j]
  seconds = time.perf_counter() - start
  log(
    f"embedded {len(videos)}/{len(videos)} videos ({done_frames} frames) in {seconds:.1f} s, "
    f"{done_frames / max(seconds, 1e-9):.1f} frames/s, {len(set(buckets))} length buckets, "
    f"{embedder.num_traces - traces_before} new compilations"
  )
  return results


def steps_to_frames(out: np.ndarray, num_frames: int, num_context: int) -> np.ndarray:
  """``[L / nc, E]`` step embeddings -> float32 ``[num_frames, E]`` frame embeddings."""
  if num_context > 1:
    out = np.repeat(out, num_context, axis=0)
  return np.asarray(out[:num_frames], np.float32)


# ------------------------------------------------------------------------------------------
# Metrics over embeddings.


def result_path(workdir: str, name: str, step: Optional[int]) -> str:
  """``workdir/eval/{name}_step{step}.json`` (``{name}.json`` without a step)."""
  stem = name if step is None else f"{name}_step{int(step)}"
  return os.path.join(os.fspath(workdir), "eval", f"{stem}.json")


def _embed_config_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  bucket_sizes = config.get("bucket_sizes")
  return dict(
    bucket_sizes=None if bucket_sizes is None else tuple(bucket_sizes),
    chunk=config.get("trunk_chunk") or None,
    bucket_min=config.bucket_min,
    bucket_growth=config.bucket_growth,
    bucket_multiple=config.bucket_multiple,
    log_every_s=config.log_every_s,
  )


def evaluate(
  model: encoder_lib.LACEncoder,
  variables: Any,
  train_videos: Sequence[Video],
  val_videos: Sequence[Video],
  config: Optional[ml_collections.ConfigDict] = None,
  *,
  workdir: Optional[str] = None,
  name: str = "eval",
  step: Optional[int] = None,
  log: Optional[Log] = None,
) -> dict[str, float]:
  """Embeds both splits and computes the paper's table row.

  Args:
    model, variables: the encoder and its variables (dict or TrainState-like).
    train_videos: videos the probes are fitted on (loader order: fractions take the first n).
    val_videos: videos the probes are tested on; tau and AP@K use these only.
    config: `config.eval_config()`-shaped eval config.
    workdir: when given, the row is written to ``workdir/eval/{name}_step{step}.json``.
    name, step: name and step of the result file.
    log: progress and table lines; default absl logging.info.

  Returns:
    ``{class_10, class_50, class_100, ap_5, ap_10, ap_15, progress_10, progress_50,
    progress_100, progress, tau}`` (x100, keys follow the config's fractions and Ks).
  """
  config = config_lib.eval_config() if config is None else config
  log = _default_log if log is None else log
  for what, vids in (("train_videos", train_videos), ("val_videos", val_videos)):
    if not vids:
      raise ValueError(f"{what}: expected at least one video, got none")
  start = time.perf_counter()
  embs = embed_videos(
    model,
    variables,
    list(train_videos) + list(val_videos),
    image_size=config.get("image_size"),
    log=log,
    **_embed_config_kwargs(config),
  )
  embed_seconds = time.perf_counter() - start
  labels = [v.labels for v in list(train_videos) + list(val_videos)]
  n = len(train_videos)
  start = time.perf_counter()
  row = metrics.evaluate_embeddings(embs[:n], labels[:n], embs[n:], labels[n:], config)
  metric_seconds = time.perf_counter() - start
  # The table itself: `evaluate_dataset` logs every row at once (or the caller, with the row).
  log(f"{name}: embedding {embed_seconds:.1f} s, metrics {metric_seconds:.1f} s")
  if workdir is not None:
    files.write_json(
      result_path(workdir, name, step),
      {
        "name": name,
        "step": step,
        "summary": row,
        "rows": {name: row},
        "num_train_videos": n,
        "num_val_videos": len(val_videos),
        "embed_seconds": embed_seconds,
        "metric_seconds": metric_seconds,
        "config": config.to_dict(),
      },
    )
  return row


def eval_image_size(config: ml_collections.ConfigDict) -> Optional[int]:
  """The frame size of the evaluation pass: ``config.eval.image_size``, else
  ``config.data.image_size``."""
  eval_config = config.eval if "eval" in config else config_lib.eval_config()
  return eval_config.get("image_size") or config.data.get("image_size")


def evaluate_dataset(
  config: ml_collections.ConfigDict,
  variables_or_state: Any,
  workdir: Optional[str] = None,
  *,
  step: Optional[int] = None,
  name: str = "eval",
  model: Optional[encoder_lib.LACEncoder] = None,
  log: Optional[Log] = None,
) -> dict[str, Any]:
  """Evaluates the dataset of a full config (``config.model``, ``config.data``, ``config.eval``).

  Videos come from ``lac_jax.data.load_split(config.data, split, action, image_size)``.
  PennAction with ``config.data.action`` None / '' / 'all' evaluates each of the 13 actions on
  its own (probes fitted on that action's train videos, tau and AP@K within its val videos)
  with its number of phases, then the unweighted mean; otherwise one dataset or action.

  Args:
    config: the full config; ``config.eval`` defaults to `config.eval_config()`.
    variables_or_state: variables dict or TrainState-like object (``.params``,
      ``.batch_stats``), unreplicated.
    workdir: when given, writes ``workdir/eval/{name}_step{step}.json``.
    step, name: the result file's step and name.
    model: the encoder; default ``build_encoder(config.model)``.
    log: progress and table lines; default absl logging.info.

  Returns:
    ``{'summary': row, 'rows': {action or dataset: row, ..., ['mean': row]}}``; ``summary`` is
    the mean row for several actions, else the single row.
  """
  for field in ("model", "data"):
    if field not in config:
      raise ValueError(
        f"config.{field}: missing (evaluate_dataset needs config.model, "
        f"config.data and optionally config.eval)"
      )
  log = _default_log if log is None else log
  eval_config = config.eval if "eval" in config else config_lib.eval_config()
  image_size = eval_image_size(config)
  model = encoder_lib.build_encoder(config.model) if model is None else model
  variables = as_variables(variables_or_state)
  rows: dict[str, dict[str, float]] = {}
  timings: dict[str, float] = {}
  for action in data_lib.eval_actions(config.data):
    label = action or config.data.dataset
    cfg = eval_config.copy_and_resolve_references()
    with cfg.unlocked():
      cfg.image_size = image_size
      if cfg.get("num_classes") is None:
        cfg.num_classes = data_lib.num_phases(config.data.dataset, action, config.data)
    train = data_lib.load_split(config.data, eval_config.train_split, action, image_size)
    val = data_lib.load_split(config.data, eval_config.val_split, action, image_size)
    start = time.perf_counter()
    rows[label] = evaluate(model, variables, train, val, cfg, name=label, log=log)
    timings[label] = time.perf_counter() - start
  summary = tables.mean_over_actions(rows) if len(rows) > 1 else next(iter(rows.values()))
  if len(rows) > 1:
    rows["mean"] = summary
  title = f"{name} ({config.data.dataset}" + ("" if step is None else f", step {step}") + ")"
  log(f"{title}\n{tables.format_table(rows)}")
  result = {"summary": summary, "rows": rows}
  if workdir is not None:
    files.write_json(
      result_path(workdir, name, step),
      {
        "name": name,
        "step": step,
        "dataset": config.data.dataset,
        **result,
        "seconds": timings,
        "config": eval_config.to_dict(),
      },
    )
  return result


# ------------------------------------------------------------------------------------------
# During training.


def run_evaluation(
  config: ml_collections.ConfigDict,
  variables: Any,
  workdir: str,
  step: int,
  model: encoder_lib.LACEncoder,
) -> dict[str, Any]:
  """Evaluates ``variables`` (unreplicated) during training; process 0 writes
  ``eval/eval_step{step}.json``.

  Every process runs the same evaluation on its own devices (no collectives), so none waits
  for another at a barrier however long it takes; only process 0 writes and logs the table.
  """
  start = time.perf_counter()
  primary = jax.process_index() == 0
  result = evaluate_dataset(
    config,
    variables,
    workdir if primary else None,
    step=step,
    name=EVAL_NAME,
    model=model,
    log=None if primary else _no_log,
  )
  logging.info("Evaluation at step %d took %.1f s", step, time.perf_counter() - start)
  return result


def _no_log(message: str) -> None:
  del message


def eval_row(workdir: str, step: int) -> Optional[dict[str, float]]:
  """The summary row of ``eval/eval_step{step}.json`` if it exists (NaNs come back as None)."""
  path = result_path(workdir, EVAL_NAME, step)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    summary = json.load(f)["summary"]
  return {k: (float("nan") if v is None else float(v)) for k, v in summary.items()}


def summary_table(workdir: str, final_step: int) -> Optional[str]:
  """Untrained (step 0) and trained (``final_step``) rows side by side, also written to
  ``workdir/eval/summary.json``; None when neither result exists."""
  rows = {}
  for step, name in ((0, "untrained (step 0)"), (final_step, f"trained (step {final_step})")):
    row = eval_row(workdir, step)
    if row is not None:
      rows[name] = row
  if not rows:
    return None
  files.write_json(os.path.join(workdir, SUMMARY_FILE), {"rows": rows, "final_step": final_step})
  return tables.format_table(rows)
