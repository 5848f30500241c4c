"""Host-side image conversions shared by training, inference and export.

Images live in three forms: uint8 [0, 255] on disk and in user code, float32
[-1, 1] for the networks, and float32 [0, 1] for metrics.
"""

import numpy as np


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
  """Returns uint8 [..., H, W, 3]: grayscale expanded, alpha dropped, 16-bit and
  float [0, 1] images converted. Raises ValueError on what cannot be an image."""
  image = np.asarray(image)
  if image.ndim == 2 or (image.ndim >= 3 and image.shape[-1] in (1, 2) and image.ndim in (3, 4)):
    if image.ndim == 2:
      image = image[..., None]
    image = np.repeat(image[..., :1], 3, axis=-1)  # gray (+alpha) -> RGB
  if image.ndim not in (3, 4) or image.shape[-1] not in (3, 4):
    raise ValueError(f'Expected an image [H,W], [H,W,1|3|4] or a batch [N,H,W,3|4]; got shape '
                     f'{image.shape}.')
  image = image[..., :3]
  if image.shape[-2] == 0 or image.shape[-3] == 0:
    raise ValueError(f'Image has zero size: shape {image.shape}.')
  if image.dtype == np.uint8:
    return image
  if image.dtype == np.uint16:
    return (image.astype(np.uint32) * 255 + 32767) // 65535
  if np.issubdtype(image.dtype, np.floating):
    if not np.all(np.isfinite(image)):
      raise ValueError('Float image contains NaN or Inf.')
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
      raise ValueError(f'Float images must be in [0, 1] (got values in [{lo:.3g}, {hi:.3g}]); '
                       'pass uint8 [0, 255] or scale to [0, 1].')
    return np.round(image * 255.0).astype(np.uint8)
  if np.issubdtype(image.dtype, np.integer) or image.dtype == bool:
    raise ValueError(f'Unsupported integer image dtype {image.dtype}; pass uint8 or uint16.')
  raise ValueError(f'Unsupported image dtype {image.dtype}.')


def uint8_to_model(image: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return image.astype(np.float32) / 127.5 - 1.0


def model_to_uint8(image: np.ndarray) -> np.ndarray:
  """float [-1, 1] -> uint8, rounding to nearest (values outside are clipped)."""
  return np.round((np.clip(np.asarray(image, np.float32), -1.0, 1.0) + 1.0) * 127.5).astype(
      np.uint8)


def adjust(image, brightness: float = 0.0, contrast: float = 1.0):
  """The reference method's post-processing on [-1, 1] images: contrast scales
  around mid-grey (0), brightness adds; works on NumPy and JAX arrays."""
  if brightness == 0.0 and contrast == 1.0:
    return image
  return image * contrast + brightness


def padding(height: int, width: int, factor: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """Reflection padding that brings H and W to multiples of `factor`, split
  evenly between the two sides (the extra pixel, if any, after)."""
  def split(n):
    total = -n % factor
    return total // 2, total - total // 2
  return split(height), split(width)


def pad_to_multiple(images: np.ndarray, factor: int) -> tuple[np.ndarray, tuple]:
  """Pads a [N, H, W, C] batch by reflection; returns it and the padding used."""
  (top, bottom), (left, right) = pad = padding(images.shape[1], images.shape[2], factor)
  if top or bottom or left or right:
    # NumPy's 'reflect' repeats the reflection when the pad exceeds the image.
    images = np.pad(images, ((0, 0), (top, bottom), (left, right), (0, 0)), mode='reflect')
  return images, pad


def crop(images: np.ndarray, pad: tuple) -> np.ndarray:
  (top, bottom), (left, right) = pad
  return images[:, top:images.shape[1] - bottom, left:images.shape[2] - right]
