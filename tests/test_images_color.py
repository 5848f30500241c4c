"""Colour management and metadata of the image stack: ICC profiles converted to
sRGB on read, outputs tagged sRGB with the photo's DPI and without GPS or
personal EXIF, RGBA outputs."""

import io
import os

import numpy as np
import pytest
from PIL import Image
from PIL import ImageCms

from shopstyle_jax import images as image_lib

ADOBE_RGB = os.path.join(
  os.path.dirname(__file__), 'fixtures', 'icc', 'compatibleWithAdobeRGB1998.icc'
)


def _photo(seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (24, 32, 3)).astype(np.uint8)


def _encoded(image: np.ndarray, fmt: str, **params) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, fmt, **params)
  return buffer.getvalue()


def _adobe() -> bytes:
  with open(ADOBE_RGB, 'rb') as f:
    return f.read()


@pytest.mark.parametrize('fmt', ['PNG', 'WEBP', 'TIFF'])
def test_non_srgb_profile_is_converted_to_srgb(fmt):
  photo = _photo()
  params = {'lossless': True} if fmt == 'WEBP' else {}
  read = image_lib.read_image(_encoded(photo, fmt, icc_profile=_adobe(), **params))
  # What LittleCMS gives for Adobe RGB -> sRGB, computed independently of the reader.
  expected = ImageCms.profileToProfile(
    Image.fromarray(photo),
    ImageCms.ImageCmsProfile(io.BytesIO(_adobe())),
    ImageCms.createProfile('sRGB'),
    renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
  )
  np.testing.assert_array_equal(read, np.asarray(expected))
  assert np.abs(read.astype(int) - photo).max() > 20  # Saturated colours really moved.
  # Adobe RGB's green is beyond sRGB's: a mid green comes out more saturated
  # in sRGB numbers, not washed out as an untagged read would show it.
  green = image_lib.read_image(
    _encoded(np.full((4, 4, 3), (60, 160, 60), np.uint8), fmt, icc_profile=_adobe(), **params)
  )[0, 0].astype(int)
  assert green[1] - green[0] > 100 - 5


def test_untagged_and_srgb_photos_keep_their_pixels():
  photo = _photo(1)
  for params in ({}, {'icc_profile': image_lib.srgb_profile()}):
    np.testing.assert_array_equal(image_lib.read_image(_encoded(photo, 'PNG', **params)), photo)


def test_rgba_with_profile_keeps_its_alpha_and_keep_alpha_reads_it():
  photo = np.dstack([_photo(2), np.arange(24 * 32, dtype=np.uint8).reshape(24, 32)])
  data = _encoded(photo, 'PNG', icc_profile=_adobe())
  rgba = image_lib.read_image(data, keep_alpha=True)
  assert rgba.shape == (24, 32, 4)
  np.testing.assert_array_equal(rgba[..., 3], photo[..., 3])
  assert image_lib.read_image(data).shape == (24, 32, 3)  # Composited over white by default.


def test_outputs_are_tagged_srgb_keep_dpi_and_drop_personal_exif(tmp_path):
  exif = Image.Exif()
  exif[0x010F] = 'Camera maker'  # Make: kept.
  exif[0x8298] = 'Shop Ltd'  # Copyright: kept.
  exif[0x013B] = 'Jane Doe'  # Artist: personal.
  exif.get_ifd(0x8825)[2] = (48.0, 51.0, 30.0)  # GPS latitude.
  src = tmp_path / 'photo.jpg'
  Image.fromarray(_photo(3)).save(src, 'JPEG', dpi=(300, 300), exif=exif)
  info = image_lib.read_info(str(src))
  assert info.dpi == (300.0, 300.0)
  for ext in ('png', 'jpg', 'webp', 'tiff'):
    out = tmp_path / f'out.{ext}'
    image_lib.write_image(_photo(3), str(out), info=info)
    with Image.open(out) as im:
      profile = ImageCms.ImageCmsProfile(io.BytesIO(im.info['icc_profile']))
      assert 'sRGB' in ImageCms.getProfileDescription(profile)
      written = im.getexif()
      if ext != 'webp':
        assert tuple(round(float(d)) for d in im.info['dpi']) == (300, 300)
      assert written.get(0x010F) == 'Camera maker' and written.get(0x8298) == 'Shop Ltd'
      assert 0x013B not in written and 0x8825 not in written
      assert not written.get_ifd(0x8825)


def test_rgba_outputs_need_a_format_with_alpha(tmp_path):
  rgba = np.dstack([_photo(4), np.full((24, 32), 7, np.uint8)])
  image_lib.write_image(rgba, str(tmp_path / 'a.png'))
  np.testing.assert_array_equal(
    image_lib.read_image(str(tmp_path / 'a.png'), keep_alpha=True), rgba
  )
  with pytest.raises(ValueError, match='no alpha channel.*png, webp'):
    image_lib.write_image(rgba, str(tmp_path / 'a.jpg'))


def test_ciede2000_without_lightness_sees_only_chroma_and_hue():
  """Known values: a pure lightness change moves full CIEDE2000 but not the chroma
  variant; a pure hue change at equal lightness moves both by the same amount."""
  from shopstyle_jax import color  # pylint: disable=g-import-not-at-top

  lab = np.array([[[50.0, 30.0, -20.0]]], np.float32)
  darker = lab - np.array([20.0, 0.0, 0.0], np.float32)
  rotated = np.array([[[50.0, -20.0, 30.0]]], np.float32)
  a, b, c = (color.from_lab(x) for x in (lab, darker, rotated))
  assert color.ciede2000(a, b)[0, 0] > 10
  assert color.ciede2000(a, b, lightness=False)[0, 0] < 0.5  # Gamut rounding only.
  full, chroma = color.ciede2000(a, c)[0, 0], color.ciede2000(a, c, lightness=False)[0, 0]
  assert chroma > 20 and abs(full - chroma) < 0.5
  # And the plain metric is scikit-image's with kL = 1.
  from skimage.color import deltaE_ciede2000  # pylint: disable=g-import-not-at-top

  np.testing.assert_allclose(
    color.ciede2000(a, c), deltaE_ciede2000(color.to_lab(a), color.to_lab(c)), rtol=1e-5
  )
