"""Grain input pipeline: array_record source -> augmented, sharded batches.

The source is a TFDS dataset (`config.data.name`: the synthetic catalogue,
edges2shoes, edges2handbags) or the user's folder (`config.data.folder`,
converted once by `folder.py`); either way it is random access to
{'photo', 'target'} uint8 pairs, and everything below is the same.

The pipeline is defined over the GLOBAL example stream, and each process only
reads its own slice of it, so the data a run sees does not depend on how many
processes it uses:

  source -> shuffle (reshuffled each epoch) -> repeat -> augment, with the
  randomness keyed by (seed, global position) -> batches of the local size b
  -> process p takes local batches p, p + P, p + 2P, ...

Global batch t is made of the local batches t*P .. t*P + P - 1, i.e. global
positions [t*B, (t+1)*B), and process p's share is positions
[t*B + p*b, t*B + (p+1)*b): concatenating the processes' batches in process
order gives the global batch.
"""

import functools
from typing import Any

import grain
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from shopstyle_jax import images as image_lib
from shopstyle_jax.data import build_lock
from shopstyle_jax.data import catalog
from shopstyle_jax.data import folder as folder_lib
from shopstyle_jax.data import pix2pix_datasets

# Datasets `config.data.name` may name (before an optional '/builder_config').
# Each builder's STYLE_FEATURES maps the styles it holds to their features.
DATASETS = {
    'synthetic_catalog': catalog.SyntheticCatalog,
    'edges2shoes': pix2pix_datasets.Edges2shoes,
    'edges2handbags': pix2pix_datasets.Edges2handbags,
}

Batch = dict[str, np.ndarray]


def _builder(config: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """The TFDS builder named by `config.data.name`, validated."""
  name = config.data.name
  base, _, variant = name.partition('/')
  if base not in DATASETS:
    raise ValueError(f'Unknown dataset {name!r}; allowed: '
                     f'{", ".join(sorted(DATASETS))} (optionally with '
                     "'/<builder config>').")
  configs = DATASETS[base].builder_configs
  if variant and variant not in configs:
    raise ValueError(f'Unknown builder config {variant!r} of {base!r}; '
                     f'allowed: {", ".join(sorted(configs))}.')
  return tfds.builder(name, data_dir=config.data.data_dir,
                      file_format='array_record')


def _folder_spec(config: ml_collections.ConfigDict) -> folder_lib.FolderSpec:
  """The user's folder, stored at the load size (the pipeline only crops)."""
  return folder_lib.FolderSpec(
      folder=config.data.folder, size=_load_size(config),
      style=config.data.style, side_by_side=config.data.side_by_side,
      test_fraction=config.data.test_fraction,
      cache_dir=config.data.cache_dir)


def prepare(config: ml_collections.ConfigDict) -> None:
  """Makes the data source ready: builds or converts it if missing.

  `config.data.folder` (if set) is converted into `config.data.cache_dir`;
  otherwise the TFDS dataset `config.data.name` is built (downloaded, for the
  pix2pix ones) in `config.data.data_dir`. Call it before the iterators, on
  every process, whether the processes share the directory or not: what is
  ready is reused, and of processes sharing a directory one builds while the
  others wait on a file lock (`build_lock`), then reuse its copy. Fails fast,
  before any download: an unknown style, a missing or empty folder.
  """
  if config.data.folder:
    folder_lib.prepare(_folder_spec(config))
    return
  builder = _builder(config)
  _style_feature(builder, config.data.style)
  # TFDS renames a finished build into place: it exists only when complete.
  if builder.data_path.exists():  # No lock needed (the dir may be read-only).
    return
  with build_lock.held(build_lock.lock_path_for(builder.data_path),
                       f'building {config.data.name} in {builder.data_dir_root}'):
    # A new builder: the process that held the lock may have built it.
    _builder(config).download_and_prepare(
        file_format='array_record',
        download_config=tfds.download.DownloadConfig(
            manual_dir=config.data.manual_dir))


def _style_feature(builder: tfds.core.DatasetBuilder, style: str) -> str:
  """The feature holding `style` in this dataset."""
  features = type(builder).STYLE_FEATURES
  if style not in features:
    if isinstance(builder, catalog.SyntheticCatalog):
      hint = ('A style added to shopstyle_jax.styles needs a new catalogue '
              'version: bump SyntheticCatalog.VERSION.')
    else:
      hint = ('Other styles can be rendered from its photos with '
              'config.data.folder.')
    raise ValueError(f'Style {style!r} is not in {builder.name}; it has: '
                     f'{", ".join(sorted(features))}. {hint}')
  return features[style]


class _TfdsPairs:
  """A TFDS split as random access to {'photo', 'target'}."""

  def __init__(self, source, target_feature: str):
    self._source = source
    self._target = target_feature

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    example = self._source[index]
    return {'photo': example['photo'], 'target': example[self._target]}

  def __repr__(self) -> str:
    return f'_TfdsPairs({self._source!r}, {self._target!r})'


def _source(config: ml_collections.ConfigDict, split: str):
  """Random access to a prepared split's {'photo', 'target'} uint8 pairs."""
  if config.data.folder:
    path = folder_lib.prepare(_folder_spec(config), verbose=False)
    return folder_lib.FolderSource(path, split)
  builder = _builder(config)
  target = _style_feature(builder, config.data.style)
  skip = {k: tfds.decode.SkipDecoding() for k in builder.info.features.keys()
          if k not in ('photo', target)}
  return _TfdsPairs(builder.as_data_source(split=split, decoders=skip), target)


def _local_size(global_size: int, process_count: int, field: str) -> int:
  if global_size % process_count:
    raise ValueError(f'{field}={global_size} is not divisible by the '
                     f'process count {process_count}.')
  return global_size // process_count


def _augment(example: dict[str, Any], rng: np.random.Generator, *,
             load_size: int, image_size: int, flip: bool) -> Batch:
  """pix2pix jitter, the same for photo and target: resize, crop, flip."""
  photo = image_lib.resize(example['photo'], load_size, load_size)
  target = image_lib.resize(example['target'], load_size, load_size)
  top, left = rng.integers(0, load_size - image_size + 1, size=2)
  window = (slice(top, top + image_size), slice(left, left + image_size))
  photo, target = photo[window], target[window]
  if flip and rng.random() < 0.5:
    photo, target = photo[:, ::-1], target[:, ::-1]
  return {'photo': image_lib.uint8_to_model(photo),
          'target': image_lib.uint8_to_model(target)}


def _load_size(config: ml_collections.ConfigDict) -> int:
  """Resize before cropping: `config.data.load_size`, or pix2pix's 286/256."""
  size = config.data.load_size
  if size is None:
    size = round(config.image_size * 286 / 256)
  if size < config.image_size:
    raise ValueError(f'config.data.load_size={size} is smaller than '
                     f'config.image_size={config.image_size}.')
  return size


def _read_options(config: ml_collections.ConfigDict) -> grain.ReadOptions:
  """`config.data.prefetch` batches read ahead, each by its own thread."""
  prefetch = max(1, config.data.prefetch)
  return grain.ReadOptions(num_threads=prefetch,
                           prefetch_buffer_size=prefetch)


def create_train_iterator(config: ml_collections.ConfigDict,
                          process_index: int,
                          process_count: int) -> grain.DatasetIterator:
  """Endless iterator over this process's share of the global train batches.

  Yields {'photo', 'target'}: float32 [b, H, W, 3] in [-1, 1], with
  b = config.batch_size // process_count and H = W = config.image_size. Its
  get_state()/set_state() resume the stream exactly (the state's layout
  differs between num_workers = 0 and > 0). num_workers > 0 uses grain worker
  processes, which need absl flags parsed (absl.app.run).
  """
  local_batch = _local_size(config.batch_size, process_count,
                            'config.batch_size')
  augment = functools.partial(
      _augment, load_size=_load_size(config), image_size=config.image_size,
      flip=config.data.flip)
  ds = (grain.MapDataset.source(_source(config, 'train'))
        .shuffle(seed=config.seed)
        .repeat()  # Infinite; the shuffle above reseeds each epoch.
        .random_map(augment, seed=config.seed)
        .batch(local_batch, drop_remainder=True))
  iter_ds = ds[process_index::process_count].to_iter_dataset(
      _read_options(config))
  if config.data.num_workers > 0:
    iter_ds = iter_ds.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=config.data.num_workers))
  return iter(iter_ds)


def _eval_example(index: int, *, source, num_valid: int,
                  image_size: int) -> Batch:
  """Test example `index` resized to image_size, or padding past the end."""
  if index >= num_valid:
    blank = np.full((image_size, image_size, 3), -1.0, np.float32)
    return {'photo': blank, 'target': blank, 'valid': np.bool_(False)}
  example = source[index]

  def load(image: np.ndarray) -> np.ndarray:
    return image_lib.uint8_to_model(image_lib.resize(image, image_size, image_size))

  return {'photo': load(example['photo']), 'target': load(example['target']),
          'valid': np.bool_(True)}


def create_eval_batches(config: ml_collections.ConfigDict, process_index: int,
                        process_count: int) -> list[Batch]:
  """This process's share of the eval batches over the first test examples.

  Global eval batch k holds test examples [k*E, (k+1)*E) with
  E = config.eval.batch_size (the last padded, 'valid' False); process p gets
  rows [p*e, (p+1)*e) of each, e = E // process_count. Uses the first
  min(config.eval.num_examples, test split size) examples, not augmented.
  """
  global_batch = config.eval.batch_size
  local_batch = _local_size(global_batch, process_count,
                            'config.eval.batch_size')
  source = _source(config, 'test')
  num_valid = min(config.eval.num_examples, len(source))
  num_batches = -(-num_valid // global_batch)
  load = functools.partial(_eval_example, source=source, num_valid=num_valid,
                           image_size=config.image_size)
  ds = (grain.MapDataset.range(num_batches * global_batch).map(load)
        .batch(local_batch))
  return list(ds[process_index::process_count].to_iter_dataset(
      _read_options(config)))
