"""Tests for lac_jax.visualize: what each picture draws, and that it renders to a PNG."""

import io

import numpy as np
import pytest
from PIL import Image

from lac_jax import visualize


def render(fig):
  buf = io.BytesIO()
  fig.savefig(buf, format="png")
  buf.seek(0)
  with Image.open(buf) as image:
    assert image.format == "PNG" and min(image.size) > 50
    return np.asarray(image.convert("RGB"))


def test_alignment_picture_draws_the_pairs_on_the_matrix():
  rng = np.random.default_rng(0)
  sim = rng.normal(size=(12, 20))
  sim[3, 4] = 1e6  # one huge value must not flatten the colour scale
  path = np.array([[0, 1], [1, 2], [3, 4], [4, 7]])
  fig = visualize.plot_alignment(sim, path, name_a="A (x)", name_b="B (y)", title="t")
  ax = fig.axes[0]
  np.testing.assert_array_equal(ax.lines[0].get_xydata(), path[:, ::-1])  # x = B, y = A
  image = ax.images[0]
  assert image.get_array().shape == (12, 20)
  assert image.norm.vmax < 10  # 99th percentile, not the 1e6 outlier
  assert ax.get_xlabel() == "B (y): frame" and ax.get_ylabel() == "A (x): frame"
  render(fig)
  # Pairs that are not a path (nearest neighbours) are drawn as points, not a line.
  nn = np.array([[0, 5], [1, 2], [2, 9]])
  fig = visualize.plot_alignment(sim, nn, label="nearest neighbour")
  assert not fig.axes[0].lines
  np.testing.assert_array_equal(fig.axes[0].collections[0].get_offsets(), nn[:, ::-1])
  render(visualize.plot_alignment(sim, np.zeros((0, 2))))
  with pytest.raises(ValueError, match="sim"):
    visualize.plot_alignment(np.zeros(3), path)


def test_retrieval_grid_frames_and_captions():
  frames = [np.full((20, 30, 3), v, np.uint8) for v in (0, 80, 160, 240)]
  fig = visualize.plot_retrieval(
    frames[0],
    "query\nframe 3",
    frames[1:],
    ["a", "b", "c"],
    matches=[True, False, None],
    title="top 3",
  )
  axes = fig.axes
  assert len(axes) == 4
  assert [ax.get_xlabel() for ax in axes] == ["query\nframe 3", "a", "b", "c"]
  for ax, frame in zip(axes, frames):
    np.testing.assert_array_equal(ax.images[0].get_array(), frame)
  edge = lambda ax: ax.spines["left"].get_edgecolor()[:3]
  assert edge(axes[1]) == (0.0, 0.5019607843137255, 0.0)  # green: same phase
  assert edge(axes[2]) == (1.0, 0.0, 0.0)  # red: another phase
  render(fig)
  with pytest.raises(ValueError, match="captions"):
    visualize.plot_retrieval(frames[0], "q", frames[1:], ["a"])


def test_pca_projection_and_trajectories():
  rng = np.random.default_rng(1)
  t = np.linspace(0, 1, 30)
  direction = np.array([3.0, 4.0, 0.0, 0.0]) / 5
  videos = [np.outer(t, direction) * 10 + rng.normal(scale=0.01, size=(30, 4)) for _ in range(2)]
  xy = visualize.pca_2d(videos)
  assert [p.shape for p in xy] == [(30, 2), (30, 2)]
  # Points on a line: all the spread is on the first axis, along time.
  assert np.std(np.concatenate(xy)[:, 1]) < 0.05 * np.std(np.concatenate(xy)[:, 0])
  assert abs(np.corrcoef(xy[0][:, 0], t)[0, 1]) > 0.99
  labels = [(t * 3).astype(int).clip(0, 2)] * 2
  fig = visualize.plot_trajectories(videos, labels, names=["v0", "v1"], phase_names=["a", "b", "c"])
  points = fig.axes[0].collections[0]
  np.testing.assert_allclose(points.get_offsets(), xy[0])
  np.testing.assert_array_equal(points.get_array(), labels[0])
  assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == ["a", "b", "c"]
  render(fig)
  fig = visualize.plot_trajectories(videos)  # coloured by time
  np.testing.assert_allclose(fig.axes[0].collections[0].get_array(), t)
  render(fig)


def test_progress_curves():
  pred = [np.linspace(0, 1, 10), np.linspace(0, 0.9, 7)]
  fig = visualize.plot_progress(
    pred, true=[np.linspace(0, 1, 10), np.linspace(0, 1, 7)], names=["a", "b"]
  )
  lines = fig.axes[0].lines
  assert len(lines) == 4  # predicted and true per video
  np.testing.assert_allclose(lines[2].get_ydata(), pred[1])
  assert lines[1].get_linestyle() == "--"
  render(fig)


def test_side_by_side_layout():
  a = np.zeros((40, 60, 3), np.uint8)
  b = np.full((20, 20, 3), 200, np.uint8)
  out = visualize.side_by_side(
    a,
    b,
    ("A: frame 1 / 9", "a very long name " * 5),
    ("B: frame 2 / 9",),
    height=80,
    gap=4,
    line_height=16,
  )
  banner = 2 * 16 + 4
  assert out.dtype == np.uint8 and out.shape == (banner + 80, 120 + 4 + 80, 3)
  assert np.all(out[banner:, :120] == 0) and np.all(out[banner:, 124:] == 200)
  assert np.all(out[banner:, 120:124] == 255)  # the gap
  assert out[:banner].min() < 100  # some text was drawn
