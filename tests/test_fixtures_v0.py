"""Users' files from before the restructure still load and give the same pixels.

tests/fixtures/v0/ was made once with the code of 0a2b46a (see its README); it
is never regenerated. The fixture came from another compiled program (another
machine, perhaps another CPU), so the comparison is the pixel rule's tolerant one.
"""

import os

import pytest

import shopstyle_jax
from shopstyle_jax.images import read_image

from conftest import assert_pixel_rule

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'v0')


@pytest.fixture(scope='module')
def photo():
  return read_image(os.path.join(FIXTURES, 'photo.png'))


@pytest.fixture(scope='module')
def expected():
  return read_image(os.path.join(FIXTURES, 'expected.png'))


def test_v0_workdir_gives_v0_pixels(photo, expected):
  stylizer = shopstyle_jax.load_stylizer(os.path.join(FIXTURES, 'workdir'))
  assert stylizer.step == 30
  assert_pixel_rule(stylizer(photo), expected)


def test_v0_export_gives_v0_pixels(photo, expected):
  stylizer = shopstyle_jax.load_exported(os.path.join(FIXTURES, 'stylizer.bin'))
  assert stylizer.step == 30
  assert_pixel_rule(stylizer(photo), expected)
