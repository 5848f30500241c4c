"""Tests of the edges2shoes / edges2handbags TFDS builders, offline.

Each test writes a small archive in the real layout (`<name>/train/*.jpg`,
`<name>/val/*.jpg`, edges | photo side by side) and builds the dataset through
the builder's real archive-reading code: once from the manual dir, once
through the download path with the download itself stubbed.
"""

import io
import pathlib
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import load_config
from shopstyle_jax import config_lib
from shopstyle_jax.data import pipeline
from shopstyle_jax.data import pix2pix_datasets

_SIZE = 64  # Real archives hold 256x512 pairs; the builders take any size.


def _pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(edges, photo): a dark-outlined disc on white, and a coloured one."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:_SIZE, 0:_SIZE]
  r = np.hypot(yy - rng.uniform(20, 44), xx - rng.uniform(20, 44))
  photo = np.full((_SIZE, _SIZE, 3), 240, np.uint8)
  photo[r < 14] = rng.integers(30, 200, 3)
  edges = np.full((_SIZE, _SIZE, 3), 255, np.uint8)
  edges[np.abs(r - 14) < 1.5] = 0
  return edges, photo


def _jpeg(image: np.ndarray) -> bytes:
  out = io.BytesIO()
  Image.fromarray(image).save(out, format='JPEG', quality=98)
  return out.getvalue()


def write_archive(
  path: pathlib.Path, name: str, num_train: int = 6, num_val: int = 3
) -> dict[str, np.ndarray]:
  """Writes `<name>.tar.gz` as pix2pix packs it; returns {member: photo}."""
  photos = {}
  path.parent.mkdir(parents=True, exist_ok=True)
  with tarfile.open(path, 'w:gz') as tar:
    for split, count in (('train', num_train), ('val', num_val)):
      for i in range(count):
        edges, photo = _pair(i + (100 if split == 'val' else 0))
        data = _jpeg(np.concatenate([edges, photo], axis=1))
        member = tarfile.TarInfo(f'{name}/{split}/{i + 1}_AB.jpg')
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
        photos[f'{split}/{i + 1}_AB.jpg'] = photo
    junk = b'not a jpeg'  # A corrupt member is skipped, not fatal.
    member = tarfile.TarInfo(f'{name}/train/broken_AB.jpg')
    member.size = len(junk)
    tar.addfile(member, io.BytesIO(junk))
  return photos


def _config(name: str, data_dir, manual_dir=None):
  config = load_config('tiny')
  config.data.name = name
  config.data.data_dir = str(data_dir)
  config.data.manual_dir = manual_dir and str(manual_dir)
  config.batch_size = 4
  config.eval.batch_size = 4
  return config


def _check_built(config, photos: dict[str, np.ndarray]) -> None:
  builder = pipeline._builder(config)
  assert builder.info.splits['train'].num_examples == 6
  assert builder.info.splits['test'].num_examples == 3
  source = builder.as_data_source(split='test')
  for i in range(len(source)):
    example = source[i]
    want = photos[example['file_name'].decode()]
    assert example['photo'].shape == example['edges'].shape == want.shape
    assert np.abs(example['photo'].astype(int) - want).mean() < 3
    assert example['edges'].min() < 80 and np.median(example['edges']) > 240
  batch = next(pipeline.create_train_iterator(config, 0, 1))
  assert batch['photo'].shape == (4, 32, 32, 3)
  # Targets are the edge drawings (white paper), photos have a grey backdrop.
  assert (batch['target'] > 0.95).mean() > 0.7
  assert (batch['photo'] > 0.95).mean() < 0.1


def test_edges2shoes_from_the_manual_dir(tmp_path):
  manual = tmp_path / 'manual'
  photos = write_archive(manual / 'edges2shoes.tar.gz', 'edges2shoes')
  config = _config('edges2shoes', tmp_path / 'tfds', manual)
  pipeline.prepare(config)
  _check_built(config, photos)
  assert not list((tmp_path / 'tfds').rglob('*_AB.jpg'))  # Streamed.


def test_edges2handbags_through_the_download_path(tmp_path, monkeypatch):
  archive = tmp_path / 'served' / 'edges2handbags.tar.gz'
  photos = write_archive(archive, 'edges2handbags')
  urls = []

  def download(self, url):
    del self
    urls.append(url)
    return archive

  monkeypatch.setattr(tfds.download.DownloadManager, 'download', download)
  monkeypatch.setattr(
    pix2pix_datasets.socket, 'getaddrinfo', lambda *args: []
  )  # The offline pre-check.
  config = _config('edges2handbags', tmp_path / 'tfds')
  pipeline.prepare(config)
  assert urls == ['http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/edges2handbags.tar.gz']
  _check_built(config, photos)


def test_failed_download_says_what_to_do(tmp_path, monkeypatch):
  def download(self, url):
    raise ConnectionError(f'no network for {url}')

  monkeypatch.setattr(tfds.download.DownloadManager, 'download', download)
  with pytest.raises(RuntimeError, match='edges2shoes.tar.gz'):
    pipeline.prepare(_config('edges2shoes', tmp_path / 'tfds'))


def test_only_the_sketch_style(tmp_path):
  config = _config('edges2shoes', tmp_path)
  config.data.style = 'oil'
  with pytest.raises(ValueError, match='it has: sketch'):
    pipeline.prepare(config)  # Before any download.


def test_split_pair():
  edges, photo = _pair(0)
  got_photo, got_edges = pix2pix_datasets.split_pair(_jpeg(np.concatenate([edges, photo], axis=1)))
  assert np.abs(got_photo.astype(int) - photo).mean() < 3
  assert np.abs(got_edges.astype(int) - edges).mean() < 3
  with pytest.raises(ValueError):
    pix2pix_datasets.split_pair(b'junk')


def test_edges2shoes_config():
  config = load_config('edges2shoes')
  config_lib.validate(config)
  assert config.data.name == 'edges2shoes' and config.data.style == 'sketch'
  assert (config.image_size, pipeline._load_size(config)) == (256, 286)
  assert config.data.flip
