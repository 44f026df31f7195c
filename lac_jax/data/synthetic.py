"""Synthetic "pouring" action videos: the embedded default dataset (no download).

A cup goes through five phases (`PHASES`: reach, tilt, pour, untilt, return) next to a bowl;
the phase shows in any frame, everything else (colours, texture, positions, scale, mirroring,
noise, phase durations, idle segments) varies across videos. Deterministic in
``(config.seed, split, index)``. By default the cup makes a round trip; ``end_state`` takes it
elsewhere. The generator, its labels and what the round trip does to the metrics:
docs/synthetic.md."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os

import ml_collections
import numpy as np

from lac_jax.data import record
from lac_jax.data.record import Video

PHASES: tuple[str, ...] = ("reach", "tilt", "pour", "untilt", "return")
SPLITS: tuple[str, ...] = ("train", "val")
NAME = ACTION = "synthetic"  # lac_jax.data.DATASETS key; the one action
ACTIONS = (ACTION,)
NUM_PHASES = {ACTION: len(PHASES)}
RESIZE_ON_LOAD = False  # rendered at the config's size; the pipeline and evaluation resize

# Relative mean duration of each phase (before the per-video random factor).
_BASE_DURATIONS = np.array([1.0, 0.6, 1.0, 0.6, 1.0])

END_STATES: tuple[str, ...] = ("start", "away", "lifted")  # config.end_state


def default_config() -> ml_collections.ConfigDict:
  """Switches of the synthetic dataset."""
  c = ml_collections.ConfigDict()
  c.num_train = 48  # number of training videos
  c.num_val = 16  # number of validation videos
  c.min_frames = 48  # shortest video, frames (inclusive)
  c.max_frames = 128  # longest video, frames (inclusive)
  c.height = 64  # frame height, pixels
  c.width = 64  # frame width, pixels
  c.num_phases = len(PHASES)  # informational: the number of phases (fixed, = len(PHASES))
  c.seed = 0  # base seed; video i of split s is drawn from the stream (seed, s, i)
  c.duration_ratio = 3.0  # max ratio of one phase's duration between two videos (>= 1)
  c.max_idle_fraction = 0.2  # idle segments at start and end each take U(0, this) of a video
  c.jitter_pixels = 2  # camera shake amplitude, pixels (per-frame random walk, clipped)
  c.max_noise = 8.0  # pixel noise std is drawn in U(0, max_noise), uint8 units
  # Where the return phase takes the cup (`END_STATES`): 'start' = back where it started, so
  # the return retraces the reach and the last frames differ from the first only in the fill
  # levels (docs/results.md's videos); 'away' = sideways off the far edge, past the bowl;
  # 'lifted' = straight up out of the top of the frame. With 'away' or 'lifted' the end looks
  # unlike the start and no phase retraces another's path (docs/synthetic.md).
  c.end_state = "start"
  c.lazy = False  # True: render frames on each access instead of keeping them in memory
  return c


@dataclasses.dataclass(frozen=True)
class Timeline:
  """When each phase happens in one synthetic video (frames; ``end`` is exclusive).

  Attributes:
    num_frames: L, the video length.
    idle_start: number of idle frames before the action.
    idle_end: number of idle frames after the action.
    phase_starts: int ``[K]`` first frame of each phase (``phase_starts[0] == idle_start``).
    phase_ends: int ``[K]`` one past the last frame of each phase
      (``phase_ends[-1] == num_frames - idle_end``).
  """

  num_frames: int
  idle_start: int
  idle_end: int
  phase_starts: np.ndarray
  phase_ends: np.ndarray

  @property
  def durations(self) -> np.ndarray:
    """int ``[K]`` frames per phase, idle frames excluded."""
    return self.phase_ends - self.phase_starts

  def labels(self) -> np.ndarray:
    """int32 ``[L]`` phase per frame; idle start -> 0, idle end -> K - 1."""
    t = np.arange(self.num_frames)
    # Number of phase starts at or before t, minus one; idle start frames clip to phase 0.
    return np.clip(
      np.searchsorted(self.phase_starts, t, side="right") - 1, 0, len(self.phase_starts) - 1
    ).astype(np.int32)


def _check_config(config: ml_collections.ConfigDict) -> None:
  k = len(PHASES)
  if config.num_phases != k:
    raise ValueError(
      f"synthetic config.num_phases: the synthetic action has exactly {k} "
      f"phases {PHASES}, got {config.num_phases}"
    )
  if not 2 * k <= config.min_frames <= config.max_frames:
    raise ValueError(
      f"synthetic config.min_frames/max_frames: need {2 * k} <= min_frames <= "
      f"max_frames, got {config.min_frames}, {config.max_frames}"
    )
  if config.height < 16 or config.width < 16:
    raise ValueError(
      f"synthetic config.height/width: need >= 16 pixels, got {config.height}x{config.width}"
    )
  if config.duration_ratio < 1:
    raise ValueError(f"synthetic config.duration_ratio: need >= 1, got {config.duration_ratio}")
  if not 0 <= config.max_idle_fraction <= 0.3:
    raise ValueError(
      f"synthetic config.max_idle_fraction: need in [0, 0.3], got {config.max_idle_fraction}"
    )
  if config.get("end_state", "start") not in END_STATES:
    raise ValueError(
      f"synthetic config.end_state: expected one of {END_STATES}, got {config.end_state!r}"
    )
  if config.num_train < 0 or config.num_val < 0:
    raise ValueError(
      f"synthetic config.num_train/num_val: need >= 0, got {config.num_train}, {config.num_val}"
    )


def _rng(
  config: ml_collections.ConfigDict, split: str, index: int, stream: int
) -> np.random.Generator:
  """Independent generator per (seed, split, video, stream); stream 0 = timing, 1 = looks."""
  if split not in SPLITS:
    raise ValueError(f"synthetic split: expected one of {SPLITS}, got {split!r}")
  size = config.num_train if split == "train" else config.num_val
  if not 0 <= index < size:
    raise IndexError(f"synthetic {split} index {index} out of range [0, {size})")
  return np.random.default_rng([int(config.seed), SPLITS.index(split), int(index), stream])


def timeline(index: int, split: str, config: ml_collections.ConfigDict) -> Timeline:
  """The phase timing of video ``index`` of ``split`` (cheap: nothing is rendered)."""
  _check_config(config)
  rng = _rng(config, split, index, 0)
  k = len(PHASES)
  length = int(rng.integers(config.min_frames, config.max_frames + 1))
  idle = np.floor(rng.uniform(0, config.max_idle_fraction, size=2) * length).astype(int)
  action = length - idle.sum()
  # Log-uniform factor per phase: two videos' durations of a phase differ up to duration_ratio.
  half = 0.5 * math.log(config.duration_ratio)
  weights = _BASE_DURATIONS * np.exp(rng.uniform(-half, half, size=k))
  # One frame per phase guaranteed, the rest shared by weight (largest remainder rounding).
  share = (action - k) * weights / weights.sum()
  durations = 1 + np.floor(share).astype(int)
  leftover = action - durations.sum()
  durations[np.argsort(-(share - np.floor(share)), kind="stable")[:leftover]] += 1
  ends = idle[0] + np.cumsum(durations)
  return Timeline(
    num_frames=length,
    idle_start=int(idle[0]),
    idle_end=int(idle[1]),
    phase_starts=ends - durations,
    phase_ends=ends,
  )


def _smoothstep(x: np.ndarray) -> np.ndarray:
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


def _phase_progress(tl: Timeline) -> tuple[np.ndarray, np.ndarray]:
  """Per frame: phase id (idle -> -1 before, K after) and progress in [0, 1] within it."""
  t = np.arange(tl.num_frames)
  k = len(PHASES)
  phase = np.searchsorted(tl.phase_starts, t, side="right") - 1  # -1 for idle start
  phase = np.where(t >= tl.phase_ends[-1], k, phase)
  idx = np.clip(phase, 0, k - 1)
  progress = (t - tl.phase_starts[idx] + 0.5) / tl.durations[idx]
  progress = np.where(phase < 0, 0.0, np.where(phase >= k, 1.0, progress))
  return phase, np.clip(progress, 0.0, 1.0)


def cup_path(
  tl: Timeline,
  start: tuple[float, float],
  pour: tuple[float, float],
  max_angle: float,
  end: tuple[float, float] | None = None,
) -> tuple[np.ndarray, ...]:
  """The cup's motion over a timeline: per frame ``[L]`` each, the phase (-1 for the idle start,
  ``K`` for the idle end), the cup centre x and y, its tilt angle and the fraction of liquid
  poured (0 until the pour, 1 after it).

  The cup moves from ``start`` to ``pour`` (reach), tilts to ``max_angle`` (tilt), stays there
  while the liquid moves (pour), turns back upright (untilt), then moves (return) back to
  ``start`` when ``end`` is None (``config.end_state='start'``), else from ``pour`` to ``end``.
  ``render`` calls it in pixels; any other units work (``benchmarks/synthetic_property.py``
  uses start = 0, pour = 1 for the generator's ground-truth state).
  """
  phase, p = _phase_progress(tl)
  e = _smoothstep(p)
  (start_x, start_y), (pour_x, pour_y) = start, pour
  at_bowl = np.select([phase <= 0, phase <= 3], [e, 1.0], 1.0 - e)  # 0 = start, 1 = bowl
  at_bowl = np.where(phase < 0, 0.0, at_bowl)
  cx = start_x + (pour_x - start_x) * at_bowl
  cy = start_y + (pour_y - start_y) * at_bowl
  if end is not None:
    leaving = phase >= len(PHASES) - 1  # the return phase and the idle end (progress 1)
    cx = np.where(leaving, pour_x + (end[0] - pour_x) * e, cx)
    cy = np.where(leaving, pour_y + (end[1] - pour_y) * e, cy)
  angle = max_angle * np.select(
    [phase <= 0, phase == 1, phase == 2, phase == 3], [0.0, e, 1.0, 1.0 - e], 0.0
  )
  poured = np.select([phase <= 1, phase == 2], [0.0, p], 1.0)  # fraction of liquid moved
  return phase, cx, cy, angle, poured


def _box_alpha(
  px: np.ndarray,
  py: np.ndarray,
  cx: np.ndarray,
  cy: np.ndarray,
  half_w: float | np.ndarray,
  half_h: float | np.ndarray,
  angle: np.ndarray | None = None,
) -> np.ndarray:
  """Anti-aliased coverage of a (rotated) box.

  Args:
    px, py: pixel centres ``[1, 1, W]`` and ``[1, H, 1]``.
    cx, cy, angle: box centre and rotation (radians, clockwise on screen), ``[T, 1, 1]``;
      ``angle=None`` is an axis-aligned box.
    half_w, half_h: half sizes in pixels (scalars or ``[T, 1, 1]``).
  Returns:
    float32 ``[T, H, W]`` coverage in [0, 1].
  """
  dx, dy = px - cx, py - cy
  if angle is None:
    # clip(0.5 - max(a, b)) = min(clip(0.5 - a), clip(0.5 - b)): separable, one full-size op.
    ax = np.clip(0.5 - (np.abs(dx) - half_w), 0.0, 1.0)
    ay = np.clip(0.5 - (np.abs(dy) - half_h), 0.0, 1.0)
    return np.minimum(ax, ay).astype(np.float32, copy=False)
  cos, sin = np.cos(angle), np.sin(angle)
  lx = dx * cos + dy * sin  # rotate the pixel into the box frame (inverse rotation)
  ly = dy * cos - dx * sin
  dist = np.maximum(np.abs(lx) - half_w, np.abs(ly) - half_h)  # signed distance (box metric)
  return np.clip(0.5 - dist, 0.0, 1.0).astype(np.float32, copy=False)


def _blend(image: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
  """Paints ``color [3]`` over channel-first ``image [3, T, H, W]`` where ``alpha [T, H, W]``.

  In place, one channel at a time: a trailing axis of 3 would make every NumPy op crawl.
  """
  for c in range(3):
    delta = np.float32(color[c]) - image[c]
    delta *= alpha
    image[c] += delta


def _random_color(
  rng: np.random.Generator, avoid: list[np.ndarray], min_dist: float = 90.0
) -> np.ndarray:
  """A random RGB colour at least ``min_dist`` (L2) from every colour in ``avoid``."""
  best, best_d = None, -1.0
  for _ in range(20):
    c = rng.uniform(0, 255, size=3)
    d = min((np.linalg.norm(c - a) for a in avoid), default=np.inf)
    if d >= min_dist:
      return c.astype(np.float32)
    if d > best_d:
      best, best_d = c, d
  return best.astype(np.float32)


def _background(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, ...]:
  """Smooth random two-colour texture, channel-first ``[3, height, width]``, and its colours."""
  c1 = rng.uniform(0, 255, size=3).astype(np.float32)
  c2 = np.clip(c1 + rng.uniform(-70, 70, size=3), 0, 255).astype(np.float32)
  grid = rng.uniform(0, 1, size=(rng.integers(3, 7), rng.integers(3, 7))).astype(np.float32)

  def interp(n_out: int, n_in: int) -> np.ndarray:  # bilinear upsampling matrix [n_out, n_in]
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    w = (pos - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] = 1 - w
    m[np.arange(n_out), lo + 1] = w
    return m

  texture = interp(height, grid.shape[0]) @ grid @ interp(width, grid.shape[1]).T
  return c1[:, None, None] + (c2 - c1)[:, None, None] * texture[None], c1, c2


def _layout_draws(rng: np.random.Generator) -> tuple:
  """The layout's random numbers, in the order `render` draws them from its stream: object
  scale, table height, bowl x, start x, gap, pour offset (fractions), tilt (degrees), mirror."""
  return (
    rng.uniform(0.8, 1.2),
    rng.uniform(0.76, 0.88),
    rng.uniform(0.56, 0.72),
    rng.uniform(0.12, 0.28),
    rng.uniform(0.05, 0.1),
    rng.uniform(0.1, 0.2),
    rng.uniform(75, 105),
    rng.uniform() < 0.5,
  )


def is_mirrored(index: int, split: str, config: ml_collections.ConfigDict) -> bool:
  """Whether video ``index`` of ``split`` is mirrored (the cup starts on the right and pours to
  the left) — half the videos, at random (cheap: nothing is rendered)."""
  _check_config(config)
  return bool(_layout_draws(_rng(config, split, index, 1))[-1])


def render(index: int, split: str, config: ml_collections.ConfigDict) -> np.ndarray:
  """Frames of video ``index`` of ``split``: uint8 ``[L, H, W, 3]`` RGB."""
  tl = timeline(index, split, config)
  rng = _rng(config, split, index, 1)
  length, height, width = tl.num_frames, int(config.height), int(config.width)
  s = float(min(height, width))
  g, table_f, bowl_f, start_f, gap_f, pour_f, angle_deg, mirror = _layout_draws(rng)

  # Scene layout in pixels, drawn as if pouring to the right (mirrored later at random).
  table_y = table_f * height
  bowl_w, bowl_h, wall = 0.30 * s * g, 0.18 * s * g, max(1.0, 0.035 * s * g)
  bowl_x, bowl_y = bowl_f * width, table_y - 0.5 * bowl_h
  cup_w, cup_h = 0.12 * s * g, 0.20 * s * g
  start_x, start_y = start_f * width, table_y - 0.5 * cup_h
  gap = gap_f * s
  pour_x = bowl_x - pour_f * bowl_w - 0.5 * cup_h
  pour_y = table_y - bowl_h - gap - 0.5 * cup_h
  max_angle = np.deg2rad(angle_deg)

  # Per-frame state [L] from the phase and the progress within it; 'start' brings the cup back,
  # 'away' carries it off the far edge at pouring height (past the bowl), 'lifted' straight up
  # out of the top (a vertical move: the same in mirrored and unmirrored videos).
  end_state = config.get("end_state", "start")
  end = None
  if end_state == "away":
    end = (width + cup_w + cup_h, pour_y)
  elif end_state == "lifted":
    end = (pour_x, -(cup_w + cup_h))
  phase, cx, cy, angle, poured = cup_path(tl, (start_x, start_y), (pour_x, pour_y), max_angle, end)

  # Camera shake: a clipped random walk in integer pixels, shared by scene and background.
  j = int(config.jitter_pixels)
  shake = np.clip(np.cumsum(rng.integers(-1, 2, size=(length, 2)), axis=0), -j, j)
  sx = shake[:, 0].astype(np.float32)[:, None, None]
  sy = shake[:, 1].astype(np.float32)[:, None, None]

  bg, c1, c2 = _background(rng, height + 2 * j, width + 2 * j)
  frames = np.empty((3, length, height, width), np.float32)  # channel-first until the end
  for t, (dx, dy) in enumerate(shake + j):  # slicing per frame beats a fancy-index gather
    frames[:, t] = bg[:, dy : dy + height, dx : dx + width]

  py = np.arange(height, dtype=np.float32)[None, :, None] + 0.5  # [1, H, 1]
  px = np.arange(width, dtype=np.float32)[None, None, :] + 0.5  # [1, 1, W]
  col = lambda v: np.asarray(v, np.float32).reshape(-1, 1, 1)  # [L] -> [L, 1, 1]

  # Table: everything below table_y, in a third colour.
  table_color = _random_color(rng, [c1, c2], 60.0)
  table = np.clip(py - (table_y + sy) + 0.5, 0.0, 1.0)
  _blend(frames, np.broadcast_to(table, frames.shape[1:]), table_color)

  cup_color = _random_color(rng, [c1, c2, table_color])
  bowl_color = _random_color(rng, [c1, c2, table_color])
  liquid_color = _random_color(rng, [cup_color, bowl_color, c1, c2])

  # Bowl: outer box minus its open interior, then the liquid rising inside.
  bx, by = bowl_x + sx, bowl_y + sy
  outer = _box_alpha(px, py, bx, by, 0.5 * bowl_w, 0.5 * bowl_h)
  inner_h = bowl_h - wall
  # The interior box reaches from the bowl's floor to far above its rim: the bowl is open.
  inner = _box_alpha(px, py, bx, by - 0.5 * bowl_h, 0.5 * bowl_w - wall, inner_h)
  _blend(frames, outer * (1.0 - inner), bowl_color)
  level = 0.85 * inner_h * col(poured)  # liquid height in the bowl
  bottom = by + 0.5 * bowl_h - wall
  bowl_liquid = _box_alpha(px, py, bx, bottom - 0.5 * level, 0.5 * bowl_w - wall, 0.5 * level)
  _blend(frames, bowl_liquid * (col(poured) > 0), liquid_color)

  # Cup: a rotated box, with its own liquid (in cup coordinates) that drains while pouring.
  ccx, ccy, ang = col(cx) + sx, col(cy) + sy, col(angle)
  _blend(frames, _box_alpha(px, py, ccx, ccy, 0.5 * cup_w, 0.5 * cup_h, ang), cup_color)
  cwall = max(1.0, 0.2 * cup_w)
  cup_level = (cup_h - 2 * cwall) * (1.0 - col(poured)) * 0.9
  off = 0.5 * cup_h - cwall - 0.5 * cup_level  # liquid centre below the cup centre (cup axis)
  lcx, lcy = ccx - off * np.sin(ang), ccy + off * np.cos(ang)
  cup_liquid = _box_alpha(px, py, lcx, lcy, 0.5 * cup_w - cwall, 0.5 * cup_level, ang)
  _blend(frames, cup_liquid * (col(poured) < 1), liquid_color)

  # Drops falling from the spout (cup's top corner at full tilt) to the bowl while pouring.
  spout_x = pour_x + 0.5 * cup_w * math.cos(max_angle) + 0.5 * cup_h * math.sin(max_angle)
  spout_y = pour_y + 0.5 * cup_w * math.sin(max_angle) - 0.5 * cup_h * math.cos(max_angle)
  pouring = np.flatnonzero(phase == 2)  # drops are drawn on these frames only
  if pouring.size:
    num_drops = 4
    fall = (pouring[:, None] * 0.15 + np.arange(num_drops)[None, :] / num_drops) % 1.0  # [P, N]
    surface = (bowl_y + 0.5 * bowl_h - wall - level[pouring, 0, 0])[:, None]  # [P, 1]
    drop_y = (spout_y + (surface - spout_y) * fall).astype(np.float32) + sy[pouring, 0]
    drop_x = (spout_x + 0.01 * s * np.arange(num_drops)).astype(np.float32) + sx[pouring, 0]
    radius = np.float32(max(1.0, 0.03 * s * g) + 0.5)
    drops = np.zeros((pouring.size, height, width), np.float32)
    for n in range(num_drops):
      dist = np.sqrt((px - drop_x[:, n, None, None]) ** 2 + (py - drop_y[:, n, None, None]) ** 2)
      np.maximum(drops, np.clip(radius - dist, 0.0, 1.0), out=drops)
    drops_all = np.zeros((length, height, width), np.float32)
    drops_all[pouring] = drops
    _blend(frames, drops_all, liquid_color)

  # Uniform pixel noise (std noise_std) from random bytes: 15x cheaper than Gaussian draws.
  noise_std = rng.uniform(0, config.max_noise)
  noise = np.frombuffer(rng.bytes(frames.size), np.uint8).reshape(frames.shape)
  noise = noise.astype(np.float32)
  noise -= np.float32(127.5)
  noise *= np.float32(noise_std * math.sqrt(12.0) / 256.0)
  frames += noise
  frames += 0.5  # so that the truncating cast below rounds to nearest
  np.clip(frames, 0, 255, out=frames)
  frames = frames.astype(np.uint8)
  out = np.moveaxis(frames, 0, -1)  # [L, H, W, 3]
  return np.ascontiguousarray(out[:, :, ::-1] if mirror else out)


def video_name(index: int, split: str) -> str:
  return f"synthetic_{split}_{index:05d}"


def generate_video(index: int, split: str, config: ml_collections.ConfigDict) -> Video:
  """Video ``index`` of ``split`` (``'train'`` or ``'val'``) as a `Video` (action 'synthetic').

  With ``config.lazy`` the frames are re-rendered on each access of ``video.frames``.
  """
  labels = timeline(index, split, config).labels()
  if config.lazy:
    source = functools.partial(render, index, split, config.copy_and_resolve_references())
  else:
    source = render(index, split, config)
  return Video(name=video_name(index, split), action=ACTION, labels=labels, source=source)


def load(split: str, config: ml_collections.ConfigDict | None = None) -> list[Video]:
  """All videos of ``split``: ``config.num_train`` or ``config.num_val`` of them, in order."""
  config = default_config() if config is None else config
  _check_config(config)
  if split not in SPLITS:
    raise ValueError(f"synthetic split: expected one of {SPLITS}, got {split!r}")
  size = config.num_train if split == "train" else config.num_val
  return [generate_video(i, split, config) for i in range(size)]


def load_split(
  data: ml_collections.ConfigDict, split: str, action: str | None = None, image_size=None
) -> list[Video]:
  """The registry entry (`lac_jax.data.load_split`): ``split`` of ``data.synthetic``.

  ``image_size`` must be None or the rendered ``(height, width)`` (set the size there)."""
  config = data.get("synthetic") or default_config()
  if action not in (None, ACTION):
    raise ValueError(f"dataset 'synthetic' has no action {action!r} (use None)")
  record.check_generated_size(image_size, config.height, config.width, "synthetic")
  return load(split, config)


LABELS_FILE = "labels.json"


def write_videos(
  directory: str,
  split: str = "val",
  count: int | None = None,
  config: ml_collections.ConfigDict | None = None,
  fps: float = 25.0,
  as_frames: bool = False,
) -> list[str]:
  """Writes the first ``count`` videos of ``split`` as ``<video_name>.mp4`` files (H.264), or
  with ``as_frames`` as folders of PNG frames, and their per-frame phases as ``labels.json``
  (``{"phases": PHASES, "labels": {name: [...]}}``, the format of ``lac_jax.retrieve
  --labels``). Returns the paths written, in order."""
  from lac_jax.data import encode  # pylint: disable=g-import-not-at-top

  config = default_config() if config is None else config
  _check_config(config)
  if split not in SPLITS:
    raise ValueError(f"synthetic split: expected one of {SPLITS}, got {split!r}")
  size = config.num_train if split == "train" else config.num_val
  count = size if count is None else int(count)
  if not 1 <= count <= size:
    raise ValueError(f"count: expected 1..{size} ({split} videos of the config), got {count}")
  os.makedirs(directory, exist_ok=True)
  paths, labels = [], {}
  for index in range(count):
    video = generate_video(index, split, config)
    path = os.path.join(directory, video.name if as_frames else f"{video.name}.mp4")
    if as_frames:
      encode.write_frames(path, video.frames)
    else:
      encode.write_video(path, video.frames, fps=fps)
    paths.append(path)
    labels[video.name] = video.labels.tolist()
  with open(os.path.join(directory, LABELS_FILE), "w", encoding="utf-8") as f:
    json.dump({"phases": list(PHASES), "labels": labels}, f)
  return paths


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top,g-multiple-import

  flags.DEFINE_string("output", None, "Directory for the videos and labels.json.")
  flags.DEFINE_enum("split", "val", list(SPLITS), "Which split's videos.")
  flags.DEFINE_integer("count", 4, "Number of videos.", lower_bound=1)
  flags.DEFINE_integer("size", 64, "Frame height and width, pixels.", lower_bound=16)
  flags.DEFINE_bool("frames", False, "Folders of PNG frames instead of mp4 files.")
  flags.DEFINE_enum("end_state", "start", list(END_STATES), "Where the return takes the cup.")
  flags.mark_flag_as_required("output")

  def _main(argv):
    del argv
    cfg = default_config()
    cfg.height = cfg.width = flags.FLAGS.size
    cfg.end_state = flags.FLAGS.end_state
    for path in write_videos(
      flags.FLAGS.output, flags.FLAGS.split, flags.FLAGS.count, cfg, as_frames=flags.FLAGS.frames
    ):
      print(path)

  app.run(_main)
