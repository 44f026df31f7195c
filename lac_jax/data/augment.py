"""Spatial and colour augmentation of one view, with one random draw shared by all its frames.

The official recipe (CARL's ``create_ssl_data_augment``, copied by LAC): random resized crop,
horizontal flip, colour jitter in a random order, Gaussian blur (CARL's per-jitter-op quirk:
``blur_per_jitter_op``), grayscale. NumPy on a whole view ``[T, H, W, 3]`` at once; this is the
reference of `lac_jax.data.device_augment`, the same augmentation jitted for the device
(``where``). ImageNet normalisation is done by the model, not here. The parameters, the blur and
where we differ from PIL: docs/data.md#augmentation.
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections
import numpy as np

_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as PIL's "L" conversion and CARL's grayscale
# Colour ops, in the index order used by `ViewParams.order`.
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
WHERE_CHOICES = ("auto", "host", "device")  # values of config.where


def default_config() -> ml_collections.ConfigDict:
  """Switches of the per-view augmentation (defaults: official strengths)."""
  c = ml_collections.ConfigDict()
  c.enabled = True  # False: frames are only resized to image_size (no crop, flip, colour)
  c.crop_scale = (0.8, 1.0)  # area fraction of the input kept by the random resized crop
  c.crop_ratio = (3.0 / 4.0, 4.0 / 3.0)  # aspect ratio range (w / h), sampled log-uniformly
  c.crop_tries = 10  # tries before falling back to a centre crop
  c.flip_prob = 0.5  # horizontal flip probability
  c.jitter_prob = 0.8  # probability of the colour jitter block
  c.brightness = 0.8  # brightness factor 1 + U(-b, b)
  c.contrast = 0.8  # contrast factor 1 + U(-c, c)
  c.saturation = 0.8  # saturation factor 1 + U(-s, s)
  c.hue = 0.2  # hue shift U(-h, h), in turns (1 = 360 degrees); <= 0.5
  c.grayscale_prob = 0.2  # grayscale probability (after the colour jitter)
  c.blur_prob = 0.5  # Gaussian blur probability (see blur_per_jitter_op)
  c.blur_sigma = (0.1, 2.0)  # blur standard deviation range, output pixels
  c.blur_per_jitter_op = False  # CARL quirk: blur inside the jitter, after each of its 4 ops
  # 'host': NumPy in the input pipeline's worker threads (this module, the reference);
  # 'device': jitted in the train step (`lac_jax.data.device_augment`); 'auto': device on
  # GPU/TPU, host on CPU (see `resolve_where`).
  c.where = "auto"
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad field."""
  lo, hi = config.crop_scale
  if not 0 < lo <= hi <= 1:
    raise ValueError(
      f"config.data.augment.crop_scale: need 0 < lo <= hi <= 1, got {config.crop_scale}"
    )
  lo, hi = config.crop_ratio
  if not 0 < lo <= hi:
    raise ValueError(f"config.data.augment.crop_ratio: need 0 < lo <= hi, got {config.crop_ratio}")
  for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob"):
    if not 0 <= config[name] <= 1:
      raise ValueError(
        f"config.data.augment.{name}: need a probability in [0, 1], got {config[name]}"
      )
  for name in ("brightness", "contrast", "saturation"):
    if not 0 <= config[name] <= 1:
      raise ValueError(f"config.data.augment.{name}: need in [0, 1], got {config[name]}")
  if not 0 <= config.hue <= 0.5:
    raise ValueError(f"config.data.augment.hue: need in [0, 0.5], got {config.hue}")
  lo, hi = config.blur_sigma
  if not 0 < lo <= hi:
    raise ValueError(f"config.data.augment.blur_sigma: need 0 < lo <= hi, got {config.blur_sigma}")
  where = config.get("where", "auto")  # configs saved before the field existed: 'auto'
  if where not in WHERE_CHOICES:
    raise ValueError(f"config.data.augment.where: need one of {list(WHERE_CHOICES)}, got {where!r}")


def resolve_where(where: str, backend: str) -> str:
  """Where the augmentation runs, 'host' or 'device', for ``where`` (a `WHERE_CHOICES`) on the
  JAX backend ``backend`` (``jax.default_backend()``: 'cpu', 'gpu', 'tpu', ...).

  'auto' is 'host' on CPU: there the "device" shares the cores with the input pipeline and the
  model, and the NumPy version is the cheaper of the two.
  """
  if where not in WHERE_CHOICES:
    raise ValueError(f"config.data.augment.where: need one of {list(WHERE_CHOICES)}, got {where!r}")
  if where == "auto":
    return "host" if backend == "cpu" else "device"
  return where


@dataclasses.dataclass(frozen=True)
class ViewParams:
  """One random draw, applied identically to every frame of a view."""

  crop: tuple[int, int, int, int]  # top, left, height, width in input pixels
  flip: bool
  jitter: bool  # apply the colour jitter block
  order: tuple[int, ...]  # permutation of (BRIGHTNESS, CONTRAST, SATURATION, HUE)
  brightness: float  # multiplicative factor
  contrast: float  # factor
  saturation: float  # factor
  hue: float  # shift in turns
  blur: bool
  blur_sigma: float
  grayscale: bool


def _crop_box(
  rng: np.random.Generator, height: int, width: int, config: ml_collections.ConfigDict
) -> tuple[int, int, int, int]:
  """Inception-style random crop ``(top, left, h, w)`` (torchvision's rule, as CARL's)."""
  area = height * width
  log_lo, log_hi = math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1])
  for _ in range(config.crop_tries):
    target = rng.uniform(*config.crop_scale) * area
    aspect = math.exp(rng.uniform(log_lo, log_hi))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
  ratio = width / height  # fallback: the largest centred crop within the ratio range
  if ratio < config.crop_ratio[0]:
    w, h = width, int(round(width / config.crop_ratio[0]))
  elif ratio > config.crop_ratio[1]:
    h, w = height, int(round(height * config.crop_ratio[1]))
  else:
    h, w = height, width
  return (height - h) // 2, (width - w) // 2, h, w


def draw_params(
  rng: np.random.Generator, height: int, width: int, config: ml_collections.ConfigDict
) -> ViewParams:
  """Draws a view's augmentation for input frames of ``height x width``."""
  crop = _crop_box(rng, height, width, config)
  flip = bool(rng.uniform() < config.flip_prob)
  jitter = bool(rng.uniform() < config.jitter_prob)
  order = tuple(int(i) for i in rng.permutation(4))
  brightness = 1.0 + rng.uniform(-config.brightness, config.brightness)
  contrast = 1.0 + rng.uniform(-config.contrast, config.contrast)
  saturation = 1.0 + rng.uniform(-config.saturation, config.saturation)
  hue = rng.uniform(-config.hue, config.hue)
  blur = bool(rng.uniform() < config.blur_prob)
  blur_sigma = rng.uniform(*config.blur_sigma)
  grayscale = bool(rng.uniform() < config.grayscale_prob)
  if config.blur_per_jitter_op:
    blur = blur and jitter  # CARL draws the blur inside the jitter block
  return ViewParams(
    crop=crop,
    flip=flip,
    jitter=jitter,
    order=order,
    brightness=brightness,
    contrast=contrast,
    saturation=saturation,
    hue=hue,
    blur=blur,
    blur_sigma=blur_sigma,
    grayscale=grayscale,
  )


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Bilinear taps with half-pixel centres: out[k] = (1 - w) * in[i0] + w * in[i1]."""
  src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
  src = np.maximum(src, 0.0)  # as torch's align_corners=False: no negative source coords
  i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
  i1 = np.minimum(i0 + 1, n_in - 1)
  return i0, i1, (src - i0).astype(np.float32)


def _crop_resize_planar(
  frames: np.ndarray, crop: tuple[int, int, int, int], size: int, flip: bool = False
) -> np.ndarray:
  """uint8 ``[T, H, W, 3]`` -> cropped, resized (and flipped) float32 ``[3, T, S, S]``."""
  top, left, h, w = crop
  # A C-contiguous planar copy (uint8, cheap): every op downstream streams over long rows.
  planar = np.ascontiguousarray(np.moveaxis(frames[:, top : top + h, left : left + w], -1, 0))
  y0, y1, wy = _taps(h, size)
  x0, x1, wx = _taps(w, size)
  if flip:  # mirror the output columns: reverse the column taps
    x0, x1, wx = x0[::-1], x1[::-1], wx[::-1]
  # np.take, unlike fancy indexing, returns C-contiguous arrays.
  a = np.take(planar, y0, axis=2).astype(np.float32)  # [3, T, S, w]
  b = np.take(planar, y1, axis=2).astype(np.float32)
  b -= a
  b *= wy[:, None]
  a += b
  out = np.take(a, x0, axis=3)  # [3, T, S, S]
  d = np.take(a, x1, axis=3)
  d -= out
  d *= wx
  out += d
  return out


def _gray(x: np.ndarray) -> np.ndarray:
  """Luma of planar ``[3, ...]`` -> ``[...]``."""
  return np.float32(_GRAY[0]) * x[0] + np.float32(_GRAY[1]) * x[1] + np.float32(_GRAY[2]) * x[2]


def _adjust_hue(x: np.ndarray, shift: float) -> np.ndarray:
  """Rotates the HSV hue of planar RGB ``[3, ...]`` in [0, 255] by ``shift`` turns.

  HSV -> RGB is ``channel = V - (V - min) * clip(min(k, 4 - k), 0, 1)`` with
  ``k = (n + 6 H) mod 6`` and n = 5, 3, 1 for R, G, B; value and saturation are kept.
  """
  r, g, b = x[0], x[1], x[2]
  maxc = np.maximum(r, g)
  np.maximum(maxc, b, out=maxc)
  delta = np.minimum(r, g)
  np.minimum(delta, b, out=delta)
  np.subtract(maxc, delta, out=delta)
  is_r = maxc == r
  is_g = (maxc == g) & ~is_r
  h6 = np.where(is_r, g - b, np.where(is_g, b - r, r - g))  # 6 H = num / delta + offset
  h6 /= np.where(delta > 0, delta, np.float32(1))
  h6 += np.where(
    is_r,
    np.float32(6.0 * shift),
    np.where(is_g, np.float32(2 + 6.0 * shift), np.float32(4 + 6.0 * shift)),
  )
  out = np.empty_like(x)
  k = np.empty_like(h6)
  k4 = np.empty_like(h6)
  for c, n in enumerate((5.0, 3.0, 1.0)):
    np.add(h6, np.float32(n), out=k)
    np.multiply(k, np.float32(1.0 / 6.0), out=k4)  # k mod 6, cheaper than np.mod
    np.floor(k4, out=k4)
    k4 *= np.float32(6.0)
    k -= k4
    np.subtract(np.float32(4.0), k, out=k4)
    np.minimum(k, k4, out=k)
    np.clip(k, 0, 1, out=k)
    k *= delta
    np.subtract(maxc, k, out=out[c])
  return out


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
  """Separable Gaussian blur of planar ``[3, T, S, S]`` over the last two axes (edge mode)."""
  radius = max(1, int(math.ceil(3.0 * sigma)))
  taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  taps = (taps / taps.sum()).astype(np.float32)
  tmp = np.empty_like(x)
  for axis in (-1, -2):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(x, pad, mode="edge")
    n = x.shape[axis]
    window = lambda i: padded[..., i : i + n] if axis == -1 else padded[..., i : i + n, :]
    out = window(radius) * taps[radius]
    for i in range(radius):  # symmetric taps: add the mirrored pair, then scale once
      np.add(window(i), window(2 * radius - i), out=tmp)
      tmp *= taps[i]
      out += tmp
    x = out
  return x


def _color_op(x: np.ndarray, op: int, p: ViewParams) -> np.ndarray:
  """One jitter op on planar float ``[3, T, S, S]``, clipped to [0, 255] like PIL."""
  if op == BRIGHTNESS:
    x *= np.float32(p.brightness)
  elif op == CONTRAST:  # blend with the frame's mean gray level
    mean = _gray(x).mean(axis=(-2, -1), keepdims=True)  # [T, 1, 1]
    x -= mean
    x *= np.float32(p.contrast)
    x += mean
  elif op == SATURATION:  # blend with the pixel's gray level
    gray = _gray(x)
    x -= gray
    x *= np.float32(p.saturation)
    x += gray
  else:
    x = _adjust_hue(x, p.hue)
  return np.clip(x, 0, 255, out=x)


def _to_uint8(planar: np.ndarray) -> np.ndarray:
  """float ``[3, T, S, S]`` -> uint8 ``[T, S, S, 3]``, rounded and clipped."""
  planar += np.float32(0.5)  # the cast truncates: +0.5 rounds non-negative values
  np.clip(planar, 0, 255, out=planar)
  return np.ascontiguousarray(np.moveaxis(planar.astype(np.uint8), 0, -1))


def _chunk_frames(size: int) -> int:
  """Frames per chunk so that a planar float chunk (~1 MiB) stays in cache across ops."""
  return max(1, (1 << 20) // (3 * 4 * size * size))


def apply(
  frames: np.ndarray, params: ViewParams, size: int, config: ml_collections.ConfigDict
) -> np.ndarray:
  """Applies one draw to every frame: uint8 ``[T, H, W, 3]`` -> uint8 ``[T, S, S, 3]``.

  Works on chunks of a few frames: every op is per frame, and a cache-sized chunk runs the
  dozens of passes below several times faster than the whole view would.
  """
  _check_frames(frames)
  out = np.empty((frames.shape[0], size, size, 3), np.uint8)
  step = _chunk_frames(size)
  for s in range(0, frames.shape[0], step):
    x = _crop_resize_planar(frames[s : s + step], params.crop, size, params.flip)
    if params.jitter:
      for op in params.order:
        x = _color_op(x, op, params)
        if config.blur_per_jitter_op and params.blur:
          x = _blur(x, params.blur_sigma)
    if params.blur and not config.blur_per_jitter_op:
      x = _blur(x, params.blur_sigma)
    if params.grayscale:
      x[:] = _gray(x)
    out[s : s + step] = _to_uint8(x)
  return out


def resize(frames: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of whole frames (aspect not kept): uint8 ``[T, H, W, 3]`` -> ``[T, S, S, 3]``.

  Returns the input itself when it already has the size. Works on a few frames at a time, so
  long evaluation videos need little extra memory.
  """
  _check_frames(frames)
  t, h, w, _ = frames.shape
  if h == size and w == size:
    return frames
  out = np.empty((t, size, size, 3), np.uint8)
  chunk = _chunk_frames(size)
  for s in range(0, t, chunk):
    out[s : s + chunk] = _to_uint8(_crop_resize_planar(frames[s : s + chunk], (0, 0, h, w), size))
  return out


def _check_frames(frames: np.ndarray) -> None:
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(
      f"augment: frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}"
    )


def augment_view(
  frames: np.ndarray, rng: np.random.Generator, size: int, config: ml_collections.ConfigDict
) -> np.ndarray:
  """Augments one view with one random draw: uint8 ``[T, H, W, 3]`` -> uint8 ``[T, S, S, 3]``.

  With ``config.enabled = False`` this is `resize` (no random numbers are drawn).
  """
  _check_frames(frames)
  if not config.enabled:
    return resize(frames, size)
  check_config(config)
  params = draw_params(rng, frames.shape[1], frames.shape[2], config)
  return apply(frames, params, size, config)
