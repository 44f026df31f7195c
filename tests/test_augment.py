"""Tests of the per-view augmentation against slow float64 references."""

import colorsys
import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from lac_jax.data import augment


def _config(**overrides):
  c = augment.default_config()
  c.update(overrides)
  return c


def _video(t=3, h=20, w=24, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def _identity_params(h, w, **overrides):
  p = augment.ViewParams(
    crop=(0, 0, h, w),
    flip=False,
    jitter=False,
    order=(0, 1, 2, 3),
    brightness=1.0,
    contrast=1.0,
    saturation=1.0,
    hue=0.0,
    blur=False,
    blur_sigma=1.0,
    grayscale=False,
  )
  return dataclasses.replace(p, **overrides)


def _ref_resize(img, top, left, h, w, size):
  """Slow bilinear crop+resize of one float64 image, half-pixel centres (align_corners=False)."""
  out = np.zeros((size, size, img.shape[-1]))
  for oy in range(size):
    for ox in range(size):
      sy = max((oy + 0.5) * h / size - 0.5, 0.0)
      sx = max((ox + 0.5) * w / size - 0.5, 0.0)
      y0, x0 = min(int(math.floor(sy)), h - 1), min(int(math.floor(sx)), w - 1)
      y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
      fy, fx = sy - y0, sx - x0
      px = lambda y, x: img[top + y, left + x]
      out[oy, ox] = (1 - fy) * ((1 - fx) * px(y0, x0) + fx * px(y0, x1)) + fy * (
        (1 - fx) * px(y1, x0) + fx * px(y1, x1)
      )
  return out


def _gray(px):
  return 0.299 * px[..., 0] + 0.587 * px[..., 1] + 0.114 * px[..., 2]


def _ref_color(img, order, p):
  """Slow float64 colour jitter of one image [H, W, 3] in [0, 255] (PIL semantics)."""
  x = img.astype(np.float64)
  for op in order:
    if op == augment.BRIGHTNESS:
      x = x * p.brightness
    elif op == augment.CONTRAST:
      m = _gray(x).mean()
      x = m + p.contrast * (x - m)
    elif op == augment.SATURATION:
      g = _gray(x)[..., None]
      x = g + p.saturation * (x - g)
    else:
      y = np.empty_like(x)
      for i in np.ndindex(x.shape[:2]):
        h, s, v = colorsys.rgb_to_hsv(*(x[i] / 255.0))
        y[i] = np.array(colorsys.hsv_to_rgb((h + p.hue) % 1.0, s, v)) * 255.0
      x = y
    x = np.clip(x, 0, 255)
  return x


def test_output_shape_and_dtype():
  out = augment.augment_view(_video(4, 30, 50), np.random.default_rng(0), 16, _config())
  assert out.shape == (4, 16, 16, 3) and out.dtype == np.uint8


def test_identical_frames_stay_identical_with_every_op():
  frame = _video(1, 24, 24)
  frames = np.repeat(frame, 5, axis=0)
  c = _config(jitter_prob=1.0, blur_prob=1.0, grayscale_prob=0.5, flip_prob=0.5)
  outputs = []
  for seed in range(8):
    out = augment.augment_view(frames, np.random.default_rng(seed), 16, c)
    assert all(np.array_equal(out[0], out[t]) for t in range(1, 5))
    outputs.append(out[0])
  # ... while different draws give different views.
  assert len({o.tobytes() for o in outputs}) == 8


def test_same_crop_and_flip_for_every_frame():
  # R and G encode the input pixel's x and y, B the frame index: after crop/flip/resize, R and
  # G must be the same map in every frame, equal to the slow reference of the drawn crop.
  t, h, w, size = 4, 20, 24, 12
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  frames = np.stack(
    [np.stack([xx * 10, yy * 12, np.full_like(xx, 40 * i)], -1) for i in range(t)]
  ).astype(np.uint8)
  c = _config(jitter_prob=0.0, blur_prob=0.0, grayscale_prob=0.0)
  for seed in range(6):
    params = augment.draw_params(np.random.default_rng(seed), h, w, c)
    out = augment.augment_view(frames, np.random.default_rng(seed), size, c)
    ref = _ref_resize(frames[0].astype(np.float64), *params.crop, size)
    if params.flip:
      ref = ref[:, ::-1]
    for i in range(t):
      assert np.abs(out[i, ..., :2] - ref[..., :2]).max() <= 0.5 + 1e-3
      assert np.all(out[i, ..., 2] == 40 * i)


def test_crop_parameters_follow_the_official_ranges():
  c = _config()
  for seed in range(200):
    top, left, h, w = augment.draw_params(np.random.default_rng(seed), 100, 120, c).crop
    assert 0 <= top <= 100 - h and 0 <= left <= 120 - w
    assert 0.8 - 0.03 <= h * w / (100 * 120) <= 1.0
    assert 3 / 4 - 0.03 <= w / h <= 4 / 3 + 0.03
  # Impossible ratio: the centre crop fallback.
  assert augment.draw_params(np.random.default_rng(0), 10, 100, c).crop == (0, 43, 10, 13)


def test_color_jitter_matches_the_slow_reference():
  frames = _video(2, 6, 6, seed=1)
  rng = np.random.default_rng(5)
  for _ in range(6):
    p = _identity_params(
      6,
      6,
      jitter=True,
      order=tuple(int(i) for i in rng.permutation(4)),
      brightness=rng.uniform(0.2, 1.8),
      contrast=rng.uniform(0.2, 1.8),
      saturation=rng.uniform(0.2, 1.8),
      hue=rng.uniform(-0.2, 0.2),
    )
    out = augment.apply(frames, p, 6, _config())
    for i in range(2):
      ref = _ref_color(frames[i], p.order, p)
      assert np.abs(out[i].astype(np.float64) - ref).max() <= 0.5 + 1e-3


def test_grayscale_and_blur_match_references():
  frames = _video(2, 16, 16, seed=2)
  out = augment.apply(frames, _identity_params(16, 16, grayscale=True), 16, _config())
  ref = _gray(frames.astype(np.float64))
  for ch in range(3):
    assert np.abs(out[..., ch] - ref).max() <= 0.5 + 1e-3
  for sigma in (0.4, 1.7):
    out = augment.apply(
      frames, _identity_params(16, 16, blur=True, blur_sigma=sigma), 16, _config()
    )
    r = max(1, math.ceil(3 * sigma))
    ref = ndimage.gaussian_filter(
      frames.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="nearest", truncate=r / sigma
    )
    assert np.abs(out - ref).max() <= 0.5 + 1e-3


def test_flip_mirrors_columns():
  frames = _video(3, 10, 10)
  c = _config(
    flip_prob=1.0,
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    jitter_prob=0.0,
    blur_prob=0.0,
    grayscale_prob=0.0,
  )
  out = augment.augment_view(frames, np.random.default_rng(0), 10, c)
  np.testing.assert_array_equal(out, frames[:, :, ::-1])


def test_disabled_is_a_plain_bilinear_resize():
  frames = _video(2, 20, 30)
  out = augment.augment_view(frames, np.random.default_rng(0), 8, _config(enabled=False))
  for i in range(2):
    ref = _ref_resize(frames[i].astype(np.float64), 0, 0, 20, 30, 8)
    assert np.abs(out[i] - ref).max() <= 0.5 + 1e-3
  np.testing.assert_array_equal(out, augment.resize(frames, 8))
  small = _video(2, 5, 7)  # upsampling: border outputs map to negative source coordinates
  up = augment.resize(small, 12)
  for i in range(2):
    assert np.abs(up[i] - _ref_resize(small[i].astype(np.float64), 0, 0, 5, 7, 12)).max() <= 0.501
  same = _video(2, 8, 8)
  assert augment.augment_view(same, None, 8, _config(enabled=False)) is same


def test_draws_differ_across_seeds_and_views():
  c = _config()
  draws = {augment.draw_params(np.random.default_rng(s), 50, 50, c) for s in range(20)}
  assert len(draws) == 20
  rng = np.random.default_rng(0)
  frames = _video(2, 30, 30)
  a = augment.augment_view(frames, rng, 16, c)
  b = augment.augment_view(frames, rng, 16, c)  # next view from the same generator
  assert not np.array_equal(a, b)


def test_carl_blur_quirk_switch():
  rates = {}
  for quirk in (False, True):
    c = _config(blur_per_jitter_op=quirk)
    draws = [augment.draw_params(np.random.default_rng(s), 20, 20, c) for s in range(400)]
    if quirk:  # CARL: the blur is drawn inside the jitter block
      assert all(d.jitter for d in draws if d.blur)
    rates[quirk] = np.mean([d.blur for d in draws])
  assert abs(rates[False] - 0.5) < 0.08 and abs(rates[True] - 0.4) < 0.08
  # With the quirk the blur runs after each of the four jitter ops: 4 blurs of identity ops.
  frames = _video(1, 16, 16)
  p = _identity_params(16, 16, jitter=True, blur=True, blur_sigma=0.8)
  quirk = augment.apply(frames, p, 16, _config(blur_per_jitter_op=True))
  once = augment.apply(frames, p, 16, _config(blur_per_jitter_op=False))
  r = max(1, math.ceil(3 * 0.8))
  x = frames.astype(np.float64)
  for _ in range(4):
    x = ndimage.gaussian_filter(x, sigma=(0, 0.8, 0.8, 0), mode="nearest", truncate=r / 0.8)
  assert np.abs(quirk - x).max() <= 1.0  # within the rounding of 4 clipped passes
  assert not np.array_equal(quirk, once)


def test_bad_input_raises():
  with pytest.raises(ValueError, match="uint8"):
    augment.augment_view(np.zeros((2, 8, 8, 3), np.float32), np.random.default_rng(0), 8, _config())
  with pytest.raises(ValueError, match="crop_scale"):
    augment.augment_view(_video(), np.random.default_rng(0), 8, _config(crop_scale=(0.9, 0.1)))
