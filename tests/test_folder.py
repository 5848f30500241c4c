"""Tests of the user-folder source: layouts, bad files, cache, split, pipeline."""

import concurrent.futures
import logging
import os
import pathlib

import cv2
import numpy as np
import pytest
from PIL import Image
from PIL import ImageOps

from conftest import load_config
from conftest import product_photo
from conftest import tensorboard_tags
from conftest import train_in_process
from conftest import trained_config
from shopstyle_jax import checkpoints
from shopstyle_jax import images as image_lib
from shopstyle_jax import inference
from shopstyle_jax import styles
from shopstyle_jax.data import folder
from shopstyle_jax.data import pipeline

_photo = product_photo


def _save(path: pathlib.Path, image, **kwargs) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  if isinstance(image, np.ndarray):
    image = Image.fromarray(image)
  image.save(path, **kwargs)
  return path


def _mixed_folder(root: pathlib.Path) -> pathlib.Path:
  """Good photos of every kind plus a truncated JPEG and a text '.jpg'."""
  for i in range(6):
    _save(root / f'shoe_{i}.jpg', _photo(i), quality=95)
  _save(root / 'bags' / 'bag.webp', _photo(10, 70, 50), lossless=True)
  rgba = np.dstack([_photo(11), np.full((48, 64), 255, np.uint8)])
  rgba[:, :8, 3] = 0  # Transparent strip: becomes white.
  _save(root / 'cutout.png', Image.fromarray(rgba, 'RGBA'))
  _save(root / 'gray.png', Image.fromarray(_photo(12)[..., 0], 'L'))
  _save(
    root / 'palette.png',
    Image.fromarray(_photo(13)).convert('P', palette=Image.Palette.ADAPTIVE, colors=16),
  )
  _save(root / 'wide.jpg', _photo(14, 40, 120))
  data = (root / 'shoe_0.jpg').read_bytes()
  (root / 'broken.jpg').write_bytes(data[: len(data) // 2])
  (root / 'notes.jpg').write_text('not an image\n')
  (root / '.DS_Store').write_bytes(b'\0\1')  # Hidden: ignored.
  return root


def _spec(path, tmp_path, **kwargs) -> folder.FolderSpec:
  kwargs.setdefault('size', 36)
  kwargs.setdefault('cache_dir', str(tmp_path / 'cache'))
  return folder.FolderSpec(folder=str(path), **kwargs)


def _records(path: str) -> dict[str, list]:
  return {
    split: [
      folder.FolderSource(path, split)[i] for i in range(len(folder.FolderSource(path, split)))
    ]
    for split in ('train', 'test')
  }


# --- Reading images -----------------------------------------------------------


def test_read_photo_converts_every_mode(tmp_path):
  rgba = np.zeros((4, 4, 4), np.uint8)
  clear = _save(tmp_path / 'clear.png', Image.fromarray(rgba, 'RGBA'))
  np.testing.assert_array_equal(folder.read_photo(str(clear), (4, 4)), 255)  # Clear -> white.
  gray = _save(tmp_path / 'gray.png', Image.fromarray(np.full((3, 5), 7, np.uint8), 'L'))
  assert (folder.read_photo(str(gray), (3, 3)) == 7).all()
  deep = _save(tmp_path / 'deep.png', Image.fromarray(np.full((2, 2), 65535, np.uint16)))
  assert (folder.read_photo(str(deep), (2, 2)) == 255).all()
  palette = _save(
    tmp_path / 'palette.png', Image.fromarray(np.full((2, 2, 3), 9, np.uint8)).convert('P')
  )
  assert folder.read_photo(str(palette), (2, 2)).shape == (2, 2, 3)


def test_center_square():
  image = np.arange(40 * 120 * 3, dtype=np.uint8).reshape(40, 120, 3)
  out = folder.center_square(image, 20)
  assert out.shape == (20, 20, 3)
  same = folder.center_square(image[:, 40:80], 40)
  np.testing.assert_array_equal(same, image[:, 40:80])


def test_read_photo_rejects_bad_files(tmp_path):
  (tmp_path / 'a.jpg').write_text('hello')
  with pytest.raises(image_lib.ImageReadError, match='^not a readable image'):
    folder.read_photo(str(tmp_path / 'a.jpg'), (8, 8))  # The log names the file.


def _awkward_files(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """Files that decoders disagree on, each 36 x 48 upright (the stored size is
  36, so the folder only crops them: a resize would hide differences)."""
  rng = np.random.default_rng(5)
  rgb = _photo(20, 36, 48)
  rgb[::3, ::2] = rng.integers(0, 256, (12, 24, 3))  # Some texture for JPEG to disagree on.
  files = {}

  def save(name, image, **kwargs):
    files[name] = _save(root / name, image, **kwargs)

  image = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1)))  # 48 x 36 as stored.
  exif = image.getexif()
  exif[0x0112] = 6  # Turn a quarter clockwise to view.
  save('rotated.jpg', image, exif=exif.tobytes(), quality=90)
  alpha = np.linspace(0, 255, 48).round().astype(np.uint8)[None].repeat(36, 0)
  save('rgba.png', Image.fromarray(np.dstack([rgb, alpha]), 'RGBA'))
  save(
    'palette.png',
    Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE, colors=16),
    transparency=3,
  )
  save('keyed.png', Image.fromarray(rgb), transparency=tuple(int(v) for v in rgb[0, 0]))
  save('gray.png', Image.fromarray(rgb[..., 1]))
  save('gray.jpg', Image.fromarray(rgb[..., 1]), quality=90)
  save('la.png', Image.fromarray(np.dstack([rgb[..., 2], alpha]), 'LA'))
  save('cmyk.jpg', Image.fromarray(rgb).convert('CMYK'), quality=90)
  rgb16 = rgb.astype(np.uint16) * 257 + rng.integers(0, 257, rgb.shape).astype(np.uint16)
  save('gray16.png', Image.fromarray(rgb16[..., 0]))
  for name, image16 in (
    ('rgb16.png', rgb16),
    ('rgba16.png', np.dstack([rgb16, alpha.astype(np.uint16) * 257])),
  ):
    files[name] = root / name
    cv2.imwrite(str(files[name]), image16[..., [2, 1, 0, 3][: image16.shape[-1]]])
  return files


def test_folder_reads_the_pixels_the_stylizers_read(tmp_path):
  files = _awkward_files(tmp_path / 'in')
  path = folder.prepare(_spec(tmp_path / 'in', tmp_path, size=36))
  info = folder.read_info(path)
  stored = {}
  for split in ('train', 'test'):
    source = folder.FolderSource(path, split)
    for i, index in enumerate(info['splits'][split]):
      stored[info['names'][index]] = source[i]['photo']
  assert sorted(stored) == sorted(files) and not info['skipped']
  for name, file in files.items():
    as_read = image_lib.to_rgb_uint8(image_lib.read_image(str(file)))  # What stylizers get.
    assert as_read.shape == (36, 48, 3), name
    # The folder's reader with its reduced-scale JPEG decoding off, and with it
    # on at a size where it cannot reduce.
    np.testing.assert_array_equal(image_lib.read_rgb(str(file)), as_read, err_msg=name)
    np.testing.assert_array_equal(folder.read_photo(str(file), (36, 36)), as_read, err_msg=name)
    np.testing.assert_array_equal(stored[name], as_read[:, 6:42], err_msg=name)
    batch = inference.prepare(image_lib.read_image(str(file)), factor=4).batch
    np.testing.assert_array_equal(batch[0], image_lib.uint8_to_model(as_read), err_msg=name)

  # What they all read.
  def read(name):
    return image_lib.read_rgb(str(files[name]))

  rgb16 = cv2.imread(str(files['rgb16.png']), cv2.IMREAD_UNCHANGED)[..., ::-1]
  np.testing.assert_array_equal(read('rgb16.png'), np.round(rgb16 / 257.0))  # One rounding.
  upright = ImageOps.exif_transpose(Image.open(files['rotated.jpg']))
  np.testing.assert_array_equal(read('rotated.jpg'), np.asarray(upright))
  assert (read('rgba.png')[:, 0] == 255).all()  # Alpha 0 at the left edge: white.
  assert (read('keyed.png')[0, 0] == 255).all()  # The transparent colour key.


# --- Conversion ---------------------------------------------------------------


def test_mixed_folder_skips_bad_files_and_logs_them(tmp_path, caplog):
  root = _mixed_folder(tmp_path / 'photos_in')
  with caplog.at_level(logging.INFO):
    path = folder.prepare(_spec(root, tmp_path, style='watercolor'))
  info = folder.read_info(path)
  assert sorted(n for n, _ in info['skipped']) == ['broken.jpg', 'notes.jpg']
  assert info['files'] == 13 and len(info['names']) == 11
  assert 'bags/bag.webp' in info['names']
  warnings = ' '.join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  assert 'skipped 2 of 13' in warnings
  assert 'broken.jpg' in warnings and 'notes.jpg' in warnings
  assert not str(path).startswith(str(root))
  records = _records(path)
  assert len(records['train']) + len(records['test']) == 11
  assert records['test']  # Some held out.
  for example in records['train'] + records['test']:
    assert example['photo'].shape == example['target'].shape == (36, 36, 3)
    assert example['photo'].dtype == np.uint8
    np.testing.assert_array_equal(example['target'], styles.watercolor(example['photo']))


def test_transparent_pixels_become_white(tmp_path):
  rgba = np.zeros((40, 40, 4), np.uint8)  # Fully transparent black.
  _save(tmp_path / 'in' / 'a.png', Image.fromarray(rgba, 'RGBA'))
  _save(tmp_path / 'in' / 'b.png', _photo(1))
  path = folder.prepare(_spec(tmp_path / 'in', tmp_path, size=16))
  photos = [e['photo'] for r in _records(path).values() for e in r]
  assert any((p == 255).all() for p in photos)


def test_empty_and_missing_folders_fail_clearly(tmp_path):
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='holds no files'):
    folder.prepare(_spec(tmp_path / 'empty', tmp_path))
  junk = tmp_path / 'junk'
  junk.mkdir()
  (junk / 'a.jpg').write_text('text')
  (junk / 'b.txt').write_text('text')
  with pytest.raises(ValueError, match='no readable image.*a.jpg'):
    folder.prepare(_spec(junk, tmp_path))
  with pytest.raises(FileNotFoundError, match='does not exist'):
    folder.prepare(_spec(tmp_path / 'nowhere', tmp_path))
  # Nothing half-built (the build's lock file may stay).
  assert not [p for p in (tmp_path / 'cache').glob('*junk*') if p.suffix != '.lock']


def test_bad_settings_fail_clearly(tmp_path):
  root = _mixed_folder(tmp_path / 'in')
  with pytest.raises(ValueError, match='side_by_side'):
    folder.prepare(_spec(root, tmp_path, side_by_side='left'))
  with pytest.raises(ValueError, match='test_fraction'):
    folder.prepare(_spec(root, tmp_path, test_fraction=1.0))
  with pytest.raises(ValueError, match='inside'):
    folder.prepare(_spec(root, tmp_path, cache_dir=str(root / 'cache')))


def test_paired_layout(tmp_path):
  root = tmp_path / 'in'
  for i in range(4):
    _save(root / 'photos' / f'p{i}.jpg', _photo(i), quality=98)
    _save(root / 'targets' / f'p{i}.png', 255 - _photo(i))
  _save(root / 'photos' / 'lonely.png', _photo(9))
  _save(root / 'targets' / 'odd.png', _photo(8, 48, 20))
  _save(root / 'photos' / 'odd.png', _photo(8))  # Other aspect: skipped.
  path = folder.prepare(_spec(root, tmp_path, size=32, test_fraction=0.3))
  info = folder.read_info(path)
  assert info['layout'] == 'pairs'
  assert info['names'] == ['p0', 'p1', 'p2', 'p3']
  reasons = dict(info['skipped'])
  assert 'no matching file' in reasons['photos/lonely.png']
  assert 'aspect ratio' in reasons['odd']
  for example in _records(path)['train']:
    diff = np.abs(example['target'].astype(int) - (255 - example['photo'].astype(int)))
    assert diff.mean() < 4  # The target is the inverted photo (JPEG noise).


@pytest.mark.parametrize('side', ['photo_right', 'photo_left'])
def test_side_by_side_layout(tmp_path, side):
  root = tmp_path / 'in'
  for i in range(3):
    photo, drawing = _photo(i, 40, 40), np.full((40, 40, 3), 250, np.uint8)
    pair = [drawing, photo] if side == 'photo_right' else [photo, drawing]
    _save(root / f'{i}.png', np.concatenate(pair, axis=1))
  path = folder.prepare(_spec(root, tmp_path, size=40, side_by_side=side))
  for example in _records(path)['train'] + _records(path)['test']:
    assert (example['target'] == 250).all()
    assert example['photo'].std() > 10


def test_cache_is_reused_and_rebuilt_on_change(tmp_path, monkeypatch):
  root = _mixed_folder(tmp_path / 'in')
  spec = _spec(root, tmp_path)
  first = folder.prepare(spec)
  mtime = os.path.getmtime(os.path.join(first, 'info.json'))
  assert folder.prepare(spec) == first
  assert os.path.getmtime(os.path.join(first, 'info.json')) == mtime
  _save(root / 'new.png', _photo(20))
  second = folder.prepare(spec)
  assert second != first and len(folder.read_info(second)['names']) == 12
  assert folder.prepare(_spec(root, tmp_path, style='oil')) != second
  assert folder.prepare(_spec(root, tmp_path, size=40)) != second
  # Changed renderers (styles.VERSION) or a changed reader convert the folder again.
  monkeypatch.setattr(styles, 'VERSION', styles.VERSION + 1)
  third = folder.prepare(spec)
  assert third != second
  monkeypatch.setattr(image_lib, 'READER_VERSION', image_lib.READER_VERSION + 1)
  assert folder.prepare(spec) not in (second, third)


def test_a_name_that_is_not_utf8_trains(tmp_path):
  root = _mixed_folder(tmp_path / 'in')
  # Latin-1 'é' (0xE9): not UTF-8; Python sees the name with a surrogate.
  os.rename(root / 'shoe_1.jpg', os.path.join(os.fsencode(root), b'chaussure_\xe9.jpg'))
  path = folder.prepare(_spec(root, tmp_path))
  names = folder.read_info(path)['names']
  assert len(names) == 11 and 'chaussure_\udce9.jpg' in names
  records = _records(path)
  assert len(records['train']) + len(records['test']) == 11


def test_home_relative_folder(tmp_path, monkeypatch):
  _mixed_folder(tmp_path / 'home' / 'shop')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  path = folder.prepare(_spec('~/shop', tmp_path))
  assert folder.read_info(path)['folder'] == os.path.realpath(tmp_path / 'home' / 'shop')


def test_concurrent_conversions_agree(tmp_path):
  root = _mixed_folder(tmp_path / 'in')
  spec = _spec(root, tmp_path, style='cartoon')
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    paths = list(pool.map(lambda _: folder.prepare(spec, verbose=False), range(3)))
  assert len(set(paths)) == 1
  entries = sorted(os.listdir(tmp_path / 'cache'))
  name = os.path.basename(paths[0])
  assert entries == [f'.{name}.lock', name]  # No temporary leftovers.
  assert len(_records(paths[0])['train']) > 0


def test_split_is_a_stable_hash_of_names():
  names = [f'img_{i}.jpg' for i in range(400)]
  splits = folder.split_indices(names, 0.1)
  assert sorted(splits['train'] + splits['test']) == list(range(400))
  assert 20 < len(splits['test']) < 60
  # The same name goes to the same split whatever else is in the folder.
  test_names = {names[i] for i in splits['test']}
  subset = names[::3]
  sub = folder.split_indices(subset, 0.1)
  assert {subset[i] for i in sub['test']} == test_names & set(subset)
  # Both splits are never empty.
  assert folder.split_indices(['a', 'b'], 0.0)['test']
  assert all(folder.split_indices(['a'], 0.5).values())
  few = folder.split_indices(['a', 'b', 'c'], 0.99)
  assert few['train'] and few['test']


# --- Through the pipeline -----------------------------------------------------


def _folder_config(root, tmp_path):
  config = load_config('tiny')
  config.data.folder = str(root)
  config.data.cache_dir = str(tmp_path / 'cache')
  config.data.style = 'oil'
  config.batch_size = 4
  config.eval.batch_size = 4
  return config


def test_pipeline_reads_the_folder(tmp_path):
  root = _mixed_folder(tmp_path / 'in')
  config = _folder_config(root, tmp_path)
  pipeline.prepare(config)
  batch = next(pipeline.create_train_iterator(config, 0, 1))
  assert batch['photo'].shape == (4, 32, 32, 3)
  assert batch['target'].dtype == np.float32
  evals = pipeline.create_eval_batches(config, 0, 1)
  assert sum(int(b['valid'].sum()) for b in evals) == len(pipeline._source(config, 'test'))


# (Topology independence and exact resume: tests/test_data.py, for every kind of source.)


# --- End to end ---------------------------------------------------------------


def test_training_on_a_folder_with_bad_files(trained_workdir, tmp_path, caplog):
  del trained_workdir  # Trained first: its step, compiled, is this run's.
  root = _mixed_folder(tmp_path / 'in')
  config = trained_config(str(tmp_path / 'tfds'))  # 4 steps, checkpoints at 2 and 4.
  config.data.folder, config.data.style = str(root), 'cartoon'
  config.data.cache_dir = str(tmp_path / 'cache')
  workdir = str(tmp_path / 'work')
  with caplog.at_level(logging.WARNING):
    train_in_process(config, workdir)
  warnings = ' '.join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
  assert 'skipped 2 of 13 files' in warnings
  assert 'broken.jpg' in warnings and 'notes.jpg' in warnings
  assert checkpoints.available_steps(workdir) == [2, 4]
  assert tensorboard_tags(workdir)['eval/psnr'] == [4]
  assert not (tmp_path / 'tfds').exists()  # The folder, not the catalogue.


def test_train_refuses_an_empty_folder_before_compiling(tmp_path):
  (tmp_path / 'empty').mkdir()
  config = load_config('tiny')
  config.data.folder = str(tmp_path / 'empty')
  config.data.cache_dir = str(tmp_path / 'cache')
  with pytest.raises(ValueError, match='holds no files'):
    train_in_process(config, str(tmp_path / 'work'))
  assert checkpoints.available_steps(str(tmp_path / 'work')) == []  # Nothing trained.
