"""Tests of the synthetic catalogue and the grain input pipeline."""

import hashlib
import importlib.util
import json
import pathlib

import ml_collections
import numpy as np
import pytest

from shopstyle_jax import images as image_lib
from shopstyle_jax import styles
from shopstyle_jax.data import catalog
from shopstyle_jax.data import pipeline

_ROOT = pathlib.Path(__file__).resolve().parents[1]
_TINY = 'synthetic_catalog/tiny'
_NUM_TRAIN, _NUM_TEST, _STORED_SIZE = 64, 16, 64


def _default_config() -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location('default_config', _ROOT / 'configs' / 'default.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.fixture(scope='module')
def data_dir(data_dir) -> pathlib.Path:
  """conftest's tiny catalogue, as a path."""
  return pathlib.Path(data_dir)


def _config(data_dir: pathlib.Path, **data) -> ml_collections.ConfigDict:
  config = _default_config()
  config.seed = 3
  config.image_size = 32
  config.batch_size = 8
  config.data.name = _TINY
  config.data.data_dir = str(data_dir)
  config.data.prefetch = 2
  config.eval.num_examples = 12
  config.eval.batch_size = 8
  for key, value in data.items():
    setattr(config.data, key, value)
  return config


def _take(iterator, steps: int) -> list[dict[str, np.ndarray]]:
  return [next(iterator) for _ in range(steps)]


def _digest(image: np.ndarray) -> str:
  return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


# --- Catalogue ----------------------------------------------------------------


def test_catalog_splits_and_features(data_dir):
  builder = pipeline._builder(_config(data_dir))
  train = builder.as_data_source(split='train')
  test = builder.as_data_source(split='test')
  assert (len(train), len(test)) == (_NUM_TRAIN, _NUM_TEST)
  files = list((data_dir / 'synthetic_catalog' / 'tiny').rglob('*'))
  assert any('array_record' in f.name for f in files)
  categories = set()
  for index in range(_NUM_TEST):
    example = test[index]
    photo = example['photo']
    sketch = styles.sketch(photo)  # The stored target is this, losslessly.
    assert photo.shape == (_STORED_SIZE, _STORED_SIZE, 3)
    assert photo.dtype == np.uint8
    assert example['id'] == index
    categories.add(example['category'])
    assert photo.std() > 10  # A product, not a blank frame.
    assert (sketch.min(axis=-1) >= 240).mean() > 0.55  # Mostly white paper.
    assert sketch.min() < 120  # With dark pencil lines.
  assert len(categories) == len(catalog.CATEGORIES)


def test_every_catalog_style_is_stored_as_rendered(data_dir):
  builder = pipeline._builder(_config(data_dir))
  example = builder.as_data_source(split='train')[5]
  assert set(styles.CATALOG_STYLES) <= set(example)
  assert 'linocut' not in example  # A later renderer: from folders only.
  for style in styles.CATALOG_STYLES:
    np.testing.assert_array_equal(example[style], styles.render(style, example['photo']))


@pytest.mark.parametrize('style', sorted(styles.CATALOG_STYLES))
def test_source_serves_the_configured_style(data_dir, style):
  source = pipeline._source(_config(data_dir, style=style), 'test')
  example = source[2]
  assert set(example) == {'photo', 'target'}
  np.testing.assert_array_equal(example['target'], styles.render(style, example['photo']))


def test_builds_are_identical(data_dir, tmp_path):
  """A rebuild (here in another process than conftest's, under xdist) holds the same
  examples. Not the same bytes: protobuf writes a record's features in an order that
  depends on the process's hash seed."""
  config = _config(tmp_path)
  pipeline.prepare(config)
  for split in ('train', 'test'):
    first = pipeline._builder(_config(data_dir)).as_data_source(split=split)
    second = pipeline._builder(config).as_data_source(split=split)
    assert len(first) == len(second) > 0
    for index in range(len(first)):
      a, b = first[index], second[index]
      assert a.keys() == b.keys()
      for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f'{split}[{index}].{key}')


def test_example_seed_depends_only_on_split_and_index():
  a = catalog.render_photo(catalog.example_seed('test', 3), 64, 'mug')
  b = catalog.render_photo(catalog.example_seed('test', 3), 64, 'mug')
  c = catalog.render_photo(catalog.example_seed('train', 3), 64, 'mug')
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


# --- Train pipeline -----------------------------------------------------------


def test_train_batches_shapes_and_ranges(data_dir):
  config = _config(data_dir)
  batch = next(pipeline.create_train_iterator(config, 0, 1))
  assert set(batch) == {'photo', 'target'}
  for images in batch.values():
    assert images.shape == (8, 32, 32, 3) and images.dtype == np.float32
    # uint8 / 127.5 - 1: exact levels of [-1, 1] (not [0, 1], not resampled floats).
    levels = (images + 1.0) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert levels.min() >= 0 and levels.max() <= 255 and images.min() < 0 < images.max()
  # Targets are sketches: mostly white.
  assert (batch['target'] > 0.85).mean() > 0.5


@pytest.mark.parametrize('process_count', [1, 2, 4])
def test_shares_are_disjoint_and_cover_each_epoch(data_dir, process_count):
  # No crop and no flip, so every row is a stored photo we can identify.
  config = _config(data_dir, load_size=_STORED_SIZE, flip=False)
  config.image_size = _STORED_SIZE
  source = pipeline._source(config, 'train')
  ids = {_digest(source[i]['photo']): i for i in range(_NUM_TRAIN)}
  steps_per_epoch = _NUM_TRAIN // config.batch_size
  iterators = [
    pipeline.create_train_iterator(config, p, process_count) for p in range(process_count)
  ]
  epochs = []
  for _ in range(2):
    seen = [[] for _ in range(process_count)]
    for _ in range(steps_per_epoch):
      for p, iterator in enumerate(iterators):
        seen[p] += [
          ids[_digest(image)] for image in image_lib.model_to_uint8(next(iterator)['photo'])
        ]
    for p in range(process_count):
      for q in range(p):
        assert not set(seen[p]) & set(seen[q])
    epoch = sum(seen, [])
    assert sorted(epoch) == list(range(_NUM_TRAIN))
    epochs.append(epoch)
  assert epochs[0] != epochs[1]  # Reshuffled each epoch.


def test_flip_applies_to_photo_and_target_alike(data_dir):
  config = _config(data_dir, load_size=_STORED_SIZE, flip=True)
  config.image_size = _STORED_SIZE
  source = pipeline._source(config, 'train')
  by_digest = {}
  for i in range(_NUM_TRAIN):
    example = source[i]
    by_digest[_digest(example['photo'])] = (example['target'], False)
    by_digest[_digest(example['photo'][:, ::-1])] = (example['target'][:, ::-1], True)
  flips = []
  for batch in _take(pipeline.create_train_iterator(config, 0, 1), 4):
    for photo, target in zip(
      image_lib.model_to_uint8(batch['photo']), image_lib.model_to_uint8(batch['target'])
    ):
      sketch, flipped = by_digest[_digest(photo)]
      np.testing.assert_array_equal(target, sketch)
      flips.append(flipped)
  assert any(flips) and not all(flips)


def test_crop_applies_to_photo_and_target_alike():
  image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)
  rng = np.random.default_rng(2)
  for _ in range(5):
    out = pipeline._augment(
      {'photo': image, 'target': image.copy()}, rng, load_size=72, image_size=48, flip=True
    )
    assert out['photo'].shape == (48, 48, 3)
    np.testing.assert_array_equal(out['photo'], out['target'])


# --- Every kind of source: topology independence and exact resume ----------------

SOURCES = ('catalogue', 'folder', 'unpaired_catalogue', 'style_folder')


@pytest.fixture(scope='module')
def folders(tmp_path_factory) -> dict[str, pathlib.Path]:
  """A folder of the user's photos (bad files too) and one of style images."""
  from test_folder import _mixed_folder  # pylint: disable=g-import-not-at-top
  from test_unpaired_data import _write_style_folder  # pylint: disable=g-import-not-at-top

  root = tmp_path_factory.mktemp('folders')
  return {
    'photos': _mixed_folder(root / 'photos'),
    'styles': _write_style_folder(root / 'styles', 12),
    'cache': root / 'cache',
  }


def _source_config(source: str, data_dir: pathlib.Path, folders) -> ml_collections.ConfigDict:
  """8-image batches from `source`, prepared: (photo, target) pairs from the catalogue
  or a photo folder, (photo, style) from the catalogue's unpaired mode or a style folder."""
  config = _config(data_dir, cache_dir=str(folders['cache']))
  if source == 'folder':
    config.data.folder, config.data.style = str(folders['photos']), 'oil'
  elif source == 'unpaired_catalogue':
    config.data.unpaired = True
  elif source == 'style_folder':
    config.data.style_folder = str(folders['styles'])
  pipeline.prepare(config)
  return config


@pytest.mark.parametrize('process_count', [2, 4])
@pytest.mark.parametrize('source', SOURCES)
def test_topology_independence(data_dir, folders, source, process_count):
  """Each process's share, joined, is the single process's batch."""
  config = _source_config(source, data_dir, folders)
  steps = 5
  whole = _take(pipeline.create_train_iterator(config, 0, 1), steps)
  parts = [
    _take(pipeline.create_train_iterator(config, p, process_count), steps)
    for p in range(process_count)
  ]
  keys = (
    {'photo', 'style'} if source in ('unpaired_catalogue', 'style_folder') else {'photo', 'target'}
  )
  for t in range(steps):
    assert set(whole[t]) == keys
    for key in keys:
      assert parts[0][t][key].shape[0] == config.batch_size // process_count
      joined = np.concatenate([parts[p][t][key] for p in range(process_count)])
      np.testing.assert_array_equal(joined, whole[t][key])


@pytest.mark.parametrize('source', SOURCES)
def test_exact_resume(data_dir, folders, source):
  """An iterator restored from a saved state gives the batches the saved one went on to."""
  config = _source_config(source, data_dir, folders)
  first = pipeline.create_train_iterator(config, 1, 2)
  _take(first, 3)
  state = first.get_state()
  json.dumps(state)  # Checkpointable as JSON.
  expected = _take(first, 4)
  second = pipeline.create_train_iterator(config, 1, 2)
  second.set_state(state)
  for want, got in zip(expected, _take(second, 4)):
    assert set(got) == set(want)
    for key in want:
      np.testing.assert_array_equal(want[key], got[key])


# --- Eval batches -------------------------------------------------------------


@pytest.mark.parametrize('process_count', [1, 2, 4])
def test_eval_batches(data_dir, process_count):
  config = _config(data_dir)
  config.image_size = _STORED_SIZE  # No resize: rows are the stored photos.
  source = pipeline._source(config, 'test')
  shares = [pipeline.create_eval_batches(config, p, process_count) for p in range(process_count)]
  assert {len(s) for s in shares} == {2}  # ceil(12 / 8) global batches.
  rows = []
  for k in range(2):
    batch = {
      key: np.concatenate([s[k][key] for s in shares]) for key in ('photo', 'target', 'valid')
    }
    assert batch['photo'].shape == (8, _STORED_SIZE, _STORED_SIZE, 3)
    assert batch['photo'].dtype == np.float32
    assert batch['valid'].dtype == np.bool_
    rows += [(p, t) for p, t, v in zip(batch['photo'], batch['target'], batch['valid']) if v]
    assert batch['valid'].sum() == (8 if k == 0 else 4)
  assert len(rows) == 12
  for index, (photo, target) in enumerate(rows):
    np.testing.assert_array_equal(image_lib.model_to_uint8(photo), source[index]['photo'])
    np.testing.assert_array_equal(image_lib.model_to_uint8(target), source[index]['target'])


# --- Errors -------------------------------------------------------------------


def test_unknown_dataset_lists_allowed(data_dir):
  config = _config(data_dir)
  config.data.name = 'imagenet'
  with pytest.raises(ValueError, match='synthetic_catalog'):
    pipeline.prepare(config)
  config.data.name = 'synthetic_catalog/huge'
  with pytest.raises(ValueError, match='tiny'):
    pipeline.prepare(config)


def test_batch_must_divide_over_processes(data_dir):
  config = _config(data_dir)
  with pytest.raises(ValueError, match='divisible'):
    pipeline.create_train_iterator(config, 0, 3)
  with pytest.raises(ValueError, match='divisible'):
    pipeline.create_eval_batches(config, 0, 3)


def test_unknown_style_in_dataset(data_dir):
  config = _config(data_dir, style='crayon')
  with pytest.raises(ValueError, match='cartoon, oil, sketch, watercolor'):
    pipeline.create_train_iterator(config, 0, 1)


def test_catalog_refuses_a_style_it_does_not_store(data_dir):
  with pytest.raises(
    ValueError, match=r"'linocut' is not in synthetic_catalog.*config\.data\.folder"
  ):
    pipeline._source(_config(data_dir, style='linocut'), 'test')


def test_prepare_only_the_styles_asked(data_dir):
  # A model fine-tuned with a folder-only style is scored on the catalogue's stored ones.
  config = _config(data_dir, styles=('sketch', 'identity', 'linocut'), style='sketch')
  with pytest.raises(ValueError, match="'linocut' is not in synthetic_catalog"):
    pipeline.prepare(config)
  for style in ('sketch', 'identity'):
    pipeline.prepare(config, styles=(style,))
    batch = pipeline.create_eval_batches(config, 0, 1, style=style)[0]
    want = batch['photo'] if style == 'identity' else None
    if want is None:
      source = pipeline._builder(config).as_data_source(split='test')
      size = config.image_size
      want = image_lib.uint8_to_model(image_lib.resize(source[0]['sketch'], size, size))[None]
    np.testing.assert_array_equal(batch['target'][:1], want[:1])
