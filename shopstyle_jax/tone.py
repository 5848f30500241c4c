"""Global tone maps from a photo's luminance: pure NumPy, fitted once on the host.

- `fit_tone_curve`: the best monotone map from luminance to a target, fitted on
  true pairs (the baseline a learnt style must beat).
- `match_histogram`: the monotone map that gives the photos' luminance the style
  images' value distribution (histogram specification), fitted on unpaired sets:
  the target of the unpaired tone prior (`config.loss.tone_weight`).
"""

import numpy as np
import scipy.optimize

from shopstyle_jax import images as image_lib

_LUMA = np.float32([0.299, 0.587, 0.114])  # Rec. 601, as the renderers' luminance.


def luminance_levels(photos: np.ndarray) -> np.ndarray:
  """[..., 3] photos in [-1, 1] -> their Rec. 601 luminance levels, int 0..255."""
  rgb = image_lib.model_to_uint8(np.asarray(photos)).astype(np.float32)
  return np.clip(np.rint(rgb @ _LUMA), 0, 255).astype(np.int64)


def fit_tone_curve(photos: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """The global tone-curve baseline: per output channel, the monotone map from a
  photo's luminance level to the target's value with the least squared error over
  the given pairs (isotonic regression, scipy's pool-adjacent-violators, rising or
  falling, whichever fits better). A per-pixel filter fitted on true pairs, which an
  unpaired method never sees: what a learnt style must beat.

  Args:
    photos, targets: [N, H, W, 3] in [-1, 1].
  Returns:
    float32 [256, 3]: the output, in [-1, 1], for each luminance level.
  """
  levels = luminance_levels(photos).ravel()
  counts = np.bincount(levels, minlength=256).astype(np.float64)
  used = counts > 0
  curve = np.zeros((256, 3), np.float32)
  for c in range(3):
    sums = np.bincount(
      levels, weights=np.asarray(targets[..., c], np.float64).ravel(), minlength=256
    )
    means = sums[used] / counts[used]
    best = None
    for increasing in (True, False):
      fit = scipy.optimize.isotonic_regression(means, weights=counts[used], increasing=increasing).x
      error = float(np.sum(counts[used] * (fit - means) ** 2))
      if best is None or error < best[0]:
        best = (error, fit)
    # Levels no photo had take their nearest fitted neighbour's value (still monotone).
    curve[:, c] = np.interp(np.arange(256), np.flatnonzero(used), best[1])
  return curve


def match_histogram(photos: np.ndarray, styles: np.ndarray) -> np.ndarray:
  """Histogram specification without pairs: per output channel, the rising map
  that sends luminance level l to the style images' value at the quantile l's
  photo pixels occupy (the middle of l's share of the photos' cumulative
  histogram), so that mapped photos take the style images' value distribution.
  Uses no pairing between `photos` and `styles`, which may differ in number and size.

  Args:
    photos: [..., 3] in [-1, 1]; styles: [..., 3] in [-1, 1].
  Returns:
    float32 [256, 3]: the output, in [-1, 1], for each luminance level.
  """
  levels = luminance_levels(photos).ravel()
  if levels.size == 0 or np.asarray(styles).size == 0:
    raise ValueError('match_histogram needs at least one photo pixel and one style pixel.')
  cdf = np.cumsum(np.bincount(levels, minlength=256)) / levels.size
  middle = (np.concatenate([[0.0], cdf[:-1]]) + cdf) / 2
  values = np.asarray(styles, np.float32).reshape(-1, 3)
  return np.stack([np.quantile(values[:, c], middle) for c in range(3)], axis=-1).astype(np.float32)


def apply_curve(curve: np.ndarray, photos: np.ndarray) -> np.ndarray:
  """A [256, 3] curve applied to [..., 3] photos in [-1, 1] (by luminance level)."""
  return curve[luminance_levels(photos)]
