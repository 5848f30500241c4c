"""stylize_fn, load_stylizer and StylizeOptions: shapes, dtypes, padding, options,
determinism."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shopstyle_jax
from conftest import assert_pixel_rule
from shopstyle_jax import StylizeOptions
from shopstyle_jax import images as image_lib
from shopstyle_jax import inference
from shopstyle_jax import load_stylizer
from shopstyle_jax import stylize_fn
from shopstyle_jax.models import generators


def test_stylize_fn_is_pure_and_deterministic(tiny_config):
  m = tiny_config.model
  m.update(depth=3, width=4, dropout=0.5, noise_channels=1)
  g = generators.create_generator(m)
  x = jax.random.uniform(jax.random.key(0), (3, 24, 40, 3), minval=-1, maxval=1)
  # Random weights of init's shapes, without compiling init.
  rng = np.random.default_rng(1)
  v = jax.tree.map(
    lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape, np.float32)),
    jax.eval_shape(lambda: g.init(jax.random.key(1), x, train=False)),
  )
  a, b = stylize_fn(g, v, x), stylize_fn(g, v, x)
  assert a.shape == x.shape and a.dtype == jnp.float32
  np.testing.assert_array_equal(a, b)  # dropout off, noise zero


@pytest.mark.parametrize('shape', [(37, 53, 3), (64, 32, 3), (1, 5, 3)])
def test_load_stylizer_any_size(trained_workdir, shape):
  stylizer = load_stylizer(trained_workdir)
  photo = np.random.RandomState(0).randint(0, 256, shape, dtype=np.uint8)
  out = stylizer(photo)
  assert out.shape == shape and out.dtype == np.uint8
  assert_pixel_rule(out, stylizer(photo), same_program=True)
  batch = stylizer(np.stack([photo, photo]))
  assert batch.shape == (2,) + shape


def test_a_batch_gives_single_photos_pixels_under_the_pixel_rule(trained_workdir):
  # Batch 3 and batch 1 are two compiled programs (another batch size can pick
  # another convolution algorithm): the tolerant rule, over 3 x 19,200 pixels.
  stylizer = load_stylizer(trained_workdir)
  photos = np.random.RandomState(5).randint(0, 256, (3, 120, 160, 3), dtype=np.uint8)
  assert_pixel_rule(list(stylizer(photos)), [stylizer(p) for p in photos])


def test_load_stylizer_converts_gray_alpha_and_float(trained_workdir):
  stylizer = load_stylizer(trained_workdir)
  rgb = np.random.RandomState(1).randint(0, 256, (20, 30, 3), dtype=np.uint8)
  gray = rgb[..., 0]
  expected_gray = stylizer(np.repeat(gray[..., None], 3, axis=-1))
  np.testing.assert_array_equal(stylizer(gray), expected_gray)
  np.testing.assert_array_equal(stylizer(gray[..., None]), expected_gray)
  rgba = np.concatenate([rgb, np.zeros((20, 30, 1), np.uint8)], axis=-1)
  np.testing.assert_array_equal(stylizer(rgba), stylizer(rgb))
  np.testing.assert_array_equal(stylizer(rgb.astype(np.float32) / 255.0), stylizer(rgb))
  np.testing.assert_array_equal(stylizer(rgb.astype(np.uint16) * 257), stylizer(rgb))


def test_post_processing_brightness_and_contrast(trained_workdir):
  stylizer = load_stylizer(trained_workdir)
  photo = np.random.RandomState(2).randint(0, 256, (32, 32, 3), dtype=np.uint8)
  base = stylizer(photo).astype(np.int32)
  brighter = stylizer(photo, brightness=0.2).astype(np.int32)
  inside = (base > 10) & (base < 220)
  # +0.2 in [-1, 1] is +25.5 levels.
  np.testing.assert_allclose((brighter - base)[inside], 25.5, atol=1.0)
  flat = stylizer(photo, contrast=0.0)
  np.testing.assert_array_equal(flat, np.full_like(flat, 128))  # mid-grey


def test_stylizer_matches_stylize_fn_on_padded_input(trained_workdir):
  stylizer = load_stylizer(trained_workdir)
  photo = np.random.RandomState(3).randint(0, 256, (30, 45, 3), dtype=np.uint8)
  padded, pad = inference.pad_to_multiple(image_lib.uint8_to_model(photo[None]), stylizer.factor)
  assert padded.shape[1] % stylizer.factor == 0 and padded.shape[2] % stylizer.factor == 0
  raw = stylize_fn(stylizer.generator, stylizer.variables, jnp.asarray(padded))
  expected = image_lib.model_to_uint8(inference.crop(np.asarray(raw), pad))[0]
  np.testing.assert_array_equal(stylizer(photo), expected)


def test_load_stylizer_errors(tmp_path, trained_workdir):
  with pytest.raises(FileNotFoundError, match='not a shopstyle_jax workdir'):
    load_stylizer(str(tmp_path))
  with pytest.raises(FileNotFoundError, match='not a shopstyle_jax workdir'):
    load_stylizer(str(tmp_path / 'nowhere'))
  with pytest.raises(FileNotFoundError, match='available steps'):
    load_stylizer(trained_workdir, step=12345)
  with pytest.raises(TypeError, match='checkpoint step'):
    load_stylizer(trained_workdir, step=4.0)
  with pytest.raises(TypeError, match='checkpoint step'):
    load_stylizer(trained_workdir, step='latest')
  stylizer = load_stylizer(trained_workdir)
  with pytest.raises(ValueError, match='zero size'):
    stylizer(np.zeros((0, 10, 3), np.uint8))
  with pytest.raises(ValueError, match=r'\[0, 1\]'):
    stylizer(np.full((4, 4, 3), 2.0, np.float32))


def test_max_side_and_post_processing_checks(trained_workdir):
  stylizer = load_stylizer(trained_workdir)
  photo = np.random.RandomState(4).randint(0, 256, (90, 150, 3), dtype=np.uint8)
  out = stylizer(photo, max_side=64)
  assert out.shape == photo.shape and out.dtype == np.uint8
  # Stylized at 38x64, then resized back: by hand, the same pixels.
  small = image_lib.resize(image_lib.uint8_to_model(photo[None]), 38, 64)
  padded, pad = inference.pad_to_multiple(small, stylizer.factor)
  raw = inference.crop(
    np.asarray(stylize_fn(stylizer.generator, stylizer.variables, jnp.asarray(padded))), pad
  )
  np.testing.assert_array_equal(out, image_lib.model_to_uint8(image_lib.resize(raw, 90, 150))[0])
  np.testing.assert_array_equal(stylizer(photo, max_side=150), stylizer(photo))  # fits already
  with pytest.raises(ValueError, match='brightness'):
    stylizer(photo, brightness=1.5)
  with pytest.raises(ValueError, match='contrast'):
    stylizer(photo, contrast=-1.0)


def test_step_may_be_a_string_of_digits(trained_workdir):
  assert load_stylizer(trained_workdir, step='4').step == 4
  assert load_stylizer(trained_workdir, step=np.int64(4)).step == 4
  assert inference.find_checkpoint(trained_workdir, ' 4') == 4
  assert inference.find_checkpoint(trained_workdir) == 4


@pytest.mark.parametrize(
  'kwargs, error, message',
  [
    ({'brightness': math.nan}, ValueError, 'brightness=nan must be a finite number'),
    ({'brightness': math.inf}, ValueError, 'finite'),
    ({'brightness': 1.5}, ValueError, r'in \[-1, 1\]'),
    ({'brightness': '0.1'}, TypeError, 'must be a number'),
    ({'brightness': True}, TypeError, 'must be a number'),
    ({'contrast': math.nan}, ValueError, 'contrast=nan must be a finite number'),
    ({'contrast': -0.5}, ValueError, '>= 0'),
    ({'contrast': math.inf}, ValueError, 'finite'),
    ({'max_side': 0}, ValueError, 'positive integer'),
    ({'max_side': -3}, ValueError, 'positive integer'),
    ({'max_side': 64.0}, TypeError, 'positive integer'),
    ({'max_side': math.nan}, TypeError, 'positive integer'),
  ],
)
def test_stylize_options_refuse_bad_values(kwargs, error, message):
  with pytest.raises(error, match=message):
    StylizeOptions(**kwargs)


def test_stylize_options_normalise_and_compare():
  options = StylizeOptions(brightness=np.float32(0.25), contrast=2, max_side=np.int64(64))
  assert options == StylizeOptions(brightness=0.25, contrast=2.0, max_side=64)
  assert type(options.brightness) is float and type(options.max_side) is int
  assert hash(options) == hash(StylizeOptions(brightness=0.25, contrast=2.0, max_side=64))
  assert not StylizeOptions().adjusts and options.adjusts
  with pytest.raises(Exception):  # Frozen.
    options.brightness = 0.0  # pytype: disable=not-writable
  assert shopstyle_jax.StylizeOptions is StylizeOptions is inference.StylizeOptions


def test_moved_names_still_resolve_from_their_old_modules():
  from shopstyle_jax import export  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import exporting  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import stylize  # pylint: disable=g-import-not-at-top

  assert stylize.load_stylizer is inference.load_stylizer is shopstyle_jax.load_stylizer
  assert stylize.stylize_fn is inference.stylize_fn
  assert export.load_exported is exporting.load_exported is shopstyle_jax.load_exported
  with pytest.raises(AttributeError):
    stylize.Stylizer  # pylint: disable=pointless-statement


def test_stylizer_takes_options_or_keywords(trained_workdir):
  stylizer = load_stylizer(trained_workdir)
  photo = np.random.RandomState(5).randint(0, 256, (50, 70, 3), dtype=np.uint8)
  options = StylizeOptions(brightness=0.1, contrast=1.2, max_side=40)
  by_keywords = stylizer(photo, brightness=0.1, contrast=1.2, max_side=40)
  np.testing.assert_array_equal(stylizer(photo, options=options), by_keywords)
  np.testing.assert_array_equal(stylizer(photo, options), by_keywords)
  # Keywords replace those fields of the options.
  np.testing.assert_array_equal(
    stylizer(photo, options, max_side=None), stylizer(photo, brightness=0.1, contrast=1.2)
  )
  with pytest.raises(TypeError, match='Unknown stylize option.*brightnes'):
    stylizer(photo, brightnes=0.1)
  with pytest.raises(TypeError, match='must be a StylizeOptions'):
    stylizer(photo, {'brightness': 0.1})
  with pytest.raises(ValueError, match='brightness=nan'):
    stylizer(photo, brightness=float('nan'))
