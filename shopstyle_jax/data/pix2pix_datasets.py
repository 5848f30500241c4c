"""`edges2shoes` and `edges2handbags`: pix2pix's product datasets as TFDS builders.

Each archive `<name>.tar.gz` of the pix2pix site holds `<name>/train/*.jpg` and
`<name>/val/*.jpg`: 256x512 JPEGs with the edge drawing (A) on the left and
the product photo (B) on the right. The builders split them into a `photo`
(re-encoded as JPEG, quality 95) and its `edges` (lossless PNG), so that
training goes photo -> sketch; `val/` becomes the `test` split. The archive is
streamed, never extracted to disk.

Offline, put the archive into the TFDS manual dir (`<data_dir>/downloads/manual/`
or `config.data.manual_dir`): it is then used instead of the download.
`pipeline.prepare` downloads and builds under a file lock (`build_lock`), so
processes sharing the data dir do both once.

Importing this module registers both builders with TFDS.
"""

import os
import socket
import urllib.parse
from typing import BinaryIO, Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from shopstyle_jax import images as image_lib

URL = 'http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz'
_JPEG_QUALITY = 95

_CITATION = """\
@inproceedings{isola2017image,
  title={Image-to-Image Translation with Conditional Adversarial Networks},
  author={Isola, Phillip and Zhu, Jun-Yan and Zhou, Tinghui and Efros, Alexei A},
  booktitle={CVPR},
  year={2017}
}"""


def _proxied() -> bool:
  return any(os.environ.get(k) for k in ('http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'))


def split_pair(data: bytes) -> tuple[np.ndarray, np.ndarray]:
  """Decodes an A|B JPEG into (photo B, edges A), uint8 RGB [H, W/2, 3] each.

  Raises ValueError (ImageReadError) for data that is not such an image.
  """
  rgb = image_lib.read_rgb(data)
  if rgb.shape[1] < 2:
    raise ValueError('not a decodable A|B image')
  half = rgb.shape[1] // 2
  return (np.ascontiguousarray(rgb[:, rgb.shape[1] - half :]), np.ascontiguousarray(rgb[:, :half]))


class _Pix2PixEdges(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A pix2pix edges2<product> archive as (photo, edges) pairs."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  # Target style -> the feature holding it.
  STYLE_FEATURES = {'sketch': 'edges'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Optional: without network access, download
  http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/<name>.tar.gz elsewhere
  and place it, unextracted, in the manual dir.
  """
  DESCRIPTION = ''

  @classmethod
  def archive_name(cls) -> str:
    return f'{cls.name}.tar.gz'

  @classmethod
  def url(cls) -> str:
    return URL.format(name=cls.name)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description=self.DESCRIPTION,
      features=tfds.features.FeaturesDict(
        {
          'photo': tfds.features.Image(shape=(None, None, 3), encoding_format='jpeg'),
          'edges': tfds.features.Image(shape=(None, None, 3), encoding_format='png'),
          'file_name': tfds.features.Text(),
        }
      ),
      homepage='https://phillipi.github.io/pix2pix/',
      citation=_CITATION,
    )

  def _archive(self, dl_manager: tfds.download.DownloadManager) -> str:
    """The archive from the manual dir if it is there, else downloaded."""
    try:
      manual = os.path.join(dl_manager.manual_dir, self.archive_name())
    except AssertionError:  # No manual dir, or an empty one.
      manual = None
    if manual and os.path.exists(manual):
      logging.info('Using %s.', manual)
      return manual
    try:
      if not _proxied():
        # Offline, TFDS would retry for minutes; a failed lookup is instant.
        socket.getaddrinfo(urllib.parse.urlparse(self.url()).hostname, 80)
      return dl_manager.download(self.url())
    except Exception as e:
      raise RuntimeError(
        f'Could not download {self.url()} ({type(e).__name__}: {e}). Without '
        f'network access, download it elsewhere and put {self.archive_name()} '
        f'into {dl_manager._manual_dir} (or set config.data.manual_dir).'  # pylint: disable=protected-access
      ) from e

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    archive = self._archive(dl_manager)
    return {
      'train': self._generate_examples(dl_manager.iter_archive(archive), 'train'),
      'test': self._generate_examples(dl_manager.iter_archive(archive), 'val'),
    }

  def _generate_examples(self, members: Iterator[tuple[str, BinaryIO]], folder: str) -> Iterator:
    skipped = 0
    for path, fobj in members:
      parts = path.replace('\\', '/').split('/')
      if (
        len(parts) < 2
        or parts[-2] != folder
        or parts[-1].startswith('.')
        or not parts[-1].lower().endswith(('.jpg', '.jpeg'))
      ):
        continue
      key = '/'.join(parts[-2:])
      try:
        photo, edges = split_pair(fobj.read())
      except ValueError:
        skipped += 1
        logging.warning('Skipping %s: not a decodable A|B image.', path)
        continue
      yield (
        key,
        {
          'photo': image_lib.encode_jpeg(photo, _JPEG_QUALITY),
          'edges': image_lib.encode_png(edges),
          'file_name': key,
        },
      )
    if skipped:
      logging.warning('%s/%s: skipped %d undecodable images.', self.name, folder, skipped)


class Edges2shoes(_Pix2PixEdges):
  """UT Zappos50K shoe photos with their edge drawings (pix2pix)."""

  name = 'edges2shoes'
  DESCRIPTION = (
    'About 50k shoe photos from UT Zappos50K (Yu and Grauman, '
    '2014) with their HED edge drawings, 256x256, as packaged '
    'by pix2pix; its val/ folder is the test split.'
  )


class Edges2handbags(_Pix2PixEdges):
  """Amazon handbag photos with their edge drawings (pix2pix)."""

  name = 'edges2handbags'
  DESCRIPTION = (
    'About 137k Amazon handbag photos (Zhu et al., 2016) with '
    'their HED edge drawings, 256x256, as packaged by pix2pix; '
    'its val/ folder is the test split.'
  )
