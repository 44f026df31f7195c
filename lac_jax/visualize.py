"""Pictures of what an encoder learned: alignments, retrieval grids, trajectories, progress.

Every ``plot_*`` function returns a matplotlib `Figure` built without pyplot (no global state,
any backend): ``fig.savefig('x.png')`` in scripts, or let a notebook display it.
`side_by_side` draws one frame of an aligned pair of videos (uint8 RGB, for `encode.write_video`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import matplotlib
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
import numpy as np


def _figure(width: float, height: float) -> Figure:
  return Figure(figsize=(width, height), layout="constrained")


def plot_alignment(
  sim: np.ndarray,
  pairs: np.ndarray,
  *,
  name_a: str = "A",
  name_b: str = "B",
  title: Optional[str] = None,
  label: str = "alignment path",
  clip_percentiles: tuple[float, float] = (1, 99),
) -> Figure:
  """The similarity matrix with matched frame pairs drawn on it.

  Args:
    sim: ``[T_a, T_b]`` similarity (rows: frames of A).
    pairs: int ``[N, 2]`` matched ``(i, j)`` frame pairs (a path, or one pair per frame of A).
    name_a, name_b: axis names. title: figure title.
    label: legend entry of the pairs.
    clip_percentiles: the colour scale spans these percentiles of ``sim`` (inverse distances
      reach 1/eps on identical frames, which would flatten a linear scale).
  """
  sim = np.asarray(sim, np.float64)
  pairs = np.asarray(pairs).reshape(-1, 2)
  if sim.ndim != 2:
    raise ValueError(f"plot_alignment: sim must be [T_a, T_b], got shape {sim.shape}")
  fig = _figure(6.4, 5.6 * min(2.0, max(0.5, sim.shape[0] / max(sim.shape[1], 1))) + 0.6)
  ax = fig.add_subplot()
  finite = sim[np.isfinite(sim)]
  lo, hi = np.percentile(finite, clip_percentiles) if finite.size else (0.0, 1.0)
  image = ax.imshow(
    sim,
    origin="upper",
    cmap="viridis",
    vmin=lo,
    vmax=max(hi, lo + 1e-12),
    interpolation="nearest",
    aspect="auto",
    extent=(-0.5, sim.shape[1] - 0.5, sim.shape[0] - 0.5, -0.5),
  )
  fig.colorbar(
    image,
    ax=ax,
    label=f"similarity ({clip_percentiles[0]:g}-{clip_percentiles[1]:g} percentile range)",
  )
  if len(pairs):
    style = dict(color="red", label=f"{label} ({len(pairs)} pairs)")
    if len(pairs) > 1 and np.all(np.diff(pairs, axis=0) > 0):
      ax.plot(pairs[:, 1], pairs[:, 0], linewidth=1.5, marker=".", markersize=3, **style)
    else:
      ax.scatter(pairs[:, 1], pairs[:, 0], s=6, **style)
    ax.legend(loc="lower left", fontsize="small")
  ax.set_xlabel(f"{name_b}: frame")
  ax.set_ylabel(f"{name_a}: frame")
  if title:
    ax.set_title(title)
  return fig


def plot_retrieval(
  query_image: np.ndarray,
  query_caption: str,
  images: Sequence[np.ndarray],
  captions: Sequence[str],
  *,
  title: Optional[str] = None,
  matches: Optional[Sequence[Optional[bool]]] = None,
) -> Figure:
  """A query frame and the frames retrieved for it, left to right, each with its caption.

  ``matches``: per result True/False (e.g. same phase as the query: green / red frame) or
  None (no frame colour).
  """
  if len(images) != len(captions):
    raise ValueError(f"plot_retrieval: {len(images)} images but {len(captions)} captions")
  n = len(images) + 1
  fig = _figure(2.2 * n, 3.0)
  axes = fig.subplots(1, n, squeeze=False)[0]
  items = [(query_image, query_caption, None)]
  items += [
    (im, cap, None if matches is None else matches[k])
    for k, (im, cap) in enumerate(zip(images, captions))
  ]
  for k, (ax, (image, caption, match)) in enumerate(zip(axes, items)):
    ax.imshow(np.asarray(image))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(caption, fontsize="small")
    colour = "blue" if k == 0 else {True: "green", False: "red"}.get(match)
    if colour:
      for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)
  axes[0].set_title("query", fontsize="medium")
  if title:
    fig.suptitle(title)
  return fig


def pca_2d(embeddings: Sequence[np.ndarray]) -> list[np.ndarray]:
  """Projects every video's ``[T_i, D]`` embeddings on the first two principal axes of all
  frames pooled; returns ``[T_i, 2]`` each."""
  pooled = np.concatenate([np.asarray(e, np.float64) for e in embeddings])
  mean = pooled.mean(0)
  _, _, vt = np.linalg.svd(pooled - mean, full_matrices=False)
  axes = vt[:2].T
  if axes.shape[1] < 2:  # One-dimensional embeddings: pad the second axis with zeros.
    axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
  return [(np.asarray(e, np.float64) - mean) @ axes for e in embeddings]


def plot_trajectories(
  embeddings: Sequence[np.ndarray],
  labels: Optional[Sequence[np.ndarray]] = None,
  names: Optional[Sequence[str]] = None,
  phase_names: Optional[Sequence[str]] = None,
  title: Optional[str] = None,
) -> Figure:
  """Each video's embeddings projected to 2-D (`pca_2d`) and drawn as a path through time.

  Points are coloured by phase when ``labels`` (int ``[T_i]`` per video) are given, else by
  the fraction of the video elapsed; a circle marks each video's first frame.
  """
  if not embeddings:
    raise ValueError("plot_trajectories: expected at least one video")
  if labels is not None and len(labels) != len(embeddings):
    raise ValueError(f"plot_trajectories: {len(embeddings)} videos but {len(labels)} labels")
  points = pca_2d(embeddings)
  fig = _figure(6.4, 5.2)
  ax = fig.add_subplot()
  if labels is not None:
    num = max(int(np.max(lab)) for lab in labels) + 1
    cmap = mcolors.ListedColormap(matplotlib.colormaps["tab10"].colors[: max(num, 1)])
    norm = mcolors.BoundaryNorm(np.arange(num + 1) - 0.5, num)
  else:
    cmap, norm = matplotlib.colormaps["plasma"], mcolors.Normalize(0.0, 1.0)
  scatter = None
  for k, xy in enumerate(points):
    value = (
      np.asarray(labels[k])
      if labels is not None
      else np.linspace(0.0, 1.0, len(xy))
      if len(xy) > 1
      else np.zeros(1)
    )
    ax.plot(xy[:, 0], xy[:, 1], color="0.7", linewidth=0.7, zorder=1)
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=value, cmap=cmap, norm=norm, s=10, zorder=2)
    ax.scatter(xy[:1, 0], xy[:1, 1], facecolors="none", edgecolors="black", s=60, zorder=3)
    if names is not None:
      ax.annotate(names[k], xy[0], fontsize="x-small", xytext=(4, 4), textcoords="offset points")
  bar = fig.colorbar(scatter, ax=ax)
  if labels is not None:
    bar.set_ticks(np.arange(num))
    bar.set_ticklabels(list(phase_names)[:num] if phase_names else [str(p) for p in range(num)])
    bar.set_label("phase")
  else:
    bar.set_label("fraction of the video elapsed")
  ax.set_xlabel("principal component 1")
  ax.set_ylabel("principal component 2")
  ax.set_title(title or "embedding trajectories (PCA, circles: first frames)")
  return fig


def plot_progress(
  predicted: Sequence[np.ndarray],
  true: Optional[Sequence[np.ndarray]] = None,
  names: Optional[Sequence[str]] = None,
  title: Optional[str] = None,
) -> Figure:
  """Per-frame progress curves: a value per frame (e.g. a linear probe's estimate of the
  fraction of the action done) against the frame index, one line per video, with the true
  curve dashed when given."""
  fig = _figure(6.4, 4.0)
  ax = fig.add_subplot()
  colours = matplotlib.colormaps["tab10"].colors
  for k, pred in enumerate(predicted):
    colour = colours[k % len(colours)]
    name = names[k] if names is not None else f"video {k}"
    ax.plot(np.arange(len(pred)), pred, color=colour, label=name)
    if true is not None:
      ax.plot(np.arange(len(true[k])), true[k], color=colour, linestyle="--", linewidth=1)
  ax.set_xlabel("frame")
  ax.set_ylabel("progress")
  ax.set_title(
    title or ("progress per frame (dashed: true)" if true is not None else "progress per frame")
  )
  ax.legend(fontsize="x-small")
  return fig


def fit_height(frame: np.ndarray, height: int) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top

  h, w = frame.shape[:2]
  width = max(2, int(round(w * height / h)))
  return np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BILINEAR))


def _fit_text(draw: Any, text: str, width: int, size: int) -> tuple[str, Any]:
  """``text`` in the largest default font of at most ``size`` px that fits ``width`` pixels
  (from 10 px on, the text is cut and ends with '...')."""
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top

  for px in range(size, 9, -1):
    font = ImageFont.load_default(size=px)
    if draw.textlength(text, font=font) <= width:
      return text, font
  while len(text) > 1 and draw.textlength(text + "...", font=font) > width:
    text = text[:-1]
  return text + "...", font


def side_by_side(
  frame_a: np.ndarray,
  frame_b: np.ndarray,
  caption_a: Sequence[str],
  caption_b: Sequence[str],
  height: int = 240,
  gap: int = 8,
  line_height: int = 18,
) -> np.ndarray:
  """Two uint8 RGB frames scaled to ``height`` and placed side by side under their captions.

  ``caption_a``, ``caption_b``: lines of text above each frame (shrunk or cut to its width).
  Returns uint8 ``[banner + height, W_a + gap + W_b, 3]`` (white gap and banner, black text).
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top

  a, b = fit_height(frame_a, height), fit_height(frame_b, height)
  banner = line_height * max(len(caption_a), len(caption_b)) + 4
  out = np.full((banner + height, a.shape[1] + gap + b.shape[1], 3), 255, np.uint8)
  out[banner:, : a.shape[1]] = a
  out[banner:, a.shape[1] + gap :] = b
  image = Image.fromarray(out)
  draw = ImageDraw.Draw(image)
  for left, width, lines in ((0, a.shape[1], caption_a), (a.shape[1] + gap, b.shape[1], caption_b)):
    for k, line in enumerate(lines):
      text, font = _fit_text(draw, line, width - 6, line_height - 4)
      draw.text((left + 3, 2 + k * line_height), text, fill=(0, 0, 0), font=font)
  return np.asarray(image)
