"""No checkerboard (issue 16 item 7): on a smooth gradient, resize_conv's and
bilinear_conv's outputs have at least 10x less energy at the upsampling grid's
periods than conv_transpose's."""

import numpy as np
import pytest

import shopstyle_jax
from conftest import load_config
from conftest import train_in_process


def smooth_gradient(size: int) -> np.ndarray:
  """uint8 [size, size, 3]: red left to right, green top to bottom, blue flat."""
  ramp = np.linspace(30, 225, size)
  red, green = np.meshgrid(ramp, ramp)
  return np.round(np.stack([red, green, np.full_like(red, 128)], -1)).astype(np.uint8)


def grid_energy(image: np.ndarray, period: int = 8) -> float:
  """Energy of `image` [H, W, C] at the spatial frequencies of periods dividing
  `period` (2, 4, 8: the x2 upsamplings' grid), after removing what varies slowly
  (an 8x8 box average, which removes none of those periods' energy but the
  gradient's own)."""
  import cv2  # pylint: disable=g-import-not-at-top

  x = image.astype(np.float64)
  x = x - cv2.blur(x, (period, period), borderType=cv2.BORDER_REFLECT)
  spectrum = np.abs(np.fft.fft2(x, axes=(0, 1))) ** 2
  h, w = x.shape[:2]
  fy, fx = np.arange(h) % (h // period) == 0, np.arange(w) % (w // period) == 0
  on_grid = fy[:, None] & fx[None, :]
  on_grid[0, 0] = False
  return float(spectrum[on_grid].sum())


def test_grid_energy_finds_a_checkerboard():
  flat = smooth_gradient(64)
  board = flat.astype(int) + 6 * ((np.indices((64, 64)).sum(0) % 2)[..., None] - 0.5)
  assert grid_energy(board) > 100 * max(grid_energy(flat), 1.0)


@pytest.mark.slow
def test_resize_convs_have_no_checkerboard(data_dir, tmp_path):
  energies = {}
  photo = smooth_gradient(64)
  for upsample in ('conv_transpose', 'resize_conv', 'bilinear_conv'):
    config = load_config('tiny')
    config.data.data_dir = data_dir
    config.model.upsample = upsample  # Everything else (seed, steps) the same.
    train_in_process(config, tmp_path / upsample)
    stylizer = shopstyle_jax.load_stylizer(str(tmp_path / upsample))
    energies[upsample] = grid_energy(stylizer(photo))
  assert energies['conv_transpose'] >= 10 * energies['resize_conv'], energies
  assert energies['conv_transpose'] >= 10 * energies['bilinear_conv'], energies
