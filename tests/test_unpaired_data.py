"""Tests of the unpaired data: style folders, the catalogue's unpaired mode, their batches."""

import hashlib
import logging
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from conftest import load_config
from shopstyle_jax import config_lib
from shopstyle_jax import images as image_lib
from shopstyle_jax import tone
from shopstyle_jax.data import folder
from shopstyle_jax.data import pipeline

_NUM_TRAIN, _STORED_SIZE = 64, 64  # The tiny catalogue's train split and image size.
_LOAD_SIZE = 36  # The tiny config's: round(32 * 286 / 256).


def _digest(image: np.ndarray) -> str:
  return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def _style_image(seed: int, height: int, width: int) -> np.ndarray:
  """Smooth colour bands with a stroke: some texture, JPEG-friendly."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
  image = np.stack(
    [128 + 100 * np.sin(f * (xx + p * yy)) for f, p in rng.uniform(2, 9, (3, 2))], axis=-1
  )
  image[height // 3 : height // 3 + 3] = rng.integers(0, 80, 3)
  return image.clip(0, 255).astype(np.uint8)


def _write_style_folder(root: pathlib.Path, count: int) -> pathlib.Path:
  """`count` style images of various sizes and formats."""
  root.mkdir(parents=True)
  rng = np.random.default_rng(0)
  for i in range(count):
    height, width = (int(v) for v in rng.integers(24, 120, 2))
    image = Image.fromarray(_style_image(i, height, width))
    if i % 3 == 0:
      image.save(root / f'style_{i:02d}.jpg', quality=95)
    else:
      (root / 'sub').mkdir(exist_ok=True)
      image.save(root / 'sub' / f'style_{i:02d}.png')
  return root


@pytest.fixture(scope='module')
def style_folder(tmp_path_factory) -> pathlib.Path:
  """20 files: 19 style images of various sizes and one corrupt '.jpg'."""
  root = _write_style_folder(tmp_path_factory.mktemp('styles') / 'in', 19)
  (root / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a JPEG')
  return root


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory) -> pathlib.Path:
  return tmp_path_factory.mktemp('cache')


def _unpaired_config(data_dir, **data):
  config = load_config('tiny')
  config.data.data_dir = data_dir
  config.method, config.loss.mse_weight = 'cut', 0.0  # A method that learns without pairs.
  config.data.unpaired = True
  for key, value in data.items():
    setattr(config.data, key, value)
  return config


def _style_config(data_dir, style_folder, cache_dir, **data):
  return _unpaired_config(
    data_dir, unpaired=False, style_folder=str(style_folder), cache_dir=str(cache_dir), **data
  )


def _unaugmented(config):
  """Crops of the whole stored image, never flipped: rows are identifiable."""
  config.image_size = config.data.load_size = _STORED_SIZE
  config.data.flip = False
  return config


def _take(iterator, steps: int) -> list[dict[str, np.ndarray]]:
  return [next(iterator) for _ in range(steps)]


def _catalogue_ids(config) -> tuple[dict[str, int], dict[str, int]]:
  """Digests of the train split's photos and sketches -> product id."""
  train = pipeline._builder(config).as_data_source(split='train')
  photos, sketches = {}, {}
  for index in range(len(train)):
    example = train[index]
    photos[_digest(example['photo'])] = int(example['id'])
    sketches[_digest(example['sketch'])] = int(example['id'])
  return photos, sketches


# --- The catalogue's unpaired mode -----------------------------------------------


def test_unpaired_catalogue_never_shows_a_photo_its_own_rendering(data_dir):
  config = _unaugmented(_unpaired_config(data_dir))
  photo_ids, sketch_ids = _catalogue_ids(config)
  assert len(photo_ids) == len(sketch_ids) == _NUM_TRAIN
  iterator = pipeline.create_train_iterator(config, 0, 1)
  steps_per_epoch = _NUM_TRAIN // 2 // config.batch_size  # 32 images a side.
  epochs = []
  for _ in range(2):
    seen = {'photo': [], 'style': []}
    for batch in _take(iterator, steps_per_epoch):
      assert set(batch) == {'photo', 'style'}
      for side, ids in (('photo', photo_ids), ('style', sketch_ids)):
        seen[side] += [ids[_digest(image)] for image in image_lib.model_to_uint8(batch[side])]
    # Each side: every one of its images once an epoch; the sides disjoint, covering train.
    assert sorted(seen['photo']) == list(range(0, _NUM_TRAIN, 2))
    assert sorted(seen['style']) == list(range(1, _NUM_TRAIN, 2))
    assert not set(seen['photo']) & set(seen['style'])
    assert set(seen['photo']) | set(seen['style']) == set(range(_NUM_TRAIN))
    epochs.append(seen)
  for side in ('photo', 'style'):
    assert epochs[0][side] != epochs[1][side]  # Reshuffled each epoch.
  # Each side has its own order: not the photo's neighbour at each position.
  assert [p + 1 for p in epochs[0]['photo']] != epochs[0]['style']


def test_unpaired_catalogue_sides_and_eval(data_dir):
  config = _unpaired_config(data_dir)
  assert pipeline.is_unpaired(config) and pipeline.has_ground_truth(config)
  sides = pipeline.unpaired_sources(config)
  assert (len(sides['photo']), len(sides['style'])) == (_NUM_TRAIN // 2, _NUM_TRAIN // 2)
  batch = next(pipeline.create_train_iterator(config, 0, 1))
  for images in batch.values():
    assert images.shape == (8, 32, 32, 3) and images.dtype == np.float32
    # uint8 / 127.5 - 1: exact levels of [-1, 1] (not [0, 1], not resampled floats).
    levels = (images + 1.0) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)
    assert levels.min() >= 0 and levels.max() <= 255 and images.min() < 0 < images.max()
  assert (batch['style'] > 0.85).mean() > 0.5  # Sketches: mostly white paper.
  # The test split keeps its true pairs: the same eval batches as paired training.
  paired = load_config('tiny')
  paired.data.data_dir = data_dir
  for got, want in zip(
    pipeline.create_eval_batches(config, 0, 1),
    pipeline.create_eval_batches(paired, 0, 1),
    strict=True,
  ):
    assert set(got) == {'photo', 'target', 'valid'}
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_tone_target_is_the_photo_through_the_unpaired_histogram_map(data_dir):
  config = _unpaired_config(data_dir)
  config.loss.tone_weight = 1.0
  sides = pipeline.unpaired_sources(config)
  curves = pipeline.tone_curves(sides['photo'], [sides['style']])
  # Fitted on the two sides only: photos of even products, sketches of odd ones.
  to_model = lambda side, key: np.stack([image_lib.uint8_to_model(x[key]) for x in side])
  want = tone.match_histogram(to_model(sides['photo'], 'photo'), to_model(sides['style'], 'style'))
  np.testing.assert_allclose(curves, want[None], atol=1e-6)
  assert curves[0, 250, 0] > 0.9 and curves[0, 10, 0] < 0  # Light -> paper, dark -> graphite.
  batch = next(pipeline.create_train_iterator(config, 0, 1))
  assert set(batch) == {'photo', 'style', 'tone'}
  np.testing.assert_allclose(batch['tone'], tone.apply_curve(curves[0], batch['photo']), atol=1e-6)
  config.loss.tone_weight = 0.0  # Off: no 'tone', nothing fitted.
  assert set(next(pipeline.create_train_iterator(config, 0, 1))) == {'photo', 'style'}


# --- Style folders ------------------------------------------------------------------


def test_style_folder_is_converted_once_skipping_the_bad_file(
  data_dir, style_folder, tmp_path, caplog
):
  config = _style_config(data_dir, style_folder, tmp_path / 'cache')
  with caplog.at_level(logging.INFO):
    pipeline.prepare(config)
  log = ' '.join(r.getMessage() for r in caplog.records)
  assert log.count('Converting') == 1
  assert 'skipped 1 of 20' in log and 'corrupt.jpg' in log
  assert 'Style folder' in log and '19 style images' in log
  entries = [e for e in os.listdir(tmp_path / 'cache') if not e.startswith('.')]
  assert len(entries) == 1
  path = tmp_path / 'cache' / entries[0]
  info = folder.read_info(str(path))
  assert [name for name, _ in info['skipped']] == ['corrupt.jpg']
  assert info['layout'] == 'style' and len(info['names']) == 19
  assert info['splits'] == {'train': list(range(19)), 'test': []}  # All of them train.
  mtime = os.path.getmtime(path / 'info.json')
  caplog.clear()
  with caplog.at_level(logging.INFO):
    pipeline.prepare(config)  # Reused, not converted again.
  assert 'Converting' not in ' '.join(r.getMessage() for r in caplog.records)
  assert os.path.getmtime(path / 'info.json') == mtime
  # Stored as folders store photos: centre squares at the load size, no target.
  source = folder.FolderSource(str(path), 'train')
  for i, name in enumerate(info['names']):
    example = source[i]
    assert set(example) == {'photo'}
    read = folder.read_photo(str(style_folder / name), (_LOAD_SIZE, _LOAD_SIZE))  # As photos.
    np.testing.assert_array_equal(example['photo'], folder.center_square(read, _LOAD_SIZE))


def test_style_folder_batches_with_catalogue_photos(data_dir, style_folder, cache_dir):
  config = _style_config(data_dir, style_folder, cache_dir)
  config.image_size = config.data.load_size = _LOAD_SIZE
  config.data.flip = False
  pipeline.prepare(config)
  assert pipeline.has_ground_truth(config)  # The catalogue's test pairs.
  sides = pipeline.unpaired_sources(config)
  assert (len(sides['photo']), len(sides['style'])) == (_NUM_TRAIN, 19)
  stored = {_digest(sides['style'][i]['style']) for i in range(19)}
  seen = []
  for batch in _take(pipeline.create_train_iterator(config, 0, 1), 5):  # 40 > 2 epochs.
    assert batch['photo'].shape == batch['style'].shape == (8, _LOAD_SIZE, _LOAD_SIZE, 3)
    seen += [_digest(image) for image in image_lib.model_to_uint8(batch['style'])]
  assert set(seen) == stored  # Every style image, and only those.
  assert sorted(seen[:19]) == sorted(stored)  # Each once in the first epoch.


def test_one_style_image_is_enough(data_dir, tmp_path):
  root = tmp_path / 'one'
  root.mkdir()
  Image.fromarray(_style_image(7, 50, 90)).save(root / 'painting.png')
  config = _style_config(data_dir, root, tmp_path / 'cache')
  config_lib.validate(config)
  pipeline.prepare(config)
  stored = folder.center_square(image_lib.read_rgb(str(root / 'painting.png')), _LOAD_SIZE)
  mirror = stored[:, ::-1]
  flips = []
  for batch in _take(pipeline.create_train_iterator(config, 0, 1), 2):
    for image in image_lib.model_to_uint8(batch['style']):
      # A 32 px crop of the image, or of its mirror image.
      crops = [
        (image == s[y : y + 32, x : x + 32]).all()
        for s in (stored, mirror)
        for y in range(5)
        for x in range(5)
      ]
      assert any(crops[:25]) or any(crops[25:])
      flips.append(not any(crops[:25]))
  assert any(flips) and not all(flips)  # Augmented like any image.


def test_photo_folder_with_a_style_folder_has_no_ground_truth(data_dir, style_folder, tmp_path):
  photos = _write_style_folder(tmp_path / 'photos', 8)  # Any images do as photos here.
  config = _style_config(
    data_dir, style_folder, tmp_path / 'cache', folder=str(photos), style='oil', test_fraction=0.3
  )
  config.eval.num_examples = 8
  pipeline.prepare(config)
  assert not pipeline.has_ground_truth(config)
  batch = next(pipeline.create_train_iterator(config, 0, 1))
  assert set(batch) == {'photo', 'style'}
  test = pipeline._source(config, 'test')
  assert len(test) >= 1 and set(test[0]) == {'photo'}  # Nothing rendered.
  rows = 0
  for batch in pipeline.create_eval_batches(config, 0, 1):
    assert set(batch) == {'photo', 'target', 'valid'}
    np.testing.assert_array_equal(batch['target'], batch['photo'])  # The photo stands in.
    rows += int(batch['valid'].sum())
  assert rows == len(test)
  # A folder of pairs keeps its ground truth.
  pairs = tmp_path / 'pairs'
  for i in range(3):
    for side in ('photos', 'targets'):
      (pairs / side).mkdir(parents=True, exist_ok=True)
      Image.fromarray(_style_image(i, 40, 40)).save(pairs / side / f'{i}.png')
  config.data.folder = str(pairs)
  assert pipeline.has_ground_truth(config)


def test_unpaired_folder_of_pairs(tmp_path):
  root = tmp_path / 'pairs'
  for i in range(6):
    photo = _style_image(i, 40, 40)
    for side, image in (('photos', photo), ('targets', 255 - photo)):
      (root / side).mkdir(parents=True, exist_ok=True)
      Image.fromarray(image).save(root / side / f'{i}.png')
  config = _unpaired_config(
    None, folder=str(root), cache_dir=str(tmp_path / 'cache'), test_fraction=0.0
  )
  pipeline.prepare(config)
  sides = pipeline.unpaired_sources(config)
  assert (len(sides['photo']), len(sides['style'])) == (3, 2)  # Train indices 0, 2, 4 | 1, 3.
  photos = {_digest(sides['photo'][i]['photo']) for i in range(3)}
  targets = {_digest(255 - sides['style'][i]['style']) for i in range(2)}
  assert not photos & targets
  assert set(next(pipeline.create_train_iterator(config, 0, 1))) == {'photo', 'style'}


# (Topology independence and exact resume: tests/test_data.py, for every kind of source.)


# --- Config checks --------------------------------------------------------------------


def test_config_checks(data_dir, style_folder, tmp_path):
  config = _style_config(data_dir, style_folder, tmp_path)
  config_lib.validate(config)
  sizes = {k: len(v) for k, v in pipeline.unpaired_sources(config).items()}
  config.data.unpaired = True  # The style folder wins: all photos, the folder's styles.
  config_lib.validate(config)
  assert {k: len(v) for k, v in pipeline.unpaired_sources(config).items()} == sizes
  config.data.unpaired = False
  config.data.style_folder = str(tmp_path / 'nowhere')
  with pytest.raises(ValueError, match=r"config.data.style_folder='.*nowhere' does not exist"):
    config_lib.validate(config)
  with pytest.raises(FileNotFoundError, match='config.data.style_folder=.*does not exist'):
    pipeline.prepare(config)
  (tmp_path / 'file.png').write_bytes(b'')
  config.data.style_folder = str(tmp_path / 'file.png')
  with pytest.raises(ValueError, match='is not a directory'):
    config_lib.validate(config)
  config.data.style_folder = config.data.folder = str(style_folder)
  with pytest.raises(ValueError, match='is config.data.folder'):
    config_lib.validate(config)
  empty = tmp_path / 'empty'
  empty.mkdir()
  config.data.folder, config.data.style_folder = None, str(empty)
  with pytest.raises(ValueError, match='config.data.style_folder=.*holds no files'):
    pipeline.prepare(config)
  config.data.style_folder = None
  assert not pipeline.is_unpaired(config)
  with pytest.raises(ValueError, match='Neither'):
    pipeline.unpaired_sources(config)
