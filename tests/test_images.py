"""Tests of the one image stack: conversions, resize, PNG records, the reader's options."""

import struct
import subprocess
import sys
import zlib

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from shopstyle_jax import images as image_lib


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3)).astype(np.uint8), (0, 0), 2)


def test_conversions_are_one_definition_for_numpy_and_jax():
  pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
  model = image_lib.uint8_to_model(pixels)
  assert model.dtype == np.float32 and model.min() == -1.0 and model.max() == 1.0
  np.testing.assert_array_equal(image_lib.model_to_uint8(model), pixels)  # Round trip.
  # XLA may divide by multiplying with the reciprocal: within an ulp.
  np.testing.assert_allclose(image_lib.uint8_to_model(jnp.asarray(pixels)), model, atol=1e-6)
  np.testing.assert_array_equal(jax.jit(image_lib.model_to_uint8)(jnp.asarray(model)), pixels)
  np.testing.assert_array_equal(
    image_lib.model_to_uint8([-3.0, -1.0, 0.0, 0.999, 2.0]), [0, 0, 128, 255, 255]
  )  # Clipped, rounded to nearest.
  np.testing.assert_allclose(image_lib.model_to_pixels(model), pixels, atol=1e-4)  # Unrounded.


def test_one_16_bit_rounding():
  deep = np.arange(65536, dtype=np.uint16).reshape(256, 256)
  np.testing.assert_array_equal(
    image_lib.to_rgb_uint8(deep)[..., 0], np.round(deep / 257.0).astype(np.uint8)
  )
  assert image_lib.to_rgb_uint8(deep).dtype == np.uint8


def test_resize_one_image_or_a_batch():
  image = _texture(40, 60)
  assert image_lib.resize(image, 40, 60) is image
  small = image_lib.resize(image, 20, 30)
  np.testing.assert_array_equal(small, cv2.resize(image, (30, 20), interpolation=cv2.INTER_AREA))
  big = image_lib.resize(image, 80, 120)
  np.testing.assert_array_equal(big, cv2.resize(image, (120, 80), interpolation=cv2.INTER_CUBIC))
  batch = image_lib.resize(np.stack([image, image[::-1]]).astype(np.float32), 20, 30)
  assert batch.shape == (2, 20, 30, 3)
  np.testing.assert_allclose(batch[0], small, atol=0.5)


def test_png_records_keep_the_catalogues_bytes():
  image = _texture(24, 32)
  data = image_lib.encode_png(image)
  assert data == cv2.imencode('.png', np.ascontiguousarray(image[..., ::-1]))[1].tobytes()
  np.testing.assert_array_equal(image_lib.decode_png(data), image)
  jpeg = image_lib.encode_jpeg(image, 95)
  assert np.abs(image_lib.read_rgb(jpeg).astype(int) - image).mean() < 3


def test_read_image_takes_bytes_and_says_why(tmp_path):
  path = tmp_path / 'a.png'
  Image.fromarray(_texture(8, 12)).save(path)
  np.testing.assert_array_equal(
    image_lib.read_image(path.read_bytes()), image_lib.read_image(str(path))
  )
  with pytest.raises(image_lib.ImageReadError, match='^<bytes>: not a readable image') as e:
    image_lib.read_image(b'junk')
  assert e.value.reason.startswith('not a readable image')


def _png_with_orientation(data: bytes, orientation: int) -> bytes:
  """A PNG with an eXIf chunk (Pillow cannot write 16-bit colour PNGs)."""
  exif = Image.Exif()
  exif[0x0112] = orientation
  payload = exif.tobytes()[6:]  # Without the 'Exif\0\0' header.
  chunk = (
    struct.pack('>I', len(payload))
    + b'eXIf'
    + payload
    + struct.pack('>I', zlib.crc32(b'eXIf' + payload))
  )
  return data[:33] + chunk + data[33:]  # After the signature and IHDR.


@pytest.mark.parametrize('orientation', [3, 6, 7])
def test_16_bit_png_turned_as_exif_transpose_turns(tmp_path, orientation):
  rgb = _texture(6, 10)
  rgb16 = rgb.astype(np.uint16) * 256 + 77
  data = cv2.imencode('.png', rgb16[..., ::-1])[1].tobytes()
  got = image_lib.read_image(_png_with_orientation(data, orientation))
  assert got.dtype == np.uint16
  image = Image.fromarray(rgb)
  exif = image.getexif()
  exif[0x0112] = orientation
  path = tmp_path / 'eight.png'
  image.save(path, exif=exif.tobytes())
  np.testing.assert_array_equal(got >> 8, image_lib.read_image(str(path)))


def test_draft_decoding_is_explicit_and_sized_upright(tmp_path):
  image = Image.fromarray(_texture(160, 320))
  plain = tmp_path / 'plain.jpg'
  image.save(plain, quality=90)
  assert image_lib.read_image(str(plain)).shape == (160, 320, 3)  # Off by default.
  assert image_lib.read_image(str(plain), draft=(64, 32)).shape == (40, 80, 3)  # 1/4.
  exif = image.getexif()
  exif[0x0112] = 6  # Viewed 160 wide and 320 high.
  turned = tmp_path / 'turned.jpg'
  image.save(turned, quality=90, exif=exif.tobytes())
  assert image_lib.read_image(str(turned), draft=(150, 40)).shape == (320, 160, 3)
  assert image_lib.read_image(str(turned), draft=(70, 40)).shape == (160, 80, 3)


@pytest.mark.slow
def test_import_needs_only_numpy():
  code = (
    'import sys; import shopstyle_jax.images; '
    'print(sorted(m for m in ("PIL", "cv2", "jax") if m in sys.modules))'
  )
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == '[]'


def test_over_white_rounds_once():
  rgba = np.array([[[0, 100, 200, 0], [0, 100, 200, 128], [0, 100, 200, 255]]], np.uint8)
  np.testing.assert_array_equal(
    image_lib.over_white(rgba)[0], [[255, 255, 255], [127, 177, 227], [0, 100, 200]]
  )
  deep = image_lib.over_white(rgba.astype(np.uint16) * 257)
  assert deep.dtype == np.uint16
  np.testing.assert_array_equal(deep[0, [0, 2]], [[65535] * 3, [0, 25700, 51400]])
