"""Tests of the two-view temporal sampler."""

import math

import numpy as np
import pytest

from lac_jax.data import sampling


def _config(**overrides):
  c = sampling.default_config()
  c.update(overrides)
  return c


class _SpyRng:
  """Forwards to a Generator and records the sizes of the sampled ranges."""

  def __init__(self, seed):
    self._rng = np.random.default_rng(seed)
    self.ranges = []

  def uniform(self, *a, **k):
    return self._rng.uniform(*a, **k)

  def integers(self, *a, **k):
    return self._rng.integers(*a, **k)

  def choice(self, a, *args, **kwargs):
    self.ranges.append(a)
    return self._rng.choice(a, *args, **kwargs)


@pytest.mark.parametrize("length", [1, 2, 10, 63, 64, 65, 200])
def test_steps_sorted_and_mask_marks_exactly_the_padding(length):
  c = _config(num_frames=64)
  rng = np.random.default_rng(length)
  for _ in range(50):
    steps, mask = sampling.sample_two_views(length, c, rng)
    assert steps.shape == mask.shape == (2, 64)
    assert steps.dtype == np.int32 and mask.dtype == bool
    for s, m in zip(steps, mask):
      assert np.all(np.diff(s) >= 0)
      assert np.all((0 <= s) & (s < length))
      n_valid = int(m.sum())
      assert n_valid <= min(length, 64)
      np.testing.assert_array_equal(m, np.arange(64) < n_valid)  # valid prefix, padded suffix
      assert len(set(s[m].tolist())) == n_valid  # valid steps are distinct frames
      assert np.all(s[~m] == length - 1)  # padding repeats the last frame
      if length >= 64:
        assert n_valid >= 1


@pytest.mark.parametrize("length", [1, 7, 64, 200])
def test_sampled_range_is_the_stretched_region(length):
  rng = _SpyRng(0)
  for _ in range(200):
    sampling.sample_two_views(length, _config(), rng)
  ranges = np.array(rng.ranges)
  assert np.all(ranges >= length) and np.all(ranges <= math.ceil(1.5 * length))
  if length >= 64:  # r ~ U(1, 1.5) really spreads the region
    assert ranges.max() > 1.4 * length and ranges.min() < 1.1 * length


def test_masked_fraction_matches_the_official_rule():
  # For L >= F the expected masked fraction is E[1 - 1/r], r ~ U(1, 1.5): 1 - 2 ln 1.5.
  rng = np.random.default_rng(0)
  masks = np.concatenate([sampling.sample_two_views(300, _config(), rng)[1] for _ in range(1500)])
  assert abs((1 - masks.mean()) - (1 - 2 * math.log(1.5))) < 0.01


def test_no_region_means_no_padding_for_long_and_all_frames_for_short_videos():
  rng = np.random.default_rng(0)
  steps, mask = sampling.sample_two_views(100, _config(sampling_region=1.0), rng)
  assert mask.all()
  steps, mask = sampling.sample_two_views(10, _config(sampling_region=1.0, num_frames=16), rng)
  for s, m in zip(steps, mask):
    np.testing.assert_array_equal(s, np.minimum(np.arange(16), 9))
    np.testing.assert_array_equal(m, np.arange(16) < 10)


def test_deterministic_given_the_generator():
  c = _config()
  a = sampling.sample_two_views(90, c, np.random.default_rng(3))
  b = sampling.sample_two_views(90, c, np.random.default_rng(3))
  d = sampling.sample_two_views(90, c, np.random.default_rng(4))
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])
  assert not np.array_equal(a[0], d[0])
  assert not np.array_equal(a[0][0], a[0][1])  # the two views are independent draws


def test_without_temporal_crop_both_views_cover_the_whole_video():
  starts, widths = sampling.crop_windows(50, _config(), np.random.default_rng(0))
  assert starts == [0, 0] and widths == [50, 50]


def test_temporal_crop_windows_and_consistent_offset():
  length, f = 120, 32
  c = _config(temporal_crop=True, crop_min_fraction=0.5, num_frames=f, consistent_offset=0.2)
  rng = np.random.default_rng(0)
  moved = 0
  for _ in range(300):
    (sa, sb), (wa, wb) = sampling.crop_windows(length, c, rng)
    assert math.ceil(0.5 * length) <= min(wa, wb) and max(wa, wb) <= length
    assert 0 <= sa <= length - wa and 0 <= sb <= length - wb
    shift = int(0.8 * min(wa, f))
    # b's start is within shift of a's, unless clamped into the valid range.
    assert abs(sb - sa) <= shift or sb in (0, length - wb)
    moved += sa > 0
  assert moved > 100  # unlike the official code, windows really move
  # consistent_offset = 1: view b starts where view a does (when that start is valid).
  c.consistent_offset = 1.0
  for _ in range(100):
    (sa, sb), (wa, wb) = sampling.crop_windows(length, c, rng)
    assert sb == min(sa, length - wb)


def test_temporal_crop_steps_stay_inside_their_windows():
  length = 80
  c = _config(temporal_crop=True, num_frames=24)
  for seed in range(50):
    (sa, sb), (wa, wb) = sampling.crop_windows(length, c, np.random.default_rng(seed))
    steps, mask = sampling.sample_two_views(length, c, np.random.default_rng(seed))
    for s, m, start, width in zip(steps, mask, (sa, sb), (wa, wb)):
      assert np.all((start <= s) & (s < start + width))
      assert np.all(s[~m] == start + width - 1)
      assert np.all(np.diff(s) >= 0)


def test_eval_steps_are_all_frames():
  steps, mask = sampling.eval_steps(7)
  np.testing.assert_array_equal(steps, np.arange(7))
  assert steps.dtype == np.int32 and mask.all() and mask.shape == (7,)


def test_bad_arguments_raise_clear_errors():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="length"):
    sampling.sample_two_views(0, _config(), rng)
  with pytest.raises(ValueError, match="sampling_region"):
    sampling.sample_two_views(10, _config(sampling_region=0.5), rng)
  with pytest.raises(ValueError, match="consistent_offset"):
    sampling.sample_two_views(10, _config(consistent_offset=1.5), rng)
  with pytest.raises(ValueError, match="length"):
    sampling.eval_steps(0)
