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

Unpaired training (`is_unpaired`: `config.data.style_folder` set, or
`config.data.unpaired`) runs the same stream twice, once over photos and once
over style images, each with its own seeds (`_side_seed`), and zips the two at
each global position into {'photo', 'style'}; batching and process shares are
then those above. Photos come from the usual source (its train split; with
`config.data.unpaired` only its even indices); style images from the style
folder, or the usual source's targets at its odd indices, so that no photo's
own target is ever seen. Eval batches stay {'photo', 'target', 'valid'}.

Multi-style training (`config.data.styles`, several names) reads every style's
target of each example (the catalogue's stored renderings, or a photo folder
converted once per style) and keeps one: the example at global position g is
(photo, style g mod S, that style's target; the photo itself for 'identity'),
as {'photo', 'target', 'style_id': int32 index}. Every global batch thus holds
each style B/S times (within one when S does not divide B), whatever the
topology. Eval batches are made per style (`create_eval_batches(...,
style=name)`). Unpaired, with `config.data.style_folders` ({name: folder}), the
example at g is {'photo', 'style', 'style_id'}: a photo, style g mod S, and an
image of that style's folder, the k-th of its own stream with k = g // S.
"""

import functools
import hashlib
import os
import sys
from typing import Any, Sequence

import grain
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from shopstyle_jax import images as image_lib
from shopstyle_jax import style_mix
from shopstyle_jax import tone
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
    raise ValueError(
      f'Unknown dataset {name!r}; allowed: '
      f'{", ".join(sorted(DATASETS))} (optionally with '
      "'/<builder config>')."
    )
  configs = DATASETS[base].builder_configs
  if variant and variant not in configs:
    raise ValueError(
      f'Unknown builder config {variant!r} of {base!r}; allowed: {", ".join(sorted(configs))}.'
    )
  return tfds.builder(name, data_dir=config.data.data_dir, file_format='array_record')


def style_folders(config: ml_collections.ConfigDict) -> dict[str, str]:
  """`config.data.style_folders` as {style: folder} in `config.data.styles` order;
  {} when unset (None or empty)."""
  folders = config.data.get('style_folders') or {}
  if not folders:
    return {}
  return {name: folders[name] for name in style_mix.config_styles(config) if name in folders}


def _folder_spec(
  config: ml_collections.ConfigDict, style: str | None = None
) -> folder_lib.FolderSpec:
  """The user's folder, stored at the load size (the pipeline only crops), its
  targets rendered in `style` (default `config.data.style`).

  With style folders the style images set the style: photos-only folders are
  then stored without a rendered target.
  """
  unpaired_styles = config.data.style_folder or style_folders(config)
  return folder_lib.FolderSpec(
    folder=config.data.folder,
    size=_load_size(config),
    style=None if unpaired_styles else (style or config.data.style),
    side_by_side=config.data.side_by_side,
    test_fraction=config.data.test_fraction,
    cache_dir=config.data.cache_dir,
  )


def _style_folder_spec(
  config: ml_collections.ConfigDict, path: str | None = None
) -> folder_lib.FolderSpec:
  """`config.data.style_folder` (or another folder of style images, `path`):
  style images alone, at the load size."""
  return folder_lib.FolderSpec(
    folder=path or config.data.style_folder,
    size=_load_size(config),
    cache_dir=config.data.cache_dir,
    style_images=True,
  )


def _rendered_styles(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The styles a multi-style photo folder is converted in (all but 'identity')."""
  return tuple(s for s in style_mix.config_styles(config) if s != style_mix.IDENTITY)


def _multi_style_folder(config: ml_collections.ConfigDict) -> bool:
  """Whether paired training reads several styles' targets from `config.data.folder`."""
  return bool(config.data.folder) and style_mix.num_styles(config) > 1 and not is_unpaired(config)


def is_unpaired(config: ml_collections.ConfigDict) -> bool:
  """Whether train batches are {'photo', 'style'} (unpaired methods) rather
  than {'photo', 'target'} pairs. A style folder wins over `data.unpaired`, so
  the unpaired configs (offline on the catalogue's halves by default) take
  `--config.data.style_folder=...` as it is."""
  return bool(config.data.style_folder or style_folders(config) or config.data.unpaired)


def has_ground_truth(config: ml_collections.ConfigDict) -> bool:
  """Whether eval batches hold true targets, to score PSNR/SSIM against.

  False for a photos-only `config.data.folder` with a style folder: it
  stores no target, and its eval batches' 'target' is the photo itself; and
  with `config.data.style_folders`, whose styles have no renderings to compare
  with. Every other source has its targets (the catalogue's `config.data.style`
  rendering, edges2* edge drawings, a folder of pairs), unpaired or not.
  """
  if style_folders(config):
    return False
  if config.data.style_folder and config.data.folder:
    return folder_lib.has_targets(_folder_spec(config))
  return True


def prepare(config: ml_collections.ConfigDict, styles: Sequence[str] | None = None) -> None:
  """Makes the data source ready: builds or converts it if missing.

  `styles`: the styles to make ready (default all of the run's): evaluating some
  styles of a multi-style model needs only theirs, e.g. the catalogue's stored
  styles of a model fine-tuned with a folder-only one.

  `config.data.folder` (if set) is converted into `config.data.cache_dir`;
  otherwise the TFDS dataset `config.data.name` is built (downloaded, for the
  pix2pix ones) in `config.data.data_dir`. Call it before the iterators, on
  every process, whether the processes share the directory or not: what is
  ready is reused, and of processes sharing a directory one builds while the
  others wait on a file lock (`build_lock`), then reuse its copy. Fails fast,
  before any download: an unknown style, a missing or empty folder.
  """
  if config.data.style_folder:
    folder_lib.prepare(_style_folder_spec(config))
  for path in style_folders(config).values():
    folder_lib.prepare(_style_folder_spec(config, path))
  if config.data.folder:
    if _multi_style_folder(config):
      _check_render_layout(config)
      for style in _rendered_styles(config):
        if styles is None or style in styles:
          folder_lib.prepare(_folder_spec(config, style))
    else:
      folder_lib.prepare(_folder_spec(config))
    return
  builder = _builder(config)
  # With style folders the catalogue gives photos only: no style need be stored.
  wanted = style_mix.config_styles(config) if styles is None else styles
  for style in () if style_folders(config) else wanted:
    _style_feature(builder, style)
  # TFDS renames a finished build into place: it exists only when complete.
  if builder.data_path.exists():  # No lock needed (the dir may be read-only).
    return
  with build_lock.held(
    build_lock.lock_path_for(builder.data_path),
    f'building {config.data.name} in {builder.data_dir_root}',
  ):
    # A new builder: the process that held the lock may have built it.
    _builder(config).download_and_prepare(
      file_format='array_record',
      download_config=tfds.download.DownloadConfig(manual_dir=config.data.manual_dir),
    )


def _check_render_layout(config: ml_collections.ConfigDict) -> None:
  """A multi-style `config.data.folder` must be a folder of photos: each style's
  targets are rendered from them (a folder of pairs holds one style's only)."""
  root = os.path.expanduser(config.data.folder)
  pairs = all(os.path.isdir(os.path.join(root, d)) for d in ('photos', 'targets'))
  if config.data.side_by_side or pairs:
    raise ValueError(
      f'config.data.styles={style_mix.config_styles(config)} with config.data.folder='
      f'{config.data.folder!r}: several styles need a folder of photos (each style is '
      'rendered from them), not pairs (photos/ and targets/, or config.data.side_by_side), '
      'whose targets are in one style only. Train pairs with a single config.data.style.'
    )


def _style_feature(builder: tfds.core.DatasetBuilder, style: str) -> str:
  """The feature holding `style` in this dataset ('identity': the photo)."""
  if style == style_mix.IDENTITY:
    return 'photo'
  features = type(builder).STYLE_FEATURES
  if style not in features:
    if isinstance(builder, catalog.SyntheticCatalog):
      hint = (
        'Render it from photos instead: set config.data.folder to a folder of photos '
        '(for the catalogue to store it, add it to styles.CATALOG_STYLES and bump '
        'SyntheticCatalog.VERSION).'
      )
    else:
      hint = 'Other styles can be rendered from its photos with config.data.folder.'
    raise ValueError(
      f'Style {style!r} is not in {builder.name}; it has: {", ".join(sorted(features))}. {hint}'
    )
  return features[style]


class _TfdsPairs:
  """A TFDS split as random access to {'photo', 'target'} (or some of them):
  `features` maps each key to the feature it reads."""

  def __init__(self, source, features: dict[str, str]):
    self._source = source
    self._features = features

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    example = self._source[index]
    return {k: example[f] for k, f in self._features.items()}

  def __repr__(self) -> str:
    return f'_TfdsPairs({self._source!r}, {self._features!r})'


def _source(
  config: ml_collections.ConfigDict,
  split: str,
  keys: tuple[str, ...] = ('photo', 'target'),
  style: str | None = None,
):
  """Random access to a prepared split's {'photo', 'target'} uint8 pairs, or
  the images in `keys` only (only those are decoded); the target in `style`
  (default `config.data.style`)."""
  style = style or config.data.style
  if config.data.folder:
    if style == style_mix.IDENTITY:  # A photos-only read: the photo stands in as target.
      style, keys = _rendered_styles(config)[0], tuple(k for k in keys if k != 'target')
    path = folder_lib.prepare(_folder_spec(config, style), verbose=False)
    return folder_lib.FolderSource(path, split, keys)
  builder = _builder(config)
  features = {'photo': 'photo'}
  if 'target' in keys:
    features['target'] = _style_feature(builder, style)
  return _tfds_source(builder, split, {k: features[k] for k in keys})


def _tfds_source(builder: tfds.core.DatasetBuilder, split: str, features: dict[str, str]):
  """A TFDS split as random access to {key: feature}, decoding only those."""
  skip = {
    k: tfds.decode.SkipDecoding()
    for k in builder.info.features.keys()
    if k not in features.values()
  }
  return _TfdsPairs(builder.as_data_source(split=split, decoders=skip), features)


def pairs(config: ml_collections.ConfigDict, split: str):
  """Random access to a prepared split's {'photo', 'target'} uint8 pairs (the
  catalogue's true pairs even in its unpaired mode): for baselines fitted on them."""
  return _source(config, split)


class _Images:
  """Random access to one image of each of some examples: item i is
  {name: source[indices[i]][key]}. One side of unpaired training."""

  def __init__(self, source, key: str, name: str, indices: range | None = None):
    self._source = source
    self._key = key
    self._name = name
    self._indices = range(len(source)) if indices is None else indices

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {self._name: self._source[self._indices[index]][self._key]}

  def __repr__(self) -> str:
    return f'_Images({self._source!r}, {self._key!r} as {self._name!r}, {self._indices!r})'


def unpaired_sources(config: ml_collections.ConfigDict) -> dict[str, _Images]:
  """The two sides of unpaired training: {'photo': ..., 'style': ...}, each
  random access to {'photo': uint8} or {'style': uint8} images.

  With `config.data.style_folder`: every train photo of the usual source, and
  every style image (`config.data.unpaired` is then ignored). Otherwise, with
  `config.data.unpaired`: the train split's even
  indices give the photos and its odd indices the style images (their
  targets), so no photo's own target is ever seen.
  """
  if not is_unpaired(config):
    raise ValueError('Neither config.data.style_folder nor config.data.unpaired is set.')
  if style_folders(config):
    raise ValueError(
      'config.data.style_folders: one style side per style; create_train_iterator reads them.'
    )
  if config.data.style_folder:
    path = folder_lib.prepare(_style_folder_spec(config), verbose=False)
    return {
      'photo': _Images(_source(config, 'train', ('photo',)), 'photo', 'photo'),
      'style': _Images(folder_lib.FolderSource(path, 'train', ('photo',)), 'photo', 'style'),
    }
  photos = _source(config, 'train', ('photo',))
  if len(photos) < 2:
    raise ValueError(
      'config.data.unpaired=True needs at least 2 train '
      f'examples (photos and style images are different '
      f'ones); the train split has {len(photos)}.'
    )
  return {
    'photo': _Images(photos, 'photo', 'photo', range(0, len(photos), 2)),
    'style': _Images(
      _source(config, 'train', ('target',)), 'target', 'style', range(1, len(photos), 2)
    ),
  }


def _local_size(global_size: int, process_count: int, field: str) -> int:
  if global_size % process_count:
    raise ValueError(
      f'{field}={global_size} is not divisible by the process count {process_count}.'
    )
  return global_size // process_count


class _FolderStyles:
  """A multi-style photo folder's split as random access to {'photo', <style>:
  target, ...}: one converted copy per rendered style, aligned record by record."""

  def __init__(self, sources: dict[str, folder_lib.FolderSource], names: list[list[str]]):
    if any(n != names[0] for n in names):
      raise ValueError(
        'The copies of config.data.folder converted per style hold different files '
        '(the folder changed while they were converted); run again to convert it afresh.'
      )
    self._sources = sources

  def __len__(self) -> int:
    return len(next(iter(self._sources.values())))

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    out = {}
    for i, (style, source) in enumerate(self._sources.items()):
      example = source[index]
      if i == 0:
        out['photo'] = example['photo']
      out[style] = example['target']
    return out

  def __repr__(self) -> str:
    return f'_FolderStyles({self._sources!r})'


def _styles_source(config: ml_collections.ConfigDict, split: str):
  """Random access to {'photo', <style>: target, ...} for each style of a
  multi-style run ('identity' needs no feature of its own): the catalogue's
  stored renderings, or `config.data.folder` converted once per style."""
  if config.data.folder:
    sources, names = {}, []
    for i, style in enumerate(_rendered_styles(config)):
      path = folder_lib.prepare(_folder_spec(config, style), verbose=False)
      keys = ('photo', 'target') if i == 0 else ('target',)
      sources[style] = folder_lib.FolderSource(path, split, keys)
      names.append(folder_lib.read_info(path)['names'])
    return _FolderStyles(sources, names)
  builder = _builder(config)
  features = {'photo': 'photo'}
  for style in style_mix.config_styles(config):
    if style != style_mix.IDENTITY:
      features[style] = _style_feature(builder, style)
  return _tfds_source(builder, split, features)


def _pick_style(position: int, example: dict[str, Any], styles: tuple[str, ...]) -> dict[str, Any]:
  """The example at global `position` in style position mod S: {'photo', 'target',
  'style'}. Consecutive positions cycle through the styles, so any B consecutive
  positions (a global batch) hold each style B/S times, within one."""
  index = position % len(styles)
  name = styles[index]
  target = example['photo'] if name == style_mix.IDENTITY else example[name]
  return {'photo': example['photo'], 'target': target, 'style_id': np.int32(index)}


def _augment(
  example: dict[str, Any], rng: np.random.Generator, *, load_size: int, image_size: int, flip: bool
) -> Batch:
  """pix2pix jitter, the same for every image of the example (photo and
  target alike): resize, crop, flip."""
  top, left = rng.integers(0, load_size - image_size + 1, size=2)
  window = (slice(top, top + image_size), slice(left, left + image_size))
  flipped = flip and rng.random() < 0.5
  out = {}
  for key, image in example.items():
    if key == 'style_id':  # The style's index, not an image.
      out[key] = image
      continue
    image = image_lib.resize(image, load_size, load_size)[window]
    out[key] = image_lib.uint8_to_model(image[:, ::-1] if flipped else image)
  return out


def _side_seed(seed: int, side: str) -> int:
  """The seed of one side's shuffle and augmentation in unpaired training."""
  digest = hashlib.sha256(f'{seed}/{side}'.encode()).digest()
  return int.from_bytes(digest[:4], 'big')


def _stream(source, seed: int, augment) -> grain.MapDataset:
  """The endless global stream of a source: shuffled (reseeded each epoch),
  augmented with randomness keyed by (seed, global position)."""
  return (
    grain.MapDataset.source(source)
    .shuffle(seed=seed)
    .repeat()  # Infinite; the shuffle above reseeds each epoch.
    .random_map(augment, seed=seed)
  )


class _StyleCycle:
  """Random access to the style side of multi-style unpaired training: item g is
  {'style': image, 'style_id': s} with s = g mod S, the image item g // S of style
  s's own endless stream (each stream shuffled and augmented with its own seed)."""

  def __init__(self, streams: list[grain.MapDataset]):
    self._streams = streams

  def __len__(self) -> int:
    return sys.maxsize

  def __getitem__(self, index: int) -> dict[str, Any]:
    s = index % len(self._streams)
    return {**self._streams[s][index // len(self._streams)], 'style_id': np.int32(s)}

  def __repr__(self) -> str:
    return f'_StyleCycle({len(self._streams)} styles)'


def _style_folder_images(config: ml_collections.ConfigDict) -> list[_Images]:
  """The images of each of `config.data.style_folders`, in its order."""
  images = []
  for path in style_folders(config).values():
    path = folder_lib.prepare(_style_folder_spec(config, path), verbose=False)
    images.append(_Images(folder_lib.FolderSource(path, 'train', ('photo',)), 'photo', 'style'))
  return images


def _style_folders_side(
  config: ml_collections.ConfigDict, styles: list[_Images], augment
) -> grain.MapDataset:
  """The style side of unpaired training with `config.data.style_folders`."""
  streams = [
    _stream(images, _side_seed(config.seed, f'style/{name}'), augment)
    for name, images in zip(style_folders(config), styles)
  ]
  return grain.MapDataset.source(_StyleCycle(streams))


def _merge(examples: tuple[Batch, ...]) -> Batch:
  return {k: v for example in examples for k, v in example.items()}


def _pixels(images: _Images, key: str, limit: int) -> np.ndarray:
  """[P, 3] pixels in [-1, 1] of up to `limit` images spread evenly over `images`."""
  picks = np.unique(np.linspace(0, len(images) - 1, min(limit, len(images))).astype(int))
  return np.concatenate(
    [image_lib.uint8_to_model(images[int(i)][key]).reshape(-1, 3) for i in picks]
  )


def tone_curves(photos: _Images, styles: list[_Images], limit: int = 256) -> np.ndarray:
  """float32 [S, 256, 3]: per style, `tone.match_histogram` of the photo side onto
  that style's images (up to `limit` of each, spread evenly: the same on every
  process), the target map of `config.loss.tone_weight`. Never reads a pair."""
  photo_pixels = _pixels(photos, 'photo', limit)
  return np.stack([tone.match_histogram(photo_pixels, _pixels(s, 'style', limit)) for s in styles])


def _add_tone(example: Batch, curves: np.ndarray) -> Batch:
  """Adds 'tone': the (augmented) photo mapped by its style's curve."""
  curve = curves[int(example.get('style_id', 0))]
  return {**example, 'tone': tone.apply_curve(curve, example['photo']).astype(np.float32)}


def _load_size(config: ml_collections.ConfigDict) -> int:
  """Resize before cropping: `config.data.load_size`, or pix2pix's 286/256."""
  size = config.data.load_size
  if size is None:
    size = round(config.image_size * 286 / 256)
  if size < config.image_size:
    raise ValueError(
      f'config.data.load_size={size} is smaller than config.image_size={config.image_size}.'
    )
  return size


def _read_options(config: ml_collections.ConfigDict) -> grain.ReadOptions:
  """`config.data.prefetch` batches read ahead, each by its own thread."""
  prefetch = max(1, config.data.prefetch)
  return grain.ReadOptions(num_threads=prefetch, prefetch_buffer_size=prefetch)


def create_train_iterator(
  config: ml_collections.ConfigDict, process_index: int, process_count: int
) -> grain.DatasetIterator:
  """Endless iterator over this process's share of the global train batches.

  Yields {'photo', 'target'}: float32 [b, H, W, 3] in [-1, 1], with
  b = config.batch_size // process_count and H = W = config.image_size; when
  `is_unpaired(config)`, {'photo', 'style'} instead, two independent streams
  (see `unpaired_sources`), plus 'tone' (each photo through its style's
  `tone_curves` map) when `config.loss.tone_weight` > 0. Its get_state()/set_state() resume the stream
  exactly (the state's layout differs between num_workers = 0 and > 0).
  num_workers > 0 uses grain worker processes, which need absl flags parsed
  (absl.app.run).
  """
  local_batch = _local_size(config.batch_size, process_count, 'config.batch_size')
  augment = functools.partial(
    _augment, load_size=_load_size(config), image_size=config.image_size, flip=config.data.flip
  )
  if style_folders(config):
    photos = _Images(_source(config, 'train', ('photo',)), 'photo', 'photo')
    styles = _style_folder_images(config)
    ds = grain.experimental.ZipMapDataset(
      [
        _stream(photos, _side_seed(config.seed, 'photo'), augment),
        _style_folders_side(config, styles, augment),
      ]
    ).map(_merge)
  elif is_unpaired(config):
    sources = unpaired_sources(config)
    photos, styles = sources['photo'], [sources['style']]
    ds = grain.experimental.ZipMapDataset(
      [_stream(source, _side_seed(config.seed, side), augment) for side, source in sources.items()]
    ).map(_merge)
  elif style_mix.num_styles(config) > 1:
    pick = functools.partial(_pick_style, styles=style_mix.config_styles(config))
    ds = (
      grain.MapDataset.source(_styles_source(config, 'train'))
      .shuffle(seed=config.seed)
      .repeat()
      .map_with_index(pick)
      .random_map(augment, seed=config.seed)
    )
  else:
    ds = _stream(_source(config, 'train'), config.seed, augment)
  if is_unpaired(config) and config.loss.get('tone_weight'):
    ds = ds.map(functools.partial(_add_tone, curves=tone_curves(photos, styles)))
  ds = ds.batch(local_batch, drop_remainder=True)
  iter_ds = ds[process_index::process_count].to_iter_dataset(_read_options(config))
  if config.data.num_workers > 0:
    iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.data.num_workers))
  return iter(iter_ds)


def _eval_example(index: int, *, source, num_valid: int, image_size: int) -> Batch:
  """Test example `index` resized to image_size, or padding past the end."""
  if index >= num_valid:
    blank = np.full((image_size, image_size, 3), -1.0, np.float32)
    return {'photo': blank, 'target': blank, 'valid': np.bool_(False)}
  example = source[index]

  def load(image: np.ndarray) -> np.ndarray:
    return image_lib.uint8_to_model(image_lib.resize(image, image_size, image_size))

  photo = load(example['photo'])
  # No stored target (see has_ground_truth): the photo stands in for it.
  target = load(example['target']) if 'target' in example else photo
  return {'photo': photo, 'target': target, 'valid': np.bool_(True)}


def create_eval_batches(
  config: ml_collections.ConfigDict,
  process_index: int,
  process_count: int,
  style: str | None = None,
) -> list[Batch]:
  """This process's share of the eval batches over the first test examples.

  Global eval batch k holds test examples [k*E, (k+1)*E) with
  E = config.eval.batch_size (the last padded, 'valid' False), with targets in
  `style` (default `config.data.style`; 'identity': the photo); process p gets
  rows [p*e, (p+1)*e) of each, e = E // process_count. Uses the first
  min(config.eval.num_examples, test split size) examples, not augmented.
  Unpaired runs get the same paired batches; where `has_ground_truth` is
  False, 'target' is the photo itself.
  """
  global_batch = config.eval.batch_size
  local_batch = _local_size(global_batch, process_count, 'config.eval.batch_size')
  # Style folders have no renderings to compare with: photos only (has_ground_truth).
  keys = ('photo',) if style_folders(config) else ('photo', 'target')
  source = _source(config, 'test', keys, style=style)
  num_valid = min(config.eval.num_examples, len(source))
  num_batches = -(-num_valid // global_batch)
  load = functools.partial(
    _eval_example, source=source, num_valid=num_valid, image_size=config.image_size
  )
  ds = grain.MapDataset.range(num_batches * global_batch).map(load).batch(local_batch)
  return list(ds[process_index::process_count].to_iter_dataset(_read_options(config)))
