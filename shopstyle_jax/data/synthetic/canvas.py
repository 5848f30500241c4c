"""The renderer's drawing layer: a canvas with a lamp, materials, colours, patterns.

Shapes are anti-aliased coverage masks drawn with OpenCV in fractions of the
canvas size; `Canvas.paint` shades an albedo with Blinn-Phong and composites it.
"""

import colorsys
import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class Material:
  """How a surface reflects the lamp (Blinn-Phong)."""

  ambient: float  # Light reaching surfaces facing away from the lamp.
  specular: float  # Highlight strength.
  shininess: float  # Highlight tightness (Blinn-Phong exponent).
  metal: bool = False  # Metal highlights take the surface colour.


MATTE = Material(0.42, 0.04, 6.0)
SATIN = Material(0.38, 0.22, 18.0)
GLOSSY = Material(0.32, 0.75, 70.0)
METAL = Material(0.25, 0.9, 40.0, metal=True)


def normalize(v: np.ndarray) -> np.ndarray:
  """Unit vectors along the last axis."""
  return v / np.linalg.norm(v, axis=-1, keepdims=True).clip(1e-6)


def smoothstep(x: np.ndarray) -> np.ndarray:
  """A smooth ramp from 0 at x <= 0 to 1 at x >= 1."""
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


def chaikin(points: np.ndarray, iterations: int = 3) -> np.ndarray:
  """Rounds the corners of a closed polygon by corner cutting."""
  for _ in range(iterations):
    nxt = np.roll(points, -1, axis=0)
    points = np.stack([0.75 * points + 0.25 * nxt, 0.25 * points + 0.75 * nxt], axis=1).reshape(
      -1, 2
    )
  return points


def rounded(points, radius: float) -> np.ndarray:
  """Closed polygon with each corner rounded over about `radius`."""
  points = np.asarray(points, np.float64)
  prev, nxt = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
  to_prev, to_next = prev - points, nxt - points
  len_prev = np.linalg.norm(to_prev, axis=1, keepdims=True)
  len_next = np.linalg.norm(to_next, axis=1, keepdims=True)
  r_prev = np.minimum(radius, 0.45 * len_prev)
  r_next = np.minimum(radius, 0.45 * len_next)
  cut = np.stack(
    [
      points + to_prev / np.maximum(len_prev, 1e-9) * r_prev,
      points + to_next / np.maximum(len_next, 1e-9) * r_next,
    ],
    1,
  )
  return chaikin(cut.reshape(-1, 2), 2)


class Canvas:
  """An RGBA product layer with a light, drawn in pixel coordinates."""

  def __init__(self, size: int, light: np.ndarray, albedo: np.ndarray | None = None):
    self.size = size
    self.light = light
    # When set, every surface is painted in this colour (white-on-white scenes).
    self.albedo = None if albedo is None else np.asarray(albedo, np.float32)
    self.half = normalize(light + np.array([0.0, 0.0, 1.0]))
    grid = np.arange(size, dtype=np.float32) + 0.5
    self.xs = np.broadcast_to(grid[None, :], (size, size))
    self.ys = np.broadcast_to(grid[:, None], (size, size))
    self.rgb = np.zeros((size, size, 3), np.float32)
    self.alpha = np.zeros((size, size), np.float32)

  # Masks: float32 [size, size] coverage in [0, 1], anti-aliased.

  def polygon(self, points) -> np.ndarray:
    mask = np.zeros((self.size, self.size), np.uint8)
    pts = np.round(np.asarray(points, np.float64) * self.size * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0

  def ellipse(
    self,
    center,
    axes,
    angle: float = 0.0,
    start: float = 0.0,
    end: float = 360.0,
    thickness: float = -1,
  ) -> np.ndarray:
    mask = np.zeros((self.size, self.size), np.uint8)
    c = tuple(int(round(v * self.size * 16)) for v in center)
    a = tuple(max(1, int(round(v * self.size * 16))) for v in axes)
    t = -1 if thickness < 0 else max(1, int(round(thickness * self.size)))
    cv2.ellipse(mask, c, a, angle, start, end, 255, t, cv2.LINE_AA, 4)
    return mask.astype(np.float32) / 255.0

  def stroke(self, points, width: float, closed: bool = False) -> np.ndarray:
    mask = np.zeros((self.size, self.size), np.uint8)
    pts = np.round(np.asarray(points, np.float64) * self.size * 16).astype(np.int32)
    cv2.polylines(mask, [pts], closed, 255, max(1, int(round(width * self.size))), cv2.LINE_AA, 4)
    return mask.astype(np.float32) / 255.0

  def revolve(self, cx: float, ys, radii):
    """Mask and normals of a surface of revolution about a vertical axis.

    Args:
      cx: axis position (fraction of the canvas).
      ys: increasing profile heights (fractions).
      radii: half widths at `ys` (fractions).

    Returns:
      (mask, normals), the normals as float32 [size, size, 3].
    """
    rows = self.ys[:, 0] / self.size
    r = np.interp(rows, ys, radii, left=0.0, right=0.0) * self.size
    slope = np.gradient(r)  # dr/dy in pixels per pixel.
    top, bottom = ys[0] * self.size, ys[-1] * self.size
    vertical = np.clip(self.ys[:, 0] - top + 0.5, 0, 1) * np.clip(
      bottom - self.ys[:, 0] + 0.5, 0, 1
    )
    dx = self.xs - cx * self.size
    mask = np.clip(r[:, None] - np.abs(dx) + 0.5, 0, 1) * vertical[:, None]
    nx = np.clip(dx / np.maximum(r[:, None], 1e-3), -0.97, 0.97)
    nz = np.sqrt(1.0 - nx * nx)
    ny = -slope[:, None] * nz
    normals = normalize(np.stack([nx, ny, nz], axis=-1)).astype(np.float32)
    return mask.astype(np.float32), normals

  # Normals.

  def inflate(self, mask: np.ndarray, sigma: float, strength: float = 1.0) -> np.ndarray:
    """Normals of a pillow-like surface rising from the mask's outline."""
    s = max(0.5, sigma * self.size)
    height = cv2.GaussianBlur(mask, (0, 0), s)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    k = 2.5 * s * strength
    ones = np.ones_like(gx)
    return normalize(np.stack([-k * gx, -k * gy, ones], axis=-1))

  def flat(self, nx: float = 0.0, ny: float = 0.0, nz: float = 1.0) -> np.ndarray:
    return normalize(np.array([nx, ny, nz], np.float32))

  # Shading and compositing.

  def paint(self, mask: np.ndarray, albedo, normals, material: Material = MATTE) -> None:
    """Shades `albedo` with Blinn-Phong and composites it over the layer."""
    x, y, w, h = cv2.boundingRect((mask > 0.002).astype(np.uint8))
    if w == 0 or h == 0:
      return
    box = (slice(y, y + h), slice(x, x + w))
    m = mask[box]
    albedo = np.asarray(albedo if self.albedo is None else self.albedo, np.float32)
    a = albedo[box] if albedo.ndim == 3 else albedo
    n = normals[box] if normals.ndim == 3 else normals
    diffuse = np.clip(n @ self.light, 0.0, 1.0)
    spec = np.clip(n @ self.half, 0.0, 1.0) ** material.shininess
    spec = material.specular * spec
    lit = material.ambient + (1.0 - material.ambient) * diffuse
    colour = a * lit[..., None]
    if material.metal:
      colour = colour + spec[..., None] * (0.35 + 0.65 * a)
    else:
      colour = colour + spec[..., None]
    m3 = m[..., None]
    self.rgb[box] = self.rgb[box] * (1.0 - m3) + colour * m3
    self.alpha[box] = self.alpha[box] + m * (1.0 - self.alpha[box])


# ----------------------------------------------------------------------------
# Colours and patterns.
# ----------------------------------------------------------------------------


def hsv(h: float, s: float, v: float) -> np.ndarray:
  """HSV in [0, 1] -> float32 RGB (colorsys computes in float64, as the renderer
  always did, so the catalogue's bytes are unchanged)."""
  return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


def random_colour(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
  """A product colour: neutral, earthy/muted or vivid, linear RGB in [0, 1]."""
  kind = kind or rng.choice(['neutral', 'muted', 'vivid'], p=[0.3, 0.35, 0.35])
  h = rng.random()
  if kind == 'neutral':
    return hsv(
      h,
      rng.uniform(0.0, 0.08),
      rng.choice([rng.uniform(0.08, 0.2), rng.uniform(0.35, 0.7), rng.uniform(0.8, 0.95)]),
    )
  if kind == 'muted':
    return hsv(h, rng.uniform(0.2, 0.5), rng.uniform(0.35, 0.85))
  return hsv(h, rng.uniform(0.6, 0.95), rng.uniform(0.5, 0.95))


def contrasting(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
  """A second colour that stands out from `base` (for patterns, trims)."""
  options = [
    np.full(3, 0.93, np.float32),
    np.full(3, 0.12, np.float32),
    random_colour(rng, 'vivid'),
    random_colour(rng, 'muted'),
  ]
  lum = [abs(float(o.mean()) - float(base.mean())) for o in options]
  order = np.argsort(lum)[::-1]
  return options[int(order[rng.integers(0, 2)])]


def pattern(
  c: Canvas,
  rng: np.random.Generator,
  base: np.ndarray,
  kinds=('solid', 'stripes', 'dots', 'checks', 'gradient'),
  p=(0.4, 0.2, 0.12, 0.12, 0.16),
) -> np.ndarray:
  """Albedo: `base` alone or patterned with a contrasting colour."""
  p = np.asarray(p, np.float64)
  kind = rng.choice(kinds, p=p / p.sum())
  if kind == 'solid':
    return base
  other = contrasting(rng, base)
  period = rng.uniform(0.035, 0.1) * c.size
  if kind == 'gradient':
    angle = rng.uniform(0, np.pi)
    t = (c.xs * np.cos(angle) + c.ys * np.sin(angle)) / c.size
    t = smoothstep((t - t.min()) / (t.max() - t.min() + 1e-6))
    return base + (other - base) * t[..., None]

  def bands(angle: float, duty: float) -> np.ndarray:
    t = (c.xs * np.cos(angle) + c.ys * np.sin(angle)) / period
    dist = (duty / 2 - np.abs(t - np.floor(t) - 0.5)) * period
    return np.clip(dist + 0.5, 0.0, 1.0)

  if kind == 'stripes':
    angle = rng.choice([0.0, np.pi / 2, np.pi / 4, 3 * np.pi / 4])
    cover = bands(angle, rng.uniform(0.25, 0.5))
  elif kind == 'dots':
    u, v = c.xs / period, c.ys / period
    u = u + 0.5 * (np.floor(v) % 2)  # Staggered rows.
    du, dv = u - np.floor(u) - 0.5, v - np.floor(v) - 0.5
    dist = np.sqrt(du * du + dv * dv) * period
    cover = np.clip(rng.uniform(0.15, 0.3) * period - dist + 0.5, 0, 1)
  else:  # Gingham checks: overlapping bands give three tones.
    a, b = bands(0.0, 0.5), bands(np.pi / 2, 0.5)
    cover = 0.5 * (a + b) if rng.random() < 0.6 else a + b - 2 * a * b
  return base + (other - base) * cover[..., None]
