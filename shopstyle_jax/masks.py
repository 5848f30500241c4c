"""Product masks for the background options: from alpha, from the shop's own mask
files, or segmented from a studio backdrop.

`segment_product` works on the photo shrunk to `SEGMENT_SIDE` and goes:

1. Backdrop model. A flood fill from the border in CIE Lab (small steps only)
   samples the backdrop near the border; a robust low-order polynomial of
   (x, y) fitted to it per colour channel gives the backdrop's colour
   everywhere, behind the product too (plain, graded and vignetted backdrops;
   a textured one leaves noise that raises the threshold below).
2. Backdrop. Pixels within `BACKDROP_DISTANCE` (CIE76) of the model, connected
   to the border without crossing a sharp edge; the model is refitted on them.
   Enclosed regions with the backdrop's own colour (between a chair's legs,
   inside a handle) are backdrop too, their colour checked strictly: a white
   product's lit face comes close to a white backdrop's colour, not to it.
3. Shadows. A shadow darkens the backdrop and keeps its chromaticity (RGB
   proportional to the model's); it is entered from the backdrop across soft
   edges, darkening inwards. Such regions, reached without crossing a sharp
   edge (sharp: the fine-scale gradient well above the coarse-scale one, as at
   a silhouette and not at a penumbra), are shadows when they are thin for
   their contact with the backdrop and a small part of what is not backdrop.
   A white product on white has this colour too: it is told apart by its
   sharp edges and by these shape tests.
4. GrabCut (OpenCV, seeded, so deterministic) settles the rest: backdrop and
   enclosed backdrop fixed, shadows and shadow-coloured pixels probably
   backdrop, the deep inside of what remains fixed as product.
5. Edge: along the outline a local matting estimate (each pixel between the
   nearest product and backdrop colours) gives soft, sub-pixel edges.

Masks are float32 [H, W] in [0, 1], 1 = product. Measured on the catalogue by
benchmarks/segmentation.py (README, "Background").
"""

from typing import Optional

import numpy as np

# The segmentation works on the photo shrunk to this longer side (a 24-megapixel
# photo costs what a 1-megapixel one does); the mask is scaled back up.
SEGMENT_SIDE = 512
# Largest Lab difference (L in 0..100 scaled to 0..255 by OpenCV, a and b +128)
# between neighbouring pixels for the flood fill that samples the backdrop.
TOLERANCE = 2.0
# Smallest CIE76 distance from the backdrop model that is not backdrop; raised
# to 5 times the typical distance on the sampled backdrop (texture, noise).
BACKDROP_DISTANCE = 1.0
# GrabCut rounds settling the split (0: the backdrop and shadow tests alone).
GRABCUT_ITERATIONS = 2


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
    tolerance: the backdrop-sampling flood fill's largest step between
      neighbouring pixels, in OpenCV's 8-bit Lab units.
    side: work at this longer side (None: full size).
  """
  import cv2  # pylint: disable=g-import-not-at-top

  height, width = photo.shape[:2]
  scale = 1.0 if side is None else min(1.0, side / max(height, width))
  small = np.ascontiguousarray(photo[..., :3])
  if scale < 1.0:
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
  product = _segment(small, tolerance)
  rgb = small.astype(np.float32) / 255.0
  mask = _matte(rgb, product) if product.any() else product.astype(np.float32)
  if scale < 1.0:
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
  return np.clip(mask, 0.0, 1.0)


def _segment(small: np.ndarray, tolerance: float) -> np.ndarray:
  """Boolean product mask of a uint8 RGB photo at working size (steps 1-4 of
  the module docstring)."""
  import cv2  # pylint: disable=g-import-not-at-top

  h, w = small.shape[:2]
  size = max(h, w)
  blur = cv2.GaussianBlur(small, (0, 0), 0.8)  # Texture and noise.
  rgb = blur.astype(np.float32) / 255.0
  lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
  sharp = _sharp_edges(small)
  # 1. The backdrop near the border: a small-step fill, in a ring along the border.
  steps = (tolerance,) * 3
  sample = _border_fill(cv2.cvtColor(blur, cv2.COLOR_RGB2LAB), steps, steps)
  ring = max(2, round(0.04 * size))
  sample[ring:-ring, ring:-ring] = False
  if sample.sum() < 20:  # No backdrop to speak of: take the border as it is.
    sample = np.ones((h, w), bool)
    sample[ring:-ring, ring:-ring] = False
  # 2. Model, distance, backdrop; refitted once on the backdrop found.
  for degree in (2, 3):
    model = _backdrop_model(rgb, sample, degree)
    distance = np.linalg.norm(lab - cv2.cvtColor(model, cv2.COLOR_RGB2LAB), axis=-1)
    threshold = max(BACKDROP_DISTANCE, 5.0 * 1.4826 * float(np.median(distance[sample])))
    near = distance < threshold
    backdrop = _touching_border(near & ~sharp)
    if not backdrop.any():
      return np.zeros((h, w), bool)
    sample = backdrop
  holes = _holes(distance, backdrop, threshold, min_area=0.002 * h * w)
  seen = backdrop | holes  # The backdrop, seen around the product or through it.
  # 3. Shadows: darker copies of the backdrop's colour.
  ratio = (rgb * model).sum(-1) / (model * model).sum(-1)
  chroma = np.linalg.norm(rgb - ratio[..., None] * model, axis=-1)
  chroma /= np.maximum(ratio * np.linalg.norm(model, axis=-1), 1e-3)
  shadowy = (chroma < 0.04) & (ratio > 0.35) & (ratio < 1.03) & ~sharp & ~seen
  shadowy &= _darkening_from(seen, ratio, shadowy, holes)
  shadow = _shadows(shadowy, seen, size)
  product = ~(seen | shadow)
  # 4. GrabCut: fixed backdrop, probable backdrop, probable and fixed product.
  if GRABCUT_ITERATIONS and product.any():
    trimap = np.full((h, w), cv2.GC_PR_FGD, np.uint8)
    trimap[shadowy] = cv2.GC_PR_BGD  # Shadows among them.
    depth = cv2.distanceTransform(product.astype(np.uint8), cv2.DIST_L2, 3)
    trimap[depth >= min(0.04 * size, 0.5 * float(depth.max()))] = cv2.GC_FGD
    trimap[seen] = cv2.GC_BGD
    cut = _grabcut(small, trimap, margin=max(4, round(0.1 * size)))
    if cut.sum() >= 0.5 * product.sum():  # Else its colour models failed: keep the tests'.
      product = cut
  return product


def _border_fill(image: np.ndarray, low, high, block=None, seeds=()) -> np.ndarray:
  """What OpenCV's floating-range flood fill reaches from the image border and
  the (x, y) `seeds` (4-connected; a neighbour joins when it is at most `low`
  below and `high` above the pixel it comes from), never entering `block`."""
  import cv2  # pylint: disable=g-import-not-at-top

  h, w = image.shape[:2]
  fill = np.zeros((h + 2, w + 2), np.uint8)  # floodFill's mask has a 1-pixel frame.
  if block is not None:
    fill[1:-1, 1:-1][block] = 2
  flags = 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
  border = [(x, 0) for x in range(w)] + [(x, h - 1) for x in range(w)]
  border += [(0, y) for y in range(h)] + [(w - 1, y) for y in range(h)]
  for x, y in border + list(seeds):
    if not fill[y + 1, x + 1]:
      cv2.floodFill(image, fill, (x, y), 0, low, high, flags)
  return fill[1:-1, 1:-1] == 1


def _backdrop_model(rgb: np.ndarray, sample: np.ndarray, degree: int) -> np.ndarray:
  """The backdrop's colour everywhere, float32 RGB [H, W, 3]: a polynomial of
  (x, y) of `degree` per channel, least squares on `sample` (at most 4,000 of
  its pixels), starting from the colours near its median and dropping outliers
  (shadows, specks, a product at the border) over four rounds."""
  h, w = rgb.shape[:2]
  ys, xs = np.nonzero(sample)
  step = max(1, len(ys) // 4000)
  ys, xs = ys[::step], xs[::step]

  def basis(y, x):
    u, v = 2.0 * x / max(w - 1, 1) - 1.0, 2.0 * y / max(h - 1, 1) - 1.0
    terms = [u**i * v**j for i in range(degree + 1) for j in range(degree + 1 - i)]
    return np.stack(terms, -1).astype(np.float32)

  a, values = basis(ys, xs), rgb[ys, xs]
  # Start from the colours near the sample's median (a product touching the border is out).
  offset = np.abs(values - np.median(values, 0))
  keep = (offset <= np.maximum(4.0 * 1.4826 * np.median(offset, 0), 0.03)).all(1)
  if keep.sum() < a.shape[1]:
    keep = np.ones(len(ys), bool)
  for _ in range(4):
    coef = np.linalg.lstsq(a[keep], values[keep], rcond=None)[0]
    residual = np.abs(values - a @ coef).max(1)
    spread = 1.4826 * float(np.median(residual[keep])) + 1e-3
    keep = residual < max(3.0 * spread, 0.006)
    if keep.sum() < a.shape[1]:
      keep = np.ones(len(ys), bool)
  yy, xx = np.mgrid[0:h, 0:w]
  model = (basis(yy.ravel(), xx.ravel()) @ coef).reshape(h, w, 3)
  return np.clip(model, 1e-3, 1.0).astype(np.float32)


def _sharp_edges(small: np.ndarray) -> np.ndarray:
  """Sharp edges (a silhouette, not a penumbra): the lightness gradient at
  sigma 0.5 above 1 L* unit per pixel and over twice that at sigma 2 (a step
  blurred over a pixel keeps its fine gradient, a soft ramp loses nothing to
  the coarse one), widened by a pixel."""
  import cv2  # pylint: disable=g-import-not-at-top

  lightness = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)[..., 0]

  def gradient(sigma):
    image = cv2.GaussianBlur(lightness, (0, 0), sigma)
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    return np.hypot(gx, gy) / 8.0

  fine, coarse = gradient(0.5), gradient(2.0)
  sharp = (fine > 1.0) & (fine > 2.0 * coarse)
  return cv2.dilate(sharp.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def _touching_border(mask: np.ndarray) -> np.ndarray:
  """The 4-connected parts of `mask` that touch the image border."""
  import cv2  # pylint: disable=g-import-not-at-top

  _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
  edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
  return np.isin(labels, edge[edge > 0])


def _holes(distance, backdrop, threshold, min_area) -> np.ndarray:
  """Enclosed backdrop: regions off the border-connected backdrop, within 0.4
  of the threshold of the model, of `min_area` pixels or more, whose mean
  distance is under 0.2 of it (the backdrop's own colour, not near it)."""
  import cv2  # pylint: disable=g-import-not-at-top

  candidates = (distance < 0.4 * threshold) & ~backdrop
  n, labels, stats, _ = cv2.connectedComponentsWithStats(
    candidates.astype(np.uint8), connectivity=4
  )
  area = stats[:, cv2.CC_STAT_AREA]
  mean = np.bincount(labels.ravel(), distance.ravel(), n) / np.maximum(area, 1)
  keep = (area >= min_area) & (mean < 0.2 * threshold)
  keep[0] = False
  return keep[labels]


def _darkening_from(seen, ratio, allowed, holes) -> np.ndarray:
  """Pixels of `allowed` reached from the backdrop `seen` through `allowed` while
  the darkening (-log of the brightness `ratio` to the backdrop) never drops
  by more than 0.01 from one pixel to the next: a shadow darkens inwards, and
  a lighter product beyond its darkest edge is not entered."""
  import cv2  # pylint: disable=g-import-not-at-top

  darkening = np.maximum(-np.log(np.maximum(ratio, 1e-3)), 0.0).astype(np.float32)
  darkening[seen] = 0.0
  n, labels = cv2.connectedComponents(holes.astype(np.uint8), connectivity=4)
  seeds = []  # One pixel of each hole; the rest of the backdrop touches the border.
  for label in range(1, n):
    y, x = np.argwhere(labels == label)[0]
    seeds.append((int(x), int(y)))
  return _border_fill(darkening, 0.01, 1.0, block=~(seen | allowed), seeds=seeds)


def _shadows(shadowy, seen, size) -> np.ndarray:
  """The parts of `shadowy` that are shadows: touching the backdrop `seen`,
  thin (area over contact length at most 5% of `size`, or 10% where the
  contact is 40% of their outline or more) and at most a quarter of all that
  is not backdrop (a shadow needs something to cast it)."""
  import cv2  # pylint: disable=g-import-not-at-top

  n, labels, stats, _ = cv2.connectedComponentsWithStats(shadowy.astype(np.uint8), connectivity=4)
  around = cv2.dilate(seen.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
  contact = np.bincount(labels[around & shadowy], minlength=n)
  inner = cv2.erode(shadowy.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
  outline = np.bincount(labels[shadowy & ~inner.astype(bool)], minlength=n)
  area = stats[:, cv2.CC_STAT_AREA]
  thickness = area / np.maximum(contact, 1)
  share = contact / np.maximum(outline, 1)
  thin = (thickness <= 0.05 * size) | ((share >= 0.4) & (thickness <= 0.1 * size))
  keep = thin & (contact > 0) & (area <= 0.25 * max(1, int((~seen).sum())))
  keep[0] = False
  return keep[labels]


def _grabcut(small: np.ndarray, trimap: np.ndarray, margin: int) -> np.ndarray:
  """GrabCut on the box around what is not fixed backdrop (plus `margin`);
  boolean product mask. Skipped when either side has no pixels."""
  import cv2  # pylint: disable=g-import-not-at-top

  free = trimap != cv2.GC_BGD
  product = free & (trimap != cv2.GC_PR_BGD)
  if not product.any() or free.all():
    return product
  ys, xs = np.nonzero(free)
  y0, y1 = max(0, ys.min() - margin), min(trimap.shape[0], ys.max() + margin + 1)
  x0, x1 = max(0, xs.min() - margin), min(trimap.shape[1], xs.max() + margin + 1)
  box = trimap[y0:y1, x0:x1].copy()
  background = (box == cv2.GC_BGD) | (box == cv2.GC_PR_BGD)
  if not background.any():
    return product
  bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
  cv2.setRNGSeed(0)  # GrabCut's k-means starts from OpenCV's (per-thread) generator.
  image = cv2.cvtColor(np.ascontiguousarray(small[y0:y1, x0:x1]), cv2.COLOR_RGB2BGR)
  cv2.grabCut(image, box, None, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
  product = np.zeros(trimap.shape, bool)
  product[y0:y1, x0:x1] = (box == cv2.GC_FGD) | (box == cv2.GC_PR_FGD)
  return product


def _matte(rgb: np.ndarray, product: np.ndarray) -> np.ndarray:
  """Soft edges: each pixel within a pixel of the outline gets the coverage
  that mixes the nearest product colour (a pixel further in) and the nearest
  backdrop colour (a pixel further out) into its own (least squares along
  their difference); where those two colours are alike the hard mask stays."""
  import cv2  # pylint: disable=g-import-not-at-top

  h, w = product.shape
  cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
  inside = cv2.erode(product.astype(np.uint8), cross).astype(bool)
  outside = ~cv2.dilate(product.astype(np.uint8), cross).astype(bool)
  mask = product.astype(np.float32)
  if not inside.any() or not outside.any():
    return mask
  flat = rgb.reshape(-1, 3)
  fore = flat[_nearest(inside)].reshape(h, w, 3)
  back = flat[_nearest(outside)].reshape(h, w, 3)
  diff = fore - back
  norm = (diff * diff).sum(-1)
  alpha = np.clip(((rgb - back) * diff).sum(-1) / np.maximum(norm, 1e-6), 0.0, 1.0)
  band = ~inside & ~outside & (norm > 0.03**2)
  mask[band] = alpha[band]
  return mask


def _nearest(mask: np.ndarray) -> np.ndarray:
  """For every pixel, the flat index of the nearest pixel of `mask` (OpenCV's
  distance transform labels, 3x3 approximation)."""
  import cv2  # pylint: disable=g-import-not-at-top

  _, labels = cv2.distanceTransformWithLabels(
    (~mask).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
  )
  index = np.flatnonzero(mask)
  return index[np.clip(labels - 1, 0, len(index) - 1)]


def iou(mask: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
  """Intersection over union of two masks thresholded at `threshold` (of their
  range: [0, 1] float or uint8 scaled to it); 1.0 when both are empty."""
  a = from_alpha(mask) if mask.dtype.kind in 'ui' else mask
  b = from_alpha(truth) if truth.dtype.kind in 'ui' else truth
  a, b = a > threshold, b > threshold
  union = np.logical_or(a, b).sum()
  return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
