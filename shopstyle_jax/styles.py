"""Photo -> styled image renderers: the targets the GAN learns to imitate.

Each renderer is a pure, deterministic function from a uint8 [H, W, 3] RGB
photo to a uint8 [H, W, 3] RGB styled image of the same size: classical
non-photorealistic filters built from OpenCV primitives. Filter sizes scale
with the image so that a 64 px and a 256 px render look alike. A new style is a
function added to `RENDERERS` (the registry the config checks use); changing
any renderer's output means bumping `VERSION` (and the catalogue's version).
"""

import functools
from typing import Callable

import cv2
import numpy as np

Renderer = Callable[[np.ndarray], np.ndarray]

# Bump when any renderer's output changes: caches of converted user folders
# are keyed by it, so they re-render.
VERSION = 2

# Reference resolution the filter parameters below were tuned at.
_REFERENCE_SIZE = 256.0


def _check_photo(photo: np.ndarray) -> None:
  if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[-1] != 3:
    raise ValueError(f'Expected a uint8 [H, W, 3] RGB image, got {photo.dtype} {photo.shape}.')


def _luminance(photo: np.ndarray) -> np.ndarray:
  """Returns Rec. 601 luma in [0, 1] as float32 [H, W]."""
  return cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
  return cv2.GaussianBlur(
    image, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE
  )


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
  lines = np.where(response >= eps, 1.0, 1.0 + np.tanh(phi * (response - eps))).astype(np.float32)
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


# ----------------------------------------------------------------------------
# Shared helpers for the painterly styles.
# ----------------------------------------------------------------------------


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
  return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _box(image: np.ndarray, radius: int, anchor: tuple[int, int] = (-1, -1)) -> np.ndarray:
  """Mean over the centred (2r+1)^2 window, or the (r+1)^2 one at `anchor`."""
  size = 2 * radius + 1 if anchor == (-1, -1) else radius + 1
  return cv2.boxFilter(image, -1, (size, size), anchor=anchor, borderType=cv2.BORDER_REFLECT)


@functools.lru_cache(maxsize=16)
def _noise(height: int, width: int, sigma: float, seed: int) -> np.ndarray:
  """Fixed smooth noise, zero mean and unit deviation, float32 [H, W].

  Seeded, so that paper grain, pigment and brush textures are constants and
  each renderer stays a pure function of the photo.
  """
  noise = np.random.default_rng(seed).standard_normal((height, width))
  noise = noise.astype(np.float32)
  if sigma > 0:
    noise = _blur(noise, sigma)
  noise = (noise - noise.mean()) / (noise.std() + 1e-6)
  noise.setflags(write=False)
  return noise


def _guided_filter(image: np.ndarray, guide: np.ndarray, radius: int, eps: float) -> np.ndarray:
  """Edge-preserving smoothing of float [H, W, C] `image` (He et al., 2010).

  Locally `image ~ a * guide + b`: flat where the guide is flat, keeps the
  guide's strong edges. Box filters only, so cheap at any radius.
  """
  g = guide[..., None]
  mean_g, mean_i = _box(g, radius)[..., None], _box(image, radius)
  var_g = _box(guide * guide, radius)[..., None] - mean_g * mean_g
  cov = _box(g * image, radius) - mean_g * mean_i
  a = cov / (var_g + eps)
  b = mean_i - a * mean_g
  return _box(a, radius) * g + _box(b, radius)


def _edge_strength(gray: np.ndarray, sigma: float) -> np.ndarray:
  """Gradient magnitude of the blurred luminance (per pixel), [H, W]."""
  smooth = _blur(gray, sigma)
  gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8.0
  gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8.0
  return np.sqrt(gx * gx + gy * gy)


def _to_paper(rgb: np.ndarray, white: float) -> np.ndarray:
  """Maps tones lighter than `white` (studio backdrops) to bare paper."""
  return np.clip(rgb / white, 0.0, 1.0)


def watercolor(photo: np.ndarray) -> np.ndarray:
  """Renders a watercolour: flat transparent washes on grainy white paper.

  After Bousseau et al. (2006): the photo is abstracted into flat washes
  (guided filter) whose borders wobble like a hand-laid brush (a smooth
  displacement field), lightened as transparent pigment, and the pigment
  density d is modulated by paper grain, low-frequency turbulence and darker
  wash borders (edge darkening), with C' = C - (C - C^2)(d - 1).
  """
  _check_photo(photo)
  height, width = photo.shape[:2]
  scale = max(height, width) / _REFERENCE_SIZE
  image = photo.astype(np.float32) / 255.0
  gray = _luminance(photo)
  wash = _guided_filter(image, gray, max(1, int(round(4 * scale))), 0.02)
  # Wobbly borders: sample the wash through a smooth random displacement.
  amplitude = 1.5 * scale
  map_x = _noise(height, width, max(2.0, 8.0 * scale), 13) * amplitude
  map_y = _noise(height, width, max(2.0, 8.0 * scale), 14) * amplitude
  map_x = map_x + np.arange(width, dtype=np.float32)[None, :]
  map_y = map_y + np.arange(height, dtype=np.float32)[:, None]
  wash = cv2.remap(wash, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
  wash = _to_paper(_blur(wash, max(0.5, 0.7 * scale)), 0.88)
  # Transparent pigment: at most 85% of the way from paper to the colour.
  colour = 1.0 - 0.85 * (1.0 - wash)
  edges = _edge_strength(_luminance(_to_uint8(wash)), max(0.5, 0.8 * scale))
  edges = np.clip(edges * scale * 4.0, 0.0, 1.0)  # Slope per 1/256 of width.
  grain = _noise(height, width, max(0.5, 0.8 * scale), 11)
  turbulence = _noise(height, width, max(2.0, 16.0 * scale), 12)
  density = 1.0 + 0.08 * grain + 0.25 * turbulence + 1.5 * edges
  rgb = colour - (colour - colour * colour) * (density - 1.0)[..., None]
  return _to_uint8(rgb)


def _kuwahara(image: np.ndarray, gray: np.ndarray, radius: int) -> np.ndarray:
  """Kuwahara filter: each pixel takes the mean of its flattest quadrant."""
  best_mean, best_var = None, None
  gray_sq = gray * gray
  for anchor in ((0, 0), (radius, 0), (0, radius), (radius, radius)):
    var = _box(gray_sq, radius, anchor) - _box(gray, radius, anchor) ** 2
    mean = _box(image, radius, anchor)
    if best_var is None:
      best_mean, best_var = mean, var
    else:
      better = var < best_var
      best_var = np.minimum(var, best_var)
      best_mean = np.where(better[..., None], mean, best_mean)
  return best_mean


@functools.lru_cache(maxsize=8)
def _brush_strokes(height: int, width: int, length: int, bristle: float) -> np.ndarray:
  """Fixed stroke textures along 0, 45, 90 and 135 degrees, [4, H, W]."""
  noise = _noise(height, width, bristle, 21)
  textures = []
  c = (length - 1) / 2
  for angle in (0, 45, 90, 135):
    kernel = np.zeros((length, length), np.float32)
    dx, dy = np.cos(np.radians(angle)) * c, np.sin(np.radians(angle)) * c
    cv2.line(
      kernel,
      (int(round(c - dx)), int(round(c - dy))),
      (int(round(c + dx)), int(round(c + dy))),
      1.0,
      1,
    )
    t = cv2.filter2D(noise, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    textures.append((t - t.mean()) / (t.std() + 1e-6))
  out = np.stack(textures)
  out.setflags(write=False)
  return out


def oil(photo: np.ndarray) -> np.ndarray:
  """Renders an oil painting: flat, saturated patches of brushed paint.

  Colours come from a Kuwahara filter (each pixel takes the mean of its
  least-varying quadrant, which flattens texture into patches with crisp
  borders); the paint's relief is a brush-stroke texture laid along the local
  edge direction (structure tensor), lit from the top left.
  """
  _check_photo(photo)
  height, width = photo.shape[:2]
  scale = max(height, width) / _REFERENCE_SIZE
  image = photo.astype(np.float32) / 255.0
  gray = _luminance(photo)
  paint = _kuwahara(image, gray, max(1, int(round(5 * scale))))
  mean = paint.mean(axis=-1, keepdims=True)
  paint = np.clip(mean + 1.3 * (paint - mean), 0.0, 1.0)  # Richer pigment.
  # Strokes run along the edge tangent (structure tensor orientation) where
  # the photo has structure, and along the 135-degree diagonal elsewhere.
  gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3) / 8.0
  gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3) / 8.0
  window = max(1.5, 5.0 * scale)
  jxx, jyy, jxy = (_blur(v, window) for v in (gx * gx, gy * gy, gx * gy))
  angle = np.degrees(0.5 * np.arctan2(2 * jxy, jxx - jyy)) + 90.0
  bins = np.round(angle / 45.0).astype(np.int64) % 4
  # Oriented luminance slope per pixel (root of the eigenvalue gap).
  coherence = np.sqrt(np.hypot(jxx - jyy, 2 * jxy))
  bins = np.where(coherence > 0.01, bins, 3)
  strokes = _brush_strokes(height, width, max(3, int(round(19 * scale))), max(0.5, 1.0 * scale))
  relief = np.take_along_axis(strokes, bins[None], axis=0)[0]
  hx = cv2.Sobel(relief, cv2.CV_32F, 1, 0, ksize=3)
  hy = cv2.Sobel(relief, cv2.CV_32F, 0, 1, ksize=3)
  light = 1.0 + 0.025 * (-hx - hy)
  return _to_uint8(paint * np.clip(light, 0.85, 1.15)[..., None])


def cartoon(photo: np.ndarray) -> np.ndarray:
  """Renders a cartoon: flat colour bands inside bold black outlines.

  After Winnemoeller et al. (2006): edge-preserving smoothing abstracts the
  photo, its lightness is quantised into a few soft-edged bands (hue and
  chroma kept, a little boosted), and thresholded Difference-of-Gaussians
  edges draw the outlines.
  """
  _check_photo(photo)
  height, width = photo.shape[:2]
  scale = max(height, width) / _REFERENCE_SIZE
  image = photo.astype(np.float32) / 255.0
  gray = _luminance(photo)
  smooth = _guided_filter(image, gray, max(1, int(round(4 * scale))), 0.002)
  lab = cv2.cvtColor(np.clip(smooth, 0, 1), cv2.COLOR_RGB2Lab)
  lightness = lab[..., 0]
  step = 100.0 / 5
  centre = (np.floor(lightness / step) + 0.5) * step
  lab[..., 0] = centre + step / 2 * np.tanh(6.0 * (lightness - centre) / step)
  lab[..., 1:] *= 1.35
  rgb = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0)
  sigma = max(0.6, 1.1 * scale)
  dog = _blur(gray, sigma) - _blur(gray, 1.6 * sigma)
  lines = 0.5 + 0.5 * np.tanh(400.0 * (dog + 0.012))  # ~Hard threshold.
  return _to_uint8(rgb * lines[..., None])


def linocut(photo: np.ndarray) -> np.ndarray:
  """Renders a linocut print: bold black outlines and solid black for the
  darkest tones on white paper (no grey), a style the catalogue does not store:
  it is rendered from the photos of a folder (`config.data.folder`), e.g. to
  fine-tune a new style into a trained multi-style model."""
  _check_photo(photo)
  height, width = photo.shape[:2]
  scale = max(height, width) / _REFERENCE_SIZE
  gray = _luminance(photo)
  # XDoG as the sketch's, coarser and harder: cut strokes, not graphite.
  sigma = max(0.7, 1.4 * scale)
  response = _blur(gray, sigma) - 0.98 * _blur(gray, 1.6 * sigma)
  lines = np.clip(1.0 + np.tanh(200.0 * np.minimum(response + 0.006, 0.0)), 0.0, 1.0)
  tone = _blur(gray, max(1.0, 2.5 * scale))
  fill = 0.5 + 0.5 * np.tanh(40.0 * (tone - 0.22))  # Dark areas -> solid black.
  print_gray = _blur(lines * fill, max(0.35, 0.5 * scale)).astype(np.float32)
  return _to_uint8(np.repeat(print_gray[..., None], 3, axis=-1))


RENDERERS: dict[str, Renderer] = {
  'sketch': sketch,
  'watercolor': watercolor,
  'oil': oil,
  'cartoon': cartoon,
  'linocut': linocut,
}

# The styles the embedded catalogue (`synthetic_catalog` 1.1.0) stores for every
# photo; a renderer added later is rendered from folders until the catalogue's
# version adds it.
CATALOG_STYLES = ('sketch', 'watercolor', 'oil', 'cartoon')


def render(style: str, photo: np.ndarray) -> np.ndarray:
  """Renders `photo` in `style`; raises ValueError for an unknown style."""
  try:
    renderer = RENDERERS[style]
  except KeyError:
    raise ValueError(
      f'Unknown style {style!r}; allowed styles: {", ".join(sorted(RENDERERS))}.'
    ) from None
  return renderer(photo)
