"""Colour steps on the host: luminance transfer (`preserve_color`) and the CIEDE2000
colour difference `evaluate` reports.

Images are float32 [..., H, W, 3] sRGB in [0, 1]. OpenCV does the Lab
conversions (imported when called: exported stylizers need it only for these
options), scikit-image the CIEDE2000 formula.
"""

import numpy as np

# Bisection steps that shrink an out-of-gamut colour's chroma until it fits:
# the lightness stays the stylized one (2^-10 of the chroma is far below a level).
_GAMUT_STEPS = 10


def to_lab(rgb: np.ndarray) -> np.ndarray:
  """sRGB [..., 3] in [0, 1] -> CIE Lab (D65; L in [0, 100]), float32."""
  import cv2  # pylint: disable=g-import-not-at-top

  rgb = np.ascontiguousarray(rgb, np.float32)
  flat = rgb.reshape(-1, 1, 3)
  return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(rgb.shape)


def from_lab(lab: np.ndarray) -> np.ndarray:
  """CIE Lab -> sRGB [..., 3], float32, not clipped."""
  import cv2  # pylint: disable=g-import-not-at-top

  lab = np.ascontiguousarray(lab, np.float32)
  return cv2.cvtColor(lab.reshape(-1, 1, 3), cv2.COLOR_Lab2RGB).reshape(lab.shape)


def _in_gamut(rgb: np.ndarray) -> np.ndarray:
  return np.all((rgb >= 0.0) & (rgb <= 1.0), axis=-1)


def transfer_luminance(photo: np.ndarray, stylized: np.ndarray) -> np.ndarray:
  """The stylized image's Lab lightness with the photo's a and b (Gatys et al.
  2016, "Preserving color in neural artistic style transfer"): the photo's
  colours, the style's strokes and shading. Colours that the new lightness
  puts outside sRGB lose chroma (by bisection) rather than lightness.

  Args:
    photo, stylized: float32 [..., H, W, 3] sRGB in [0, 1], the same shape.
  Returns:
    float32 [..., H, W, 3] in [0, 1].
  """
  lightness = to_lab(np.clip(stylized, 0.0, 1.0))[..., :1]
  chroma = to_lab(np.clip(photo, 0.0, 1.0))[..., 1:]
  out = from_lab(np.concatenate([lightness, chroma], -1))
  bad = ~_in_gamut(out)
  if bad.any():
    light, ab = lightness[bad], chroma[bad]
    low, high = np.zeros(len(ab), np.float32), np.ones(len(ab), np.float32)
    for _ in range(_GAMUT_STEPS):
      mid = (low + high) / 2
      fits = _in_gamut(from_lab(np.concatenate([light, ab * mid[:, None]], -1)))
      low, high = np.where(fits, mid, low), np.where(fits, high, mid)
    out[bad] = from_lab(np.concatenate([light, ab * low[:, None]], -1))
  return np.clip(out, 0.0, 1.0)


def ciede2000(a: np.ndarray, b: np.ndarray, lightness: bool = True) -> np.ndarray:
  """Per-pixel CIEDE2000 difference of two uint8 or [0, 1] sRGB images [..., 3]
  (scikit-image's `deltaE_ciede2000` on their Lab values). `lightness=False`
  drops its lightness term (kL -> infinity), leaving the chroma and hue terms:
  how far the colours moved whatever the lightness did."""
  from skimage import color  # pylint: disable=g-import-not-at-top

  def unit(x):
    x = np.asarray(x)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)

  k_l = 1.0 if lightness else np.inf
  return color.deltaE_ciede2000(to_lab(unit(a)), to_lab(unit(b)), kL=k_l)


def median_ciede2000(
  photo: np.ndarray, output: np.ndarray, mask: np.ndarray, lightness: bool = True
) -> float:
  """Median CIEDE2000 between photo and output over the product's pixels (mask >
  0.5; all pixels when the mask is empty): how far a style moved its colours
  (`lightness=False`: chroma and hue only, see `ciede2000`)."""
  delta = ciede2000(photo, output, lightness)
  chosen = np.asarray(mask) > 0.5
  return float(np.median(delta[chosen] if chosen.any() else delta))
