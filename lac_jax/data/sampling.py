"""Temporal sampling of the two training views of a video, and of whole videos for evaluation.

`sample_two_views` is the official ``time_augment`` (CARL/LAC, docs/official_code.md §2.2): per
view, ``n = min(L, F)`` sorted random steps of ``range(ceil(r * L))``, ``r ~ U(1,
sampling_region)``, padded to F with L; steps past the video are masked and repeat its last
frame. The official random offset is always 0; ``temporal_crop=True`` implements the crop it was
meant to be (each view first takes a random window, view b's near view a's by
``consistent_offset``; see `crop_windows`). All randomness comes from the Generator passed in.
"""

from __future__ import annotations

import math

import ml_collections
import numpy as np

VIEWS = ("independent", "tcn_positives")


def default_config() -> ml_collections.ConfigDict:
  """Switches of the temporal sampler."""
  c = ml_collections.ConfigDict()
  c.num_frames = 64  # F: steps per view (official 64)
  c.sampling_region = 1.5  # r ~ U(1, sampling_region); steps come from range(ceil(r * L))
  c.temporal_crop = False  # True: random window per view (the offset CARL meant to apply)
  c.crop_min_fraction = 0.6  # temporal_crop: window length W = ceil(U(this, 1) * L)
  c.consistent_offset = 0.2  # temporal_crop: ~min overlap of the two windows (CARL: 0.2)
  # 'independent': two independent views | 'tcn_positives': view 2 is view 1 with every step
  # moved U{1..positive_window} frames back (TCN's anchor / positive pairs, the TCC code's tcn)
  c.views = "independent"
  c.positive_window = 5  # 'tcn_positives' (TCC code: 5)
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad field."""
  if config.num_frames < 1:
    raise ValueError(f"config.data.sampling.num_frames: need >= 1, got {config.num_frames}")
  if config.sampling_region < 1:
    raise ValueError(
      f"config.data.sampling.sampling_region: need >= 1, got {config.sampling_region}"
    )
  if not 0 < config.crop_min_fraction <= 1:
    raise ValueError(
      f"config.data.sampling.crop_min_fraction: need in (0, 1], got {config.crop_min_fraction}"
    )
  if not 0 <= config.consistent_offset <= 1:
    raise ValueError(
      f"config.data.sampling.consistent_offset: need in [0, 1], got {config.consistent_offset}"
    )
  if config.get("views", "independent") not in VIEWS:
    raise ValueError(f"config.data.sampling.views: expected one of {VIEWS}, got {config.views!r}")
  if config.get("positive_window", 1) < 1:
    raise ValueError(
      f"config.data.sampling.positive_window: need >= 1, got {config.positive_window}"
    )


def sample_view(
  length: int,
  num_frames: int,
  sampling_region: float,
  rng: np.random.Generator,
  start: int = 0,
  window: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """One view with the official ``time_augment`` rule inside ``[start, start + window)``.

  Args:
    length: L, frames in the video (>= 1).
    num_frames: F, steps to return.
    sampling_region: r ~ U(1, sampling_region) stretches the sampled range to ceil(r * W).
    rng: source of randomness.
    start, window: the frames to sample from (default: the whole video).
  Returns:
    steps: int32 ``[F]`` frame indices in ``[start, start + window)``, non-decreasing.
    mask: bool ``[F]``, False where a step fell past the window's end (its index is clamped
      to the window's last frame).
  """
  if length < 1:
    raise ValueError(f"sample_view: video length must be >= 1, got {length}")
  window = length if window is None else window
  if not (0 <= start and 1 <= window and start + window <= length):
    raise ValueError(
      f"sample_view: window [{start}, {start + window}) not inside the video's {length} frames"
    )
  n = min(window, num_frames)
  region = math.ceil(rng.uniform(1.0, sampling_region) * window)
  local = np.sort(rng.choice(region, size=n, replace=False))
  local = np.concatenate([local, np.full(num_frames - n, window)])  # pad with W (masked)
  mask = local < window
  steps = start + np.minimum(local, window - 1)
  return steps.astype(np.int32), mask


def sample_two_views(
  length: int, config: ml_collections.ConfigDict, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
  """The two training views of a video of ``length`` frames.

  Returns:
    steps: int32 ``[2, F]`` clamped raw frame indices (sorted within a view).
    mask: bool ``[2, F]``, True for real (not padding) steps.
  """
  check_config(config)
  f, region = int(config.num_frames), float(config.sampling_region)
  starts, widths = crop_windows(length, config, rng)
  if config.get("views", "independent") == "tcn_positives":
    steps, mask = sample_view(length, f, region, rng, starts[0], widths[0])
    back = rng.integers(1, int(config.positive_window) + 1, size=f)
    positives = np.maximum(steps - back, 0).astype(np.int32)
    return np.stack([steps, positives]), np.stack([mask, mask])
  views = [sample_view(length, f, region, rng, starts[v], widths[v]) for v in range(2)]
  return np.stack([v[0] for v in views]), np.stack([v[1] for v in views])


def crop_windows(
  length: int, config: ml_collections.ConfigDict, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
  """The two views' windows ``[start, start + width)``; the whole video without temporal_crop.

  Each view takes ``W = ceil(u * L)`` frames, ``u ~ U(crop_min_fraction, 1)``; view a starts at
  ``o_a ~ U{0..L-W_a}``, view b uniformly among the starts within ``shift = floor((1 -
  consistent_offset) * min(W_a, F))`` of it (CARL's formula: ``consistent_offset`` is roughly
  the views' minimum overlap). The official sampler then runs inside each window.

  Returns:
    starts, widths: two ints each (view a, view b).
  """
  if length < 1:
    raise ValueError(f"crop_windows: video length must be >= 1, got {length}")
  if not config.temporal_crop:
    return [0, 0], [length, length]
  widths = [math.ceil(rng.uniform(config.crop_min_fraction, 1.0) * length) for _ in range(2)]
  start_a = int(rng.integers(0, length - widths[0] + 1))
  shift = int((1.0 - config.consistent_offset) * min(widths[0], int(config.num_frames)))
  last_b = length - widths[1]  # latest valid start of view b
  lo = max(0, min(last_b, start_a - shift))
  hi = max(lo, min(last_b, start_a + shift))
  return [start_a, int(rng.integers(lo, hi + 1))], widths


def eval_steps(length: int) -> tuple[np.ndarray, np.ndarray]:
  """All frames of a video for evaluation: steps int32 ``[L]`` = 0..L-1, mask bool ``[L]``."""
  if length < 1:
    raise ValueError(f"eval_steps: video length must be >= 1, got {length}")
  return np.arange(length, dtype=np.int32), np.ones(length, dtype=bool)
