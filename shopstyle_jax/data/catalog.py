"""`synthetic_catalog`: an embedded TFDS dataset of procedural product photos.

Nothing is downloaded. Every example is a studio-style e-commerce photo of a
product (shoe, handbag, bottle, ...) rendered with numpy/OpenCV from a seed
derived from (split, index) only, so every machine builds identical data,
paired with each style of `shopstyle_jax.styles` applied to that photo.

Importing this module registers the builder with TFDS.
"""

import concurrent.futures
import dataclasses
import functools
import os
import zlib
from typing import Callable, Iterator

import cv2
import numpy as np
import tensorflow_datasets as tfds

from shopstyle_jax import images as image_lib
from shopstyle_jax import styles

CATEGORIES = ('shoe', 'handbag', 'bottle', 'mug', 't_shirt', 'box', 'lamp',
              'chair', 'watch')

# Scenes are laid out and drawn at least at this size, then area-downsampled,
# so every builder config shows the same scenes.
_MIN_RENDER_SIZE = 256


# ----------------------------------------------------------------------------
# Drawing primitives.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Material:
  ambient: float  # Light reaching surfaces facing away from the lamp.
  specular: float  # Highlight strength.
  shininess: float  # Highlight tightness (Blinn-Phong exponent).
  metal: bool = False  # Metal highlights take the surface colour.


_MATTE = _Material(0.42, 0.04, 6.0)
_SATIN = _Material(0.38, 0.22, 18.0)
_GLOSSY = _Material(0.32, 0.75, 70.0)
_METAL = _Material(0.25, 0.9, 40.0, metal=True)


def _normalize(v: np.ndarray) -> np.ndarray:
  return v / np.linalg.norm(v, axis=-1, keepdims=True).clip(1e-6)


def _smoothstep(x: np.ndarray) -> np.ndarray:
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


def _chaikin(points: np.ndarray, iterations: int = 3) -> np.ndarray:
  """Rounds the corners of a closed polygon by corner cutting."""
  for _ in range(iterations):
    nxt = np.roll(points, -1, axis=0)
    points = np.stack([0.75 * points + 0.25 * nxt,
                       0.25 * points + 0.75 * nxt], axis=1).reshape(-1, 2)
  return points


def _rounded(points, radius: float) -> np.ndarray:
  """Closed polygon with each corner rounded over about `radius`."""
  points = np.asarray(points, np.float64)
  prev, nxt = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
  to_prev, to_next = prev - points, nxt - points
  len_prev = np.linalg.norm(to_prev, axis=1, keepdims=True)
  len_next = np.linalg.norm(to_next, axis=1, keepdims=True)
  r_prev = np.minimum(radius, 0.45 * len_prev)
  r_next = np.minimum(radius, 0.45 * len_next)
  cut = np.stack([points + to_prev / np.maximum(len_prev, 1e-9) * r_prev,
                  points + to_next / np.maximum(len_next, 1e-9) * r_next], 1)
  return _chaikin(cut.reshape(-1, 2), 2)


class _Canvas:
  """An RGBA product layer with a light, drawn in pixel coordinates."""

  def __init__(self, size: int, light: np.ndarray):
    self.size = size
    self.light = light
    self.half = _normalize(light + np.array([0.0, 0.0, 1.0]))
    grid = np.arange(size, dtype=np.float32) + 0.5
    self.xs = np.broadcast_to(grid[None, :], (size, size))
    self.ys = np.broadcast_to(grid[:, None], (size, size))
    self.rgb = np.zeros((size, size, 3), np.float32)
    self.alpha = np.zeros((size, size), np.float32)

  # Masks: float32 [size, size] coverage in [0, 1], anti-aliased.

  def polygon(self, points) -> np.ndarray:
    mask = np.zeros((self.size, self.size), np.uint8)
    pts = np.round(np.asarray(points, np.float64) * self.size * 16).astype(
        np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0

  def ellipse(self, center, axes, angle: float = 0.0, start: float = 0.0,
              end: float = 360.0, thickness: float = -1) -> np.ndarray:
    mask = np.zeros((self.size, self.size), np.uint8)
    c = tuple(int(round(v * self.size * 16)) for v in center)
    a = tuple(max(1, int(round(v * self.size * 16))) for v in axes)
    t = -1 if thickness < 0 else max(1, int(round(thickness * self.size)))
    cv2.ellipse(mask, c, a, angle, start, end, 255, t, cv2.LINE_AA, 4)
    return mask.astype(np.float32) / 255.0

  def stroke(self, points, width: float, closed: bool = False) -> np.ndarray:
    mask = np.zeros((self.size, self.size), np.uint8)
    pts = np.round(np.asarray(points, np.float64) * self.size * 16).astype(
        np.int32)
    cv2.polylines(mask, [pts], closed, 255,
                  max(1, int(round(width * self.size))), cv2.LINE_AA, 4)
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
        bottom - self.ys[:, 0] + 0.5, 0, 1)
    dx = self.xs - cx * self.size
    mask = np.clip(r[:, None] - np.abs(dx) + 0.5, 0, 1) * vertical[:, None]
    nx = np.clip(dx / np.maximum(r[:, None], 1e-3), -0.97, 0.97)
    nz = np.sqrt(1.0 - nx * nx)
    ny = -slope[:, None] * nz
    normals = _normalize(np.stack([nx, ny, nz], axis=-1)).astype(np.float32)
    return mask.astype(np.float32), normals

  # Normals.

  def inflate(self, mask: np.ndarray, sigma: float,
              strength: float = 1.0) -> np.ndarray:
    """Normals of a pillow-like surface rising from the mask's outline."""
    s = max(0.5, sigma * self.size)
    height = cv2.GaussianBlur(mask, (0, 0), s)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    k = 2.5 * s * strength
    ones = np.ones_like(gx)
    return _normalize(np.stack([-k * gx, -k * gy, ones], axis=-1))

  def flat(self, nx: float = 0.0, ny: float = 0.0,
           nz: float = 1.0) -> np.ndarray:
    return _normalize(np.array([nx, ny, nz], np.float32))

  # Shading and compositing.

  def paint(self, mask: np.ndarray, albedo, normals,
            material: _Material = _MATTE) -> None:
    """Shades `albedo` with Blinn-Phong and composites it over the layer."""
    x, y, w, h = cv2.boundingRect((mask > 0.002).astype(np.uint8))
    if w == 0 or h == 0:
      return
    box = (slice(y, y + h), slice(x, x + w))
    m = mask[box]
    albedo = np.asarray(albedo, np.float32)
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


def _hsv(h: float, s: float, v: float) -> np.ndarray:
  i = int(h * 6.0) % 6
  f = h * 6.0 - int(h * 6.0)
  p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
  return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v),
                   (v, p, q)][i], np.float32)


def _colour(rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
  """A product colour: neutral, earthy/muted or vivid, linear RGB in [0, 1]."""
  kind = kind or rng.choice(['neutral', 'muted', 'vivid'], p=[0.3, 0.35, 0.35])
  h = rng.random()
  if kind == 'neutral':
    return _hsv(h, rng.uniform(0.0, 0.08), rng.choice(
        [rng.uniform(0.08, 0.2), rng.uniform(0.35, 0.7),
         rng.uniform(0.8, 0.95)]))
  if kind == 'muted':
    return _hsv(h, rng.uniform(0.2, 0.5), rng.uniform(0.35, 0.85))
  return _hsv(h, rng.uniform(0.6, 0.95), rng.uniform(0.5, 0.95))


def _contrast(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
  """A second colour that stands out from `base` (for patterns, trims)."""
  options = [np.full(3, 0.93, np.float32), np.full(3, 0.12, np.float32),
             _colour(rng, 'vivid'), _colour(rng, 'muted')]
  lum = [abs(float(o.mean()) - float(base.mean())) for o in options]
  order = np.argsort(lum)[::-1]
  return options[int(order[rng.integers(0, 2)])]


def _pattern(c: _Canvas, rng: np.random.Generator, base: np.ndarray,
             kinds=('solid', 'stripes', 'dots', 'checks', 'gradient'),
             p=(0.4, 0.2, 0.12, 0.12, 0.16)) -> np.ndarray:
  """Albedo: `base` alone or patterned with a contrasting colour."""
  p = np.asarray(p, np.float64)
  kind = rng.choice(kinds, p=p / p.sum())
  if kind == 'solid':
    return base
  other = _contrast(rng, base)
  period = rng.uniform(0.035, 0.1) * c.size
  if kind == 'gradient':
    angle = rng.uniform(0, np.pi)
    t = (c.xs * np.cos(angle) + c.ys * np.sin(angle)) / c.size
    t = _smoothstep((t - t.min()) / (t.max() - t.min() + 1e-6))
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


# ----------------------------------------------------------------------------
# Products. Each draws into a canvas, in fractions of its size, roughly within
# [0.1, 0.9] x [0.1, 0.9], standing on y ~ 0.85 where it stands.
# ----------------------------------------------------------------------------


def _shoe(c: _Canvas, rng: np.random.Generator) -> None:
  boot = rng.random() < 0.3
  top = rng.uniform(0.2, 0.26) if boot else rng.uniform(0.4, 0.45)
  toe = rng.uniform(0.88, 0.92)
  throat = (0.33, 0.3) if boot else (0.36, top + 0.01)  # Tongue top.
  upper = [(0.11, 0.74), (0.1, 0.6), (0.12, top + 0.02), (0.15, top),
           (0.22, top + 0.01), (0.29, top + (0.0 if boot else 0.045)),
           throat, (0.5, 0.5), (0.64, 0.54), (toe - 0.1, 0.555),
           (toe - 0.03, 0.58), (toe + 0.02, 0.625), (toe + 0.035, 0.69),
           (toe + 0.025, 0.74)]
  upper_col = _colour(rng)
  albedo = _pattern(c, rng, upper_col, p=(0.6, 0.12, 0.06, 0.1, 0.12))
  material = [_MATTE, _SATIN, _GLOSSY][rng.integers(3)]
  mask = c.polygon(_rounded(upper, 0.04))
  normals = c.inflate(mask, 0.05, 1.3)
  c.paint(mask, albedo, normals, material)
  if not boot:  # Collar opening.
    opening = c.ellipse((0.22, top + 0.03), (0.075, 0.02), 3)
    c.paint(opening * mask, upper_col * 0.25, c.flat(0, 0.4, 1))
  # Toe cap, heel counter and side stripe in a trim colour.
  trim = _contrast(rng, upper_col) if rng.random() < 0.6 else upper_col * 0.75
  toe_cap = c.polygon(_rounded([(toe - 0.16, 0.75), (toe - 0.14, 0.65),
                                (toe - 0.04, 0.63), (toe + 0.03, 0.7),
                                (toe + 0.03, 0.75)], 0.03))
  c.paint(toe_cap * mask, trim, normals, material)
  heel = c.polygon(_rounded([(0.08, 0.76), (0.08, 0.55), (0.14, 0.53),
                             (0.22, 0.76)], 0.03))
  c.paint(heel * mask, trim, normals, material)
  if rng.random() < 0.6:
    stripe = c.stroke(_chaikin(np.array([
        (0.24, 0.7), (0.42, 0.66), (0.62, 0.57), (0.46, 0.64)]), 2), 0.022)
    c.paint(stripe * mask, trim, normals, _SATIN)
  # Laces zig-zagging down the throat.
  lace_col = np.full(3, 0.92) if upper_col.mean() < 0.5 else np.full(3, 0.15)
  start, end = np.array(throat) + (0.0, 0.03), np.array([0.56, 0.53])
  count = 7 if boot else 4
  for t in np.linspace(0.0, 1.0, count):
    p = start + (end - start) * t
    lace = c.stroke([p + (-0.03, -0.012), p + (0.03, 0.02)], 0.011)
    c.paint(lace, lace_col, c.flat(0, -0.3, 1), _SATIN)
    eyelet = c.ellipse(p + (-0.03, -0.012), (0.007, 0.007))
    c.paint(eyelet, upper_col * 0.4, c.flat(), _METAL)
  # Sole with toe spring and a midsole line.
  sole_col = [np.full(3, 0.95), np.full(3, 0.93), np.full(3, 0.12),
              np.array([0.62, 0.45, 0.28])][rng.integers(4)]
  thick = rng.uniform(0.05, 0.08)
  sole = c.polygon(_rounded([
      (0.085, 0.72), (toe + 0.03, 0.71), (toe + 0.05, 0.73 + thick * 0.4),
      (toe - 0.06, 0.73 + thick), (0.08, 0.735 + thick)], 0.02))
  sole_n = c.inflate(sole, 0.012, 1.0)
  c.paint(sole, sole_col, sole_n, _SATIN)
  line = c.stroke([(0.09, 0.73 + thick * 0.55), (toe - 0.02,
                                                0.73 + thick * 0.55)], 0.005)
  c.paint(line * sole, sole_col * 0.6, sole_n, _MATTE)


def _handbag(c: _Canvas, rng: np.random.Generator) -> None:
  w, h = rng.uniform(0.26, 0.36), rng.uniform(0.22, 0.32)
  taper = rng.uniform(0.0, 0.06)
  bottom = 0.84
  col = _colour(rng)
  material = [_SATIN, _GLOSSY, _MATTE][rng.integers(3)]
  # Handle behind the body.
  handle_w = w * rng.uniform(0.45, 0.7)
  handle = c.ellipse((0.5, bottom - h + 0.01), (handle_w, rng.uniform(0.13,
                                                                       0.2)),
                     0, 180, 360, rng.uniform(0.018, 0.03))
  c.paint(handle, col * 0.85, c.inflate(handle, 0.01, 1.0), material)
  body = np.array([(0.5 - w + taper, bottom - h), (0.5 + w - taper,
                                                   bottom - h),
                   (0.5 + w, bottom), (0.5 - w, bottom)])
  mask = c.polygon(_rounded(body, rng.uniform(0.03, 0.08)))
  albedo = _pattern(c, rng, col, p=(0.5, 0.15, 0.1, 0.15, 0.1))
  normals = c.inflate(mask, 0.06, 1.2)
  c.paint(mask, albedo, normals, material)
  if rng.random() < 0.7:  # Flap with a clasp.
    depth = h * rng.uniform(0.35, 0.6)
    flap = np.array([(0.5 - w + taper - 0.005, bottom - h - 0.005),
                     (0.5 + w - taper + 0.005, bottom - h - 0.005),
                     (0.5 + w - taper * 0.5, bottom - h + depth * 0.6),
                     (0.5, bottom - h + depth),
                     (0.5 - w + taper * 0.5, bottom - h + depth * 0.6)])
    flap_mask = c.polygon(_rounded(flap, 0.03)) * mask
    c.paint(flap_mask, albedo * 0.9, c.inflate(flap_mask, 0.02, 1.0),
            material)
    clasp = c.ellipse((0.5, bottom - h + depth - 0.01), (0.022, 0.016))
    gold = np.array([0.85, 0.7, 0.35]) if rng.random() < 0.6 else np.full(
        3, 0.8)
    c.paint(clasp, gold, c.inflate(clasp, 0.008, 1.5), _METAL)
  else:  # Zip line and pocket seam.
    zip_line = c.stroke([(0.5 - w + taper + 0.03, bottom - h + 0.03),
                         (0.5 + w - taper - 0.03, bottom - h + 0.03)], 0.007)
    c.paint(zip_line, col * 0.4, c.flat(), _MATTE)
    seam = c.stroke(_chaikin(np.array([
        (0.5 - w * 0.6, bottom - h * 0.55), (0.5 + w * 0.6, bottom - h * 0.55),
        (0.5 + w * 0.6, bottom - 0.04), (0.5 - w * 0.6, bottom - 0.04)]), 2),
                    0.005, closed=True)
    c.paint(seam * mask, col * 0.55, c.flat(), _MATTE)


def _bottle(c: _Canvas, rng: np.random.Generator) -> None:
  r = rng.uniform(0.09, 0.16)
  neck = r * rng.uniform(0.25, 0.45)
  top = rng.uniform(0.1, 0.2)
  shoulder = top + rng.uniform(0.12, 0.22)
  bottom = 0.86
  ys = np.array([top, top + 0.06, shoulder - 0.06, shoulder, shoulder + 0.04,
                 bottom - 0.02, bottom])
  rs = np.array([neck, neck, neck * 1.1, r * 0.9, r, r, r * 0.94])
  mask, normals = c.revolve(0.5, ys, rs)
  glassy = rng.random() < 0.6
  col = _colour(rng)
  c.paint(mask, col, normals, _GLOSSY if glassy else _SATIN)
  # Label band.
  if rng.random() < 0.8:
    l_top = shoulder + rng.uniform(0.06, 0.12)
    l_bot = bottom - rng.uniform(0.06, 0.14)
    label = mask * ((c.ys > l_top * c.size) & (c.ys < l_bot * c.size))
    label_col = _contrast(rng, col)
    albedo = _pattern(c, rng, label_col, p=(0.5, 0.3, 0.1, 0.1, 0.0))
    c.paint(label.astype(np.float32), albedo, normals, _MATTE)
    for k in range(rng.integers(1, 4)):  # "Text" lines.
      y = l_top + (l_bot - l_top) * (0.3 + 0.18 * k)
      half = r * rng.uniform(0.3, 0.6)
      line = c.stroke([(0.5 - half, y), (0.5 + half, y)], 0.012 if k == 0
                      else 0.006)
      c.paint(line * mask, _contrast(rng, label_col), normals, _MATTE)
  # Cap.
  cap_h = rng.uniform(0.05, 0.09)
  cap_mask, cap_normals = c.revolve(
      0.5, np.array([top - cap_h, top - cap_h + 0.01, top + 0.02]),
      np.array([neck * 1.15, neck * 1.3, neck * 1.3]))
  cap_col = rng.choice([np.full(3, 0.1), np.full(3, 0.85),
                        np.array([0.8, 0.65, 0.3]), _colour(rng)])
  c.paint(cap_mask, cap_col, cap_normals, _METAL if rng.random() < 0.4
          else _SATIN)


def _mug(c: _Canvas, rng: np.random.Generator) -> None:
  r = rng.uniform(0.15, 0.2)
  h = rng.uniform(0.3, 0.42)
  bottom, top = 0.84, 0.84 - h
  cx = 0.46
  col = _colour(rng)
  material = _GLOSSY if rng.random() < 0.7 else _SATIN
  # Handle on the right.
  handle = c.ellipse((cx + r, top + h * 0.45), (r * 0.55, h * 0.3), 0, -90,
                     90, 0.035)
  c.paint(handle, col, c.inflate(handle, 0.012, 1.2), material)
  mask, normals = c.revolve(cx, np.array([top, bottom - 0.015, bottom]),
                            np.array([r, r * 0.97, r * 0.92]))
  albedo = _pattern(c, rng, col, p=(0.5, 0.25, 0.1, 0.05, 0.1))
  c.paint(mask, albedo, normals, material)
  # Rim and the dark inside seen from slightly above.
  rim = c.ellipse((cx, top), (r, r * 0.22))
  c.paint(rim, col, c.flat(0, -1.0, 0.6), material)
  inside = c.ellipse((cx, top + r * 0.01), (r * 0.9, r * 0.18))
  interior = col * 0.45 if rng.random() < 0.5 else np.full(3, 0.5)
  c.paint(inside, interior, c.flat(0, 0.6, 1), _SATIN)


def _t_shirt(c: _Canvas, rng: np.random.Generator) -> None:
  w = rng.uniform(0.17, 0.21)  # Half width of the body.
  shoulder = w + rng.uniform(0.0, 0.03)
  top, bottom = 0.14, rng.uniform(0.84, 0.88)
  neck_w = rng.uniform(0.07, 0.09)
  if rng.random() < 0.25:  # Long sleeves.
    sleeve = [(shoulder + 0.09, 0.3), (shoulder + 0.17, 0.74),
              (shoulder + 0.08, 0.76), (w + 0.01, 0.4)]
  else:
    sleeve = [(shoulder + 0.14, 0.31), (shoulder + 0.09, 0.42),
              (w + 0.005, 0.37)]
  right = [(neck_w, top), (shoulder, top + 0.05)] + sleeve + [
      (w, bottom)]
  left = [(-x, y) for x, y in reversed(right)]
  outline = np.array(right + left) + (0.5, 0.0)
  mask = c.polygon(_rounded(outline, 0.02))
  col = _colour(rng)
  albedo = _pattern(c, rng, col, p=(0.4, 0.3, 0.1, 0.15, 0.05))
  # Soft folds: low-frequency noise in the height field.
  noise = rng.standard_normal((8, 8)).astype(np.float32)
  folds = cv2.resize(noise, (c.size, c.size), interpolation=cv2.INTER_CUBIC)
  height = cv2.GaussianBlur(mask, (0, 0), 0.02 * c.size) + 0.02 * folds
  gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
  gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
  k = 0.05 * c.size
  normals = _normalize(np.stack([-k * gx, -k * gy, np.ones_like(gx)], -1))
  c.paint(mask, albedo, normals, _MATTE)
  # Neckline: back of the collar, then the rib.
  neck = c.ellipse((0.5, top), (neck_w, 0.05), 0, 0, 180)
  c.paint(neck, col * 0.55, c.flat(0, 0.5, 1), _MATTE)
  rib = c.ellipse((0.5, top), (neck_w + 0.008, 0.06), 0, 0, 180) - neck
  c.paint(np.clip(rib, 0, 1), col * 0.95, c.flat(0, -0.3, 1), _MATTE)
  # Hem stitches.
  for y in (bottom - 0.025,):
    hem = c.stroke([(0.5 - w + 0.02, y), (0.5 + w - 0.02, y)], 0.004)
    c.paint(hem * mask, col * 0.6, c.flat(), _MATTE)
  if rng.random() < 0.4:  # Chest print.
    logo = c.ellipse((0.5, top + 0.22), (0.06, 0.04))
    c.paint(logo, _contrast(rng, col), normals, _MATTE)


def _box(c: _Canvas, rng: np.random.Generator) -> None:
  w, d = rng.uniform(0.26, 0.38), rng.uniform(0.12, 0.22)
  h = rng.uniform(0.22, 0.42)
  slant = rng.uniform(0.08, 0.14)  # How much of the top is seen.
  x0, base = 0.5 - (w + d * 0.8) / 2, 0.85
  fl, fr = np.array([x0, base]), np.array([x0 + w, base])
  side = np.array([d * 0.8, -d * slant * 4])
  up = np.array([0, -h])
  col = _colour(rng)
  albedo = _pattern(c, rng, col, p=(0.55, 0.2, 0.1, 0.1, 0.05))
  material = _SATIN if rng.random() < 0.5 else _MATTE
  front = c.polygon([fl, fr, fr + up, fl + up])
  right = c.polygon([fr, fr + side, fr + side + up, fr + up])
  top = c.polygon([fl + up, fr + up, fr + side + up, fl + side + up])
  c.paint(front, albedo, c.flat(-0.25, 0.0, 1.0), material)
  c.paint(right, albedo, c.flat(1.0, 0.0, 0.35), material)
  c.paint(top, albedo, c.flat(0.0, -1.0, 0.45), material)
  if rng.random() < 0.5:  # Gift ribbon.
    ribbon_col = _contrast(rng, col)
    mid = fl + np.array([w / 2, 0])
    band = c.stroke([mid, mid + up, mid + up + side], 0.03)
    c.paint(band * np.clip(front + top, 0, 1), ribbon_col,
            c.flat(-0.2, -0.3, 1), _SATIN)
    band2 = c.stroke([fr + up * 0.5, fr + side + up * 0.5], 0.03)
    c.paint(band2 * right, ribbon_col, c.flat(1, 0, 0.4), _SATIN)
  elif rng.random() < 0.7:  # Printed label.
    label = c.polygon([fl + (w * 0.2, -h * 0.3), fl + (w * 0.8, -h * 0.3),
                       fl + (w * 0.8, -h * 0.65), fl + (w * 0.2, -h * 0.65)])
    c.paint(label, _contrast(rng, col), c.flat(-0.25, 0, 1), _MATTE)


def _lamp(c: _Canvas, rng: np.random.Generator) -> None:
  shade_top, shade_h = rng.uniform(0.1, 0.18), rng.uniform(0.2, 0.28)
  r_top, r_bot = rng.uniform(0.07, 0.13), rng.uniform(0.16, 0.22)
  base_y = 0.86
  metal = np.array([0.85, 0.7, 0.4]) if rng.random() < 0.4 else _colour(
      rng, 'neutral')
  stem, stem_n = c.revolve(0.5, np.array([shade_top + shade_h - 0.02,
                                          base_y - 0.03]),
                           np.array([0.012, 0.012]))
  c.paint(stem, metal, stem_n, _METAL)
  base, base_n = c.revolve(0.5, np.array([base_y - 0.05, base_y - 0.035,
                                          base_y]),
                           np.array([0.03, rng.uniform(0.08, 0.12), 0.11]))
  c.paint(base, metal, base_n, _METAL)
  shade, shade_n = c.revolve(0.5, np.array([shade_top, shade_top + shade_h]),
                             np.array([r_top, r_bot]))
  shade_col = _colour(rng)
  albedo = _pattern(c, rng, shade_col, p=(0.6, 0.2, 0.1, 0.05, 0.05))
  c.paint(shade, albedo, shade_n, _MATTE)
  rim = c.stroke([(0.5 - r_bot, shade_top + shade_h),
                  (0.5 + r_bot, shade_top + shade_h)], 0.008)
  c.paint(rim, shade_col * 0.6, c.flat(), _MATTE)


def _chair(c: _Canvas, rng: np.random.Generator) -> None:
  seat_y, seat_w = rng.uniform(0.52, 0.58), rng.uniform(0.18, 0.24)
  depth = rng.uniform(0.05, 0.08)
  back_h = rng.uniform(0.28, 0.36)
  wood = _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7),
              rng.uniform(0.35, 0.75))
  frame = wood if rng.random() < 0.6 else _colour(rng)
  cushion = _colour(rng) if rng.random() < 0.6 else frame
  leg_w = rng.uniform(0.018, 0.03)
  legs = [(0.5 - seat_w + 0.02, 0.0), (0.5 + seat_w - 0.02, 0.0),
          (0.5 - seat_w + 0.05, -depth), (0.5 + seat_w + 0.01, -depth)]
  for i in (2, 3, 0, 1):  # Back legs first.
    x, dy = legs[i]
    leg = c.polygon([(x - leg_w / 2, seat_y + dy), (x + leg_w / 2, seat_y + dy),
                     (x + leg_w / 2 + 0.005, 0.86 + dy * 0.6),
                     (x - leg_w / 2 + 0.005, 0.86 + dy * 0.6)])
    c.paint(leg, frame * (0.8 if i >= 2 else 1.0), c.flat(-0.3, 0, 1),
            _SATIN)
  back = c.polygon(_rounded([
      (0.5 - seat_w + 0.04, seat_y - depth),
      (0.5 - seat_w + 0.03, seat_y - depth - back_h),
      (0.5 + seat_w + 0.0, seat_y - depth - back_h),
      (0.5 + seat_w - 0.0, seat_y - depth)], rng.uniform(0.02, 0.08)))
  c.paint(back, _pattern(c, rng, cushion, p=(0.6, 0.2, 0.0, 0.2, 0.0)),
          c.inflate(back, 0.03, 0.8), _MATTE)
  seat = c.polygon(_chaikin(np.array([
      (0.5 - seat_w, seat_y + 0.02), (0.5 - seat_w + 0.04, seat_y - depth),
      (0.5 + seat_w + 0.02, seat_y - depth), (0.5 + seat_w, seat_y + 0.02)]),
                            2))
  c.paint(seat, cushion, c.flat(0, -1, 0.8), _MATTE)
  apron = c.polygon([(0.5 - seat_w, seat_y + 0.005),
                     (0.5 + seat_w, seat_y + 0.005),
                     (0.5 + seat_w, seat_y + 0.04),
                     (0.5 - seat_w, seat_y + 0.04)])
  c.paint(apron, frame, c.flat(-0.2, 0.1, 1), _SATIN)


def _watch(c: _Canvas, rng: np.random.Generator) -> None:
  r = rng.uniform(0.12, 0.17)
  strap_w = r * rng.uniform(0.75, 0.95)
  strap_col = _colour(rng, rng.choice(['neutral', 'muted']))
  strap = c.polygon(_rounded([
      (0.5 - strap_w, 0.12), (0.5 + strap_w, 0.12), (0.5 + strap_w, 0.88),
      (0.5 - strap_w, 0.88)], 0.03))
  c.paint(strap, strap_col, c.inflate(strap, 0.02, 1.0), _SATIN)
  for y in np.linspace(0.16, 0.3, 4).tolist() + np.linspace(
      0.7, 0.84, 4).tolist():  # Strap holes / links.
    hole = c.stroke([(0.5 - strap_w * 0.8, y), (0.5 + strap_w * 0.8, y)],
                    0.004)
    c.paint(hole, strap_col * 0.55, c.flat(), _MATTE)
  case_col = rng.choice([np.full(3, 0.8), np.array([0.85, 0.7, 0.4]),
                         np.full(3, 0.2)])
  case = c.ellipse((0.5, 0.5), (r, r))
  case_n = _normalize(np.stack([
      (c.xs / c.size - 0.5) / r * 0.8, (c.ys / c.size - 0.5) / r * 0.8,
      np.ones_like(c.xs)], -1))
  crown = c.polygon([(0.5 + r - 0.01, 0.485), (0.5 + r + 0.025, 0.485),
                     (0.5 + r + 0.025, 0.515), (0.5 + r - 0.01, 0.515)])
  c.paint(crown, case_col, c.flat(0, -0.5, 1), _METAL)
  c.paint(case, case_col, case_n, _METAL)
  dial_col = rng.choice([np.full(3, 0.95), np.full(3, 0.08), _colour(rng)])
  dial = c.ellipse((0.5, 0.5), (r * 0.82, r * 0.82))
  c.paint(dial, dial_col, c.flat(0, 0, 1), _GLOSSY)
  ink = np.full(3, 0.1) if dial_col.mean() > 0.5 else np.full(3, 0.92)
  for k in range(12):
    a = k * np.pi / 6
    inner = 0.62 if k % 3 else 0.52
    tick = c.stroke([(0.5 + np.sin(a) * r * inner, 0.5 - np.cos(a) * r * inner),
                     (0.5 + np.sin(a) * r * 0.72, 0.5 - np.cos(a) * r * 0.72)],
                    0.006 if k % 3 else 0.01)
    c.paint(tick, ink, c.flat(), _MATTE)
  for length, width in ((0.45, 0.012), (0.65, 0.008)):
    a = rng.uniform(0, 2 * np.pi)
    hand = c.stroke([(0.5, 0.5), (0.5 + np.sin(a) * r * length,
                                  0.5 - np.cos(a) * r * length)], width)
    c.paint(hand, ink, c.flat(), _SATIN)


_PRODUCTS: dict[str, Callable[[_Canvas, np.random.Generator], None]] = {
    'shoe': _shoe, 'handbag': _handbag, 'bottle': _bottle, 'mug': _mug,
    't_shirt': _t_shirt, 'box': _box, 'lamp': _lamp, 'chair': _chair,
    'watch': _watch,
}
# Flat-lay shots (seen from above) cast a drop shadow, not a floor shadow.
_FLAT_LAY = ('t_shirt', 'watch')


# ----------------------------------------------------------------------------
# Scene: background, pose, shadow.
# ----------------------------------------------------------------------------


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
  """Studio backdrop: white, light grey, soft gradient or light texture."""
  kind = rng.choice(['white', 'grey', 'gradient', 'texture'],
                    p=[0.35, 0.2, 0.25, 0.2])
  t = (np.arange(size, dtype=np.float32) + 0.5) / size
  yy, xx = t[:, None], t[None, :]
  if kind == 'white':
    base = np.full(3, rng.uniform(0.94, 1.0), np.float32)
    return base + 0.02 * (yy - 0.5)[..., None] * np.ones((1, size, 3))
  if kind == 'grey':
    v = rng.uniform(0.8, 0.92)
    r2 = (xx - 0.5) ** 2 + (yy - 0.45) ** 2
    tint = _hsv(rng.random(), rng.uniform(0.0, 0.05), 1.0)
    return (v + 0.1 * (0.4 - r2))[..., None] * tint
  if kind == 'gradient':
    a = _hsv(rng.random(), rng.uniform(0.03, 0.15), rng.uniform(0.88, 0.98))
    b = _hsv(rng.random(), rng.uniform(0.03, 0.15), rng.uniform(0.8, 0.95))
    angle = rng.uniform(0, 2 * np.pi)
    g = _smoothstep(0.5 + (xx - 0.5) * np.cos(angle) + (yy - 0.5) *
                    np.sin(angle))
    return a + (b - a) * g[..., None]
  # Light texture: paper grain / linen / marble-like veins at low contrast.
  base = _hsv(rng.random(), rng.uniform(0.0, 0.1), rng.uniform(0.86, 0.96))
  coarse = cv2.resize(rng.standard_normal((6, 6)).astype(np.float32),
                      (size, size), interpolation=cv2.INTER_CUBIC)
  fine = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(
      np.float32), (0, 0), max(0.6, size / 256))
  if rng.random() < 0.5:  # Linen weave.
    weave = 0.5 * (np.sin(xx * size * 1.4) + np.sin(yy * size * 1.4))
    tex = 0.012 * coarse + 0.01 * fine + 0.006 * weave
  else:  # Marble veins.
    veins = np.abs(np.sin(6 * (xx + 0.6 * yy) + 1.5 * coarse + 0.4 * fine))
    tex = 0.012 * coarse + 0.008 * fine - 0.02 * (1 - veins) ** 10
  return base + tex[..., None]


def _pose_matrix(rng: np.random.Generator, size: int,
                 flat_lay: bool) -> np.ndarray:
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


def _shadow(rng: np.random.Generator, alpha: np.ndarray, light: np.ndarray,
            flat_lay: bool) -> np.ndarray:
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
  m = np.float32([[1, skew * squash * 3, -skew * squash * 3 * bottom],
                  [0, squash, bottom * (1 - squash)]])
  floor = cv2.warpAffine(alpha, m, (size, size))
  floor = cv2.GaussianBlur(floor, (0, 0), size * 0.02)
  contact = np.zeros_like(alpha)
  cx, half = (cols[0] + cols[-1]) / 2, (cols[-1] - cols[0]) / 2
  cv2.ellipse(contact, (int(cx), int(bottom)), (int(half * 0.95) + 1,
                                                max(1, int(size * 0.012))),
              0, 0, 360, 1.0, -1, cv2.LINE_AA)
  contact = cv2.GaussianBlur(contact, (0, 0), size * 0.01)
  return np.clip(0.3 * floor + 0.35 * contact, 0, 0.6)


def render_photo(seed: tuple[int, ...], size: int,
                 category: str) -> np.ndarray:
  """Renders one product photo, uint8 [size, size, 3] RGB, from a seed."""
  rng = np.random.default_rng(seed)
  work = max(size, _MIN_RENDER_SIZE)
  light = _normalize(np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.9, -0.3),
                               rng.uniform(0.6, 1.0)]))
  canvas = _Canvas(work, light)
  _PRODUCTS[category](canvas, rng)
  flat_lay = category in _FLAT_LAY
  m = _pose_matrix(rng, work, flat_lay)
  layer = cv2.warpAffine(np.dstack([canvas.rgb, canvas.alpha]), m,
                         (work, work), flags=cv2.INTER_LINEAR)
  rgb, alpha = layer[..., :3], np.clip(layer[..., 3], 0, 1)
  # The layer was painted over black, i.e. premultiplied: recover the colour.
  rgb = rgb / np.maximum(alpha, 1e-4)[..., None]
  backdrop = _background(rng, work).astype(np.float32)
  backdrop *= 1.0 - _shadow(rng, alpha, light, flat_lay)[..., None]
  exposure = rng.uniform(0.96, 1.06)
  image = backdrop + (rgb * exposure - backdrop) * alpha[..., None]
  image = image_lib.resize(image, size, size)  # Area averaging: work >= size.
  return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def example_seed(split: str, index: int) -> tuple[int, ...]:
  """The seed of example `index` of `split`: the same on every machine."""
  return (zlib.crc32(split.encode()), index)


def render_example(split: str, index: int, size: int) -> dict[str, object]:
  """Renders example `index` of `split`: photo, every style, category, id."""
  category = CATEGORIES[index % len(CATEGORIES)]
  photo = render_photo(example_seed(split, index), size, category)
  example = {'id': index, 'category': category, 'photo': photo}
  for style in styles.RENDERERS:
    example[style] = styles.render(style, photo)
  return example


def _encoded_example(split: str, index: int, size: int) -> dict[str, object]:
  """`render_example` with the images PNG-encoded here with OpenCV, which
  spares TFDS its TensorFlow encoder (and importing TensorFlow)."""
  example = render_example(split, index, size)
  return {k: image_lib.encode_png(v) if isinstance(v, np.ndarray) else v
          for k, v in example.items()}


# ----------------------------------------------------------------------------
# TFDS builder.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class CatalogConfig(tfds.core.BuilderConfig):
  """Size of the rendered catalogue."""
  image_size: int = 256
  num_train: int = 4000
  num_test: int = 200


class SyntheticCatalog(tfds.core.GeneratorBasedBuilder):
  """Procedural product photos paired with their styled renderings."""

  # Bump when the scenes or the styles change (adding a style adds a feature).
  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {
      '1.0.0': 'Photos with pencil sketches.',
      '1.1.0': 'Adds the watercolor, oil and cartoon styles.',
  }
  # Target style -> the feature holding it.
  STYLE_FEATURES = {style: style for style in styles.RENDERERS}
  BUILDER_CONFIGS = [
      CatalogConfig(name='default', description='256x256, 4000/200.'),
      CatalogConfig(name='small', description='128x128, 4000/200, for CPU training.',
                    image_size=128),
      CatalogConfig(name='tiny', description='64x64, 64/16, for tests.',
                    image_size=64, num_train=64, num_test=16),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    shape = (self.builder_config.image_size,) * 2 + (3,)
    features = {
        'id': np.int64,
        'category': tfds.features.ClassLabel(names=CATEGORIES),
        'photo': tfds.features.Image(shape=shape, encoding_format='png'),
    }
    for feature in self.STYLE_FEATURES.values():
      features[feature] = tfds.features.Image(shape=shape,
                                              encoding_format='png')
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        description=__doc__,
        # Keep generation order: record i of a split is example (split, i).
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    cfg = self.builder_config
    return {'train': self._generate_examples('train', cfg.num_train),
            'test': self._generate_examples('test', cfg.num_test)}

  def _generate_examples(self, split: str, num: int) -> Iterator:
    # Threads, not processes: worker processes would have to be spawned (the
    # caller may hold TF/JAX threads, unsafe to fork), which re-imports the
    # caller's __main__ and breaks unguarded scripts. NumPy and OpenCV release
    # the GIL for most of the rendering. Each example depends only on
    # (split, index), so the output is the same as a serial build's.
    size = self.builder_config.image_size
    workers = (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
               else os.cpu_count() or 1)
    render = functools.partial(_encoded_example, split, size=size)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      for begin in range(0, num, 64):  # Chunks bound the memory held.
        indices = range(begin, min(num, begin + 64))
        yield from zip(indices, pool.map(render, indices))
