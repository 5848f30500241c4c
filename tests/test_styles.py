"""Tests of the photo -> styled image renderers."""

import cv2
import numpy as np
import pytest

from shopstyle_jax import styles
from shopstyle_jax.data import catalog

_STYLES = sorted(styles.RENDERERS)


@pytest.fixture(scope='module')
def photos() -> dict[int, np.ndarray]:
  """A catalogue product photo at 64 and 128 px."""
  seed = catalog.example_seed('test', 0)
  return {size: catalog.render_photo(seed, size, 'shoe') for size in (64, 128)}


@pytest.mark.parametrize('style', _STYLES)
@pytest.mark.parametrize('shape', [(40, 50), (7, 5), (96, 64)])
def test_pure_rgb_renderer(style, shape):
  photo = np.random.default_rng(0).integers(0, 256, shape + (3,), np.uint8)
  original = photo.copy()
  out = styles.render(style, photo)
  assert out.shape == photo.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(photo, original)  # The photo is not written to,
  assert not np.shares_memory(out, photo)  # nor returned to be written to.
  np.testing.assert_array_equal(styles.RENDERERS[style](photo), out)  # Deterministic.


@pytest.mark.parametrize('style', _STYLES)
def test_rejects_non_rgb(style):
  with pytest.raises(ValueError, match='uint8'):
    styles.render(style, np.zeros((8, 8), np.uint8))
  with pytest.raises(ValueError, match='uint8'):
    styles.render(style, np.zeros((8, 8, 3), np.float32))


def test_unknown_style_lists_allowed():
  with pytest.raises(ValueError, match='cartoon, linocut, oil, sketch, watercolor'):
    styles.render('crayon', np.zeros((8, 8, 3), np.uint8))


def test_styles_differ_from_the_photo_and_each_other(photos):
  photo = photos[128]
  outs = {s: styles.render(s, photo).astype(np.float32) for s in _STYLES}
  for s in _STYLES:
    assert np.abs(outs[s] - photo).mean() > 4, s
    for t in _STYLES:
      if s < t:
        assert np.abs(outs[s] - outs[t]).mean() > 4, (s, t)


def test_style_character(photos):
  photo = photos[128]
  gray = photo.mean(axis=-1)
  product = gray < 150  # The dark shoe on its light backdrop.
  assert product.mean() > 0.05
  white = np.full((64, 64, 3), 250, np.uint8)
  # Sketch and watercolour: light backdrops become white paper.
  assert styles.sketch(white).min() == 255
  assert styles.watercolor(white).mean() > 245
  # Watercolour pigment is transparent: lighter than the photo where painted.
  wc = styles.watercolor(photo).mean(axis=-1)
  assert wc[product].mean() > gray[product].mean() + 10
  # Cartoon: black outlines along the product's edges.
  cartoon = styles.cartoon(photo).mean(axis=-1)
  assert (cartoon < 30).mean() > 0.01
  # Oil: brush texture even on a flat backdrop, flat patches on the product.
  flat = styles.oil(np.full((64, 64, 3), 128, np.uint8)).astype(np.float32)
  assert 2 < flat.std() < 30


def test_filters_scale_with_the_image(photos):
  # A 64 px render looks like a downsampled 128 px render.
  for style in _STYLES:
    big = styles.render(style, photos[128]).astype(np.float32)
    small = styles.render(style, photos[64]).astype(np.float32)
    down = cv2.resize(big, (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(down - small).mean() < 25, style


def test_linocut_is_black_on_white(photos):
  out = styles.render('linocut', photos[128])
  np.testing.assert_array_equal(out[..., 0], out[..., 1])  # Grey only,
  np.testing.assert_array_equal(out[..., 0], out[..., 2])
  gray = out[..., 0]
  assert np.mean(gray > 230) > 0.6  # mostly paper,
  assert np.mean(gray < 25) > 0.01  # some solid black,
  assert np.mean((gray > 60) & (gray < 195)) < 0.08  # few greys between (soft edges only).
