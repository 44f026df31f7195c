"""The per-view augmentation of `lac_jax.data.augment` as a jitted JAX function, for the device.

The host resizes the frames whole to ``S0 x S0`` (uint8); the train step draws each view's
parameters from a JAX key (`draw_params`) and applies them (`apply`), or does both for a batch
of views (`augment_views`, vmapped, usable inside ``jax.jit`` / ``jax.pmap``). The NumPy module
is the reference: same distribution of draws and, given the same parameters, the same pixels up
to float32 rounding. The known differences from the host path:
docs/data.md#augmentation-on-the-device.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lac_jax.data import augment

_HIGHEST = jax.lax.Precision.HIGHEST
# Param names and dtypes of one view's draw (the fields of `augment.ViewParams`).
_FLOATS = ("brightness", "contrast", "saturation", "hue", "blur_sigma")
_BOOLS = ("flip", "jitter", "blur", "grayscale")
_IDENTITY = 4  # op index of "no colour op" (the jitter did not fire)


def _crop_box(
  u: jax.Array, height: jax.Array, width: jax.Array, config: ml_collections.ConfigDict
) -> jax.Array:
  """`augment._crop_box` with its tries drawn at once: int32 ``[4]`` (top, left, h, w).

  ``u``: ``2 crop_tries + 2`` uniforms in [0, 1).
  """
  tries = int(config.crop_tries)
  lo, hi = (float(v) for v in config.crop_scale)
  r_lo, r_hi = (float(v) for v in config.crop_ratio)
  hf, wf = height.astype(jnp.float32), width.astype(jnp.float32)
  target = (lo + (hi - lo) * u[:tries]) * (hf * wf)
  log_lo, log_hi = math.log(r_lo), math.log(r_hi)
  aspect = jnp.exp(log_lo + (log_hi - log_lo) * u[tries : 2 * tries])
  w = jnp.round(jnp.sqrt(target * aspect)).astype(jnp.int32)  # half to even, as Python's round
  h = jnp.round(jnp.sqrt(target / aspect)).astype(jnp.int32)
  valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  first = jnp.argmax(valid)  # the first try that fits (0 if none)
  h, w, ok = h[first], w[first], valid.any()
  top = _uniform_int(u[2 * tries], height - h + 1)
  left = _uniform_int(u[2 * tries + 1], width - w + 1)
  # Fallback: the largest centred crop within the ratio range.
  ratio = wf / hf
  fb_h = jnp.where(ratio < r_lo, jnp.round(wf / r_lo).astype(jnp.int32), height)
  fb_w = jnp.where(ratio > r_hi, jnp.round(hf * r_hi).astype(jnp.int32), width)
  box = jnp.stack([top, left, h, w])
  fallback = jnp.stack([(height - fb_h) // 2, (width - fb_w) // 2, fb_h, fb_w])
  return jnp.where(ok, box, fallback).astype(jnp.int32)


def _uniform_int(u: jax.Array, n: jax.Array) -> jax.Array:
  """An integer uniform in ``[0, n)`` from ``u`` uniform in [0, 1) (2^23 levels: the bias is
  below ``n / 2^23``)."""
  return jnp.clip(jnp.floor(u * n.astype(jnp.float32)).astype(jnp.int32), 0, n - 1)


def draw_params(
  key: jax.Array, height: Any, width: Any, config: ml_collections.ConfigDict
) -> dict[str, jax.Array]:
  """One view's draw, distributed as `augment.draw_params`'s.

  All its random numbers come from one ``jax.random.uniform`` call (each separate call of the
  random bits costs a compile, slow on CPU).

  Args:
    key: a typed key (``jax.random.key``) or raw key data (``jax.random.PRNGKey``).
    height, width: int32 scalars (may be traced): the video's frame size before the host resize.
    config: the augment config (static; its numbers are read at trace time).

  Returns:
    ``crop`` int32 ``[4]`` (top, left, h, w in source pixels), ``order`` int32 ``[4]`` (a
    permutation of the colour ops), bool scalars ``flip``, ``jitter``, ``blur``, ``grayscale``
    and float32 scalars ``brightness``, ``contrast``, ``saturation`` (factors), ``hue`` (turns)
    and ``blur_sigma``.
  """
  height = jnp.asarray(height, jnp.int32)
  width = jnp.asarray(width, jnp.int32)
  n_crop = 2 * int(config.crop_tries) + 2
  u = jax.random.uniform(key, (n_crop + 13,))
  crop, u = u[:n_crop], u[n_crop:]

  def between(v, a, b):  # U(a, b) from U(0, 1)
    return float(a) + (float(b) - float(a)) * v

  jitter = u[1] < float(config.jitter_prob)
  blur = u[2] < float(config.blur_prob)
  if config.blur_per_jitter_op:
    blur = blur & jitter  # CARL draws the blur inside the jitter block
  return {
    "crop": _crop_box(crop, height, width, config),
    "flip": u[0] < float(config.flip_prob),
    "jitter": jitter,
    "blur": blur,
    "grayscale": u[3] < float(config.grayscale_prob),
    # Ranks of 4 uniforms: a uniform permutation (ties have probability ~1e-6).
    "order": jnp.argsort(u[4:8]).astype(jnp.int32),
    "brightness": 1.0 + between(u[8], -config.brightness, config.brightness),
    "contrast": 1.0 + between(u[9], -config.contrast, config.contrast),
    "saturation": 1.0 + between(u[10], -config.saturation, config.saturation),
    "hue": between(u[11], -config.hue, config.hue),
    "blur_sigma": between(u[12], *config.blur_sigma),
  }


def params_from_host(p: augment.ViewParams) -> dict[str, jax.Array]:
  """A host draw (`augment.ViewParams`) in `draw_params`'s format."""
  out = {"crop": jnp.asarray(p.crop, jnp.int32), "order": jnp.asarray(p.order, jnp.int32)}
  out.update({k: jnp.asarray(getattr(p, k), bool) for k in _BOOLS})
  out.update({k: jnp.asarray(getattr(p, k), jnp.float32) for k in _FLOATS})
  return out


def _resize_matrix(
  start: jax.Array, length: jax.Array, extent: jax.Array, s0: int, size: int
) -> jax.Array:
  """float32 ``[size, s0]``: bilinear crop + resize along one axis, as a matrix on the S0 grid.

  The crop ``[start, start + length)`` is in source pixels (``extent`` of them). Output k samples
  crop coordinate ``src = (k + 0.5) * length / size - 0.5`` clamped to ``[0, length - 1]``, as
  `augment._taps` (integer maths: exact weights). When ``extent == s0`` the taps are the host's;
  otherwise the source coordinate is mapped onto the S0 grid (half-pixel centres) and clamped.
  """
  k = jnp.arange(size, dtype=jnp.int32)
  num = (2 * k + 1) * length - size  # src = num / (2 size)
  i0 = num // (2 * size)
  frac = (num - i0 * 2 * size).astype(jnp.float32) / (2 * size)
  low, high = num < 0, i0 >= length - 1  # torch's clamp of negative coords; the crop's edge
  i0 = jnp.where(low, 0, jnp.where(high, length - 1, i0)) + start
  frac = jnp.where(low | high, 0.0, frac)
  # Another grid: scale the continuous source coordinate onto it.
  scale = s0 / extent.astype(jnp.float32)
  g = jnp.clip((i0.astype(jnp.float32) + frac + 0.5) * scale - 0.5, 0.0, s0 - 1.0)
  g0 = jnp.floor(g).astype(jnp.int32)
  same = extent == s0
  j0 = jnp.where(same, i0, g0)
  w = jnp.where(same, frac, g - g0)
  j1 = jnp.minimum(j0 + 1, s0 - 1)  # w is 0 wherever this clamp matters
  cols = jnp.arange(s0, dtype=jnp.int32)
  return (1.0 - w)[:, None] * (cols == j0[:, None]) + w[:, None] * (cols == j1[:, None])


def _gray(x: jax.Array) -> jax.Array:
  """Luma of ``[..., 3]`` -> ``[...]`` (summed in `augment._gray`'s order)."""
  g = augment._GRAY  # pylint: disable=protected-access
  return g[0] * x[..., 0] + g[1] * x[..., 1] + g[2] * x[..., 2]


def _adjust_hue(x: jax.Array, shift: jax.Array) -> jax.Array:
  """`augment._adjust_hue` on channels-last ``[..., 3]`` (continuous HSV, same formulas)."""
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  maxc = jnp.maximum(jnp.maximum(r, g), b)
  delta = maxc - jnp.minimum(jnp.minimum(r, g), b)
  is_r = maxc == r
  is_g = (maxc == g) & ~is_r
  h6 = jnp.where(is_r, g - b, jnp.where(is_g, b - r, r - g))
  h6 = h6 / jnp.where(delta > 0, delta, 1.0)
  s6 = 6.0 * shift
  h6 = h6 + jnp.where(is_r, s6, jnp.where(is_g, 2.0 + s6, 4.0 + s6))
  out = []
  for n in (5.0, 3.0, 1.0):
    k = h6 + n
    k = k - jnp.floor(k * np.float32(1.0 / 6.0)) * 6.0  # k mod 6, as the host computes it
    k = jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)
    out.append(maxc - k * delta)
  return jnp.stack(out, axis=-1)


def _color_op(op: jax.Array, x: jax.Array, p: dict[str, jax.Array]) -> jax.Array:
  """Colour op ``op`` (`augment.BRIGHTNESS`... or `_IDENTITY`) on ``[T, S, S, 3]``, clipped."""

  def brightness(x):
    return x * p["brightness"]

  def contrast(x):  # blend with the frame's mean gray level
    mean = _gray(x).mean(axis=(1, 2))[:, None, None, None]
    return (x - mean) * p["contrast"] + mean

  def saturation(x):  # blend with the pixel's gray level
    gray = _gray(x)[..., None]
    return (x - gray) * p["saturation"] + gray

  def hue(x):
    return _adjust_hue(x, p["hue"])

  ops = [None] * 4
  ops[augment.BRIGHTNESS], ops[augment.CONTRAST] = brightness, contrast
  ops[augment.SATURATION], ops[augment.HUE] = saturation, hue
  branches = [lambda x, f=f: jnp.clip(f(x), 0.0, 255.0) for f in ops] + [lambda x: x]
  return jax.lax.switch(op, branches, x)  # under vmap: all five, then a select


def _blur(x: jax.Array, sigma: jax.Array, max_radius: int) -> jax.Array:
  """`augment._blur` of ``[T, S, S, 3]``: a fixed ``2 max_radius + 1`` tap vector whose taps
  beyond the drawn radius ``max(1, ceil(3 sigma))`` are 0, so every view shares one shape."""
  radius = jnp.clip(jnp.ceil(3.0 * sigma), 1, max_radius)
  d = jnp.arange(-max_radius, max_radius + 1, dtype=jnp.float32)
  taps = jnp.where(jnp.abs(d) <= radius, jnp.exp(-0.5 * (d / sigma) ** 2), 0.0)
  taps = taps / taps.sum()
  r = max_radius
  for axis in (2, 1):  # columns, then rows, as the host
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    padded = jnp.pad(x, pad, mode="edge")
    n = x.shape[axis]
    win = [jax.lax.slice_in_dim(padded, i, i + n, axis=axis) for i in range(2 * r + 1)]
    out = win[r] * taps[r]
    for i in range(r):  # the host's order: outermost pair first (zero taps add exact zeros)
      out = out + (win[i] + win[2 * r - i]) * taps[i]
    x = out
  return x


def _max_radius(config: ml_collections.ConfigDict) -> int:
  return max(1, int(math.ceil(3.0 * float(config.blur_sigma[1]))))


def apply(
  frames: jax.Array,
  params: dict[str, jax.Array],
  size: int,
  config: ml_collections.ConfigDict,
  height: Any,
  width: Any,
) -> jax.Array:
  """Applies one view's draw to every frame, as `augment.apply`.

  Args:
    frames: uint8 ``[T, S0, S0, 3]``, the view resized whole by the host.
    params: a `draw_params` (or `params_from_host`) dict.
    size: the output size S (static).
    config: the augment config (static).
    height, width: int32 scalars: the source frame size the crop box refers to.

  Returns:
    uint8 ``[T, size, size, 3]``.
  """
  if frames.ndim != 4 or frames.shape[1] != frames.shape[2] or frames.shape[3] != 3:
    raise ValueError(f"device_augment: frames must be [T, S0, S0, 3], got {frames.shape}")
  s0 = frames.shape[1]
  top, left, h, w = (params["crop"][i] for i in range(4))
  my = _resize_matrix(top, h, jnp.asarray(height, jnp.int32), s0, size)
  mx = _resize_matrix(left, w, jnp.asarray(width, jnp.int32), s0, size)
  mx = jnp.where(params["flip"], mx[::-1], mx)  # flip: mirror the output columns
  x = frames.astype(jnp.float32)
  x = jnp.einsum("ky,tyxc->tkxc", my, x, precision=_HIGHEST)
  x = jnp.einsum("lx,tkxc->tklc", mx, x, precision=_HIGHEST)

  def blur(x):
    return _blur(x, params["blur_sigma"], _max_radius(config))

  def keep(x):
    return x

  def grayscale(x):
    return jnp.broadcast_to(_gray(x)[..., None], x.shape)

  per_op = bool(config.blur_per_jitter_op)
  ops = jnp.where(params["jitter"], params["order"], _IDENTITY)

  def jitter_op(x, op):  # a scan over the 4 positions: the ops are traced (compiled) once
    x = _color_op(op, x, params)
    if per_op:
      x = jax.lax.cond(params["jitter"] & params["blur"], blur, keep, x)
    return x, None

  x, _ = jax.lax.scan(jitter_op, x, ops)
  if not per_op:
    x = jax.lax.cond(params["blur"], blur, keep, x)
  x = jax.lax.cond(params["grayscale"], grayscale, keep, x)
  return jnp.clip(x + 0.5, 0.0, 255.0).astype(jnp.uint8)  # rounds: the values are >= 0


def augment_views(
  keys: jax.Array,
  frames: jax.Array,
  source_hw: jax.Array,
  size: int,
  config: ml_collections.ConfigDict,
) -> jax.Array:
  """Augments a batch of views, each with its own draw.

  Args:
    keys: one key per view: typed keys ``[N]`` (``jax.random.key``) or raw key data ``[N, 2]``
      (``jax.random.PRNGKey``, the default threefry implementation).
    frames: uint8 ``[N, T, S0, S0, 3]``, each view resized whole by the host.
    source_hw: int32 ``[N, 2]``: each view's video frame size (height, width) before the resize.
    size: the output size S (static).
    config: the augment config (static: close over it, e.g. with ``functools.partial``).

  Returns:
    uint8 ``[N, T, size, size, 3]``; with ``config.enabled = False`` the frames themselves
    (they must then already be ``size x size``, as the host's `augment.resize` leaves them).
  """
  if frames.ndim != 5 or frames.dtype != jnp.uint8 or frames.shape[-1] != 3:
    raise ValueError(
      f"device_augment: frames must be uint8 [N, T, S0, S0, 3], got {frames.dtype} {frames.shape}"
    )
  if not config.enabled:
    if frames.shape[2:4] != (size, size):
      raise ValueError(
        f"device_augment: augmentation disabled, frames must be {size}x{size}, got {frames.shape}"
      )
    return frames
  augment.check_config(config)

  def one(key, view, hw):
    return apply(view, draw_params(key, hw[0], hw[1], config), size, config, hw[0], hw[1])

  return jax.vmap(one)(keys, frames, jnp.asarray(source_hw, jnp.int32))


def make_device_augment(
  config: ml_collections.ConfigDict,
) -> Optional[Callable[[Mapping[str, jax.Array], jax.Array], jax.Array]]:
  """The train step's augmentation when ``data.augment.where`` resolves to 'device' (on GPU /
  TPU by default), else None (the input pipeline augments on the host).

  View ``v`` of the example in global slot ``s`` at step ``t`` draws from the key
  ``fold_in(fold_in(fold_in(fold_in(PRNGKey(seed), 2), t), s), v)``: independent of the
  number of devices and processes, and the same when a run resumes.
  """
  a = config.data.augment
  if not a.enabled or augment.resolve_where(a.where, jax.default_backend()) != "device":
    return None
  aug_config = a.copy_and_resolve_references()
  size = int(config.data.image_size)
  seed = int(config.seed)

  def fn(batch: Mapping[str, jax.Array], step: jax.Array) -> jax.Array:
    frames = batch["frames"]
    b, _, t = frames.shape[:3]
    base = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), 2), step)
    keys = jax.vmap(
      lambda s: jax.vmap(lambda v: jax.random.fold_in(jax.random.fold_in(base, s), v))(
        jnp.arange(2)
      )
    )(batch["slot"])  # [B, 2, 2]
    out = augment_views(
      keys.reshape(b * 2, -1),
      frames.reshape((b * 2,) + frames.shape[2:]),
      jnp.repeat(batch["source_hw"], 2, axis=0),
      size,
      aug_config,
    )
    return out.reshape((b, 2, t) + out.shape[2:])

  return fn
