"""Tests of the global tone maps (shopstyle_jax.tone)."""

import numpy as np
import pytest

from shopstyle_jax import tone


def gray(levels) -> np.ndarray:
  """One [1, 1, len, 3] image whose pixels have these luminance levels, in [-1, 1]."""
  return (np.repeat(np.float32(levels)[None, None, :, None], 3, axis=3) / 127.5 - 1.0).astype(
    np.float32
  )


def test_tone_curve_is_the_least_squares_monotone_map():
  # Levels 10, 20, 30 with target means 0.2, 0.1, 0.5 (two pixels each): the
  # rising fit pools the first two (0.15, 0.15, 0.5, squared error 0.01); the
  # falling fit pools all three (0.2667, error 0.22); unseen levels take the
  # nearest fitted value, or the line between two.
  photos = gray([10, 10, 20, 20, 30, 30])
  targets = np.repeat(np.float32([0.1, 0.3, 0.0, 0.2, 0.5, 0.5])[None, None, :, None], 3, 3)
  curve = tone.fit_tone_curve(photos, targets)
  assert curve.shape == (256, 3)
  np.testing.assert_allclose(
    curve[[0, 10, 20, 25, 30, 255], 0], [0.15, 0.15, 0.15, 0.325, 0.5, 0.5], atol=1e-6
  )
  np.testing.assert_allclose(
    tone.apply_curve(curve, gray([20, 25]))[0, 0, :, 1], [0.15, 0.325], atol=1e-6
  )
  # A falling map (a negative) is found as such, per channel.
  levels = np.arange(0, 256, 5)
  negative = np.stack([1 - levels / 127.5, np.zeros(len(levels)), levels / 127.5 - 1], -1)
  curve = tone.fit_tone_curve(gray(levels), np.float32(negative)[None, None])
  np.testing.assert_allclose(curve[levels], negative, atol=1e-5)
  assert np.all(np.diff(curve[:, 0]) <= 0) and np.all(np.diff(curve[:, 2]) >= 0)


def test_match_histogram_gives_the_style_distribution_without_pairs():
  # Photo levels 10 (a quarter of the pixels), 100 (half), 200 (a quarter); the
  # style values are 0..99 spread evenly (in [-1, 1]: v / 127.5 - 1). Each level
  # maps to the style value at the middle of its cumulative share: 0.125, 0.5, 0.875.
  photos = gray([10, 100, 100, 200])
  values = np.arange(100, dtype=np.float32) / 127.5 - 1.0
  styles = np.repeat(values[None, None, :, None], 3, axis=3)
  curve = tone.match_histogram(photos, styles)
  expected = np.quantile(values, [0.125, 0.5, 0.875])
  np.testing.assert_allclose(curve[[10, 100, 200], 1], expected, atol=1e-6)
  assert np.all(np.diff(curve[:, 0]) >= 0)  # Rising everywhere.
  mapped = tone.apply_curve(curve, photos)
  assert mapped.shape == photos.shape
  np.testing.assert_allclose(mapped[0, 0, :, 2], expected[[0, 1, 1, 2]], atol=1e-6)
  # Only the style values' distribution counts, not their order or image shapes.
  shuffled = np.random.default_rng(0).permutation(styles.reshape(-1, 3)).reshape(4, 25, 3)
  np.testing.assert_allclose(tone.match_histogram(photos, shuffled), curve)
  # Per channel: a style whose blue runs the other way gets its own map.
  styles[..., 2] = -styles[..., 2]
  np.testing.assert_allclose(
    tone.match_histogram(photos, styles)[[10, 100, 200], 2],
    np.quantile(-values, [0.125, 0.5, 0.875]),
    atol=1e-6,
  )
  with pytest.raises(ValueError, match='at least one'):
    tone.match_histogram(photos, styles[:, :, :0])
