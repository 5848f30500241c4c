"""The products. Each drawer draws into a canvas, in fractions of its size,
roughly within [0.1, 0.9] x [0.1, 0.9], standing on y ~ 0.85 where it stands,
taking every random choice from the generator it is given.
"""

from typing import Callable

import cv2
import numpy as np

from shopstyle_jax.data.synthetic import canvas


def _shoe(c: canvas.Canvas, rng: np.random.Generator) -> None:
  boot = rng.random() < 0.3
  top = rng.uniform(0.2, 0.26) if boot else rng.uniform(0.4, 0.45)
  toe = rng.uniform(0.88, 0.92)
  throat = (0.33, 0.3) if boot else (0.36, top + 0.01)  # Tongue top.
  upper = [
    (0.11, 0.74),
    (0.1, 0.6),
    (0.12, top + 0.02),
    (0.15, top),
    (0.22, top + 0.01),
    (0.29, top + (0.0 if boot else 0.045)),
    throat,
    (0.5, 0.5),
    (0.64, 0.54),
    (toe - 0.1, 0.555),
    (toe - 0.03, 0.58),
    (toe + 0.02, 0.625),
    (toe + 0.035, 0.69),
    (toe + 0.025, 0.74),
  ]
  upper_col = canvas.random_colour(rng)
  albedo = canvas.pattern(c, rng, upper_col, p=(0.6, 0.12, 0.06, 0.1, 0.12))
  material = [canvas.MATTE, canvas.SATIN, canvas.GLOSSY][rng.integers(3)]
  mask = c.polygon(canvas.rounded(upper, 0.04))
  normals = c.inflate(mask, 0.05, 1.3)
  c.paint(mask, albedo, normals, material)
  if not boot:  # Collar opening.
    opening = c.ellipse((0.22, top + 0.03), (0.075, 0.02), 3)
    c.paint(opening * mask, upper_col * 0.25, c.flat(0, 0.4, 1))
  # Toe cap, heel counter and side stripe in a trim colour.
  trim = canvas.contrasting(rng, upper_col) if rng.random() < 0.6 else upper_col * 0.75
  toe_cap = c.polygon(
    canvas.rounded(
      [
        (toe - 0.16, 0.75),
        (toe - 0.14, 0.65),
        (toe - 0.04, 0.63),
        (toe + 0.03, 0.7),
        (toe + 0.03, 0.75),
      ],
      0.03,
    )
  )
  c.paint(toe_cap * mask, trim, normals, material)
  heel = c.polygon(canvas.rounded([(0.08, 0.76), (0.08, 0.55), (0.14, 0.53), (0.22, 0.76)], 0.03))
  c.paint(heel * mask, trim, normals, material)
  if rng.random() < 0.6:
    stripe = c.stroke(
      canvas.chaikin(np.array([(0.24, 0.7), (0.42, 0.66), (0.62, 0.57), (0.46, 0.64)]), 2), 0.022
    )
    c.paint(stripe * mask, trim, normals, canvas.SATIN)
  # Laces zig-zagging down the throat.
  lace_col = np.full(3, 0.92) if upper_col.mean() < 0.5 else np.full(3, 0.15)
  start, end = np.array(throat) + (0.0, 0.03), np.array([0.56, 0.53])
  count = 7 if boot else 4
  for t in np.linspace(0.0, 1.0, count):
    p = start + (end - start) * t
    lace = c.stroke([p + (-0.03, -0.012), p + (0.03, 0.02)], 0.011)
    c.paint(lace, lace_col, c.flat(0, -0.3, 1), canvas.SATIN)
    eyelet = c.ellipse(p + (-0.03, -0.012), (0.007, 0.007))
    c.paint(eyelet, upper_col * 0.4, c.flat(), canvas.METAL)
  # Sole with toe spring and a midsole line.
  sole_col = [np.full(3, 0.95), np.full(3, 0.93), np.full(3, 0.12), np.array([0.62, 0.45, 0.28])][
    rng.integers(4)
  ]
  thick = rng.uniform(0.05, 0.08)
  sole = c.polygon(
    canvas.rounded(
      [
        (0.085, 0.72),
        (toe + 0.03, 0.71),
        (toe + 0.05, 0.73 + thick * 0.4),
        (toe - 0.06, 0.73 + thick),
        (0.08, 0.735 + thick),
      ],
      0.02,
    )
  )
  sole_n = c.inflate(sole, 0.012, 1.0)
  c.paint(sole, sole_col, sole_n, canvas.SATIN)
  line = c.stroke([(0.09, 0.73 + thick * 0.55), (toe - 0.02, 0.73 + thick * 0.55)], 0.005)
  c.paint(line * sole, sole_col * 0.6, sole_n, canvas.MATTE)


def _handbag(c: canvas.Canvas, rng: np.random.Generator) -> None:
  w, h = rng.uniform(0.26, 0.36), rng.uniform(0.22, 0.32)
  taper = rng.uniform(0.0, 0.06)
  bottom = 0.84
  col = canvas.random_colour(rng)
  material = [canvas.SATIN, canvas.GLOSSY, canvas.MATTE][rng.integers(3)]
  # Handle behind the body.
  handle_w = w * rng.uniform(0.45, 0.7)
  handle = c.ellipse(
    (0.5, bottom - h + 0.01),
    (handle_w, rng.uniform(0.13, 0.2)),
    0,
    180,
    360,
    rng.uniform(0.018, 0.03),
  )
  c.paint(handle, col * 0.85, c.inflate(handle, 0.01, 1.0), material)
  body = np.array(
    [
      (0.5 - w + taper, bottom - h),
      (0.5 + w - taper, bottom - h),
      (0.5 + w, bottom),
      (0.5 - w, bottom),
    ]
  )
  mask = c.polygon(canvas.rounded(body, rng.uniform(0.03, 0.08)))
  albedo = canvas.pattern(c, rng, col, p=(0.5, 0.15, 0.1, 0.15, 0.1))
  normals = c.inflate(mask, 0.06, 1.2)
  c.paint(mask, albedo, normals, material)
  if rng.random() < 0.7:  # Flap with a clasp.
    depth = h * rng.uniform(0.35, 0.6)
    flap = np.array(
      [
        (0.5 - w + taper - 0.005, bottom - h - 0.005),
        (0.5 + w - taper + 0.005, bottom - h - 0.005),
        (0.5 + w - taper * 0.5, bottom - h + depth * 0.6),
        (0.5, bottom - h + depth),
        (0.5 - w + taper * 0.5, bottom - h + depth * 0.6),
      ]
    )
    flap_mask = c.polygon(canvas.rounded(flap, 0.03)) * mask
    c.paint(flap_mask, albedo * 0.9, c.inflate(flap_mask, 0.02, 1.0), material)
    clasp = c.ellipse((0.5, bottom - h + depth - 0.01), (0.022, 0.016))
    gold = np.array([0.85, 0.7, 0.35]) if rng.random() < 0.6 else np.full(3, 0.8)
    c.paint(clasp, gold, c.inflate(clasp, 0.008, 1.5), canvas.METAL)
  else:  # Zip line and pocket seam.
    zip_line = c.stroke(
      [(0.5 - w + taper + 0.03, bottom - h + 0.03), (0.5 + w - taper - 0.03, bottom - h + 0.03)],
      0.007,
    )
    c.paint(zip_line, col * 0.4, c.flat(), canvas.MATTE)
    seam = c.stroke(
      canvas.chaikin(
        np.array(
          [
            (0.5 - w * 0.6, bottom - h * 0.55),
            (0.5 + w * 0.6, bottom - h * 0.55),
            (0.5 + w * 0.6, bottom - 0.04),
            (0.5 - w * 0.6, bottom - 0.04),
          ]
        ),
        2,
      ),
      0.005,
      closed=True,
    )
    c.paint(seam * mask, col * 0.55, c.flat(), canvas.MATTE)


def _bottle(c: canvas.Canvas, rng: np.random.Generator) -> None:
  r = rng.uniform(0.09, 0.16)
  neck = r * rng.uniform(0.25, 0.45)
  top = rng.uniform(0.1, 0.2)
  shoulder = top + rng.uniform(0.12, 0.22)
  bottom = 0.86
  ys = np.array(
    [top, top + 0.06, shoulder - 0.06, shoulder, shoulder + 0.04, bottom - 0.02, bottom]
  )
  rs = np.array([neck, neck, neck * 1.1, r * 0.9, r, r, r * 0.94])
  mask, normals = c.revolve(0.5, ys, rs)
  glassy = rng.random() < 0.6
  col = canvas.random_colour(rng)
  c.paint(mask, col, normals, canvas.GLOSSY if glassy else canvas.SATIN)
  # Label band.
  if rng.random() < 0.8:
    l_top = shoulder + rng.uniform(0.06, 0.12)
    l_bot = bottom - rng.uniform(0.06, 0.14)
    label = mask * ((c.ys > l_top * c.size) & (c.ys < l_bot * c.size))
    label_col = canvas.contrasting(rng, col)
    albedo = canvas.pattern(c, rng, label_col, p=(0.5, 0.3, 0.1, 0.1, 0.0))
    c.paint(label.astype(np.float32), albedo, normals, canvas.MATTE)
    for k in range(rng.integers(1, 4)):  # "Text" lines.
      y = l_top + (l_bot - l_top) * (0.3 + 0.18 * k)
      half = r * rng.uniform(0.3, 0.6)
      line = c.stroke([(0.5 - half, y), (0.5 + half, y)], 0.012 if k == 0 else 0.006)
      c.paint(line * mask, canvas.contrasting(rng, label_col), normals, canvas.MATTE)
  # Cap.
  cap_h = rng.uniform(0.05, 0.09)
  cap_mask, cap_normals = c.revolve(
    0.5,
    np.array([top - cap_h, top - cap_h + 0.01, top + 0.02]),
    np.array([neck * 1.15, neck * 1.3, neck * 1.3]),
  )
  cap_col = rng.choice(
    [np.full(3, 0.1), np.full(3, 0.85), np.array([0.8, 0.65, 0.3]), canvas.random_colour(rng)]
  )
  c.paint(cap_mask, cap_col, cap_normals, canvas.METAL if rng.random() < 0.4 else canvas.SATIN)


def _mug(c: canvas.Canvas, rng: np.random.Generator) -> None:
  r = rng.uniform(0.15, 0.2)
  h = rng.uniform(0.3, 0.42)
  bottom, top = 0.84, 0.84 - h
  cx = 0.46
  col = canvas.random_colour(rng)
  material = canvas.GLOSSY if rng.random() < 0.7 else canvas.SATIN
  # Handle on the right.
  handle = c.ellipse((cx + r, top + h * 0.45), (r * 0.55, h * 0.3), 0, -90, 90, 0.035)
  c.paint(handle, col, c.inflate(handle, 0.012, 1.2), material)
  mask, normals = c.revolve(
    cx, np.array([top, bottom - 0.015, bottom]), np.array([r, r * 0.97, r * 0.92])
  )
  albedo = canvas.pattern(c, rng, col, p=(0.5, 0.25, 0.1, 0.05, 0.1))
  c.paint(mask, albedo, normals, material)
  # Rim and the dark inside seen from slightly above.
  rim = c.ellipse((cx, top), (r, r * 0.22))
  c.paint(rim, col, c.flat(0, -1.0, 0.6), material)
  inside = c.ellipse((cx, top + r * 0.01), (r * 0.9, r * 0.18))
  interior = col * 0.45 if rng.random() < 0.5 else np.full(3, 0.5)
  c.paint(inside, interior, c.flat(0, 0.6, 1), canvas.SATIN)


def _t_shirt(c: canvas.Canvas, rng: np.random.Generator) -> None:
  w = rng.uniform(0.17, 0.21)  # Half width of the body.
  shoulder = w + rng.uniform(0.0, 0.03)
  top, bottom = 0.14, rng.uniform(0.84, 0.88)
  neck_w = rng.uniform(0.07, 0.09)
  if rng.random() < 0.25:  # Long sleeves.
    sleeve = [
      (shoulder + 0.09, 0.3),
      (shoulder + 0.17, 0.74),
      (shoulder + 0.08, 0.76),
      (w + 0.01, 0.4),
    ]
  else:
    sleeve = [(shoulder + 0.14, 0.31), (shoulder + 0.09, 0.42), (w + 0.005, 0.37)]
  right = [(neck_w, top), (shoulder, top + 0.05)] + sleeve + [(w, bottom)]
  left = [(-x, y) for x, y in reversed(right)]
  outline = np.array(right + left) + (0.5, 0.0)
  mask = c.polygon(canvas.rounded(outline, 0.02))
  col = canvas.random_colour(rng)
  albedo = canvas.pattern(c, rng, col, p=(0.4, 0.3, 0.1, 0.15, 0.05))
  # Soft folds: low-frequency noise in the height field.
  noise = rng.standard_normal((8, 8)).astype(np.float32)
  folds = cv2.resize(noise, (c.size, c.size), interpolation=cv2.INTER_CUBIC)
  height = cv2.GaussianBlur(mask, (0, 0), 0.02 * c.size) + 0.02 * folds
  gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) / 8.0
  gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) / 8.0
  k = 0.05 * c.size
  normals = canvas.normalize(np.stack([-k * gx, -k * gy, np.ones_like(gx)], -1))
  c.paint(mask, albedo, normals, canvas.MATTE)
  # Neckline: back of the collar, then the rib.
  neck = c.ellipse((0.5, top), (neck_w, 0.05), 0, 0, 180)
  c.paint(neck, col * 0.55, c.flat(0, 0.5, 1), canvas.MATTE)
  rib = c.ellipse((0.5, top), (neck_w + 0.008, 0.06), 0, 0, 180) - neck
  c.paint(np.clip(rib, 0, 1), col * 0.95, c.flat(0, -0.3, 1), canvas.MATTE)
  # Hem stitches.
  y = bottom - 0.025
  hem = c.stroke([(0.5 - w + 0.02, y), (0.5 + w - 0.02, y)], 0.004)
  c.paint(hem * mask, col * 0.6, c.flat(), canvas.MATTE)
  if rng.random() < 0.4:  # Chest print.
    logo = c.ellipse((0.5, top + 0.22), (0.06, 0.04))
    c.paint(logo, canvas.contrasting(rng, col), normals, canvas.MATTE)


def _box(c: canvas.Canvas, rng: np.random.Generator) -> None:
  w, d = rng.uniform(0.26, 0.38), rng.uniform(0.12, 0.22)
  h = rng.uniform(0.22, 0.42)
  slant = rng.uniform(0.08, 0.14)  # How much of the top is seen.
  x0, base = 0.5 - (w + d * 0.8) / 2, 0.85
  fl, fr = np.array([x0, base]), np.array([x0 + w, base])
  side = np.array([d * 0.8, -d * slant * 4])
  up = np.array([0, -h])
  col = canvas.random_colour(rng)
  albedo = canvas.pattern(c, rng, col, p=(0.55, 0.2, 0.1, 0.1, 0.05))
  material = canvas.SATIN if rng.random() < 0.5 else canvas.MATTE
  front = c.polygon([fl, fr, fr + up, fl + up])
  right = c.polygon([fr, fr + side, fr + side + up, fr + up])
  top = c.polygon([fl + up, fr + up, fr + side + up, fl + side + up])
  c.paint(front, albedo, c.flat(-0.25, 0.0, 1.0), material)
  c.paint(right, albedo, c.flat(1.0, 0.0, 0.35), material)
  c.paint(top, albedo, c.flat(0.0, -1.0, 0.45), material)
  if rng.random() < 0.5:  # Gift ribbon.
    ribbon_col = canvas.contrasting(rng, col)
    mid = fl + np.array([w / 2, 0])
    band = c.stroke([mid, mid + up, mid + up + side], 0.03)
    c.paint(band * np.clip(front + top, 0, 1), ribbon_col, c.flat(-0.2, -0.3, 1), canvas.SATIN)
    band2 = c.stroke([fr + up * 0.5, fr + side + up * 0.5], 0.03)
    c.paint(band2 * right, ribbon_col, c.flat(1, 0, 0.4), canvas.SATIN)
  elif rng.random() < 0.7:  # Printed label.
    label = c.polygon(
      [
        fl + (w * 0.2, -h * 0.3),
        fl + (w * 0.8, -h * 0.3),
        fl + (w * 0.8, -h * 0.65),
        fl + (w * 0.2, -h * 0.65),
      ]
    )
    c.paint(label, canvas.contrasting(rng, col), c.flat(-0.25, 0, 1), canvas.MATTE)


def _lamp(c: canvas.Canvas, rng: np.random.Generator) -> None:
  shade_top, shade_h = rng.uniform(0.1, 0.18), rng.uniform(0.2, 0.28)
  r_top, r_bot = rng.uniform(0.07, 0.13), rng.uniform(0.16, 0.22)
  base_y = 0.86
  metal = np.array([0.85, 0.7, 0.4]) if rng.random() < 0.4 else canvas.random_colour(rng, 'neutral')
  stem, stem_n = c.revolve(
    0.5, np.array([shade_top + shade_h - 0.02, base_y - 0.03]), np.array([0.012, 0.012])
  )
  c.paint(stem, metal, stem_n, canvas.METAL)
  base, base_n = c.revolve(
    0.5,
    np.array([base_y - 0.05, base_y - 0.035, base_y]),
    np.array([0.03, rng.uniform(0.08, 0.12), 0.11]),
  )
  c.paint(base, metal, base_n, canvas.METAL)
  shade, shade_n = c.revolve(
    0.5, np.array([shade_top, shade_top + shade_h]), np.array([r_top, r_bot])
  )
  shade_col = canvas.random_colour(rng)
  albedo = canvas.pattern(c, rng, shade_col, p=(0.6, 0.2, 0.1, 0.05, 0.05))
  c.paint(shade, albedo, shade_n, canvas.MATTE)
  rim = c.stroke([(0.5 - r_bot, shade_top + shade_h), (0.5 + r_bot, shade_top + shade_h)], 0.008)
  c.paint(rim, shade_col * 0.6, c.flat(), canvas.MATTE)


def _chair(c: canvas.Canvas, rng: np.random.Generator) -> None:
  seat_y, seat_w = rng.uniform(0.52, 0.58), rng.uniform(0.18, 0.24)
  depth = rng.uniform(0.05, 0.08)
  back_h = rng.uniform(0.28, 0.36)
  wood = canvas.hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.35, 0.75))
  frame = wood if rng.random() < 0.6 else canvas.random_colour(rng)
  cushion = canvas.random_colour(rng) if rng.random() < 0.6 else frame
  leg_w = rng.uniform(0.018, 0.03)
  legs = [
    (0.5 - seat_w + 0.02, 0.0),
    (0.5 + seat_w - 0.02, 0.0),
    (0.5 - seat_w + 0.05, -depth),
    (0.5 + seat_w + 0.01, -depth),
  ]
  for i in (2, 3, 0, 1):  # Back legs first.
    x, dy = legs[i]
    leg = c.polygon(
      [
        (x - leg_w / 2, seat_y + dy),
        (x + leg_w / 2, seat_y + dy),
        (x + leg_w / 2 + 0.005, 0.86 + dy * 0.6),
        (x - leg_w / 2 + 0.005, 0.86 + dy * 0.6),
      ]
    )
    c.paint(leg, frame * (0.8 if i >= 2 else 1.0), c.flat(-0.3, 0, 1), canvas.SATIN)
  back = c.polygon(
    canvas.rounded(
      [
        (0.5 - seat_w + 0.04, seat_y - depth),
        (0.5 - seat_w + 0.03, seat_y - depth - back_h),
        (0.5 + seat_w + 0.0, seat_y - depth - back_h),
        (0.5 + seat_w - 0.0, seat_y - depth),
      ],
      rng.uniform(0.02, 0.08),
    )
  )
  c.paint(
    back,
    canvas.pattern(c, rng, cushion, p=(0.6, 0.2, 0.0, 0.2, 0.0)),
    c.inflate(back, 0.03, 0.8),
    canvas.MATTE,
  )
  seat = c.polygon(
    canvas.chaikin(
      np.array(
        [
          (0.5 - seat_w, seat_y + 0.02),
          (0.5 - seat_w + 0.04, seat_y - depth),
          (0.5 + seat_w + 0.02, seat_y - depth),
          (0.5 + seat_w, seat_y + 0.02),
        ]
      ),
      2,
    )
  )
  c.paint(seat, cushion, c.flat(0, -1, 0.8), canvas.MATTE)
  apron = c.polygon(
    [
      (0.5 - seat_w, seat_y + 0.005),
      (0.5 + seat_w, seat_y + 0.005),
      (0.5 + seat_w, seat_y + 0.04),
      (0.5 - seat_w, seat_y + 0.04),
    ]
  )
  c.paint(apron, frame, c.flat(-0.2, 0.1, 1), canvas.SATIN)


def _watch(c: canvas.Canvas, rng: np.random.Generator) -> None:
  r = rng.uniform(0.12, 0.17)
  strap_w = r * rng.uniform(0.75, 0.95)
  strap_col = canvas.random_colour(rng, rng.choice(['neutral', 'muted']))
  strap = c.polygon(
    canvas.rounded(
      [(0.5 - strap_w, 0.12), (0.5 + strap_w, 0.12), (0.5 + strap_w, 0.88), (0.5 - strap_w, 0.88)],
      0.03,
    )
  )
  c.paint(strap, strap_col, c.inflate(strap, 0.02, 1.0), canvas.SATIN)
  for y in (
    np.linspace(0.16, 0.3, 4).tolist() + np.linspace(0.7, 0.84, 4).tolist()
  ):  # Strap holes / links.
    hole = c.stroke([(0.5 - strap_w * 0.8, y), (0.5 + strap_w * 0.8, y)], 0.004)
    c.paint(hole, strap_col * 0.55, c.flat(), canvas.MATTE)
  case_col = rng.choice([np.full(3, 0.8), np.array([0.85, 0.7, 0.4]), np.full(3, 0.2)])
  case = c.ellipse((0.5, 0.5), (r, r))
  case_n = canvas.normalize(
    np.stack(
      [(c.xs / c.size - 0.5) / r * 0.8, (c.ys / c.size - 0.5) / r * 0.8, np.ones_like(c.xs)], -1
    )
  )
  crown = c.polygon(
    [
      (0.5 + r - 0.01, 0.485),
      (0.5 + r + 0.025, 0.485),
      (0.5 + r + 0.025, 0.515),
      (0.5 + r - 0.01, 0.515),
    ]
  )
  c.paint(crown, case_col, c.flat(0, -0.5, 1), canvas.METAL)
  c.paint(case, case_col, case_n, canvas.METAL)
  dial_col = rng.choice([np.full(3, 0.95), np.full(3, 0.08), canvas.random_colour(rng)])
  dial = c.ellipse((0.5, 0.5), (r * 0.82, r * 0.82))
  c.paint(dial, dial_col, c.flat(0, 0, 1), canvas.GLOSSY)
  ink = np.full(3, 0.1) if dial_col.mean() > 0.5 else np.full(3, 0.92)
  for k in range(12):
    a = k * np.pi / 6
    inner = 0.62 if k % 3 else 0.52
    tick = c.stroke(
      [
        (0.5 + np.sin(a) * r * inner, 0.5 - np.cos(a) * r * inner),
        (0.5 + np.sin(a) * r * 0.72, 0.5 - np.cos(a) * r * 0.72),
      ],
      0.006 if k % 3 else 0.01,
    )
    c.paint(tick, ink, c.flat(), canvas.MATTE)
  for length, width in ((0.45, 0.012), (0.65, 0.008)):
    a = rng.uniform(0, 2 * np.pi)
    hand = c.stroke(
      [(0.5, 0.5), (0.5 + np.sin(a) * r * length, 0.5 - np.cos(a) * r * length)], width
    )
    c.paint(hand, ink, c.flat(), canvas.SATIN)


# Category -> drawer. The order is the catalogue's label order, and example i
# shows category i % len(CATEGORIES): append only.
PRODUCTS: dict[str, Callable[[canvas.Canvas, np.random.Generator], None]] = {
  'shoe': _shoe,
  'handbag': _handbag,
  'bottle': _bottle,
  'mug': _mug,
  't_shirt': _t_shirt,
  'box': _box,
  'lamp': _lamp,
  'chair': _chair,
  'watch': _watch,
}
CATEGORIES = tuple(PRODUCTS)
# Flat-lay shots (seen from above) cast a drop shadow, not a floor shadow.
FLAT_LAY = ('t_shirt', 'watch')
