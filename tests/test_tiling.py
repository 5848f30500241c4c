"""Tiled stylizing (issue 16 item 1): the tile layout, fixed instance-norm statistics,
and tiled output against the whole frame, on the v0 fixtures' tiny stylizer."""

import os

import cv2
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from skimage.metrics import structural_similarity

import shopstyle_jax
from conftest import assert_pixel_rule
from shopstyle_jax import StylizeOptions
from shopstyle_jax import exporting
from shopstyle_jax import images as image_lib
from shopstyle_jax import inference
from shopstyle_jax import stylize

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'v0')


@pytest.fixture(scope='module')
def stylizer():
  return shopstyle_jax.load_stylizer(os.path.join(FIXTURES, 'workdir'))


def texture(size: int, seed: int = 0) -> np.ndarray:
  """A stationary texture at several scales: seams would show on it."""
  rng = np.random.RandomState(seed)
  image = np.zeros((size, size, 3), np.float32)
  for sigma in (1, 3, 8):
    image += (
      cv2.GaussianBlur(rng.randn(size, size, 3).astype(np.float32), (0, 0), sigma) * sigma**0.5
    )
  image = (image - image.mean()) / image.std()
  return np.clip(128 + 50 * image, 0, 255).astype(np.uint8)


def test_tile_layout_covers_the_frame_and_weights_sum_to_one():
  for size, tile, factor in ((1024, 512, 32), (2016, 1024, 4), (1000, 256, 8), (96, 256, 32)):
    starts, length, edge = inference.tile_layout(size, tile, factor)
    assert starts[0] == 0 and starts[-1] + length == size
    assert all(s % factor == 0 for s in starts) and length % factor == 0
    total = sum(
      np.pad(inference.tile_weights(s, length, size, edge), (s, size - s - length)) for s in starts
    )
    assert total.min() > 0.0
    if len(starts) == 1 or (size - length) % (starts[1] - starts[0]) == 0:
      np.testing.assert_allclose(total, 1.0, atol=1e-6)  # A partition of unity.
  with pytest.raises(ValueError, match='tile=64 is too small'):
    inference.tile_layout(1024, 64, 64)


def test_fixed_norm_stats_reproduce_the_network(stylizer):
  x = jnp.asarray(image_lib.uint8_to_model(texture(64))[None])
  stats = inference.norm_stats_fn(stylizer.generator, stylizer.variables, x)
  assert stats and all(v['mean'].shape == v['var'].shape for v in _norm_layers(stats))
  np.testing.assert_allclose(
    inference.with_norm_stats_fn(stylizer.generator, stylizer.variables, stats, x),
    inference.stylize_fn(stylizer.generator, stylizer.variables, x),
    atol=2e-5,
  )


def _norm_layers(tree):
  if 'mean' in tree:
    return [tree]
  return [layer for sub in tree.values() for layer in _norm_layers(sub)]


def test_options_and_old_exported_files(stylizer):
  photo = texture(96)
  # At or below the threshold nothing changes; above it, tiles.
  np.testing.assert_array_equal(stylizer(photo, tile_threshold=96 * 96), stylizer(photo))
  for bad in (0, -5, 1.5, True):
    with pytest.raises((TypeError, ValueError), match='tile'):
      StylizeOptions(tile=bad)
  with pytest.raises(ValueError, match='tile_threshold'):
    StylizeOptions(tile_threshold=0)
  old = shopstyle_jax.load_exported(os.path.join(FIXTURES, 'stylizer.bin'))  # Format 1.
  assert_pixel_rule(old(photo), stylizer(photo))
  with pytest.raises(ValueError, match='before tiling existed'):
    old(photo, tile=64, tile_threshold=64 * 64)


def _seam_bands(size, tile, factor):
  starts, length, _ = inference.tile_layout(size, tile, factor)
  band = np.zeros(size, bool)
  for a, b in zip(starts[:-1], starts[1:]):
    band[b : a + length] = True  # Where neighbouring tiles overlap.
  return band[:, None] | band[None, :]


def _gradient_energy(image):
  f = image.astype(np.float32)
  gx, gy = np.zeros_like(f), np.zeros_like(f)
  gx[:, 1:], gy[1:] = np.diff(f, axis=1), np.diff(f, axis=0)
  return (gx**2 + gy**2).sum(-1)


@pytest.mark.slow
def test_tiled_agrees_with_the_whole_frame_without_seams(stylizer):
  photo = texture(1024)
  whole = stylizer(photo, tile_threshold=None)
  tiled = stylizer(photo, tile=256, tile_threshold=512 * 512)
  seams = _seam_bands(1024, 256, stylizer.factor)
  _, ssim = structural_similarity(tiled, whole, channel_axis=2, full=True, data_range=255)
  assert ssim[seams].mean() >= 0.99, ssim[seams].mean()
  # Gradient energy along tile borders within 5% of the interior's, each relative to
  # the whole frame's on the same pixels (this tiny model's own output has about 5%
  # less energy on those bands, tiled or not; the frame's border, where the network
  # pads, is left out).
  inner = np.zeros_like(seams)
  inner[64:-64, 64:-64] = True
  tiled_energy, whole_energy = _gradient_energy(tiled), _gradient_energy(whole)
  relative = [
    tiled_energy[region].mean() / whole_energy[region].mean()
    for region in (seams & inner, ~seams & inner)
  ]
  assert abs(relative[0] / relative[1] - 1.0) <= 0.05, relative


@pytest.mark.slow
def test_exported_and_cli_tile_as_the_stylizer_does(stylizer, tmp_path):
  photo = texture(320, seed=1)
  options = dict(tile=128, tile_threshold=128 * 128)
  want = stylizer(photo, **options)
  path = str(tmp_path / 'stylizer.bin')
  exported, weights = exporting.export_stylizer(stylizer, ('cpu',))
  tiling = exporting.export_tiling(stylizer, ('cpu',))
  exporting.save_exported(path, exported, weights, {'factor': stylizer.factor}, tiling)
  assert_pixel_rule(shopstyle_jax.load_exported(path)(photo, **options), want)
  os.makedirs(tmp_path / 'in')
  cv2.imwrite(str(tmp_path / 'in' / 'p.png'), photo[..., ::-1])
  flag_values = flags.FlagValues()
  stylize.define_flags(flag_values)
  flag_values(
    [
      'stylize',
      f'--workdir={os.path.join(FIXTURES, "workdir")}',
      f'--input={tmp_path / "in"}',
      f'--output={tmp_path / "out"}',
      '--tile=128',
      f'--tile_threshold={128 * 128}',
    ]
  )
  assert stylize.run(flag_values) == 0
  assert_pixel_rule(image_lib.read_image(str(tmp_path / 'out' / 'p.png')), want)
