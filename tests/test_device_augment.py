"""Tests of the device augmentation against the host's (`lac_jax.data.augment`, the reference)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from lac_jax.data import augment
from lac_jax.data import device_augment

P_MIN = 1e-3  # smallest accepted p-value of the (seeded, hence deterministic) statistical tests


def _config(**overrides):
  c = augment.default_config()
  c.update(overrides)
  return c


def _video(t, h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def _smooth_video(t, h, w, seed=0):
  """Random colours varying smoothly in space (realistic blur / contrast statistics)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
  a, b, c = rng.uniform(0, 1, (3, t, 1, 1, 3))
  x = 40 + 170 * (a * yy[..., None] + b * xx[..., None] + c * yy[..., None] * xx[..., None]) / 3
  return np.clip(x + rng.normal(0, 12, x.shape), 0, 255).astype(np.uint8)


def _stack(params):
  return jax.tree.map(lambda *a: jnp.stack(a), *params)


def _device_apply(frames, host_params, size, config, hw):
  """Device `apply` of each host draw to ``frames`` (one compile per config and shape)."""
  params = _stack([device_augment.params_from_host(p) for p in host_params])
  hw = jnp.asarray(hw, jnp.int32)
  fn = jax.jit(
    jax.vmap(lambda p, h, w: device_augment.apply(jnp.asarray(frames), p, size, config, h, w))
  )
  return np.asarray(fn(params, hw[:, 0], hw[:, 1]))


def _assert_close(dev, host):
  diff = np.abs(dev.astype(np.int32) - host.astype(np.int32))
  assert diff.max() <= 1, f"max |diff| {diff.max()}"
  assert (diff == 0).mean() >= 0.99, f"exact fraction {(diff == 0).mean():.4f}"


def _single_op_params(h, w, rng):
  """One draw per op alone (and the crop/flip alone): identity otherwise."""
  base = augment.ViewParams(
    crop=(1, 2, h - 3, w - 2),
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

  def u():
    return float(rng.uniform(0.2, 1.8))

  jit = dict(jitter=True)
  return [
    base,
    dataclasses.replace(base, flip=True),
    dataclasses.replace(base, brightness=u(), **jit),
    dataclasses.replace(base, contrast=u(), **jit),
    dataclasses.replace(base, saturation=u(), **jit),
    dataclasses.replace(base, hue=float(rng.uniform(-0.5, 0.5)), **jit),
    dataclasses.replace(base, blur=True, blur_sigma=0.3),
    dataclasses.replace(base, blur=True, blur_sigma=1.9),
    dataclasses.replace(base, grayscale=True),
  ]


@pytest.mark.parametrize("quirk", [False, True])
@pytest.mark.parametrize("s0,size", [(16, 16), (24, 16), (12, 20)])
def test_apply_matches_host_for_the_same_draws(quirk, s0, size):
  c = _config(jitter_prob=0.8, blur_prob=0.7, grayscale_prob=0.2, blur_per_jitter_op=quirk)
  frames = _smooth_video(3, s0, s0, seed=s0)
  rng = np.random.default_rng(size)
  params = [augment.draw_params(rng, s0, s0, c) for _ in range(24)]
  # Every op firing (no grayscale: it would hide the colour), then each op alone.
  params += [
    dataclasses.replace(
      augment.draw_params(rng, s0, s0, c), jitter=True, blur=True, grayscale=False
    )
    for _ in range(12)
  ]
  params += _single_op_params(s0, s0, rng)
  assert {p.flip for p in params} == {p.blur for p in params} == {True, False}
  dev = _device_apply(frames, params, size, c, [(s0, s0)] * len(params))
  host = np.stack([augment.apply(frames, p, size, c) for p in params])
  _assert_close(dev, host)


def test_apply_matches_host_on_non_square_sources():
  # The source's long side is resized to S0 = its short side by the host. Frames constant along
  # that axis lose nothing in the resize, so the device's result must be the host's crop of the
  # source itself, colour ops included; the short axis is exact (S0 == its length).
  c = _config(jitter_prob=0.8, blur_prob=0.7, grayscale_prob=0.2)
  s0, long, size = 16, 27, 16
  rng = np.random.default_rng(1)
  base = _smooth_video(3, s0, 1, seed=3)
  hosts, devs = [], []
  for hw, src in (
    ((s0, long), np.repeat(base, long, axis=2)),  # wide: constant along x
    ((long, s0), np.repeat(base.transpose(0, 2, 1, 3), long, axis=1)),
  ):
    params = [augment.draw_params(rng, *hw, c) for _ in range(16)]
    params += [dataclasses.replace(p, jitter=True, blur=True, grayscale=False) for p in params[:8]]
    assert any(p.crop[2:] != (hw[0], hw[1]) for p in params)
    hosts.append(np.stack([augment.apply(src, p, size, c) for p in params]))
    devs.append(_device_apply(augment.resize(src, s0), params, size, c, [hw] * len(params)))
  _assert_close(np.concatenate(devs), np.concatenate(hosts))


def test_resampled_sources_approximate_the_hosts_crop():
  # A linear image survives bilinear resampling: the device's crop of the resized frames must
  # equal the host's crop of the source (to the two uint8 roundings) wherever the source
  # coordinate lies within the resized grid's sample centres (outside, both clamp differently).
  c = _config(jitter_prob=0.0, blur_prob=0.0, grayscale_prob=0.0)
  h, w, s0, size = 40, 30, 16, 16
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  src = np.stack([4 * yy + 20, 6 * xx + 30, 2 * yy + 3 * xx], -1)[None].astype(np.uint8)
  rng = np.random.default_rng(2)
  params = [augment.draw_params(rng, h, w, c) for _ in range(12)]
  dev = _device_apply(augment.resize(src, s0), params, size, c, [(h, w)] * len(params))

  def covered(start, length, extent):  # output samples whose source coordinate is covered
    k = np.arange(size)
    coord = start + np.clip((k + 0.5) * length / size - 0.5, 0, length - 1)
    half = 0.5 * extent / s0 - 0.5
    return (coord >= half - 1e-9) & (coord <= extent - 1 - half + 1e-9)

  checked = 0
  for p, out in zip(params, dev):
    ref = augment.apply(src, p, size, c)[0].astype(np.int32)
    top, left, ch, cw = p.crop
    cols = covered(left, cw, w)[::-1] if p.flip else covered(left, cw, w)
    mask = covered(top, ch, h)[:, None] & cols[None, :]
    assert np.abs(out[0].astype(np.int32) - ref)[mask].max() <= 1
    checked += mask.sum()
  assert checked >= 0.5 * len(params) * size * size


def _host_draws(n, h, w, config, seed):
  rng = np.random.default_rng(seed)
  draws = [augment.draw_params(rng, h, w, config) for _ in range(n)]
  out = {
    f.name: np.array([getattr(d, f.name) for d in draws])
    for f in dataclasses.fields(augment.ViewParams)
  }
  return out


def _device_draws(n, h, w, config, seed):
  keys = jax.random.split(jax.random.key(seed), n)
  draw = jax.jit(jax.vmap(lambda k: device_augment.draw_params(k, h, w, config)))
  return jax.tree.map(np.asarray, draw(keys))


@pytest.mark.parametrize("case", ["official", "fallback_quirk"])
def test_draws_follow_the_host_distribution(case):
  n = 5000
  if case == "official":
    h, w, c = 120, 160, _config()
  else:  # ratio 1.35 > 4/3 and a high scale: ~40% of the draws take the centred fallback
    h, w, c = 100, 135, _config(crop_scale=(0.9, 1.0), blur_per_jitter_op=True)
  host, dev = _host_draws(n, h, w, c, seed=0), _device_draws(n, h, w, c, seed=0)

  def crop_stats(d):
    top, left, ch, cw = d["crop"].T
    assert np.all((top >= 0) & (left >= 0) & (top + ch <= h) & (left + cw <= w))
    return {
      "area": ch * cw / (h * w),
      "aspect": cw / ch,
      "top": (top + 0.5) / (h - ch + 1),
      "left": (left + 0.5) / (w - cw + 1),
    }

  hs, ds = crop_stats(host), crop_stats(dev)
  for name in hs:
    assert stats.ks_2samp(hs[name], ds[name]).pvalue > P_MIN, name
  for name in ("brightness", "contrast", "saturation", "hue", "blur_sigma"):
    assert stats.ks_2samp(host[name], dev[name]).pvalue > P_MIN, name
  blur_p = c.blur_prob * (c.jitter_prob if c.blur_per_jitter_op else 1.0)
  for name, p in (
    ("flip", c.flip_prob),
    ("jitter", c.jitter_prob),
    ("blur", blur_p),
    ("grayscale", c.grayscale_prob),
  ):
    assert stats.binomtest(int(dev[name].sum()), n, p).pvalue > P_MIN, name
  if c.blur_per_jitter_op:
    assert np.all(dev["jitter"][dev["blur"]])
  # The 24 orders, uniformly.
  assert np.all(np.sort(dev["order"], axis=1) == np.arange(4))
  codes = (dev["order"][:, :3] * [16, 4, 1]).sum(1)
  counts = np.array([np.sum(codes == v) for v in np.unique(codes)])
  assert len(counts) == 24 and stats.chisquare(counts).pvalue > P_MIN
  # The centred fallback: same box, as often.
  fb = (0, 1, 100, 133)
  rates = [np.all(d["crop"] == fb, axis=1).mean() for d in (host, dev)]
  if case == "official":
    assert rates == [0.0, 0.0]
  else:
    assert 0.3 < rates[0] < 0.5
    assert abs(rates[0] - rates[1]) < 4 * np.sqrt(2 * rates[0] * (1 - rates[0]) / n)


def test_fallback_box_matches_the_host():
  # No try can fit (the frame's ratio is far outside the range): the centred crop, both ways.
  c = _config()
  for (h, w), box in (
    ((10, 100), (0, 43, 10, 13)),
    ((100, 10), (43, 0, 13, 10)),
    ((20, 200), (0, 86, 20, 27)),
    ((200, 20), (86, 0, 27, 20)),
  ):
    assert augment.draw_params(np.random.default_rng(0), h, w, c).crop == box
    draw = jax.jit(lambda key: device_augment.draw_params(key, h, w, c)["crop"])
    for seed in range(3):
      assert tuple(np.asarray(draw(jax.random.key(seed))).tolist()) == box


def test_output_statistics_match_the_host():
  n, size = 400, 16
  c = _config()
  frames = _smooth_video(2, size, size, seed=7)
  rng = np.random.default_rng(0)
  host = np.stack([augment.augment_view(frames, rng, size, c) for _ in range(n)])
  keys = jax.random.split(jax.random.key(0), n)
  fn = jax.jit(functools.partial(device_augment.augment_views, size=size, config=c))
  dev = np.asarray(
    fn(keys, jnp.broadcast_to(frames, (n,) + frames.shape), jnp.full((n, 2), size, jnp.int32))
  )
  for stat in (np.mean, np.std):
    a = stat(host.reshape(n, -1).astype(np.float64), axis=1)  # one value per view (i.i.d.)
    b = stat(dev.reshape(n, -1).astype(np.float64), axis=1)
    tol = 4 * np.sqrt((a.var() + b.var()) / n)  # 4 standard errors of the difference
    assert abs(a.mean() - b.mean()) < tol, (stat.__name__, a.mean(), b.mean(), tol)
    assert stats.ks_2samp(a, b).pvalue > P_MIN, stat.__name__


def test_jit_vmap_pmap_keys_and_determinism():
  c = _config(jitter_prob=1.0, blur_prob=1.0)
  n, t, s0, size = 2, 3, 20, 16
  frames = jnp.asarray(np.stack([_video(t, s0, s0, seed=i) for i in range(n)]))
  hw = jnp.full((n, 2), s0, jnp.int32)
  fn = jax.jit(functools.partial(device_augment.augment_views, size=size, config=c))
  keys = jax.random.split(jax.random.key(3), n)
  out = np.asarray(fn(keys, frames, hw))
  assert out.shape == (n, t, size, size, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(out, np.asarray(fn(keys, frames, hw)))  # same keys
  raw = jax.random.key_data(keys)  # raw uint32 [N, 2]: the same draws
  np.testing.assert_array_equal(out, np.asarray(fn(raw, frames, hw)))
  other = np.asarray(fn(jax.random.split(jax.random.key(4), n), frames, hw))
  assert all(not np.array_equal(out[i], other[i]) for i in range(n))
  same = np.asarray(fn(jnp.stack([keys[0]] * n), jnp.stack([frames[0]] * n), hw))
  np.testing.assert_array_equal(same[0], same[1])  # one key, one view
  # pmap over the local devices: per device the same as jit.
  d = jax.local_device_count()
  pfn = jax.pmap(functools.partial(device_augment.augment_views, size=size, config=c))
  pout = np.asarray(pfn(*(jnp.broadcast_to(x, (d,) + x.shape) for x in (raw, frames, hw))))
  assert pout.shape == (d, n, t, size, size, 3)
  for i in range(d):
    assert np.abs(pout[i].astype(np.int32) - out).max() <= 1


def test_disabled_returns_the_frames():
  frames = jnp.asarray(_video(1, 8, 8)[None])
  keys = jax.random.split(jax.random.key(0), 1)
  hw = jnp.full((1, 2), 8, jnp.int32)
  out = device_augment.augment_views(keys, frames, hw, 8, _config(enabled=False))
  assert out is frames
  with pytest.raises(ValueError, match="8x8"):
    device_augment.augment_views(
      keys, jnp.zeros((1, 1, 6, 6, 3), jnp.uint8), hw, 8, _config(enabled=False)
    )
  with pytest.raises(ValueError, match="uint8"):
    device_augment.augment_views(keys, frames.astype(jnp.float32), hw, 8, _config())


def test_where_config():
  c = _config()
  assert c.where == "auto"
  augment.check_config(c)
  with pytest.raises(ValueError, match=r"augment\.where.*'host'.*'gpu'"):
    augment.check_config(_config(where="gpu"))
  assert augment.resolve_where("auto", "cpu") == "host"
  assert augment.resolve_where("auto", "gpu") == "device"
  assert augment.resolve_where("auto", "tpu") == "device"
  assert augment.resolve_where("host", "gpu") == "host"
  assert augment.resolve_where("device", "cpu") == "device"
  with pytest.raises(ValueError, match=r"augment\.where"):
    augment.resolve_where("cuda", "gpu")
