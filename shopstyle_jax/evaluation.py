"""Image-quality metrics (PSNR, SSIM via dm_pix) and image grids."""

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from shopstyle_jax import images as image_lib


def to_unit(images: jax.Array) -> jax.Array:
  """[-1, 1] -> [0, 1], clipped: the range PSNR/SSIM are reported in."""
  return jnp.clip((images.astype(jnp.float32) + 1.0) / 2.0, 0.0, 1.0)


def psnr_ssim(outputs: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-image PSNR (dB) and SSIM of [-1, 1] images, each shape [N]."""
  a, b = to_unit(outputs), to_unit(targets)
  return dm_pix.psnr(a, b), dm_pix.ssim(a, b)


def scores(photo: jax.Array, target: jax.Array, output: jax.Array) -> dict[str, jax.Array]:
  """Per-image scores of the model and of two baselines computed the same way:
  'identity' (the photo itself) and 'blank' (an all-white page)."""
  psnr, ssim = psnr_ssim(output, target)
  id_psnr, id_ssim = psnr_ssim(photo, target)
  blank_psnr, blank_ssim = psnr_ssim(jnp.ones_like(target), target)
  return {'psnr': psnr, 'ssim': ssim, 'identity_psnr': id_psnr, 'identity_ssim': id_ssim,
          'blank_psnr': blank_psnr, 'blank_ssim': blank_ssim}


def image_grid(*columns: np.ndarray, rows: int, gap: int = 2) -> np.ndarray:
  """Puts [N, H, W, 3] arrays in [-1, 1] side by side, one example per row:
  e.g. input | target | output. Returns uint8 [rows*(H+gap), cols*(W+gap), 3]."""
  rows = min(rows, min(len(c) for c in columns))
  h, w = columns[0].shape[1:3]
  grid = np.full((rows * (h + gap), len(columns) * (w + gap), 3), 255, np.uint8)
  for j, col in enumerate(columns):
    col = image_lib.model_to_uint8(np.asarray(col[:rows]))
    for i in range(rows):
      grid[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = col[i]
  return grid
