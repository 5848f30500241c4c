"""Several styles from folders: paired from a photo folder (each style rendered),
and the unpaired methods from one folder of style images per style."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from conftest import load_config
from conftest import product_photo
from conftest import tensorboard_tags
from conftest import train_in_process
from shopstyle_jax import config_lib
from shopstyle_jax import images as image_lib
from shopstyle_jax import styles as styles_lib
from shopstyle_jax.data import pipeline

STYLES = ('sketch', 'oil', 'identity')


_photo = product_photo


def _write_images(root: pathlib.Path, count: int, seed: int = 0, invert: bool = False):
  root.mkdir(parents=True)
  for i in range(count):
    image = _photo(seed + i, 40 + 4 * (i % 3), 56)
    Image.fromarray(255 - image if invert else image).save(root / f'{i:02d}.png')
  return root


def _folder_config(tmp_path, styles=STYLES):
  config = load_config('tiny')
  config.data.folder = str(_write_images(tmp_path / 'photos', 12))
  config.data.cache_dir = str(tmp_path / 'cache')
  config.data.styles = styles
  config.data.style = styles[0]
  config.data.test_fraction = 0.25
  config.batch_size = 6
  config.eval.batch_size = 4
  config.eval.num_examples = 4
  return config


# --- Paired, from a photo folder -----------------------------------------------------


def test_photo_folder_batches_hold_each_styles_rendering(tmp_path):
  config = _folder_config(tmp_path)
  config.data.load_size = config.image_size  # No crop: targets compare with the renderer.
  config.data.flip = False
  config_lib.validate(config)
  pipeline.prepare(config)
  iterator = pipeline.create_train_iterator(config, 0, 1)
  first, second = next(iterator), next(iterator)
  source = pipeline._styles_source(config, 'train')  # pylint: disable=protected-access
  photos = [image_lib.uint8_to_model(source[i]['photo']) for i in range(len(source))]
  for batch in (first, second):
    np.testing.assert_array_equal(batch['style_id'], [0, 1, 2, 0, 1, 2])
    for row, style_id in enumerate(batch['style_id']):
      name = STYLES[style_id]
      i = min(range(len(photos)), key=lambda i: np.abs(photos[i] - batch['photo'][row]).max())
      stored = source[i]['photo']
      want = stored if name == 'identity' else styles_lib.render(name, stored)
      np.testing.assert_allclose(batch['target'][row], image_lib.uint8_to_model(want), atol=1e-6)
  # Two processes' shares concatenate to the one-process batch.
  halves = [next(pipeline.create_train_iterator(config, p, 2)) for p in (0, 1)]
  for key in first:
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), first[key])
  # Per-style eval batches on the test split: the style's renderings, the photo for identity.
  test = pipeline._source(config, 'test', style='oil')  # pylint: disable=protected-access
  oil = pipeline.create_eval_batches(config, 0, 1, style='oil')[0]
  identity = pipeline.create_eval_batches(config, 0, 1, style='identity')[0]
  n = int(oil['valid'].sum())
  assert n == min(len(test), 4)
  want = image_lib.uint8_to_model(
    image_lib.resize(
      styles_lib.render('oil', test[0]['photo']), config.image_size, config.image_size
    )
  )
  np.testing.assert_allclose(oil['target'][0], want, atol=1e-6)
  np.testing.assert_array_equal(identity['target'], identity['photo'])
  np.testing.assert_array_equal(identity['photo'], oil['photo'])


@pytest.mark.slow  # Compile-bound: trains in process.
def test_photo_folder_trains_several_styles(tmp_path):
  config = _folder_config(tmp_path)
  config.batch_size = config.eval.batch_size = 8  # 8 devices; styles 3, 3 and 2 times.
  config.num_train_steps = 2
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.optimizer.decay_start_fraction = 1.0
  workdir = tmp_path / 'run'
  train_in_process(config, workdir)
  tags = tensorboard_tags(str(workdir))
  for style in STYLES:
    assert f'eval/{style}/psnr' in tags and f'eval/{style}/input_target_output' in tags
  assert 'eval/psnr' in tags


def test_photo_folder_of_pairs_refuses_several_styles(tmp_path):
  config = _folder_config(tmp_path)
  pairs = tmp_path / 'pairs'
  for side in ('photos', 'targets'):
    _write_images(pairs / side, 2)
  config.data.folder = str(pairs)
  with pytest.raises(ValueError, match='several styles need a folder of photos'):
    pipeline.prepare(config)


# --- Unpaired, one folder of style images per style -----------------------------------

NAMES = ('ink', 'wash_brand')  # Free-form: no renderer has these names.


def _tinted_folder(root: pathlib.Path, count: int, channel: int, seed: int) -> pathlib.Path:
  """Style images with `channel` 0 everywhere: each folder's images are recognisable."""
  root.mkdir(parents=True)
  for i in range(count):
    image = 255 - _photo(seed + i, 36, 44)
    image[..., channel] = 0
    Image.fromarray(image).save(root / f'{i}.png')
  return root


def _unpaired_config(tmp_path, method):
  config = load_config('tiny')
  config.method = method
  config.data.folder = str(_write_images(tmp_path / 'photos', 10))
  config.data.style_folders = {
    NAMES[0]: str(_tinted_folder(tmp_path / 'ink', 3, 0, 100)),
    NAMES[1]: str(_tinted_folder(tmp_path / 'wash', 4, 2, 200)),
  }
  config.data.styles = NAMES
  config.data.style = NAMES[0]
  config.data.cache_dir = str(tmp_path / 'cache')
  config.data.test_fraction = 0.3
  config.loss.update(mse_weight=0.0, gan='lsgan')
  if method == 'cyclegan':
    config.loss.update(cycle_weight=10.0, identity_weight=0.5, pool_size=4)
  config.num_train_steps = 2
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.eval.num_examples = 4
  config.optimizer.decay_start_fraction = 1.0
  return config


def test_style_folders_config_checks(tmp_path):
  config = _unpaired_config(tmp_path, 'cut')
  config_lib.validate(config)
  config.data.styles = ('ink', 'wash')
  with pytest.raises(ValueError, match='set config.data.styles to the same names'):
    config_lib.validate(config)
  config.data.styles = NAMES
  config.data.style_folder = config.data.style_folders['ink']
  with pytest.raises(ValueError, match='style_folder and config.data.style_folders are both set'):
    config_lib.validate(config)
  config.data.style_folder = None
  config.data.style = 'sketch'
  with pytest.raises(ValueError, match="config.data.style='sketch' is not one of"):
    config_lib.validate(config)
  config.data.style = 'ink'
  config.method, config.loss.mse_weight = 'paired', 100.0
  with pytest.raises(ValueError, match='config.data.style_folders gives style images'):
    config_lib.validate(config)
  # Without style folders, style names must be renderers, and unpaired methods refuse several.
  plain = load_config('tiny')
  plain.data.styles, plain.data.style = NAMES, 'ink'
  with pytest.raises(ValueError, match='config.data.style=.ink. is not allowed'):
    config_lib.validate(plain)
  plain.data.styles, plain.data.style = ('sketch', 'oil'), 'sketch'
  plain.method, plain.data.unpaired, plain.loss.mse_weight = 'cut', True, 0.0
  with pytest.raises(ValueError, match='set config.data.style_folders'):
    config_lib.validate(plain)


def test_style_folders_batches_are_balanced_and_from_each_folder(tmp_path):
  config = _unpaired_config(tmp_path, 'cut')
  config.batch_size = 6
  pipeline.prepare(config)
  assert not pipeline.has_ground_truth(config)
  iterator = pipeline.create_train_iterator(config, 0, 1)
  batches = [next(iterator) for _ in range(3)]  # More than either folder holds.
  for batch in batches:
    assert set(batch) == {'photo', 'style', 'style_id'}
    np.testing.assert_array_equal(batch['style_id'], [0, 1, 0, 1, 0, 1])
    for row, style_id in enumerate(batch['style_id']):
      zero = (0, 2)[style_id]  # The channel this style's folder has at 0 (-1 in the model).
      assert np.all(batch['style'][row][..., zero] == -1.0)
      assert not np.all(batch['style'][row][..., 2 - zero] == -1.0)
  halves = [next(pipeline.create_train_iterator(config, p, 2)) for p in (0, 1)]
  for key in batches[0]:
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), batches[0][key])
  evals = pipeline.create_eval_batches(config, 0, 1, style='wash_brand')
  np.testing.assert_array_equal(evals[0]['target'], evals[0]['photo'])  # No ground truth.
  # The tone target: each row's photo through its own style's histogram map.
  config.loss.tone_weight = 1.0
  batch = next(pipeline.create_train_iterator(config, 0, 1))
  for row, style_id in enumerate(batch['style_id']):
    zero = (0, 2)[style_id]  # The style's folder is 0 there, so its map sends every level to -1.
    assert np.all(batch['tone'][row][..., zero] == -1.0)
    assert not np.all(batch['tone'][row][..., 2 - zero] == -1.0)


def test_labelled_pool_returns_each_image_with_its_label():
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from shopstyle_jax.methods import image_pool  # pylint: disable=g-import-not-at-top
  from shopstyle_jax.state import prng_key  # pylint: disable=g-import-not-at-top

  pool = image_pool.init_pool(3, (1, 1, 1), labelled=True)
  plain = image_pool.init_pool(3, (1, 1, 1))
  rng = prng_key(0)
  for start in range(0, 24, 4):
    ids = jnp.arange(start, start + 4)
    fakes = ids.astype(jnp.float32)[:, None, None, None]
    pool, images, labels = image_pool.query_pool(pool, fakes, rng, ids % 2)
    plain, same = image_pool.query_pool(plain, fakes, rng)
    np.testing.assert_array_equal(images, same)  # The labels change no draw.
    np.testing.assert_array_equal(labels, np.asarray(images[:, 0, 0, 0]).astype(int) % 2)
  assert set(pool) == {'images', 'count', 'labels'} and set(plain) == {'images', 'count'}


@pytest.mark.slow  # Compile-bound: trains in process.
@pytest.mark.parametrize('method', ['cyclegan'])
def test_unpaired_methods_train_several_styles_from_folders(tmp_path, method):
  """CycleGAN (two conditioned generators, a labelled pool) end to end; CUT's
  conditioned step is checked in tests/test_method_cut.py (1 vs 8 devices)."""
  import jax  # pylint: disable=g-import-not-at-top

  from shopstyle_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from shopstyle_jax import inference  # pylint: disable=g-import-not-at-top

  config = _unpaired_config(tmp_path, method)
  # Smaller networks than the tiny config's: the steps compile in half the time.
  config.model.update(depth=3, width=4, disc_layers=1, disc_width=4)
  workdir = tmp_path / 'run'
  state = train_in_process(config, workdir)
  assert int(jax.device_get(state.step)) == 2
  # G (and F), and D_style, hold one row per style in their style tables.
  nets = ('g_params', 'd_params') + (('f_params',) if method == 'cyclegan' else ())
  for name in nets:
    tables = [
      x
      for p, x in jax.tree_util.tree_flatten_with_path(getattr(state, name))[0]
      if 'style_' in jax.tree_util.keystr(p)
    ]
    assert tables and all(t.shape[0] == 2 for t in tables), name
  assert state.d_params['style_projection'].shape[0] == 2
  if method == 'cyclegan':
    assert 'style_projection' not in state.dp_params  # Photos are one domain.
    assert set(state.pool_style) == {'images', 'count', 'labels'}
  tags = tensorboard_tags(str(workdir))
  assert f'eval/{NAMES[1]}/input_output' + ('_reconstruction' if method == 'cyclegan' else '') in (
    tags
  )
  stylizer = inference.load_stylizer(str(workdir))
  assert stylizer.styles == NAMES
  photo = _photo(7, 40, 56)
  outputs = [stylizer(photo, style=name) for name in NAMES]
  assert outputs[0].shape == photo.shape
  assert np.abs(outputs[0].astype(int) - outputs[1]).max() > 0  # The style is read.
  np.testing.assert_array_equal(stylizer(photo), outputs[0])  # config.data.style.
  assert checkpoints.available_steps(str(workdir))[-1] == 2


def test_neural_style_step_reads_the_style():
  """neural_style with several styles (TV and adversarial terms: no VGG needed here)."""
  import jax  # pylint: disable=g-import-not-at-top

  from conftest import run_steps  # pylint: disable=g-import-not-at-top
  from shopstyle_jax.methods import neural_style  # pylint: disable=g-import-not-at-top
  from shopstyle_jax.state import prng_key  # pylint: disable=g-import-not-at-top

  config = load_config('tiny')
  config.method, config.image_size, config.batch_size = 'neural_style', 16, 4
  config.model.update(width=4, depth=3, disc_width=4, disc_layers=1)
  config.data.styles, config.data.style = NAMES, NAMES[0]
  config.loss.update(
    mse_weight=0.0, content_weight=0.0, style_weight=0.0, tv_weight=1.0, adversarial_weight=1.0
  )
  models = neural_style.build_models(config)
  state = jax.jit(lambda k: neural_style.create_state(config, models, k))(prng_key(0))
  assert state.d_params['style_projection'].shape[0] == 2
  rng = np.random.RandomState(0)
  shape = (4, 16, 16, 3)
  batch = {
    'photo': rng.uniform(-1, 1, shape).astype(np.float32),
    'style': rng.uniform(-1, 1, shape).astype(np.float32),
    'style_id': np.array([0, 1, 0, 1], np.int32),
  }
  step = neural_style.make_step(config, models)
  devices = jax.devices()[:1]
  _, (metrics,) = run_steps(step, state, [batch], devices)
  _, (swapped,) = run_steps(step, state, [dict(batch, style_id=1 - batch['style_id'])], devices)
  assert metrics['finite'] == 1.0
  assert swapped['d_loss'] != pytest.approx(metrics['d_loss'], rel=1e-6)
