"""A product photo from a seed: the product, posed on a studio backdrop with
its shadow, lit and exposed. Every random choice comes from the seed, so every
machine renders the same pixels.
"""

import zlib

import cv2
import numpy as np

from shopstyle_jax import images as image_lib
from shopstyle_jax import styles
from shopstyle_jax.data.synthetic import canvas
from shopstyle_jax.data.synthetic import products

# Scenes are laid out and drawn at least at this size, then area-downsampled,
# so every builder config shows the same scenes.
_MIN_RENDER_SIZE = 256


def _background(rng: np.random.Generator, size: int, white: bool = False) -> np.ndarray:
  """Studio backdrop: white, light grey, soft gradient or light texture (white
  when `white`)."""
  kind = rng.choice(['white', 'grey', 'gradient', 'texture'], p=[0.35, 0.2, 0.25, 0.2])
  kind = 'white' if white else kind
  t = (np.arange(size, dtype=np.float32) + 0.5) / size
  yy, xx = t[:, None], t[None, :]
  if kind == 'white':
    base = np.full(3, rng.uniform(0.94, 1.0), np.float32)
    return base + 0.02 * (yy - 0.5)[..., None] * np.ones((1, size, 3))
  if kind == 'grey':
    v = rng.uniform(0.8, 0.92)
    r2 = (xx - 0.5) ** 2 + (yy - 0.45) ** 2
    tint = canvas.hsv(rng.random(), rng.uniform(0.0, 0.05), 1.0)
    return (v + 0.1 * (0.4 - r2))[..., None] * tint
  if kind == 'gradient':
    a = canvas.hsv(rng.random(), rng.uniform(0.03, 0.15), rng.uniform(0.88, 0.98))
    b = canvas.hsv(rng.random(), rng.uniform(0.03, 0.15), rng.uniform(0.8, 0.95))
    angle = rng.uniform(0, 2 * np.pi)
    g = canvas.smoothstep(0.5 + (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle))
    return a + (b - a) * g[..., None]
  # Light texture: paper grain / linen / marble-like veins at low contrast.
  base = canvas.hsv(rng.random(), rng.uniform(0.0, 0.1), rng.uniform(0.86, 0.96))
  coarse = cv2.resize(
    rng.standard_normal((6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC
  )
  fine = cv2.GaussianBlur(
    rng.standard_normal((size, size)).astype(np.float32), (0, 0), max(0.6, size / 256)
  )
  if rng.random() < 0.5:  # Linen weave.
    weave = 0.5 * (np.sin(xx * size * 1.4) + np.sin(yy * size * 1.4))
    tex = 0.012 * coarse + 0.01 * fine + 0.006 * weave
  else:  # Marble veins.
    veins = np.abs(np.sin(6 * (xx + 0.6 * yy) + 1.5 * coarse + 0.4 * fine))
    tex = 0.012 * coarse + 0.008 * fine - 0.02 * (1 - veins) ** 10
  return base + tex[..., None]


def _pose_matrix(rng: np.random.Generator, size: int, flat_lay: bool) -> np.ndarray:
  """Random small rotation, scale, shift and mirror about the centre."""
  angle = rng.uniform(-25, 25) if flat_lay else rng.uniform(-6, 6)
  scale = rng.uniform(0.85, 1.08)
  m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
  if rng.random() < 0.5:  # Mirror: x -> size - x after the rotation.
    m[0] = -m[0]
    m[0, 2] += size
  shift = rng.uniform(-0.06, 0.06, size=2) * size
  shift[1] += (1.0 - scale) * 0.25 * size  # Smaller products sit lower.
  m[:, 2] += shift
  return m


def _shadow(
  rng: np.random.Generator, alpha: np.ndarray, light: np.ndarray, flat_lay: bool
) -> np.ndarray:
  """Shadow opacity on the backdrop, from the product's silhouette."""
  size = alpha.shape[0]
  if flat_lay:  # Soft drop shadow offset away from the light.
    offset = -light[:2] * size * rng.uniform(0.015, 0.035)
    m = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    moved = cv2.warpAffine(alpha, m, (size, size))
    return 0.35 * cv2.GaussianBlur(moved, (0, 0), size * 0.02)
  rows = np.nonzero(alpha.max(axis=1) > 0.5)[0]
  cols = np.nonzero(alpha.max(axis=0) > 0.5)[0]
  if rows.size == 0:
    return np.zeros_like(alpha)
  bottom = rows[-1]
  # Floor shadow: the silhouette squashed onto the floor, plus contact shadow.
  squash = rng.uniform(0.08, 0.16)
  skew = -light[0] * rng.uniform(0.3, 0.8)
  m = np.float32(
    [[1, skew * squash * 3, -skew * squash * 3 * bottom], [0, squash, bottom * (1 - squash)]]
  )
  floor = cv2.warpAffine(alpha, m, (size, size))
  floor = cv2.GaussianBlur(floor, (0, 0), size * 0.02)
  contact = np.zeros_like(alpha)
  cx, half = (cols[0] + cols[-1]) / 2, (cols[-1] - cols[0]) / 2
  cv2.ellipse(
    contact,
    (int(cx), int(bottom)),
    (int(half * 0.95) + 1, max(1, int(size * 0.012))),
    0,
    0,
    360,
    1.0,
    -1,
    cv2.LINE_AA,
  )
  contact = cv2.GaussianBlur(contact, (0, 0), size * 0.01)
  return np.clip(0.3 * floor + 0.35 * contact, 0, 0.6)


# A white product's albedo in white-on-white scenes (a white mug, a white T-shirt).
WHITE_ALBEDO = (0.93, 0.93, 0.92)


def render_scene(
  seed: tuple[int, ...], size: int, category: str, white: bool = False
) -> tuple[np.ndarray, np.ndarray]:
  """Renders one product photo, uint8 [size, size, 3] RGB, and the product's mask,
  uint8 [size, size] (its coverage, 255 = product; the shadow is backdrop), from
  a seed. `white`: the same scene with a white product on a white backdrop, the
  hardest case for a backdrop segmentation."""
  rng = np.random.default_rng(seed)
  work = max(size, _MIN_RENDER_SIZE)
  light = canvas.normalize(
    np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.9, -0.3), rng.uniform(0.6, 1.0)])
  )
  drawing = canvas.Canvas(work, light, WHITE_ALBEDO if white else None)
  products.PRODUCTS[category](drawing, rng)
  flat_lay = category in products.FLAT_LAY
  m = _pose_matrix(rng, work, flat_lay)
  layer = cv2.warpAffine(
    np.dstack([drawing.rgb, drawing.alpha]), m, (work, work), flags=cv2.INTER_LINEAR
  )
  rgb, alpha = layer[..., :3], np.clip(layer[..., 3], 0, 1)
  # The layer was painted over black, i.e. premultiplied: recover the colour.
  rgb = rgb / np.maximum(alpha, 1e-4)[..., None]
  backdrop = _background(rng, work, white).astype(np.float32)
  backdrop *= 1.0 - _shadow(rng, alpha, light, flat_lay)[..., None]
  exposure = rng.uniform(0.96, 1.06)
  image = backdrop + (rgb * exposure - backdrop) * alpha[..., None]
  image = image_lib.resize(image, size, size)  # Area averaging: work >= size.
  mask = image_lib.resize(alpha[..., None], size, size)
  to_uint8 = lambda x: np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
  return to_uint8(image), to_uint8(mask).reshape(size, size)


def render_photo(seed: tuple[int, ...], size: int, category: str) -> np.ndarray:
  """Renders one product photo, uint8 [size, size, 3] RGB, from a seed."""
  return render_scene(seed, size, category)[0]


def example_seed(split: str, index: int) -> tuple[int, ...]:
  """The seed of example `index` of `split`: the same on every machine."""
  return (zlib.crc32(split.encode()), index)


def example_category(index: int) -> str:
  """The category of example `index` (of any split)."""
  return products.CATEGORIES[index % len(products.CATEGORIES)]


def render_mask(split: str, index: int, size: int) -> np.ndarray:
  """The product mask of example `index` of `split`'s photo, uint8 [size, size]:
  the ground truth a background segmentation is measured on."""
  return render_scene(example_seed(split, index), size, example_category(index))[1]


def render_white(split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """(photo, mask) of example `index` of `split` with its product white on a
  white backdrop (`render_scene(white=True)`)."""
  return render_scene(example_seed(split, index), size, example_category(index), white=True)


def render_example(split: str, index: int, size: int) -> dict[str, object]:
  """Renders example `index` of `split`: photo, the catalogue's styles, category, id."""
  category = example_category(index)
  photo = render_photo(example_seed(split, index), size, category)
  example = {'id': index, 'category': category, 'photo': photo}
  for style in styles.CATALOG_STYLES:
    example[style] = styles.render(style, photo)
  return example
