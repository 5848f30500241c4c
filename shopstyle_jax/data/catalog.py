"""`synthetic_catalog`: an embedded TFDS dataset of procedural product photos.

Nothing is downloaded. Every example is a studio-style e-commerce photo of a
product (shoe, handbag, bottle, ...) rendered by `shopstyle_jax.data.synthetic`
from a seed derived from (split, index) only, so every machine builds identical
data, paired with each style of `shopstyle_jax.styles` applied to that photo.

Importing this module registers the builder with TFDS.
"""

import dataclasses
import functools
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from shopstyle_jax import images as image_lib
from shopstyle_jax import styles
from shopstyle_jax.data import synthetic
from shopstyle_jax.data import threads

# The renderer, under the names this module has always had.
CATEGORIES = synthetic.CATEGORIES
example_seed = synthetic.example_seed
render_example = synthetic.render_example
render_photo = synthetic.render_photo
# Product masks (not stored in the TFDS records, whose bytes stay as they were):
# the ground truth of the background segmentation (benchmarks/segmentation.py).
render_mask = synthetic.render_mask
render_white = synthetic.render_white


def _encoded_example(split: str, index: int, size: int) -> dict[str, object]:
  """`render_example` with the images PNG-encoded here with OpenCV, which
  spares TFDS its TensorFlow encoder (and importing TensorFlow)."""
  example = render_example(split, index, size)
  return {
    k: image_lib.encode_png(v) if isinstance(v, np.ndarray) else v for k, v in example.items()
  }


# ----------------------------------------------------------------------------
# TFDS builder.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class CatalogConfig(tfds.core.BuilderConfig):
  """Size of the rendered catalogue."""

  image_size: int = 256
  num_train: int = 4000
  num_test: int = 200


class SyntheticCatalog(tfds.core.GeneratorBasedBuilder):
  """Procedural product photos paired with their styled renderings."""

  # Bump when the scenes or the styles change (adding a style adds a feature).
  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {
    '1.0.0': 'Photos with pencil sketches.',
    '1.1.0': 'Adds the watercolor, oil and cartoon styles.',
  }
  # Target style -> the feature holding it.
  STYLE_FEATURES = {style: style for style in styles.CATALOG_STYLES}
  BUILDER_CONFIGS = [
    CatalogConfig(name='default', description='256x256, 4000/200.'),
    CatalogConfig(name='small', description='128x128, 4000/200, for CPU training.', image_size=128),
    CatalogConfig(
      name='tiny', description='64x64, 64/16, for tests.', image_size=64, num_train=64, num_test=16
    ),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    shape = (self.builder_config.image_size,) * 2 + (3,)
    features = {
      'id': np.int64,
      'category': tfds.features.ClassLabel(names=CATEGORIES),
      'photo': tfds.features.Image(shape=shape, encoding_format='png'),
    }
    for feature in self.STYLE_FEATURES.values():
      features[feature] = tfds.features.Image(shape=shape, encoding_format='png')
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(features),
      description=__doc__,
      # Keep generation order: record i of a split is example (split, i).
      disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    cfg = self.builder_config
    return {
      'train': self._generate_examples('train', cfg.num_train),
      'test': self._generate_examples('test', cfg.num_test),
    }

  def _generate_examples(self, split: str, num: int) -> Iterator:
    # One thread per core. Each example depends only on (split, index), so the
    # output is the same as a serial build's.
    render = functools.partial(_encoded_example, split, size=self.builder_config.image_size)
    yield from threads.map_in_chunks(render, range(num))
