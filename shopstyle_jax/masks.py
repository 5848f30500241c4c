"""Product masks for the background options: from alpha, from the shop's own mask
files, or segmented from a studio backdrop.

`segment_product` first takes the backdrop as what a flood fill from the image
border reaches in CIE Lab, stepping between neighbours that differ by less than
a tolerance (OpenCV's floating-range `floodFill`): smooth backdrops, gradients
and soft shadows are crossed, a product's outline mostly is not. OpenCV's
GrabCut then refines that split (colour models of backdrop and product, a cut
along strong edges), with a thin frame at the border fixed as backdrop; edges
are softened by a small blur. Masks are float32 [H, W] in [0, 1], 1 = product.
Measured on the catalogue by benchmarks/segmentation.py (README, "Background").
"""

from typing import Optional

import numpy as np

# The fill works on the photo shrunk to this longer side (a 24-megapixel photo
# costs what a 1-megapixel one does); the mask is scaled back up.
SEGMENT_SIDE = 512
# Largest Lab difference (L in 0..100 scaled to 0..255 by OpenCV, a and b +128)
# between neighbouring backdrop pixels, after a light blur.
TOLERANCE = 2.0
# GrabCut rounds refining the fill (0: the fill alone).
GRABCUT_ITERATIONS = 4
# Edge softening: Gaussian sigma in pixels of the segmentation's working size.
FEATHER = 0.7


def from_alpha(alpha: np.ndarray) -> np.ndarray:
  """uint8 or uint16 alpha [H, W] -> float32 mask in [0, 1]."""
  top = float(np.iinfo(alpha.dtype).max) if alpha.dtype.kind in 'ui' else 1.0
  return np.asarray(alpha, np.float32) / top


def read_mask(path: str, size: tuple[int, int]) -> np.ndarray:
  """A shop's own mask file (8-bit gray, or the alpha of an RGBA file, 255 =
  product) as a float32 mask of `size` (H, W): resized when the file differs."""
  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import images as image_lib

  image = image_lib.read_image(path, keep_alpha=True)
  if image.ndim == 3 and image.shape[-1] in (2, 4):
    image = image[..., -1]  # The alpha of a cut-out.
  elif image.ndim == 3:
    image = image[..., 0] if np.all(image == image[..., :1]) else _luma(image)
  mask = from_alpha(image)
  if mask.shape != tuple(size):
    mask = image_lib.resize(mask[..., None], *size)[..., 0]
  return np.clip(mask, 0.0, 1.0)


def _luma(rgb: np.ndarray) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top

  return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def segment_product(
  photo: np.ndarray, tolerance: float = TOLERANCE, side: Optional[int] = SEGMENT_SIDE
) -> np.ndarray:
  """The product in a studio photo: float32 [H, W] in [0, 1] (soft edges).

  Args:
    photo: uint8 RGB [H, W, 3] on a plain, graded or lightly textured backdrop
      that touches the image border.
    tolerance: the flood fill's largest step between neighbouring backdrop
      pixels, in OpenCV's 8-bit Lab units.
    side: work at this longer side (None: full size).
  """
  import cv2  # pylint: disable=g-import-not-at-top

  height, width = photo.shape[:2]
  scale = 1.0 if side is None else min(1.0, side / max(height, width))
  small = photo
  if scale < 1.0:
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
  lab = cv2.cvtColor(cv2.GaussianBlur(small, (0, 0), 0.8), cv2.COLOR_RGB2LAB)
  h, w = lab.shape[:2]
  fill = np.zeros((h + 2, w + 2), np.uint8)  # floodFill's mask has a 1-pixel frame.
  flags = 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
  diff = (tolerance,) * 3
  border = [(x, 0) for x in range(w)] + [(x, h - 1) for x in range(w)]
  border += [(0, y) for y in range(h)] + [(w - 1, y) for y in range(h)]
  for x, y in border:
    if not fill[y + 1, x + 1]:
      cv2.floodFill(lab, fill, (x, y), 0, diff, diff, flags)
  backdrop = fill[1:-1, 1:-1].astype(bool)
  product = ~backdrop
  if GRABCUT_ITERATIONS and product.any() and backdrop.any():
    # GrabCut refines the fill: colour models of backdrop and product, cut along edges.
    trimap = np.where(product, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    frame = max(1, round(0.01 * max(h, w)))
    trimap[:frame], trimap[-frame:], trimap[:, :frame], trimap[:, -frame:] = (cv2.GC_BGD,) * 4
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means starts from OpenCV's (per-thread) generator.
    cv2.grabCut(
      cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
      trimap,
      None,
      bgd,
      fgd,
      GRABCUT_ITERATIONS,
      cv2.GC_INIT_WITH_MASK,
    )
    product = (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)
    backdrop = ~product
  mask = product.astype(np.float32)
  mask = cv2.GaussianBlur(mask, (0, 0), FEATHER)
  if scale < 1.0:
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
  return np.clip(mask, 0.0, 1.0)


def iou(mask: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
  """Intersection over union of two masks thresholded at `threshold` (of their
  range: [0, 1] float or uint8 scaled to it); 1.0 when both are empty."""
  a = from_alpha(mask) if mask.dtype.kind in 'ui' else mask
  b = from_alpha(truth) if truth.dtype.kind in 'ui' else truth
  a, b = a > threshold, b > threshold
  union = np.logical_or(a, b).sum()
  return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
