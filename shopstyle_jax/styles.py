"""Photo -> styled image renderers: the targets the GAN learns to imitate.

Each renderer is a pure, deterministic function from a uint8 [H, W, 3] RGB
photo to a uint8 [H, W, 3] RGB styled image of the same size. Filter sizes
scale with the image so that a 64 px and a 256 px render look alike. New styles
(watercolor, oil, cartoon) slot in by adding a function to `RENDERERS`.
"""

import functools
from typing import Callable

import cv2
import numpy as np

Renderer = Callable[[np.ndarray], np.ndarray]

# Reference resolution the filter parameters below were tuned at.
_REFERENCE_SIZE = 256.0


def _check_photo(photo: np.ndarray) -> None:
  if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[-1] != 3:
    raise ValueError(
        f'Expected a uint8 [H, W, 3] RGB image, got {photo.dtype} '
        f'{photo.shape}.')


def _luminance(photo: np.ndarray) -> np.ndarray:
  """Returns Rec. 601 luma in [0, 1] as float32 [H, W]."""
  return cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
  return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma,
                          borderType=cv2.BORDER_REPLICATE)


@functools.lru_cache(maxsize=8)
def _hatching(height: int, width: int) -> np.ndarray:
  """Fixed diagonal pencil-stroke texture in [0, 1], mean ~0.5.

  Seeded constant noise smeared along 45 degrees, so shading reads as hatching
  and the renderer stays a pure function of the photo.
  """
  noise = np.random.default_rng(1234).random((height, width), np.float32)
  length = max(3, int(round(9 * max(height, width) / _REFERENCE_SIZE)))
  kernel = np.eye(length, dtype=np.float32)[::-1] / length
  strokes = cv2.filter2D(noise, -1, kernel, borderType=cv2.BORDER_REFLECT)
  strokes = (strokes - strokes.mean()) / (strokes.std() + 1e-6)
  out = np.clip(0.5 + 0.25 * strokes, 0.0, 1.0)
  out.setflags(write=False)
  return out


def sketch(photo: np.ndarray) -> np.ndarray:
  """Renders a clean pencil drawing: XDoG outlines plus light hatched shading.

  Lines come from the eXtended Difference of Gaussians (Winnemoeller et al.,
  2012): a DoG response soft-thresholded with tanh, which gives pencil-like
  strokes of varying darkness at edges. Shading is the photo's
  darker tones, compressed so the (light) background maps to white paper.
  """
  _check_photo(photo)
  height, width = photo.shape[:2]
  scale = max(height, width) / _REFERENCE_SIZE
  gray = _luminance(photo)

  # XDoG edge response (Winnemoeller et al. 2012, tau form): G_s - tau*G_ks
  # is ~0 on flat areas whatever their tone and negative on the dark side of
  # edges; the tanh soft threshold turns it into strokes of varying darkness.
  sigma = max(0.5, 0.9 * scale)
  k, tau, eps, phi = 1.6, 0.985, -0.004, 110.0
  response = _blur(gray, sigma) - tau * _blur(gray, k * sigma)
  lines = np.where(response >= eps, 1.0,
                   1.0 + np.tanh(phi * (response - eps))).astype(np.float32)
  lines = np.clip(lines, 0.0, 1.0)
  # Soften slightly: graphite strokes are not pixel-hard.
  lines = _blur(lines, max(0.35, 0.5 * scale))

  # Shading: tones darker than `light` become hatched grey, lighter ones paper.
  tone = _blur(gray, max(0.8, 2.0 * scale))
  light, dark = 0.82, 0.15
  darkness = np.clip((light - tone) / (light - dark), 0.0, 1.0) ** 1.2
  strokes = _hatching(height, width)
  shading = 1.0 - 0.55 * darkness * (0.55 + 0.9 * strokes)

  drawing = np.clip(lines * shading, 0.0, 1.0)
  # Graphite is a slightly cool grey; paper stays pure white.
  graphite = np.array([0.98, 1.0, 1.04], np.float32)
  rgb = 1.0 - (1.0 - drawing)[..., None] * graphite
  return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


RENDERERS: dict[str, Renderer] = {
    'sketch': sketch,
}


def render(style: str, photo: np.ndarray) -> np.ndarray:
  """Renders `photo` in `style`; raises ValueError for an unknown style."""
  try:
    renderer = RENDERERS[style]
  except KeyError:
    raise ValueError(
        f'Unknown style {style!r}; allowed styles: '
        f'{", ".join(sorted(RENDERERS))}.') from None
  return renderer(photo)
