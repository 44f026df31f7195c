"""Training and evaluation input pipelines over a list of `Video` records.

`train_iterator`: an infinite, resumable stream of this process's share of each global batch
(two augmented views per video, with steps, masks and lengths); every example's randomness
comes from (seed, step, slot) only, so the stream is the same for any number of processes and
workers and ``start_step=s`` resumes exactly. `eval_iterator`: every frame of every video,
resized, no augmentation. The batch's keys, shapes and order: docs/data.md#the-pipeline.
"""

from __future__ import annotations

import collections
import concurrent.futures
from typing import Any, Iterator, Sequence

import ml_collections
import numpy as np

from lac_jax import data as data_lib
from lac_jax.data import augment
from lac_jax.data import sampling
from lac_jax.data.record import Video

Batch = dict[str, np.ndarray]


def default_config() -> ml_collections.ConfigDict:
  """The data config: dataset choice, batching, sampling, augmentation and each dataset's own
  options (``config.data.<name>``, from the dataset module's ``default_config``)."""
  c = ml_collections.ConfigDict()
  # 'synthetic' (generated, no download), 'pouring', 'penn_action' or 'videos' (a folder of
  # your own videos, docs/own_videos.md)
  c.dataset = "synthetic"
  c.data_dir = ""  # root of a downloaded dataset or of your videos (unused by 'synthetic')
  # A video whose label count differs from its frame count: 'error' | 'resample' (CARL's rule)
  c.label_mismatch = "error"
  c.action = ""  # PennAction: the one action to train and evaluate on (e.g. 'baseball_pitch')
  # --- Datasets that decode files into a cache ('videos', docs/own_videos.md) ---
  c.cache_dir = ""  # decoded frames; '' = workdir/cache when training, else ~/.cache/lac_jax
  c.cache_encoding = "jpeg"  # frames in the cache: 'jpeg' (quality 95), 'png' or 'raw'
  c.skip_unreadable = False  # True: skip unreadable inputs (workdir/skipped.json), else error
  c.batch_size = 2  # global batch, in videos (official: 2); each gives two views
  # False: batches run on across epochs, every video every epoch | True: each epoch is
  # N // batch_size whole batches and skips the leftover videos (official drop_last=True).
  c.drop_last = False
  c.image_size = 64  # S: frames are cropped/resized to S x S (official: 224)
  c.num_workers = 2  # threads that build examples (0: build in the consumer thread)
  c.prefetch = 2  # training steps built ahead of the consumer (>= 1)
  c.sampling = sampling.default_config()
  c.augment = augment.default_config()
  # Each dataset's own options, config.data.<name> (its module's default_config): synthetic,
  # videos.
  c.update(data_lib.option_sections())
  return c


def _check(videos: Sequence[Video], config: ml_collections.ConfigDict) -> None:
  if not videos:
    raise ValueError(
      f"pipeline: the video list is empty (dataset {config.dataset!r}, "
      f"data_dir {config.data_dir!r}); nothing to iterate over"
    )
  if config.image_size < 1:
    raise ValueError(f"config.data.image_size: need >= 1, got {config.image_size}")
  if config.num_workers < 0:
    raise ValueError(f"config.data.num_workers: need >= 0, got {config.num_workers}")
  if config.prefetch < 1:
    raise ValueError(f"config.data.prefetch: need >= 1, got {config.prefetch}")


def _process_share(
  batch_size: int, process_index: int | None, process_count: int | None
) -> tuple[int, int]:
  """(first slot, number of slots) of this process in a global batch."""
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top  (keep `import lac_jax.data` light)

    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if batch_size < 1:
    raise ValueError(f"config.data.batch_size: need >= 1, got {batch_size}")
  if not 0 <= process_index < process_count:
    raise ValueError(f"pipeline: process_index {process_index} not in [0, {process_count})")
  if batch_size % process_count:
    raise ValueError(
      f"config.data.batch_size (global, {batch_size}) must be divisible by "
      f"the process count {process_count}"
    )
  share = batch_size // process_count
  return process_index * share, share


def epoch_permutation(num_videos: int, seed: int, epoch: int) -> np.ndarray:
  """int ``[N]``: the order of the videos in ``epoch``."""
  return np.random.default_rng([int(seed), 0, int(epoch)]).permutation(num_videos)


def batches_per_epoch(num_videos: int, batch_size: int, drop_last: bool = False) -> float:
  """Global batches per epoch: ``N / B`` (batches straddle epochs) or ``N // B`` (drop_last)."""
  if drop_last:
    if num_videos < batch_size:
      raise ValueError(
        f"data.drop_last: {num_videos} videos make no whole batch of data.batch_size={batch_size}"
      )
    return float(num_videos // batch_size)
  return num_videos / batch_size


def epoch_of_step(step, num_videos: int, batch_size: int, drop_last: bool = False):
  """The epoch (0-based) global batch ``step`` belongs to: that of its first video, or with
  ``drop_last`` ``step // (N // B)``. Works on NumPy and JAX integers."""
  if drop_last:
    return step // int(batches_per_epoch(num_videos, batch_size, True))
  return (step * batch_size) // num_videos


def batch_indices(
  num_videos: int, batch_size: int, seed: int, step: int, drop_last: bool = False
) -> np.ndarray:
  """int ``[batch_size]``: video indices of global batch ``step`` (all processes)."""
  if drop_last:
    per_epoch = int(batches_per_epoch(num_videos, batch_size, True))
    epoch, k = divmod(int(step), per_epoch)
    return epoch_permutation(num_videos, seed, epoch)[k * batch_size : (k + 1) * batch_size]
  pos = step * batch_size + np.arange(batch_size)
  epochs, offsets = np.divmod(pos, num_videos)
  perms = {e: epoch_permutation(num_videos, seed, e) for e in np.unique(epochs)}
  return np.array([perms[e][o] for e, o in zip(epochs, offsets)], dtype=np.int64)


def example_rng(seed: int, step: int, slot: int) -> np.random.Generator:
  """The generator of one training example (slot ``slot`` of global batch ``step``)."""
  return np.random.default_rng([int(seed), 1, int(step), int(slot)])


def make_example(
  video: Video,
  config: ml_collections.ConfigDict,
  rng: np.random.Generator,
  device_augment: bool = False,
) -> dict[str, np.ndarray]:
  """Two sampled and augmented views of ``video``.

  ``device_augment``: the views are only resized (the train step augments them on the device,
  `lac_jax.data.device_augment`) and ``source_hw`` gives the video's frame size.

  Returns:
    frames uint8 ``[2, T, S, S, 3]``, steps int32 ``[2, T]``, mask bool ``[2, T]``
    (+ source_hw int32 ``[2]``).
  """
  if video.num_frames < 1:
    raise ValueError(f"pipeline: video {video.name!r} has no frames")
  frames = video.frames
  steps, mask = sampling.sample_two_views(video.num_frames, config.sampling, rng)
  if device_augment:
    views = [augment.resize(frames[steps[v]], config.image_size) for v in range(2)]
    return {
      "frames": np.stack(views),
      "steps": steps,
      "mask": mask,
      "source_hw": np.array(frames.shape[1:3], np.int32),
    }
  views = [
    augment.augment_view(frames[steps[v]], rng, config.image_size, config.augment) for v in range(2)
  ]
  return {"frames": np.stack(views), "steps": steps, "mask": mask}


class TrainIterator:
  """Infinite iterator of this process's training batches (see the module docstring).

  Use as ``for batch in it`` or ``next(it)``; call `close` (or use it as a context manager) to
  stop its worker threads. ``it.step`` is the global step of the next batch.
  """

  def __init__(
    self,
    videos: Sequence[Video],
    config: ml_collections.ConfigDict,
    seed: int,
    start_step: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
    device_augment: bool = False,
  ):
    _check(videos, config)
    sampling.check_config(config.sampling)
    if config.augment.enabled:
      augment.check_config(config.augment)
    if start_step < 0:
      raise ValueError(f"train_iterator: start_step must be >= 0, got {start_step}")
    self._videos = list(videos)
    self._config = config.copy_and_resolve_references()
    self._seed = int(seed)
    self._device_augment = bool(device_augment and config.augment.enabled)
    self._first, self._share = _process_share(int(config.batch_size), process_index, process_count)
    self.step = int(start_step)
    self._next_submit = self.step
    self._pending: collections.deque = collections.deque()  # (batch, [futures]) in order
    self._pool = (
      concurrent.futures.ThreadPoolExecutor(
        max_workers=config.num_workers, thread_name_prefix="lac_data"
      )
      if config.num_workers > 0
      else None
    )
    self._closed = False

  def _new_batch(self, step: int) -> tuple[Batch, list[int]]:
    c = self._config
    b, t, s = self._share, c.sampling.num_frames, c.image_size
    idx = batch_indices(len(self._videos), c.batch_size, self._seed, step, c.drop_last)
    idx = idx[self._first : self._first + b]
    batch = {
      "frames": np.empty((b, 2, t, s, s, 3), np.uint8),
      "steps": np.empty((b, 2, t), np.int32),
      "mask": np.empty((b, 2, t), bool),
      "lengths": np.array([self._videos[i].num_frames for i in idx], np.int32),
      "video_index": idx.astype(np.int32),
      "slot": np.arange(self._first, self._first + b, dtype=np.int32),
    }
    if self._device_augment:
      batch["source_hw"] = np.empty((b, 2), np.int32)
    return batch, [int(i) for i in idx]

  def _fill(self, batch: Batch, i: int, video_index: int, step: int) -> None:
    """Builds example ``i`` of this process's part of ``step`` into ``batch`` (in place)."""
    rng = example_rng(self._seed, step, self._first + i)
    example = make_example(self._videos[video_index], self._config, rng, self._device_augment)
    for key, value in example.items():
      batch[key][i] = value

  def _submit(self) -> None:
    """Keeps ``prefetch`` steps in flight on the pool."""
    while len(self._pending) < self._config.prefetch:
      step = self._next_submit
      batch, idx = self._new_batch(step)
      futures = [self._pool.submit(self._fill, batch, i, v, step) for i, v in enumerate(idx)]
      self._pending.append((batch, futures))
      self._next_submit += 1

  def __iter__(self) -> "TrainIterator":
    return self

  def __next__(self) -> Batch:
    if self._closed:
      raise RuntimeError("train_iterator: next() on a closed iterator")
    if self._pool is None:
      batch, idx = self._new_batch(self.step)
      for i, v in enumerate(idx):
        self._fill(batch, i, v, self.step)
    else:
      self._submit()
      batch, futures = self._pending.popleft()
      try:
        for f in futures:
          f.result()  # re-raises a worker's exception here
      except BaseException:
        self.close()
        raise
      self._submit()  # refill before handing the batch over
    self.step += 1
    return batch

  def close(self) -> None:
    """Cancels pending work and joins the worker threads (idempotent)."""
    if self._closed:
      return
    self._closed = True
    if self._pool is not None:
      for _, futures in self._pending:
        for f in futures:
          f.cancel()
      self._pending.clear()
      self._pool.shutdown(wait=True, cancel_futures=True)

  def __enter__(self) -> "TrainIterator":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()

  def __del__(self) -> None:
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except  (interpreter shutdown)
      pass


def train_iterator(
  videos: Sequence[Video],
  config: ml_collections.ConfigDict,
  seed: int,
  start_step: int = 0,
  process_index: int | None = None,
  process_count: int | None = None,
  device_augment: bool = False,
) -> TrainIterator:
  """Infinite, resumable iterator of this process's training batches.

  Args:
    videos: the training videos (`Video` records, frames of any size).
    config: `default_config()`-shaped data config.
    seed: the data seed (shuffle order, temporal sampling, augmentation).
    start_step: global step of the first batch (resume).
    process_index, process_count: this process and how many there are (default:
      ``jax.process_index()`` and ``jax.process_count()``).
    device_augment: leave the augmentation to the train step (`make_example`); batches then
      carry ``source_hw int32 [B, 2]``.
  Returns:
    A `TrainIterator` yielding ``frames uint8 [B, 2, T, S, S, 3]``, ``steps int32 [B, 2, T]``,
    ``mask bool [B, 2, T]``, ``lengths int32 [B]``, ``video_index int32 [B]``, ``slot int32
    [B]`` (each example's slot in the global batch) with B = batch_size // process_count.
  """
  return TrainIterator(
    videos, config, seed, start_step, process_index, process_count, device_augment
  )


def eval_example(video: Video, index: int, image_size: int) -> dict[str, Any]:
  """All frames of ``video`` for evaluation.

  Returns:
    frames uint8 ``[L, S, S, 3]``, steps int32 ``[L]``, mask bool ``[L]``, labels int32
    ``[L]``, name str, video_index int.
  """
  frames = video.frames
  steps, mask = sampling.eval_steps(video.num_frames)
  return {
    "frames": augment.resize(frames, image_size),
    "steps": steps,
    "mask": mask,
    "labels": video.labels,
    "name": video.name,
    "video_index": index,
  }


def eval_iterator(
  videos: Sequence[Video], config: ml_collections.ConfigDict
) -> Iterator[dict[str, Any]]:
  """Every video once, in order, as `eval_example` dicts (decoded/resized ahead by workers)."""
  _check(videos, config)
  size = int(config.image_size)
  if config.num_workers == 0:
    for i, video in enumerate(videos):
      yield eval_example(video, i, size)
    return
  ahead = max(1, int(config.prefetch))
  with concurrent.futures.ThreadPoolExecutor(
    max_workers=config.num_workers, thread_name_prefix="lac_eval"
  ) as pool:
    pending: collections.deque = collections.deque()
    try:
      for i, video in enumerate(videos):
        pending.append(pool.submit(eval_example, video, i, size))
        if len(pending) > ahead:
          yield pending.popleft().result()
      while pending:
        yield pending.popleft().result()
    finally:
      for f in pending:
        f.cancel()
